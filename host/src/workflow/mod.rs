//! Workflow files: TOML text in, a validated [`Workflow`] (a DAG of steps) or every problem out.
//!
//! [`parse`] takes the text of a workflow file and the path it was read from, and returns either
//! a [`Workflow`] whose steps are in a deterministic topological order, or [`Diagnostics`]
//! listing *all* the problems found, each at `file:line:col`. Every value the caller may want
//! to complain about later keeps its [`Span`], so the caller's own findings look the same.
//!
//! This module deliberately does no IO (no file reads, no existence checks) and imports neither
//! tokio nor wasmtime. It does not know which plugins exist, which input slots and outputs a
//! plugin kind has, or what configuration a plugin accepts: the caller checks those with the
//! spans kept here ([`Step::uses_span`], [`Input::span`], [`Step::config_key_spans`]...), pushing
//! onto [`Workflow::diagnostics`].
//!
//! # The file format
//!
//! ```toml
//! # Run: cargo run --release -- run workflows/breast-cancer.toml
//! [workflow]
//! name = "breast-cancer"                  # required; [a-z0-9][a-z0-9-_]*
//! description = "Train and gate a classifier"   # optional
//! concurrency = 4                         # optional, steps run at once; default: number of CPUs
//! require_signed = false                  # optional; true: every non-built-in plugin must carry
//!                                         #   a trusted publisher's signature
//!
//! [defaults]                              # optional; a step's own values override these
//! timeout = "5m"                          # durations: "30s", "5m", "1h 30m", "250ms"
//! memory = "512MiB"                       # sizes: KiB/MiB/GiB/TiB (1024-based),
//! max_output = "256MiB"                   #   KB/MB/GB/TB (1000-based), B, or an integer of bytes
//! retries = { count = 0, backoff = "200ms", max_backoff = "30s" }
//!
//! [datasets.cancer]                       # names follow the same rule as step ids
//! path = "data/breast_cancer.csv"         # relative to this file's directory
//! types = { malignant = "integer" }       # optional: float | integer | text | boolean
//!
//! [steps.validate]
//! uses = "schema-check"                   # a built-in plugin ([a-z0-9-]+) or a .wasm path
//! inputs = { data = "cancer" }            # slot -> "DATASET" or "STEP.OUTPUT"
//! with = { min_rows = 100, target = "malignant" }   # the plugin's configuration, any table
//!
//! [steps.split]
//! uses = "train-test-split"
//! inputs = { data = "cancer" }
//! needs = ["validate"]                    # run after these steps even without data between them
//! with = { test_fraction = 0.2, seed = 42 }
//!
//! [steps.train]
//! uses = "logistic-regression"
//! inputs = { data = "split.train" }       # output `train` of step `split`
//! target = "malignant"                    # the column to predict, for trainers
//! timeout = "2m"                          # limits: timeout, memory, max_output, retries
//! memory = "256MiB"
//! retries = { count = 2, backoff = "100ms" }   # max_backoff comes from [defaults]
//!
//! [steps.custom-check]
//! uses = "plugins/custom_check.wasm"      # relative to this file's directory; or from a registry:
//!                                         #   "oci://HOST/REPO:TAG" or "oci://HOST/REPO@sha256:..."
//! inputs = { model = "train.model", data = "split.test" }
//! grants = { read = ["data/extra"], write = ["out"], env = ["HOME"], network = false }
//! cache = false                           # never reuse an earlier result (default: true)
//!
//! [steps.champion]
//! uses = "load-model"                     # the host's step reading the model registry
//! with = { name = "breast-cancer", alias = "champion" }
//!
//! [steps.register]
//! uses = "register-model"                 # the host's registration step (see `engine::plan`)
//! inputs = { model = "train.model", data = "split.train" }   # also: evaluation, decision
//! with = { name = "breast-cancer" }
//! ```
//!
//! Rules checked here:
//! - Step ids and dataset names match `[a-z0-9][a-z0-9-_]*`; a dataset and a step may not share
//!   a name. Required keys: `workflow.name`, a dataset's `path`, a step's `uses`.
//! - Unknown keys are errors at every level (with the closest known key suggested), so a typo
//!   never silently falls back to a default.
//! - An input `"x"` names dataset `x`; `"x.y"` names output `y` of step `x`, which must exist.
//!   Whether `x` really has an output `y` depends on its plugin and is left to the caller.
//! - `needs` and step-output inputs form the dependency graph, which must be acyclic; a cycle is
//!   reported as `a -> b -> a`, each step needing the next.
//! - Limits: `timeout` above zero, `memory` between 1 MiB and 4 GiB, `retries.count` at most 100.
//!   Unset limits come from `[defaults]`, then from the built-in defaults ([`Limits::default`],
//!   [`Retries::default`]); `retries` is merged key by key.
//! - Paths (`path`, a `.wasm` `uses`, `grants.read`/`write`) are joined to the directory of the
//!   file; nothing checks that they exist.
//!
//! - TOML syntax errors (including duplicate keys and tables) are reported on their own:
//!   checking a half-parsed document would bury them under follow-up errors.
//!
//! Steps are returned so that each comes after the steps it needs, ties broken by file order.

