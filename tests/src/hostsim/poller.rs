//! The simulator's few system calls: one epoll instance (level-triggered),
//! an eventfd to wake it from other threads, and non-blocking TCP sockets
//! opened from a chosen source address. Thin wrappers over libc: what a
//! many-session driver needs without a task, a waker or a buffer per
//! socket.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readiness of one file descriptor, as epoll reported it.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    /// The token it was registered with.
    pub token: u64,
    /// Readable, closed by the peer, or in error.
    pub readable: bool,
    /// Writable (a non-blocking connect finished, or room to write).
    pub writable: bool,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A level-triggered epoll instance.
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    /// A new instance reporting at most `batch` events per wait.
    pub fn new(batch: usize) -> io::Result<Poller> {
        // SAFETY: plain syscall; the fd is owned from here on.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Poller {
            // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; batch],
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32
                | if write { libc::EPOLLOUT as u32 } else { 0 },
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        check(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Watches `fd` for reading, and for writing when `write`.
    pub fn add(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, write)
    }

    /// Changes whether `fd` is also watched for writing.
    pub fn set_write(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, write)
    }

    /// Waits up to `timeout_ms` (0: poll, -1: forever) and returns what is ready.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<impl Iterator<Item = Ready> + '_> {
        // SAFETY: the buffer holds `len` events and outlives the call.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout_ms,
            )
        };
        let n = match check(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        Ok(self.events[..n].iter().map(|e| {
            let bits = e.events;
            let token = e.u64;
            let gone = (libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32;
            Ready {
                token,
                readable: bits & (libc::EPOLLIN as u32 | gone) != 0,
                writable: bits & (libc::EPOLLOUT as u32 | libc::EPOLLERR as u32) != 0,
            }
        }))
    }
}

/// An eventfd: other threads [`Waker::wake`] the poller through it.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A non-blocking eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain syscall; the fd is owned from here on.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(Waker {
            // SAFETY: `fd` was just returned by eventfd and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The fd to register with the poller.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the poller's next (or current) wait return.
    pub fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a valid u64; a full counter only means
        // a wake is already pending.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wakes.
    pub fn clear(&self) {
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN when nothing is pending.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Starts a non-blocking TCP connection from `from` (any port) to `to`.
/// The source port is chosen at connect time (IP_BIND_ADDRESS_NO_PORT), so
/// tens of thousands of sources cost no port search at bind time. The
/// connection completes when the socket turns writable; see
/// [`take_error`].
pub fn connect(from: Ipv4Addr, to: SocketAddrV4) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned from here on.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::sockopt::set_int(fd, libc::SOL_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
    crate::sockopt::set_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    let src = sockaddr(SocketAddrV4::new(from, 0));
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `src` is a valid sockaddr_in of `len` bytes.
    check(unsafe { libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len) })?;
    let dst = sockaddr(to);
    // SAFETY: `dst` is a valid sockaddr_in of `len` bytes.
    let rc = unsafe { libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(sock)
}

/// The pending error of a socket (SO_ERROR): how a non-blocking connect ended.
pub fn take_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes of their sizes.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// One non-blocking read into `buf`: bytes read (0 at end of stream).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One non-blocking write of `buf`: bytes the socket took.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length; MSG_NOSIGNAL keeps a
    // reset peer from raising SIGPIPE.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// CPU time the calling thread has used, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    crate::stream::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}
