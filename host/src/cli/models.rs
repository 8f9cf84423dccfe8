//! `wflow models ...`: the registry's versions and aliases, promotion and rollback, and `why`,
//! which answers in one screen what a served model is, where it came from and how it got there.

use clap::Subcommand;
use serde_json::json;

use super::history::short;
use super::output::{KEY_METRICS, clean, format_value, pad_table};
use super::remote::{Remote, field};
use super::{Cli, open_store};
use crate::store::registry::ModelRef;
use crate::store::registry::{ModelSummary, Why};
use crate::store::{Actor, AliasEvent, FeatureStats, ModelVersion, Store, format_time};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List registered models with their latest version and aliases.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a version: NAME (latest), NAME@VERSION or NAME@ALIAS.
    Show {
        model: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Point an alias at a version, with the reason recorded in the alias history.
    Promote {
        /// NAME@VERSION
        model: String,
        /// The alias to move.
        #[arg(long, default_value = "champion")]
        alias: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Return an alias to the version it had before its current one.
    Rollback {
        /// The model's name.
        name: String,
        #[arg(long, default_value = "champion")]
        alias: String,
        /// Why (kept in the audit trail).
        #[arg(long, default_value = "manual rollback")]
        reason: String,
    },
    /// Which version an alias serves, what trained it on which data, which checks it passed,
    /// how it compared with the version it replaced, and the alias's history.
    Why {
        /// NAME@ALIAS (or NAME@VERSION).
        model: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialise")
    );
}

fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown user".into())
}

pub fn run(cli: &Cli, command: &ModelsCommand) -> anyhow::Result<u8> {
    if let Some(remote) = super::remote(cli) {
        return run_remote(&remote, command);
    }
    let store = open_store(cli)?;
    match command {
        ModelsCommand::List { json } => {
            let models = store.models()?;
            if *json {
                print_json(&serde_json::to_value(&models)?);
                return Ok(0);
            }
            if models.is_empty() {
                outln!("no models registered in {}", store.dir().display());
                return Ok(0);
            }
            print_models(&models);
        }
        ModelsCommand::Show { model, json } => {
            let version = store.resolve_model(&ModelRef::parse(model)?)?;
            let aliases = store.aliases(&version.name)?;
            if *json {
                print_json(&json!({ "version": version, "aliases": aliases }));
                return Ok(0);
            }
            show(&version, &aliases);
        }
        ModelsCommand::Promote {
            model,
            alias,
            reason,
        } => {
            let ModelRef::Version(name, number) = ModelRef::parse(model)? else {
                anyhow::bail!("promote takes NAME@VERSION (e.g. {model}@3), got `{model}`");
            };
            let event = store.move_alias(
                &name,
                alias,
                number,
                reason,
                Actor::Command {
                    command: format!("wflow models promote {name}@{number} --alias {alias}"),
                    user: actor(),
                },
                false,
            )?;
            outln!("{}", event_line(&event));
        }
        ModelsCommand::Rollback {
            name,
            alias,
            reason,
        } => {
            let event = store.rollback(
                name,
                alias,
                reason,
                Actor::Command {
                    command: format!("wflow models rollback {name} --alias {alias}"),
                    user: actor(),
                },
            )?;
            outln!("{}", event_line(&event));
        }
        ModelsCommand::Why { model, json } => why(&store, model, *json)?,
    }
    Ok(0)
}

/// The same commands through a running daemon's API (the daemon holds the store).
fn run_remote(remote: &Remote, command: &ModelsCommand) -> anyhow::Result<u8> {
    match command {
        ModelsCommand::List { json } => {
            let models: Vec<ModelSummary> = field(&remote.get("/api/v1/models")?, "models")?;
            if *json {
                print_json(&serde_json::to_value(&models)?);
            } else if models.is_empty() {
                outln!("no models registered in the daemon at {}", remote.address());
            } else {
                print_models(&models);
            }
        }
        ModelsCommand::Show { model, json } => {
            let answer = remote.get(&format!("/api/v1/models/{model}"))?;
            if *json {
                print_json(&answer);
            } else {
                show(&field(&answer, "version")?, &field(&answer, "aliases")?);
            }
        }
        ModelsCommand::Promote {
            model,
            alias,
            reason,
        } => {
            let ModelRef::Version(name, number) = ModelRef::parse(model)? else {
                anyhow::bail!("promote takes NAME@VERSION (e.g. {model}@3), got `{model}`");
            };
            let event: AliasEvent = serde_json::from_value(remote.post(
                &format!("/api/v1/models/{name}/promote"),
                &json!({ "version": number, "alias": alias, "reason": reason, "user": actor() }),
            )?)?;
            outln!("{}", event_line(&event));
        }
        ModelsCommand::Rollback {
            name,
            alias,
            reason,
        } => {
            let event: AliasEvent = serde_json::from_value(remote.post(
                &format!("/api/v1/models/{name}/rollback"),
                &json!({ "alias": alias, "reason": reason, "user": actor() }),
            )?)?;
            outln!("{}", event_line(&event));
        }
        ModelsCommand::Why { model, json } => {
            let report: Why =
                serde_json::from_value(remote.get(&format!("/api/v1/models/{model}/why"))?)?;
            print_why(&report, *json);
        }
    }
    Ok(0)
}