mod check;
pub mod cron;
mod diagnostics;
mod graph;
#[cfg(test)]
mod tests;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use diagnostics::{Diagnostic, Diagnostics, Span, line_col};
pub use units::{parse_duration, parse_size};

/// Parses and validates the workflow file at `file` whose text is `source`.
///
/// `file` is only used in messages and to resolve relative paths; nothing is read from disk.
/// On failure, the diagnostics hold every problem found, sorted by position.
pub fn parse(file: &Path, source: &str) -> Result<Workflow, Diagnostics> {
    check::parse(file, source)
}

/// A validated workflow: its datasets, and its steps in an order they can run in.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// The workflow's id, `[a-z0-9][a-z0-9-_]*`.
    pub name: String,
    /// A human description, if any.
    pub description: Option<String>,
    /// How many steps may run at once; `None` means one per CPU.
    pub concurrency: Option<usize>,
    /// The path of the file, as given to [`parse`].
    pub file: PathBuf,
    /// The directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// The text of the file, which every [`Span`] points into.
    pub source: Arc<str>,
    /// The datasets, in file order.
    pub datasets: Vec<Dataset>,
    /// The steps, each after every step it needs; ties keep file order.
    pub steps: Vec<Step>,
    /// Runs of this workflow the daemon lets run at once.
    pub max_active_runs: usize,
    /// What a trigger does while `max_active_runs` runs are running.
    pub overlap: Overlap,
    /// What starts the workflow in the daemon, besides asking for it (`wflow trigger`).
    pub triggers: Vec<Trigger>,
    /// Refuse plugins (other than the built-in ones) without a trusted publisher's signature.
    pub require_signed: bool,
}

/// What a trigger does when the workflow already has `max_active_runs` runs running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// `"allow"`: the run waits its turn (in a bounded queue).
    #[default]
    Allow,
    /// `"forbid"`: the trigger is skipped.
    Forbid,
    /// `"replace"`: the oldest running run is cancelled and the new one starts.
    Replace,
}

impl Overlap {
    pub fn name(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Forbid => "forbid",
            Overlap::Replace => "replace",
        }
    }
}

/// A trigger, declared as `[triggers.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// Its name, `[a-z0-9][a-z0-9-_]*`.
    pub name: String,
    /// The name in the source.
    pub span: Span,
    pub kind: TriggerKind,
    /// The least time between two runs it starts, so a noisy signal cannot start a storm.
    pub cooldown: Duration,
}

