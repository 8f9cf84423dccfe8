//! Persistent state: run history, the step cache and the model registry, in an embedded sled
//! database beside a content-addressed artifact directory (the default), or in PostgreSQL
//! beside an object store when several processes on several machines share them.
//!
//! ```text
//! <data dir>/            ./.wflow by default; --data-dir or WFLOW_DATA_DIR to change
//!   db/                  sled: runs, steps, logs, cache, active, versions, aliases, events,
//!                        triggers
//!   artifacts/sha256/    tables, models (ONNX + metadata), reports, workflow files
//! ```
//!
//! With `--store postgres://...` the same trees are rows of one table ([`postgres`]) and the
//! artifacts live in an object store ([`objects`]); [`backend`] keeps the two interchangeable.
//!
//! This module is the only one that touches the database or the artifact files; the rest of
//! the host sees the narrow interface of [`Store`] (and the engine only its `Journal` trait,
//! implemented in [`journal`]).
//!
//! Crash safety rests on three rules. Artifacts are written and synced before any record
//! refers to them. Every record is one sled value written whole (several at once in a sled
//! transaction), and the database is flushed at each step's end, so a killed process loses at
//! most what was in flight and never leaves half a record. And sled holds an exclusive lock on
//! the database while a process has it open, so when [`Store::open`] succeeds, any run still
//! marked running has lost its process: it is marked interrupted, ready for `wflow runs resume`.

pub mod artifacts;
pub mod backend;
pub mod codec;
pub mod journal;
pub mod objects;
pub mod postgres;
pub mod queue;
pub mod records;
pub mod registry;
pub mod stats;

use std::path::{Path, PathBuf};

use backend::{Backend, Tree, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use artifacts::{ArtifactError, Artifacts, digest_of};
pub use codec::{CodecError, StoredValue, ValueKind};
pub use journal::RunJournal;
pub use records::*;

/// How long opening the store waits for another process to let go of it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The format of the database this wflow writes; a newer one is refused, not misread.
const FORMAT_VERSION: u64 = 1;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {0} is in use by another wflow process (a run or a daemon); wait for it to finish, or use another --data-dir"
    )]
    Locked(PathBuf),
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the store at {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the store at {path}: {reason}")]
    Database { path: PathBuf, reason: String },
}

/// What a caller did wrong, when a store error is the request's fault rather than the
/// store's: `NotFound` or `Invalid`, so HTTP answers 404 or 400 and logs nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerFault {
    NotFound(String),
    Invalid(String),
}

impl StoreError {
    /// The caller's mistake this error reports, if it is one (an unknown name, a malformed or
    /// ambiguous digest, an artifact that is not there).
    pub fn caller_fault(&self) -> Option<CallerFault> {
        match self {
            StoreError::NotFound(what) => Some(CallerFault::NotFound(what.clone())),
            StoreError::Invalid(what) => Some(CallerFault::Invalid(what.clone())),
            StoreError::Artifact(err @ ArtifactError::Missing(_)) => {
                Some(CallerFault::NotFound(err.to_string()))
            }
            StoreError::Artifact(
                err @ (ArtifactError::BadDigest(_) | ArtifactError::Ambiguous { .. }),
            ) => Some(CallerFault::Invalid(err.to_string())),
            _ => None,
        }
    }
}

/// Filters of `runs list`.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    /// What started the runs: `cron`, `files`, `manual`... or `run` for `wflow run`.
    pub trigger: Option<String>,
    pub limit: Option<usize>,
}

/// Where a store keeps its records and artifacts.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    /// sled and an artifact folder in a data directory: one machine, no server.
    Dir(PathBuf),
    /// PostgreSQL and an object store, shared by a cluster. `dir` is still the local data
    /// directory (a daemon's address and token files).
    Postgres {
        url: String,
        /// `file:///...` or `s3://...`; recorded in the database the first time and read from
        /// it afterwards.
        artifacts: Option<String>,
        dir: PathBuf,
    },
}