fn print_models(models: &[ModelSummary]) {
    let rows = models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.versions.to_string(),
                format!("v{}", m.latest),
                m.aliases
                    .iter()
                    .map(|(alias, v)| format!("{alias}=v{v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                format_time(m.updated),
            ]
        })
        .collect();
    pad_table(&["MODEL", "VERSIONS", "LATEST", "ALIASES", "UPDATED"], rows);
}

fn event_line(event: &AliasEvent) -> String {
    format!(
        "{}  {}@{}: {} -> {}  by {}{}: {}",
        format_time(event.at),
        event.model,
        event.alias,
        event.from.map_or("none".into(), |v| format!("v{v}")),
        event.to.map_or("none".into(), |v| format!("v{v}")),
        event.actor,
        if event.rollback { " (rollback)" } else { "" },
        clean(&event.reason)
    )
}

/// The last value of each metric (plugins may emit one many times, like a loss per epoch),
/// in order of first appearance, without the per-trial search metrics.
fn latest_metrics(metrics: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (name, value) in metrics {
        if name.contains("trial.") {
            continue;
        }
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = *value,
            None => out.push((name.clone(), *value)),
        }
    }
    out
}

/// The metrics worth a glance: the summary's key metrics when present, else the first few.
fn key_metrics(metrics: &[(String, f64)], limit: usize) -> Vec<(String, f64)> {
    let latest = latest_metrics(metrics);
    let keys: Vec<(String, f64)> = KEY_METRICS
        .iter()
        .filter_map(|key| latest.iter().find(|(n, _)| n == key).cloned())
        .collect();
    if keys.is_empty() {
        latest.into_iter().take(limit).collect()
    } else {
        keys.into_iter().take(limit).collect()
    }
}

fn metrics_line(metrics: &[(String, f64)], limit: usize) -> String {
    key_metrics(metrics, limit)
        .iter()
        .map(|(name, value)| format!("{name}={}", format_value(*value)))
        .collect::<Vec<_>>()
        .join("  ")
}

