//! Many simulated hosts in one process: N iBGP ADD-PATH sessions to a
//! route server, each from its own address in the hosts range, each
//! behaving as `steer agent` does towards a route server (see
//! [`host`]), driven by one thread with one epoll instance and one read
//! buffer, so 50,000 sessions take a few hundred bytes each and a
//! fraction of a core. For `cargo xtask bench fanout` and the restart
//! storm lab test.
//!
//! It plays Steer's agent, so it speaks through Steer's codec (OPEN,
//! negotiation, UPDATE decoding); what it counts is its own: per host the
//! paths held and how many carry the attributes a run marks as changed
//! ([`routes`]), when the session was Established and when the host first
//! held the phase's [`Target`]. One host, the witness, also reads every
//! UPDATE with the tests' independent parser (`crate::wire`) into a full
//! table, so a run can check the contents path by path.
//!
//! The namespace the simulator runs in must be able to bind every host
//! address: `ip route add local RANGE dev lo` (AnyIP) does that without
//! adding the addresses one by one ([`anyip_routes`]).

pub mod host;
pub mod poller;
pub mod routes;

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use steer_lib::bgp::message::MAX_EXTENDED_MESSAGE_LEN;
use steer_lib::config::{AgentConfig, ConfigFile};

use crate::netns::Netns;
use crate::wire;
use host::{Agent, Host, Outcome, State};
use poller::{Poller, Ready, Waker};
pub use routes::Marker;
use routes::Routes;

/// What to simulate.
pub struct SimConfig {
    /// The route server's BGP address and port.
    pub server: SocketAddrV4,
    /// The AS of hosts and route server.
    pub asn: u32,
    /// One address per host (bindable in the simulator's namespace).
    pub hosts: Vec<Ipv4Addr>,
    /// Which announced attributes count as "changed" ([`Target::marked`]).
    pub marker: Marker,
    /// The host (index into `hosts`) that also keeps a full table.
    pub witness: Option<usize>,
}

/// What every host should hold at the end of a phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Distinct paths (prefix, path id).
    pub paths: u32,
    /// Of those, paths whose attributes the marker marks.
    pub marked: u32,
}

/// Counts across all hosts, as of the simulator's last loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Hosts whose session is Established now.
    pub established: usize,
    /// Hosts that have held the current target since it was set.
    pub reached: usize,
    /// Sessions lost after Established, all hosts, since the start.
    pub downs: u64,
    /// Connects and handshakes that failed before Established.
    pub setup_failures: u64,
    /// Bytes read from the route server.
    pub bytes: u64,
    /// Distinct UPDATEs decoded (each is applied to every host it reaches).
    pub decoded: u64,
    /// CPU time of the simulator's thread.
    pub cpu: Duration,
}

/// One host at the time of a [`HostSim::report`].
#[derive(Clone, Debug)]
pub struct HostReport {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Where its session is.
    pub state: State,
    /// When its session was Established.
    pub established: Option<Instant>,
    /// When it first held the current target.
    pub reached: Option<Instant>,
    /// Paths held.
    pub paths: u32,
    /// Of those, marked.
    pub marked: u32,
    /// Announcements and withdrawals received in its current session.
    pub announced: u32,
    /// Withdrawals received in its current session.
    pub withdrawn: u32,
    /// Sessions lost after Established.
    pub downs: u32,
    /// Connects and handshakes that failed.
    pub setup_failures: u32,
    /// Why its last session or attempt ended.
    pub last_error: Option<String>,
}

/// The witness host's table, read with the independent parser.
#[derive(Clone, Debug, Default)]
pub struct Witness {
    /// Path (prefix, path id) to its attributes.
    pub table: BTreeMap<(wire::Prefix, u32), wire::Attrs>,
    /// The first UPDATE the independent parser refused.
    pub error: Option<String>,
}

