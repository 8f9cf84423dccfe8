//! The per-execution store state: the WASI context, the resource table, the memory limiter,
//! and what the plugin reported (log lines, metrics, progress) while it ran.
//!
//! A `StepState` lives exactly as long as one plugin call; nothing in it survives into the next
//! execution, which is how no state leaks between runs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Where a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The plugin's `log` calls.
    Plugin,
    Stdout,
    Stderr,
}

/// A log level, as in `tracing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of a step's log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LogLine {
    /// Milliseconds since the call started.
    pub at_ms: u64,
    pub source: LogSource,
    pub level: LogLevel,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// Everything a plugin said while it ran, bounded by `limit` bytes. Past the limit the log stops
/// growing and `overflowed` is set: the call then fails with an output-limit reason.
#[derive(Debug)]
pub struct StepLog {
    started: Instant,
    limit: u64,
    used: u64,
    pub lines: Vec<LogLine>,
    pub metrics: Vec<(String, f64)>,
    pub progress: Option<(u64, u64, String)>,
    pub overflowed: bool,
    /// Partial lines written to stdout / stderr, waiting for their newline.
    pending: [Vec<u8>; 2],
}

/// Metrics a plugin may emit in one call; more is a flood like any other.
const MAX_METRICS: usize = 100_000;

impl StepLog {
    pub fn new(limit: u64) -> StepLog {
        StepLog {
            started: Instant::now(),
            limit,
            used: 0,
            lines: Vec::new(),
            metrics: Vec::new(),
            progress: None,
            overflowed: false,
            pending: [Vec::new(), Vec::new()],
        }
    }

    /// Accounts for `bytes` more; false (and `overflowed`) once past the limit.
    fn charge(&mut self, bytes: usize) -> bool {
        self.used = self.used.saturating_add(bytes as u64);
        if self.used > self.limit {
            self.overflowed = true;
        }
        !self.overflowed
    }

    pub fn log(
        &mut self,
        source: LogSource,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) -> bool {
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if !self.charge(size + 16) {
            return false;
        }
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.lines.push(LogLine {
            at_ms,
            source,
            level,
            message,
            fields,
        });
        true
    }

    pub fn metric(&mut self, name: String, value: f64) -> bool {
        if self.metrics.len() >= MAX_METRICS || !self.charge(name.len() + 8) {
            self.overflowed = true;
            return false;
        }
        self.metrics.push((name, value));
        true
    }

    /// Appends raw output, splitting it into lines.
    pub fn write(&mut self, source: LogSource, bytes: &[u8]) -> bool {
        if !self.charge(bytes.len()) {
            return false;
        }
        let slot = usize::from(source == LogSource::Stderr);
        self.pending[slot].extend_from_slice(bytes);
        while let Some(newline) = self.pending[slot].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending[slot].drain(..=newline).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            let level = if source == LogSource::Stderr {
                LogLevel::Warn
            } else {
                LogLevel::Info
            };
            let at_ms = self.started.elapsed().as_millis() as u64;
            self.lines.push(LogLine {
                at_ms,
                source,
                level,
                message: text,
                fields: Vec::new(),
            });
        }
        true
    }

    /// Flushes partial lines at the end of the call.
    pub fn finish(&mut self) {
        for (slot, source) in [(0, LogSource::Stdout), (1, LogSource::Stderr)] {
            if !self.pending[slot].is_empty() {
                let text =
                    String::from_utf8_lossy(&std::mem::take(&mut self.pending[slot])).into_owned();
                let level = if source == LogSource::Stderr {
                    LogLevel::Warn
                } else {
                    LogLevel::Info
                };
                let at_ms = self.started.elapsed().as_millis() as u64;
                self.lines.push(LogLine {
                    at_ms,
                    source,
                    level,
                    message: text,
                    fields: Vec::new(),
                });
            }
        }
    }
}

/// Caps linear memory and tables, and remembers a refused growth so the failure can say so.
#[derive(Debug)]
pub struct Limiter {
    pub memory_cap: u64,
    pub refused_growth: Option<u64>,
}

/// Table elements a plugin may have; far beyond any real program's needs.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            self.refused_growth = Some(desired as u64);
            return Err(wasmtime::format_err!(
                "memory limit exceeded: growing to {desired} bytes, cap {}",
                self.memory_cap
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The store's data for one plugin call.
pub struct StepState {
    pub wasi: WasiCtx,
    pub resources: ResourceTable,
    pub limiter: Limiter,
    pub log: Arc<Mutex<StepLog>>,
    /// Bytes of tables the plugin has built so far, against `max_output`.
    pub output_bytes: u64,
    pub max_output: u64,
    pub output_exceeded: bool,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.resources,
        }
    }
}

impl StepState {
    /// Runs `f` on the log; a poisoned lock (a panic elsewhere while logging) still yields the log.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut StepLog) -> R) -> R {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut log)
    }
}
