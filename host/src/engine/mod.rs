//! Runs workflows: `plan` checks a parsed workflow against its files and plugins and loads
//! them; `run` executes the plan's DAG. Nothing here prints or parses TOML.

pub mod plan;
pub mod run;

pub use plan::{Plan, PlannedStep, builtin, plan};
pub use run::{Event, RunOptions, RunReport, StepReport, StepStatus, Value, run};
