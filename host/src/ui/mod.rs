//! The web UI: server-rendered pages of what the store knows (runs with their DAG, steps,
//! outputs and logs; the registry's versions, aliases and alias history; the daemon's
//! workflows; the event stream, live), served by `wflow daemon` on its own address and by
//! `wflow ui` beside any store.
//!
//! Everything is HTML rendered here (maud escapes every value it interpolates, and the DAG's
//! SVG escapes its own), styled and enhanced by two small files embedded in the binary: no
//! CDN, nothing fetched, and a content security policy that allows only this origin's script
//! and style. Read pages follow the API's rule: open unless reads are protected, then the
//! admin token is needed.

pub mod admin;
pub mod chart;
pub mod dag;
mod pages;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::scheduler::Scheduler;
use crate::serve::{Server, StoreAccess};
use crate::store::{RunFilter, RunStatus, StoreError};

/// Runs per page of the runs list.
pub const PAGE: usize = 50;

/// What the pages read.
#[derive(Clone)]
pub struct Ui {
    pub store: StoreAccess,
    /// The daemon's scheduler (its workflows page), when the UI is the daemon's.
    pub scheduler: Option<Arc<Scheduler>>,
    /// The model server (its live events), when there is one.
    pub server: Option<Arc<Server>>,
    /// The admin token, and whether reads need it.
    pub token: Option<String>,
    pub open_reads: bool,
    /// Browsers signed in with the token.
    pub sessions: Arc<admin::Sessions>,
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The UI's routes, under `/ui`.
pub fn router(ui: Ui) -> axum::Router {
    axum::Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/runs", get(runs))
        .route("/ui/compare", get(compare))
        .route("/ui/runs/{id}", get(run))
        .route("/ui/runs/{id}/cancel", post(admin::cancel))
        .route("/ui/runs/{id}/resume", post(admin::resume))
        .route("/ui/models", get(models))
        .route("/ui/models/{name}", get(model))
        .route("/ui/models/{name}/promote", post(admin::promote))
        .route("/ui/models/{name}/rollback", post(admin::rollback))
        .route("/ui/login", get(admin::login_form).post(admin::login))
        .route("/ui/logout", post(admin::logout))
        .route("/ui/workflows", get(workflows))
        .route("/ui/serving", get(serving))
        .route("/ui/events", get(events))
        .route(
            "/ui/events/stream",
            get(event_stream).layer(axum::middleware::from_fn(crate::http::idle_while_waiting)),
        )
        .route("/ui/artifacts/{digest}", get(artifact))
        .route("/ui/assets/app.css", get(stylesheet))
        .route("/ui/assets/app.js", get(script))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(Arc::new(ui))
}

async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A page that could not be made: the status, and a page saying why.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, pages::problem(self.0, &self.1)).into_response()
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Problem {
        match err.caller_fault() {
            Some(crate::store::CallerFault::NotFound(what)) => {
                return Problem(StatusCode::NOT_FOUND, what);
            }
            Some(crate::store::CallerFault::Invalid(what)) => {
                return Problem(StatusCode::BAD_REQUEST, what);
            }
            None => {}
        }
        match err {
            StoreError::Locked(_) => Problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is in use by another process; try again in a moment".into(),
            ),
            other => {
                tracing::error!(error = %other, "the UI cannot read the store");
                Problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store could not be read (the server's log has the details)".into(),
                )
            }
        }
    }
}

impl Ui {
    /// Reads need the token when they are protected: as a bearer header.
    fn check_read(&self, headers: &HeaderMap) -> Result<(), Problem> {
        if self.open_reads {
            return Ok(());
        }
        match &self.token {
            Some(token) if crate::serve::token::carries(headers, token) => Ok(()),
            // A signed-in browser may read too.
            _ if self.sessions.of(headers).is_some() => Ok(()),
            _ => Err(Problem(
                StatusCode::UNAUTHORIZED,
                "reads need the admin token (Authorization: Bearer ...)".into(),
            )),
        }
    }

    /// Runs a blocking store read off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&crate::store::Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Problem> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.with(work))
            .await
            .map_err(|_| {
                Problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be made".into(),
                )
            })?
            .map_err(Problem::from)
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RunsQuery {
    pub workflow: Option<String>,
    pub status: Option<String>,
    pub trigger: Option<String>,
    #[serde(default)]
    pub page: usize,
}

