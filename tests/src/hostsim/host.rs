//! One simulated host's BGP session as `steer agent` runs it with a route
//! server (RFC 4271 §8 as the agent's FSM behaves, seen from the wire): it
//! connects from its own address, sends the agent's OPEN (the
//! capabilities `steer_lib::agent::daemon::capabilities` builds: IPv4 and
//! IPv6 unicast, route refresh, 4-octet AS, extended messages, ADD-PATH
//! receive, graceful restart), checks and negotiates the route server's
//! OPEN with Steer's own code, confirms with KEEPALIVE, sends End-of-RIB
//! for each negotiated family once Established (an agent without VM
//! prefixes), keeps the hold and keepalive timers, and after a lost
//! session starts again after the agent's connect-retry backoff. State is
//! a few hundred bytes; the bytes read live in the simulator's one buffer.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use steer_lib::bgp::capability::Capability;
use steer_lib::bgp::error::Notification;
use steer_lib::bgp::iana::{FsmSubcode, MessageType, NotificationError, OpenSubcode};
use steer_lib::bgp::message::{CodecConfig, Message, Open, decode, encode_end_of_rib, frame_len};
use steer_lib::bgp::negotiate::negotiate;
use steer_lib::bgp::nlri::Family;

use super::routes::{Held, Routes};

/// How the hosts' sessions are set up: the agent's configuration.
#[derive(Clone, Debug)]
pub struct Agent {
    /// The AS of hosts and route server (iBGP).
    pub asn: u32,
    /// Proposed hold time (s).
    pub hold_time: u16,
    /// Keepalive interval (s), capped at a third of the negotiated hold time.
    pub keepalive: u16,
    /// The capabilities every host sends.
    pub capabilities: Vec<Capability>,
    /// First connect-retry delay (ns), doubling per failure.
    pub retry_ns: u64,
    /// Longest connect-retry delay (ns).
    pub retry_max_ns: u64,
}

/// Where one host's session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not connected and not trying (before the first connect, or
    /// dropped on purpose).
    Idle,
    /// Waiting to be connected by the simulator's pacing.
    Queued,
    /// TCP connect in progress.
    Connecting,
    /// OPEN sent, waiting for the route server's.
    OpenSent,
    /// OPENs exchanged, waiting for KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
    /// The session was lost; connecting again at the retry deadline.
    Retry,
}

const NS: u64 = 1_000_000_000;
/// The agent's connect timeout.
const CONNECT_TIMEOUT_NS: u64 = 10 * NS;
/// RFC 4271 §8: the hold timer while waiting for the OPEN.
const OPEN_HOLD_NS: u64 = 240 * NS;

/// One simulated host.
pub struct Host {
    /// Its address (source of the session, BGP identifier).
    pub addr: Ipv4Addr,
    /// Where its session is.
    pub state: State,
    fd: Option<OwnedFd>,
    codec: CodecConfig,
    families: u8,
    hold_ns: u64,
    keepalive_ns: u64,
    /// State deadline: connect timeout, or when to retry.
    deadline: u64,
    next_keepalive: u64,
    last_rx: u64,
    partial: Vec<u8>,
    pending: Vec<u8>,
    /// What it holds.
    pub held: Held,
    /// When its current session was Established (ns since the simulator's
    /// start; 0: not).
    pub established_at: u64,
    /// When it first held the phase's target (0: not yet).
    pub reached_at: u64,
    /// Sessions lost after Established.
    pub downs: u32,
    /// Connections that failed before Established.
    pub setup_failures: u32,
    failures: u32,
    /// Why its last session or attempt ended.
    pub last_error: Option<Box<str>>,
    /// The poller watches its socket for writing.
    pub watching_write: bool,
    rng: u32,
}

/// What the simulator must do after a host handled an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The session reached Established.
    Established,
    /// The session ended (it was Established when `was_established`).
    Down {
        /// It had been Established.
        was_established: bool,
    },
}

