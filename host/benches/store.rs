//! Prints the store's figures: recording 10,000 runs (8 steps each) and listing them, the cost
//! of a step-cache hit against running the step, and the store's size per run.
//!
//! Run with `cargo bench -p wflow --bench store`. Figures to read and compare, not pass/fail
//! tests; the target for listing 10,000 runs is 100 ms.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wflow::engine::{self, RunOptions, RunReport};
use wflow::plugin::{CompiledCache, Runtime};
use wflow::store::{
    LogRecord, RunFilter, RunJournal, RunStatus, StepRecord, StepStatus, Store, Transition, now,
};

const RUNS: u64 = 10_000;
const STEPS: u32 = 8;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// A step record as a typical run writes one: a few inputs, outputs and metrics.
fn step(run: u64, index: u32) -> StepRecord {
    serde_json::from_value(serde_json::json!({
        "run": run, "index": index, "id": format!("step-{index}"), "kind": "trainer",
        "plugin": "logistic-regression@0.1.0",
        "plugin_digest": "sha256:4d1b2337dc62e1b6f1a6b5ee1cc7f4b5c1e54a9b4f1c0f1e0d9c8b7a6f5e4d3c",
        "config": {"search": {"c": [0.01, 0.1, 1.0, 10.0], "folds": 5}},
        "target": "malignant",
        "inputs": [{"slot": "data", "source": "split.train",
                    "digest": "sha256:92dcbc2de8b6aa5b8e0d1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"}],
        "cache_key": format!("sha256:{:064x}", run * 100 + index as u64),
        "status": "succeeded",
        "transitions": [{"status": "running", "at": now()}, {"status": "succeeded", "at": now()}],
        "attempts": 1, "duration_ms": 36,
        "outputs": [{"name": "model", "kind": "model",
                     "digest": "sha256:aa2cbe57e8c8aa5b8e0d1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e",
                     "onnx": "sha256:1df53beac46daa5b8e0d1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"}],
        "metrics": [["train_accuracy", 0.9883], ["cv_score", 0.979], ["iterations", 29.0]],
    }))
    .expect("a valid step record")
}

fn record_runs(dir: &Path) -> (Duration, Duration, Duration, u64, u64) {
    let store = Store::open(dir).expect("store");
    let steps: Vec<String> = (0..STEPS).map(|i| format!("step-{i}")).collect();
    let start = Instant::now();
    for _ in 0..RUNS {
        let run = store
            .create_run(
                "breast-cancer",
                Path::new("workflows/breast-cancer.toml"),
                b"[workflow]\nname = \"breast-cancer\"\n",
                steps.clone(),
                false,
            )
            .expect("run");
        for index in 0..STEPS {
            let mut record = step(run.id, index);
            record.transitions.push(Transition {
                status: StepStatus::Succeeded,
                at: now(),
                note: None,
            });
            store
                .finish_step(&record, &LogRecord::default(), true)
                .expect("step");
        }
        store
            .set_run_status(run.id, RunStatus::Succeeded, None)
            .expect("status");
    }
    let recorded = start.elapsed();

    let mut lists = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let runs = store.list_runs(&RunFilter::default()).expect("list");
        lists.push(start.elapsed());
        assert_eq!(runs.len() as u64, RUNS);
    }
    lists.sort();
    let start = Instant::now();
    let page = store
        .list_runs(&RunFilter {
            limit: Some(20),
            ..RunFilter::default()
        })
        .expect("list");
    let first_page = start.elapsed();
    assert_eq!(page.len(), 20);
    let (db, artifacts) = store.size();
    (
        recorded,
        lists[2],
        first_page,
        db + artifacts,
        store.record_bytes(),
    )
}

