//! The plugin traits (one per step kind) and the `export_*!` macros that turn an implementation
//! into a component's exports.
//!
//! A plugin implements [`Plugin`] (its configuration type, description and capabilities) and the
//! trait of its kind; the macro generates `describe()` and the kind's export, parsing the JSON
//! configuration into `Self::Config` before calling the trait. This module deliberately knows
//! nothing about what a step computes: it only converts between the WIT exports and the traits.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::{
    Capability, DriftOutcome, Evaluation, GateOutcome, Model, Report, StepError, Table, Trained,
};

/// What every plugin says about itself, whatever its kind.
///
/// `describe()` is generated from it by the export macro: the name and version are the plugin
/// crate's `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`, the configuration schema is the
/// [`JsonSchema`] of [`Plugin::Config`].
///
/// ```
/// use wflow_sdk::prelude::*;
///
/// #[derive(Deserialize, JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     /// Fewest rows the table may have.
///     min_rows: Option<u64>,
/// }
///
/// struct RowCount;
///
/// impl Plugin for RowCount {
///     type Config = Config;
///     const DESCRIPTION: &'static str = "Checks that a table has enough rows";
/// }
/// ```
pub trait Plugin {
    /// The step's configuration, parsed by the SDK from the workflow's JSON.
    ///
    /// Use a struct with `#[serde(deny_unknown_fields)]` so that a misspelt option is an error,
    /// and doc comments on the fields: they become descriptions in the JSON Schema.
    type Config: DeserializeOwned + JsonSchema;

    /// One line for people, shown by `wflow plugin list` and `wflow plugin inspect`.
    const DESCRIPTION: &'static str;

    /// The capabilities the plugin needs (files, environment variables, network).
    /// Everything is denied unless the workflow grants it; the default asks for nothing.
    ///
    /// ```
    /// use wflow_sdk::prelude::*;
    ///
    /// struct Loader;
    /// impl Plugin for Loader {
    ///     type Config = ();
    ///     const DESCRIPTION: &'static str = "Reads reference data";
    ///     fn capabilities() -> Vec<Capability> {
    ///         vec![Capability::ReadDir("/data".to_string())]
    ///     }
    /// }
    /// assert_eq!(Loader::capabilities().len(), 1);
    /// ```
    fn capabilities() -> Vec<Capability> {
        Vec::new()
    }
}

/// A step that checks a table and reports findings; a failed finding of severity
/// [`Severity::Fail`](crate::Severity::Fail) fails the step.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct NotEmpty;
/// impl Plugin for NotEmpty {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Fails on an empty table";
/// }
/// impl Validator for NotEmpty {
///     fn validate(data: Table, _config: ()) -> Result<Report, StepError> {
///         let mut report = Report::new();
///         if data.n_rows() == 0 {
///             report.push(Finding::failed("not-empty", Severity::Fail, "the table has no rows"));
///         } else {
///             report.push(Finding::passed("not-empty", "the table has rows"));
///         }
///         Ok(report)
///     }
/// }
/// wflow_sdk::export_validator!(NotEmpty);
/// ```
pub trait Validator: Plugin {
    /// Checks `data` and returns the findings.
    fn validate(data: Table, config: Self::Config) -> Result<Report, StepError>;
}

/// A step that turns named tables into named tables (split, impute, scale, encode...).
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct Rename;
/// impl Plugin for Rename {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Renames the input `data` to `output`";
/// }
/// impl Transformer for Rename {
///     fn transform(inputs: Vec<(String, Table)>, _config: ()) -> Result<Vec<(String, Table)>, StepError> {
///         Ok(inputs.into_iter().map(|(_, table)| ("output".to_string(), table)).collect())
///     }
/// }
/// wflow_sdk::export_transformer!(Rename);
/// ```
pub trait Transformer: Plugin {
    /// Transforms the named input tables into named output tables.
    fn transform(
        inputs: Vec<(String, Table)>,
        config: Self::Config,
    ) -> Result<Vec<(String, Table)>, StepError>;
}

