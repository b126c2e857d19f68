use super::*;

const MS: Duration = Duration::from_millis(1);

fn timers(ms: u64, mult: u8) -> Timers {
    Timers {
        desired_min_tx: MS * ms as u32,
        required_min_rx: MS * ms as u32,
        detect_mult: mult,
    }
}

fn sent(out: &[Output]) -> Vec<Control> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(c) => Some(*c),
            _ => None,
        })
        .collect()
}

fn transitions(out: &[Output]) -> Vec<Transition> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transition(t) => Some(*t),
            _ => None,
        })
        .collect()
}

fn signals(out: &[Output]) -> Vec<Signal> {
    out.iter()
        .filter_map(|o| match o {
            Output::Signal(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// A remote's packet in `state`, speaking `ms` × `mult`.
fn remote(state: State, your_disc: u32, ms: u32, mult: u8) -> Control {
    Control {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: mult,
        my_disc: 0xbeef,
        your_disc,
        desired_min_tx: ms * 1000,
        required_min_rx: ms * 1000,
        required_min_echo_rx: 0,
    }
}

/// A session the remote brought Up (Down, then Up) that stayed Up with
/// the remote saying Up for a Detection Time, so its client was told Up;
/// returns it and the time of that signal.
fn confirmed_up(now: Instant) -> (Session, Instant) {
    let mut s = Session::new(1, timers(300, 3), now, 3);
    s.process(Input::Received(remote(State::Down, 0, 300, 3)), now);
    let out = s.process(Input::Received(remote(State::Up, 1, 300, 3)), now);
    assert!(signals(&out).is_empty(), "not before a Detection Time");
    s.process(
        Input::Received(remote(State::Up, 1, 300, 3)),
        now + MS * 500,
    );
    let later = now + MS * 900;
    let out = s.process(Input::Tick, later);
    assert_eq!(s.state(), State::Up);
    assert_eq!(signals(&out), vec![Signal::Up]);
    (s, later)
}

/// Two sessions joined by a lossless wire, on a virtual clock.
struct Pair {
    a: Session,
    b: Session,
    now: Instant,
    log: Vec<(char, Transition)>,
    signals: Vec<(char, Signal)>,
    wire_up: bool,
}

impl Pair {
    fn new(ta: Timers, tb: Timers) -> Pair {
        let now = Instant::now();
        Pair {
            a: Session::new(1, ta, now, 11),
            b: Session::new(2, tb, now + MS * 137, 22),
            now,
            log: Vec::new(),
            signals: Vec::new(),
            wire_up: true,
        }
    }

    fn deliver(&mut self, from_a: bool, out: Vec<Output>) {
        let mut queue = vec![(from_a, out)];
        while let Some((from_a, out)) = queue.pop() {
            let who = if from_a { 'a' } else { 'b' };
            for t in transitions(&out) {
                self.log.push((who, t));
            }
            for sig in signals(&out) {
                self.signals.push((who, sig));
            }
            if !self.wire_up {
                continue;
            }
            for c in sent(&out) {
                let to = if from_a { &mut self.b } else { &mut self.a };
                let answer = to.process(Input::Received(c), self.now);
                queue.push((!from_a, answer));
            }
        }
    }

    /// Advance the clock in 1 ms steps for `d`, firing timers.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += MS;
            if self.a.next_deadline().is_some_and(|t| t <= self.now) {
                let out = self.a.process(Input::Tick, self.now);
                self.deliver(true, out);
            }
            if self.b.next_deadline().is_some_and(|t| t <= self.now) {
                let out = self.b.process(Input::Tick, self.now);
                self.deliver(false, out);
            }
        }
    }
}

#[test]
fn three_way_handshake_brings_both_sides_up_through_init() {
    let mut p = Pair::new(timers(300, 3), timers(300, 3));
    p.run(MS * 3000);
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
    let steps: Vec<(char, State, State)> = p.log.iter().map(|(w, t)| (*w, t.from, t.to)).collect();
    // a sends Down first; b hears Down and goes Init; a hears Init and goes
    // Up; b hears Up and goes Up (RFC 5880 §6.2).
    assert_eq!(
        steps,
        vec![
            ('b', State::Down, State::Init),
            ('a', State::Down, State::Up),
            ('b', State::Init, State::Up),
        ]
    );
    assert!(p.log.iter().all(|(_, t)| t.diag == Diag::None));
    assert_eq!(p.a.view().transitions, 1);
    assert!(p.a.view().ever_up);
    let mut got = p.signals.clone();
    got.sort_by_key(|(w, _)| *w);
    assert_eq!(
        got,
        vec![('a', Signal::Up), ('b', Signal::Up)],
        "each side tells its client once, a Detection Time after both say Up"
    );
}

#[test]
fn up_is_signalled_only_when_the_remote_says_up_and_a_race_back_to_down_is_silent() {
    // We are Down and hear Init: we go Up, but a Down the remote sent
    // before (FRR's bfdd drops from Init to Down on it) takes us back:
    // the client heard nothing either way.
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    let out = s.process(Input::Received(remote(State::Init, 1, 1000, 3)), now);
    assert_eq!(transitions(&out)[0].to, State::Up);
    assert!(signals(&out).is_empty(), "the remote is still in Init");
    let out = s.process(Input::Received(remote(State::Down, 1, 1000, 3)), now);
    assert_eq!(transitions(&out)[0].to, State::Down);
    assert!(signals(&out).is_empty(), "no Up was signalled, so no Down");
    assert!(!s.view().ever_up);
    // The handshake completes: Down -> Init -> Up; Up is signalled once
    // both ends have said Up for a Detection Time (3 × 1 s here).
    s.process(Input::Received(remote(State::Down, 0, 1000, 3)), now);
    let out = s.process(Input::Received(remote(State::Up, 1, 1000, 3)), now);
    assert!(signals(&out).is_empty());
    s.process(
        Input::Received(remote(State::Up, 1, 1000, 3)),
        now + MS * 2000,
    );
    assert!(signals(&s.process(Input::Tick, now + MS * 2999)).is_empty());
    assert_eq!(
        signals(&s.process(Input::Tick, now + MS * 3000)),
        vec![Signal::Up]
    );
    let out = s.process(
        Input::Received(remote(State::Up, 1, 1000, 3)),
        now + MS * 3100,
    );
    assert!(signals(&out).is_empty(), "once per Up period");
}

#[test]
fn an_up_that_falls_straight_back_is_never_signalled() {
    // FRR's bfdd may say Up and then, on a Down of ours that crossed its
    // Init, Down again a few milliseconds later.
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    s.process(Input::Received(remote(State::Init, 1, 1000, 3)), now);
    let out = s.process(Input::Received(remote(State::Up, 1, 300, 3)), now + MS);
    assert!(signals(&out).is_empty());
    let mut back = remote(State::Down, 1, 1000, 3);
    back.diag = Diag::NeighborSignaledDown;
    let out = s.process(Input::Received(back), now + MS * 3);
    assert_eq!(transitions(&out)[0].to, State::Down);
    assert!(
        signals(&out).is_empty(),
        "no Up was told, so no Down either"
    );
    assert!(signals(&s.process(Input::Tick, now + MS * 2000)).is_empty());
}

#[test]
fn up_is_signalled_only_if_the_remote_still_says_up_when_the_detection_time_ends() {
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    s.process(Input::Received(remote(State::Down, 0, 300, 3)), now);
    s.process(Input::Received(remote(State::Up, 1, 300, 3)), now);
    s.process(
        Input::Received(remote(State::Init, 1, 300, 3)),
        now + MS * 300,
    );
    assert_eq!(s.state(), State::Up, "§6.8.6: Init received in Up stays Up");
    assert!(signals(&s.process(Input::Tick, now + MS * 900)).is_empty());
    s.process(
        Input::Received(remote(State::Up, 1, 300, 3)),
        now + MS * 1000,
    );
    assert!(signals(&s.process(Input::Tick, now + MS * 1899)).is_empty());
    s.process(
        Input::Received(remote(State::Up, 1, 300, 3)),
        now + MS * 1500,
    );
    assert_eq!(
        signals(&s.process(Input::Tick, now + MS * 1900)),
        vec![Signal::Up]
    );
}

#[test]
fn both_sides_in_down_both_go_init_then_up() {
    let now = Instant::now();
    let mut a = Session::new(1, timers(300, 3), now, 1);
    let out = a.process(Input::Received(remote(State::Down, 0, 1000, 3)), now);
    assert_eq!(
        transitions(&out),
        vec![Transition {
            from: State::Down,
            to: State::Init,
            diag: Diag::None,
            remote: State::Down,
            remote_diag: Diag::None,
            remote_disc: 0xbeef,
        }]
    );
    let out = a.process(Input::Received(remote(State::Init, 1, 1000, 3)), now);
    assert_eq!(transitions(&out)[0].to, State::Up);
}

#[test]
fn up_received_in_down_does_not_bring_the_session_up() {
    let now = Instant::now();
    let mut a = Session::new(1, timers(300, 3), now, 1);
    let out = a.process(Input::Received(remote(State::Up, 1, 300, 3)), now);
    assert!(transitions(&out).is_empty());
    assert_eq!(a.state(), State::Down);
}

#[test]
fn the_first_packet_goes_out_at_once_slow_and_without_your_discriminator() {
    let now = Instant::now();
    let mut s = Session::new(0x1234, timers(300, 3), now, 1);
    assert_eq!(s.next_deadline(), Some(now));
    let out = sent(&s.process(Input::Tick, now));
    assert_eq!(
        out,
        vec![Control {
            diag: Diag::None,
            state: State::Down,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_disc: 0x1234,
            your_disc: 0,
            desired_min_tx: 1_000_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }]
    );
}

#[test]
fn while_not_up_packets_go_out_about_once_a_second_with_jitter() {
    let mut now = Instant::now();
    let mut s = Session::new(1, timers(50, 3), now, 7);
    let mut sends = Vec::new();
    for _ in 0..20_000 {
        if s.next_deadline().is_some_and(|t| t <= now)
            && !sent(&s.process(Input::Tick, now)).is_empty()
        {
            sends.push(now);
        }
        now += MS;
    }
    let gaps: Vec<Duration> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 19, "{gaps:?}");
    assert!(
        gaps.iter().all(|g| *g >= MS * 750 && *g <= MS * 1001),
        "{gaps:?}"
    );
    assert!(
        gaps.iter().min() != gaps.iter().max(),
        "jittered, not constant: {gaps:?}"
    );
}

#[test]
fn jitter_is_0_to_25_percent_and_75_to_90_percent_with_detect_mult_1() {
    let i = MS * 1000;
    assert_eq!(jittered(i, 3, 0.0), MS * 1000);
    assert_eq!(jittered(i, 3, 0.999_999).as_millis(), 750);
    assert_eq!(jittered(i, 1, 0.0), MS * 900);
    assert_eq!(jittered(i, 1, 0.999_999).as_millis(), 750);
}

#[test]
fn once_up_the_fast_interval_is_polled_in_and_final_ends_the_poll() {
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    s.process(Input::Tick, now);
    s.process(Input::Received(remote(State::Down, 0, 1000, 3)), now);
    let out = s.process(Input::Received(remote(State::Init, 1, 1000, 3)), now);
    assert_eq!(transitions(&out)[0].to, State::Up);
    assert!(s.view().polling);
    assert_eq!(s.next_deadline(), Some(now), "the Poll goes out at once");
    let poll = sent(&s.process(Input::Tick, now));
    assert_eq!(poll.len(), 1);
    assert!(poll[0].poll && !poll[0].final_);
    assert_eq!(poll[0].state, State::Up);
    assert_eq!(poll[0].desired_min_tx, 300_000);
    assert_eq!(poll[0].your_disc, 0xbeef);
    // A faster transmit interval applies at once (§6.8.3 restricts only
    // increases); the remote's 1 s Required Min RX still bounds it.
    assert_eq!(s.tx_interval(), Some(MS * 1000));
    let mut fin = remote(State::Up, 1, 300, 3);
    fin.final_ = true;
    s.process(Input::Received(fin), now + MS * 5);
    assert!(!s.view().polling);
    assert_eq!(s.tx_interval(), Some(MS * 300));
    let next = sent(&s.process(Input::Tick, now + MS * 400));
    assert!(!next[0].poll, "no P once the Poll Sequence ended");
}

#[test]
fn a_poll_is_answered_at_once_with_final_and_without_poll() {
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    s.process(Input::Tick, now);
    let mut p = remote(State::Down, 0, 1000, 3);
    p.poll = true;
    let out = s.process(Input::Received(p), now + MS);
    let answer = sent(&out);
    assert_eq!(answer.len(), 1);
    assert!(answer[0].final_ && !answer[0].poll);
    assert_eq!(
        answer[0].state,
        State::Init,
        "the answer carries the new state"
    );
    assert_eq!(answer[0].your_disc, 0xbeef);
}

#[test]
fn a_final_without_a_poll_changes_nothing() {
    let mut p = Pair::new(timers(300, 3), timers(300, 3));
    p.run(MS * 3000);
    let before = p.a.view();
    let mut f = remote(State::Up, 1, 300, 3);
    f.final_ = true;
    f.my_disc = before.remote_disc;
    p.a.process(Input::Received(f), p.now);
    assert_eq!(p.a.view(), before);
}

#[test]
fn detection_time_is_the_remote_detect_mult_times_the_agreed_interval() {
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    assert_eq!(
        s.detection_time(),
        None,
        "nothing to detect before hearing the remote"
    );
    // Remote sends faster than we accept: our Required Min RX wins.
    let mut c = remote(State::Down, 0, 200, 5);
    s.process(Input::Received(c), now);
    assert_eq!(s.detection_time(), Some(MS * 1500), "5 × max(300, 200)");
    // Remote slower than we require: its Desired Min TX wins.
    c.desired_min_tx = 500_000;
    c.detect_mult = 2;
    s.process(Input::Received(c), now);
    assert_eq!(s.detection_time(), Some(MS * 1000), "2 × max(300, 500)");
    assert_eq!(s.next_deadline().map(|t| t >= now + MS * 1000), Some(false));
    assert!(s.view().detection_time_us == Some(1_000_000));
}

#[test]
fn silence_for_the_detection_time_takes_up_down_with_diag_1_and_forgets_the_remote() {
    let mut p = Pair::new(timers(300, 3), timers(300, 3));
    p.run(MS * 3000);
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.a.detection_time(), Some(MS * 900));
    p.wire_up = false;
    p.log.clear();
    // One packet was in flight at most one jittered interval ago; the
    // session must not fall before 900 ms after the last packet.
    let cut = p.now;
    let mut down_at = None;
    while down_at.is_none() {
        p.run(MS);
        if p.a.state() == State::Down {
            down_at = Some(p.now);
        }
    }
    let waited = down_at.unwrap() - cut;
    assert!(waited > MS * 600 && waited <= MS * 901, "{waited:?}");
    let t = p.log.iter().find(|(w, _)| *w == 'a').unwrap().1;
    assert_eq!(
        (t.from, t.to, t.diag),
        (State::Up, State::Down, Diag::DetectionTimeExpired)
    );
    assert!(
        p.signals
            .contains(&('a', Signal::Down(Diag::DetectionTimeExpired))),
        "{:?}",
        p.signals
    );
    let v = p.a.view();
    assert_eq!(v.remote_disc, 0, "RFC 5880 §6.8.1: RemoteDiscr zeroed");
    assert_eq!(v.last_down_diag, Some(Diag::DetectionTimeExpired));
    assert_eq!(v.downs, 1);
    let next = sent(&p.a.process(Input::Tick, p.now + MS * 1000));
    assert_eq!(next[0].your_disc, 0);
    assert_eq!(next[0].state, State::Down);
    assert_eq!(next[0].diag, Diag::DetectionTimeExpired);
    assert_eq!(next[0].desired_min_tx, 1_000_000, "slow again while not Up");
}

