//! Human and JSON renderings of runs, plans and plugins, and live progress lines.
//!
//! Progress goes to stderr as one line per event, so it reads the same on a terminal and in a
//! CI log; the summary table and JSON documents go to stdout.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::json;

use crate::engine::{Event, Plan, RunReport, StepReport, StepStatus};
use crate::plugin::{Capability, Plugin, Severity, StepKind, decision_text, kind_name};

/// Metrics worth showing in the summary, by kind, in this order when present.
pub const KEY_METRICS: &[&str] = &[
    "accuracy",
    "f1_macro",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
    "train_accuracy",
    "train_r2",
    "cv_score",
    "best_score",
    "iterations",
];

fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0} us", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e12 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

/// The one-line gist of a step: its key metrics, checks or decision.
/// Plugin-provided text with control characters made visible, so that a plugin cannot move
/// the cursor, fake lines or send terminal escape sequences through its messages.
pub fn clean(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() && c != '\t' {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The one-line gist of a step, cleaned for the terminal.
fn details(step: &StepReport) -> String {
    clean(&raw_details(step))
}

fn raw_details(step: &StepReport) -> String {
    if step.kind.is_none() {
        if let Some((_, version)) = step.metrics.iter().find(|(name, _)| name == "version")
            && step.findings.is_empty()
        {
            // The model-loading step: which version it read.
            return format!("v{version}");
        }
        // The registration step: what it registered and which alias moved.
        return step
            .findings
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Some(gate) = &step.decision {
        return format!("decision: {}", decision_text(&gate.decision));
    }
    if let Some(drift) = &step.drift {
        // The plugin lists each feature's primary method first; that entry decides the feature.
        let mut seen = std::collections::HashSet::new();
        let primary: Vec<_> = drift
            .features
            .iter()
            .filter(|f| seen.insert(f.feature.as_str()))
            .collect();
        let drifted: Vec<&str> = primary
            .iter()
            .filter(|f| f.drifted)
            .map(|f| f.feature.as_str())
            .collect();
        let listed = if drifted.is_empty() {
            String::new()
        } else {
            format!(
                ": {}{}",
                drifted
                    .iter()
                    .take(5)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
                if drifted.len() > 5 { ", ..." } else { "" }
            )
        };
        return format!(
            "drift: {} ({}/{} features drifted{listed})",
            if drift.drifted { "yes" } else { "no" },
            drifted.len(),
            primary.len(),
        );
    }
    let mut parts = Vec::new();
    if step.kind == Some(StepKind::Validator) {
        let passed = step.findings.iter().filter(|f| f.passed).count();
        let warnings = step
            .findings
            .iter()
            .filter(|f| !f.passed && f.severity == Severity::Warn)
            .count();
        parts.push(format!("{passed}/{} checks passed", step.findings.len()));
        if warnings > 0 {
            parts.push(format!(
                "{warnings} warning{}",
                if warnings == 1 { "" } else { "s" }
            ));
        }
    }
    if step.kind == Some(StepKind::Transformer) {
        parts.extend(
            step.metrics
                .iter()
                .filter(|(n, _)| n.ends_with(".rows"))
                .map(|(n, v)| format!("{n}={}", format_value(*v))),
        );
    }
    for key in KEY_METRICS {
        if let Some((_, value)) = step.metrics.iter().rev().find(|(name, _)| name == key) {
            parts.push(format!("{key}={}", format_value(*value)));
        }
    }
    parts.join("  ")
}

/// Live progress, one line per event on stderr.
pub struct Progress {
    quiet: bool,
    terminal: bool,
    /// When each step last printed a progress line: plugins may report thousands of times.
    last_progress: std::collections::HashMap<String, std::time::Instant>,
}

/// Shortest interval between two progress lines of one step.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            last_progress: Default::default(),
        }
    }

    pub fn event(&mut self, event: &Event) {
        if self.quiet {
            return;
        }
        let (ok, failed, skipped, running) = if self.terminal {
            (
                "\x1b[32m✓\x1b[0m",
                "\x1b[31m✗\x1b[0m",
                "\x1b[33m-\x1b[0m",
                "\x1b[36m▸\x1b[0m",
            )
        } else {
            ("ok  ", "FAIL", "skip", "run ")
        };
        match event {
            Event::StepStarted { step, attempt } => {
                if *attempt == 1 {
                    errln!("{running} {step}");
                } else {
                    errln!("{running} {step} (attempt {attempt})");
                }
            }
            Event::StepProgress {
                step,
                done,
                total,
                message,
            } => {
                let now = std::time::Instant::now();
                let due = self
                    .last_progress
                    .get(step)
                    .is_none_or(|last| now.duration_since(*last) >= PROGRESS_INTERVAL);
                if due {
                    self.last_progress.insert(step.clone(), now);
                    let percent = if *total > 0 {
                        format!(" {:.0}%", 100.0 * *done as f64 / *total as f64)
                    } else {
                        String::new()
                    };
                    errln!("  {step}: {done}/{total}{percent} {}", clean(message));
                }
            }
            Event::StepRetrying {
                step,
                attempt,
                failure,
                delay,
            } => {
                errln!(
                    "{failed} {step}: attempt {attempt} failed: {}; retrying in {}",
                    clean(failure),
                    millis(*delay)
                );
            }
            Event::StepFinished { report } => match &report.status {
                StepStatus::Succeeded if report.reused.is_some() => errln!(
                    "{ok} {} ({}{})  {}",
                    report.id,
                    report.status_label(),
                    report
                        .reused
                        .filter(|r| !r.resumed)
                        .map_or(String::new(), |r| format!(" from run {}", r.run)),
                    details(report)
                ),
                StepStatus::Succeeded => errln!(
                    "{ok} {} ({})  {}",
                    report.id,
                    millis(report.duration),
                    details(report)
                ),
                StepStatus::Failed(reason) => errln!(
                    "{failed} {} ({}): {}",
                    report.id,
                    millis(report.duration),
                    clean(reason)
                ),
                StepStatus::Skipped(reason) => {
                    errln!("{skipped} {}: skipped, {}", report.id, clean(reason))
                }
                StepStatus::NotApplicable(reason) => {
                    errln!("{skipped} {}: nothing to do, {}", report.id, clean(reason))
                }
                StepStatus::Cancelled(reason) => {
                    errln!("{skipped} {}: {}", report.id, clean(reason))
                }
            },
        }
    }
}

