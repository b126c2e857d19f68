//! A measured UDP stream: a sender in one namespace (a VM) sends numbered
//! datagrams at a fixed rate over one or more flows (one source port
//! each), and a sink in another namespace (the far end) records every
//! arrival with the interface it came in on. Loss and outages are counted
//! at the far end from the sequence numbers, with instruments that belong
//! to neither Steer nor the appliances: the sink's own socket, and the
//! sender's timestamps carried in each datagram.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::netns::Netns;
use crate::sockopt::set_int;

/// Bytes of a datagram: flow (4), sequence (8), send time (8).
const PAYLOAD: usize = 20;

/// CLOCK_MONOTONIC in nanoseconds: comparable across threads and
/// namespaces of this machine.
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The clock `id` (`CLOCK_MONOTONIC`, `CLOCK_THREAD_CPUTIME_ID`, …) in
/// nanoseconds.
pub fn clock_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What to send.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// Destination (the sink).
    pub dst: SocketAddrV4,
    /// Flows: source ports `first_port`, `first_port + 1`, … each a flow
    /// of its own (ECMP hashes them apart).
    pub flows: u16,
    /// Source port of flow 0.
    pub first_port: u16,
    /// Datagrams per second over all flows, taken in turn.
    pub rate: u32,
    /// How long to send.
    pub duration: Duration,
}

/// What the sender sent.
#[derive(Clone, Debug)]
pub struct Sent {
    /// Datagrams per flow.
    pub per_flow: Vec<u64>,
    /// Datagrams the kernel refused (no route, …), not sent.
    pub refused: u64,
    /// When the first was sent ([`now_ns`]).
    pub start_ns: u64,
    /// When the last was sent.
    pub end_ns: u64,
    /// The longest a single send blocked (a full socket buffer: the
    /// path held the datagrams instead of dropping them).
    pub longest_send: Duration,
}

/// A running sender.
pub struct Sender {
    thread: JoinHandle<Result<Result<Sent>>>,
}

impl Sender {
    /// Starts sending from `ns`.
    pub fn start(ns: &Netns, spec: StreamSpec) -> Result<Sender> {
        let thread = ns.thread(move || send(&spec))?;
        Ok(Sender { thread })
    }

    /// Waits until it is done.
    pub fn join(self) -> Result<Sent> {
        self.thread
            .join()
            .map_err(|_| anyhow!("sender thread panicked"))??
    }
}

fn send(spec: &StreamSpec) -> Result<Sent> {
    let sockets: Vec<UdpSocket> = (0..spec.flows)
        .map(|f| {
            UdpSocket::bind(SocketAddrV4::new(
                Ipv4Addr::UNSPECIFIED,
                spec.first_port + f,
            ))
            .with_context(|| format!("binding flow {f}'s source port"))
        })
        .collect::<Result<_>>()?;
    let gap = 1_000_000_000 / u64::from(spec.rate.max(1));
    let total = spec.duration.as_nanos() as u64 / gap;
    let mut per_flow = vec![0u64; usize::from(spec.flows)];
    let mut refused = 0;
    let mut longest_send = Duration::ZERO;
    let start = now_ns();
    let mut buf = [0u8; PAYLOAD];
    for i in 0..total {
        let due = start + i * gap;
        let now = now_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
        let f = (i % u64::from(spec.flows)) as usize;
        buf[0..4].copy_from_slice(&(f as u32).to_be_bytes());
        buf[4..12].copy_from_slice(&per_flow[f].to_be_bytes());
        let t = now_ns();
        buf[12..20].copy_from_slice(&t.to_be_bytes());
        match sockets[f].send_to(&buf, spec.dst) {
            Ok(_) => per_flow[f] += 1,
            Err(_) => refused += 1,
        }
        longest_send = longest_send.max(Duration::from_nanos(now_ns() - t));
    }
    Ok(Sent {
        per_flow,
        refused,
        start_ns: start,
        end_ns: now_ns(),
        longest_send,
    })
}

/// One datagram at the far end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Its flow.
    pub flow: u32,
    /// Its sequence number in the flow.
    pub seq: u64,
    /// When it was sent ([`now_ns`]).
    pub sent_ns: u64,
    /// When it arrived.
    pub at_ns: u64,
    /// The interface it arrived on.
    pub ifindex: u32,
}

/// The far end: records every datagram until stopped.
pub struct Sink {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Result<Vec<Arrival>>>>,
}

impl Sink {
    /// Listens on `bind` in `ns` (it must be bound before the sender
    /// starts, so this returns once the socket exists).
    pub fn start(ns: &Netns, bind: SocketAddrV4) -> Result<Sink> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = ns.worker(move || sink_socket(bind), move |s| receive(&s, &flag))?;
        Ok(Sink { stop, thread })
    }

    /// Stops listening (after a short drain) and returns what arrived.
    pub fn finish(self) -> Result<Vec<Arrival>> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .map_err(|_| anyhow!("sink thread panicked"))??
    }
}

fn sink_socket(bind: SocketAddrV4) -> Result<UdpSocket> {
    let s = UdpSocket::bind(bind).with_context(|| format!("binding the sink on {bind}"))?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    set_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1).context("IP_PKTINFO")?;
    // A deep queue: a busy machine must not drop at the sink.
    set_int(
        s.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        4 << 20,
    )
    .context("SO_RCVBUFFORCE")?;
    Ok(s)
}

