//! Loads plugin components and calls them in a sandbox, under limits.
//!
//! One `Runtime` per process holds the wasmtime `Engine` (with epoch interruption, ticked every
//! 10 ms by a background thread), one `Linker` with WASI and our host interfaces, the
//! compiled-code cache and the plugins loaded so far (by digest). Loading a plugin compiles (or
//! maps from the cache) its component, checks the contract version it was built against,
//! finds its kind from its exports, pre-instantiates it once and calls `describe()`.
//! Every call then gets a fresh `Store` and instance, so nothing leaks between executions.
//!
//! This module knows nothing about workflows: it loads a component, instantiates it and calls
//! an export under limits. A trap, a timeout, a memory cap, a stack overflow or an output flood
//! becomes a `Failure` of that call, never a failure of the process.

mod bindings;
mod cache;
mod host;
mod sandbox;
pub mod signing;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};

pub use bindings::types::{
    Capability, ColumnInfo, Decision, DriftOutcome, Evaluation, FeatureDrift, Finding, GateOutcome,
    Metric, Model, ModelMetadata, PluginInfo, Report, Severity, StepError, StepKind, Task,
};
pub use cache::{CacheOutcome, CompiledCache};
pub use host::inference::model_info;
pub use sandbox::{Capabilities, DirGrant, Limits, MAX_LOG_BYTES};
pub use state::{LogLevel, LogLine, LogSource, ProgressSink};

use crate::table::Table;
use bindings::{deployer, drift_check, evaluator, trainer, transformer, validator};
use state::{Limiter, StepLog, StepState};

/// The version of `wit/` this host implements.
pub const CONTRACT_VERSION: &str = "0.1.3";
/// The WIT package every plugin imports from.
const CONTRACT_PACKAGE: &str = "wflow:plugin";

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "incompatible plugin contract: the plugin was built against {CONTRACT_PACKAGE}@{plugin}, this host implements {CONTRACT_PACKAGE}@{host} ({hint})"
    )]
    IncompatibleContract {
        plugin: semver::Version,
        host: semver::Version,
        hint: &'static str,
    },
    #[error("not a wflow plugin: {0}")]
    NotAPlugin(String),
    #[error("cannot link the plugin: {0}")]
    Link(String),
    #[error(
        "the plugin exports `{exported}` (a {exported_kind} plugin) but describe() says it is a {declared} plugin"
    )]
    KindMismatch {
        exported: &'static str,
        exported_kind: StepKindName,
        declared: StepKindName,
    },
    #[error("describe() failed: {0}")]
    Describe(Failure),
    #[error("the plugin's configuration schema is not a valid JSON Schema: {0}")]
    Schema(String),
}

/// A step kind's name, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepKindName(pub StepKind);

impl std::fmt::Display for StepKindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(kind_name(self.0))
    }
}

/// The kebab-case name of a step kind, as in WIT and workflow files.
pub fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Validator => "validator",
        StepKind::Transformer => "transformer",
        StepKind::Trainer => "trainer",
        StepKind::Evaluator => "evaluator",
        StepKind::Deployer => "deployer",
        StepKind::DriftCheck => "drift-check",
    }
}

/// A deployment decision as people read it: `promote`, `canary 10%`...
pub fn decision_text(decision: &Decision) -> String {
    match decision {
        Decision::Reject => "reject".into(),
        Decision::Shadow => "shadow".into(),
        Decision::Canary(percent) => format!("canary {percent}%"),
        Decision::Promote => "promote".into(),
    }
}

/// Why a plugin call failed. The first three come from the plugin itself; the rest are the
/// sandbox stopping it.
#[derive(Clone, Debug, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Failure {
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("{0}")]
    Failed(String),
    #[error("the plugin panicked: {0}")]
    Panic(String),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error(
        "memory limit exceeded: the plugin tried to grow its memory to {requested} bytes, the limit is {limit}"
    )]
    MemoryLimit { limit: u64, requested: u64 },
    #[error("stack overflow")]
    StackOverflow,
    #[error("output limit exceeded: {0}")]
    OutputLimit(String),
    #[error("capabilities not granted: {0}")]
    NotGranted(String),
    #[error("cannot set up the sandbox: {0}")]
    Sandbox(String),
}

