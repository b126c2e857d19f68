//! One BFD session in Asynchronous mode (RFC 5880 §6.2–§6.8) as pure
//! code: [`Session::process`] takes an [`Input`] and the current time and
//! returns the packets to send and the state transitions; the session's
//! two timers (periodic transmission, detection) are values the driver
//! reads with [`Session::next_deadline`]. No sockets and no clocks.
//!
//! Implements the three-way handshake (§6.2, §6.8.6), the transmit
//! interval (§6.8.2) with its jitter (§6.8.7), the Detection Time (§6.8.4:
//! the remote's Detect Mult × the agreed interval), the slow rate of at
//! least one second while not Up (§6.8.3), the Poll Sequence for every
//! timer change (§6.5, §6.8.3: an increase of our transmit interval and a
//! decrease of our receive interval take effect only when the Final
//! arrives), the answer to a Poll (§6.8.6), AdminDown (§6.8.16), and what
//! a client is told (RFC 5882 §3.2, §4.2): Up once both ends have said Up
//! for a Detection Time (a session that falls straight back was never a
//! working path: FRR's bfdd, for one, drops from Init to Down when a Down
//! of ours crosses its Init, sometimes right after it said Up), and Down
//! only after such an Up, except when the remote re-created its
//! session (a Down from a new discriminator, or with No Diagnostic: the
//! remote saw no failure, and its packets arrive, so the path works; FRR
//! does this when bgpd registers the session again once BGP is up).
//! Demand mode and
//! Echo are not used: we never set D and always advertise a zero Required
//! Min Echo RX Interval.

use super::packet::{Control, Diag, State};
use std::time::{Duration, Instant};

/// The transmit interval while the session is not Up (RFC 5880 §6.8.3:
/// "not less than one second").
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// A session's local parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Timers {
    /// bfd.DesiredMinTxInterval while Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult.
    pub detect_mult: u8,
}

/// What happens to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A Control packet that passed [`Control::decode`] and was matched to
    /// this session.
    Received(Control),
    /// Time has passed: fire whatever timer is due.
    Tick,
    /// Hold the session administratively down (§6.8.16), telling the
    /// remote at once.
    AdminDown,
    /// Leave AdminDown (§6.8.16: to Down).
    Enable,
    /// New local timers: a Poll Sequence while Up (§6.8.3).
    SetTimers(Timers),
}

/// A state change.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// bfd.LocalDiag after the change.
    pub diag: Diag,
    /// The remote's state as last received.
    pub remote: State,
    /// The remote's diagnostic as last received.
    pub remote_diag: Diag,
    /// The remote's discriminator (0 once forgotten).
    pub remote_disc: u32,
}

/// What a transition means to a client such as BGP (RFC 5882).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The session came Up, and stayed Up with the remote saying Up for a
    /// Detection Time: the path works.
    Up,
    /// The session left Up because the path failed: act at once.
    Down(Diag),
    /// The session left Up administratively (ours or the remote's
    /// AdminDown): RFC 5882 §4.2, clients "SHOULD NOT take any control
    /// protocol action".
    AdminDown,
    /// The session left Up because the remote started a new session (a
    /// new discriminator, or Down with No Diagnostic: it saw no failure):
    /// its packets arrive, so the path works and the client takes no
    /// action; the handshake runs again.
    RemoteRestarted,
}

/// Actions for the driver, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this packet now.
    Send(Control),
    /// The state changed.
    Transition(Transition),
    /// Tell the client (RFC 5882).
    Signal(Signal),
}

/// What the session last heard from the remote (bfd.Remote* of §6.8.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Remote {
    state: State,
    disc: u32,
    diag: Diag,
    detect_mult: u8,
    desired_min_tx: u32,
    required_min_rx: u32,
}

impl Remote {
    /// §6.8.1 initial values: RemoteDiscr 0, RemoteSessionState Down,
    /// RemoteMinRxInterval 1 µs.
    const INITIAL: Remote = Remote {
        state: State::Down,
        disc: 0,
        diag: Diag::None,
        detect_mult: 0,
        desired_min_tx: 0,
        required_min_rx: 1,
    };
}

