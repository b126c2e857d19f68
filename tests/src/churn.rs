//! Route churn through a route server, measured at its receivers, with
//! raw BGP speakers ([`crate::RawPeer`] sessions taken over by threads):
//!
//! - [`Churner`]: an appliance re-announcing the same IPv4 prefixes in
//!   rounds, round `r` with MED `r`, as fast as asked;
//! - [`Watcher`]: a host with ADD-PATH receive that reads continuously and
//!   notes when it first holds every prefix at round `r` or later (a route
//!   server may merge rounds that arrive together);
//! - [`Stuck`]: a host that completed its session, keeps sending
//!   KEEPALIVEs and never reads again, so its receive window closes.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::rawpeer::RawPeer;
use crate::wire::{self, Message, Notification};

const KEEPALIVE_EVERY: Duration = Duration::from_secs(3);

/// The OPEN capabilities of a host: IPv4 unicast, 4-octet AS, ADD-PATH
/// receive, and graceful restart (120 s, forwarding preserved) when `gr`.
pub fn host_capabilities(asn: u32, gr: bool) -> Vec<Vec<u8>> {
    let mut caps = vec![
        wire::cap_ipv4_unicast(),
        wire::cap_as4(asn),
        wire::cap_add_path_ipv4(1),
    ];
    if gr {
        caps.push(wire::capability(64, &[0, 120, 0, 1, 1, 0x80]));
    }
    caps
}

/// A host's VM /24 as an agent announces it: ORIGIN IGP, an empty
/// AS_PATH, NEXT_HOP `next_hop`, LOCAL_PREF 100.
pub fn vm_prefix(prefix: Ipv4Addr, next_hop: Ipv4Addr) -> Vec<u8> {
    let mut attrs = wire::attribute(0x40, 1, &[0]);
    attrs.extend(wire::attribute(0x40, 2, &[]));
    attrs.extend(wire::attribute(0x40, 3, &next_hop.octets()));
    attrs.extend(wire::attribute(0x40, 5, &100u32.to_be_bytes()));
    wire::update(&[], &attrs, &wire::nlri(prefix, 24))
}

/// UPDATEs announcing `prefixes` (each message at most 4,096 bytes) with
/// ORIGIN IGP, AS_PATH `asn`, NEXT_HOP `next_hop` and MED `med`.
pub fn announce(asn: u32, next_hop: Ipv4Addr, med: u32, prefixes: &[(Ipv4Addr, u8)]) -> Vec<u8> {
    let mut attrs = wire::attribute(0x40, 1, &[0]);
    let mut path = vec![2, 1];
    path.extend_from_slice(&asn.to_be_bytes());
    attrs.extend(wire::attribute(0x40, 2, &path));
    attrs.extend(wire::attribute(0x40, 3, &next_hop.octets()));
    attrs.extend(wire::attribute(0x80, 4, &med.to_be_bytes()));
    let room = 4096 - wire::HEADER_LEN - 4 - attrs.len();
    let mut out = Vec::new();
    let mut nlri = Vec::new();
    for (p, len) in prefixes {
        let n = wire::nlri(*p, *len);
        if nlri.len() + n.len() > room {
            out.extend(wire::update(&[], &attrs, &nlri));
            nlri.clear();
        }
        nlri.extend(n);
    }
    if !nlri.is_empty() {
        out.extend(wire::update(&[], &attrs, &nlri));
    }
    out
}

/// `n` distinct prefixes of length `len` from `base` upwards.
pub fn prefixes(base: Ipv4Addr, len: u8, n: usize) -> Vec<(Ipv4Addr, u8)> {
    let step = 1u32 << (32 - u32::from(len));
    (0..n as u32)
        .map(|i| (Ipv4Addr::from(u32::from(base) + i * step), len))
        .collect()
}

