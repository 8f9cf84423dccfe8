//! The wit-bindgen guest bindings of the plugin contract (`../wit`), generated once for the whole SDK.
//!
//! The shared interfaces (`types`, `host`, `inference`, `preprocessing`) are generated a single time from the
//! `host-imports` world; every step world maps them onto that one module with `with:`, so all
//! six worlds use the same Rust `Table`, `Model`, `Report`... Each step world gets its own module
//! holding its `Guest` trait and a public export macro that plugin crates reach through the SDK's
//! `export_*!` macros. Nothing here is meant to be used by plugin authors directly: the public,
//! documented names are re-exported from the crate root.
//!
//! Plugins never depend on wit-bindgen themselves: the generated code finds the runtime through
//! `::wflow_sdk::__wit_bindgen`.

#![allow(missing_docs)]
#![allow(clippy::all)]

wit_bindgen::generate!({
    path: "../wit",
    world: "host-imports",
    runtime_path: "::wflow_sdk::__wit_bindgen::rt",
    additional_derives: [PartialEq],
});

pub use self::wflow::plugin::{host, inference, model_builder, preprocessing, types};

/// Generates one step world's module, mapping the shared interfaces onto [`types`], [`host`]
/// and [`inference`] (and any other the world imports, given after the names) so that no type
/// is generated twice.
macro_rules! step_world {
    ($module:ident, $world:tt, $macro_name:tt, $bindings_module:tt $(, $iface:tt => $path:path)*) => {
        pub mod $module {
            wit_bindgen::generate!({
                path: "../wit",
                world: $world,
                with: {
                    "wflow:plugin/types@0.1.3": crate::bindings::types,
                    "wflow:plugin/host@0.1.3": crate::bindings::host,
                    "wflow:plugin/inference@0.1.3": crate::bindings::inference,
                    $($iface: $path,)*
                },
                runtime_path: "::wflow_sdk::__wit_bindgen::rt",
                additional_derives: [PartialEq],
                pub_export_macro: true,
                export_macro_name: $macro_name,
                default_bindings_module: $bindings_module,
            });
        }
    };
}

step_world!(
    validator,
    "validator",
    "__export_validator_world",
    "::wflow_sdk::bindings::validator"
);
step_world!(
    transformer,
    "transformer",
    "__export_transformer_world",
    "::wflow_sdk::bindings::transformer",
    "wflow:plugin/preprocessing@0.1.3" => crate::bindings::preprocessing
);
step_world!(
    trainer,
    "trainer",
    "__export_trainer_world",
    "::wflow_sdk::bindings::trainer",
    "wflow:plugin/model-builder@0.1.3" => crate::bindings::model_builder
);
step_world!(
    evaluator,
    "evaluator",
    "__export_evaluator_world",
    "::wflow_sdk::bindings::evaluator"
);
step_world!(
    deployer,
    "deployer",
    "__export_deployer_world",
    "::wflow_sdk::bindings::deployer"
);
step_world!(
    drift_check,
    "drift-check",
    "__export_drift_check_world",
    "::wflow_sdk::bindings::drift_check"
);