impl Failure {
    /// A short stable name for summaries and machines.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::InvalidConfig(_) => "invalid-config",
            Failure::InvalidInput(_) => "invalid-input",
            Failure::Failed(_) => "failed",
            Failure::Panic(_) => "panic",
            Failure::Trap(_) => "trap",
            Failure::Timeout(_) => "timeout",
            Failure::MemoryLimit { .. } => "memory-limit",
            Failure::StackOverflow => "stack-overflow",
            Failure::OutputLimit(_) => "output-limit",
            Failure::NotGranted(_) => "not-granted",
            Failure::Sandbox(_) => "sandbox",
        }
    }

    /// Whether trying again could help: not for bad configuration or input, nor for refusals.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Failure::InvalidConfig(_)
                | Failure::InvalidInput(_)
                | Failure::NotGranted(_)
                | Failure::Sandbox(_)
        )
    }
}

impl From<StepError> for Failure {
    fn from(err: StepError) -> Failure {
        match err {
            StepError::InvalidConfig(m) => Failure::InvalidConfig(m),
            StepError::InvalidInput(m) => Failure::InvalidInput(m),
            StepError::Failed(m) => Failure::Failed(m),
        }
    }
}

/// What to call, with its inputs.
#[derive(Clone, Debug)]
pub enum Call {
    Validate {
        data: Table,
        config: String,
    },
    Transform {
        inputs: Vec<(String, Table)>,
        config: String,
    },
    Train {
        data: Table,
        target: String,
        config: String,
    },
    Evaluate {
        model: Model,
        data: Table,
        config: String,
    },
    Decide {
        candidate: Evaluation,
        champion: Option<Evaluation>,
        policy: String,
    },
    Check {
        reference: Table,
        current: Table,
        config: String,
    },
}

impl Call {
    pub fn kind(&self) -> StepKind {
        match self {
            Call::Validate { .. } => StepKind::Validator,
            Call::Transform { .. } => StepKind::Transformer,
            Call::Train { .. } => StepKind::Trainer,
            Call::Evaluate { .. } => StepKind::Evaluator,
            Call::Decide { .. } => StepKind::Deployer,
            Call::Check { .. } => StepKind::DriftCheck,
        }
    }
}

/// What a successful call returned.
#[derive(Clone, Debug)]
pub enum Output {
    Report(Report),
    /// A transformer's tables, and the preprocessing it declared (contract 0.1.2).
    Tables {
        tables: Vec<(String, Table)>,
        preprocessing: Option<Vec<crate::pipeline::Stage>>,
    },
    Trained {
        model: Model,
        metrics: Vec<Metric>,
    },
    Evaluation(Evaluation),
    Gate(GateOutcome),
    Drift(DriftOutcome),
}

/// One call's outcome and everything the plugin said while it ran.
#[derive(Debug)]
pub struct Execution<T = Output> {
    pub outcome: Result<T, Failure>,
    pub log: Vec<LogLine>,
    pub metrics: Vec<(String, f64)>,
    pub elapsed: Duration,
}

