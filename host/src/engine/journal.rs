//! What the engine asks of persistence, as a trait: the engine records each step as it
//! happens, reuses earlier identical executions (the step cache, or the completed steps of the
//! run being resumed), and registers models, without knowing where any of it is kept.
//! `store::RunJournal` implements it on the sled store; a run without a journal persists
//! nothing and caches nothing.
//!
//! Every method does blocking IO; the engine calls them off the async threads.

use super::plan::{LoadModelConfig, PlannedStep};
use super::run::{StepReport, Value};
use crate::plugin::{Evaluation, GateOutcome, LogLine, Model, Output, Report};
use crate::table::Table;

/// An input of a step, by content.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDigest {
    pub slot: String,
    /// `DATASET` or `STEP.OUTPUT`, as the workflow wrote it.
    pub source: String,
    pub digest: String,
}

/// Outputs reused instead of running a step.
#[derive(Clone, Debug)]
pub struct Reused {
    pub output: Output,
    /// The outputs' digests, in the order the engine lists a step's outputs.
    pub digests: Vec<String>,
    /// The metrics and log of the execution reused.
    pub metrics: Vec<(String, f64)>,
    pub log: Vec<LogLine>,
    /// The run that produced them (this run when resuming).
    pub run: u64,
    /// Whether they come from this run (a resumed run's completed step) rather than the cache.
    pub resumed: bool,
}

/// What a registration step hands to the registry.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The registered model's name.
    pub name: String,
    pub model: Model,
    /// The step whose model this is.
    pub trained_by: String,
    /// The training table, its digest and the datasets it came from.
    pub data: Option<(Table, String, Vec<String>)>,
    pub evaluation: Option<Evaluation>,
    pub decision: Option<GateOutcome>,
    /// Plan indexes of every step upstream of the registration.
    pub upstream: Vec<usize>,
    /// Where aliases go for each decision.
    pub aliases: RegisterAliases,
    /// What serving applies to raw rows before the model, when anything.
    pub pipeline: Option<crate::pipeline::Pipeline>,
}

/// The aliases a registration moves.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAliases {
    /// Moved to the new version when the gate decides `promote`.
    #[serde(default = "default_promote_alias")]
    pub promote: String,
    /// Moved to the new version when the gate decides `canary` or `shadow`.
    #[serde(default = "default_candidate_alias")]
    pub candidate: String,
    /// Moved to the new version when no decision is given (none by default).
    #[serde(default)]
    pub always: Option<String>,
}

fn default_promote_alias() -> String {
    "champion".into()
}

fn default_candidate_alias() -> String {
    "challenger".into()
}

impl Default for RegisterAliases {
    fn default() -> RegisterAliases {
        RegisterAliases {
            promote: default_promote_alias(),
            candidate: default_candidate_alias(),
            always: None,
        }
    }
}

/// What a registration did.
#[derive(Clone, Debug)]
pub struct Registered {
    pub version: u32,
    /// The run registered this version before it was interrupted; nothing new was registered.
    pub earlier: Option<u64>,
    /// A finding per alias moved (or not), for the step's report.
    pub report: Report,
}

/// Persistence of one run, as the engine sees it.
pub trait Journal: Send + Sync {
    /// Stores a dataset's table; returns its digest.
    fn dataset(&self, name: &str, table: &Table) -> anyhow::Result<String>;

    /// Outputs of an earlier execution with the same `key` to use instead of running the step:
    /// the resumed run's own completed step, or (when `allow_cache`) the step cache.
    fn reuse(
        &self,
        index: usize,
        planned: &PlannedStep,
        key: &str,
        allow_cache: bool,
    ) -> anyhow::Result<Option<Reused>>;

    /// The step started (or restarted, for a retry).
    fn started(
        &self,
        index: usize,
        planned: &PlannedStep,
        inputs: &[InputDigest],
        key: Option<&str>,
        attempt: u32,
    ) -> anyhow::Result<()>;

    /// Stores a step's outputs; returns their digests, in order.
    fn store_outputs(
        &self,
        index: usize,
        outputs: &[(String, Value)],
    ) -> anyhow::Result<Vec<String>>;

    /// The step ended (succeeded, failed, skipped or reused). `cacheable` says whether later
    /// runs may reuse it.
    fn finished(
        &self,
        index: usize,
        planned: &PlannedStep,
        report: &StepReport,
        returned_metrics: &[(String, f64)],
        cacheable: bool,
    ) -> anyhow::Result<()>;

    /// The model version a `load-model` step names and its number, or `None` when the
    /// registry has no such model, version or alias (yet).
    fn load_model(&self, config: &LoadModelConfig) -> anyhow::Result<Option<(Model, u32)>>;

    /// Registers a model version (the host's `register-model` step).
    fn register(
        &self,
        index: usize,
        planned: &PlannedStep,
        registration: Registration,
    ) -> anyhow::Result<Registered>;
}
