//! Which connections a server keeps open: at most so many in all and so many per client (an
//! IPv4 address, or an IPv6 /64, the least a host is usually given to pick addresses from).
//!
//! At a cap, as nginx does when it runs short of connections, a connection doing nothing
//! (waiting for a request head or partway through reading one, which is also the keep-alive
//! idle state, or waiting in a long poll or an event stream) is closed to make room for the
//! newcomer: the oldest one of the client holding the most connections, or of the newcomer's
//! own client when that client is at its cap; its room is handed to the newcomer when it is
//! gone, and nobody else can take it meanwhile. The newcomer is answered 503 when every
//! connection that could make room is in the middle of a request, when 256 newcomers already
//! wait, or when the connection closing for it is not gone within a second. So connections
//! left open and silent, from any number of addresses, cannot keep anyone out; a client must
//! keep requests in flight to hold connections, and those are bounded by the body deadline,
//! the body budget and the handlers' own limits.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use tokio::sync::{Notify, oneshot};

/// Whose connection it is, for the per-client cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ClientKey(IpAddr);

impl ClientKey {
    pub(super) fn address(self) -> IpAddr {
        self.0
    }

    pub(super) fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(prefix.into()))
            }
            v4 => ClientKey(v4),
        }
    }
}

/// The open connections of one server.
#[derive(Clone)]
pub(super) struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Woken whenever a waiting newcomer is admitted or gives up.
    reservation_returned: Notify,
    max_total: usize,
    max_per_client: usize,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// By id, which is also the order they were opened in.
    open: BTreeMap<u64, Entry>,
    per_client: HashMap<ClientKey, usize>,
    /// Room reserved for newcomers waiting for a connection closed for them, in all and by
    /// client, so that nobody else takes it.
    reserved: usize,
    reserved_by: HashMap<ClientKey, usize>,
}

struct Entry {
    client: ClientKey,
    busy: Busy,
    drain: Arc<Notify>,
    /// Asked to close for a newcomer, who is told when it is gone.
    handoff: Option<oneshot::Sender<()>>,
}

/// Requests in progress on one connection (a response counts until its body is sent), and
/// how many it has answered.
#[derive(Clone, Default)]
pub(super) struct Busy(Arc<BusyCounts>);

#[derive(Default)]
pub(super) struct BusyCounts {
    in_progress: AtomicUsize,
    answered: AtomicUsize,
}

impl Busy {
    pub(super) fn is_idle(&self) -> bool {
        self.0.in_progress.load(Ordering::Acquire) == 0
    }

    /// Whether it has answered a request: its last answer may still be on its way out.
    pub(super) fn has_answered(&self) -> bool {
        self.0.answered.load(Ordering::Acquire) > 0
    }
}

/// One open connection, counted until dropped. `drain` fires when it should close once idle.
pub(super) struct Slot {
    shared: Arc<Shared>,
    id: u64,
    pub(super) busy: Busy,
    pub(super) drain: Arc<Notify>,
}

/// Why a newcomer was turned away.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refused {
    /// Every connection that could make room is in the middle of a request.
    AllBusy,
    /// Too many newcomers already wait for room.
    TooManyWaiting,
    /// The connection closed for it did not go in time.
    NoRoomInTime,
}

/// Newcomers waiting for room at once at most; more are refused at once.
const MAX_WAITING: usize = 256;

impl Connections {
    pub(super) fn new(max_total: usize, max_per_client: usize) -> Connections {
        Connections {
            shared: Arc::new(Shared {
                state: Mutex::default(),
                reservation_returned: Notify::new(),
                max_total: max_total.max(1),
                max_per_client: max_per_client.max(1),
            }),
        }
    }

    /// Whether `client` may open one more connection, counting the room reserved for those
    /// waiting.
    fn has_room(&self, state: &State, client: ClientKey) -> bool {
        let own = state.per_client.get(&client).copied().unwrap_or(0)
            + state.reserved_by.get(&client).copied().unwrap_or(0);
        state.open.len() + state.reserved < self.shared.max_total
            && own < self.shared.max_per_client
    }