impl<T> Execution<T> {
    /// A call that failed before the plugin ran.
    fn failed(failure: Failure) -> Execution<T> {
        Execution {
            outcome: Err(failure),
            log: Vec::new(),
            metrics: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

enum Pre {
    Validator(validator::ValidatorPre<StepState>),
    Transformer(transformer::TransformerPre<StepState>),
    Trainer(trainer::TrainerPre<StepState>),
    Evaluator(evaluator::EvaluatorPre<StepState>),
    Deployer(deployer::DeployerPre<StepState>),
    DriftCheck(drift_check::DriftCheckPre<StepState>),
}

/// A loaded plugin: ready to instantiate, with what it says about itself.
pub struct Plugin {
    /// sha256 of the component bytes, hex.
    pub digest: String,
    pub info: PluginInfo,
    /// The contract version the plugin was built against.
    pub contract: semver::Version,
    /// The configuration schema, parsed.
    pub config_schema: serde_json::Value,
    /// Whether the compiled code came from the cache.
    pub cache: CacheOutcome,
    /// The component's imported and exported names (`wasi:io/streams@0.2.0`, `validate`...).
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The component's bytes, which a cluster's workers fetch by digest.
    pub wasm: Arc<[u8]>,
    schema: jsonschema::Validator,
    pre: Pre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("digest", &self.digest)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A configuration that does not satisfy a plugin's schema: where (a JSON pointer) and what.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigProblem {
    pub pointer: String,
    pub message: String,
}

impl Plugin {
    pub fn kind(&self) -> StepKind {
        self.info.kind
    }

    /// Every way `config` breaks the plugin's configuration schema, in words a workflow author
    /// can act on: unknown options with the closest known one, and the allowed values of an
    /// enumeration rather than the validator's generic "not valid under any of the schemas".
    pub fn check_config(&self, config: &serde_json::Value) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for err in self.schema.iter_errors(config) {
            let pointer = err.instance_path().to_string();
            let here = schema_at(&self.config_schema, err.schema_path().as_str());
            match err.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let known: Vec<&str> = here
                        .and_then(|_| {
                            parent_properties(&self.config_schema, err.schema_path().as_str())
                        })
                        .map(|props| props.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    for name in unexpected {
                        let closest = known
                            .iter()
                            .map(|k| (strsim::levenshtein(k, name), *k))
                            .filter(|(distance, _)| *distance <= 2)
                            .min();
                        let hint = match closest {
                            Some((_, k)) => format!(", did you mean `{k}`?"),
                            None if !known.is_empty() => {
                                format!(" (options: {})", known.join(", "))
                            }
                            None => String::new(),
                        };
                        problems.push(ConfigProblem {
                            pointer: format!("{pointer}/{name}"),
                            message: format!("unknown option `{name}`{hint}"),
                        });
                    }
                }
                jsonschema::error::ValidationErrorKind::OneOfNotValid { .. }
                | jsonschema::error::ValidationErrorKind::AnyOf { .. }
                    if enumeration(here).is_some() =>
                {
                    let allowed = enumeration(here).expect("checked by the guard");
                    problems.push(ConfigProblem {
                        pointer,
                        message: format!("{} is not one of {}", err.instance(), allowed.join(", ")),
                    });
                }
                _ => problems.push(ConfigProblem {
                    pointer,
                    message: err.to_string(),
                }),
            }
        }
        problems
    }
}

/// The subschema at a validator's schema path, following local `$ref`s on the way.
fn schema_at<'a>(root: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut current = root;
    for token in path.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        current = if token == "$ref" {
            let target = current.get("$ref")?.as_str()?.strip_prefix('#')?;
            root.pointer(target)?
        } else {
            match current {
                serde_json::Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => current.get(&token)?,
            }
        };
    }
    Some(current)
}

/// The `properties` beside the `additionalProperties` keyword at `path`.
fn parent_properties<'a>(
    root: &'a serde_json::Value,
    path: &str,
) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
    let parent = path.strip_suffix("/additionalProperties")?;
    schema_at(root, parent)?.get("properties")?.as_object()
}

/// The allowed values when every alternative of a `oneOf`/`anyOf` is a constant (or `null`).
fn enumeration(alternatives: Option<&serde_json::Value>) -> Option<Vec<String>> {
    let alternatives = alternatives?.as_array()?;
    let mut allowed = Vec::new();
    for alternative in alternatives {
        if let Some(constant) = alternative.get("const") {
            allowed.push(constant.to_string());
        } else if let Some(values) = alternative.get("enum").and_then(|e| e.as_array()) {
            allowed.extend(values.iter().map(|v| v.to_string()));
        } else if alternative.get("type").and_then(|t| t.as_str()) == Some("null") {
            continue;
        } else {
            return None;
        }
    }
    (!allowed.is_empty()).then_some(allowed)
}

/// Stops the epoch ticker thread when the runtime goes away.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the epoch advances: the granularity of timeouts.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The process-wide plugin runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StepState>,
    cache: Option<CompiledCache>,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Where plugins named by reference come from, and the signature policy (read by the
    /// engine's planning; the runtime itself only loads bytes).
    sources: crate::oci::Sources,
    _ticker: Ticker,
}

