//! What a plugin call may use: limits (memory, time, output) and granted capabilities, and the
//! WASI context built from them.
//!
//! Everything is denied unless granted: no files, no environment, no arguments, no network,
//! stdin closed. stdout and stderr go to the step's bounded log. Whether a plugin's requested
//! capabilities are granted is decided by the caller (`Capabilities::missing`); this module only
//! builds what was granted.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::state::{LogSource, StepLog};

/// Resource limits of one plugin call.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Cap on the plugin's linear memory, in bytes.
    pub memory: u64,
    /// Wall-clock limit of the call.
    pub timeout: Duration,
    /// Cap on the bytes of tables the plugin builds and on the size of its log.
    pub max_output: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory: 512 << 20,
            timeout: Duration::from_secs(300),
            max_output: 256 << 20,
        }
    }
}

/// A directory mapped into the sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct DirGrant {
    pub host: PathBuf,
    /// The absolute path the plugin sees, e.g. `/data`.
    pub guest: String,
    pub writable: bool,
}

/// Capabilities a workflow grants a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capabilities {
    pub dirs: Vec<DirGrant>,
    /// Environment variables passed through, with their values.
    pub env: Vec<(String, String)>,
    pub network: bool,
}

/// Bytes of plugin log (stdout, stderr and log calls) kept per call at most; past it the call
/// fails, which is what makes an output flood a clear failure rather than a silent truncation.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

impl Capabilities {
    /// The requested capabilities that these grants do not cover, as text for messages.
    pub fn missing(&self, requested: &[super::bindings::types::Capability]) -> Vec<String> {
        use super::bindings::types::Capability;
        requested
            .iter()
            .filter_map(|capability| match capability {
                Capability::ReadDir(path) => (!self.dirs.iter().any(|d| &d.guest == path))
                    .then(|| format!("read access to `{path}`")),
                Capability::WriteDir(path) => {
                    (!self.dirs.iter().any(|d| &d.guest == path && d.writable))
                        .then(|| format!("write access to `{path}`"))
                }
                Capability::Env(name) => (!self.env.iter().any(|(n, _)| n == name))
                    .then(|| format!("the environment variable `{name}`")),
                Capability::Network => (!self.network).then(|| "network access".to_string()),
            })
            .collect()
    }

    /// A WASI context granting exactly this, with stdout and stderr captured into `log`.
    pub fn wasi_context(&self, log: &Arc<Mutex<StepLog>>) -> Result<WasiCtx, std::io::Error> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(Capture {
                log: log.clone(),
                source: LogSource::Stdout,
            })
            .stderr(Capture {
                log: log.clone(),
                source: LogSource::Stderr,
            });
        for (name, value) in &self.env {
            builder.env(name, value);
        }
        for dir in &self.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|err| {
                    std::io::Error::other(format!("granting {}: {err}", dir.host.display()))
                })?;
        }
        if self.network {
            builder.inherit_network().allow_ip_name_lookup(true);
        }
        Ok(builder.build())
    }
}

/// stdout or stderr of a plugin, written into its step log.
#[derive(Clone)]
struct Capture {
    log: Arc<Mutex<StepLog>>,
    source: LogSource,
}

impl Capture {
    fn write_bytes(&self, bytes: &[u8]) -> bool {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.write(self.source, bytes)
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        if self.write_bytes(&bytes) {
            Ok(())
        } else {
            Err(StreamError::trap("output limit exceeded"))
        }
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.write_bytes(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(std::io::Error::other("output limit exceeded")))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
