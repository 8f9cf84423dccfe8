//! HTTP/1.1 serving for the routers of `wflow serve`, the daemon and the UI, with the limits a
//! server exposed to a network needs and `axum::serve` does not offer:
//!
//! - a deadline for every request head, counted from when the connection is ready for one
//!   (so it is also the idle keep-alive timeout; trickled bytes do not extend it);
//! - a cap on open connections, and a lower one per client (an IPv4 address or an IPv6 /64);
//!   at a cap an idle connection is closed to make room for a newcomer, which is answered 503
//!   and closed at once when none can be ([`connections`]), so connections left open and
//!   silent keep nobody out;
//! - a deadline for every request body, from when its head arrived, whatever trickles in;
//!   an announced body above the size limit is answered 413 before any of it is read;
//! - a budget of request-body bytes held at once, over all connections, charged as the bytes
//!   arrive and returned when the answer is made ([`body`]): bytes that do not fit wait up to
//!   two seconds for others to finish, then the request is answered 503, so many large
//!   requests at once cannot exhaust memory, and announcing a large body and sending it slowly
//!   holds nothing;
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
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub use connections::idle_while_waiting;
use connections::{Admission, ClientKey, Connections, Refused, Slot};

mod body;
mod connections;

/// hyper's read buffer cap per connection (default ~400 KiB; minimum 8 KiB).
const READ_BUFFER: usize = 64 << 10;

/// The address that stands for the client at `ip` in per-client limits: an IPv4 address, or
/// the /64 prefix of an IPv6 one (a host usually has a whole /64 to pick addresses from).
pub fn client_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    ClientKey::of(ip).address()
}

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
    /// Open connections at most; at the cap an idle one is closed for a newcomer, which is
    /// answered 503 when none can be ([`connections`]).
    pub max_connections: usize,
    /// Open connections from one client (an IPv4 address, an IPv6 /64) at most.
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
    /// Request-body bytes held at once over every connection, counted as they arrive.
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
            body::BodyPolicy {
                max_body: limits.max_body,
                deadline: limits.body_read_timeout,
                held: Arc::new(Semaphore::new(
                    usize::try_from(held).unwrap_or(Semaphore::MAX_PERMITS),
                )),
            },
            body::guard_body,
        ))
        .layer(middleware::from_fn(connections::mark_busy));

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(READ_BUFFER);

    // Each connection is a file; so is whatever a request opens (the store, models, plugins).
    let wanted = u64::try_from(limits.max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(512);
    let allowed = raise_open_file_limit(wanted);
    if allowed < wanted {
        tracing::warn!(
            "this process may open {allowed} files, fewer than the {} connections allowed \
             need; raise `ulimit -n` or lower --max-connections",
            limits.max_connections
        );
    }
    let connections = Connections::new(limits.max_connections, limits.max_connections_per_client);
    let (stopping, stop_requested) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = async {
                connections.until_uncrowded().await;
                listener.accept().await
            } => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        let client = ClientKey::of(peer.ip());
        let connection = Connection {
            stream,
            peer,
            http: http.clone(),
            router: router.clone(),
            stop_requested: stop_requested.clone(),
        };
        match connections.admit(client) {
            Admission::Now(slot) => {
                tasks.spawn(connection.run(slot));
            }
            Admission::Reserved(reservation) => {
                // At a cap: an idle connection is closing to make room for this one.
                tasks.spawn(async move {
                    match reservation.wait(ROOM_FOR_A_CONNECTION).await {
                        Ok(slot) => connection.run(slot).await,
                        Err(why) => connection.refuse(why),
                    }
                });
            }
            Admission::Refused(why) => connection.refuse(why),
        }
    }

    drop(listener);
    let _ = stopping.send(true);
    let finished = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            "{} connection(s) still busy after {:?}; closing them",
            tasks.len(),
            limits.shutdown_grace
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// How long a newcomer at a cap waits for an idle connection to close for it.
const ROOM_FOR_A_CONNECTION: Duration = Duration::from_secs(1);

/// Raises this process's limit on open files towards `wanted`, as far as its hard limit
/// allows (many systems start processes at 1,024, below what a server's connections need);
/// the limit now in force.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur >= wanted {
        return limit.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit, within the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        limit.rlim_cur
    }
}

/// How long a connection asked to close has to close by itself before it is dropped, if no
/// request of it is in progress: one that never answered a request, and one that did (whose
/// last answer may still be flushing to a slow reader), both within the second a newcomer
/// waits.
const LINGER: Duration = Duration::from_millis(20);
const LINGER_AFTER_AN_ANSWER: Duration = Duration::from_millis(500);