/// KEEPALIVEs on `w` every 3 s until `stop`; the error that ends them is
/// kept in `failed` (a write is what first sees a reset: it takes the
/// socket's pending ECONNRESET, and later reads only see end of stream).
fn keepalives(
    mut w: TcpStream,
    stop: Arc<AtomicBool>,
    failed: Arc<Mutex<Option<ErrorKind>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if Instant::now() >= next {
                if let Err(e) = w.write_all(&wire::keepalive()) {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.kind());
                    return;
                }
                next += KEEPALIVE_EVERY;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// An appliance sending rounds of the same prefixes.
pub struct Churner {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Instant>>>,
    notification: Arc<Mutex<Option<Notification>>>,
    stream: TcpStream,
    threads: Vec<JoinHandle<()>>,
}

impl Churner {
    /// Takes over an Established appliance session: announces `prefixes`
    /// as round 1, then a new round every `every`. What the route server
    /// sends is read and dropped (a NOTIFICATION is kept).
    pub fn start(
        peer: RawPeer,
        asn: u32,
        next_hop: Ipv4Addr,
        prefixes: Vec<(Ipv4Addr, u8)>,
        every: Duration,
    ) -> Result<Churner> {
        let (stream, _) = peer.into_parts();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let notification = Arc::new(Mutex::new(None));
        let mut threads = Vec::new();
        let mut reader = stream.try_clone()?;
        reader.set_read_timeout(None)?;
        let note = notification.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Ok(Some((m, used))) = wire::parse(&buf) {
                    buf.drain(..used);
                    if let Message::Notification(n) = m {
                        *note.lock().expect("not poisoned") = Some(n);
                    }
                }
            }
        }));
        let mut w = stream.try_clone()?;
        let (stop2, sent2) = (stop.clone(), sent.clone());
        threads.push(std::thread::spawn(move || {
            let mut next = Instant::now();
            let mut keepalive = Instant::now() + KEEPALIVE_EVERY;
            let mut round = 1u32;
            while !stop2.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now >= next {
                    let bytes = announce(asn, next_hop, round, &prefixes);
                    sent2.lock().expect("not poisoned").push(Instant::now());
                    if w.write_all(&bytes).is_err() {
                        return;
                    }
                    round += 1;
                    next += every;
                }
                if now >= keepalive {
                    if w.write_all(&wire::keepalive()).is_err() {
                        return;
                    }
                    keepalive += KEEPALIVE_EVERY;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
        Ok(Churner {
            stop,
            sent,
            notification,
            stream,
            threads,
        })
    }

    /// When each round was written (round `r` at index `r - 1`).
    pub fn sent(&self) -> Vec<Instant> {
        self.sent.lock().expect("not poisoned").clone()
    }

    /// Fails if the route server sent a NOTIFICATION.
    pub fn check(&self) -> Result<()> {
        if let Some(n) = self.notification.lock().expect("not poisoned").as_ref() {
            bail!("the route server sent the churning appliance {n}");
        }
        Ok(())
    }
}

impl Drop for Churner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct Rounds {
    index: HashMap<(Ipv4Addr, u8), usize>,
    latest: Vec<u32>,
    held: usize,
    reached: Vec<Instant>,
}

impl Rounds {
    fn apply(&mut self, body: &[u8], now: Instant) -> Result<()> {
        let attrs = wire::update_attributes(body)?;
        let Some(med) = attrs.iter().find(|a| a.code == 4) else {
            return Ok(());
        };
        let Ok(med) = <[u8; 4]>::try_from(med.value.as_slice()) else {
            bail!("MED of {} octets", med.value.len());
        };
        let med = u32::from_be_bytes(med);
        let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let alen = usize::from(u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]));
        let mut nlri = &body[4 + wlen + alen..];
        while nlri.len() >= 5 {
            let len = nlri[4];
            let bytes = usize::from(len).div_ceil(8);
            let Some(addr) = nlri.get(5..5 + bytes) else {
                bail!("NLRI runs past the UPDATE");
            };
            let mut a = [0u8; 4];
            a[..bytes].copy_from_slice(addr);
            if let Some(&i) = self.index.get(&(Ipv4Addr::from(a), len)) {
                if self.latest[i] == 0 {
                    self.held += 1;
                }
                self.latest[i] = self.latest[i].max(med);
            }
            nlri = &nlri[5 + bytes..];
        }
        if self.held == self.latest.len() {
            let low = self.latest.iter().copied().min().unwrap_or(0) as usize;
            while self.reached.len() < low {
                self.reached.push(now);
            }
        }
        Ok(())
    }
}

/// A host receiver timing each round.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    rounds: Arc<Mutex<Rounds>>,
    failure: Arc<Mutex<Option<String>>>,
    bytes: Arc<AtomicU64>,
    stream: TcpStream,
    threads: Vec<JoinHandle<()>>,
}

