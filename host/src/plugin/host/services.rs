//! The `host` interface (host services): a plugin's log lines, metrics and progress go into its step log.
//!
//! A plugin that logs past the call's log budget is stopped with a trap, which the runtime
//! reports as an output flood.

use crate::plugin::bindings::wflow::plugin::host::{self, Level};
use crate::plugin::state::{LogLevel, LogSource, StepState};

fn level(level: Level) -> LogLevel {
    match level {
        Level::Trace => LogLevel::Trace,
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    }
}

fn flood() -> wasmtime::Error {
    wasmtime::format_err!("output limit exceeded: the plugin logged more than the step allows")
}

impl host::Host for StepState {
    fn log(
        &mut self,
        lvl: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        if self.with_log(|log| log.log(LogSource::Plugin, level(lvl), message, fields)) {
            Ok(())
        } else {
            Err(flood())
        }
    }

    fn emit_metric(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        if self.with_log(|log| log.metric(name, value)) {
            Ok(())
        } else {
            Err(flood())
        }
    }

    fn progress(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        self.with_log(|log| log.progress = Some((done, total, message)));
        Ok(())
    }
}