#[test]
fn a_session_stays_up_while_packets_keep_coming() {
    let mut p = Pair::new(timers(300, 3), timers(300, 3));
    p.run(MS * 60_000);
    assert_eq!(p.a.view().transitions, 1);
    assert_eq!(p.b.view().transitions, 2);
}

#[test]
fn recovery_after_a_cut_goes_through_the_handshake_again() {
    let mut p = Pair::new(timers(300, 3), timers(300, 3));
    p.run(MS * 3000);
    p.wire_up = false;
    p.run(MS * 2000);
    assert_eq!((p.a.state(), p.b.state()), (State::Down, State::Down));
    p.wire_up = true;
    p.signals.clear();
    p.run(MS * 3000);
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    let mut got = p.signals.clone();
    got.sort_by_key(|(w, _)| *w);
    assert_eq!(got, vec![('a', Signal::Up), ('b', Signal::Up)]);
}

#[test]
fn remote_down_takes_up_down_with_diag_3_and_remote_admin_down_is_not_a_failure() {
    let (mut s, now) = confirmed_up(Instant::now());
    let mut failed = remote(State::Down, 1, 300, 3);
    failed.diag = Diag::PathDown;
    let out = s.process(Input::Received(failed), now);
    assert_eq!(transitions(&out)[0].diag, Diag::NeighborSignaledDown);
    assert_eq!(
        signals(&out),
        vec![Signal::Down(Diag::NeighborSignaledDown)]
    );

    let (mut s, now) = confirmed_up(Instant::now());
    let out = s.process(Input::Received(remote(State::AdminDown, 1, 300, 3)), now);
    let t = transitions(&out)[0];
    assert_eq!((t.to, t.diag), (State::Down, Diag::NeighborSignaledDown));
    assert_eq!(signals(&out), vec![Signal::AdminDown], "RFC 5882 §4.2");
    assert_eq!(s.state(), State::Down);
    let again = s.process(Input::Received(remote(State::AdminDown, 1, 300, 3)), now);
    assert!(
        transitions(&again).is_empty(),
        "AdminDown keeps a Down session Down"
    );
}

