//! The daemon's figures: how fast a trigger becomes a running step, how many trivial runs it
//! gets through at once, and how much memory it needs idle.
//!
//! 1. Trigger to first step, in this process: a manual trigger (the request made, then the
//!    run's first step starting), and a files trigger (a file renamed into the watched folder,
//!    then the trigger firing, then the first step). 200 of each, one at a time.
//! 2. Throughput: 1,000 runs of a one-step workflow requested at once, `max_active_runs` and
//!    `--max-runs` 1,000; every run recorded and flushed to disk like any other.
//! 3. Memory: the real `wflow daemon` binary idle with one workflow, then with 100; its
//!    resident set size from `/proc`.
//!
//! Run with `cargo bench -p wflow --bench daemon`. Targets: trigger to first step <= 5 ms;
//! idle <= 50 MiB RSS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wflow::daemon::{self, DaemonConfig};
use wflow::plugin::{CompiledCache, Runtime};
use wflow::scheduler::{self, Request, Scheduler};
use wflow::serve::policy::Policy;

fn noop_wasm() -> PathBuf {
    PathBuf::from(env!("WFLOW_PLUGIN_ARTIFACTS")).join("noop.wasm")
}

fn workflow(name: &str, extra: &str) -> String {
    format!(
        r#"
[workflow]
name = "{name}"
max_active_runs = 1000

[datasets.data]
path = "data.csv"

[steps.noop]
uses = "noop.wasm"
inputs = {{ data = "data" }}
cache = false

{extra}
"#
    )
}

fn project(workflows: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wf = dir.path().join("wf");
    std::fs::create_dir_all(wf.join("incoming")).expect("folders");
    std::fs::write(wf.join("data.csv"), "a,b\n1,2\n").expect("data");
    std::fs::copy(noop_wasm(), wf.join("noop.wasm")).expect("the noop plugin was built");
    for (name, text) in workflows {
        std::fs::write(wf.join(format!("{name}.toml")), text).expect("workflow");
    }
    dir
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn quantiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (micros(at(0.5)), micros(at(0.99)))
}

/// Waits for the next event of `kind` for `workflow`.
async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<wflow::serve::ServeEvent>,
    kind: &str,
) -> wflow::serve::ServeEvent {
    // Bounded: a lost event must stop the bench with a message, not hang it.
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) if event.kind == kind => return event,
                Ok(_) => {}
                Err(err) => panic!("events while waiting for `{kind}`: {err}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no `{kind}` event within 30 s"))
}

