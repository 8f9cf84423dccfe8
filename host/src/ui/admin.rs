//! Signing in to the UI and what a signed-in admin may do: promote a version, roll an alias
//! back, cancel or resume a run.
//!
//! Signing in takes the admin token (the API's) in a form and gives an opaque session id in an
//! HttpOnly, SameSite=Strict cookie scoped to `/ui`; sessions live in the process and end after
//! 12 hours or at sign-out. Every mutating form carries the session's CSRF token, compared in
//! constant time, so a page elsewhere cannot make a signed-in browser act. Failed sign-ins are
//! throttled per client address ([`FAILURES_ALLOWED`] a minute), so the token cannot be guessed
//! at network speed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Problem, Ui, pages};
use crate::serve::token::same;
use crate::store::Actor;

/// The cookie holding a session id.
const COOKIE: &str = "wflow_session";
/// How long a session lasts.
const SESSION_LIFE: Duration = Duration::from_secs(12 * 3600);

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token every form of this session carries.
    pub csrf: String,
    started: Instant,
}

/// Failed sign-ins a client address may make in [`FAILURE_WINDOW`]; then it must wait.
pub const FAILURES_ALLOWED: u32 = 5;
/// The window failed sign-ins are counted over.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered at most; the oldest are forgotten first.
const FAILURES_KEPT: usize = 10_000;

/// The signed-in sessions of this process, and the failed sign-ins per client address.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<std::net::IpAddr, (Instant, u32)>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system has randomness");
    hex::encode(bytes)
}

/// The session id the request's cookies carry, in any of its `Cookie` headers.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

impl Sessions {
    fn start(&self) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            started: Instant::now(),
        };
        let mut sessions = self.live.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.started.elapsed() < SESSION_LIFE);
        sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session the request's cookie names, if it is live.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = session_id(headers)?;
        let sessions = self.live.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(id)
            .filter(|s| s.started.elapsed() < SESSION_LIFE)
            .cloned()
    }

    fn end(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
    }

    /// Counts a sign-in attempt of `client` as failed until [`Sessions::succeeded`] says
    /// otherwise; or how long it must wait, when it has failed too often. Counting first and
    /// checking under the same lock means parallel guesses cannot all pass the check before
    /// any of them is counted.
    fn attempt(&self, client: std::net::IpAddr) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= FAILURES_KEPT && !failures.contains_key(&client) {
            failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
            if failures.len() >= FAILURES_KEPT
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (since, _))| *since)
                    .map(|(ip, _)| *ip)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(client).or_insert((Instant::now(), 0));
        let elapsed = entry.0.elapsed();
        if elapsed >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        } else if entry.1 >= FAILURES_ALLOWED {
            return Err(FAILURE_WINDOW - elapsed);
        }
        entry.1 += 1;
        Ok(())
    }

    /// The attempt of `client` succeeded: it does not count as a failure.
    fn succeeded(&self, client: std::net::IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = failures.get_mut(&client) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

/// The fields of a URL-encoded form.
fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A place in the UI to go back to (never another site).
fn local(next: Option<&String>) -> String {
    match next {
        Some(next)
            if next.starts_with("/ui") && !next.starts_with("//") && !next.contains('\\') =>
        {
            next.clone()
        }
        _ => "/ui/runs".into(),
    }
}

/// The session of a request that changes something, with its form checked.
fn admin(
    ui: &Ui,
    headers: &HeaderMap,
    fields: &HashMap<String, String>,
) -> Result<Session, Problem> {
    let session = ui.sessions.of(headers).ok_or_else(|| {
        Problem(
            StatusCode::FORBIDDEN,
            "changes need an admin: sign in with the admin token first".into(),
        )
    })?;
    match fields.get("csrf") {
        Some(given) if same(given, &session.csrf) => Ok(session),
        _ => Err(Problem(
            StatusCode::FORBIDDEN,
            "the form is not from this session (reload the page and try again)".into(),
        )),
    }
}

pub(super) async fn login_form(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let fields = form(query.unwrap_or_default().as_bytes());
    let session = ui.sessions.of(&headers);
    pages::login(&local(fields.get("next")), None, session.as_ref()).into_response()
}

pub(super) async fn login(
    State(ui): State<Arc<Ui>>,
    peer: Option<axum::Extension<crate::http::Peer>>,
    body: axum::body::Bytes,
) -> Response {
    let fields = form(&body);
    let next = local(fields.get("next"));
    // A router driven without a socket (tests) has no peer: it counts as one client.
    let client = peer.map_or(
        std::net::IpAddr::from([127, 0, 0, 1]),
        |axum::Extension(crate::http::Peer(address))| crate::http::client_of(address.ip()),
    );
    if let Err(wait) = ui.sessions.attempt(client) {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            pages::login(
                &next,
                Some(&format!(
                    "too many failed sign-ins from this address: try again in {} s",
                    wait.as_secs().max(1)
                )),
                None,
            ),
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    let accepted = match (&ui.token, fields.get("token")) {
        (Some(token), Some(given)) => same(token, given.trim()),
        _ => false,
    };
    if !accepted {
        let why = if ui.token.is_none() {
            "this UI has no admin token (set WFLOW_ADMIN_TOKEN or --admin-token-file)"
        } else {
            "that is not the admin token"
        };
        return (
            StatusCode::UNAUTHORIZED,
            pages::login(&next, Some(why), None),
        )
            .into_response();
    }
    ui.sessions.succeeded(client);
    let (id, _) = ui.sessions.start();
    let cookie = format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_LIFE.as_secs()
    );
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex ids are header-safe"),
    );
    response
}