impl Runtime {
    /// A runtime whose compiled-code cache lives in `cache` (none: compile every time).
    pub fn new(cache: Option<CompiledCache>) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // Plugins are small; a bounded stack keeps a runaway recursion cheap to stop.
        config.max_wasm_stack(1 << 20);
        // Enough frames to tell a runaway recursion from an ordinary trap (see `classify`).
        config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(BACKTRACE_FRAMES));
        let wasmtime_error = |err: wasmtime::Error| anyhow::anyhow!("{err:#}");
        let engine = Engine::new(&config).map_err(wasmtime_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasmtime_error)?;
        bindings::HostImports::add_to_linker::<StepState, HasSelf<StepState>>(
            &mut linker,
            |state| state,
        )
        .map_err(wasmtime_error)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("wflow-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })?;
        Ok(Runtime {
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            sources: crate::oci::Sources::from_env(),
            _ticker: Ticker { stop },
        })
    }

    /// The same runtime with other plugin sources (cache, trust store, policy).
    pub fn with_sources(mut self, sources: crate::oci::Sources) -> Runtime {
        self.sources = sources;
        self
    }

    pub fn sources(&self) -> &crate::oci::Sources {
        &self.sources
    }

    /// A runtime with the default compiled-code cache directory.
    pub fn with_default_cache() -> anyhow::Result<Runtime> {
        Runtime::new(CompiledCache::default_dir().map(CompiledCache::new))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a plugin from its component bytes; the same bytes load once per runtime.
    pub async fn load(&self, wasm: &[u8]) -> Result<Arc<Plugin>, Error> {
        let digest = hex::encode(Sha256::digest(wasm));
        if let Some(plugin) = lock(&self.loaded).get(&digest) {
            return Ok(plugin.clone());
        }
        let plugin = Arc::new(self.load_uncached(wasm, digest.clone()).await?);
        lock(&self.loaded).insert(digest, plugin.clone());
        Ok(plugin)
    }

    async fn load_uncached(&self, wasm: &[u8], digest: String) -> Result<Plugin, Error> {
        let (component, cache) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, wasm, &digest),
            None => wasmtime::component::Component::new(&self.engine, wasm)
                .map(|c| (c, CacheOutcome::Compiled)),
        }
        .map_err(|err| Error::Compile(format!("{err:#}")))?;

        let contract = contract_version(&self.engine, &component)?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let (export, kind) = KIND_EXPORTS
            .iter()
            .find(|(name, _)| exports.iter().any(|e| e == name))
            .copied()
            .ok_or_else(|| {
                Error::NotAPlugin(format!(
                    "it exports none of {} (its exports: {})",
                    KIND_EXPORTS
                        .iter()
                        .map(|(n, _)| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if exports.is_empty() {
                        "none".to_string()
                    } else {
                        exports.join(", ")
                    }
                ))
            })?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|err| Error::Link(format!("{err:#}")))?;
        let link = |err: wasmtime::Error| Error::Link(format!("{err:#}"));
        let pre = match kind {
            StepKind::Validator => {
                Pre::Validator(validator::ValidatorPre::new(instance_pre).map_err(link)?)
            }
            StepKind::Transformer => {
                Pre::Transformer(transformer::TransformerPre::new(instance_pre).map_err(link)?)
            }
            StepKind::Trainer => {
                Pre::Trainer(trainer::TrainerPre::new(instance_pre).map_err(link)?)
            }
            StepKind::Evaluator => {
                Pre::Evaluator(evaluator::EvaluatorPre::new(instance_pre).map_err(link)?)
            }
            StepKind::Deployer => {
                Pre::Deployer(deployer::DeployerPre::new(instance_pre).map_err(link)?)
            }
            StepKind::DriftCheck => {
                Pre::DriftCheck(drift_check::DriftCheckPre::new(instance_pre).map_err(link)?)
            }
        };

        // describe() runs under tight limits: it only has to return a small record.
        let limits = Limits {
            timeout: Duration::from_secs(10),
            max_output: 1 << 20,
            ..Limits::default()
        };
        let execution = self
            .execute(&limits, &Capabilities::default(), None, async |store| {
                describe(store, &pre).await
            })
            .await;
        let info = execution.outcome.map_err(Error::Describe)?;
        if info.kind != kind {
            return Err(Error::KindMismatch {
                exported: export,
                exported_kind: StepKindName(kind),
                declared: StepKindName(info.kind),
            });
        }
        let config_schema: serde_json::Value = serde_json::from_str(&info.config_schema)
            .map_err(|err| Error::Schema(err.to_string()))?;
        let schema = jsonschema::validator_for(&config_schema)
            .map_err(|err| Error::Schema(err.to_string()))?;
        Ok(Plugin {
            digest,
            info,
            contract,
            config_schema,
            cache,
            imports,
            exports,
            wasm: Arc::from(wasm),
            schema,
            pre,
        })
    }

    /// Calls `plugin` with `call` in a fresh instance, within `limits`, granting `capabilities`.
    pub async fn call(
        &self,
        plugin: &Plugin,
        call: Call,
        limits: &Limits,
        capabilities: &Capabilities,
    ) -> Execution {
        self.call_with_progress(plugin, call, limits, capabilities, None)
            .await
    }

    /// `call`, passing the plugin's progress reports to `progress` as they happen.
    pub async fn call_with_progress(
        &self,
        plugin: &Plugin,
        call: Call,
        limits: &Limits,
        capabilities: &Capabilities,
        progress: Option<ProgressSink>,
    ) -> Execution {
        let missing = capabilities.missing(&plugin.info.capabilities);
        if !missing.is_empty() {
            return Execution::failed(Failure::NotGranted(format!(
                "the plugin `{}` requests {}",
                plugin.info.name,
                missing.join(", ")
            )));
        }
        if call.kind() != plugin.kind() {
            return Execution::failed(Failure::Sandbox(format!(
                "a {} call cannot go to a {} plugin",
                kind_name(call.kind()),
                kind_name(plugin.kind())
            )));
        }
        let output_limit = limits.max_output;
        self.execute(limits, capabilities, progress, async |store| {
            let output = invoke(store, &plugin.pre, call).await?;
            // What a plugin returns is copied into the host whatever its size: measure it
            // against the same limit as the tables it builds.
            if let Ok(output) = &output {
                let size = output_size(output);
                if size > output_limit {
                    store.data_mut().output_exceeded = true;
                    return Err(wasmtime::format_err!(
                        "output limit exceeded: the plugin returned {size} bytes"
                    ));
                }
            }
            // A trained model is loaded before anyone trusts it: the evaluator, the registry
            // and the server all load it, so a file tract cannot read (or that would take more
            // memory than they allow a file of its size) fails the step that made it, with the
            // reason. The limits are theirs, so that what passes here loads there.
            if let Ok(Output::Trained { model, .. }) = &output {
                let info = host::inference::model_info(&model.metadata);
                let onnx = model.onnx.clone();
                let checked = host::off_thread(move |_| {
                    crate::inference::Session::load_within(
                        &onnx,
                        Some(info),
                        crate::inference::budget::Limits::default(),
                    )
                    .map(|_| ())
                    .map_err(|err| err.to_string())
                })
                .await;
                if let Err(why) = checked {
                    return Ok(Err(StepError::Failed(format!(
                        "the trainer returned a model the host cannot load: {why}"
                    ))));
                }
            }
            Ok(output)
        })
        .await
    }

    /// Runs `body` in a fresh store set up with `limits` and `capabilities`, and classifies
    /// how it ended.
    async fn execute<T>(
        &self,
        limits: &Limits,
        capabilities: &Capabilities,
        progress: Option<ProgressSink>,
        body: impl AsyncFnOnce(&mut Store<StepState>) -> wasmtime::Result<Result<T, StepError>>,
    ) -> Execution<T> {
        let started = Instant::now();
        let log = Arc::new(Mutex::new(StepLog::new(
            limits.max_output.min(MAX_LOG_BYTES),
        )));
        let wasi = match capabilities.wasi_context(&log) {
            Ok(wasi) => wasi,
            Err(err) => return Execution::failed(Failure::Sandbox(err.to_string())),
        };
        let state = StepState {
            progress,
            progress_sent: None,
            wasi,
            resources: wasmtime::component::ResourceTable::new(),
            limiter: Limiter::new(limits.memory),
            log: log.clone(),
            output_bytes: 0,
            max_output: limits.max_output,
            output_exceeded: false,
            handles: 0,
            preprocessing: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Timeouts past any real need (years) mean "no deadline" rather than an overflow.
        let deadline = started.checked_add(limits.timeout);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(match deadline {
                Some(deadline) if Instant::now() >= deadline => UpdateDeadline::Interrupt,
                // Yielding lets other steps run on this thread and the timeout below fire.
                _ => UpdateDeadline::Yield(1),
            })
        });

        // The epoch interrupts running wasm; this timeout also covers a plugin waiting in a
        // host call (a WASI sleep or poll), which epochs cannot interrupt.
        let timed = match deadline {
            Some(_) => tokio::time::timeout(limits.timeout, body(&mut store))
                .await
                .ok(),
            None => Some(body(&mut store).await),
        };
        let outcome = match timed {
            None => Err(Failure::Timeout(limits.timeout)),
            Some(Ok(Ok(output))) => Ok(output),
            Some(Ok(Err(step_error))) => Err(Failure::from(step_error)),
            Some(Err(err)) => Err(classify(&err, store.data(), limits)),
        };
        let (lines, metrics) = {
            let mut log = lock(&log);
            log.finish();
            (
                std::mem::take(&mut log.lines),
                std::mem::take(&mut log.metrics),
            )
        };
        let outcome = match outcome {
            Err(Failure::Trap(message)) => Err(panic_message(&lines)
                .map(Failure::Panic)
                .unwrap_or(Failure::Trap(message))),
            other => other,
        };
        Execution {
            outcome,
            log: lines,
            metrics,
            elapsed: started.elapsed(),
        }
    }
}

