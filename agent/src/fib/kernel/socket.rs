//! A NETLINK_ROUTE socket tuned for bulk programming: large kernel buffers
//! so thousands of error reports fit while a batch is in flight, capped acks
//! that carry the kernel's extended-ack text, and strict dump filtering.
//! Raw datagram I/O only; message semantics live in `batch`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SNDBUF: usize = 4 << 20;
const RCVBUF: usize = 32 << 20;
const RX_BYTES: usize = 1 << 20;

/// An open rtnetlink socket in the calling thread's network namespace.
pub(crate) struct NlSocket {
    fd: OwnedFd,
    seq: u32,
    rx: Vec<u8>,
    sndbuf: usize,
    rcvbuf: usize,
}

impl NlSocket {
    pub fn open() -> io::Result<NlSocket> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a valid sockaddr_nl of the length passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        for opt in [
            libc::NETLINK_EXT_ACK,
            libc::NETLINK_CAP_ACK,
            libc::NETLINK_GET_STRICT_CHK,
        ] {
            setsockopt(&fd, libc::SOL_NETLINK, opt, 1)?;
        }
        let sndbuf = grow_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, SNDBUF)?;
        let rcvbuf = grow_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, RCVBUF)?;
        Ok(NlSocket {
            fd,
            seq: 0,
            rx: vec![0; RX_BYTES],
            sndbuf,
            rcvbuf,
        })
    }

    /// Reserves `n` consecutive sequence numbers; returns the first.
    pub fn reserve_seqs(&mut self, n: usize) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n as u32);
        first
    }

    /// The kernel's send buffer: one sendmsg may carry a little less.
    pub fn sndbuf(&self) -> usize {
        self.sndbuf
    }

    /// The kernel's receive buffer: replies beyond it are dropped (ENOBUFS).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    /// Sends one datagram (many netlink messages) to the kernel.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `bytes` is valid for its length; an unconnected netlink
            // socket sends to the kernel (port 0).
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one datagram; with `wait == false`, `None` when none is
    /// queued.
    pub fn recv(&mut self, wait: bool) -> io::Result<Option<&[u8]>> {
        let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
        loop {
            // SAFETY: `rx` is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.rx.as_mut_ptr().cast(),
                    self.rx.len(),
                    flags,
                )
            };
            if n >= 0 {
                let n = n as usize;
                if n > self.rx.len() {
                    return Err(io::Error::other(format!(
                        "netlink datagram of {n} bytes exceeds the {} byte receive buffer",
                        self.rx.len()
                    )));
                }
                return Ok(Some(&self.rx[..n]));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if !wait => return Ok(None),
                _ => return Err(e),
            }
        }
    }
}

fn setsockopt(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` is a c_int and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v.max(0) as usize)
}

/// Asks for `bytes` past the sysctl cap (needs CAP_NET_ADMIN), else as much
/// as the cap allows; returns what the kernel granted.
fn grow_buffer(
    fd: &OwnedFd,
    force: libc::c_int,
    plain: libc::c_int,
    bytes: usize,
) -> io::Result<usize> {
    let want = bytes as libc::c_int;
    if setsockopt(fd, libc::SOL_SOCKET, force, want).is_err() {
        setsockopt(fd, libc::SOL_SOCKET, plain, want)?;
    }
    getsockopt(fd, libc::SOL_SOCKET, plain)
}
