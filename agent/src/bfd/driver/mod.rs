//! The BFD thread: one OS thread (not a task on the daemon's runtime) that
//! owns the UDP sockets and every session's timers, so that a busy RIB can
//! delay neither a packet nor a detection. It receives on UDP 3784 (single
//! hop, RFC 5881: TTL / Hop Limit must be 255) and 4784 (multihop, RFC
//! 5883: TTL at least the configured minimum), demultiplexes by Your
//! Discriminator or by source address (RFC 5880 §6.8.6), feeds the pure
//! [`Session`]s, sends what they say from a per-session source port in
//! 49152–65535 with TTL 255, publishes each session's [`BfdStatus`], logs
//! every transition with its diagnostic, and tells its owner when a session
//! comes Up or goes Down ([`Event`]).

mod sys;

use super::packet::{Control, Discard, State, check_ttl};
use super::session::{Input, Output, Session, Signal, Timers};
use super::status::{BfdStatus, Path};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

pub use sys::on_connected_subnet;

/// UDP port of single-hop Control packets (RFC 5881 §4).
pub const PORT_SINGLE_HOP: u16 = 3784;
/// UDP port of multihop Control packets (RFC 5883 §5).
pub const PORT_MULTIHOP: u16 = 4784;

/// One session to run.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    /// The owner's id for it (events carry it).
    pub id: u32,
    /// A name for logs.
    pub name: String,
    /// The peer's address.
    pub remote: IpAddr,
    /// Our source address, or the kernel's choice.
    pub local: Option<IpAddr>,
    /// RFC 5883 multihop instead of RFC 5881 single hop.
    pub multihop: bool,
    /// Lowest TTL accepted on a multihop session.
    pub min_ttl: u8,
    /// Intervals and Detect Mult.
    pub timers: Timers,
}

/// A session came Up or went Down, for the owner.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The owner's id of the session.
    pub id: u32,
    /// What it means to a client (RFC 5882).
    pub signal: Signal,
}

enum Command {
    /// Send AdminDown on every session and end the thread.
    Shutdown,
}

/// Each session's status, by the owner's id.
pub type Statuses = Vec<(u32, Arc<BfdStatus>)>;