/// The exported function that identifies each kind.
const KIND_EXPORTS: &[(&str, StepKind)] = &[
    ("validate", StepKind::Validator),
    ("transform", StepKind::Transformer),
    ("train", StepKind::Trainer),
    ("evaluate", StepKind::Evaluator),
    ("decide", StepKind::Deployer),
    ("check", StepKind::DriftCheck),
];

/// The contract version a component imports (`wflow:plugin/...@X.Y.Z`), checked against ours:
/// same major version (same minor while 0.x, as semver says), and not newer than the host.
fn contract_version(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<semver::Version, Error> {
    let host = semver::Version::parse(CONTRACT_VERSION).expect("CONTRACT_VERSION is valid semver");
    let prefix = format!("{CONTRACT_PACKAGE}/");
    let versions: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('@'))
                .map(|(_, v)| v.to_string())
        })
        .collect();
    // Plugins that import nothing of ours (no host calls, no tables) are still checked by the
    // linker against the step world's exports.
    let mut newest = None;
    for version in versions {
        let plugin = semver::Version::parse(&version)
            .map_err(|err| Error::NotAPlugin(format!("bad contract version `{version}`: {err}")))?;
        let same_line =
            plugin.major == host.major && (host.major > 0 || plugin.minor == host.minor);
        if !same_line {
            return Err(Error::IncompatibleContract {
                plugin,
                host,
                hint: "a different major version; rebuild the plugin against this contract",
            });
        }
        if plugin > host {
            return Err(Error::IncompatibleContract {
                plugin,
                host,
                hint: "the plugin is newer than this host; upgrade wflow",
            });
        }
        if newest.as_ref().is_none_or(|newest| &plugin > newest) {
            newest = Some(plugin);
        }
    }
    Ok(newest.unwrap_or(host))
}

