//! The receiver: an iBGP speaker on the host leg (AS 65515, 10.1.0.31)
//! with ADD-PATH receive for IPv4 unicast, standing in for a host agent.
//! It keeps a table of (prefix, path id) -> next hop and MED from the IPv4
//! NLRI, withdrawn routes and MP_REACH/MP_UNREACH for IPv4 unicast, ignores
//! every other attribute, and, once given a [`Target`], notes the instant
//! the first route arrives and the instant it first holds exactly the
//! target (as many paths, as many of them churned). It reads on its own
//! thread with a 1 MiB buffer, so it keeps up with any route server.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use steer_tests::Netns;

use super::input::Target;
use super::paths::{PathKey, PathTable, PathValue};
use super::session::{self, HOLD_TIME};
use super::topology::{HOST_ADDR, RS_ASN};
use super::wire::{self, MsgReader, NOTIFICATION, UPDATE};

/// The instants of one timed phase.
#[derive(Clone, Copy, Debug, Default)]
struct Times {
    target: Option<Target>,
    first: Option<Instant>,
    reached: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    paths: AtomicUsize,
    times: Mutex<Times>,
    cpu_ns: AtomicU64,
    failure: Mutex<Option<String>>,
}

/// What the receiver held when it was stopped.
#[derive(Debug)]
pub struct Summary {
    /// Distinct (prefix, path id) held.
    pub paths: usize,
    /// Distinct prefixes held.
    pub prefixes: usize,
    /// Paths whose MED carries the churn mark.
    pub churned: usize,
    /// Sum of the paths' MEDs.
    pub med_sum: u64,
    /// Paths per next hop.
    pub next_hops: BTreeMap<Ipv4Addr, usize>,
}

/// A connected receiver.
pub struct Receiver {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    socket: TcpStream,
    reader: Option<JoinHandle<PathTable>>,
    keepalive: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Establishes the iBGP session from the host namespace.
    pub fn connect(ns: &Netns, timeout: Duration) -> Result<Receiver> {
        let open = wire::open(RS_ASN, HOLD_TIME, HOST_ADDR, true);
        let e = session::establish(ns, HOST_ADDR, &open, timeout)?;
        session::require(&e.open, true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let socket = e.writer.try_clone()?;
        let (s, sh) = (stop.clone(), shared.clone());
        let reader = std::thread::spawn(move || receive(e.reader, &s, &sh));
        let s = stop.clone();
        let hold = e.open.hold_time;
        let writer = e.writer;
        let keepalive = std::thread::spawn(move || session::keepalive_loop(writer, hold, &s));
        Ok(Receiver {
            stop,
            shared,
            socket,
            reader: Some(reader),
            keepalive: Some(keepalive),
        })
    }

    /// The paths held now.
    pub fn paths(&self) -> usize {
        self.shared.paths.load(Ordering::Relaxed)
    }

    /// Starts timing a phase: from now on the first route received and
    /// the instant the table first equals `target` are noted.
    pub fn expect(&self, target: Target) {
        *self.shared.times.lock().expect("not poisoned") = Times {
            target: Some(target),
            first: None,
            reached: None,
        };
    }

    /// When the first route of the phase arrived, if one has.
    pub fn first(&self) -> Option<Instant> {
        self.shared.times.lock().expect("not poisoned").first
    }

    /// When the target was first reached.
    pub fn reached(&self) -> Option<Instant> {
        self.shared.times.lock().expect("not poisoned").reached
    }

    /// CPU time the receiving thread had used when the target was reached.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.shared.cpu_ns.load(Ordering::Relaxed))
    }

    /// Fails if the session ended, got a NOTIFICATION, or sent garbage.
    pub fn check(&self) -> Result<()> {
        if let Some(f) = self.shared.failure.lock().expect("not poisoned").as_ref() {
            bail!("receiver: {f}");
        }
        Ok(())
    }

    /// Stops the session and returns what the receiver held.
    pub fn finish(mut self) -> Result<Summary> {
        self.check()?;
        let table = self.shutdown().context("receiver thread missing")?;
        Ok(Summary {
            paths: table.len(),
            prefixes: table.prefixes(),
            churned: table.churned(),
            med_sum: table.med_sum(),
            next_hops: table.next_hops(),
        })
    }