/// A step that trains a model on a table to predict `target`.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct NotYet;
/// impl Plugin for NotYet {
///     type Config = ();
///     const DESCRIPTION: &'static str = "A trainer that refuses to train";
/// }
/// impl Trainer for NotYet {
///     fn train(_data: Table, target: String, _config: ()) -> Result<Trained, StepError> {
///         Err(StepError::Failed(format!("cannot train for `{target}` yet")))
///     }
/// }
/// wflow_sdk::export_trainer!(NotYet);
/// ```
pub trait Trainer: Plugin {
    /// Trains a model on `data` predicting the column `target`.
    fn train(data: Table, target: String, config: Self::Config) -> Result<Trained, StepError>;
}

/// A step that evaluates a model on a table, usually with predictions from
/// [`inference::Session`](crate::inference::Session).
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct RowCount;
/// impl Plugin for RowCount {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Counts the evaluation rows";
/// }
/// impl Evaluator for RowCount {
///     fn evaluate(_model: Model, data: Table, _config: ()) -> Result<Evaluation, StepError> {
///         Ok(Evaluation { metrics: vec![metric("rows", data.n_rows() as f64)], report: Report::new() })
///     }
/// }
/// wflow_sdk::export_evaluator!(RowCount);
/// ```
pub trait Evaluator: Plugin {
    /// Evaluates `model` on `data`.
    fn evaluate(model: Model, data: Table, config: Self::Config) -> Result<Evaluation, StepError>;
}

/// A deployment gate: decides whether a candidate replaces the champion, given both evaluations
/// on the same holdout. Its configuration is the gate's policy.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct AlwaysShadow;
/// impl Plugin for AlwaysShadow {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Shadows every candidate";
/// }
/// impl Deployer for AlwaysShadow {
///     fn decide(_candidate: Evaluation, _champion: Option<Evaluation>, _policy: ()) -> Result<GateOutcome, StepError> {
///         Ok(GateOutcome { decision: Decision::Shadow, report: Report::new() })
///     }
/// }
/// wflow_sdk::export_deployer!(AlwaysShadow);
/// ```
pub trait Deployer: Plugin {
    /// Decides what happens to `candidate`; `champion` is absent for the first model.
    fn decide(
        candidate: Evaluation,
        champion: Option<Evaluation>,
        policy: Self::Config,
    ) -> Result<GateOutcome, StepError>;
}

/// A step that compares a current table with a reference table, feature by feature.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct NeverDrifts;
/// impl Plugin for NeverDrifts {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Reports no drift";
/// }
/// impl DriftCheck for NeverDrifts {
///     fn check(_reference: Table, _current: Table, _config: ()) -> Result<DriftOutcome, StepError> {
///         Ok(DriftOutcome { features: Vec::new(), drift_share: 0.0, drifted: false, report: Report::new() })
///     }
/// }
/// wflow_sdk::export_drift_check!(NeverDrifts);
/// ```
pub trait DriftCheck: Plugin {
    /// Compares `current` with `reference`.
    fn check(
        reference: Table,
        current: Table,
        config: Self::Config,
    ) -> Result<DriftOutcome, StepError>;
}

