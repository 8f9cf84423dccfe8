//! The server's HTTP routes: the Open Inference Protocol v2 (health, metadata, inference, the
//! model repository's load), and wflow's own: feedback and live quality, deployments and their
//! admin actions, drift, events and Prometheus metrics.
//!
//! Errors are `{"error": "..."}`: 400 (the request is wrong, and says how), 401/403 (a bearer
//! token is needed), 404 (no such model or version), 409 (the store is busy), 500 (generic;
//! the details go to the log).

use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::answer::{infer_latest, infer_version, invocations_of, invocations_only};
use super::deployment::{Arm, Deployment, Strategy};
use super::feedback;
use super::metrics::{Family, render_quality};
use super::model::ServedModel;
use super::{ActionError, Caller, Server, content, served_versions};
use crate::store::Actor;

/// An error answer: `{"error": message}` with a status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ActionError> for ApiError {
    fn from(err: ActionError) -> ApiError {
        match err {
            ActionError::NotFound(message) => ApiError(StatusCode::NOT_FOUND, message),
            ActionError::Invalid(message) => ApiError(StatusCode::BAD_REQUEST, message),
            ActionError::Store(message) => ApiError(StatusCode::CONFLICT, message),
        }
    }
}

pub(super) fn bad(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

pub(super) fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the server could not answer (its log has the details)".into(),
    )
}

impl Server {
    /// Refuses a request without the admin token.
    fn check_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.admin_token else {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "admin endpoints are disabled: start the server with an admin token (WFLOW_ADMIN_TOKEN or --admin-token-file)".into(),
            ));
        };
        if super::token::carries(headers, token) {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required".into(),
            ))
        }
    }

    /// Who sent a request, by the bearer token it carries.
    pub(super) fn caller(&self, headers: &HeaderMap) -> Caller {
        if self.admin_token.is_none() && self.feedback_token.is_none() {
            return Caller::Open;
        }
        let Some(given) = super::token::bearer(headers) else {
            return Caller::Anonymous;
        };
        let matches = |token: &Option<String>| {
            token
                .as_deref()
                .is_some_and(|token| super::token::same(given, token))
        };
        if matches(&self.admin_token) {
            Caller::Admin
        } else if matches(&self.feedback_token) {
            Caller::Feedback
        } else {
            Caller::Anonymous
        }
    }

    /// Refuses a caller without a credential, when the server has one (a server started
    /// without any token is open to everyone, and says so when it starts).
    pub(super) fn require_credential(&self, caller: Caller, what: &str) -> Result<(), ApiError> {
        if caller.trusted() {
            return Ok(());
        }
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            format!(
                "{what} needs a credential: the feedback token (WFLOW_FEEDBACK_TOKEN) or the admin token, as `Authorization: Bearer ...`"
            ),
        ))
    }

    pub(super) fn model_or_404(&self, name: &str) -> Result<Arc<Deployment>, ApiError> {
        self.deployment(name).ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no model `{name}` is served (served: {})",
                    self.served_names()
                ),
            )
        })
    }

    fn version_or_404(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(Arc<Deployment>, Arm, Arc<ServedModel>), ApiError> {
        let deployment = self.model_or_404(name)?;
        let found = deployment
            .arm_of(version)
            .map(|(arm, model)| (arm, model.clone()));
        match found {
            Some((arm, model)) => Ok((deployment, arm, model)),
            None => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "model `{name}` version {version} is not served (serving version {})",
                    served_versions(&deployment)
                ),
            )),
        }
    }
}

/// Who an admin action is recorded as.
fn admin(command: String) -> Actor {
    Actor::Command {
        command,
        user: "an admin (bearer token)".into(),
    }
}

/// Refuses everything but health without a credential (the admin or the feedback token), when
/// reads are not open.
async fn guard_reads(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    if !server.open_reads
        && !request.uri().path().starts_with("/v2/health/")
        && !server.caller(request.headers()).trusted()
    {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required".into(),
        )
        .into_response();
    }
    next.run(request).await
}

fn metadata(deployment: &Deployment, model: &ServedModel) -> serde_json::Value {
    let mut versions = vec![deployment.champion.version.clone()];
    versions.extend(
        deployment
            .challenger
            .iter()
            .map(|c| c.model.version.clone()),
    );
    json!({
        "name": model.name,
        "versions": if model.version == deployment.champion.version { versions } else { vec![model.version.clone()] },
        "platform": "onnx",
        "inputs": model.inputs,
        "outputs": model.outputs,
    })
}

