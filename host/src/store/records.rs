//! The records the store keeps, as they are serialised (JSON) into sled.
//!
//! Each record is one sled value, written whole, so a reader never sees half of one. Fields are
//! added with `#[serde(default)]` so records written by an older wflow still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::StoredValue;
use crate::plugin::{Finding, GateOutcome, LogLine};
use crate::table::ColumnType;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Now, in milliseconds since the Unix epoch.
pub fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A time as people read it (UTC, seconds).
pub fn format_time(millis: Millis) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Asked for and waiting its turn in a daemon (kept, so a daemon that dies loses none).
    Queued,
    Running,
    Succeeded,
    Failed,
    /// The process running it stopped before it finished; `wflow runs resume` continues it.
    Interrupted,
    /// Cancelled on request (`wflow runs cancel`, or replaced by a newer run); resumable too.
    Cancelled,
}

impl RunStatus {
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Interrupted,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.label() == text)
    }
}

/// Where a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Running,
    Succeeded,
    /// Its outputs were reused from an earlier identical execution instead of running it.
    Cached,
    Failed,
    Skipped,
    /// Had nothing to do (a `load-model` step before the model exists), which is not a failure.
    #[serde(rename = "n/a")]
    NotApplicable,
    Interrupted,
}

impl StepStatus {
    pub fn label(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Cached => "cached",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::NotApplicable => "n/a",
            StepStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the step's outputs exist and can be used by later steps.
    pub fn completed(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Cached)
    }
}

/// One status change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition<S> {
    pub status: S,
    pub at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A dataset a run read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub name: String,
    pub path: String,
    /// The digest of the table as read (the artifact).
    pub digest: String,
    pub rows: u64,
    pub columns: Vec<(String, ColumnType)>,
}

/// A run: small on purpose, so that listing thousands of runs stays fast; the steps are
/// records of their own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: u64,
    pub workflow: String,
    /// The workflow file as given, made absolute.
    pub file: String,
    /// The digest of the workflow file's text, which is stored as an artifact.
    pub workflow_digest: String,
    pub status: RunStatus,
    pub created: Millis,
    #[serde(default)]
    pub finished: Option<Millis>,
    pub transitions: Vec<Transition<RunStatus>>,
    /// Step ids in plan order.
    pub steps: Vec<String>,
    #[serde(default)]
    pub datasets: Vec<DatasetRecord>,
    /// Whether the step cache was turned off for this run.
    #[serde(default)]
    pub no_cache: bool,
    /// The id of the process that ran it last.
    pub pid: u32,
    /// What started it, when it was not `wflow run`: a trigger of the daemon, or a request.
    #[serde(default)]
    pub trigger: Option<TriggerRecord>,
}

/// What started a run, with what it changed in the workflow (kept so a resumed run is the same).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecord {
    /// `manual`, `cron`, `files`, `drift`, `decay`, or `resume`.
    pub kind: String,
    /// The trigger's name in the workflow, for the kinds declared there.
    #[serde(default)]
    pub name: Option<String>,
    /// The cron slot it ran for.
    #[serde(default)]
    pub slot: Option<Millis>,
    /// For people: what fired it (`3 new files, 420 rows`, `drift in 12 of 30 features`).
    pub reason: String,
    /// Step configuration overrides, `STEP.KEY` -> a TOML value, as given.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Datasets read from another file than the workflow says: name -> path.
    #[serde(default)]
    pub datasets: BTreeMap<String, String>,
}

impl RunRecord {
    pub fn duration_ms(&self) -> Option<u64> {
        self.finished.map(|f| f.saturating_sub(self.created))
    }
}

/// Where a step's outputs came from when it did not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reuse {
    /// The run whose execution was reused.
    pub run: u64,
    pub step: String,
}

/// An input a step read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    pub slot: String,
    /// `DATASET` or `STEP.OUTPUT`.
    pub source: String,
    pub digest: String,
}

/// A named output a step produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub name: String,
    #[serde(flatten)]
    pub value: StoredValue,
}

/// One step of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    pub run: u64,
    /// Its position in the plan.
    pub index: u32,
    pub id: String,
    /// The step's kind (`trainer`, ..., or `register` for the host's registration step).
    pub kind: String,
    /// `name@version` of the plugin.
    pub plugin: String,
    pub plugin_digest: String,
    pub config: serde_json::Value,
    #[serde(default)]
    pub target: Option<String>,
    pub inputs: Vec<InputRecord>,
    /// The step-cache key: plugin digest, configuration and input digests.
    #[serde(default)]
    pub cache_key: Option<String>,
    pub status: StepStatus,
    pub transitions: Vec<Transition<StepStatus>>,
    pub attempts: u32,
    pub duration_ms: u64,
    pub outputs: Vec<OutputRecord>,
    /// Metrics a trainer returned with its model (the rest were emitted while it ran).
    #[serde(default)]
    pub returned_metrics: Vec<(String, f64)>,
    /// Every metric, in the order the run report shows them.
    pub metrics: Vec<(String, f64)>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub decision: Option<GateOutcome>,
    #[serde(default)]
    pub failure_kind: Option<String>,
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub reused: Option<Reuse>,
}