/// An accepted connection, before it has a slot.
struct Connection {
    stream: TcpStream,
    peer: std::net::SocketAddr,
    http: http1::Builder,
    router: Router,
    stop_requested: watch::Receiver<bool>,
}

impl Connection {
    /// A best-effort 503 without blocking, then the socket is closed.
    fn refuse(self, why: Refused) {
        tracing::debug!(peer = %self.peer, "connection refused: {why:?}");
        const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
            content-length: 0\r\nretry-after: 1\r\n\r\n";
        let _ = self.stream.try_write(BUSY);
    }

    /// Serves the connection until the client closes it, a timeout does, or it is asked to
    /// close (the server stopping, or room needed at a cap), which closes it once idle.
    async fn run(self, slot: Slot) {
        let Connection {
            stream,
            peer,
            http,
            router,
            mut stop_requested,
        } = self;
        let service = TowerToHyperService::new(tower::Layer::layer(
            &axum::Extension(slot.busy.clone()),
            tower::Layer::layer(&axum::Extension(Peer(peer)), router),
        ));
        let mut connection = pin!(http.serve_connection(TokioIo::new(stream), service));
        let asked_to_close = async {
            tokio::select! {
                () = slot.drain.notified() => {}
                _ = stop_requested.wait_for(|stop| *stop) => {}
            }
        };
        let ended = tokio::select! {
            ended = connection.as_mut() => Some(ended),
            () = asked_to_close => None,
        };
        let ended = match ended {
            Some(ended) => ended,
            None => {
                // hyper closes an idle connection at once and lets a request in progress
                // finish; one partway through a request head (a client trickling it) is
                // dropped, unless a request has reached the router meanwhile. One that has
                // answered before gets longer, for its last answer to reach a slow reader.
                connection.as_mut().graceful_shutdown();
                let linger = if slot.busy.has_answered() {
                    LINGER_AFTER_AN_ANSWER
                } else {
                    LINGER
                };
                match tokio::time::timeout(linger, connection.as_mut()).await {
                    Ok(ended) => ended,
                    Err(_) if slot.busy.is_idle() => return,
                    Err(_) => connection.await,
                }
            }
        };
        if let Err(err) = ended {
            // Header timeouts, resets and malformed requests: the client's doing.
            tracing::debug!(%peer, "connection ended: {err}");
        }
        // The slot is returned when the connection is gone.
        drop(slot);
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
        return (!matches!(site, "same-origin" | "none") && !is_allowed)
            .then(|| format!("Sec-Fetch-Site: {}", crate::excerpt::excerpt(site, 40)));
    }
    let origin = origin?;
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ if is_allowed => None,
        _ => Some(format!("Origin {}", crate::excerpt::excerpt(origin, 80))),
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

#[cfg(test)]
mod tests {
    //! Each limit proved with a real TCP client against a real listener.

    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use axum::body::Bytes;
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
        /// A long poll began.
        polling: Arc<tokio::sync::Notify>,
    }

