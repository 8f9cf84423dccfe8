//! `wflow serve`: ONNX models served natively by tract over the Open Inference Protocol v2 REST
//! API (the KServe v2 / Triton HTTP protocol, JSON or binary tensors), so the clients that
//! already speak it work as they are; deployed by the model registry's aliases and the rollout
//! policy; watched live for errors, latency, quality and drift.
//!
//! Models come from the registry (`--registry NAME[@ALIAS]`, `champion` by default) or from
//! files (`--model NAME=PATH.onnx`). For a registry model served by its `champion`, a version
//! under the `challenger` alias is deployed beside it as the policy says (by default as the
//! deployment gate decided: shadow, or a canary at its percent): shadow copies, a ramped
//! canary, or a fixed A/B split. The challenger is rolled back automatically when its error
//! rate, latency or live quality is worse than the champion's by the policy's margins, and
//! promoted at the end of a healthy canary; each move is written to the registry's alias
//! history with its reason and emitted as an event (`GET /v2/events`).
//!
//! Deployments are swapped whole (one `Arc`), so requests in flight finish on the version they
//! started with. The store is held by the daemon, or opened only for a read or an alias move by
//! `wflow serve`, which notices alias moves made by other processes from the store's alias
//! stamp and redeploys.
//!
//! The routes and their bodies are in `routes`; this module holds the server's state and the
//! rules that change it.

pub mod access;
mod answer;
pub mod batch;
pub mod binary;
pub mod content;
pub mod deployment;
pub mod feedback;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod policy;
pub mod protocol;
mod routes;
pub mod scoring;
pub mod token;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use access::StoreAccess;
use deployment::{Arm, Deployment, QualityPair, Strategy, Verdict};
use model::ServedModel;
use monitor::{DriftReport, VersionMonitor};
use policy::{ModelPolicy, Policy, StrategyChoice};
pub use routes::router;

use crate::plugin::{Call, Capabilities, Decision, Limits, Output, Plugin, Runtime};
use crate::store::registry::ModelRef;
use crate::store::{Actor, ModelVersion, Store, StoreError};

/// The alias whose version is served.
pub const CHAMPION: &str = "champion";
/// The alias of the version tried beside the champion.
pub const CHALLENGER: &str = "challenger";

/// Where a served model comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// An ONNX file served under `name` (version `1`).
    File { name: String, path: PathBuf },
    /// The registry's version behind `NAME[@ALIAS|@VERSION]`.
    Registry { reference: String },
}

impl ModelSource {
    /// `NAME=PATH` (a `--model` argument).
    pub fn parse_file(text: &str) -> Result<ModelSource, String> {
        let (name, path) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected NAME=PATH.onnx"))?;
        crate::store::registry::check_name("model name", name).map_err(|e| e.to_string())?;
        Ok(ModelSource::File {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }

    /// The name the model is served under.
    pub fn name(&self) -> String {
        match self {
            ModelSource::File { name, .. } => name.clone(),
            ModelSource::Registry { reference } => {
                reference.split('@').next().unwrap_or(reference).to_string()
            }
        }
    }

    /// The registry reference, with `champion` when none is named.
    fn registry_ref(&self) -> Option<Result<ModelRef, StoreError>> {
        match self {
            ModelSource::File { .. } => None,
            ModelSource::Registry { reference } => {
                Some(ModelRef::parse(reference).map(|r| match r {
                    ModelRef::Latest(name) => ModelRef::Alias(name, CHAMPION.into()),
                    other => other,
                }))
            }
        }
    }
}

/// What the server runs with.
#[derive(Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub sources: Vec<ModelSource>,
    pub store: StoreAccess,
    /// Required by the admin endpoints; without one they are refused.
    pub admin_token: Option<String>,
    /// Held by the services trusted with ground truth (labelling services, the team's own
    /// applications): it may send feedback and address a version, and its traffic counts
    /// toward rollouts and retraining. The admin token may do all of that too.
    pub feedback_token: Option<String>,
    /// Whether inference, metadata and metrics are open without the token (health always is).
    pub open_reads: bool,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// Deadlines and caps of the HTTP connections (its `max_body` is set from the one above).
    pub http: crate::http::Limits,
    pub policy: Policy,
    /// How often the alias stamp is read to notice promotions by other processes (none: only
    /// the admin endpoints change what is served).
    pub watch: Option<Duration>,
    /// The plugin runtime drift checks run in (made on first use when none is given).
    pub runtime: Option<Arc<Runtime>>,
}

impl ServeConfig {
    /// A configuration with the defaults: loopback, port 8000, open reads, the default policy,
    /// the alias stamp read every 500 ms.
    pub fn new(sources: Vec<ModelSource>, store: StoreAccess) -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            sources,
            store,
            admin_token: None,
            feedback_token: None,
            open_reads: true,
            max_body: 64 << 20,
            http: crate::http::Limits::default(),
            policy: Policy::default(),
            watch: Some(Duration::from_millis(500)),
            runtime: None,
        }
    }
}

/// Something that happened: to a deployment (a challenger deployed, a canary step, a
/// promotion, a rollback, a redeployment, a drift verdict) or, in the daemon, to a workflow or
/// a run (a trigger fired or skipped, a run started or finished, a workflow reloaded).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ServeEvent {
    pub seq: u64,
    pub at: crate::store::records::Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    pub kind: String,
    pub message: String,
}

/// Who sent a request, by the bearer token it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No token, or one the server does not know.
    Anonymous,
    /// Anyone, on a server started without tokens: it is open to everyone (and says so when it
    /// starts), so every request is taken at its word, as a token holder's would be.
    Open,
    /// The feedback token: truth, versions by name, traffic that counts.
    Feedback,
    /// The admin token: everything.
    Admin,
}

impl Caller {
    /// Whether the caller carries a credential (or the server asks for none).
    pub fn trusted(self) -> bool {
        self != Caller::Anonymous
    }
}

/// Events kept for `GET /v2/events`.
const EVENTS_KEPT: usize = 1000;

/// What the registry says a model's deployment should be.
enum Planned {
    File {
        name: String,
        path: PathBuf,
    },
    Registry {
        champion: Box<ModelVersion>,
        shown: String,
        challenger: Option<(Box<ModelVersion>, Strategy, Option<u8>, String)>,
    },
}

impl Planned {
    fn versions(&self) -> (String, Option<String>) {
        match self {
            Planned::File { .. } => ("1".into(), None),
            Planned::Registry {
                champion,
                challenger,
                ..
            } => (
                champion.version.to_string(),
                challenger.as_ref().map(|(v, ..)| v.version.to_string()),
            ),
        }
    }
}

