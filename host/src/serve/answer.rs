//! The inference path: an Open Inference Protocol request (`/infer`, JSON or binary tensors) or
//! an MLflow scoring request (`/invocations`, JSON or CSV rows) is decoded, routed to a version,
//! run, recorded and answered.
//!
//! Bodies are decoded off the async threads unless they are small enough that handing them to
//! another thread would cost more ([`INLINE_DECODE`]); so are answers with many rows. Who sent a
//! request decides what it may influence: a request addressed to a version needs a credential
//! when the server has one, and only requests the server routed itself (no version, no routing
//! key) or that carry a credential count toward a challenger's rollout and health. A request
//! the model could not take (a 4xx) is never counted as the model's error.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::deployment::{Arm, Deployment, Route};
use super::model::{Inputs, ModelError, NamedTensor, ServedModel};
use super::protocol::{self, InferRequest, InferResponse};
use super::routes::{ApiError, bad, internal};
use super::{Caller, Server, binary, content, served_versions};

/// Bodies up to this size are decoded on the thread that received them: decoding one takes
/// well under a millisecond, less than handing it to a blocking thread and back.
pub const INLINE_DECODE: usize = 64 << 10;

/// Answers with up to this many rows are encoded on the thread that serves the connection.
const INLINE_ROWS: usize = 1024;

/// Runs `work` here when it is light, on a blocking thread when it is not.
pub(super) async fn off_thread<T: Send + 'static>(
    heavy: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if heavy {
        tokio::task::spawn_blocking(work).await.map_err(internal)
    } else {
        Ok(work())
    }
}

/// The answer to an inference request: JSON, or a JSON header and binary outputs when any
/// output was asked for as binary data.
fn respond(request: &InferRequest, model: &ServedModel, outputs: Vec<NamedTensor>) -> Response {
    let mut tail = Vec::new();
    let outputs = outputs
        .into_iter()
        .map(|tensor| {
            if request.binary_output(&tensor.name) {
                let (output, bytes) = binary::encode_output(tensor);
                tail.extend(bytes);
                output
            } else {
                protocol::encode_output(tensor)
            }
        })
        .collect();
    let body = InferResponse {
        model_name: model.name.clone(),
        model_version: model.version.clone(),
        id: request.id.clone(),
        outputs,
    };
    if tail.is_empty() {
        return Json(body).into_response();
    }
    let mut bytes = serde_json::to_vec(&body).expect("plain data serialises");
    let header_length = bytes.len();
    bytes.extend(tail);
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(binary::HEADER_LENGTH, HeaderValue::from(header_length));
    response
}

/// What a request's origin lets it drive: a challenger's rollout and window (`counts`), and
/// its errors when it refuses a row (`trusted`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Vouched {
    pub counts: bool,
    pub trusted: bool,
}

/// What a request asks besides its rows, and who asks.
struct Asked {
    /// The version it addresses, if it names one.
    version: Option<String>,
    /// The request's id, for feedback.
    id: Option<String>,
    /// The outputs it wants (all when empty).
    wanted: Vec<String>,
    /// The key that keeps a caller on one side of a traffic split.
    routing_key: Option<String>,
    caller: Caller,
}

impl Asked {
    /// Whether the request may drive a challenger's rollout and health: the server chose its
    /// side itself, or the caller carries a credential. A caller choosing its side (a version,
    /// a routing key) without one could otherwise promote or roll back a canary at will.
    fn counts_for_rollout(&self) -> bool {
        self.caller.trusted() || (self.version.is_none() && self.routing_key.is_none())
    }
}

/// Where a request goes: the side, its model, and whether the challenger gets a copy.
fn route(
    deployment: &Deployment,
    asked: &Asked,
) -> Result<(Arm, Arc<ServedModel>, bool), ApiError> {
    match &asked.version {
        Some(version) => match deployment.arm_of(version) {
            Some((arm, model)) => Ok((arm, model.clone(), false)),
            None => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "model `{}` version {} is not served (serving version {})",
                    deployment.name,
                    shown(version),
                    served_versions(deployment)
                ),
            )),
        },
        None => Ok(match deployment.route(asked.routing_key.as_deref()) {
            Route::To(arm) => (arm, deployment.model(arm).clone(), false),
            Route::Mirrored => (Arm::Champion, deployment.champion.clone(), true),
        }),
    }
}

