//! wflow on several machines around one PostgreSQL database: the step queue as the engine
//! uses it ([`QueueSteps`]), the worker that executes queued steps ([`Worker`]), and the
//! daemons' leader election ([`wait_for_leadership`]).
//!
//! What is guaranteed, and how:
//! - Every step's plugin call runs in a worker's sandbox exactly as in the coordinator's own
//!   process: plugins and inputs are fetched by digest (and verified), outputs are stored as
//!   artifacts before the result names them.
//! - Exactly one result of each queued call is recorded: the queue fences completion by claim
//!   ([`crate::store::queue`]). A worker killed mid-step loses its lease; another takes the call
//!   within the lease time (30 s by default) and the step reports the extra attempt.
//! - One daemon leads (a PostgreSQL advisory lock held on its session connection); the others
//!   wait. A leader killed with SIGKILL loses its connection and with it the lock at once; the
//!   next daemon takes over within its poll interval and resumes the runs the dead leader was
//!   coordinating (their coordinator's liveness lock is gone too).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::run::{output_from_values, output_values};
use crate::engine::{QueuedCall, QueuedExecution, StepQueue, Value, call_for};
use crate::plugin::{Capabilities, DirGrant, Execution, Failure, Limits, Runtime};
use crate::store::codec;
use crate::store::postgres::{Postgres, channel};
use crate::store::queue::{
    Claim, TaskGrants, TaskInput, TaskOutputs, TaskResult, TaskSpec, TaskState,
};
use crate::store::{RunStatus, Store};

/// How long a claimed step stays a worker's without a heartbeat, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often waiting parties look at the database when no notification came.
const POLL: Duration = Duration::from_millis(1000);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("store work does not panic")
}

fn postgres(store: &Store) -> &Postgres {
    store
        .postgres()
        .expect("cluster work is only set up on a PostgreSQL store")
}

/// The generation of a run: how many times it has been (re)opened to run.
pub fn generation(store: &Store, run: u64) -> Result<u32, String> {
    let record = store.run(run).map_err(|e| e.to_string())?;
    Ok(record
        .transitions
        .iter()
        .filter(|t| t.status == RunStatus::Running)
        .count() as u32)
}

/// The engine's [`StepQueue`] for one run, on the cluster's queue.
pub struct QueueSteps {
    store: Arc<Store>,
    run: u64,
    generation: u32,
    /// Plugin components known to be in the artifact store.
    uploaded: Mutex<HashSet<String>>,
}

impl QueueSteps {
    /// The queue for run `run` as it is now (re)opened; tasks its earlier coordinators left
    /// unfinished are cancelled, since this one queues its own.
    pub fn new(store: Arc<Store>, run: u64) -> Result<QueueSteps, String> {
        if store.postgres().is_none() {
            return Err(
                "steps run on workers only with a shared store: give --store postgres://...".into(),
            );
        }
        let generation = generation(&store, run)?;
        postgres(&store).cancel_stale_tasks(run, generation)?;
        Ok(QueueSteps {
            store,
            run,
            generation,
            uploaded: Mutex::new(HashSet::new()),
        })
    }

    fn spec(&self, call: &QueuedCall) -> Result<TaskSpec, String> {
        let digest = format!("sha256:{}", call.plugin.digest);
        if !lock(&self.uploaded).contains(&digest) {
            if !self.store.artifacts().contains(&digest) {
                self.store
                    .artifacts()
                    .put(&call.plugin.wasm)
                    .map_err(|err| format!("cannot store the plugin for the workers: {err}"))?;
            }
            lock(&self.uploaded).insert(digest.clone());
        }
        Ok(TaskSpec {
            run: self.run,
            step: call.index as u32,
            step_id: call.step_id.clone(),
            generation: self.generation,
            attempt: call.attempt,
            plugin: digest,
            plugin_label: format!("{}@{}", call.plugin.info.name, call.plugin.info.version),
            inputs: call
                .inputs
                .iter()
                .map(|input| TaskInput {
                    slot: input.slot.clone(),
                    kind: input.kind,
                    digest: input.digest.clone(),
                })
                .collect(),
            config: call.config.clone(),
            target: call.target.clone(),
            memory: call.limits.memory,
            timeout_ms: call.limits.timeout.as_millis() as u64,
            max_output: call.limits.max_output,
            grants: TaskGrants {
                dirs: call
                    .capabilities
                    .dirs
                    .iter()
                    .map(|d| (d.host.display().to_string(), d.guest.clone(), d.writable))
                    .collect(),
                env: call
                    .capabilities
                    .env
                    .iter()
                    .map(|(name, _)| name.clone())
                    .collect(),
                network: call.capabilities.network,
            },
        })
    }
}

