//! Packet capture with tcpdump inside a namespace, and a small pcap reader
//! that reassembles TCP streams into BGP messages: proof of what really went
//! on the wire, independent of any daemon's log.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use tempfile::TempDir;

use crate::netns::Netns;
use crate::process::Process;
use crate::route::require_tool;
use crate::wait::{default_timeout, wait_for};
use crate::wire::{self, Message};

/// A running tcpdump writing a pcap file; stopped on drop.
pub struct Capture {
    process: Process,
    pcap: PathBuf,
    dir: TempDir,
}

/// One TCP segment with payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Source.
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// Sequence number.
    pub seq: u32,
    /// TCP payload.
    pub payload: Vec<u8>,
    /// When it was captured (the pcap timestamp: ns since the Unix epoch).
    pub time_ns: u64,
}

impl Capture {
    /// Starts `tcpdump -i IFACE -U -w FILE FILTER` in `ns` and waits until it
    /// is listening.
    pub fn start(ns: &Netns, iface: &str, filter: &str) -> Result<Capture> {
        require_tool("tcpdump", "tcpdump")?;
        let dir = crate::tmp::dir(&format!("{}-pcap", ns.name()))?;
        let pcap = dir.path().join("capture.pcap");
        let log = dir.path().join("tcpdump.log");
        let mut cmd = ns.command("tcpdump")?;
        cmd.args(["-i", iface, "--immediate-mode", "-U", "-n", "-s", "0", "-w"])
            .arg(&pcap)
            .args(filter.split_whitespace());
        let mut process = ns.spawn("tcpdump", cmd, &log)?;
        let what = format!("tcpdump on {iface} in {}: not listening", ns.name());
        wait_for(&what, default_timeout(), || {
            process.ensure_running()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text.contains("listening on").then_some(()))
        })
        .map_err(|e| anyhow::anyhow!("{e:#}; tcpdump output:\n{}", process.log_tail()))?;
        Ok(Capture { process, pcap, dir })
    }

    /// Waits until the pcap file has stopped growing (for 300 ms, at most
    /// 5 s), stops tcpdump and returns the segments captured.
    pub fn stop(&mut self) -> Result<Vec<Segment>> {
        let size = || std::fs::metadata(&self.pcap).map(|m| m.len()).unwrap_or(0);
        let start = std::time::Instant::now();
        let mut last = (size(), std::time::Instant::now());
        while start.elapsed() < std::time::Duration::from_secs(5)
            && last.1.elapsed() < std::time::Duration::from_millis(300)
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if size() != last.0 {
                last = (size(), std::time::Instant::now());
            }
        }
        self.process.stop();
        tcp_segments(&std::fs::read(&self.pcap)?)
    }

    /// Stops tcpdump and returns every BGP message, per direction, in order.
    pub fn bgp_messages(&mut self) -> Result<Vec<(SocketAddrV4, SocketAddrV4, Message)>> {
        Ok(bgp_messages(&self.stop()?))
    }

    /// The pcap file (valid after [`Capture::stop`]).
    pub fn pcap_path(&self) -> &Path {
        &self.pcap
    }

    /// This capture's dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn u16_at(b: &[u8], i: usize) -> usize {
    usize::from(u16::from_be_bytes([b[i], b[i + 1]]))
}

