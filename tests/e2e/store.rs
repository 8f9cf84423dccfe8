//! The store through the real binary: run history, the step cache, the model registry and its
//! commands, artifacts (each of those on sled and on PostgreSQL), and crash safety (a `wflow
//! run` killed with SIGKILL at random points, checked every time, then resumed).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wflow::store::{RunFilter, RunStatus, StepStatus, Store, digest_of};

use crate::support::{repo, stderr, stdout, wflow};

/// A copy of the breast-cancer example (workflow and data) in `dir`.
fn breast_cancer(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(
        repo().join("workflows/data/breast_cancer.csv"),
        dir.join("data/breast_cancer.csv"),
    )
    .unwrap();
    let file = dir.join("breast-cancer.toml");
    std::fs::copy(repo().join("workflows/breast-cancer.toml"), &file).unwrap();
    file
}

/// Which store the commands use: the data directory's sled, or a PostgreSQL database (a new
/// one per test, on the test process's server) with artifacts in a folder of the test's.
enum Backend {
    Sled,
    Postgres(String),
}

impl Backend {
    fn postgres() -> Backend {
        Backend::Postgres(crate::pg_server::PgServer::shared().new_database())
    }
}

/// `wflow ARGS` in `dir` on `backend`.
fn cli(backend: &Backend, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wflow"));
    command
        .args(args)
        .current_dir(dir)
        .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
        .env_remove("WFLOW_DATA_DIR")
        .env_remove("WFLOW_STORE")
        .env_remove("WFLOW_ARTIFACTS")
        .env_remove("RUST_LOG");
    if let Backend::Postgres(url) = backend {
        command.env("WFLOW_STORE", url).env(
            "WFLOW_ARTIFACTS",
            format!("file://{}/objects", dir.display()),
        );
    }
    command.output().unwrap()
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}{}", stdout(output), stderr(output)))
}

