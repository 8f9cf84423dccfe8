//! Tests of the store on real sled databases in temporary directories.

use std::path::Path;

use super::registry::ModelRef;
use super::*;

fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap()
}

fn new_run(store: &Store, workflow: &str) -> RunRecord {
    store
        .create_run(
            workflow,
            Path::new("w.toml"),
            b"[workflow]\nname = \"w\"\n",
            vec!["a".into()],
            false,
        )
        .unwrap()
}

fn version(name: &str) -> ModelVersion {
    ModelVersion {
        name: name.into(),
        version: 0,
        created: now(),
        onnx: digest_of(b"onnx"),
        model_digest: digest_of(b"doc"),
        features: vec!["x".into()],
        target: "y".into(),
        task: "classification".into(),
        class_labels: vec![],
        metrics: vec![("accuracy".into(), 0.9)],
        parameters: Default::default(),
        training_data: None,
        reference: Default::default(),
        run: 1,
        step: "register".into(),
        trained_by: "train".into(),
        lineage: vec![],
        decision: None,
        pipeline: None,
    }
}

fn by_command() -> Actor {
    Actor::Command {
        command: "test".into(),
        user: "tester".into(),
    }
}

#[test]
fn runs_get_increasing_ids_and_list_newest_first_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = new_run(&store, "alpha");
    let b = new_run(&store, "beta");
    assert_eq!((a.id, b.id), (1, 2));
    store
        .set_run_status(a.id, RunStatus::Succeeded, None)
        .unwrap();
    let all = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
    let alpha = store
        .list_runs(&RunFilter {
            workflow: Some("alpha".into()),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(alpha.len(), 1);
    assert_eq!(alpha[0].status, RunStatus::Succeeded);
    assert!(alpha[0].finished.is_some());
    let running = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Running),
            limit: Some(5),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(running.iter().map(|r| r.id).collect::<Vec<_>>(), [2]);
    // The workflow text is kept, so a run can be resumed as it was.
    assert_eq!(
        store.artifacts().get(&a.workflow_digest).unwrap(),
        b"[workflow]\nname = \"w\"\n"
    );
}

#[test]
fn a_second_process_sees_a_clear_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path());
    // sled's lock is per process; a second open in the same process is refused the same way.
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::Locked(_)),
        "expected a lock error, got: {err}"
    );
    assert!(err.to_string().contains("in use by another wflow process"));
}

#[test]
fn runs_left_running_are_marked_interrupted_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = open(dir.path());
        let run = new_run(&store, "alpha");
        let finished = new_run(&store, "alpha");
        store
            .set_run_status(finished.id, RunStatus::Failed, None)
            .unwrap();
        run.id
    };
    let store = open(dir.path());
    let run = store.run(id).unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(
        run.transitions
            .last()
            .unwrap()
            .note
            .as_ref()
            .unwrap()
            .contains("stopped before it finished")
    );
    assert_eq!(store.run(id + 1).unwrap().status, RunStatus::Failed);
    // Resuming reopens it; a succeeded run cannot be resumed.
    assert_eq!(store.reopen_run(id).unwrap().status, RunStatus::Running);
    store
        .set_run_status(id, RunStatus::Succeeded, None)
        .unwrap();
    assert!(store.reopen_run(id).is_err());
}

#[test]
fn a_damaged_database_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for _ in 0..50 {
            new_run(&store, "alpha");
        }
    }
    // Overwrite every database file with garbage.
    for entry in walk(&dir.path().join("db")) {
        std::fs::write(&entry, vec![0xAB; 4096]).unwrap();
    }
    let result = std::panic::catch_unwind(|| Store::open(dir.path()));
    let err = result
        .expect("opening a damaged store must not panic")
        .expect_err("a damaged store must not open");
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_unreadable_record_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.runs.insert(run_key(7), &b"{not json"[..]).unwrap();
    let err = store.run(7).unwrap_err().to_string();
    assert!(err.contains("is corrupt"), "{err}");
    assert!(err.contains("`runs`"), "{err}");
    assert!(store.list_runs(&RunFilter::default()).is_err());
}

#[test]
fn versions_count_up_and_aliases_move_with_an_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for _ in 0..3 {
        store.add_version(version("cancer")).unwrap();
    }
    assert_eq!(store.versions("cancer").unwrap().len(), 3);
    store
        .move_alias("cancer", "champion", 1, "first", by_command(), false)
        .unwrap();
    store
        .move_alias("cancer", "champion", 2, "better", by_command(), false)
        .unwrap();
    store
        .move_alias("cancer", "champion", 3, "even better", by_command(), false)
        .unwrap();
    let resolved = store
        .resolve_model(&ModelRef::parse("cancer@champion").unwrap())
        .unwrap();
    assert_eq!(resolved.version, 3);

    // Rolling back twice walks back two promotions; a third has nowhere to go.
    let back = store
        .rollback("cancer", "champion", "bad canary", by_command())
        .unwrap();
    assert_eq!(
        (back.from, back.to, back.rollback),
        (Some(3), Some(2), true)
    );
    let back = store
        .rollback("cancer", "champion", "still bad", by_command())
        .unwrap();
    assert_eq!((back.from, back.to), (Some(2), Some(1)));
    let err = store
        .rollback("cancer", "champion", "again", by_command())
        .unwrap_err();
    assert!(err.to_string().contains("no earlier version"), "{err}");

    let history = store.alias_history("cancer", Some("champion")).unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(
        history.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(history[3].reason, "bad canary");

    let models = store.models().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].latest, 3);
    assert_eq!(models[0].aliases["champion"], 1);
}

#[test]
fn model_references_parse_and_missing_ones_are_explained() {
    assert_eq!(
        ModelRef::parse("m@3").unwrap(),
        ModelRef::Version("m".into(), 3)
    );
    assert_eq!(
        ModelRef::parse("m@v3").unwrap(),
        ModelRef::Version("m".into(), 3)
    );
    assert_eq!(
        ModelRef::parse("m@champion").unwrap(),
        ModelRef::Alias("m".into(), "champion".into())
    );
    assert!(ModelRef::parse("bad name@x").is_err());

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = store
        .resolve_model(&ModelRef::parse("nothing").unwrap())
        .unwrap_err();
    assert_eq!(err.to_string(), "no model `nothing`");
    store.add_version(version("m")).unwrap();
    let err = store
        .resolve_model(&ModelRef::parse("m@champion").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("has no alias `champion`"), "{err}");
    let err = store
        .resolve_model(&ModelRef::parse("m@9").unwrap())
        .unwrap_err();
    assert_eq!(err.to_string(), "model `m` has no version 9");
    assert!(
        store
            .move_alias("m", "champion", 9, "x", by_command(), false)
            .is_err()
    );
}

#[test]
fn logs_are_bounded_keeping_both_ends() {
    use crate::plugin::{LogLevel, LogLine, LogSource};
    let lines: Vec<LogLine> = (0..5_000)
        .map(|i| LogLine {
            at_ms: i,
            source: LogSource::Plugin,
            level: LogLevel::Info,
            message: format!("line {i}"),
            fields: vec![],
        })
        .collect();
    let kept = LogRecord::bounded(lines);
    assert_eq!(kept.lines.len(), MAX_KEPT_LOG_LINES);
    assert_eq!(kept.dropped, 3_000);
    assert_eq!(kept.lines[0].message, "line 0");
    assert_eq!(kept.lines.last().unwrap().message, "line 4999");
}