/// A caller's text in a message: at most 64 characters, control characters escaped.
fn shown(text: &str) -> String {
    crate::excerpt::excerpt(text, 64)
}

/// How a request reads its rows for a version: decoded once (tensors) or read for each
/// version's own inputs (raw rows), with what the answer needs besides the outputs.
type Read<T> = Arc<dyn Fn(&ServedModel) -> Result<(Arc<Inputs>, T), String> + Send + Sync>;

/// Why a version could not answer: the request did not suit it (a 4xx), or it failed (a 5xx).
enum Failed {
    Request(String),
    Model(String),
}

impl Failed {
    fn status(&self) -> u16 {
        match self {
            Failed::Request(_) => 400,
            Failed::Model(_) => 500,
        }
    }
}

/// One version's answer to a request.
struct Attempt<T> {
    model: Arc<ServedModel>,
    arm: Arm,
    outcome: Result<Answered<T>, Failed>,
    model_time: std::time::Duration,
}

/// What a version answered.
struct Answered<T> {
    inputs: Arc<Inputs>,
    extra: T,
    outputs: Vec<NamedTensor>,
    predictions: Option<Vec<super::feedback::Prediction>>,
    /// The request's rows as cells, when it carries an id and the model answered.
    cells: Option<super::feedback::Cells>,
}

/// Reads the request for `model` and runs it (off the async threads when it is heavy).
async fn attempt<T: Send + 'static>(
    model: &Arc<ServedModel>,
    arm: Arm,
    read: &Read<T>,
    body_len: usize,
    wanted: Vec<String>,
    remember: bool,
    watched: bool,
) -> Attempt<T> {
    let failed = |outcome: Failed, model_time| Attempt {
        model: model.clone(),
        arm,
        outcome: Err(outcome),
        model_time,
    };
    let (reader, read_with) = (model.clone(), read.clone());
    let read = off_thread(body_len > INLINE_DECODE, move || read_with(&reader)).await;
    let (inputs, extra) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(message)) => return failed(Failed::Request(message), Default::default()),
        Err(_) => {
            return failed(
                Failed::Model("the decoding thread failed".into()),
                Default::default(),
            );
        }
    };
    let rows = inputs.rows();
    let (run_model, run_inputs) = (model.clone(), inputs.clone());
    let run = move || {
        let model_started = Instant::now();
        let outcome = run_model.answer(&run_inputs, &wanted, watched);
        let model_time = model_started.elapsed();
        run_model.note_cost(rows, model_time);
        // The rows themselves too, so the truth that comes back makes labelled recent data.
        let cells = match &outcome {
            Ok((_, Some(_))) if remember => run_model.row_cells(&run_inputs),
            _ => None,
        };
        (outcome, cells, model_time)
    };
    // A model known to answer this batch within a few tens of microseconds runs here: handing
    // it to another thread and back would cost more than the inference. Anything longer runs
    // on a blocking thread, off the threads that serve connections. The model's own time is
    // measured where it runs, without the wait for a thread.
    let ran = if model.runs_inline(rows) {
        Ok(run())
    } else {
        tokio::task::spawn_blocking(run).await
    };
    let (outcome, cells, model_time) = match ran {
        Ok(ran) => ran,
        Err(err) => {
            return failed(
                Failed::Model(format!("the model's thread failed: {err}")),
                Default::default(),
            );
        }
    };
    Attempt {
        model: model.clone(),
        arm,
        model_time,
        outcome: match outcome {
            Ok((outputs, predictions)) => Ok(Answered {
                inputs,
                extra,
                outputs,
                predictions,
                cells,
            }),
            Err(err @ (ModelError::BadRequest(_) | ModelError::BadRow(_))) => {
                Err(Failed::Request(err.to_string()))
            }
            Err(err) => Err(Failed::Model(format!(
                "model `{}` v{}: {err}",
                model.name, model.version
            ))),
        },
    }
}