    fn app(gate: Gate) -> Router {
        let hold = gate.clone();
        let poll = gate.clone();
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
                "/poll",
                get(move || async move {
                    poll.polling.notify_one();
                    std::future::pending::<()>().await;
                })
                .layer(middleware::from_fn(idle_while_waiting)),
            )
            .route(
                "/hold",
                post(move |body: Bytes| async move {
                    hold.entered.notify_one();
                    hold.release.notified().await;
                    format!("held {} bytes", body.len())
                }),
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
    async fn at_the_cap_an_idle_connection_makes_room_and_busy_ones_do_not() {
        let server = Server::start(Limits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 2,
            ..limits()
        })
        .await;
        // Two connections fill the cap, one trickling a request head, one left silent...
        let mut first = server.connect().await;
        first
            .write_all(b"GET /v2/health/live HTTP/1.1\r\nho")
            .await
            .unwrap();
        let mut second = server.connect().await;
        // ...and a newcomer is served: the oldest idle one is closed for it, long before the
        // idle timeout.
        let mut live = server.connect().await;
        live.write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let answered = read_until(&mut live, "live").await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        let closed = read_until_closed(&mut first, SLACK).await;
        assert_eq!(
            closed.as_deref(),
            Some(""),
            "the oldest idle connection is closed"
        );
        // Now both connections are busy (one in a request, one answering): nothing can make
        // room, and a newcomer is refused.
        second
            .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        server.gate.entered.notified().await;
        live.write_all(b"GET /stream HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut live, "data:").await;
        let mut refused = server.connect().await;
        let got = read_until_closed(&mut refused, SLACK)
            .await
            .expect("refused");
        assert!(got.starts_with("HTTP/1.1 503"), "{got:?}");
        // The busy ones were left alone.
        server.gate.release.notify_one();
        let done = read_until(&mut second, "done").await;
        assert!(done.starts_with("HTTP/1.1 200"), "{done}");
    }

    #[tokio::test]
    async fn bodies_wait_for_room_and_are_refused_when_none_comes_in_time() {
        let server = Server::start(Limits {
            max_body_bytes_held: 2048,
            max_body: 2048,
            body_read_timeout: 4 * T,
            ..limits()
        })
        .await;
        // One request holds the whole budget while its handler keeps what it read.
        let mut holder = server.connect().await;
        let body = "x".repeat(2048);
        holder
            .write_all(
                format!("POST /hold HTTP/1.1\r\nhost: test\r\ncontent-length: 2048\r\n\r\n{body}")
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
        let done = read_until(&mut holder, "held 2048 bytes").await;
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
    async fn an_announced_body_holds_nothing_until_it_is_sent() {
        // Room for two bodies of the largest size; bytes are charged by the KiB.
        let server = Server::start(Limits {
            max_body_bytes_held: 4096,
            max_body: 2048,
            ..limits()
        })
        .await;
        // Two clients announce half the budget each and send a few bytes...
        let mut stallers = Vec::new();
        for _ in 0..2 {
            let mut staller = server.connect().await;
            staller
                .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 2048\r\n\r\nxx")
                .await
                .unwrap();
            stallers.push(staller);
        }
        // ...and a whole body as large as theirs is still read at once.
        let mut next = server.connect().await;
        let body = "y".repeat(2040);
        next.write_all(
            format!("POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 2040\r\n\r\n{body}")
                .as_bytes(),
        )
        .await
        .unwrap();
        let answered = read_until(&mut next, "2040 bytes").await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        // The stallers themselves end at their body deadline.
        for mut staller in stallers {
            let got = read_until_closed(&mut staller, T + SLACK)
                .await
                .expect("closed");
            assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        }
    }

    #[tokio::test]
    async fn requests_carry_their_peers_address() {
        let server = Server::start(limits()).await;
        let answer = fetch(server.addr, "/peer").await;
        assert!(answer.ends_with("127.0.0.1"), "{answer}");
    }

    #[tokio::test]
    async fn a_long_poll_makes_room_at_the_cap_like_an_idle_connection() {
        let server = Server::start(Limits {
            max_connections: 2,
            ..limits()
        })
        .await;
        // One connection waits in a long poll, the other is in a request...
        let mut polling = server.connect().await;
        polling
            .write_all(b"GET /poll HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        server.gate.polling.notified().await;
        let mut busy = server.connect().await;
        busy.write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        server.gate.entered.notified().await;
        // ...and a newcomer is served: the poll is closed for it (its client asks again).
        let live = fetch(server.addr, "/v2/health/live").await;
        assert!(live.starts_with("HTTP/1.1 200"), "{live:?}");
        assert!(read_until_closed(&mut polling, SLACK).await.is_some());
        server.gate.release.notify_one();
        let done = read_until(&mut busy, "done").await;
        assert!(done.starts_with("HTTP/1.1 200"), "{done}");
    }

    #[tokio::test]
    async fn a_client_at_its_cap_makes_room_among_its_own_connections() {
        let server = Server::start(Limits {
            header_read_timeout: Duration::from_secs(30),
            max_connections_per_client: 2,
            ..limits()
        })
        .await;
        let address = server.addr;
        let from = |ip: [u8; 4]| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from((ip, 0))).unwrap();
            socket.connect(address).await.unwrap()
        };
        // Another client's idle connection, older than any of 127.0.0.2's...
        let mut other = from([127, 0, 0, 3]).await;
        let live = fetch(server.addr, "/v2/health/live").await;
        assert!(live.starts_with("HTTP/1.1 200"), "{live:?}");
        // ...then 127.0.0.2's two idle connections, its fill: its third closes its own oldest.
        let mut oldest = from([127, 0, 0, 2]).await;
        let _younger = from([127, 0, 0, 2]).await;
        let mut third = from([127, 0, 0, 2]).await;
        third
            .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let answered = read_until(&mut third, "live").await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert_eq!(
            read_until_closed(&mut oldest, SLACK).await.as_deref(),
            Some("")
        );
        assert_eq!(
            read_until_closed(&mut other, T).await,
            None,
            "another client's connection stays open"
        );
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
