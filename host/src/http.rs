//! HTTP/1.1 serving for the routers of `wflow serve`, the daemon and the UI, with the limits a
//! server exposed to a network needs and `axum::serve` does not offer:
//!
//! - a deadline for every request head, counted from when the connection is ready for one
//!   (so it is also the idle keep-alive timeout; trickled bytes do not extend it);
//! - a cap on open connections, and a lower one per client address, so one client cannot take
//!   them all (one more is answered 503 and closed at once, not left waiting in the backlog);
//! - a deadline for every request body, from when its head arrived, whatever trickles in;
//!   an announced body above the size limit is answered 413 before any of it is read;
//! - a budget of request-body bytes held at once, over all connections: a request whose body
//!   does not fit waits for others to finish, and is answered 503 when the wait passes its body
//!   deadline, so many large requests at once cannot exhaust memory;
//! - a graceful shutdown that gives in-flight requests a grace period, then closes what is left
//!   (a never-ending event stream included);
//! - no request that changes something from another site: a browser adds `Origin` to every
//!   cross-origin request that changes something and `Sec-Fetch-Site` to every request, and a
//!   page on any site can make the operator's browser send one to a server on their machine or
//!   network, so one whose origin is neither this server's nor an allowed one is refused before
//!   any handler runs.
//!
//! HTTP/1.1 only: nothing here speaks HTTP/2. Each request carries its peer's address
//! ([`Peer`]) for per-client decisions such as sign-in throttling.

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Sleep;

/// hyper's read buffer cap per connection (default ~400 KiB; minimum 8 KiB).
const READ_BUFFER: usize = 64 << 10;

/// The address a request came from, in its extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// What one server tolerates from its clients.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time allowed for a whole request head (request line and headers). The clock starts when
    /// the connection is ready for a request: at accept, and again when the previous response
    /// has been written, so this is also the idle keep-alive timeout. Trickling bytes does not
    /// extend it.
    pub header_read_timeout: Duration,
    /// Open connections at most; one more is answered 503 and closed at once.
    pub max_connections: usize,
    /// Open connections from one client address at most.
    pub max_connections_per_client: usize,
    /// Time allowed for a whole request body, from when its head was read; then 408.
    pub body_read_timeout: Duration,
    /// A larger `Content-Length` is answered 413 before any of the body is read. (Bodies
    /// without a length are still capped by the routers' `DefaultBodyLimit`.)
    pub max_body: u64,
    /// On shutdown, in-flight requests get this long to finish; then connections are dropped.
    pub shutdown_grace: Duration,
    /// Header lines at most (hyper answers 431 beyond).
    pub max_headers: usize,
    /// Bytes of request line + headers at most (hyper answers 431 beyond).
    pub max_header_bytes: usize,
    /// Request-body bytes held at once over every connection (a body of unknown length
    /// counts as `max_body`).
    pub max_body_bytes_held: u64,
    /// Origins besides the server's own (`https://app.example.com`) whose pages may change
    /// things, for a web application that calls the server from its own site.
    pub allowed_origins: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_client: 256,
            body_read_timeout: Duration::from_secs(60),
            max_body: 64 << 20,
            shutdown_grace: Duration::from_secs(10),
            max_headers: 64,
            max_header_bytes: 16 << 10,
            max_body_bytes_held: 512 << 20,
            allowed_origins: Vec::new(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish for up to `limits.shutdown_grace`, drops what is left and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let held = limits
        .max_body_bytes_held
        .max(limits.max_body)
        .div_ceil(1024);
    let router = router
        .layer(middleware::from_fn_with_state(
            Arc::new(limits.allowed_origins.clone()),
            refuse_cross_site,
        ))
        .layer(middleware::from_fn_with_state(
            BodyPolicy {
                max_body: limits.max_body,
                deadline: limits.body_read_timeout,
                held: Arc::new(Semaphore::new(
                    usize::try_from(held).unwrap_or(Semaphore::MAX_PERMITS),
                )),
            },
            guard_body,
        ));

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(READ_BUFFER);

    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Clients::new(limits.max_connections_per_client);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        let Some(client) = clients.admit(peer.ip()) else {
            refuse_busy(&stream);
            continue;
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            refuse_busy(&stream);
            continue;
        };
        let service = TowerToHyperService::new(tower::Layer::layer(
            &axum::Extension(Peer(peer)),
            router.clone(),
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            // The permits are returned when the connection is gone.
            let _permits = (permit, client);
            if let Err(err) = connection.await {
                // Header timeouts, resets and malformed requests: the client's doing.
                tracing::debug!(%peer, "connection ended: {err}");
            }
        });
    }

    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connection(s) still busy after {:?}; closing them",
            connections.len(),
            limits.shutdown_grace
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Open connections per client address.
#[derive(Clone)]
struct Clients {
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    limit: usize,
}

