//! The attacks of issue 22, made as an attacker on loopback would make them, against the real
//! `wflow serve` and `wflow daemon` in their default configuration (a token set, reads open).
//! Each attack runs while a prober asks for health every 20 ms from another address: the
//! process must live, every probe must be answered within a second, and the process's peak
//! resident memory must stay within the attack's bound. The figures are printed:
//!
//! ```sh
//! cargo test -p wflow --test e2e attack -- --nocapture --test-threads 1
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Answer, get, repo, stderr, stdout, wflow};

const ADMIN: &str = "attack-suite-admin-token";
const FEEDBACK: &str = "attack-suite-feedback-token";
/// Idle connections the attacker opens at once (above the server's cap of 1,024, and of 256
/// per client).
const IDLE_CONNECTIONS: usize = 1300;

/// A server under attack: its process, address and what it logged.
struct Target {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Target {
    /// Starts `wflow ARGS` in `dir` and waits until it listens.
    fn start(dir: &Path, args: &[&str]) -> Target {
        let child = Command::new(env!("CARGO_BIN_EXE_wflow"))
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
            .env("WFLOW_ADMIN_TOKEN", ADMIN)
            .env("WFLOW_FEEDBACK_TOKEN", FEEDBACK)
            .env_remove("WFLOW_DATA_DIR")
            .env("RUST_LOG", "wflow=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // From here on, dropping the target stops the process, whatever happens.
        let mut target = Target {
            child,
            address: String::new(),
            log: Arc::new(Mutex::new(String::new())),
        };
        let mut reader = BufReader::new(target.child.stderr.take().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!(
                    "wflow stopped before listening:\n{}",
                    target.log.lock().unwrap()
                );
            }
            target.log.lock().unwrap().push_str(&line);
            if let Some(address) = line.trim().split("on http://").nth(1) {
                target.address = address.trim_end_matches("/ui").to_string();
                let kept = target.log.clone();
                // Everything it logs from here on is kept for the assertions.
                std::thread::spawn(move || {
                    for line in reader.lines().map_while(Result::ok) {
                        let mut kept = kept.lock().unwrap();
                        kept.push_str(&line);
                        kept.push('\n');
                    }
                });
                return target;
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's peak resident memory since the last reset, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }

    /// Starts measuring the peak anew (Linux: 5 to clear_refs resets the high-water mark).
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").unwrap();
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Asks for health every 20 ms from 127.0.0.1 until stopped; each probe's time to a complete
/// answer (a second and more when it got none).
struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Result<Duration, String>>>,
}

fn probe_once(address: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(String::from_utf8_lossy(&answer).into_owned());
    }
    Ok(started.elapsed())
}

impl Prober {
    fn start(address: &str) -> Prober {
        let address: SocketAddr = address.parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut times = Vec::new();
            // At least one probe, and one after the attack ended.
            loop {
                let stopped = stopping.load(Ordering::Relaxed);
                times.push(probe_once(address));
                if stopped {
                    return times;
                }
                // The probing rate, not a wait for anything.
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Prober { stop, thread }
    }

    fn finish(self) -> Vec<Result<Duration, String>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Runs `attack` against `target` while probing its health; checks it lives, answers every
/// probe within a second, and peaks under `bound_mib` of resident memory; prints the figures.
fn under_attack(target: &mut Target, name: &str, bound_mib: f64, attack: impl FnOnce(&str)) {
    target.reset_peak();
    let prober = Prober::start(&target.address);
    attack(&target.address);
    let probes = prober.finish();
    assert!(target.alive(), "{name}: the server died");
    let failed: Vec<&String> = probes.iter().filter_map(|p| p.as_ref().err()).collect();
    assert!(failed.is_empty(), "{name}: health failed: {failed:?}");
    let mut times: Vec<Duration> = probes.into_iter().map(Result::unwrap).collect();
    times.sort();
    let worst = *times.last().unwrap();
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    let peak = target.peak_rss_mib();
    println!(
        "attack {name}: peak RSS {peak:.0} MiB, health p99 {:.1} ms, worst {:.1} ms over {} probes",
        p99.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        times.len()
    );
    assert!(
        worst < Duration::from_secs(1),
        "{name}: health took {worst:?} at worst"
    );
    assert!(
        peak < bound_mib,
        "{name}: peak RSS {peak:.0} MiB, above {bound_mib} MiB"
    );
}

/// Sends one request from 127.0.0.2 (the attacker's address); the status and body.
fn send(address: &str, head: &str, body: &[u8]) -> Answer {
    let mut stream = from_attacker(address.parse().unwrap());
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (and close) before taking the whole body: that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&raw)));
    let status = String::from_utf8_lossy(&raw[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    Answer {
        status,
        body: raw[split + 4..].to_vec(),
    }
}

/// A connection from 127.0.0.2, a loopback address of the attacker's own, so that the
/// server's cap per client address applies to it and not to the prober.
fn from_attacker(to: SocketAddr) -> TcpStream {
    from_loopback(to, 2)
}

/// A connection from 127.0.0.`host`.
fn from_loopback(to: SocketAddr, host: u8) -> TcpStream {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    });
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, host], 0)))
            .unwrap();
        let stream = socket.connect(to).await.unwrap().into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: attack\r\nconnection: close\r\ncontent-length: {length}\r\n{extra}\r\n"
    )
}