/// What fires a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerKind {
    /// `cron = "0 2 * * *"`: the slots of a cron schedule in a time zone.
    Cron {
        /// The expression as written (5 fields as crontab reads them, 6 with seconds first, or
        /// an alias such as `@daily`).
        expression: String,
        /// The parsed schedule.
        schedule: cron::Cron,
        /// An IANA time zone name (`UTC` unless given).
        timezone: String,
        /// What happens to slots missed while the daemon was down.
        catch_up: CatchUp,
        /// With `catch_up = "all"`, at most this many missed slots run.
        max_catch_up: u32,
    },
    /// `files = "incoming/*.csv"`: new or changed files matching a glob.
    Files {
        /// The glob, joined to the workflow's directory.
        pattern: PathBuf,
        /// The dataset the new data replaces in the run.
        dataset: String,
        /// Rows the new files must hold together before a run starts.
        min_new_rows: u64,
        /// How often the files are listed when file events are not available or missed.
        poll: Duration,
    },
    /// `drift = "MODEL"`: the served model's live inputs drifted from its training data.
    Drift { model: String, data: LiveData },
    /// `decay = "MODEL"`: the served model's live quality crossed a threshold.
    Decay {
        model: String,
        /// `accuracy` or `f1_macro` (decayed below the threshold), `rmse` or `mae` (above).
        metric: String,
        threshold: f64,
        /// Rows with feedback the quality must be computed over.
        min_rows: usize,
        /// Roll the champion back to its previous version at once.
        rollback: bool,
        data: LiveData,
    },
}

/// The recent labelled traffic a drift or decay trigger's run trains on.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveData {
    /// The dataset the recent data replaces (or is appended to).
    pub dataset: String,
    /// Whether the recent rows are appended to the dataset's own file instead of replacing it.
    pub append: bool,
    /// Labelled rows needed before a run starts.
    pub min_rows: usize,
    /// The latest labelled rows the run is given (at most the 20,000 the server keeps).
    pub recent_rows: usize,
}

/// What happens to cron slots missed while the daemon was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// `"none"`: missed slots are skipped.
    None,
    /// `"latest"`: the latest missed slot runs once.
    Latest,
    /// `"all"`: every missed slot runs, up to `max_catch_up`.
    All,
}

impl CatchUp {
    pub fn name(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        }
    }
}

impl TriggerKind {
    /// `cron`, `files`, `drift` or `decay`.
    pub fn name(&self) -> &'static str {
        match self {
            TriggerKind::Cron { .. } => "cron",
            TriggerKind::Files { .. } => "files",
            TriggerKind::Drift { .. } => "drift",
            TriggerKind::Decay { .. } => "decay",
        }
    }
}

impl Workflow {
    /// An empty list of problems about this workflow's file, for checks made after parsing.
    pub fn diagnostics(&self) -> Diagnostics {
        Diagnostics::new(self.file.clone(), self.source.clone())
    }

    /// The step with id `id`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// The dataset named `name`.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|dataset| dataset.name == name)
    }
}

/// A data file the workflow's steps read, declared as `[datasets.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The name inputs refer to it by.
    pub name: String,
    /// The file, joined to the workflow's directory.
    pub path: PathBuf,
    /// Column types overriding inference, by column name.
    pub types: BTreeMap<String, ColumnType>,
    /// The `path` value in the source.
    pub span: Span,
}

/// The type of a dataset column, as written in `types = { col = "integer" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnType {
    /// `"float"`
    Float,
    /// `"integer"`
    Integer,
    /// `"text"`
    Text,
    /// `"boolean"`
    Boolean,
}

impl ColumnType {
    /// Every column type, in the order they are listed in messages.
    pub const ALL: [ColumnType; 4] = [Self::Float, Self::Integer, Self::Text, Self::Boolean];

    /// The name used in workflow files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::Text => "text",
            Self::Boolean => "boolean",
        }
    }
}

