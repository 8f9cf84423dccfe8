//! The daemon's scheduler: the workflows of a folder, the triggers that start them (cron,
//! files, drift, decay, and requests), and the runs they start, within limits.
//!
//! Every trigger turns into a [`Request`]. A request waits in one queue (first come, first
//! served) until its workflow has fewer than `max_active_runs` runs and the daemon fewer than
//! its `max_runs`; the workflow's overlap policy decides what a request does while the workflow
//! is at its limit (wait, be skipped, or cancel the oldest run). The queue is bounded: beyond
//! `queue` requests per workflow a trigger is refused, and says so.
//!
//! Exactly once: what a trigger consumed (its latest cron slot, the files it took, when it last
//! fired) is its *state*, written in the same transaction as the run it starts. A request still
//! queued when the daemon dies has written nothing, so the slot or the files are found again at
//! the next start, and a slot whose run exists is never run again. Runs the daemon was running
//! when it stopped (or was killed) are resumed from their last completed step at the next start.
//!
//! Steps of every run share `max_steps` slots. A run is cancelled through the engine's cancel
//! signal: running steps stop, the rest do not start, and the run can be resumed.

pub mod cron;
pub mod data;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::engine::{self, Event, RunOptions};
use crate::plugin::Runtime;
use crate::serve::Server;
use crate::serve::deployment::Latencies;
use crate::store::records::{Millis, now};
use crate::store::{RunFilter, RunJournal, RunRecord, RunStatus, Store, TriggerRecord};
use crate::workflow::{self, Overlap, PluginRef, TriggerKind, Workflow};

/// What to do at start with the runs a stopped or killed daemon left interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInterrupted {
    /// Continue them from their last completed step.
    Resume,
    /// Leave them interrupted (`wflow runs resume ID` continues one by hand).
    Mark,
}

/// The scheduler's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Runs at once, over every workflow.
    pub max_runs: usize,
    /// Steps at once, over every run.
    pub max_steps: usize,
    /// Requests waiting per workflow, at most.
    pub queue: usize,
    pub on_interrupted: OnInterrupted,
}

impl Default for Limits {
    fn default() -> Limits {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Limits {
            max_runs: 16,
            max_steps: cores,
            queue: 100,
            on_interrupted: OnInterrupted::Resume,
        }
    }
}

/// A request for a run.
#[derive(Clone, Debug)]
pub struct Request {
    pub workflow: String,
    /// What asked for it and what it changes in the workflow.
    pub trigger: TriggerRecord,
    /// The trigger's new state (name, value), written with the run.
    pub state: Option<(String, serde_json::Value)>,
    /// A run to resume instead of a new one.
    pub resume: Option<u64>,
    /// The queued run recorded for this request (set when it is accepted).
    pub queued: Option<u64>,
    /// When the request was made, for the trigger-to-first-step latency.
    pub made: Instant,
}

impl Request {
    /// A request from a person or a program, with step configuration overrides.
    pub fn manual(workflow: &str, params: BTreeMap<String, String>) -> Request {
        let (datasets, params): (BTreeMap<_, _>, BTreeMap<_, _>) = params
            .into_iter()
            .partition(|(key, _)| key.starts_with("datasets."));
        Request {
            workflow: workflow.to_string(),
            trigger: TriggerRecord {
                kind: "manual".into(),
                reason: "asked for".into(),
                params,
                datasets: datasets
                    .into_iter()
                    .map(|(k, v)| (k["datasets.".len()..].to_string(), v))
                    .collect(),
                ..TriggerRecord::default()
            },
            state: None,
            resume: None,
            queued: None,
            made: Instant::now(),
        }
    }
}

/// What became of a request.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Submitted {
    /// Waiting its turn (it starts as soon as the limits allow), as run `run`.
    Queued {
        position: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        run: Option<u64>,
    },
    /// Not run: the workflow was at its limit and forbids overlapping runs.
    Skipped { reason: String },
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no workflow `{0}` is loaded")]
    UnknownWorkflow(String),
    #[error("{0}")]
    Invalid(String),
    #[error("workflow `{workflow}` already has {queued} requests waiting: the trigger is refused")]
    Full { workflow: String, queued: usize },
    #[error("the daemon is stopping")]
    Stopping,
    #[error("the request could not be recorded: {0}")]
    Store(String),
}

/// A workflow file that does not load.
#[derive(Clone, Debug)]
pub struct FileProblem {
    /// The workflow's name when it is known, else the file's stem.
    pub name: String,
    /// Why it does not load (every diagnostic).
    pub why: String,
    /// The file's fingerprint, so an unchanged file is not checked again.
    print: String,
}

/// A workflow as loaded from the folder.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub workflow: Arc<Workflow>,
    pub text: Arc<str>,
    pub file: PathBuf,
    /// The file's fingerprint, to notice edits.
    print: String,
}

/// A run in progress.
struct Active {
    workflow: String,
    cancel: tokio::sync::watch::Sender<bool>,
    /// Why it was cancelled, once it is.
    cancelled: Option<String>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Request>,
    /// Runs starting or running, per workflow and in all.
    running: HashMap<String, usize>,
    total: usize,
    active: HashMap<u64, Active>,
    /// Files taken by requests not yet started, per (workflow, trigger).
    claimed: HashMap<(String, String), data::Seen>,
    /// When each trigger last fired, for its cooldown (also in its state).
    fired: HashMap<(String, String), Millis>,
    /// Drift reports and champion versions already acted on, per (workflow, trigger).
    handled: HashMap<(String, String), String>,
    /// Drift reports and champion versions whose wait for rows sent with a credential was
    /// reported, per (workflow, trigger), so it is reported once.
    waiting: HashMap<(String, String), String>,
}

