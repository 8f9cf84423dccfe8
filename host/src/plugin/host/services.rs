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

/// Shortest interval between two progress reports passed on from one plugin call.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

fn flood() -> wasmtime::Error {
    wasmtime::format_err!(
        "output limit exceeded: the plugin logged or reported more than the step allows"
    )
}

/// Characters of a progress message passed on for display: a line, not a page.
const PROGRESS_MESSAGE_CHARS: usize = 120;

/// `message` cut to [`PROGRESS_MESSAGE_CHARS`] characters.
fn shortened(message: &str) -> &str {
    match message.char_indices().nth(PROGRESS_MESSAGE_CHARS) {
        Some((end, _)) => &message[..end],
        None => message,
    }
}

impl host::Host for StepState {
    async fn log(
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

    /// Every level is kept in the step's log (within its output budget), so every level is on.
    async fn log_enabled(&mut self, _level: Level) -> wasmtime::Result<bool> {
        Ok(true)
    }

    async fn emit_metric(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        if self.with_log(|log| log.metric(name, value)) {
            Ok(())
        } else {
            Err(flood())
        }
    }

    async fn progress(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        if !self.with_log(|log| log.progress(message.len())) {
            return Err(flood());
        }
        // Plugins may report progress in a tight loop: pass on at most a few reports a second,
        // and always the last one.
        let now = std::time::Instant::now();
        let due = done >= total
            || self
                .progress_sent
                .is_none_or(|sent| now.duration_since(sent) >= PROGRESS_INTERVAL);
        if let (true, Some(sink)) = (due, &self.progress) {
            self.progress_sent = Some(now);
            sink(done, total, shortened(&message));
        }
        Ok(())
    }
}