async fn server_metadata() -> impl IntoResponse {
    Json(json!({
        "name": "wflow",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_repository"],
    }))
}

async fn live() -> impl IntoResponse {
    Json(json!({ "live": true }))
}

async fn ready(State(server): State<Arc<Server>>) -> Response {
    let ready = !server.deployments().is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready }))).into_response()
}

async fn model_metadata(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let deployment = server.model_or_404(&name)?;
    Ok(Json(metadata(&deployment, &deployment.champion)))
}

async fn version_metadata(
    State(server): State<Arc<Server>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (deployment, _, model) = server.version_or_404(&name, &version)?;
    Ok(Json(metadata(&deployment, &model)))
}

async fn model_ready(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.model_or_404(&name)?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

async fn version_ready(
    State(server): State<Arc<Server>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.version_or_404(&name, &version)?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

async fn prometheus(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let mut text = server.metrics.render();
    text.push_str(&render_quality(&server.feedback.quality()));
    let mut share = Family::gauge(
        "wflow_challenger_traffic_percent",
        "Percent of the traffic the challenger answers (0 for a shadow).",
    );
    let mut agreement = Family::gauge(
        "wflow_shadow_agreement",
        "Share of rows where the shadow predicted the champion's label.",
    );
    let mut delta = Family::gauge(
        "wflow_shadow_score_delta_mean",
        "Mean absolute difference between the shadow's and the champion's scores.",
    );
    let mut mirrored = Family::counter(
        "wflow_shadow_requests_total",
        "Requests copied to the shadow, and copies dropped while it was busy.",
    );
    let mut window = Family::counter(
        "wflow_window_rows_total",
        "Rows recorded in the version's monitoring window.",
    );
    let mut drift_share = Family::gauge(
        "wflow_drift_share",
        "Share of features that drifted at the latest check.",
    );
    let mut drifted = Family::gauge(
        "wflow_drift_detected",
        "1 when the latest drift check found the dataset drifted.",
    );
    let mut scores = Family::gauge(
        "wflow_drift_score",
        "Drift score of a feature under a method at the latest check.",
    );
    let mut checks = Family::counter("wflow_drift_checks_total", "Drift checks run.");
    for deployment in server.deployments() {
        let name = &deployment.name;
        if let Some(challenger) = &deployment.challenger {
            let labels = vec![
                ("model", name.clone()),
                ("champion", deployment.champion.version.clone()),
                ("challenger", challenger.model.version.clone()),
                (
                    "strategy",
                    serde_json::to_value(challenger.strategy)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                ),
            ];
            share.sample(labels, deployment.challenger_percent().unwrap_or(0.0));
        }
        if let Some(comparison) = deployment.shadow_comparison() {
            let version = deployment
                .challenger
                .as_ref()
                .map(|c| c.model.version.clone())
                .unwrap_or_default();
            let labels = || vec![("model", name.clone()), ("version", version.clone())];
            if let Some(value) = comparison.agreement {
                agreement.sample(labels(), value);
            }
            delta.sample(labels(), comparison.mean_score_delta);
            let mut copied = labels();
            copied.push(("outcome", "mirrored".into()));
            mirrored.sample(copied, comparison.mirrored as f64);
            let mut dropped = labels();
            dropped.push(("outcome", "dropped".into()));
            mirrored.sample(dropped, comparison.dropped as f64);
        }
        let mut models = vec![deployment.champion.clone()];
        models.extend(deployment.challenger.iter().map(|c| c.model.clone()));
        for model in models {
            let labels = || vec![("model", name.clone()), ("version", model.version.clone())];
            let monitor = &model.monitor;
            window.sample(labels(), monitor.window.seen() as f64);
            checks.sample(labels(), monitor.checks() as f64);
            if let Some(report) = monitor.last()
                && let super::monitor::DriftResult::Checked {
                    drifted: verdict,
                    drift_share: value,
                    features,
                } = &report.result
            {
                drift_share.sample(labels(), *value);
                drifted.sample(labels(), f64::from(u8::from(*verdict)));
                for feature in features {
                    let mut labels = labels();
                    labels.push(("feature", feature.feature.clone()));
                    labels.push(("method", feature.method.clone()));
                    scores.sample(labels, feature.score);
                }
            }
        }
    }
    let mut rollbacks = Family::counter(
        "wflow_rollbacks_total",
        "Challengers rolled back automatically.",
    );
    let mut promotions = Family::counter(
        "wflow_promotions_total",
        "Challengers promoted automatically at the end of a healthy canary.",
    );
    for (name, (rolled_back, promoted)) in server.automatic() {
        rollbacks.sample(vec![("model", name.clone())], rolled_back as f64);
        promotions.sample(vec![("model", name)], promoted as f64);
    }
    for family in [
        share,
        agreement,
        delta,
        mirrored,
        window,
        drift_share,
        drifted,
        scores,
        checks,
        rollbacks,
        promotions,
    ] {
        family.render(&mut text);
    }
    ([("content-type", "text/plain; version=0.0.4")], text)
}

/// `POST /v2/models/{name}/feedback`: `{"id": REQUEST_ID, "truth": [label or value per row]}`.
#[derive(serde::Deserialize)]
struct FeedbackRequest {
    id: String,
    truth: Vec<serde_json::Value>,
}

async fn feedback_for(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.model_or_404(&name)?;
    // Truth decides live quality (a rollback) and what a retraining learns: only a caller
    // holding a credential may send it, when the server has one.
    server.require_credential(server.caller(&headers), "feedback")?;
    content::content_type(&headers, content::Accepts::Json)?;
    let heavy = body.len() > super::answer::INLINE_DECODE;
    let recorder = server.clone();
    let record = move || -> Result<serde_json::Value, ApiError> {
        let request: FeedbackRequest = serde_json::from_slice(&body).map_err(|err| {
            bad(format!(
                "the feedback is not {{\"id\": ..., \"truth\": [...]}}: {err}"
            ))
        })?;
        let (version, matched) = recorder
            .record_feedback(&name, &request.id, &request.truth)
            .map_err(|err| {
                let status = match err {
                    feedback::FeedbackError::UnknownRequest(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError(status, err.to_string())
            })?;
        Ok(json!({ "id": request.id, "version": version, "matched": matched }))
    };
    Ok(Json(super::answer::off_thread(heavy, record).await??))
}

async fn quality_of(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.model_or_404(&name)?;
    let versions: std::collections::BTreeMap<String, feedback::Quality> = server
        .feedback
        .quality()
        .into_iter()
        .filter(|((model, _), _)| *model == name)
        .map(|((_, version), quality)| (version, quality))
        .collect();
    Ok(Json(
        json!({ "name": name, "window": feedback::QUALITY_WINDOW, "versions": versions }),
    ))
}

async fn deployment_of(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let deployment = server.model_or_404(&name)?;
    let mut status = deployment.status();
    status["policy"] = serde_json::to_value(&*deployment.policy).expect("plain data");
    Ok(Json(status))
}

/// The versions of a deployment, champion first.
fn versions_of(deployment: &Deployment) -> Vec<Arc<ServedModel>> {
    let mut models = vec![deployment.champion.clone()];
    models.extend(deployment.challenger.iter().map(|c| c.model.clone()));
    models
}

async fn drift_of(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let deployment = server.model_or_404(&name)?;
    let versions: serde_json::Map<String, serde_json::Value> = versions_of(&deployment)
        .iter()
        .map(|model| (model.version.clone(), model.monitor.status()))
        .collect();
    Ok(Json(json!({ "name": name, "versions": versions })))
}

/// `POST /v2/models/{name}/drift` (admin): checks every served version's window now.
async fn check_drift_now(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.check_token(&headers)?;
    let deployment = server.model_or_404(&name)?;
    let mut versions = serde_json::Map::new();
    for model in versions_of(&deployment) {
        let report = server.check_drift(&model).await;
        versions.insert(
            model.version.clone(),
            serde_json::to_value(report).expect("plain data"),
        );
    }
    Ok(Json(json!({ "name": name, "versions": versions })))
}

/// `GET /v2/events?since=SEQ&wait=DURATION`: the events after SEQ (all kept ones without it);
/// with `wait`, an answer with none waits up to that long (at most a minute) for the next.
async fn events(
    State(server): State<Arc<Server>>,
    uri: axum::http::Uri,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut since = 0;
    let mut wait = None;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("since", text)) => {
                since = text
                    .parse()
                    .map_err(|_| bad(format!("since `{text}` is not an event number")))?
            }
            Some(("wait", text)) => {
                wait = Some(
                    humantime::parse_duration(text)
                        .map_err(|err| bad(format!("wait `{text}` is not a duration: {err}")))?
                        .min(std::time::Duration::from_secs(60)),
                )
            }
            _ => return Err(bad(format!("unknown parameter `{pair}` (since, wait)"))),
        }
    }
    let found = server.events_after(since, wait).await;
    Ok(Json(json!({ "events": found })))
}

/// Runs an admin action on a blocking thread (it may read and write the store).
async fn admin_action(
    server: Arc<Server>,
    action: impl FnOnce(&Server) -> Result<Arc<Deployment>, ActionError> + Send + 'static,
) -> Result<Json<serde_json::Value>, ApiError> {
    let deployment = tokio::task::spawn_blocking(move || action(&server))
        .await
        .map_err(internal)??;
    Ok(Json(deployment.status()))
}

/// An optional JSON body: empty means the defaults.
fn optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| bad(format!("the body is not {shape}: {err}")))
}

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteRequest {
    version: Option<u32>,
}