/// The drift plugin, loaded once.
struct DriftChecker {
    runtime: Arc<Runtime>,
    plugin: Arc<Plugin>,
}

/// The server's state: each model's deployment, swappable as a whole.
pub struct Server {
    deployments: RwLock<BTreeMap<String, Arc<Deployment>>>,
    /// Where each model comes from; the daemon adds models as its workflows register them.
    sources: RwLock<BTreeMap<String, ModelSource>>,
    store: StoreAccess,
    policy: Policy,
    admin_token: Option<String>,
    feedback_token: Option<String>,
    open_reads: bool,
    metrics: metrics::Metrics,
    feedback: feedback::Feedback,
    events: Mutex<VecDeque<ServeEvent>>,
    event_seq: AtomicU64,
    subscribers: tokio::sync::broadcast::Sender<ServeEvent>,
    /// Challenger versions this server took out of traffic, so a registry that still names
    /// them (its alias move not yet written) does not bring them back.
    retired: Mutex<HashSet<(String, String)>>,
    /// Alias moves not yet written, per model; the registry is not re-read for those models.
    pending_writes: Mutex<HashMap<String, usize>>,
    /// Automatic (rollbacks, promotions) per model.
    automatic: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Shadow copies running at once, at most.
    shadow_slots: Arc<tokio::sync::Semaphore>,
    runtime: Option<Arc<Runtime>>,
    drift: tokio::sync::OnceCell<Result<DriftChecker, String>>,
    stamp: Mutex<Option<String>>,
}

/// Why an admin action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for ActionError {
    fn from(err: StoreError) -> ActionError {
        match err {
            StoreError::NotFound(message) => ActionError::NotFound(message),
            StoreError::Invalid(message) => ActionError::Invalid(message),
            other => ActionError::Store(other.to_string()),
        }
    }
}

impl From<anyhow::Error> for ActionError {
    fn from(err: anyhow::Error) -> ActionError {
        ActionError::Invalid(format!("{err:#}"))
    }
}

/// How a challenger is deployed, by the policy and the gate's decision (none: not deployed).
fn strategy_for(
    policy: &ModelPolicy,
    version: &ModelVersion,
) -> Option<(Strategy, Option<u8>, String)> {
    let decision = version.decision.as_ref().map(|d| &d.decision);
    let gate_percent = match decision {
        Some(Decision::Canary(percent)) => Some(*percent),
        _ => None,
    };
    Some(match policy.rollout.strategy {
        StrategyChoice::Off => return None,
        StrategyChoice::Shadow => (
            Strategy::Shadow,
            None,
            "the rollout policy deploys challengers in shadow".into(),
        ),
        StrategyChoice::Ab => (
            Strategy::Ab,
            None,
            "the rollout policy splits traffic A/B".into(),
        ),
        StrategyChoice::Canary => (
            Strategy::Canary,
            gate_percent,
            "the rollout policy deploys challengers as canaries".into(),
        ),
        StrategyChoice::Gate => match decision {
            Some(Decision::Shadow) => (
                Strategy::Shadow,
                None,
                "the deployment gate decided shadow".into(),
            ),
            Some(Decision::Canary(percent)) => (
                Strategy::Canary,
                Some(*percent),
                format!("the deployment gate decided canary at {percent}%"),
            ),
            Some(Decision::Reject) => return None,
            Some(Decision::Promote) | None => (
                Strategy::Canary,
                None,
                "a canary (the rollout policy's steps)".into(),
            ),
        },
    })
}

fn model_ref_text(reference: &ModelRef) -> String {
    match reference {
        ModelRef::Alias(name, alias) => format!("{name}@{alias}"),
        ModelRef::Version(name, number) => format!("{name}@{number}"),
        ModelRef::Latest(name) => name.clone(),
    }
}

impl Server {
    /// Loads every model; any that cannot be loaded stops the start with its reason.
    pub fn start(config: &ServeConfig) -> anyhow::Result<Arc<Server>> {
        let mut sources = BTreeMap::new();
        for source in &config.sources {
            if sources.insert(source.name(), source.clone()).is_some() {
                anyhow::bail!("two models are served as `{}`", source.name());
            }
        }
        let (subscribers, _) = tokio::sync::broadcast::channel(256);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let server = Arc::new(Server {
            deployments: RwLock::new(BTreeMap::new()),
            sources: RwLock::new(sources),
            store: config.store.clone(),
            policy: config.policy.clone(),
            admin_token: config.admin_token.clone(),
            feedback_token: config.feedback_token.clone(),
            open_reads: config.open_reads,
            metrics: metrics::Metrics::default(),
            feedback: feedback::Feedback::default(),
            events: Mutex::new(VecDeque::new()),
            event_seq: AtomicU64::new(0),
            subscribers,
            retired: Mutex::new(HashSet::new()),
            pending_writes: Mutex::new(HashMap::new()),
            automatic: Mutex::new(BTreeMap::new()),
            shadow_slots: Arc::new(tokio::sync::Semaphore::new(cores * 2)),
            runtime: config.runtime.clone(),
            drift: tokio::sync::OnceCell::new(),
            stamp: Mutex::new(config.store.alias_stamp()),
        });
        for source in config.sources.iter() {
            let planned = server
                .plan(source)
                .map_err(|err| anyhow::anyhow!("model `{}`: {err:#}", source.name()))?;
            let deployment = server
                .realize(planned)
                .map_err(|err| anyhow::anyhow!("model `{}`: {err:#}", source.name()))?;
            server.announce(&deployment);
            lock_write(&server.deployments).insert(deployment.name.clone(), Arc::new(deployment));
        }
        Ok(server)
    }

    /// The policy of a model.
    fn policy_of(&self, name: &str) -> Arc<ModelPolicy> {
        Arc::new(self.policy.for_model(name).clone())
    }

    /// Reads what the source says should be deployed (the registry's aliases).
    fn plan(&self, source: &ModelSource) -> anyhow::Result<Planned> {
        let reference = match source.registry_ref() {
            None => {
                let ModelSource::File { name, path } = source else {
                    unreachable!("registry_ref is None only for files")
                };
                return Ok(Planned::File {
                    name: name.clone(),
                    path: path.clone(),
                });
            }
            Some(reference) => reference?,
        };
        let name = reference.name().to_string();
        let policy = self.policy.for_model(&name);
        let retired = lock(&self.retired).clone();
        let planned = self.store.with(|store| {
            let champion = store.resolve_model(&reference)?;
            let follows_champion = matches!(&reference, ModelRef::Alias(_, a) if a == CHAMPION);
            let challenger = match store.alias(&name, CHALLENGER)? {
                Some(version)
                    if follows_champion
                        && version != champion.version
                        && !retired.contains(&(name.clone(), version.to_string())) =>
                {
                    let version = store.version(&name, version)?;
                    strategy_for(policy, &version)
                        .map(|(strategy, percent, why)| (Box::new(version), strategy, percent, why))
                }
                _ => None,
            };
            Ok(Planned::Registry {
                champion: Box::new(champion),
                shown: model_ref_text(&reference),
                challenger,
            })
        })?;
        Ok(planned)
    }