    /// Admits a new connection from `client`: a slot if there is room; else an idle
    /// connection is asked to close and its room is reserved for `client`; else why not.
    /// Called by the accept loop itself, so that what is reserved is known before the next
    /// connection is accepted.
    pub(super) fn admit(&self, client: ClientKey) -> Admission {
        let mut state = self.lock();
        if self.has_room(&state, client) {
            return Admission::Now(self.insert(&mut state, client));
        }
        if state.reserved >= MAX_WAITING {
            return Admission::Refused(Refused::TooManyWaiting);
        }
        // Make room: within the newcomer's own client when it is at its cap, else from the
        // client holding the most connections that has an idle one.
        let own = state.per_client.get(&client).copied().unwrap_or(0)
            + state.reserved_by.get(&client).copied().unwrap_or(0);
        let own_full = own >= self.shared.max_per_client;
        let idle = |entry: &Entry| entry.handoff.is_none() && entry.busy.is_idle();
        let victim = state
            .open
            .iter()
            .filter(|(_, entry)| idle(entry) && (!own_full || entry.client == client))
            .max_by_key(|(id, entry)| {
                let holds = state.per_client.get(&entry.client).copied().unwrap_or(0);
                // The most connections first, then the oldest.
                (holds, std::cmp::Reverse(**id))
            })
            .map(|(id, _)| *id);
        let Some(entry) = victim.and_then(|id| state.open.get_mut(&id)) else {
            return Admission::Refused(Refused::AllBusy);
        };
        let (handoff, room) = oneshot::channel();
        entry.handoff = Some(handoff);
        entry.drain.notify_one();
        state.reserved += 1;
        *state.reserved_by.entry(client).or_default() += 1;
        Admission::Reserved(Reservation {
            connections: self.clone(),
            client,
            room,
            settled: false,
        })
    }

    /// Resolves once fewer newcomers wait for room than may; the accept loop waits for this
    /// before taking more connections, so that a flood of them waits in the listen backlog (and
    /// the prober's turn comes) rather than being refused.
    pub(super) async fn until_uncrowded(&self) {
        loop {
            let mut returned = pin!(self.shared.reservation_returned.notified());
            returned.as_mut().enable();
            if self.lock().reserved < MAX_WAITING {
                return;
            }
            returned.await;
        }
    }