#[test]
fn remote_restart_with_a_new_discriminator_takes_up_down_then_init_without_a_failure() {
    let (mut s, now) = confirmed_up(Instant::now());
    let mut restarted = remote(State::Down, 0, 1000, 3);
    restarted.my_disc = 0xcafe;
    let out = s.process(Input::Received(restarted), now);
    let t = transitions(&out);
    assert_eq!(
        (t[0].to, t[0].diag),
        (State::Down, Diag::NeighborSignaledDown)
    );
    assert_eq!(
        signals(&out),
        vec![Signal::RemoteRestarted],
        "its packets arrive: the path works"
    );
    assert_eq!(s.view().remote_disc, 0xcafe);
    let t = transitions(&s.process(Input::Received(restarted), now));
    assert_eq!(t[0].to, State::Init);
}

#[test]
fn a_down_with_no_diagnostic_from_the_same_discriminator_is_a_restart_too() {
    let (mut s, now) = confirmed_up(Instant::now());
    let out = s.process(Input::Received(remote(State::Down, 0, 1000, 3)), now);
    assert_eq!(signals(&out), vec![Signal::RemoteRestarted]);
}

#[test]
fn the_same_remote_saying_down_is_a_failure() {
    let (mut s, now) = confirmed_up(Instant::now());
    // The remote stopped hearing us (a one-way failure): Down, diag 1,
    // its own discriminator unchanged, ours forgotten.
    let mut c = remote(State::Down, 0, 1000, 3);
    c.diag = Diag::DetectionTimeExpired;
    let out = s.process(Input::Received(c), now);
    assert_eq!(
        signals(&out),
        vec![Signal::Down(Diag::NeighborSignaledDown)]
    );
}