fn in_process(tokio: &tokio::runtime::Runtime) {
    let dir = project(&[
        ("manual".into(), workflow("manual", "")),
        (
            "arrivals".into(),
            workflow(
                "arrivals",
                "[triggers.files]\nfiles = \"incoming/*.csv\"\ndataset = \"data\"\npoll = \"10s\"\n",
            ),
        ),
        ("many".into(), workflow("many", "")),
    ]);
    let runtime = Arc::new(
        Runtime::new(Some(CompiledCache::new(dir.path().join("compiled")))).expect("runtime"),
    );
    let config = DaemonConfig {
        workflows: dir.path().join("wf"),
        location: wflow::store::Location::Dir(dir.path().join("store")),
        on_workers: false,
        standby_poll: Duration::from_millis(500),
        listen: "127.0.0.1:0".parse().expect("address"),
        admin_token: Some("daemon-bench-token".into()),
        feedback_token: None,
        open_reads: true,
        max_body: 1 << 20,
        http: wflow::http::Limits::default(),
        policy: Policy::default(),
        limits: scheduler::Limits {
            max_runs: 1000,
            ..scheduler::Limits::default()
        },
        grace: Duration::from_secs(30),
        live_every: Duration::from_secs(1),
        runtime,
    };
    let (ready, started) = std::sync::mpsc::channel::<Arc<Scheduler>>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio.spawn(daemon::run(
        config,
        move |daemon| ready.send(daemon.scheduler.clone()).expect("report"),
        async move {
            let _ = stopped.await;
        },
    ));
    let scheduler = started.recv().expect("the daemon starts");
    let mut events = scheduler.server().subscribe();

    tokio.block_on(async {
        // Warm-up: plugins loaded and compiled, the store's files created.
        for _ in 0..20 {
            scheduler
                .submit(Request::manual("manual", Default::default()))
                .expect("submitted");
            next_event(&mut events, "run-succeeded").await;
        }
    });
    let mut manual = Vec::new();
    tokio.block_on(async {
        for _ in 0..200 {
            let request = Request::manual("manual", Default::default());
            let made = Instant::now();
            scheduler.submit(request).expect("submitted");
            next_event(&mut events, "run-succeeded").await;
            manual.push(made.elapsed());
        }
    });
    // The scheduler's own measurement, request made -> first step started, in quarter-octave
    // buckets (each figure is the end of its bucket).
    println!("trigger to first step, runs one at a time:");
    println!(
        "  manual, {} runs (warm-up included)           p50 <= {:>5.0} us  p99 <= {:>5.0} us",
        scheduler.latency.count(),
        micros(scheduler.latency.quantile(0.5)),
        micros(scheduler.latency.quantile(0.99))
    );
    let (m50, m99) = quantiles(manual);
    println!("  manual: requested -> run finished           p50 {m50:>7.0} us  p99 {m99:>7.0} us");

    // Files: from the rename into the folder to the trigger firing (file events, then a
    // listing), then to the first step.
    let incoming = dir.path().join("wf/incoming");
    let mut detect = Vec::new();
    let mut started_runs = Vec::new();
    let mut whole = Vec::new();
    tokio.block_on(async {
        for i in 0..200 {
            let staged = incoming.join(format!(".{i}.csv"));
            std::fs::write(&staged, "a,b\n3,4\n").expect("write");
            let written = Instant::now();
            std::fs::rename(&staged, incoming.join(format!("{i}.csv"))).expect("rename");
            next_event(&mut events, "triggered").await;
            detect.push(written.elapsed());
            next_event(&mut events, "run-started").await;
            started_runs.push(written.elapsed());
            next_event(&mut events, "run-succeeded").await;
            whole.push(written.elapsed());
        }
    });
    let (d50, d99) = quantiles(detect);
    let (s50, s99) = quantiles(started_runs);
    let (w50, w99) = quantiles(whole);
    println!("  files: file renamed -> trigger fired        p50 {d50:>7.0} us  p99 {d99:>7.0} us");
    println!("  files: file renamed -> run started          p50 {s50:>7.0} us  p99 {s99:>7.0} us");
    println!("  files: file renamed -> run finished         p50 {w50:>7.0} us  p99 {w99:>7.0} us");

    // Throughput: 1,000 runs requested at once.
    let began = Instant::now();
    tokio.block_on(async {
        for _ in 0..1000 {
            scheduler
                .submit(Request::manual("many", Default::default()))
                .expect("submitted");
        }
        let mut finished = 0;
        while finished < 1000 {
            let event = next_event(&mut events, "run-succeeded").await;
            if event.workflow.as_deref() == Some("many") {
                finished += 1;
            }
        }
    });
    let took = began.elapsed();
    println!(
        "1,000 concurrent one-step runs: {:.2} s, {:.0} runs/s (each recorded and flushed)",
        took.as_secs_f64(),
        1000.0 / took.as_secs_f64()
    );
    let _ = stop.send(());
    tokio.block_on(task).expect("daemon task").expect("daemon");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts the real binary on a project, waits until it listens and is idle, returns its RSS.
fn idle_rss(dir: &Path) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(["daemon", "--workflows", "wf", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
        .env("WFLOW_ADMIN_TOKEN", "daemon-bench-token")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wflow daemon");
    let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains("on http://") {
        line.clear();
        if reader.read_line(&mut line).expect("stderr") == 0 {
            panic!("the daemon stopped");
        }
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    // Idle: a few of its own ticks (the folder is listed every 2 s) after the start.
    let mut highest = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        highest = highest.max(rss_kib(child.id()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
    highest
}

fn memory() {
    let one = project(&[("one".into(), workflow("one", ""))]);
    // Compile the plugin once, so both measurements load it from the cache.
    idle_rss(one.path());
    let single = idle_rss(one.path());
    let hundred: Vec<(String, String)> = (0..100)
        .map(|i| {
            let name = format!("w{i:03}");
            let trigger = "[triggers.nightly]\ncron = \"0 2 * * *\"\n";
            (name.clone(), workflow(&name, trigger))
        })
        .collect();
    let many = project(&hundred);
    std::fs::create_dir_all(many.path().join(".wflow-cache")).expect("cache");
    idle_rss(many.path());
    let loaded = idle_rss(many.path());
    println!(
        "daemon idle RSS (highest over 5 s): 1 workflow {:.1} MiB, 100 workflows with cron triggers {:.1} MiB",
        single as f64 / 1024.0,
        loaded as f64 / 1024.0
    );
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    in_process(&tokio);
    memory();
}
