//! The BGP session finite state machine (RFC 4271 §8) as pure code:
//! [`Fsm::process`] takes one [`Input`] and returns the [`Output`]s the
//! driver must carry out (connect, send, arm timers, deliver routes). No
//! sockets, no clocks: every event and action is a value, so every path is
//! unit-tested. Each input names the RFC 4271 §8.1 event it stands for.
//!
//! The send-hold timer of RFC 9687 runs in the driver, which sees the
//! socket make progress or not; its expiry (Event 29) and an overflowing
//! send queue come in as inputs and end the session with
//! [`Output::Abort`]: the NOTIFICATION is best effort and nothing queued
//! is drained.
//!
//! Deviations, all permitted by §8.1.1 optional attributes: connect-retry
//! and idle-hold times grow exponentially with consecutive failures (the
//! DampPeerOscillations idea) and reset once a session is established;
//! FSM errors carry RFC 6608 subcodes.

use super::capability::Capability;
use super::error::{DecodeError, Notification};
use super::iana::{CeaseSubcode, ErrorCode, FsmSubcode, NotificationError, OpenSubcode};
use super::message::{Message, Open, RouteRefresh, Update};
use super::negotiate::{Negotiated, negotiate};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Session states (RFC 4271 §8.2.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum State {
    /// Refusing connections; waiting to start.
    Idle,
    /// Waiting for an outgoing TCP connection to complete.
    Connect,
    /// Waiting for the peer to connect (or for the retry timer).
    Active,
    /// OPEN sent, waiting for the peer's OPEN.
    OpenSent,
    /// OPENs exchanged, waiting for KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The session's timers (RFC 4271 §8.2.1.1 plus IdleHoldTimer, §8.1.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// ConnectRetryTimer.
    ConnectRetry,
    /// HoldTimer.
    Hold,
    /// KeepaliveTimer.
    Keepalive,
    /// IdleHoldTimer: how long to stay Idle before an automatic start.
    IdleHold,
}

/// Exponential backoff bounds for connect retries and restarts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 = first).
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(16);
        self.initial.saturating_mul(1 << shift).min(self.max)
    }
}

/// What one session is configured to be.
#[derive(Clone, Debug)]
pub struct FsmConfig {
    /// Our AS.
    pub local_asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The AS the peer must open with (RFC 4271 §6.2 Bad Peer AS).
    pub peer_asn: u32,
    /// Our proposed hold time (0, or 3 and above).
    pub hold_time: u16,
    /// Keepalive interval; `None` means a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// Capabilities we send.
    pub capabilities: Vec<Capability>,
    /// Never connect out; wait for the peer (PassiveTcpEstablishment).
    pub passive: bool,
    /// Start again automatically after the session ends (configured
    /// peers); dynamic neighbours stop for good instead.
    pub restart: bool,
    /// Connect-retry and restart backoff.
    pub backoff: Backoff,
}

/// Events fed to the FSM (RFC 4271 §8.1 numbers in the docs).
// Inputs are moved once into `process`; boxing the large message variant
// would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Input {
    /// Event 1 ManualStart, or Event 5 when passive.
    Start,
    /// Event 2 ManualStop: send this NOTIFICATION if connected, go Idle and
    /// stay there.
    Stop(Notification),
    /// End the session with this NOTIFICATION (e.g. Cease/1 on max-prefix,
    /// Cease/7 on a lost collision) and restart after the given idle time
    /// (Event 8 AutomaticStop with an explicit IdleHoldTime).
    StopFor(Notification, Duration),
    /// Events 9 (ConnectRetry), 10 (Hold), 11 (Keepalive), 13 (IdleHold).
    TimerExpired(Timer),
    /// Event 16 Tcp_CR_Acked or Event 17 TcpConnectionConfirmed.
    TcpConnected,
    /// Event 18 TcpConnectionFails, with the error for logs.
    TcpFailed(String),
    /// Events 19 (OPEN), 25 (NOTIFICATION), 26 (KEEPALIVE), 27 (UPDATE),
    /// and ROUTE-REFRESH (RFC 2918).
    Message(Message),
    /// Events 21 BGPHeaderErr, 22 BGPOpenMsgErr, 28 UpdateMsgErr: a message
    /// that must end the session with the attached NOTIFICATION.
    DecodeError(DecodeError),
    /// Event 29 SendHoldTimer_Expires (RFC 9687): the peer has taken none
    /// of our data for the send-hold time.
    SendHoldTimerExpired,
    /// The send queue exceeded its byte limit: end with Cease/8 "Out of
    /// Resources" (RFC 4486), as at send-hold expiry.
    SendQueueOverflow,
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DownReason {
    /// We sent this NOTIFICATION.
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The transport failed (reset, close, connect error).
    TcpFailed(String),
}

