//! The daemon end to end: the real `wflow daemon` on a folder of workflows in a temporary
//! directory, driven by its API, the CLI (which talks to it) and the shipped traffic generator.
//! One test per kind of trigger (the closed loop for drift, decay, files, cron with random kills
//! and restarts, manual with parameters), overlap and cancellation, reloading an edited
//! workflow, the grace period at SIGTERM, and the API's routes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use wflow::store::{RunFilter, RunRecord, RunStatus, Store};

use crate::support::{get, http, post_json, repo, stderr, stdout, wasm_path};

const TOKEN: &str = "daemon-test-token";
const BEARER: &str = "Bearer daemon-test-token";

/// A running `wflow daemon`, killed when dropped.
struct Daemon {
    child: Child,
    address: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_wflow"))
            .args(["daemon", "--workflows", "wf", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(dir)
            .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
            .env("WFLOW_ADMIN_TOKEN", TOKEN)
            .env_remove("WFLOW_DATA_DIR")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut daemon = Daemon {
            child,
            address: String::new(),
        };
        let mut reader = BufReader::new(daemon.child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("wflow daemon stopped before listening:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(address) = line.trim().split("on http://").nth(1) {
                daemon.address = address.to_string();
                std::thread::spawn(move || for _ in reader.lines() {});
                return daemon;
            }
        }
    }

    /// SIGKILL, as a crash would.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns how long the daemon took to exit and its status.
    fn terminate(mut self) -> (std::time::Duration, std::process::ExitStatus) {
        let started = std::time::Instant::now();
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        (started.elapsed(), status)
    }
}

/// A temporary project: a workflow folder `wf/` with the data, the test plugins beside it.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("wf/data")).unwrap();
        std::fs::copy(
            repo().join("workflows/data/breast_cancer.csv"),
            dir.path().join("wf/data/breast_cancer.csv"),
        )
        .unwrap();
        std::fs::copy(wasm_path("noop"), dir.path().join("wf/noop.wasm")).unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path().join("wf").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Written whole then renamed, as the daemon asks of files it watches.
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let temporary = path.with_file_name(format!(".{file}.partial"));
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
    }

    fn wflow(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_wflow"))
            .args(args)
            .current_dir(self.path())
            .env("WFLOW_CACHE_DIR", self.path().join(".wflow-cache"))
            .env("WFLOW_ADMIN_TOKEN", TOKEN)
            .env_remove("WFLOW_DATA_DIR")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn store(&self) -> Store {
        Store::open(self.path().join(".wflow")).unwrap()
    }

    fn runs(&self) -> Vec<RunRecord> {
        let mut runs = self.store().list_runs(&RunFilter::default()).unwrap();
        runs.reverse();
        runs
    }
}

/// A workflow of one `noop` step on a dataset, with extra TOML (triggers, policies).
fn noop_workflow(name: &str, data: &str, step: &str, extra: &str) -> String {
    format!(
        r#"
[workflow]
name = "{name}"

[datasets.data]
path = "{data}"

[steps.wait]
uses = "noop.wasm"
inputs = {{ data = "data" }}
cache = false
timeout = "5m"
with = {step}

{extra}
"#
    )
}