    /// A served model of a registered version: the one already loaded when it is, else read
    /// from the store and loaded, with a monitor that has its training data as drift reference.
    fn served_version(
        &self,
        version: &ModelVersion,
        source: String,
    ) -> anyhow::Result<Arc<ServedModel>> {
        let number = version.version.to_string();
        if let Some(existing) = self.loaded(&version.name, &number) {
            return Ok(existing);
        }
        let onnx = self
            .store
            .with(|store| Ok(store.artifacts().get(&version.onnx)?))?;
        let mut model = ServedModel::from_version(version, &onnx, source)?;
        let policy = self.policy.for_model(&version.name);
        let training_data = version.training_data.as_ref().map(|d| d.digest.clone());
        if let Some(pipeline) = &version.pipeline {
            // Raw rows in: the window keeps them, and drift compares them with the raw rows
            // the pipeline was fitted on.
            let columns = pipeline
                .inputs
                .iter()
                .map(|i| (i.name.clone(), i.kind))
                .collect();
            let reference = pipeline.reference.clone().or(training_data);
            model.monitor = Arc::new(VersionMonitor::with_window(
                monitor::Window::raw(columns, policy.monitor.window),
                reference,
            ));
            return Ok(Arc::new(model));
        }
        let features = if version.features.len() == model.features.len() {
            version.features.clone()
        } else {
            model.features.clone()
        };
        model.monitor = Arc::new(VersionMonitor::new(
            features,
            policy.monitor.window,
            training_data,
        ));
        Ok(Arc::new(model))
    }

    /// The version of `name` being served now, if it is.
    fn loaded(&self, name: &str, version: &str) -> Option<Arc<ServedModel>> {
        let deployments = lock_read(&self.deployments);
        let deployment = deployments.get(name)?;
        deployment.arm_of(version).map(|(_, model)| model.clone())
    }

    /// Builds the deployment a plan describes.
    fn realize(&self, planned: Planned) -> anyhow::Result<Deployment> {
        match planned {
            Planned::File { name, path } => {
                let bytes = std::fs::read(&path).map_err(|err| {
                    anyhow::anyhow!("cannot read model {}: {err}", path.display())
                })?;
                let mut model = ServedModel::load(&name, "1", path.display().to_string(), &bytes)
                    .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
                let policy = self.policy_of(&name);
                model.monitor = Arc::new(VersionMonitor::new(
                    model.features.clone(),
                    policy.monitor.window,
                    None,
                ));
                Ok(Deployment::champion_only(Arc::new(model), policy))
            }
            Planned::Registry {
                champion,
                shown,
                challenger,
            } => {
                let policy = self.policy_of(&champion.name);
                let champion_model = self.served_version(
                    &champion,
                    format!("registry: {shown} = v{}", champion.version),
                )?;
                Ok(match challenger {
                    None => Deployment::champion_only(champion_model, policy),
                    Some((version, strategy, percent, why)) => {
                        let challenger_model = self.served_version(
                            &version,
                            format!(
                                "registry: {}@{CHALLENGER} = v{}",
                                version.name, version.version
                            ),
                        )?;
                        Deployment::with_challenger(
                            champion_model,
                            challenger_model,
                            strategy,
                            percent,
                            why,
                            policy,
                        )
                    }
                })
            }
        }
    }

    /// Emits the event of a challenger deployed.
    fn announce(&self, deployment: &Deployment) {
        if let Some(challenger) = &deployment.challenger {
            let share = match challenger.strategy {
                Strategy::Shadow => "a copy of the traffic".to_string(),
                _ => format!(
                    "{}% of the traffic",
                    deployment.challenger_percent().unwrap_or(0.0)
                ),
            };
            self.emit(
                &deployment.name,
                "deployed",
                format!(
                    "v{} deployed beside the champion v{} as a {}, {share} ({})",
                    challenger.model.version,
                    deployment.champion.version,
                    challenger.strategy,
                    challenger.why
                ),
            );
        }
    }

    /// Records a model's event, logs it and tells the subscribers.
    fn emit(&self, model: &str, kind: &'static str, message: String) {
        self.publish(Some(model), None, None, kind, message);
    }

    /// Records a workflow's (or a run's) event, logs it and tells the subscribers.
    pub fn emit_workflow(
        &self,
        workflow: &str,
        run: Option<u64>,
        kind: &'static str,
        message: String,
    ) {
        self.publish(None, Some(workflow), run, kind, message);
    }

    fn publish(
        &self,
        model: Option<&str>,
        workflow: Option<&str>,
        run: Option<u64>,
        kind: &'static str,
        message: String,
    ) {
        let mut event = ServeEvent {
            seq: 0,
            at: crate::store::records::now(),
            model: model.map(str::to_string),
            workflow: workflow.map(str::to_string),
            run,
            kind: kind.to_string(),
            message,
        };
        // A cluster numbers its events in the shared store, so every process and the next
        // leader see one history; one process numbers its own.
        event.seq = match self.cluster_store() {
            Some(store) => {
                let json = serde_json::to_value(&event).expect("events serialise");
                match store.append_event(&json) {
                    Ok(seq) => seq,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot add an event to the cluster's log");
                        return;
                    }
                }
            }
            None => self.event_seq.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let subject = model.or(workflow).unwrap_or_default();
        match kind {
            "rolled-back" | "registry-error" | "run-failed" | "workflow-invalid" | "dropped" => {
                tracing::warn!(subject, kind, "{}", event.message)
            }
            _ => tracing::info!(subject, kind, "{}", event.message),
        }
        let mut events = lock(&self.events);
        events.push_back(event.clone());
        if events.len() > EVENTS_KEPT {
            events.pop_front();
        }
        drop(events);
        // Nobody listening is fine.
        let _ = self.subscribers.send(event);
    }

    /// The shared store of a cluster, whose event log this server writes and reads.
    fn cluster_store(&self) -> Option<&Arc<crate::store::Store>> {
        match &self.store {
            StoreAccess::Shared(store) if store.postgres().is_some() => Some(store),
            _ => None,
        }
    }