/// Cancels a queued call whose waiter went away before it finished.
struct GiveUp {
    store: Arc<Store>,
    task: Option<i64>,
}

impl Drop for GiveUp {
    fn drop(&mut self) {
        if let Some(id) = self.task.take() {
            let store = self.store.clone();
            // Best effort: a worker still running it notices at its next heartbeat.
            std::thread::spawn(move || {
                if let Err(err) = postgres(&store).cancel_task(id) {
                    tracing::warn!(task = id, error = %err, "cannot cancel a queued step");
                }
            });
        }
    }
}

fn failed(failure: Failure) -> QueuedExecution {
    QueuedExecution {
        execution: Execution {
            outcome: Err(failure),
            log: Vec::new(),
            metrics: Vec::new(),
            elapsed: Duration::ZERO,
        },
        claims: 1,
    }
}

impl StepQueue for QueueSteps {
    fn execute(&self, call: QueuedCall) -> Pin<Box<dyn Future<Output = QueuedExecution> + Send>> {
        let spec = self.spec(&call);
        let store = self.store.clone();
        let kind = call.plugin.kind();
        Box::pin(async move {
            let spec = match spec {
                Ok(spec) => spec,
                Err(message) => return failed(Failure::Sandbox(message)),
            };
            let mut notes = postgres(&store).subscribe();
            let queued = {
                let store = store.clone();
                blocking(move || postgres(&store).enqueue(&spec)).await
            };
            let id = match queued {
                Ok(id) => id,
                Err(err) => {
                    return failed(Failure::Sandbox(format!("cannot queue the step: {err}")));
                }
            };
            let mut give_up = GiveUp {
                store: store.clone(),
                task: Some(id),
            };
            let wanted = id.to_string();
            loop {
                let state = {
                    let store = store.clone();
                    blocking(move || postgres(&store).task_state(id)).await
                };
                match state {
                    Ok(TaskState::Waiting) => {}
                    Ok(TaskState::Cancelled) => {
                        give_up.task = None;
                        return failed(Failure::Sandbox(
                            "the step's queued call was cancelled".into(),
                        ));
                    }
                    Ok(TaskState::Done { result, claims }) => {
                        give_up.task = None;
                        let store = store.clone();
                        let mut execution =
                            blocking(move || into_execution(&store, kind, *result)).await;
                        execution.claims = claims.max(1) as u32;
                        return execution;
                    }
                    Err(err) => {
                        tracing::warn!(task = id, error = %err, "cannot read a queued step")
                    }
                }
                // Until this task's notification, or the poll interval.
                let deadline = tokio::time::Instant::now() + POLL;
                loop {
                    match tokio::time::timeout_at(deadline, notes.recv()).await {
                        Ok(Ok((channel, payload)))
                            if channel == channel::TASK_DONE && payload == wanted =>
                        {
                            break;
                        }
                        Ok(Ok(_)) => continue,
                        Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                        // No more notifications (the session connection is gone): poll.
                        Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                            tokio::time::sleep_until(deadline).await;
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        })
    }
}

/// A worker's result as the engine's execution, its outputs read back from the artifacts.
fn into_execution(
    store: &Store,
    kind: crate::plugin::StepKind,
    result: TaskResult,
) -> QueuedExecution {
    let outcome = match result.outcome {
        Err(failure) => Err(failure),
        Ok(outputs) => {
            let mut values = Vec::new();
            let mut problem = None;
            for (name, stored) in outputs.outputs {
                match codec::load_value(store.artifacts(), stored.kind, &stored.digest) {
                    Ok(value) => values.push((name, value)),
                    Err(err) => {
                        problem = Some(format!("output `{name}` from the worker: {err}"));
                        break;
                    }
                }
            }
            match problem {
                Some(problem) => Err(Failure::Sandbox(problem)),
                None => output_from_values(kind, values, outputs.returned)
                    .map_err(Failure::InvalidInput),
            }
        }
    };
    QueuedExecution {
        execution: Execution {
            outcome,
            log: result.log,
            metrics: result.metrics,
            elapsed: Duration::from_millis(result.elapsed_ms),
        },
        claims: 1,
    }
}

/// `wflow worker`: claims queued steps and runs them, `concurrency` at a time.
pub struct Worker {
    store: Arc<Store>,
    runtime: Arc<Runtime>,
    concurrency: usize,
    lease: Duration,
    /// Built-in plugins by digest: a worker runs them without fetching them.
    builtins: HashMap<String, &'static [u8]>,
    /// Plugins loaded, by digest: fetched and verified once per worker.
    plugins: Mutex<HashMap<String, Arc<crate::plugin::Plugin>>>,
    /// Steps this worker runs now: task id → (claim, its execution).
    running: Mutex<HashMap<i64, (i32, tokio::task::AbortHandle)>>,
    /// Steps completed, and how many lost their lease before completing.
    pub completed: std::sync::atomic::AtomicU64,
    pub lost: std::sync::atomic::AtomicU64,
    finished: tokio::sync::Notify,
}

impl Worker {
    pub fn new(
        store: Arc<Store>,
        runtime: Arc<Runtime>,
        concurrency: usize,
        lease: Duration,
    ) -> Result<Arc<Worker>, String> {
        if store.postgres().is_none() {
            return Err("a worker needs the cluster's store: give --store postgres://...".into());
        }
        let builtins = crate::engine::builtin::names()
            .filter_map(crate::engine::builtin::get)
            .map(|bytes| (crate::store::digest_of(bytes), bytes))
            .collect();
        Ok(Arc::new(Worker {
            store,
            runtime,
            concurrency: concurrency.max(1),
            lease: lease.max(Duration::from_millis(300)),
            builtins,
            plugins: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            completed: Default::default(),
            lost: Default::default(),
            finished: tokio::sync::Notify::new(),
        }))
    }

    pub fn id(&self) -> &str {
        self.store.process_id()
    }

    /// Claims and runs steps until `stop` resolves; then waits up to `grace` for the steps it
    /// runs (those still running after it lose their lease and are run by another worker).
    pub async fn run(self: &Arc<Self>, stop: impl Future<Output = ()>, grace: Duration) {
        let mut notes = postgres(&self.store).subscribe();
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        tokio::pin!(stop);
        loop {
            // Take work while there is room and the queue has some.
            while lock(&self.running).len() < self.concurrency {
                let (store, id, lease) = (
                    self.store.clone(),
                    self.id().to_string(),
                    self.lease.as_secs_f64(),
                );
                match blocking(move || postgres(&store).claim(&id, lease)).await {
                    Ok(Some(claim)) => self.start(claim),
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot claim a step");
                        break;
                    }
                }
            }
            let finished = self.finished.notified();
            tokio::select! {
                _ = &mut stop => break,
                _ = finished => {}
                () = crate::store::postgres::next_notification(&mut notes, channel::TASKS) => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !lock(&self.running).is_empty() {
            let finished = self.finished.notified();
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                break;
            }
        }
        heartbeat.abort();
    }

    /// Renews the leases of running steps; stops the ones the worker no longer holds.
    async fn heartbeat(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            let held: Vec<(i64, i32)> = lock(&self.running)
                .iter()
                .map(|(id, (claim, _))| (*id, *claim))
                .collect();
            if held.is_empty() {
                continue;
            }
            let (store, id, lease) = (
                self.store.clone(),
                self.id().to_string(),
                self.lease.as_secs_f64(),
            );
            let asked = held.clone();
            match blocking(move || postgres(&store).renew(&id, &asked, lease)).await {
                Ok(kept) => {
                    let mut running = lock(&self.running);
                    for (task, _) in held {
                        if !kept.contains(&task)
                            && let Some((_, handle)) = running.remove(&task)
                        {
                            tracing::warn!(task, "a step was cancelled or taken over; stopping it");
                            handle.abort();
                            self.lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    drop(running);
                    self.finished.notify_waiters();
                }
                Err(err) => tracing::error!(error = %err, "cannot renew the leases"),
            }
        }
    }

    fn start(self: &Arc<Self>, claim: Claim) {
        let worker = self.clone();
        let (id, number) = (claim.id, claim.claim);
        tracing::info!(task = id, run = claim.spec.run, step = %claim.spec.step_id, "running a queued step");
        // Registered before it can finish, so the heartbeat renews it from the start.
        let mut running = lock(&self.running);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let spec = claim.spec;
            let (outcome, log, metrics) = worker.execute(&spec).await;
            let result = TaskResult {
                outcome,
                log,
                metrics,
                elapsed_ms: started.elapsed().as_millis() as u64,
                worker: worker.id().to_string(),
            };
            let store = worker.store.clone();
            let me = worker.id().to_string();
            match blocking(move || postgres(&store).complete(id, &me, number, &result)).await {
                Ok(true) => {
                    worker
                        .completed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(false) => {
                    tracing::warn!(
                        task = id,
                        "the step's lease was lost before it completed; its result is dropped"
                    );
                    worker
                        .lost
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(err) => {
                    tracing::error!(task = id, error = %err, "cannot record a step's result")
                }
            }
            lock(&worker.running).remove(&id);
            worker.finished.notify_waiters();
        });
        running.insert(id, (number, task.abort_handle()));
    }

    /// Runs one queued call: the plugin and inputs by digest, the sandbox, the outputs stored.
    async fn execute(
        &self,
        spec: &TaskSpec,
    ) -> (
        Result<TaskOutputs, Failure>,
        Vec<crate::plugin::LogLine>,
        Vec<(String, f64)>,
    ) {
        let setup = |message: String| (Err(Failure::Sandbox(message)), Vec::new(), Vec::new());
        let known = lock(&self.plugins).get(&spec.plugin).cloned();
        let plugin = match known {
            Some(plugin) => plugin,
            None => {
                let wasm = match self.builtins.get(&spec.plugin) {
                    Some(bytes) => bytes.to_vec(),
                    None => {
                        let (store, digest) = (self.store.clone(), spec.plugin.clone());
                        match blocking(move || store.artifacts().get(&digest)).await {
                            Ok(bytes) => bytes,
                            Err(err) => {
                                return setup(format!("plugin {}: {err}", spec.plugin_label));
                            }
                        }
                    }
                };
                match self.runtime.load(&wasm).await {
                    Ok(plugin) => {
                        lock(&self.plugins).insert(spec.plugin.clone(), plugin.clone());
                        plugin
                    }
                    Err(err) => return setup(format!("plugin {}: {err}", spec.plugin_label)),
                }
            }
        };
        let inputs = {
            let (store, inputs) = (self.store.clone(), spec.inputs.clone());
            blocking(move || {
                inputs
                    .into_iter()
                    .map(|input| {
                        codec::load_value(store.artifacts(), input.kind, &input.digest)
                            .map(|value| (input.slot.clone(), value))
                            .map_err(|err| format!("input `{}`: {err}", input.slot))
                    })
                    .collect::<Result<Vec<(String, Value)>, String>>()
            })
            .await
        };
        let inputs = match inputs {
            Ok(inputs) => inputs,
            Err(err) => return setup(err),
        };
        let call = match call_for(
            plugin.kind(),
            inputs,
            spec.config.clone(),
            spec.target.clone(),
        ) {
            Ok(call) => call,
            Err(err) => return (Err(Failure::InvalidInput(err)), Vec::new(), Vec::new()),
        };
        let limits = Limits {
            memory: spec.memory,
            timeout: Duration::from_millis(spec.timeout_ms),
            max_output: spec.max_output,
        };
        let capabilities = Capabilities {
            dirs: spec
                .grants
                .dirs
                .iter()
                .map(|(host, guest, writable)| DirGrant {
                    host: host.into(),
                    guest: guest.clone(),
                    writable: *writable,
                })
                .collect(),
            env: spec
                .grants
                .env
                .iter()
                .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)))
                .collect(),
            network: spec.grants.network,
        };
        let execution = self
            .runtime
            .call(&plugin, call, &limits, &capabilities)
            .await;
        let outcome = match execution.outcome {
            Err(failure) => Err(failure),
            Ok(output) => {
                let (named, returned) = output_values(output);
                let store = self.store.clone();
                blocking(move || {
                    named
                        .iter()
                        .map(|(name, value)| {
                            codec::store_value(store.artifacts(), value)
                                .map(|stored| (name.clone(), stored))
                                .map_err(|err| {
                                    Failure::Sandbox(format!("cannot store output `{name}`: {err}"))
                                })
                        })
                        .collect::<Result<Vec<_>, Failure>>()
                        .map(|outputs| TaskOutputs { outputs, returned })
                })
                .await
            }
        };
        (outcome, execution.log, execution.metrics)
    }
}

/// Waits until this daemon leads the cluster: the leader lock is free (its holder ended, or
/// never was). Polls every `every`; returns `false` when `stop` resolves first.
pub async fn wait_for_leadership(
    store: &Arc<Store>,
    every: Duration,
    stop: impl Future<Output = ()>,
) -> bool {
    tokio::pin!(stop);
    loop {
        let probe = store.clone();
        match blocking(move || postgres(&probe).try_lead()).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, "cannot ask for the leader lock"),
        }
        tokio::select! {
            _ = &mut stop => return false,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