/// Locks a mutex whose data stays usable even if a holder panicked (logs, the plugin map).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn push(store: &mut Store<StepState>, table: Table) -> wasmtime::Result<Resource<Table>> {
    Ok(store.data_mut().resources.push(table)?)
}

fn take(store: &mut Store<StepState>, handle: Resource<Table>) -> wasmtime::Result<Table> {
    Ok(store.data_mut().resources.delete(handle)?)
}

/// Instantiates the plugin in `store` and calls `describe()`.
async fn describe(
    store: &mut Store<StepState>,
    pre: &Pre,
) -> wasmtime::Result<Result<PluginInfo, StepError>> {
    macro_rules! describe {
        ($pre:expr) => {{
            let instance = $pre.instantiate_async(&mut *store).await?;
            Ok(Ok(instance.call_describe(&mut *store).await?))
        }};
    }
    match pre {
        Pre::Validator(p) => describe!(p),
        Pre::Transformer(p) => describe!(p),
        Pre::Trainer(p) => describe!(p),
        Pre::Evaluator(p) => describe!(p),
        Pre::Deployer(p) => describe!(p),
        Pre::DriftCheck(p) => describe!(p),
    }
}

/// Instantiates the plugin in `store` and makes the call.
async fn invoke(
    store: &mut Store<StepState>,
    pre: &Pre,
    call: Call,
) -> wasmtime::Result<Result<Output, StepError>> {
    Ok(match (pre, call) {
        (Pre::Validator(pre), Call::Validate { data, config }) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let data = push(store, data)?;
            instance
                .call_validate(&mut *store, data, &config)
                .await?
                .map(Output::Report)
        }
        (Pre::Transformer(pre), Call::Transform { inputs, config }) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let inputs = inputs
                .into_iter()
                .map(|(name, table)| Ok((name, push(store, table)?)))
                .collect::<wasmtime::Result<Vec<_>>>()?;
            match instance
                .call_transform(&mut *store, &inputs, &config)
                .await?
            {
                Ok(outputs) => {
                    let tables = outputs
                        .into_iter()
                        .map(|(name, handle)| Ok((name, take(store, handle)?)))
                        .collect::<wasmtime::Result<Vec<_>>>()?;
                    match check_output_names(&tables) {
                        Ok(()) => Ok(Output::Tables {
                            tables,
                            preprocessing: store.data_mut().preprocessing.take(),
                        }),
                        Err(message) => Err(StepError::InvalidInput(message)),
                    }
                }
                Err(err) => Err(err),
            }
        }
        (
            Pre::Trainer(pre),
            Call::Train {
                data,
                target,
                config,
            },
        ) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let data = push(store, data)?;
            instance
                .call_train(&mut *store, data, &target, &config)
                .await?
                .map(|trained| Output::Trained {
                    model: trained.model,
                    metrics: trained.metrics,
                })
        }
        (
            Pre::Evaluator(pre),
            Call::Evaluate {
                model,
                data,
                config,
            },
        ) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let data = push(store, data)?;
            instance
                .call_evaluate(&mut *store, &model, data, &config)
                .await?
                .map(Output::Evaluation)
        }
        (
            Pre::Deployer(pre),
            Call::Decide {
                candidate,
                champion,
                policy,
            },
        ) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance
                .call_decide(&mut *store, &candidate, champion.as_ref(), &policy)
                .await?
                .map(Output::Gate)
        }
        (
            Pre::DriftCheck(pre),
            Call::Check {
                reference,
                current,
                config,
            },
        ) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            let reference = push(store, reference)?;
            let current = push(store, current)?;
            instance
                .call_check(&mut *store, reference, current, &config)
                .await?
                .map(Output::Drift)
        }
        _ => {
            return Err(wasmtime::format_err!(
                "the call does not match the plugin's kind"
            ));
        }
    })
}