#[test]
fn init_falls_back_to_down_when_the_remote_goes_quiet_without_a_client_signal() {
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    s.process(Input::Received(remote(State::Down, 0, 1000, 3)), now);
    assert_eq!(s.state(), State::Init);
    let out = s.process(Input::Tick, now + MS * 3001);
    let t = transitions(&out)[0];
    assert_eq!(
        (t.from, t.to, t.diag),
        (State::Init, State::Down, Diag::DetectionTimeExpired)
    );
    assert!(signals(&out).is_empty(), "never Up: nothing for the client");
}

#[test]
fn admin_down_sends_admin_down_ignores_the_remote_and_enable_returns_to_down() {
    let mut p = Pair::new(timers(300, 3), timers(300, 3));
    p.run(MS * 3000);
    p.log.clear();
    p.signals.clear();
    let out = p.a.process(Input::AdminDown, p.now);
    let t = transitions(&out)[0];
    assert_eq!(
        (t.from, t.to, t.diag),
        (State::Up, State::AdminDown, Diag::AdminDown)
    );
    assert_eq!(signals(&out), vec![Signal::AdminDown]);
    assert_eq!(
        sent(&out).iter().map(|c| c.state).collect::<Vec<_>>(),
        vec![State::AdminDown],
        "the remote is told at once"
    );
    p.deliver(true, out);
    p.run(MS * 2000);
    assert_eq!(p.a.state(), State::AdminDown);
    let b_down = p.log.iter().find(|(w, _)| *w == 'b').unwrap().1;
    assert_eq!(b_down.diag, Diag::NeighborSignaledDown);
    assert_eq!(
        p.signals,
        vec![('a', Signal::AdminDown), ('b', Signal::AdminDown)]
    );
    let mut poll = remote(State::Up, 1, 300, 3);
    poll.poll = true;
    assert!(
        p.a.process(Input::Received(poll), p.now).is_empty(),
        "AdminDown discards received packets, Polls too"
    );
    let pkt = sent(&p.a.process(Input::Tick, p.now + MS * 1000));
    assert_eq!(
        (pkt[0].state, pkt[0].diag),
        (State::AdminDown, Diag::AdminDown)
    );
    let t = transitions(&p.a.process(Input::Enable, p.now))[0];
    assert_eq!((t.from, t.to), (State::AdminDown, State::Down));
    p.run(MS * 3000);
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
}

