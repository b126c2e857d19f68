//! Real traffic between namespaces and the kernel's own counters to judge
//! it by: iperf3 (TCP and UDP), a TCP stream and UDP datagrams whose
//! payload the receiver checks byte for byte against the same pseudo-random
//! sequence, `/proc/net/snmp`, `/proc/net/snmp6` and interface statistics
//! as the namespace's kernel reports them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::netns::Netns;
use crate::process::Process;

/// The kernel's SNMP counters of a namespace: `Ip:ForwDatagrams`,
/// `Tcp:InCsumErrors`, `Udp6InCsumErrors`, `Ip6OutForwDatagrams`, ...
pub fn snmp(ns: &Netns) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let v4 = ns.exec("cat", &["/proc/net/snmp"])?;
    let lines: Vec<&str> = v4.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (section, names) = names.split_once(' ').unwrap_or((names, ""));
        for (n, v) in names
            .split_whitespace()
            .zip(values.split_whitespace().skip(1))
        {
            if let Ok(v) = v.parse() {
                out.insert(format!("{section}{n}"), v);
            }
        }
    }
    let v6 = ns.exec("cat", &["/proc/net/snmp6"])?;
    for line in v6.lines() {
        let mut f = line.split_whitespace();
        if let (Some(n), Some(v)) = (f.next(), f.next())
            && let Ok(v) = v.parse()
        {
            out.insert(n.to_string(), v);
        }
    }
    Ok(out)
}

/// Packets `iface` in `ns` received and sent, from `/proc/net/dev`.
pub fn iface_packets(ns: &Netns, iface: &str) -> Result<(u64, u64)> {
    let dev = ns.exec("cat", &["/proc/net/dev"])?;
    dev.lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() != iface {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            Some((*f.get(1)?, *f.get(9)?))
        })
        .with_context(|| format!("{iface} in /proc/net/dev of {}", ns.name()))
}

/// A deterministic byte stream (xorshift64): the sender and the receiver
/// produce the same one, however they cut it into pieces.
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    /// Fills `buf` with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.word = self.state.to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

/// Sends `bytes` of [`Pattern`] `seed` over TCP from `from` to a listener
/// at `to_addr` in `to`, which checks every byte. Fails naming the first
/// differing offset.
pub fn tcp_stream(from: &Netns, to: &Netns, to_addr: SocketAddr, bytes: usize) -> Result<()> {
    let listener = to.enter(move || TcpListener::bind(to_addr))??;
    let receiver = std::thread::spawn(move || -> Result<usize> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut want = Pattern::new(0x5eed);
        let (mut got, mut expect) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        let mut total = 0;
        loop {
            let n = s.read(&mut got)?;
            if n == 0 {
                return Ok(total);
            }
            want.fill(&mut expect[..n]);
            if let Some(i) = (0..n).find(|&i| got[i] != expect[i]) {
                bail!("TCP payload differs at byte {}", total + i);
            }
            total += n;
        }
    });
    let sent = from.enter(move || -> Result<()> {
        let mut s = TcpStream::connect_timeout(&to_addr, Duration::from_secs(10))?;
        let mut p = Pattern::new(0x5eed);
        let mut buf = vec![0u8; 1 << 16];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len());
            p.fill(&mut buf[..n]);
            s.write_all(&buf[..n])?;
            left -= n;
        }
        Ok(())
    })?;
    // The receiver's verdict first: a sender error is usually its reset.
    let got = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("TCP receiver panicked"))??;
    sent.context("sending the TCP stream")?;
    ensure!(
        got == bytes,
        "TCP stream ended after {got} of {bytes} bytes"
    );
    Ok(())
}

/// What arrived of [`udp_datagrams`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpReport {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams received with exactly the payload sent.
    pub intact: u64,
    /// Datagrams received with another payload.
    pub corrupted: u64,
    /// Datagrams the receiver's own socket dropped (`UdpRcvbufErrors`,
    /// `Udp6RcvbufErrors` of its namespace), not the path.
    pub receiver_drops: u64,
    /// Packets the machine's per-CPU input backlogs dropped meanwhile
    /// (every namespace's: a flood elsewhere counts too).
    pub backlog_drops: u64,
}

impl UdpReport {
    /// Fails unless no datagram arrived corrupted and at least 95% of them
    /// arrived intact (a few may be lost; none may be damaged).
    pub fn ensure_intact(&self) -> Result<()> {
        ensure!(self.corrupted == 0, "datagrams corrupted: {self:?}");
        ensure!(
            self.intact * 100 >= self.sent * 95,
            "datagrams lost: {self:?}"
        );
        Ok(())
    }
}