/// The breast-cancer data's feature rows, as a trainer saw them.
fn rows(dir: &Path, features: &[String]) -> Vec<Vec<f64>> {
    let table =
        wflow::table::csv::read(&dir.join("data/breast_cancer.csv"), &Default::default()).unwrap();
    (0..table.row_count())
        .map(|row| {
            features
                .iter()
                .map(|f| table.column(f).unwrap().f64_at(row).unwrap())
                .collect()
        })
        .collect()
}

/// A project whose registry holds `bc`: v1 the champion, v2 a challenger the gate deployed as
/// a 20% canary.
fn project_with_a_canary() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(
        repo().join("workflows/data/breast_cancer.csv"),
        dir.path().join("data/breast_cancer.csv"),
    )
    .unwrap();
    for gate in [
        r#"{ no_champion = "promote" }"#,
        r#"{ no_champion = "canary", canary_percent = 20 }"#,
    ] {
        std::fs::write(
            dir.path().join("bc.toml"),
            format!(
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
            ),
        )
        .unwrap();
        let run = wflow(dir.path(), &["run", "bc.toml"]);
        assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    }
    dir
}

fn infer_json(rows: &[Vec<f64>], id: Option<&str>) -> String {
    let mut body = serde_json::json!({
        "inputs": [{ "name": "features", "shape": [rows.len(), rows[0].len()], "datatype": "FP64", "data": rows }],
    });
    if let Some(id) = id {
        body["id"] = id.into();
    }
    body.to_string()
}

fn deployment(address: &str) -> serde_json::Value {
    get(address, "/v2/models/bc/deployment").json()
}

