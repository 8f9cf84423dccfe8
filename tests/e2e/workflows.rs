//! Workflows through the engine: every example in `workflows/` parses, plans and runs, and the
//! engine isolates failures, retries and skips dependents.

use std::path::Path;
use std::sync::Arc;

use wflow::engine::{self, RunOptions, RunReport, StepReport, StepStatus};
use wflow::plugin::Runtime;
use wflow::store::{RunJournal, Store};

use crate::support;

/// Runs a workflow file recorded in a fresh store (the examples register their models).
fn run_file(runtime: &Arc<Runtime>, file: &Path) -> RunReport {
    let source = std::fs::read_to_string(file).unwrap();
    let workflow = wflow::workflow::parse(file, &source).unwrap_or_else(|d| panic!("{d}"));
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path()).unwrap());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let plan = engine::plan(workflow, runtime)
            .await
            .unwrap_or_else(|d| panic!("{d}"));
        let steps = plan.steps.iter().map(|s| s.step.id.clone()).collect();
        let run = store
            .create_run(&plan.workflow.name, file, source.as_bytes(), steps, false)
            .unwrap();
        let journal = RunJournal::new(store.clone(), run.id, false, Default::default());
        let options = RunOptions {
            journal: Some(Arc::new(journal)),
            run: Some(run.id),
            ..RunOptions::default()
        };
        engine::run(Arc::new(plan), runtime.clone(), options, None).await
    })
}

fn step<'a>(report: &'a RunReport, id: &str) -> &'a StepReport {
    report
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

fn metric(report: &RunReport, id: &str, name: &str) -> f64 {
    let step = step(report, id);
    step.metrics
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", step.metrics))
        .1
}

#[test]
fn every_example_workflow_runs() {
    // The polyglot example uses the Python and JavaScript plugins.
    support::build_language_plugins();
    let (runtime, _dir) = support::runtime();
    let runtime = Arc::new(runtime);
    let mut seen = 0;
    for entry in std::fs::read_dir(support::repo().join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let report = run_file(&runtime, &path);
            for step in &report.steps {
                // In a fresh store there is no champion to load yet: that has nothing to do.
                assert!(
                    step.status == StepStatus::Succeeded
                        || matches!(&step.status, StepStatus::NotApplicable(reason) if reason.contains("champion")),
                    "{}: step {}: {:?}",
                    path.display(),
                    step.id,
                    step.status
                );
            }
            assert!(report.succeeded(), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 1, "no example workflows found");
}

#[test]
fn breast_cancer_workflow_reaches_the_accuracy_anchor() {
    let (runtime, _dir) = support::runtime();
    let report = run_file(
        &Arc::new(runtime),
        &support::repo().join("workflows/breast-cancer.toml"),
    );
    let accuracy = metric(&report, "evaluate", "accuracy");
    assert!(accuracy >= 0.96, "holdout accuracy {accuracy}");
    let gate = step(&report, "gate");
    assert!(gate.decision.is_some());
    // The fairness check compared the two tumour-size groups of the holdout.
    assert!(metric(&report, "evaluate", "group.smaller.rows") > 0.0);
    assert!(metric(&report, "evaluate", "fairness.accuracy_gap") <= 0.1);
}

fn write_workflow(dir: &Path, body: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("data.csv"), "x,y\n1,0\n2,1\n3,0\n4,1\n").unwrap();
    let file = dir.join("w.toml");
    let hostile = support::wasm_path("hostile");
    let body = body.replace("HOSTILE", &hostile.display().to_string());
    std::fs::write(
        &file,
        format!("[workflow]\nname = \"w\"\n\n[datasets.d]\npath = \"data.csv\"\n\n{body}"),
    )
    .unwrap();
    file
}

