//! Runs a plan: starts every step whose dependencies succeeded, at most `concurrency` at once,
//! each plugin call on a blocking thread; retries failed attempts with exponential backoff and
//! jitter; skips the dependents of a failed step; passes tables, models, evaluations and
//! reports between steps.
//!
//! It reports what happens through `Event`s (the CLI turns them into progress lines) and
//! returns a `RunReport`. It does not print. With a [`Journal`] it records every step as it
//! happens, reuses the outputs of an earlier identical execution instead of running a step
//! (keyed by [`cache_key`]), and runs the host's `register-model` step; without one it
//! persists nothing.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use super::journal::{InputDigest, Journal, Registration};
use super::plan::{LoadModelConfig, Plan, PlannedStep, Runner};
use super::remote::{QueuedCall, QueuedInput, StepQueue};
use crate::plugin::{
    Call, DriftOutcome, Evaluation, Failure, Finding, GateOutcome, LogLine, Model, Output,
    ProgressSink, Report, Runtime, Severity, StepKind,
};
use crate::store::ValueKind;
use crate::table::Table;
use crate::workflow::InputSource;

/// A value passed between steps.
#[derive(Clone, Debug)]
pub enum Value {
    Table(Table),
    Report(Report),
    Model(Model),
    Evaluation(Evaluation),
    Decision(GateOutcome),
    Drift(DriftOutcome),
    /// What a transformer declared of its preprocessing, recorded as its output
    /// [`crate::plugin::PREPROCESSING_OUTPUT`].
    Preprocessing(Vec<crate::pipeline::Stage>),
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StepStatus {
    Succeeded,
    /// The plugin call failed (after all retries), or its report failed a `fail` check.
    Failed(String),
    /// Not run because a step it depends on did not succeed.
    Skipped(String),
    /// Had nothing to do, which is not a failure: a `load-model` step whose model is not in the
    /// registry yet (no champion before the first promotion), and the steps that needed it.
    /// A step that only optionally takes its value (a gate's `champion`) runs without it.
    NotApplicable(String),
    /// Stopped or never started because the run was cancelled (or the daemon stopped); a
    /// resumed run runs it again.
    Cancelled(String),
}

impl StepStatus {
    pub fn label(&self) -> &'static str {
        match self {
            StepStatus::Succeeded => "ok",
            StepStatus::Failed(_) => "failed",
            StepStatus::Skipped(_) => "skipped",
            StepStatus::NotApplicable(_) => "n/a",
            StepStatus::Cancelled(_) => "cancelled",
        }
    }

    /// Whether the run may count this step as fine.
    pub fn is_fine(&self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::NotApplicable(_))
    }
}

/// Where a step's outputs came from when it did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReuseOrigin {
    /// The run that produced them.
    pub run: u64,
    /// Whether that is this run, being resumed (else: the step cache).
    pub resumed: bool,
}

/// Everything known about one step after the run.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub id: String,
    pub plugin: String,
    /// The plugin's kind; `None` for the host's registration step.
    pub kind: Option<StepKind>,
    pub status: StepStatus,
    /// Set when the outputs were reused instead of running the plugin.
    pub reused: Option<ReuseOrigin>,
    /// The failure kind (`timeout`, `memory-limit`...) when the plugin call failed.
    pub failure_kind: Option<&'static str>,
    pub attempts: u32,
    pub duration: Duration,
    /// Metrics the plugin returned or emitted, in order.
    pub metrics: Vec<(String, f64)>,
    pub findings: Vec<Finding>,
    pub decision: Option<GateOutcome>,
    pub drift: Option<DriftOutcome>,
    pub outputs: Vec<String>,
    pub log: Vec<LogLine>,
}

impl StepReport {
    /// `trainer`, `validator`... or `register`.
    pub fn kind_label(&self) -> &'static str {
        self.kind.map_or("register", crate::plugin::kind_name)
    }

    /// The status as people read it: `cached` and `resumed` for reused outputs.
    pub fn status_label(&self) -> &'static str {
        match (&self.status, self.reused) {
            (StepStatus::Succeeded, Some(ReuseOrigin { resumed: true, .. })) => "resumed",
            (StepStatus::Succeeded, Some(ReuseOrigin { resumed: false, .. })) => "cached",
            (status, _) => status.label(),
        }
    }
}

/// The outcome of a whole run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run's id in the store, when it was recorded.
    pub run: Option<u64>,
    pub workflow: String,
    pub steps: Vec<StepReport>,
    pub duration: Duration,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.steps.iter().all(|s| s.status.is_fine())
    }
}

/// What the engine is doing, as it happens.
#[derive(Clone, Debug)]
pub enum Event {
    StepStarted {
        step: String,
        attempt: u32,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        failure: String,
        delay: Duration,
    },
    /// The plugin reported progress: `done` of `total`.
    StepProgress {
        step: String,
        done: u64,
        total: u64,
        message: String,
    },
    StepFinished {
        report: Box<StepReport>,
    },
}

/// Options of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// Steps running at once.
    pub concurrency: usize,
    /// Where the run is recorded; `None` records nothing and caches nothing.
    pub journal: Option<Arc<dyn Journal>>,
    /// The run's id in the journal, for the report.
    pub run: Option<u64>,
    /// Run every step even when an identical execution could be reused.
    pub no_cache: bool,
    /// Becomes `true` to cancel the run: running steps are stopped, the rest not started.
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
    /// Step slots shared with other runs (the daemon's global concurrency limit); a step
    /// holds one while it runs.
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Where plugin calls run when not in this process (a cluster's workers); needs a journal,
    /// since calls are handed over by digest.
    pub queue: Option<Arc<dyn StepQueue>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("concurrency", &self.concurrency)
            .field("journal", &self.journal.is_some())
            .field("run", &self.run)
            .field("no_cache", &self.no_cache)
            .finish()
    }
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            journal: None,
            run: None,
            no_cache: false,
            cancel: None,
            slots: None,
            queue: None,
        }
    }
}

