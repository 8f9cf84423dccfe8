//! Shared helpers: where the built plugins are, a runtime with a private compiled-code cache,
//! and running the `wflow` binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use wflow::plugin::{CompiledCache, Plugin, Runtime};

/// Runs a future to completion on a fresh single-threaded runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The directory where the build script put every plugin component.
pub fn artifacts() -> PathBuf {
    PathBuf::from(env!("WFLOW_PLUGIN_ARTIFACTS"))
}

/// The component file of a plugin crate (`tests/plugins/NAME` or `plugins/NAME`).
pub fn wasm_path(crate_name: &str) -> PathBuf {
    let path = artifacts().join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

pub fn wasm(crate_name: &str) -> Vec<u8> {
    std::fs::read(wasm_path(crate_name)).unwrap()
}

/// A runtime with its own compiled-code cache in a temporary directory.
pub fn runtime() -> (Runtime, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Some(CompiledCache::new(dir.path().join("compiled")))).unwrap();
    (runtime, dir)
}

pub fn load(runtime: &Runtime, crate_name: &str) -> Arc<Plugin> {
    block_on(runtime.load(&wasm(crate_name)))
        .unwrap_or_else(|err| panic!("loading {crate_name}: {err}"))
}

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs the `wflow` binary with `args` in `dir`, with a private compiled-code cache.
pub fn wflow(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wflow"))
        .args(args)
        .current_dir(dir)
        .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
        .env_remove("WFLOW_DATA_DIR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An HTTP answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 exchange on a fresh connection (closed after the answer).
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        request.push_str("content-type: application/json\r\n");
    }
    for (key, value) in headers {
        request.push_str(&format!("{key}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Answer {
        status,
        body: raw[split + 4..].to_vec(),
    }
}

/// `http` with a JSON body.
pub fn post_json(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Answer {
    http(address, "POST", path, headers, body.to_string().as_bytes())
}

pub fn get(address: &str, path: &str) -> Answer {
    http(address, "GET", path, &[], b"")
}

/// Builds the Python and JavaScript plugins of `plugins/` with `wflow plugin build`, as a user
/// would (installing componentize-py and componentize-js when missing); once per test process.
pub fn build_language_plugins() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let cache = tempfile::tempdir().unwrap();
        for dir in ["plugins/py-rules", "plugins/js-cost-metric"] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_wflow"))
                .args(["plugin", "build", dir])
                .current_dir(repo())
                .env("WFLOW_CACHE_DIR", cache.path())
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "wflow plugin build {dir}: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
    });
}

/// A seeded generator (SplitMix64) for kill schedules.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of a test's random kill schedule: `WFLOW_CRASH_SEED` (to replay one), or the
/// clock; printed so a failure can be replayed.
pub fn crash_seed() -> u64 {
    let seed = std::env::var("WFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("kill schedule seed {seed} (WFLOW_CRASH_SEED={seed} replays it)");
    seed
}
