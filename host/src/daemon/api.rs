//! The daemon's REST API, under `/api/v1`: workflows (list, show, trigger), runs (list, show,
//! logs, cancel, resume), models (list, show, why, promote, rollback), events, and the OpenAPI
//! document describing all of it (`/api/v1/openapi.json`). Bodies are the store's own records
//! as JSON, so the CLI reads them into the types it prints. Calls that change something need
//! `Authorization: Bearer <token>`; errors are `{"error": "..."}` (400 bad request, 401 no or a
//! wrong token, 404 not found, 409 not possible now, 429 queue full, 503 stopping).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::scheduler::{Request, RequestError, Scheduler, Submitted};
use crate::store::registry::ModelRef;
use crate::store::{Actor, RunFilter, RunStatus, StoreError};

struct Api {
    scheduler: Arc<Scheduler>,
    token: String,
    /// Whether reads are answered without the token.
    open_reads: bool,
}

/// An error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err.caller_fault() {
            Some(crate::store::CallerFault::NotFound(what)) => {
                ApiError(StatusCode::NOT_FOUND, what)
            }
            Some(crate::store::CallerFault::Invalid(what)) => {
                ApiError(StatusCode::BAD_REQUEST, what)
            }
            None => {
                tracing::error!(error = %err, "store error in the API");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed (the daemon's log has the details)".into(),
                )
            }
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> ApiError {
        let status = match &err {
            RequestError::UnknownWorkflow(_) => StatusCode::NOT_FOUND,
            RequestError::Invalid(_) => StatusCode::BAD_REQUEST,
            RequestError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
            RequestError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Store(reason) => {
                tracing::error!(error = %reason, "cannot record a requested run");
                return ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed (the daemon's log has the details)".into(),
                );
            }
        };
        ApiError(status, err.to_string())
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

impl Api {
    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if crate::serve::token::carries(headers, &self.token) {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required (the daemon's WFLOW_ADMIN_TOKEN, or its daemon.token file)".into(),
            ))
        }
    }
}

/// Runs store work off the connection threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        tracing::error!(error = %err, "API task failed");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the daemon failed".into(),
        )
    })?
}

/// `key=value` pairs of a query string (values are not percent-decoded beyond `%20` and `+`).
fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%20", " ").replace('+', " ")))
        .collect()
}

async fn root(State(api): State<Arc<Api>>) -> Json<Value> {
    let workflows = api.scheduler.workflows();
    let latency = &api.scheduler.latency;
    Json(json!({
        "name": "wflow",
        "version": env!("CARGO_PKG_VERSION"),
        "workflows": workflows.len(),
        "problems": api.scheduler.problems().len(),
        "models": api.scheduler.server().deployments().len(),
        "stopping": api.scheduler.is_stopping(),
        "trigger_to_first_step": {
            "runs": latency.count(),
            "p50_us": latency.quantile(0.5).as_secs_f64() * 1e6,
            "p99_us": latency.quantile(0.99).as_secs_f64() * 1e6,
        },
    }))
}

fn workflow_json(api: &Api, name: &str) -> Option<Value> {
    let loaded = api.scheduler.workflows().get(name).cloned()?;
    let (running, queued) = api.scheduler.activity(name);
    let triggers: Vec<Value> = loaded
        .workflow
        .triggers
        .iter()
        .map(|t| {
            let state = api
                .scheduler
                .store()
                .trigger_state(name, &t.name)
                .ok()
                .flatten();
            let mut trigger = json!({
                "name": t.name,
                "kind": t.kind.name(),
                "cooldown_ms": t.cooldown.as_millis() as u64,
                "state": state,
            });
            // A cron trigger's schedule as crontab reads it, and its next slot from now.
            if let crate::workflow::TriggerKind::Cron {
                expression,
                schedule,
                timezone,
                ..
            } = &t.kind
            {
                trigger["cron"] = json!(expression);
                trigger["timezone"] = json!(timezone);
                trigger["next"] = json!(
                    crate::scheduler::cron::CronSchedule::new(schedule, timezone)
                        .ok()
                        .and_then(|cron| cron.next_after(crate::store::records::now()))
                        .map(crate::store::format_time)
                );
            }
            trigger
        })
        .collect();
    Some(json!({
        "name": name,
        "file": loaded.file,
        "description": loaded.workflow.description,
        "steps": loaded.workflow.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "max_active_runs": loaded.workflow.max_active_runs,
        "overlap": loaded.workflow.overlap.name(),
        "triggers": triggers,
        "running": running,
        "queued": queued,
    }))
}

