//! {{name}}: a wflow transformer. Adds a column `name` = `left` * `right` (two numeric
//! columns) to every input table. Build it with `wflow plugin build`.

use wflow_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    left: String,
    right: String,
    /// The new column's name [default: left_x_right].
    name: Option<String>,
}

struct {{type}};

impl Plugin for {{type}} {
    type Config = Config;
    const DESCRIPTION: &'static str = "Adds the product of two numeric columns";
}

impl Transformer for {{type}} {
    fn transform(inputs: Vec<(String, Table)>, config: Config) -> Result<Vec<(String, Table)>, StepError> {
        let name = config.name.clone().unwrap_or_else(|| format!("{}_x_{}", config.left, config.right));
        // How serving applies this step to raw rows (`wflow_sdk::preprocessing::Stage`: fills,
        // one-hot, standardise, bucketize, drop columns, rows). A product of two columns is none
        // of them, so this step says so, and a model trained after it is registered only with
        // `pipeline = [...]` leaving it out, or `pipeline = []`.
        wflow_sdk::preprocessing::declare(&[wflow_sdk::preprocessing::Stage::Unservable(
            format!("`{name}` is the product of two columns, which serving does not compute"),
        )]);
        inputs
            .into_iter()
            .map(|(slot, table)| {
                let left = table.floats(&config.left)?;
                let right = table.floats(&config.right)?;
                let product = left.iter().zip(&right).map(|(a, b)| a * b).collect();
                let table = table.with_column(&Column::floats(name.clone(), product)).map_err(StepError::Failed)?;
                Ok((slot, table))
            })
            .collect()
    }
}

wflow_sdk::export_transformer!({{type}});