/// One client's connection, counted until dropped.
struct ClientSlot {
    clients: Clients,
    ip: std::net::IpAddr,
}

impl Clients {
    fn new(limit: usize) -> Clients {
        Clients {
            open: Arc::default(),
            limit: limit.max(1),
        }
    }

    /// A slot for one more connection of `ip`, unless it has its fill.
    fn admit(&self, ip: std::net::IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Whether a request comes from another site than this server's (or an allowed one), by what
/// its browser says. `Sec-Fetch-Site` is the browser's own word (a page cannot set it), so
/// when it is there it decides; `Origin` alone is compared with `Host` for browsers without
/// it. A same-origin form under a `no-referrer` policy is sent with `Origin: null`, which
/// is why `Origin` does not overrule `Sec-Fetch-Site: same-origin`.
fn cross_site(headers: &axum::http::HeaderMap, allowed: &[String]) -> Option<String> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let is_allowed = origin.is_some_and(|origin| allowed.iter().any(|a| a == origin));
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("(not text)");
        return (!matches!(site, "same-origin" | "none") && !is_allowed).then(|| {
            format!(
                "Sec-Fetch-Site: {}",
                site.chars().take(40).collect::<String>().escape_debug()
            )
        });
    }
    let origin = origin?;
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ if is_allowed => None,
        _ => Some(format!(
            "Origin {}",
            origin.chars().take(80).collect::<String>().escape_debug()
        )),
    }
}

/// Refuses every request that could change something (any method but GET, HEAD and OPTIONS)
/// when a browser says another site sent it.
async fn refuse_cross_site(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let reads = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !reads && let Some(why) = cross_site(request.headers(), &allowed) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": format!("cross-site requests are refused ({why})")
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// At the cap: a best-effort 503 without blocking, then the socket is closed.
fn refuse_busy(stream: &TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
        content-length: 0\r\nretry-after: 1\r\n\r\n";
    let _ = stream.try_write(BUSY);
}

/// As axum's own loop: errors about one connection are ignored; others (out of file
/// descriptors) are waited out briefly.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!("accepting a connection failed: {err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[derive(Clone, Debug)]
struct BodyPolicy {
    max_body: u64,
    deadline: Duration,
    /// Request-body bytes that may be held at once, in KiB.
    held: Arc<Semaphore>,
}

/// 413 for an announced oversize body before reading it; 408 when the body is not all there
/// by the deadline. Both close the connection.
async fn guard_body(State(policy): State<BodyPolicy>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > policy.max_body) {
        return closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than allowed",
        );
    }
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let deadline = Box::pin(tokio::time::sleep(policy.deadline));
    // The body's bytes are held until the answer is made; a body of unknown length may grow to
    // the limit. Waiting for room counts against the body's deadline.
    let kib = announced
        .unwrap_or(policy.max_body)
        .min(policy.max_body)
        .div_ceil(1024)
        .max(1);
    let permits = u32::try_from(kib).unwrap_or(u32::MAX);
    let room = tokio::time::timeout(
        policy.deadline,
        Arc::clone(&policy.held).acquire_many_owned(permits),
    )
    .await;
    let _room = match room {
        Ok(Ok(room)) => room,
        _ => {
            return closing(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy reading other requests; try again",
            );
        }
    };
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline,
            expired: Arc::clone(&expired),
        })
    });
    let response = next.run(request).await;
    if expired.load(Ordering::Acquire) {
        // Whatever the handler made of the failed read (axum's `Bytes` says 400), it was a
        // timeout.
        return closing(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        );
    }
    response
}

