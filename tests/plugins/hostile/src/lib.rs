//! A validator that misbehaves on purpose, so the host's tests can prove that a plugin cannot
//! hurt the engine: its configuration `{ "behaviour": "..." }` selects what `validate` does
//! (trap, panic, loop forever, exhaust memory or stack, flood output or logs, try to read host
//! files, the environment or the network, return huge results, have the host load a model
//! crafted to exhaust its memory, or behave).
//!
//! It deliberately asks for no capabilities: every escape attempt must be refused by the
//! sandbox, and the plugin reports whatever it managed to see so a test can assert it saw
//! nothing. The formatting of those reports is pure and unit-tested natively; the misbehaviours
//! themselves only make sense inside the host.

use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use wflow_sdk::prelude::*;

/// What `validate` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum Behaviour {
    /// Executes the wasm `unreachable` instruction.
    Trap,
    /// Panics (which traps in wasm).
    Panic,
    /// Loops forever without calling the host.
    InfiniteLoop,
    /// Allocates and touches 16 MiB blocks until memory runs out.
    MemoryBomb,
    /// Recurses without bound.
    StackOverflow,
    /// Writes 64 KiB lines to stdout and stderr forever.
    OutputFlood,
    /// Calls the host's log import forever.
    LogFlood,
    /// Reports progress forever with 100 KiB messages.
    ProgressFlood,
    /// Reads `/etc/passwd` and the configured `path`.
    ReadHostFile,
    /// Lists every environment variable it can see.
    ReadEnv,
    /// Connects to the configured `address` over TCP.
    OpenSocket,
    /// Builds a 64 MiB table and returns a report with a 64 MiB message.
    HugeOutput,
    /// Returns `invalid-input`.
    InvalidInput,
    /// Returns an empty report.
    Ok,
    /// Recurses without bound through ordinary Rust calls with large locals, which overflows
    /// the stack kept in linear memory before the wasm call stack.
    DeepRecursion,
    /// Sleeps for an hour: blocks in a WASI host call, where epochs cannot interrupt it.
    Sleep,
    /// Counts its calls in a static and reports "call N": a fresh instance always says "call 1".
    CountCalls,
    /// Has the host load the ONNX model given in `model_hex` and reports what it said.
    LoadModel,
}

/// The configuration: which behaviour, plus its parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// What `validate` does.
    behaviour: Behaviour,
    /// For `read-host-file`: a file to read besides `/etc/passwd`.
    path: Option<String>,
    /// For `open-socket`: where to connect (default `127.0.0.1:9`).
    address: Option<String>,
    /// For `huge-output`: the size of the table and of the message, in MiB (default 64).
    size_mib: Option<u32>,
    /// For `load-model`: the ONNX file, in hex.
    model_hex: Option<String>,
}

/// The plugin.
struct Hostile;

impl Plugin for Hostile {
    type Config = Config;
    const DESCRIPTION: &'static str = "Misbehaves as configured, to test the sandbox";
}

impl Validator for Hostile {
    fn validate(_data: Table, config: Config) -> Result<Report, StepError> {
        match config.behaviour {
            Behaviour::Trap => trap(),
            Behaviour::Panic => panic!("hostile plugin panicking on purpose"),
            Behaviour::InfiniteLoop => infinite_loop(),
            Behaviour::MemoryBomb => memory_bomb(),
            Behaviour::StackOverflow => {
                let depth = recurse(0);
                Err(StepError::Failed(format!(
                    "the recursion stopped at depth {depth}, which it never should"
                )))
            }
            Behaviour::OutputFlood => output_flood(),
            Behaviour::LogFlood => log_flood(),
            Behaviour::ProgressFlood => progress_flood(),
            Behaviour::ReadHostFile => {
                let mut paths = vec![HOST_FILE.to_string()];
                paths.extend(config.path);
                let attempts = paths
                    .into_iter()
                    .map(|path| {
                        let content = std::fs::read_to_string(&path).map_err(|e| e.to_string());
                        (path, content)
                    })
                    .collect();
                read_report(attempts)
            }
            Behaviour::ReadEnv => {
                // `vars_os` rather than `vars`, which panics on a variable that is not UTF-8.
                let vars = std::env::vars_os()
                    .map(|(key, value)| {
                        (
                            key.to_string_lossy().into_owned(),
                            value.to_string_lossy().into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                Ok(Report::new().with(env_finding(&vars)))
            }
            Behaviour::OpenSocket => {
                let address = config.address.as_deref().unwrap_or(DEFAULT_ADDRESS);
                match std::net::TcpStream::connect(address) {
                    Ok(_) => Ok(Report::new()
                        .with(Finding::passed("open-socket", "connected").observed(address))),
                    Err(error) => Err(StepError::Failed(format!(
                        "connecting to {address}: {error}"
                    ))),
                }
            }
            Behaviour::HugeOutput => huge_output(config.size_mib.unwrap_or(64)),
            Behaviour::InvalidInput => Err(StepError::InvalidInput(
                "hostile plugin refusing its input on purpose".to_string(),
            )),
            Behaviour::Ok => Ok(Report::new()),
            Behaviour::DeepRecursion => {
                let depth = recurse_with_locals(0);
                Ok(Report::new().with(Finding::passed(
                    "deep-recursion",
                    format!("returned at {depth}"),
                )))
            }
            Behaviour::Sleep => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Report::new())
            }
            Behaviour::CountCalls => {
                let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(Report::new().with(Finding::passed("count-calls", format!("call {calls}"))))
            }
            Behaviour::LoadModel => {
                let onnx = unhex(config.model_hex.as_deref().unwrap_or_default())?;
                let model = Model {
                    onnx,
                    metadata: ModelMetadata {
                        features: vec!["x".into()],
                        target: "y".into(),
                        task: Task::Regression,
                        class_labels: Vec::new(),
                        properties: Vec::new(),
                    },
                };
                match wflow_sdk::inference::Session::load(&model) {
                    Ok(_) => Ok(Report::new().with(Finding::passed("load-model", "loaded"))),
                    Err(error) => Err(StepError::Failed(error)),
                }
            }
        }
    }
}

/// Recursion whose frames hold a buffer the optimiser must keep, so the stack in linear memory
/// grows by about 1 KiB per call until it runs out.
#[expect(
    unconditional_recursion,
    reason = "running out of stack is what this behaviour is for"
)]
fn recurse_with_locals(depth: u64) -> u64 {
    let buffer = black_box([depth as u8; 1024]);
    recurse_with_locals(black_box(depth + 1)) + u64::from(buffer[(depth % 1024) as usize])
}