/// A point-in-time description of a session, for `steer show bfd`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SessionView {
    /// bfd.SessionState.
    pub state: State,
    /// bfd.RemoteSessionState.
    pub remote_state: State,
    /// bfd.LocalDiscr.
    pub local_disc: u32,
    /// bfd.RemoteDiscr (0 until heard).
    pub remote_disc: u32,
    /// bfd.LocalDiag.
    pub local_diag: Diag,
    /// The remote's last Diag.
    pub remote_diag: Diag,
    /// Why the session last left Up.
    pub last_down_diag: Option<Diag>,
    /// The transmit interval in use before jitter (µs), `None` while the
    /// remote asks for no periodic packets.
    pub tx_interval_us: Option<u32>,
    /// The agreed receive interval (µs): the greater of our Required Min
    /// RX and the remote's Desired Min TX.
    pub rx_interval_us: Option<u32>,
    /// Our Detect Mult.
    pub detect_mult: u8,
    /// The remote's Detect Mult.
    pub remote_detect_mult: u8,
    /// The Detection Time (µs).
    pub detection_time_us: Option<u64>,
    /// A Poll Sequence is under way.
    pub polling: bool,
    /// State changes so far.
    pub transitions: u64,
    /// Times the session left Up.
    pub downs: u64,
    /// The session has been Up, with the remote saying Up too, at least
    /// once.
    pub ever_up: bool,
}

/// One BFD session's state machine.
#[derive(Clone, Debug)]
pub struct Session {
    timers: Timers,
    local_disc: u32,
    state: State,
    diag: Diag,
    remote: Remote,
    /// bfd.DesiredMinTxInterval as advertised (µs).
    desired_tx: u32,
    /// The desired interval the transmit interval is computed from: it
    /// lags an increase until the Poll Sequence ends (§6.8.3).
    tx_in_use: u32,
    /// bfd.RequiredMinRxInterval as advertised (µs).
    required_rx: u32,
    /// The receive interval the Detection Time uses: it lags a decrease
    /// until the Poll Sequence ends (§6.8.3).
    rx_in_use: u32,
    /// A Poll Sequence is under way.
    poll: bool,
    /// Parameters changed again during the Poll: poll once more after it.
    poll_again: bool,
    last_tx: Option<Instant>,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    rng: u64,
    transitions: u64,
    downs: u64,
    ever_up: bool,
    /// The client was told Up for the current Up period.
    signaled_up: bool,
    /// Both ends say Up: tell the client Up at this time if still so.
    confirm_at: Option<Instant>,
    last_down_diag: Option<Diag>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX).max(1)
}

/// The jittered transmit interval (§6.8.7): reduced by a random 0–25%, or
/// to 75–90% with a Detect Mult of 1. `r` is uniform in `[0, 1)`.
pub fn jittered(interval: Duration, detect_mult: u8, r: f64) -> Duration {
    let span = if detect_mult == 1 { 0.15 } else { 0.25 };
    let reduction = if detect_mult == 1 {
        0.10 + span * r
    } else {
        span * r
    };
    interval.mul_f64(1.0 - reduction)
}

impl Session {
    /// A session in Down with local discriminator `local_disc` (non-zero,
    /// unique in the system), sending its first packet at `now`; `seed`
    /// drives the jitter.
    pub fn new(local_disc: u32, timers: Timers, now: Instant, seed: u64) -> Session {
        let required_rx = micros(timers.required_min_rx);
        Session {
            timers,
            local_disc,
            state: State::Down,
            diag: Diag::None,
            remote: Remote::INITIAL,
            desired_tx: micros(SLOW_TX),
            tx_in_use: micros(SLOW_TX),
            required_rx,
            rx_in_use: required_rx,
            poll: false,
            poll_again: false,
            last_tx: None,
            next_tx: Some(now),
            detect_at: None,
            rng: seed | 1,
            transitions: 0,
            downs: 0,
            ever_up: false,
            signaled_up: false,
            confirm_at: None,
            last_down_diag: None,
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.LocalDiscr.
    pub fn local_disc(&self) -> u32 {
        self.local_disc
    }

    /// The local timers.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// When [`Input::Tick`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.next_tx, self.detect_at, self.confirm_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The transmit interval before jitter (§6.8.2, §6.8.7): the greater
    /// of our desired interval in use and the remote's Required Min RX;
    /// `None` when the remote asks for none (a zero Required Min RX).
    pub fn tx_interval(&self) -> Option<Duration> {
        if self.remote.required_min_rx == 0 {
            return None;
        }
        let us = self.tx_in_use.max(self.remote.required_min_rx);
        Some(Duration::from_micros(u64::from(us)))
    }

    /// The agreed interval at which the remote transmits: the greater of
    /// our Required Min RX in use and its last Desired Min TX.
    pub fn rx_interval(&self) -> Option<Duration> {
        if self.remote.detect_mult == 0 {
            return None;
        }
        let us = self.rx_in_use.max(self.remote.desired_min_tx);
        Some(Duration::from_micros(u64::from(us)))
    }

    /// The Detection Time (§6.8.4, Asynchronous mode): the remote's Detect
    /// Mult × the agreed interval; `None` until the remote is heard.
    pub fn detection_time(&self) -> Option<Duration> {
        self.rx_interval()
            .map(|i| i * u32::from(self.remote.detect_mult))
    }

    /// A description for `steer show bfd`.
    pub fn view(&self) -> SessionView {
        SessionView {
            state: self.state,
            remote_state: self.remote.state,
            local_disc: self.local_disc,
            remote_disc: self.remote.disc,
            local_diag: self.diag,
            remote_diag: self.remote.diag,
            last_down_diag: self.last_down_diag,
            tx_interval_us: self.tx_interval().map(micros),
            rx_interval_us: self.rx_interval().map(micros),
            detect_mult: self.timers.detect_mult,
            remote_detect_mult: self.remote.detect_mult,
            detection_time_us: self.detection_time().map(|d| d.as_micros() as u64),
            polling: self.poll,
            transitions: self.transitions,
            downs: self.downs,
            ever_up: self.ever_up,
        }
    }

    /// Feed one input at time `now`; returns the actions in order.
    pub fn process(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Received(c) => self.receive(c, now, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::AdminDown => {
                if self.state != State::AdminDown {
                    self.set_state(State::AdminDown, Diag::AdminDown, now, &mut out);
                    out.push(Output::Send(self.packet(false, false)));
                    self.last_tx = Some(now);
                    self.reschedule_tx(now);
                }
            }
            Input::Enable => {
                if self.state == State::AdminDown {
                    self.set_state(State::Down, self.diag, now, &mut out);
                }
            }
            Input::SetTimers(t) => self.set_timers(t, now),
        }
        out
    }

    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1_000_000) as f64 / 1_000_000.0
    }

