//! Runs a plan: starts every step whose dependencies succeeded, at most `concurrency` at once,
//! each plugin call on a blocking thread; retries failed attempts with exponential backoff and
//! jitter; skips the dependents of a failed step; passes tables, models, evaluations and
//! reports between steps.
//!
//! It reports what happens through `Event`s (the CLI turns them into progress lines) and
//! returns a `RunReport`. It does not print and does not persist anything.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use super::plan::{Plan, PlannedStep};
use crate::plugin::{
    Call, DriftOutcome, Evaluation, Failure, Finding, GateOutcome, LogLine, Model, Output,
    ProgressSink, Report, Runtime, Severity, StepKind,
};
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
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StepStatus {
    Succeeded,
    /// The plugin call failed (after all retries), or its report failed a `fail` check.
    Failed(String),
    /// Not run because a step it depends on did not succeed.
    Skipped(String),
}

impl StepStatus {
    pub fn label(&self) -> &'static str {
        match self {
            StepStatus::Succeeded => "ok",
            StepStatus::Failed(_) => "failed",
            StepStatus::Skipped(_) => "skipped",
        }
    }
}

/// Everything known about one step after the run.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub id: String,
    pub plugin: String,
    pub kind: StepKind,
    pub status: StepStatus,
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

/// The outcome of a whole run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub workflow: String,
    pub steps: Vec<StepReport>,
    pub duration: Duration,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.steps.iter().all(|s| s.status == StepStatus::Succeeded)
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
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Steps running at once.
    pub concurrency: usize,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

struct Attempted {
    outcome: Result<Output, Failure>,
    log: Vec<LogLine>,
    metrics: Vec<(String, f64)>,
    attempts: u32,
    duration: Duration,
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
    let mut board = Board::new(&plan, events.clone());
    let mut values: HashMap<(String, String), Value> = HashMap::new();
    let mut tasks: JoinSet<Attempted> = JoinSet::new();
    let mut task_steps: HashMap<tokio::task::Id, usize> = HashMap::new();

