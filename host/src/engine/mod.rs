//! Runs workflows: `plan` checks a parsed workflow against its files and plugins and loads
//! them; `run` executes the plan's DAG, recording it through a `journal` when given one.
//! Nothing here prints or parses TOML.

pub mod journal;
pub mod pipeline;
pub mod plan;
pub mod remote;
pub mod run;

pub use journal::Journal;
pub use plan::{Plan, PlannedStep, Runner, builtin, plan};
pub use remote::{QueuedCall, QueuedExecution, QueuedInput, StepQueue};
pub use run::{
    Event, ReuseOrigin, RunOptions, RunReport, StepReport, StepStatus, Value, call_for, run,
};