    /// Events after `since`, oldest first.
    pub fn events(&self, since: u64) -> Vec<ServeEvent> {
        if let Some(store) = self.cluster_store() {
            return match store.events_after(since, EVENTS_KEPT) {
                Ok(events) => events
                    .into_iter()
                    .filter_map(|e| serde_json::from_value(e).ok())
                    .collect(),
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the cluster's event log");
                    Vec::new()
                }
            };
        }
        lock(&self.events)
            .iter()
            .filter(|e| e.seq > since)
            .cloned()
            .collect()
    }

    /// The events after `since`; when there are none yet, waits up to `wait` for the next one.
    /// Subscribed before reading, so an event between the two is not missed.
    pub async fn events_after(&self, since: u64, wait: Option<Duration>) -> Vec<ServeEvent> {
        let mut next = self.subscribe();
        // Another process of a cluster adds events too: its notification wakes the wait.
        let mut cluster = self.store.cluster_notifications();
        let found = self.events(since);
        let Some(wait) = wait.filter(|_| found.is_empty()) else {
            return found;
        };
        let _ = tokio::time::timeout(wait, async {
            let from_cluster = async {
                match &mut cluster {
                    Some(notes) => loop {
                        match notes.recv().await {
                            Ok((channel, _))
                                if channel == crate::store::postgres::channel::EVENTS =>
                            {
                                break;
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    },
                    None => std::future::pending().await,
                }
            };
            let from_here = async {
                loop {
                    match next.recv().await {
                        Ok(event) if event.seq <= since => continue,
                        _ => break,
                    }
                }
            };
            tokio::select! {
                () = from_cluster => {}
                () = from_here => {}
            }
        })
        .await;
        self.events(since)
    }

    /// Live quality from feedback of each version of `model`, by version.
    pub fn live_quality(&self, model: &str) -> BTreeMap<String, feedback::Quality> {
        self.feedback
            .quality()
            .into_iter()
            .filter(|((name, _), _)| name == model)
            .map(|((_, version), quality)| (version, quality))
            .collect()
    }

    /// A stream of the events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ServeEvent> {
        self.subscribers.subscribe()
    }

    /// Every deployment, by model name.
    pub fn deployments(&self) -> Vec<Arc<Deployment>> {
        lock_read(&self.deployments).values().cloned().collect()
    }

    /// The deployment of one model.
    pub fn deployment(&self, name: &str) -> Option<Arc<Deployment>> {
        lock_read(&self.deployments).get(name).cloned()
    }

    /// The names served, for error messages.
    fn served_names(&self) -> String {
        lock_read(&self.deployments)
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Replaces `expected` by `new`, unless another change replaced it first.
    fn swap(&self, expected: &Arc<Deployment>, new: Deployment) -> bool {
        let mut deployments = lock_write(&self.deployments);
        match deployments.get(&expected.name) {
            Some(current) if Arc::ptr_eq(current, expected) => {
                deployments.insert(new.name.clone(), Arc::new(new));
                true
            }
            _ => false,
        }
    }

    /// Replaces whatever is deployed for `new.name`.
    fn replace(&self, new: Deployment) {
        lock_write(&self.deployments).insert(new.name.clone(), Arc::new(new));
    }

    /// Live quality of both sides of a deployment, when both have feedback.
    fn quality_pair(&self, deployment: &Deployment) -> Option<QualityPair> {
        let challenger = deployment.challenger.as_ref()?;
        Some(QualityPair {
            champion: self
                .feedback
                .quality_of(&deployment.name, &deployment.champion.version)?,
            challenger: self
                .feedback
                .quality_of(&deployment.name, &challenger.model.version)?,
        })
    }

    /// Reviews a deployment after a challenger request and applies the verdict.
    fn review(self: &Arc<Self>, deployment: &Arc<Deployment>) {
        let verdict = deployment.review(Instant::now(), &|| self.quality_pair(deployment));
        self.apply(deployment, verdict);
    }

    /// Reviews a deployment's live quality after feedback.
    fn review_quality(self: &Arc<Self>, name: &str) {
        let Some(deployment) = self.deployment(name) else {
            return;
        };
        if let Some(pair) = self.quality_pair(&deployment) {
            let verdict = deployment.review_quality(&pair);
            self.apply(&deployment, verdict);
        }
    }

    /// Carries out a review's verdict: a canary step, a promotion or a rollback, in memory at
    /// once and in the registry as soon as the store can be written.
    fn apply(self: &Arc<Self>, deployment: &Arc<Deployment>, verdict: Verdict) {
        let name = deployment.name.clone();
        match verdict {
            Verdict::Hold => {}
            Verdict::Held { reason } => {
                if deployment.report_hold() {
                    self.emit(&name, "rollout-held", format!("rollout held: {reason}"));
                }
            }
            Verdict::Step { percent, reason } => {
                if deployment.advance(percent, Instant::now()) {
                    self.emit(
                        &name,
                        "canary-step",
                        format!("canary now at {percent}% of the traffic: {reason}"),
                    );
                }
            }
            Verdict::Promote { reason } => {
                let Some(challenger) = &deployment.challenger else {
                    return;
                };
                if !deployment.conclude() {
                    return;
                }
                let promoted = challenger.model.clone();
                let old = deployment.champion.version.clone();
                let policy = deployment.policy.clone();
                if !self.swap(
                    deployment,
                    Deployment::champion_only(promoted.clone(), policy),
                ) {
                    return;
                }
                lock(&self.automatic).entry(name.clone()).or_default().1 += 1;
                self.emit(
                    &name,
                    "promoted",
                    format!("v{} promoted over v{old}: {reason}", promoted.version),
                );
                if self.is_registry(&name) {
                    let version: u32 = promoted.version.parse().unwrap_or(0);
                    let reason = format!("automatic promotion: {reason}");
                    let what = format!("{name}@{CHAMPION} -> v{version}");
                    self.write_registry(name.clone(), what, move |store, name| {
                        let actor = Actor::Policy {
                            action: "canary promotion".into(),
                        };
                        store.move_alias(name, CHAMPION, version, &reason, actor.clone(), false)?;
                        if store.alias(name, CHALLENGER)? == Some(version) {
                            store.remove_alias(name, CHALLENGER, &reason, actor, false)?;
                        }
                        Ok(())
                    });
                }
            }
            Verdict::Rollback { reason } => {
                let Some(challenger) = &deployment.challenger else {
                    return;
                };
                if !deployment.conclude() {
                    return;
                }
                let version = challenger.model.version.clone();
                let policy = deployment.policy.clone();
                lock(&self.retired).insert((name.clone(), version.clone()));
                if !self.swap(
                    deployment,
                    Deployment::champion_only(deployment.champion.clone(), policy),
                ) {
                    return;
                }
                lock(&self.automatic).entry(name.clone()).or_default().0 += 1;
                let figures = challenger.stats.snapshot();
                let shadow = deployment
                    .shadow_comparison()
                    .and_then(|c| c.agreement.map(|a| (a, c.rows)))
                    .map(|(a, rows)| {
                        format!(
                            "; as a shadow it agreed with the champion on {:.0}% of {rows} rows",
                            a * 100.0
                        )
                    })
                    .unwrap_or_default();
                self.emit(
                    &name,
                    "rolled-back",
                    format!(
                        "v{version} rolled back, all traffic to the champion v{}: {reason} (it answered {} requests, {} failed{shadow})",
                        deployment.champion.version, figures.requests, figures.errors
                    ),
                );
                if self.is_registry(&name) {
                    let number: u32 = version.parse().unwrap_or(0);
                    let reason = format!("automatic rollback: {reason}");
                    let what = format!("{name}@{CHALLENGER} (v{number}) removed");
                    self.write_registry(name.clone(), what, move |store, name| {
                        if store.alias(name, CHALLENGER)? == Some(number) {
                            let actor = Actor::Policy {
                                action: "automatic rollback".into(),
                            };
                            store.remove_alias(name, CHALLENGER, &reason, actor, true)?;
                        }
                        Ok(())
                    });
                }
            }
        }
    }

    fn is_registry(&self, name: &str) -> bool {
        matches!(
            lock_read(&self.sources).get(name),
            Some(ModelSource::Registry { .. })
        )
    }

    /// Writes an alias move in the background, retrying while the store is busy, so the
    /// request that triggered it is not held up and a briefly locked store loses nothing.
    fn write_registry(
        self: &Arc<Self>,
        name: String,
        what: String,
        work: impl Fn(&Store, &str) -> Result<(), StoreError> + Send + Sync + 'static,
    ) {
        *lock(&self.pending_writes).entry(name.clone()).or_default() += 1;
        let server = self.clone();
        let work = Arc::new(work);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(50);
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let (store, work, model) = (server.store.clone(), work.clone(), name.clone());
                let outcome =
                    tokio::task::spawn_blocking(move || store.with(|s| work(s, &model))).await;
                match outcome {
                    Ok(Ok(())) => {
                        server.emit(
                            &name,
                            "registry",
                            format!("recorded in the registry: {what}"),
                        );
                        break;
                    }
                    Ok(Err(StoreError::Locked(_))) if Instant::now() < deadline => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    Ok(Err(err)) => {
                        server.emit(
                            &name,
                            "registry-error",
                            format!("the registry could not record the change: {err}"),
                        );
                        break;
                    }
                    Err(err) => {
                        server.emit(&name, "registry-error", format!("{err}"));
                        break;
                    }
                }
            }
            let mut pending = lock(&server.pending_writes);
            if let Some(count) = pending.get_mut(&name) {
                *count -= 1;
                if *count == 0 {
                    pending.remove(&name);
                }
            }
        });
    }

    /// Re-reads a model's source and deploys what it says now (admin reload, or an alias moved
    /// elsewhere). With `only_if_changed`, nothing happens when the versions are the same.
    pub fn redeploy(
        &self,
        name: &str,
        only_if_changed: bool,
    ) -> Result<Arc<Deployment>, ActionError> {
        let source = lock_read(&self.sources)
            .get(name)
            .cloned()
            .ok_or_else(|| ActionError::NotFound(format!("no model `{name}` is served")))?;
        let planned = self.plan(&source)?;
        let current = self.deployment(name);
        if only_if_changed && let Some(current) = &current {
            let now = (
                current.champion.version.clone(),
                current.challenger.as_ref().map(|c| c.model.version.clone()),
            );
            if planned.versions() == now {
                return Ok(current.clone());
            }
        }
        let deployment = self.realize(planned)?;
        let description = format!(
            "now serving v{}{}",
            deployment.champion.version,
            deployment
                .challenger
                .as_ref()
                .map(|c| format!(" with v{} as the challenger", c.model.version))
                .unwrap_or_default()
        );
        self.replace(deployment);
        let deployed = self.deployment(name).expect("just deployed");
        self.emit(name, "redeployed", description);
        self.announce(&deployed);
        Ok(deployed)
    }

    /// Reads the alias stamp and redeploys the registry models whose aliases moved.
    fn follow_registry(&self) {
        let stamp = self.store.alias_stamp();
        {
            let mut last = lock(&self.stamp);
            if *last == stamp {
                return;
            }
            *last = stamp;
        }
        let sources = lock_read(&self.sources).clone();
        for (name, source) in &sources {
            if !matches!(source, ModelSource::Registry { .. })
                || lock(&self.pending_writes).contains_key(name)
            {
                continue;
            }
            if let Err(err) = self.redeploy(name, true) {
                tracing::warn!(model = %name, error = %err, "cannot follow the registry");
            }
        }
    }

    /// Promotes a version (the challenger's by default) to champion, by an admin.
    fn promote(
        &self,
        name: &str,
        version: Option<u32>,
        actor: Actor,
    ) -> Result<Arc<Deployment>, ActionError> {
        let deployment = self.registry_deployment(name)?;
        let version = match (version, &deployment.challenger) {
            (Some(version), _) => version,
            (None, Some(challenger)) => challenger.model.version.parse().unwrap_or(0),
            (None, None) => {
                return Err(ActionError::Invalid(format!(
                    "model `{name}` has no challenger to promote: name a version"
                )));
            }
        };
        self.store.with(|store| {
            store.move_alias(
                name,
                CHAMPION,
                version,
                "promoted by an admin",
                actor.clone(),
                false,
            )?;
            if store.alias(name, CHALLENGER)? == Some(version) {
                store.remove_alias(name, CHALLENGER, "promoted by an admin", actor, false)?;
            }
            Ok(())
        })?;
        self.emit(name, "promoted", format!("v{version} promoted by an admin"));
        self.redeploy(name, false)
    }

    /// Rolls back by an admin: the challenger out of traffic when there is one, else the
    /// champion alias back to its previous version.
    fn rollback(&self, name: &str, actor: Actor) -> Result<Arc<Deployment>, ActionError> {
        let deployment = self.registry_deployment(name)?;
        match &deployment.challenger {
            Some(challenger) => {
                let version = challenger.model.version.clone();
                self.store.with(|store| {
                    store.remove_alias(name, CHALLENGER, "rolled back by an admin", actor, true)?;
                    Ok(())
                })?;
                lock(&self.retired).insert((name.to_string(), version.clone()));
                self.emit(
                    name,
                    "rolled-back",
                    format!("v{version} rolled back by an admin"),
                );
            }
            None => {
                let event = self.store.with(|store| {
                    store.rollback(name, CHAMPION, "rolled back by an admin", actor)
                })?;
                self.emit(
                    name,
                    "rolled-back",
                    format!(
                        "champion rolled back by an admin: v{} -> v{}",
                        event.from.unwrap_or(0),
                        event.to.unwrap_or(0)
                    ),
                );
            }
        }
        self.redeploy(name, false)
    }

    /// Deploys a challenger by an explicit strategy (or none: `off`), by an admin.
    fn set_strategy(
        &self,
        name: &str,
        strategy: Option<Strategy>,
        percent: Option<u8>,
        version: Option<u32>,
        actor: Actor,
    ) -> Result<Arc<Deployment>, ActionError> {
        let current = self.registry_deployment(name)?;
        if let Some(percent) = percent
            && !(1..=100).contains(&percent)
        {
            return Err(ActionError::Invalid(format!(
                "percent {percent} must be between 1 and 100"
            )));
        }
        let Some(strategy) = strategy else {
            if let Some(challenger) = &current.challenger {
                let number = challenger.model.version.clone();
                self.store.with(|store| {
                    store.remove_alias(
                        name,
                        CHALLENGER,
                        "deployment stopped by an admin",
                        actor,
                        false,
                    )?;
                    Ok(())
                })?;
                lock(&self.retired).insert((name.to_string(), number));
            }
            return self.redeploy(name, false);
        };
        let wanted = match (version, &current.challenger) {
            (Some(version), _) => version,
            (None, Some(challenger)) => challenger.model.version.parse().unwrap_or(0),
            (None, None) => self
                .store
                .with(|store| store.alias(name, CHALLENGER))?
                .ok_or_else(|| {
                    ActionError::Invalid(format!(
                        "model `{name}` has no challenger: name the version to deploy"
                    ))
                })?,
        };
        if wanted.to_string() == current.champion.version {
            return Err(ActionError::Invalid(format!(
                "v{wanted} is the champion already"
            )));
        }
        let record = self.store.with(|store| {
            if store.alias(name, CHALLENGER)? != Some(wanted) {
                store.move_alias(
                    name,
                    CHALLENGER,
                    wanted,
                    "deployed by an admin",
                    actor,
                    false,
                )?;
            }
            store.version(name, wanted)
        })?;
        lock(&self.retired).remove(&(name.to_string(), wanted.to_string()));
        let challenger = self.served_version(
            &record,
            format!("registry: {name}@{CHALLENGER} = v{wanted}"),
        )?;
        let deployment = Deployment::with_challenger(
            current.champion.clone(),
            challenger,
            strategy,
            percent,
            "set by an admin".into(),
            current.policy.clone(),
        );
        self.replace(deployment);
        let deployed = self.deployment(name).expect("just deployed");
        self.announce(&deployed);
        Ok(deployed)
    }

    fn registry_deployment(&self, name: &str) -> Result<Arc<Deployment>, ActionError> {
        let deployment = self.deployment(name).ok_or_else(|| {
            ActionError::NotFound(format!(
                "no model `{name}` is served (served: {})",
                self.served_names()
            ))
        })?;
        if !self.is_registry(name) {
            return Err(ActionError::Invalid(format!(
                "model `{name}` is served from a file: only registry models have versions to deploy"
            )));
        }
        if !matches!(
            lock_read(&self.sources)
                .get(name)
                .and_then(ModelSource::registry_ref),
            Some(Ok(ModelRef::Alias(_, ref alias))) if alias == CHAMPION
        ) {
            return Err(ActionError::Invalid(format!(
                "model `{name}` is served by a fixed version or alias, not by its `{CHAMPION}`"
            )));
        }
        Ok(deployment)
    }

    /// Serves a registered model by its champion from now on, if it is not served yet and has
    /// a champion; returns whether it is served.
    pub fn serve_registered(&self, name: &str) -> Result<bool, ActionError> {
        if self.deployment(name).is_some() {
            return Ok(true);
        }
        let source = ModelSource::Registry {
            reference: name.to_string(),
        };
        let has_champion = self
            .store
            .with(|store| store.alias(name, CHAMPION))?
            .is_some();
        if !has_champion {
            return Ok(false);
        }
        lock_write(&self.sources).insert(name.to_string(), source.clone());
        let deployment = self.realize(self.plan(&source)?)?;
        self.emit(
            name,
            "served",
            format!("now serving v{}", deployment.champion.version),
        );
        self.announce(&deployment);
        self.replace(deployment);
        Ok(true)
    }

    /// The recent labelled traffic of a served model, with the names of its feature columns
    /// and of its target.
    pub fn labelled(&self, name: &str) -> Option<(Vec<String>, feedback::Labelled)> {
        let deployment = self.deployment(name)?;
        Some((
            deployment.champion.features.clone(),
            self.feedback.labelled(name),
        ))
    }

    /// The live quality of a model's champion, when feedback has arrived.
    pub fn champion_quality(&self, name: &str) -> Option<(String, feedback::Quality)> {
        let deployment = self.deployment(name)?;
        let version = deployment.champion.version.clone();
        let quality = self.feedback.quality_of(name, &version)?;
        Some((version, quality))
    }

    /// The latest drift check of a model's champion.
    pub fn champion_drift(&self, name: &str) -> Option<(String, DriftReport)> {
        let deployment = self.deployment(name)?;
        let report = deployment.champion.monitor.last()?;
        Some((deployment.champion.version.clone(), report))
    }

    /// Rolls the champion back to its previous version, by a rule of the daemon.
    pub fn rollback_champion(&self, name: &str, reason: &str) -> Result<(), ActionError> {
        let event = self.store.with(|store| {
            store.rollback(
                name,
                CHAMPION,
                reason,
                Actor::Policy {
                    action: "decay rollback".into(),
                },
            )
        })?;
        self.emit(
            name,
            "rolled-back",
            format!(
                "champion v{} -> v{}: {reason}",
                event.from.unwrap_or(0),
                event.to.unwrap_or(0)
            ),
        );
        self.redeploy(name, false)?;
        Ok(())
    }

    /// Counts of automatic rollbacks and promotions, per model.
    fn automatic(&self) -> BTreeMap<String, (u64, u64)> {
        lock(&self.automatic).clone()
    }

    /// The drift plugin, loaded on first use.
    async fn drift_checker(&self) -> Result<&DriftChecker, String> {
        self.drift
            .get_or_init(|| async {
                let runtime = match &self.runtime {
                    Some(runtime) => runtime.clone(),
                    None => {
                        Arc::new(Runtime::with_default_cache().map_err(|err| format!("{err:#}"))?)
                    }
                };
                let wasm = crate::engine::builtin::get("psi-drift")
                    .ok_or("the psi-drift plugin is not built into this binary")?;
                let plugin = runtime
                    .load(wasm)
                    .await
                    .map_err(|err| format!("cannot load psi-drift: {err}"))?;
                Ok(DriftChecker { runtime, plugin })
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Checks a version's window for drift against its training data, now.
    async fn check_drift(self: &Arc<Self>, model: &Arc<ServedModel>) -> DriftReport {
        let monitor = &model.monitor;
        let _one_at_a_time = monitor.checking.lock().await;
        monitor.begin_check();
        let current = monitor.window.table();
        let rows = current.row_count();
        let report = match self.drift_inputs(model, current).await {
            Err(error) => DriftReport::failed(rows, error),
            Ok((reference, current, config)) => match self.drift_checker().await {
                Err(error) => DriftReport::failed(rows, error),
                Ok(checker) => {
                    let limits = Limits {
                        memory: 1 << 30,
                        timeout: Duration::from_secs(120),
                        max_output: 64 << 20,
                    };
                    let execution = checker
                        .runtime
                        .call(
                            &checker.plugin,
                            Call::Check {
                                reference,
                                current,
                                config,
                            },
                            &limits,
                            &Capabilities::default(),
                        )
                        .await;
                    match execution.outcome {
                        Ok(Output::Drift(outcome)) => DriftReport::checked(rows, &outcome),
                        Ok(_) => {
                            DriftReport::failed(rows, "the drift check returned no drift".into())
                        }
                        Err(failure) => {
                            DriftReport::failed(rows, format!("the drift check failed: {failure}"))
                        }
                    }
                }
            },
        };
        let changed = monitor.finish_check(report.clone());
        if changed {
            let message = match &report.result {
                monitor::DriftResult::Checked {
                    drifted: true,
                    drift_share,
                    features,
                } => format!(
                    "v{}: live inputs drifted from the training data ({:.0}% of features: {})",
                    model.version,
                    drift_share * 100.0,
                    features
                        .iter()
                        .filter(|f| f.drifted)
                        .map(|f| f.feature.as_str())
                        .collect::<HashSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                monitor::DriftResult::Checked { .. } => {
                    format!("v{}: no drift from the training data", model.version)
                }
                monitor::DriftResult::Failed { error } => {
                    format!("v{}: drift cannot be checked: {error}", model.version)
                }
            };
            self.emit(&model.name, "drift", message);
        }
        report
    }

    /// The drift check's reference (the training table with the version's own predictions),
    /// current table and configuration.
    async fn drift_inputs(
        &self,
        model: &Arc<ServedModel>,
        current: crate::table::Table,
    ) -> Result<(crate::table::Table, crate::table::Table, String), String> {
        let Some(digest) = model.monitor.reference.clone() else {
            return Err(
                "no training data to compare with: only registry models know theirs".into(),
            );
        };
        if current.row_count() == 0 {
            return Err("no requests seen yet".into());
        }
        let store = self.store.clone();
        let served = model.clone();
        let reference = tokio::task::spawn_blocking(move || {
            served
                .monitor
                .reference_table(|| reference_table(&store, &served, &digest))
        })
        .await
        .map_err(|err| err.to_string())??;
        let shared: Vec<String> = current
            .column_names()
            .into_iter()
            .filter(|name| reference.column(name).is_some())
            .map(str::to_string)
            .collect();
        let policy = self.policy.for_model(&model.name);
        let mut config = serde_json::to_value(&policy.monitor.drift)
            .map_err(|err| format!("monitor.drift: {err}"))?;
        if config.get("features").is_none() {
            config["features"] = serde_json::json!(shared);
        }
        Ok((reference, current, config.to_string()))
    }

    /// Runs the scheduled drift checks that are due.
    async fn check_due_drift(self: &Arc<Self>) {
        let now = crate::store::records::now();
        for deployment in self.deployments() {
            let monitor = &deployment.policy.monitor;
            let every = monitor.drift_every.as_millis() as u64;
            let mut models = vec![deployment.champion.clone()];
            models.extend(deployment.challenger.as_ref().map(|c| c.model.clone()));
            for model in models {
                if model.monitor.due(every, monitor.drift_min_rows, now) {
                    self.check_drift(&model).await;
                }
            }
        }
    }

    fn record_feedback(
        self: &Arc<Self>,
        name: &str,
        id: &str,
        truth: &[serde_json::Value],
    ) -> Result<(String, usize), feedback::FeedbackError> {
        let outcome = self.feedback.record(name, id, truth)?;
        self.review_quality(name);
        Ok(outcome)
    }

    /// Runs the challenger on a copy of a request the champion answered, off the request path,
    /// and compares the answers; its predictions join the request remembered for feedback
    /// (`remembered`: its id and serial). Skipped (and counted) when the challenger is still
    /// busy.
    fn mirror(
        self: &Arc<Self>,
        deployment: Arc<Deployment>,
        inputs: Arc<model::Inputs>,
        champion_outputs: Vec<model::NamedTensor>,
        remembered: Option<(String, u64)>,
        vouched: answer::Vouched,
    ) {
        let Ok(permit) = self.shadow_slots.clone().try_acquire_owned() else {
            deployment.record_dropped_copy();
            return;
        };
        let Some(challenger) = deployment.challenger.as_ref().map(|c| c.model.clone()) else {
            return;
        };
        let server = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let model = challenger.clone();
            let answer = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let outputs = model.answer(&inputs, &[], vouched.counts);
                (outputs, started.elapsed())
            })
            .await;
            let (answer, took) = match answer {
                Ok((outputs, took)) => (Ok(outputs), took),
                Err(err) => (Err(err), Duration::ZERO),
            };
            let rows = champion_outputs
                .first()
                .map_or(0, |o| o.shape.first().copied().unwrap_or(0));
            match answer {
                Ok(Ok((outputs, predictions))) => {
                    if vouched.counts {
                        deployment.record(Arm::Challenger, true, took);
                    }
                    deployment.record_shadow(&compare(&champion_outputs, &outputs));
                    if let (Some((id, serial)), Some(predictions)) = (&remembered, predictions) {
                        server.feedback.remember_copy(
                            &deployment.name,
                            id,
                            *serial,
                            &challenger.version,
                            predictions,
                        );
                    }
                    server.metrics.record(
                        &deployment.name,
                        &challenger.version,
                        "shadow",
                        Ok(rows),
                        took,
                    );
                }
                Ok(Err(err)) => {
                    let status = match err {
                        model::ModelError::BadRequest(_) | model::ModelError::BadRow(_) => 400,
                        _ => 500,
                    };
                    let reads_alike = challenger.reads_like(&deployment.champion);
                    if vouched.counts
                        && answer::challenger_at_fault(
                            status,
                            true,
                            vouched.trusted || !reads_alike,
                        )
                    {
                        deployment.record(Arm::Challenger, false, took);
                    }
                    server.metrics.record(
                        &deployment.name,
                        &challenger.version,
                        "shadow",
                        Err(status),
                        took,
                    );
                }
                Err(err) => tracing::error!(error = %err, "a shadow copy panicked"),
            }
            if vouched.counts {
                server.review(&deployment);
            }
        });
    }
}

