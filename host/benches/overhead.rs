//! Prints the runtime's overhead figures: per-step cost of a trivial plugin (fresh instance,
//! call, teardown, with the plugin already loaded), loading a plugin from the compiled-code
//! cache against compiling it cold, and a 1,000-step fan-out workflow through the engine.
//!
//! Run with `cargo bench -p wflow --bench overhead`. These are figures to read and compare,
//! not pass/fail tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wflow::engine::{self, RunOptions};
use wflow::plugin::{Call, Capabilities, CompiledCache, Limits, Runtime};
use wflow::table::{Column, Table, Values};

fn noop_wasm() -> Vec<u8> {
    let path = PathBuf::from(env!("WFLOW_PLUGIN_ARTIFACTS")).join("noop.wasm");
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let wasm = noop_wasm();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let cache_dir = tempfile::tempdir().expect("temporary directory");

    // Loading: cold compile (empty cache), then from the cache in a fresh runtime.
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..5 {
        let dir = cache_dir.path().join(format!("round-{round}"));
        let runtime = Runtime::new(Some(CompiledCache::new(&dir))).expect("runtime");
        let start = Instant::now();
        tokio.block_on(runtime.load(&wasm)).expect("load");
        cold.push(start.elapsed());
        let runtime = Runtime::new(Some(CompiledCache::new(&dir))).expect("runtime");
        let start = Instant::now();
        let plugin = tokio.block_on(runtime.load(&wasm)).expect("load");
        warm.push(start.elapsed());
        assert_eq!(plugin.cache, wflow::plugin::CacheOutcome::Hit);
    }
    cold.sort();
    warm.sort();
    println!("plugin load (noop, {} KB), median of 5:", wasm.len() / 1024);
    println!(
        "  cold compile:           {:>9.2} ms",
        micros(percentile(&cold, 0.5)) / 1000.0
    );
    println!(
        "  from compiled cache:    {:>9.2} ms",
        micros(percentile(&warm, 0.5)) / 1000.0
    );

    // Per-step overhead: a fresh store and instance per call, as the engine does.
    let runtime =
        Runtime::new(Some(CompiledCache::new(cache_dir.path().join("steps")))).expect("runtime");
    let plugin = tokio.block_on(runtime.load(&wasm)).expect("load");
    let table = Table::new(vec![Column::new("x", Values::Float(vec![1.0; 10]))]).expect("table");
    let limits = Limits::default();
    let capabilities = Capabilities::default();
    let mut samples = tokio.block_on(async {
        let call = || Call::Validate {
            data: table.clone(),
            config: "{}".into(),
        };
        for _ in 0..200 {
            runtime.call(&plugin, call(), &limits, &capabilities).await;
        }
        let mut samples = Vec::with_capacity(5000);
        for _ in 0..5000 {
            let start = Instant::now();
            let execution = runtime.call(&plugin, call(), &limits, &capabilities).await;
            samples.push(start.elapsed());
            assert!(execution.outcome.is_ok());
        }
        samples
    });
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!("trivial step (instantiate + call + teardown), 5000 calls:");
    println!(
        "  mean {:.1} us   p50 {:.1} us   p99 {:.1} us",
        micros(mean),
        micros(percentile(&samples, 0.5)),
        micros(percentile(&samples, 0.99))
    );

    // A 1,000-step fan-out workflow through the engine (plan excluded, run included).
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("d.csv"), "x\n1\n2\n3\n").expect("write data");
    let noop = dir.path().join("noop.wasm");
    std::fs::write(&noop, &wasm).expect("write plugin");
    let mut toml =
        String::from("[workflow]\nname = \"fan-out\"\n\n[datasets.d]\npath = \"d.csv\"\n");
    for i in 0..1000 {
        toml.push_str(&format!(
            "\n[steps.s{i}]\nuses = \"noop.wasm\"\ninputs = {{ data = \"d\" }}\n"
        ));
    }
    let file = dir.path().join("fan-out.toml");
    std::fs::write(&file, &toml).expect("write workflow");
    let runtime = Arc::new(runtime);
    let mut rates = Vec::new();
    for _ in 0..5 {
        let workflow = wflow::workflow::parse(&file, &toml).expect("valid workflow");
        let plan_start = Instant::now();
        let plan = Arc::new(
            tokio
                .block_on(engine::plan(workflow, &runtime))
                .expect("plan"),
        );
        let planned = plan_start.elapsed();
        let start = Instant::now();
        let report = tokio.block_on(engine::run(
            plan,
            runtime.clone(),
            RunOptions::default(),
            None,
        ));
        let elapsed = start.elapsed();
        assert!(report.succeeded());
        rates.push((1000.0 / elapsed.as_secs_f64(), elapsed, planned));
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (rate, elapsed, planned) = rates[rates.len() / 2];
    println!(
        "1,000-step fan-out workflow (median of 5, {} threads):",
        RunOptions::default().concurrency
    );
    println!(
        "  run {:.1} ms = {:.0} steps/s ({:.1} us per step); planning {:.1} ms",
        elapsed.as_secs_f64() * 1000.0,
        rate,
        1e6 / rate,
        planned.as_secs_f64() * 1000.0
    );
}
