//! Turns a parsed workflow into a runnable plan, checking everything that needs IO or plugins
//! before anything runs: dataset files readable as CSV, plugins found and loadable, each input
//! of the right type for its plugin's kind, configurations valid against the plugins' schemas,
//! requested capabilities granted. Every problem is reported at once, at its place in the file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::journal::RegisterAliases;
use crate::oci::{self, LockFile};
use crate::plugin::signing::Signature;
use crate::plugin::{self, Capabilities, DirGrant, Limits, Plugin, Runtime, StepKind, kind_name};
use crate::table::{self, Table};
use crate::workflow::{self, Diagnostics, InputSource, PluginRef, Step, Workflow};

/// The built-in plugins compiled into this binary.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

    /// The component bytes of a built-in plugin.
    pub fn get(name: &str) -> Option<&'static [u8]> {
        BUILTIN_PLUGINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| *bytes)
    }

    /// The names of the built-in plugins.
    pub fn names() -> impl Iterator<Item = &'static str> {
        BUILTIN_PLUGINS.iter().map(|(name, _)| *name)
    }
}

/// What flows between steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Table,
    Report,
    Model,
    Evaluation,
    Decision,
    Drift,
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValueType::Table => "a table",
            ValueType::Report => "a report",
            ValueType::Model => "a model",
            ValueType::Evaluation => "an evaluation",
            ValueType::Decision => "a decision",
            ValueType::Drift => "a drift result",
        })
    }
}

/// The fixed output of each kind; transformers name their outputs themselves (all tables).
pub fn fixed_output(kind: StepKind) -> Option<(&'static str, ValueType)> {
    match kind {
        StepKind::Validator => Some(("report", ValueType::Report)),
        StepKind::Transformer => None,
        StepKind::Trainer => Some(("model", ValueType::Model)),
        StepKind::Evaluator => Some(("evaluation", ValueType::Evaluation)),
        StepKind::Deployer => Some(("decision", ValueType::Decision)),
        StepKind::DriftCheck => Some(("drift", ValueType::Drift)),
    }
}

/// The input slots of each kind: (name, type, required). Transformers take any named tables.
pub fn input_slots(kind: StepKind) -> &'static [(&'static str, ValueType, bool)] {
    match kind {
        StepKind::Validator => &[("data", ValueType::Table, true)],
        StepKind::Transformer => &[],
        StepKind::Trainer => &[("data", ValueType::Table, true)],
        StepKind::Evaluator => &[
            ("model", ValueType::Model, true),
            ("data", ValueType::Table, true),
        ],
        StepKind::Deployer => &[
            ("candidate", ValueType::Evaluation, true),
            ("champion", ValueType::Evaluation, false),
        ],
        StepKind::DriftCheck => &[
            ("reference", ValueType::Table, true),
            ("current", ValueType::Table, true),
        ],
    }
}

/// The `uses` of the host's own step that registers a model version in the store.
pub const REGISTER_STEP: &str = "register-model";

/// The input slots of the registration step: the model, and what its version records.
pub const REGISTER_SLOTS: &[(&str, ValueType, bool)] = &[
    ("model", ValueType::Model, true),
    ("data", ValueType::Table, false),
    ("evaluation", ValueType::Evaluation, false),
    ("decision", ValueType::Decision, false),
];

/// The `uses` of the host's own step that reads a model version from the registry, so a
/// workflow can evaluate the current champion on the same holdout as its candidate.
pub const LOAD_MODEL_STEP: &str = "load-model";

/// The configuration of a `load-model` step: a model by alias (default `champion`) or version.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadModelConfig {
    /// The registered model's name.
    pub name: String,
    /// The alias to read [default: `champion`, unless `version` is given].
    #[serde(default)]
    pub alias: Option<String>,
    /// A version number instead of an alias.
    #[serde(default)]
    pub version: Option<u32>,
}