/// Whether a challenger's failure (`status`) counts against it. A failure of its own (5xx)
/// does. A request it refused (4xx) that the champion took does when it is `vouched` for: the
/// challenger reads requests of another shape than the champion (so production's requests
/// fail on it whoever sends them), or a credential vouches for the row. An anonymous row
/// that only the challenger's checks refuse (a value its pipeline does not take) does not
/// count: such rows would roll back any canary at will.
pub(super) fn challenger_at_fault(status: u16, champion_answered: bool, vouched: bool) -> bool {
    status >= 500 || (champion_answered && vouched)
}

/// Answers an inference request: routes it to a version, reads its rows for that version,
/// runs the model, records everything (metrics, the deployment's counts, feedback, shadow
/// copies) and encodes the answer (`reply`).
///
/// A challenger the router chose that cannot answer (its inputs differ from the champion's,
/// it fails) is not the caller's problem: the champion answers instead, and the challenger's
/// failure counts against it as [`challenger_at_fault`] says. A request no version can take
/// is the caller's mistake: a 400 that counts against nobody.
async fn answer<T: Send + 'static>(
    server: &Arc<Server>,
    deployment: &Arc<Deployment>,
    asked: Asked,
    body_len: usize,
    read: Read<T>,
    reply: impl FnOnce(&ServedModel, Vec<NamedTensor>, T) -> Response + Send + 'static,
    started: Instant,
) -> Response {
    let name = deployment.name.clone();
    let (arm, model, mirrored) = match route(deployment, &asked) {
        Ok(routed) => routed,
        Err(err) => return err.into_response(),
    };
    let counts = asked.counts_for_rollout();
    // Feedback and shadow comparisons need every output, whatever the caller asked for.
    let remember = asked.id.is_some();
    let every_output = remember || mirrored;
    let wanted = if every_output {
        Vec::new()
    } else {
        asked.wanted.clone()
    };
    let record = |arm: Arm, ok: bool, model_time: std::time::Duration| {
        if counts {
            deployment.record(arm, ok, model_time);
            if arm == Arm::Challenger {
                server.review(deployment);
            }
        }
    };
    // A challenger's window decides whether its canary is held for drift, so it keeps only
    // the traffic that may drive its rollout; the champion's keeps everything it answers.
    let watched = |arm: Arm| arm == Arm::Champion || counts;
    let mut attempt = attempt(
        &model,
        arm,
        &read,
        body_len,
        wanted.clone(),
        remember,
        watched(arm),
    )
    .await;
    if let Err(failed) = &attempt.outcome
        && arm == Arm::Challenger
        && asked.version.is_none()
    {
        let status = failed.status();
        let fallback = self::attempt(
            &deployment.champion,
            Arm::Champion,
            &read,
            body_len,
            wanted,
            remember,
            watched(Arm::Champion),
        )
        .await;
        let vouched = asked.caller.trusted() || !model.reads_like(&deployment.champion);
        if challenger_at_fault(status, fallback.outcome.is_ok(), vouched) {
            server.metrics.record(
                &name,
                &attempt.model.version,
                Arm::Challenger.label(),
                Err(status),
                started.elapsed(),
            );
            record(Arm::Challenger, false, attempt.model_time);
        } else if counts && fallback.outcome.is_ok() {
            // Not its error, but not a healthy answer either: its canary is held while such
            // refusals are many.
            deployment.record_refusal();
        }
        attempt = fallback;
    }
    let answered = match attempt.outcome {
        Ok(answered) => answered,
        Err(failed) => {
            let version = attempt.model.version.clone();
            server.metrics.record(
                &name,
                &version,
                attempt.arm.label(),
                Err(failed.status()),
                started.elapsed(),
            );
            return match failed {
                // The request was wrong, not the model: the caller's mistake is not the
                // version's error.
                Failed::Request(message) => bad(message).into_response(),
                Failed::Model(message) => {
                    record(attempt.arm, false, attempt.model_time);
                    internal(message).into_response()
                }
            };
        }
    };
    let Answered {
        inputs,
        extra,
        mut outputs,
        predictions,
        cells,
    } = answered;
    let model = attempt.model.clone();
    let arm = attempt.arm;
    if counts {
        // Reviewed below, once the answer is recorded everywhere.
        deployment.record(arm, true, attempt.model_time);
    }
    let mut remembered = None;
    if let (Some(id), Some(predictions)) = (&asked.id, predictions) {
        remembered = server.feedback.remember(
            &name,
            id,
            super::feedback::Answered {
                version: model.version.clone(),
                predictions,
                rows: cells,
                trusted: asked.caller.trusted(),
            },
        );
    }
    if mirrored {
        server.mirror(
            deployment.clone(),
            inputs.clone(),
            outputs.clone(),
            asked.id.clone().zip(remembered),
            Vouched {
                counts,
                trusted: asked.caller.trusted(),
            },
        );
    }
    if every_output && !asked.wanted.is_empty() {
        outputs.retain(|o| asked.wanted.contains(&o.name));
    }
    let rows = inputs.rows();
    server.metrics.record(
        &name,
        &model.version,
        arm.label(),
        Ok(rows),
        started.elapsed(),
    );
    if counts && arm == Arm::Challenger {
        server.review(deployment);
    }
    match off_thread(rows > INLINE_ROWS, move || reply(&model, outputs, extra)).await {
        Ok(response) => response,
        Err(failed) => failed.into_response(),
    }
}

