//! Route churn for load tests: raw eBGP speakers that announce N prefixes
//! (many per UPDATE, one attribute set, as a table dump looks) or withdraw
//! them, all speakers at once, as fast as the route server reads. Built
//! from [`crate::wire`], not from Steer's codec.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread::JoinHandle;

use anyhow::{Result, anyhow};

use crate::netns::Netns;
use crate::rawpeer::RawPeer;
use crate::wire;

/// Largest BGP message without the extended-message capability.
const MAX_MESSAGE: usize = 4096;

/// `count` distinct IPv4 prefixes: the /24s of 100.64.0.0/10, then its
/// /25s, /26s, … (outside the lab's VNet, on-prem and TEST-NET ranges).
pub fn prefixes(count: usize) -> Vec<(Ipv4Addr, u8)> {
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let mut out = Vec::with_capacity(count);
    let mut len = 24u8;
    while out.len() < count {
        let n = 1u32 << (len - 10);
        for i in 0..n {
            if out.len() == count {
                break;
            }
            out.push((Ipv4Addr::from(base + (i << (32 - len))), len));
        }
        len += 1;
        assert!(len <= 32, "too many prefixes");
    }
    out
}

/// UPDATEs announcing `prefixes` from `asn` with next hop `next_hop` (when
/// `announce`), or withdrawing them; each as full as 4096 bytes allow.
pub fn updates(
    asn: u32,
    next_hop: Ipv4Addr,
    prefixes: &[(Ipv4Addr, u8)],
    announce: bool,
) -> Vec<u8> {
    let mut attrs = wire::attribute(0x40, 1, &[0]);
    let mut path = vec![2, 1];
    path.extend_from_slice(&asn.to_be_bytes());
    attrs.extend(wire::attribute(0x40, 2, &path));
    attrs.extend(wire::attribute(0x40, 3, &next_hop.octets()));
    let fixed = wire::HEADER_LEN + 4 + if announce { attrs.len() } else { 0 };
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let flush = |chunk: &mut Vec<u8>, out: &mut Vec<u8>| {
        if chunk.is_empty() {
            return;
        }
        let m = if announce {
            wire::update(&[], &attrs, chunk)
        } else {
            wire::update(chunk, &[], &[])
        };
        out.extend_from_slice(&m);
        chunk.clear();
    };
    for &(p, len) in prefixes {
        let n = wire::nlri(p, len);
        if fixed + chunk.len() + n.len() > MAX_MESSAGE {
            flush(&mut chunk, &mut out);
        }
        chunk.extend_from_slice(&n);
    }
    flush(&mut chunk, &mut out);
    out
}

struct Speaker {
    stream: TcpStream,
    announce: Vec<u8>,
    withdraw: Vec<u8>,
    drain: JoinHandle<()>,
}

/// Established raw speakers, each with its announce and withdraw UPDATEs
/// encoded up front.
pub struct Feeders {
    speakers: Vec<Speaker>,
}

impl Feeders {
    /// Connects one eBGP speaker per `(address, asn)` from `ns` to `rs`
    /// (each must be a configured passive peer there) and establishes them
    /// all, hold time 0 (no keepalives needed); each will announce the same
    /// `count` prefixes with itself as next hop.
    pub fn connect(
        ns: &Netns,
        speakers: &[(Ipv4Addr, u32)],
        rs: Ipv4Addr,
        count: usize,
    ) -> Result<Feeders> {
        let table = prefixes(count);
        let mut out = Vec::new();
        for &(addr, asn) in speakers {
            let mut peer = RawPeer::connect(
                ns,
                Some(IpAddr::V4(addr)),
                SocketAddr::new(IpAddr::V4(rs), 179),
                crate::wait::default_timeout(),
            )?;
            peer.establish(
                &wire::simple_open(asn, 0, addr),
                crate::wait::default_timeout(),
            )?;
            let stream = peer.into_stream();
            let mut reader = stream.try_clone()?;
            let drain = std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while std::io::Read::read(&mut reader, &mut buf).is_ok_and(|n| n > 0) {}
            });
            out.push(Speaker {
                stream,
                announce: updates(asn, addr, &table, true),
                withdraw: updates(asn, addr, &table, false),
                drain,
            });
        }
        Ok(Feeders { speakers: out })
    }

    fn write_all(&mut self, announce: bool) -> Result<()> {
        std::thread::scope(|scope| {
            let writers: Vec<_> = self
                .speakers
                .iter_mut()
                .map(|s| {
                    scope.spawn(move || {
                        let bytes = if announce { &s.announce } else { &s.withdraw };
                        s.stream.write_all(bytes)
                    })
                })
                .collect();
            for w in writers {
                w.join().map_err(|_| anyhow!("writer panicked"))??;
            }
            Ok(())
        })
    }

    /// Every speaker announces its prefixes, all at once; returns when the
    /// route server has read them all.
    pub fn announce(&mut self) -> Result<()> {
        self.write_all(true)
    }

    /// Every speaker withdraws its prefixes, all at once.
    pub fn withdraw(&mut self) -> Result<()> {
        self.write_all(false)
    }
}

impl Drop for Feeders {
    fn drop(&mut self) {
        for s in self.speakers.drain(..) {
            let _ = s.stream.shutdown(std::net::Shutdown::Both);
            let _ = s.drain.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_distinct_and_deepen_past_the_slash_24s() {
        let p = prefixes(16_385);
        assert_eq!(p[0], (Ipv4Addr::new(100, 64, 0, 0), 24));
        assert_eq!(p[16_383], (Ipv4Addr::new(100, 127, 255, 0), 24));
        assert_eq!(p[16_384], (Ipv4Addr::new(100, 64, 0, 0), 25));
        let mut s = prefixes(100_000);
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 100_000);
    }

    #[test]
    fn updates_fill_messages_up_to_4096_bytes() {
        let p = prefixes(5_000);
        let a = updates(65101, Ipv4Addr::new(10, 1, 0, 101), &p, true);
        assert!((5..=6).contains(&wire::split(&a).len()));
        let w = updates(65101, Ipv4Addr::new(10, 1, 0, 101), &p, false);
        assert!(wire::split(&w).len() >= 5);
        let mut rest: &[u8] = &a;
        while !rest.is_empty() {
            let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            assert!(len <= MAX_MESSAGE);
            rest = &rest[len..];
        }
    }
}