impl LoadModelConfig {
    /// `NAME@ALIAS` or `NAME@VERSION`.
    pub fn reference(&self) -> String {
        match (self.version, &self.alias) {
            (Some(version), _) => format!("{}@{version}", self.name),
            (None, Some(alias)) => format!("{}@{alias}", self.name),
            (None, None) => format!("{}@champion", self.name),
        }
    }
}

/// The configuration of a `register-model` step.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// The registered model's name [default: the workflow's name].
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub aliases: RegisterAliases,
    /// The steps whose declared preprocessing is served with the model, in order [default:
    /// every transformer between the raw dataset and the trainer]; `[]` serves the model's
    /// features as they are.
    #[serde(default)]
    pub pipeline: Option<Vec<String>>,
}

/// What executes a step.
#[derive(Clone, Debug)]
pub enum Runner {
    /// A plugin, in the sandbox.
    Plugin(Arc<Plugin>),
    /// The host itself, registering the model in the store.
    Register(RegisterConfig),
    /// The host itself, reading a model version from the store's registry.
    LoadModel(LoadModelConfig),
}

/// What kind of step produces a value, as far as checking inputs needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    Plugin(StepKind),
    Register,
    LoadModel,
}

impl Runner {
    pub fn producer(&self) -> Producer {
        match self {
            Runner::Plugin(plugin) => Producer::Plugin(plugin.kind()),
            Runner::Register(_) => Producer::Register,
            Runner::LoadModel(_) => Producer::LoadModel,
        }
    }
}

/// A step ready to run: its plugin loaded, limits and grants resolved.
#[derive(Debug)]
pub struct PlannedStep {
    pub step: Step,
    pub runner: Runner,
    pub limits: Limits,
    pub capabilities: Capabilities,
}

impl PlannedStep {
    pub fn plugin(&self) -> Option<&Arc<Plugin>> {
        match &self.runner {
            Runner::Plugin(plugin) => Some(plugin),
            Runner::Register(_) | Runner::LoadModel(_) => None,
        }
    }

    /// The plugin kind, or `None` for the host's own steps.
    pub fn kind(&self) -> Option<StepKind> {
        self.plugin().map(|p| p.kind())
    }

    pub fn kind_label(&self) -> &'static str {
        match self.runner.producer() {
            Producer::Plugin(kind) => kind_name(kind),
            Producer::Register => "register",
            Producer::LoadModel => "load-model",
        }
    }

    /// `name@version` of what runs the step.
    pub fn plugin_label(&self) -> String {
        let host = env!("CARGO_PKG_VERSION");
        match &self.runner {
            Runner::Plugin(plugin) => format!("{}@{}", plugin.info.name, plugin.info.version),
            Runner::Register(_) => format!("{REGISTER_STEP}@{host}"),
            Runner::LoadModel(_) => format!("{LOAD_MODEL_STEP}@{host}"),
        }
    }

    /// The digest of what runs the step: the component's, or the host version for its own steps.
    pub fn plugin_digest(&self) -> String {
        match &self.runner {
            Runner::Plugin(plugin) => format!("sha256:{}", plugin.digest),
            Runner::Register(_) | Runner::LoadModel(_) => {
                format!("wflow:{}", env!("CARGO_PKG_VERSION"))
            }
        }
    }

    /// Whether the step's input `slot` may be absent (when its producer had nothing to give).
    pub fn optional_slot(&self, slot: &str) -> bool {
        let slots: &[(&str, ValueType, bool)] = match self.runner.producer() {
            Producer::Plugin(kind) => input_slots(kind),
            Producer::Register => REGISTER_SLOTS,
            Producer::LoadModel => &[],
        };
        slots
            .iter()
            .any(|(name, _, required)| *name == slot && !required)
    }

    /// Whether an earlier identical execution may stand in for this step: a plugin step with
    /// the cache on and no grants (a granted directory, variable or network can change its
    /// result without changing its inputs).
    pub fn cacheable(&self) -> bool {
        matches!(self.runner, Runner::Plugin(_))
            && self.step.cache
            && self.capabilities == Capabilities::default()
    }
}