/// Compares two answers to the same rows: labels, and scores output by output.
fn compare(
    champion: &[model::NamedTensor],
    challenger: &[model::NamedTensor],
) -> deployment::Compared {
    let ours = feedback::predictions(challenger);
    let theirs = feedback::predictions(champion);
    let rows = theirs.as_ref().map_or(0, Vec::len) as u64;
    let agreed = match (&ours, &theirs) {
        (Some(a), Some(b)) if a.len() == b.len() => {
            Some(a.iter().zip(b).filter(|(x, y)| x == y).count() as u64)
        }
        _ => None,
    };
    let score = |outputs: &[model::NamedTensor]| -> Option<Vec<f64>> {
        let tensor = outputs
            .iter()
            .find(|o| o.name == "probabilities")
            .or_else(|| outputs.iter().find(|o| o.name == "prediction"))?;
        Some(match &tensor.data {
            model::Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            model::Data::F64(v) => v.clone(),
            _ => return None,
        })
    };
    let deltas = match (score(champion), score(challenger)) {
        (Some(a), Some(b)) if a.len() == b.len() => {
            a.iter().zip(&b).map(|(x, y)| (x - y).abs()).collect()
        }
        _ => Vec::new(),
    };
    deployment::Compared {
        rows,
        agreed,
        deltas,
    }
}

