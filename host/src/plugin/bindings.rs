//! The `bindgen!` calls, and nothing else: host-side bindings of `wit/`.
//!
//! The shared interfaces (`types`, `host`, `inference`, `preprocessing`,
//! `model-builder`) are generated once from the
//! `host-imports` world; each step world reuses them through `with`, so a `Report` or a
//! `Model` is the same Rust type whichever kind of plugin produced it. The `table` and
//! `session` resources are backed by the host's own types.

wasmtime::component::bindgen!({
    world: "host-imports",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    // Reports, models' metadata, evaluations and decisions are stored as JSON.
    additional_derives: [serde::Serialize, serde::Deserialize],
    with: {
        "wflow:plugin/types.table": crate::table::Table,
        "wflow:plugin/inference.session": crate::inference::Session,
    },
});

macro_rules! step_world {
    ($module:ident, $world:literal $(, $iface:literal => $path:path)*) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../wit",
                imports: { default: async | trappable },
                exports: { default: async },
                with: {
                    "wflow:plugin/types": super::wflow::plugin::types,
                    "wflow:plugin/host": super::wflow::plugin::host,
                    "wflow:plugin/inference": super::wflow::plugin::inference,
                    $($iface: $path,)*
                },
            });
        }
    };
}

step_world!(validator, "validator");
step_world!(
    transformer,
    "transformer",
    "wflow:plugin/preprocessing" => super::wflow::plugin::preprocessing
);
step_world!(
    trainer,
    "trainer",
    "wflow:plugin/model-builder" => super::wflow::plugin::model_builder
);
step_world!(evaluator, "evaluator");
step_world!(deployer, "deployer");
step_world!(drift_check, "drift-check");

pub use self::wflow::plugin::types;