/// Shared body of the export macros: each one defines a private type implementing the world's
/// generated `Guest` trait by delegating to the plugin, then calls wit-bindgen's export macro.
///
/// The private type (rather than implementing `Guest` on the plugin type itself) keeps the
/// generated methods from clashing with the plugin's own, and lets the macros accept any type
/// path although wit-bindgen's export macro takes a bare identifier.
///
/// The exported symbols exist only when building the component (`wasm32`): natively a plugin
/// crate is a plain library, so several plugins can be linked into one program (benchmarks
/// comparing native and sandboxed runs) without their identically named exports colliding.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_step {
    ($plugin:ty, $kind:ident, $method:ident, $world:ident, $world_macro:ident, { $($methods:tt)* }) => {
        const _: () = {
            #[doc(hidden)]
            pub struct __WflowExport;

            impl $crate::bindings::$world::Guest for __WflowExport {
                fn describe() -> $crate::PluginInfo {
                    $crate::__private::describe::<$plugin>(
                        $crate::StepKind::$kind,
                        ::core::env!("CARGO_PKG_NAME"),
                        ::core::env!("CARGO_PKG_VERSION"),
                    )
                }

                $($methods)*
            }

            #[cfg(target_arch = "wasm32")]
            $crate::bindings::$world::$world_macro!(__WflowExport with_types_in $crate::bindings::$world);

            // Natively nothing calls the plugin through the exports: this keeps its code
            // reachable, so the compiler does not report it unused.
            #[cfg(not(target_arch = "wasm32"))]
            #[used]
            static __WFLOW_NATIVE_KEEP: fn() = || {
                let _ = <$plugin as $crate::$kind>::$method;
            };
        };
    };
}

