//! Write wflow workflow steps in Rust.
//!
//! A plugin is a struct, an implementation of [`Plugin`] plus the trait of its step kind
//! ([`Validator`], [`Transformer`], [`Trainer`], [`Evaluator`], [`Deployer`], [`DriftCheck`]), and
//! one export macro. The SDK owns the WIT bindings (plugins never depend on wit-bindgen), parses
//! the step's JSON configuration into the plugin's typed `Config` (a bad configuration is
//! [`StepError::InvalidConfig`] naming the field), generates `describe()` with the configuration's
//! JSON Schema, and offers helpers to read tables ([`TableExt`]), build columns, findings and
//! reports, log, emit metrics and run ONNX inference in the host.
//!
//! The SDK does not compute anything about data itself, and nothing in it panics on bad input.
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "min-rows"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! wflow-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! schemars = "1"
//! ```
//!
//! `src/lib.rs` (build with `cargo build --release --target wasm32-wasip2`):
//!
//! ```no_run
//! use wflow_sdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     /// Fewest rows the table may have.
//!     min_rows: Option<u64>,
//! }
//!
//! struct MinRows;
//!
//! impl Plugin for MinRows {
//!     type Config = Config;
//!     const DESCRIPTION: &'static str = "Fails when a table has too few rows";
//! }
//!
//! impl Validator for MinRows {
//!     fn validate(data: Table, config: Config) -> Result<Report, StepError> {
//!         let min = config.min_rows.unwrap_or(1);
//!         let rows = data.row_count();
//!         let finding = Finding::new("min-rows", Severity::Fail, rows >= min, format!("{rows} rows"))
//!             .observed(rows)
//!             .expected(format!(">= {min}"));
//!         Ok(Report::new().with(finding))
//!     }
//! }
//!
//! wflow_sdk::export_validator!(MinRows);
//! ```
//!
//! Keep the logic in pure functions on plain Rust data (`&[f64]`, `&[String]`) so that
//! `cargo test` can run it natively: the host imports (table methods, logging, inference) only
//! work inside a component.

#![deny(missing_docs)]

// The generated bindings and the export macros name this crate `::wflow_sdk`, which must also
// resolve inside the SDK itself.
extern crate self as wflow_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The `schemars` crate the SDK uses for configuration schemas (1.x).
///
/// ```
/// #[derive(wflow_sdk::schemars::JsonSchema)]
/// #[schemars(crate = "wflow_sdk::schemars")]
/// struct Config { bins: u32 }
/// ```
pub use schemars;

/// The `serde` crate the SDK uses to parse configurations.
///
/// ```
/// #[derive(wflow_sdk::serde::Deserialize)]
/// #[serde(crate = "wflow_sdk::serde")]
/// struct Config { bins: u32 }
/// ```
pub use serde;

/// The `serde_json` crate, handy for properties and observed values.
///
/// ```
/// assert_eq!(wflow_sdk::serde_json::json!({"a": 1})["a"], 1);
/// ```
pub use serde_json;

#[doc(hidden)]
pub mod bindings;
mod column;
mod config;
pub mod inference;
pub mod log;
mod plugin;
pub mod preprocessing;
mod report;
mod table;

pub use config::{config_schema, parse_config};
pub use plugin::{Deployer, DriftCheck, Evaluator, Plugin, Trainer, Transformer, Validator};
pub use report::metric;
pub use table::{TableExt, build_table, missing_column, rows_from_columns};

pub use bindings::trainer::Trained;
pub use bindings::types::{
    Capability, Column, ColumnInfo, ColumnType, ColumnValues, Decision, DriftOutcome, Evaluation,
    FeatureDrift, Finding, GateOutcome, Metric, Model, ModelMetadata, PluginInfo, Report, Severity,
    StepError, StepKind, Table, Task,
};

/// Records a metric of the step as it runs (e.g. a loss per epoch). Calls the host.
///
/// ```no_run
/// wflow_sdk::emit_metric("loss", 0.42);
/// ```
pub fn emit_metric(name: &str, value: f64) {
    bindings::host::emit_metric(name, value);
}

/// Reports progress: `done` out of `total` units of work. Calls the host.
///
/// ```no_run
/// wflow_sdk::progress(3, 10, "epoch 3 of 10");
/// ```
pub fn progress(done: u64, total: u64, message: &str) {
    bindings::host::progress(done, total, message);
}

/// Everything a plugin usually needs, in one `use wflow_sdk::prelude::*;`.
///
/// ```
/// use wflow_sdk::prelude::*;
/// let finding = Finding::passed("rows", "enough rows");
/// assert!(Report::new().with(finding).findings[0].passed);
/// ```
pub mod prelude {
    pub use crate::{
        Capability, Column, ColumnInfo, ColumnType, ColumnValues, Decision, Deployer, DriftCheck,
        DriftOutcome, Evaluation, Evaluator, FeatureDrift, Finding, GateOutcome, Metric, Model,
        ModelMetadata, Plugin, Report, Severity, StepError, Table, TableExt, Task, Trained,
        Trainer, Transformer, Validator, build_table, emit_metric, inference, log, metric,
        preprocessing, progress,
    };
    pub use schemars::JsonSchema;
    pub use serde::Deserialize;
}

/// Support for the export macros; not part of the public API.
#[doc(hidden)]
pub mod __private {
    use crate::{Plugin, PluginInfo, StepKind};

    pub use crate::config::parse_config;

    /// The `describe()` answer of plugin `P`, given the kind from the macro and the name and
    /// version of the plugin crate (expanded there with `env!`).
    pub fn describe<P: Plugin>(kind: StepKind, name: &str, version: &str) -> PluginInfo {
        PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            kind,
            description: P::DESCRIPTION.to_string(),
            config_schema: crate::config_schema::<P::Config>(),
            capabilities: P::capabilities(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::Capability;

        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        struct Config {
            /// Fewest rows.
            #[allow(dead_code)]
            min_rows: Option<u64>,
        }

        struct Reader;

        impl Plugin for Reader {
            type Config = Config;
            const DESCRIPTION: &'static str = "Reads files";
            fn capabilities() -> Vec<Capability> {
                vec![Capability::ReadDir("/data".into()), Capability::Network]
            }
        }

        struct Plain;

        impl Plugin for Plain {
            type Config = ();
            const DESCRIPTION: &'static str = "Asks for nothing";
        }

        #[test]
        fn describe_reports_everything_the_plugin_declares() {
            let info = describe::<Reader>(StepKind::Validator, "reader", "1.2.3");
            assert_eq!(info.name, "reader");
            assert_eq!(info.version, "1.2.3");
            assert_eq!(info.kind, StepKind::Validator);
            assert_eq!(info.description, "Reads files");
            assert_eq!(
                info.capabilities,
                vec![Capability::ReadDir("/data".into()), Capability::Network]
            );
            let schema: serde_json::Value = serde_json::from_str(&info.config_schema).unwrap();
            assert_eq!(
                schema["properties"]["min_rows"]["description"],
                "Fewest rows."
            );
        }

        #[test]
        fn capabilities_default_to_none() {
            let info = describe::<Plain>(StepKind::DriftCheck, "plain", "0.1.0");
            assert!(info.capabilities.is_empty());
            assert_eq!(info.kind, StepKind::DriftCheck);
        }
    }
}