/// Parameters worth printing: short values only (fitted vectors are in `models show --json`).
fn parameters_line(version: &ModelVersion, limit: usize) -> String {
    version
        .parameters
        .iter()
        .filter(|(k, v)| !k.starts_with("search_trials") && v.len() <= 60)
        .take(limit)
        .map(|(k, v)| format!("{k}={}", clean(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn show(version: &ModelVersion, aliases: &std::collections::BTreeMap<String, u32>) {
    let here: Vec<&str> = aliases
        .iter()
        .filter(|(_, v)| **v == version.version)
        .map(|(a, _)| a.as_str())
        .collect();
    outln!(
        "{} v{}{}",
        version.name,
        version.version,
        if here.is_empty() {
            String::new()
        } else {
            format!(" ({})", here.join(", "))
        }
    );
    outln!(
        "  registered  {} by run {} (step `{}`)",
        format_time(version.created),
        version.run,
        version.step
    );
    outln!("  onnx        {}", version.onnx);
    outln!(
        "  predicts    {} ({}{})",
        version.target,
        version.task,
        if version.class_labels.is_empty() {
            String::new()
        } else {
            format!(", classes {}", version.class_labels.join(", "))
        }
    );
    outln!(
        "  features    {} ({})",
        version.features.len(),
        version.features.join(", ")
    );
    if let Some(pipeline) = &version.pipeline {
        let inputs: Vec<String> = pipeline
            .inputs
            .iter()
            .map(|i| format!("{} {}{}", i.name, i.kind, if i.nullable { "?" } else { "" }))
            .collect();
        outln!("  serves      raw rows: {}", inputs.join(", "));
        for step in &pipeline.steps {
            let stages: Vec<&str> = step.stages.iter().map(|s| s.name()).collect();
            outln!(
                "    then      `{}` {} ({})",
                step.step,
                step.plugin,
                if stages.is_empty() {
                    "nothing to apply to these columns".to_string()
                } else {
                    stages.join(", ")
                }
            );
        }
    }
    outln!("  metrics     {}", metrics_line(&version.metrics, 12));
    outln!("  parameters  {}", parameters_line(version, 20));
}

/// `models why`: everything about the version an alias points at, on one screen.
fn why(store: &Store, model: &str, as_json: bool) -> anyhow::Result<()> {
    let report = store.why(&ModelRef::parse(model)?)?;
    print_why(&report, as_json);
    Ok(())
}

/// Prints what `models why` found, locally or from a daemon.
pub fn print_why(report: &Why, as_json: bool) {
    if as_json {
        print_json(&serde_json::to_value(report).expect("plain data"));
        return;
    }
    let Why {
        version,
        alias,
        replaced,
        history,
        run_steps: steps,
        ..
    } = report;
    outln!(
        "{}{} is v{}, registered {} by run {} (step `{}`)",
        version.name,
        alias.as_ref().map_or(String::new(), |a| format!("@{a}")),
        version.version,
        format_time(version.created),
        version.run,
        version.step
    );
    outln!(
        "model     {} ONNX, {} of `{}` from {} features{}",
        short(&version.onnx),
        version.task,
        version.target,
        version.features.len(),
        if version.class_labels.is_empty() {
            String::new()
        } else {
            format!(", classes {}", version.class_labels.join("/"))
        }
    );
    if let Some(data) = &version.training_data {
        let sources: Vec<String> = data
            .sources
            .iter()
            .map(|s| format!("{} ({}, {} rows)", s.path, short(&s.digest), s.rows))
            .collect();
        outln!(
            "data      {} rows x {} columns ({}) from {}",
            data.rows,
            data.schema.len(),
            short(&data.digest),
            if sources.is_empty() {
                "an upstream step".to_string()
            } else {
                sources.join(", ")
            }
        );
        let drifty = version
            .reference
            .values()
            .filter(|s| matches!(s, FeatureStats::Numeric { .. }))
            .count();
        outln!(
            "          reference statistics kept for {} features ({drifty} numeric)",
            version.reference.len()
        );
    }
    if let Some(pipeline) = &version.pipeline {
        outln!("serves    raw rows: {}", pipeline.summary());
    }
    let trainer = version
        .lineage
        .iter()
        .find(|l| l.step == version.trained_by);
    let parameters = parameters_line(version, 8);
    match trainer {
        Some(t) => outln!(
            "trained   by `{}` {} ({}) with {parameters}",
            t.step,
            t.plugin,
            short(&t.digest),
        ),
        None => outln!("trained   by `{}` with {parameters}", version.trained_by),
    }
    outln!("checks");
    for lineage in &version.lineage {
        let Some(step) = steps.iter().find(|s| s.id == lineage.step) else {
            continue;
        };
        use crate::plugin::Severity;
        let gating = |f: &&crate::plugin::Finding| f.severity == Severity::Fail;
        let checks = step.findings.iter().filter(gating).count();
        let passed = step
            .findings
            .iter()
            .filter(gating)
            .filter(|f| f.passed)
            .count();
        let warnings = step
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warn && !f.passed)
            .count();
        let mut summary = Vec::new();
        if checks > 0 {
            summary.push(format!("{passed}/{checks} checks passed"));
        }
        if warnings > 0 {
            summary.push(format!("{warnings} warnings"));
        }
        let figures = metrics_line(&step.metrics, 4);
        if !figures.is_empty() {
            summary.push(figures);
        }
        outln!(
            "  {:<18} {} [{}] {}",
            step.id,
            step.plugin,
            step.status.label(),
            summary.join("  ")
        );
        for failed in step.findings.iter().filter(gating).filter(|f| !f.passed) {
            outln!(
                "             - {}: {}",
                failed.check,
                clean(&failed.message)
            );
        }
    }
    if let Some(decision) = &version.decision {
        for finding in &decision.report.findings {
            outln!(
                "gate      {} {}: {}",
                if finding.passed { "+" } else { "-" },
                finding.check,
                clean(&finding.message)
            );
        }
    }
    match replaced {
        Some(old) => {
            outln!(
                "replaced  v{} (registered {}):",
                old.version,
                format_time(old.created)
            );
            for (name, value) in key_metrics(&version.metrics, 6) {
                if let Some((_, before)) = latest_metrics(&old.metrics)
                    .iter()
                    .find(|(n, _)| *n == name)
                {
                    outln!(
                        "          {name:<16} {} -> {} ({:+.4})",
                        format_value(*before),
                        format_value(value),
                        value - before
                    );
                }
            }
        }
        None if alias.is_some() => outln!("replaced  nothing: it is the alias's first version"),
        None => {}
    }
    if !history.is_empty() {
        outln!("history");
        for event in history {
            outln!("  {}", event_line(event));
        }
    }
}