/// The name under which a transformer's declared preprocessing is recorded among its outputs,
/// so no table may have it.
pub const PREPROCESSING_OUTPUT: &str = "preprocessing";

/// Checks the names of a transformer's output tables: distinct, usable in a workflow's
/// `STEP.OUTPUT` references, and not the name its declared preprocessing is recorded under.
fn check_output_names(tables: &[(String, Table)]) -> Result<(), String> {
    for (index, (name, _)) in tables.iter().enumerate() {
        let shown: String = name.escape_debug().take(80).collect();
        let usable = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !usable {
            return Err(format!(
                "the plugin returned an output named \"{shown}\": output names are 1 to 64 letters, digits, `_` or `-`"
            ));
        }
        if name == PREPROCESSING_OUTPUT {
            return Err(format!(
                "the plugin returned a table named `{PREPROCESSING_OUTPUT}`, the name its declared preprocessing is recorded under"
            ));
        }
        if tables[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(format!("the plugin returned two outputs named `{shown}`"));
        }
    }
    Ok(())
}

fn report_size(report: &Report) -> u64 {
    report
        .findings
        .iter()
        .map(|f| {
            let optional = |v: &Option<String>| v.as_ref().map_or(0, |v| v.len());
            (f.check.len()
                + f.message.len()
                + optional(&f.column)
                + optional(&f.observed)
                + optional(&f.expected)
                + 96) as u64
        })
        .sum()
}