    fn packet(&self, poll: bool, final_: bool) -> Control {
        Control {
            diag: self.diag,
            state: self.state,
            poll,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.timers.detect_mult,
            my_disc: self.local_disc,
            your_disc: self.remote.disc,
            desired_min_tx: self.desired_tx,
            required_min_rx: self.required_rx,
            required_min_echo_rx: 0,
        }
    }

    /// Re-arm the transmit timer after the interval changed, counting from
    /// the last packet sent (never earlier than now, never faster than the
    /// new interval allows).
    fn reschedule_tx(&mut self, now: Instant) {
        let Some(interval) = self.tx_interval() else {
            self.next_tx = None;
            return;
        };
        let next = match self.last_tx {
            Some(last) => {
                let r = self.random();
                (last + jittered(interval, self.timers.detect_mult, r)).max(now)
            }
            None => now,
        };
        self.next_tx = Some(next);
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.detect_at.is_some_and(|t| t <= now) {
            self.detection_expired(now, out);
        }
        if self.confirm_at.is_some_and(|t| t <= now) {
            self.confirm_at = None;
            if self.state == State::Up && self.remote.state == State::Up && !self.signaled_up {
                self.signaled_up = true;
                self.ever_up = true;
                out.push(Output::Signal(Signal::Up));
            }
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            out.push(Output::Send(self.packet(self.poll, false)));
            self.last_tx = Some(now);
            self.next_tx = self.tx_interval().map(|i| {
                let r = self.random();
                now + jittered(i, self.timers.detect_mult, r)
            });
        }
    }

    /// §6.8.4: no packet for a Detection Time. The remote is forgotten
    /// (§6.8.1: RemoteDiscr back to zero); Init or Up go Down with Diag 1.
    fn detection_expired(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.detect_at = None;
        self.remote = Remote::INITIAL;
        self.poll = false;
        self.poll_again = false;
        self.tx_in_use = self.desired_tx;
        self.rx_in_use = self.required_rx;
        if matches!(self.state, State::Init | State::Up) {
            self.set_state(State::Down, Diag::DetectionTimeExpired, now, out);
        }
        self.reschedule_tx(now);
    }

