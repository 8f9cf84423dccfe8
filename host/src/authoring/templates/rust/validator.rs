//! {{name}}: a wflow validator. Checks that the table has at least `min_rows` rows and that the
//! `required` columns exist. Build it with `wflow plugin build`.

use wflow_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Fewest rows allowed [default: 1].
    min_rows: Option<u64>,
    /// Columns that must exist.
    #[serde(default)]
    required: Vec<String>,
}

struct {{type}};

impl Plugin for {{type}} {
    type Config = Config;
    const DESCRIPTION: &'static str = "Checks a table's row count and required columns";
}

impl Validator for {{type}} {
    fn validate(data: Table, config: Config) -> Result<Report, StepError> {
        let min = config.min_rows.unwrap_or(1);
        let rows = data.row_count();
        let mut report = Report::new().with(
            Finding::new("min-rows", Severity::Fail, rows >= min, format!("{rows} rows, at least {min} expected"))
                .observed(rows)
                .expected(format!(">= {min}")),
        );
        let names = data.column_names();
        for column in config.required {
            let present = names.contains(&column);
            let message = format!("column `{column}` is {}", if present { "present" } else { "missing" });
            report.push(Finding::new("required-column", Severity::Fail, present, message).column(column));
        }
        Ok(report)
    }
}

wflow_sdk::export_validator!({{type}});