fn closing(status: StatusCode, message: &'static str) -> Response {
    let mut response = (status, message).into_response();
    // hyper closes the connection after a response carrying `connection: close`.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline has passed, however steadily bytes trickle in.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    //! Each limit proved with a real TCP client against a real listener.

    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use axum::response::sse::{Event, KeepAlive, Sse};
    use axum::routing::{get, post};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tokio::time::{Instant, sleep, timeout};

    /// The header, idle and body timeouts in these tests.
    const T: Duration = Duration::from_millis(300);
    /// Slack for a loaded machine.
    const SLACK: Duration = Duration::from_millis(1500);
    const GRACE: Duration = Duration::from_millis(500);

    fn limits() -> Limits {
        Limits {
            header_read_timeout: T,
            max_connections: 4,
            body_read_timeout: T,
            max_body: 1024,
            shutdown_grace: GRACE,
            ..Limits::default()
        }
    }

    /// Lets a test know a request reached its handler, and hold it there until released.
    #[derive(Clone, Default)]
    struct Gate {
        entered: Arc<tokio::sync::Notify>,
        release: Arc<tokio::sync::Notify>,
    }

    fn app(gate: Gate) -> Router {
        Router::new()
            .route("/v2/health/live", get(|| async { "live" }))
            .route(
                "/slow",
                get(move || async move {
                    gate.entered.notify_one();
                    gate.release.notified().await;
                    "done"
                }),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
            )
            .route(
                "/stream",
                get(|| async {
                    let ticks = futures_util::stream::unfold(0u64, |n| async move {
                        sleep(Duration::from_millis(50)).await;
                        Some((
                            Ok::<_, Infallible>(Event::default().data(n.to_string())),
                            n + 1,
                        ))
                    });
                    Sse::new(ticks).keep_alive(KeepAlive::default())
                }),
            )
            .route(
                "/peer",
                get(
                    |axum::Extension(Peer(peer)): axum::Extension<Peer>| async move {
                        peer.ip().to_string()
                    },
                ),
            )
    }

    struct Server {
        addr: SocketAddr,
        gate: Gate,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<io::Result<()>>,
    }

    impl Server {
        async fn start(limits: Limits) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            let gate = Gate::default();
            let task = tokio::spawn(serve(listener, app(gate.clone()), limits, async move {
                let _ = stopped.await;
            }));
            Self {
                addr,
                gate,
                stop: Some(stop),
                task,
            }
        }

        async fn connect(&self) -> TcpStream {
            TcpStream::connect(self.addr).await.unwrap()
        }

        fn stop(&mut self) {
            let _ = self.stop.take().expect("stopped once").send(());
        }

        /// Waits for `serve` to return; panics if it takes longer than `limit`.
        async fn stopped_within(&mut self, limit: Duration) {
            timeout(limit, &mut self.task)
                .await
                .expect("serve returned in time")
                .expect("serve did not panic")
                .expect("serve succeeded");
        }
    }

    /// Everything the peer sends until it closes (EOF or reset); `None` if still open at `limit`.
    async fn read_until_closed<R: AsyncRead + Unpin>(
        stream: &mut R,
        limit: Duration,
    ) -> Option<String> {
        let mut seen = Vec::new();
        let drained = timeout(limit, async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        drained.ok()?;
        Some(String::from_utf8_lossy(&seen).into_owned())
    }

    /// Reads until `needle` has arrived.
    async fn read_until<R: AsyncRead + Unpin>(stream: &mut R, needle: &str) -> String {
        let mut seen = Vec::new();
        let found = timeout(SLACK, async {
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return false;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    return true;
                }
            }
        })
        .await;
        let seen = String::from_utf8_lossy(&seen).into_owned();
        assert!(
            matches!(found, Ok(true)),
            "no {needle:?} in time; got {seen:?}"
        );
        seen
    }

    /// One request on its own connection; the whole response.
    async fn fetch(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        read_until_closed(&mut stream, SLACK)
            .await
            .expect("a response, then close")
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_at_the_header_timeout() {
        let server = Server::start(limits()).await;
        let started = Instant::now();
        let mut stream = server.connect().await;
        let got = read_until_closed(&mut stream, T + SLACK).await;
        assert_eq!(got.as_deref(), Some(""), "closed without a response");
        assert!(started.elapsed() >= T, "not before the timeout");
    }

    #[tokio::test]
    async fn a_trickled_request_head_is_cut_at_the_header_timeout() {
        let server = Server::start(limits()).await;
        let started = Instant::now();
        let stream = server.connect().await;
        let (mut reader, mut writer) = stream.into_split();
        // Half a head, then one more header line every 50 ms: progress must not help.
        let trickle = tokio::spawn(async move {
            let _ = writer
                .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: test\r\n")
                .await;
            for line in 0u32.. {
                sleep(Duration::from_millis(50)).await;
                let header = format!("x-slow-{line}: 1\r\n");
                if writer.write_all(header.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let got = read_until_closed(&mut reader, T + SLACK)
            .await
            .expect("closed by the header timeout");
        assert!(!got.contains("200"), "{got}");
        assert!(started.elapsed() >= T);
        trickle.abort();
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_at_the_header_timeout() {
        let server = Server::start(limits()).await;
        let mut stream = server.connect().await;
        for _ in 0..2 {
            // Two requests a little apart: keep-alive itself still works.
            stream
                .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: test\r\n\r\n")
                .await
                .unwrap();
            let response = read_until(&mut stream, "\r\n\r\nlive").await;
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            sleep(T / 3).await;
        }
        let idle_since = Instant::now();
        let got = read_until_closed(&mut stream, T + SLACK).await;
        assert_eq!(got.as_deref(), Some(""), "closed while idle");
        assert!(idle_since.elapsed() >= T / 3, "not closed at once");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_refused_until_idle_ones_time_out() {
        let server = Server::start(Limits {
            header_read_timeout: Duration::from_secs(1),
            ..limits()
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(server.connect().await);
        }
        let mut extra = server.connect().await;
        let refused = read_until_closed(&mut extra, SLACK)
            .await
            .expect("refused at once");
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
        for stream in &mut idle {
            let got = read_until_closed(stream, Duration::from_secs(1) + SLACK).await;
            assert!(got.is_some(), "an idle connection timed out");
        }
        // Their permits are back: the health check answers again.
        let mut live = String::new();
        for _ in 0..20 {
            live = fetch(server.addr, "/v2/health/live").await;
            if live.starts_with("HTTP/1.1 200") {
                break;
            }
            sleep(Duration::from_millis(25)).await;
        }
        assert!(live.starts_with("HTTP/1.1 200"), "{live:?}");
    }

    #[tokio::test]
    async fn bodies_wait_for_room_and_are_refused_when_none_comes_in_time() {
        let server = Server::start(Limits {
            max_body_bytes_held: 2048,
            max_body: 2048,
            ..limits()
        })
        .await;
        // One request holds the whole budget while its handler waits.
        let mut holder = server.connect().await;
        let body = "x".repeat(2048);
        holder
            .write_all(
                format!("GET /slow HTTP/1.1\r\nhost: test\r\ncontent-length: 2048\r\n\r\n{body}")
                    .as_bytes(),
            )
            .await
            .unwrap();
        server.gate.entered.notified().await;
        let mut waiting = server.connect().await;
        waiting
            .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n0123456789")
            .await
            .unwrap();
        let got = read_until_closed(&mut waiting, T + SLACK)
            .await
            .expect("answered and closed");
        assert!(got.starts_with("HTTP/1.1 503"), "{got}");
        // Released, the budget serves the next one.
        server.gate.release.notify_one();
        let done = read_until(&mut holder, "done").await;
        assert!(done.starts_with("HTTP/1.1 200"), "{done}");
        let mut next = server.connect().await;
        next.write_all(
            b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n0123456789",
        )
        .await
        .unwrap();
        let answered = read_until(&mut next, "10 bytes").await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    }

    #[tokio::test]
    async fn requests_carry_their_peers_address() {
        let server = Server::start(limits()).await;
        let answer = fetch(server.addr, "/peer").await;
        assert!(answer.ends_with("127.0.0.1"), "{answer}");
    }

    #[tokio::test]
    async fn one_client_cannot_take_every_connection() {
        let server = Server::start(Limits {
            max_connections_per_client: 2,
            ..limits()
        })
        .await;
        // Two idle connections from 127.0.0.2 are its fill; its third is refused.
        let address = server.addr;
        let from = |ip: [u8; 4]| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from((ip, 0))).unwrap();
            socket.connect(address).await.unwrap()
        };
        let _idle = (from([127, 0, 0, 2]).await, from([127, 0, 0, 2]).await);
        let mut third = from([127, 0, 0, 2]).await;
        let refused = read_until_closed(&mut third, SLACK).await.expect("refused");
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
        // Another client is served meanwhile.
        let live = fetch(server.addr, "/v2/health/live").await;
        assert!(live.starts_with("HTTP/1.1 200"), "{live:?}");
    }

    fn headers(pairs: &[(&str, &str)]) -> axum::http::HeaderMap {
        let mut map = axum::http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_this_servers_origin_and_allowed_ones_pass() {
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(cross_site(&headers(&[host]), &[]), None);
        assert_eq!(
            cross_site(&headers(&[host, ("origin", "http://127.0.0.1:8080")]), &[]),
            None
        );
        for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
            assert!(
                cross_site(&headers(&[host, ("origin", origin)]), &[]).is_some(),
                "{origin}"
            );
        }
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "cross-site")]), &[]).is_some());
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "same-site")]), &[]).is_some());
        assert_eq!(
            cross_site(&headers(&[host, ("sec-fetch-site", "same-origin")]), &[]),
            None
        );
        // A same-origin form under a no-referrer policy: the browser's word decides.
        let form = headers(&[host, ("origin", "null"), ("sec-fetch-site", "same-origin")]);
        assert_eq!(cross_site(&form, &[]), None);
        let app = vec!["https://app.example".to_string()];
        let from_app = headers(&[
            host,
            ("origin", "https://app.example"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(cross_site(&from_app, &app), None);
        assert!(cross_site(&from_app, &[]).is_some());
    }

    #[tokio::test]
    async fn a_page_elsewhere_cannot_post_but_the_servers_own_can() {
        let server = Server::start(limits()).await;
        let post = |origin: &str| {
            format!(
                "POST /echo HTTP/1.1\r\nhost: {}\r\norigin: {origin}\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi",
                server.addr
            )
        };
        for (origin, status) in [
            ("http://evil.example".to_string(), "HTTP/1.1 403"),
            (format!("http://{}", server.addr), "HTTP/1.1 200"),
        ] {
            let mut stream = server.connect().await;
            stream.write_all(post(&origin).as_bytes()).await.unwrap();
            let answer = read_until_closed(&mut stream, SLACK).await.unwrap();
            assert!(answer.starts_with(status), "{origin}: {answer}");
        }
    }

    #[tokio::test]
    async fn a_prompt_body_is_read() {
        let server = Server::start(limits()).await;
        let mut stream = server.connect().await;
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n0123456789")
            .await
            .unwrap();
        let response = read_until(&mut stream, "10 bytes").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    #[tokio::test]
    async fn a_stalled_body_is_answered_408_at_the_body_timeout() {
        let server = Server::start(limits()).await;
        let mut stream = server.connect().await;
        let started = Instant::now();
        stream
            .write_all(
                b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n0123456789",
            )
            .await
            .unwrap();
        let got = read_until_closed(&mut stream, T + SLACK)
            .await
            .expect("answered and closed");
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(started.elapsed() >= T);
    }

    #[tokio::test]
    async fn a_dripped_body_is_answered_408_although_bytes_keep_coming() {
        let server = Server::start(limits()).await;
        let stream = server.connect().await;
        let (mut reader, mut writer) = stream.into_split();
        let drip = tokio::spawn(async move {
            let _ = writer
                .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n")
                .await;
            // 100 bytes at one per 50 ms would take 5 s.
            for _ in 0..100 {
                sleep(Duration::from_millis(50)).await;
                if writer.write_all(b"x").await.is_err() {
                    break;
                }
            }
        });
        let got = read_until_closed(&mut reader, T + SLACK)
            .await
            .expect("answered and closed long before the body could end");
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        drip.abort();
    }

    #[tokio::test]
    async fn an_announced_oversize_body_is_answered_413_before_it_is_sent() {
        let server = Server::start(limits()).await;
        let mut stream = server.connect().await;
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 1000000\r\n\r\n")
            .await
            .unwrap();
        // Well before the body timeout: nothing of the body was waited for.
        let got = read_until_closed(&mut stream, T / 2)
            .await
            .expect("answered and closed at once");
        assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    }

    #[tokio::test]
    async fn a_server_sent_event_stream_outlives_every_timeout() {
        let server = Server::start(limits()).await;
        let mut stream = server.connect().await;
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut seen = String::new();
        let _ = timeout(4 * T, async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        assert!(seen.matches("data:").count() >= 10, "{seen}");
        assert_eq!(
            read_until_closed(&mut stream, Duration::from_millis(100)).await,
            None,
            "still streaming after four header/body timeouts"
        );
    }

    #[tokio::test]
    async fn shutdown_lets_an_in_flight_request_finish_and_refuses_new_ones() {
        let mut server = Server::start(limits()).await;
        let mut idle = server.connect().await;
        let mut busy = server.connect().await;
        busy.write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        server.gate.entered.notified().await;
        server.stop();
        server.gate.release.notify_one();
        // The idle connection is closed at once, the busy one after its response.
        assert_eq!(
            read_until_closed(&mut idle, Duration::from_millis(200))
                .await
                .as_deref(),
            Some("")
        );
        let response = read_until_closed(&mut busy, SLACK)
            .await
            .expect("response, then close");
        assert!(
            response.starts_with("HTTP/1.1 200") && response.ends_with("done"),
            "{response}"
        );
        server.stopped_within(SLACK).await;
        assert!(
            TcpStream::connect(server.addr).await.is_err(),
            "no longer listening"
        );
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_an_endless_stream_after_the_grace_period() {
        let mut server = Server::start(limits()).await;
        let mut stream = server.connect().await;
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut stream, "data:").await;
        let started = Instant::now();
        server.stop();
        server.stopped_within(GRACE + SLACK).await;
        assert!(started.elapsed() >= GRACE, "waited for the stream first");
        assert!(
            read_until_closed(&mut stream, SLACK).await.is_some(),
            "the stream was cut"
        );
    }
}
