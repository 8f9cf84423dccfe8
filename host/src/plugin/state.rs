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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The plugin's `log` calls.
    Plugin,
    Stdout,
    Stderr,
}

/// A log level, as in `tracing`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of a step's log.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Milliseconds since the call started.
    pub at_ms: u64,
    pub source: LogSource,
    pub level: LogLevel,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    pub overflowed: bool,
    /// Partial lines written to stdout / stderr, waiting for their newline.
    pending: [Vec<u8>; 2],
}

/// What a log line and one of its fields cost the host beyond their text.
const LINE_COST: usize = std::mem::size_of::<LogLine>();
const FIELD_COST: usize = 2 * std::mem::size_of::<String>();

/// What a progress report costs the host beyond its message (the call, the throttle's check).
const PROGRESS_COST: usize = 32;

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
        // Charged at what the line costs the host, not just its text, so that floods of empty
        // lines or of empty fields are bounded too.
        let size = LINE_COST
            + message.len()
            + fields
                .iter()
                .map(|(k, v)| FIELD_COST + k.len() + v.len())
                .sum::<usize>();
        if !self.charge(size) {
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

    /// Accounts for a progress report of a `message_len`-byte message: reports are not kept,
    /// but a plugin reporting in a loop is stopped by the output limit like any other flood.
    pub fn progress(&mut self, message_len: usize) -> bool {
        self.charge(message_len + PROGRESS_COST)
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
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        if !self.charge(bytes.len() + lines * LINE_COST) {
            return false;
        }
        let slot = usize::from(source == LogSource::Stderr);
        self.pending[slot].extend_from_slice(bytes);
        while let Some(newline) = self.pending[slot].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending[slot].drain(..=newline).collect();
            self.push_output_line(source, &line[..line.len() - 1]);
        }
        true
    }

    /// Flushes partial lines at the end of the call.
    pub fn finish(&mut self) {
        for (slot, source) in [(0, LogSource::Stdout), (1, LogSource::Stderr)] {
            let rest = std::mem::take(&mut self.pending[slot]);
            if !rest.is_empty() {
                self.push_output_line(source, &rest);
            }
        }
    }

    fn push_output_line(&mut self, source: LogSource, bytes: &[u8]) {
        let level = if source == LogSource::Stderr {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        let at_ms = self.started.elapsed().as_millis() as u64;
        let message = String::from_utf8_lossy(bytes).into_owned();
        self.lines.push(LogLine {
            at_ms,
            source,
            level,
            message,
            fields: Vec::new(),
        });
    }
}

/// Caps the plugin's linear memories (all of them together) and tables, and remembers a
/// refused growth so the failure can say "memory limit" rather than a bare trap.
#[derive(Debug)]
pub struct Limiter {
    pub memory_cap: u64,
    /// Bytes of linear memory the instance's memories hold together.
    memory_total: u64,
    pub refused_growth: Option<u64>,
}

impl Limiter {
    pub fn new(memory_cap: u64) -> Limiter {
        Limiter {
            memory_cap,
            memory_total: 0,
            refused_growth: None,
        }
    }
}

/// Table elements a plugin may have; far beyond any real program's needs.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Core instances, memories and tables per component: a Rust component has a handful; the
/// bounds stop a crafted component from multiplying its memory cap.
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_total
            .saturating_add((desired - current.min(desired)) as u64);
        if total > self.memory_cap {
            self.refused_growth = Some(total);
            return Err(wasmtime::format_err!(
                "memory limit exceeded: growing to {total} bytes, cap {}",
                self.memory_cap
            ));
        }
        self.memory_total = total;
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

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// Receives a plugin's `progress` calls as they happen: (done, total, message).
pub type ProgressSink = Arc<dyn Fn(u64, u64, &str) + Send + Sync>;

/// The store's data for one plugin call.
pub struct StepState {
    pub progress: Option<ProgressSink>,
    /// When the last progress report was passed on.
    pub progress_sent: Option<std::time::Instant>,
    pub wasi: WasiCtx,
    pub resources: ResourceTable,
    pub limiter: Limiter,
    pub log: Arc<Mutex<StepLog>>,
    /// Bytes of tables (and other host objects) the plugin has made so far, against `max_output`.
    pub output_bytes: u64,
    /// Host objects (tables, sessions) the plugin has created.
    pub handles: u64,
    pub max_output: u64,
    pub output_exceeded: bool,
    /// What a transformer declared of its preprocessing (`preprocessing.declare`), in order;
    /// `None` when it declared nothing.
    pub preprocessing: Option<Vec<crate::pipeline::Stage>>,
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
