//! `wflow runs ...` and `wflow artifacts ...`: the run history and the artifacts it refers to.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use super::output::{clean, format_value, pad_table};
use super::remote::field;
use super::{Cli, EXIT_USAGE, Execution, execute, open_store, remote, report_problems, runtime};
use crate::engine;
use crate::store::{LogRecord, RunFilter, RunRecord, RunStatus, StepRecord, format_time};
use crate::workflow;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this workflow (its `name`).
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs with this status: running, succeeded, failed, interrupted.
        #[arg(long)]
        status: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its workflow, datasets and every step with inputs, outputs and metrics.
    Show {
        id: u64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the kept log of a run's steps (or of one step).
    Logs { id: u64, step: Option<String> },
    /// Cancel a run a daemon is running (it can be resumed later).
    Cancel { id: u64 },
    /// Continue an interrupted or failed run from its last completed steps.
    Resume {
        id: u64,
        /// Steps running at once.
        #[arg(long, short = 'j')]
        concurrency: Option<usize>,
        /// Print the run report as JSON.
        #[arg(long)]
        json: bool,
        /// Print each step's log after the summary.
        #[arg(long)]
        logs: bool,
        /// Where plugin calls run: here, or on a cluster's workers (needs --store).
        #[arg(long, value_enum, default_value = "local")]
        execute: super::ExecuteOn,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Write an artifact's bytes (verified against its digest) to a file or stdout.
    Get {
        /// `sha256:<hex>`, or a unique prefix of at least 8 hex digits.
        digest: String,
        /// The file to write [default: stdout].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialise")
    );
}

/// `sha256:0123456789ab`: enough of a digest to recognise and to pass to `artifacts get`.
pub fn short(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

fn duration(record: &RunRecord) -> String {
    match record.duration_ms() {
        Some(ms) if ms >= 10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{ms} ms"),
        None => "-".into(),
    }
}

pub async fn runs(cli: &Cli, command: &RunsCommand) -> anyhow::Result<u8> {
    match command {
        RunsCommand::List {
            workflow,
            status,
            limit,
            json,
        } => {
            let status = match status {
                Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown status `{text}` (running, succeeded, failed, interrupted)"
                    )
                })?),
                None => None,
            };
            let (runs, place) = match remote(cli) {
                Some(remote) => {
                    let mut path = format!("/api/v1/runs?limit={limit}");
                    if let Some(workflow) = workflow {
                        path.push_str(&format!("&workflow={workflow}"));
                    }
                    if let Some(status) = status {
                        path.push_str(&format!("&status={}", status.label()));
                    }
                    let runs: Vec<RunRecord> = field(&remote.get(&path)?, "runs")?;
                    (runs, format!("the daemon at {}", remote.address()))
                }
                None => {
                    let store = open_store(cli)?;
                    let runs = store.list_runs(&RunFilter {
                        workflow: workflow.clone(),
                        status,
                        limit: Some(*limit),
                        ..RunFilter::default()
                    })?;
                    (runs, store.dir().display().to_string())
                }
            };
            if *json {
                print_json(&serde_json::to_value(&runs)?);
                return Ok(0);
            }
            if runs.is_empty() {
                outln!("no runs in {place}");
                return Ok(0);
            }
            let rows = runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.workflow.clone(),
                        r.status.label().to_string(),
                        format_time(r.created),
                        duration(r),
                        r.steps.len().to_string(),
                        r.trigger.as_ref().map_or("run".to_string(), trigger_label),
                    ]
                })
                .collect();
            pad_table(
                &[
                    "RUN", "WORKFLOW", "STATUS", "STARTED", "TIME", "STEPS", "TRIGGER",
                ],
                rows,
            );
            Ok(0)
        }
        RunsCommand::Show { id, json } => {
            let (run, steps): (RunRecord, Vec<StepRecord>) = match remote(cli) {
                Some(remote) => {
                    let answer = remote.get(&format!("/api/v1/runs/{id}"))?;
                    (field(&answer, "run")?, field(&answer, "steps")?)
                }
                None => {
                    let store = open_store(cli)?;
                    (store.run(*id)?, store.steps(*id)?)
                }
            };
            if *json {
                print_json(&json!({ "run": run, "steps": steps }));
                return Ok(0);
            }
            show_run(&run, &steps);
            Ok(0)
        }
        RunsCommand::Logs { id, step } => {
            let (steps, logs): (Vec<StepRecord>, Vec<LogRecord>) = match remote(cli) {
                Some(remote) => {
                    let answer = remote.get(&format!("/api/v1/runs/{id}/logs"))?;
                    (field(&answer, "steps")?, field(&answer, "logs")?)
                }
                None => {
                    let store = open_store(cli)?;
                    let steps = store.steps(*id)?;
                    let logs = steps
                        .iter()
                        .map(|s| store.step_log(s))
                        .collect::<Result<Vec<_>, _>>()?;
                    (steps, logs)
                }
            };
            if let Some(step) = step
                && !steps.iter().any(|s| &s.id == step)
            {
                anyhow::bail!(
                    "run {id} has no step `{step}` (its steps: {})",
                    steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for (record, log) in steps
                .iter()
                .zip(&logs)
                .filter(|(s, _)| step.as_ref().is_none_or(|id| &s.id == id))
            {
                match &record.reused {
                    Some(reuse) => outln!(
                        "== {} ({}, log of run {}) ==",
                        record.id,
                        record.status.label(),
                        reuse.run
                    ),
                    None => outln!("== {} ({}) ==", record.id, record.status.label()),
                }
                for (i, line) in log.lines.iter().enumerate() {
                    if log.dropped > 0 && i == log.lines.len() / 2 {
                        outln!("  ... {} lines not kept ...", log.dropped);
                    }
                    outln!(
                        "  [{:>6} ms {:?}] {}",
                        line.at_ms,
                        line.level,
                        clean(&line.message)
                    );
                }
            }
            Ok(0)
        }
        RunsCommand::Cancel { id } => {
            let Some(remote) = remote(cli) else {
                anyhow::bail!(
                    "only a daemon's runs can be cancelled, and no daemon runs for this data directory (stop a `wflow run` with Ctrl-C)"
                );
            };
            remote.post(&format!("/api/v1/runs/{id}/cancel"), &json!({}))?;
            outln!("run {id}: cancelling (resume it with `wflow runs resume {id}`)");
            Ok(0)
        }
        RunsCommand::Resume {
            id,
            concurrency,
            json,
            logs,
            execute,
        } => match remote(cli) {
            Some(remote) => {
                remote.post(&format!("/api/v1/runs/{id}/resume"), &json!({}))?;
                outln!(
                    "run {id}: resuming in the daemon at {} (follow it with `wflow runs show {id}`)",
                    remote.address()
                );
                Ok(0)
            }
            None => {
                let on_workers = *execute == super::ExecuteOn::Workers;
                resume(cli, *id, *concurrency, *json, *logs, on_workers).await
            }
        },
    }
}

