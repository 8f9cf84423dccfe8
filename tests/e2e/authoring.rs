//! Plugins in any language: `wflow plugin new` then `wflow plugin build` give a component that
//! runs in its project's test workflow, in Rust, Python and JavaScript; the Python and
//! JavaScript plugins of `plugins/` run in an example workflow beside Rust plugins; trainers in
//! Python and JavaScript (models built by the host's `model-builder`) learn what the Rust
//! trainer learns and are served.

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

/// A new project, built, and the summary of its test workflow's run.
struct Project {
    /// Where the project is, inside `_dir`.
    path: std::path::PathBuf,
    summary: String,
    _dir: tempfile::TempDir,
}

/// Creates, builds and runs the test workflow of a new project; returns the run's summary.
fn new_build_run(name: &str, kind: &str, lang: &str) -> String {
    new_project(name, kind, lang).summary
}

fn new_project(name: &str, kind: &str, lang: &str) -> Project {
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
    Project {
        path: project,
        summary: stdout(&run),
        _dir: dir,
    }
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

/// A metric of a step in a `--json` run report.
fn step_metric(report: &serde_json::Value, step: &str, name: &str) -> f64 {
    let steps = report["steps"].as_array().unwrap();
    let step = steps
        .iter()
        .find(|s| s["id"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {report}"));
    // Two steps computing the same thing (the templates can write identical models) share a
    // cache entry.
    assert!(
        step["status"] == "ok" || step["status"] == "cached",
        "{step}"
    );
    step["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no metric {name} in {step}"))
}

#[test]
fn issue_17_python_and_javascript_trainers_from_the_templates_learn_what_the_rust_trainer_learns_and_are_served()
 {
    // The templates, as a user gets them: each passes its own test workflow (iris species).
    let python = new_project("py-logistic", "trainer", "python");
    let javascript = new_project("js-logistic", "trainer", "js");
    for project in [&python, &javascript] {
        assert!(
            project.summary.contains("succeeded (3 steps: 3 ok")
                && project.summary.contains("train_accuracy="),
            "{}",
            project.summary
        );
    }

    // The same split of breast_cancer for the Rust trainer and both templates; each model is
    // evaluated by `classification-metrics` on the same holdout and registered.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::repo().join("workflows/data/breast_cancer.csv"),
        dir.path().join("breast_cancer.csv"),
    )
    .unwrap();
    let mut workflow = String::from(
        "[workflow]\nname = \"cancer-in-three-languages\"\n\n\
         [defaults]\ntimeout = \"2m\"\nmemory = \"256MiB\"\n\n\
         [datasets.cancer]\npath = \"breast_cancer.csv\"\n\n\
         [steps.split]\nuses = \"train-test-split\"\ninputs = { data = \"cancer\" }\n\
         with = { test_fraction = 0.25, seed = 42, stratify = \"malignant\" }\n",
    );
    for (language, uses) in [
        ("rust", "logistic-regression".to_string()),
        (
            "python",
            python
                .path
                .join("build/py-logistic.wasm")
                .display()
                .to_string(),
        ),
        (
            "js",
            javascript
                .path
                .join("build/js-logistic.wasm")
                .display()
                .to_string(),
        ),
    ] {
        workflow.push_str(&format!(
            "\n[steps.train-{language}]\nuses = \"{uses}\"\ninputs = {{ data = \"split.train\" }}\n\
             target = \"malignant\"\n\n\
             [steps.evaluate-{language}]\nuses = \"classification-metrics\"\n\
             inputs = {{ model = \"train-{language}.model\", data = \"split.test\" }}\n\n\
             [steps.register-{language}]\nuses = \"register-model\"\n\
             inputs = {{ model = \"train-{language}.model\", data = \"split.train\", evaluation = \"evaluate-{language}.evaluation\" }}\n\
             with = {{ name = \"cancer-{language}\" }}\n"
        ));
    }
    std::fs::write(dir.path().join("workflow.toml"), workflow).unwrap();
    let run = support::wflow(dir.path(), &["run", "workflow.toml", "--json"]);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let rust = step_metric(&report, "evaluate-rust", "accuracy");
    assert!(rust > 0.95, "the Rust trainer's holdout accuracy is {rust}");
    for language in ["python", "js"] {
        let accuracy = step_metric(&report, &format!("evaluate-{language}"), "accuracy");
        assert!(
            (accuracy - rust).abs() <= 0.02,
            "{language}: holdout accuracy {accuracy} against the Rust trainer's {rust}"
        );
        assert!(step_metric(&report, &format!("train-{language}"), "train_accuracy") > 0.95);
    }

    // Served from the registry, every model answers raw rows; the templates' models agree with
    // the Rust one on (almost) every row of the data set, and score as well against the truth.
    let served = crate::serve::serve(
        dir.path(),
        &[
            "--registry",
            "cancer-rust@1",
            "--registry",
            "cancer-python@1",
            "--registry",
            "cancer-js@1",
        ],
    );
    let table = wflow::table::csv::read(&dir.path().join("breast_cancer.csv"), &Default::default())
        .unwrap();
    let features: Vec<String> = table
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .filter(|name| name != "malignant")
        .collect();
    let rows: Vec<Vec<f64>> = (0..table.row_count())
        .map(|row| {
            features
                .iter()
                .map(|f| table.column(f).unwrap().f64_at(row).unwrap())
                .collect()
        })
        .collect();
    let truth: Vec<String> = (0..table.row_count())
        .map(|row| {
            format!(
                "{}",
                table.column("malignant").unwrap().f64_at(row).unwrap()
            )
        })
        .collect();
    let body = serde_json::json!({ "dataframe_split": { "columns": features, "data": rows } });
    let predict = |model: &str| -> Vec<String> {
        let answer = support::post_json(
            &served.address,
            &format!("/v2/models/{model}/invocations"),
            &[],
            &body,
        );
        assert_eq!(answer.status, 200, "{model}: {}", answer.text());
        answer.json()["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    let accuracy = |labels: &[String]| {
        labels.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64
    };
    let by_rust = predict("cancer-rust");
    for model in ["cancer-python", "cancer-js"] {
        let labels = predict(model);
        assert_eq!(labels.len(), truth.len());
        let agree = labels.iter().zip(&by_rust).filter(|(a, b)| a == b).count();
        assert!(
            agree as f64 >= 0.97 * truth.len() as f64,
            "{model} agrees with the Rust model on {agree} of {} rows",
            truth.len()
        );
        assert!(
            (accuracy(&labels) - accuracy(&by_rust)).abs() <= 0.02,
            "{model}: {} against {}",
            accuracy(&labels),
            accuracy(&by_rust)
        );
    }
}