async fn workflows(State(api): State<Arc<Api>>) -> Json<Value> {
    let names: Vec<String> = api.scheduler.workflows().keys().cloned().collect();
    let list: Vec<Value> = names
        .iter()
        .filter_map(|name| workflow_json(&api, name))
        .collect();
    let problems: Vec<Value> = api
        .scheduler
        .problems()
        .into_iter()
        .map(|(file, problem)| json!({ "file": file, "name": problem.name, "why": problem.why }))
        .collect();
    Json(json!({ "workflows": list, "problems": problems }))
}

async fn workflow(
    State(api): State<Arc<Api>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    workflow_json(&api, &name).map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no workflow `{name}` is loaded"),
        )
    })
}

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    params: BTreeMap<String, Value>,
}

async fn trigger(
    State(api): State<Arc<Api>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    api.admin(&headers)?;
    let body: TriggerBody = if body.iter().all(u8::is_ascii_whitespace) {
        TriggerBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            bad(format!(
                "the body is not {{\"params\": {{\"STEP.KEY\": VALUE}}}}: {err}"
            ))
        })?
    };
    // Kept as TOML text, the way the run record keeps them (JSON numbers, booleans and arrays
    // are TOML as they are; strings are quoted; dataset paths stay paths).
    let params = body
        .params
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) if k.starts_with("datasets.") => s,
                Value::String(s) => toml::Value::String(s).to_string(),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    let submitted = api.scheduler.submit(Request::manual(&name, params))?;
    let status = match submitted {
        Submitted::Queued { .. } => StatusCode::ACCEPTED,
        Submitted::Skipped { .. } => StatusCode::OK,
    };
    Ok((
        status,
        Json(serde_json::to_value(submitted).expect("plain data")),
    )
        .into_response())
}

async fn runs(State(api): State<Arc<Api>>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let query = query(&uri);
    let status = match query.get("status") {
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            bad(format!(
                "unknown status `{text}` (running, succeeded, failed, interrupted, cancelled)"
            ))
        })?),
        None => None,
    };
    let limit = match query.get("limit") {
        Some(text) => Some(
            text.parse()
                .map_err(|_| bad(format!("limit `{text}` is not a number")))?,
        ),
        None => Some(20),
    };
    let filter = RunFilter {
        workflow: query.get("workflow").cloned(),
        status,
        trigger: query.get("trigger").cloned(),
        limit,
    };
    let store = api.scheduler.store().clone();
    let runs = blocking(move || Ok(store.list_runs(&filter)?)).await?;
    Ok(Json(json!({ "runs": runs })))
}

async fn run(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let store = api.scheduler.store().clone();
    blocking(move || {
        let run = store.run(id)?;
        let steps = store.steps(id)?;
        Ok(Json(json!({ "run": run, "steps": steps })))
    })
    .await
}

async fn logs(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let store = api.scheduler.store().clone();
    blocking(move || {
        let steps = store.steps(id)?;
        let mut logs = Vec::new();
        for step in &steps {
            logs.push(store.step_log(step)?);
        }
        Ok(Json(json!({ "steps": steps, "logs": logs })))
    })
    .await
}

async fn cancel(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<u64>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers)?;
    api.scheduler
        .cancel(id, "cancelled on request")
        .map_err(|message| ApiError(StatusCode::CONFLICT, message))?;
    Ok(Json(json!({ "run": id, "status": "cancelling" })))
}

async fn resume(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<u64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.admin(&headers)?;
    let submitted = api.scheduler.resume(id)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::to_value(submitted).expect("plain data")),
    )
        .into_response())
}

async fn models(State(api): State<Arc<Api>>) -> Result<Json<Value>, ApiError> {
    let store = api.scheduler.store().clone();
    let models = blocking(move || Ok(store.models()?)).await?;
    Ok(Json(json!({ "models": models })))
}

async fn model(
    State(api): State<Arc<Api>>,
    UrlPath(reference): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let store = api.scheduler.store().clone();
    blocking(move || {
        let version = store.resolve_model(&ModelRef::parse(&reference)?)?;
        let aliases = store.aliases(&version.name)?;
        Ok(Json(json!({ "version": version, "aliases": aliases })))
    })
    .await
}

