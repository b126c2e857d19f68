//! The UDP generator of `cargo xtask bench forward`: what UDP sockets (a
//! VM's, or an appliance's for return traffic) hand their device, sent
//! with `sendmmsg` on `AF_PACKET` sockets with a virtio-net header
//! (`PACKET_VNET_HDR`), so each datagram leaves the sender's interface as
//! the socket would leave it — checksum left to offload
//! (`VIRTIO_NET_HDR_F_NEEDS_CSUM`, i.e. `CHECKSUM_PARTIAL`) — without
//! paying for the sender's UDP stack on every packet. Frames are built
//! once; flows are `SOCKETS` source ports x `PORTS` destination ports.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use steer_tests::Netns;
use steer_tests::vmm::pin_to;

/// Sockets (and source ports) per sending thread.
pub const SOCKETS: u16 = 8;
/// Destination ports.
pub const PORTS: u16 = 16;
const BATCH: usize = 64;
const VNET_HDR_LEN: usize = 10;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// Where and what to send.
#[derive(Clone, Debug)]
pub struct Flows {
    /// The sender's interface (in the sender's namespace).
    pub iface: String,
    /// Its MAC.
    pub src_mac: [u8; 6],
    /// The host's MAC on the other end.
    pub dst_mac: [u8; 6],
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// UDP payload bytes.
    pub payload: usize,
}

impl Flows {
    /// The frame (virtio-net header first) of flow `sport` -> `dport`.
    fn frame(&self, sport: u16, dport: u16) -> Vec<u8> {
        let udp_len = 8 + self.payload;
        let ip_len = 20 + udp_len;
        let mut f = Vec::with_capacity(VNET_HDR_LEN + 14 + ip_len);
        // virtio_net_hdr: NEEDS_CSUM, no GSO, csum_start 34, csum_offset 6.
        f.extend_from_slice(&[1, 0]);
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&34u16.to_le_bytes());
        f.extend_from_slice(&6u16.to_le_bytes());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let ip = f.len();
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&(ip_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        let check = !fold(sum(&f[ip..ip + 20]));
        f[ip + 10..ip + 12].copy_from_slice(&check.to_be_bytes());
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        let pseudo = sum(&self.src.octets()) + sum(&self.dst.octets()) + 17 + udp_len as u32;
        f.extend_from_slice(&fold(pseudo).to_be_bytes());
        f.extend((0..self.payload).map(|i| i as u8));
        f
    }
}

fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Sends `flows` from one thread per CPU of `cpus` (pinned there) in the
/// sender's namespace `ns` for `secs`; returns the frames the interface
/// took and the time it took.
pub fn generate(
    ns: &Netns,
    flows: &Flows,
    cpus: &[usize],
    secs: Duration,
) -> Result<(u64, Duration)> {
    let ns = File::open(format!("/run/netns/{}", ns.name()))?;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(t, &cpu)| {
            let ns = ns.try_clone().expect("dup netns fd");
            let (sent, stop, flows) = (sent.clone(), stop.clone(), flows.clone());
            std::thread::spawn(move || -> Result<()> {
                // SAFETY: setns on a valid netns fd; affects this thread only.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns: {}", std::io::Error::last_os_error());
                }
                pin_to(cpu);
                send_loop(&flows, t as u16, &sent, &stop)
            })
        })
        .collect();
    std::thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("generator panicked"))??;
    }
    Ok((sent.load(Ordering::Relaxed), elapsed))
}

fn packet_socket(iface: &str) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    for opt in [PACKET_VNET_HDR, PACKET_QDISC_BYPASS] {
        let one: libc::c_int = 1;
        // SAFETY: an int option on a valid socket.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                opt,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        if rc != 0 {
            bail!(
                "AF_PACKET option {opt}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface {iface} in the sender's namespace");
    }
    // SAFETY: sockaddr_ll is plain data.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = 0;
    addr.sll_ifindex = index as i32;
    // SAFETY: binding to a valid sockaddr_ll of the length passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        bail!("binding to {iface}: {}", std::io::Error::last_os_error());
    }
    Ok(fd)
}

fn send_loop(flows: &Flows, thread: u16, sent: &AtomicU64, stop: &AtomicBool) -> Result<()> {
    let sockets: Vec<(OwnedFd, Vec<Vec<u8>>)> = (0..SOCKETS)
        .map(|s| -> Result<_> {
            let sport = 40000 + thread * SOCKETS + s;
            let frames = (0..BATCH)
                .map(|i| flows.frame(sport, 9000 + (i as u16 % PORTS)))
                .collect();
            Ok((packet_socket(&flows.iface)?, frames))
        })
        .collect::<Result<_>>()?;
    let mut local = 0u64;
    let mut batches: Vec<(Vec<libc::iovec>, Vec<libc::mmsghdr>)> = sockets
        .iter()
        .map(|(_, frames)| {
            let iovs: Vec<libc::iovec> = frames
                .iter()
                .map(|f| libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                })
                .collect();
            (iovs, Vec::new())
        })
        .collect();
    for (iovs, msgs) in &mut batches {
        *msgs = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain data; all-zero is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
    }
    while !stop.load(Ordering::Relaxed) {
        for ((fd, _), (_, msgs)) in sockets.iter().zip(batches.iter_mut()) {
            // SAFETY: `msgs` point at live iovecs and frames.
            let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n > 0 {
                local += n as u64;
            }
        }
    }
    sent.fetch_add(local, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_valid_ip_header_and_the_partial_udp_sum() {
        let f = Flows {
            iface: "eth0".into(),
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: Ipv4Addr::new(10, 1, 1, 10),
            dst: Ipv4Addr::new(10, 251, 0, 1),
            payload: 64,
        }
        .frame(40000, 9000);
        assert_eq!(f.len(), VNET_HDR_LEN + 14 + 20 + 8 + 64);
        assert_eq!(fold(sum(&f[VNET_HDR_LEN + 14..VNET_HDR_LEN + 34])), 0xffff);
        assert_eq!(&f[0..2], &[1, 0], "NEEDS_CSUM, no GSO");
        let partial = u16::from_be_bytes([f[VNET_HDR_LEN + 40], f[VNET_HDR_LEN + 41]]);
        assert_eq!(partial, fold(sum(&[10, 1, 1, 10, 10, 251, 0, 1]) + 17 + 72));
    }
}
