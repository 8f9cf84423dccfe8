//! A validator that does nothing and returns an empty report, so the host can measure the
//! per-step overhead (instantiation, configuration parsing, the call itself). With `sleep_ms`
//! it first waits that long, which gives the daemon's tests runs that take a known time.
//!
//! It deliberately reads nothing from its input table: any host call would add to the figure.

use wflow_sdk::prelude::*;

/// Unknown fields are refused so the configuration path is exercised.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Milliseconds to wait before answering.
    #[serde(default)]
    sleep_ms: u64,
}

/// The plugin.
struct Noop;

impl Plugin for Noop {
    type Config = Config;
    const DESCRIPTION: &'static str = "Does nothing and returns an empty report";
}

impl Validator for Noop {
    fn validate(_data: Table, config: Config) -> Result<Report, StepError> {
        if config.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(config.sleep_ms));
        }
        Ok(Report::new())
    }
}

wflow_sdk::export_validator!(Noop);