fn events_after(address: &str, since: u64) -> Vec<serde_json::Value> {
    get(address, &format!("/api/v1/events?since={since}&wait=1s")).json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn last_event(address: &str) -> u64 {
    events_after(address, 0)
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// Waits (long-polling the events) for an event after `since` of `kind` that `matches`.
fn wait_for(
    address: &str,
    since: u64,
    kind: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
    seconds: u64,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut since = since;
    loop {
        for event in events_after(address, since) {
            since = event["seq"].as_u64().unwrap();
            if event["kind"] == kind && matches(&event) {
                return event;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{kind}` event within {seconds} s: {:#?}",
            events_after(address, 0)
        );
    }
}

fn message(event: &serde_json::Value) -> &str {
    event["message"].as_str().unwrap()
}

#[test]
fn the_closed_loop_retrains_on_drift_canaries_and_promotes() {
    let project = Project::new();
    std::fs::copy(
        repo().join("workflows/cancer-live.toml"),
        project.path().join("wf/cancer-live.toml"),
    )
    .unwrap();
    let policy = repo().join("workflows/policies/closed-loop.toml");
    let daemon = Daemon::start(project.path(), &["--policy", policy.to_str().unwrap()]);
    let first = project.wflow(&["trigger", "cancer-live", "--wait"]);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert!(stdout(&first).contains("succeeded"), "{}", stdout(&first));
    wait_for(
        &daemon.address,
        0,
        "served",
        |e| e["model"] == "cancer-live",
        30,
    );

    // Live traffic whose distribution shifts after 600 requests, with feedback.
    let traffic = Command::new(env!("CARGO_BIN_EXE_wflow-traffic"))
        .args(["--url", &format!("http://{}", daemon.address)])
        .args(["--model", "cancer-live", "--target", "malignant"])
        .arg("--token-file")
        .arg(project.path().join(".wflow/feedback.token"))
        .arg("--data")
        .arg(repo().join("workflows/data/breast_cancer.csv"))
        .args([
            "--requests",
            "3000",
            "--shift-after",
            "600",
            "--rate",
            "300",
        ])
        .output()
        .unwrap();
    assert!(traffic.status.success(), "{}", stderr(&traffic));
    let drift = wait_for(
        &daemon.address,
        0,
        "triggered",
        |e| e["workflow"] == "cancer-live",
        60,
    );
    assert!(
        message(&drift).contains("drift trigger `drifted` fired"),
        "{drift}"
    );
    let promoted = wait_for(
        &daemon.address,
        0,
        "promoted",
        |e| e["model"] == "cancer-live",
        60,
    );
    assert!(
        message(&promoted).contains("v2 promoted over v1"),
        "{promoted}"
    );
    wait_for(
        &daemon.address,
        0,
        "registry",
        |e| message(e).contains("cancer-live@champion -> v2"),
        30,
    );
    // The traffic generator saw the new version answer the shifted traffic well.
    let report = stdout(&traffic);
    let last = report.lines().last().unwrap();
    assert!(last.contains("v2 "), "{report}");

    // Every step is visible: the runs, the registry's history, the metrics.
    let runs = project.wflow(&["runs", "list"]);
    let listed = stdout(&runs);
    assert!(
        listed.contains("manual") && listed.contains("drift"),
        "{listed}"
    );
    let why = project.wflow(&["models", "why", "cancer-live@champion"]);
    let why = stdout(&why);
    assert!(why.contains("automatic promotion: canary healthy"), "{why}");
    let metrics = get(&daemon.address, "/metrics").text();
    assert!(
        metrics.contains("wflow_promotions_total{model=\"cancer-live\"} 1"),
        "{metrics}"
    );
    drop(daemon);
    let runs = project.runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let retrain = runs[1].trigger.as_ref().unwrap();
    assert_eq!(retrain.kind, "drift");
    assert!(retrain.datasets["cancer"].contains("inputs"), "{retrain:?}");
    assert_eq!(runs[1].status, RunStatus::Succeeded);
}

#[test]
fn a_files_trigger_takes_each_new_file_once_even_across_a_crash() {
    let project = Project::new();
    let header = "a,b\n";
    let rows = |n: usize| -> String {
        let mut text = header.to_string();
        for i in 0..n {
            text.push_str(&format!("{i},{}\n", i * 2));
        }
        text
    };
    std::fs::create_dir_all(project.path().join("wf/incoming")).unwrap();
    project.write("seed.csv", &rows(1));
    project.write(
        "ingest.toml",
        &noop_workflow(
            "ingest",
            "seed.csv",
            "{}",
            "[triggers.arrivals]\nfiles = \"incoming/*.csv\"\ndataset = \"data\"\nmin_new_rows = 60\npoll = \"200ms\"\n",
        ),
    );
    let daemon = Daemon::start(project.path(), &[]);
    // 50 rows are not enough; 30 more are, and the run takes both files.
    project.write("incoming/a.csv", &rows(50));
    project.write("incoming/b.csv", &rows(30));
    let started = wait_for(
        &daemon.address,
        0,
        "run-started",
        |e| e["workflow"] == "ingest",
        30,
    );
    assert!(
        message(&started).contains("2 new file(s), 80 rows: a.csv, b.csv"),
        "{started}"
    );
    let done = wait_for(&daemon.address, 0, "run-succeeded", |_| true, 30);
    assert_eq!(done["run"], started["run"]);
    daemon.kill();

    // After a crash, the files already taken are not taken again: the next run has c.csv only.
    let daemon = Daemon::start(project.path(), &[]);
    project.write("incoming/c.csv", &rows(70));
    let started = wait_for(
        &daemon.address,
        0,
        "run-started",
        |e| e["workflow"] == "ingest",
        30,
    );
    assert!(
        message(&started).contains("1 new file(s), 70 rows: c.csv"),
        "{started}"
    );
    wait_for(
        &daemon.address,
        0,
        "run-succeeded",
        |e| e["run"] == started["run"],
        30,
    );
    drop(daemon);
    let runs = project.runs();
    assert_eq!(runs.len(), 2);
    // The run read the combined new data.
    let datasets = &runs[0].datasets;
    assert_eq!(datasets[0].rows, 80, "{datasets:?}");
    assert_eq!(runs[1].datasets[0].rows, 70);
}

#[test]
fn cron_slots_fire_exactly_once_when_the_daemon_is_killed_at_random_points() {
    let seed = crate::support::crash_seed();
    let mut state = seed;
    let project = Project::new();
    project.write("data.csv", "a\n1\n");
    project.write(
        "ticker.toml",
        &noop_workflow(
            "ticker",
            "data.csv",
            "{ sleep_ms = 300 }",
            "[triggers.every-second]\ncron = \"* * * * * *\"\ncatch_up = \"all\"\n",
        ),
    );
    for round in 0..5 {
        let daemon = Daemon::start(project.path(), &[]);
        // Killed after a random number of run events: between runs, or in the middle of one.
        let events = 1 + crate::support::splitmix(&mut state) % 4;
        let mut since = 0;
        let mut seen = 0;
        while seen < events {
            for event in events_after(&daemon.address, since) {
                since = event["seq"].as_u64().unwrap();
                if event["kind"].as_str().unwrap().starts_with("run-") {
                    seen += 1;
                }
            }
        }
        println!("round {round}: killed after {seen} run events");
        daemon.kill();
    }
    // A last start catches up and finishes what was interrupted, then stops cleanly.
    let daemon = Daemon::start(project.path(), &[]);
    let since = last_event(&daemon.address);
    wait_for(&daemon.address, since, "run-succeeded", |_| true, 30);
    wait_for(&daemon.address, since, "run-succeeded", |_| true, 30);
    let (_, status) = daemon.terminate();
    assert!(status.success());

    let runs = project.runs();
    let mut slots: Vec<u64> = runs
        .iter()
        .map(|r| r.trigger.as_ref().unwrap().slot.unwrap())
        .collect();
    let count = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), count, "a slot ran twice: {runs:#?}");
    // No slot lost between the first and the last: one per second.
    for pair in slots.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a slot was lost: {slots:?}");
    }
    // Every run ended well, those interrupted by a kill after being resumed.
    for run in &runs {
        assert!(
            matches!(run.status, RunStatus::Succeeded | RunStatus::Interrupted),
            "{run:?}"
        );
    }
    let interrupted_then_resumed = runs
        .iter()
        .filter(|r| {
            r.transitions
                .iter()
                .any(|t| t.note.as_deref() == Some("resumed"))
        })
        .count();
    println!(
        "{} runs, {interrupted_then_resumed} resumed after a kill",
        runs.len()
    );
    // A run still interrupted at the end can only be the one the final stop cut short.
    assert!(
        runs.iter()
            .filter(|r| r.status == RunStatus::Interrupted)
            .count()
            <= 1,
        "{runs:#?}"
    );
}

#[test]
fn manual_triggers_take_parameters_and_overlapping_runs_follow_the_policy() {
    let project = Project::new();
    project.write("data.csv", "a\n1\n");
    project.write(
        "slow.toml",
        &noop_workflow("slow", "data.csv", "{ sleep_ms = 600000 }", "")
            .replace("name = \"slow\"", "name = \"slow\"\noverlap = \"forbid\""),
    );
    project.write(
        "fresh.toml",
        &noop_workflow("fresh", "data.csv", "{ sleep_ms = 600000 }", "").replace(
            "name = \"fresh\"",
            "name = \"fresh\"\noverlap = \"replace\"",
        ),
    );
    let daemon = Daemon::start(project.path(), &[]);

    // forbid: a second request while a run runs is skipped.
    let first = project.wflow(&["trigger", "slow"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let started = wait_for(
        &daemon.address,
        0,
        "run-started",
        |e| e["workflow"] == "slow",
        30,
    );
    let second = project.wflow(&["trigger", "slow"]);
    assert!(stdout(&second).contains("skipped"), "{}", stdout(&second));
    // Cancelled by the CLI through the API; resumable.
    let id = started["run"].as_u64().unwrap().to_string();
    let cancel = project.wflow(&["runs", "cancel", &id]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    wait_for(
        &daemon.address,
        0,
        "run-cancelled",
        |e| e["run"] == started["run"],
        30,
    );

    // replace: a newer run cancels the running one.
    project.wflow(&["trigger", "fresh"]);
    let older = wait_for(
        &daemon.address,
        0,
        "run-started",
        |e| e["workflow"] == "fresh",
        30,
    );
    let since = last_event(&daemon.address);
    project.wflow(&["trigger", "fresh"]);
    let replaced = wait_for(&daemon.address, since, "run-cancelled", |_| true, 30);
    assert_eq!(replaced["run"], older["run"]);
    assert!(
        message(&replaced).contains("replaced by a newer run"),
        "{replaced}"
    );
    let newer = wait_for(
        &daemon.address,
        since,
        "run-started",
        |e| e["workflow"] == "fresh",
        30,
    );

    // Parameters set a step's configuration for one run; a wrong one is refused with why.
    let since = last_event(&daemon.address);
    let cancel = project.wflow(&[
        "runs",
        "cancel",
        &newer["run"].as_u64().unwrap().to_string(),
    ]);
    assert!(cancel.status.success());
    wait_for(&daemon.address, since, "run-cancelled", |_| true, 30);
    let quick = project.wflow(&["trigger", "slow", "--param", "wait.sleep_ms=5", "--wait"]);
    assert!(
        quick.status.success(),
        "{}{}",
        stdout(&quick),
        stderr(&quick)
    );
    assert!(stdout(&quick).contains("succeeded"), "{}", stdout(&quick));
    let wrong = project.wflow(&["trigger", "slow", "--param", "nope.sleep_ms=5"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("no step `nope`"),
        "{}",
        stderr(&wrong)
    );
    let unknown = project.wflow(&["trigger", "missing"]);
    assert!(
        stderr(&unknown).contains("no workflow `missing`"),
        "{}",
        stderr(&unknown)
    );

    // The CLI reads the daemon's runs.
    let list = project.wflow(&["runs", "list", "--workflow", "slow"]);
    assert!(stdout(&list).contains("cancelled"), "{}", stdout(&list));
    let show = project.wflow(&["runs", "show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["run"]["status"], "cancelled");
    drop(daemon);
    let quick_run = project
        .runs()
        .into_iter()
        .rfind(|r| r.workflow == "slow")
        .unwrap();
    assert_eq!(
        quick_run.trigger.unwrap().params["wait.sleep_ms"],
        "5",
        "the parameter is kept with the run"
    );
}

#[test]
fn an_invalid_edit_is_reported_and_the_previous_version_keeps_running() {
    let project = Project::new();
    project.write("data.csv", "a\n1\n");
    let good = noop_workflow("edited", "data.csv", "{}", "");
    project.write("edited.toml", &good);
    let daemon = Daemon::start(project.path(), &[]);
    let since = last_event(&daemon.address);
    project.write(
        "edited.toml",
        &good.replace("uses = \"noop.wasm\"", "uses = \"nope.wasm\""),
    );
    let invalid = wait_for(&daemon.address, since, "workflow-invalid", |_| true, 30);
    assert!(
        message(&invalid).contains("the previous version keeps running"),
        "{invalid}"
    );
    assert!(message(&invalid).contains("edited.toml:"), "{invalid}");
    let run = project.wflow(&["trigger", "edited", "--wait"]);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let since = last_event(&daemon.address);
    project.write("edited.toml", &good.replace("{}", "{ sleep_ms = 1 }"));
    wait_for(
        &daemon.address,
        since,
        "workflow-reloaded",
        |e| e["workflow"] == "edited",
        30,
    );
    let workflows = get(&daemon.address, "/api/v1/workflows").json();
    assert_eq!(
        workflows["problems"].as_array().unwrap().len(),
        0,
        "{workflows}"
    );
}

#[test]
fn sigterm_lets_runs_finish_within_the_grace_period_and_interrupts_the_rest() {
    let project = Project::new();
    project.write("data.csv", "a\n1\n");
    project.write(
        "short.toml",
        &noop_workflow("short", "data.csv", "{ sleep_ms = 500 }", ""),
    );
    project.write(
        "long.toml",
        &noop_workflow("long", "data.csv", "{ sleep_ms = 600000 }", ""),
    );
    let daemon = Daemon::start(project.path(), &["--grace", "5s"]);
    project.wflow(&["trigger", "short"]);
    wait_for(
        &daemon.address,
        0,
        "run-started",
        |e| e["workflow"] == "short",
        30,
    );
    let (took, status) = daemon.terminate();
    assert!(status.success());
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let runs = project.runs();
    assert_eq!(
        runs[0].status,
        RunStatus::Succeeded,
        "the short run finished"
    );

    let daemon = Daemon::start(project.path(), &["--grace", "200ms"]);
    project.wflow(&["trigger", "long"]);
    let started = wait_for(
        &daemon.address,
        0,
        "run-started",
        |e| e["workflow"] == "long",
        30,
    );
    let (_, status) = daemon.terminate();
    assert!(status.success());
    let long = project
        .store()
        .run(started["run"].as_u64().unwrap())
        .unwrap();
    assert_eq!(long.status, RunStatus::Interrupted, "{long:?}");

    // The next start resumes it.
    let daemon = Daemon::start(project.path(), &[]);
    let resumed = wait_for(
        &daemon.address,
        0,
        "run-started",
        |e| e["workflow"] == "long",
        30,
    );
    assert_eq!(resumed["run"], started["run"]);
    assert!(message(&resumed).contains("resumed"), "{resumed}");
}

/// The breast-cancer model served by the daemon, trained twice (v1, then v2 promoted over it).
fn served_model(project: &Project, extra: &str) -> Daemon {
    let workflow = r#"
[workflow]
name = "bc"
[datasets.cancer]
path = "data/breast_cancer.csv"
[steps.split]
uses = "train-test-split"
inputs = { data = "cancer" }
with = { test_fraction = 0.25, seed = 42, stratify = "malignant" }
[steps.train]
uses = "logistic-regression"
inputs = { data = "split.train" }
target = "malignant"
[steps.evaluate]
uses = "classification-metrics"
inputs = { model = "train.model", data = "split.test" }
[steps.gate]
uses = "deployment-gate"
inputs = { candidate = "evaluate.evaluation" }
with = { no_champion = "promote" }
[steps.register]
uses = "register-model"
inputs = { model = "train.model", data = "split.train", evaluation = "evaluate.evaluation", decision = "gate.decision" }
"#;
    project.write("bc.toml", &format!("{workflow}\n{extra}"));
    let daemon = Daemon::start(project.path(), &[]);
    for _ in 0..2 {
        let run = project.wflow(&["trigger", "bc", "--wait"]);
        assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    }
    wait_for(
        &daemon.address,
        0,
        "redeployed",
        |e| message(e) == "now serving v2",
        30,
    );
    daemon
}

#[test]
fn decayed_live_quality_rolls_the_champion_back_and_retrains() {
    let project = Project::new();
    let daemon = served_model(
        &project,
        "[triggers.decayed]\ndecay = \"bc\"\nmetric = \"accuracy\"\nthreshold = 0.8\nmin_rows = 40\nrollback = true\ndataset = \"cancer\"\n",
    );
    let table = wflow::table::csv::read(
        &project.path().join("wf/data/breast_cancer.csv"),
        &Default::default(),
    )
    .unwrap();
    // The daemon holds the store: the model's features come from its API.
    let features: Vec<String> = serde_json::from_value(
        get(&daemon.address, "/api/v1/models/bc@2").json()["version"]["features"].clone(),
    )
    .unwrap();
    let since = last_event(&daemon.address);
    // Feedback says the model is wrong every time. The application sends its requests and the
    // truth with a credential: only then do they retrain the model.
    let bearer = format!("Bearer {TOKEN}");
    let authorized = [("authorization", bearer.as_str())];
    for row in 0..60 {
        let values: Vec<f64> = features
            .iter()
            .map(|f| table.column(f).unwrap().f64_at(row).unwrap())
            .collect();
        let answer = post_json(
            &daemon.address,
            "/v2/models/bc/infer",
            &authorized,
            &serde_json::json!({
                "id": format!("r{row}"),
                "inputs": [{ "name": "features", "shape": [1, values.len()], "datatype": "FP64", "data": values }],
                "outputs": [{ "name": "label" }],
            }),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        let label = answer.json()["outputs"][0]["data"][0]
            .as_str()
            .unwrap()
            .to_string();
        let wrong = if label == "1" { "0" } else { "1" };
        let truth = post_json(
            &daemon.address,
            "/v2/models/bc/feedback",
            &authorized,
            &serde_json::json!({ "id": format!("r{row}"), "truth": [wrong] }),
        );
        assert_eq!(truth.status, 200, "{}", truth.text());
    }
    let rolled_back = wait_for(
        &daemon.address,
        since,
        "rolled-back",
        |e| e["model"] == "bc",
        30,
    );
    assert!(
        message(&rolled_back).contains("champion v2 -> v1"),
        "{rolled_back}"
    );
    let triggered = wait_for(
        &daemon.address,
        since,
        "triggered",
        |e| e["workflow"] == "bc",
        30,
    );
    assert!(message(&triggered).contains("live accuracy"), "{triggered}");
    wait_for(
        &daemon.address,
        since,
        "run-succeeded",
        |e| e["workflow"] == "bc",
        60,
    );
    let history = project.wflow(&["models", "why", "bc@champion"]);
    assert!(
        stdout(&history).contains("decay trigger `decayed`"),
        "{}",
        stdout(&history)
    );
}

#[test]
fn the_api_serves_its_openapi_document_and_every_route_in_it() {
    let project = Project::new();
    project.write("data.csv", "a\n1\n");
    project.write("one.toml", &noop_workflow("one", "data.csv", "{}", ""));
    let daemon = Daemon::start(project.path(), &[]);
    let run = project.wflow(&["trigger", "one", "--wait"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let document = get(&daemon.address, "/api/v1/openapi.json").json();
    assert_eq!(document["openapi"], "3.0.3");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{document}");
    for (path, operations) in paths {
        let concrete = path.replace("{id}", "1").replace("{name}", "one");
        for (method, operation) in operations.as_object().unwrap() {
            let mutating = operation.get("security").is_some();
            let answer = http(&daemon.address, &method.to_uppercase(), &concrete, &[], b"");
            if mutating {
                assert_eq!(answer.status, 401, "{method} {path} without a token");
            } else {
                // Every route answers JSON (a 404 for a model `one` that does not exist says so).
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&answer.body).is_ok(),
                    "{method} {path}: {} {}",
                    answer.status,
                    answer.text()
                );
            }
        }
    }
    let triggered = http(
        &daemon.address,
        "POST",
        "/api/v1/workflows/one/trigger",
        &[("authorization", BEARER)],
        br#"{"params": {"wait.sleep_ms": 1}}"#,
    );
    assert_eq!(triggered.status, 202, "{}", triggered.text());
    let bad = http(
        &daemon.address,
        "POST",
        "/api/v1/workflows/one/trigger",
        &[("authorization", BEARER)],
        br#"{"params": {"wait": 1}}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    let runs = get(&daemon.address, "/api/v1/runs?workflow=one&limit=5").json();
    assert!(!runs["runs"].as_array().unwrap().is_empty(), "{runs}");
}

/// A cron trigger's state written when weekdays were numbered from 1 = Sunday: its slots were
/// another schedule's, so the daemon rereads it (says so, records the new reading) and goes on
/// without running the slots the old reading never had. The API shows the schedule and its
/// next slot as crontab reads it.
#[test]
fn issue_22_a_cron_state_from_the_old_weekday_reading_is_reread_without_catching_up() {
    let project = Project::new();
    std::fs::write(project.path().join("wf/data/rows.csv"), "x\n1\n").unwrap();
    project.write(
        "weekly.toml",
        "[workflow]\nname = \"weekly\"\n[datasets.data]\npath = \"data/rows.csv\"\n[steps.s]\nuses = \"noop.wasm\"\ninputs = { data = \"data\" }\n[triggers.mondays]\ncron = \"0 9 * * 1\"\ncatch_up = \"all\"\n",
    );
    // The last slot taken a month ago, in the old format (no reading version).
    let month_ago = wflow::store::records::now() - 31 * 86_400_000;
    project
        .store()
        .set_trigger_state(
            "weekly",
            "mondays",
            &serde_json::json!({ "slot": month_ago }),
        )
        .unwrap();
    let daemon = Daemon::start(project.path(), &[]);
    let reread = wait_for(&daemon.address, 0, "trigger-reread", |_| true, 30);
    assert!(
        message(&reread).contains("`0 9 * * 1` is now read as crontab reads it"),
        "{reread}"
    );
    let workflow = get(&daemon.address, "/api/v1/workflows/weekly").json();
    let trigger = &workflow["triggers"][0];
    assert_eq!(trigger["cron"], "0 9 * * 1", "{workflow}");
    assert_eq!(trigger["state"]["cron"], 2, "{workflow}");
    // The next slot is a Monday at 09:00 UTC.
    let next = chrono::DateTime::parse_from_rfc3339(trigger["next"].as_str().unwrap()).unwrap();
    assert_eq!(
        (next.format("%a %H:%M").to_string()),
        "Mon 09:00",
        "{workflow}"
    );
    drop(daemon);
    // Four or five Mondays passed in the month: none was caught up.
    assert!(project.runs().is_empty(), "{:?}", project.runs());
}

/// `--protect-reads` covers the API's reads too: runs, logs, lineage and events say a lot
/// about a company's data. Health and the OpenAPI document stay open.
#[test]
fn issue_22_protected_reads_cover_the_api() {
    let project = Project::new();
    let daemon = Daemon::start(project.path(), &["--protect-reads"]);
    for path in [
        "/api/v1",
        "/api/v1/runs",
        "/api/v1/workflows",
        "/api/v1/models",
        "/api/v1/events",
        "/v2/events",
        "/metrics",
    ] {
        assert_eq!(get(&daemon.address, path).status, 401, "{path}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let answer = http(
        &daemon.address,
        "GET",
        "/api/v1/runs",
        &[("authorization", bearer.as_str())],
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(get(&daemon.address, "/v2/health/live").status, 200);
    assert_eq!(get(&daemon.address, "/api/v1/openapi.json").status, 200);
}