/// A step's log as kept: at most [`MAX_KEPT_LOG_LINES`], the rest counted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogRecord {
    pub lines: Vec<LogLine>,
    /// Lines dropped from the middle to stay within the bound.
    pub dropped: u64,
}

/// The most log lines kept per step: the first half and the last half of a longer log.
pub const MAX_KEPT_LOG_LINES: usize = 2_000;

impl LogRecord {
    pub fn bounded(mut lines: Vec<LogLine>) -> LogRecord {
        if lines.len() <= MAX_KEPT_LOG_LINES {
            return LogRecord { lines, dropped: 0 };
        }
        let dropped = lines.len() - MAX_KEPT_LOG_LINES;
        lines.drain(MAX_KEPT_LOG_LINES / 2..MAX_KEPT_LOG_LINES / 2 + dropped);
        LogRecord {
            lines,
            dropped: dropped as u64,
        }
    }
}

/// A step-cache entry: the execution whose outputs a matching step reuses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub run: u64,
    pub index: u32,
}

/// Summary statistics of one training feature, kept with a model version so later drift
/// checks have a reference without the training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FeatureStats {
    Numeric {
        count: u64,
        nulls: u64,
        mean: f64,
        std: f64,
        min: f64,
        max: f64,
        /// The reference deciles (`quantile(x, k/10)`, k = 0..10, linear interpolation), the
        /// PSI bin edges of the drift conventions.
        deciles: Vec<f64>,
    },
    Categorical {
        count: u64,
        nulls: u64,
        /// Counts per category (at most [`MAX_CATEGORIES`], the rest summed under `other`).
        counts: BTreeMap<String, u64>,
        #[serde(default)]
        other: u64,
    },
}

/// Categories kept per categorical feature's statistics.
pub const MAX_CATEGORIES: usize = 1_000;

/// The data a model version was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    /// The digest of the training table (an artifact).
    pub digest: String,
    /// The files it came from (the run's datasets upstream of it).
    pub sources: Vec<DatasetRecord>,
    pub rows: u64,
    pub schema: Vec<(String, ColumnType)>,
}

/// A plugin that took part in producing a model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub step: String,
    pub kind: String,
    pub plugin: String,
    pub digest: String,
    pub status: StepStatus,
}

/// Version N of a named model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: u32,
    pub created: Millis,
    /// The ONNX file's digest.
    pub onnx: String,
    /// The model document's digest (ONNX digest + metadata).
    pub model_digest: String,
    pub features: Vec<String>,
    pub target: String,
    pub task: String,
    #[serde(default)]
    pub class_labels: Vec<String>,
    /// The evaluation's metrics (and the trainer's), in order.
    pub metrics: Vec<(String, f64)>,
    /// The trainer's configuration and the model's own properties.
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub training_data: Option<TrainingData>,
    /// Reference statistics of the training features, by feature name.
    #[serde(default)]
    pub reference: BTreeMap<String, FeatureStats>,
    pub run: u64,
    pub step: String,
    /// The step that trained the model.
    pub trained_by: String,
    /// Every step upstream of the registration, with its plugin.
    pub lineage: Vec<Lineage>,
    /// The deployment gate's decision, when one was given.
    #[serde(default)]
    pub decision: Option<GateOutcome>,
    /// What serving applies to raw rows before the model: the preprocessing its workflow's
    /// transformers fitted. `None` for a model that takes its features as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::pipeline::Pipeline>,
}

/// Who moved an alias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Actor {
    /// A workflow's registration step.
    Run { run: u64, step: String },
    /// A command (`wflow models promote` / `rollback`), by this user.
    Command { command: String, user: String },
    /// A model server applying its rollout policy (`automatic rollback`, `canary promotion`).
    Policy { action: String },
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Run { run, step } => write!(f, "run {run} (step `{step}`)"),
            Actor::Command { command, user } => write!(f, "`{command}` by {user}"),
            Actor::Policy { action } => write!(f, "the rollout policy ({action})"),
        }
    }
}

/// One move of an alias, kept forever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AliasEvent {
    pub model: String,
    pub alias: String,
    /// Its sequence number among the model's events, from 1.
    pub seq: u64,
    pub at: Millis,
    pub from: Option<u32>,
    pub to: Option<u32>,
    pub reason: String,
    pub actor: Actor,
    /// Whether this move was a rollback (so a later rollback skips past it).
    #[serde(default)]
    pub rollback: bool,
}