/// Prints rows under headers, each column padded to its widest cell; the last is not padded.
pub fn pad_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let columns = headers.len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == columns {
                text.push_str(cell);
            } else {
                text.push_str(&pad(cell, widths[i]));
            }
        }
        outln!("{}", text.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(
            row.iter()
                .map(|c| clean(c))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        );
    }
}

fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len >= width {
        text.to_string()
    } else {
        format!("{text}{}", " ".repeat(width - len))
    }
}

pub fn print_report(report: &RunReport, as_json: bool, logs: bool) {
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report_json(report))
                .expect("JSON values always serialise")
        );
        return;
    }
    let count = |label: &str| {
        report
            .steps
            .iter()
            .filter(|s| s.status.label() == label)
            .count()
    };
    let reused = report.steps.iter().filter(|s| s.reused.is_some()).count();
    outln!();
    outln!(
        "{}workflow {}: {} ({} steps: {} ok{}{}, {} failed, {} skipped) in {}",
        report
            .run
            .map_or(String::new(), |run| format!("run {run} · ")),
        report.workflow,
        if report.succeeded() {
            "succeeded"
        } else {
            "failed"
        },
        report.steps.len(),
        count("ok"),
        if reused > 0 {
            format!(" ({reused} reused)")
        } else {
            String::new()
        },
        match count("n/a") {
            0 => String::new(),
            n => format!(", {n} with nothing to do"),
        },
        count("failed"),
        count("skipped"),
        millis(report.duration)
    );
    let rows: Vec<[String; 5]> = report
        .steps
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.plugin.clone(),
                s.status_label().to_string(),
                if s.reused.is_some() {
                    "-".to_string()
                } else {
                    millis(s.duration)
                },
                details(s),
            ]
        })
        .collect();
    let headers = ["STEP", "PLUGIN", "STATUS", "TIME", "DETAILS"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    outln!();
    outln!(
        "{}{}{}{}{}",
        pad(headers[0], widths[0]),
        pad(headers[1], widths[1]),
        pad(headers[2], widths[2]),
        pad(headers[3], widths[3]),
        headers[4]
    );
    for (row, step) in rows.iter().zip(&report.steps) {
        outln!(
            "{}{}{}{}{}",
            pad(&row[0], widths[0]),
            pad(&row[1], widths[1]),
            pad(&row[2], widths[2]),
            pad(&row[3], widths[3]),
            row[4]
        );
        match &step.status {
            StepStatus::Failed(reason) => {
                outln!(
                    "    {}: {}",
                    step.failure_kind.unwrap_or("failed"),
                    clean(reason)
                )
            }
            StepStatus::Skipped(reason) | StepStatus::NotApplicable(reason)
                if !reason.is_empty() =>
            {
                outln!("    {}", clean(reason))
            }
            _ => {}
        }
        if let Some(gate) = &step.decision {
            for finding in &gate.report.findings {
                outln!(
                    "    {} {}: {}",
                    if finding.passed { "+" } else { "-" },
                    clean(&finding.check),
                    clean(&finding.message)
                );
            }
        }
    }
    if logs {
        for step in &report.steps {
            if step.log.is_empty() {
                continue;
            }
            outln!();
            outln!("log of {}:", step.id);
            for line in &step.log {
                outln!(
                    "  [{:>6} ms {:?}] {}",
                    line.at_ms,
                    line.level,
                    clean(&line.message)
                );
            }
        }
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warn => "warn",
        Severity::Fail => "fail",
    }
}

