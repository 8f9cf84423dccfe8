//! Loading plugins: contract versions, kinds, the compiled-code cache, capabilities.

use std::time::Duration;

use wflow::plugin::{
    CacheOutcome, Call, Capabilities, CompiledCache, DirGrant, Error, Failure, Limits, Output,
    Runtime, StepKind,
};
use wflow::table::{Column, Table, Values};

use crate::support;

#[test]
fn a_plugin_of_another_major_contract_is_refused_naming_both_versions() {
    let (runtime, _dir) = support::runtime();
    let err = support::block_on(runtime.load(&support::wasm("future-version"))).unwrap_err();
    assert!(matches!(err, Error::IncompatibleContract { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("wflow:plugin@0.2.0")
            && message.contains(&format!("wflow:plugin@{}", wflow::plugin::CONTRACT_VERSION)),
        "{message}"
    );
}

#[test]
fn a_plugin_built_against_the_previous_minor_contract_keeps_working() {
    let (runtime, _dir) = support::runtime();
    let plugin = support::load(&runtime, "contract-0-1-0");
    assert_eq!(plugin.contract.to_string(), "0.1.0");
    assert_ne!(plugin.contract.to_string(), wflow::plugin::CONTRACT_VERSION);
    let table = Table::new(vec![Column::new("x", Values::Float(vec![1.0, 2.0, 3.0]))]).unwrap();
    let call = Call::Validate {
        data: table,
        config: "{}".into(),
    };
    let execution = support::block_on(runtime.call(
        &plugin,
        call,
        &Limits::default(),
        &Capabilities::default(),
    ));
    let Ok(Output::Report(report)) = &execution.outcome else {
        panic!("{:?}", execution.outcome)
    };
    assert_eq!(report.findings[0].message, "3 rows, 0 null in `x`");
    assert!(
        execution
            .log
            .iter()
            .any(|line| line.message.contains("counted")),
        "{:?}",
        execution.log
    );
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let (runtime, _dir) = support::runtime();
    let err = support::block_on(runtime.load(b"\0asm definitely not a component")).unwrap_err();
    assert!(matches!(err, Error::Compile(_)), "{err}");
}

#[test]
fn builtin_plugins_describe_themselves_with_the_right_kind() {
    let (runtime, _dir) = support::runtime();
    let expected = [
        ("schema-check", StepKind::Validator),
        ("train-test-split", StepKind::Transformer),
        ("impute", StepKind::Transformer),
        ("standard-scaler", StepKind::Transformer),
        ("one-hot-encode", StepKind::Transformer),
        ("bucketize", StepKind::Transformer),
        ("mlp", StepKind::Trainer),
        ("logistic-regression", StepKind::Trainer),
        ("linear-regression", StepKind::Trainer),
        ("classification-metrics", StepKind::Evaluator),
        ("deployment-gate", StepKind::Deployer),
        ("psi-drift", StepKind::DriftCheck),
    ];
    for (name, kind) in expected {
        let plugin = support::block_on(wflow::engine::plan::load_plugin(&runtime, name)).unwrap();
        assert_eq!(plugin.info.name, name);
        assert_eq!(plugin.kind(), kind, "{name}");
        assert_eq!(
            plugin.config_schema["type"], "object",
            "{name} has an object schema"
        );
        assert!(!plugin.info.description.is_empty());
    }
}

#[test]
fn compiled_code_is_cached_and_a_corrupt_entry_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("compiled");
    let wasm = support::wasm("noop");

    let first = Runtime::new(Some(CompiledCache::new(&cache_dir))).unwrap();
    assert_eq!(
        support::block_on(first.load(&wasm)).unwrap().cache,
        CacheOutcome::Compiled
    );
    let second = Runtime::new(Some(CompiledCache::new(&cache_dir))).unwrap();
    assert_eq!(
        support::block_on(second.load(&wasm)).unwrap().cache,
        CacheOutcome::Hit
    );

    drop((first, second));
    for entry in std::fs::read_dir(&cache_dir).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = Runtime::new(Some(CompiledCache::new(&cache_dir))).unwrap();
    let plugin = support::block_on(third.load(&wasm)).unwrap();
    assert_eq!(plugin.cache, CacheOutcome::Compiled);
    let table = Table::new(vec![Column::new("x", Values::Float(vec![1.0]))]).unwrap();
    let call = Call::Validate {
        data: table,
        config: "{}".into(),
    };
    let execution =
        support::block_on(third.call(&plugin, call, &Limits::default(), &Capabilities::default()));
    assert!(execution.outcome.is_ok(), "{:?}", execution.outcome);
}

#[test]
fn a_compiled_entry_is_not_run_under_another_components_name_or_when_others_may_write_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("compiled");
    let noop = support::wasm("noop");
    let other = support::wasm("needs-read");
    let runtime = Runtime::new(Some(CompiledCache::new(&cache_dir))).unwrap();
    support::block_on(runtime.load(&noop)).unwrap();
    let noop_entries: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    support::block_on(runtime.load(&other)).unwrap();
    drop(runtime);
    let other_entry = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !noop_entries.contains(p))
        .unwrap();
    // Another component's compiled code put under noop's name: not run, recompiled.
    std::fs::copy(&other_entry, &noop_entries[0]).unwrap();
    let runtime = Runtime::new(Some(CompiledCache::new(&cache_dir))).unwrap();
    let plugin = support::block_on(runtime.load(&noop)).unwrap();
    assert_eq!(plugin.cache, CacheOutcome::Compiled);
    assert_eq!(plugin.info.name, "noop");
    drop(runtime);
    // An entry others may write is not run either.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&noop_entries[0], std::fs::Permissions::from_mode(0o666)).unwrap();
        let runtime = Runtime::new(Some(CompiledCache::new(&cache_dir))).unwrap();
        let plugin = support::block_on(runtime.load(&noop)).unwrap();
        assert_eq!(plugin.cache, CacheOutcome::Compiled);
        let mode = std::fs::metadata(&cache_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the cache directory is private");
    }
}

#[test]
fn requested_capabilities_must_be_granted() {
    let (runtime, dir) = support::runtime();
    let plugin = support::load(&runtime, "needs-read");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("hello.txt"), "hello from the host").unwrap();
    let table = Table::new(vec![Column::new("x", Values::Float(vec![1.0]))]).unwrap();
    let call = || Call::Validate {
        data: table.clone(),
        config: serde_json::json!({"file": "hello.txt"}).to_string(),
    };
    let limits = Limits {
        timeout: Duration::from_secs(10),
        ..Limits::default()
    };

    let denied =
        support::block_on(runtime.call(&plugin, call(), &limits, &Capabilities::default()));
    let Err(Failure::NotGranted(message)) = &denied.outcome else {
        panic!("{:?}", denied.outcome)
    };
    assert!(message.contains("/data"), "{message}");

    let granted = Capabilities {
        dirs: vec![DirGrant {
            host: data_dir.clone(),
            guest: "/data".into(),
            writable: false,
        }],
        ..Capabilities::default()
    };
    let execution = support::block_on(runtime.call(&plugin, call(), &limits, &granted));
    let Ok(Output::Report(report)) = &execution.outcome else {
        panic!("{:?}", execution.outcome)
    };
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message.contains("hello from the host")),
        "{report:?}"
    );
}