    fn shutdown(&mut self) -> Option<PathTable> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(k) = self.keepalive.take() {
            let _ = k.join();
        }
        self.reader.take().and_then(|r| r.join().ok())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn receive(mut reader: MsgReader, stop: &AtomicBool, shared: &Shared) -> PathTable {
    let mut table = PathTable::default();
    let failure = loop {
        match reader.next() {
            Ok(Some((UPDATE, body))) => {
                let routes = match apply(body, &mut table) {
                    Ok(n) => n,
                    Err(e) => break format!("bad UPDATE: {e}"),
                };
                shared.paths.store(table.len(), Ordering::Relaxed);
                let mut t = shared.times.lock().expect("not poisoned");
                let Some(target) = t.target else { continue };
                if routes > 0 && t.first.is_none() {
                    t.first = Some(Instant::now());
                }
                if t.reached.is_none()
                    && table.len() == target.paths
                    && table.churned() == target.churned
                {
                    t.reached = Some(Instant::now());
                    shared.cpu_ns.store(
                        steer_tests::hostsim::poller::thread_cpu_ns(),
                        Ordering::Relaxed,
                    );
                }
            }
            Ok(Some((NOTIFICATION, body))) => {
                break format!("route server sent {}", wire::notification(body));
            }
            Ok(Some(_)) => {}
            Ok(None) => break "route server closed the session".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    if !stop.load(Ordering::SeqCst) {
        shared
            .failure
            .lock()
            .expect("not poisoned")
            .get_or_insert(failure);
    }
    table
}

fn u16_at(b: &[u8], at: usize) -> Result<usize> {
    b.get(at..at + 2)
        .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
        .ok_or_else(|| anyhow!("truncated at {at}"))
}

fn slice(b: &[u8], at: usize, len: usize) -> Result<&[u8]> {
    b.get(at..at + len)
        .ok_or_else(|| anyhow!("{len} bytes at {at} overrun {}", b.len()))
}

/// Applies one UPDATE body (ADD-PATH NLRI encoding) to `table`; returns
/// how many routes it announced or withdrew.
fn apply(body: &[u8], table: &mut PathTable) -> Result<usize> {
    let withdrawn_len = u16_at(body, 0)?;
    let withdrawn = slice(body, 2, withdrawn_len)?;
    let attrs_len = u16_at(body, 2 + withdrawn_len)?;
    let mut attrs = slice(body, 4 + withdrawn_len, attrs_len)?;
    let nlri = &body[4 + withdrawn_len + attrs_len..];
    let mut routes = 0;
    nlri_each(withdrawn, |k| {
        routes += 1;
        table.remove(k);
    })?;
    let mut next_hop = None;
    let mut med = 0;
    let mut mp_reach: Option<(u32, &[u8])> = None;
    while !attrs.is_empty() {
        let flags = attrs[0];
        let kind = *attrs.get(1).context("truncated attribute")?;
        let (len, at) = if flags & 0x10 != 0 {
            (u16_at(attrs, 2)?, 4)
        } else {
            (
                usize::from(*attrs.get(2).context("truncated attribute")?),
                3,
            )
        };
        let value = slice(attrs, at, len)?;
        match kind {
            3 if len == 4 => next_hop = Some(u32::from_be_bytes(value.try_into()?)),
            4 if len == 4 => med = u32::from_be_bytes(value.try_into()?),
            14 if value.starts_with(&[0, 1, 1]) => {
                let nh_len = usize::from(*value.get(3).context("short MP_REACH")?);
                let nh = slice(value, 4, 4)?;
                let rest = value.get(4 + nh_len + 1..).context("short MP_REACH")?;
                mp_reach = Some((u32::from_be_bytes(nh.try_into()?), rest));
            }
            15 if value.starts_with(&[0, 1, 1]) => nlri_each(&value[3..], |k| {
                routes += 1;
                table.remove(k);
            })?,
            _ => {}
        }
        attrs = &attrs[at + len..];
    }
    if let Some((next_hop, reach)) = mp_reach {
        nlri_each(reach, |k| {
            routes += 1;
            table.insert(k, PathValue { next_hop, med });
        })?;
    }
    if !nlri.is_empty() {
        let next_hop = next_hop.context("NLRI without NEXT_HOP")?;
        nlri_each(nlri, |k| {
            routes += 1;
            table.insert(k, PathValue { next_hop, med });
        })?;
    }
    Ok(routes)
}

/// Calls `f` for each ADD-PATH IPv4 NLRI entry (path id, length, prefix).
fn nlri_each(mut b: &[u8], mut f: impl FnMut(PathKey)) -> Result<()> {
    while !b.is_empty() {
        let head = slice(b, 0, 5)?;
        let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = head[4];
        if len > 32 {
            bail!("prefix length {len}");
        }
        let n = usize::from(len).div_ceil(8);
        let mut addr = [0u8; 4];
        addr[..n].copy_from_slice(slice(b, 5, n)?);
        f((u32::from_be_bytes(addr), len, id));
        b = &b[5 + n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(withdrawn);
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    }

    #[test]
    fn announces_replaces_and_withdraws_by_path_id() {
        let mut t = PathTable::default();
        let nh = [0x40, 3, 4, 10, 1, 0, 101];
        let two_paths = [0, 0, 0, 1, 24, 100, 64, 0, 0, 0, 0, 2, 24, 100, 64, 0];
        assert_eq!(apply(&update(&[], &nh, &two_paths), &mut t).unwrap(), 2);
        assert_eq!(t.len(), 2);
        apply(&update(&[], &nh, &two_paths[..8]), &mut t).unwrap();
        assert_eq!(t.len(), 2);
        apply(&update(&two_paths[8..], &[], &[]), &mut t).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.next_hops().into_iter().collect::<Vec<_>>(),
            [(Ipv4Addr::new(10, 1, 0, 101), 1)]
        );
    }

    #[test]
    fn mp_reach_and_unreach_for_ipv4_unicast() {
        let mut t = PathTable::default();
        let mut reach = vec![0x80, 14, 0, 0, 1, 1, 4, 10, 1, 0, 102, 0];
        reach.extend_from_slice(&[0, 0, 0, 7, 25, 100, 64, 0, 128]);
        reach[2] = (reach.len() - 3) as u8;
        apply(&update(&[], &reach, &[]), &mut t).unwrap();
        assert_eq!(
            t.next_hops().into_iter().collect::<Vec<_>>(),
            [(Ipv4Addr::new(10, 1, 0, 102), 1)]
        );
        let unreach = [0x80, 15, 12, 0, 1, 1, 0, 0, 0, 7, 25, 100, 64, 0, 128];
        apply(&update(&[], &unreach, &[]), &mut t).unwrap();
        assert_eq!(t.len(), 0);
    }
}