    /// §6.8.6 from "Set bfd.RemoteDiscr" on: the packet passed the checks
    /// and was matched to this session.
    fn receive(&mut self, c: Control, now: Instant, out: &mut Vec<Output>) {
        let old_tx = self.tx_interval();
        let restarted = (self.remote.disc != 0 && c.my_disc != self.remote.disc)
            || (c.state == State::Down && c.diag == Diag::None);
        self.remote = Remote {
            state: c.state,
            disc: c.my_disc,
            diag: c.diag,
            detect_mult: c.detect_mult,
            desired_min_tx: c.desired_min_tx,
            required_min_rx: c.required_min_rx,
        };
        if c.final_ && self.poll {
            self.end_poll();
        }
        if self.tx_interval() != old_tx {
            self.reschedule_tx(now);
        }
        self.detect_at = self.detection_time().map(|d| now + d);
        if self.state == State::AdminDown {
            return;
        }
        match (self.state, c.state) {
            (State::Up, _) if restarted => {
                self.change_state(State::Down, Diag::NeighborSignaledDown, true, now, out)
            }
            (State::Init | State::Up, State::AdminDown) => {
                self.set_state(State::Down, Diag::NeighborSignaledDown, now, out)
            }
            (State::Down, State::Down) => self.set_state(State::Init, self.diag, now, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Diag::None, now, out)
            }
            (State::Up, State::Down) => {
                self.set_state(State::Down, Diag::NeighborSignaledDown, now, out)
            }
            _ => {}
        }
        if self.state == State::Up
            && c.state == State::Up
            && !self.signaled_up
            && self.confirm_at.is_none()
        {
            self.confirm_at = Some(now + self.detection_time().unwrap_or(SLOW_TX));
        }
        if c.poll {
            out.push(Output::Send(self.packet(false, true)));
        }
    }

    /// The Final arrived: the remote knows our new parameters, so they
    /// take full effect (§6.8.3).
    fn end_poll(&mut self) {
        self.poll = false;
        self.tx_in_use = self.desired_tx;
        self.rx_in_use = self.required_rx;
        if self.poll_again {
            self.poll_again = false;
            self.poll = true;
        }
    }

    fn start_poll(&mut self, now: Instant) {
        if self.remote.disc == 0 {
            return;
        }
        if self.poll {
            self.poll_again = true;
            return;
        }
        self.poll = true;
        self.next_tx = Some(now);
    }

    /// Change bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval
    /// (§6.8.3): a faster transmit or slower receive interval applies at
    /// once, the other way round only once the Poll Sequence ends, unless
    /// the session is not Up.
    fn set_intervals(&mut self, desired_tx: u32, required_rx: u32, now: Instant) {
        if desired_tx == self.desired_tx && required_rx == self.required_rx {
            return;
        }
        let up = self.state == State::Up;
        let old_tx = self.tx_interval();
        self.desired_tx = desired_tx;
        self.required_rx = required_rx;
        if !up || desired_tx < self.tx_in_use {
            self.tx_in_use = desired_tx;
        }
        if !up || required_rx > self.rx_in_use {
            self.rx_in_use = required_rx;
            if let (Some(d), Some(at)) = (self.detection_time(), self.detect_at) {
                self.detect_at = Some(at.max(now + d));
            }
        }
        if self.tx_interval() != old_tx {
            self.reschedule_tx(now);
        }
        if up {
            self.start_poll(now);
        }
    }

    fn desired_tx_for(&self, state: State) -> u32 {
        if state == State::Up {
            micros(self.timers.desired_min_tx)
        } else {
            micros(SLOW_TX).max(micros(self.timers.desired_min_tx))
        }
    }

    fn set_timers(&mut self, t: Timers, now: Instant) {
        let mult_changed = t.detect_mult != self.timers.detect_mult;
        self.timers = t;
        let desired = self.desired_tx_for(self.state);
        let required = micros(t.required_min_rx);
        if desired == self.desired_tx && required == self.required_rx {
            if mult_changed && self.state == State::Up {
                self.start_poll(now);
            }
            return;
        }
        self.set_intervals(desired, required, now);
    }

    fn set_state(&mut self, to: State, diag: Diag, now: Instant, out: &mut Vec<Output>) {
        self.change_state(to, diag, false, now, out);
    }

    /// Enter `to`; `remote_restarted` says the remote began a new session.
    fn change_state(
        &mut self,
        to: State,
        diag: Diag,
        remote_restarted: bool,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        self.transitions += 1;
        if from == State::Up {
            self.downs += 1;
            self.last_down_diag = Some(diag);
        }
        let desired = self.desired_tx_for(to);
        let required = self.required_rx;
        self.set_intervals(desired, required, now);
        out.push(Output::Transition(Transition {
            from,
            to,
            diag,
            remote: self.remote.state,
            remote_diag: self.remote.diag,
            remote_disc: self.remote.disc,
        }));
        self.confirm_at = None;
        if from == State::Up && std::mem::take(&mut self.signaled_up) {
            let signal = if to == State::AdminDown || self.remote.state == State::AdminDown {
                Signal::AdminDown
            } else if remote_restarted {
                Signal::RemoteRestarted
            } else {
                Signal::Down(diag)
            };
            out.push(Output::Signal(signal));
        }
    }
}

#[cfg(test)]
mod tests;