impl Witness {
    fn apply(&mut self, body: &[u8], add_path: bool) {
        match wire::update_routes(body, add_path) {
            Ok(u) => {
                for k in &u.withdrawn {
                    self.table.remove(k);
                }
                if let Some(a) = u.attrs {
                    for k in u.announced {
                        self.table.insert(k, a.clone());
                    }
                }
            }
            Err(e) => {
                self.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// The local routes (`ip route add local P dev lo`) that make every
/// address of `count` consecutive addresses from `first` bindable: the
/// fewest aligned prefixes covering exactly that span.
pub fn anyip_routes(first: Ipv4Addr, count: u32) -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    let mut at = u64::from(u32::from(first));
    let end = at + u64::from(count);
    while at < end {
        let mut size = if at == 0 {
            1 << 32
        } else {
            1u64 << at.trailing_zeros()
        };
        while at + size > end {
            size >>= 1;
        }
        out.push((Ipv4Addr::from(at as u32), 32 - size.trailing_zeros() as u8));
        at += size;
    }
    out
}

/// Raises this process's RLIMIT_NOFILE towards `need` (soft and hard; a
/// hard limit above the current one needs CAP_SYS_RESOURCE, up to
/// `fs.nr_open`), or else the soft limit to the hard one. Daemons started
/// afterwards inherit it. Returns the soft limit now in force, which may
/// be less than `need`.
pub fn raise_nofile(need: u64) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if lim.rlim_cur >= need {
        return Ok(lim.rlim_cur);
    }
    for want in [need.max(lim.rlim_max), lim.rlim_max] {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(lim.rlim_max),
        };
        // SAFETY: setrlimit reads the rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return Ok(want);
        }
    }
    Err(std::io::Error::last_os_error()).with_context(|| {
        format!(
            "raising RLIMIT_NOFILE from {} (hard {}) towards {need}",
            lim.rlim_cur, lim.rlim_max
        )
    })
}

/// The agent's session settings from its own configuration defaults.
fn agent(asn: u32, first: Ipv4Addr, server: SocketAddrV4) -> Result<Agent> {
    let text = format!(
        "asn = {asn}\nrouter_id = \"{first}\"\nroute_servers = [\"{}\"]\n",
        server.ip()
    );
    let cfg = AgentConfig::from_str(Path::new("simulated host"), &text)?;
    const NS: u64 = 1_000_000_000;
    Ok(Agent {
        asn,
        hold_time: cfg.hold_time,
        keepalive: cfg.keepalive,
        capabilities: steer_lib::agent::daemon::capabilities(&cfg, false),
        retry_ns: cfg.connect_retry * NS,
        retry_max_ns: cfg.connect_retry_max * NS,
    })
}

enum Cmd {
    Connect(Range<usize>),
    Drop(Range<usize>),
    Expect(Target, mpsc::Sender<Instant>),
    Report(mpsc::Sender<Vec<HostReport>>),
    Witness(mpsc::Sender<Witness>),
    Stop,
}

#[derive(Default)]
struct Shared {
    established: AtomicUsize,
    reached: AtomicUsize,
    downs: AtomicU64,
    setup_failures: AtomicU64,
    bytes: AtomicU64,
    decoded: AtomicU64,
    cpu_ns: AtomicU64,
}

/// The running simulator; stopped (every connection closed) when dropped.
pub struct HostSim {
    tx: mpsc::Sender<Cmd>,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<Result<()>>>>,
    hosts: usize,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

impl HostSim {
    /// Starts the simulator's thread in `ns`; every host is idle until
    /// [`HostSim::connect_all`].
    pub fn start(ns: &Netns, cfg: SimConfig) -> Result<HostSim> {
        let first = *cfg.hosts.first().context("no hosts to simulate")?;
        let agent = agent(cfg.asn, first, cfg.server)?;
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(Waker::new()?);
        let shared = Arc::new(Shared::default());
        let hosts = cfg.hosts.len();
        let (w, s) = (waker.clone(), shared.clone());
        let thread = ns.worker(
            move || {
                let poller = Poller::new(1024)?;
                poller.add(w.fd(), WAKE, false)?;
                Ok(Sim {
                    agent,
                    server: cfg.server,
                    hosts: cfg.hosts.into_iter().map(Host::new).collect(),
                    routes: Routes::new(cfg.marker),
                    poller,
                    waker: w,
                    rx,
                    queue: VecDeque::new(),
                    target: None,
                    base: Instant::now(),
                    witness: cfg.witness.map(|i| (i, Witness::default())),
                    counts: Counts::default(),
                    shared: s,
                    next_tick: 0,
                })
            },
            |sim: Sim| sim.run(),
        )?;
        Ok(HostSim {
            tx,
            waker,
            shared,
            thread: Some(thread),
            hosts,
        })
    }

