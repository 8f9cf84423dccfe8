//! A request body's limits: its deadline, and its bytes charged to the server's budget of
//! body bytes held at once as they arrive, returned when the answer is made.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

#[derive(Clone, Debug)]
pub(super) struct BodyPolicy {
    pub(super) max_body: u64,
    pub(super) deadline: Duration,
    /// Request-body bytes that may be held at once, in KiB.
    pub(super) held: Arc<Semaphore>,
}

/// How long a body's next bytes wait for room in the budget before the request is refused.
/// Short, so that whoever holds the budget cannot make every other request wait out its
/// body deadline.
const ROOM_WAIT: Duration = Duration::from_secs(2);

/// 413 for an announced oversize body before reading it; 408 when the body is not all there
/// by the deadline; 503 when its bytes find no room in the budget in time. All three close
/// the connection.
pub(super) async fn guard_body(
    State(policy): State<BodyPolicy>,
    request: Request,
    next: Next,
) -> Response {
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
    // The body's bytes are charged to the budget as they arrive (what was announced costs
    // nothing until it is sent) and held until the answer is made, because the handler keeps
    // what it read until then.
    let outcome = Arc::new(BodyOutcome::default());
    let request = request.map(|inner| {
        Body::new(GuardedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(policy.deadline)),
            // Within half the body deadline, so a body that finds no room is told so (503)
            // rather than timed out (408).
            room_wait: ROOM_WAIT.min(policy.deadline / 2),
            budget: Arc::clone(&policy.held),
            received: 0,
            charged_kib: 0,
            waiting: None,
            outcome: Arc::clone(&outcome),
        })
    });
    let response = next.run(request).await;
    // Whatever the handler made of a failed read (axum's `Bytes` says 400), it was one of these.
    if outcome.expired.load(Ordering::Acquire) {
        return closing(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        );
    }
    if outcome.busy.load(Ordering::Acquire) {
        return closing(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy reading other requests; try again",
        );
    }
    drop(outcome);
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

/// What became of a request's body, seen by [`guard_body`] after the handler ran; it also holds
/// the body's share of the budget until the answer is made.
#[derive(Default)]
struct BodyOutcome {
    expired: AtomicBool,
    busy: AtomicBool,
    held: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
}

impl BodyOutcome {
    fn hold(&self, permit: OwnedSemaphorePermit) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some(all) => all.merge(permit),
            None => *held = Some(permit),
        }
    }
}

type Room = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

/// A request body that fails once its deadline has passed, however steadily bytes trickle in,
/// and whose bytes are charged to the server's budget as they arrive.
struct GuardedBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    room_wait: Duration,
    budget: Arc<Semaphore>,
    /// Bytes received so far.
    received: u64,
    /// KiB of the budget taken for them.
    charged_kib: u64,
    /// A frame that arrived when the budget had no room, and the wait for room.
    waiting: Option<(Frame<Bytes>, u32, Room)>,
    outcome: Arc<BodyOutcome>,
}

#[derive(Debug)]
struct BodyRefused(&'static str);

impl std::fmt::Display for BodyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyRefused {}

impl GuardedBody {
    /// Charges a frame's bytes; `Some(kib)` when the budget has no room for them now.
    fn charge(&mut self, frame: &Frame<Bytes>) -> Option<u32> {
        let data = frame.data_ref()?;
        self.received += data.len() as u64;
        let owed = self
            .received
            .div_ceil(1024)
            .saturating_sub(self.charged_kib);
        if owed == 0 {
            return None;
        }
        let owed = u32::try_from(owed).unwrap_or(u32::MAX);
        match Arc::clone(&self.budget).try_acquire_many_owned(owed) {
            Ok(permit) => {
                self.charged_kib += u64::from(owed);
                self.outcome.hold(permit);
                None
            }
            Err(_) => Some(owed),
        }
    }
}

/// Ends a body with an error, flagging why for [`guard_body`].
fn refuse(flag: &AtomicBool, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
    flag.store(true, Ordering::Release);
    Poll::Ready(Some(Err(axum::Error::new(BodyRefused(why)))))
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Some((_, owed, room)) = this.waiting.as_mut() {
            let owed = *owed;
            return match room.as_mut().poll(cx) {
                Poll::Ready(Some(permit)) => {
                    let (frame, _, _) = this.waiting.take().expect("waiting");
                    this.charged_kib += u64::from(owed);
                    this.outcome.hold(permit);
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(None) => {
                    // The finished wait is not polled again.
                    this.waiting = None;
                    refuse(
                        &this.outcome.busy,
                        "the server is busy reading other requests",
                    )
                }
                Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                    this.waiting = None;
                    refuse(
                        &this.outcome.expired,
                        "the request body did not arrive in time",
                    )
                }
                Poll::Pending => Poll::Pending,
            };
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match this.charge(&frame) {
                None => Poll::Ready(Some(Ok(frame))),
                Some(owed) => {
                    let budget = Arc::clone(&this.budget);
                    let wait = this.room_wait;
                    let room: Room = Box::pin(async move {
                        tokio::time::timeout(wait, budget.acquire_many_owned(owed))
                            .await
                            .ok()
                            .and_then(Result::ok)
                    });
                    this.waiting = Some((frame, owed, room));
                    // Polls the wait once, so that it registers for a wake-up.
                    Pin::new(this).poll_frame(cx)
                }
            },
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => refuse(
                &this.outcome.expired,
                "the request body did not arrive in time",
            ),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