pub(super) async fn logout(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    admin(&ui, &headers, &form(&body))?;
    ui.sessions.end(&headers);
    let mut response = Redirect::to("/ui/runs").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"
        ))
        .expect("the cookie's name is header-safe"),
    );
    Ok(response)
}

fn actor(action: &str) -> Actor {
    Actor::Command {
        command: format!("web UI: {action}"),
        user: "admin".into(),
    }
}

/// The registry's new version served at once by the daemon's server.
fn refresh(ui: &Ui, name: &str) {
    if let Some(scheduler) = &ui.scheduler {
        crate::daemon::api::refresh(scheduler, name);
    }
}

pub(super) async fn promote(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let fields = form(&body);
    admin(&ui, &headers, &fields)?;
    let version: u32 = fields
        .get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Problem(StatusCode::BAD_REQUEST, "which version?".into()))?;
    let alias = fields
        .get("alias")
        .cloned()
        .unwrap_or_else(|| "champion".into());
    let reason = fields
        .get("reason")
        .filter(|r| !r.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "promoted in the web UI".into());
    let model = name.clone();
    ui.read(move |store| {
        store.move_alias(&model, &alias, version, &reason, actor("promote"), false)
    })
    .await?;
    refresh(&ui, &name);
    Ok(Redirect::to(&format!("/ui/models/{name}")).into_response())
}

pub(super) async fn rollback(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let fields = form(&body);
    admin(&ui, &headers, &fields)?;
    let alias = fields
        .get("alias")
        .cloned()
        .unwrap_or_else(|| "champion".into());
    let model = name.clone();
    ui.read(move |store| {
        store.rollback(
            &model,
            &alias,
            "rolled back in the web UI",
            actor("rollback"),
        )
    })
    .await?;
    refresh(&ui, &name);
    Ok(Redirect::to(&format!("/ui/models/{name}")).into_response())
}

/// The daemon's scheduler, which alone cancels and resumes runs.
fn daemon(ui: &Ui) -> Result<&Arc<crate::scheduler::Scheduler>, Problem> {
    ui.scheduler
        .as_ref()
        .ok_or_else(|| Problem(StatusCode::CONFLICT, "only a daemon runs runs".into()))
}

pub(super) async fn cancel(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    admin(&ui, &headers, &form(&body))?;
    daemon(&ui)?
        .cancel(id, "cancelled in the web UI")
        .map_err(|why| Problem(StatusCode::CONFLICT, why))?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")).into_response())
}

pub(super) async fn resume(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    admin(&ui, &headers, &form(&body))?;
    daemon(&ui)?
        .resume(id)
        .map_err(|why| Problem(StatusCode::CONFLICT, why.to_string()))?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")).into_response())
}