impl DownReason {
    /// True when the peer may be restarting gracefully, so its routes are
    /// kept as stale: the transport failed or the hold timer expired (RFC
    /// 4724 §4.2), we dropped a peer that stopped reading (send hold, RFC
    /// 9687, or its send queue over the limit: a lost session like any
    /// other), or, with `notification_restart` (both sides sent the N bit,
    /// RFC 8538 §3), any NOTIFICATION except Cease/Hard Reset.
    pub fn is_graceful_restart_candidate(&self, notification_restart: bool) -> bool {
        match self {
            DownReason::TcpFailed(_) => true,
            DownReason::NotificationSent(n) | DownReason::NotificationReceived(n)
                if notification_restart =>
            {
                !n.is(CeaseSubcode::HardReset)
            }
            DownReason::NotificationSent(n) => {
                n.code == u8::from(ErrorCode::HoldTimerExpired)
                    || n.code == u8::from(ErrorCode::SendHoldTimerExpired)
                    || n.is(CeaseSubcode::OutOfResources)
            }
            DownReason::NotificationReceived(_) => false,
        }
    }
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::NotificationSent(n) => write!(f, "sent {n}"),
            DownReason::NotificationReceived(n) => write!(f, "received {n}"),
            DownReason::TcpFailed(e) => write!(f, "connection lost: {e}"),
        }
    }
}

/// Actions for the driver, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Open an outgoing TCP connection.
    Connect,
    /// Close the TCP connection (after flushing queued sends).
    Disconnect,
    /// Reset the TCP connection at once, dropping queued sends, after
    /// trying this NOTIFICATION without waiting (RFC 9687 §4: best effort).
    Abort(Notification),
    /// Send a message.
    Send(Message),
    /// (Re)arm a timer.
    StartTimer(Timer, Duration),
    /// Cancel a timer.
    StopTimer(Timer),
    /// The session is established.
    Established(Box<Negotiated>),
    /// A route update to process.
    Update(Update),
    /// The peer asks for our routes again.
    RouteRefresh(RouteRefresh),
    /// The session (established or not) ended.
    Down {
        /// Why.
        reason: DownReason,
        /// It had reached Established.
        was_established: bool,
    },
}

/// What Idle does next.
enum Restart {
    /// Per configuration, after the backoff delay.
    Auto,
    /// After exactly this long.
    After(Duration),
    /// Not until the next [`Input::Start`].
    Never,
}

const OPEN_HOLD: Duration = Duration::from_secs(240);

/// One session's state machine.
#[derive(Debug)]
pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    failures: u32,
    negotiated: Option<Negotiated>,
    sent_open: Option<Open>,
    last_down: Option<DownReason>,
}