    fn insert(&self, state: &mut State, client: ClientKey) -> Slot {
        let id = state.next_id;
        state.next_id += 1;
        let busy = Busy::default();
        let drain = Arc::new(Notify::new());
        state.open.insert(
            id,
            Entry {
                client,
                busy: busy.clone(),
                drain: Arc::clone(&drain),
                handoff: None,
            },
        );
        *state.per_client.entry(client).or_default() += 1;
        Slot {
            shared: Arc::clone(&self.shared),
            id,
            busy,
            drain,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What becomes of a newcomer.
pub(super) enum Admission {
    Now(Slot),
    /// Room is being made for it: wait for it with [`Reservation::wait`].
    Reserved(Reservation),
    Refused(Refused),
}

/// Room reserved for a newcomer while an idle connection closes for it; returned if dropped.
pub(super) struct Reservation {
    connections: Connections,
    client: ClientKey,
    /// Told when the connection closing for it is gone.
    room: oneshot::Receiver<()>,
    settled: bool,
}

impl Reservation {
    /// The slot, once the connection closing for it is gone (within `wait`).
    pub(super) async fn wait(mut self, wait: Duration) -> Result<Slot, Refused> {
        match tokio::time::timeout(wait, &mut self.room).await {
            Ok(Ok(())) => {
                let connections = self.connections.clone();
                let mut state = connections.lock();
                unreserve(&mut state, self.client);
                self.settled = true;
                let slot = connections.insert(&mut state, self.client);
                drop(state);
                connections.shared.reservation_returned.notify_waiters();
                Ok(slot)
            }
            // Dropping `self` returns the reservation.
            _ => Err(Refused::NoRoomInTime),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            unreserve(&mut self.connections.lock(), self.client);
            self.connections
                .shared
                .reservation_returned
                .notify_waiters();
        }
    }
}

/// Returns a waiting newcomer's reservation (the caller wakes `reservation_returned`).
fn unreserve(state: &mut State, client: ClientKey) {
    state.reserved -= 1;
    if let Some(count) = state.reserved_by.get_mut(&client) {
        *count -= 1;
        if *count == 0 {
            state.reserved_by.remove(&client);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = state.open.remove(&self.id) else {
            return;
        };
        if let Some(count) = state.per_client.get_mut(&entry.client) {
            *count -= 1;
            if *count == 0 {
                state.per_client.remove(&entry.client);
            }
        }
        // Its room is the newcomer's it closed for (if that one still waits).
        if let Some(handoff) = entry.handoff {
            let _ = handoff.send(());
        }
    }
}

/// Counts a request as in progress on its connection from when it reaches the router until its
/// response body is sent or dropped, so an idle connection can be told from a busy one.
pub(super) async fn mark_busy(mut request: Request, next: Next) -> Response {
    let Some(busy) = request.extensions().get::<Busy>().cloned() else {
        return next.run(request).await;
    };
    busy.0.in_progress.fetch_add(1, Ordering::AcqRel);
    let hold = BusyHold(Arc::new(Mutex::new(Some(BusyGuard(busy)))));
    request.extensions_mut().insert(hold.clone());
    let response = next.run(request).await;
    response.map(|inner| Body::new(WhileSending { inner, _hold: hold }))
}

/// A request's part in its connection's busy count, in the request's extensions.
#[derive(Clone)]
pub(super) struct BusyHold(Arc<Mutex<Option<BusyGuard>>>);

/// For routes whose requests mostly wait (a long poll, a stream of events): their connections
/// count as idle, so one may be closed to make room at a cap like a connection that waits
/// for a request (its client asks again). Otherwise a client could hold every connection
/// with requests that cost it nothing.
pub async fn idle_while_waiting(request: Request, next: Next) -> Response {
    if let Some(BusyHold(hold)) = request.extensions().get::<BusyHold>() {
        hold.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
    next.run(request).await
}

struct BusyGuard(Busy);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.0.answered.fetch_add(1, Ordering::AcqRel);
        self.0.0.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection counted busy until it is dropped.
struct WhileSending {
    inner: Body,
    _hold: BusyHold,
}

impl HttpBody for WhileSending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
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
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_their_64_prefix_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(ClientKey::of(mapped), ClientKey::of(v4));
    }

    #[test]
    fn at_the_cap_the_busiest_clients_oldest_idle_connection_makes_room() {
        let connections = Connections::new(3, 3);
        let key = |n: u8| ClientKey::of(IpAddr::from([10, 0, 0, n]));
        let admitted = |client| match connections.admit(client) {
            Admission::Now(slot) => slot,
            _ => panic!("no room"),
        };
        let first = admitted(key(1));
        let second = admitted(key(2));
        let third = admitted(key(2));
        third.busy.0.in_progress.fetch_add(1, Ordering::AcqRel);
        // Client 2 holds the most, and its idle one is asked to close, not client 1's.
        let waiting = connections.admit(key(3));
        assert!(matches!(waiting, Admission::Reserved(_)));
        let drained = |slot: &Slot| {
            let notified = slot.drain.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable()
        };
        assert!(drained(&second));
        assert!(!drained(&first));
        // Once that one is asked, client 1's is next; then nothing idle is left.
        let also_waiting = connections.admit(key(3));
        assert!(matches!(also_waiting, Admission::Reserved(_)));
        assert!(drained(&first));
        assert!(matches!(
            connections.admit(key(3)),
            Admission::Refused(Refused::AllBusy)
        ));
        // The room closed for the waiting newcomers is theirs: nobody else takes it...
        drop((first, second));
        assert!(matches!(
            connections.admit(key(4)),
            Admission::Refused(Refused::AllBusy)
        ));
        // ...until they give it back.
        drop((waiting, also_waiting));
        assert!(matches!(connections.admit(key(4)), Admission::Now(_)));
    }
}