/// The daemon's workflows, triggers and runs.
pub struct Scheduler {
    store: Arc<Store>,
    runtime: Arc<Runtime>,
    server: Arc<Server>,
    limits: Limits,
    dir: PathBuf,
    workflows: RwLock<BTreeMap<String, Loaded>>,
    /// Files of the folder that do not load, with why.
    problems: Mutex<BTreeMap<PathBuf, FileProblem>>,
    state: Mutex<State>,
    steps: Arc<tokio::sync::Semaphore>,
    /// Wakes the trigger loops (a workflow changed, or the daemon is stopping).
    changed: tokio::sync::Notify,
    /// Wakes whoever waits for runs to finish.
    finished: tokio::sync::Notify,
    stopping: AtomicBool,
    /// Plugin calls go to the cluster's workers (a shared store) instead of this process.
    on_workers: bool,
    /// Time from a request to its run's first step.
    pub latency: Latencies,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn fingerprint(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| {
            let modified = m
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            Ok(format!("{}:{modified}", m.len()))
        })
        .unwrap_or_default()
}

/// Sets `STEP.KEY[.KEY...]` of a step's configuration to a value written as TOML (a string
/// when it does not parse as one).
pub fn apply_param(workflow: &mut Workflow, key: &str, value: &str) -> Result<(), String> {
    let (step, path) = key.split_once('.').ok_or_else(|| {
        format!("parameter `{key}`: expected STEP.KEY=VALUE (or datasets.NAME=PATH)")
    })?;
    let steps: Vec<String> = workflow.steps.iter().map(|s| s.id.clone()).collect();
    let target = workflow
        .steps
        .iter_mut()
        .find(|s| s.id == step)
        .ok_or_else(|| {
            format!(
                "parameter `{key}`: no step `{step}` (steps: {})",
                steps.join(", ")
            )
        })?;
    let parsed: serde_json::Value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut table) => serde_json::to_value(table.remove("v").expect("parsed a `v`"))
            .map_err(|err| format!("parameter `{key}`: {err}"))?,
        Err(_) => serde_json::Value::String(value.to_string()),
    };
    let mut at = &mut target.config;
    let keys: Vec<&str> = path.split('.').collect();
    for (i, part) in keys.iter().enumerate() {
        if !at.is_object() {
            return Err(format!(
                "parameter `{key}`: `{}` is not a table",
                keys[..i].join(".")
            ));
        }
        let object = at.as_object_mut().expect("checked to be an object");
        if i + 1 == keys.len() {
            object.insert(part.to_string(), parsed);
            return Ok(());
        }
        at = object
            .entry(part.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    Ok(())
}

/// The workflow as a run of `trigger` sees it: its parameters applied, its datasets replaced.
pub fn apply_trigger(workflow: &mut Workflow, trigger: &TriggerRecord) -> Result<(), String> {
    for (key, value) in &trigger.params {
        apply_param(workflow, key, value)?;
    }
    for (name, path) in &trigger.datasets {
        let dataset = workflow
            .datasets
            .iter_mut()
            .find(|d| &d.name == name)
            .ok_or_else(|| format!("no dataset `{name}` to replace"))?;
        dataset.path = PathBuf::from(path);
    }
    Ok(())
}

/// The models a workflow registers (its `register-model` steps' names; the workflow's name
/// when a step gives none).
pub fn registered_models(workflow: &Workflow) -> Vec<String> {
    workflow
        .steps
        .iter()
        .filter(|s| matches!(&s.uses, PluginRef::Builtin(name) if name == "register-model"))
        .map(|s| {
            s.config
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or(&workflow.name)
                .to_string()
        })
        .collect()
}

impl Scheduler {
    pub fn new(
        store: Arc<Store>,
        runtime: Arc<Runtime>,
        server: Arc<Server>,
        dir: PathBuf,
        limits: Limits,
        on_workers: bool,
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            steps: Arc::new(tokio::sync::Semaphore::new(limits.max_steps.max(1))),
            store,
            runtime,
            server,
            limits,
            dir,
            workflows: RwLock::new(BTreeMap::new()),
            problems: Mutex::new(BTreeMap::new()),
            state: Mutex::new(State::default()),
            changed: tokio::sync::Notify::new(),
            finished: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            on_workers,
            latency: Latencies::default(),
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// The workflow folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The workflows loaded now.
    pub fn workflows(&self) -> BTreeMap<String, Loaded> {
        self.workflows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The files that do not load, with the workflow's name when known and why.
    pub fn problems(&self) -> BTreeMap<PathBuf, FileProblem> {
        lock(&self.problems).clone()
    }

    /// Runs of a workflow starting or running, and requests waiting.
    pub fn activity(&self, workflow: &str) -> (usize, usize) {
        let state = lock(&self.state);
        (
            state.running.get(workflow).copied().unwrap_or(0),
            state
                .queue
                .iter()
                .filter(|r| r.workflow == workflow)
                .count(),
        )
    }

    fn event(&self, workflow: &str, run: Option<u64>, kind: &'static str, message: String) {
        self.server.emit_workflow(workflow, run, kind, message);
    }

    /// Loads (or reloads) every workflow file of the folder; a file that does not check keeps
    /// its previous version running and is reported. Returns whether anything changed.
    pub async fn load_folder(self: &Arc<Self>) -> bool {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
                .collect(),
            Err(err) => {
                tracing::error!(dir = %self.dir.display(), error = %err, "cannot read the workflow folder");
                return false;
            }
        };
        files.sort();
        let mut changed = false;
        let current = self.workflows();
        // Files gone: their workflows are unloaded (their running runs finish).
        for (name, loaded) in &current {
            if !files.contains(&loaded.file) {
                self.workflows
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                self.event(
                    name,
                    None,
                    "workflow-removed",
                    format!("{} is gone", loaded.file.display()),
                );
                changed = true;
            }
        }
        lock(&self.problems).retain(|file, _| files.contains(file));
        for file in files {
            let print = fingerprint(&file);
            let known = current.values().find(|l| l.file == file);
            if known.is_some_and(|l| l.print == print) {
                continue;
            }
            if lock(&self.problems)
                .get(&file)
                .is_some_and(|p| p.print == print)
            {
                continue;
            }
            changed |= self.load_file(&file, print).await;
        }
        if changed {
            self.changed.notify_waiters();
        }
        changed
    }

    async fn load_file(self: &Arc<Self>, file: &Path, print: String) -> bool {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(err) => {
                self.problem(file, None, print, format!("cannot read it: {err}"));
                return false;
            }
        };
        let workflow = match workflow::parse(file, &text) {
            Ok(workflow) => workflow,
            Err(diagnostics) => {
                self.problem(file, None, print, diagnostics.to_string());
                return false;
            }
        };
        let name = workflow.name.clone();
        if let Some(other) = self
            .workflows()
            .get(&name)
            .filter(|loaded| loaded.file != file)
        {
            self.problem(
                file,
                Some(&name),
                print,
                format!(
                    "workflow `{name}` is already loaded from {}",
                    other.file.display()
                ),
            );
            return false;
        }
        // Checked as `wflow validate` does: plugins, configurations, datasets.
        if let Err(diagnostics) = engine::plan(workflow.clone(), &self.runtime).await {
            self.problem(file, Some(&name), print, diagnostics.to_string());
            return false;
        }
        lock(&self.problems).remove(file);
        let reloaded = self
            .workflows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                name.clone(),
                Loaded {
                    workflow: Arc::new(workflow),
                    text: Arc::from(text),
                    file: file.to_path_buf(),
                    print,
                },
            )
            .is_some();
        self.event(
            &name,
            None,
            if reloaded {
                "workflow-reloaded"
            } else {
                "workflow-loaded"
            },
            format!("{} loaded", file.display()),
        );
        true
    }

    fn problem(&self, file: &Path, name: Option<&str>, print: String, why: String) {
        let subject = name.map(str::to_string).unwrap_or_else(|| {
            file.file_stem()
                .map_or(String::new(), |s| s.to_string_lossy().into_owned())
        });
        let kept = name.is_some_and(|n| self.workflows().contains_key(n));
        self.event(
            &subject,
            None,
            "workflow-invalid",
            format!(
                "{} does not load{}:\n{why}",
                file.display(),
                if kept {
                    " (the previous version keeps running)"
                } else {
                    ""
                }
            ),
        );
        lock(&self.problems).insert(
            file.to_path_buf(),
            FileProblem {
                name: subject,
                why,
                print,
            },
        );
    }

    /// Asks for a run.
    pub fn submit(self: &Arc<Self>, request: Request) -> Result<Submitted, RequestError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(RequestError::Stopping);
        }
        let Some(loaded) = self.workflows().get(&request.workflow).cloned() else {
            return Err(RequestError::UnknownWorkflow(request.workflow));
        };
        let workflow = &loaded.workflow;
        // Parameters are checked now, so a wrong one is refused rather than fail a run later.
        if request.resume.is_none() {
            let mut copy = (**workflow).clone();
            apply_trigger(&mut copy, &request.trigger).map_err(RequestError::Invalid)?;
        }
        let mut state = lock(&self.state);
        let running = state.running.get(&workflow.name).copied().unwrap_or(0);
        let queued = state
            .queue
            .iter()
            .filter(|r| r.workflow == workflow.name)
            .count();
        // Runs already recorded (resumed, or queued by a daemon that stopped) are not refused.
        let recorded = request.resume.is_some() || request.queued.is_some();
        if running + queued >= workflow.max_active_runs && !recorded {
            match workflow.overlap {
                Overlap::Forbid => {
                    drop(state);
                    let reason = format!(
                        "{running} run(s) of `{}` already running and overlap = \"forbid\"",
                        workflow.name
                    );
                    if let (Some(name), Some((_, value))) = (&request.trigger.name, &request.state)
                        && let Err(err) = self.store.set_trigger_state(&workflow.name, name, value)
                    {
                        tracing::error!(error = %err, "cannot record a skipped trigger");
                    }
                    self.event(
                        &workflow.name,
                        None,
                        "skipped",
                        format!("{} trigger skipped: {reason}", request.trigger.kind),
                    );
                    return Ok(Submitted::Skipped { reason });
                }
                Overlap::Replace => {
                    if let Some((&id, active)) = state
                        .active
                        .iter_mut()
                        .filter(|(_, a)| a.workflow == workflow.name && a.cancelled.is_none())
                        .min_by_key(|(id, _)| **id)
                    {
                        active.cancelled = Some("replaced by a newer run".into());
                        let _ = active.cancel.send(true);
                        let workflow = workflow.name.clone();
                        drop(state);
                        self.event(
                            &workflow,
                            Some(id),
                            "replaced",
                            format!("run {id} cancelled: a newer run replaces it"),
                        );
                        state = lock(&self.state);
                    }
                }
                Overlap::Allow => {}
            }
        }
        if queued >= self.limits.queue && !recorded {
            let workflow = workflow.name.clone();
            drop(state);
            self.event(
                &workflow,
                None,
                "dropped",
                format!(
                    "{} trigger refused: {queued} requests are waiting already",
                    request.trigger.kind
                ),
            );
            return Err(RequestError::Full { workflow, queued });
        }
        // The request is recorded as a queued run (with the trigger's new state), so a daemon
        // that dies before starting it loses nothing: the next one starts it.
        let mut request = request;
        if request.resume.is_none() && request.queued.is_none() {
            let steps = workflow.steps.iter().map(|s| s.id.clone()).collect();
            let recorded = self.store.create_queued_run(
                &workflow.name,
                &loaded.file,
                loaded.text.as_bytes(),
                steps,
                request.trigger.clone(),
                request
                    .state
                    .as_ref()
                    .zip(request.trigger.name.as_deref())
                    .map(|((_, value), name)| (name, value)),
            );
            match recorded {
                Ok(record) => request.queued = Some(record.id),
                Err(crate::store::StoreError::Invalid(why)) => {
                    return Err(RequestError::Invalid(why));
                }
                Err(err) => return Err(RequestError::Store(err.to_string())),
            }
        }
        let run = request.queued.or(request.resume);
        if let (Some(name), Some((_, value))) = (&request.trigger.name, &request.state)
            && let Some(files) = value.get("files").and_then(|f| f.as_object())
        {
            let claimed = state
                .claimed
                .entry((request.workflow.clone(), name.clone()))
                .or_default();
            for (file, print) in files {
                claimed.insert(file.clone(), print.as_str().unwrap_or_default().to_string());
            }
        }
        state.queue.push_back(request);
        let position = state.queue.len();
        drop(state);
        self.dispatch();
        Ok(Submitted::Queued { position, run })
    }

    /// Starts the waiting requests the limits allow, oldest first.
    fn dispatch(self: &Arc<Self>) {
        let mut starting = Vec::new();
        {
            let mut state = lock(&self.state);
            let workflows = self.workflows();
            let mut index = 0;
            while index < state.queue.len() && state.total < self.limits.max_runs {
                let request = &state.queue[index];
                let limit = workflows
                    .get(&request.workflow)
                    .map_or(1, |l| l.workflow.max_active_runs);
                let running = state.running.get(&request.workflow).copied().unwrap_or(0);
                // A resumed run was running before the daemon stopped: it takes its turn
                // without counting against the limit it was already within.
                if running < limit || request.resume.is_some() {
                    let request = state.queue.remove(index).expect("in range");
                    *state.running.entry(request.workflow.clone()).or_default() += 1;
                    state.total += 1;
                    starting.push(request);
                } else {
                    index += 1;
                }
            }
        }
        for request in starting {
            let scheduler = self.clone();
            tokio::spawn(async move { scheduler.run(request).await });
        }
    }

    /// Runs one request to its end, then lets the next start.
    async fn run(self: Arc<Self>, request: Request) {
        let workflow = request.workflow.clone();
        if let Err(message) = self.run_request(&request).await {
            self.event(&workflow, None, "run-failed", message);
        }
        {
            let mut state = lock(&self.state);
            if let Some(count) = state.running.get_mut(&workflow) {
                *count = count.saturating_sub(1);
            }
            state.total = state.total.saturating_sub(1);
            if let (Some(name), Some((_, value))) = (&request.trigger.name, &request.state)
                && let Some(files) = value.get("files").and_then(|f| f.as_object())
                && let Some(claimed) = state.claimed.get_mut(&(workflow.clone(), name.clone()))
            {
                for file in files.keys() {
                    claimed.remove(file);
                }
            }
        }
        self.finished.notify_waiters();
        self.dispatch();
    }

    async fn run_request(self: &Arc<Self>, request: &Request) -> Result<(), String> {
        // A new run sees the workflow as loaded now; a resumed one as it was when it started.
        let (mut workflow, text, file) = match request.resume {
            Some(id) => {
                let record = self.store.run(id).map_err(|e| e.to_string())?;
                let text = self
                    .store
                    .artifacts()
                    .get(&record.workflow_digest)
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8(text)
                    .map_err(|_| format!("the workflow stored for run {id} is not UTF-8"))?;
                let file = PathBuf::from(&record.file);
                let workflow = workflow::parse(&file, &text)
                    .map_err(|d| format!("run {id} cannot be resumed: {d}"))?;
                (workflow, Arc::<str>::from(text), file)
            }
            None => {
                let loaded = self
                    .workflows()
                    .get(&request.workflow)
                    .cloned()
                    .ok_or_else(|| {
                        format!("workflow `{}` is no longer loaded", request.workflow)
                    })?;
                ((*loaded.workflow).clone(), loaded.text, loaded.file)
            }
        };
        let trigger = match request.resume.or(request.queued) {
            Some(id) => self
                .store
                .run(id)
                .map_err(|e| e.to_string())?
                .trigger
                .unwrap_or_default(),
            None => request.trigger.clone(),
        };
        apply_trigger(&mut workflow, &trigger)?;
        let concurrency = workflow.concurrency;
        let models = registered_models(&workflow);
        let plan = engine::plan(workflow, &self.runtime).await;
        let steps: Vec<String> = match &plan {
            Ok(plan) => plan.steps.iter().map(|s| s.step.id.clone()).collect(),
            Err(_) => Vec::new(),
        };
        // Store writes (each flushed to disk) run off the async threads.
        let record = {
            let store = self.store.clone();
            let (resume, workflow_name) = (request.resume, request.workflow.clone());
            let queued = request.queued;
            let trigger = trigger.clone();
            let state = request.state.clone();
            let text = text.clone();
            tokio::task::spawn_blocking(move || match (resume, queued) {
                (Some(id), _) => store.reopen_run(id),
                (None, Some(id)) => store.start_queued_run(id),
                (None, None) => store.create_triggered_run(
                    &workflow_name,
                    &file,
                    text.as_bytes(),
                    steps,
                    false,
                    Some(trigger.clone()),
                    state
                        .as_ref()
                        .zip(trigger.name.as_deref())
                        .map(|((_, value), name)| (name, value)),
                ),
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
        };
        let id = record.id;
        let plan = match plan {
            Ok(plan) => Arc::new(plan),
            Err(diagnostics) => {
                let message = format!("the workflow cannot run: {diagnostics}");
                let _ = self
                    .store
                    .set_run_status(id, RunStatus::Failed, Some(message.clone()));
                self.event(&request.workflow, Some(id), "run-failed", message);
                return Ok(());
            }
        };
        let (cancel, cancelled) = tokio::sync::watch::channel(false);
        lock(&self.state).active.insert(
            id,
            Active {
                workflow: request.workflow.clone(),
                cancel,
                cancelled: None,
            },
        );
        self.event(
            &request.workflow,
            Some(id),
            "run-started",
            match request.resume {
                Some(_) => format!("run {id} resumed"),
                None => format!("run {id} started ({}: {})", trigger.kind, trigger.reason),
            },
        );
        let dataset_paths = RunJournal::dataset_paths(&plan.workflow);
        let journal = Arc::new(RunJournal::new(
            self.store.clone(),
            id,
            request.resume.is_some(),
            dataset_paths,
        ));
        let queue = if self.on_workers {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || crate::cluster::QueueSteps::new(store, id))
                .await
                .map_err(|e| e.to_string())?
            {
                Ok(queue) => Some(Arc::new(queue) as Arc<dyn engine::StepQueue>),
                Err(message) => {
                    lock(&self.state).active.remove(&id);
                    let _ = self.store.set_run_status(
                        id,
                        RunStatus::Interrupted,
                        Some(message.clone()),
                    );
                    return Err(message);
                }
            }
        } else {
            None
        };
        // The first step's start is the end of the trigger's latency.
        let (events, mut seen) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let made = request.made;
        let scheduler = self.clone();
        let watcher = tokio::spawn(async move {
            while let Some(event) = seen.recv().await {
                if matches!(event, Event::StepStarted { .. }) {
                    scheduler.latency.record(made.elapsed());
                    break;
                }
            }
            // Later events are not needed; dropping the receiver only makes sends fail.
        });
        let report = engine::run(
            plan,
            self.runtime.clone(),
            RunOptions {
                concurrency: concurrency.unwrap_or_else(|| RunOptions::default().concurrency),
                journal: Some(journal),
                run: Some(id),
                no_cache: false,
                cancel: Some(cancelled),
                slots: Some(self.steps.clone()),
                queue,
            },
            Some(events),
        )
        .await;
        watcher.abort();
        let why_cancelled = lock(&self.state)
            .active
            .remove(&id)
            .and_then(|a| a.cancelled);
        let stopped = self.stopping.load(Ordering::Relaxed);
        let (status, note, kind) = match (&why_cancelled, report.succeeded()) {
            (None, true) => (RunStatus::Succeeded, None, "run-succeeded"),
            (Some(why), _) if stopped && why == STOPPED => {
                (RunStatus::Interrupted, Some(why.clone()), "run-interrupted")
            }
            (Some(why), _) => (RunStatus::Cancelled, Some(why.clone()), "run-cancelled"),
            (None, false) => (RunStatus::Failed, None, "run-failed"),
        };
        {
            let (store, note) = (self.store.clone(), note.clone());
            tokio::task::spawn_blocking(move || store.set_run_status(id, status, note))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        let failed: Vec<String> = report
            .steps
            .iter()
            .filter(|s| !s.status.is_fine())
            .map(|s| s.id.clone())
            .collect();
        self.event(
            &request.workflow,
            Some(id),
            kind,
            match (status, note) {
                (RunStatus::Failed, _) => format!(
                    "run {id} failed in {} ms (not fine: {})",
                    report.duration.as_millis(),
                    failed.join(", ")
                ),
                (_, Some(note)) => format!("run {id} {}: {note}", status.label()),
                _ => format!(
                    "run {id} {} in {} ms",
                    status.label(),
                    report.duration.as_millis()
                ),
            },
        );
        // A model registered for the first time is served from now on.
        for model in models {
            if let Err(err) = self.server.serve_registered(&model) {
                tracing::warn!(model = %model, error = %err, "cannot serve the registered model");
            }
        }
        Ok(())
    }

    /// Cancels a running run; it can be resumed later.
    pub fn cancel(&self, id: u64, why: &str) -> Result<(), String> {
        let mut state = lock(&self.state);
        let active = state
            .active
            .get_mut(&id)
            .ok_or_else(|| format!("run {id} is not running in this daemon"))?;
        if active.cancelled.is_none() {
            active.cancelled = Some(why.to_string());
        }
        let _ = active.cancel.send(true);
        Ok(())
    }

    /// Resumes a run that is interrupted, cancelled or failed.
    pub fn resume(self: &Arc<Self>, id: u64) -> Result<Submitted, RequestError> {
        let record = self
            .store
            .run(id)
            .map_err(|e| RequestError::Invalid(e.to_string()))?;
        if matches!(record.status, RunStatus::Running | RunStatus::Succeeded) {
            return Err(RequestError::Invalid(format!(
                "run {id} is {}: there is nothing to resume",
                record.status.label()
            )));
        }
        self.submit(Request {
            workflow: record.workflow.clone(),
            trigger: record.trigger.clone().unwrap_or_default(),
            state: None,
            resume: Some(id),
            queued: None,
            made: Instant::now(),
        })
    }

    /// Resumes an interrupted run if a trigger started it and the daemon resumes such runs
    /// (a cluster's leader, for runs whose coordinator died).
    pub fn resume_if_triggered(self: &Arc<Self>, id: u64) -> bool {
        if self.limits.on_interrupted == OnInterrupted::Mark {
            return false;
        }
        let Ok(record) = self.store.run(id) else {
            return false;
        };
        record.trigger.is_some()
            && self.workflows().contains_key(&record.workflow)
            && self.resume(id).is_ok()
    }

    /// The runs a stopped or killed daemon left interrupted, resumed or left as they are.
    pub fn recover(self: &Arc<Self>) -> Vec<u64> {
        if self.limits.on_interrupted == OnInterrupted::Mark {
            return Vec::new();
        }
        let interrupted: Vec<RunRecord> = self
            .store
            .list_runs(&RunFilter {
                status: Some(RunStatus::Interrupted),
                ..RunFilter::default()
            })
            .unwrap_or_default();
        let loaded = self.workflows();
        let mut resumed = Vec::new();
        // Runs accepted but not started by a daemon that stopped or died take their turn first,
        // oldest first, as they were asked for.
        let queued: Vec<RunRecord> = self
            .store
            .list_runs(&RunFilter {
                status: Some(RunStatus::Queued),
                ..RunFilter::default()
            })
            .unwrap_or_default();
        for record in queued.into_iter().rev() {
            if !loaded.contains_key(&record.workflow) {
                let note = format!("workflow `{}` is no longer loaded", record.workflow);
                let _ = self
                    .store
                    .set_run_status(record.id, RunStatus::Cancelled, Some(note));
                continue;
            }
            let request = Request {
                workflow: record.workflow.clone(),
                trigger: record.trigger.clone().unwrap_or_default(),
                state: None,
                resume: None,
                queued: Some(record.id),
                made: Instant::now(),
            };
            if self.submit(request).is_ok() {
                resumed.push(record.id);
            }
        }
        // Oldest first, so they run in the order they started.
        for record in interrupted.into_iter().rev() {
            if record.trigger.is_none() || !loaded.contains_key(&record.workflow) {
                continue;
            }
            if self.resume(record.id).is_ok() {
                resumed.push(record.id);
            }
        }
        resumed
    }

    /// Stops: no new runs; running ones get `grace` to finish, then are interrupted (they
    /// resume at the next start).
    pub async fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
        lock(&self.state).queue.clear();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let finished = self.finished.notified();
            if lock(&self.state).total == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                break;
            }
        }
        {
            let mut state = lock(&self.state);
            for active in state.active.values_mut() {
                active.cancelled = Some(STOPPED.into());
                let _ = active.cancel.send(true);
            }
        }
        // Cancelled steps stop at once; recording them takes a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let finished = self.finished.notified();
            if lock(&self.state).total == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return;
            }
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Resolves when the workflows change or the daemon stops.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn cooled_down(&self, workflow: &str, trigger: &workflow::Trigger, now_ms: Millis) -> bool {
        if trigger.cooldown.is_zero() {
            return true;
        }
        let key = (workflow.to_string(), trigger.name.clone());
        let in_memory = lock(&self.state).fired.get(&key).copied();
        // After a restart the last firing is in the trigger's state.
        let last = in_memory.or_else(|| {
            self.trigger_state(workflow, &trigger.name)
                .get("fired")
                .and_then(|f| f.as_u64())
        });
        last.is_none_or(|at| now_ms.saturating_sub(at) >= trigger.cooldown.as_millis() as u64)
    }

    /// The trigger's persisted state (`{}` before it ever fired).
    fn trigger_state(&self, workflow: &str, trigger: &str) -> serde_json::Value {
        match self.store.trigger_state(workflow, trigger) {
            Ok(Some(value)) => value,
            Ok(None) => serde_json::json!({}),
            Err(err) => {
                tracing::error!(workflow, trigger, error = %err, "cannot read a trigger's state");
                serde_json::json!({})
            }
        }
    }

    /// Submits a trigger's request, with its new state (which records when it fired).
    fn fire(
        self: &Arc<Self>,
        workflow: &str,
        trigger: &workflow::Trigger,
        record: TriggerRecord,
        mut state: serde_json::Value,
    ) {
        let at = now();
        state["fired"] = serde_json::json!(at);
        lock(&self.state)
            .fired
            .insert((workflow.to_string(), trigger.name.clone()), at);
        let reason = record.reason.clone();
        let request = Request {
            workflow: workflow.to_string(),
            trigger: TriggerRecord {
                name: Some(trigger.name.clone()),
                ..record
            },
            state: Some((trigger.name.clone(), state)),
            resume: None,
            queued: None,
            made: Instant::now(),
        };
        let kind = trigger.kind.name();
        match self.submit(request) {
            Ok(_) => self.event(
                workflow,
                None,
                "triggered",
                format!("{kind} trigger `{}` fired: {reason}", trigger.name),
            ),
            Err(err) => {
                tracing::warn!(workflow, trigger = %trigger.name, error = %err, "a trigger was refused")
            }
        }
    }

    /// The cron triggers: catch up on the slots missed since each one's last slot, then fire
    /// each slot as its time comes. Runs until the daemon stops.
    pub async fn cron_loop(self: Arc<Self>) {
        // Per (workflow, trigger, schedule): the latest slot handled by this process.
        let mut cursors: HashMap<(String, String, String), u64> = HashMap::new();
        while !self.is_stopping() {
            let changed = self.changed.notified();
            let now_ms = now();
            let mut next_wake: Option<u64> = None;
            for (name, loaded) in self.workflows() {
                for trigger in &loaded.workflow.triggers {
                    let TriggerKind::Cron {
                        schedule,
                        timezone,
                        catch_up,
                        max_catch_up,
                        ..
                    } = &trigger.kind
                    else {
                        continue;
                    };
                    let Ok(parsed) = cron::CronSchedule::new(schedule, timezone) else {
                        continue;
                    };
                    let key = (name.clone(), trigger.name.clone(), schedule.to_string());
                    let cursor = match cursors.get(&key) {
                        Some(&cursor) => cursor,
                        None => {
                            // First sight in this process: catch up from the recorded slot.
                            let state = self.trigger_state(&name, &trigger.name);
                            let slot = state.get("slot").and_then(|s| s.as_u64());
                            let reread = state.get("cron").and_then(|v| v.as_u64())
                                != Some(cron::STATE_VERSION);
                            let cursor = match slot {
                                None => now_ms,
                                // Taken when weekdays were numbered from 1 = Sunday: the
                                // slots between then and now were another schedule's, so none
                                // is caught up; the schedule goes on from now as crontab reads
                                // it.
                                Some(last) if reread && schedule.weekdays_restricted() => {
                                    // Everything up to now counts as taken.
                                    let latest = now_ms.max(last);
                                    let mut state = state.clone();
                                    state["slot"] = serde_json::json!(latest);
                                    state["cron"] = serde_json::json!(cron::STATE_VERSION);
                                    let _ =
                                        self.store.set_trigger_state(&name, &trigger.name, &state);
                                    self.event(
                                        &name,
                                        None,
                                        "trigger-reread",
                                        format!(
                                            "cron trigger `{}`: `{}` is now read as crontab reads it (weekdays 0-7, 0 and 7 Sunday); it goes on from now without catching up",
                                            trigger.name, schedule
                                        ),
                                    );
                                    latest
                                }
                                Some(last) => {
                                    let (missed, latest) = cron::catch_up(
                                        &parsed,
                                        last,
                                        now_ms,
                                        *catch_up,
                                        *max_catch_up,
                                    );
                                    for slot in &missed {
                                        self.fire_slot(&name, trigger, *slot, true);
                                    }
                                    if let Some(latest) = latest
                                        && missed.last() != Some(&latest)
                                    {
                                        // Skipped by the policy: recorded as handled.
                                        let mut state = state.clone();
                                        state["slot"] = serde_json::json!(latest);
                                        state["cron"] = serde_json::json!(cron::STATE_VERSION);
                                        let _ = self.store.set_trigger_state(
                                            &name,
                                            &trigger.name,
                                            &state,
                                        );
                                    }
                                    latest.unwrap_or(last).max(last)
                                }
                            };
                            cursors.insert(key.clone(), cursor);
                            cursor
                        }
                    };
                    // Slots due now (more than one only after a pause of this process).
                    let mut cursor = cursor;
                    while let Some(slot) = parsed.next_after(cursor) {
                        if slot > now_ms {
                            next_wake = Some(next_wake.map_or(slot, |w: u64| w.min(slot)));
                            break;
                        }
                        self.fire_slot(&name, trigger, slot, false);
                        cursor = slot;
                    }
                    cursors.insert(key, cursor);
                }
            }
            let sleep = next_wake.map_or(Duration::from_secs(3600), |at| {
                Duration::from_millis(at.saturating_sub(now()))
            });
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    fn fire_slot(
        self: &Arc<Self>,
        workflow: &str,
        trigger: &workflow::Trigger,
        slot: u64,
        late: bool,
    ) {
        let mut state = self.trigger_state(workflow, &trigger.name);
        state["slot"] = serde_json::json!(slot);
        state["cron"] = serde_json::json!(cron::STATE_VERSION);
        let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(slot as i64)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let record = TriggerRecord {
            kind: "cron".into(),
            slot: Some(slot),
            reason: if late {
                format!("slot {time}, missed while the daemon was down")
            } else {
                format!("slot {time}")
            },
            ..TriggerRecord::default()
        };
        self.fire(workflow, trigger, record, state);
    }

    /// The files triggers: lists each pattern every `poll` (and at once when the folder
    /// changes), and fires with the new files as the dataset. Listing is blocking work, done
    /// off the async threads; a burst of file events makes one listing.
    pub async fn files_loop(self: Arc<Self>, mut folder_events: tokio::sync::mpsc::Receiver<()>) {
        let mut events_open = true;
        while !self.is_stopping() {
            let changed = self.changed.notified();
            let scheduler = self.clone();
            let wait = tokio::task::spawn_blocking(move || scheduler.scan_files())
                .await
                .unwrap_or(Duration::from_secs(2));
            tokio::select! {
                _ = changed => {}
                event = folder_events.recv(), if events_open => {
                    events_open = event.is_some();
                }
                _ = tokio::time::sleep(wait) => {}
            }
            while folder_events.try_recv().is_ok() {}
        }
    }

    /// Lists every files trigger's pattern once and fires those with enough new data; returns
    /// the shortest `poll` (the time until the next listing).
    fn scan_files(self: &Arc<Self>) -> Duration {
        let mut wait = Duration::from_secs(2);
        for (name, loaded) in self.workflows() {
            for trigger in &loaded.workflow.triggers {
                let TriggerKind::Files {
                    pattern,
                    dataset,
                    min_new_rows,
                    poll,
                } = &trigger.kind
                else {
                    continue;
                };
                wait = wait.min(*poll);
                let key = (name.clone(), trigger.name.clone());
                let state = self.trigger_state(&name, &trigger.name);
                let mut seen: data::Seen = state
                    .get("files")
                    .and_then(|f| serde_json::from_value(f.clone()).ok())
                    .unwrap_or_default();
                if let Some(claimed) = lock(&self.state).claimed.get(&key) {
                    seen.extend(claimed.clone());
                }
                let found = match data::scan(pattern, &seen) {
                    Ok(found) => found,
                    Err(err) => {
                        tracing::warn!(workflow = %name, trigger = %trigger.name, error = %err, "cannot list the files");
                        continue;
                    }
                };
                if found.files.is_empty()
                    || found.rows < *min_new_rows
                    || !self.cooled_down(&name, trigger, now())
                {
                    continue;
                }
                let into = self.store.dir().join("inputs").join(format!(
                    "{name}-{}-{}.csv",
                    trigger.name,
                    now()
                ));
                let file = match data::combine(&found.files, &into) {
                    Ok(file) => file,
                    Err(err) => {
                        self.event(
                            &name,
                            None,
                            "trigger-error",
                            format!("files trigger `{}`: {err}", trigger.name),
                        );
                        continue;
                    }
                };
                // Everything taken so far, queued requests' files included: this state
                // replaces the stored one when the run is created.
                let mut state = state.clone();
                seen.extend(found.fingerprints.iter().cloned());
                state["files"] = serde_json::json!(seen);
                let record = TriggerRecord {
                    kind: "files".into(),
                    reason: format!(
                        "{} new file(s), {} rows: {}",
                        found.files.len(),
                        found.rows,
                        found
                            .files
                            .iter()
                            .map(|f| f
                                .file_name()
                                .map_or(String::new(), |n| n.to_string_lossy().into_owned()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    datasets: [(dataset.clone(), file.display().to_string())].into(),
                    ..TriggerRecord::default()
                };
                self.fire(&name, trigger, record, state);
            }
        }
        wait
    }

    /// The drift and decay triggers: looks at the served models every `every`.
    pub async fn live_loop(self: Arc<Self>, every: Duration) {
        while !self.is_stopping() {
            let changed = self.changed.notified();
            for (name, loaded) in self.workflows() {
                for trigger in &loaded.workflow.triggers {
                    self.check_live(&name, &loaded.workflow, trigger);
                }
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    fn check_live(self: &Arc<Self>, name: &str, workflow: &Workflow, trigger: &workflow::Trigger) {
        let key = (name.to_string(), trigger.name.clone());
        let (model, data, what, mark, rollback) = match &trigger.kind {
            TriggerKind::Drift { model, data } => {
                let Some((version, report)) = self.server.champion_drift(model) else {
                    return;
                };
                if !report.drifted() {
                    return;
                }
                let shown = match &report.result {
                    crate::serve::monitor::DriftResult::Checked { drift_share, .. } => format!(
                        "v{version}'s live inputs drifted ({:.0}% of features, over {} rows)",
                        drift_share * 100.0,
                        report.rows
                    ),
                    _ => String::new(),
                };
                (model, data, shown, format!("{version}@{}", report.at), None)
            }
            TriggerKind::Decay {
                model,
                metric,
                threshold,
                min_rows,
                rollback,
                data,
            } => {
                let Some((version, quality)) = self.server.champion_quality(model) else {
                    return;
                };
                if quality.rows < *min_rows {
                    return;
                }
                let value = match metric.as_str() {
                    "accuracy" => quality.accuracy,
                    "f1_macro" => quality.f1_macro,
                    "rmse" => quality.rmse,
                    _ => quality.mae,
                };
                let Some(value) = value else {
                    return;
                };
                let lower_is_better = matches!(metric.as_str(), "rmse" | "mae");
                let decayed = if lower_is_better {
                    value > *threshold
                } else {
                    value < *threshold
                };
                if !decayed {
                    return;
                }
                let shown = format!(
                    "v{version}'s live {metric} {value:.4} over {} rows {} {threshold}",
                    quality.rows,
                    if lower_is_better { "above" } else { "below" }
                );
                (model, data, shown, version, rollback.then_some(()))
            }
            _ => return,
        };
        // Each drift report or decayed champion is acted on once.
        if lock(&self.state).handled.get(&key) == Some(&mark) {
            return;
        }
        if !self.cooled_down(name, trigger, now()) {
            return;
        }
        let Some((features, mut labelled)) = self.server.labelled(model) else {
            return;
        };
        // A retrain learns only from rows sent with a credential: anonymous callers can shift
        // what the model sees (and so set off a drift check) but cannot choose what it is
        // retrained and judged on, whether the rows replace the dataset or are added to it.
        let sent = labelled.rows.len();
        labelled.rows.retain(|row| row.trusted);
        if labelled.rows.len() < data.min_rows {
            // Said once per drift report (or decayed version), not at every look.
            if lock(&self.state).waiting.insert(key.clone(), mark.clone()) != Some(mark.clone()) {
                let held = if sent > labelled.rows.len() {
                    format!(
                        "only {} of the {sent} labelled rows were sent with a credential, and a retrain learns from those alone",
                        labelled.rows.len()
                    )
                } else {
                    format!("only {sent} labelled rows are there")
                };
                self.event(
                    name,
                    None,
                    "trigger-waiting",
                    format!(
                        "{} trigger `{}`: {what}, but {held} (it needs {})",
                        trigger.kind.name(),
                        trigger.name,
                        data.min_rows
                    ),
                );
            }
            return;
        }
        let Some(dataset) = workflow.dataset(&data.dataset) else {
            return;
        };
        let target = self
            .store
            .alias(model, crate::serve::CHAMPION)
            .ok()
            .flatten()
            .and_then(|v| self.store.version(model, v).ok())
            .map(|v| v.target);
        let Some(target) = target else {
            return;
        };
        lock(&self.state).handled.insert(key, mark);
        if rollback.is_some()
            && let Err(err) = self
                .server
                .rollback_champion(model, &format!("decay trigger `{}`: {what}", trigger.name))
        {
            tracing::warn!(model = %model, error = %err, "cannot roll the champion back");
        }
        let into =
            self.store
                .dir()
                .join("inputs")
                .join(format!("{name}-{}-{}.csv", trigger.name, now()));
        let recent = &labelled.rows[labelled.rows.len().saturating_sub(data.recent_rows)..];
        let file = match data::write_labelled(
            &dataset.path,
            data.append,
            &features,
            &target,
            recent,
            &into,
        ) {
            Ok(file) => file,
            Err(err) => {
                self.event(
                    name,
                    None,
                    "trigger-error",
                    format!("{} trigger `{}`: {err}", trigger.kind.name(), trigger.name),
                );
                return;
            }
        };
        let record = TriggerRecord {
            kind: trigger.kind.name().into(),
            reason: format!(
                "{what}; retraining on {} recent labelled rows{}",
                recent.len(),
                if data.append {
                    format!(" added to `{}`", data.dataset)
                } else {
                    String::new()
                }
            ),
            datasets: [(data.dataset.clone(), file.display().to_string())].into(),
            ..TriggerRecord::default()
        };
        let state = self.trigger_state(name, &trigger.name);
        self.fire(name, trigger, record, state);
    }
}

/// Why runs are cancelled when the daemon stops past its grace period.
const STOPPED: &str = "the daemon stopped before it finished";

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow() -> Workflow {
        workflow::parse(
            Path::new("w.toml"),
            r#"
            [workflow]
            name = "w"
            [datasets.d]
            path = "d.csv"
            [steps.train]
            uses = "logistic-regression"
            inputs = { data = "d" }
            with = { search = { c = [1.0] } }
            "#,
        )
        .unwrap()
    }

    #[test]
    fn parameters_set_step_configuration_and_datasets() {
        let mut w = workflow();
        apply_param(&mut w, "train.c", "0.5").unwrap();
        apply_param(&mut w, "train.search.folds", "3").unwrap();
        apply_param(&mut w, "train.note", "hello world").unwrap();
        let config = &w.step("train").unwrap().config;
        assert_eq!(config["c"], serde_json::json!(0.5));
        assert_eq!(config["search"]["folds"], serde_json::json!(3));
        assert_eq!(config["search"]["c"], serde_json::json!([1.0]));
        assert_eq!(config["note"], serde_json::json!("hello world"));
        let err = apply_param(&mut w, "nope.c", "1").unwrap_err();
        assert!(err.contains("no step `nope`"), "{err}");
        let err = apply_param(&mut w, "train.c.x", "1").unwrap_err();
        assert!(err.contains("`c` is not a table"), "{err}");
        let request = Request::manual(
            "w",
            [("datasets.d".to_string(), "other.csv".to_string())].into(),
        );
        apply_trigger(&mut w, &request.trigger).unwrap();
        assert_eq!(w.dataset("d").unwrap().path, PathBuf::from("other.csv"));
    }
}