/// A workflow whose every step can run.
#[derive(Debug)]
pub struct Plan {
    pub workflow: Workflow,
    pub datasets: HashMap<String, Table>,
    /// In the workflow's topological order.
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.step.id == id)
    }
}

/// The slots of a step's inputs: by plugin kind, or the host step's.
fn slots_of(producer: Producer) -> &'static [(&'static str, ValueType, bool)] {
    match producer {
        Producer::Plugin(kind) => input_slots(kind),
        Producer::Register => REGISTER_SLOTS,
        Producer::LoadModel => &[],
    }
}

/// Reads a plugin's component bytes.
fn plugin_bytes(reference: &PluginRef) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    match reference {
        PluginRef::Builtin(name) => builtin::get(name)
            .map(std::borrow::Cow::Borrowed)
            .ok_or_else(|| {
                format!(
                    "unknown plugin `{name}` (built-in plugins: {})",
                    builtin::names().collect::<Vec<_>>().join(", ")
                )
            }),
        PluginRef::Path(path) => std::fs::read(path)
            .map(std::borrow::Cow::Owned)
            .map_err(|err| format!("cannot read plugin {}: {err}", path.display())),
        PluginRef::Oci(reference) => Err(format!("{reference} is resolved by fetch_plugin")),
    }
}

/// A plugin's component bytes, wherever it lives, after the signature policy: built-in
/// plugins are trusted; a file's signature is `FILE.sig` beside it; an OCI plugin is resolved
/// through the lock file and the plugin cache (see `oci`).
async fn fetch_plugin(
    reference: &PluginRef,
    workflow: &Workflow,
    runtime: &Runtime,
    lock: &mut Option<Result<LockFile, String>>,
) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    let sources = runtime.sources();
    let require = sources.require_signed || workflow.require_signed;
    match reference {
        PluginRef::Builtin(_) => plugin_bytes(reference),
        PluginRef::Path(path) => {
            let bytes = plugin_bytes(reference)?;
            let signature_file = signature_file(path);
            let signature = match std::fs::read(&signature_file) {
                Ok(text) => Some(
                    Signature::from_json(&text)
                        .map_err(|why| format!("{}: {why}", signature_file.display()))?,
                ),
                Err(_) => None,
            };
            oci::check_signature(
                &format!("plugin {}", path.display()),
                &bytes,
                signature.as_ref(),
                require,
                &sources.trust_dir,
            )?;
            Ok(bytes)
        }
        PluginRef::Oci(oci_reference) => {
            let mut file = match lock
                .take()
                .unwrap_or_else(|| LockFile::read(&LockFile::path_for(&workflow.file)))
            {
                Ok(file) => file,
                Err(err) => {
                    *lock = Some(Err(err.clone()));
                    return Err(err);
                }
            };
            let (sources, oci_reference) = (sources.clone(), oci_reference.clone());
            let (file, resolved) = tokio::task::spawn_blocking(move || {
                let resolved = oci::resolve(
                    &oci_reference.to_string(),
                    &oci_reference,
                    &mut file,
                    &sources,
                    &oci::Client::new(),
                );
                (file, resolved)
            })
            .await
            .map_err(|err| format!("resolving the plugin: {err}"))?;
            *lock = Some(Ok(file));
            let resolved = resolved?;
            oci::check_signature(
                &format!("plugin {}", resolved.reference),
                &resolved.wasm,
                resolved.signature.as_ref(),
                require,
                &runtime.sources().trust_dir,
            )?;
            Ok(std::borrow::Cow::Owned(resolved.wasm))
        }
    }
}

/// `plugin.wasm` -> `plugin.wasm.sig`.
pub fn signature_file(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    name.into()
}