impl Fsm {
    /// A machine in Idle.
    pub fn new(cfg: FsmConfig) -> Fsm {
        Fsm {
            cfg,
            state: State::Idle,
            failures: 0,
            negotiated: None,
            sent_open: None,
            last_down: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, while OpenConfirm or Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Why the last session ended.
    pub fn last_down(&self) -> Option<&DownReason> {
        self.last_down.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }

    /// The OPEN this session sends.
    pub fn our_open(&self) -> Open {
        Open::new(
            self.cfg.local_asn,
            self.cfg.hold_time,
            self.cfg.router_id,
            self.cfg.capabilities.clone(),
        )
    }

    /// Feed one event; returns the actions to take, in order.
    pub fn process(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(&mut out),
            Input::Stop(n) => {
                self.close(&mut out, DownReason::NotificationSent(n), false);
                self.enter_idle(&mut out, Restart::Never);
            }
            Input::StopFor(n, idle) => {
                self.close(&mut out, DownReason::NotificationSent(n), false);
                self.enter_idle(&mut out, Restart::After(idle));
            }
            Input::TimerExpired(t) => self.timer(t, &mut out),
            Input::TcpConnected => self.tcp_connected(&mut out),
            Input::TcpFailed(e) => self.tcp_failed(e, &mut out),
            Input::Message(m) => self.message(m, &mut out),
            Input::DecodeError(e) => {
                if self.connected() {
                    self.fail(&mut out, DownReason::NotificationSent(e.notification));
                }
            }
            Input::SendHoldTimerExpired => {
                self.abort(&mut out, NotificationError::SendHoldTimerExpired.into())
            }
            Input::SendQueueOverflow => self.abort(&mut out, CeaseSubcode::OutOfResources.into()),
        }
        out
    }

    fn connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn start(&mut self, out: &mut Vec<Output>) {
        if self.state != State::Idle {
            return;
        }
        out.push(Output::StopTimer(Timer::IdleHold));
        if self.cfg.passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            out.push(Output::StartTimer(
                Timer::ConnectRetry,
                self.cfg.backoff.delay(self.failures.max(1)),
            ));
            out.push(Output::Connect);
        }
    }