/// What processing one read's messages gave.
#[derive(Debug, Default)]
pub struct Read {
    /// Bytes consumed.
    pub used: usize,
    /// UPDATE messages applied.
    pub updates: u32,
    /// The session changed state.
    pub outcome: Option<Outcome>,
}

fn jitter(rng: &mut u32, ns: u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    ns - ns / 4 * u64::from(*rng % 1000) / 1000
}

impl Host {
    /// A host at `addr`, idle.
    pub fn new(addr: Ipv4Addr) -> Host {
        Host {
            addr,
            state: State::Idle,
            fd: None,
            codec: CodecConfig::default(),
            families: 0,
            hold_ns: 0,
            keepalive_ns: 0,
            deadline: 0,
            next_keepalive: 0,
            last_rx: 0,
            partial: Vec::new(),
            pending: Vec::new(),
            held: Held::default(),
            established_at: 0,
            reached_at: 0,
            downs: 0,
            setup_failures: 0,
            failures: 0,
            last_error: None,
            watching_write: false,
            rng: u32::from(addr) | 1,
        }
    }

    /// The socket, while connected or connecting.
    pub fn fd(&self) -> Option<i32> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Bytes of heap this host holds.
    pub fn heap_bytes(&self) -> usize {
        self.held.bytes() + self.partial.capacity() + self.pending.capacity()
    }

    /// The negotiated codec (what the route server's UPDATEs are read with).
    pub fn codec(&self) -> &CodecConfig {
        &self.codec
    }

    /// A connect was started on `fd`.
    pub fn connecting(&mut self, fd: OwnedFd, now: u64) {
        self.fd = Some(fd);
        self.state = State::Connecting;
        self.deadline = now + CONNECT_TIMEOUT_NS;
    }

    /// A connect could not even start.
    pub fn connect_failed(&mut self, agent: &Agent, e: &std::io::Error, now: u64) {
        self.setup_failures += 1;
        self.retry(agent, format!("connect: {e}"), now);
    }

    /// Ends the connection (if any) and goes idle without retrying: the
    /// host is down until asked to connect again.
    pub fn stop(&mut self) -> bool {
        let was = self.state == State::Established;
        self.close();
        self.state = State::Idle;
        was
    }

    fn close(&mut self) {
        self.fd = None;
        self.watching_write = false;
        self.partial = Vec::new();
        self.pending = Vec::new();
        self.codec = CodecConfig::default();
        self.established_at = 0;
        self.held.reset();
    }

    fn retry(&mut self, agent: &Agent, why: String, now: u64) {
        self.close();
        self.failures = self.failures.saturating_add(1);
        let shift = (self.failures - 1).min(16);
        let delay = agent
            .retry_ns
            .saturating_mul(1 << shift)
            .min(agent.retry_max_ns);
        self.deadline = now + jitter(&mut self.rng, delay);
        self.state = State::Retry;
        self.last_error = Some(why.into());
    }

    fn down(&mut self, agent: &Agent, why: String, now: u64) -> Outcome {
        let was_established = self.state == State::Established;
        if was_established {
            self.downs += 1;
        } else {
            self.setup_failures += 1;
        }
        self.retry(agent, why, now);
        Outcome::Down { was_established }
    }

    /// Queues `bytes` and writes what the socket takes now.
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(fd) = self.fd() else { return Ok(()) };
        if self.pending.is_empty() {
            let n = match super::poller::write(fd, bytes) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            self.pending.extend_from_slice(&bytes[n..]);
        } else {
            self.pending.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn send_message(&mut self, m: &Message) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(64);
        if let Err(e) = m.encode(&self.codec, &mut out) {
            return Err(std::io::Error::other(e.to_string()));
        }
        self.send(&out)
    }

    /// True while bytes wait for the socket (watch it for writing).
    pub fn wants_write(&self) -> bool {
        !self.pending.is_empty() || self.state == State::Connecting
    }

