//! A validator built against the previous minor version of the plugin contract: `wit/` here is
//! the contract as it was at `wflow:plugin@0.1.0`, kept unchanged. A host of a later compatible
//! version must keep running it: it reads a column through the `table` resource and logs
//! through `host`, both interfaces that grew since.

wit_bindgen::generate!({
    path: "wit",
    world: "validator",
});

use wflow::plugin::host::{Level, log};
use wflow::plugin::types::{Finding, Severity, StepKind};

struct Contract010;

impl Guest for Contract010 {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kind: StepKind::Validator,
            description:
                "Built against wflow:plugin@0.1.0: counts rows and the first column's nulls"
                    .to_string(),
            config_schema: "{}".to_string(),
            capabilities: Vec::new(),
        }
    }

    fn validate(data: Table, _config: String) -> Result<Report, StepError> {
        let rows = data.row_count();
        let schema = data.schema();
        let first = schema
            .first()
            .ok_or_else(|| StepError::InvalidInput("the table has no column".to_string()))?;
        let column = data
            .column(&first.name)
            .ok_or_else(|| StepError::Failed(format!("column `{}` vanished", first.name)))?;
        let nulls = column.valid.iter().filter(|valid| !**valid).count();
        log(
            Level::Info,
            "counted",
            &[("rows".to_string(), rows.to_string())],
        );
        Ok(Report {
            findings: vec![Finding {
                check: "rows".to_string(),
                column: Some(first.name.clone()),
                severity: Severity::Fail,
                passed: rows > 0,
                message: format!("{rows} rows, {nulls} null in `{}`", first.name),
                observed: Some(rows.to_string()),
                expected: Some("> 0".to_string()),
            }],
        })
    }
}

export!(Contract010);
