//! Persistent state: run history, the step cache and the model registry in an embedded sled
//! database, beside a content-addressed artifact directory.
//!
//! ```text
//! <data dir>/            ./.wflow by default; --data-dir or WFLOW_DATA_DIR to change
//!   db/                  sled: runs, steps, logs, cache, active, versions, aliases, events,
//!                        triggers
//!   artifacts/sha256/    tables, models (ONNX + metadata), reports, workflow files
//! ```
//!
//! This module is the only one that touches the database or the artifact files; the rest of
//! the host sees the narrow interface of [`Store`] (and the engine only its `Journal` trait,
//! implemented in [`journal`]), so a server-backed store can replace it without touching
//! them.
//!
//! Crash safety rests on three rules. Artifacts are written and synced before any record
//! refers to them. Every record is one sled value written whole (several at once in a sled
//! transaction), and the database is flushed at each step's end, so a killed process loses at
//! most what was in flight and never leaves half a record. And sled holds an exclusive lock on
//! the database while a process has it open, so when [`Store::open`] succeeds, any run still
//! marked running has lost its process: it is marked interrupted, ready for `wflow runs resume`.

pub mod artifacts;
pub mod codec;
pub mod journal;
pub mod records;
pub mod registry;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Filters of `runs list`.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: Option<usize>,
}

