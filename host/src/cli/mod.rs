//! The command line: clap types, dispatch, and everything printed for people.
//!
//! Exit codes: 0 success, 1 the workflow (or a step) failed, 2 usage or configuration error.
//! Human output goes to stdout (summaries) and stderr (progress, errors); `--json` prints one
//! JSON document on stdout for scripts. Logs (`tracing`) go to stderr, set by `-v` or RUST_LOG.

mod history;
mod models;
mod output;
mod plugins;
mod predict;
mod remote;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::engine::{self, Event, RunOptions};
use crate::plugin::{CompiledCache, Runtime};
use crate::store::{Location, RunJournal, RunStatus, Store};
use crate::workflow;

/// Exit code: the workflow or one of its steps failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage, configuration or input.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "wflow", version, about = "Run MLOps workflows of sandboxed WebAssembly steps", long_about = None)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Directory of the compiled-plugin cache [default: ~/.cache/wflow/compiled].
    #[arg(long, global = true, env = "WFLOW_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins every time instead of using the compiled-plugin cache.
    #[arg(long, global = true)]
    no_compile_cache: bool,
    /// Where runs, artifacts and the model registry are kept [default: ./.wflow].
    #[arg(long, global = true, env = "WFLOW_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database shared by a cluster's daemons, workers and servers
    /// (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE) instead of the data directory's.
    #[arg(long, global = true, env = "WFLOW_STORE", value_name = "URL")]
    store: Option<String>,
    /// Where a shared store keeps artifacts: file:///SHARED/FOLDER or s3://BUCKET/PREFIX
    /// (needed once; the database remembers it).
    #[arg(long, global = true, env = "WFLOW_ARTIFACTS", value_name = "URL")]
    artifacts: Option<String>,
    /// Refuse plugins (other than the built-in ones) without a trusted publisher's signature.
    #[arg(long, global = true, env = "WFLOW_REQUIRE_SIGNED", value_parser = clap::builder::BoolishValueParser::new())]
    require_signed: bool,
    /// Never use the network for plugins: OCI plugins come from the local plugin cache.
    #[arg(long, global = true, env = "WFLOW_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    offline: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a workflow and run it, printing live progress and a summary.
    Run(RunArgs),
    /// Check a workflow without running it: syntax, references, files, plugins, configuration.
    Validate(ValidateArgs),
    /// Plugins: inspect, list, create, build, push, pull, sign, verify.
    #[command(subcommand)]
    Plugin(plugins::PluginCommand),
    /// The run history: list, show, logs, resume.
    #[command(subcommand)]
    Runs(history::RunsCommand),
    /// The model registry: versions, aliases, promotion, rollback, lineage.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Stored artifacts (tables, models, reports) by digest.
    #[command(subcommand)]
    Artifacts(history::ArtifactsCommand),
    /// Serve ONNX models over the Open Inference Protocol v2 (KServe v2 / Triton HTTP).
    Serve(ServeArgs),
    /// Score a CSV file of raw rows with a registered model, in process (no server).
    Predict(predict::PredictArgs),
    /// Run the workflows of a folder by their triggers, serve their models, and answer the API.
    Daemon(DaemonArgs),
    /// Ask a running daemon for a run of a workflow.
    Trigger(TriggerArgs),
    /// Run the steps a cluster's daemons and runs queue in a shared store (--store).
    Worker(WorkerArgs),
    /// The web UI of a store without a daemon (a daemon serves it at /ui itself).
    Ui(UiArgs),
}

/// How a server treats its connections.
#[derive(Debug, Args)]
struct HttpArgs {
    /// Open connections at most; one more is answered 503 and closed.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Time a client has to send a request's head, and how long an idle connection stays open.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    header_timeout: String,
    /// Time a client has to send a request's body, from its head.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    body_timeout: String,
    /// An origin besides the server's own whose pages may post to it (a web application calling
    /// the models from its own site), e.g. https://app.example.com; repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
}

impl HttpArgs {
    fn limits(&self) -> anyhow::Result<crate::http::Limits> {
        Ok(crate::http::Limits {
            max_connections: self.max_connections.max(1),
            header_read_timeout: parse_duration("--header-timeout", &self.header_timeout)?,
            body_read_timeout: parse_duration("--body-timeout", &self.body_timeout)?,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|origin| origin.trim_end_matches('/').to_string())
                .collect(),
            ..crate::http::Limits::default()
        })
    }
}