impl Watcher {
    /// Takes over an Established host session (ADD-PATH receive) and
    /// watches `prefixes`.
    pub fn start(peer: RawPeer, prefixes: &[(Ipv4Addr, u8)]) -> Result<Watcher> {
        let (stream, leftover) = peer.into_parts();
        let rounds = Rounds {
            index: prefixes.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
            latest: vec![0; prefixes.len()],
            ..Rounds::default()
        };
        let rounds = Arc::new(Mutex::new(rounds));
        let failure = Arc::new(Mutex::new(None));
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut reader = stream.try_clone()?;
        reader.set_read_timeout(None)?;
        let (r2, f2, b2) = (rounds.clone(), failure.clone(), bytes.clone());
        let reader_thread = std::thread::spawn(move || {
            let mut buf = leftover;
            let mut chunk = vec![0u8; 1 << 20];
            let fail = |m: String| *f2.lock().expect("not poisoned") = Some(m);
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) => return fail("the route server closed the session".into()),
                    Ok(n) => n,
                    Err(e) => return fail(format!("read: {e}")),
                };
                b2.fetch_add(n as u64, Ordering::Relaxed);
                buf.extend_from_slice(&chunk[..n]);
                let now = Instant::now();
                let mut at = 0;
                loop {
                    match wire::parse(&buf[at..]) {
                        Ok(Some((Message::Update(body), used))) => {
                            at += used;
                            if let Err(e) = r2.lock().expect("not poisoned").apply(&body, now) {
                                return fail(format!("{e:#}"));
                            }
                        }
                        Ok(Some((Message::Notification(n), _))) => {
                            return fail(format!("the route server sent {n}"));
                        }
                        Ok(Some((_, used))) => at += used,
                        Ok(None) => break,
                        Err(e) => return fail(format!("{e:#}")),
                    }
                }
                buf.drain(..at);
            }
        });
        let writer = keepalives(stream.try_clone()?, stop.clone(), Arc::default());
        Ok(Watcher {
            stop,
            rounds,
            failure,
            bytes,
            stream,
            threads: vec![reader_thread, writer],
        })
    }

    /// When each round was first held for every prefix (round `r` at index
    /// `r - 1`).
    pub fn reached(&self) -> Vec<Instant> {
        self.rounds.lock().expect("not poisoned").reached.clone()
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Fails if the session ended or sent something unexpected.
    pub fn check(&self) -> Result<()> {
        if let Some(f) = self.failure.lock().expect("not poisoned").as_ref() {
            bail!("watcher: {f}");
        }
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A host that no longer reads.
pub struct Stuck {
    stop: Arc<AtomicBool>,
    stream: TcpStream,
    keepalive: Option<JoinHandle<()>>,
    write_failed: Arc<Mutex<Option<ErrorKind>>>,
}

impl Stuck {
    /// Takes over an Established session: KEEPALIVEs every 3 s, no reads.
    pub fn start(peer: RawPeer) -> Result<Stuck> {
        let (stream, _) = peer.into_parts();
        let stop = Arc::new(AtomicBool::new(false));
        let write_failed = Arc::default();
        let keepalive = Some(keepalives(
            stream.try_clone()?,
            stop.clone(),
            Arc::clone(&write_failed),
        ));
        Ok(Stuck {
            stop,
            stream,
            keepalive,
            write_failed,
        })
    }

    /// True once the connection was reset (a write or read fails with
    /// ECONNRESET or EPIPE), false if it is still open or was closed
    /// with a FIN.
    pub fn was_reset(&mut self) -> bool {
        let is_reset =
            |k: ErrorKind| matches!(k, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe);
        let written = || *self.write_failed.lock().unwrap_or_else(|p| p.into_inner());
        if written().is_some_and(is_reset) {
            return true;
        }
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .ok();
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..100 {
            match self.stream.read(&mut chunk) {
                Ok(0) => return written().is_some_and(is_reset),
                Ok(_) => {}
                Err(e) if is_reset(e.kind()) => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for Stuck {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(t) = self.keepalive.take() {
            let _ = t.join();
        }
    }
}

/// The median of `v` (0 for none).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// VmRSS of process `pid` in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_reached_when_every_prefix_holds_them_or_later() {
        let ps = prefixes(Ipv4Addr::new(100, 64, 0, 0), 24, 3);
        let mut r = Rounds {
            index: ps.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
            latest: vec![0; 3],
            ..Rounds::default()
        };
        let t = Instant::now();
        let update_body = |med: u32, with_ids: &[(u32, usize)]| {
            let mut attrs = wire::attribute(0x40, 1, &[0]);
            attrs.extend(wire::attribute(0x80, 4, &med.to_be_bytes()));
            let mut nlri = Vec::new();
            for (id, i) in with_ids {
                nlri.extend_from_slice(&id.to_be_bytes());
                nlri.extend(wire::nlri(ps[*i].0, ps[*i].1));
            }
            wire::update(&[], &attrs, &nlri)[wire::HEADER_LEN..].to_vec()
        };
        r.apply(&update_body(1, &[(1, 0), (1, 1)]), t).unwrap();
        assert!(r.reached.is_empty());
        r.apply(&update_body(2, &[(1, 2), (1, 0)]), t).unwrap();
        assert_eq!(r.reached.len(), 1, "prefix 1 still holds round 1");
        r.apply(&update_body(3, &[(1, 1)]), t).unwrap();
        assert_eq!(r.reached.len(), 2);
        assert_eq!(
            announce(1, Ipv4Addr::LOCALHOST, 1, &ps).len(),
            19 + 4 + 27 + 12,
            "header, two lengths, ORIGIN AS_PATH NEXT_HOP MED, three /24s"
        );
    }
}
