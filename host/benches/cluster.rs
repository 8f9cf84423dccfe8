//! Prints the cluster's figures: steps per second through the PostgreSQL queue with 1, 2 and 4
//! `wflow worker` processes, the claim latency (a step queued to a worker taking it, p50/p99,
//! from the queue's own timestamps), and the cost of a step through the queue against the same
//! step run in process on the sled store.
//!
//! Run with `cargo bench -p wflow --bench cluster`. It starts its own PostgreSQL (Debian's
//! package, fsync on as in production) on loopback. The workload is a fan-out of 100 `noop`
//! steps (no work of their own), so the figures are the queue's and the engine's overhead.
//! These are figures to read and compare, not pass/fail tests.

#[path = "../src/store/pg_server.rs"]
mod pg_server;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STEPS: usize = 100;
const RUNS: usize = 3;

fn workflow(dir: &Path) -> std::path::PathBuf {
    let noop = Path::new(env!("WFLOW_PLUGIN_ARTIFACTS")).join("noop.wasm");
    std::fs::copy(&noop, dir.join("noop.wasm")).expect("copy noop");
    std::fs::write(dir.join("rows.csv"), "a\n1\n2\n3\n").expect("data");
    let mut text = String::from(
        "[workflow]\nname = \"fan-out\"\nconcurrency = 32\n\n[datasets.data]\npath = \"rows.csv\"\n",
    );
    for i in 0..STEPS {
        text.push_str(&format!(
            "\n[steps.s{i}]\nuses = \"noop.wasm\"\ninputs = {{ data = \"data\" }}\ncache = false\nwith = {{ sleep_ms = 0 }}\n"
        ));
    }
    let path = dir.join("fan-out.toml");
    std::fs::write(&path, text).expect("workflow");
    path
}

/// A workflow of one `noop` step: what an idle cluster's dispatch latency is measured on.
fn single_step(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("one-step.toml");
    std::fs::write(
        &path,
        "[workflow]\nname = \"one-step\"\n\n[datasets.data]\npath = \"rows.csv\"\n\n[steps.only]\nuses = \"noop.wasm\"\ninputs = { data = \"data\" }\ncache = false\n",
    )
    .expect("workflow");
    path
}

fn wflow(dir: &Path, url: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wflow"));
    command
        .args(args)
        .current_dir(dir)
        .env("WFLOW_CACHE_DIR", dir.join("cache"))
        .env("WFLOW_DATA_DIR", dir.join("data"))
        .env_remove("RUST_LOG");
    match url {
        Some(url) => {
            command.env("WFLOW_STORE", url).env(
                "WFLOW_ARTIFACTS",
                format!("file://{}/objects", dir.display()),
            );
        }
        None => {
            command.env_remove("WFLOW_STORE");
        }
    }
    command
}

/// Runs the workflow once; returns its wall time.
fn run(dir: &Path, url: Option<&str>, file: &Path, on_workers: bool) -> Duration {
    let mut args = vec!["run", file.to_str().unwrap(), "--json"];
    if on_workers {
        args.extend(["--execute", "workers"]);
    }
    let started = Instant::now();
    let output = wflow(dir, url, &args).output().expect("wflow run");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

fn start_worker(dir: &Path, url: &str) -> Child {
    let mut child = wflow(
        dir,
        Some(url),
        &["worker", "--concurrency", "2", "--lease", "30s"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("wflow worker");
    // Up once it says so.
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).expect("worker output");
    assert!(line.contains("wflow worker"), "{line}");
    std::thread::spawn(move || for _ in reader.lines() {});
    child
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn claim_latencies(url: &str) -> Vec<f64> {
    let server_bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path().join("bin/psql"))
        .expect("psql");
    let output = Command::new(server_bin)
        .args(["-At", url, "-c"])
        .arg(
            "SELECT extract(epoch FROM claimed - created) * 1000 FROM wflow_tasks WHERE claims = 1",
        )
        .output()
        .expect("psql");
    let mut values: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values
}

fn main() {
    let server = pg_server::PgServer::start(true);
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = workflow(dir.path());

    // In process on sled: the reference.
    let sled_dir = dir.path().join("sled");
    std::fs::create_dir_all(&sled_dir).unwrap();
    run(&sled_dir, None, &file, false);
    let mut local = Vec::new();
    for _ in 0..RUNS {
        local.push(run(&sled_dir, None, &file, false).as_secs_f64());
    }
    local.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let local_median = local[RUNS / 2];
    println!(
        "fan-out of {STEPS} noop steps, median of {RUNS} runs (wall time of `wflow run`, process start included)"
    );
    println!(
        "  in process, sled:           {:>7.0} ms  ({:.2} ms per step, {:>6.0} steps/s)",
        local_median * 1000.0,
        local_median * 1000.0 / STEPS as f64,
        STEPS as f64 / local_median
    );

    for workers in [1, 2, 4] {
        let url = server.new_database();
        let home = dir.path().join(format!("workers-{workers}"));
        std::fs::create_dir_all(&home).unwrap();
        let mut children: Vec<Child> = (0..workers).map(|_| start_worker(&home, &url)).collect();
        // A first run warms the workers' compiled-code caches.
        run(&home, Some(&url), &file, true);
        let mut walls = Vec::new();
        for _ in 0..RUNS {
            walls.push(run(&home, Some(&url), &file, true).as_secs_f64());
        }
        walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = walls[RUNS / 2];
        let claims = claim_latencies(&url);
        println!(
            "  {workers} worker(s) x 2, queue: {:>7.0} ms  ({:.2} ms per step, {:>6.0} steps/s); claim latency p50 {:.2} ms, p99 {:.2} ms ({} steps)",
            median * 1000.0,
            median * 1000.0 / STEPS as f64,
            STEPS as f64 / median,
            percentile(&claims, 0.5),
            percentile(&claims, 0.99),
            claims.len()
        );
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    // An idle cluster: a step queued while a worker waits is taken after a notification.
    let url = server.new_database();
    let home = dir.path().join("idle");
    std::fs::create_dir_all(&home).unwrap();
    let single = single_step(dir.path());
    let mut worker = start_worker(&home, &url);
    run(&home, Some(&url), &single, true);
    let mut walls = Vec::new();
    for _ in 0..30 {
        walls.push(run(&home, Some(&url), &single, true).as_secs_f64() * 1000.0);
    }
    walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let claims = claim_latencies(&url);
    println!(
        "  idle worker, one-step runs:  queued to claimed p50 {:.2} ms, p99 {:.2} ms ({} steps); whole `wflow run` p50 {:.0} ms",
        percentile(&claims, 0.5),
        percentile(&claims, 0.99),
        claims.len(),
        percentile(&walls, 0.5)
    );
    let _ = worker.kill();
    let _ = worker.wait();
    server.stop();
}
