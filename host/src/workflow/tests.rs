//! Golden tests of the workflow parser, plus checks of what golden files show poorly.
//!
//! Every `tests/data/workflow/valid/NAME.toml` must parse, and its rendering as JSON must equal
//! `NAME.json`; every `invalid/NAME.toml` must fail with exactly the text of `NAME.err`. Run with
//! `UPDATE_EXPECT=1` to rewrite the expected files after an intended change, then review the diff.
//! The JSON rendering is defined here, for the tests only: it shows spans as `line:col text` so
//! a wrong span is visible in review, and it does not constrain how the engine stores workflows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/workflow")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|value| value == "1")
}

/// Runs `check` on every `.toml` file of `data_dir()/kind`, comparing its result with the file
/// of the same name and extension `expected_ext`; returns how many files were checked.
fn golden(kind: &str, expected_ext: &str, check: impl Fn(&Path, &str) -> String) -> usize {
    let dir = data_dir().join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        // Messages and paths are relative to the data directory, so the files are portable.
        let shown = Path::new(kind).join(path.file_name().unwrap());
        let actual = check(&shown, &source);
        let expected_path = path.with_extension(expected_ext);
        if updating() {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "--- {}\n--- expected:\n{expected}\n--- actual:\n{actual}",
                shown.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ (rerun with UPDATE_EXPECT=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
    files.len()
}

#[test]
fn valid_workflows_match_their_json() {
    let checked = golden("valid", "json", |file, source| match parse(file, source) {
        Ok(workflow) => {
            let rendered = canonical(render(&workflow));
            serde_json::to_string_pretty(&rendered).unwrap() + "\n"
        }
        Err(diagnostics) => format!("unexpectedly invalid:\n{diagnostics}\n"),
    });
    assert!(checked >= 4, "only {checked} valid workflow files");
}

#[test]
fn invalid_workflows_match_their_errors() {
    let checked = golden("invalid", "err", |file, source| match parse(file, source) {
        Ok(_) => "unexpectedly valid\n".to_owned(),
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "an error without diagnostics");
            format!("{diagnostics}\n")
        }
    });
    assert!(checked >= 15, "only {checked} invalid workflow files");
}

