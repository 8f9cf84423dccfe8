//! Plugins in any language: `wflow plugin new` then `wflow plugin build` give a component that
//! runs in its project's test workflow, in Rust, Python and JavaScript; the Python and
//! JavaScript plugins of `plugins/` run in an example workflow beside Rust plugins.

use crate::support::{self, stderr, stdout};

fn wflow(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(args)
        .current_dir(dir)
        .env("WFLOW_CACHE_DIR", dir.join(".compiled"))
        .env_remove("WFLOW_DATA_DIR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Creates, builds and runs the test workflow of a new project; returns the run's summary.
fn new_build_run(name: &str, kind: &str, lang: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let created = wflow(
        dir.path(),
        &["plugin", "new", name, "--kind", kind, "--lang", lang],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let project = dir.path().join(name);
    for file in [
        "wflow-plugin.toml",
        "wit/worlds.wit",
        "README.md",
        "workflow.toml",
        "data/sample.csv",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let built = wflow(&project, &["plugin", "build"]);
    assert!(
        built.status.success(),
        "{}{}",
        stdout(&built),
        stderr(&built)
    );
    assert!(
        stdout(&built).contains(&format!("build/{name}.wasm ({kind} {name} 0.1.0")),
        "{}",
        stdout(&built)
    );
    assert!(project.join("build").join(format!("{name}.wasm")).is_file());
    let run = wflow(&project, &["run", "workflow.toml"]);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let inspect = wflow(
        &project,
        &["plugin", "inspect", &format!("build/{name}.wasm")],
    );
    assert!(
        stdout(&inspect).contains(&format!("kind:         {kind}")),
        "{}",
        stdout(&inspect)
    );
    stdout(&run)
}

#[test]
fn a_new_python_validator_builds_and_runs_in_two_commands() {
    let summary = new_build_run("row-rules", "validator", "python");
    assert!(summary.contains("2/2 checks passed"), "{summary}");
}

#[test]
fn a_new_javascript_transformer_builds_and_runs() {
    let summary = new_build_run("petal-area", "transformer", "js");
    assert!(summary.contains("succeeded"), "{summary}");
}

#[test]
fn a_new_rust_deployer_builds_and_runs() {
    let summary = new_build_run("beat-champion", "deployer", "rust");
    assert!(summary.contains("decision: promote"), "{summary}");
}

#[test]
fn a_new_rust_trainer_writes_a_model_the_host_runs() {
    let summary = new_build_run("petal-width", "trainer", "rust");
    // Petal width is close to linear in the other measurements: the held-out R² says the
    // exported graph predicts what was fitted.
    let r2: f64 = summary
        .split("r2=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no r2 in {summary}"));
    assert!(r2 > 0.9, "{summary}");
}

#[test]
fn plugin_new_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            &[
                "plugin", "new", "x", "--kind", "checker", "--lang", "python",
            ][..],
            "unknown kind \"checker\"",
        ),
        (
            &[
                "plugin",
                "new",
                "x",
                "--kind",
                "validator",
                "--lang",
                "cobol",
            ][..],
            "unknown language \"cobol\"",
        ),
        (
            &["plugin", "new", "Bad_Name", "--kind", "validator"][..],
            "invalid plugin name",
        ),
        (
            &[
                "plugin", "new", "t", "--kind", "trainer", "--lang", "python",
            ][..],
            "no Python template for a trainer",
        ),
        (&["plugin", "build", "nowhere"][..], "wflow-plugin.toml"),
    ] {
        let out = wflow(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn python_and_javascript_plugins_run_beside_rust_plugins() {
    support::build_language_plugins();
    let dir = tempfile::tempdir().unwrap();
    let file = support::repo().join("workflows/polyglot.toml");
    let out = support::wflow(dir.path(), &["run", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let step = |id: &str| {
        steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}"))
    };
    for id in ["rules", "split", "train", "evaluate", "cost"] {
        assert_eq!(step(id)["status"], "ok", "{id}: {}", step(id));
    }
    assert!(
        step("rules")["plugin"]
            .as_str()
            .unwrap()
            .starts_with("py-rules"),
        "{}",
        step("rules")
    );
    assert!(
        step("cost")["plugin"]
            .as_str()
            .unwrap()
            .starts_with("js-cost-metric"),
        "{}",
        step("cost")
    );
    let metrics = step("cost")["metrics"].as_array().unwrap();
    let cost_per_row = metrics
        .iter()
        .find(|m| m["name"] == "cost_per_row")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!(cost_per_row < 0.5, "{metrics:?}");

    // A rule that fails fails its step, with the rule's message.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("max = 50 }", "max = 20 }");
    let strict = dir.path().join("strict.toml");
    std::fs::write(
        &strict,
        text.replace(
            "\"data/",
            &format!("\"{}/workflows/data/", support::repo().display()),
        )
        .replace(
            "\"../plugins/",
            &format!("\"{}/plugins/", support::repo().display()),
        ),
    )
    .unwrap();
    let out = support::wflow(dir.path(), &["run", strict.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("outside [0, 20]"), "{}", stdout(&out));
}