/// The run history, step cache, model registry and artifacts of one data directory.
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    runs: sled::Tree,
    steps: sled::Tree,
    logs: sled::Tree,
    cache: sled::Tree,
    /// Runs in flight: the ones to mark interrupted when their process is gone.
    active: sled::Tree,
    versions: sled::Tree,
    aliases: sled::Tree,
    events: sled::Tree,
    /// Per (workflow, trigger): what the trigger consumed last, as JSON.
    triggers: sled::Tree,
    artifacts: Artifacts,
    /// Serialises id allocation within the process (the file lock excludes other processes).
    allocate: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
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

    /// Opens (creating) the store in `dir` and marks runs whose process died as interrupted.
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
        let tree = |name: &str| {
            db.open_tree(name).map_err(|err| StoreError::Corrupt {
                path: db_path.clone(),
                what: format!("tree `{name}`: {err}"),
            })
        };
        let store = Store {
            runs: tree("runs")?,
            steps: tree("steps")?,
            logs: tree("logs")?,
            cache: tree("cache")?,
            active: tree("active")?,
            versions: tree("versions")?,
            aliases: tree("aliases")?,
            events: tree("events")?,
            triggers: tree("triggers")?,
            artifacts: Artifacts::open(dir.join("artifacts"))?,
            db,
            dir,
            allocate: Mutex::new(()),
        };
        store.check_format()?;
        store.mark_interrupted()?;
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// A failed sled transaction (only an IO error can abort ours: none returns its own).
    fn transaction_error<E: std::fmt::Debug>(&self, err: E) -> StoreError {
        StoreError::Database {
            path: self.dir.join("db"),
            reason: format!("{err:?}"),
        }
    }

    fn db_error(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        |err| StoreError::Database {
            path: self.dir.join("db"),
            reason: err.to_string(),
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        tree: &str,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt {
            path: self.dir.join("db"),
            what: format!(
                "record {} in `{tree}` is unreadable: {err}",
                hex::encode(key)
            ),
        })
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).expect("records serialise to JSON")
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let key = b"format";
        match self.db.get(key).map_err(self.db_error())? {
            None => {
                self.db
                    .insert(key, &FORMAT_VERSION.to_be_bytes())
                    .map_err(self.db_error())?;
                Ok(())
            }
            Some(bytes) => {
                let version = <[u8; 8]>::try_from(bytes.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        path: self.dir.join("db"),
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

    /// Runs still marked running belong to a process that is gone (we hold the lock).
    fn mark_interrupted(&self) -> Result<(), StoreError> {
        let mut found = false;
        for entry in self.active.iter() {
            let (key, _) = entry.map_err(self.db_error())?;
            found = true;
            let Ok(bytes) = <[u8; 8]>::try_from(key.as_ref()) else {
                continue;
            };
            let id = u64::from_be_bytes(bytes);
            if let Ok(run) = self.run(id)
                && run.status == RunStatus::Running
            {
                let note = format!(
                    "the process running it (pid {}) stopped before it finished",
                    run.pid
                );
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
            }
            self.active.remove(key).map_err(self.db_error())?;
        }
        if found {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(self.db_error())?;
        Ok(())
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
        let workflow_digest = self.artifacts.put(text)?;
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let _guard = self.allocate.lock().unwrap_or_else(|e| e.into_inner());
        let id = match self.runs.last().map_err(self.db_error())? {
            Some((key, _)) => {
                u64::from_be_bytes(key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    path: self.dir.join("db"),
                    what: "a run key is damaged".into(),
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
            status: RunStatus::Running,
            created,
            finished: None,
            transitions: vec![Transition {
                status: RunStatus::Running,
                at: created,
                note: None,
            }],
            steps,
            datasets: Vec::new(),
            no_cache,
            pid: std::process::id(),
            trigger,
        };
        let state = state.map(|(name, value)| {
            (
                trigger_key(workflow, name),
                serde_json::to_vec(value).expect("JSON values serialise"),
            )
        });
        self.begin_with(&record, state)?;
        Ok(record)
    }

    /// The state a trigger of a workflow left (its last cron slot, the files it consumed...).
    pub fn trigger_state(
        &self,
        workflow: &str,
        trigger: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let key = trigger_key(workflow, trigger);
        match self.triggers.get(&key).map_err(self.db_error())? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|err| StoreError::Corrupt {
                        path: self.dir.join("db"),
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
        self.triggers
            .insert(
                trigger_key(workflow, trigger),
                serde_json::to_vec(state).expect("JSON values serialise"),
            )
            .map_err(self.db_error())?;
        self.flush()
    }

    /// Writes a running run and its membership of `active` together.
    fn begin(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.begin_with(record, None)
    }

    /// `begin`, writing a trigger's state in the same transaction.
    fn begin_with(
        &self,
        record: &RunRecord,
        state: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        use sled::Transactional;
        let bytes = Self::encode(record);
        (&self.runs, &self.active, &self.triggers)
            .transaction(|(runs, active, triggers)| {
                runs.insert(&run_key(record.id), bytes.as_slice())?;
                active.insert(&run_key(record.id), &[])?;
                if let Some((key, value)) = &state {
                    triggers.insert(key.as_slice(), value.as_slice())?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|err| self.transaction_error(err))?;
        self.flush()
    }

    /// Continues an interrupted or failed run in this process.
    pub fn reopen_run(&self, id: u64) -> Result<RunRecord, StoreError> {
        let mut record = self.run(id)?;
        match record.status {
            RunStatus::Interrupted | RunStatus::Failed | RunStatus::Cancelled => {}
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
        match self.runs.get(key).map_err(self.db_error())? {
            Some(bytes) => self.decode("runs", &key, &bytes),
            None => Err(StoreError::NotFound(format!("no run {id}"))),
        }
    }

    /// Replaces a run record.
    pub fn put_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.runs
            .insert(run_key(record.id), Self::encode(record))
            .map_err(self.db_error())?;
        Ok(())
    }

    /// Moves a run to `status`; a final status also leaves the active set and is flushed.
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
        if status != RunStatus::Running {
            record.finished = Some(at);
            self.put_run(&record)?;
            self.active.remove(run_key(id)).map_err(self.db_error())?;
            self.flush()?;
        } else {
            self.put_run(&record)?;
        }
        Ok(record)
    }

    /// Runs, newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for entry in self.runs.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (key, bytes) = entry.map_err(self.db_error())?;
            let record: RunRecord = self.decode("runs", &key, &bytes)?;
            if filter
                .workflow
                .as_ref()
                .is_some_and(|w| *w != record.workflow)
            {
                continue;
            }
            if filter.status.is_some_and(|s| s != record.status) {
                continue;
            }
            out.push(record);
        }
        Ok(out)
    }

    /// How many runs the store holds.
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// A run's steps, in plan order.
    pub fn steps(&self, run: u64) -> Result<Vec<StepRecord>, StoreError> {
        self.steps
            .scan_prefix(run_key(run))
            .map(|entry| {
                let (key, bytes) = entry.map_err(self.db_error())?;
                self.decode("steps", &key, &bytes)
            })
            .collect()
    }

    /// One step of a run.
    pub fn step(&self, run: u64, index: u32) -> Result<Option<StepRecord>, StoreError> {
        let key = step_key(run, index);
        self.steps
            .get(key)
            .map_err(self.db_error())?
            .map(|bytes| self.decode("steps", &key, &bytes))
            .transpose()
    }

    pub fn put_step(&self, record: &StepRecord) -> Result<(), StoreError> {
        self.steps
            .insert(step_key(record.run, record.index), Self::encode(record))
            .map_err(self.db_error())?;
        Ok(())
    }

    /// Records a finished step, its log and (when it succeeded and is cacheable) its cache
    /// entry at once, and makes them durable.
    pub fn finish_step(
        &self,
        record: &StepRecord,
        log: &LogRecord,
        cache: bool,
    ) -> Result<(), StoreError> {
        use sled::Transactional;
        let key = step_key(record.run, record.index);
        let step = Self::encode(record);
        let log = Self::encode(log);
        let entry = match (
            &record.cache_key,
            cache && record.status == StepStatus::Succeeded,
        ) {
            (Some(cache_key), true) => Some((
                cache_key.clone(),
                Self::encode(&CacheEntry {
                    run: record.run,
                    index: record.index,
                }),
            )),
            _ => None,
        };
        (&self.steps, &self.logs, &self.cache)
            .transaction(|(steps, logs, cache)| {
                steps.insert(&key, step.as_slice())?;
                logs.insert(&key, log.as_slice())?;
                if let Some((cache_key, entry)) = &entry {
                    cache.insert(cache_key.as_bytes(), entry.as_slice())?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|err| self.transaction_error(err))?;
        self.flush()
    }

    /// A step's kept log.
    pub fn log(&self, run: u64, index: u32) -> Result<LogRecord, StoreError> {
        let key = step_key(run, index);
        Ok(self
            .logs
            .get(key)
            .map_err(self.db_error())?
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
        let Some(bytes) = self
            .cache
            .get(cache_key.as_bytes())
            .map_err(self.db_error())?
        else {
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

    /// The bytes of every record (keys and values), what the database holds before sled's
    /// own overhead and not-yet-reclaimed space.
    pub fn record_bytes(&self) -> u64 {
        [
            &self.runs,
            &self.steps,
            &self.logs,
            &self.cache,
            &self.active,
            &self.versions,
            &self.aliases,
            &self.events,
        ]
        .iter()
        .flat_map(|tree| tree.iter().flatten())
        .map(|(key, value)| (key.len() + value.len()) as u64)
        .sum()
    }

    /// The on-disk size of the database and the artifacts, in bytes.
    pub fn size(&self) -> (u64, u64) {
        (self.db.size_on_disk().unwrap_or(0), self.artifacts.size())
    }
}

#[cfg(test)]
mod tests;
