//! A validator that does nothing and returns an empty report, so the host can measure the
//! per-step overhead (instantiation, configuration parsing, the call itself).
//!
//! It deliberately reads nothing from its input table: any host call would add to the figure.

use wflow_sdk::prelude::*;

/// No options; unknown fields are refused so the configuration path is exercised.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {}

/// The plugin.
struct Noop;

impl Plugin for Noop {
    type Config = Config;
    const DESCRIPTION: &'static str = "Does nothing and returns an empty report";
}

impl Validator for Noop {
    fn validate(_data: Table, _config: Config) -> Result<Report, StepError> {
        Ok(Report::new())
    }
}

wflow_sdk::export_validator!(Noop);
