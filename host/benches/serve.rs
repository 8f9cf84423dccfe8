//! A load generator for `wflow serve`, and the figures it measures, on loopback:
//!
//! 1. Throughput and latency with everything on: the breast-cancer model trained and gated by
//!    a workflow (the real `wflow` binary), served from the registry with a challenger in a 10%
//!    canary (routing, per-arm accounting and the rollback guard on every request), monitoring
//!    windows recording every row, Prometheus metrics. Clients keep their HTTP/1.1 connections
//!    alive and send Open Inference Protocol requests one after another, a fixed number each:
//!    one row per request, then 100-row batches.
//! 2. Raw rows: the penguins workflow (text categories, missing values; imputation and one-hot
//!    encoding recorded with the version) served from the registry; the same 1-row and 100-row
//!    loads as raw columns over the Open Inference Protocol and as MLflow's `dataframe_split`
//!    on `/invocations`, and the preprocessing's own cost per row, in process.
//! 3. Rollback reaction: a challenger that fails every request is deployed as a canary; the
//!    figures are the time and the number of failed requests from the first failure to the
//!    rollback, after which every request is answered by the champion.
//! 4. `mlflow models serve` on the same scikit-learn pipeline (saved as an MLflow model, and
//!    exported with skl2onnx for wflow), when MLflow can be installed from the package index
//!    into a cache directory (`WFLOW_BENCH_VENV`, default ~/.cache/wflow/bench-venv); bounded
//!    to 2,000 requests or 30 s. `WFLOW_BENCH_NO_MLFLOW=1` leaves it out.
//!
//! Run with `cargo bench -p wflow --bench serve`. Figures to read, not pass/fail tests; the
//! targets are p50 <= 150 us, p99 <= 1 ms, >= 25,000 requests/s for one row per request, and
//! >= 300,000 rows/s in 100-row batches.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wflow::serve::policy::Policy;
use wflow::serve::{ModelSource, ServeConfig, Server, StoreAccess};

/// Connections sending at once.
const CONNECTIONS: usize = 4;
/// Requests per connection, per measurement.
const REQUESTS: usize = 5_000;

/// One keep-alive connection speaking just enough HTTP/1.1 for the protocol's requests.
struct Connection {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Connection {
    async fn open(address: SocketAddr, path: &str, body: &str) -> Connection {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Connection {
            reader: BufReader::new(stream),
            request: request.into_bytes(),
        }
    }

    /// Sends the request and reads the whole answer; returns its status.
    async fn exchange(&mut self) -> u16 {
        self.reader
            .get_mut()
            .write_all(&self.request)
            .await
            .expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).await.expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.expect("body");
        status
    }
}

/// What one measurement saw.
struct Load {
    latencies: Vec<Duration>,
    wall: Duration,
    failed: usize,
}

/// Runs `CONNECTIONS` x `requests` exchanges (fewer when `cap` passes first).
async fn load(address: SocketAddr, path: &str, body: &str, requests: usize, cap: Duration) -> Load {
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let (path, body) = (path.to_string(), body.to_string());
        clients.push(tokio::spawn(async move {
            let mut connection = Connection::open(address, &path, &body).await;
            let mut latencies = Vec::with_capacity(requests);
            let mut failed = 0;
            for _ in 0..requests {
                let start = Instant::now();
                if connection.exchange().await != 200 {
                    failed += 1;
                }
                latencies.push(start.elapsed());
                if started.elapsed() > cap {
                    break;
                }
            }
            (latencies, failed)
        }));
    }
    let mut all = Load {
        latencies: Vec::new(),
        wall: Duration::ZERO,
        failed: 0,
    };
    for client in clients {
        let (latencies, failed) = client.await.expect("client");
        all.latencies.extend(latencies);
        all.failed += failed;
    }
    all.wall = started.elapsed();
    all
}