async fn promote(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.check_token(&headers)?;
    if !body.is_empty() {
        content::content_type(&headers, content::Accepts::Json)?;
    }
    let request: PromoteRequest = optional_body(&body, "{\"version\": N} or empty")?;
    let actor = admin(format!("POST /v2/models/{name}/promote"));
    admin_action(server, move |server| {
        server.promote(&name, request.version, actor)
    })
    .await
}

async fn rollback(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.check_token(&headers)?;
    let actor = admin(format!("POST /v2/models/{name}/rollback"));
    admin_action(server, move |server| server.rollback(&name, actor)).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyRequest {
    /// `shadow`, `canary`, `ab` or `off`.
    strategy: String,
    percent: Option<u8>,
    version: Option<u32>,
}

async fn set_strategy(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.check_token(&headers)?;
    content::content_type(&headers, content::Accepts::Json)?;
    let shape = "{\"strategy\": \"shadow\" | \"canary\" | \"ab\" | \"off\", \"percent\"?: N, \"version\"?: N}";
    let request: StrategyRequest = serde_json::from_slice(&body)
        .map_err(|err| bad(format!("the body is not {shape}: {err}")))?;
    let strategy = match request.strategy.as_str() {
        "shadow" => Some(Strategy::Shadow),
        "canary" => Some(Strategy::Canary),
        "ab" => Some(Strategy::Ab),
        "off" => None,
        other => return Err(bad(format!("strategy `{other}`: expected {shape}"))),
    };
    let actor = admin(format!("PUT /v2/models/{name}/deployment"));
    admin_action(server, move |server| {
        server.set_strategy(&name, strategy, request.percent, request.version, actor)
    })
    .await
}

async fn load_model(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.check_token(&headers)?;
    admin_action(server, move |server| server.redeploy(&name, false)).await
}

/// The routes, for a server's state.
pub fn router(server: Arc<Server>, max_body: usize) -> axum::Router {
    axum::Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer_latest))
        .route("/v2/models/{name}/invocations", post(invocations_of))
        .route("/invocations", post(invocations_only))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/v2/repository/models/{name}/load", post(load_model))
        .route("/v2/models/{name}/feedback", post(feedback_for))
        .route("/v2/models/{name}/quality", get(quality_of))
        .route(
            "/v2/models/{name}/deployment",
            get(deployment_of).put(set_strategy),
        )
        .route("/v2/models/{name}/promote", post(promote))
        .route("/v2/models/{name}/rollback", post(rollback))
        .route(
            "/v2/models/{name}/drift",
            get(drift_of).post(check_drift_now),
        )
        .route(
            "/v2/events",
            get(events).layer(middleware::from_fn(crate::http::idle_while_waiting)),
        )
        .route("/metrics", get(prometheus))
        .layer(middleware::from_fn_with_state(server.clone(), guard_reads))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(server)
}