fn report_json(report: &RunReport) -> serde_json::Value {
    json!({
        "run": report.run,
        "workflow": report.workflow,
        "succeeded": report.succeeded(),
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
        "steps": report.steps.iter().map(|s| json!({
            "id": s.id,
            "plugin": s.plugin,
            "kind": s.kind_label(),
            "status": s.status_label(),
            "reused_from_run": s.reused.map(|r| r.run),
            "reason": match &s.status { StepStatus::Succeeded => None, StepStatus::Failed(r) | StepStatus::Skipped(r) | StepStatus::NotApplicable(r) | StepStatus::Cancelled(r) => Some(r) },
            "failure_kind": s.failure_kind,
            "attempts": s.attempts,
            "duration_ms": s.duration.as_secs_f64() * 1000.0,
            "metrics": s.metrics.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "findings": s.findings.iter().map(|f| json!({
                "check": f.check, "column": f.column, "severity": severity_name(f.severity),
                "passed": f.passed, "message": f.message, "observed": f.observed, "expected": f.expected,
            })).collect::<Vec<_>>(),
            "decision": s.decision.as_ref().map(|g| decision_text(&g.decision)),
            "outputs": s.outputs,
            "log": s.log,
        })).collect::<Vec<_>>(),
    })
}

pub fn print_validated(plan: &Plan, as_json: bool) {
    if as_json {
        let value = json!({
            "workflow": plan.workflow.name,
            "valid": true,
            "datasets": plan.workflow.datasets.iter().map(|d| json!({
                "name": d.name,
                "path": d.path,
                "rows": plan.datasets.get(&d.name).map(|t| t.row_count()),
                "columns": plan.datasets.get(&d.name).map(|t| t.columns().len()),
            })).collect::<Vec<_>>(),
            "steps": plan.steps.iter().map(|s| json!({
                "id": s.step.id,
                "plugin": s.plugin_label(),
                "kind": s.kind_label(),
                "digest": s.plugin_digest(),
                "needs": s.step.needs,
            })).collect::<Vec<_>>(),
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values always serialise")
        );
        return;
    }
    outln!("{}: valid", plan.workflow.file.display());
    for dataset in &plan.workflow.datasets {
        if let Some(table) = plan.datasets.get(&dataset.name) {
            outln!(
                "  dataset {}: {} rows x {} columns",
                dataset.name,
                table.row_count(),
                table.columns().len()
            );
        }
    }
    for step in &plan.steps {
        let needs = if step.step.needs.is_empty() {
            String::new()
        } else {
            format!(" (after {})", step.step.needs.join(", "))
        };
        outln!(
            "  step {}: {} {}{needs}",
            step.step.id,
            step.kind_label(),
            step.plugin_label()
        );
    }
}

fn capability_text(capability: &Capability) -> String {
    match capability {
        Capability::ReadDir(path) => format!("read files under {path}"),
        Capability::WriteDir(path) => format!("write files under {path}"),
        Capability::Env(name) => format!("read the environment variable {name}"),
        Capability::Network => "open network connections".into(),
    }
}

/// How a workflow grants a capability, so a user can copy it after reading what a plugin wants.
fn grant_text(capability: &Capability) -> String {
    match capability {
        Capability::ReadDir(path) => format!("grants = {{ read = [{path:?}] }}"),
        Capability::WriteDir(path) => format!("grants = {{ write = [{path:?}] }}"),
        Capability::Env(name) => format!("grants = {{ env = [{name:?}] }}"),
        Capability::Network => "grants = { network = true }".into(),
    }
}

fn plugin_json(plugin: &Plugin) -> serde_json::Value {
    json!({
        "name": plugin.info.name,
        "version": plugin.info.version,
        "kind": kind_name(plugin.kind()),
        "description": plugin.info.description,
        "contract": format!("wflow:plugin@{}", plugin.contract),
        "digest": format!("sha256:{}", plugin.digest),
        "config_schema": plugin.config_schema,
        "capabilities": plugin.info.capabilities.iter().map(capability_text).collect::<Vec<_>>(),
    })
}

/// A plugin as `wflow plugin inspect` shows it; `signature` says who signed it, if anyone.
pub fn print_plugin(plugin: &Plugin, as_json: bool, signature: &str) {
    if as_json {
        let mut value = plugin_json(plugin);
        value["signature"] = json!(signature);
        value["imports"] = json!(plugin.imports);
        value["exports"] = json!(plugin.exports);
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values always serialise")
        );
        return;
    }
    outln!("name:         {}", plugin.info.name);
    outln!("version:      {}", plugin.info.version);
    outln!("kind:         {}", kind_name(plugin.kind()));
    outln!("description:  {}", plugin.info.description);
    outln!("contract:     wflow:plugin@{}", plugin.contract);
    outln!("digest:       sha256:{}", plugin.digest);
    if plugin.info.capabilities.is_empty() {
        outln!("capabilities: none (fully sandboxed)");
    } else {
        outln!("capabilities:");
        for capability in &plugin.info.capabilities {
            outln!(
                "  - {}   (a step grants it with {})",
                capability_text(capability),
                grant_text(capability)
            );
        }
    }
    outln!("signature:    {signature}");
    outln!("imports:      {}", plugin.imports.join(", "));
    outln!("configuration schema:");
    let schema =
        serde_json::to_string_pretty(&plugin.config_schema).expect("JSON values always serialise");
    for line in schema.lines() {
        outln!("  {line}");
    }
}

pub fn print_plugin_list(plugins: &[std::sync::Arc<Plugin>], as_json: bool) {
    if as_json {
        let list: Vec<_> = plugins.iter().map(|p| plugin_json(p)).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&list).expect("JSON values always serialise")
        );
        return;
    }
    let width = plugins.iter().map(|p| p.info.name.len()).max().unwrap_or(0) + 2;
    for plugin in plugins {
        outln!(
            "{}{:<13}{}",
            pad(&plugin.info.name, width),
            kind_name(plugin.kind()),
            plugin.info.description
        );
    }
}
