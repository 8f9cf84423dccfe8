//! wflow as a cluster, end to end: a real PostgreSQL started on loopback, artifacts in a shared
//! folder through the object store, and real `wflow worker` and `wflow daemon` processes,
//! killed with SIGKILL at random points. Asserts that runs give what they give in one process,
//! that a worker killed mid-step loses its lease to another, and that 200 queued runs through
//! 3 workers and 2 daemons (whose leader is killed, twice) all succeed with every step recorded
//! once, and no cron slot doubled or lost.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wflow::store::{Location, RunFilter, RunRecord, RunStatus, StepStatus, Store};

use crate::pg_server::PgServer;
use crate::support::{post_json, repo, stderr, stdout, wasm_path};

const TOKEN: &str = "cluster-test-token";
const BEARER: &str = "Bearer cluster-test-token";

/// A cluster's database and shared artifact folder, and a project folder for its processes.
struct Cluster {
    url: String,
    dir: tempfile::TempDir,
}

/// A `wflow` process of the cluster, killed when dropped.
struct Process {
    child: Child,
    /// What it said about itself on its first line(s): its id, and an address for daemons.
    id: String,
    address: String,
    /// The line that said it was up.
    ready: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// SIGKILL, as a crash would.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a line of its stderr containing `text`.
    fn wait_for_line(&self, text: &str, seconds: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with `{text}` within {seconds} s"),
            }
        }
    }
}

impl Cluster {
    fn new() -> Cluster {
        let cluster = Cluster {
            url: PgServer::shared().new_database(),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(cluster.path().join("wf/data")).unwrap();
        std::fs::copy(wasm_path("noop"), cluster.path().join("wf/noop.wasm")).unwrap();
        cluster
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn artifacts(&self) -> String {
        format!("file://{}/shared-artifacts", self.path().display())
    }

    fn command(&self, args: &[&str], data_dir: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wflow"));
        command
            .args(args)
            .current_dir(self.path())
            .env("WFLOW_STORE", &self.url)
            .env("WFLOW_ARTIFACTS", self.artifacts())
            .env("WFLOW_DATA_DIR", self.path().join(data_dir))
            .env("WFLOW_CACHE_DIR", self.path().join(".wflow-cache"))
            .env("WFLOW_ADMIN_TOKEN", TOKEN)
            .env_remove("RUST_LOG");
        command
    }

    /// Starts a long-running process and waits for the line that says it is up.
    fn spawn(&self, args: &[&str], data_dir: &str, ready: &str) -> Process {
        let mut child = self
            .command(args, data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Process {
            child,
            id: String::new(),
            address: String::new(),
            ready: String::new(),
            lines,
        };
        let line = process.wait_for_line(ready, 120);
        process.ready = line.clone();
        process.id = line
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_string();
        process
    }

    fn worker(&self, concurrency: usize) -> Process {
        let concurrency = concurrency.to_string();
        self.spawn(
            &["worker", "--concurrency", &concurrency, "--lease", "2s"],
            "worker-data",
            "wflow worker",
        )
    }

    /// A daemon; it prints its id at once, and its address once it leads.
    fn daemon(&self, data_dir: &str) -> Process {
        self.spawn(
            &[
                "daemon",
                "--workflows",
                "wf",
                "--listen",
                "127.0.0.1:0",
                "--execute",
                "workers",
                "--max-runs",
                "24",
                "--max-steps",
                "48",
                "--standby-poll",
                "100ms",
            ],
            data_dir,
            "wflow daemon",
        )
    }

    /// Waits until a daemon leads and returns its API address.
    fn leading(daemon: &mut Process, seconds: u64) -> String {
        let line = daemon.wait_for_line("API and models on http://", seconds);
        daemon.address = line.rsplit("http://").next().unwrap().to_string();
        daemon.address.clone()
    }

    fn store(&self) -> Store {
        Store::open_at(
            &Location::Postgres {
                url: self.url.clone(),
                artifacts: None,
                dir: self.path().join("test-data"),
            },
            "test",
        )
        .unwrap()
    }

    fn runs(&self) -> Vec<RunRecord> {
        let mut runs = self.store().list_runs(&RunFilter::default()).unwrap();
        runs.reverse();
        runs
    }

    /// One value from the database (the tasks of the queue are not records of the store).
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let store = self.store();
        let sql = sql.to_string();
        store
            .postgres()
            .unwrap()
            .with_client(move |client| async move {
                let rows = client.simple_query(&sql).await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|message| match message {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).unwrap_or("").to_string())
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect())
            })
            .unwrap()
    }
}

fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {seconds} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn report(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}{}",
        stdout(output),
        stderr(output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn step<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {report:#}"))
}

#[test]
fn a_workflow_on_workers_gives_what_it_gives_in_one_process() {
    let cluster = Cluster::new();
    let workers = [cluster.worker(2), cluster.worker(2)];
    let workflow = repo().join("workflows/breast-cancer.toml");
    let workflow = workflow.to_str().unwrap();

    let local_dir = tempfile::tempdir().unwrap();
    let local = Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(["run", workflow, "--json"])
        .current_dir(local_dir.path())
        .env("WFLOW_CACHE_DIR", cluster.path().join(".wflow-cache"))
        .env_remove("WFLOW_DATA_DIR")
        .env_remove("WFLOW_STORE")
        .output()
        .unwrap();
    let local = report(&local);
    let remote = report(
        &cluster
            .command(
                &["run", workflow, "--json", "--execute", "workers"],
                "runner",
            )
            .output()
            .unwrap(),
    );
    for id in ["validate", "split", "train", "evaluate", "drift", "gate"] {
        assert_eq!(step(&remote, id)["status"], "ok", "{remote:#}");
        assert_eq!(
            step(&remote, id)["metrics"],
            step(&local, id)["metrics"],
            "step {id}"
        );
        assert_eq!(step(&remote, id)["outputs"], step(&local, id)["outputs"]);
    }
    // Every plugin call (seven: the champion had nothing to give) ran on a worker, once.
    let tasks = cluster.query(
        "SELECT count(*), count(DISTINCT worker), max(claims) FROM wflow_tasks WHERE state = 'done'",
    );
    assert_eq!(tasks[0][0], "7", "{tasks:?}");
    assert_eq!(tasks[0][2], "1", "{tasks:?}");
    let ids: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
    let used = cluster.query("SELECT DISTINCT worker FROM wflow_tasks");
    assert!(
        used.iter().all(|row| ids.contains(&row[0].as_str())),
        "{used:?} {ids:?}"
    );

    // The record is in the shared store: any process reads it, the registry included.
    let shown = report(
        &cluster
            .command(&["runs", "show", "1", "--json"], "reader")
            .output()
            .unwrap(),
    );
    assert_eq!(shown["run"]["status"], "succeeded", "{shown:#}");
    let why = cluster
        .command(&["models", "why", "breast-cancer@champion"], "reader")
        .output()
        .unwrap();
    assert!(stdout(&why).contains("champion is v1"), "{}", stdout(&why));

    // A second run reuses the steps whose inputs did not change from the shared step cache;
    // only the others (the champion's evaluation and the gate, now that there is a
    // champion) are queued.
    let again = report(
        &cluster
            .command(
                &["run", workflow, "--json", "--execute", "workers"],
                "runner",
            )
            .output()
            .unwrap(),
    );
    assert_eq!(step(&again, "train")["status"], "cached", "{again:#}");
    let ran = again["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "ok")
        .filter(|s| {
            let plugin = s["plugin"].as_str().unwrap();
            !plugin.starts_with("register-model") && !plugin.starts_with("load-model")
        })
        .count();
    assert_eq!(ran, 2, "{again:#}");
    assert_eq!(
        cluster.query("SELECT count(*) FROM wflow_tasks")[0][0],
        (7 + ran).to_string()
    );
}

/// A workflow whose one step sleeps in the `noop` plugin.
fn slow_workflow(sleep_ms: u64) -> String {
    format!(
        r#"
[workflow]
name = "slow"

[datasets.data]
path = "data/rows.csv"

[steps.wait]
uses = "noop.wasm"
inputs = {{ data = "data" }}
cache = false
with = {{ sleep_ms = {sleep_ms} }}
"#
    )
}

#[test]
fn issue_15_a_worker_killed_mid_step_loses_its_lease_and_another_finishes_the_step() {
    let cluster = Cluster::new();
    std::fs::write(cluster.path().join("wf/data/rows.csv"), "a\n1\n2\n").unwrap();
    std::fs::write(cluster.path().join("wf/slow.toml"), slow_workflow(1500)).unwrap();
    let first = cluster.worker(1);
    let run = cluster
        .command(
            &["run", "wf/slow.toml", "--json", "--execute", "workers"],
            "runner",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first worker has the step: killed in the middle of it.
    wait_until("the first worker claims the step", 60, || {
        !cluster
            .query(&format!(
                "SELECT id FROM wflow_tasks WHERE state = 'running' AND worker = '{}'",
                first.id
            ))
            .is_empty()
    });
    first.kill();
    let second = cluster.worker(1);
    let output = run.wait_with_output().unwrap();
    let report = report(&output);
    let wait = step(&report, "wait");
    assert_eq!(wait["status"], "ok", "{report:#}");
    // Counted as a second attempt, and recorded once, by the worker that finished it.
    assert_eq!(wait["attempts"], 2, "{report:#}");
    let tasks = cluster.query("SELECT state, claims, worker FROM wflow_tasks");
    assert_eq!(
        tasks,
        vec![vec!["done".to_string(), "2".into(), second.id.clone()]]
    );
    let store = cluster.store();
    let steps = store.steps(1).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].status, StepStatus::Succeeded);
    assert_eq!(steps[0].attempts, 2);
}

/// Five steps: four in parallel, then one after them all.
fn fan_out_workflow(extra: &str) -> String {
    let mut text = String::from(
        "[workflow]\nname = \"fan-out\"\noverlap = \"allow\"\nmax_active_runs = 1000\n\n[datasets.data]\npath = \"data/rows.csv\"\n",
    );
    for i in 1..=4 {
        text.push_str(&format!(
            "\n[steps.branch-{i}]\nuses = \"noop.wasm\"\ninputs = {{ data = \"data\" }}\ncache = false\nwith = {{ sleep_ms = {} }}\n",
            10 * i
        ));
    }
    text.push_str(
        "\n[steps.join]\nuses = \"noop.wasm\"\ninputs = { data = \"data\" }\nneeds = [\"branch-1\", \"branch-2\", \"branch-3\", \"branch-4\"]\ncache = false\nwith = { sleep_ms = 5 }\n",
    );
    text.push_str(extra);
    text
}

fn succeeded_runs(cluster: &Cluster) -> usize {
    cluster
        .store()
        .list_runs(&RunFilter {
            status: Some(RunStatus::Succeeded),
            ..RunFilter::default()
        })
        .unwrap()
        .len()
}

#[test]
fn issue_15_two_hundred_runs_through_three_workers_and_two_daemons_survive_kills() {
    let seed = crate::support::crash_seed();
    let mut random = seed;
    let cluster = Cluster::new();
    std::fs::write(cluster.path().join("wf/data/rows.csv"), "a\n1\n2\n3\n").unwrap();
    std::fs::write(
        cluster.path().join("wf/fan-out.toml"),
        fan_out_workflow("\n[triggers.tick]\ncron = \"* * * * * *\"\ncatch_up = \"all\"\n"),
    )
    .unwrap();
    let mut workers: Vec<Process> = (0..3).map(|_| cluster.worker(4)).collect();
    let mut first = cluster.daemon("daemon-a");
    let leader_address = Cluster::leading(&mut first, 60);
    let second = cluster.daemon("daemon-b");
    assert!(second.ready.contains("standby"), "{}", second.ready);

    // 200 runs asked of the leader; each is recorded as queued before the answer.
    let mut asked = Vec::new();
    for _ in 0..200 {
        let answer = post_json(
            &leader_address,
            "/api/v1/workflows/fan-out/trigger",
            &[("authorization", BEARER)],
            &serde_json::json!({}),
        );
        assert_eq!(answer.status, 202, "{}", answer.text());
        asked.push(answer.json()["run"].as_u64().unwrap());
    }

    // Kills at random points: a worker (replaced), the leader (restarted as a standby), twice.
    let mut daemons = vec![first, second];
    for round in 0..2 {
        let target = 20 + (crate::support::splitmix(&mut random) % 60) as usize + round * 60;
        wait_until("runs progress", 240, || succeeded_runs(&cluster) >= target);
        let victim = (crate::support::splitmix(&mut random) % workers.len() as u64) as usize;
        println!("round {round}: killing worker {victim} after {target} runs");
        workers.remove(victim).kill();
        workers.push(cluster.worker(4));

        let target = target + 10 + (crate::support::splitmix(&mut random) % 20) as usize;
        wait_until("runs progress", 240, || succeeded_runs(&cluster) >= target);
        let leader = daemons.remove(0);
        println!("round {round}: killing the leading daemon after {target} runs");
        let killed_at = Instant::now();
        leader.kill();
        Cluster::leading(&mut daemons[0], 30);
        println!(
            "round {round}: the standby leads {} ms after the kill",
            killed_at.elapsed().as_millis()
        );
        daemons.push(cluster.daemon(if round == 0 { "daemon-a" } else { "daemon-c" }));
        assert!(daemons[1].ready.contains("standby"), "{}", daemons[1].ready);
    }

    // Every asked-for run succeeds, its five steps each recorded once and succeeded.
    wait_until("all asked-for runs succeed", 300, || {
        let store = cluster.store();
        asked.iter().all(|id| {
            store
                .run(*id)
                .is_ok_and(|r| r.status == RunStatus::Succeeded)
        })
    });
    let store = cluster.store();
    for id in &asked {
        let steps = store.steps(*id).unwrap();
        assert_eq!(steps.len(), 5, "run {id}: {steps:#?}");
        let mut indexes: Vec<u32> = steps.iter().map(|s| s.index).collect();
        indexes.dedup();
        assert_eq!(indexes, [0, 1, 2, 3, 4]);
        assert!(
            steps.iter().all(|s| s.status == StepStatus::Succeeded),
            "run {id}: {steps:#?}"
        );
    }
    // Exactly one recorded result per step of each run's last generation.
    let doubled = cluster.query(
        "SELECT run, step, generation, count(*) FROM wflow_tasks WHERE state = 'done'
          GROUP BY run, step, generation, attempt HAVING count(*) > 1",
    );
    assert!(doubled.is_empty(), "{doubled:?}");
    let stuck = cluster.query(
        "SELECT count(*) FROM wflow_tasks WHERE state IN ('queued', 'running')
            AND run IN (SELECT DISTINCT run FROM wflow_tasks)",
    );
    println!("tasks still open (of runs in flight now): {stuck:?}");

    // One event log for the cluster, numbered across the leaders without gaps or repeats, and
    // no run finished twice.
    let events = store.events_after(0, 100_000).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    for id in &asked {
        let finished = events
            .iter()
            .filter(|e| e["run"] == *id && e["kind"] == "run-succeeded")
            .count();
        assert!(finished <= 1, "run {id} finished {finished} times");
    }

    // The cron trigger fired each second once, whoever led: no slot doubled, none lost.
    let runs = cluster.runs();
    let mut slots: Vec<u64> = runs
        .iter()
        .filter(|r| r.trigger.as_ref().is_some_and(|t| t.kind == "cron"))
        .map(|r| r.trigger.as_ref().unwrap().slot.unwrap())
        .collect();
    let count = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), count, "a cron slot ran twice");
    for pair in slots.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a cron slot was lost: {slots:?}");
    }
    println!(
        "{} runs in all ({} by cron), {} resumed after a kill",
        runs.len(),
        count,
        runs.iter()
            .filter(|r| r
                .transitions
                .iter()
                .any(|t| t.note.as_deref() == Some("resumed")))
            .count()
    );
    assert!(count > 0);
}