    /// How many hosts it simulates.
    pub fn hosts(&self) -> usize {
        self.hosts
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx
            .send(cmd)
            .map_err(|_| anyhow!("the host simulator has stopped"))?;
        self.waker.wake();
        Ok(())
    }

    fn ask<T>(&self, cmd: impl FnOnce(mpsc::Sender<T>) -> Cmd) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.send(cmd(tx))?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| anyhow!("the host simulator did not answer within {REPLY_TIMEOUT:?}"))
    }

    /// The idle hosts among `hosts` (indexes) connect now, paced by the
    /// simulator's loop (a few hundred connects between reads); returns
    /// when it was asked.
    pub fn connect(&self, hosts: Range<usize>) -> Result<Instant> {
        let t = Instant::now();
        self.send(Cmd::Connect(hosts))?;
        Ok(t)
    }

    /// The hosts among `hosts` close their connections at once and stay
    /// idle (agents killed together).
    pub fn disconnect(&self, hosts: Range<usize>) -> Result<()> {
        self.send(Cmd::Drop(hosts))
    }

    /// Starts a phase: from now on each host notes when it first holds
    /// `target`. Returns the phase's start.
    pub fn expect(&self, target: Target) -> Result<Instant> {
        self.ask(|tx| Cmd::Expect(target, tx))
    }

    /// The counts as of the simulator's last loop.
    pub fn progress(&self) -> Progress {
        let s = &self.shared;
        Progress {
            established: s.established.load(Ordering::Relaxed),
            reached: s.reached.load(Ordering::Relaxed),
            downs: s.downs.load(Ordering::Relaxed),
            setup_failures: s.setup_failures.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            decoded: s.decoded.load(Ordering::Relaxed),
            cpu: Duration::from_nanos(s.cpu_ns.load(Ordering::Relaxed)),
        }
    }

    /// Every host's state and times.
    pub fn report(&self) -> Result<Vec<HostReport>> {
        self.ask(Cmd::Report)
    }

    /// The witness host's table (empty without a witness).
    pub fn witness(&self) -> Result<Witness> {
        self.ask(Cmd::Witness)
    }

    /// Fails if the simulator's thread has ended (with its error).
    pub fn check(&mut self) -> Result<()> {
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            let t = self.thread.take().expect("checked above");
            return match t.join() {
                Ok(Ok(Ok(()))) => Err(anyhow!("the host simulator stopped")),
                Ok(Ok(Err(e))) | Ok(Err(e)) => Err(e.context("the host simulator failed")),
                Err(_) => Err(anyhow!("the host simulator panicked")),
            };
        }
        Ok(())
    }
}