fn receive(s: &UdpSocket, stop: &AtomicBool) -> Result<Vec<Arrival>> {
    let mut out = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if let Some(a) = recv_one(s)? {
            out.push(a);
        }
    }
    while let Some(a) = recv_one(s)? {
        out.push(a);
    }
    Ok(out)
}

fn recv_one(s: &UdpSocket) -> Result<Option<Arrival>> {
    let mut buf = [0u8; 64];
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data, all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` is valid for the lengths it gives; the
    // socket's read timeout bounds the wait.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    let at_ns = now_ns();
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted
        ) {
            return Ok(None);
        }
        return Err(anyhow!("sink receive: {e}"));
    }
    if (n as usize) < PAYLOAD {
        return Ok(None);
    }
    let mut ifindex = 0;
    // SAFETY: walks the control buffer the kernel filled.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>());
                ifindex = info.ipi_ifindex as u32;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let word = |a: usize, b: usize| buf[a..b].iter().fold(0u64, |v, x| v << 8 | u64::from(*x));
    Ok(Some(Arrival {
        flow: word(0, 4) as u32,
        seq: word(4, 12),
        sent_ns: word(12, 20),
        at_ns,
        ifindex,
    }))
}

/// The longest run of consecutive missing sequence numbers in a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Datagrams missing in the run.
    pub lost: u64,
    /// The sender's time from the last datagram before the run to the
    /// first after it: how long the flow was blacked out.
    pub outage: Duration,
    /// The interface the last one before the run came in on.
    pub before_ifindex: u32,
    /// The interface the first one after the run came in on.
    pub after_ifindex: u32,
    /// When the first datagram after the run was sent ([`now_ns`]).
    pub resumed_ns: u64,
}

/// One flow at the far end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowReport {
    /// The flow.
    pub flow: u32,
    /// Datagrams sent.
    pub sent: u64,
    /// Distinct datagrams received.
    pub received: u64,
    /// Sent minus received.
    pub lost: u64,
    /// Its longest outage, if any datagram is missing between two that
    /// arrived (a missing tail is counted in `lost` only).
    pub longest_gap: Option<Gap>,
    /// Received per interface index, in order of first arrival.
    pub by_interface: Vec<(u32, u64)>,
    /// The interface of the last datagram received.
    pub last_ifindex: Option<u32>,
}

/// Per-flow loss, outage and path, from what was sent and what arrived.
pub fn analyze(sent: &Sent, arrivals: &[Arrival]) -> Vec<FlowReport> {
    let mut reports = Vec::new();
    for (f, &count) in sent.per_flow.iter().enumerate() {
        let mut mine: Vec<&Arrival> = arrivals.iter().filter(|a| a.flow == f as u32).collect();
        mine.sort_by_key(|a| a.seq);
        mine.dedup_by_key(|a| a.seq);
        let mut longest: Option<Gap> = None;
        for w in mine.windows(2) {
            let lost = w[1].seq - w[0].seq - 1;
            if lost > 0 && longest.is_none_or(|g| lost > g.lost) {
                longest = Some(Gap {
                    lost,
                    outage: Duration::from_nanos(w[1].sent_ns.saturating_sub(w[0].sent_ns)),
                    before_ifindex: w[0].ifindex,
                    after_ifindex: w[1].ifindex,
                    resumed_ns: w[1].sent_ns,
                });
            }
        }
        let mut by_interface: Vec<(u32, u64)> = Vec::new();
        let mut by_time: Vec<&Arrival> = mine.clone();
        by_time.sort_by_key(|a| a.at_ns);
        for a in &by_time {
            match by_interface.iter_mut().find(|(i, _)| *i == a.ifindex) {
                Some((_, n)) => *n += 1,
                None => by_interface.push((a.ifindex, 1)),
            }
        }
        let received = mine.len() as u64;
        reports.push(FlowReport {
            flow: f as u32,
            sent: count,
            received,
            lost: count.saturating_sub(received),
            longest_gap: longest,
            by_interface,
            last_ifindex: by_time.last().map(|a| a.ifindex),
        });
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(flow: u32, seq: u64, ifindex: u32) -> Arrival {
        Arrival {
            flow,
            seq,
            sent_ns: seq * 1_000_000,
            at_ns: seq * 1_000_000 + 50_000,
            ifindex,
        }
    }

    #[test]
    fn the_longest_gap_its_outage_and_the_paths_come_from_sequence_numbers() {
        let sent = Sent {
            per_flow: vec![10, 10],
            refused: 0,
            start_ns: 0,
            end_ns: 10_000_000,
            longest_send: Duration::ZERO,
        };
        let mut a: Vec<Arrival> = [0, 1, 2, 6, 7, 9]
            .iter()
            .map(|&s| arrival(0, s, 5))
            .collect();
        a[3].ifindex = 7;
        a[4].ifindex = 7;
        a[5].ifindex = 7;
        a.extend((0..10).map(|s| arrival(1, s, 7)));
        a.push(arrival(0, 7, 7));
        let r = analyze(&sent, &a);
        assert_eq!(r[0].received, 6);
        assert_eq!(r[0].lost, 4);
        let g = r[0].longest_gap.unwrap();
        assert_eq!((g.lost, g.outage), (3, Duration::from_millis(4)));
        assert_eq!((g.before_ifindex, g.after_ifindex), (5, 7));
        assert_eq!(r[0].by_interface, vec![(5, 3), (7, 3)]);
        assert_eq!(r[1].lost, 0);
        assert_eq!(r[1].longest_gap, None);
        assert_eq!(r[1].last_ifindex, Some(7));
    }
}