/// Resolves once `cancel` says so (never without one).
async fn cancelled(cancel: &mut Option<tokio::sync::watch::Receiver<bool>>) -> String {
    match cancel {
        Some(receiver) => {
            // The guard `wait_for` returns is dropped before anything else is awaited.
            let outcome = receiver.wait_for(|stop| *stop).await.map(|_| ());
            match outcome {
                Ok(()) => "the run was cancelled".into(),
                // The sender is gone: nobody can cancel any more.
                Err(_) => std::future::pending().await,
            }
        }
        None => std::future::pending().await,
    }
}

struct Attempted {
    outcome: Result<Output, Failure>,
    log: Vec<LogLine>,
    metrics: Vec<(String, f64)>,
    attempts: u32,
    duration: Duration,
    reused: Option<ReuseOrigin>,
    /// The outputs' digests (in [`output_values`] order), once stored.
    digests: Vec<String>,
    /// Why the outputs could not be stored: the step fails rather than lose them.
    store_error: Option<String>,
    /// Why the step had nothing to do (see [`StepStatus::NotApplicable`]).
    absent: Option<String>,
}

impl Attempted {
    fn failed(failure: Failure) -> Attempted {
        Attempted {
            outcome: Err(failure),
            log: Vec::new(),
            metrics: Vec::new(),
            attempts: 1,
            duration: Duration::ZERO,
            reused: None,
            digests: Vec::new(),
            store_error: None,
            absent: None,
        }
    }
}

/// What a step task does: call a plugin, register a model or load one from the registry.
enum Work {
    /// The call, and the kind of each input slot's value (what a queue hands over, by
    /// digest).
    Call(Call, Vec<(String, ValueKind)>),
    Register(Box<Registration>),
    LoadModel(LoadModelConfig),
}

/// Runs blocking journal IO off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(anyhow::anyhow!("the store failed: {err}")))
}