async fn runs(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(query): Query<RunsQuery>,
) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            Problem(
                StatusCode::BAD_REQUEST,
                format!("`{text}` is not a run status"),
            )
        })?),
    };
    let workflow = query.workflow.clone().filter(|w| !w.is_empty());
    let trigger = query.trigger.clone().filter(|t| !t.is_empty());
    let page = query.page.min(100_000);
    let (runs, total) = ui
        .read(move |store| {
            // One more than the page holds, to know whether a next page exists.
            let mut runs = store.list_runs(&RunFilter {
                workflow,
                status,
                trigger,
                limit: Some((page + 1) * PAGE + 1),
            })?;
            let runs = runs.split_off((page * PAGE).min(runs.len()));
            Ok((runs, store.run_count()))
        })
        .await?;
    let session = ui.sessions.of(&headers);
    Ok(pages::runs(&query, page, &runs, total, session.as_ref()).into_response())
}

async fn run(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let (record, steps, logs, workflow_text) = ui
        .read(move |store| {
            let record = store.run(id)?;
            let steps = store.steps(id)?;
            let logs = steps
                .iter()
                .map(|s| store.step_log(s))
                .collect::<Result<Vec<_>, _>>()?;
            // The workflow as it ran says what each step needs (for the DAG).
            let text = store
                .artifacts()
                .get(&record.workflow_digest)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            Ok((record, steps, logs, text))
        })
        .await?;
    let needs = workflow_text
        .and_then(|text| crate::workflow::parse(std::path::Path::new(&record.file), &text).ok())
        .map(|workflow| {
            workflow
                .steps
                .iter()
                .map(|s| (s.id.clone(), s.needs.clone()))
                .collect()
        })
        .unwrap_or_default();
    let session = ui.sessions.of(&headers);
    let controls = session.as_ref().filter(|_| ui.scheduler.is_some());
    Ok(pages::run(&record, &steps, &logs, &needs, session.as_ref(), controls).into_response())
}

/// Runs compared at most at once.
const COMPARED: usize = 10;

