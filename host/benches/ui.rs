//! Prints how long the web UI takes to render its pages server-side on a big store: the runs
//! page (first and last pages, a filter) with 10,000 runs, a run's page with its DAG, and the
//! models page, each through the router without a socket.
//!
//! Run with `cargo bench -p wflow --bench ui`. Figures to read and compare, not pass/fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use wflow::serve::StoreAccess;
use wflow::store::{RunStatus, Store};
use wflow::ui::{Ui, router};

const RUNS: usize = 10_000;

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(Store::open(dir.path().join("store")).expect("store"));
    let started = Instant::now();
    for i in 0..RUNS {
        let workflow = ["breast-cancer", "iris", "diabetes"][i % 3];
        let run = store
            .create_run(
                workflow,
                std::path::Path::new("w.toml"),
                b"[workflow]\nname = \"w\"\n",
                vec!["validate".into(), "train".into()],
                false,
            )
            .expect("run");
        let status = if i % 7 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        store.set_run_status(run.id, status, None).expect("status");
    }
    println!(
        "{RUNS} runs written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let app = router(Ui {
        store: StoreAccess::Shared(store),
        scheduler: None,
        server: None,
        token: None,
        open_reads: true,
        sessions: Default::default(),
    });
    for path in [
        "/ui/runs",
        "/ui/runs?page=10",
        "/ui/runs?workflow=iris&status=failed",
        "/ui/runs/5000",
        "/ui/models",
    ] {
        let mut samples: Vec<Duration> = (0..60)
            .map(|_| {
                let request = Request::get(path).body(Body::empty()).expect("request");
                let started = Instant::now();
                let response = tokio
                    .block_on(app.clone().oneshot(request))
                    .expect("answer");
                let body = tokio
                    .block_on(axum::body::to_bytes(response.into_body(), 1 << 26))
                    .expect("body");
                assert!(!body.is_empty());
                started.elapsed()
            })
            .skip(10)
            .collect();
        samples.sort();
        println!(
            "  {path:<40} p50 {:>7.2} ms   p99 {:>7.2} ms",
            samples[samples.len() / 2].as_secs_f64() * 1000.0,
            samples[samples.len() * 99 / 100].as_secs_f64() * 1000.0
        );
    }
}