#[test]
fn a_zero_required_min_rx_stops_periodic_packets_but_polls_are_answered() {
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    let mut c = remote(State::Down, 0, 300, 3);
    c.required_min_rx = 0;
    s.process(Input::Received(c), now);
    assert_eq!(s.tx_interval(), None);
    assert!(sent(&s.process(Input::Tick, now + MS * 800)).is_empty());
    c.poll = true;
    assert_eq!(sent(&s.process(Input::Received(c), now)).len(), 1);
}

#[test]
fn the_transmit_interval_is_the_greater_of_ours_and_the_remote_required_min_rx() {
    let mut p = Pair::new(timers(100, 3), timers(500, 3));
    p.run(MS * 4000);
    assert_eq!(p.a.tx_interval(), Some(MS * 500));
    assert_eq!(p.b.tx_interval(), Some(MS * 500));
    assert_eq!(p.a.detection_time(), Some(MS * 1500), "3 × max(100, 500)");
}

#[test]
fn a_slower_transmit_interval_waits_for_the_final_and_a_faster_receive_one_too() {
    let mut p = Pair::new(timers(300, 3), timers(100, 3));
    p.run(MS * 3000);
    assert_eq!(p.a.tx_interval(), Some(MS * 300));
    let now = p.now;
    p.a.process(
        Input::SetTimers(Timers {
            desired_min_tx: MS * 600,
            required_min_rx: MS * 100,
            detect_mult: 3,
        }),
        now,
    );
    assert!(p.a.view().polling);
    assert_eq!(
        p.a.tx_interval(),
        Some(MS * 300),
        "600 ms only after the Final"
    );
    assert_eq!(
        p.a.rx_interval(),
        Some(MS * 300),
        "the receive interval stays 300 ms until the Final"
    );
    let poll = sent(&p.a.process(Input::Tick, now));
    assert!(poll[0].poll);
    assert_eq!(poll[0].desired_min_tx, 600_000);
    assert_eq!(poll[0].required_min_rx, 100_000);
    p.deliver(true, vec![Output::Send(poll[0])]);
    assert!(!p.a.view().polling, "b answered with F");
    assert_eq!(p.a.tx_interval(), Some(MS * 600));
    assert_eq!(p.a.rx_interval(), Some(MS * 100));
    p.run(MS * 5000);
    assert_eq!(p.b.detection_time(), Some(MS * 1800), "b: 3 × a's 600 ms");
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
}