#[test]
fn issue_22_wflow_serve_lives_and_holds_its_memory_under_every_attack() {
    let dir = project_with_a_canary();
    let features: Vec<String> = wflow::store::Store::open(dir.path().join(".wflow"))
        .unwrap()
        .version("bc", 1)
        .unwrap()
        .features;
    let data = rows(dir.path(), &features);
    let mut target = Target::start(dir.path(), &["serve", "--registry", "bc"]);
    let status = deployment(&target.address);
    assert_eq!(status["challenger"]["strategy"], "canary", "{status}");

    // One 128-byte request declaring 10^16 strings used to abort the process.
    under_attack(&mut target, "bytes-shape", 200.0, |address| {
        let header = r#"{"inputs":[{"name":"features","shape":[10000000000000000],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}"#;
        let mut body = header.as_bytes().to_vec();
        body.extend_from_slice(&[0; 8]);
        let answer = send(
            address,
            &post_head(
                "/v2/models/bc/infer",
                body.len(),
                &format!(
                    "content-type: application/octet-stream\r\ninference-header-content-length: {}\r\n",
                    header.len()
                ),
            ),
            &body,
        );
        assert_eq!(answer.status, 400, "{}", answer.text());
        // A shape whose product wraps to zero in 64 bits.
        let wrapped = r#"{"inputs":[{"name":"features","shape":[4294967296,4294967296],"datatype":"FP32","data":[]}]}"#;
        let answer = send(
            address,
            &post_head(
                "/v2/models/bc/infer",
                wrapped.len(),
                "content-type: application/json\r\n",
            ),
            wrapped.as_bytes(),
        );
        assert_eq!(answer.status, 400, "{}", answer.text());
    });

    // Requests with ids are remembered for feedback, in a bounded number of bytes: eight
    // 16 MiB requests used to keep 2 GB of strings.
    under_attack(&mut target, "remembered-ids", 700.0, |address| {
        let many: Vec<Vec<f64>> = data.iter().cycle().take(80_000).cloned().collect();
        for i in 0..8 {
            let body = infer_json(&many, Some(&format!("big-{i}")));
            assert!(body.len() > 15 << 20, "{}", body.len());
            let answer = send(
                address,
                &post_head(
                    "/v2/models/bc/infer",
                    body.len(),
                    "content-type: application/json\r\n",
                ),
                body.as_bytes(),
            );
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        // Many requests each small enough to keep, 150 MB of rows together: the oldest are
        // forgotten to stay within the 64 MiB a model may keep, the latest are still there.
        let mid: Vec<Vec<f64>> = data.iter().cycle().take(3000).cloned().collect();
        for i in 0..120 {
            let body = infer_json(&mid, Some(&format!("mid-{i}")));
            let answer = send(
                address,
                &post_head(
                    "/v2/models/bc/infer",
                    body.len(),
                    "content-type: application/json\r\n",
                ),
                body.as_bytes(),
            );
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        let truth = |id: &str| {
            let body = serde_json::json!({ "id": id, "truth": vec!["1"; 3000] }).to_string();
            send(
                address,
                &post_head(
                    "/v2/models/bc/feedback",
                    body.len(),
                    &format!(
                        "content-type: application/json\r\nauthorization: Bearer {FEEDBACK}\r\n"
                    ),
                ),
                body.as_bytes(),
            )
        };
        let forgotten = truth("mid-0");
        assert_eq!(forgotten.status, 404, "{}", forgotten.text());
        let kept = truth("mid-119");
        assert_eq!(kept.status, 200, "{}", kept.text());
    });

    // Made-up versions in the URL are no series of their own.
    under_attack(&mut target, "metric-labels", 600.0, |address| {
        let body = infer_json(&data[..1], None);
        for i in 0..3000 {
            let path = format!("/v2/models/bc/versions/v{i}/infer");
            let head = if i % 2 == 0 {
                post_head(&path, body.len(), "content-type: application/json\r\n")
            } else {
                post_head(
                    &path,
                    body.len(),
                    &format!(
                        "content-type: application/json\r\nauthorization: Bearer {FEEDBACK}\r\n"
                    ),
                )
            };
            let answer = send(address, &head, body.as_bytes());
            assert_eq!(answer.status, if i % 2 == 0 { 401 } else { 404 });
        }
        let metrics = get(address, "/metrics").text();
        assert!(
            !metrics.contains("version=\"v"),
            "made-up versions are series"
        );
        assert!(
            metrics.len() < 64 << 10,
            "{} bytes of metrics",
            metrics.len()
        );
    });

    // Headers of a hundred thousand columns, records of a hundred thousand keys: checked in
    // linear time, off the threads that answer health.
    under_attack(&mut target, "wide-bodies", 600.0, |address| {
        let header: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let csv = format!("{}\n{}\n", header.join(","), vec!["1"; 100_000].join(","));
        let record: serde_json::Map<String, serde_json::Value> =
            header.iter().map(|c| (c.clone(), 1.into())).collect();
        let records = serde_json::json!({ "dataframe_records": [record] }).to_string();
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (address, csv, records) = (address.to_string(), csv.clone(), records.clone());
                std::thread::spawn(move || {
                    let (body, kind) = if i == 0 {
                        (csv, "text/csv")
                    } else {
                        (records, "application/json")
                    };
                    send(
                        &address,
                        &post_head(
                            "/v2/models/bc/invocations",
                            body.len(),
                            &format!("content-type: {kind}\r\n"),
                        ),
                        body.as_bytes(),
                    )
                })
            })
            .collect();
        for thread in threads {
            let answer = thread.join().unwrap();
            assert_eq!(answer.status, 400, "{}", answer.text());
            assert!(
                answer.text().contains("unknown column"),
                "{}",
                answer.text()
            );
        }
    });

    // A 60 MiB CSV body of real rows is read without a string per cell.
    under_attack(&mut target, "large-csv", 1000.0, |address| {
        let mut csv = features.join(",");
        csv.push('\n');
        let mut line = String::new();
        'rows: loop {
            for row in &data {
                line.clear();
                for (i, value) in row.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&value.to_string());
                }
                line.push('\n');
                if csv.len() + line.len() > 60 << 20 {
                    break 'rows;
                }
                csv.push_str(&line);
            }
        }
        let answer = send(
            address,
            &post_head(
                "/v2/models/bc/invocations",
                csv.len(),
                "content-type: text/csv\r\n",
            ),
            csv.as_bytes(),
        );
        assert_eq!(
            answer.status,
            200,
            "{}",
            &answer.text()[..200.min(answer.body.len())]
        );
    });

    // The same rows as 60 MiB of JSON (`dataframe_split`, as pandas writes it).
    under_attack(&mut target, "large-json", 1000.0, |address| {
        let mut body = String::from("{\"dataframe_split\": {\"columns\": ");
        body.push_str(&serde_json::to_string(&features).unwrap());
        body.push_str(", \"data\": [");
        let mut first = true;
        'rows: loop {
            for row in &data {
                let text = serde_json::to_string(row).unwrap();
                if body.len() + text.len() + 4 > 60 << 20 {
                    break 'rows;
                }
                if !first {
                    body.push(',');
                }
                first = false;
                body.push_str(&text);
            }
        }
        body.push_str("]}}");
        let answer = send(
            address,
            &post_head(
                "/v2/models/bc/invocations",
                body.len(),
                "content-type: application/json\r\n",
            ),
            body.as_bytes(),
        );
        assert_eq!(
            answer.status,
            200,
            "{}",
            &answer.text()[..200.min(answer.body.len())]
        );
    });

    // More connections than the server's cap, from five addresses (the prober's own among
    // them), half saying nothing and half trickling a request head: each newcomer closes an
    // idle one of the client holding the most, so health is answered from any address.
    under_attack(&mut target, "idle-connections", 600.0, |address| {
        let files = wflow::http::raise_open_file_limit(IDLE_CONNECTIONS as u64 + 512);
        assert!(
            files > IDLE_CONNECTIONS as u64 + 256,
            "this test needs `ulimit -Hn` above {}",
            IDLE_CONNECTIONS + 256
        );
        let to: SocketAddr = address.parse().unwrap();
        let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
            .map(|n| {
                let mut stream = from_loopback(to, 1 + (n % 5) as u8);
                if n % 2 == 0 {
                    // Refused or closed already: the attacker does not care.
                    let _ = stream.write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: att");
                }
                stream
            })
            .collect();
        // Health is probed meanwhile, and asked from the attacker's own addresses too.
        let probes_meanwhile: Vec<_> = (0..25)
            .map(|_| probe_once(address.parse().unwrap()))
            .collect();
        assert!(
            probes_meanwhile.iter().all(Result::is_ok),
            "{probes_meanwhile:?}"
        );
        for host in 1..=5 {
            let mut stream = from_loopback(to, host);
            stream
                .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "from 127.0.0.{host}: {answer:?}"
            );
        }
        drop(idle);
    });

    // The canary is steered by nobody: malformed requests are the caller's errors, keyed or
    // version-addressed traffic without a credential does not count, and however many good
    // requests come, it neither ramps faster than a step per `step_duration` nor is promoted
    // before its minimum duration.
    under_attack(&mut target, "canary-steering", 600.0, |address| {
        let before = deployment(address);
        let malformed =
            r#"{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#;
        for _ in 0..100 {
            let answer = send(
                address,
                &post_head(
                    "/v2/models/bc/infer",
                    malformed.len(),
                    "content-type: application/json\r\n",
                ),
                malformed.as_bytes(),
            );
            assert_eq!(answer.status, 400);
        }
        let after_malformed = deployment(address);
        assert_eq!(
            after_malformed["challenger"]["stats"]["errors"], 0,
            "{after_malformed}"
        );
        let body = infer_json(&data[..1], None);
        // Keys that land on the challenger, found by asking.
        let mut keyed_to_challenger = 0;
        for key in 0..600 {
            let answer = send(
                address,
                &post_head(
                    "/v2/models/bc/infer",
                    body.len(),
                    &format!("content-type: application/json\r\nx-routing-key: user-{key}\r\n"),
                ),
                body.as_bytes(),
            );
            assert_eq!(answer.status, 200);
            if answer.json()["model_version"] == "2" {
                keyed_to_challenger += 1;
            }
        }
        assert!(keyed_to_challenger > 50, "{keyed_to_challenger}");
        let versioned = send(
            address,
            &post_head(
                "/v2/models/bc/versions/2/infer",
                body.len(),
                "content-type: application/json\r\n",
            ),
            body.as_bytes(),
        );
        assert_eq!(versioned.status, 401, "{}", versioned.text());
        let after_keys = deployment(address);
        assert_eq!(
            after_keys["challenger"]["stats"]["requests"],
            before["challenger"]["stats"]["requests"],
            "keyed traffic without a credential counted: {after_keys}"
        );
        // Router-chosen traffic counts, but a burst moves the canary no further: each step
        // lasts two minutes at least, however many requests come (3,000 requests put 600 on
        // the challenger, three steps' worth of `step_requests`).
        for _ in 0..3000 {
            let answer = send(
                address,
                &post_head(
                    "/v2/models/bc/infer",
                    body.len(),
                    "content-type: application/json\r\n",
                ),
                body.as_bytes(),
            );
            assert_eq!(answer.status, 200);
        }
        let after_burst = deployment(address);
        assert_eq!(after_burst["champion"]["version"], "1", "{after_burst}");
        assert_eq!(after_burst["challenger"]["version"], "2", "{after_burst}");
        let counted = after_burst["challenger"]["stats"]["requests"]
            .as_u64()
            .unwrap()
            - before["challenger"]["stats"]["requests"].as_u64().unwrap();
        assert!(counted >= 500, "the burst counted: {after_burst}");
        assert_eq!(
            after_burst["challenger"]["step"],
            before["challenger"]["step"]
        );
        assert_eq!(
            after_burst["challenger"]["percent"], before["challenger"]["percent"],
            "{after_burst}"
        );
    });

    // A web page cannot post here: another origin, or a body a form could send.
    under_attack(&mut target, "cross-site", 600.0, |address| {
        let body = r#"{"id": "x", "truth": ["1"]}"#;
        let answer = send(
            address,
            &post_head(
                "/v2/models/bc/feedback",
                body.len(),
                &format!(
                    "content-type: application/json\r\norigin: http://evil.example\r\nauthorization: Bearer {FEEDBACK}\r\n"
                ),
            ),
            body.as_bytes(),
        );
        assert_eq!(answer.status, 403, "{}", answer.text());
        let answer = send(
            address,
            &post_head(
                "/v2/models/bc/feedback",
                body.len(),
                &format!("content-type: text/plain\r\nauthorization: Bearer {FEEDBACK}\r\n"),
            ),
            body.as_bytes(),
        );
        assert_eq!(answer.status, 415, "{}", answer.text());
        // Feedback without a credential is refused; with the feedback token it is matched.
        let answer = send(
            address,
            &post_head(
                "/v2/models/bc/feedback",
                body.len(),
                "content-type: application/json\r\n",
            ),
            body.as_bytes(),
        );
        assert_eq!(answer.status, 401, "{}", answer.text());
    });
    assert!(target.alive());
}

