//! The `wflow` binary as a user runs it: exit codes, messages, JSON output.

use crate::support::{self, stderr, stdout, wflow};

#[test]
fn run_prints_a_summary_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = support::repo().join("workflows/breast-cancer.toml");
    let output = wflow(dir.path(), &["run", file.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let summary = stdout(&output);
    assert!(
        summary.contains("workflow breast-cancer: succeeded"),
        "{summary}"
    );
    for step in [
        "validate", "split", "train", "groups", "evaluate", "drift", "gate",
    ] {
        assert!(
            summary.lines().any(|l| l.starts_with(step)),
            "no line for {step}: {summary}"
        );
    }
    assert!(summary.contains("accuracy="), "{summary}");
    assert!(summary.contains("decision:"), "{summary}");
}

#[test]
fn run_json_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let file = support::repo().join("workflows/breast-cancer.toml");
    let output = wflow(dir.path(), &["run", "--json", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["succeeded"], true);
    assert_eq!(report["run"], 1);
    assert_eq!(report["steps"].as_array().unwrap().len(), 10);
}

#[test]
fn a_failed_step_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "x\n1\n").unwrap();
    let hostile = support::wasm_path("hostile");
    std::fs::write(
        dir.path().join("w.toml"),
        format!(
            "[workflow]\nname = \"w\"\n[datasets.d]\npath = \"d.csv\"\n[steps.s]\nuses = \"{}\"\ninputs = {{ data = \"d\" }}\nwith = {{ behaviour = \"panic\" }}\n",
            hostile.display()
        ),
    )
    .unwrap();
    let output = wflow(dir.path(), &["run", "w.toml"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).contains("panic"), "{}", stdout(&output));
}

#[test]
fn validate_reports_every_problem_with_its_location_and_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "x,y\n1,2\n").unwrap();
    std::fs::write(
        dir.path().join("w.toml"),
        r#"[workflow]
name = "w"

[datasets.d]
path = "missing.csv"

[steps.a]
uses = "no-such-plugin"
inputs = { data = "d" }

[steps.b]
uses = "schema-check"
inputs = { data = "d" }
with = { min_rows = "many" }
"#,
    )
    .unwrap();
    let output = wflow(dir.path(), &["validate", "w.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(errors.contains("w.toml:5:8: dataset `d`"), "{errors}");
    assert!(
        errors.contains("w.toml:8:8: step `a`: unknown plugin `no-such-plugin`"),
        "{errors}"
    );
    assert!(
        errors.contains("w.toml:14:21: step `b`: configuration at `/min_rows`"),
        "{errors}"
    );
}

#[test]
fn validate_accepts_the_examples() {
    let dir = tempfile::tempdir().unwrap();
    let file = support::repo().join("workflows/breast-cancer.toml");
    let output = wflow(dir.path(), &["validate", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("valid"));
}

#[test]
fn plugin_inspect_shows_kind_version_schema_and_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = support::wasm_path("needs-read");
    let output = wflow(
        dir.path(),
        &["plugin", "inspect", "--json", wasm.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(info["kind"], "validator");
    assert_eq!(
        info["contract"],
        format!("wflow:plugin@{}", wflow::plugin::CONTRACT_VERSION)
    );
    assert!(info["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(info["capabilities"][0], "read files under /data");
    assert!(info["config_schema"].is_object());

    let output = wflow(dir.path(), &["plugin", "inspect", "logistic-regression"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("kind:         trainer"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn inspecting_an_incompatible_plugin_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = support::wasm_path("future-version");
    let output = wflow(dir.path(), &["plugin", "inspect", wasm.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("wflow:plugin@0.2.0"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_is_available_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["validate", "--help"],
        vec!["plugin", "inspect", "--help"],
    ] {
        let output = wflow(dir.path(), &args);
        assert!(output.status.success(), "{args:?}");
        assert!(stdout(&output).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn configuration_errors_name_the_option_and_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "x\n1\n").unwrap();
    std::fs::write(
        dir.path().join("w.toml"),
        r#"[workflow]
name = "w"
[datasets.d]
path = "d.csv"
[steps.i]
uses = "impute"
inputs = { data = "d" }
with = { strategy = "mode", colums = ["x"] }
"#,
    )
    .unwrap();
    let output = wflow(dir.path(), &["validate", "w.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(
        errors.contains(r#"w.toml:8:21: step `i`: configuration at `/strategy`: "mode" is not one of "mean", "median", "most_frequent", "constant""#),
        "{errors}"
    );
    assert!(
        errors.contains("w.toml:8:38: step `i`: configuration at `/colums`: unknown option `colums`, did you mean `columns`?"),
        "{errors}"
    );
}

/// `wflow run ... | head`: the reader goes away before the summary is printed. The run must
/// finish and be recorded as succeeded, not die of SIGPIPE and be left interrupted.
#[test]
fn issue_22_a_run_whose_reader_goes_away_still_finishes_and_an_output_command_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = support::repo().join("workflows/iris.toml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(["run", file.to_str().unwrap()])
        .current_dir(dir.path())
        .env("WFLOW_CACHE_DIR", dir.path().join(".wflow-cache"))
        .env_remove("WFLOW_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The pipe's read end closes before anything is read: every write to stdout fails.
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let store = wflow::store::Store::open(dir.path().join(".wflow")).unwrap();
    let runs = store.list_runs(&Default::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, wflow::store::RunStatus::Succeeded);
    // `wflow artifacts get D | head -c1`: the reader's leaving ends the command quietly, with
    // the status of a process a SIGPIPE ended.
    let digest = store.artifacts().put(&vec![7u8; 8 << 20]).unwrap();
    drop(store);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(["artifacts", "get", &digest])
        .current_dir(dir.path())
        .env("WFLOW_CACHE_DIR", dir.path().join(".wflow-cache"))
        .env_remove("WFLOW_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(141), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