/// Answers an Open Inference Protocol request.
async fn infer(
    server: Arc<Server>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let started = Instant::now();
    // Requests for models that are not served are not series of their own: any name could
    // be asked for, and each would be a new time series.
    let deployment = match server.model_or_404(&name) {
        Ok(deployment) => deployment,
        Err(err) => return err.into_response(),
    };
    let caller = server.caller(&headers);
    if version.is_some()
        && let Err(err) = server.require_credential(caller, "inference on a named version")
    {
        return err.into_response();
    }
    if let Err(err) = content::content_type(&headers, content::Accepts::Infer) {
        return err.into_response();
    }
    let header_length = match headers.get(binary::HEADER_LENGTH).map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => Some(text.to_string()),
        Some(Err(_)) => {
            return bad("Inference-Header-Content-Length is not text".into()).into_response();
        }
    };
    let routing_header = headers
        .get("x-routing-key")
        .and_then(|v| v.to_str().ok())
        .filter(|key| key.len() <= protocol::MAX_ID_BYTES)
        .map(str::to_string);
    let heavy = body.len() > INLINE_DECODE;
    let parsed = off_thread(heavy, move || {
        protocol::decode_request(header_length.as_deref(), &body)
    })
    .await;
    let (request, inputs) = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(message)) => {
            // Counted under a version that is served (the one named, or the champion), so a
            // caller cannot make up label values.
            let served: Option<(Arm, String)> = match &version {
                Some(version) => deployment
                    .arm_of(version)
                    .map(|(arm, model)| (arm, model.version.to_string())),
                None => Some((Arm::Champion, deployment.champion.version.to_string())),
            };
            if let Some((arm, version)) = served {
                server
                    .metrics
                    .record(&name, &version, arm.label(), Err(400), started.elapsed());
            }
            return bad(message).into_response();
        }
        Err(failed) => return failed.into_response(),
    };
    let asked = Asked {
        version,
        id: request.id.clone(),
        wanted: request.outputs.iter().map(|o| o.name.clone()).collect(),
        routing_key: routing_header.or_else(|| request.routing_key()),
        caller,
    };
    // Decoded once: every version takes the same tensors.
    let inputs = Arc::new(Inputs::Tensors(inputs));
    let request = Arc::new(request);
    let read: Read<Arc<InferRequest>> =
        Arc::new(move |_: &ServedModel| Ok((inputs.clone(), request.clone())));
    answer(
        &server,
        &deployment,
        asked,
        0,
        read,
        |model, outputs, request| respond(&request, model, outputs),
        started,
    )
    .await
}

