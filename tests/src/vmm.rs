//! A VM behind a tap, the way a hypervisor wires one: the "guest" is a
//! network namespace whose NIC is itself a tap (`IFF_VNET_HDR`, offloads
//! on: its kernel leaves checksums to offload and sends TSO superpackets,
//! as a virtio-net guest does), and this process plays the VMM, copying
//! every frame with its virtio-net header between that tap and the host's
//! tap (the VM interface the agent attaches to), as QEMU or vhost-net do.
//! Frames towards the host are written non-blocking, so the tun driver
//! takes the path vhost-net takes (native XDP where it can run).
//!
//! [`Vmm::stats`] says how many of the frames written to the host carried
//! `VIRTIO_NET_HDR_F_NEEDS_CSUM` and how many were GSO superpackets (and of
//! which type), so a test can prove it exercised them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};

use crate::netns::Netns;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
/// `struct virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
pub const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;

/// Frames the VMM copied from the guest to the host tap, by header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmmStats {
    /// Frames written to the host tap.
    pub frames: u64,
    /// Of those, with `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
    pub needs_csum: u64,
    /// GSO TCPv4 superpackets.
    pub gso_tcpv4: u64,
    /// GSO TCPv6 superpackets.
    pub gso_tcpv6: u64,
    /// Frames towards the host that the host tap refused.
    pub write_errors: u64,
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    needs_csum: AtomicU64,
    gso_tcpv4: AtomicU64,
    gso_tcpv6: AtomicU64,
    write_errors: AtomicU64,
}

/// A running VMM; stops (and both taps disappear) when dropped.
pub struct Vmm {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<JoinHandle<()>>,
}

/// Creates tap `name` in `ns` with a virtio-net header and the offloads a
/// virtio-net device negotiates (checksum, TSO4, TSO6).
fn tap(ns: &Netns, name: &str) -> Result<File> {
    let name = name.to_string();
    let label = format!("tap {name} in {}", ns.name());
    ns.enter(move || -> Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .context("opening /dev/net/tun")?;
        // SAFETY: ifreq is plain data; all-zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (i, b) in name.bytes().take(15).enumerate() {
            req.ifr_name[i] = b as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: TUNSETIFF with a valid ifreq on a tun fd.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) } != 0 {
            bail!("TUNSETIFF {name}: {}", std::io::Error::last_os_error());
        }
        let offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes the flags by value.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, offloads as libc::c_ulong) } != 0 {
            bail!("TUNSETOFFLOAD {name}: {}", std::io::Error::last_os_error());
        }
        Ok(file)
    })?
    .with_context(|| label)
}

fn nonblocking(file: &File) -> Result<()> {
    // SAFETY: fcntl on a valid fd.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: fcntl on a valid fd.
    if flags < 0
        || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        bail!("O_NONBLOCK: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 100) > 0 }
}

impl Vmm {
    /// Creates tap `guest_if` in `guest` (the VM's NIC) and tap `host_if`
    /// in `host` (the VM interface), and starts copying frames both ways.
    /// Neither tap is up or addressed yet. `cpus`: pin the copy towards
    /// the host (which also runs the host's receive path, as a vhost thread
    /// does) and the copy towards the guest to these CPUs.
    pub fn start(
        guest: &Netns,
        guest_if: &str,
        host: &Netns,
        host_if: &str,
        cpus: Option<[usize; 2]>,
    ) -> Result<Vmm> {
        let guest_tap = tap(guest, guest_if)?;
        let host_tap = tap(host, host_if)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let to_host_r = guest_tap.try_clone()?;
        let to_host_w = host_tap.try_clone()?;
        nonblocking(&to_host_w)?;
        let mut threads = Vec::new();
        {
            let (stop, counters) = (stop.clone(), counters.clone());
            threads.push(std::thread::spawn(move || {
                if let Some([cpu, _]) = cpus {
                    pin_to(cpu);
                }
                copy(to_host_r, to_host_w, &stop, Some(&counters));
            }));
        }
        {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                if let Some([_, cpu]) = cpus {
                    pin_to(cpu);
                }
                copy(host_tap, guest_tap, &stop, None);
            }));
        }
        Ok(Vmm {
            stop,
            counters,
            threads,
        })
    }

    /// What went from the guest to the host so far.
    pub fn stats(&self) -> VmmStats {
        let c = &self.counters;
        VmmStats {
            frames: c.frames.load(Ordering::Relaxed),
            needs_csum: c.needs_csum.load(Ordering::Relaxed),
            gso_tcpv4: c.gso_tcpv4.load(Ordering::Relaxed),
            gso_tcpv6: c.gso_tcpv6.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
        }
    }
}

/// Pins the calling thread to `cpu` (best effort: a CPU the machine lacks
/// leaves it unpinned).
pub fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity on this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Copies frames (virtio-net header first) from `from` to `to` until
/// `stop`; counts them by header when `counters` is given.
fn copy(mut from: File, mut to: File, stop: &AtomicBool, counters: Option<&Counters>) {
    let mut buf = vec![0u8; VNET_HDR_LEN + 65536];
    let fd = from.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        if !readable(fd) {
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(n) if n > VNET_HDR_LEN => n,
            Ok(_) => continue,
            Err(_) => continue,
        };
        let written = to.write(&buf[..n]).is_ok();
        if let Some(c) = counters {
            if !written {
                c.write_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            c.frames.fetch_add(1, Ordering::Relaxed);
            if buf[0] & NEEDS_CSUM != 0 {
                c.needs_csum.fetch_add(1, Ordering::Relaxed);
            }
            match buf[1] & 0x7f {
                GSO_TCPV4 => c.gso_tcpv4.fetch_add(1, Ordering::Relaxed),
                GSO_TCPV6 => c.gso_tcpv6.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