#[test]
fn serving_replicas_follow_an_alias_moved_from_another_machine() {
    let cluster = Cluster::new();
    let workflow = repo().join("workflows/breast-cancer.toml");
    let workflow = workflow.to_str().unwrap();
    for extra in [&[][..], &["--no-cache"][..]] {
        let mut args = vec!["run", workflow, "--json"];
        args.extend(extra);
        report(&cluster.command(&args, "runner").output().unwrap());
    }
    let store = cluster.store();
    let champion = store.alias("breast-cancer", "champion").unwrap().unwrap();
    let other = if champion == 1 { 2 } else { 1 };
    // Two replicas that read the registry every hour: only the notification moves them.
    let mut replicas: Vec<Process> = (0..2)
        .map(|i| {
            cluster.spawn(
                &[
                    "serve",
                    "--registry",
                    "breast-cancer",
                    "--listen",
                    "127.0.0.1:0",
                    "--watch",
                    "1h",
                ],
                &format!("replica-{i}"),
                "wflow serving",
            )
        })
        .collect();
    let served = |replica: &Process| -> String {
        crate::support::get(&replica.address, "/v2/models/breast-cancer").json()["versions"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    for replica in &mut replicas {
        replica.address = replica.ready.rsplit("http://").next().unwrap().to_string();
        assert_eq!(served(replica), champion.to_string());
    }
    let promoted = cluster
        .command(
            &[
                "models",
                "promote",
                &format!("breast-cancer@{other}"),
                "--reason",
                "moved from another machine",
            ],
            "operator",
        )
        .output()
        .unwrap();
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    wait_until("both replicas serve the promoted version", 30, || {
        replicas.iter().all(|r| served(r) == other.to_string())
    });
}