/// The training table of a version with the version's own predictions on it.
fn reference_table(
    store: &StoreAccess,
    model: &ServedModel,
    digest: &str,
) -> Result<crate::table::Table, String> {
    let bytes = store
        .with(|store| Ok(store.artifacts().get(digest)?))
        .map_err(|err| format!("the training data: {err}"))?;
    let table = crate::store::codec::decode_table(&bytes)
        .map_err(|err| format!("the training data {digest}: {err}"))?;
    let features = model.monitor.window.features();
    let table = table
        .select(features)
        .map_err(|err| format!("the training data lacks a feature of the model: {err}"))?;
    let inputs = if model.takes_raw {
        model::Inputs::Rows(table.clone())
    } else {
        // The model's own feature tensor, by position (booleans as 0/1, nulls as NaN), as the
        // trainer saw the table.
        let rows = table.row_count();
        let mut values = Vec::with_capacity(rows * features.len());
        for row in 0..rows {
            for feature in features {
                let column = table.column(feature).expect("selected above");
                values.push(column.f64_at(row).map_or(f32::NAN, |v| v as f32));
            }
        }
        model::Inputs::Tensors(vec![model::NamedTensor {
            name: model.inputs[0].name.clone(),
            shape: vec![rows, features.len()],
            data: model::Data::F32(values),
            valid: None,
        }])
    };
    let outputs = model
        .infer(&inputs, &[])
        .map_err(|err| format!("predicting on the training data: {err}"))?;
    match feedback::predictions(&outputs) {
        Some(predictions) => table
            .with_column(monitor::prediction_column(predictions.iter().collect()))
            .map_err(|err| err.to_string()),
        None => Ok(table),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock_read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn lock_write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Serves until `shutdown` resolves; `on_listening` gets the bound address (the port may have
/// been chosen by the system) and the server.
pub async fn run(
    config: ServeConfig,
    on_listening: impl FnOnce(SocketAddr, &Arc<Server>),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking({
        let config = config.clone();
        move || Server::start(&config)
    })
    .await??;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    on_listening(listener.local_addr()?, &server);
    let background = spawn_background(&server, config.watch);
    let limits = crate::http::Limits {
        max_body: config.max_body as u64,
        ..config.http.clone()
    };
    let served =
        crate::http::serve(listener, router(server, config.max_body), limits, shutdown).await;
    background.abort();
    served?;
    Ok(())
}

/// The server's own work beside the requests: following the registry and checking drift.
pub fn spawn_background(
    server: &Arc<Server>,
    watch: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    let server = server.clone();
    tokio::spawn(async move {
        // Drift checks fall due on a 1 s tick (or the watch interval when shorter).
        let tick = watch
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A cluster's alias moves arrive as notifications, followed at once; the stamp is
        // still read every `watch`, so a missed notification costs one interval.
        let mut moves = server.store.cluster_notifications();
        let mut last_follow = tokio::time::Instant::now();
        loop {
            let announced = match &mut moves {
                Some(moves) if watch.is_some() => {
                    tokio::select! {
                        _ = interval.tick() => false,
                        // An alias moved (or notifications were missed): read the registry.
                        () = crate::store::postgres::next_notification(
                            moves,
                            crate::store::postgres::channel::ALIASES,
                        ) => true,
                    }
                }
                _ => {
                    interval.tick().await;
                    false
                }
            };
            if let Some(every) = watch
                && (announced || last_follow.elapsed() + tick / 2 >= every)
            {
                last_follow = tokio::time::Instant::now();
                let follower = server.clone();
                let _ = tokio::task::spawn_blocking(move || follower.follow_registry()).await;
            }
            server.check_due_drift().await;
        }
    })
}

/// How the versions of a deployment are shown: `1 (champion), 2 (challenger)`.
fn served_versions(deployment: &Deployment) -> String {
    let mut text = format!("{} (champion)", deployment.champion.version);
    if let Some(challenger) = &deployment.challenger {
        text.push_str(&format!(", {} (challenger)", challenger.model.version));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_answers_are_compared_by_label_and_score() {
        let output = |probabilities: Vec<f32>, labels: Vec<&str>| {
            vec![
                model::NamedTensor {
                    name: "probabilities".into(),
                    shape: vec![probabilities.len(), 1],
                    data: model::Data::F32(probabilities),
                    valid: None,
                },
                model::NamedTensor {
                    name: "label".into(),
                    shape: vec![labels.len(), 1],
                    data: model::Data::Bytes(labels.into_iter().map(String::from).collect()),
                    valid: None,
                },
            ]
        };
        let compared = compare(
            &output(vec![0.9, 0.2, 0.6], vec!["1", "0", "1"]),
            &output(vec![0.8, 0.3, 0.4], vec!["1", "0", "0"]),
        );
        assert_eq!((compared.rows, compared.agreed), (3, Some(2)));
        let mean: f64 = compared.deltas.iter().sum::<f64>() / 3.0;
        assert!((mean - 0.4 / 3.0).abs() < 1e-6, "{mean}");
    }
}