/// Runs every step of `plan`.
pub async fn run(
    plan: Arc<Plan>,
    runtime: Arc<Runtime>,
    options: RunOptions,
    events: Option<UnboundedSender<Event>>,
) -> RunReport {
    let started = Instant::now();
    let concurrency = options.concurrency.max(1);
    let journal = options.journal.clone();
    let mut board = Board::new(&plan, events.clone(), journal.clone());
    let mut values = Values::default();
    let mut tasks: JoinSet<Attempted> = JoinSet::new();
    let mut task_steps: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut cancel = options.cancel.clone();
    if cancel.as_ref().is_some_and(|c| *c.borrow()) {
        board.ready.clear();
        board.cancel_rest(&plan, "the run was cancelled before it started");
    }

    if let Some(journal) = &journal
        && let Err(err) = store_datasets(&plan, journal, &mut values).await
    {
        // Nothing can be recorded: fail every step rather than run unrecorded.
        let message = format!("the run could not be recorded: {err:#}");
        for index in 0..plan.steps.len() {
            if board.reports[index].is_none() {
                let mut report = skipped(&plan.steps[index], String::new());
                report.status = StepStatus::Failed(message.clone());
                board.record(index, report);
            }
        }
        board.ready.clear();
    }

    loop {
        while tasks.len() < concurrency {
            let Some(index) = board.ready.pop_front() else {
                break;
            };
            let planned = &plan.steps[index];
            match build_work(&plan, index, &values, &board.absent) {
                Ok((work, inputs)) => {
                    let runtime = runtime.clone();
                    let plan = plan.clone();
                    let events = events.clone();
                    let journal = journal.clone();
                    let no_cache = options.no_cache;
                    let slots = options.slots.clone();
                    let queue = options.queue.clone().filter(|_| journal.is_some());
                    let task = tasks.spawn(async move {
                        // Held for the whole step; closed slots (a stopping daemon) are none.
                        let _slot = match slots {
                            Some(slots) => slots.acquire_owned().await.ok(),
                            None => None,
                        };
                        execute(
                            &runtime, &plan, index, work, inputs, journal, no_cache, events, queue,
                        )
                        .await
                    });
                    task_steps.insert(task.id(), index);
                }
                Err(message) => {
                    let mut report = skipped(planned, String::new());
                    report.status = StepStatus::Failed(message);
                    board.record(index, report);
                }
            }
        }
        if tasks.is_empty() {
            if board.ready.is_empty() {
                break;
            }
            continue;
        }
        let joined = tokio::select! {
            joined = tasks.join_next_with_id() => joined,
            reason = cancelled(&mut cancel) => {
                // Dropping a step's future stops its plugin (a fresh store per call, nothing
                // to clean up); the steps it would have unblocked are not started.
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                for index in task_steps.drain().map(|(_, index)| index) {
                    let mut report = skipped(&plan.steps[index], String::new());
                    report.status = StepStatus::Cancelled(reason.clone());
                    board.finish(index, report, &[]);
                }
                board.ready.clear();
                board.cancel_rest(&plan, &reason);
                break;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (index, attempted) = match joined {
            Ok((task, attempted)) => (
                task_steps.remove(&task).expect("every task is a step"),
                attempted,
            ),
            // A panic in the host while running a step is a bug; it fails that step only.
            Err(err) => {
                tracing::error!(error = %err, "a step task panicked");
                let index = task_steps.remove(&err.id()).expect("every task is a step");
                let failure = Failure::Sandbox("the host failed while running this step".into());
                (index, Attempted::failed(failure))
            }
        };
        let (report, returned) = finish(&plan.steps[index], attempted, &mut values);
        board.finish(index, report, &returned);
    }

    let steps = plan
        .steps
        .iter()
        .zip(board.reports)
        .map(|(planned, report)| report.unwrap_or_else(|| skipped(planned, "not reached".into())))
        .collect();
    RunReport {
        run: options.run,
        workflow: plan.workflow.name.clone(),
        steps,
        duration: started.elapsed(),
    }
}

/// The values steps produced, with their digests when the run is recorded.
#[derive(Default)]
struct Values {
    by_output: HashMap<(String, String), (Value, Option<String>)>,
    datasets: HashMap<String, String>,
}

async fn store_datasets(
    plan: &Arc<Plan>,
    journal: &Arc<dyn Journal>,
    values: &mut Values,
) -> anyhow::Result<()> {
    let mut names: Vec<&String> = plan.datasets.keys().collect();
    names.sort();
    for name in names {
        let table = plan.datasets[name].clone();
        let (journal, owned) = (journal.clone(), name.clone());
        let digest = blocking(move || journal.dataset(&owned, &table)).await?;
        values.datasets.insert(name.clone(), digest);
    }
    Ok(())
}

/// The step-cache key: what determines a step's result. The plugin's digest, its
/// configuration (as canonical JSON), the target, and each input slot's content digest; not
/// the step's id or where its inputs came from, so renaming a step or a dataset keeps its cache.
pub fn cache_key(planned: &PlannedStep, inputs: &[InputDigest]) -> String {
    let mut text = String::from("wflow-step-cache-v1\n");
    text.push_str(&planned.plugin_digest());
    text.push('\n');
    canonical_json(&planned.step.config, &mut text);
    text.push('\n');
    text.push_str(&serde_json::to_string(&planned.step.target).expect("a string serialises"));
    for input in inputs {
        text.push('\n');
        text.push_str(&serde_json::to_string(&input.slot).expect("a string serialises"));
        text.push('=');
        text.push_str(&input.digest);
    }
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// JSON with object keys sorted at every level, whatever map type serde_json was built with.
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).expect("a string serialises"));
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Runs one step: reuses an earlier identical execution when the journal has one, else calls
/// the plugin (or registers the model) and stores the outputs.
#[allow(clippy::too_many_arguments)]
async fn execute(
    runtime: &Arc<Runtime>,
    plan: &Arc<Plan>,
    index: usize,
    work: Work,
    inputs: Vec<InputDigest>,
    journal: Option<Arc<dyn Journal>>,
    no_cache: bool,
    events: Option<UnboundedSender<Event>>,
    queue: Option<Arc<dyn StepQueue>>,
) -> Attempted {
    let planned = &plan.steps[index];
    let key = journal.as_ref().map(|_| cache_key(planned, &inputs));
    if let Some(journal) = &journal
        && let Err(err) = journal.started(index, planned, &inputs, key.as_deref(), 1)
    {
        let mut attempted = Attempted::failed(Failure::Sandbox(String::new()));
        attempted.store_error = Some(format!("the step could not be recorded: {err:#}"));
        return attempted;
    }
    if let (Some(journal), Some(key), Work::Call(..) | Work::LoadModel(_)) = (&journal, &key, &work)
    {
        let allow_cache = planned.cacheable() && !no_cache;
        let (journal, plan, key) = (journal.clone(), plan.clone(), key.clone());
        let reused =
            blocking(move || journal.reuse(index, &plan.steps[index], &key, allow_cache)).await;
        match reused {
            Ok(Some(reused)) => {
                return Attempted {
                    outcome: Ok(reused.output),
                    log: reused.log,
                    metrics: reused.metrics,
                    attempts: 0,
                    duration: Duration::ZERO,
                    reused: Some(ReuseOrigin {
                        run: reused.run,
                        resumed: reused.resumed,
                    }),
                    digests: reused.digests,
                    store_error: None,
                    absent: None,
                };
            }
            Ok(None) => {}
            // An unreadable cache entry costs a re-run, never the step.
            Err(err) => tracing::warn!(
                step = %planned.step.id,
                error = %format!("{err:#}"),
                "cannot reuse an earlier execution; running the step"
            ),
        }
    }
    let mut attempted = match work {
        Work::Call(call, kinds) => {
            let remote = queue.map(|queue| {
                let digests: std::collections::HashMap<&str, &str> = inputs
                    .iter()
                    .map(|i| (i.slot.as_str(), i.digest.as_str()))
                    .collect();
                let queued = kinds
                    .into_iter()
                    .filter_map(|(slot, kind)| {
                        let digest = digests.get(slot.as_str())?.to_string();
                        Some(QueuedInput { slot, digest, kind })
                    })
                    .collect();
                (queue, queued)
            });
            attempt(runtime, planned, index, call, events, remote).await
        }
        Work::Register(registration) => register(plan, index, *registration, &journal).await,
        Work::LoadModel(config) => load_model(config, &journal).await,
    };
    if let (Some(journal), Ok(output), None) = (&journal, &attempted.outcome, &attempted.absent)
        && !matches!(planned.runner, Runner::Register(_))
    {
        let (outputs, _) = output_values(output.clone());
        let journal = journal.clone();
        match blocking(move || journal.store_outputs(index, &outputs)).await {
            Ok(digests) => attempted.digests = digests,
            Err(err) => {
                attempted.store_error =
                    Some(format!("the step's outputs could not be stored: {err:#}"))
            }
        }
    }
    attempted
}

/// The host's model-loading step: the registry's version, or nothing to do when there is none.
async fn load_model(config: LoadModelConfig, journal: &Option<Arc<dyn Journal>>) -> Attempted {
    let started = Instant::now();
    let reference = config.reference();
    let mut attempted = Attempted::failed(Failure::Sandbox(String::new()));
    let Some(journal) = journal.clone() else {
        attempted.absent = Some("no model registry: the run is not recorded".into());
        attempted.outcome = Ok(Output::Report(Report {
            findings: Vec::new(),
        }));
        return attempted;
    };
    match blocking(move || journal.load_model(&config)).await {
        Ok(Some((model, version))) => {
            attempted.outcome = Ok(Output::Trained {
                model,
                metrics: Vec::new(),
            });
            attempted.metrics = vec![("version".into(), version as f64)];
        }
        Ok(None) => {
            attempted.absent = Some(format!("no `{reference}` in the model registry yet"));
            attempted.outcome = Ok(Output::Report(Report {
                findings: Vec::new(),
            }));
        }
        Err(err) => attempted.outcome = Err(Failure::Failed(format!("{err:#}"))),
    }
    attempted.duration = started.elapsed();
    attempted
}

/// The host's registration step.
async fn register(
    plan: &Arc<Plan>,
    index: usize,
    registration: Registration,
    journal: &Option<Arc<dyn Journal>>,
) -> Attempted {
    let started = Instant::now();
    let Some(journal) = journal.clone() else {
        return Attempted::failed(Failure::Failed(
            "registering a model needs the store: run the workflow with `wflow run`".into(),
        ));
    };
    let plan = plan.clone();
    let outcome = blocking(move || journal.register(index, &plan.steps[index], registration)).await;
    let mut attempted = match outcome {
        Ok(registered) => {
            let mut attempted = Attempted::failed(Failure::Sandbox(String::new()));
            attempted.outcome = Ok(Output::Report(registered.report));
            attempted.metrics = vec![("version".into(), registered.version as f64)];
            attempted.reused = registered
                .earlier
                .map(|run| ReuseOrigin { run, resumed: true });
            attempted
        }
        Err(err) => Attempted::failed(Failure::Failed(format!("{err:#}"))),
    };
    attempted.duration = started.elapsed();
    attempted
}

/// Which steps are done, ready or waiting: O(steps + dependencies) over a whole run.
struct Board<'a> {
    plan: &'a Plan,
    events: Option<UnboundedSender<Event>>,
    journal: Option<Arc<dyn Journal>>,
    /// Dependencies each step still waits for.
    waiting: Vec<usize>,
    /// The steps that need each step.
    dependents: Vec<Vec<usize>>,
    /// Steps whose dependencies all succeeded, in plan order of becoming ready.
    ready: VecDeque<usize>,
    reports: Vec<Option<StepReport>>,
    /// Steps that had nothing to give (not applicable), by id.
    absent: HashSet<String>,
}