/// Runs side by side: `?runs=3&runs=7` (or `?runs=3,7`).
async fn compare(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let mut ids = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key != "runs" {
            continue;
        }
        for part in value.split(',').filter(|p| !p.trim().is_empty()) {
            let id: u64 = part.trim().parse().map_err(|_| {
                Problem(
                    StatusCode::BAD_REQUEST,
                    format!("`{part}` is not a run number"),
                )
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if ids.len() > COMPARED {
        return Err(Problem(
            StatusCode::BAD_REQUEST,
            format!("compare at most {COMPARED} runs at once"),
        ));
    }
    let runs = ui
        .read(move |store| {
            ids.iter()
                .map(|id| Ok((store.run(*id)?, store.steps(*id)?)))
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await?;
    Ok(pages::compare(&runs, ui.sessions.of(&headers).as_ref()).into_response())
}

async fn models(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let models = ui.read(|store| store.models()).await?;
    Ok(pages::models(&models, ui.sessions.of(&headers).as_ref()).into_response())
}

async fn model(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let (versions, aliases, history) = ui
        .read(move |store| {
            crate::store::registry::check_name("model name", &name)?;
            let versions = store.versions(&name)?;
            if versions.is_empty() {
                return Err(StoreError::NotFound(format!("no model `{name}`")));
            }
            Ok((
                versions,
                store.aliases(&name)?,
                store.alias_history(&name, None)?,
            ))
        })
        .await?;
    Ok(pages::model(
        &versions,
        &aliases,
        &history,
        ui.sessions.of(&headers).as_ref(),
    )
    .into_response())
}

async fn workflows(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let Some(scheduler) = &ui.scheduler else {
        return Ok(
            pages::no_daemon("Workflows", ui.sessions.of(&headers).as_ref()).into_response(),
        );
    };
    let loaded = scheduler.workflows();
    let problems = scheduler.problems();
    let mut rows = Vec::new();
    for (name, loaded) in &loaded {
        let (running, queued) = scheduler.activity(name);
        let mut triggers = Vec::new();
        for trigger in &loaded.workflow.triggers {
            let state = {
                let (store, workflow, trigger) = (
                    scheduler.store().clone(),
                    name.clone(),
                    trigger.name.clone(),
                );
                tokio::task::spawn_blocking(move || store.trigger_state(&workflow, &trigger))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            };
            // A cron trigger's next slot, as its schedule says from now.
            let next = match &trigger.kind {
                crate::workflow::TriggerKind::Cron {
                    schedule, timezone, ..
                } => crate::scheduler::cron::CronSchedule::new(schedule, timezone)
                    .ok()
                    .and_then(|cron| cron.next_after(crate::store::records::now()))
                    .map(crate::store::format_time),
                _ => None,
            };
            triggers.push(pages::TriggerRow {
                name: trigger.name.clone(),
                kind: trigger.kind.name().to_string(),
                next,
                state: state.map(|s| s.to_string()).unwrap_or_default(),
            });
        }
        rows.push(pages::WorkflowRow {
            name: name.clone(),
            description: loaded.workflow.description.clone().unwrap_or_default(),
            file: loaded.file.display().to_string(),
            steps: loaded.workflow.steps.len(),
            running,
            queued,
            triggers,
        });
    }
    let problems: Vec<(String, String, String)> = problems
        .into_iter()
        .map(|(file, problem)| (file.display().to_string(), problem.name, problem.why))
        .collect();
    Ok(pages::workflows(&rows, &problems, ui.sessions.of(&headers).as_ref()).into_response())
}

/// What the server serves: per model and version, traffic, latency, the rollout, live
/// quality and drift over time.
async fn serving(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let session = ui.sessions.of(&headers);
    let Some(server) = &ui.server else {
        return Ok(pages::no_daemon("Serving", session.as_ref()).into_response());
    };
    let mut models = Vec::new();
    for deployment in server.deployments() {
        let mut versions = vec![deployment.champion.clone()];
        versions.extend(deployment.challenger.iter().map(|c| c.model.clone()));
        // Each registered version's reference statistics, to bin its current window in.
        let mut histograms = Vec::new();
        for model in &versions {
            let Ok(number) = model.version.parse::<u32>() else {
                continue;
            };
            let name = deployment.name.clone();
            let Ok(version) = ui.read(move |store| store.version(&name, number)).await else {
                continue;
            };
            let window = model.monitor.window.table();
            let drifted: Vec<String> = model
                .monitor
                .last()
                .map(|report| match report.result {
                    crate::serve::monitor::DriftResult::Checked { features, .. } => features
                        .into_iter()
                        .filter(|f| f.drifted)
                        .map(|f| f.feature)
                        .collect(),
                    _ => Vec::new(),
                })
                .unwrap_or_default();
            // Drifted features first, then the others, six at most.
            let mut names: Vec<&String> = version.reference.keys().collect();
            names.sort_by_key(|n| !drifted.contains(n));
            let shown: Vec<chart::Histogram> = names
                .into_iter()
                .filter_map(|feature| {
                    let column = window.column(feature)?;
                    chart::histogram(feature, &version.reference[feature], column)
                })
                .take(6)
                .collect();
            if window.row_count() > 0 && !shown.is_empty() {
                histograms.push((model.version.clone(), shown));
            }
        }
        models.push(pages::Served {
            status: deployment.status(),
            quality: server.live_quality(&deployment.name),
            drift: versions
                .iter()
                .map(|m| (m.version.clone(), m.monitor.history()))
                .collect(),
            histograms,
        });
    }
    models.sort_by(|a, b| a.status["name"].as_str().cmp(&b.status["name"].as_str()));
    Ok(pages::serving(&models, session.as_ref()).into_response())
}

async fn events(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let Some(server) = &ui.server else {
        return Ok(pages::no_daemon("Events", ui.sessions.of(&headers).as_ref()).into_response());
    };
    let mut recent = server.events(0);
    recent.reverse();
    recent.truncate(200);
    Ok(pages::events(&recent, ui.sessions.of(&headers).as_ref()).into_response())
}

/// Server-sent events: each new event as a JSON `data:` line.
async fn event_stream(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Result<Response, Problem> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    ui.check_read(&headers)?;
    let Some(server) = ui.server.clone() else {
        return Err(Problem(
            StatusCode::NOT_FOUND,
            "live events come from a daemon or a model server".into(),
        ));
    };
    let receiver = server.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    let data = serde_json::to_string(&event).expect("events serialise");
                    let sse = Event::default().event("wflow").data(data);
                    return Some((Ok::<_, std::convert::Infallible>(sse), receiver));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

async fn artifact(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Result<Response, Problem> {
    ui.check_read(&headers)?;
    let (digest, bytes) = ui
        .read(move |store| {
            let digest = store.artifacts().resolve(&digest)?;
            let bytes = store.artifacts().get(&digest)?;
            Ok((digest, bytes))
        })
        .await?;
    let name = digest.trim_start_matches("sha256:").to_string();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                    .expect("hex digests are header-safe"),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/app.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/app.js"),
    )
}

#[cfg(test)]
mod tests;