/// Bytes from hex text.
fn unhex(text: &str) -> Result<Vec<u8>, StepError> {
    let bad = || StepError::InvalidConfig("`model_hex` is not hex".into());
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

/// Calls made to this instance; state that must not survive from one step execution to the next.
static CALLS: AtomicU32 = AtomicU32::new(0);

wflow_sdk::export_validator!(Hostile);

/// The host file every `read-host-file` run tries.
const HOST_FILE: &str = "/etc/passwd";

/// Where `open-socket` connects by default (the discard port on the loopback interface).
const DEFAULT_ADDRESS: &str = "127.0.0.1:9";

/// One line of `output-flood`: 64 KiB including the newline.
const FLOOD_LINE_BYTES: usize = 64 * 1024;

/// Executes an instruction that always traps.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::unreachable()
    }
    // Natively (only for `cargo test`, which never calls this) an abort is the closest thing.
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::process::abort()
    }
}

/// Spins forever; `black_box` keeps the optimiser from proving the loop has no effect.
fn infinite_loop() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates 16 MiB blocks and writes to every page of each so the memory is really committed,
/// keeping them all alive, until an allocation fails (which aborts, i.e. traps).
fn memory_bomb() -> ! {
    const BLOCK: usize = 16 * 1024 * 1024;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; BLOCK];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(black_box(block));
    }
}

/// `recurse` itself, called through a volatile read so that the compiler cannot see the
/// recursion: it can neither turn it into a loop nor warn that it never ends.
static RECURSE: fn(u64) -> u64 = recurse;

/// Recurses until wasm's call stack is exhausted. Each frame keeps nothing in linear memory
/// (`black_box` would spill to the shadow stack, which then overflows first and shows up as an
/// out-of-bounds memory access instead of a stack overflow); the use of the result after the
/// call keeps every frame alive.
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return depth;
    }
    // SAFETY: `RECURSE` is a valid, initialised static; a volatile read of it is a plain load.
    let next = unsafe { std::ptr::read_volatile(&RECURSE) };
    next(depth + 1).wrapping_mul(depth | 1)
}

/// A line of `len` bytes (at least one): `x`s and a final newline.
fn flood_line(len: usize) -> String {
    let mut line = "x".repeat(len.saturating_sub(1));
    line.push('\n');
    line
}

/// Writes 64 KiB lines to stdout and stderr forever. Write errors are ignored on purpose: the
/// plugin must be stopped by the host (timeout or trap), not by giving up.
fn output_flood() -> ! {
    let line = flood_line(FLOOD_LINE_BYTES);
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    loop {
        let _ = black_box(stdout.write_all(line.as_bytes()));
        let _ = black_box(stderr.write_all(line.as_bytes()));
    }
}

/// Calls the host's log import forever with 1 KiB lines.
fn log_flood() -> ! {
    let padding = "y".repeat(1000);
    let mut count = 0u64;
    loop {
        wflow_sdk::log::info(&format!("log line {count} {padding}"));
        count = black_box(count.wrapping_add(1));
    }
}

/// Reports progress forever with 100 KiB messages.
fn progress_flood() -> ! {
    let message = "z".repeat(100 * 1024);
    let mut done = 0u64;
    loop {
        wflow_sdk::progress(done, u64::MAX, &message);
        done = black_box(done.wrapping_add(1));
    }
}