#[test]
fn a_change_during_a_poll_is_polled_again_after_the_final() {
    let (mut s, now) = confirmed_up(Instant::now());
    assert!(s.view().polling);
    s.process(Input::SetTimers(timers(200, 3)), now);
    let mut fin = remote(State::Up, 1, 300, 3);
    fin.final_ = true;
    s.process(Input::Received(fin), now);
    assert!(s.view().polling, "the second change gets its own Poll");
    s.process(Input::Received(fin), now);
    assert!(!s.view().polling);
}

#[test]
fn a_new_detect_mult_while_up_is_polled() {
    let (mut s, now) = confirmed_up(Instant::now());
    let mut fin = remote(State::Up, 1, 300, 3);
    fin.final_ = true;
    s.process(Input::Received(fin), now);
    s.process(Input::SetTimers(timers(300, 5)), now);
    assert!(s.view().polling);
    let p = sent(&s.process(Input::Tick, now));
    assert_eq!(p[0].detect_mult, 5);
}

#[test]
fn timer_changes_while_down_apply_without_a_poll() {
    let now = Instant::now();
    let mut s = Session::new(1, timers(300, 3), now, 3);
    s.process(Input::SetTimers(timers(50, 3)), now);
    assert!(!s.view().polling);
    let p = sent(&s.process(Input::Tick, now));
    assert_eq!(p[0].required_min_rx, 50_000);
    assert_eq!(p[0].desired_min_tx, 1_000_000, "still slow while Down");
}

#[test]
fn discriminators_are_ours_in_my_and_the_remote_ones_in_your() {
    let mut p = Pair::new(timers(300, 3), timers(300, 3));
    p.run(MS * 3000);
    assert_eq!(p.a.view().remote_disc, 2);
    assert_eq!(p.b.view().remote_disc, 1);
    let pkt = sent(&p.a.process(Input::Tick, p.now + MS * 400));
    assert_eq!((pkt[0].my_disc, pkt[0].your_disc), (1, 2));
}

#[test]
fn at_50_ms_times_3_detection_is_150_ms() {
    let mut p = Pair::new(timers(50, 3), timers(50, 3));
    p.run(MS * 3000);
    assert_eq!(p.a.detection_time(), Some(MS * 150));
    p.wire_up = false;
    let cut = p.now;
    while p.a.state() == State::Up {
        p.run(MS);
    }
    assert!(p.now - cut <= MS * 151, "{:?}", p.now - cut);
}
