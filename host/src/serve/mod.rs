//! `wflow serve`: ONNX models served natively by tract over the Open Inference Protocol v2 REST
//! API (the KServe v2 / Triton HTTP protocol), so the clients that already speak it work as they
//! are.
//!
//! Models come from the registry by alias (`--registry NAME[@ALIAS]`, `champion` by default) or
//! from files (`--model NAME=PATH.onnx`). The store is opened only while models are read, so
//! `wflow models promote` and runs keep working beside a server; `POST
//! /v2/repository/models/{name}/load` (bearer token) re-reads a model, and the swap is one
//! pointer: requests in flight finish on the version they started with.
//!
//! Endpoints: `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}`,
//! `/v2/models/{name}/ready`, `POST /v2/models/{name}/infer`, each model route also under
//! `/versions/{version}`, and Prometheus metrics on `GET /metrics`. Ground truth arrives later
//! on `POST /v2/models/{name}/feedback` (`{"id": REQUEST_ID, "truth": [...]}`, a label or value
//! per row of a request that carried an `id`), and live quality per version (accuracy and macro
//! F1, or RMSE and MAE, over the latest matched rows) is on `GET /v2/models/{name}/quality` and
//! in the metrics. Errors are `{"error": "..."}` with 400 (the request is wrong), 404
//! (no such model or version), 401/403 (admin without a valid token) or 500.

pub mod feedback;
pub mod metrics;
pub mod model;
pub mod protocol;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::store::Store;
use crate::store::registry::ModelRef;
use model::{ModelError, ServedModel};
use protocol::{InferRequest, InferResponse};

/// Where a served model comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// An ONNX file served under `name` (version `1`).
    File { name: String, path: PathBuf },
    /// The registry's version behind `NAME[@ALIAS|@VERSION]`.
    Registry { reference: String },
}

impl ModelSource {
    /// `NAME=PATH` (a `--model` argument).
    pub fn parse_file(text: &str) -> Result<ModelSource, String> {
        let (name, path) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected NAME=PATH.onnx"))?;
        crate::store::registry::check_name("model name", name).map_err(|e| e.to_string())?;
        Ok(ModelSource::File {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }

    /// The name the model is served under.
    pub fn name(&self) -> String {
        match self {
            ModelSource::File { name, .. } => name.clone(),
            ModelSource::Registry { reference } => {
                reference.split('@').next().unwrap_or(reference).to_string()
            }
        }
    }
}

/// Reads and loads one model (opening the store only for a registry model, and only briefly).
pub fn load(source: &ModelSource, data_dir: &Path) -> anyhow::Result<ServedModel> {
    match source {
        ModelSource::File { name, path } => {
            let bytes = std::fs::read(path)
                .map_err(|err| anyhow::anyhow!("cannot read model {}: {err}", path.display()))?;
            ServedModel::load(name, "1", path.display().to_string(), &bytes)
                .map_err(|err| anyhow::anyhow!("model `{name}` ({}): {err}", path.display()))
        }
        ModelSource::Registry { reference } => {
            let parsed = match ModelRef::parse(reference)? {
                ModelRef::Latest(name) => ModelRef::Alias(name, "champion".into()),
                other => other,
            };
            let store = Store::open(data_dir)?;
            let version = store.resolve_model(&parsed)?;
            let onnx = store.artifacts().get(&version.onnx)?;
            drop(store);
            let shown = match &parsed {
                ModelRef::Alias(name, alias) => format!("{name}@{alias}"),
                ModelRef::Version(name, number) => format!("{name}@{number}"),
                ModelRef::Latest(name) => name.clone(),
            };
            let source = format!("registry: {shown} = v{}", version.version);
            ServedModel::load(&version.name, &version.version.to_string(), source, &onnx)
                .map_err(|err| anyhow::anyhow!("model `{reference}`: {err}"))
        }
    }
}

/// What the server runs with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub sources: Vec<ModelSource>,
    pub data_dir: PathBuf,
    /// Required by the admin endpoints; without one they are refused.
    pub admin_token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
}

/// The server's state: the models served, by name, each swappable as a whole.
pub struct Server {
    models: RwLock<BTreeMap<String, Arc<ServedModel>>>,
    sources: BTreeMap<String, ModelSource>,
    data_dir: PathBuf,
    admin_token: Option<String>,
    metrics: metrics::Metrics,
    feedback: feedback::Feedback,
}

/// An error answer: `{"error": message}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl Server {
    /// Loads every model; any that cannot be loaded stops the start with its reason.
    pub fn start(config: &ServeConfig) -> anyhow::Result<Arc<Server>> {
        let mut models = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for source in &config.sources {
            let model = load(source, &config.data_dir)?;
            if models.contains_key(&model.name) {
                anyhow::bail!("two models are served as `{}`", model.name);
            }
            sources.insert(model.name.clone(), source.clone());
            models.insert(model.name.clone(), Arc::new(model));
        }
        Ok(Arc::new(Server {
            models: RwLock::new(models),
            sources,
            data_dir: config.data_dir.clone(),
            admin_token: config.admin_token.clone(),
            metrics: metrics::Metrics::default(),
            feedback: feedback::Feedback::default(),
        }))
    }