#[derive(Debug, Args)]
struct UiArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// A file holding the admin token [or WFLOW_ADMIN_TOKEN].
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Require the token for reads too.
    #[arg(long)]
    protect_reads: bool,
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Steps at once [default: the number of CPUs].
    #[arg(long)]
    concurrency: Option<usize>,
    /// How long a step stays this worker's without a heartbeat; another worker takes it over
    /// after that if this one died.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    lease: String,
    /// How long running steps may take to finish when the worker is asked to stop.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    grace: String,
}

/// Where a run's plugin calls execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ExecuteOn {
    /// In this process.
    Local,
    /// On the cluster's workers (`wflow worker`), through the shared store's queue.
    Workers,
}

#[derive(Debug, Args)]
struct DaemonArgs {
    /// The folder of workflow files (`*.toml`), watched for changes.
    #[arg(long, value_name = "DIR")]
    workflows: PathBuf,
    /// Address of the API and the model server (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Runs at once, over every workflow.
    #[arg(long, default_value_t = 16)]
    max_runs: usize,
    /// Steps at once, over every run [default: the number of CPUs].
    #[arg(long)]
    max_steps: Option<usize>,
    /// Requests waiting per workflow before triggers are refused.
    #[arg(long, default_value_t = 100)]
    queue: usize,
    /// What to do at start with runs a stopped or killed daemon left interrupted.
    #[arg(long, default_value = "resume", value_parser = ["resume", "mark"])]
    on_interrupted: String,
    /// How long running runs may take to finish when the daemon is asked to stop.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    grace: String,
    /// How often drift and decay triggers look at the served models.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    live_every: String,
    /// The rollout policy of the models it serves (TOML, as `wflow serve --policy`).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A file holding the admin token [or WFLOW_ADMIN_TOKEN; without either, one is made and
    /// written to daemon.token in the data directory].
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// A file holding the feedback token [or WFLOW_FEEDBACK_TOKEN; without either, one is made
    /// and written to feedback.token in the data directory]: for the services trusted with
    /// ground truth; it may send feedback and address a version, and its traffic counts toward
    /// rollouts and retraining.
    #[arg(long, value_name = "FILE")]
    feedback_token_file: Option<PathBuf>,
    /// Require the token for reads too (health stays open).
    #[arg(long)]
    protect_reads: bool,
    /// Where plugin calls run: here, or on a cluster's workers (needs --store).
    #[arg(long, value_enum, default_value = "local")]
    execute: ExecuteOn,
    /// With a shared store: how often a waiting daemon asks to become the leader.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    standby_poll: String,
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, Args)]
struct TriggerArgs {
    /// The workflow's name.
    workflow: String,
    /// `STEP.KEY=VALUE` (a step's configuration, the value as TOML) or `datasets.NAME=PATH`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Wait for the run to finish; the exit code is 0 when it succeeded, 1 when it did not.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A registered model to serve: NAME (its `champion`), NAME@ALIAS or NAME@VERSION.
    #[arg(long = "registry", value_name = "NAME[@ALIAS]")]
    registry: Vec<String>,
    /// An ONNX file to serve under NAME.
    #[arg(long = "model", value_name = "NAME=PATH")]
    model: Vec<String>,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: std::net::SocketAddr,
    /// The largest request body accepted, in MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// A file holding the bearer token the admin endpoints require [or WFLOW_ADMIN_TOKEN].
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// A file holding the feedback token [or WFLOW_FEEDBACK_TOKEN]: for the services trusted
    /// with ground truth; it may send feedback and address a version, and its traffic counts
    /// toward rollouts. With any token, feedback and named versions need one.
    #[arg(long, value_name = "FILE")]
    feedback_token_file: Option<PathBuf>,
    /// Require a token for inference, metadata and metrics too (health stays open).
    #[arg(long)]
    protect_reads: bool,
    /// The rollout policy (TOML): deployment strategies, rollback margins, monitoring windows.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// How often to look for alias moves made by other processes (`off`: only on reload).
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    watch: String,
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The workflow file (TOML).
    file: PathBuf,
    /// Steps running at once [default: the workflow's `concurrency`, else the number of CPUs].
    #[arg(long, short = 'j')]
    concurrency: Option<usize>,
    /// Print the run report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Print each step's log after the summary.
    #[arg(long)]
    logs: bool,
    /// Run every step, even those whose plugin, configuration and inputs match an earlier
    /// successful execution.
    #[arg(long)]
    no_cache: bool,
    /// Where plugin calls run: here, or on a cluster's workers (needs --store).
    #[arg(long, value_enum, default_value = "local")]
    execute: ExecuteOn,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// The workflow file (TOML).
    file: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader of our output went away (`wflow artifacts get D | head -c1`): quietly,
        // with the status the shell expects of a process a SIGPIPE ended (SIGPIPE itself is
        // ignored so that a run outlives its reader).
        Err(err) if broken_pipe(&err) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(err) => {
            errln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// 128 + SIGPIPE.
const EXIT_BROKEN_PIPE: u8 = 141;

fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // sled's own messages about a damaged database are turned into our error instead.
        tracing_subscriber::EnvFilter::new(format!(
            "wflow={default},sled=off,{}",
            if verbose >= 3 { default } else { "warn" }
        ))
    });
    // Colours only for a terminal: a log read from a file or a pipe carries no escape codes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| OneLine(std::io::stderr()))
        .try_init();
}

