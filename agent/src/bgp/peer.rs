//! What a session and its owner (the server's RIB, or the agent) say to
//! each other: the owner's [`SessionCommand`]s, the session's
//! [`SessionEvent`]s tagged as [`PeerMsg`]s, and the [`Outbound`] handle the
//! owner writes pre-encoded UPDATEs to (the connection's bounded
//! [`SendQueue`]). A leaf below both: the RIB and the
//! roles name sessions and queue messages through these types without
//! depending on the tokio driver in `session.rs`.

use super::error::Notification;
use super::fsm::DownReason;
use super::negotiate::Negotiated;
use super::nlri::Family;
use super::routes::RouteBatch;
use super::sendq::{Push, SendQueue};
use super::status::PeerStatus;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A session's identity inside one daemon.
pub type PeerId = u32;

/// Commands from the owner.
#[derive(Debug)]
pub enum SessionCommand {
    /// Administrative stop: send the NOTIFICATION and end the task.
    Stop(Notification),
    /// End the session with the NOTIFICATION, refuse the peer for the given
    /// time, then start again (max-prefix).
    StopFor(Notification, Duration),
    /// A connection the listener accepted from this peer.
    Incoming(TcpStream),
    /// End the session with the NOTIFICATION and stay down, neither
    /// connecting nor accepting, until [`SessionCommand::Release`] (BFD
    /// Down, RFC 5882 §3.2).
    Hold(Notification),
    /// Start again after [`SessionCommand::Hold`].
    Release,
}

/// Where the owner writes pre-encoded messages for an established session.
#[derive(Clone, Debug)]
pub struct Outbound {
    sink: Sink,
    status: Arc<PeerStatus>,
}

#[derive(Clone, Debug)]
enum Sink {
    Queue(Arc<SendQueue>),
    Channel(mpsc::UnboundedSender<Bytes>),
}

impl Outbound {
    /// The send queue of a live connection.
    pub fn queue(q: Arc<SendQueue>, status: Arc<PeerStatus>) -> Outbound {
        Outbound {
            sink: Sink::Queue(q),
            status,
        }
    }

    /// A channel the caller reads (unit tests and the fuzzer decode what a
    /// member would receive from it).
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, status: Arc<PeerStatus>) -> Outbound {
        Outbound {
            sink: Sink::Channel(tx),
            status,
        }
    }

    /// Queue `bytes` holding `updates` UPDATE messages; false when the
    /// session has gone or its queue refused them (over its limit: the
    /// session then ends with Cease/8).
    pub fn send(&self, bytes: Bytes, updates: u64) -> bool {
        let ok = match &self.sink {
            Sink::Queue(q) => matches!(q.push(bytes, updates, Instant::now()), Push::Queued { .. }),
            Sink::Channel(tx) => tx.send(bytes).is_ok(),
        };
        if ok {
            self.status.sent(updates, updates);
        }
        ok
    }
}

/// An established session, as announced to the owner.
#[derive(Debug)]
pub struct Established {
    /// What the OPENs negotiated.
    pub negotiated: Negotiated,
    /// Our address on the connection.
    pub local: SocketAddr,
    /// The peer's address on the connection.
    pub remote: SocketAddr,
    /// The send queue.
    pub out: Outbound,
}

/// What a session tells its owner.
#[derive(Debug)]
pub enum SessionEvent {
    /// The session reached Established; a new epoch begins.
    Established(Box<Established>),
    /// Routes from UPDATEs, in order.
    Routes(Vec<RouteBatch>),
    /// End-of-RIB for a family.
    EndOfRib(Family),
    /// The peer asked for a family again (RFC 2918).
    RouteRefresh(Family),
    /// The established session ended.
    Down {
        /// Why.
        reason: DownReason,
    },
}

/// A session event tagged with its session and epoch, so that an owner can
/// ignore what a superseded session still had in flight.
#[derive(Debug)]
pub struct PeerMsg {
    /// Which session.
    pub peer: PeerId,
    /// Which establishment of it.
    pub epoch: u64,
    /// What happened.
    pub event: SessionEvent,
}

/// Paths the sessions of a daemon have handed to its owner and the owner
/// has not applied yet. Sessions stop reading their sockets while it is
/// over its limit, so a burst from many peers waits in their TCP windows
/// (as BIRD's reads do behind its event loop) instead of as decoded UPDATEs
/// in memory.
#[derive(Debug)]
pub struct Backlog {
    paths: std::sync::atomic::AtomicUsize,
    limit: usize,
    resumed: tokio::sync::Notify,
}

impl Backlog {
    /// A backlog that pauses reading above `limit` paths.
    pub fn new(limit: usize) -> std::sync::Arc<Backlog> {
        std::sync::Arc::new(Backlog {
            paths: std::sync::atomic::AtomicUsize::new(0),
            limit,
            resumed: tokio::sync::Notify::new(),
        })
    }

    /// `n` more paths are on their way to the owner.
    pub fn add(&self, n: usize) {
        self.paths
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The owner applied `n` paths.
    pub fn done(&self, n: usize) {
        let before = self
            .paths
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        if before > self.limit && before - n <= self.limit {
            self.resumed.notify_waiters();
        }
    }

    /// True while sessions should not read.
    pub fn over(&self) -> bool {
        self.paths.load(std::sync::atomic::Ordering::Relaxed) > self.limit
    }

    /// Returns once the backlog is at or below its limit.
    pub async fn wait(&self) {
        loop {
            let resumed = self.resumed.notified();
            if !self.over() {
                return;
            }
            resumed.await;
        }
    }
}

/// Paths (announced and withdrawn) in a session event, as the backlog
/// counts them.
pub fn event_paths(e: &SessionEvent) -> usize {
    match e {
        SessionEvent::Routes(b) => b.iter().map(|b| b.announce.len() + b.withdraw.len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_backlog_pauses_above_its_limit_and_wakes_waiters_once_below() {
        let b = Backlog::new(10);
        b.add(10);
        assert!(!b.over(), "at the limit, reading goes on");
        b.add(5);
        assert!(b.over());
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.wait().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        b.done(3);
        tokio::task::yield_now().await;
        assert!(b.over() && !waiter.is_finished(), "12 is still over 10");
        b.done(2);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(!b.over());
        b.wait().await;
    }
}