/// Where a granted directory appears inside the sandbox: `/` plus its path relative to the
/// workflow's directory (`data/extra` -> `/data/extra`), or its absolute path when outside it.
fn guest_path(base_dir: &Path, host: &Path) -> String {
    let relative = host.strip_prefix(base_dir).unwrap_or(host);
    let text = relative.to_string_lossy().replace('\\', "/");
    if text.starts_with('/') {
        text
    } else {
        format!("/{text}")
    }
}

fn capabilities(workflow: &Workflow, step: &Step) -> Capabilities {
    let grants = &step.grants;
    let mut dirs: Vec<DirGrant> = grants
        .read
        .iter()
        .map(|host| DirGrant {
            guest: guest_path(&workflow.base_dir, host),
            host: host.clone(),
            writable: false,
        })
        .collect();
    dirs.extend(grants.write.iter().map(|host| DirGrant {
        guest: guest_path(&workflow.base_dir, host),
        host: host.clone(),
        writable: true,
    }));
    let env = grants
        .env
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
        .collect();
    Capabilities {
        dirs,
        env,
        network: grants.network,
    }
}

/// The type of value an input reference yields, if it can be known before running.
fn source_type(
    source: &InputSource,
    kinds: &BTreeMap<String, Producer>,
) -> Result<ValueType, String> {
    match source {
        InputSource::Dataset(_) => Ok(ValueType::Table),
        InputSource::StepOutput { step, output } => {
            let Some(&producer) = kinds.get(step) else {
                // The producing step's plugin failed to load; that is reported on its own.
                return Err(String::new());
            };
            let kind = match producer {
                Producer::Plugin(kind) => kind,
                Producer::Register => {
                    return Err(format!(
                        "step `{step}` registers a model and has no outputs; to run after it, use `needs = [\"{step}\"]`"
                    ));
                }
                Producer::LoadModel if output == "model" => return Ok(ValueType::Model),
                Producer::LoadModel => {
                    return Err(format!(
                        "step `{step}` loads a model and has one output, `{step}.model`; it has no output `{output}`"
                    ));
                }
            };
            match fixed_output(kind) {
                None => Ok(ValueType::Table),
                Some((name, ty)) if name == output => Ok(ty),
                Some((name, _)) => Err(format!(
                    "step `{step}` is a {} and has one output, `{step}.{name}`; it has no output `{output}`",
                    kind_name(kind)
                )),
            }
        }
    }
}

fn column_type(kind: workflow::ColumnType) -> table::ColumnType {
    match kind {
        workflow::ColumnType::Float => table::ColumnType::Float,
        workflow::ColumnType::Integer => table::ColumnType::Integer,
        workflow::ColumnType::Text => table::ColumnType::Text,
        workflow::ColumnType::Boolean => table::ColumnType::Boolean,
    }
}