fn metrics_size(metrics: &[Metric]) -> u64 {
    metrics.iter().map(|m| m.name.len() as u64 + 32).sum()
}

/// Approximate bytes of what a plugin returned (tables are charged when they are built).
fn output_size(output: &Output) -> u64 {
    match output {
        Output::Report(report) => report_size(report),
        Output::Tables { tables, .. } => tables.iter().map(|(name, _)| name.len() as u64).sum(),
        Output::Trained { model, metrics } => {
            let meta = &model.metadata;
            let strings = |v: &[String]| v.iter().map(|s| s.len() as u64 + 24).sum::<u64>();
            model.onnx.len() as u64
                + strings(&meta.features)
                + strings(&meta.class_labels)
                + meta
                    .properties
                    .iter()
                    .map(|(k, v)| (k.len() + v.len()) as u64 + 48)
                    .sum::<u64>()
                + metrics_size(metrics)
        }
        Output::Evaluation(evaluation) => {
            metrics_size(&evaluation.metrics) + report_size(&evaluation.report)
        }
        Output::Gate(gate) => report_size(&gate.report),
        Output::Drift(drift) => {
            drift
                .features
                .iter()
                .map(|f| (f.feature.len() + f.method.len()) as u64 + 64)
                .sum::<u64>()
                + report_size(&drift.report)
        }
    }
}

/// Turns a wasmtime error into the reason a call failed, using what the store recorded.
fn classify(err: &wasmtime::Error, state: &StepState, limits: &Limits) -> Failure {
    if let Some(requested) = state.limiter.refused_growth {
        return Failure::MemoryLimit {
            limit: limits.memory,
            requested,
        };
    }
    let overflowed = state.with_log(|log| log.overflowed);
    if overflowed {
        return Failure::OutputLimit(format!(
            "the plugin wrote more than {} bytes of output and log",
            limits.max_output.min(MAX_LOG_BYTES)
        ));
    }
    if state.output_exceeded {
        return Failure::OutputLimit(format!(
            "the plugin built more than {} bytes of tables",
            limits.max_output
        ));
    }
    let frames = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map_or(&[][..], |b| b.frames());
    let place = frames
        .iter()
        .find_map(|frame| frame.func_name())
        .map(|name| format!(" in `{:#}`", rustc_demangle::demangle(name)))
        .unwrap_or_default();
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout(limits.timeout),
        Some(Trap::StackOverflow) => Failure::StackOverflow,
        // Compilers for wasm keep large locals on a stack in linear memory; running off its
        // end is an out-of-bounds access at the bottom of a deep recursion.
        Some(Trap::MemoryOutOfBounds) if is_deep_recursion(frames) => Failure::StackOverflow,
        Some(trap) => Failure::Trap(format!("{trap}{place}")),
        None => Failure::Trap(format!("{err:#}")),
    }
}

/// Frames of wasm backtrace kept for a trap.
const BACKTRACE_FRAMES: usize = 256;

/// A backtrace as deep as we keep, cycling through a handful of functions.
fn is_deep_recursion(frames: &[wasmtime::FrameInfo]) -> bool {
    let distinct: std::collections::HashSet<u32> =
        frames.iter().take(64).map(|f| f.func_index()).collect();
    frames.len() >= BACKTRACE_FRAMES && distinct.len() <= 4
}

/// A Rust guest prints `panicked at FILE:LINE:COL:\nMESSAGE` to stderr before it aborts.
fn panic_message(lines: &[LogLine]) -> Option<String> {
    let at = lines.iter().position(|line| {
        line.source == LogSource::Stderr && line.message.contains("panicked at")
    })?;
    let location = lines[at]
        .message
        .split("panicked at")
        .nth(1)
        .unwrap_or("")
        .trim()
        .trim_end_matches(':');
    let message = lines
        .get(at + 1)
        .filter(|line| line.source == LogSource::Stderr)
        .map(|line| line.message.trim().to_string())
        .unwrap_or_default();
    Some(if message.is_empty() {
        format!("at {location}")
    } else {
        format!("{message} (at {location})")
    })
}