/// Renders a workflow for the golden files.
fn render(workflow: &Workflow) -> Json {
    let at = |span: &Span| {
        let (line, col) = line_col(&workflow.source, span.start);
        let text = workflow.source.get(span.clone()).unwrap_or("<bad span>");
        let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > 40 {
            text = text.chars().take(37).collect::<String>() + "...";
        }
        format!("{line}:{col} {text}")
    };
    let path = |path: &Path| path.to_string_lossy().into_owned();
    let duration = |duration: Duration| humantime::format_duration(duration).to_string();
    let datasets: Vec<Json> = workflow
        .datasets
        .iter()
        .map(|dataset| {
            let types: serde_json::Map<String, Json> = dataset
                .types
                .iter()
                .map(|(column, ty)| (column.clone(), json!(ty.name())))
                .collect();
            json!({
                "name": dataset.name,
                "path": path(&dataset.path),
                "types": types,
                "span": at(&dataset.span),
            })
        })
        .collect();
    let steps: Vec<Json> = workflow
        .steps
        .iter()
        .map(|step| {
            let uses = match &step.uses {
                PluginRef::Builtin(name) => json!({ "builtin": name }),
                PluginRef::Path(file) => json!({ "path": path(file) }),
                PluginRef::Oci(reference) => json!({ "oci": reference.to_string() }),
            };
            let inputs: serde_json::Map<String, Json> = step
                .inputs
                .iter()
                .map(|(slot, input)| {
                    let source = match &input.source {
                        InputSource::Dataset(name) => json!({ "dataset": name }),
                        InputSource::StepOutput { step, output } => {
                            json!({ "step": step, "output": output })
                        }
                    };
                    let rendered = json!({
                        "source": source,
                        "span": at(&input.span),
                        "slot_span": at(&input.slot_span),
                    });
                    (slot.clone(), rendered)
                })
                .collect();
            let key_spans: serde_json::Map<String, Json> = step
                .config_key_spans
                .iter()
                .map(|(pointer, span)| (pointer.clone(), json!(at(span))))
                .collect();
            json!({
                "id": step.id,
                "span": at(&step.span),
                "uses": uses,
                "uses_span": at(&step.uses_span),
                "inputs": inputs,
                "config": step.config,
                "config_span": at(&step.config_span),
                "config_key_spans": key_spans,
                "needs": step.needs,
                "target": step.target,
                "limits": {
                    "timeout": duration(step.limits.timeout),
                    "memory": step.limits.memory,
                    "max_output": step.limits.max_output,
                },
                "retries": {
                    "count": step.retries.count,
                    "backoff": duration(step.retries.backoff),
                    "max_backoff": duration(step.retries.max_backoff),
                },
                "cache": step.cache,
                "grants": {
                    "read": step.grants.read.iter().map(|p| path(p)).collect::<Vec<_>>(),
                    "write": step.grants.write.iter().map(|p| path(p)).collect::<Vec<_>>(),
                    "env": step.grants.env,
                    "network": step.grants.network,
                },
            })
        })
        .collect();
    let mut rendered = json!({
        "name": workflow.name,
        "description": workflow.description,
        "concurrency": workflow.concurrency,
        "file": path(&workflow.file),
        "base_dir": path(&workflow.base_dir),
        "datasets": datasets,
        "steps": steps,
    });
    // Shown only when set, so the files of workflows without them stay as they were.
    if !workflow.triggers.is_empty()
        || workflow.max_active_runs != 1
        || workflow.overlap != Overlap::Allow
    {
        rendered["max_active_runs"] = json!(workflow.max_active_runs);
        rendered["overlap"] = json!(workflow.overlap.name());
        let live = |data: &LiveData| json!({ "dataset": data.dataset, "append": data.append, "min_rows": data.min_rows, "recent_rows": data.recent_rows });
        let triggers: Vec<Json> = workflow
            .triggers
            .iter()
            .map(|trigger| {
                let kind = match &trigger.kind {
                    TriggerKind::Cron {
                        expression,
                        schedule,
                        timezone,
                        catch_up,
                        max_catch_up,
                    } => json!({
                        "cron": expression,
                        "schedule": schedule.to_string(),
                        "timezone": timezone,
                        "catch_up": catch_up.name(),
                        "max_catch_up": max_catch_up,
                    }),
                    TriggerKind::Files {
                        pattern,
                        dataset,
                        min_new_rows,
                        poll,
                    } => json!({
                        "files": path(pattern),
                        "dataset": dataset,
                        "min_new_rows": min_new_rows,
                        "poll": duration(*poll),
                    }),
                    TriggerKind::Drift { model, data } => {
                        json!({ "drift": model, "data": live(data) })
                    }
                    TriggerKind::Decay {
                        model,
                        metric,
                        threshold,
                        min_rows,
                        rollback,
                        data,
                    } => json!({
                        "decay": model,
                        "metric": metric,
                        "threshold": threshold,
                        "min_rows": min_rows,
                        "rollback": rollback,
                        "data": live(data),
                    }),
                };
                json!({
                    "name": trigger.name,
                    "span": at(&trigger.span),
                    "cooldown": duration(trigger.cooldown),
                    "kind": kind,
                })
            })
            .collect();
        rendered["triggers"] = json!(triggers);
    }
    rendered
}