/// Checks `workflow` against the files and plugins it names and loads them.
pub async fn plan(workflow: Workflow, runtime: &Runtime) -> Result<Plan, Diagnostics> {
    let mut diagnostics = workflow.diagnostics();

    let mut datasets = HashMap::new();
    for dataset in &workflow.datasets {
        let types = dataset
            .types
            .iter()
            .map(|(name, kind)| (name.clone(), column_type(*kind)))
            .collect();
        match table::csv::read(&dataset.path, &types) {
            Ok(table) => {
                datasets.insert(dataset.name.clone(), table);
            }
            Err(err) => diagnostics.push(
                dataset.span.clone(),
                format!("dataset `{}`: {err}", dataset.name),
            ),
        }
    }

    let mut plugins: BTreeMap<String, Runner> = BTreeMap::new();
    // Read when the first OCI plugin is met; written back with the pins found.
    let mut lock: Option<Result<LockFile, String>> = None;
    // Many steps often use the same plugin: read, hash and load each reference once.
    let mut by_reference: HashMap<PluginRef, Result<Arc<Plugin>, String>> = HashMap::new();
    for step in &workflow.steps {
        if let PluginRef::Builtin(name) = &step.uses
            && (name == REGISTER_STEP || name == LOAD_MODEL_STEP)
        {
            let runner = if name == REGISTER_STEP {
                serde_json::from_value::<RegisterConfig>(step.config.clone()).map(Runner::Register)
            } else {
                serde_json::from_value::<LoadModelConfig>(step.config.clone())
                    .map(Runner::LoadModel)
            };
            match runner {
                Ok(Runner::LoadModel(config))
                    if config.alias.is_some() && config.version.is_some() =>
                {
                    diagnostics.push(
                        step.config_span.clone(),
                        format!(
                            "step `{}`: configuration: give `alias` or `version`, not both",
                            step.id
                        ),
                    )
                }
                Ok(Runner::Register(config))
                    if config.pipeline.as_ref().is_some_and(|names| {
                        names
                            .iter()
                            .any(|n| !workflow.steps.iter().any(|s| &s.id == n))
                    }) =>
                {
                    let unknown: Vec<String> = config
                        .pipeline
                        .iter()
                        .flatten()
                        .filter(|n| !workflow.steps.iter().any(|s| &s.id == *n))
                        .map(|n| format!("`{n}`"))
                        .collect();
                    diagnostics.push(
                        step.config_span.clone(),
                        format!(
                            "step `{}`: configuration: `pipeline` names {}, which {} no step of the workflow",
                            step.id,
                            unknown.join(", "),
                            if unknown.len() == 1 { "is" } else { "are" }
                        ),
                    )
                }
                Ok(runner) => {
                    plugins.insert(step.id.clone(), runner);
                }
                Err(err) => diagnostics.push(
                    step.config_span.clone(),
                    format!("step `{}`: configuration: {err}", step.id),
                ),
            }
            continue;
        }
        let loaded = match by_reference.get(&step.uses) {
            Some(loaded) => loaded.clone(),
            None => {
                let loaded = match fetch_plugin(&step.uses, &workflow, runtime, &mut lock).await {
                    Ok(bytes) => runtime.load(&bytes).await.map_err(|err| err.to_string()),
                    Err(err) => Err(err),
                };
                by_reference.insert(step.uses.clone(), loaded.clone());
                loaded
            }
        };
        match loaded {
            Ok(plugin) => {
                plugins.insert(step.id.clone(), Runner::Plugin(plugin));
            }
            Err(err) => {
                diagnostics.push(step.uses_span.clone(), format!("step `{}`: {err}", step.id))
            }
        }
    }
    if let Some(Ok(lock)) = &mut lock
        && let Err(err) = lock.save()
    {
        let span = workflow
            .steps
            .iter()
            .find(|s| matches!(s.uses, PluginRef::Oci(_)))
            .map_or(0..0, |s| s.uses_span.clone());
        diagnostics.push(span, format!("cannot write the lock file: {err}"));
    }
    let kinds: BTreeMap<String, Producer> = plugins
        .iter()
        .map(|(id, runner)| (id.clone(), runner.producer()))
        .collect();

    let mut steps = Vec::new();
    for step in &workflow.steps {
        let Some(runner) = plugins.get(&step.id) else {
            continue;
        };
        let producer = kinds[&step.id];
        let slots = slots_of(producer);
        let id = &step.id;
        let (kind, kind_text) = match producer {
            Producer::Plugin(kind) => (Some(kind), kind_name(kind)),
            Producer::Register => (None, "registration step"),
            Producer::LoadModel => (None, "model-loading step"),
        };
        let plugin_name = match runner {
            Runner::Plugin(plugin) => plugin.info.name.clone(),
            Runner::Register(_) => REGISTER_STEP.to_string(),
            Runner::LoadModel(_) => LOAD_MODEL_STEP.to_string(),
        };

        for (slot, input) in &step.inputs {
            let expected = if kind == Some(StepKind::Transformer) {
                Some(ValueType::Table)
            } else {
                slots
                    .iter()
                    .find(|(name, _, _)| name == slot)
                    .map(|(_, ty, _)| *ty)
            };
            let Some(expected) = expected else {
                diagnostics.push(
                    input.span.clone(),
                    format!(
                        "step `{id}`: a {kind_text} has no input `{slot}` (its inputs: {})",
                        slots
                            .iter()
                            .map(|(n, _, _)| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                continue;
            };
            match source_type(&input.source, &kinds) {
                Ok(actual) if actual != expected => diagnostics.push(
                    input.span.clone(),
                    format!(
                        "step `{id}`: input `{slot}` must be {expected}, but it is given {actual}"
                    ),
                ),
                Err(message) if !message.is_empty() => {
                    diagnostics.push(input.span.clone(), format!("step `{id}`: {message}"))
                }
                _ => {}
            }
        }
        for (slot, _, required) in slots {
            if *required && !step.inputs.contains_key(*slot) {
                diagnostics.push(
                    step.span.clone(),
                    format!(
                        "step `{id}`: the {kind_text} `{plugin_name}` needs the input `{slot}`"
                    ),
                );
            }
        }
        if kind == Some(StepKind::Transformer) && step.inputs.is_empty() {
            diagnostics.push(
                step.span.clone(),
                format!("step `{id}`: a transformer needs at least one input table"),
            );
        }
        if kind == Some(StepKind::Trainer) && step.target.is_none() {
            diagnostics.push(
                step.span.clone(),
                format!("step `{id}`: a trainer needs `target`, the column to predict"),
            );
        }

        let problems = match runner {
            Runner::Plugin(plugin) => plugin.check_config(&step.config),
            Runner::Register(_) | Runner::LoadModel(_) => Vec::new(),
        };
        for problem in problems {
            let span = step
                .config_key_spans
                .get(&problem.pointer)
                .cloned()
                .unwrap_or_else(|| step.config_span.clone());
            let place = if problem.pointer.is_empty() {
                String::new()
            } else {
                format!(" at `{}`", problem.pointer)
            };
            diagnostics.push(
                span,
                format!("step `{id}`: configuration{place}: {}", problem.message),
            );
        }

        let capabilities = capabilities(&workflow, step);
        let requested = match runner {
            Runner::Plugin(plugin) => plugin.info.capabilities.as_slice(),
            Runner::Register(_) | Runner::LoadModel(_) => &[],
        };
        let missing = capabilities.missing(requested);
        if !missing.is_empty() {
            diagnostics.push(
                step.span.clone(),
                format!(
                    "step `{id}`: the plugin `{plugin_name}` requests {}, which the step does not grant (add them to `grants`)",
                    missing.join(", ")
                ),
            );
        }
        for name in &step.grants.env {
            if std::env::var_os(name).is_none() {
                diagnostics.push(
                    step.span.clone(),
                    format!(
                        "step `{id}`: grants the environment variable `{name}`, which is not set"
                    ),
                );
            }
        }

        let limits = Limits {
            memory: step.limits.memory,
            timeout: step.limits.timeout,
            max_output: step.limits.max_output,
        };
        steps.push(PlannedStep {
            step: step.clone(),
            runner: runner.clone(),
            limits,
            capabilities,
        });
    }

    if diagnostics.is_empty() {
        Ok(Plan {
            workflow,
            datasets,
            steps,
        })
    } else {
        Err(diagnostics)
    }
}

/// Loads a plugin named like a workflow's `uses` (a built-in name or a .wasm path).
pub async fn load_plugin(runtime: &Runtime, uses: &str) -> anyhow::Result<Arc<Plugin>> {
    let reference = if uses.ends_with(".wasm") || uses.contains('/') {
        PluginRef::Path(uses.into())
    } else {
        PluginRef::Builtin(uses.to_string())
    };
    let bytes = plugin_bytes(&reference).map_err(anyhow::Error::msg)?;
    runtime
        .load(&bytes)
        .await
        .map_err(|err: plugin::Error| anyhow::anyhow!("{uses}: {err}"))
}