impl<'a> Board<'a> {
    fn new(
        plan: &'a Plan,
        events: Option<UnboundedSender<Event>>,
        journal: Option<Arc<dyn Journal>>,
    ) -> Board<'a> {
        let index: HashMap<&str, usize> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, p)| (p.step.id.as_str(), i))
            .collect();
        let mut dependents = vec![Vec::new(); plan.steps.len()];
        let mut waiting = vec![0; plan.steps.len()];
        for (i, planned) in plan.steps.iter().enumerate() {
            for need in &planned.step.needs {
                if let Some(&j) = index.get(need.as_str()) {
                    dependents[j].push(i);
                    waiting[i] += 1;
                }
            }
        }
        let ready = (0..plan.steps.len()).filter(|&i| waiting[i] == 0).collect();
        Board {
            plan,
            events,
            journal,
            waiting,
            dependents,
            ready,
            reports: vec![None; plan.steps.len()],
            absent: HashSet::new(),
        }
    }

    /// Records a finished step in the journal, then on the board: its dependents become
    /// ready, or are skipped (transitively) when it did not succeed. A step the journal cannot
    /// record fails, since a resume could not find its outputs.
    fn record(&mut self, index: usize, report: StepReport) {
        self.finish(index, report, &[]);
    }

    fn finish(&mut self, index: usize, mut report: StepReport, returned: &[(String, f64)]) {
        if let Some(journal) = &self.journal {
            let planned = &self.plan.steps[index];
            let cacheable = planned.cacheable() && report.reused.is_none();
            if let Err(err) = journal.finished(index, planned, &report, returned, cacheable) {
                report.status =
                    StepStatus::Failed(format!("the step could not be recorded: {err:#}"));
                report.failure_kind = Some("store");
            }
        }
        let status = report.status.clone();
        if matches!(status, StepStatus::NotApplicable(_)) {
            self.absent.insert(report.id.clone());
        }
        self.emit(&report);
        self.reports[index] = Some(report);
        let mut blocked = Vec::new();
        let mut absent = Vec::new();
        for &dependent in &self.dependents[index].clone() {
            let release = match &status {
                StepStatus::Succeeded => true,
                StepStatus::NotApplicable(_) if self.tolerates_absence(dependent, index) => true,
                StepStatus::NotApplicable(_) => {
                    absent.push(dependent);
                    false
                }
                // Its dependents are cancelled too, by the caller, not skipped.
                StepStatus::Cancelled(_) => false,
                _ => {
                    blocked.push((dependent, index));
                    false
                }
            };
            if release {
                self.waiting[dependent] -= 1;
                if self.waiting[dependent] == 0 {
                    self.ready.push_back(dependent);
                }
            }
        }
        if let StepStatus::NotApplicable(reason) = &status {
            // A step that needs the value of one with nothing to give has nothing to do either.
            for dependent in absent {
                if self.reports[dependent].is_none() {
                    let mut report = skipped(&self.plan.steps[dependent], String::new());
                    report.status = StepStatus::NotApplicable(format!(
                        "`{}` had nothing to give: {reason}",
                        self.plan.steps[index].step.id
                    ));
                    self.finish(dependent, report, &[]);
                }
            }
        }
        while let Some((step, blocker)) = blocked.pop() {
            if self.reports[step].is_some() {
                continue;
            }
            let reason = format!("`{}` did not succeed", self.plan.steps[blocker].step.id);
            let report = skipped(&self.plan.steps[step], reason);
            if let Some(journal) = &self.journal
                && let Err(err) =
                    journal.finished(step, &self.plan.steps[step], &report, &[], false)
            {
                tracing::error!(step = %report.id, error = %format!("{err:#}"), "cannot record the step");
            }
            self.emit(&report);
            self.reports[step] = Some(report);
            blocked.extend(self.dependents[step].iter().map(|&d| (d, step)));
        }
    }

    /// Marks every step without a report as cancelled (not started).
    fn cancel_rest(&mut self, plan: &Plan, reason: &str) {
        for index in 0..plan.steps.len() {
            if self.reports[index].is_none() {
                let mut report = skipped(&plan.steps[index], String::new());
                report.status = StepStatus::Cancelled(reason.to_string());
                if let Some(journal) = &self.journal
                    && let Err(err) =
                        journal.finished(index, &plan.steps[index], &report, &[], false)
                {
                    tracing::error!(step = %report.id, error = %format!("{err:#}"), "cannot record the step");
                }
                self.emit(&report);
                self.reports[index] = Some(report);
            }
        }
    }

    /// Whether `dependent` can run without the value of `producer`: it takes it only in
    /// optional slots (a gate's `champion`), or only runs after it (`needs`).
    fn tolerates_absence(&self, dependent: usize, producer: usize) -> bool {
        let producer = &self.plan.steps[producer].step.id;
        let planned = &self.plan.steps[dependent];
        planned
            .step
            .inputs
            .iter()
            .all(|(slot, input)| match &input.source {
                InputSource::StepOutput { step, .. } if step == producer => {
                    planned.optional_slot(slot)
                }
                _ => true,
            })
    }

    fn emit(&self, report: &StepReport) {
        if let Some(events) = &self.events {
            // The receiver going away (e.g. a closed terminal) must not stop the run.
            let _ = events.send(Event::StepFinished {
                report: Box::new(report.clone()),
            });
        }
    }
}