/// Reads an Ethernet pcap file (micro- or nanosecond, either byte order)
/// and returns its IPv4 TCP segments that carry payload.
pub fn tcp_segments(pcap: &[u8]) -> Result<Vec<Segment>> {
    if pcap.len() < 24 {
        bail!("pcap too short ({} bytes)", pcap.len());
    }
    let magic = [pcap[0], pcap[1], pcap[2], pcap[3]];
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => bail!("not a pcap file (magic {magic:02x?})"),
    };
    let u32_at = |i: usize| {
        let b = [pcap[i], pcap[i + 1], pcap[i + 2], pcap[i + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    if u32_at(20) != 1 {
        bail!("pcap link type {} is not Ethernet", u32_at(20));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32_at(at + 8) as usize;
        let frac = u64::from(u32_at(at + 4));
        let time_ns =
            u64::from(u32_at(at)) * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        let start = at + 16;
        at = start + len;
        if at > pcap.len() {
            break;
        }
        if let Some(seg) = ethernet_tcp(&pcap[start..at], time_ns) {
            out.push(seg);
        }
    }
    Ok(out)
}

fn ethernet_tcp(frame: &[u8], time_ns: u64) -> Option<Segment> {
    let mut off = 12;
    while frame.len() >= off + 2 && u16_at(frame, off) == 0x8100 {
        off += 4;
    }
    if frame.len() < off + 2 || u16_at(frame, off) != 0x0800 {
        return None;
    }
    let ip = &frame[off + 2..];
    if ip.len() < 20 || ip[9] != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = u16_at(ip, 2).min(ip.len());
    let tcp = ip.get(ihl..total)?;
    if tcp.len() < 20 {
        return None;
    }
    let data_off = usize::from(tcp[12] >> 4) * 4;
    let payload = tcp.get(data_off..)?.to_vec();
    if payload.is_empty() {
        return None;
    }
    let addr = |i: usize| Ipv4Addr::new(ip[i], ip[i + 1], ip[i + 2], ip[i + 3]);
    Some(Segment {
        src: SocketAddrV4::new(addr(12), u16_at(tcp, 0) as u16),
        dst: SocketAddrV4::new(addr(16), u16_at(tcp, 2) as u16),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        payload,
        time_ns,
    })
}

/// Reassembles each direction of each TCP connection (retransmissions
/// dropped) and splits it into BGP messages.
pub fn bgp_messages(segments: &[Segment]) -> Vec<(SocketAddrV4, SocketAddrV4, Message)> {
    bgp_messages_timed(segments)
        .into_iter()
        .map(|(src, dst, m, _)| (src, dst, m))
        .collect()
}

/// [`bgp_messages`] with, for each message, when the segment completing it
/// was captured (ns since the Unix epoch).
pub fn bgp_messages_timed(segments: &[Segment]) -> Vec<(SocketAddrV4, SocketAddrV4, Message, u64)> {
    let mut flows: BTreeMap<(SocketAddrV4, SocketAddrV4), Vec<&Segment>> = BTreeMap::new();
    let mut order = Vec::new();
    for s in segments {
        let key = (s.src, s.dst);
        if !flows.contains_key(&key) {
            order.push(key);
        }
        flows.entry(key).or_default().push(s);
    }
    let mut out = Vec::new();
    for key in order {
        let segs = &flows[&key];
        let isn = segs[0].seq;
        let mut by_offset: BTreeMap<u32, &Segment> = BTreeMap::new();
        for s in segs {
            by_offset.entry(s.seq.wrapping_sub(isn)).or_insert(s);
        }
        let mut stream = Vec::new();
        let mut reached: Vec<(usize, u64)> = Vec::new();
        for (offset, seg) in by_offset {
            let have = stream.len() as u32;
            if offset <= have {
                let skip = (have - offset) as usize;
                if skip < seg.payload.len() {
                    stream.extend_from_slice(&seg.payload[skip..]);
                    reached.push((stream.len(), seg.time_ns));
                }
            }
        }
        let mut done = 0;
        while let Ok(Some((m, used))) = wire::parse(&stream[done..]) {
            done += used;
            let time = reached
                .iter()
                .find(|(end, _)| *end >= done)
                .map_or(0, |(_, t)| *t);
            out.push((key.0, key.1, m, time));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + 20 + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&[10, 1, 0, 40, 10, 1, 0, 10]);
        let mut tcp = vec![0xaf, 0xc8, 0x00, 0xb3];
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0]);
        f.extend(ip);
        f.extend(tcp);
        f.extend_from_slice(payload);
        f
    }

    fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&65535u32.to_le_bytes());
        p.extend_from_slice(&1u32.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            p.extend_from_slice(&(i as u32).to_le_bytes());
            p.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(f);
        }
        p
    }

    #[test]
    fn split_and_retransmitted_segments_reassemble_into_messages() {
        let msg = wire::keepalive();
        let open = wire::simple_open(65040, 9, Ipv4Addr::new(10, 1, 0, 40));
        let mut stream = open.clone();
        stream.extend_from_slice(&msg);
        let (a, b) = stream.split_at(30);
        let file = pcap(&[frame(1000, a), frame(1000, a), frame(1030, b)]);
        let segs = tcp_segments(&file).unwrap();
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0].dst, "10.1.0.10:179".parse().unwrap());
        let msgs = bgp_messages(&segs);
        assert_eq!(msgs.len(), 2);
        let timed = bgp_messages_timed(&segs);
        assert_eq!(
            timed[0].3, 2_002_000_000,
            "the OPEN completes in the third segment (2 s, 2000 µs)"
        );
        assert!(matches!(msgs[0].2, Message::Open { asn: 65040, .. }));
        assert_eq!(msgs[1].2, Message::Keepalive);
    }
}