    /// The socket is writable: finish a connect, or flush what waits.
    pub fn on_writable(&mut self, agent: &Agent, now: u64) -> Option<Outcome> {
        let fd = self.fd()?;
        if self.state == State::Connecting {
            if let Err(e) = super::poller::take_error(fd) {
                self.setup_failures += 1;
                self.retry(agent, format!("connect: {e}"), now);
                return Some(Outcome::Down {
                    was_established: false,
                });
            }
            self.state = State::OpenSent;
            self.last_rx = now;
            let open = Open::new(
                agent.asn,
                agent.hold_time,
                self.addr,
                agent.capabilities.clone(),
            );
            if let Err(e) = self.send_message(&Message::Open(open)) {
                return Some(self.down(agent, format!("sending OPEN: {e}"), now));
            }
            return None;
        }
        if !self.pending.is_empty() {
            match super::poller::write(fd, &self.pending) {
                Ok(n) => drop(self.pending.drain(..n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(self.down(agent, format!("write: {e}"), now)),
            }
            if self.pending.is_empty() {
                self.pending = Vec::new();
            }
        }
        None
    }

    /// Moves the bytes kept from the last read to the front of `buf`;
    /// returns how many.
    pub fn take_partial(&mut self, buf: &mut [u8]) -> usize {
        let n = self.partial.len();
        buf[..n].copy_from_slice(&self.partial);
        self.partial = Vec::new();
        n
    }

    /// Keeps the unprocessed tail of a read for the next one.
    pub fn keep_partial(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.partial = rest.to_vec();
        }
    }

    /// The connection closed or failed while reading.
    pub fn read_failed(&mut self, agent: &Agent, why: String, now: u64) -> Outcome {
        self.down(agent, why, now)
    }

    /// Processes the whole messages at the front of `data` (what was kept
    /// plus what was read); the caller keeps `data[used..]`.
    pub fn process(
        &mut self,
        data: &[u8],
        agent: &Agent,
        routes: &mut Routes,
        mut witness: Option<&mut super::Witness>,
        now: u64,
    ) -> Read {
        let mut r = Read::default();
        self.last_rx = now;
        while !matches!(r.outcome, Some(Outcome::Down { .. })) {
            let rest = &data[r.used..];
            let len = match frame_len(rest, &self.codec) {
                Ok(Some(n)) if rest.len() >= n => n,
                Ok(_) => break,
                Err(e) => {
                    let _ = self.send_message(&Message::Notification(e.notification.clone()));
                    r.outcome = Some(self.down(agent, format!("sent {e}"), now));
                    break;
                }
            };
            let msg = &rest[..len];
            r.used += len;
            if msg[18] == u8::from(MessageType::Update) && self.state == State::Established {
                match routes.effect(msg, &self.codec) {
                    Ok(e) => self.held.apply(&e),
                    Err(e) => {
                        r.outcome = Some(self.down(agent, format!("bad UPDATE: {e}"), now));
                        break;
                    }
                }
                if let Some(w) = witness.as_deref_mut() {
                    w.apply(&msg[19..], self.codec.add_path_receive[0]);
                }
                r.updates += 1;
                continue;
            }
            if let Some(o) = self.message(msg, agent, now) {
                r.outcome = Some(o);
            }
        }
        r
    }

    fn message(&mut self, msg: &[u8], agent: &Agent, now: u64) -> Option<Outcome> {
        let m = match decode(msg, &self.codec) {
            Ok(m) => m,
            Err(e) => {
                let _ = self.send_message(&Message::Notification(e.notification.clone()));
                return Some(self.down(agent, format!("sent {e}"), now));
            }
        };
        match (self.state, m) {
            (_, Message::Notification(n)) => Some(self.down(agent, format!("received {n}"), now)),
            (State::OpenSent, Message::Open(o)) => self.open(o, agent, now),
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.established_at = now;
                self.failures = 0;
                let mut eor = Vec::new();
                for (bit, f) in [(1, Family::IPV4_UNICAST), (2, Family::IPV6_UNICAST)] {
                    if self.families & bit != 0 {
                        encode_end_of_rib(f, &mut eor);
                    }
                }
                if let Err(e) = self.send(&eor) {
                    return Some(self.down(agent, format!("sending End-of-RIB: {e}"), now));
                }
                Some(Outcome::Established)
            }
            (State::Established, Message::Keepalive | Message::RouteRefresh(_)) => None,
            (state, m) => {
                let subcode = match state {
                    State::OpenSent => FsmSubcode::UnexpectedInOpenSent,
                    State::OpenConfirm => FsmSubcode::UnexpectedInOpenConfirm,
                    _ => FsmSubcode::UnexpectedInEstablished,
                };
                let n = Notification::from(subcode);
                let _ = self.send_message(&Message::Notification(n));
                Some(self.down(agent, format!("unexpected {m:?} in {state:?}"), now))
            }
        }
    }