/// The running BFD thread.
#[derive(Debug)]
pub struct Bfd {
    cmds: std_mpsc::Sender<Command>,
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

struct Slot {
    spec: SessionSpec,
    fsm: Session,
    tx: OwnedFd,
    dest: SocketAddr,
    status: Arc<BfdStatus>,
}

struct Receiver {
    fd: OwnedFd,
    multihop: bool,
}

struct Thread {
    slots: Vec<Slot>,
    by_disc: HashMap<u32, usize>,
    by_addr: HashMap<(IpAddr, bool), usize>,
    receivers: Vec<Receiver>,
    wake: Arc<OwnedFd>,
    cmds: std_mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
}

fn random_u64() -> u64 {
    let mut v = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `v`.
    let n = unsafe { libc::getrandom((&mut v as *mut u64).cast(), 8, 0) };
    if n != 8 {
        v = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
    }
    v
}

impl Bfd {
    /// Open the sockets (failing here, with the cause, when a port cannot
    /// be had) and start the thread with `specs`, each session in Down.
    /// Returns the handle and each session's status by id.
    pub fn start(
        specs: Vec<SessionSpec>,
        events: mpsc::UnboundedSender<Event>,
    ) -> io::Result<(Bfd, Statuses)> {
        let mut receivers = Vec::new();
        for multihop in [false, true] {
            for v6 in [false, true] {
                if !specs
                    .iter()
                    .any(|s| s.multihop == multihop && s.remote.is_ipv6() == v6)
                {
                    continue;
                }
                let port = if multihop {
                    PORT_MULTIHOP
                } else {
                    PORT_SINGLE_HOP
                };
                let fd = sys::receiver(v6, port).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "BFD: cannot listen on UDP {} port {port}: {e}",
                            if v6 { "[::]" } else { "0.0.0.0" }
                        ),
                    )
                })?;
                receivers.push(Receiver { fd, multihop });
            }
        }
        let now = Instant::now();
        let mut slots = Vec::new();
        let mut statuses = Vec::new();
        let mut by_disc = HashMap::new();
        let mut by_addr = HashMap::new();
        let mut next_port = sys::SOURCE_PORT_MIN + (random_u64() % 16384) as u16;
        for spec in specs {
            let (tx, port) =
                sys::sender(spec.remote.is_ipv6(), spec.local, next_port).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "BFD to {} ({}): cannot open the sending socket: {e}",
                            spec.remote, spec.name
                        ),
                    )
                })?;
            next_port = port.checked_add(1).unwrap_or(sys::SOURCE_PORT_MIN);
            let disc = loop {
                let d = random_u64() as u32;
                if d != 0 && !by_disc.contains_key(&d) {
                    break d;
                }
            };
            let fsm = Session::new(disc, spec.timers, now, random_u64());
            let status = Arc::new(BfdStatus::new(
                fsm.view(),
                Path {
                    remote: spec.remote,
                    local: spec.local,
                    multihop: spec.multihop,
                    min_ttl: if spec.multihop { spec.min_ttl } else { 255 },
                    source_port: port,
                },
            ));
            let dest = SocketAddr::new(
                spec.remote,
                if spec.multihop {
                    PORT_MULTIHOP
                } else {
                    PORT_SINGLE_HOP
                },
            );
            info!(
                "BFD session to {} ({}): {}, {} ms x {}, source port {port}, discriminator {disc:#x}",
                spec.remote,
                spec.name,
                if spec.multihop {
                    "multihop (UDP 4784)"
                } else {
                    "single hop (UDP 3784)"
                },
                spec.timers.desired_min_tx.as_millis(),
                spec.timers.detect_mult
            );
            by_disc.insert(disc, slots.len());
            by_addr.insert((spec.remote, spec.multihop), slots.len());
            statuses.push((spec.id, status.clone()));
            slots.push(Slot {
                spec,
                fsm,
                tx,
                dest,
                status,
            });
        }
        let wake = Arc::new(sys::eventfd()?);
        let (cmd_tx, cmd_rx) = std_mpsc::channel();
        let t = Thread {
            slots,
            by_disc,
            by_addr,
            receivers,
            wake: wake.clone(),
            cmds: cmd_rx,
            events,
        };
        let thread = std::thread::Builder::new()
            .name("steer-bfd".into())
            .spawn(move || t.run())?;
        Ok((
            Bfd {
                cmds: cmd_tx,
                wake,
                thread: Some(thread),
            },
            statuses,
        ))
    }

    /// Tell every peer AdminDown (so it takes no action, RFC 5882 §4.2)
    /// and end the thread.
    pub fn shutdown(mut self) {
        let _ = self.cmds.send(Command::Shutdown);
        sys::wake(self.wake.as_raw_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's scheduling, raised where the system allows: real-time
/// (SCHED_FIFO) first, else a negative nice value. Both need
/// CAP_SYS_NICE; without it the thread competes with the RIB's threads
/// for the CPU like any other, and a loaded machine delays its timers.
fn raise_priority() -> Result<&'static str, String> {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: changes the scheduling of the calling thread only (pid 0).
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        return Ok("real-time (SCHED_FIFO 10)");
    }
    let fifo = io::Error::last_os_error();
    // SAFETY: gettid has no preconditions; setpriority on our own thread id.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10)
    };
    if rc == 0 {
        return Ok("nice -10");
    }
    Err(format!(
        "SCHED_FIFO: {fifo}; nice -10: {}",
        io::Error::last_os_error()
    ))
}

impl Thread {
    fn run(mut self) {
        match raise_priority() {
            Ok(how) => info!("BFD thread scheduling: {how}"),
            Err(e) => warn!(
                "BFD thread runs at normal priority ({e}): grant CAP_SYS_NICE so that CPU load cannot delay BFD timers"
            ),
        }
        let mut buf = [0u8; 512];
        loop {
            let now = Instant::now();
            for i in 0..self.slots.len() {
                if let Some(due) = self.slots[i].fsm.next_deadline()
                    && due <= now
                {
                    self.slots[i].status.timer_fired(due, now);
                    self.input(i, Input::Tick, now);
                }
            }
            let timeout = self
                .slots
                .iter()
                .filter_map(|s| s.fsm.next_deadline())
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()));
            let mut fds: Vec<RawFd> = vec![self.wake.as_raw_fd()];
            fds.extend(self.receivers.iter().map(|r| r.fd.as_raw_fd()));
            let ready = match sys::wait(&fds, timeout) {
                Ok(r) => r,
                Err(e) => {
                    error!("BFD: poll failed: {e}; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            if ready[0] {
                sys::drain(&self.wake);
                if self.commands() {
                    return;
                }
            }
            for (r, &is_ready) in ready[1..].iter().enumerate() {
                if is_ready {
                    self.drain_socket(r, &mut buf);
                }
            }
        }
    }