    fn timer(&mut self, t: Timer, out: &mut Vec<Output>) {
        match (t, self.state) {
            (Timer::IdleHold, State::Idle) => self.start(out),
            (Timer::ConnectRetry, State::Connect | State::Active) if !self.cfg.passive => {
                out.push(Output::Disconnect);
                self.state = State::Connect;
                out.push(Output::StartTimer(
                    Timer::ConnectRetry,
                    self.cfg.backoff.delay(self.failures.max(1)),
                ));
                out.push(Output::Connect);
            }
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                self.fail(
                    out,
                    DownReason::NotificationSent(NotificationError::HoldTimerExpired.into()),
                );
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                out.push(Output::Send(Message::Keepalive));
                if let Some(k) = self.keepalive_interval() {
                    out.push(Output::StartTimer(Timer::Keepalive, k));
                }
            }
            _ => {}
        }
    }

    /// Event 16/17. In Idle this is a connection the driver chose to
    /// accept (a dynamic neighbour, or a peer reconnecting during backoff).
    fn tcp_connected(&mut self, out: &mut Vec<Output>) {
        match self.state {
            State::Idle | State::Connect | State::Active => {
                out.push(Output::StopTimer(Timer::ConnectRetry));
                out.push(Output::StopTimer(Timer::IdleHold));
                let open = self.our_open();
                self.sent_open = Some(open.clone());
                out.push(Output::Send(Message::Open(open)));
                out.push(Output::StartTimer(Timer::Hold, OPEN_HOLD));
                self.state = State::OpenSent;
            }
            _ => out.push(Output::Disconnect),
        }
    }

    fn tcp_failed(&mut self, e: String, out: &mut Vec<Output>) {
        match self.state {
            State::Connect => {
                self.failures += 1;
                self.state = State::Active;
                out.push(Output::StartTimer(
                    Timer::ConnectRetry,
                    self.cfg.backoff.delay(self.failures),
                ));
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                self.fail(out, DownReason::TcpFailed(e));
            }
            State::Idle | State::Active => {}
        }
    }

    fn message(&mut self, m: Message, out: &mut Vec<Output>) {
        if let Message::Notification(n) = m {
            if self.connected() {
                self.fail(out, DownReason::NotificationReceived(n));
            }
            return;
        }
        match (self.state, m) {
            (State::OpenSent, Message::Open(open)) => self.open_received(open, out),
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold(out);
                self.failures = 0;
                self.state = State::Established;
                let n = self.negotiated.clone().expect("negotiated in OpenConfirm");
                out.push(Output::Established(Box::new(n)));
            }
            (State::Established, Message::Keepalive) => self.restart_hold(out),
            (State::Established, Message::Update(u)) => {
                self.restart_hold(out);
                out.push(Output::Update(u));
            }
            (State::Established, Message::RouteRefresh(r)) => {
                self.restart_hold(out);
                out.push(Output::RouteRefresh(r));
            }
            (State::OpenSent, _) => self.fsm_error(out, FsmSubcode::UnexpectedInOpenSent),
            (State::OpenConfirm, _) => self.fsm_error(out, FsmSubcode::UnexpectedInOpenConfirm),
            (State::Established, _) => self.fsm_error(out, FsmSubcode::UnexpectedInEstablished),
            (State::Idle | State::Connect | State::Active, _) => {}
        }
    }

    fn open_received(&mut self, open: Open, out: &mut Vec<Output>) {
        if let Err(n) = self.check_open(&open) {
            self.fail(out, DownReason::NotificationSent(n));
            return;
        }
        let ours = self.sent_open.clone().unwrap_or_else(|| self.our_open());
        let n = negotiate(&ours, &open, self.cfg.peer_asn != self.cfg.local_asn);
        self.negotiated = Some(n);
        out.push(Output::Send(Message::Keepalive));
        self.state = State::OpenConfirm;
        match self.keepalive_interval() {
            Some(k) => {
                out.push(Output::StartTimer(Timer::Keepalive, k));
                self.restart_hold(out);
            }
            None => {
                out.push(Output::StopTimer(Timer::Keepalive));
                out.push(Output::StopTimer(Timer::Hold));
            }
        }
    }

    /// RFC 4271 §6.2 checks that need the configuration; the codec has
    /// already checked version, hold time and identifier syntax.
    fn check_open(&self, open: &Open) -> Result<(), Notification> {
        if open.asn() != self.cfg.peer_asn {
            let mut data = open.my_as.to_be_bytes().to_vec();
            if open.asn() > u32::from(u16::MAX) {
                data = open.asn().to_be_bytes().to_vec();
            }
            return Err(Notification::error(OpenSubcode::BadPeerAs, data));
        }
        if open.router_id == self.cfg.router_id && self.cfg.peer_asn == self.cfg.local_asn {
            return Err(OpenSubcode::BadBgpId.into());
        }
        if open.hold_time != 0 && open.hold_time < 3 {
            return Err(OpenSubcode::UnacceptableHoldTime.into());
        }
        Ok(())
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        let n = self.negotiated.as_ref()?;
        if n.hold_time == 0 {
            return None;
        }
        let k = match self.cfg.keepalive {
            Some(k) => k.min(n.hold_time / 3).max(1),
            None => n.keepalive.max(1),
        };
        Some(Duration::from_secs(u64::from(k)))
    }

    fn restart_hold(&self, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated
            && n.hold_time > 0
        {
            out.push(Output::StartTimer(
                Timer::Hold,
                Duration::from_secs(u64::from(n.hold_time)),
            ));
        }
    }

    fn fsm_error(&mut self, out: &mut Vec<Output>, subcode: FsmSubcode) {
        self.fail(out, DownReason::NotificationSent(subcode.into()));
    }

    fn fail(&mut self, out: &mut Vec<Output>, reason: DownReason) {
        self.close(out, reason, false);
        self.enter_idle(out, Restart::Auto);
    }

    /// RFC 9687 §4: in OpenSent, OpenConfirm and Established, NOTIFICATION
    /// (best effort), drop the connection without draining, count a
    /// failure, go Idle.
    fn abort(&mut self, out: &mut Vec<Output>, n: Notification) {
        if self.connected() {
            self.close(out, DownReason::NotificationSent(n), true);
            self.enter_idle(out, Restart::Auto);
        }
    }

    /// Send the NOTIFICATION (when there is a session to send it on), drop
    /// the connection (`abort`: at once, without draining) and report Down.
    fn close(&mut self, out: &mut Vec<Output>, reason: DownReason, abort: bool) {
        let was_connected = self.connected();
        let was_established = self.state == State::Established;
        match &reason {
            DownReason::NotificationSent(n) if was_connected && abort => {
                out.push(Output::Abort(n.clone()));
            }
            DownReason::NotificationSent(n) if was_connected => {
                out.push(Output::Send(Message::Notification(n.clone())));
                out.push(Output::Disconnect);
            }
            _ if self.state != State::Idle => out.push(Output::Disconnect),
            _ => {}
        }
        if was_connected {
            out.push(Output::Down {
                reason: reason.clone(),
                was_established,
            });
            self.last_down = Some(reason);
        }
        if !was_established && was_connected {
            self.failures += 1;
        }
    }

    fn enter_idle(&mut self, out: &mut Vec<Output>, restart: Restart) {
        self.state = State::Idle;
        self.negotiated = None;
        self.sent_open = None;
        for t in [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive] {
            out.push(Output::StopTimer(t));
        }
        let restart_after = match restart {
            Restart::After(d) => Some(d),
            Restart::Auto if self.cfg.restart => Some(self.cfg.backoff.delay(self.failures.max(1))),
            Restart::Auto | Restart::Never => None,
        };
        match restart_after {
            Some(d) => out.push(Output::StartTimer(Timer::IdleHold, d)),
            None => out.push(Output::StopTimer(Timer::IdleHold)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::iana::UpdateSubcode;
    use crate::bgp::message::Update;

    fn cfg(passive: bool) -> FsmConfig {
        FsmConfig {
            local_asn: 65515,
            router_id: Ipv4Addr::new(10, 1, 0, 4),
            peer_asn: 65010,
            hold_time: 180,
            keepalive: None,
            capabilities: vec![Capability::FourOctetAs(65515)],
            passive,
            restart: true,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }
    }

    fn peer_open(asn: u32, hold: u16) -> Message {
        Message::Open(Open::new(
            asn,
            hold,
            Ipv4Addr::new(10, 1, 0, 10),
            vec![Capability::FourOctetAs(asn)],
        ))
    }

    fn established(c: FsmConfig) -> Fsm {
        let mut f = Fsm::new(c);
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        f.process(Input::Message(peer_open(65010, 90)));
        let out = f.process(Input::Message(Message::Keepalive));
        assert!(matches!(out.last(), Some(Output::Established(_))));
        f
    }

    fn sent_notification(out: &[Output]) -> Option<Notification> {
        out.iter().find_map(|o| match o {
            Output::Send(Message::Notification(n)) => Some(n.clone()),
            _ => None,
        })
    }

    #[test]
    fn active_start_connects_and_arms_connect_retry() {
        let mut f = Fsm::new(cfg(false));
        let out = f.process(Input::Start);
        assert_eq!(f.state(), State::Connect);
        assert_eq!(
            out,
            vec![
                Output::StopTimer(Timer::IdleHold),
                Output::StartTimer(Timer::ConnectRetry, Duration::from_secs(1)),
                Output::Connect
            ]
        );
    }

    #[test]
    fn passive_start_waits_in_active_without_connecting() {
        let mut f = Fsm::new(cfg(true));
        let out = f.process(Input::Start);
        assert_eq!(f.state(), State::Active);
        assert!(!out.contains(&Output::Connect));
        assert!(
            f.process(Input::TimerExpired(Timer::ConnectRetry))
                .is_empty()
        );
    }

    #[test]
    fn tcp_connected_sends_open_and_arms_the_large_hold_timer() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        let out = f.process(Input::TcpConnected);
        assert_eq!(f.state(), State::OpenSent);
        assert!(
            matches!(&out[2], Output::Send(Message::Open(o)) if o.hold_time == 180 && o.asn() == 65515)
        );
        assert_eq!(
            out[3],
            Output::StartTimer(Timer::Hold, Duration::from_secs(240))
        );
    }

    #[test]
    fn open_then_keepalive_establishes_with_the_smaller_hold_time() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let out = f.process(Input::Message(peer_open(65010, 90)));
        assert_eq!(f.state(), State::OpenConfirm);
        assert_eq!(
            out,
            vec![
                Output::Send(Message::Keepalive),
                Output::StartTimer(Timer::Keepalive, Duration::from_secs(30)),
                Output::StartTimer(Timer::Hold, Duration::from_secs(90)),
            ]
        );
        let out = f.process(Input::Message(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
        match &out[1] {
            Output::Established(n) => {
                assert_eq!(n.hold_time, 90);
                assert_eq!(n.peer_asn, 65010);
                assert!(n.codec.four_octet_as);
                assert!(n.codec.ebgp);
            }
            o => panic!("expected Established, got {o:?}"),
        }
    }

    #[test]
    fn hold_time_zero_runs_without_keepalives_or_hold_timer() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let out = f.process(Input::Message(peer_open(65010, 0)));
        assert_eq!(
            out,
            vec![
                Output::Send(Message::Keepalive),
                Output::StopTimer(Timer::Keepalive),
                Output::StopTimer(Timer::Hold),
            ]
        );
        let out = f.process(Input::Message(Message::Keepalive));
        assert!(!out.iter().any(|o| matches!(o, Output::StartTimer(..))));
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn configured_keepalive_is_capped_at_a_third_of_hold() {
        let mut c = cfg(false);
        c.keepalive = Some(60);
        let mut f = Fsm::new(c);
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let out = f.process(Input::Message(peer_open(65010, 9)));
        assert!(out.contains(&Output::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(3)
        )));
    }

    #[test]
    fn wrong_peer_as_is_refused_with_bad_peer_as() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let out = f.process(Input::Message(peer_open(65099, 90)));
        let n = sent_notification(&out).unwrap();
        assert_eq!(
            (n.code, n.subcode, n.data.clone()),
            (2, OpenSubcode::BadPeerAs as u8, vec![0xfe, 0x4b])
        );
        assert_eq!(f.state(), State::Idle);
        assert!(out.contains(&Output::Disconnect));
    }

    #[test]
    fn ibgp_peer_with_our_router_id_is_refused_with_bad_bgp_identifier() {
        let mut c = cfg(false);
        c.peer_asn = 65515;
        let mut f = Fsm::new(c);
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let open = Open::new(65515, 90, Ipv4Addr::new(10, 1, 0, 4), vec![]);
        let out = f.process(Input::Message(Message::Open(open)));
        let n = sent_notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, OpenSubcode::BadBgpId as u8));
    }

    #[test]
    fn hold_time_of_two_is_refused() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let out = f.process(Input::Message(peer_open(65010, 2)));
        let n = sent_notification(&out).unwrap();
        assert_eq!(
            (n.code, n.subcode),
            (2, OpenSubcode::UnacceptableHoldTime as u8)
        );
    }

    #[test]
    fn update_in_opensent_is_an_fsm_error_with_rfc6608_subcode() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let out = f.process(Input::Message(Message::Update(Update::default())));
        let n = sent_notification(&out).unwrap();
        assert_eq!(
            (n.code, n.subcode),
            (ErrorCode::Fsm as u8, FsmSubcode::UnexpectedInOpenSent as u8)
        );
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn update_in_openconfirm_and_open_in_established_are_fsm_errors() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        f.process(Input::Message(peer_open(65010, 90)));
        let out = f.process(Input::Message(Message::Update(Update::default())));
        assert_eq!(
            sent_notification(&out).unwrap().subcode,
            FsmSubcode::UnexpectedInOpenConfirm as u8
        );

        let mut f = established(cfg(false));
        let out = f.process(Input::Message(peer_open(65010, 90)));
        assert_eq!(
            sent_notification(&out).unwrap().subcode,
            FsmSubcode::UnexpectedInEstablished as u8
        );
        assert!(matches!(
            out.iter().find(|o| matches!(o, Output::Down { .. })),
            Some(Output::Down {
                was_established: true,
                ..
            })
        ));
    }

    #[test]
    fn established_delivers_updates_and_restarts_hold_timer() {
        let mut f = established(cfg(false));
        let out = f.process(Input::Message(Message::Update(Update::default())));
        assert_eq!(
            out,
            vec![
                Output::StartTimer(Timer::Hold, Duration::from_secs(90)),
                Output::Update(Update::default())
            ]
        );
    }

    #[test]
    fn keepalive_timer_sends_keepalive_and_rearms() {
        let mut f = established(cfg(false));
        let out = f.process(Input::TimerExpired(Timer::Keepalive));
        assert_eq!(
            out,
            vec![
                Output::Send(Message::Keepalive),
                Output::StartTimer(Timer::Keepalive, Duration::from_secs(30))
            ]
        );
    }

    #[test]
    fn hold_timer_expiry_sends_4_0_and_goes_idle_with_restart() {
        let mut f = established(cfg(false));
        let out = f.process(Input::TimerExpired(Timer::Hold));
        let n = sent_notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (ErrorCode::HoldTimerExpired as u8, 0));
        assert_eq!(f.state(), State::Idle);
        let down = out.iter().find_map(|o| match o {
            Output::Down {
                reason,
                was_established,
            } => Some((reason.clone(), *was_established)),
            _ => None,
        });
        let (reason, was) = down.unwrap();
        assert!(was);
        assert!(reason.is_graceful_restart_candidate(false));
        assert_eq!(
            out.last(),
            Some(&Output::StartTimer(Timer::IdleHold, Duration::from_secs(1)))
        );
        let out = f.process(Input::TimerExpired(Timer::IdleHold));
        assert!(out.contains(&Output::Connect));
        assert_eq!(f.state(), State::Connect);
    }

    #[test]
    fn send_hold_expiry_aborts_with_8_0_and_restarts_like_a_lost_session() {
        let mut f = established(cfg(false));
        let out = f.process(Input::SendHoldTimerExpired);
        let n = Notification::from(NotificationError::SendHoldTimerExpired);
        assert_eq!((n.code, n.subcode), (8, 0));
        assert_eq!(out[0], Output::Abort(n.clone()));
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Send(_) | Output::Disconnect)),
            "nothing is queued behind the stuck data: {out:?}"
        );
        let reason = DownReason::NotificationSent(n);
        assert_eq!(
            out[1],
            Output::Down {
                reason: reason.clone(),
                was_established: true
            }
        );
        assert!(reason.is_graceful_restart_candidate(false));
        assert_eq!(f.state(), State::Idle);
        assert_eq!(
            out.last(),
            Some(&Output::StartTimer(Timer::IdleHold, Duration::from_secs(1)))
        );
    }

    #[test]
    fn send_queue_overflow_aborts_with_cease_8() {
        let mut f = established(cfg(false));
        let out = f.process(Input::SendQueueOverflow);
        let n = Notification::from(CeaseSubcode::OutOfResources);
        assert_eq!(out[0], Output::Abort(n.clone()));
        assert!(DownReason::NotificationSent(n).is_graceful_restart_candidate(false));
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn send_hold_expiry_before_a_connection_does_nothing() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        assert!(f.process(Input::SendHoldTimerExpired).is_empty());
        assert_eq!(f.state(), State::Connect);
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        let out = f.process(Input::SendHoldTimerExpired);
        assert!(
            matches!(out[0], Output::Abort(_)),
            "in OpenSent too: {out:?}"
        );
        assert!(out.contains(&Output::Down {
            reason: DownReason::NotificationSent(NotificationError::SendHoldTimerExpired.into()),
            was_established: false
        }));
    }

    #[test]
    fn received_notification_ends_the_session_without_answering() {
        let mut f = established(cfg(false));
        let n = Notification::from(CeaseSubcode::AdminShutdown);
        let out = f.process(Input::Message(Message::Notification(n.clone())));
        assert!(sent_notification(&out).is_none());
        assert!(out.contains(&Output::Down {
            reason: DownReason::NotificationReceived(n.clone()),
            was_established: true
        }));
        assert!(!DownReason::NotificationReceived(n.clone()).is_graceful_restart_candidate(false));
        assert!(DownReason::NotificationReceived(n).is_graceful_restart_candidate(true));
        let hard = Notification::from(CeaseSubcode::HardReset);
        assert!(!DownReason::NotificationReceived(hard).is_graceful_restart_candidate(true));
    }

    #[test]
    fn decode_error_sends_its_notification() {
        let mut f = established(cfg(false));
        let e = DecodeError::new(
            UpdateSubcode::MalformedAttributeList,
            vec![],
            "bad attribute list",
        );
        let out = f.process(Input::DecodeError(e));
        let n = sent_notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (3, 1));
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn tcp_failure_in_established_is_a_graceful_restart_candidate_and_sends_nothing() {
        let mut f = established(cfg(false));
        let out = f.process(Input::TcpFailed("reset by peer".into()));
        assert!(sent_notification(&out).is_none());
        assert!(out.contains(&Output::Down {
            reason: DownReason::TcpFailed("reset by peer".into()),
            was_established: true
        }));
    }

    #[test]
    fn connect_failures_back_off_exponentially_up_to_the_maximum() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        let mut delays = vec![];
        for _ in 0..8 {
            let out = f.process(Input::TcpFailed("refused".into()));
            assert_eq!(f.state(), State::Active);
            if let Some(Output::StartTimer(Timer::ConnectRetry, d)) = out.first() {
                delays.push(d.as_secs());
            }
            let out = f.process(Input::TimerExpired(Timer::ConnectRetry));
            assert!(out.contains(&Output::Connect));
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn failures_reset_once_established() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        for _ in 0..4 {
            f.process(Input::TcpFailed("refused".into()));
            f.process(Input::TimerExpired(Timer::ConnectRetry));
        }
        f.process(Input::TcpConnected);
        f.process(Input::Message(peer_open(65010, 90)));
        f.process(Input::Message(Message::Keepalive));
        let out = f.process(Input::TcpFailed("gone".into()));
        assert_eq!(
            out.last(),
            Some(&Output::StartTimer(Timer::IdleHold, Duration::from_secs(1)))
        );
    }

    #[test]
    fn manual_stop_sends_admin_shutdown_and_stays_idle() {
        let mut f = established(cfg(false));
        let n = Notification::cease_with_message(CeaseSubcode::AdminShutdown, "bye");
        let out = f.process(Input::Stop(n.clone()));
        assert_eq!(sent_notification(&out), Some(n));
        assert_eq!(out.last(), Some(&Output::StopTimer(Timer::IdleHold)));
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn stop_for_restarts_after_the_given_idle_time() {
        let mut f = established(cfg(false));
        let n = Notification::error(CeaseSubcode::MaxPrefixes, vec![0, 1, 1, 0, 0, 3, 0xe8]);
        let out = f.process(Input::StopFor(n.clone(), Duration::from_secs(30)));
        assert_eq!(sent_notification(&out), Some(n));
        assert_eq!(
            out.last(),
            Some(&Output::StartTimer(
                Timer::IdleHold,
                Duration::from_secs(30)
            ))
        );
    }

    #[test]
    fn dynamic_neighbour_does_not_restart() {
        let mut c = cfg(true);
        c.restart = false;
        let mut f = established(c);
        let out = f.process(Input::TcpFailed("closed".into()));
        assert_eq!(out.last(), Some(&Output::StopTimer(Timer::IdleHold)));
    }

    #[test]
    fn stop_while_connecting_sends_no_notification() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        let out = f.process(Input::Stop(CeaseSubcode::AdminShutdown.into()));
        assert!(sent_notification(&out).is_none());
        assert!(out.contains(&Output::Disconnect));
        assert!(!out.iter().any(|o| matches!(o, Output::Down { .. })));
    }

    #[test]
    fn accepted_connection_in_idle_goes_straight_to_opensent() {
        let mut c = cfg(true);
        c.restart = false;
        let mut f = Fsm::new(c);
        let out = f.process(Input::TcpConnected);
        assert_eq!(f.state(), State::OpenSent);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Send(Message::Open(_))))
        );
    }

    #[test]
    fn second_connection_in_opensent_is_dropped() {
        let mut f = Fsm::new(cfg(false));
        f.process(Input::Start);
        f.process(Input::TcpConnected);
        assert_eq!(f.process(Input::TcpConnected), vec![Output::Disconnect]);
        assert_eq!(f.state(), State::OpenSent);
    }

    #[test]
    fn backoff_saturates() {
        let b = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(120),
        };
        assert_eq!(b.delay(1), Duration::from_secs(5));
        assert_eq!(b.delay(3), Duration::from_secs(20));
        assert_eq!(b.delay(1000), Duration::from_secs(120));
    }
}