impl Location {
    /// `--store` (a PostgreSQL URL, or nothing for the data directory), `--artifacts` and
    /// `--data-dir`.
    pub fn new(
        store: Option<&str>,
        artifacts: Option<&str>,
        dir: PathBuf,
    ) -> Result<Location, StoreError> {
        match store {
            None | Some("") | Some("sled") => {
                if let Some(artifacts) = artifacts {
                    return Err(StoreError::Invalid(format!(
                        "--artifacts `{artifacts}` needs a shared store: give --store postgres://... too (with the default store, artifacts live in the data directory)"
                    )));
                }
                Ok(Location::Dir(dir))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Location::Postgres {
                    url: url.to_string(),
                    artifacts: artifacts.map(str::to_string),
                    dir,
                })
            }
            Some(other) => Err(StoreError::Invalid(format!(
                "--store `{}` is not a store: give a postgres://USER@HOST/DATABASE URL, or leave it out for the data directory",
                postgres::redact(other)
            ))),
        }
    }

    /// The local data directory.
    pub fn dir(&self) -> &Path {
        match self {
            Location::Dir(dir) | Location::Postgres { dir, .. } => dir,
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Location::Postgres { .. })
    }
}

/// The run history, step cache, model registry and artifacts of one data directory, or of a
/// cluster's PostgreSQL database and object store.
pub struct Store {
    dir: PathBuf,
    /// The data directory or the database's URL (without password), for messages.
    location: String,
    backend: Backend,
    artifacts: Artifacts,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish()
    }
}

fn run_key(run: u64) -> [u8; 8] {
    run.to_be_bytes()
}

fn trigger_key(workflow: &str, trigger: &str) -> Vec<u8> {
    let mut key = workflow.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(trigger.as_bytes());
    key
}