/// Resumes run `id`: the workflow as it was when the run started (its text is an artifact),
/// with the run's completed steps reused and the rest run.
async fn resume(
    cli: &Cli,
    id: u64,
    concurrency: Option<usize>,
    json: bool,
    logs: bool,
    on_workers: bool,
) -> anyhow::Result<u8> {
    let store = super::open_store_as(cli, "run")?;
    let record = store.run(id)?;
    if record.status == RunStatus::Succeeded {
        anyhow::bail!("run {id} already succeeded; there is nothing to resume");
    }
    let text = store.artifacts().get(&record.workflow_digest)?;
    let file = PathBuf::from(&record.file);
    let source = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("the workflow stored for run {id} is not UTF-8"))?;
    let workflow = match workflow::parse(&file, &source) {
        Ok(workflow) => workflow,
        Err(diagnostics) => return Ok(report_problems(&file, &diagnostics)),
    };
    let runtime = Arc::new(runtime(cli)?);
    let plan = match engine::plan(workflow, &runtime).await {
        Ok(plan) => Arc::new(plan),
        Err(diagnostics) => {
            report_problems(&file, &diagnostics);
            return Ok(EXIT_USAGE);
        }
    };
    store.reopen_run(id)?;
    let options = Execution {
        concurrency,
        json,
        logs,
        no_cache: record.no_cache,
        resuming: true,
        on_workers,
    };
    execute(plan, runtime, store, id, &options).await
}

