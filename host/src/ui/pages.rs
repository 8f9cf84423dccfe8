//! The UI's pages as maud templates: the layout (navigation, the embedded stylesheet and
//! script), and one function per page. Every interpolated value is escaped by maud; the only
//! raw HTML is the DAG's SVG, which escapes its own text.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::PAGE;
use super::admin::Session;
use super::chart::{self, Series};
use super::dag::{self, Node};
use crate::serve::ServeEvent;
use crate::store::registry::ModelSummary;
use crate::store::{
    AliasEvent, LogRecord, ModelVersion, RunRecord, RunStatus, StepRecord, StepStatus, format_time,
};

fn layout(title: &str, current: &str, session: Option<&Session>, body: Markup) -> Markup {
    let nav = [
        ("Runs", "/ui/runs"),
        ("Workflows", "/ui/workflows"),
        ("Models", "/ui/models"),
        ("Serving", "/ui/serving"),
        ("Events", "/ui/events"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · wflow" }
                // No icon to fetch (a browser would ask for /favicon.ico and get a 404).
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/ui" { "wflow" }
                    nav {
                        @for (label, href) in nav {
                            a href=(href) class=[(label == current).then_some("current")] { (label) }
                        }
                    }
                    div.account {
                        @match session {
                            Some(session) => {
                                span.admin { "admin" }
                                form.inline method="post" action="/ui/logout" {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                            None => { a href="/ui/login" { "Sign in" } }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page saying what went wrong.
pub fn problem(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Problem"),
        "",
        None,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.problem { (message) }
        },
    )
}

/// A page that only a daemon (or model server) can fill.
pub fn no_daemon(title: &str, session: Option<&Session>) -> Markup {
    layout(
        title,
        title,
        session,
        html! {
            h1 { (title) }
            p { "This page shows a running daemon's " (title.to_lowercase()) "; this UI reads a store without one (start `wflow daemon`, which serves this UI too)." }
        },
    )
}

fn status_label(status: RunStatus) -> &'static str {
    status.label()
}

fn step_label(step: &StepRecord) -> &'static str {
    match step.status {
        StepStatus::Succeeded => "ok",
        StepStatus::Cached => "cached",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
        StepStatus::NotApplicable => "n/a",
        StepStatus::Running => "running",
        StepStatus::Interrupted => "interrupted",
    }
}

fn duration(millis: u64) -> String {
    if millis < 1_000 {
        format!("{millis} ms")
    } else if millis < 120_000 {
        format!("{:.1} s", millis as f64 / 1000.0)
    } else {
        format!("{} min", millis / 60_000)
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn run_duration(run: &RunRecord) -> String {
    run.finished
        .map(|f| duration(f.saturating_sub(run.created)))
        .unwrap_or_default()
}

fn query(filters: &super::RunsQuery, page: usize) -> String {
    let mut parts = Vec::new();
    for (key, value) in [
        ("workflow", &filters.workflow),
        ("status", &filters.status),
        ("trigger", &filters.trigger),
    ] {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            parts.push(format!("{key}={}", url_encode(value)));
        }
    }
    parts.push(format!("page={page}"));
    format!("/ui/runs?{}", parts.join("&"))
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The runs, newest first, a page at a time, with filters.
pub fn runs(
    filters: &super::RunsQuery,
    page: usize,
    runs: &[RunRecord],
    total: usize,
    session: Option<&Session>,
) -> Markup {
    let shown = &runs[..runs.len().min(PAGE)];
    let more = runs.len() > PAGE;
    let statuses = [
        "queued",
        "running",
        "succeeded",
        "failed",
        "interrupted",
        "cancelled",
    ];
    layout(
        "Runs",
        "Runs",
        session,
        html! {
            h1 { "Runs" }
            form.filters method="get" action="/ui/runs" {
                label { "Workflow " input name="workflow" value=[filters.workflow.as_deref()]; }
                label { "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for s in statuses {
                            option value=(s) selected[filters.status.as_deref() == Some(s)] { (s) }
                        }
                    }
                }
                label { "Trigger "
                    select name="trigger" {
                        option value="" { "any" }
                        @for t in ["manual", "cron", "files", "drift", "decay", "run"] {
                            option value=(t) selected[filters.trigger.as_deref() == Some(t)] { (t) }
                        }
                    }
                }
                button type="submit" { "Filter" }
                span.count { (total) @if total == 1 { " run" } @else { " runs" } " in the store" }
            }
            form.compare method="get" action="/ui/compare" {
            table.runs data-live="runs" {
                thead { tr { th { "Run" } th { "Workflow" } th { "Status" } th { "Trigger" } th { "Started" } th { "Took" } th { "Compare" } } }
                tbody {
                    @for run in shown {
                        tr data-run=(run.id) {
                            td { a href={ "/ui/runs/" (run.id) } { (run.id) } }
                            td { (run.workflow) }
                            td { span class={ "status " (status_label(run.status)) } data-status { (status_label(run.status)) } }
                            td { (run.trigger.as_ref().map_or("run", |t| t.kind.as_str())) }
                            td { (format_time(run.created)) }
                            td { (run_duration(run)) }
                            td { input type="checkbox" name="runs" value=(run.id) aria-label={ "compare run " (run.id) }; }
                        }
                    }
                }
            }
            @if !shown.is_empty() { button type="submit" { "Compare the runs ticked" } }
            }
            @if shown.is_empty() { p { "No runs match." } }
            nav.pages {
                @if page > 0 { a rel="prev" href=(query(filters, page - 1)) { "← newer" } }
                span { "page " (page + 1) }
                @if more { a rel="next" href=(query(filters, page + 1)) { "older →" } }
            }
        },
    )
}

/// One run: its DAG, steps with plugins, digests, inputs, outputs, metrics, findings, logs.
pub fn run(
    run: &RunRecord,
    steps: &[StepRecord],
    logs: &[LogRecord],
    needs: &BTreeMap<String, Vec<String>>,
    session: Option<&Session>,
    controls: Option<&Session>,
) -> Markup {
    let nodes: Vec<Node> = steps
        .iter()
        .map(|step| {
            let mut edges: Vec<String> = needs.get(&step.id).cloned().unwrap_or_default();
            for input in &step.inputs {
                if let Some((producer, _)) = input.source.split_once('.')
                    && !edges.iter().any(|e| e == producer)
                {
                    edges.push(producer.to_string());
                }
            }
            Node {
                id: step.id.clone(),
                status: step_label(step).replace('/', ""),
                detail: match step.status {
                    StepStatus::Succeeded | StepStatus::Failed => duration(step.duration_ms),
                    _ => step_label(step).to_string(),
                },
                needs: edges,
            }
        })
        .collect();
    layout(
        &format!("Run {}", run.id),
        "Runs",
        session,
        html! {
            h1 { "Run " (run.id) " · " (run.workflow) " "
                span class={ "status " (status_label(run.status)) } data-run-status=(run.id) { (status_label(run.status)) } }
            dl.facts {
                dt { "Started" } dd { (format_time(run.created)) }
                dt { "Took" } dd { (run_duration(run)) }
                dt { "Trigger" } dd { (run.trigger.as_ref().map_or("wflow run".to_string(), |t| format!("{}: {}", t.kind, t.reason))) }
                dt { "Workflow file" } dd { code { (run.file) } " " a href={ "/ui/artifacts/" (run.workflow_digest) } { "(as it ran)" } }
                @for dataset in &run.datasets {
                    dt { "Dataset " (dataset.name) }
                    dd { (dataset.rows) " rows · " a href={ "/ui/artifacts/" (dataset.digest) } { code { (short(&dataset.digest)) } } }
                }
            }
            @if let Some(note) = run.transitions.last().and_then(|t| t.note.as_ref()) {
                p.note { (note) }
            }
            @if let Some(admin) = controls {
                div.controls {
                    @if matches!(run.status, RunStatus::Running | RunStatus::Queued) {
                        form.inline method="post" action={ "/ui/runs/" (run.id) "/cancel" } {
                            input type="hidden" name="csrf" value=(admin.csrf);
                            button type="submit" { "Cancel the run" }
                        }
                    }
                    @if matches!(run.status, RunStatus::Interrupted | RunStatus::Failed | RunStatus::Cancelled) {
                        form.inline method="post" action={ "/ui/runs/" (run.id) "/resume" } {
                            input type="hidden" name="csrf" value=(admin.csrf);
                            button type="submit" { "Resume the run" }
                        }
                    }
                }
            }
            section.dag { (PreEscaped(dag::svg(&nodes))) }
            h2 { "Steps" }
            @for (step, log) in steps.iter().zip(logs) {
                section.step id={ "step-" (step.id) } {
                    h3 { (step.id) " " span class={ "status " (step_label(step).replace('/', "")) } { (step_label(step)) } }
                    dl.facts {
                        dt { "Plugin" } dd { (step.plugin) " " code title=(step.plugin_digest) { (short(&step.plugin_digest)) } }
                        dt { "Attempts" } dd { (step.attempts) }
                        dt { "Took" } dd { (duration(step.duration_ms)) }
                        @if !step.config.is_null() && step.config != serde_json::json!({}) {
                            dt { "Configuration" } dd { code { (step.config.to_string()) } }
                        }
                        @for input in &step.inputs {
                            dt { "In " (input.slot) }
                            dd { (input.source) " · " a href={ "/ui/artifacts/" (input.digest) } { code { (short(&input.digest)) } } }
                        }
                        @for output in &step.outputs {
                            dt { "Out " (output.name) }
                            dd { a href={ "/ui/artifacts/" (output.value.digest) } { code { (short(&output.value.digest)) } } }
                        }
                        @if let Some(reuse) = &step.reused {
                            dt { "Reused" } dd { "from " a href={ "/ui/runs/" (reuse.run) } { "run " (reuse.run) } }
                        }
                    }
                    @if let Some(failure) = &step.failure {
                        p.failure { (step.failure_kind.as_deref().unwrap_or("failed")) ": " (failure) }
                    }
                    @if !step.metrics.is_empty() {
                        table.metrics {
                            @for (name, value) in &step.metrics {
                                tr { th { (name) } td { (format!("{value:.4}")) } }
                            }
                        }
                    }
                    @if !step.findings.is_empty() {
                        ul.findings {
                            @for finding in &step.findings {
                                li class=(if finding.passed { "pass" } else { "fail" }) {
                                    (finding.check) @if let Some(column) = &finding.column { " on " code { (column) } } ": " (finding.message)
                                }
                            }
                        }
                    }
                    @if !log.lines.is_empty() {
                        details.log {
                            summary { "Log (" (log.lines.len()) " lines" @if log.dropped > 0 { ", " (log.dropped) " dropped" } ")" }
                            pre { @for line in &log.lines { (format!("{:>6} ms  ", line.at_ms)) (line.message) "\n" } }
                        }
                    }
                }
            }
        },
    )
}

/// Every model with its latest version and aliases.
pub fn models(models: &[ModelSummary], session: Option<&Session>) -> Markup {
    layout(
        "Models",
        "Models",
        session,
        html! {
            h1 { "Models" }
            @if models.is_empty() { p { "No model is registered yet." } }
            table {
                thead { tr { th { "Model" } th { "Versions" } th { "Aliases" } th { "Updated" } } }
                tbody {
                    @for model in models {
                        tr {
                            td { a href={ "/ui/models/" (model.name) } { (model.name) } }
                            td { (model.versions) }
                            td { @for (alias, version) in &model.aliases { span.alias { (alias) " → v" (version) } " " } }
                            td { (format_time(model.updated)) }
                        }
                    }
                }
            }
        },
    )
}

/// One model: versions with metrics and lineage, aliases, and the history of every alias move.
pub fn model(
    versions: &[ModelVersion],
    aliases: &BTreeMap<String, u32>,
    history: &[AliasEvent],
    session: Option<&Session>,
) -> Markup {
    let name = versions.first().map_or("", |v| v.name.as_str());
    let champion = aliases.get("champion").copied();
    layout(
        name,
        "Models",
        session,
        html! {
            h1 { (name) }
            p { @for (alias, version) in aliases { span.alias data-alias=(alias) { (alias) " → v" (version) } " " } }
            @if let Some(admin) = session {
                div.controls {
                    @for alias in aliases.keys() {
                        form.inline method="post" action={ "/ui/models/" (name) "/rollback" } {
                            input type="hidden" name="csrf" value=(admin.csrf);
                            input type="hidden" name="alias" value=(alias);
                            button type="submit" data-rollback=(alias) { "Roll " (alias) " back" }
                        }
                    }
                }
            }
            h2 { "Versions" }
            table.versions {
                thead { tr { th { "Version" } th { "Registered" } th { "From" } th { "Metrics" } th { "Decision" } @if session.is_some() { th {} } } }
                tbody {
                    @for version in versions.iter().rev() {
                        tr data-version=(version.version) {
                            td { "v" (version.version) }
                            td { (format_time(version.created)) }
                            td { a href={ "/ui/runs/" (version.run) } { "run " (version.run) } " (" (version.trained_by) ")" }
                            td { @for (metric, value) in version.metrics.iter().take(6) { span.metric { (metric) " " (format!("{value:.4}")) } " " } }
                            td { (version.decision.as_ref().map_or("none".to_string(), |d| crate::plugin::decision_text(&d.decision))) }
                            @if let Some(admin) = session {
                                td {
                                    @if champion != Some(version.version) {
                                        form.inline method="post" action={ "/ui/models/" (name) "/promote" } {
                                            input type="hidden" name="csrf" value=(admin.csrf);
                                            input type="hidden" name="version" value=(version.version);
                                            input type="hidden" name="alias" value="champion";
                                            button type="submit" data-promote=(version.version) { "Make champion" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Why each version" }
            @for version in versions.iter().rev() {
                details.why data-why=(version.version) open[champion == Some(version.version)] {
                    summary { "v" (version.version) @if champion == Some(version.version) { " (champion)" } }
                    dl.facts {
                        dt { "Model" } dd { (version.task) " of " code { (version.target) } " from " (version.features.len()) " features · ONNX " a href={ "/ui/artifacts/" (version.onnx) } { code { (short(&version.onnx)) } } }
                        @if let Some(data) = &version.training_data {
                            dt { "Trained on" }
                            dd {
                                (data.rows) " rows · " a href={ "/ui/artifacts/" (data.digest) } { code { (short(&data.digest)) } }
                                @for source in &data.sources { " from " code { (source.path) } " (" code { (short(&source.digest)) } ", " (source.rows) " rows)" }
                            }
                        }
                        dt { "Registered by" } dd { a href={ "/ui/runs/" (version.run) } { "run " (version.run) } " step " code { (version.step) } ", trained by " code { (version.trained_by) } }
                        @for step in &version.lineage {
                            dt { "Step " (step.step) } dd { (step.kind) " " (step.plugin) " " code title=(step.digest) { (short(&step.digest)) } }
                        }
                        @for (key, value) in &version.parameters {
                            dt { (key) } dd { code { (value) } }
                        }
                        @if let Some(pipeline) = &version.pipeline {
                            dt { "Serves raw rows" } dd { (pipeline.summary()) }
                        }
                    }
                    @if let Some(decision) = &version.decision {
                        p { "The deployment gate decided " strong { (crate::plugin::decision_text(&decision.decision)) } ":" }
                        ul.findings {
                            @for finding in &decision.report.findings {
                                li class=(if finding.passed { "pass" } else { "fail" }) { (finding.check) ": " (finding.message) }
                            }
                        }
                    }
                }
            }
            h2 { "Alias history" }
            table.history {
                thead { tr { th { "#" } th { "When" } th { "Alias" } th { "Move" } th { "Who" } th { "Why" } } }
                tbody {
                    @for event in history.iter().rev() {
                        tr {
                            td { (event.seq) }
                            td { (format_time(event.at)) }
                            td { (event.alias) }
                            td { (event.from.map_or("none".into(), |v| format!("v{v}"))) " → " (event.to.map_or("none".into(), |v| format!("v{v}"))) @if event.rollback { " (rollback)" } }
                            td { (event.actor.to_string()) }
                            td { (event.reason) }
                        }
                    }
                }
            }
        },
    )
}

/// A workflow as the workflows page lists it.
pub struct WorkflowRow {
    pub name: String,
    pub description: String,
    pub file: String,
    pub steps: usize,
    pub running: usize,
    pub queued: usize,
    pub triggers: Vec<TriggerRow>,
}

/// A trigger as the workflows page lists it.
pub struct TriggerRow {
    pub name: String,
    pub kind: String,
    /// When it fires next, for a cron trigger.
    pub next: Option<String>,
    /// What it consumed last, as JSON.
    pub state: String,
}

/// The daemon's workflows with their triggers, and the files that do not load.
pub fn workflows(
    rows: &[WorkflowRow],
    problems: &[(String, String, String)],
    session: Option<&Session>,
) -> Markup {
    layout(
        "Workflows",
        "Workflows",
        session,
        html! {
            h1 { "Workflows" }
            @for row in rows {
                section.workflow data-workflow=(row.name) {
                    h2 { a href={ "/ui/runs?workflow=" (url_encode(&row.name)) } { (row.name) } }
                    @if !row.description.is_empty() { p.description { (row.description) } }
                    p { code { (row.file) } " · " (row.steps) @if row.steps == 1 { " step · " } @else { " steps · " } (row.running) " running · " (row.queued) " queued" }
                    @if !row.triggers.is_empty() {
                        table.triggers {
                            thead { tr { th { "Trigger" } th { "Kind" } th { "Next" } th { "State" } } }
                            tbody {
                                @for trigger in &row.triggers {
                                    tr data-trigger=(trigger.name) {
                                        td { (trigger.name) } td { (trigger.kind) }
                                        td { (trigger.next.as_deref().unwrap_or("")) }
                                        td { code { (trigger.state) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { "No workflow is loaded." } }
            @if !problems.is_empty() {
                h2 { "Files that do not load" }
                @for (file, name, why) in problems {
                    section.problem data-problem=(name) {
                        h3 { code { (file) } " (" (name) ")" }
                        pre { (why) }
                    }
                }
            }
        },
    )
}

/// The latest events; the script appends new ones as they happen.
pub fn events(events: &[ServeEvent], session: Option<&Session>) -> Markup {
    layout(
        "Events",
        "Events",
        session,
        html! {
            h1 { "Events" }
            p.live { "Live: new events appear at the top as they happen." }
            table.events data-live="events" {
                thead { tr { th { "#" } th { "When" } th { "Subject" } th { "Kind" } th { "Message" } } }
                tbody {
                    @for event in events {
                        tr {
                            td { (event.seq) }
                            td { (format_time(event.at)) }
                            td { (event.workflow.as_deref().or(event.model.as_deref()).unwrap_or("")) @if let Some(run) = event.run { " " a href={ "/ui/runs/" (run) } { "run " (run) } } }
                            td { (event.kind) }
                            td { pre { (event.message) } }
                        }
                    }
                }
            }
        },
    )
}

/// The sign-in form: the admin token, and where to go back to.
pub fn login(next: &str, refused: Option<&str>, session: Option<&Session>) -> Markup {
    layout(
        "Sign in",
        "",
        session,
        html! {
            h1 { "Sign in" }
            @if let Some(why) = refused { p.problem { (why) } }
            @if session.is_some() { p { "You are signed in as admin." } }
            form.login method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                label { "Admin token " input type="password" name="token" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
            p.note { "The token is the daemon's (WFLOW_ADMIN_TOKEN, --admin-token-file, or daemon.token in its data directory). Reads need no sign-in unless they are protected." }
        },
    )
}

/// A step's configuration as `step.key` = value (nested values as JSON), and its target.
fn parameters(steps: &[StepRecord]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for step in steps {
        if let serde_json::Value::Object(config) = &step.config {
            for (key, value) in config {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push((format!("{}.{key}", step.id), text));
            }
        }
        if let Some(target) = &step.target {
            out.push((format!("{}.target", step.id), target.clone()));
        }
    }
    out
}

/// For each hyperparameter of a search, its trials' (value, score) points.
type TrialPoints = BTreeMap<String, Vec<(f64, f64)>>;

/// A trainer's search trials: the score's name, and for each parameter (its value, the
/// cross-validated score).
fn trials(step: &StepRecord) -> Option<(String, TrialPoints)> {
    let mut by_trial: BTreeMap<usize, BTreeMap<String, f64>> = BTreeMap::new();
    for (name, value) in &step.metrics {
        let Some(rest) = name.strip_prefix("trial.") else {
            continue;
        };
        let Some((index, key)) = rest.split_once('.') else {
            continue;
        };
        if let Ok(index) = index.parse::<usize>() {
            by_trial
                .entry(index)
                .or_default()
                .insert(key.to_string(), *value);
        }
    }
    let first = by_trial.values().next()?;
    let score = first
        .keys()
        .find(|k| k.starts_with("cv_") && !k.ends_with("_std"))?
        .clone();
    let mut points = TrialPoints::new();
    for trial in by_trial.values() {
        let Some(y) = trial.get(&score) else { continue };
        for (key, x) in trial {
            if !key.starts_with("cv_") {
                points.entry(key.clone()).or_default().push((*x, *y));
            }
        }
    }
    for series in points.values_mut() {
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Some((score, points))
}

/// Runs side by side: parameters and metrics (differences marked), metric charts across the
/// runs, and each trainer's hyperparameter trials.
pub fn compare(runs: &[(RunRecord, Vec<StepRecord>)], session: Option<&Session>) -> Markup {
    let mut params: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut metrics: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for (index, (_, steps)) in runs.iter().enumerate() {
        for (key, value) in parameters(steps) {
            params.entry(key).or_insert_with(|| vec![None; runs.len()])[index] = Some(value);
        }
        for step in steps {
            for (name, value) in &step.metrics {
                if name.starts_with("trial.") || name.starts_with("best.") {
                    continue;
                }
                metrics
                    .entry(format!("{}.{name}", step.id))
                    .or_insert_with(|| vec![None; runs.len()])[index] = Some(*value);
            }
        }
    }
    // Evaluation metrics across the runs, in run order.
    let charted: Vec<(&String, &Vec<Option<f64>>)> = metrics
        .iter()
        .filter(|(name, values)| {
            values.iter().flatten().count() >= 2
                && runs.iter().any(|(_, steps)| {
                    steps
                        .iter()
                        .any(|s| s.kind == "evaluator" && name.starts_with(&format!("{}.", s.id)))
                })
        })
        .take(6)
        .collect();
    // Each trainer's trials: score against each hyperparameter, one series per run.
    let mut trial_charts: BTreeMap<(String, String, String), Vec<Series>> = BTreeMap::new();
    for (run, steps) in runs {
        for step in steps {
            if let Some((score, by_param)) = trials(step) {
                for (param, points) in by_param {
                    trial_charts
                        .entry((step.id.clone(), score.clone(), param))
                        .or_default()
                        .push(Series {
                            label: format!("run {}", run.id),
                            points,
                        });
                }
            }
        }
    }
    let differs = |values: &[Option<String>]| values.windows(2).any(|w| w[0] != w[1]);
    layout(
        "Compare runs",
        "Runs",
        session,
        html! {
            h1 { "Compare runs" }
            @if runs.len() < 2 {
                p { "Tick two or more runs on the " a href="/ui/runs" { "runs page" } " to compare them." }
            }
            @if !runs.is_empty() {
                h2 { "Parameters" }
                table.compare {
                    thead { tr { th { "Parameter" } @for (run, _) in runs { th { a href={ "/ui/runs/" (run.id) } { "run " (run.id) } " · " (run.workflow) } } } }
                    tbody {
                        @for (name, values) in &params {
                            tr class=[differs(values).then_some("differs")] {
                                th { (name) }
                                @for value in values { td { code { (value.as_deref().unwrap_or("")) } } }
                            }
                        }
                    }
                }
                h2 { "Metrics" }
                table.compare.metrics {
                    thead { tr { th { "Metric" } @for (run, _) in runs { th { "run " (run.id) } } } }
                    tbody {
                        @for (name, values) in &metrics {
                            tr data-metric=(name) {
                                th { (name) }
                                @for value in values { td { (value.map(|v| format!("{v:.4}")).unwrap_or_default()) } }
                            }
                        }
                    }
                }
                @if !charted.is_empty() {
                    h2 { "Across the runs" }
                    div.charts {
                        @for (name, values) in &charted {
                            @let points: Vec<(f64, f64)> = runs.iter().zip(values.iter()).filter_map(|((run, _), v)| v.map(|v| (run.id as f64, v))).collect();
                            (PreEscaped(chart::chart(name, "run", &[Series { label: (*name).clone(), points }], false, true)))
                        }
                    }
                }
                @if !trial_charts.is_empty() {
                    h2 { "Hyperparameter trials" }
                    div.charts {
                        @for ((step, score, param), series) in &trial_charts {
                            @let spread = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).filter(|x| *x > 0.0).fold((f64::INFINITY, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
                            (PreEscaped(chart::chart(&format!("{step}: {score} per {param}"), param, series, spread.1 / spread.0 >= 100.0, true)))
                        }
                    }
                }
            }
        },
    )
}

/// A served model as the serving page shows it.
pub struct Served {
    /// The deployment's status (champion, challenger, their traffic and latency).
    pub status: serde_json::Value,
    /// Live quality from feedback, by version.
    pub quality: BTreeMap<String, crate::serve::feedback::Quality>,
    /// Each version's drift checks, oldest first.
    pub drift: Vec<(String, Vec<crate::serve::monitor::DriftReport>)>,
    /// Each version's current window against its reference, feature by feature.
    pub histograms: Vec<(String, Vec<chart::Histogram>)>,
}

fn number(value: &serde_json::Value, digits: usize) -> String {
    value
        .as_f64()
        .map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// A version's drift checks as a chart's series (each feature's score over time, at most six
/// features), its latest scores, and how many checks there were; none before a check.
pub(super) fn drift_view(
    reports: &[crate::serve::monitor::DriftReport],
) -> Option<(Vec<Series>, Vec<crate::serve::monitor::FeatureScore>, usize)> {
    use crate::serve::monitor::DriftResult;
    let checked: Vec<(u64, &Vec<crate::serve::monitor::FeatureScore>)> = reports
        .iter()
        .filter_map(|r| match &r.result {
            DriftResult::Checked { features, .. } => Some((r.at, features)),
            _ => None,
        })
        .collect();
    let (_, latest) = checked.last()?;
    let first = checked.first().map_or(0, |(at, _)| *at);
    let mut by_feature: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (at, features) in &checked {
        for score in features.iter() {
            by_feature
                .entry(format!("{} ({})", score.feature, score.method))
                .or_default()
                .push((at.saturating_sub(first) as f64 / 1000.0, score.score));
        }
    }
    let series = by_feature
        .into_iter()
        .take(6)
        .map(|(label, points)| Series { label, points })
        .collect();
    Some((series, (*latest).clone(), checked.len()))
}

/// Per model and version: requests, errors, latency, the traffic share and rollout step,
/// shadow agreement, live quality, and each feature's drift score over time.
pub fn serving(models: &[Served], session: Option<&Session>) -> Markup {
    layout(
        "Serving",
        "Serving",
        session,
        html! {
            h1 { "Serving" }
            @if models.is_empty() { p { "No model is served yet." } }
            @for model in models {
                @let name = model.status["name"].as_str().unwrap_or("");
                @let champion = &model.status["champion"];
                @let challenger = &model.status["challenger"];
                section.served data-model=(name) {
                    h2 { a href={ "/ui/models/" (name) } { (name) } }
                    table.arms {
                        thead { tr { th { "Version" } th { "Role" } th { "Traffic" } th { "Requests" } th { "Errors" } th { "p50 ms" } th { "p95 ms" } th { "Live quality" } } }
                        tbody {
                            @for (role, arm) in [("champion", champion), ("challenger", challenger)] {
                                @if !arm.is_null() {
                                    @let version = arm["version"].as_str().unwrap_or("");
                                    @let share = if role == "champion" {
                                        challenger["percent"].as_f64().map_or(100.0, |p| if challenger["strategy"] == "shadow" { 100.0 } else { 100.0 - p })
                                    } else if arm["strategy"] == "shadow" { 0.0 } else { arm["percent"].as_f64().unwrap_or(0.0) };
                                    tr data-version=(version) {
                                        td { "v" (version) }
                                        td { (role) @if let Some(strategy) = arm["strategy"].as_str() { " (" (strategy) @if let (Some(step), Some(steps)) = (arm["step"].as_u64(), arm["steps"].as_array()) { ", step " (step + 1) " of " (steps.len()) } ")" } }
                                        td { (format!("{share:.0}%")) }
                                        td { (arm["stats"]["requests"]) }
                                        td { (arm["stats"]["errors"]) " (" (number(&arm["stats"]["error_rate"], 3)) ")" }
                                        td { (number(&arm["stats"]["p50"], 3)) }
                                        td { (number(&arm["stats"]["p95"], 3)) }
                                        td {
                                            @if let Some(quality) = model.quality.get(version) {
                                                @if let Some(a) = quality.accuracy { "accuracy " (format!("{a:.3}")) " " }
                                                @if let Some(f) = quality.f1_macro { "F1 " (format!("{f:.3}")) " " }
                                                @if let Some(r) = quality.rmse { "RMSE " (format!("{r:.3}")) " " }
                                                "(" (quality.rows) " rows)"
                                            } @else { "no feedback yet" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(shadow) = challenger.get("shadow") {
                        p.shadow { "Shadow: " (shadow["mirrored"]) " requests mirrored, " (shadow["dropped"]) " dropped; agreement " (number(&shadow["agreement"], 3)) }
                    }
                    @for (version, shown) in &model.histograms {
                        h3 { "Inputs of v" (version) ": the current window against the training data" }
                        div.charts { @for histogram in shown { (PreEscaped(chart::bars(histogram))) } }
                    }
                    @for (version, reports) in &model.drift {
                        @if let Some((series, latest, checks)) = drift_view(reports) {
                            h3 { "Drift of v" (version) ": " (checks) " checks" }
                            (PreEscaped(chart::chart(&format!("{name} v{version}: drift score per feature"), "seconds since the first check", &series, false, true)))
                            table.drift {
                                thead { tr { th { "Feature" } th { "Method" } th { "Score" } th { "Threshold" } th { "Drifted" } } }
                                tbody {
                                    @for score in latest.iter() {
                                        tr class=[score.drifted.then_some("drifted")] {
                                            td { (score.feature) } td { (score.method) } td { (format!("{:.4}", score.score)) } td { (format!("{:.4}", score.threshold)) } td { (if score.drifted { "yes" } else { "no" }) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