    /// The models served, by name.
    pub fn models(&self) -> Vec<Arc<ServedModel>> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let model = models.get(name).cloned().ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no model `{name}` is served (served: {})",
                    models.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        match version {
            Some(version) if version != model.version => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "model `{name}` version {version} is not served (serving version {})",
                    model.version
                ),
            )),
            _ => Ok(model),
        }
    }

    /// Re-reads a model from its source and swaps it in.
    fn reload(&self, name: &str) -> Result<Arc<ServedModel>, ApiError> {
        let source = self.sources.get(name).ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no model `{name}` is served"),
            )
        })?;
        let model = Arc::new(
            load(source, &self.data_dir)
                .map_err(|err| ApiError(StatusCode::BAD_REQUEST, format!("{err:#}")))?,
        );
        self.models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), model.clone());
        Ok(model)
    }

    fn check_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.admin_token else {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "admin endpoints are disabled: start the server with an admin token (WFLOW_ADMIN_TOKEN or --admin-token-file)".into(),
            ));
        };
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compare without an early exit, so the time taken says nothing about the token.
        let matches = given.is_some_and(|given| {
            given.len() == token.len()
                && given
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if matches {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required".into(),
            ))
        }
    }
}

fn metadata(model: &ServedModel) -> serde_json::Value {
    json!({
        "name": model.name,
        "versions": [model.version],
        "platform": "onnx",
        "inputs": model.inputs,
        "outputs": model.outputs,
    })
}

async fn server_metadata() -> impl IntoResponse {
    Json(json!({
        "name": "wflow",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_repository"],
    }))
}

async fn live() -> impl IntoResponse {
    Json(json!({ "live": true }))
}

async fn ready(State(server): State<Arc<Server>>) -> Response {
    let ready = !server.models().is_empty();
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
    let model = server.model(&name, None)?;
    Ok(Json(metadata(&model)))
}

async fn version_metadata(
    State(server): State<Arc<Server>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let model = server.model(&name, Some(&version))?;
    Ok(Json(metadata(&model)))
}