    fn open(&mut self, theirs: Open, agent: &Agent, now: u64) -> Option<Outcome> {
        let refuse = if theirs.asn() != agent.asn {
            Some(Notification::error(
                OpenSubcode::BadPeerAs,
                theirs.my_as.to_be_bytes().to_vec(),
            ))
        } else if theirs.router_id == self.addr {
            Some(OpenSubcode::BadBgpId.into())
        } else if theirs.hold_time != 0 && theirs.hold_time < 3 {
            Some(OpenSubcode::UnacceptableHoldTime.into())
        } else {
            None
        };
        if let Some(n) = refuse {
            let _ = self.send_message(&Message::Notification(n.clone()));
            return Some(self.down(agent, format!("sent {n}"), now));
        }
        let ours = Open::new(
            agent.asn,
            agent.hold_time,
            self.addr,
            agent.capabilities.clone(),
        );
        let n = negotiate(&ours, &theirs, false);
        self.codec = n.codec;
        self.families = n
            .families
            .iter()
            .map(|f| match *f {
                Family::IPV4_UNICAST => 1,
                Family::IPV6_UNICAST => 2,
                _ => 0,
            })
            .fold(0, |a, b| a | b);
        self.hold_ns = u64::from(n.hold_time) * NS;
        self.keepalive_ns = if n.hold_time == 0 {
            0
        } else {
            u64::from(agent.keepalive.min(n.hold_time / 3).max(1)) * NS
        };
        if let Err(e) = self.send_message(&Message::Keepalive) {
            return Some(self.down(agent, format!("sending KEEPALIVE: {e}"), now));
        }
        self.next_keepalive = now + jitter(&mut self.rng, self.keepalive_ns);
        self.state = State::OpenConfirm;
        None
    }

    /// Runs the timers due at `now`: connect timeout, retry, hold and
    /// keepalive. `Some(true)` asks the simulator to connect this host.
    pub fn tick(&mut self, agent: &Agent, now: u64) -> (Option<Outcome>, bool) {
        match self.state {
            State::Connecting if now >= self.deadline => {
                self.setup_failures += 1;
                self.retry(agent, "connect timed out".into(), now);
                (
                    Some(Outcome::Down {
                        was_established: false,
                    }),
                    false,
                )
            }
            State::Retry if now >= self.deadline => (None, true),
            State::OpenSent if now > self.last_rx + OPEN_HOLD_NS => {
                (Some(self.hold_expired(agent, now)), false)
            }
            State::OpenConfirm | State::Established => {
                if self.hold_ns > 0 && now > self.last_rx + self.hold_ns {
                    return (Some(self.hold_expired(agent, now)), false);
                }
                if self.keepalive_ns > 0 && now >= self.next_keepalive {
                    self.next_keepalive = now + jitter(&mut self.rng, self.keepalive_ns);
                    if let Err(e) = self.send_message(&Message::Keepalive) {
                        return (
                            Some(self.down(agent, format!("sending KEEPALIVE: {e}"), now)),
                            false,
                        );
                    }
                }
                (None, false)
            }
            _ => (None, false),
        }
    }

    fn hold_expired(&mut self, agent: &Agent, now: u64) -> Outcome {
        let n = Notification::from(NotificationError::HoldTimerExpired);
        let _ = self.send_message(&Message::Notification(n.clone()));
        self.down(agent, format!("sent {n}"), now)
    }
}
