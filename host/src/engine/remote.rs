//! Steps run elsewhere: a run's plugin calls can go to a queue that workers on other machines
//! take them from ([`crate::cluster`] implements it on the shared store) instead of this
//! process's runtime. The engine hands over what the call needs by digest and waits for the
//! outcome; everything else (reuse, retries, recording, the DAG) stays here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::plugin::{Capabilities, Execution, Limits, Plugin};
use crate::store::ValueKind;

/// One attempt of a step's plugin call, as the queue takes it.
#[derive(Clone, Debug)]
pub struct QueuedCall {
    /// The step's index in the plan and its id.
    pub index: usize,
    pub step_id: String,
    /// The engine's attempt (retries of failed calls), from 1.
    pub attempt: u32,
    pub plugin: Arc<Plugin>,
    /// Each input slot, with its value's digest in the run's store and its kind. The values
    /// themselves stay here: a worker reads them from the store by digest.
    pub inputs: Vec<QueuedInput>,
    pub config: String,
    pub target: Option<String>,
    pub limits: Limits,
    pub capabilities: Capabilities,
}

/// One input of a queued call.
#[derive(Clone, Debug)]
pub struct QueuedInput {
    pub slot: String,
    pub digest: String,
    pub kind: ValueKind,
}

/// What the queue reports: the call's execution, and how many times a worker took it (more
/// than once when a worker died or lost its lease midway).
pub struct QueuedExecution {
    pub execution: Execution,
    pub claims: u32,
}

/// Somewhere plugin calls are executed instead of this process.
pub trait StepQueue: Send + Sync {
    /// Runs `call` and resolves with its outcome. Dropping the future gives the call up (the
    /// run was cancelled): the queue stops it where it runs.
    fn execute(&self, call: QueuedCall) -> Pin<Box<dyn Future<Output = QueuedExecution> + Send>>;
}