/// Builds a table of `size_mib` MiB of floats in the host, then returns a report whose one
/// message is `size_mib` MiB long.
fn huge_output(size_mib: u32) -> Result<Report, StepError> {
    let bytes = size_mib as usize * 1024 * 1024;
    let column = Column::floats("huge", vec![1.0; bytes / std::mem::size_of::<f64>()]);
    let table = build_table(vec![column])?;
    wflow_sdk::log::info(&format!("built a table of {} rows", table.n_rows()));
    Ok(Report::new().with(Finding::passed("huge-output", "z".repeat(bytes))))
}

/// The outcome of `read-host-file`: a report with one finding per path (the content when the
/// read worked, the error when it did not) if any read worked, else `failed` with every error.
fn read_report(attempts: Vec<(String, Result<String, String>)>) -> Result<Report, StepError> {
    if attempts.iter().all(|(_, content)| content.is_err()) {
        let errors: Vec<String> = attempts
            .iter()
            .filter_map(|(path, content)| {
                content
                    .as_ref()
                    .err()
                    .map(|error| format!("reading {path}: {error}"))
            })
            .collect();
        return Err(StepError::Failed(errors.join("; ")));
    }
    Ok(attempts
        .into_iter()
        .map(|(path, content)| match content {
            Ok(content) => Finding::passed("read-host-file", format!("read {path}: {content}")),
            Err(error) => Finding::failed(
                "read-host-file",
                Severity::Info,
                format!("reading {path}: {error}"),
            ),
        })
        .collect())
}

/// The outcome of `read-env`: one passed finding whose `observed` is the number of variables
/// and whose message lists them as `KEY=value`, comma-separated (empty when there are none).
fn env_finding(vars: &[(String, String)]) -> Finding {
    let listed: Vec<String> = vars
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    Finding::passed("read-env", listed.join(", ")).observed(vars.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_behaviour_parses_from_its_kebab_case_name() {
        let names = [
            ("trap", Behaviour::Trap),
            ("panic", Behaviour::Panic),
            ("infinite-loop", Behaviour::InfiniteLoop),
            ("memory-bomb", Behaviour::MemoryBomb),
            ("stack-overflow", Behaviour::StackOverflow),
            ("output-flood", Behaviour::OutputFlood),
            ("log-flood", Behaviour::LogFlood),
            ("progress-flood", Behaviour::ProgressFlood),
            ("read-host-file", Behaviour::ReadHostFile),
            ("read-env", Behaviour::ReadEnv),
            ("open-socket", Behaviour::OpenSocket),
            ("huge-output", Behaviour::HugeOutput),
            ("invalid-input", Behaviour::InvalidInput),
            ("ok", Behaviour::Ok),
            ("count-calls", Behaviour::CountCalls),
            ("sleep", Behaviour::Sleep),
            ("deep-recursion", Behaviour::DeepRecursion),
        ];
        for (name, behaviour) in names {
            let config: Config =
                wflow_sdk::parse_config(&format!(r#"{{"behaviour": "{name}"}}"#)).unwrap();
            assert_eq!(config.behaviour, behaviour, "{name}");
        }
    }

    #[test]
    fn an_unknown_behaviour_is_invalid_config_naming_the_field() {
        let error = wflow_sdk::parse_config::<Config>(r#"{"behaviour": "explode"}"#).unwrap_err();
        let StepError::InvalidConfig(message) = error else {
            panic!("expected InvalidConfig, got {error:?}");
        };
        assert!(
            message.starts_with("field `behaviour`: unknown variant `explode`"),
            "{message}"
        );
    }

    #[test]
    fn read_report_fails_with_every_error_when_nothing_was_read() {
        let error = read_report(vec![
            ("/etc/passwd".into(), Err("not found".into())),
            ("/secret".into(), Err("denied".into())),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            StepError::Failed("reading /etc/passwd: not found; reading /secret: denied".into())
        );
    }

    #[test]
    fn read_report_shows_the_content_of_what_was_read() {
        let report = read_report(vec![
            ("/etc/passwd".into(), Err("not found".into())),
            ("/data/a.txt".into(), Ok("hello".into())),
        ])
        .unwrap();
        assert_eq!(report.findings.len(), 2);
        assert!(!report.findings[0].passed);
        assert!(report.findings[1].passed);
        assert_eq!(report.findings[1].message, "read /data/a.txt: hello");
        assert!(!report.has_failures());
    }

    #[test]
    fn env_finding_lists_variables_and_counts_them() {
        let empty = env_finding(&[]);
        assert_eq!(empty.message, "");
        assert_eq!(empty.observed.as_deref(), Some("0"));
        let some = env_finding(&[("A".into(), "1".into()), ("B".into(), "two".into())]);
        assert_eq!(some.message, "A=1, B=two");
        assert_eq!(some.observed.as_deref(), Some("2"));
    }

    #[test]
    fn flood_lines_have_the_requested_length() {
        let line = flood_line(FLOOD_LINE_BYTES);
        assert_eq!(line.len(), 64 * 1024);
        assert!(line.ends_with('\n'));
        assert_eq!(flood_line(0), "\n");
    }
}