async fn model_ready(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.model(&name, None)?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

async fn version_ready(
    State(server): State<Arc<Server>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.model(&name, Some(&version))?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

/// Answers an inference request and records it in the metrics.
async fn infer(
    server: Arc<Server>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<InferResponse>, ApiError> {
    let started = std::time::Instant::now();
    // The version serving now, so a refused request counts against it too.
    let serving = server
        .model(&name, version.as_deref())
        .map(|m| m.version.clone())
        .unwrap_or_default();
    let answer = answer(server.clone(), &name, version.as_deref(), headers, body).await;
    let (served_version, outcome) = match &answer {
        Ok((version, rows, _)) => (version.clone(), Ok(*rows)),
        Err(err) => (serving, Err(err.0.as_u16())),
    };
    // Requests for models that are not served are not series of their own: any name could
    // be asked for, and each would be a new time series.
    if !matches!(outcome, Err(404)) {
        server
            .metrics
            .record(&name, &served_version, outcome, started.elapsed());
    }
    answer.map(|(_, _, response)| Json(response))
}

/// The response to an inference request, with the version that answered and the rows.
async fn answer(
    server: Arc<Server>,
    name: &str,
    version: Option<&str>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(String, usize, InferResponse), ApiError> {
    let bad = |message: String| ApiError(StatusCode::BAD_REQUEST, message);
    if headers.contains_key("inference-header-content-length") {
        return Err(bad(
            "binary tensor data is not supported: send the data as JSON (binary_data=False in Triton's client)".into(),
        ));
    }
    let model = server.model(name, version)?;
    let request: InferRequest = serde_json::from_slice(&body).map_err(|err| {
        bad(format!(
            "the request is not a valid inference request: {err}"
        ))
    })?;
    let inputs = request
        .inputs
        .iter()
        .map(protocol::decode_input)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let rows = inputs
        .first()
        .and_then(|i| i.shape.first().copied())
        .unwrap_or(0);
    let wanted: Vec<String> = request.outputs.into_iter().map(|o| o.name).collect();
    let running = model.clone();
    // A request with an id is remembered for feedback, which needs the predictions whatever
    // outputs were asked for.
    let remember = request.id.is_some();
    let asked = if remember { Vec::new() } else { wanted.clone() };
    // tract runs on this thread until done: keep it off the threads that serve connections.
    let mut outputs = tokio::task::spawn_blocking(move || running.infer(inputs, &asked))
        .await
        .map_err(|err| ApiError(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?
        .map_err(|err| match err {
            ModelError::BadRequest(message) => bad(message),
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    if let Some(id) = &request.id
        && let Some(predictions) = feedback::predictions(&outputs)
    {
        server
            .feedback
            .remember(&model.name, &model.version, id, predictions);
    }
    if remember && !wanted.is_empty() {
        outputs.retain(|o| wanted.contains(&o.name));
    }
    let response = InferResponse {
        model_name: model.name.clone(),
        model_version: model.version.clone(),
        id: request.id,
        outputs: outputs.into_iter().map(protocol::encode_output).collect(),
    };
    Ok((model.version.clone(), rows, response))
}

async fn prometheus(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let mut text = server.metrics.render();
    text.push_str(&metrics::render_quality(&server.feedback.quality()));
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
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.model(&name, None)?;
    let request: FeedbackRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the feedback is not {{\"id\": ..., \"truth\": [...]}}: {err}"),
        )
    })?;
    let (version, matched) = server
        .feedback
        .record(&name, &request.id, &request.truth)
        .map_err(|err| {
            let status = match err {
                feedback::FeedbackError::UnknownRequest(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError(status, err.to_string())
        })?;
    Ok(Json(
        json!({ "id": request.id, "version": version, "matched": matched }),
    ))
}

async fn quality_of(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.model(&name, None)?;
    let versions: BTreeMap<String, feedback::Quality> = server
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

async fn infer_latest(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<InferResponse>, ApiError> {
    infer(server, name, None, headers, body).await
}

async fn infer_version(
    State(server): State<Arc<Server>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<InferResponse>, ApiError> {
    infer(server, name, Some(version), headers, body).await
}

async fn load_model(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    server.check_admin(&headers)?;
    let model = tokio::task::spawn_blocking({
        let server = server.clone();
        move || server.reload(&name)
    })
    .await
    .map_err(|err| ApiError(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))??;
    Ok(Json(json!({
        "name": model.name,
        "version": model.version,
        "source": model.source,
    })))
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
        .route("/metrics", get(prometheus))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(server)
}

/// Serves until `shutdown` resolves; `on_listening` gets the bound address (the port may have
/// been chosen by the system).
pub async fn run(
    config: ServeConfig,
    on_listening: impl FnOnce(SocketAddr, &[Arc<ServedModel>]),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking({
        let config = config.clone();
        move || Server::start(&config)
    })
    .await??;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    on_listening(listener.local_addr()?, &server.models());
    axum::serve(listener, router(server, config.max_body))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