impl Drop for HostSim {
    fn drop(&mut self) {
        let _ = self.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The waker's token; hosts are tokens 0..N.
const WAKE: u64 = u64::MAX;
/// One read takes at most this much from a socket.
const READ_BUF: usize = 256 * 1024;
/// Connects started per loop, between reads.
const CONNECT_BATCH: usize = 256;
/// How often every host's timers are checked.
const TICK_NS: u64 = 100_000_000;

#[derive(Default)]
struct Counts {
    established: usize,
    reached: usize,
    downs: u64,
    setup_failures: u64,
    bytes: u64,
}

/// The simulator's thread state.
struct Sim {
    agent: Agent,
    server: SocketAddrV4,
    hosts: Vec<Host>,
    routes: Routes,
    poller: Poller,
    waker: Arc<Waker>,
    rx: mpsc::Receiver<Cmd>,
    queue: VecDeque<usize>,
    target: Option<Target>,
    base: Instant,
    witness: Option<(usize, Witness)>,
    counts: Counts,
    shared: Arc<Shared>,
    next_tick: u64,
}

impl Sim {
    /// Nanoseconds since the start, never 0 (0 means "not yet" in a host).
    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn instant(&self, ns: u64) -> Option<Instant> {
        (ns != 0).then(|| self.base + Duration::from_nanos(ns))
    }

    fn run(mut self) -> Result<()> {
        let mut buf = vec![0u8; READ_BUF + MAX_EXTENDED_MESSAGE_LEN];
        let mut ready: Vec<Ready> = Vec::with_capacity(1024);
        loop {
            let timeout = if self.queue.is_empty() { 50 } else { 0 };
            ready.clear();
            ready.extend(self.poller.wait(timeout).context("epoll_wait")?);
            let now = self.now();
            for r in &ready {
                if r.token == WAKE {
                    self.waker.clear();
                } else {
                    self.on_ready(*r, &mut buf, now);
                }
            }
            while let Ok(cmd) = self.rx.try_recv() {
                if !self.command(cmd) {
                    return Ok(());
                }
            }
            self.connect_some();
            if now >= self.next_tick {
                self.next_tick = now + TICK_NS;
                self.tick(now);
            }
            self.publish();
        }
    }

    fn publish(&self) {
        let s = &self.shared;
        s.established
            .store(self.counts.established, Ordering::Relaxed);
        s.reached.store(self.counts.reached, Ordering::Relaxed);
        s.downs.store(self.counts.downs, Ordering::Relaxed);
        s.setup_failures
            .store(self.counts.setup_failures, Ordering::Relaxed);
        s.bytes.store(self.counts.bytes, Ordering::Relaxed);
        s.decoded.store(self.routes.decoded, Ordering::Relaxed);
        s.cpu_ns.store(poller::thread_cpu_ns(), Ordering::Relaxed);
    }

    fn on_ready(&mut self, r: Ready, buf: &mut [u8], now: u64) {
        let i = r.token as usize;
        let Some(h) = self.hosts.get_mut(i) else {
            return;
        };
        let Some(fd) = h.fd() else { return };
        let mut outcome = None;
        if r.writable {
            outcome = h.on_writable(&self.agent, now);
        }
        let connected = !matches!(h.state, State::Connecting | State::Retry | State::Idle);
        if outcome.is_none() && r.readable && connected {
            let p = h.take_partial(buf);
            outcome = match poller::read(fd, &mut buf[p..p + READ_BUF]) {
                Ok(0) => Some(h.read_failed(
                    &self.agent,
                    "connection closed by the route server".into(),
                    now,
                )),
                Ok(n) => {
                    self.counts.bytes += n as u64;
                    let witness = match &mut self.witness {
                        Some((w, table)) if *w == i => Some(table),
                        _ => None,
                    };
                    let data = &buf[..p + n];
                    let read = h.process(data, &self.agent, &mut self.routes, witness, now);
                    if !matches!(read.outcome, Some(Outcome::Down { .. })) {
                        h.keep_partial(&data[read.used..]);
                    }
                    read.outcome
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    h.keep_partial(&buf[..p]);
                    None
                }
                Err(e) => Some(h.read_failed(&self.agent, format!("read: {e}"), now)),
            };
        }
        self.after(i, outcome, now);
    }

    /// Counts what happened to host `i`, checks its target, and keeps the
    /// poller's write interest in step.
    fn after(&mut self, i: usize, outcome: Option<Outcome>, now: u64) {
        match outcome {
            Some(Outcome::Established) => self.counts.established += 1,
            Some(Outcome::Down { was_established }) => {
                if was_established {
                    self.counts.established -= 1;
                    self.counts.downs += 1;
                } else {
                    self.counts.setup_failures += 1;
                }
                if let Some((w, table)) = &mut self.witness
                    && *w == i
                {
                    *table = Witness::default();
                }
            }
            None => {}
        }
        let h = &mut self.hosts[i];
        if let Some(t) = self.target
            && h.reached_at == 0
            && h.state == State::Established
            && h.held.count == t.paths
            && h.held.marked_count == t.marked
        {
            h.reached_at = now;
            self.counts.reached += 1;
        }
        if let Some(fd) = h.fd() {
            let want = h.wants_write();
            if want != h.watching_write && self.poller.set_write(fd, i as u64, want).is_ok() {
                h.watching_write = want;
            }
        }
    }

    fn connect_some(&mut self) {
        let now = self.now();
        for _ in 0..CONNECT_BATCH {
            let Some(i) = self.queue.pop_front() else {
                return;
            };
            let h = &mut self.hosts[i];
            if h.state != State::Queued {
                continue;
            }
            let r = poller::connect(h.addr, self.server)
                .and_then(|fd| self.poller.add(fd_of(&fd), i as u64, true).map(|()| fd));
            match r {
                Ok(fd) => {
                    h.connecting(fd, now);
                    h.watching_write = true;
                }
                Err(e) => {
                    h.connect_failed(&self.agent, &e, now);
                    self.counts.setup_failures += 1;
                }
            }
        }
    }

    fn tick(&mut self, now: u64) {
        for i in 0..self.hosts.len() {
            let (outcome, connect) = self.hosts[i].tick(&self.agent, now);
            if connect {
                self.hosts[i].state = State::Queued;
                self.queue.push_back(i);
            }
            if outcome.is_some() || self.hosts[i].wants_write() {
                self.after(i, outcome, now);
            }
        }
    }

    /// Applies a command; false to stop.
    fn command(&mut self, cmd: Cmd) -> bool {
        let now = self.now();
        match cmd {
            Cmd::Connect(range) => {
                let end = range.end.min(self.hosts.len());
                for i in range.start..end {
                    if self.hosts[i].state == State::Idle {
                        self.hosts[i].state = State::Queued;
                        self.queue.push_back(i);
                    }
                }
            }
            Cmd::Drop(range) => {
                let end = range.end.min(self.hosts.len());
                for i in range.start..end {
                    if self.hosts[i].stop() {
                        self.counts.established -= 1;
                    }
                    if self.hosts[i].reached_at != 0 {
                        self.hosts[i].reached_at = 0;
                        self.counts.reached -= 1;
                    }
                    if let Some((w, table)) = &mut self.witness
                        && *w == i
                    {
                        *table = Witness::default();
                    }
                }
            }
            Cmd::Expect(target, reply) => {
                self.target = Some(target);
                self.counts.reached = 0;
                for h in &mut self.hosts {
                    h.reached_at = 0;
                    if h.state == State::Established
                        && h.held.count == target.paths
                        && h.held.marked_count == target.marked
                    {
                        h.reached_at = now;
                        self.counts.reached += 1;
                    }
                }
                self.publish();
                let _ = reply.send(self.base + Duration::from_nanos(now));
            }
            Cmd::Report(reply) => {
                let r = self
                    .hosts
                    .iter()
                    .map(|h| HostReport {
                        addr: h.addr,
                        state: h.state,
                        established: self.instant(h.established_at),
                        reached: self.instant(h.reached_at),
                        paths: h.held.count,
                        marked: h.held.marked_count,
                        announced: h.held.announced,
                        withdrawn: h.held.withdrawn,
                        downs: h.downs,
                        setup_failures: h.setup_failures,
                        last_error: h.last_error.as_deref().map(str::to_string),
                    })
                    .collect();
                let _ = reply.send(r);
            }
            Cmd::Witness(reply) => {
                let w = self.witness.as_ref().map(|(_, t)| t.clone());
                let _ = reply.send(w.unwrap_or_default());
            }
            Cmd::Stop => return false,
        }
        true
    }
}

fn fd_of(fd: &std::os::fd::OwnedFd) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anyip_routes_cover_exactly_the_span_with_aligned_prefixes() {
        let r = anyip_routes(Ipv4Addr::new(10, 1, 1, 0), 50_000);
        let total: u64 = r.iter().map(|(_, l)| 1u64 << (32 - l)).sum();
        assert_eq!(total, 50_000);
        assert_eq!(r[0], (Ipv4Addr::new(10, 1, 1, 0), 24));
        assert_eq!(r[1], (Ipv4Addr::new(10, 1, 2, 0), 23));
        let mut at = u32::from(Ipv4Addr::new(10, 1, 1, 0));
        for (a, l) in &r {
            assert_eq!(u32::from(*a), at);
            assert_eq!(u32::from(*a) % (1 << (32 - l)), 0);
            at += 1 << (32 - l);
        }
        assert_eq!(
            anyip_routes(Ipv4Addr::new(10, 0, 0, 5), 1),
            vec![(Ipv4Addr::new(10, 0, 0, 5), 32)]
        );
    }
}