#[test]
fn a_failing_step_skips_its_dependents_and_spares_the_others() {
    let (runtime, dir) = support::runtime();
    let file = write_workflow(
        dir.path(),
        r#"
[steps.bad]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "trap" }

[steps.after-bad]
uses = "schema-check"
inputs = { data = "d" }
needs = ["bad"]

[steps.independent]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "ok" }
"#,
    );
    let report = run_file(&Arc::new(runtime), &file);
    let status = |id: &str| step(&report, id).status.clone();
    assert!(matches!(status("bad"), StepStatus::Failed(_)));
    assert!(matches!(status("after-bad"), StepStatus::Skipped(reason) if reason.contains("bad")));
    assert_eq!(status("independent"), StepStatus::Succeeded);
    assert!(!report.succeeded());
}

#[test]
fn retryable_failures_are_retried_and_bad_input_is_not() {
    let (runtime, dir) = support::runtime();
    let file = write_workflow(
        dir.path(),
        r#"
[steps.trap]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "trap" }
retries = { count = 2, backoff = "1ms" }

[steps.bad-input]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "invalid-input" }
retries = { count = 2, backoff = "1ms" }
"#,
    );
    let report = run_file(&Arc::new(runtime), &file);
    let attempts = |id: &str| step(&report, id).attempts;
    assert_eq!(attempts("trap"), 3);
    assert_eq!(attempts("bad-input"), 1);
}

#[test]
fn skips_propagate_through_the_graph() {
    let (runtime, dir) = support::runtime();
    let file = write_workflow(
        dir.path(),
        r#"
[steps.a]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "trap" }

[steps.b]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "ok" }
needs = ["a"]

[steps.c]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "ok" }
needs = ["b"]
"#,
    );
    let report = run_file(&Arc::new(runtime), &file);
    let status = |id: &str| step(&report, id).status.clone();
    assert_eq!(
        status("b"),
        StepStatus::Skipped("`a` did not succeed".into())
    );
    assert_eq!(
        status("c"),
        StepStatus::Skipped("`b` did not succeed".into())
    );
}

#[test]
fn an_output_the_producer_did_not_make_fails_the_consumer() {
    let (runtime, dir) = support::runtime();
    let file = write_workflow(
        dir.path(),
        r#"
[steps.split]
uses = "train-test-split"
inputs = { data = "d" }
with = { test_fraction = 0.5, seed = 1 }

[steps.check]
uses = "schema-check"
inputs = { data = "split.validation" }
"#,
    );
    let report = run_file(&Arc::new(runtime), &file);
    let check = step(&report, "check");
    let StepStatus::Failed(reason) = &check.status else {
        panic!("{:?}", check.status)
    };
    assert!(
        reason.contains("produced no output `validation`") && reason.contains("`split.train`"),
        "{reason}"
    );
}

#[test]
fn a_timeout_through_the_engine_is_reported_as_such() {
    let (runtime, dir) = support::runtime();
    let file = write_workflow(
        dir.path(),
        r#"
[steps.loop]
uses = "HOSTILE"
inputs = { data = "d" }
with = { behaviour = "infinite-loop" }
timeout = "300ms"
"#,
    );
    let report = run_file(&Arc::new(runtime), &file);
    let step = &report.steps[0];
    assert_eq!(step.failure_kind, Some("timeout"));
    assert_eq!(
        step.status,
        StepStatus::Failed("timed out after 300ms".into())
    );
}

#[test]
fn concurrency_bounds_the_steps_running_at_once() {
    let (runtime, dir) = support::runtime();
    let mut body = String::new();
    for i in 0..6 {
        body.push_str(&format!(
            "[steps.s{i}]\nuses = \"HOSTILE\"\ninputs = {{ data = \"d\" }}\nwith = {{ behaviour = \"ok\" }}\n\n"
        ));
    }
    let file = write_workflow(dir.path(), &body);
    let runtime = Arc::new(runtime);
    let source = std::fs::read_to_string(&file).unwrap();
    let workflow = wflow::workflow::parse(&file, &source).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for concurrency in [1, 2] {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let report = tokio.block_on(async {
            let plan = engine::plan(workflow.clone(), &runtime).await.unwrap();
            engine::run(
                Arc::new(plan),
                runtime.clone(),
                RunOptions {
                    concurrency,
                    ..RunOptions::default()
                },
                Some(sender),
            )
            .await
        });
        assert!(report.succeeded());
        let (mut running, mut most) = (0i32, 0i32);
        while let Ok(event) = receiver.try_recv() {
            match event {
                engine::Event::StepStarted { .. } => running += 1,
                engine::Event::StepFinished { .. } => running -= 1,
                _ => {}
            }
            most = most.max(running);
        }
        assert_eq!(running, 0);
        assert!(
            most <= concurrency as i32 && most >= 1,
            "{most} steps ran at once with concurrency {concurrency}"
        );
    }
}