fn ok(output: std::process::Output) -> std::process::Output {
    assert!(
        output.status.success(),
        "exit {:?}\n{}{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    output
}

fn a_second_run_reuses_every_step_and_registers_a_new_version(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    breast_cancer(dir.path());
    let first = json(&ok(cli(
        &backend,
        dir.path(),
        &["run", "--json", "breast-cancer.toml"],
    )));
    assert_eq!(first["run"], 1);
    let statuses = |report: &serde_json::Value| -> Vec<String> {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap().to_string())
            .collect()
    };
    // No champion yet: loading and evaluating it has nothing to do, and the run succeeds.
    for step in first["steps"].as_array().unwrap() {
        let expected = if step["id"].as_str().unwrap().starts_with("champion")
            || step["id"] == "evaluate-champion"
        {
            "n/a"
        } else {
            "ok"
        };
        assert_eq!(step["status"], expected, "{step}");
    }
    assert_eq!(first["succeeded"], true);

    let second = ok(cli(&backend, dir.path(), &["run", "breast-cancer.toml"]));
    let summary = stdout(&second);
    assert!(
        summary.contains("run 2 · workflow breast-cancer: succeeded"),
        "{summary}"
    );
    assert!(summary.contains("(6 reused)"), "{summary}");
    // The champion registered by the first run is now evaluated on the same holdout and the
    // gate compares the two.
    assert!(summary.contains("champion `accuracy` = 0.98"), "{summary}");
    for step in ["validate", "split", "train", "evaluate ", "drift"] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("no {step} in\n{summary}"));
        assert!(line.contains("cached"), "{line}");
    }
    // The registration is never cached: each run registers its own version.
    assert!(summary.contains("breast-cancer v2"), "{summary}");

    // A cached step's log is the one of the execution it reuses.
    let logs = stdout(&ok(cli(
        &backend,
        dir.path(),
        &["runs", "logs", "2", "train"],
    )));
    assert!(
        logs.contains("== train (cached, log of run 1) =="),
        "{logs}"
    );
    assert!(logs.lines().count() > 1, "{logs}");

    // --no-cache runs everything again, with the same results.
    let third = json(&ok(cli(
        &backend,
        dir.path(),
        &["run", "--no-cache", "--json", "breast-cancer.toml"],
    )));
    assert!(statuses(&third).iter().all(|s| s == "ok"), "{third}");
    let accuracy = |report: &serde_json::Value| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "evaluate")
            .unwrap()["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "accuracy")
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(accuracy(&first), accuracy(&third));

    // A changed configuration misses the cache for that step and everything after it.
    let file = dir.path().join("breast-cancer.toml");
    // Renaming a step keeps its cache: the key is what the step computes, not what it is called.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("test_fraction = 0.25", "test_fraction = 0.3")
        .replace("[steps.validate]", "[steps.checks]")
        .replace("\"validate\"", "\"checks\"");
    std::fs::write(&file, text).unwrap();
    let changed = json(&ok(cli(
        &backend,
        dir.path(),
        &["run", "--json", "breast-cancer.toml"],
    )));
    let by_id = |id: &str| {
        changed["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(by_id("checks"), "cached");
    assert_eq!(by_id("split"), "ok");
    assert_eq!(by_id("train"), "ok");

    let runs = json(&ok(cli(&backend, dir.path(), &["runs", "list", "--json"])));
    let ids: Vec<u64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [4, 3, 2, 1]);
    let failed = json(&ok(cli(
        &backend,
        dir.path(),
        &["runs", "list", "--status", "failed", "--json"],
    )));
    assert_eq!(failed.as_array().unwrap().len(), 0);
}

#[test]
fn a_second_run_reuses_every_step_and_registers_a_new_version_on_sled() {
    a_second_run_reuses_every_step_and_registers_a_new_version(Backend::Sled);
}

#[test]
fn a_second_run_reuses_every_step_and_registers_a_new_version_on_postgres() {
    a_second_run_reuses_every_step_and_registers_a_new_version(Backend::postgres());
}

fn runs_show_logs_and_artifacts_get_reach_every_recorded_output(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    breast_cancer(dir.path());
    ok(cli(&backend, dir.path(), &["run", "breast-cancer.toml"]));
    let shown = json(&ok(cli(
        &backend,
        dir.path(),
        &["runs", "show", "1", "--json"],
    )));
    assert_eq!(shown["run"]["status"], "succeeded");
    assert_eq!(shown["run"]["datasets"][0]["rows"], 569);
    let steps = shown["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    let train = steps.iter().find(|s| s["id"] == "train").unwrap();
    assert!(
        train["plugin_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(train["inputs"][0]["source"], "split.train");
    let onnx = train["outputs"][0]["onnx"].as_str().unwrap().to_string();

    // The ONNX file comes back byte for byte, by a short digest prefix too.
    let out = dir.path().join("model.onnx");
    ok(cli(
        &backend,
        dir.path(),
        &["artifacts", "get", &onnx[..20], "-o", out.to_str().unwrap()],
    ));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(digest_of(&bytes), onnx);
    wflow::inference::Session::load(&bytes, None).expect("the stored model loads in tract");

    let human = stdout(&ok(cli(&backend, dir.path(), &["runs", "show", "1"])));
    assert!(
        human.contains("run 1: breast-cancer (succeeded)"),
        "{human}"
    );
    assert!(human.contains("out model = Model"), "{human}");

    let logs = stdout(&ok(cli(
        &backend,
        dir.path(),
        &["runs", "logs", "1", "train"],
    )));
    assert!(logs.contains("== train (succeeded) =="), "{logs}");
    assert!(logs.lines().count() > 1, "{logs}");
    let missing = cli(&backend, dir.path(), &["runs", "logs", "1", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("run 1 has no step `nope`"));

    let unknown = cli(&backend, dir.path(), &["runs", "show", "99"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no run 99"),
        "{}",
        stderr(&unknown)
    );

    // A tampered artifact is refused with both digests.
    let hex = onnx.trim_start_matches("sha256:");
    let path = match &backend {
        Backend::Sled => dir.path().join(".wflow/artifacts/sha256"),
        Backend::Postgres(_) => dir.path().join("objects/sha256"),
    }
    .join(&hex[..2])
    .join(&hex[2..]);
    std::fs::write(&path, b"tampered").unwrap();
    let tampered = cli(
        &backend,
        dir.path(),
        &["artifacts", "get", &onnx, "-o", "x.onnx"],
    );
    assert_eq!(tampered.status.code(), Some(2));
    let message = stderr(&tampered);
    assert!(message.contains("is corrupt"), "{message}");
    assert!(message.contains(&digest_of(b"tampered")), "{message}");
}

#[test]
fn runs_show_logs_and_artifacts_get_reach_every_recorded_output_on_sled() {
    runs_show_logs_and_artifacts_get_reach_every_recorded_output(Backend::Sled);
}

#[test]
fn runs_show_logs_and_artifacts_get_reach_every_recorded_output_on_postgres() {
    runs_show_logs_and_artifacts_get_reach_every_recorded_output(Backend::postgres());
}

fn the_registry_records_lineage_and_every_alias_move(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    breast_cancer(dir.path());
    ok(cli(&backend, dir.path(), &["run", "breast-cancer.toml"]));
    ok(cli(&backend, dir.path(), &["run", "breast-cancer.toml"]));

    let listed = json(&ok(cli(
        &backend,
        dir.path(),
        &["models", "list", "--json"],
    )));
    assert_eq!(listed[0]["name"], "breast-cancer");
    assert_eq!(listed[0]["latest"], 2);
    assert_eq!(listed[0]["aliases"]["champion"], 2);

    let shown = json(&ok(cli(
        &backend,
        dir.path(),
        &["models", "show", "breast-cancer@champion", "--json"],
    )));
    let version = &shown["version"];
    assert_eq!(version["version"], 2);
    assert_eq!(version["target"], "malignant");
    assert_eq!(version["features"].as_array().unwrap().len(), 30);
    assert_eq!(version["training_data"]["rows"], 427);
    assert_eq!(
        version["training_data"]["sources"][0]["path"],
        dir.path()
            .join("data/breast_cancer.csv")
            .display()
            .to_string()
    );
    let reference = &version["reference"]["mean_radius"];
    assert_eq!(reference["type"], "numeric");
    assert_eq!(reference["deciles"].as_array().unwrap().len(), 11);
    let lineage: Vec<&str> = version["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["step"].as_str().unwrap())
        .collect();
    for step in ["validate", "split", "train", "evaluate", "drift", "gate"] {
        assert!(lineage.contains(&step), "{lineage:?}");
    }
    assert!(
        version["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m[0] == "accuracy")
    );

    // Promote v1 back by hand, then roll back: the alias returns to v2.
    let promote = ok(cli(
        &backend,
        dir.path(),
        &[
            "models",
            "promote",
            "breast-cancer@1",
            "--alias",
            "champion",
            "--reason",
            "v2 misbehaves in production",
        ],
    ));
    assert!(stdout(&promote).contains("breast-cancer@champion: v2 -> v1"));
    let rollback = ok(cli(
        &backend,
        dir.path(),
        &[
            "models",
            "rollback",
            "breast-cancer",
            "--reason",
            "false alarm",
        ],
    ));
    assert!(
        stdout(&rollback).contains("v1 -> v2"),
        "{}",
        stdout(&rollback)
    );

    let why = stdout(&ok(cli(
        &backend,
        dir.path(),
        &["models", "why", "breast-cancer@champion"],
    )));
    for expected in [
        "breast-cancer@champion is v2",
        "427 rows x 31 columns",
        "breast_cancer.csv",
        "trained   by `train` logistic-regression@",
        "validate",
        "37/37 checks passed",
        "accuracy=",
        "gate      + decision: promote",
        "history",
        "v2 misbehaves in production",
        "(rollback): false alarm",
    ] {
        assert!(why.contains(expected), "missing `{expected}` in\n{why}");
    }
    let history = json(&ok(cli(
        &backend,
        dir.path(),
        &["models", "why", "breast-cancer@champion", "--json"],
    )));
    assert_eq!(history["history"].as_array().unwrap().len(), 4);

    let bad = cli(
        &backend,
        dir.path(),
        &["models", "promote", "breast-cancer", "--reason", "x"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("NAME@VERSION"), "{}", stderr(&bad));
    let missing = cli(
        &backend,
        dir.path(),
        &["models", "why", "breast-cancer@canary"],
    );
    assert!(
        stderr(&missing).contains("has no alias `canary` (its aliases: champion)"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn the_registry_records_lineage_and_every_alias_move_on_sled() {
    the_registry_records_lineage_and_every_alias_move(Backend::Sled);
}

#[test]
fn the_registry_records_lineage_and_every_alias_move_on_postgres() {
    the_registry_records_lineage_and_every_alias_move(Backend::postgres());
}

#[test]
fn a_store_in_use_or_damaged_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    breast_cancer(dir.path());
    let data = dir.path().join(".wflow");
    {
        let _held = Store::open(&data).unwrap();
        let busy = wflow(dir.path(), &["runs", "list"]);
        assert_eq!(busy.status.code(), Some(2));
        assert!(
            stderr(&busy).contains("is in use by another wflow process"),
            "{}",
            stderr(&busy)
        );
    }
    for entry in std::fs::read_dir(data.join("db")).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::write(entry.path(), vec![0x5A; 8192]).unwrap();
        }
    }
    let damaged = wflow(dir.path(), &["runs", "list"]);
    assert_eq!(damaged.status.code(), Some(2));
    let message = stderr(&damaged);
    assert!(message.contains(&data.display().to_string()), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

/// A small deterministic generator, so a failing sequence of kill points can be replayed with
/// `WFLOW_CRASH_SEED`.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Checks everything a crash must not break: the store opens, every record reads, no step is
/// left running, and every completed step's outputs are there and verify.
fn check_store(data: &Path, context: &str) -> Vec<u64> {
    let store = Store::open(data).unwrap_or_else(|err| panic!("{context}: {err}"));
    let runs = store
        .list_runs(&RunFilter::default())
        .unwrap_or_else(|err| panic!("{context}: {err}"));
    let mut interrupted = Vec::new();
    for run in &runs {
        assert_ne!(run.status, RunStatus::Running, "{context}: run {}", run.id);
        if run.status == RunStatus::Interrupted {
            interrupted.push(run.id);
        }
        for step in store.steps(run.id).unwrap() {
            assert_ne!(
                step.status,
                StepStatus::Running,
                "{context}: run {} step {}",
                run.id,
                step.id
            );
            if step.status.completed() {
                for output in &step.outputs {
                    store
                        .artifacts()
                        .get(&output.value.digest)
                        .unwrap_or_else(|err| panic!("{context}: {err}"));
                }
            }
        }
    }
    interrupted
}

#[test]
fn a_run_killed_at_random_points_leaves_a_consistent_store_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = breast_cancer(dir.path());
    let data = dir.path().join(".wflow");
    // One clean run (it also fills the compiled-plugin cache) counts the progress lines.
    let clean = ok(wflow(
        dir.path(),
        &["run", "--no-cache", "breast-cancer.toml"],
    ));
    let lines = stderr(&clean).lines().count() as u64;
    let seed = crate::support::crash_seed();
    let mut random = Lcg(seed);
    let mut killed_mid_run = 0;
    for round in 0..12 {
        // Kill after a random number of progress lines: before the first step, between steps,
        // or inside one (plugins report progress while they work).
        let after = random.below(lines + 1);
        let mut child = Command::new(env!("CARGO_BIN_EXE_wflow"))
            .args(["run", "--no-cache", file.to_str().unwrap()])
            .current_dir(dir.path())
            .env("WFLOW_CACHE_DIR", dir.path().join(".wflow-cache"))
            .env_remove("WFLOW_DATA_DIR")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        for _ in 0..after {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_run += 1;
        }
        check_store(
            &data,
            &format!("seed {seed} round {round} after {after} lines"),
        );
    }
    assert!(killed_mid_run > 0, "seed {seed}: no round killed a run");

    // The last interrupted run resumes: its completed steps are not run again.
    let interrupted = check_store(&data, "before resuming");
    let Some(&id) = interrupted.last() else {
        panic!("seed {seed}: no run was left interrupted");
    };
    let store = Store::open(&data).unwrap();
    let completed: Vec<String> = store
        .steps(id)
        .unwrap()
        .into_iter()
        .filter(|s| s.status.completed())
        .map(|s| s.id)
        .collect();
    drop(store);
    let resumed = ok(wflow(dir.path(), &["runs", "resume", &id.to_string()]));
    let summary = stdout(&resumed);
    assert!(
        summary.contains(&format!("run {id} · workflow breast-cancer: succeeded")),
        "{summary}"
    );
    for step in &completed {
        let row = summary
            .lines()
            .find(|l| l.starts_with(step.as_str()))
            .unwrap();
        assert!(row.contains("resumed"), "{step} ran again:\n{summary}");
    }
    let store = Store::open(&data).unwrap();
    let run = store.run(id).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(
        run.transitions
            .iter()
            .any(|t| t.status == RunStatus::Interrupted)
    );
    // A resumed registration is not registered twice.
    let registered = store
        .versions("breast-cancer")
        .unwrap()
        .into_iter()
        .filter(|v| v.run == id)
        .count();
    assert_eq!(registered, 1);
}

#[test]
fn host_steps_are_checked_like_plugins() {
    let dir = tempfile::tempdir().unwrap();
    breast_cancer(dir.path());
    std::fs::write(
        dir.path().join("w.toml"),
        r#"[workflow]
name = "w"

[steps.champion]
uses = "load-model"
with = { name = "breast-cancer", alias = "champion", version = 2 }

[steps.other]
uses = "load-model"
with = { nme = "breast-cancer" }

[steps.valid]
uses = "load-model"
with = { name = "breast-cancer", version = 1 }

[steps.register]
uses = "register-model"
inputs = { model = "valid.weights" }

[steps.after]
uses = "register-model"
inputs = { model = "register.model" }
"#,
    )
    .unwrap();
    let output = wflow(dir.path(), &["validate", "w.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let problems = stderr(&output);
    for expected in [
        "w.toml:6:8: step `champion`: configuration: give `alias` or `version`, not both",
        "step `other`: configuration: unknown field `nme`",
        "step `register`: step `valid` loads a model and has one output, `valid.model`; it has no output `weights`",
        "step `after`: step `register` registers a model and has no outputs",
    ] {
        assert!(
            problems.contains(expected),
            "missing `{expected}` in\n{problems}"
        );
    }
}
