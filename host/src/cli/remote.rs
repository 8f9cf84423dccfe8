//! The CLI's client of a running daemon. A daemon holds the store, so while one runs for a data
//! directory (its `daemon.json` names a live process), `runs`, `models` and `trigger` ask its
//! API instead of opening the store. One HTTP/1.1 exchange per call on loopback; the answers
//! are the store's records as JSON, printed as the local commands print them.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::daemon;

/// A running daemon's API.
pub struct Remote {
    address: SocketAddr,
    token: Option<String>,
}

impl Remote {
    /// The daemon running for `data_dir`, if one is: its address, and the admin token from
    /// `WFLOW_ADMIN_TOKEN` or the token file it wrote.
    pub fn discover(data_dir: &Path) -> Option<Remote> {
        let running = match daemon::discover(data_dir) {
            Ok(running) => running?,
            Err(why) => {
                // The token is never sent to an address a planted file names.
                errln!("warning: ignoring the daemon file: {why}");
                return None;
            }
        };
        let token = std::env::var("WFLOW_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                std::fs::read_to_string(data_dir.join(daemon::TOKEN_FILE))
                    .ok()
                    .map(|t| t.trim().to_string())
            });
        Some(Remote {
            address: running.address,
            token,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// One exchange; an answer that is not a success is an error with the API's message.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, answer) = self.exchange(method, path, body)?;
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let message = answer
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| answer.to_string());
        anyhow::bail!(
            "the daemon at {} answered {status}: {message}",
            self.address
        )
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call("POST", path, Some(body))
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let unreachable = |err: std::io::Error| {
            anyhow::anyhow!("cannot reach the daemon at {}: {err}", self.address)
        };
        let mut stream =
            std::net::TcpStream::connect_timeout(&self.address, Duration::from_secs(5))
                .map_err(unreachable)?;
        // Long-polls ask the daemon to wait up to a minute.
        stream
            .set_read_timeout(Some(Duration::from_secs(90)))
            .map_err(unreachable)?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: wflow\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(token) = &self.token {
            request.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes()).map_err(unreachable)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(unreachable)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("the daemon at {} sent no HTTP answer", self.address))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("the daemon at {} sent no status", self.address))?;
        let answer = serde_json::from_slice(&raw[split + 4..]).unwrap_or(Value::Null);
        Ok((status, answer))
    }
}

/// A field of an answer, read into a store record.
pub fn field<T: serde::de::DeserializeOwned>(answer: &Value, name: &str) -> anyhow::Result<T> {
    serde_json::from_value(answer.get(name).cloned().unwrap_or(Value::Null))
        .map_err(|err| anyhow::anyhow!("the daemon's answer has no valid `{name}`: {err}"))
}
