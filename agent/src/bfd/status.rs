//! Live status of one BFD session, written by the BFD thread and read by
//! the daemon's main task for `steer show bfd`, the BFD column of `steer
//! show peers` and the metrics: the session's [`SessionView`], since when
//! it is in its state, and packet counters.

use super::packet::State;
use super::session::SessionView;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How a session reaches its peer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Path {
    /// The peer's address.
    pub remote: IpAddr,
    /// Our source address, when one is set.
    pub local: Option<IpAddr>,
    /// RFC 5883 multihop (UDP 4784) rather than RFC 5881 single hop (3784).
    pub multihop: bool,
    /// The lowest TTL accepted (255 on single hop).
    pub min_ttl: u8,
    /// Our UDP source port (49152–65535, RFC 5881 §4).
    pub source_port: u16,
}

#[derive(Debug)]
struct Inner {
    view: SessionView,
    path: Path,
    since: Instant,
    since_wall: SystemTime,
    packets_in: u64,
    packets_out: u64,
    discarded: u64,
    last_discard: Option<String>,
    send_errors: u64,
    last_send_error: Option<String>,
    last_rx: Option<Instant>,
    rx_gap_max: Duration,
    timer_late_max: Duration,
}

/// The status of one session.
#[derive(Debug)]
pub struct BfdStatus {
    inner: Mutex<Inner>,
}

/// A point-in-time copy, the `steer show bfd --json` record of a session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BfdSnapshot {
    /// The session's state machine.
    #[serde(flatten)]
    pub session: SessionView,
    /// How it reaches the peer.
    #[serde(flatten)]
    pub path: Path,
    /// Seconds in the current state.
    pub state_seconds: u64,
    /// When the current state was entered (seconds since the Unix epoch).
    pub state_since_unix: u64,
    /// Control packets accepted.
    pub packets_in: u64,
    /// Control packets sent.
    pub packets_out: u64,
    /// Packets from this peer that failed a reception check.
    pub discarded: u64,
    /// The last such check, in words.
    pub last_discard: Option<String>,
    /// Packets the kernel refused to send.
    pub send_errors: u64,
    /// The last send error.
    pub last_send_error: Option<String>,
    /// The longest time between two accepted packets while the session
    /// was Up (µs): how close the peer came to the Detection Time.
    pub rx_gap_max_us: u64,
    /// The latest a timer of this session fired after its deadline (µs):
    /// how late the BFD thread ran.
    pub timer_late_max_us: u64,
}

impl BfdStatus {
    /// A status for a new session.
    pub fn new(view: SessionView, path: Path) -> BfdStatus {
        BfdStatus {
            inner: Mutex::new(Inner {
                view,
                path,
                since: Instant::now(),
                since_wall: SystemTime::now(),
                packets_in: 0,
                packets_out: 0,
                discarded: 0,
                last_discard: None,
                send_errors: 0,
                last_send_error: None,
                last_rx: None,
                rx_gap_max: Duration::ZERO,
                timer_late_max: Duration::ZERO,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Record the session's current view (restarting the state clock when
    /// the state changed).
    pub fn set_view(&self, view: SessionView) {
        self.with(|i| {
            if i.view.state != view.state {
                i.since = Instant::now();
                i.since_wall = SystemTime::now();
            }
            i.view = view;
        });
    }

    /// Count packets sent.
    pub fn sent(&self, n: u64) {
        self.with(|i| i.packets_out += n);
    }

    /// An accepted packet arrived at `at`; `up` says the session was Up
    /// before it (the gap counts only then).
    pub fn received(&self, at: Instant, up: bool) {
        self.with(|i| {
            i.packets_in += 1;
            if let Some(last) = i.last_rx
                && up
            {
                i.rx_gap_max = i.rx_gap_max.max(at.saturating_duration_since(last));
            }
            i.last_rx = Some(at);
        });
    }

    /// A timer due at `due` fired at `now`.
    pub fn timer_fired(&self, due: Instant, now: Instant) {
        self.with(|i| i.timer_late_max = i.timer_late_max.max(now.saturating_duration_since(due)));
    }

    /// Count a discarded packet.
    pub fn discarded(&self, why: String) {
        self.with(|i| {
            i.discarded += 1;
            i.last_discard = Some(why);
        });
    }

    /// Count a failed send.
    pub fn send_failed(&self, why: String) {
        self.with(|i| {
            i.send_errors += 1;
            i.last_send_error = Some(why);
        });
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.with(|i| i.view.state)
    }

    /// A copy for display.
    pub fn snapshot(&self) -> BfdSnapshot {
        self.with(|i| BfdSnapshot {
            session: i.view.clone(),
            path: i.path.clone(),
            state_seconds: i.since.elapsed().as_secs(),
            state_since_unix: i
                .since_wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            packets_in: i.packets_in,
            packets_out: i.packets_out,
            discarded: i.discarded,
            last_discard: i.last_discard.clone(),
            send_errors: i.send_errors,
            last_send_error: i.last_send_error.clone(),
            rx_gap_max_us: i.rx_gap_max.as_micros() as u64,
            timer_late_max_us: i.timer_late_max.as_micros() as u64,
        })
    }
}