/// The log's writer: each event is one line, whatever its fields hold. Values that come from
/// outside (a URL, a plugin's message, a file name) may contain line breaks, which would let
/// them forge entries of their own; inside an event they are written as `\n` and `\r`.
/// (The formatter already escapes terminal control sequences.)
struct OneLine<W>(W);

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes each event whole, ending with its one line break.
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &byte in body {
            match byte {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                other => line.push(other),
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn runtime(cli: &Cli) -> anyhow::Result<Runtime> {
    let cache = if cli.no_compile_cache {
        None
    } else {
        cli.cache_dir
            .clone()
            .or_else(CompiledCache::default_dir)
            .map(CompiledCache::new)
    };
    let mut sources = crate::oci::Sources::from_env();
    sources.require_signed |= cli.require_signed;
    sources.offline |= cli.offline;
    Ok(Runtime::new(cache)
        .context("starting the plugin runtime")?
        .with_sources(sources))
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(async {
        match &cli.command {
            Command::Run(args) => run(&cli, args).await,
            Command::Validate(args) => validate(&cli, args).await,
            Command::Plugin(command) => plugins::dispatch(&cli, command).await,
            Command::Runs(command) => history::runs(&cli, command).await,
            Command::Models(command) => models::run(&cli, command),
            Command::Artifacts(command) => history::artifacts(&cli, command),
            Command::Serve(args) => serve(&cli, args).await,
            Command::Predict(args) => predict::run(&cli, args),
            Command::Daemon(args) => daemon(&cli, args).await,
            Command::Trigger(args) => trigger(&cli, args),
            Command::Worker(args) => worker(&cli, args).await,
            Command::Ui(args) => ui(&cli, args).await,
        }
    })
}

async fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<u8> {
    let mut sources = Vec::new();
    for reference in &args.registry {
        sources.push(crate::serve::ModelSource::Registry {
            reference: reference.clone(),
        });
    }
    for model in &args.model {
        sources.push(crate::serve::ModelSource::parse_file(model).map_err(anyhow::Error::msg)?);
    }
    if sources.is_empty() {
        anyhow::bail!("nothing to serve: give --registry NAME[@ALIAS] or --model NAME=PATH.onnx");
    }
    let admin_token = read_token(&args.admin_token_file, ADMIN_TOKEN)?;
    let feedback_token = read_token(&args.feedback_token_file, FEEDBACK_TOKEN)?;
    let policy = match &args.policy {
        Some(path) => crate::serve::policy::Policy::read(path).map_err(anyhow::Error::msg)?,
        None => crate::serve::policy::Policy::default(),
    };
    let watch = match args.watch.as_str() {
        "off" | "0" => None,
        text => Some(humantime::parse_duration(text).map_err(|err| {
            anyhow::anyhow!("--watch `{text}` is not a duration like 500ms: {err}")
        })?),
    };
    // A replica of a cluster holds the shared store; beside a sled store the server opens it
    // only when it reads, since sled locks it while it is open.
    let location = location(cli)?;
    let access = if location.is_shared() {
        let store =
            tokio::task::spawn_blocking(move || Store::open_at(&location, "serve")).await??;
        crate::serve::StoreAccess::Shared(Arc::new(store))
    } else {
        crate::serve::StoreAccess::OnDemand(location.dir().to_path_buf())
    };
    let mut config = crate::serve::ServeConfig::new(sources, access);
    config.listen = args.listen;
    config.admin_token = admin_token;
    config.feedback_token = feedback_token;
    config.open_reads = !args.protect_reads;
    config.max_body = args.max_body_mib.saturating_mul(1 << 20);
    config.http = args.http.limits()?;
    config.policy = policy;
    config.watch = watch;
    config.runtime = Some(Arc::new(runtime(cli)?));
    if !config.open_reads && config.admin_token.is_none() && config.feedback_token.is_none() {
        anyhow::bail!("--protect-reads needs a token: set WFLOW_ADMIN_TOKEN or --admin-token-file");
    }
    if config.admin_token.is_none() && config.feedback_token.is_none() {
        errln!(
            "warning: no token is set (WFLOW_ADMIN_TOKEN, WFLOW_FEEDBACK_TOKEN): anyone who can reach {} may send feedback and address versions",
            config.listen
        );
    }
    crate::serve::run(
        config,
        |address, server| {
            for deployment in server.deployments() {
                errln!(
                    "model {} version {} ({})",
                    deployment.name,
                    deployment.champion.version,
                    deployment.champion.source
                );
                if let Some(challenger) = &deployment.challenger {
                    errln!(
                        "  challenger version {} as a {} ({})",
                        challenger.model.version,
                        challenger.strategy,
                        challenger.why
                    );
                }
            }
            errln!(
                "wflow serving {} model(s) on http://{address}",
                server.deployments().len()
            );
        },
        shutdown_signal(),
    )
    .await?;
    Ok(0)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Opens the store of `--data-dir` (or its default).
fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir.clone().unwrap_or_else(Store::default_dir)
}

/// The running daemon of the data directory, whose API commands use instead of the store.
fn remote(cli: &Cli) -> Option<remote::Remote> {
    remote::Remote::discover(&data_dir(cli))
}

fn parse_duration(what: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    humantime::parse_duration(text)
        .map_err(|err| anyhow::anyhow!("{what} `{text}` is not a duration like 30s: {err}"))
}

/// The admin token's environment variable.
const ADMIN_TOKEN: &str = "WFLOW_ADMIN_TOKEN";
/// The feedback token's environment variable.
const FEEDBACK_TOKEN: &str = "WFLOW_FEEDBACK_TOKEN";

/// A token from its file, else from its environment variable; one too short to resist guessing
/// is refused.
fn read_token(file: &Option<PathBuf>, variable: &str) -> anyhow::Result<Option<String>> {
    let (token, from) = match file {
        Some(path) => (
            Some(
                std::fs::read_to_string(path)
                    .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            path.display().to_string(),
        ),
        None => (std::env::var(variable).ok(), variable.to_string()),
    };
    let Some(token) = token.filter(|token| !token.is_empty()) else {
        return Ok(None);
    };
    crate::serve::token::check_strength(&token).map_err(|err| anyhow::anyhow!("{from}: {err}"))?;
    Ok(Some(token))
}

async fn daemon(cli: &Cli, args: &DaemonArgs) -> anyhow::Result<u8> {
    if let Some(running) = crate::daemon::running(&data_dir(cli)) {
        anyhow::bail!(
            "a daemon (pid {}) already runs for {} on {}",
            running.pid,
            data_dir(cli).display(),
            running.address
        );
    }
    let policy = match &args.policy {
        Some(path) => crate::serve::policy::Policy::read(path).map_err(anyhow::Error::msg)?,
        None => crate::serve::policy::Policy::default(),
    };
    let defaults = crate::scheduler::Limits::default();
    let location = location(cli)?;
    if args.execute == ExecuteOn::Workers && !location.is_shared() {
        anyhow::bail!("--execute workers needs a shared store: give --store postgres://...");
    }
    let config = crate::daemon::DaemonConfig {
        workflows: args.workflows.clone(),
        location,
        on_workers: args.execute == ExecuteOn::Workers,
        standby_poll: parse_duration("--standby-poll", &args.standby_poll)?,
        listen: args.listen,
        admin_token: read_token(&args.admin_token_file, ADMIN_TOKEN)?,
        feedback_token: read_token(&args.feedback_token_file, FEEDBACK_TOKEN)?,
        open_reads: !args.protect_reads,
        max_body: 64 << 20,
        http: args.http.limits()?,
        policy,
        limits: crate::scheduler::Limits {
            max_runs: args.max_runs.max(1),
            max_steps: args.max_steps.unwrap_or(defaults.max_steps).max(1),
            queue: args.queue.max(1),
            on_interrupted: if args.on_interrupted == "mark" {
                crate::scheduler::OnInterrupted::Mark
            } else {
                crate::scheduler::OnInterrupted::Resume
            },
        },
        grace: parse_duration("--grace", &args.grace)?,
        live_every: parse_duration("--live-every", &args.live_every)?,
        runtime: Arc::new(runtime(cli)?),
    };
    crate::daemon::run(
        config,
        |daemon| {
            if let Some(pg) = daemon.scheduler.store().postgres() {
                errln!(
                    "wflow daemon {}: leading the cluster of {}",
                    pg.process().id,
                    daemon.scheduler.store().location()
                );
            }
            let workflows = daemon.scheduler.workflows();
            for (name, loaded) in &workflows {
                let triggers: Vec<String> = loaded
                    .workflow
                    .triggers
                    .iter()
                    .map(|t| format!("{} ({})", t.name, t.kind.name()))
                    .collect();
                errln!(
                    "workflow {name} ({}){}",
                    loaded.file.display(),
                    if triggers.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", triggers.join(", "))
                    }
                );
            }
            for (file, _) in daemon.scheduler.problems() {
                errln!(
                    "workflow file {} does not load (see the events)",
                    file.display()
                );
            }
            for deployment in daemon.server.deployments() {
                errln!(
                    "model {} version {} served",
                    deployment.name,
                    deployment.champion.version
                );
            }
            if !daemon.resumed.is_empty() {
                errln!("resuming interrupted runs {:?}", daemon.resumed);
            }
            errln!(
                "wflow daemon: {} workflow(s), API and models on http://{}",
                workflows.len(),
                daemon.address
            );
        },
        shutdown_signal(),
    )
    .await?;
    Ok(0)
}

fn trigger(cli: &Cli, args: &TriggerArgs) -> anyhow::Result<u8> {
    let Some(remote) = remote(cli) else {
        anyhow::bail!(
            "no daemon runs for {}: start one with `wflow daemon --workflows DIR`, or run a file with `wflow run FILE`",
            data_dir(cli).display()
        );
    };
    let mut params = serde_json::Map::new();
    for param in &args.params {
        let (key, value) = param
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--param `{param}`: expected KEY=VALUE"))?;
        // The value is read as TOML, as the workflow file would have it (`0.5` a number,
        // `"x"` or x a string); dataset paths are paths.
        let value = match format!("v = {value}").parse::<toml::Table>() {
            Ok(mut table) if !key.starts_with("datasets.") => {
                serde_json::to_value(table.remove("v").expect("parsed a `v`"))?
            }
            _ => serde_json::Value::String(value.to_string()),
        };
        params.insert(key.to_string(), value);
    }
    let since = remote
        .get("/api/v1/events")?
        .get("events")
        .and_then(|e| e.as_array())
        .and_then(|e| e.last())
        .and_then(|e| e.get("seq"))
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
    let answer = remote.post(
        &format!("/api/v1/workflows/{}/trigger", args.workflow),
        &serde_json::json!({ "params": params }),
    )?;
    match answer.get("status").and_then(|s| s.as_str()) {
        Some("skipped") => {
            outln!(
                "skipped: {}",
                answer.get("reason").and_then(|r| r.as_str()).unwrap_or("")
            );
            return Ok(0);
        }
        _ => outln!(
            "{} run queued in the daemon at {}",
            args.workflow,
            remote.address()
        ),
    }
    if !args.wait {
        return Ok(0);
    }
    // Follows the events until this workflow's run (the first started after the request)
    // finishes.
    let mut since = since;
    let mut run = None;
    loop {
        let answer = remote.get(&format!("/api/v1/events?since={since}&wait=30s"))?;
        for event in answer["events"].as_array().into_iter().flatten() {
            since = event["seq"].as_u64().unwrap_or(since);
            if event["workflow"] != args.workflow.as_str() {
                continue;
            }
            let kind = event["kind"].as_str().unwrap_or_default();
            let id = event["run"].as_u64();
            if kind == "run-started" && run.is_none() {
                run = id;
                outln!("{}", event["message"].as_str().unwrap_or_default());
            } else if run.is_some()
                && id == run
                && kind.starts_with("run-")
                && kind != "run-started"
            {
                outln!("{}", event["message"].as_str().unwrap_or_default());
                return Ok(if kind == "run-succeeded" {
                    0
                } else {
                    EXIT_FAILED
                });
            }
        }
    }
}

/// Where the store is: the data directory, or `--store` and `--artifacts`.
fn location(cli: &Cli) -> anyhow::Result<Location> {
    Ok(Location::new(
        cli.store.as_deref(),
        cli.artifacts.as_deref(),
        data_dir(cli),
    )?)
}

fn open_store(cli: &Cli) -> anyhow::Result<Arc<Store>> {
    open_store_as(cli, "command")
}

/// Opens the store; `kind` names this process in a shared store's list.
fn open_store_as(cli: &Cli, kind: &str) -> anyhow::Result<Arc<Store>> {
    Ok(Arc::new(Store::open_at(&location(cli)?, kind)?))
}

async fn ui(cli: &Cli, args: &UiArgs) -> anyhow::Result<u8> {
    let token = read_token(&args.admin_token_file, ADMIN_TOKEN)?;
    if args.protect_reads && token.is_none() {
        anyhow::bail!("--protect-reads needs a token: set WFLOW_ADMIN_TOKEN or --admin-token-file");
    }
    // Beside a sled store the UI opens it only to read, as `wflow serve` does; a shared store
    // is held.
    let location = location(cli)?;
    let store = if location.is_shared() {
        let store = tokio::task::spawn_blocking(move || Store::open_at(&location, "ui")).await??;
        crate::serve::StoreAccess::Shared(Arc::new(store))
    } else {
        crate::serve::StoreAccess::OnDemand(location.dir().to_path_buf())
    };
    let app = crate::ui::router(crate::ui::Ui {
        store,
        scheduler: None,
        server: None,
        token,
        open_reads: !args.protect_reads,
        sessions: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", args.listen))?;
    errln!("wflow ui on http://{}/ui", listener.local_addr()?);
    crate::http::serve(listener, app, args.http.limits()?, shutdown_signal()).await?;
    Ok(0)
}

async fn worker(cli: &Cli, args: &WorkerArgs) -> anyhow::Result<u8> {
    let location = location(cli)?;
    if !location.is_shared() {
        anyhow::bail!(
            "a worker takes steps from a cluster's shared store: give --store postgres://USER@HOST/DATABASE (or WFLOW_STORE)"
        );
    }
    let lease = parse_duration("--lease", &args.lease)?;
    let grace = parse_duration("--grace", &args.grace)?;
    let store = {
        let location = location.clone();
        Arc::new(tokio::task::spawn_blocking(move || Store::open_at(&location, "worker")).await??)
    };
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| RunOptions::default().concurrency);
    let worker =
        crate::cluster::Worker::new(store.clone(), Arc::new(runtime(cli)?), concurrency, lease)
            .map_err(anyhow::Error::msg)?;
    errln!(
        "wflow worker {}: {concurrency} step(s) at once from {}, lease {}",
        worker.id(),
        store.location(),
        humantime::format_duration(lease)
    );
    worker.run(shutdown_signal(), grace).await;
    errln!(
        "wflow worker {}: stopped after {} step(s)",
        worker.id(),
        worker.completed.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(0)
}

/// Reads and parses a workflow, printing every diagnostic on failure.
fn load_workflow(file: &Path) -> Result<workflow::Workflow, u8> {
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(err) => {
            errln!("error: cannot read workflow {}: {err}", file.display());
            return Err(EXIT_USAGE);
        }
    };
    workflow::parse(file, &source).map_err(|diagnostics| report_problems(file, &diagnostics))
}

/// Prints every diagnostic and a count; returns the usage exit code.
fn report_problems(file: &Path, diagnostics: &workflow::Diagnostics) -> u8 {
    let count = diagnostics.items.len();
    errln!("{diagnostics}");
    errln!(
        "error: {count} problem{} in {}",
        if count == 1 { "" } else { "s" },
        file.display()
    );
    EXIT_USAGE
}

async fn plan(runtime: &Runtime, file: &Path) -> Result<engine::Plan, u8> {
    let workflow = load_workflow(file)?;
    engine::plan(workflow, runtime)
        .await
        .map_err(|diagnostics| report_problems(file, &diagnostics))
}

async fn validate(cli: &Cli, args: &ValidateArgs) -> anyhow::Result<u8> {
    let runtime = runtime(cli)?;
    let plan = match plan(&runtime, &args.file).await {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    output::print_validated(&plan, args.json);
    Ok(0)
}

async fn run(cli: &Cli, args: &RunArgs) -> anyhow::Result<u8> {
    let runtime = Arc::new(runtime(cli)?);
    let source = match std::fs::read(&args.file) {
        Ok(source) => source,
        Err(err) => {
            errln!("error: cannot read workflow {}: {err}", args.file.display());
            return Ok(EXIT_USAGE);
        }
    };
    let plan = match plan(&runtime, &args.file).await {
        Ok(plan) => Arc::new(plan),
        Err(code) => return Ok(code),
    };
    let store = open_store_as(cli, "run")?;
    let steps = plan.steps.iter().map(|s| s.step.id.clone()).collect();
    let record = store.create_run(
        &plan.workflow.name,
        &args.file,
        &source,
        steps,
        args.no_cache,
    )?;
    let options = Execution {
        concurrency: args.concurrency,
        json: args.json,
        logs: args.logs,
        no_cache: args.no_cache,
        resuming: false,
        on_workers: args.execute == ExecuteOn::Workers,
    };
    execute(plan, runtime, store, record.id, &options).await
}

/// How a recorded run is executed and shown.
struct Execution {
    concurrency: Option<usize>,
    json: bool,
    logs: bool,
    no_cache: bool,
    resuming: bool,
    /// Plugin calls go to the cluster's workers.
    on_workers: bool,
}

/// Runs a planned workflow as run `id` of the store, with live progress and a summary.
async fn execute(
    plan: Arc<engine::Plan>,
    runtime: Arc<Runtime>,
    store: Arc<Store>,
    id: u64,
    options: &Execution,
) -> anyhow::Result<u8> {
    let concurrency = options
        .concurrency
        .or(plan.workflow.concurrency)
        .unwrap_or_else(|| RunOptions::default().concurrency);
    let dataset_paths = RunJournal::dataset_paths(&plan.workflow);
    let journal = Arc::new(RunJournal::new(
        store.clone(),
        id,
        options.resuming,
        dataset_paths,
    ));
    let queue = if options.on_workers {
        let (store, run) = (store.clone(), id);
        let queue =
            tokio::task::spawn_blocking(move || crate::cluster::QueueSteps::new(store, run))
                .await?
                .map_err(anyhow::Error::msg)?;
        Some(Arc::new(queue) as Arc<dyn engine::StepQueue>)
    } else {
        None
    };
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut progress = output::Progress::new(options.json);
    let printer = tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            progress.event(&event);
        }
    });
    let report = engine::run(
        plan.clone(),
        runtime.clone(),
        RunOptions {
            concurrency,
            journal: Some(journal),
            run: Some(id),
            no_cache: options.no_cache,
            queue,
            ..RunOptions::default()
        },
        Some(sender),
    )
    .await;
    // The sender is gone with the run: the printer drains what is left and stops.
    let _ = printer.await;
    let status = if report.succeeded() {
        RunStatus::Succeeded
    } else {
        RunStatus::Failed
    };
    store.set_run_status(id, status, None)?;
    output::print_report(&report, options.json, options.logs);
    Ok(if report.succeeded() { 0 } else { EXIT_FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_log_event_stays_one_line_whatever_its_fields_hold() {
        let mut written = OneLine(Vec::new());
        written
            .write_all(b"WARN request failed error=GET /x\nERROR forged entry\r\n")
            .unwrap();
        written.write_all(b"INFO plain\n").unwrap();
        assert_eq!(
            String::from_utf8(written.0).unwrap(),
            "WARN request failed error=GET /x\\nERROR forged entry\\r\nINFO plain\n"
        );
    }
}
