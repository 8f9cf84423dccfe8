//! A transformer that adds `<column>_squared` for a numeric column and says nothing of how
//! (it never calls `preprocessing.declare`), as a plugin built before contract 0.1.2 would: a
//! model trained downstream of it cannot be served from raw rows, and `register-model` must
//! say so naming its step. With `rename` it returns every table under that one name, the
//! misbehaviour of a broken plugin (two outputs of one name, or a name like `../x`).

use wflow_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The numeric column to square.
    column: String,
    /// The name to return every table under.
    #[serde(default)]
    rename: Option<String>,
}

/// The plugin.
struct OpaqueTransform;

impl Plugin for OpaqueTransform {
    type Config = Config;
    const DESCRIPTION: &'static str = "Adds the square of a column, without declaring it";
}

impl Transformer for OpaqueTransform {
    fn transform(
        inputs: Vec<(String, Table)>,
        config: Config,
    ) -> Result<Vec<(String, Table)>, StepError> {
        let output = format!("{}_squared", config.column);
        inputs
            .into_iter()
            .map(|(name, table)| {
                let values: Vec<Option<f64>> = table
                    .floats_opt(&config.column)?
                    .into_iter()
                    .map(|v| v.map(|x| x * x))
                    .collect();
                let squared = Column::float_options(output.clone(), values);
                let table = table.with_column(&squared).map_err(StepError::Failed)?;
                Ok((config.rename.clone().unwrap_or(name), table))
            })
            .collect()
    }
}

wflow_sdk::export_transformer!(OpaqueTransform);
