//! A validator built against an incompatible major version of the plugin contract: `wit/` here
//! is a copy of the real contract with the package version changed to `wflow:plugin@0.2.0`.
//! The host must refuse it with an error naming both versions.
//!
//! It deliberately uses wit-bindgen directly (not `wflow-sdk`, whose bindings are 0.1.0) and does
//! nothing when called: if the host ever runs it, the test has already failed.

wit_bindgen::generate!({
    path: "wit",
    world: "validator",
});

// The world-level `use` in the WIT already brings `PluginInfo`, `Report`, `StepError` and `Table`
// into scope; only `StepKind` comes from the interface.
use wflow::plugin::types::StepKind;

/// The plugin.
struct FutureVersion;

impl Guest for FutureVersion {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kind: StepKind::Validator,
            description: "Built against wflow:plugin@0.2.0; a 0.1 host must refuse it".to_string(),
            config_schema: "{}".to_string(),
            capabilities: Vec::new(),
        }
    }

    fn validate(_data: Table, _config: String) -> Result<Report, StepError> {
        Ok(Report {
            findings: Vec::new(),
        })
    }
}

export!(FutureVersion);