    loop {
        while tasks.len() < concurrency {
            let Some(index) = board.ready.pop_front() else {
                break;
            };
            let planned = &plan.steps[index];
            match build_call(&plan, planned, &values) {
                Ok(call) => {
                    let runtime = runtime.clone();
                    let plan = plan.clone();
                    let events = events.clone();
                    let task = tasks.spawn(async move {
                        attempt(&runtime, &plan.steps[index], call, events).await
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
        let Some(joined) = tasks.join_next_with_id().await else {
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
                let attempted = Attempted {
                    outcome: Err(failure),
                    log: Vec::new(),
                    metrics: Vec::new(),
                    attempts: 1,
                    duration: Duration::ZERO,
                };
                (index, attempted)
            }
        };
        let report = finish(&plan.steps[index], attempted, &mut values);
        board.record(index, report);
    }

    let steps = plan
        .steps
        .iter()
        .zip(board.reports)
        .map(|(planned, report)| report.unwrap_or_else(|| skipped(planned, "not reached".into())))
        .collect();
    RunReport {
        workflow: plan.workflow.name.clone(),
        steps,
        duration: started.elapsed(),
    }
}

/// Which steps are done, ready or waiting: O(steps + dependencies) over a whole run.
struct Board<'a> {
    plan: &'a Plan,
    events: Option<UnboundedSender<Event>>,
    /// Dependencies each step still waits for.
    waiting: Vec<usize>,
    /// The steps that need each step.
    dependents: Vec<Vec<usize>>,
    /// Steps whose dependencies all succeeded, in plan order of becoming ready.
    ready: VecDeque<usize>,
    reports: Vec<Option<StepReport>>,
}

impl<'a> Board<'a> {
    fn new(plan: &'a Plan, events: Option<UnboundedSender<Event>>) -> Board<'a> {
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
            waiting,
            dependents,
            ready,
            reports: vec![None; plan.steps.len()],
        }
    }

    /// Records a finished step: its dependents become ready, or are skipped (transitively)
    /// when it did not succeed.
    fn record(&mut self, index: usize, report: StepReport) {
        let succeeded = report.status == StepStatus::Succeeded;
        self.emit(&report);
        self.reports[index] = Some(report);
        let mut blocked = Vec::new();
        for &dependent in &self.dependents[index] {
            if succeeded {
                self.waiting[dependent] -= 1;
                if self.waiting[dependent] == 0 {
                    self.ready.push_back(dependent);
                }
            } else {
                blocked.push((dependent, index));
            }
        }
        while let Some((step, blocker)) = blocked.pop() {
            if self.reports[step].is_some() {
                continue;
            }
            let reason = format!("`{}` did not succeed", self.plan.steps[blocker].step.id);
            let report = skipped(&self.plan.steps[step], reason);
            self.emit(&report);
            self.reports[step] = Some(report);
            blocked.extend(self.dependents[step].iter().map(|&d| (d, step)));
        }
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
        plugin: format!(
            "{}@{}",
            planned.plugin.info.name, planned.plugin.info.version
        ),
        kind: planned.plugin.kind(),
        status: StepStatus::Skipped(reason),
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

fn resolve<'a>(
    source: &InputSource,
    plan: &'a Plan,
    values: &'a HashMap<(String, String), Value>,
) -> Result<Value, String> {
    match source {
        InputSource::Dataset(name) => plan
            .datasets
            .get(name)
            .cloned()
            .map(Value::Table)
            .ok_or_else(|| format!("dataset `{name}` is not loaded")),
        InputSource::StepOutput { step, output } => values
            .get(&(step.clone(), output.clone()))
            .cloned()
            .ok_or_else(|| {
                let produced: Vec<String> = values
                    .keys()
                    .filter(|(s, _)| s == step)
                    .map(|(s, o)| format!("`{s}.{o}`"))
                    .collect();
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

/// Gathers a step's inputs into the call its plugin expects.
fn build_call(
    plan: &Plan,
    planned: &PlannedStep,
    values: &HashMap<(String, String), Value>,
) -> Result<Call, String> {
    let step = &planned.step;
    let config = step.config.to_string();
    let input = |slot: &str| -> Result<Option<Value>, String> {
        step.inputs
            .get(slot)
            .map(|input| resolve(&input.source, plan, values))
            .transpose()
    };
    let table = |slot: &str| -> Result<Table, String> {
        match input(slot)? {
            Some(Value::Table(table)) => Ok(table),
            _ => Err(format!("input `{slot}` is not a table")),
        }
    };
    let evaluation = |slot: &str| -> Result<Option<Evaluation>, String> {
        match input(slot)? {
            Some(Value::Evaluation(evaluation)) => Ok(Some(evaluation)),
            None => Ok(None),
            _ => Err(format!("input `{slot}` is not an evaluation")),
        }
    };
    Ok(match planned.plugin.kind() {
        StepKind::Validator => Call::Validate {
            data: table("data")?,
            config,
        },
        StepKind::Transformer => {
            let inputs = step
                .inputs
                .keys()
                .map(|slot| Ok((slot.clone(), table(slot)?)))
                .collect::<Result<Vec<_>, String>>()?;
            Call::Transform { inputs, config }
        }
        StepKind::Trainer => Call::Train {
            data: table("data")?,
            target: step.target.clone().ok_or("a trainer needs `target`")?,
            config,
        },
        StepKind::Evaluator => {
            let model = match input("model")? {
                Some(Value::Model(model)) => model,
                _ => return Err("input `model` is not a model".into()),
            };
            Call::Evaluate {
                model,
                data: table("data")?,
                config,
            }
        }
        StepKind::Deployer => Call::Decide {
            candidate: evaluation("candidate")?.ok_or("input `candidate` is missing")?,
            champion: evaluation("champion")?,
            policy: config,
        },
        StepKind::DriftCheck => Call::Check {
            reference: table("reference")?,
            current: table("current")?,
            config,
        },
    })
}

/// Runs the plugin call, retrying with exponential backoff and jitter while the failure is
/// retryable and attempts remain.
async fn attempt(
    runtime: &Arc<Runtime>,
    planned: &PlannedStep,
    call: Call,
    events: Option<UnboundedSender<Event>>,
) -> Attempted {
    let retries = &planned.step.retries;
    let started = Instant::now();
    let mut attempt = 0;
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
        let execution = runtime
            .call_with_progress(
                &planned.plugin,
                call.clone(),
                &planned.limits,
                &planned.capabilities,
                sink,
            )
            .await;
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
                attempts: attempt,
                duration: started.elapsed(),
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

/// Records a finished step's outputs and builds its report.
fn finish(
    planned: &PlannedStep,
    attempted: Attempted,
    values: &mut HashMap<(String, String), Value>,
) -> StepReport {
    let id = planned.step.id.clone();
    let mut report = skipped(planned, String::new());
    report.attempts = attempted.attempts;
    report.duration = attempted.duration;
    report.log = attempted.log;
    report.metrics = attempted.metrics;
    let output = match attempted.outcome {
        Ok(output) => output,
        Err(failure) => {
            report.failure_kind = Some(failure.kind());
            report.status = StepStatus::Failed(failure.to_string());
            return report;
        }
    };
    let mut put = |name: &str, value: Value| {
        values.insert((id.clone(), name.to_string()), value);
        report.outputs.push(name.to_string());
    };
    let mut findings = Vec::new();
    let mut metrics = Vec::new();
    let mut decision = None;
    let mut drift = None;
    match output {
        Output::Report(r) => {
            findings = r.findings.clone();
            put("report", Value::Report(r));
        }
        Output::Tables(tables) => {
            for (name, table) in tables {
                metrics.push((format!("{name}.rows"), table.row_count() as f64));
                put(&name, Value::Table(table));
            }
        }
        Output::Trained {
            model,
            metrics: trained,
        } => {
            metrics.extend(trained.into_iter().map(|m| (m.name, m.value)));
            put("model", Value::Model(model));
        }
        Output::Evaluation(evaluation) => {
            metrics.extend(evaluation.metrics.iter().map(|m| (m.name.clone(), m.value)));
            findings = evaluation.report.findings.clone();
            put("evaluation", Value::Evaluation(evaluation));
        }
        Output::Gate(gate) => {
            findings = gate.report.findings.clone();
            decision = Some(gate.clone());
            put("decision", Value::Decision(gate));
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
            put("drift", Value::Drift(outcome));
        }
    }
    report.metrics.extend(metrics);
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
    report
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
