//! Tests of the store on real sled databases in temporary directories, and (the same tests)
//! on a real PostgreSQL server started on loopback, with artifacts in an object store folder.

use std::path::Path;

use super::pg_server::PgServer;
use super::registry::ModelRef;
use super::*;

fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap()
}

/// A store's home on one backend; `open` may be called again, as another process would.
struct Home {
    dir: tempfile::TempDir,
    url: Option<String>,
}

impl Home {
    fn sled() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            url: None,
        }
    }

    fn postgres() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            url: Some(PgServer::shared().new_database()),
        }
    }

    fn location(&self) -> Location {
        match &self.url {
            None => Location::Dir(self.dir.path().to_path_buf()),
            Some(url) => Location::Postgres {
                url: url.clone(),
                artifacts: Some(format!("file://{}/objects", self.dir.path().display())),
                dir: self.dir.path().to_path_buf(),
            },
        }
    }

    fn open(&self) -> Store {
        Store::open_at(&self.location(), "test").unwrap()
    }
}

/// A test run on both backends: `NAME::sled` and `NAME::postgres`.
macro_rules! on_both {
    ($name:ident, |$home:ident| $body:block) => {
        mod $name {
            use super::*;

            fn check($home: Home) $body

            #[test]
            fn sled() {
                check(Home::sled());
            }

            #[test]
            fn postgres() {
                check(Home::postgres());
            }
        }
    };
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

on_both!(
    runs_get_increasing_ids_and_list_newest_first_with_filters,
    |home| {
        let store = home.open();
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
);

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

on_both!(
    runs_left_running_are_marked_interrupted_when_their_process_is_gone,
    |home| {
        let id = {
            let store = home.open();
            let run = new_run(&store, "alpha");
            let finished = new_run(&store, "alpha");
            store
                .set_run_status(finished.id, RunStatus::Failed, None)
                .unwrap();
            run.id
        };
        // The first store is gone as a killed process's would be (with PostgreSQL, its session and
        // the lock saying it is alive go with it).
        let store = home.open();
        store.reap_interrupted().unwrap();
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
        // On a shared store, a run whose process is alive is not touched by another process.
        if home.url.is_some() {
            let live = new_run(&store, "alpha");
            let other = home.open();
            assert!(other.reap_interrupted().unwrap().is_empty());
            assert_eq!(other.run(live.id).unwrap().status, RunStatus::Running);
        }
    }
);

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

on_both!(an_unreadable_record_is_reported_not_panicked, |home| {
    let store = home.open();
    store
        .write(vec![Write::Put(
            Tree::Runs,
            run_key(7).to_vec(),
            b"{not json".to_vec(),
        )])
        .unwrap();
    let err = store.run(7).unwrap_err().to_string();
    assert!(err.contains("is corrupt"), "{err}");
    assert!(err.contains("`runs`"), "{err}");
    assert!(store.list_runs(&RunFilter::default()).is_err());
});

on_both!(
    versions_count_up_and_aliases_move_with_an_audit_trail,
    |home| {
        let store = home.open();
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
        // The alias version changes with every move, for another process of a shared store too.
        let other = if home.url.is_some() {
            Some(home.open())
        } else {
            None
        };
        let reader = other.as_ref().unwrap_or(&store);
        assert_eq!(reader.alias("cancer", "champion").unwrap(), Some(1));
        let before = reader.alias_version();
        store
            .move_alias("cancer", "champion", 3, "again", by_command(), false)
            .unwrap();
        assert_ne!(reader.alias_version(), before);
    }
);

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
}

on_both!(missing_models_versions_and_aliases_are_explained, |home| {
    let store = home.open();
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
});

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

on_both!(
    processes_allocating_at_once_get_distinct_ids_and_versions,
    |home| {
        // Four "processes" (stores of their own; threads of one process on sled, which one
        // process holds) create runs and versions at the same time.
        let stores: Vec<Store> = if home.url.is_some() {
            (0..4).map(|_| home.open()).collect()
        } else {
            vec![home.open()]
        };
        let stores: Vec<&Store> = (0..4).map(|i| &stores[i % stores.len()]).collect();
        let (runs, versions): (Vec<Vec<u64>>, Vec<Vec<u32>>) = std::thread::scope(|scope| {
            let handles: Vec<_> = stores
                .iter()
                .map(|store| {
                    let store = *store;
                    scope.spawn(move || {
                        let mut runs = Vec::new();
                        let mut versions = Vec::new();
                        for _ in 0..10 {
                            runs.push(new_run(store, "alpha").id);
                            versions.push(store.add_version(version("m")).unwrap().version);
                        }
                        (runs, versions)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).unzip()
        });
        let mut runs: Vec<u64> = runs.into_iter().flatten().collect();
        let mut versions: Vec<u32> = versions.into_iter().flatten().collect();
        runs.sort();
        versions.sort();
        assert_eq!(runs, (1..=40).collect::<Vec<u64>>());
        assert_eq!(versions, (1..=40).collect::<Vec<u32>>());
    }
);

#[test]
fn a_database_migrated_by_a_newer_wflow_is_refused() {
    let home = Home::postgres();
    drop(home.open());
    let url = home.url.clone().unwrap();
    let io = postgres::Io::new().unwrap();
    io.run(async move {
        let (client, connection) = url
            .parse::<tokio_postgres::Config>()
            .unwrap()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute("UPDATE wflow_schema SET version = 99", &[])
            .await
            .unwrap();
    })
    .unwrap();
    let err = Store::open_at(&home.location(), "test")
        .unwrap_err()
        .to_string();
    assert!(err.contains("schema is version 99"), "{err}");
    assert!(err.contains("upgrade wflow"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn a_shared_store_names_its_artifact_store_and_refuses_another() {
    let home = Home::postgres();
    let store = home.open();
    let digest = store.artifacts().put(b"shared bytes").unwrap();
    assert!(store.artifacts().location().starts_with("file://"));
    // Another process needs no --artifacts: the database remembers it.
    let Location::Postgres { url, dir, .. } = home.location() else {
        unreachable!()
    };
    let plain = Location::Postgres {
        url: url.clone(),
        artifacts: None,
        dir: dir.clone(),
    };
    let other = Store::open_at(&plain, "test").unwrap();
    assert_eq!(other.artifacts().get(&digest).unwrap(), b"shared bytes");
    let elsewhere = Location::Postgres {
        url,
        artifacts: Some("file:///somewhere/else".into()),
        dir,
    };
    let err = Store::open_at(&elsewhere, "test").unwrap_err().to_string();
    assert!(err.contains("its artifacts are in file://"), "{err}");
    // A tampered object is refused with both digests, as a tampered file is.
    let hex = digest.trim_start_matches("sha256:");
    let path = home
        .dir
        .path()
        .join("objects/sha256")
        .join(&hex[..2])
        .join(&hex[2..]);
    std::fs::write(&path, b"tampered").unwrap();
    let err = other.artifacts().get(&digest).unwrap_err().to_string();
    assert!(err.contains("is corrupt"), "{err}");
    assert!(err.contains(&digest_of(b"tampered")), "{err}");
}

#[test]
fn store_locations_are_checked_before_anything_opens() {
    let dir = std::path::PathBuf::from("d");
    assert_eq!(
        Location::new(None, None, dir.clone()).unwrap(),
        Location::Dir(dir.clone())
    );
    let err = Location::new(Some("mysql://root:pw@db/x"), None, dir.clone()).unwrap_err();
    assert!(err.to_string().contains("mysql://root@db/x"), "{err}");
    let err = Location::new(None, Some("s3://bucket"), dir.clone()).unwrap_err();
    assert!(err.to_string().contains("needs a shared store"), "{err}");
    let home = Home::postgres();
    let Location::Postgres { url, dir, .. } = home.location() else {
        unreachable!()
    };
    let err = Store::open_at(
        &Location::Postgres {
            url,
            artifacts: None,
            dir,
        },
        "test",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no artifact store yet"), "{err}");
}

on_both!(a_cron_slot_is_taken_once_whoever_asks, |home| {
    let store = home.open();
    let take = |slot: u64| {
        store.create_queued_run(
            "alpha",
            Path::new("w.toml"),
            b"[workflow]",
            vec![],
            TriggerRecord::default(),
            Some(("tick", &serde_json::json!({ "slot": slot }))),
        )
    };
    take(1_000).unwrap();
    take(2_000).unwrap();
    let err = take(2_000).unwrap_err().to_string();
    assert!(err.contains("slot 2000 is already taken"), "{err}");
    assert!(take(1_000).is_err());
    assert_eq!(store.run_count(), 2);
});