async fn why(
    State(api): State<Arc<Api>>,
    UrlPath(reference): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let store = api.scheduler.store().clone();
    blocking(move || {
        let why = store.why(&ModelRef::parse(&reference)?)?;
        Ok(Json(serde_json::to_value(why).expect("plain data")))
    })
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    version: Option<u32>,
    #[serde(default = "champion")]
    alias: String,
    reason: Option<String>,
    /// Who asks, for the audit trail.
    user: Option<String>,
}

fn champion() -> String {
    crate::serve::CHAMPION.to_string()
}

fn alias_body(body: &[u8]) -> Result<AliasBody, ApiError> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|err| {
        bad(format!(
            "the body is not {{\"version\": N, \"alias\": \"champion\", \"reason\": \"...\"}}: {err}"
        ))
    })
}

async fn promote(
    State(api): State<Arc<Api>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers)?;
    let body = alias_body(&body)?;
    let version = body
        .version
        .ok_or_else(|| bad("promote needs the `version` to point the alias at"))?;
    let scheduler = api.scheduler.clone();
    blocking(move || {
        let actor = Actor::Command {
            command: format!("POST /api/v1/models/{name}/promote"),
            user: body.user.unwrap_or_else(|| "the API".into()),
        };
        let reason = body
            .reason
            .unwrap_or_else(|| "promoted through the API".into());
        let event =
            scheduler
                .store()
                .move_alias(&name, &body.alias, version, &reason, actor, false)?;
        refresh(&scheduler, &name);
        Ok(Json(serde_json::to_value(event).expect("plain data")))
    })
    .await
}

async fn rollback(
    State(api): State<Arc<Api>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers)?;
    let body = alias_body(&body)?;
    let scheduler = api.scheduler.clone();
    blocking(move || {
        let actor = Actor::Command {
            command: format!("POST /api/v1/models/{name}/rollback"),
            user: body.user.unwrap_or_else(|| "the API".into()),
        };
        let reason = body
            .reason
            .unwrap_or_else(|| "rolled back through the API".into());
        let event = scheduler
            .store()
            .rollback(&name, &body.alias, &reason, actor)?;
        refresh(&scheduler, &name);
        Ok(Json(serde_json::to_value(event).expect("plain data")))
    })
    .await
}

/// Serves what the registry says now, right away (the alias stamp would be seen soon anyway).
/// Serves the registry's version of `name` now (after an alias move).
pub(crate) fn refresh(scheduler: &Scheduler, name: &str) {
    let server = scheduler.server();
    let outcome = match server.deployment(name) {
        Some(_) => server.redeploy(name, true).map(|_| ()),
        None => server.serve_registered(name).map(|_| ()),
    };
    if let Err(err) = outcome {
        tracing::warn!(model = %name, error = %err, "cannot serve the registry's version");
    }
}

async fn events(State(api): State<Arc<Api>>, uri: Uri) -> Response {
    // The same long-poll as the model server's `/v2/events`.
    let query = query(&uri);
    let since: u64 = query.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let wait = query
        .get("wait")
        .and_then(|w| humantime::parse_duration(w).ok())
        .map(|w| w.min(std::time::Duration::from_secs(60)));
    let found = api.scheduler.server().events_after(since, wait).await;
    Json(json!({ "events": found })).into_response()
}