fn step_key(run: u64, index: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&run.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

impl Store {
    /// `./.wflow` in the current directory: beside the workflows of a project checkout, like
    /// `.git`; `--data-dir` or `WFLOW_DATA_DIR` choose another.
    pub fn default_dir() -> PathBuf {
        PathBuf::from(".wflow")
    }

    /// Opens the store at `location`; `kind` says what this process is (`run`, `daemon`,
    /// `worker`, `serve`, `command`) in a shared store's list of processes.
    pub fn open_at(location: &Location, kind: &str) -> Result<Store, StoreError> {
        match location {
            Location::Dir(dir) => Store::open(dir),
            Location::Postgres {
                url,
                artifacts,
                dir,
            } => Store::open_postgres(url, artifacts.as_deref(), dir, kind),
        }
    }

    fn open_postgres(
        url: &str,
        artifacts: Option<&str>,
        dir: &Path,
        kind: &str,
    ) -> Result<Store, StoreError> {
        let display = postgres::redact(url);
        let open_error = |reason: String| StoreError::Open {
            path: PathBuf::from(&display),
            reason,
        };
        let pg = postgres::Postgres::open(url, kind).map_err(&open_error)?;
        let recorded = match artifacts {
            Some(given) => {
                let given = normalise_artifacts_url(given)?;
                let recorded = pg
                    .setting_or_insert("artifacts", &given)
                    .map_err(&open_error)?;
                if recorded != given {
                    return Err(open_error(format!(
                        "its artifacts are in {recorded}, not {given}: leave --artifacts out, or give the same one"
                    )));
                }
                recorded
            }
            None => pg.setting("artifacts").map_err(&open_error)?.ok_or_else(|| {
                open_error(
                    "it has no artifact store yet: give --artifacts file:///SHARED/FOLDER or s3://BUCKET/PREFIX the first time"
                        .into(),
                )
            })?,
        };
        let objects = objects::ObjectArtifacts::open(&recorded, pg.io().clone())?;
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        // The local data directory still holds a daemon's address and token files.
        std::fs::create_dir_all(&dir).map_err(|err| StoreError::Open {
            path: dir.clone(),
            reason: err.to_string(),
        })?;
        Ok(Store {
            dir,
            location: display,
            backend: Backend::Postgres(pg),
            artifacts: Artifacts::in_object_store(objects),
        })
    }

    /// Opens (creating) the sled store in `dir` and marks runs whose process died as
    /// interrupted.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let dir = dir.into();
        // Absolute, so that every error names the store unambiguously.
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let open_error = |reason: String| StoreError::Open {
            path: dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|err| open_error(err.to_string()))?;
        let db_path = dir.join("db");
        // sled panics on some kinds of damage instead of returning an error; a damaged store
        // must be an error naming the path, never a crash.
        let locked = |err: &sled::Error| {
            matches!(err, sled::Error::Io(err)
                if err.kind() == std::io::ErrorKind::WouldBlock
                    || err.to_string().contains("could not acquire lock"))
        };
        // Another process may hold the store for a moment (a server reading a model, a
        // command moving an alias): wait a little before calling it in use.
        let waiting_since = std::time::Instant::now();
        let opened = loop {
            let opened = std::panic::catch_unwind(|| sled::Config::new().path(&db_path).open());
            match &opened {
                Ok(Err(err)) if locked(err) && waiting_since.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => break opened,
            }
        };
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(err)) if locked(&err) => return Err(StoreError::Locked(dir)),
            Ok(Err(sled::Error::Corruption { .. })) => {
                return Err(StoreError::Corrupt {
                    path: db_path,
                    what: "the database files are damaged".into(),
                });
            }
            Ok(Err(err)) => return Err(open_error(err.to_string())),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unreadable database".into());
                return Err(StoreError::Corrupt {
                    path: db_path,
                    what: message,
                });
            }
        };
        let sled = backend::Sled::new(db).map_err(|(tree, err)| StoreError::Corrupt {
            path: db_path.clone(),
            what: format!("tree `{}`: {err}", tree.name()),
        })?;
        let store = Store {
            artifacts: Artifacts::open(dir.join("artifacts"))?,
            backend: Backend::Sled(sled),
            location: dir.display().to_string(),
            dir,
        };
        store.check_format()?;
        store.mark_interrupted(None)?;
        Ok(store)
    }

    /// The local data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the records are: the data directory, or the database's URL without password.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// The PostgreSQL backend, when the store is shared.
    pub fn postgres(&self) -> Option<&postgres::Postgres> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sled(_) => None,
        }
    }

    /// This process's id in a shared store (empty on sled, where only one process writes).
    pub fn process_id(&self) -> &str {
        self.postgres().map_or("", |pg| &pg.process().id)
    }

    fn db_path(&self) -> PathBuf {
        match &self.backend {
            Backend::Sled(_) => self.dir.join("db"),
            Backend::Postgres(_) => PathBuf::from(&self.location),
        }
    }

    fn db_error(&self) -> impl Fn(String) -> StoreError + '_ {
        |reason| StoreError::Database {
            path: self.db_path(),
            reason,
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        tree: &str,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt {
            path: self.db_path(),
            what: format!(
                "record {} in `{tree}` is unreadable: {err}",
                hex::encode(key)
            ),
        })
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).expect("records serialise to JSON")
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.get(tree, key).map_err(self.db_error())
    }

    fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.backend.write(writes).map_err(self.db_error())
    }

    fn write_lazily(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.backend.write_lazily(writes).map_err(self.db_error())
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let key = b"format";
        match self.get(Tree::Meta, key)? {
            None => self.write(vec![Write::Put(
                Tree::Meta,
                key.to_vec(),
                FORMAT_VERSION.to_be_bytes().to_vec(),
            )]),
            Some(bytes) => {
                let version = <[u8; 8]>::try_from(bytes.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        path: self.db_path(),
                        what: "the format marker is damaged".into(),
                    })?;
                if version > FORMAT_VERSION {
                    return Err(StoreError::Open {
                        path: self.dir.clone(),
                        reason: format!(
                            "it was written by a newer wflow (store format {version}, this one reads up to {FORMAT_VERSION})"
                        ),
                    });
                }
                Ok(())
            }
        }
    }

    /// Marks runs whose process is gone as interrupted: on sled every run still listed as
    /// active (we hold the lock, so its process is gone); on PostgreSQL those whose process no
    /// longer holds its liveness lock. Returns the runs marked. `only` limits it to one run.
    fn mark_interrupted(&self, only: Option<u64>) -> Result<Vec<u64>, StoreError> {
        let mut marked = Vec::new();
        let active = match only {
            Some(id) => self
                .get(Tree::Active, &run_key(id))?
                .map(|owner| vec![(run_key(id).to_vec(), owner)])
                .unwrap_or_default(),
            None => self
                .backend
                .scan_prefix(Tree::Active, &[])
                .map_err(self.db_error())?,
        };
        for (key, owner) in active {
            let Ok(bytes) = <[u8; 8]>::try_from(key.as_slice()) else {
                continue;
            };
            let id = u64::from_be_bytes(bytes);
            let owner = String::from_utf8_lossy(&owner).into_owned();
            let who = match self.postgres() {
                None => None,
                Some(pg) => {
                    if pg.process_alive(&owner).map_err(self.db_error())? {
                        continue;
                    }
                    Some(
                        pg.process_label(&owner)
                            .unwrap_or_else(|| format!("process {owner}")),
                    )
                }
            };
            if let Ok(run) = self.run(id)
                && run.status == RunStatus::Running
            {
                let note = match who {
                    Some(who) => {
                        format!("the process running it ({who}) stopped before it finished")
                    }
                    None => format!(
                        "the process running it (pid {}) stopped before it finished",
                        run.pid
                    ),
                };
                for mut step in self.steps(id)? {
                    if step.status == StepStatus::Running {
                        step.status = StepStatus::Interrupted;
                        step.transitions.push(Transition {
                            status: StepStatus::Interrupted,
                            at: now(),
                            note: None,
                        });
                        self.put_step(&step)?;
                    }
                }
                self.set_run_status(id, RunStatus::Interrupted, Some(note))?;
                marked.push(id);
            }
            self.write(vec![Write::Delete(Tree::Active, key)])?;
        }
        Ok(marked)
    }

    /// On a shared store: marks the runs whose coordinating process has died as interrupted,
    /// so a daemon can resume them. Returns them. (On sled this happened when the store was
    /// opened.)
    pub fn reap_interrupted(&self) -> Result<Vec<u64>, StoreError> {
        if self.postgres().is_none() {
            return Ok(Vec::new());
        }
        self.mark_interrupted(None)
    }

    /// Makes everything written so far durable (every write already is; kept for callers
    /// that say so explicitly).
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(sled) => {
                sled.db
                    .flush()
                    .map(|_| ())
                    .map_err(|err| StoreError::Database {
                        path: self.db_path(),
                        reason: err.to_string(),
                    })
            }
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Starts a run record: allocates its id, stores the workflow file's text.
    pub fn create_run(
        &self,
        workflow: &str,
        file: &Path,
        text: &[u8],
        steps: Vec<String>,
        no_cache: bool,
    ) -> Result<RunRecord, StoreError> {
        self.create_triggered_run(workflow, file, text, steps, no_cache, None, None)
    }

    /// Starts a run that a trigger started, and writes that trigger's new state in the same
    /// transaction: a cron slot or a batch of files is consumed exactly when its run exists.
    #[allow(clippy::too_many_arguments)]
    pub fn create_triggered_run(
        &self,
        workflow: &str,
        file: &Path,
        text: &[u8],
        steps: Vec<String>,
        no_cache: bool,
        trigger: Option<TriggerRecord>,
        state: Option<(&str, &serde_json::Value)>,
    ) -> Result<RunRecord, StoreError> {
        self.new_run(
            RunStatus::Running,
            workflow,
            file,
            text,
            steps,
            no_cache,
            trigger,
            state,
        )
    }

    /// Records a run a trigger asked for, waiting its turn (a daemon starts it with
    /// [`Store::start_queued_run`]); the trigger's state moves with it, as for a started run.
    pub fn create_queued_run(
        &self,
        workflow: &str,
        file: &Path,
        text: &[u8],
        steps: Vec<String>,
        trigger: TriggerRecord,
        state: Option<(&str, &serde_json::Value)>,
    ) -> Result<RunRecord, StoreError> {
        self.new_run(
            RunStatus::Queued,
            workflow,
            file,
            text,
            steps,
            false,
            Some(trigger),
            state,
        )
    }

    /// Starts a queued run in this process.
    pub fn start_queued_run(&self, id: u64) -> Result<RunRecord, StoreError> {
        let mut record = self.run(id)?;
        if record.status != RunStatus::Queued {
            return Err(StoreError::Invalid(format!(
                "run {id} is {}, not queued",
                record.status.label()
            )));
        }
        record.status = RunStatus::Running;
        record.pid = std::process::id();
        record.transitions.push(Transition {
            status: RunStatus::Running,
            at: now(),
            note: None,
        });
        self.begin(&record)?;
        Ok(record)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_run(
        &self,
        status: RunStatus,
        workflow: &str,
        file: &Path,
        text: &[u8],
        steps: Vec<String>,
        no_cache: bool,
        trigger: Option<TriggerRecord>,
        state: Option<(&str, &serde_json::Value)>,
    ) -> Result<RunRecord, StoreError> {
        let workflow_digest = self.artifacts.put(text)?;
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let state = state.map(|(name, value)| {
            (
                trigger_key(workflow, name),
                serde_json::to_vec(value).expect("JSON values serialise"),
            )
        });
        let owner = self.process_id().as_bytes().to_vec();
        let db_path = self.db_path();
        let db_error = self.db_error();
        self.backend.serialized("runs", &db_error, |reader| {
            // A cron slot is taken once: a second process that believes it leads (a leader
            // cut off from the database for a moment) finds the slot taken and starts nothing.
            if let Some((key, value)) = &state
                && let Some(slot) = serde_json::from_slice::<serde_json::Value>(value)
                    .ok()
                    .and_then(|v| v.get("slot").and_then(|s| s.as_u64()))
                && let Some(current) = reader.get(Tree::Triggers, key).map_err(&db_error)?
                && let Some(taken) = serde_json::from_slice::<serde_json::Value>(&current)
                    .ok()
                    .and_then(|v| v.get("slot").and_then(|s| s.as_u64()))
                && taken >= slot
            {
                return Err(StoreError::Invalid(format!(
                    "the trigger's slot {slot} is already taken (its last slot is {taken})"
                )));
            }
            let id = match reader.last(Tree::Runs, &[]).map_err(&db_error)? {
                Some((key, _)) => {
                    u64::from_be_bytes(key.as_slice().try_into().map_err(|_| {
                        StoreError::Corrupt {
                            path: db_path.clone(),
                            what: "a run key is damaged".into(),
                        }
                    })?) + 1
                }
                None => 1,
            };
            let created = now();
            let record = RunRecord {
                id,
                workflow: workflow.to_string(),
                file: file.display().to_string(),
                workflow_digest,
                status,
                created,
                finished: None,
                transitions: vec![Transition {
                    status,
                    at: created,
                    note: None,
                }],
                steps,
                datasets: Vec::new(),
                no_cache,
                pid: std::process::id(),
                trigger,
            };
            let mut writes = vec![Write::Put(
                Tree::Runs,
                run_key(id).to_vec(),
                Self::encode(&record),
            )];
            if status == RunStatus::Running {
                writes.push(Write::Put(Tree::Active, run_key(id).to_vec(), owner));
            }
            if let Some((key, value)) = state {
                writes.push(Write::Put(Tree::Triggers, key, value));
            }
            Ok::<_, StoreError>((record, writes))
        })
    }

    /// The state a trigger of a workflow left (its last cron slot, the files it consumed...).
    pub fn trigger_state(
        &self,
        workflow: &str,
        trigger: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let key = trigger_key(workflow, trigger);
        match self.get(Tree::Triggers, &key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|err| StoreError::Corrupt {
                        path: self.db_path(),
                        what: format!("the state of trigger `{trigger}` of `{workflow}`: {err}"),
                    })
            }
        }
    }

    /// Writes a trigger's state without a run (a slot skipped by the overlap policy).
    pub fn set_trigger_state(
        &self,
        workflow: &str,
        trigger: &str,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write(vec![Write::Put(
            Tree::Triggers,
            trigger_key(workflow, trigger),
            serde_json::to_vec(state).expect("JSON values serialise"),
        )])
    }

    /// Writes a running run and its membership of `active` together.
    fn begin(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.write(vec![
            Write::Put(
                Tree::Runs,
                run_key(record.id).to_vec(),
                Self::encode(record),
            ),
            Write::Put(
                Tree::Active,
                run_key(record.id).to_vec(),
                self.process_id().as_bytes().to_vec(),
            ),
        ])
    }

    /// Continues an interrupted or failed run in this process.
    pub fn reopen_run(&self, id: u64) -> Result<RunRecord, StoreError> {
        // On a shared store a run whose process died is still marked running until someone
        // notices; this is the moment to.
        if self.postgres().is_some() {
            self.mark_interrupted(Some(id))?;
        }
        let mut record = self.run(id)?;
        match record.status {
            RunStatus::Interrupted | RunStatus::Failed | RunStatus::Cancelled => {}
            RunStatus::Queued => {
                return Err(StoreError::Invalid(format!(
                    "run {id} is queued in a daemon; it has not started yet"
                )));
            }
            RunStatus::Running => {
                return Err(StoreError::Invalid(format!(
                    "run {id} is still running (pid {})",
                    record.pid
                )));
            }
            RunStatus::Succeeded => {
                return Err(StoreError::Invalid(format!(
                    "run {id} already succeeded; there is nothing to resume"
                )));
            }
        }
        record.status = RunStatus::Running;
        record.finished = None;
        record.pid = std::process::id();
        record.transitions.push(Transition {
            status: RunStatus::Running,
            at: now(),
            note: Some("resumed".into()),
        });
        self.begin(&record)?;
        Ok(record)
    }

    /// A run by id.
    pub fn run(&self, id: u64) -> Result<RunRecord, StoreError> {
        let key = run_key(id);
        match self.get(Tree::Runs, &key)? {
            Some(bytes) => self.decode("runs", &key, &bytes),
            None => Err(StoreError::NotFound(format!("no run {id}"))),
        }
    }

    /// Replaces a run record (durable with the next step's end or status change).
    pub fn put_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.write_lazily(vec![Write::Put(
            Tree::Runs,
            run_key(record.id).to_vec(),
            Self::encode(record),
        )])
    }

    /// Moves a run to `status`; a final status also leaves the active set, in one write.
    pub fn set_run_status(
        &self,
        id: u64,
        status: RunStatus,
        note: Option<String>,
    ) -> Result<RunRecord, StoreError> {
        let mut record = self.run(id)?;
        let at = now();
        record.status = status;
        record.transitions.push(Transition { status, at, note });
        let mut writes = Vec::new();
        if status != RunStatus::Running {
            record.finished = Some(at);
            writes.push(Write::Delete(Tree::Active, run_key(id).to_vec()));
        }
        writes.push(Write::Put(
            Tree::Runs,
            run_key(id).to_vec(),
            Self::encode(&record),
        ));
        if status == RunStatus::Running {
            self.write_lazily(writes)?;
        } else {
            self.write(writes)?;
        }
        Ok(record)
    }

    /// Runs, newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut failure = None;
        self.backend
            .scan_back(Tree::Runs, &mut |key, bytes| {
                if out.len() >= limit {
                    return false;
                }
                let record: RunRecord = match self.decode("runs", key, bytes) {
                    Ok(record) => record,
                    Err(err) => {
                        failure = Some(err);
                        return false;
                    }
                };
                let wanted = filter
                    .workflow
                    .as_ref()
                    .is_none_or(|w| *w == record.workflow)
                    && filter.status.is_none_or(|s| s == record.status)
                    && filter.trigger.as_ref().is_none_or(|t| {
                        *t == record.trigger.as_ref().map_or("run", |r| r.kind.as_str())
                    });
                if wanted {
                    out.push(record);
                }
                true
            })
            .map_err(self.db_error())?;
        match failure {
            Some(err) => Err(err),
            None => Ok(out),
        }
    }

    /// How many runs the store holds.
    pub fn run_count(&self) -> usize {
        self.backend.len(Tree::Runs).unwrap_or(0)
    }

    /// A run's steps, in plan order.
    pub fn steps(&self, run: u64) -> Result<Vec<StepRecord>, StoreError> {
        self.backend
            .scan_prefix(Tree::Steps, &run_key(run))
            .map_err(self.db_error())?
            .into_iter()
            .map(|(key, bytes)| self.decode("steps", &key, &bytes))
            .collect()
    }

    /// One step of a run.
    pub fn step(&self, run: u64, index: u32) -> Result<Option<StepRecord>, StoreError> {
        let key = step_key(run, index);
        self.get(Tree::Steps, &key)?
            .map(|bytes| self.decode("steps", &key, &bytes))
            .transpose()
    }

    /// Replaces a step record (durable with the next step's end or status change).
    pub fn put_step(&self, record: &StepRecord) -> Result<(), StoreError> {
        self.write_lazily(vec![Write::Put(
            Tree::Steps,
            step_key(record.run, record.index).to_vec(),
            Self::encode(record),
        )])
    }

    /// Records a finished step, its log and (when it succeeded and is cacheable) its cache
    /// entry at once, and makes them durable.
    pub fn finish_step(
        &self,
        record: &StepRecord,
        log: &LogRecord,
        cache: bool,
    ) -> Result<(), StoreError> {
        let key = step_key(record.run, record.index).to_vec();
        let mut writes = vec![
            Write::Put(Tree::Steps, key.clone(), Self::encode(record)),
            Write::Put(Tree::Logs, key, Self::encode(log)),
        ];
        if let (Some(cache_key), true) = (
            &record.cache_key,
            cache && record.status == StepStatus::Succeeded,
        ) {
            writes.push(Write::Put(
                Tree::Cache,
                cache_key.as_bytes().to_vec(),
                Self::encode(&CacheEntry {
                    run: record.run,
                    index: record.index,
                }),
            ));
        }
        self.write(writes)
    }

    /// A step's kept log.
    pub fn log(&self, run: u64, index: u32) -> Result<LogRecord, StoreError> {
        let key = step_key(run, index);
        Ok(self
            .get(Tree::Logs, &key)?
            .map(|bytes| self.decode("logs", &key, &bytes))
            .transpose()?
            .unwrap_or_default())
    }

    /// The log of a step as it ran: for a step reused from the cache, the original execution's.
    pub fn step_log(&self, step: &StepRecord) -> Result<LogRecord, StoreError> {
        if let Some(reuse) = &step.reused
            && let Some(original) = self
                .steps(reuse.run)?
                .into_iter()
                .find(|s| s.id == reuse.step && s.reused.is_none())
        {
            return self.log(original.run, original.index);
        }
        self.log(step.run, step.index)
    }

    /// The earlier successful execution of a step with this cache key, if its record and every
    /// output artifact are still there.
    pub fn cached(&self, cache_key: &str) -> Result<Option<StepRecord>, StoreError> {
        let Some(bytes) = self.get(Tree::Cache, cache_key.as_bytes())? else {
            return Ok(None);
        };
        let entry: CacheEntry = self.decode("cache", cache_key.as_bytes(), &bytes)?;
        let Some(step) = self.step(entry.run, entry.index)? else {
            return Ok(None);
        };
        let usable = step.status.completed()
            && step.cache_key.as_deref() == Some(cache_key)
            && step.outputs.iter().all(|o| {
                self.artifacts.contains(&o.value.digest)
                    && o.value
                        .onnx
                        .as_ref()
                        .is_none_or(|d| self.artifacts.contains(d))
            });
        Ok(usable.then_some(step))
    }

    /// The bytes of every record (keys and values), what the database holds before its own
    /// overhead and not-yet-reclaimed space.
    pub fn record_bytes(&self) -> u64 {
        self.backend.record_bytes(&[
            Tree::Runs,
            Tree::Steps,
            Tree::Logs,
            Tree::Cache,
            Tree::Active,
            Tree::Versions,
            Tree::Aliases,
            Tree::Events,
        ])
    }

    /// The on-disk size of the database and the artifacts, in bytes.
    pub fn size(&self) -> (u64, u64) {
        (self.backend.size_on_disk(), self.artifacts.size())
    }
}

