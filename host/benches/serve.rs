//! A load generator for `wflow serve`, and the figures it measures: the server runs in this
//! process on loopback with the breast-cancer logistic-regression model (trained here by the
//! plugin, so the bench needs nothing else); clients keep their HTTP/1.1 connections alive and
//! send Open Inference Protocol requests one after another, a fixed number each.
//!
//! Run with `cargo bench -p wflow --bench serve`. Figures to read, not pass/fail tests; the
//! targets are p50 <= 150 us, p99 <= 1 ms, >= 25,000 requests/s for one row per request, and
//! >= 300,000 rows/s in 100-row batches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wflow::plugin::{Call, Capabilities, CompiledCache, Limits, Output, Runtime};
use wflow::serve::{ModelSource, ServeConfig};

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
    async fn open(address: SocketAddr, body: &str) -> Connection {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let request = format!(
            "POST /v2/models/breast-cancer/infer HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Connection {
            reader: BufReader::new(stream),
            request: request.into_bytes(),
        }
    }

    /// Sends the request and reads the whole answer; panics unless it is a 200.
    async fn exchange(&mut self) {
        self.reader
            .get_mut()
            .write_all(&self.request)
            .await
            .expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).await.expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
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
    }
}

/// Runs `CONNECTIONS` x `REQUESTS` exchanges; returns every latency and the wall time.
async fn load(address: SocketAddr, body: &str) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let body = body.to_string();
        clients.push(tokio::spawn(async move {
            let mut connection = Connection::open(address, &body).await;
            let mut latencies = Vec::with_capacity(REQUESTS);
            for _ in 0..REQUESTS {
                let start = Instant::now();
                connection.exchange().await;
                latencies.push(start.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await.expect("client"));
    }
    (all, started.elapsed())
}

fn body(rows: &[Vec<f64>]) -> String {
    serde_json::json!({
        "inputs": [{
            "name": "features",
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

fn report(what: &str, rows: usize, (mut latencies, wall): (Vec<Duration>, Duration)) {
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let requests = latencies.len() as f64 / wall.as_secs_f64();
    println!(
        "  {what:<22} p50 {:>7.1} us   p99 {:>7.1} us   {:>8.0} requests/s   {:>9.0} rows/s",
        micros(at(0.5)),
        micros(at(0.99)),
        requests,
        requests * rows as f64
    );
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let dir = tempfile::tempdir().expect("temporary directory");

    // The model: the logistic-regression plugin trained on breast_cancer.
    let data_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workflows/data/breast_cancer.csv");
    let table = wflow::table::csv::read(&data_file, &Default::default()).expect("data");
    let runtime =
        Runtime::new(Some(CompiledCache::new(dir.path().join("compiled")))).expect("runtime");
    let wasm = std::fs::read(
        PathBuf::from(env!("WFLOW_PLUGIN_ARTIFACTS")).join("logistic_regression.wasm"),
    )
    .expect("the plugin was built");
    let plugin = tokio.block_on(runtime.load(&wasm)).expect("load");
    let trained = tokio.block_on(runtime.call(
        &plugin,
        Call::Train {
            data: table.clone(),
            target: "malignant".into(),
            config: "{}".into(),
        },
        &Limits::default(),
        &Capabilities::default(),
    ));
    let Ok(Output::Trained { model, .. }) = trained.outcome else {
        panic!("training failed");
    };
    let model_file = dir.path().join("breast-cancer.onnx");
    std::fs::write(&model_file, &model.onnx).expect("write the model");
    let rows: Vec<Vec<f64>> = (0..100)
        .map(|row| {
            model
                .metadata
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

    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        sources: vec![ModelSource::File {
            name: "breast-cancer".into(),
            path: model_file,
        }],
        data_dir: dir.path().join("store"),
        admin_token: None,
        max_body: 64 << 20,
    };
    let (address_sender, address_receiver) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio.spawn(wflow::serve::run(
        config,
        move |address, _| address_sender.send(address).expect("report the address"),
        async move {
            let _ = stopped.await;
        },
    ));
    let address = address_receiver.recv().expect("the server listens");

    println!(
        "wflow serve on loopback, {CONNECTIONS} keep-alive connections x {REQUESTS} requests, breast-cancer logistic regression:"
    );
    let one = body(&rows[..1]);
    let hundred = body(&rows);
    tokio.block_on(load(address, &one)); // warm-up
    report("1 row per request", 1, tokio.block_on(load(address, &one)));
    report(
        "100 rows per request",
        100,
        tokio.block_on(load(address, &hundred)),
    );
    let _ = stop.send(());
    tokio
        .block_on(server)
        .expect("server task")
        .expect("server");
}