/// The routes of the API, as (method, path, summary, mutating), from which the OpenAPI
/// document is made; `router` serves exactly these (the daemon's tests call each one).
const ROUTES: &[(&str, &str, &str, bool)] = &[
    (
        "get",
        "/api/v1",
        "The daemon: version, counts of workflows, problems and served models",
        false,
    ),
    ("get", "/api/v1/openapi.json", "This document", false),
    (
        "get",
        "/api/v1/workflows",
        "The loaded workflows, and the files that do not load",
        false,
    ),
    (
        "get",
        "/api/v1/workflows/{name}",
        "One workflow: its steps, triggers (with their state), runs running and queued",
        false,
    ),
    (
        "post",
        "/api/v1/workflows/{name}/trigger",
        "Asks for a run; body {\"params\": {\"STEP.KEY\": VALUE, \"datasets.NAME\": PATH}}",
        true,
    ),
    (
        "get",
        "/api/v1/runs",
        "Runs, newest first; query workflow, status, limit (20)",
        false,
    ),
    ("get", "/api/v1/runs/{id}", "One run and its steps", false),
    (
        "get",
        "/api/v1/runs/{id}/logs",
        "The kept logs of a run's steps",
        false,
    ),
    (
        "post",
        "/api/v1/runs/{id}/cancel",
        "Cancels a running run (it can be resumed)",
        true,
    ),
    (
        "post",
        "/api/v1/runs/{id}/resume",
        "Resumes an interrupted, cancelled or failed run",
        true,
    ),
    (
        "get",
        "/api/v1/models",
        "Registered models with their aliases",
        false,
    ),
    (
        "get",
        "/api/v1/models/{name}",
        "A version: NAME (its latest), NAME@VERSION or NAME@ALIAS",
        false,
    ),
    (
        "get",
        "/api/v1/models/{name}/why",
        "What `wflow models why` shows, as JSON",
        false,
    ),
    (
        "post",
        "/api/v1/models/{name}/promote",
        "Points an alias at a version; body {\"version\": N, \"alias\"?: A, \"reason\"?: R}",
        true,
    ),
    (
        "post",
        "/api/v1/models/{name}/rollback",
        "Returns an alias to its previous version; body {\"alias\"?: A, \"reason\"?: R}",
        true,
    ),
    (
        "get",
        "/api/v1/events",
        "Events after `since`; `wait` (e.g. 10s) waits for the next one",
        false,
    ),
];

fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, mutating) in ROUTES {
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| {
                json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "schema": { "type": if name == "id" { "integer" } else { "string" } },
                })
            })
            .collect();
        let mut operation = json!({
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": { "description": "the answer, as JSON" },
                "400": { "description": "a bad request; the body says what is wrong", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "404": { "description": "no such workflow, run or model", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            },
        });
        if *mutating {
            operation["security"] = json!([{ "bearer": [] }]);
            operation["responses"]["401"] = json!({ "description": "no or a wrong bearer token" });
            operation["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": { "type": "object" } } },
            });
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wflow daemon API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Workflows, runs, models and events of a running `wflow daemon`. The model server's Open Inference Protocol routes (/v2/...) are served on the same address.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] } },
        },
    })
}

async fn openapi_document() -> Json<Value> {
    Json(openapi())
}

/// Refuses every read but the OpenAPI document without the token, when reads are protected
/// (`--protect-reads`): runs, logs, lineage and events say a lot about a company's data.
async fn guard_reads(
    State(api): State<Arc<Api>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !api.open_reads
        && request.uri().path() != "/api/v1/openapi.json"
        && let Err(err) = api.admin(request.headers())
    {
        return err.into_response();
    }
    next.run(request).await
}

/// The API's routes, for a scheduler and the admin token; with `open_reads` false, reads need
/// the token too.
pub fn router(scheduler: Arc<Scheduler>, token: String, open_reads: bool) -> axum::Router {
    let api = Arc::new(Api {
        scheduler,
        token,
        open_reads,
    });
    axum::Router::new()
        .route("/api/v1", get(root))
        .route("/api/v1/openapi.json", get(openapi_document))
        .route("/api/v1/workflows", get(workflows))
        .route("/api/v1/workflows/{name}", get(workflow))
        .route("/api/v1/workflows/{name}/trigger", post(trigger))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/runs/{id}/logs", get(logs))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/runs/{id}/resume", post(resume))
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/{name}", get(model))
        .route("/api/v1/models/{name}/why", get(why))
        .route("/api/v1/models/{name}/promote", post(promote))
        .route("/api/v1/models/{name}/rollback", post(rollback))
        .route(
            "/api/v1/events",
            get(events).layer(axum::middleware::from_fn(crate::http::idle_while_waiting)),
        )
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            guard_reads,
        ))
        .with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_every_route_and_guards_the_mutating_ones() {
        let document = openapi();
        let paths = document["paths"].as_object().unwrap();
        for (method, path, _, mutating) in ROUTES {
            let operation = &paths[*path][*method];
            assert!(operation.is_object(), "{method} {path}");
            assert_eq!(
                operation.get("security").is_some(),
                *mutating,
                "{method} {path}"
            );
        }
        assert_eq!(
            paths["/api/v1/runs/{id}"]["get"]["parameters"][0]["schema"]["type"],
            "integer"
        );
    }
}