fn skipped(planned: &PlannedStep, reason: String) -> StepReport {
    StepReport {
        id: planned.step.id.clone(),
        plugin: planned.plugin_label(),
        kind: planned.kind(),
        status: StepStatus::Skipped(reason),
        reused: None,
        failure_kind: None,
        attempts: 0,
        duration: Duration::ZERO,
        metrics: Vec::new(),
        findings: Vec::new(),
        decision: None,
        drift: None,
        outputs: Vec::new(),
        log: Vec::new(),
    }
}

/// An input's value and, when the run is recorded, its digest.
fn resolve(
    source: &InputSource,
    plan: &Plan,
    values: &Values,
) -> Result<(Value, Option<String>), String> {
    match source {
        InputSource::Dataset(name) => plan
            .datasets
            .get(name)
            .map(|table| {
                (
                    Value::Table(table.clone()),
                    values.datasets.get(name).cloned(),
                )
            })
            .ok_or_else(|| format!("dataset `{name}` is not loaded")),
        InputSource::StepOutput { step, output } => values
            .by_output
            .get(&(step.clone(), output.clone()))
            .cloned()
            .ok_or_else(|| {
                let mut produced: Vec<String> = values
                    .by_output
                    .keys()
                    .filter(|(s, _)| s == step)
                    .map(|(s, o)| format!("`{s}.{o}`"))
                    .collect();
                produced.sort();
                format!(
                    "step `{step}` produced no output `{output}` (it produced {})",
                    if produced.is_empty() {
                        "none".to_string()
                    } else {
                        produced.join(", ")
                    }
                )
            }),
    }
}

/// Every step upstream of `index` (through inputs and `needs`), in plan order.
fn upstream(plan: &Plan, index: usize) -> Vec<usize> {
    let position: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, p)| (p.step.id.as_str(), i))
        .collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![index];
    while let Some(i) = stack.pop() {
        for need in &plan.steps[i].step.needs {
            if let Some(&j) = position.get(need.as_str())
                && seen.insert(j)
            {
                stack.push(j);
            }
        }
    }
    seen.into_iter().collect()
}