/// One step: a plugin run on inputs with a configuration, under limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The step's id, `[a-z0-9][a-z0-9-_]*`.
    pub id: String,
    /// The id in the source: the key in `[steps.ID]` or `ID = { ... }`.
    pub span: Span,
    /// The plugin to run.
    pub uses: PluginRef,
    /// The `uses` value in the source.
    pub uses_span: Span,
    /// Where each input slot's data comes from, by slot name.
    pub inputs: BTreeMap<String, Input>,
    /// The `with` table as a JSON object (`{}` when absent); TOML datetimes become strings.
    pub config: serde_json::Value,
    /// The `with` value in the source, or [`Step::span`] when there is none.
    pub config_span: Span,
    /// The span of every value inside `config`, by JSON pointer (`""` for the whole table,
    /// `"/min_rows"`, `"/ranges/age/min"`, `"/columns/0"`), to place schema errors.
    pub config_key_spans: BTreeMap<String, Span>,
    /// The steps this one runs after: its `needs` plus the steps its inputs come from,
    /// deduplicated and sorted.
    pub needs: Vec<String>,
    /// The column to predict, for trainers.
    pub target: Option<String>,
    /// Resource limits, with defaults merged in.
    pub limits: Limits,
    /// What to do when the step fails, with defaults merged in.
    pub retries: Retries,
    /// Whether a previous result for identical inputs may be reused.
    pub cache: bool,
    /// What the sandbox lets the plugin touch beyond its inputs.
    pub grants: Grants,
}

/// The plugin a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    /// A plugin shipped with wflow, by name (`schema-check`).
    Builtin(String),
    /// A component file, joined to the workflow's directory.
    Path(PathBuf),
    /// A component in an OCI registry (`oci://HOST/REPO:TAG`, `...@sha256:DIGEST`), pinned
    /// in the lock file next to the workflow at its first resolution.
    Oci(crate::oci::Reference),
}

/// Where one input slot of a step gets its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The dataset or step output.
    pub source: InputSource,
    /// The reference string in the source.
    pub span: Span,
    /// The slot name in the source, for complaints about the slot itself.
    pub slot_span: Span,
}

/// A dataset or a step output, as named by an input reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// `"name"`: a dataset.
    Dataset(String),
    /// `"step.output"`: an output of another step.
    StepOutput {
        /// The producing step's id.
        step: String,
        /// The output's name, checked by the caller against the step's plugin kind.
        output: String,
    },
}

impl std::fmt::Display for InputSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSource::Dataset(name) => f.write_str(name),
            InputSource::StepOutput { step, output } => write!(f, "{step}.{output}"),
        }
    }
}

/// Resource limits of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one attempt may take.
    pub timeout: Duration,
    /// Linear memory the plugin may use, in bytes.
    pub memory: u64,
    /// Bytes of output (artifacts, tables, logs) one attempt may produce.
    pub max_output: u64,
}

impl Limits {
    /// The smallest `memory` a workflow may set: less cannot even instantiate a component.
    pub const MIN_MEMORY: u64 = 1 << 20;
    /// The largest `memory` a workflow may set: the 32-bit linear memory of wasm32 guests.
    pub const MAX_MEMORY: u64 = 4 << 30;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5 * 60),
            memory: 512 << 20,
            max_output: 256 << 20,
        }
    }
}

/// How a failed step is retried: `count` more attempts, waiting `backoff`, doubling up to
/// `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Attempts after the first; 0 means no retry.
    pub count: u32,
    /// The wait before the first retry.
    pub backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
}

impl Retries {
    /// The largest `count` a workflow may set.
    pub const MAX_COUNT: u32 = 100;
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            count: 0,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Capabilities granted to a step's sandbox; everything else is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Directories or files the plugin may read, joined to the workflow's directory.
    pub read: Vec<PathBuf>,
    /// Directories or files the plugin may write, joined to the workflow's directory.
    pub write: Vec<PathBuf>,
    /// Environment variables the plugin may see.
    pub env: Vec<String>,
    /// Whether the plugin may open network connections.
    pub network: bool,
}