/// The same JSON with object keys inserted in sorted order, so the rendering is identical
/// whether or not some crate in the build turns on serde_json's `preserve_order`.
fn canonical(value: Json) -> Json {
    match value {
        Json::Object(object) => {
            let mut entries: Vec<(String, Json)> = object.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, canonical(value)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn parse_ok(source: &str) -> Workflow {
    parse(Path::new("flows/test.toml"), source)
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
}

fn parse_err(source: &str) -> String {
    match parse(Path::new("t.toml"), source) {
        Ok(_) => panic!("expected errors"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

#[test]
fn steps_come_out_in_dependency_order_with_ties_in_file_order() {
    let workflow = parse_ok(
        r#"
        [workflow]
        name = "order"
        [datasets.raw]
        path = "raw.csv"
        [steps.report]
        uses = "report"
        inputs = { a = "left.out", b = "right.out" }
        [steps.right]
        uses = "t"
        inputs = { data = "prep.out" }
        [steps.left]
        uses = "t"
        inputs = { data = "prep.out" }
        [steps.prep]
        uses = "t"
        inputs = { data = "raw" }
        [steps.audit]
        uses = "t"
        needs = ["prep"]
        "#,
    );
    let ids: Vec<&str> = workflow.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(ids, ["prep", "right", "left", "report", "audit"]);
    assert_eq!(workflow.step("report").unwrap().needs, ["left", "right"]);
    assert!(workflow.step("nope").is_none());
    assert_eq!(
        workflow.dataset("raw").unwrap().path,
        Path::new("flows/raw.csv")
    );
}

#[test]
fn defaults_merge_key_by_key() {
    let workflow = parse_ok(
        r#"
        [workflow]
        name = "merge"
        [defaults]
        timeout = "1m"
        retries = { count = 3, max_backoff = "10s" }
        [steps.a]
        uses = "t"
        memory = 2097152
        retries = { backoff = "1s" }
        [steps.b]
        uses = "t"
        "#,
    );
    let a = workflow.step("a").unwrap();
    assert_eq!(a.limits.timeout, Duration::from_secs(60));
    assert_eq!(a.limits.memory, 2 << 20);
    assert_eq!(a.limits.max_output, Limits::default().max_output);
    assert_eq!(
        a.retries,
        Retries {
            count: 3,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10)
        }
    );
    let b = workflow.step("b").unwrap();
    assert_eq!(b.retries.backoff, Retries::default().backoff);
    assert_eq!(b.limits.memory, Limits::default().memory);
    assert!(b.cache);
    assert_eq!(b.config, json!({}));
}

#[test]
fn config_spans_point_at_each_value() {
    let source = "[workflow]\nname = \"s\"\n[steps.a]\nuses = \"t\"\n\
                  with = { ranges = { age = { min = 0 } }, cols = [\"x\", 2], \"a/b\" = true }\n";
    let workflow = parse_ok(source);
    let step = workflow.step("a").unwrap();
    assert_eq!(
        step.config,
        json!({ "ranges": { "age": { "min": 0 } }, "cols": ["x", 2], "a/b": true })
    );
    let text = |pointer: &str| &source[step.config_key_spans[pointer].clone()];
    assert_eq!(text("/ranges/age/min"), "0");
    assert_eq!(text("/ranges/age"), "{ min = 0 }");
    assert_eq!(text("/cols/1"), "2");
    assert_eq!(text("/a~1b"), "true");
    assert!(text("").starts_with("{ ranges"));
    assert_eq!(step.config_span, step.config_key_spans[""]);
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" takes two bytes; the error on the next key must still be at column 28.
    let errors = parse_err(
        "[workflow]\nname = \"x\"\ndescription = \"é\"; nme = 1\n[steps.a]\nuses = \"t\"\n",
    );
    assert!(errors.starts_with("t.toml:3:"), "{errors}");
    let errors = parse_err(
        "[workflow]\nname = \"x\"\n[steps.a]\nuses = \"t\"\nwith = { \"é\" = 1 }\ncolour = \"é\"\n",
    );
    assert_eq!(
        errors,
        "t.toml:6:1: unknown key `colour` in `steps.a`; expected one of: `uses`, `inputs`, `with`, \
         `needs`, `target`, `timeout`, `memory`, `max_output`, `retries`, `cache`, `grants`"
    );
    let errors = parse_err("[workflow]\nname = \"é\" \n[steps.a]\nuses = \"t\"\ntimeout = \"é\"\n");
    assert!(
        errors.contains("t.toml:2:8: invalid workflow name \"é\""),
        "{errors}"
    );
    assert!(
        errors.contains("t.toml:5:11: invalid duration \"é\" for `timeout`"),
        "{errors}"
    );
}

#[test]
fn diagnostics_of_a_valid_workflow_start_empty_and_render_added_problems() {
    let source = "[workflow]\nname = \"x\"\n[steps.a]\nuses = \"t\"\n";
    let workflow = parse(Path::new("w.toml"), source).unwrap();
    let mut diagnostics = workflow.diagnostics();
    assert!(diagnostics.is_empty());
    let step = workflow.step("a").unwrap();
    diagnostics.push(step.uses_span.clone(), "no built-in plugin `t`");
    assert_eq!(
        diagnostics.to_string(),
        "w.toml:4:8: no built-in plugin `t`"
    );
    assert_eq!(workflow.base_dir, Path::new(""));
}

#[test]
fn numbers_keep_their_value_in_every_toml_notation() {
    let workflow = parse_ok(
        "[workflow]\nname = \"n\"\nconcurrency = 0x10\n[steps.a]\nuses = \"t\"\nmemory = 2_097_152\n\
         with = { a = 1_000, b = 0o17, c = +5, d = -3, e = 9223372036854775807, f = 0b101, \
         g = 1e3, h = -2.5E-1, i = 6.02_2 }\n",
    );
    assert_eq!(workflow.concurrency, Some(16));
    let step = workflow.step("a").unwrap();
    assert_eq!(step.limits.memory, 2 << 20);
    assert_eq!(
        step.config,
        json!({ "a": 1000, "b": 15, "c": 5, "d": -3, "e": i64::MAX, "f": 5,
                "g": 1000.0, "h": -0.25, "i": 6.022 })
    );
}

#[test]
fn the_example_in_the_module_documentation_is_valid() {
    let docs: String = include_str!("mod.rs")
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .skip_while(|line| *line != "```toml")
        .skip(1)
        .take_while(|line| *line != "```")
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        docs.contains("[steps.custom-check]"),
        "example not found:\n{docs}"
    );
    let workflow = parse(Path::new("workflows/example.toml"), &docs)
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let ids: Vec<&str> = workflow.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "validate",
            "split",
            "train",
            "custom-check",
            "champion",
            "register"
        ]
    );
}

/// A file of fifty thousand steps, each needing the one before: names are resolved by hash and
/// the order found in linear time (resolving each reference by a scan took minutes), and the
/// same steps in one ring are reported as one cycle.
#[test]
fn issue_22_a_long_chain_is_ordered_and_a_long_ring_reported_in_linear_time() {
    let steps = 50_000;
    let mut chain = String::from("[workflow]\nname = \"chain\"\n[datasets.d]\npath = \"d.csv\"\n");
    let mut ring = chain.clone();
    for i in 0..steps {
        let step = format!("[steps.s{i}]\nuses = \"schema-check\"\ninputs = {{ data = \"d\" }}\n");
        chain.push_str(&step);
        ring.push_str(&step);
        if i > 0 {
            chain.push_str(&format!("needs = [\"s{}\"]\n", i - 1));
        }
        ring.push_str(&format!("needs = [\"s{}\"]\n", (i + 1) % steps));
    }
    let workflow = parse_ok(&chain);
    assert_eq!(workflow.steps.len(), steps);
    assert_eq!(workflow.steps[steps - 1].id, format!("s{}", steps - 1));
    let err = parse_err(&ring);
    assert_eq!(
        err.matches("cycle").count(),
        1,
        "one cycle is reported once"
    );
}