/// Answers an MLflow scoring request (`POST /invocations`): raw rows as `dataframe_split`,
/// `dataframe_records`, `inputs` (columns or records) or `instances`, or a CSV body; the answer
/// is `{"predictions": [...]}`, labels or values (and with `"params": {"probabilities": true}`,
/// one object per row with the label and each class's probability).
async fn invocations(
    server: Arc<Server>,
    deployment: Arc<Deployment>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let started = Instant::now();
    let csv = match content::content_type(&headers, content::Accepts::Scoring) {
        Ok(kind) => kind == content::Kind::Csv,
        Err(err) => return err.into_response(),
    };
    let body_len = body.len();
    // The body is read for the version the request is routed to, as that version's raw inputs.
    let read: Read<bool> = Arc::new(move |model: &ServedModel| {
        let Some(columns) = &model.columns else {
            return Err(format!(
                "model `{}` takes tensors ({}), not named columns: use /v2/models/{}/infer",
                model.name,
                crate::pipeline::quoted(model.inputs.iter().map(|i| i.name.as_str())),
                model.name
            ));
        };
        let (table, probabilities) = if csv {
            super::scoring::from_csv(&columns.inputs, &body)?
        } else {
            super::scoring::from_json(&columns.inputs, &body)?
        };
        Ok((Arc::new(Inputs::Rows(table)), probabilities))
    });
    let asked = Asked {
        version: None,
        id: None,
        wanted: Vec::new(),
        routing_key: headers
            .get("x-routing-key")
            .and_then(|v| v.to_str().ok())
            .filter(|key| key.len() <= protocol::MAX_ID_BYTES)
            .map(str::to_string),
        caller: server.caller(&headers),
    };
    answer(
        &server,
        &deployment,
        asked,
        body_len,
        read,
        |model, outputs, probabilities| {
            Json(super::scoring::predictions(model, &outputs, probabilities)).into_response()
        },
        started,
    )
    .await
}

/// `POST /invocations`: the one model served, as `mlflow models serve` serves one.
pub(super) async fn invocations_only(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let deployments = server.deployments();
    match deployments.as_slice() {
        [only] => invocations(server.clone(), only.clone(), headers, body).await,
        [] => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "no model is served".into()).into_response()
        }
        several => bad(format!(
            "{} models are served ({}): post to /v2/models/NAME/invocations",
            several.len(),
            several
                .iter()
                .map(|d| format!("`{}`", d.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into_response(),
    }
}

/// `POST /v2/models/{name}/invocations`: MLflow's scoring protocol for a named model.
pub(super) async fn invocations_of(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match server.model_or_404(&name) {
        Ok(deployment) => invocations(server.clone(), deployment, headers, body).await,
        Err(err) => err.into_response(),
    }
}

/// `POST /v2/models/{name}/infer`.
pub(super) async fn infer_latest(
    State(server): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    infer(server, name, None, headers, body).await
}

/// `POST /v2/models/{name}/versions/{version}/infer`.
pub(super) async fn infer_version(
    State(server): State<Arc<Server>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    infer(server, name, Some(version), headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challengers_refusal_counts_against_it_only_when_vouched_for() {
        // Its own failure, whoever asked.
        assert!(challenger_at_fault(500, false, false));
        assert!(challenger_at_fault(500, true, false));
        // A row it refused that the champion took: only a vouched-for one (a credential, or a
        // challenger reading another shape).
        assert!(challenger_at_fault(400, true, true));
        assert!(!challenger_at_fault(400, true, false));
        // A row nobody could take is the caller's mistake.
        assert!(!challenger_at_fault(400, false, true));
    }
}