/// Events a shared store's log keeps; older ones are dropped as new ones arrive.
const EVENTS_KEPT: u64 = 10_000;

impl Store {
    /// Appends an event (JSON, its `seq` to be set) to a shared store's event log, so every
    /// daemon and replica of the cluster, and the next leader, see one numbered history.
    /// Returns its sequence number. (On sled the event log is the daemon's, in memory.)
    pub fn append_event(&self, event: &serde_json::Value) -> Result<u64, StoreError> {
        let db_error = self.db_error();
        let seq = self.backend.serialized("eventlog", &db_error, |reader| {
            let seq = reader
                .last(Tree::EventLog, &[])
                .map_err(&db_error)?
                .and_then(|(key, _)| <[u8; 8]>::try_from(key.as_slice()).ok())
                .map_or(1, |key| u64::from_be_bytes(key) + 1);
            let mut event = event.clone();
            event["seq"] = serde_json::json!(seq);
            let mut writes = vec![Write::Put(
                Tree::EventLog,
                seq.to_be_bytes().to_vec(),
                Self::encode(&event),
            )];
            if seq > EVENTS_KEPT {
                writes.push(Write::Delete(
                    Tree::EventLog,
                    (seq - EVENTS_KEPT).to_be_bytes().to_vec(),
                ));
            }
            Ok::<_, StoreError>((seq, writes))
        })?;
        if let Some(pg) = self.postgres()
            && let Err(err) = pg.notify(postgres::channel::EVENTS, &seq.to_string())
        {
            tracing::warn!(error = %err, "cannot announce an event");
        }
        Ok(seq)
    }

    /// The events of the log after `since`, oldest first, at most `limit`.
    pub fn events_after(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut found = Vec::new();
        let mut failure = None;
        self.backend
            .scan_back(Tree::EventLog, &mut |key, value| {
                let seq = <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes);
                if seq <= since || found.len() >= limit {
                    return false;
                }
                match self.decode::<serde_json::Value>("eventlog", key, value) {
                    Ok(event) => found.push(event),
                    Err(err) => {
                        failure = Some(err);
                        return false;
                    }
                }
                true
            })
            .map_err(self.db_error())?;
        if let Some(err) = failure {
            return Err(err);
        }
        found.reverse();
        Ok(found)
    }
}

/// `file:///abs/path` for a folder given as a path, URLs as they are.
fn normalise_artifacts_url(given: &str) -> Result<String, StoreError> {
    if given.contains("://") {
        return Ok(given.trim_end_matches('/').to_string());
    }
    let path = std::path::absolute(given).map_err(|err| {
        StoreError::Invalid(format!("--artifacts `{given}` is not a usable path: {err}"))
    })?;
    Ok(format!("file://{}", path.display()))
}

#[cfg(test)]
mod pg_server;
#[cfg(test)]
mod tests;