/// Exports a [`Validator`] as the plugin's component exports (`describe` and `validate`).
/// Call it once, at the top level of the plugin crate.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct Noop;
/// impl Plugin for Noop {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Does nothing";
/// }
/// impl Validator for Noop {
///     fn validate(_data: Table, _config: ()) -> Result<Report, StepError> {
///         Ok(Report::new())
///     }
/// }
/// wflow_sdk::export_validator!(Noop);
/// ```
#[macro_export]
macro_rules! export_validator {
    ($plugin:ty) => {
        $crate::__export_step!(
            $plugin,
            Validator,
            validate,
            validator,
            __export_validator_world,
            {
                fn validate(
                    data: $crate::Table,
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::Report, $crate::StepError> {
                    let config = $crate::__private::parse_config::<
                        <$plugin as $crate::Plugin>::Config,
                    >(&config)?;
                    <$plugin as $crate::Validator>::validate(data, config)
                }
            }
        );
    };
}

/// Exports a [`Transformer`] as the plugin's component exports (`describe` and `transform`).
/// Call it once, at the top level of the plugin crate.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct Identity;
/// impl Plugin for Identity {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Passes its inputs through";
/// }
/// impl Transformer for Identity {
///     fn transform(inputs: Vec<(String, Table)>, _config: ()) -> Result<Vec<(String, Table)>, StepError> {
///         Ok(inputs)
///     }
/// }
/// wflow_sdk::export_transformer!(Identity);
/// ```
#[macro_export]
macro_rules! export_transformer {
    ($plugin:ty) => {
        $crate::__export_step!(
            $plugin,
            Transformer,
            transform,
            transformer,
            __export_transformer_world,
            {
                fn transform(
                    inputs: ::std::vec::Vec<(::std::string::String, $crate::Table)>,
                    config: ::std::string::String,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<(::std::string::String, $crate::Table)>,
                    $crate::StepError,
                > {
                    let config = $crate::__private::parse_config::<
                        <$plugin as $crate::Plugin>::Config,
                    >(&config)?;
                    <$plugin as $crate::Transformer>::transform(inputs, config)
                }
            }
        );
    };
}

/// Exports a [`Trainer`] as the plugin's component exports (`describe` and `train`).
/// Call it once, at the top level of the plugin crate.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct Refuse;
/// impl Plugin for Refuse {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Refuses to train";
/// }
/// impl Trainer for Refuse {
///     fn train(_data: Table, _target: String, _config: ()) -> Result<Trained, StepError> {
///         Err(StepError::Failed("not implemented".to_string()))
///     }
/// }
/// wflow_sdk::export_trainer!(Refuse);
/// ```
#[macro_export]
macro_rules! export_trainer {
    ($plugin:ty) => {
        $crate::__export_step!($plugin, Trainer, train, trainer, __export_trainer_world, {
            fn train(
                data: $crate::Table,
                target: ::std::string::String,
                config: ::std::string::String,
            ) -> ::core::result::Result<$crate::Trained, $crate::StepError> {
                let config = $crate::__private::parse_config::<<$plugin as $crate::Plugin>::Config>(
                    &config,
                )?;
                <$plugin as $crate::Trainer>::train(data, target, config)
            }
        });
    };
}

/// Exports an [`Evaluator`] as the plugin's component exports (`describe` and `evaluate`).
/// Call it once, at the top level of the plugin crate.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct Nothing;
/// impl Plugin for Nothing {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Measures nothing";
/// }
/// impl Evaluator for Nothing {
///     fn evaluate(_model: Model, _data: Table, _config: ()) -> Result<Evaluation, StepError> {
///         Ok(Evaluation { metrics: Vec::new(), report: Report::new() })
///     }
/// }
/// wflow_sdk::export_evaluator!(Nothing);
/// ```
#[macro_export]
macro_rules! export_evaluator {
    ($plugin:ty) => {
        $crate::__export_step!(
            $plugin,
            Evaluator,
            evaluate,
            evaluator,
            __export_evaluator_world,
            {
                fn evaluate(
                    model: $crate::Model,
                    data: $crate::Table,
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::Evaluation, $crate::StepError> {
                    let config = $crate::__private::parse_config::<
                        <$plugin as $crate::Plugin>::Config,
                    >(&config)?;
                    <$plugin as $crate::Evaluator>::evaluate(model, data, config)
                }
            }
        );
    };
}

/// Exports a [`Deployer`] as the plugin's component exports (`describe` and `decide`).
/// Call it once, at the top level of the plugin crate.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct Promote;
/// impl Plugin for Promote {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Promotes every candidate";
/// }
/// impl Deployer for Promote {
///     fn decide(_c: Evaluation, _champion: Option<Evaluation>, _policy: ()) -> Result<GateOutcome, StepError> {
///         Ok(GateOutcome { decision: Decision::Promote, report: Report::new() })
///     }
/// }
/// wflow_sdk::export_deployer!(Promote);
/// ```
#[macro_export]
macro_rules! export_deployer {
    ($plugin:ty) => {
        $crate::__export_step!(
            $plugin,
            Deployer,
            decide,
            deployer,
            __export_deployer_world,
            {
                fn decide(
                    candidate: $crate::Evaluation,
                    champion: ::core::option::Option<$crate::Evaluation>,
                    policy: ::std::string::String,
                ) -> ::core::result::Result<$crate::GateOutcome, $crate::StepError> {
                    let policy = $crate::__private::parse_config::<
                        <$plugin as $crate::Plugin>::Config,
                    >(&policy)?;
                    <$plugin as $crate::Deployer>::decide(candidate, champion, policy)
                }
            }
        );
    };
}

/// Exports a [`DriftCheck`] as the plugin's component exports (`describe` and `check`).
/// Call it once, at the top level of the plugin crate.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// struct Calm;
/// impl Plugin for Calm {
///     type Config = ();
///     const DESCRIPTION: &'static str = "Never drifts";
/// }
/// impl DriftCheck for Calm {
///     fn check(_r: Table, _c: Table, _config: ()) -> Result<DriftOutcome, StepError> {
///         Ok(DriftOutcome { features: Vec::new(), drift_share: 0.0, drifted: false, report: Report::new() })
///     }
/// }
/// wflow_sdk::export_drift_check!(Calm);
/// ```
#[macro_export]
macro_rules! export_drift_check {
    ($plugin:ty) => {
        $crate::__export_step!(
            $plugin,
            DriftCheck,
            check,
            drift_check,
            __export_drift_check_world,
            {
                fn check(
                    reference: $crate::Table,
                    current: $crate::Table,
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::DriftOutcome, $crate::StepError> {
                    let config = $crate::__private::parse_config::<
                        <$plugin as $crate::Plugin>::Config,
                    >(&config)?;
                    <$plugin as $crate::DriftCheck>::check(reference, current, config)
                }
            }
        );
    };
}