/// The datasets an input derives from, following step inputs back to the files.
fn source_datasets(plan: &Plan, source: &InputSource) -> Vec<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![source.clone()];
    let mut visited = HashSet::new();
    while let Some(source) = stack.pop() {
        match source {
            InputSource::Dataset(name) => {
                found.insert(name);
            }
            InputSource::StepOutput { step, .. } => {
                if visited.insert(step.clone())
                    && let Some(planned) = plan.step(&step)
                {
                    stack.extend(planned.step.inputs.values().map(|i| i.source.clone()));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Gathers a step's inputs into the work its runner does, with the inputs' digests.
fn build_work(
    plan: &Plan,
    index: usize,
    values: &Values,
    absent: &HashSet<String>,
) -> Result<(Work, Vec<InputDigest>), String> {
    let planned = &plan.steps[index];
    let step = &planned.step;
    let config = step.config.to_string();
    let mut inputs = Vec::new();
    // The slots in the workflow's order (a transformer receives its tables in it).
    let mut slots: Vec<(String, Value)> = Vec::with_capacity(step.inputs.len());
    for (slot, input) in &step.inputs {
        if let InputSource::StepOutput { step: producer, .. } = &input.source
            && absent.contains(producer)
            && planned.optional_slot(slot)
        {
            continue;
        }
        let (value, digest) = resolve(&input.source, plan, values)?;
        if let Some(digest) = digest {
            inputs.push(InputDigest {
                slot: slot.clone(),
                source: input.source.to_string(),
                digest,
            });
        }
        slots.push((slot.clone(), value));
    }
    let kind = match &planned.runner {
        Runner::Plugin(plugin) => plugin.kind(),
        Runner::LoadModel(config) => return Ok((Work::LoadModel(config.clone()), inputs)),
        Runner::Register(config) => {
            let mut slots = Slots(slots);
            let data = match step.inputs.get("data") {
                Some(data_input) => {
                    let digest = inputs
                        .iter()
                        .find(|i| i.slot == "data")
                        .map(|i| i.digest.clone())
                        .unwrap_or_default();
                    Some((
                        slots.table("data")?,
                        digest,
                        source_datasets(plan, &data_input.source),
                    ))
                }
                None => None,
            };
            let trained_by = match &step.inputs.get("model").map(|i| &i.source) {
                Some(InputSource::StepOutput { step, .. }) => step.clone(),
                _ => String::new(),
            };
            let decision = match slots.take("decision") {
                Some(Value::Decision(decision)) => Some(decision),
                None => None,
                _ => return Err("input `decision` is not a decision".into()),
            };
            let model = slots.model()?;
            let pipeline = match step.inputs.get("model") {
                Some(input) => super::pipeline::served_pipeline(
                    plan,
                    &values.by_output,
                    &values.datasets,
                    &input.source,
                    &model,
                    config,
                )?,
                None => None,
            };
            let registration = Registration {
                name: config
                    .name
                    .clone()
                    .unwrap_or_else(|| plan.workflow.name.clone()),
                model,
                trained_by,
                data,
                evaluation: slots.evaluation("evaluation")?,
                decision,
                upstream: upstream(plan, index),
                aliases: config.aliases.clone(),
                pipeline,
            };
            return Ok((Work::Register(Box::new(registration)), inputs));
        }
    };
    // The call takes the values; a queue, if the run has one, needs only each slot's kind.
    let kinds = slots
        .iter()
        .map(|(slot, value)| (slot.clone(), ValueKind::of(value)))
        .collect();
    let call = call_for(kind, slots, config, step.target.clone())?;
    Ok((Work::Call(call, kinds), inputs))
}

/// A step's input values by slot, in the workflow's order, each taken out once as the work is
/// built: a table is moved into the call, not copied.
struct Slots(Vec<(String, Value)>);

impl Slots {
    fn take(&mut self, slot: &str) -> Option<Value> {
        let position = self.0.iter().position(|(s, _)| s == slot)?;
        Some(self.0.remove(position).1)
    }

    fn table(&mut self, slot: &str) -> Result<Table, String> {
        match self.take(slot) {
            Some(Value::Table(table)) => Ok(table),
            _ => Err(format!("input `{slot}` is not a table")),
        }
    }

    fn evaluation(&mut self, slot: &str) -> Result<Option<Evaluation>, String> {
        match self.take(slot) {
            Some(Value::Evaluation(evaluation)) => Ok(Some(evaluation)),
            None => Ok(None),
            _ => Err(format!("input `{slot}` is not an evaluation")),
        }
    }

    fn model(&mut self) -> Result<Model, String> {
        match self.take("model") {
            Some(Value::Model(model)) => Ok(model),
            _ => Err("input `model` is not a model".into()),
        }
    }
}

/// The call a plugin of `kind` gets for these inputs (by slot, in the workflow's order).
pub fn call_for(
    kind: StepKind,
    slots: Vec<(String, Value)>,
    config: String,
    target: Option<String>,
) -> Result<Call, String> {
    let mut slots = Slots(slots);
    Ok(match kind {
        StepKind::Validator => Call::Validate {
            data: slots.table("data")?,
            config,
        },
        StepKind::Transformer => {
            let inputs = slots
                .0
                .into_iter()
                .map(|(slot, value)| match value {
                    Value::Table(table) => Ok((slot, table)),
                    _ => Err(format!("input `{slot}` is not a table")),
                })
                .collect::<Result<Vec<_>, String>>()?;
            Call::Transform { inputs, config }
        }
        StepKind::Trainer => Call::Train {
            data: slots.table("data")?,
            target: target.ok_or("a trainer needs `target`")?,
            config,
        },
        StepKind::Evaluator => Call::Evaluate {
            model: slots.model()?,
            data: slots.table("data")?,
            config,
        },
        StepKind::Deployer => Call::Decide {
            candidate: slots
                .evaluation("candidate")?
                .ok_or("input `candidate` is missing")?,
            champion: slots.evaluation("champion")?,
            policy: config,
        },
        StepKind::DriftCheck => Call::Check {
            reference: slots.table("reference")?,
            current: slots.table("current")?,
            config,
        },
    })
}

/// The queue a call goes to, with its inputs as the queue hands them over.
type RemoteInputs = (Arc<dyn StepQueue>, Vec<QueuedInput>);

/// Runs the plugin call, retrying with exponential backoff and jitter while the failure is
/// retryable and attempts remain.
async fn attempt(
    runtime: &Arc<Runtime>,
    planned: &PlannedStep,
    index: usize,
    call: Call,
    events: Option<UnboundedSender<Event>>,
    remote: Option<RemoteInputs>,
) -> Attempted {
    let retries = &planned.step.retries;
    let started = Instant::now();
    let mut attempt = 0;
    let mut extra_claims = 0;
    loop {
        attempt += 1;
        if let Some(events) = &events {
            let _ = events.send(Event::StepStarted {
                step: planned.step.id.clone(),
                attempt,
            });
        }
        let sink: Option<ProgressSink> = events.clone().map(|events| {
            let step = planned.step.id.clone();
            Arc::new(move |done: u64, total: u64, message: &str| {
                let _ = events.send(Event::StepProgress {
                    step: step.clone(),
                    done,
                    total,
                    message: message.to_string(),
                });
            }) as ProgressSink
        });
        let Runner::Plugin(plugin) = &planned.runner else {
            unreachable!("only plugin steps make calls");
        };
        let mut claims = 1;
        let execution = match &remote {
            Some((queue, inputs)) => {
                let queued = queue
                    .execute(QueuedCall {
                        index,
                        step_id: planned.step.id.clone(),
                        attempt,
                        plugin: plugin.clone(),
                        inputs: inputs.clone(),
                        config: planned.step.config.to_string(),
                        target: planned.step.target.clone(),
                        limits: planned.limits.clone(),
                        capabilities: planned.capabilities.clone(),
                    })
                    .await;
                claims = queued.claims.max(1);
                queued.execution
            }
            None => {
                runtime
                    .call_with_progress(
                        plugin,
                        call.clone(),
                        &planned.limits,
                        &planned.capabilities,
                        sink,
                    )
                    .await
            }
        };
        // A worker that died midway made the queue run the call again: each take counts.
        extra_claims += claims - 1;
        let retry = match &execution.outcome {
            Err(failure) if failure.is_retryable() && attempt <= retries.count => {
                Some(failure.to_string())
            }
            _ => None,
        };
        let Some(failure) = retry else {
            return Attempted {
                outcome: execution.outcome,
                log: execution.log,
                metrics: execution.metrics,
                attempts: attempt + extra_claims,
                duration: started.elapsed(),
                reused: None,
                digests: Vec::new(),
                store_error: None,
                absent: None,
            };
        };
        let delay = backoff(retries.backoff, retries.max_backoff, attempt);
        tracing::info!(step = %planned.step.id, attempt, failure = %failure, delay = ?delay, "retrying step");
        if let Some(events) = &events {
            let _ = events.send(Event::StepRetrying {
                step: planned.step.id.clone(),
                attempt,
                failure,
                delay,
            });
        }
        tokio::time::sleep(delay).await;
    }
}

/// `base * 2^(attempt-1)`, capped, with up to 25% random jitter so that retries of many
/// failing steps do not fire in lockstep.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let exponential = base
        .saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(max);
    // RandomState is seeded randomly per process and differs per call: enough for jitter.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let jitter = exponential.mul_f64((random % 1000) as f64 / 4000.0);
    exponential.saturating_add(jitter)
}

fn failed_checks(report: &Report) -> Vec<&Finding> {
    report
        .findings
        .iter()
        .filter(|f| !f.passed && f.severity == Severity::Fail)
        .collect()
}

fn describe_failed_checks(failed: &[&Finding]) -> String {
    let details: Vec<String> = failed
        .iter()
        .map(|f| match &f.column {
            Some(column) => format!("{} on `{column}`: {}", f.check, f.message),
            None => format!("{}: {}", f.check, f.message),
        })
        .collect();
    format!(
        "{} check{} failed: {}",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        details.join("; ")
    )
}

/// Named values, in order.
pub type NamedValues = Vec<(String, Value)>;

/// A step's output as named values (in the order the engine records them) and the metrics
/// a trainer returned with its model.
pub fn output_values(output: Output) -> (NamedValues, Vec<(String, f64)>) {
    let mut returned = Vec::new();
    let values = match output {
        Output::Report(report) => vec![("report".to_string(), Value::Report(report))],
        Output::Tables {
            tables,
            preprocessing,
        } => tables
            .into_iter()
            .map(|(name, table)| (name, Value::Table(table)))
            .chain(preprocessing.map(|stages| {
                (
                    crate::plugin::PREPROCESSING_OUTPUT.to_string(),
                    Value::Preprocessing(stages),
                )
            }))
            .collect(),
        Output::Trained { model, metrics } => {
            returned = metrics.into_iter().map(|m| (m.name, m.value)).collect();
            vec![("model".to_string(), Value::Model(model))]
        }
        Output::Evaluation(evaluation) => {
            vec![("evaluation".to_string(), Value::Evaluation(evaluation))]
        }
        Output::Gate(gate) => vec![("decision".to_string(), Value::Decision(gate))],
        Output::Drift(drift) => vec![("drift".to_string(), Value::Drift(drift))],
    };
    (values, returned)
}

/// The inverse of [`output_values`], for outputs read back from the store.
pub fn output_from_values(
    kind: StepKind,
    values: Vec<(String, Value)>,
    returned: Vec<(String, f64)>,
) -> Result<Output, String> {
    let mismatch = || {
        format!(
            "the stored outputs do not fit a {}",
            crate::plugin::kind_name(kind)
        )
    };
    if kind == StepKind::Transformer {
        let mut tables = Vec::with_capacity(values.len());
        let mut preprocessing = None;
        for (name, value) in values {
            match value {
                Value::Table(table) => tables.push((name, table)),
                Value::Preprocessing(stages) => preprocessing = Some(stages),
                _ => return Err(mismatch()),
            }
        }
        return Ok(Output::Tables {
            tables,
            preprocessing,
        });
    }
    let mut values = values.into_iter();
    let (Some((_, value)), None) = (values.next(), values.next()) else {
        return Err(mismatch());
    };
    Ok(match (kind, value) {
        (StepKind::Validator, Value::Report(report)) => Output::Report(report),
        (StepKind::Trainer, Value::Model(model)) => Output::Trained {
            model,
            metrics: returned
                .into_iter()
                .map(|(name, value)| crate::plugin::Metric { name, value })
                .collect(),
        },
        (StepKind::Evaluator, Value::Evaluation(evaluation)) => Output::Evaluation(evaluation),
        (StepKind::Deployer, Value::Decision(gate)) => Output::Gate(gate),
        (StepKind::DriftCheck, Value::Drift(drift)) => Output::Drift(drift),
        _ => return Err(mismatch()),
    })
}

/// Records a finished step's outputs and builds its report; also returns the metrics a
/// trainer returned with its model, which the journal keeps apart.
fn finish(
    planned: &PlannedStep,
    attempted: Attempted,
    values: &mut Values,
) -> (StepReport, Vec<(String, f64)>) {
    let id = planned.step.id.clone();
    let mut report = skipped(planned, String::new());
    report.attempts = attempted.attempts;
    report.duration = attempted.duration;
    report.log = attempted.log;
    report.metrics = attempted.metrics;
    report.reused = attempted.reused;
    if let Some(error) = attempted.store_error {
        report.failure_kind = Some("store");
        report.status = StepStatus::Failed(error);
        return (report, Vec::new());
    }
    if let Some(reason) = attempted.absent {
        report.status = StepStatus::NotApplicable(reason);
        return (report, Vec::new());
    }
    let output = match attempted.outcome {
        Ok(output) => output,
        Err(failure) => {
            report.failure_kind = Some(failure.kind());
            report.status = StepStatus::Failed(failure.to_string());
            return (report, Vec::new());
        }
    };
    let mut findings = Vec::new();
    let mut metrics = Vec::new();
    let mut decision = None;
    let mut drift = None;
    match &output {
        Output::Report(r) => findings = r.findings.clone(),
        Output::Tables { tables, .. } => {
            for (name, table) in tables {
                metrics.push((format!("{name}.rows"), table.row_count() as f64));
            }
        }
        Output::Trained { .. } => {}
        Output::Evaluation(evaluation) => {
            metrics.extend(evaluation.metrics.iter().map(|m| (m.name.clone(), m.value)));
            findings = evaluation.report.findings.clone();
        }
        Output::Gate(gate) => {
            findings = gate.report.findings.clone();
            decision = Some(gate.clone());
        }
        Output::Drift(outcome) => {
            metrics.push(("drift_share".into(), outcome.drift_share));
            // Each feature's primary method comes first in the plugin's list and decides it.
            let mut seen = HashSet::new();
            let drifted = outcome
                .features
                .iter()
                .filter(|f| seen.insert(f.feature.clone()))
                .filter(|f| f.drifted)
                .count();
            metrics.push(("drifted_features".into(), drifted as f64));
            findings = outcome.report.findings.clone();
            drift = Some(outcome.clone());
        }
    }
    let (named, returned) = output_values(output);
    // A reused step already carries its returned metrics among the metrics it recorded.
    if report.reused.is_none() {
        metrics.splice(0..0, returned.iter().cloned());
    }
    if !matches!(planned.runner, Runner::Register(_)) {
        let mut digests = attempted.digests.into_iter();
        for (name, value) in named {
            values
                .by_output
                .insert((id.clone(), name.clone()), (value, digests.next()));
            report.outputs.push(name);
        }
    }
    if report.reused.is_none() {
        report.metrics.extend(metrics);
    }
    let checked = Report { findings };
    let failed = failed_checks(&checked);
    report.status = if failed.is_empty() {
        StepStatus::Succeeded
    } else {
        StepStatus::Failed(describe_failed_checks(&failed))
    };
    if !failed.is_empty() {
        report.failure_kind = Some("checks-failed");
    }
    report.findings = checked.findings;
    report.decision = decision;
    report.drift = drift;
    (report, returned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for (attempt, expected) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let delay = backoff(base, max, attempt).as_millis() as u64;
            assert!(
                delay >= expected && delay <= expected + expected / 4,
                "attempt {attempt}: {delay} ms"
            );
        }
    }
}