/// What started a run, shortly: `cron nightly`, `drift drifted`, `manual`.
fn trigger_label(trigger: &crate::store::TriggerRecord) -> String {
    match &trigger.name {
        Some(name) => format!("{} {name}", trigger.kind),
        None => trigger.kind.clone(),
    }
}

fn show_run(run: &RunRecord, steps: &[StepRecord]) {
    outln!("run {}: {} ({})", run.id, run.workflow, run.status.label());
    outln!("  file      {} ({})", run.file, short(&run.workflow_digest));
    outln!(
        "  started   {}   time {}   pid {}{}",
        format_time(run.created),
        duration(run),
        run.pid,
        if run.no_cache { "   --no-cache" } else { "" }
    );
    if let Some(trigger) = &run.trigger {
        outln!(
            "  trigger   {}: {}",
            trigger_label(trigger),
            clean(&trigger.reason)
        );
        for (key, value) in &trigger.params {
            outln!("            {key} = {}", clean(value));
        }
        for (name, path) in &trigger.datasets {
            outln!("            dataset {name} from {}", clean(path));
        }
    }
    for transition in run.transitions.iter().skip(1) {
        outln!(
            "  {:<9} {}{}",
            transition.status.label(),
            format_time(transition.at),
            transition
                .note
                .as_ref()
                .map_or(String::new(), |n| format!("  {}", clean(n)))
        );
    }
    for dataset in &run.datasets {
        outln!(
            "  dataset   {} = {} ({} rows, {})",
            dataset.name,
            dataset.path,
            dataset.rows,
            short(&dataset.digest)
        );
    }
    outln!();
    for step in steps {
        let metrics: Vec<String> = step
            .metrics
            .iter()
            .filter(|(name, _)| !name.starts_with("trial."))
            .take(8)
            .map(|(name, value)| format!("{name}={}", format_value(*value)))
            .collect();
        outln!(
            "{} [{}] {} {}  {} ms, {} attempt{}",
            step.id,
            step.status.label(),
            step.kind,
            step.plugin,
            step.duration_ms,
            step.attempts,
            if step.attempts == 1 { "" } else { "s" }
        );
        if let Some(reused) = &step.reused {
            outln!(
                "    reused from run {} (step `{}`)",
                reused.run,
                reused.step
            );
        }
        for input in &step.inputs {
            outln!(
                "    in  {} = {} ({})",
                input.slot,
                input.source,
                short(&input.digest)
            );
        }
        for output in &step.outputs {
            let extra = match (&output.value.rows, &output.value.onnx) {
                (Some(rows), _) => format!(", {rows} rows"),
                (_, Some(onnx)) => format!(", onnx {}", short(onnx)),
                _ => String::new(),
            };
            outln!(
                "    out {} = {:?} ({}{extra})",
                output.name,
                output.value.kind,
                short(&output.value.digest)
            );
        }
        if !metrics.is_empty() {
            outln!("    {}", metrics.join("  "));
        }
        if let Some(failure) = &step.failure {
            outln!(
                "    {}: {}",
                step.failure_kind.as_deref().unwrap_or("failed"),
                clean(failure)
            );
        }
    }
}

pub fn artifacts(cli: &Cli, command: &ArtifactsCommand) -> anyhow::Result<u8> {
    match command {
        ArtifactsCommand::Get { digest, output } => {
            let store = open_store(cli)?;
            let digest = store.artifacts().resolve(digest)?;
            let bytes = store.artifacts().get(&digest)?;
            match output {
                Some(path) => {
                    std::fs::write(path, &bytes)
                        .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", path.display()))?;
                    errln!(
                        "{digest}: {} bytes written to {}",
                        bytes.len(),
                        path.display()
                    );
                }
                None => std::io::stdout().lock().write_all(&bytes)?,
            }
            Ok(0)
        }
    }
}