/// Sends `count` datagrams of `size` bytes (a sequence number, then
/// [`Pattern`] seeded by it) from `from` to `to_addr` in `to`, paced in
/// bursts of 16 a millisecond (so a VMM's queue, not the path under test,
/// is never what drops them), and reports how many arrived intact.
pub fn udp_datagrams(
    from: &Netns,
    to: &Netns,
    to_addr: SocketAddr,
    count: u64,
    size: usize,
) -> Result<UdpReport> {
    ensure!(size >= 8, "datagrams carry an 8-byte sequence number");
    let sock = to.enter(move || -> Result<UdpSocket> {
        let s = UdpSocket::bind(to_addr)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        force_recv_buffer(&s, RECV_BUFFER)?;
        Ok(s)
    })??;
    let before = (snmp(to)?, softnet_dropped()?);
    let receiver = std::thread::spawn(move || -> UdpReport {
        let mut r = UdpReport::default();
        let (mut buf, mut expect) = (vec![0u8; 65536], vec![0u8; size]);
        while let Ok(n) = sock.recv(&mut buf) {
            let seq = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
            expect[..8].copy_from_slice(&seq.to_le_bytes());
            Pattern::new(seq).fill(&mut expect[8..]);
            if n == size && buf[..n] == expect[..] {
                r.intact += 1;
            } else {
                r.corrupted += 1;
            }
        }
        r
    });
    from.enter(move || -> Result<()> {
        let s = UdpSocket::bind(if to_addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        let mut buf = vec![0u8; size];
        for seq in 0..count {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            Pattern::new(seq).fill(&mut buf[8..]);
            s.send_to(&buf, to_addr)?;
            if seq % 16 == 15 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    })??;
    let mut r = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("UDP receiver panicked"))?;
    r.sent = count;
    let after = snmp(to)?;
    r.receiver_drops = ["UdpRcvbufErrors", "Udp6RcvbufErrors"]
        .iter()
        .map(|c| after.get(*c).unwrap_or(&0) - before.0.get(*c).unwrap_or(&0))
        .sum();
    r.backlog_drops = softnet_dropped()? - before.1;
    Ok(r)
}

/// The receiving socket's buffer: room for every datagram a test sends, so
/// a receiver thread the loaded machine schedules late drops nothing.
const RECV_BUFFER: usize = 32 << 20;

/// `SO_RCVBUFFORCE` (root: beyond `net.core.rmem_max`).
fn force_recv_buffer(s: &UdpSocket, bytes: usize) -> Result<()> {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes)?;
    // SAFETY: a valid socket and an int-sized option value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    ensure!(
        rc == 0,
        "SO_RCVBUFFORCE: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Packets the kernel dropped because a CPU's input backlog was full, on
/// every CPU (`/proc/net/softnet_stat`, second column): a flood anywhere on
/// the machine, another test's included, shows here.
pub fn softnet_dropped() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/net/softnet_stat")?;
    text.lines()
        .map(|l| {
            let field = l.split_whitespace().nth(1).unwrap_or("0");
            Ok(u64::from_str_radix(field, 16)?)
        })
        .sum()
}

/// An iperf3 server in a namespace, stopped on drop.
pub struct Iperf3Server {
    _process: Process,
}

impl Iperf3Server {
    /// Starts `iperf3 -s` on `bind` in `ns` (log in `dir`).
    pub fn start(ns: &Netns, bind: &str, dir: &std::path::Path) -> Result<Iperf3Server> {
        crate::route::require_tool("iperf3", "iperf3")?;
        let mut cmd = ns.command("iperf3")?;
        cmd.args(["-s", "-B", bind]);
        let process = ns.spawn("iperf3 -s", cmd, &dir.join(format!("iperf3-{bind}.log")))?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(Iperf3Server { _process: process })
    }
}

/// Runs an iperf3 client in `ns` with `args` (and `-J`), retrying a few
/// times while the server starts; returns the JSON report.
pub fn iperf3(ns: &Netns, args: &[&str]) -> Result<serde_json::Value> {
    let mut last = String::new();
    for _ in 0..10 {
        let mut all = args.to_vec();
        all.push("-J");
        let out = ns.output("iperf3", &all)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return serde_json::from_str(&text).context("iperf3 -J output");
        }
        last = text;
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!("iperf3 {} failed: {last}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_the_same_however_it_is_cut() {
        let mut whole = vec![0u8; 100];
        Pattern::new(7).fill(&mut whole);
        let mut pieces = vec![0u8; 100];
        let mut p = Pattern::new(7);
        for range in [0..3, 3..11, 11..64, 64..100] {
            p.fill(&mut pieces[range]);
        }
        assert_eq!(whole, pieces);
        let mut other = vec![0u8; 100];
        Pattern::new(8).fill(&mut other);
        assert_ne!(whole, other);
    }
}