    /// Handle a queued command; true when the thread must end.
    fn commands(&mut self) -> bool {
        match self.cmds.try_recv() {
            Ok(Command::Shutdown) | Err(std_mpsc::TryRecvError::Disconnected) => {
                let now = Instant::now();
                for i in 0..self.slots.len() {
                    self.input(i, Input::AdminDown, now);
                }
                true
            }
            Err(std_mpsc::TryRecvError::Empty) => false,
        }
    }

    fn drain_socket(&mut self, r: usize, buf: &mut [u8]) {
        loop {
            let d = match sys::recv(&self.receivers[r].fd, buf) {
                Ok(Some(d)) => d,
                Ok(None) => return,
                Err(e) => {
                    warn!("BFD: receive failed: {e}");
                    return;
                }
            };
            let multihop = self.receivers[r].multihop;
            let now = Instant::now();
            match self.demux(&buf[..d.len], d.from.ip(), multihop, d.ttl) {
                Ok((i, c)) => {
                    let up = self.slots[i].fsm.state() == State::Up;
                    self.slots[i].status.received(now, up);
                    self.input(i, Input::Received(c), now);
                }
                Err((slot, why)) => {
                    if let Some(i) = slot {
                        self.slots[i].status.discarded(why.to_string());
                    }
                    debug!("BFD: discarded a packet from {}: {why}", d.from);
                }
            }
        }
    }

    /// RFC 5880 §6.8.6 reception: decode and check, find the session (by
    /// Your Discriminator, else by source address and hop mode), then the
    /// encapsulation's TTL rule for that session.
    fn demux(
        &self,
        payload: &[u8],
        from: IpAddr,
        multihop: bool,
        ttl: Option<u8>,
    ) -> Result<(usize, Control), (Option<usize>, Discard)> {
        let by_addr = self.by_addr.get(&(from, multihop)).copied();
        let c = Control::decode(payload).map_err(|e| (by_addr, e))?;
        let i = if c.your_disc != 0 {
            match self.by_disc.get(&c.your_disc).copied() {
                Some(i)
                    if self.slots[i].spec.remote == from
                        && self.slots[i].spec.multihop == multihop =>
                {
                    i
                }
                _ => return Err((by_addr, Discard::UnknownDiscriminator(c.your_disc))),
            }
        } else {
            by_addr.ok_or((None, Discard::NoSession))?
        };
        let spec = &self.slots[i].spec;
        check_ttl(ttl, spec.multihop, spec.min_ttl).map_err(|e| (Some(i), e))?;
        Ok((i, c))
    }

    fn input(&mut self, i: usize, input: Input, now: Instant) {
        let outs = self.slots[i].fsm.process(input, now);
        let slot = &self.slots[i];
        let mut sent = 0;
        for o in outs {
            match o {
                Output::Send(c) => match sys::send_to(&slot.tx, &c.encode(), slot.dest) {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        debug!("BFD to {}: send failed: {e}", slot.spec.remote);
                        slot.status.send_failed(e.to_string());
                    }
                },
                Output::Transition(t) => {
                    let line = format!(
                        "BFD session to {} ({}): {} -> {}, diagnostic {} (remote {:#x} says {}, diagnostic {})",
                        slot.spec.remote,
                        slot.spec.name,
                        t.from,
                        t.to,
                        t.diag,
                        t.remote_disc,
                        t.remote,
                        t.remote_diag
                    );
                    if t.from == State::Up {
                        warn!("{line}");
                    } else {
                        info!("{line}");
                    }
                }
                Output::Signal(signal) => {
                    let _ = self.events.send(Event {
                        id: slot.spec.id,
                        signal,
                    });
                }
            }
        }
        slot.status.sent(sent);
        slot.status.set_view(slot.fsm.view());
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.cmds.send(Command::Shutdown);
            sys::wake(self.wake.as_raw_fd());
        }
    }
}