fn run_workflow(
    runtime: &Arc<Runtime>,
    store: &Arc<Store>,
    file: &Path,
    tokio: &tokio::runtime::Runtime,
) -> RunReport {
    let source = std::fs::read_to_string(file).expect("workflow");
    let workflow = wflow::workflow::parse(file, &source).expect("valid workflow");
    tokio.block_on(async {
        let plan = engine::plan(workflow, runtime).await.expect("plan");
        let steps = plan.steps.iter().map(|s| s.step.id.clone()).collect();
        let run = store
            .create_run(&plan.workflow.name, file, source.as_bytes(), steps, false)
            .expect("run");
        let journal = RunJournal::new(store.clone(), run.id, false, Default::default());
        let options = RunOptions {
            journal: Some(Arc::new(journal)),
            run: Some(run.id),
            ..RunOptions::default()
        };
        let report = engine::run(Arc::new(plan), runtime.clone(), options, None).await;
        store
            .set_run_status(run.id, RunStatus::Succeeded, None)
            .expect("status");
        report
    })
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (recorded, list_all, first_page, size, records) =
        record_runs(&dir.path().join("synthetic"));
    println!("run history ({RUNS} runs x {STEPS} steps, sled):");
    println!(
        "  record:                 {:>9.1} ms total, {:.3} ms per run",
        millis(recorded),
        millis(recorded) / RUNS as f64
    );
    println!(
        "  list all {RUNS} runs:     {:>9.1} ms (median of 5; target <= 100 ms)",
        millis(list_all)
    );
    println!("  list newest 20:         {:>9.3} ms", millis(first_page));
    println!(
        "  records:                {:>9.1} MB, {:.1} KB per run (run + 8 step records + logs + cache entries)",
        megabytes(records),
        records as f64 / RUNS as f64 / 1e3
    );
    println!(
        "  size on disk:           {:>9.1} MB, {:.1} KB per run (sled's log-structured files, before it reclaims space)",
        megabytes(size),
        size as f64 / RUNS as f64 / 1e3
    );

    // The step cache on the breast-cancer example: a first run computes and stores every
    // step; the next ones reuse them.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo");
    let file = repo.join("workflows/breast-cancer.toml");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Arc::new(
        Runtime::new(Some(CompiledCache::new(dir.path().join("compiled")))).expect("runtime"),
    );
    let store = Arc::new(Store::open(dir.path().join("real")).expect("store"));
    let first = run_workflow(&runtime, &store, &file, &tokio);
    let (db_first, artifacts_first) = store.size();
    let mut cached_runs = Vec::new();
    let mut reused = 0;
    for _ in 0..20 {
        let start = Instant::now();
        let report = run_workflow(&runtime, &store, &file, &tokio);
        cached_runs.push(start.elapsed());
        reused = report.steps.iter().filter(|s| s.reused.is_some()).count();
    }
    cached_runs.sort();
    let computed: Duration = first.steps.iter().map(|s| s.duration).sum();
    let (db_all, artifacts_all) = store.size();
    let records_all = store.record_bytes();
    println!(
        "step cache (breast-cancer example, {} steps, {reused} reusable):",
        first.steps.len()
    );
    println!(
        "  first run, steps computed:      {:>8.1} ms of step time",
        millis(computed)
    );
    println!(
        "  cached run, whole workflow:     {:>8.1} ms (median of 20), {:.2} ms per reused step",
        millis(cached_runs[10]),
        millis(cached_runs[10]) / reused.max(1) as f64
    );
    println!(
        "  store after the first run:      {:>8.2} MB artifacts (datasets, splits, model, reports), {:.2} MB database",
        megabytes(artifacts_first),
        megabytes(db_first)
    );
    println!(
        "  each further (cached) run adds: {:>8.1} KB artifacts, {:.1} KB database on disk",
        (artifacts_all - artifacts_first) as f64 / 20.0 / 1e3,
        (db_all.saturating_sub(db_first)) as f64 / 20.0 / 1e3
    );
    println!(
        "  records of all 21 runs:         {:>8.1} KB per run",
        records_all as f64 / 21.0 / 1e3
    );
}