fn body(rows: &[Vec<f64>], input: &str) -> String {
    serde_json::json!({
        "inputs": [{
            "name": input,
            "shape": [rows.len(), rows[0].len()],
            "datatype": "FP32",
            "data": rows,
        }],
        "outputs": [{ "name": "probabilities" }],
    })
    .to_string()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints a measurement; returns (p50, p99, requests/s).
fn report(what: &str, rows: usize, mut load: Load) -> (f64, f64, f64) {
    assert_eq!(load.failed, 0, "{what}: {} requests failed", load.failed);
    load.latencies.sort();
    let at = |p: f64| load.latencies[((load.latencies.len() - 1) as f64 * p).round() as usize];
    let requests = load.latencies.len() as f64 / load.wall.as_secs_f64();
    println!(
        "  {what:<34} p50 {:>9.1} us   p99 {:>9.1} us   {:>8.0} requests/s   {:>9.0} rows/s",
        micros(at(0.5)),
        micros(at(0.99)),
        requests,
        requests * rows as f64
    );
    (micros(at(0.5)), micros(at(0.99)), requests)
}

/// Runs the `wflow` binary in `dir`; panics with its output when it fails.
fn wflow(dir: &Path, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(args)
        .current_dir(dir)
        .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
        .env_remove("WFLOW_DATA_DIR")
        .output()
        .expect("the wflow binary runs");
    assert!(
        output.status.success(),
        "wflow {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Trains, gates and registers a version of `bc` with this trainer and gate configuration.
fn train(dir: &Path, train: &str, gate: &str) {
    let workflow = format!(
        r#"
[workflow]
name = "bc"
[datasets.cancer]
path = "data/breast_cancer.csv"
[steps.split]
uses = "train-test-split"
inputs = {{ data = "cancer" }}
with = {{ test_fraction = 0.25, seed = 42, stratify = "malignant" }}
[steps.train]
uses = "logistic-regression"
inputs = {{ data = "split.train" }}
target = "malignant"
with = {train}
[steps.evaluate]
uses = "classification-metrics"
inputs = {{ model = "train.model", data = "split.test" }}
[steps.gate]
uses = "deployment-gate"
inputs = {{ candidate = "evaluate.evaluation" }}
with = {gate}
[steps.register]
uses = "register-model"
inputs = {{ model = "train.model", data = "split.train", evaluation = "evaluate.evaluation", decision = "gate.decision" }}
with = {{ name = "bc" }}
"#
    );
    std::fs::write(dir.join("bc.toml"), workflow).expect("write the workflow");
    wflow(dir, &["run", "bc.toml"]);
}

/// Starts a server in this process; returns its address, its state and its stop switch.
fn start(
    tokio: &tokio::runtime::Runtime,
    config: ServeConfig,
) -> (
    SocketAddr,
    Arc<Server>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (sender, receiver) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio.spawn(wflow::serve::run(
        config,
        move |address, server| {
            sender
                .send((address, server.clone()))
                .expect("report the address")
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let (address, server) = receiver.recv().expect("the server listens");
    (address, server, stop, task)
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let dir = tempfile::tempdir().expect("temporary directory");
    let project = dir.path();
    let data_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workflows/data/breast_cancer.csv");
    std::fs::create_dir_all(project.join("data")).expect("data directory");
    std::fs::copy(&data_file, project.join("data/breast_cancer.csv")).expect("copy the data");
    train(project, "{}", r#"{ no_champion = "promote" }"#);
    train(
        project,
        "{}",
        r#"{ no_champion = "canary", canary_percent = 10 }"#,
    );

    // The canary stays at 10% for the whole measurement: it is neither ramped nor promoted,
    // but every request is routed, counted per arm and reviewed by the rollback guard.
    let policy = Policy::parse("[rollout]\nstep_requests = 1000000000\nauto_promote = false\n")
        .expect("policy");
    let mut config = ServeConfig::new(
        vec![ModelSource::Registry {
            reference: "bc".into(),
        }],
        StoreAccess::OnDemand(project.join(".wflow")),
    );
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.policy = policy;
    config.watch = Some(Duration::from_millis(100));
    let (address, server, stop, task) = start(&tokio, config);

    let table = wflow::table::csv::read(&data_file, &Default::default()).expect("data");
    let deployment = server.deployment("bc").expect("deployed");
    let rows: Vec<Vec<f64>> = (0..100)
        .map(|row| {
            deployment
                .champion
                .features
                .iter()
                .map(|f| {
                    table
                        .column(f)
                        .expect("feature")
                        .f64_at(row)
                        .expect("value")
                })
                .collect()
        })
        .collect();
    println!(
        "wflow serve on loopback, {CONNECTIONS} keep-alive connections x {REQUESTS} requests; breast-cancer logistic regression v1, v2 in a 10% canary, windows and metrics on:"
    );
    let path = "/v2/models/bc/infer";
    let one = body(&rows[..1], "features");
    let hundred = body(&rows, "features");
    let cap = Duration::from_secs(60);
    let mut events = server.subscribe();
    tokio.block_on(load(address, path, &one, REQUESTS, cap)); // warm-up
    // The first drift check of each version runs as soon as its window has rows (later ones
    // every 30 s); it loads the drift plugin once. The measurements start after it.
    tokio.block_on(async {
        let mut checked = 0;
        while checked < 2 {
            let event = events.recv().await.expect("events");
            if event.kind == "drift" {
                checked += 1;
            }
        }
    });
    report(
        "1 row per request",
        1,
        tokio.block_on(load(address, path, &one, REQUESTS, cap)),
    );
    report(
        "100 rows per request",
        100,
        tokio.block_on(load(address, path, &hundred, REQUESTS / 5, cap)),
    );
    let status = server.deployment("bc").expect("deployed").status();
    println!(
        "  canary share answered by v2: {} of {} requests",
        status["challenger"]["stats"]["requests"],
        status["champion"]["stats"]["requests"]
            .as_u64()
            .unwrap_or(0)
            + status["challenger"]["stats"]["requests"]
                .as_u64()
                .unwrap_or(0)
    );

    raw_rows(&tokio, project);
    rollback_reaction(&tokio, project, &server, address, &rows);
    let _ = stop.send(());
    tokio.block_on(task).expect("server task").expect("server");

    if std::env::var_os("WFLOW_BENCH_NO_MLFLOW").is_some() {
        println!("mlflow models serve: not measured (WFLOW_BENCH_NO_MLFLOW is set)");
        return;
    }
    match mlflow_comparison(&tokio, project, &data_file) {
        Ok(((mlflow_p99, mlflow_rps), (wflow_p99, wflow_rps))) => println!(
            "  on the same pipeline wflow serves {:.0}x the requests/s of mlflow models serve, with a {:.0}x lower p99",
            wflow_rps / mlflow_rps,
            mlflow_p99 / wflow_p99
        ),
        Err(reason) => println!("mlflow models serve: not measured ({reason})"),
    }
}

/// A raw cell as JSON: null for a null, its type otherwise.
fn raw_cell(table: &wflow::table::Table, column: &str, row: usize) -> serde_json::Value {
    let column = table.column(column).expect("a raw input");
    if column.is_null(row) {
        return serde_json::Value::Null;
    }
    match column.values() {
        wflow::table::Values::Text(v) => serde_json::json!(v[row]),
        wflow::table::Values::Integer(v) => serde_json::json!(v[row]),
        wflow::table::Values::Float(v) => serde_json::json!(v[row]),
        wflow::table::Values::Boolean(v) => serde_json::json!(v[row]),
    }
}

/// Serves the penguins model (its pipeline recorded) and measures raw-row requests.
fn raw_rows(tokio: &tokio::runtime::Runtime, project: &Path) {
    let workflows = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workflows");
    std::fs::copy(
        workflows.join("data/penguins.csv"),
        project.join("data/penguins.csv"),
    )
    .expect("copy the penguins");
    std::fs::copy(
        workflows.join("penguins.toml"),
        project.join("penguins.toml"),
    )
    .expect("copy the workflow");
    wflow(project, &["run", "penguins.toml"]);
    let mut config = ServeConfig::new(
        vec![ModelSource::Registry {
            reference: "penguins".into(),
        }],
        StoreAccess::OnDemand(project.join(".wflow")),
    );
    config.listen = "127.0.0.1:0".parse().expect("address");
    let (address, server, stop, task) = start(tokio, config);
    let model = server
        .deployment("penguins")
        .expect("deployed")
        .champion
        .clone();
    let pipeline = model.columns.clone().expect("a pipeline");
    let table = wflow::table::csv::read(&project.join("data/penguins.csv"), &Default::default())
        .expect("data");
    let names: Vec<&str> = pipeline.inputs.iter().map(|i| i.name.as_str()).collect();
    let oip = |rows: usize| {
        let inputs: Vec<serde_json::Value> = pipeline
            .inputs
            .iter()
            .map(|input| {
                let datatype = match input.kind {
                    wflow::table::ColumnType::Float => "FP64",
                    wflow::table::ColumnType::Integer => "INT64",
                    wflow::table::ColumnType::Text => "BYTES",
                    wflow::table::ColumnType::Boolean => "BOOL",
                };
                let data: Vec<_> = (0..rows).map(|r| raw_cell(&table, &input.name, r)).collect();
                serde_json::json!({ "name": input.name, "datatype": datatype, "shape": [rows], "data": data })
            })
            .collect();
        serde_json::json!({ "inputs": inputs, "outputs": [{ "name": "probabilities" }] })
            .to_string()
    };
    let split = |rows: usize| {
        let data: Vec<Vec<serde_json::Value>> = (0..rows)
            .map(|r| names.iter().map(|n| raw_cell(&table, n, r)).collect())
            .collect();
        serde_json::json!({ "dataframe_split": { "columns": names, "data": data } }).to_string()
    };
    println!(
        "raw rows: the penguins pipeline ({} raw columns: impute, one-hot encode) and its logistic regression, same loads:",
        names.len()
    );
    let cap = Duration::from_secs(60);
    let infer = "/v2/models/penguins/infer";
    tokio.block_on(load(address, infer, &oip(1), REQUESTS / 5, cap)); // warm-up
    for (what, path, one, hundred) in [
        ("OIP raw columns", infer, oip(1), oip(100)),
        (
            "/invocations dataframe_split",
            "/invocations",
            split(1),
            split(100),
        ),
    ] {
        report(
            &format!("{what}, 1 row"),
            1,
            tokio.block_on(load(address, path, &one, REQUESTS, cap)),
        );
        report(
            &format!("{what}, 100 rows"),
            100,
            tokio.block_on(load(address, path, &hundred, REQUESTS / 5, cap)),
        );
    }
    // In process: what the preprocessing costs per row, beside the model itself.
    let rows = table.row_count();
    let raw = table.select(&names).expect("the raw inputs");
    let repeats = 200;
    let started = Instant::now();
    let mut matrix = Vec::new();
    for _ in 0..repeats {
        matrix = pipeline.features(&raw).expect("preprocessed");
    }
    let preprocessing = started.elapsed() / (repeats * rows as u32);
    let started = Instant::now();
    for _ in 0..repeats {
        model
            .infer(&wflow::serve::model::Inputs::Rows(raw.clone()), &[])
            .expect("inferred");
    }
    let whole = started.elapsed() / (repeats * rows as u32);
    assert_eq!(matrix.len(), rows * pipeline.features.len());
    println!(
        "  in process, {rows}-row batches: preprocessing {:.2} us per row of {:.2} us for the whole answer (pipeline + model + labels)",
        micros(preprocessing),
        micros(whole)
    );
    let one = raw.take(&[0]).expect("one row");
    let calls = 20_000;
    let started = Instant::now();
    for _ in 0..calls {
        pipeline.features(&one).expect("preprocessed");
    }
    let single = started.elapsed() / calls;
    let started = Instant::now();
    for _ in 0..calls {
        model
            .infer(&wflow::serve::model::Inputs::Rows(one.clone()), &[])
            .expect("inferred");
    }
    let single_whole = started.elapsed() / calls;
    println!(
        "  in process, 1 row: preprocessing {:.2} us of {:.2} us for the whole answer",
        micros(single),
        micros(single_whole)
    );
    let _ = stop.send(());
    tokio.block_on(task).expect("server task").expect("server");
}

/// Deploys a challenger that fails every request and measures how fast traffic returns.
fn rollback_reaction(
    tokio: &tokio::runtime::Runtime,
    project: &Path,
    server: &Arc<Server>,
    address: SocketAddr,
    rows: &[Vec<f64>],
) {
    let mut events = server.subscribe();
    // A version trained on two features: every 30-feature request fails on it.
    train(
        project,
        r#"{ features = ["mean_radius", "mean_texture"] }"#,
        r#"{ no_champion = "canary", canary_percent = 10 }"#,
    );
    // The server follows the registry by itself.
    tokio.block_on(async {
        loop {
            let event = events.recv().await.expect("events");
            if event.kind == "deployed" && event.message.starts_with("v3") {
                break;
            }
        }
    });
    let began = Instant::now();
    let first_failure = Arc::new(AtomicU64::new(u64::MAX));
    let failures = Arc::new(AtomicU64::new(0));
    let after = Arc::new(AtomicU64::new(0));
    let rolled_back = Arc::new(AtomicBool::new(false));
    let one = body(&rows[..1], "features");
    let reaction = tokio.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let (first_failure, failures, after, rolled_back, one) = (
                first_failure.clone(),
                failures.clone(),
                after.clone(),
                rolled_back.clone(),
                one.clone(),
            );
            clients.push(tokio::spawn(async move {
                let mut connection = Connection::open(address, "/v2/models/bc/infer", &one).await;
                // Bounded: the guard acts after 100 failed challenger requests (~1,000 in all).
                for _ in 0..50_000 {
                    let status = connection.exchange().await;
                    if status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_failure
                            .fetch_min(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    } else if rolled_back.load(Ordering::Relaxed)
                        && after.fetch_add(1, Ordering::Relaxed) >= 1000
                    {
                        break;
                    }
                }
            }));
        }
        let rollback = loop {
            let event = events.recv().await.expect("events");
            if event.kind == "rolled-back" {
                break event;
            }
        };
        let reacted = began.elapsed();
        rolled_back.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.expect("client");
        }
        (reacted, rollback.message)
    });
    let first = Duration::from_nanos(first_failure.load(Ordering::Relaxed));
    println!(
        "  rollback reaction: {:.1} ms and {} failed requests from the first failure to all traffic on the champion",
        (reaction.0.saturating_sub(first)).as_secs_f64() * 1e3,
        failures.load(Ordering::Relaxed)
    );
    println!("    ({})", reaction.1);
}

/// A server's p99 (us) and requests/s.
type Figures = (f64, f64);

/// Installs MLflow when it can, serves the same pipeline with both servers, and returns the
/// figures of each, MLflow's first, for one row per request.
fn mlflow_comparison(
    tokio: &tokio::runtime::Runtime,
    project: &Path,
    data_file: &Path,
) -> Result<(Figures, Figures), String> {
    let venv = std::env::var_os("WFLOW_BENCH_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/wflow/bench-venv"))
        })
        .ok_or("no HOME for the virtual environment")?;
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import mlflow, sklearn, skl2onnx"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&python) {
        eprintln!(
            "installing mlflow, scikit-learn and skl2onnx into {} ...",
            venv.display()
        );
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .map_err(|err| format!("python3: {err}"))?;
        if !made.status.success() {
            return Err(format!(
                "cannot make a virtual environment: {}",
                String::from_utf8_lossy(&made.stderr)
            ));
        }
        let install = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "mlflow",
                "scikit-learn",
                "skl2onnx",
            ])
            .output()
            .map_err(|err| format!("pip: {err}"))?;
        if !install.status.success() || !ready(&python) {
            return Err(format!(
                "cannot install mlflow: {}",
                String::from_utf8_lossy(&install.stderr)
            ));
        }
    }
    let out = project.join("mlflow");
    std::fs::create_dir_all(&out).map_err(|err| err.to_string())?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/mlflow_model.py");
    let saved = Command::new(&python)
        .arg(&script)
        .arg(data_file)
        .arg(&out)
        .output()
        .map_err(|err| err.to_string())?;
    if !saved.status.success() {
        return Err(format!(
            "cannot save the model: {}",
            String::from_utf8_lossy(&saved.stderr)
        ));
    }
    let columns: Vec<String> = serde_json::from_slice(
        &std::fs::read(out.join("columns.json")).map_err(|err| err.to_string())?,
    )
    .map_err(|err| err.to_string())?;
    let table =
        wflow::table::csv::read(data_file, &Default::default()).map_err(|e| e.to_string())?;
    let row: Vec<f64> = columns
        .iter()
        .map(|c| table.column(c).and_then(|col| col.f64_at(0)).unwrap_or(0.0))
        .collect();

    // MLflow's scoring server, one row per request on its /invocations endpoint.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|err| err.to_string())?
        .port();
    // MLflow starts uvicorn from the PATH: the environment's own `bin` goes first.
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut mlflow = Command::new(venv.join("bin/mlflow"))
        .env("PATH", path)
        .args([
            "models",
            "serve",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(port.to_string())
        .arg("-m")
        .arg(out.join("mlflow-model"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|err| format!("mlflow: {err}"))?;
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(address).is_err() {
        if Instant::now() > deadline {
            let _ = mlflow.kill();
            return Err("mlflow models serve did not start within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let invocation =
        serde_json::json!({ "dataframe_split": { "columns": columns, "data": [row.clone()] } })
            .to_string();
    let warm = tokio.block_on(load(
        address,
        "/invocations",
        &invocation,
        10,
        Duration::from_secs(30),
    ));
    if warm.failed > 0 {
        let _ = mlflow.kill();
        return Err("mlflow answered the warm-up with errors".into());
    }
    println!(
        "the same scikit-learn pipeline, {CONNECTIONS} keep-alive connections, 1 row per request:"
    );
    let (_, mlflow_p99, mlflow_rps) = report(
        "mlflow models serve",
        1,
        tokio.block_on(load(
            address,
            "/invocations",
            &invocation,
            500,
            Duration::from_secs(30),
        )),
    );
    let _ = mlflow.kill();
    let _ = mlflow.wait();

    // The skl2onnx export of the same pipeline, served by wflow from its file.
    let mut config = ServeConfig::new(
        vec![ModelSource::File {
            name: "sk".into(),
            path: out.join("pipeline.onnx"),
        }],
        StoreAccess::OnDemand(project.join("unused-store")),
    );
    config.listen = "127.0.0.1:0".parse().expect("address");
    let (address, server, stop, task) = start(tokio, config);
    let input = server
        .deployment("sk")
        .map(|d| d.champion.inputs[0].name.clone())
        .unwrap_or_default();
    let request = serde_json::json!({
        "inputs": [{ "name": input, "shape": [1, row.len()], "datatype": "FP32", "data": [row] }],
    })
    .to_string();
    tokio.block_on(load(
        address,
        "/v2/models/sk/infer",
        &request,
        500,
        Duration::from_secs(30),
    ));
    let (_, wflow_p99, wflow_rps) = report(
        "wflow serve (skl2onnx export)",
        1,
        tokio.block_on(load(
            address,
            "/v2/models/sk/infer",
            &request,
            REQUESTS,
            Duration::from_secs(60),
        )),
    );
    let _ = stop.send(());
    let _ = tokio.block_on(task);
    Ok(((mlflow_p99, mlflow_rps), (wflow_p99, wflow_rps)))
}