/// Long-polls the daemon's events until one of `kind` that `matches` comes (or 60 s pass).
fn wait_for_event(
    address: &str,
    kind: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut since = 0;
    loop {
        let events = get(address, &format!("/v2/events?since={since}&wait=1s")).json();
        for event in events["events"].as_array().unwrap() {
            since = event["seq"].as_u64().unwrap();
            if event["kind"] == kind && matches(event) {
                return event.clone();
            }
        }
        assert!(Instant::now() < deadline, "no `{kind}` event within 60 s");
    }
}

#[test]
fn issue_22_anonymous_callers_cannot_retrain_the_closed_loop_or_forge_its_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("wf/data")).unwrap();
    std::fs::copy(
        repo().join("workflows/data/breast_cancer.csv"),
        dir.path().join("wf/data/breast_cancer.csv"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("workflows/cancer-live.toml"),
        dir.path().join("wf/cancer-live.toml"),
    )
    .unwrap();
    let policy = repo().join("workflows/policies/closed-loop.toml");
    let mut target = Target::start(
        dir.path(),
        &[
            "daemon",
            "--workflows",
            "wf",
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    let first = Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(["trigger", "cancer-live", "--wait"])
        .current_dir(dir.path())
        .env("WFLOW_CACHE_DIR", dir.path().join(".wflow-cache"))
        .env("WFLOW_ADMIN_TOKEN", ADMIN)
        .env_remove("WFLOW_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    wait_for_event(&target.address, "served", |e| e["model"] == "cancer-live");
    let features: Vec<String> = serde_json::from_value(
        get(&target.address, "/api/v1/models/cancer-live@1").json()["version"]["features"].clone(),
    )
    .unwrap();
    let data = rows(&dir.path().join("wf"), &features);

    // The attack that replaced the champion in ten seconds: shifted rows with ids, flipped
    // labels as feedback, requests to the challenger. Without a credential none of it counts.
    under_attack(&mut target, "closed-loop-poisoning", 600.0, |address| {
        for (i, row) in data.iter().cycle().take(450).enumerate() {
            let shifted: Vec<f64> = row.iter().map(|v| v * 1.5).collect();
            let body = infer_json(&[shifted], Some(&format!("p{i}")));
            let answer = send(
                address,
                &post_head(
                    "/v2/models/cancer-live/infer",
                    body.len(),
                    "content-type: application/json\r\n",
                ),
                body.as_bytes(),
            );
            assert_eq!(answer.status, 200, "{}", answer.text());
            let label = answer.json()["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == "label")
                .map(|o| o["data"][0].as_str().unwrap().to_string())
                .unwrap();
            let flipped = if label == "1" { "0" } else { "1" };
            let truth =
                serde_json::json!({ "id": format!("p{i}"), "truth": [flipped] }).to_string();
            for authorization in ["", "authorization: Bearer a-guessed-token-value\r\n"] {
                let answer = send(
                    address,
                    &post_head(
                        "/v2/models/cancer-live/feedback",
                        truth.len(),
                        &format!("content-type: application/json\r\n{authorization}"),
                    ),
                    truth.as_bytes(),
                );
                assert_eq!(answer.status, 401, "{}", answer.text());
            }
        }
        for _ in 0..400 {
            let body = infer_json(&data[..1], None);
            let answer = send(
                address,
                &post_head(
                    "/v2/models/cancer-live/versions/2/infer",
                    body.len(),
                    "content-type: application/json\r\n",
                ),
                body.as_bytes(),
            );
            assert_eq!(answer.status, 401, "{}", answer.text());
        }
    });
    // The shift is seen, and the drift trigger says why it does not retrain.
    wait_for_event(&target.address, "drift", |e| {
        e["message"].as_str().unwrap().contains("drifted")
    });
    let waiting = wait_for_event(&target.address, "trigger-waiting", |_| true);
    assert!(
        waiting["message"]
            .as_str()
            .unwrap()
            .contains("only 0 labelled rows are there"),
        "{waiting}"
    );
    let runs = get(&target.address, "/api/v1/runs").json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    let champion = get(&target.address, "/api/v1/models/cancer-live@champion").json();
    assert_eq!(champion["version"]["version"], 1, "{champion}");

    // Malformed digests are the caller's 400s, logged nowhere: no forged line, no escape code.
    under_attack(&mut target, "log-injection", 600.0, |address| {
        for path in [
            "/ui/artifacts/%0AERROR%20forged%20entry",
            "/ui/artifacts/%1B%5B31mred%0D%0AERROR%20forged",
            "/ui/artifacts/sha256:zz",
        ] {
            let answer = send(
                address,
                &format!("GET {path} HTTP/1.1\r\nhost: attack\r\nconnection: close\r\n\r\n"),
                b"",
            );
            assert_eq!(answer.status, 400, "{path}: {}", answer.text());
        }
    });
    let log = target.log.lock().unwrap().clone();
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR forged")) && !log.contains('\u{1b}'),
        "{log}"
    );

    // Guessing the admin token at network speed: five tries a minute per address.
    under_attack(&mut target, "sign-in-guessing", 600.0, |address| {
        let mut statuses = Vec::new();
        for guess in 0..20 {
            let form = format!("token=guess-{guess}&next=/ui/runs");
            let answer = send(
                address,
                &post_head(
                    "/ui/login",
                    form.len(),
                    "content-type: application/x-www-form-urlencoded\r\n",
                ),
                form.as_bytes(),
            );
            statuses.push(answer.status);
        }
        assert_eq!(&statuses[..5], &[401; 5]);
        assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    });
}
