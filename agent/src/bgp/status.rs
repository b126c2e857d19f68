//! Live per-session status shared between a session driver (writer) and
//! the control socket (reader): state, uptime, counters, last error, and
//! what was negotiated, and the depth of the send queue. `steer show peers`
//! renders a [`StatusSnapshot`].

use super::fsm::State;
use super::negotiate::Negotiated;
use super::sendq::{QueueStats, SendQueue};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

#[derive(Debug)]
struct Inner {
    state: State,
    since: Instant,
    since_wall: SystemTime,
    last_error: Option<String>,
    negotiated: Option<Negotiated>,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    established_count: u64,
    queue: Option<Arc<SendQueue>>,
}

/// Status of one session, updated by its driver.
#[derive(Debug)]
pub struct PeerStatus {
    inner: Mutex<Inner>,
    /// Messages received.
    pub msgs_in: AtomicU64,
    /// Messages sent.
    pub msgs_out: AtomicU64,
    /// UPDATEs received.
    pub updates_in: AtomicU64,
    /// UPDATEs sent.
    pub updates_out: AtomicU64,
    /// Sessions ended because the peer took nothing for the send-hold time.
    pub send_hold_expiries: AtomicU64,
    /// Sessions ended because the send queue exceeded its limit.
    pub queue_overflows: AtomicU64,
}

impl Default for PeerStatus {
    fn default() -> Self {
        PeerStatus {
            inner: Mutex::new(Inner {
                state: State::Idle,
                since: Instant::now(),
                since_wall: SystemTime::now(),
                last_error: None,
                negotiated: None,
                local: None,
                remote: None,
                established_count: 0,
                queue: None,
            }),
            msgs_in: AtomicU64::new(0),
            msgs_out: AtomicU64::new(0),
            updates_in: AtomicU64::new(0),
            updates_out: AtomicU64::new(0),
            send_hold_expiries: AtomicU64::new(0),
            queue_overflows: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of a session's status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusSnapshot {
    /// FSM state.
    pub state: State,
    /// Seconds in this state.
    pub state_seconds: u64,
    /// When the state was entered (seconds since the Unix epoch).
    pub state_since_unix: u64,
    /// Why the last session ended or the last connect failed.
    pub last_error: Option<String>,
    /// Negotiated parameters while established.
    pub negotiated: Option<Negotiated>,
    /// Our address on the session.
    #[serde(serialize_with = "crate::util::ser_opt_display")]
    pub local: Option<SocketAddr>,
    /// The peer's address on the session.
    #[serde(serialize_with = "crate::util::ser_opt_display")]
    pub remote: Option<SocketAddr>,
    /// Times the session reached Established.
    pub established_count: u64,
    /// Messages received.
    pub msgs_in: u64,
    /// Messages sent.
    pub msgs_out: u64,
    /// UPDATEs received.
    pub updates_in: u64,
    /// UPDATEs sent.
    pub updates_out: u64,
    /// What waits in the send queue (zero when not established).
    pub send_queue: QueueStats,
    /// Sessions ended by the send-hold timer (RFC 9687).
    pub send_hold_expiries: u64,
    /// Sessions ended by the send queue's limit (Cease/8).
    pub queue_overflows: u64,
}

impl PeerStatus {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Record a state change.
    pub fn set_state(&self, state: State) {
        self.with(|i| {
            if i.state != state {
                i.state = state;
                i.since = Instant::now();
                i.since_wall = SystemTime::now();
                if state == State::Established {
                    i.established_count += 1;
                }
                if state != State::Established && state != State::OpenConfirm {
                    i.negotiated = None;
                }
                if state != State::Established {
                    i.queue = None;
                }
            }
        });
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.with(|i| i.state)
    }

    /// Record an error for `show peers`.
    pub fn set_error(&self, e: impl Into<String>) {
        let e = e.into();
        self.with(|i| i.last_error = Some(e));
    }

    /// Record what the session negotiated, its addresses and its send
    /// queue.
    pub fn set_established(
        &self,
        n: Negotiated,
        local: SocketAddr,
        remote: SocketAddr,
        queue: Option<Arc<SendQueue>>,
    ) {
        self.with(|i| {
            i.negotiated = Some(n);
            i.local = Some(local);
            i.remote = Some(remote);
            i.queue = queue;
        });
    }

    /// Count messages sent.
    pub fn sent(&self, msgs: u64, updates: u64) {
        self.msgs_out.fetch_add(msgs, Ordering::Relaxed);
        self.updates_out.fetch_add(updates, Ordering::Relaxed);
    }

    /// A copy for display.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.with(|i| StatusSnapshot {
            state: i.state,
            state_seconds: i.since.elapsed().as_secs(),
            state_since_unix: i
                .since_wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            last_error: i.last_error.clone(),
            negotiated: i.negotiated.clone(),
            local: i.local,
            remote: i.remote,
            established_count: i.established_count,
            msgs_in: self.msgs_in.load(Ordering::Relaxed),
            msgs_out: self.msgs_out.load(Ordering::Relaxed),
            updates_in: self.updates_in.load(Ordering::Relaxed),
            updates_out: self.updates_out.load(Ordering::Relaxed),
            send_queue: i
                .queue
                .as_ref()
                .map(|q| q.stats(Instant::now()))
                .unwrap_or_default(),
            send_hold_expiries: self.send_hold_expiries.load(Ordering::Relaxed),
            queue_overflows: self.queue_overflows.load(Ordering::Relaxed),
        })
    }
}