#[test]
fn preprocessing_chain_fits_on_train_and_applies_to_test() {
    let (runtime, dir) = support::runtime();
    // A small table with a missing number, a category and a binary target.
    let mut csv = String::from("age,colour,label\n");
    for i in 0..80 {
        let age = if i % 9 == 0 {
            String::new()
        } else {
            (20 + i % 40).to_string()
        };
        let colour = ["red", "green", "blue"][i % 3];
        let label = u8::from(i % 3 == 0 || (20 + i % 40) > 45);
        csv.push_str(&format!("{age},{colour},{label}\n"));
    }
    std::fs::write(dir.path().join("people.csv"), csv).unwrap();
    let file = dir.path().join("prep.toml");
    std::fs::write(
        &file,
        r#"[workflow]
name = "prep"

[datasets.people]
path = "people.csv"

[steps.split]
uses = "train-test-split"
inputs = { data = "people" }
with = { test_fraction = 0.25, seed = 7, stratify = "label" }

[steps.impute]
uses = "impute"
inputs = { train = "split.train", test = "split.test" }
with = { strategy = "median" }

[steps.scale]
uses = "standard-scaler"
inputs = { train = "impute.train", test = "impute.test" }
with = { exclude = ["label"] }

[steps.encode]
uses = "one-hot-encode"
inputs = { train = "scale.train", test = "scale.test" }

[steps.train]
uses = "logistic-regression"
inputs = { data = "encode.train" }
target = "label"

[steps.evaluate]
uses = "classification-metrics"
inputs = { model = "train.model", data = "encode.test" }
"#,
    )
    .unwrap();
    let report = run_file(&Arc::new(runtime), &file);
    for step in &report.steps {
        assert_eq!(step.status, StepStatus::Succeeded, "step {}", step.id);
    }
    for id in ["impute", "scale", "encode"] {
        let outputs = &step(&report, id).outputs;
        assert!(
            ["train", "test", "fitted"]
                .iter()
                .all(|o| outputs.iter().any(|x| x == o)),
            "{id}: {outputs:?}"
        );
    }
    assert!(metric(&report, "scale", "mean.age") > 20.0);
    assert!(metric(&report, "evaluate", "accuracy") > 0.6);
}

#[test]
fn example_workflows_reach_the_scikit_learn_anchors() {
    // Holdout figures within 1.5 points of scikit-learn's on the same data (shared anchors).
    let (runtime, _dir) = support::runtime();
    let runtime = Arc::new(runtime);
    let workflows = support::repo().join("workflows");
    let checks = [
        ("iris.toml", "accuracy", 0.90),
        ("wine.toml", "accuracy", 0.95),
        ("diabetes.toml", "r2", 0.40),
    ];
    for (file, name, bound) in checks {
        let report = run_file(&runtime, &workflows.join(file));
        let value = metric(&report, "evaluate", name);
        assert!(value >= bound, "{file}: holdout {name} {value} < {bound}");
    }
    // Digits: the network and the logistic-regression baseline (scikit-learn: 0.972).
    let report = run_file(&runtime, &workflows.join("digits.toml"));
    for step in ["evaluate", "evaluate-baseline"] {
        let accuracy = metric(&report, step, "accuracy");
        assert!(
            accuracy >= 0.957,
            "digits {step}: holdout accuracy {accuracy}"
        );
    }
}
