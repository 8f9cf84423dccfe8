//! Writing to the step's log through the host (`host.log`), at the five `tracing` levels.
//!
//! Lines go to the host, which attaches them to the run and step; nothing is printed by the
//! plugin itself (a plugin's stdout and stderr are captured separately and bounded). These
//! functions call the host, so they only work inside a component.

use crate::bindings::host;

/// Log levels, as in `tracing`.
///
/// ```no_run
/// wflow_sdk::log::with_fields(wflow_sdk::log::Level::Info, "epoch done", &[("epoch", "3")]);
/// ```
pub use crate::bindings::host::Level;

/// Logs a line at `level` with structured fields (`key`, `value`).
///
/// ```no_run
/// use wflow_sdk::log::{self, Level};
/// log::with_fields(Level::Debug, "split done", &[("train", "800"), ("test", "200")]);
/// ```
pub fn with_fields(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    host::log(level, message, &fields);
}

/// Whether a line at `level` would be kept, to skip building costly messages (contract 0.1.1).
///
/// ```no_run
/// use wflow_sdk::log::{self, Level};
/// if log::enabled(Level::Debug) {
///     log::debug(&format!("{:?}", (1..10).collect::<Vec<_>>()));
/// }
/// ```
pub fn enabled(level: Level) -> bool {
    host::log_enabled(level)
}

/// Logs a line at level `trace`.
///
/// ```no_run
/// wflow_sdk::log::trace("entering the inner loop");
/// ```
pub fn trace(message: &str) {
    host::log(Level::Trace, message, &[]);
}

/// Logs a line at level `debug`.
///
/// ```no_run
/// wflow_sdk::log::debug("parsed 3 thresholds");
/// ```
pub fn debug(message: &str) {
    host::log(Level::Debug, message, &[]);
}

/// Logs a line at level `info`.
///
/// ```no_run
/// wflow_sdk::log::info("training on 1200 rows");
/// ```
pub fn info(message: &str) {
    host::log(Level::Info, message, &[]);
}

/// Logs a line at level `warn`.
///
/// ```no_run
/// wflow_sdk::log::warn("column `age` has 12% nulls");
/// ```
pub fn warn(message: &str) {
    host::log(Level::Warn, message, &[]);
}

/// Logs a line at level `error`.
///
/// ```no_run
/// wflow_sdk::log::error("the model did not converge");
/// ```
pub fn error(message: &str) {
    host::log(Level::Error, message, &[]);
}
