//! The UDP sockets of BFD, through libc because std cannot say what they
//! need: receive sockets on 3784 (RFC 5881) and 4784 (RFC 5883) that
//! report each datagram's TTL or Hop Limit (`IP_RECVTTL`,
//! `IPV6_RECVHOPLIMIT`), IPv6 ones with `IPV6_V6ONLY` beside IPv4 ones on
//! the same port, and per-session transmit sockets on a source port in
//! 49152–65535 (RFC 5881 §4) sending with TTL 255 and the Internet Control
//! precedence. Also the test for "is this address on a connected subnet".

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The first source port RFC 5881 §4 allows.
pub const SOURCE_PORT_MIN: u16 = 49152;

/// IP precedence 6, Internet Control (CS6), as routing protocols use.
const TOS_INTERNET_CONTROL: libc::c_int = 0xc0;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` is a c_int and its size is passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned
            // for a sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn udp_socket(v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    check(raw)?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    let (ss, len) = sockaddr(addr);
    // SAFETY: `ss` holds a valid address of `len` bytes.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    })
}

/// A receive socket on `port` of every address of one family, reporting
/// each datagram's TTL / Hop Limit.
pub fn receiver(v6: bool, port: u16) -> io::Result<OwnedFd> {
    let fd = udp_socket(v6)?;
    let raw = fd.as_raw_fd();
    if v6 {
        setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
        setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
        bind(
            &fd,
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        )?;
    } else {
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
        bind(
            &fd,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        )?;
    }
    Ok(fd)
}

/// A transmit socket for one session: bound to `local` (or any address of
/// the family) on the first free port from `first` on, wrapping within
/// 49152–65535; TTL / Hop Limit 255 and the Internet Control precedence.
/// Returns the socket and its port.
pub fn sender(v6: bool, local: Option<IpAddr>, first: u16) -> io::Result<(OwnedFd, u16)> {
    let fd = udp_socket(v6)?;
    let raw = fd.as_raw_fd();
    if v6 {
        setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
        setsockopt_int(
            raw,
            libc::IPPROTO_IPV6,
            libc::IPV6_TCLASS,
            TOS_INTERNET_CONTROL,
        )?;
    } else {
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_TTL, 255)?;
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_TOS, TOS_INTERNET_CONTROL)?;
    }
    let ip = local.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let span = u32::from(u16::MAX - SOURCE_PORT_MIN) + 1;
    let start = u32::from(first.max(SOURCE_PORT_MIN) - SOURCE_PORT_MIN);
    let mut last = None;
    for i in 0..span {
        let port = SOURCE_PORT_MIN + ((start + i) % span) as u16;
        match bind(&fd, SocketAddr::new(ip, port)) {
            Ok(()) => return Ok((fd, port)),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// Send one datagram.
pub fn send_to(fd: &OwnedFd, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
    let (ss, len) = sockaddr(to);
    // SAFETY: `bytes` and `ss` are valid for the lengths passed.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One received datagram: its length in the buffer, source and TTL.
#[derive(Debug)]
pub struct Datagram {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Where it came from.
    pub from: SocketAddr,
    /// Its TTL or Hop Limit, when the kernel reported it.
    pub ttl: Option<u8>,
}

/// Receive one datagram without blocking; `Ok(None)` when none is queued.
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
    // SAFETY: plain data, all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data, all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` is valid for the lengths it gives.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(e);
    }
    let mut ttl = None;
    // SAFETY: CMSG_* walk the control buffer the kernel filled, within
    // msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            if (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT)
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let Some(from) = from_sockaddr(&ss) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without a source address",
        ));
    };
    Ok(Some(Datagram {
        len: n as usize,
        from,
        ttl,
    }))
}

/// An eventfd to wake the thread from `poll`.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2); the result is checked before use.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    check(raw)?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Add one to an eventfd.
pub fn wake(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a u64; a full counter only means the
    // thread is already awake.
    unsafe {
        libc::write(fd, (&one as *const u64).cast(), 8);
    }
}

/// Reset an eventfd.
pub fn drain(fd: &OwnedFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a u64.
    unsafe {
        libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
    }
}

/// Wait until one of `fds` is readable or `timeout` passes (`None`: no
/// timeout); returns which are readable. Nanosecond timeouts (`ppoll`) so
/// a 50 ms session is not rounded to the millisecond twice.
pub fn wait(fds: &[RawFd], timeout: Option<std::time::Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` is valid for its length; `tsp` is null or points to a
    // live timespec; no signal mask is changed.
    let rc = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// True when `addr` lies in the subnet of one of this namespace's
/// interface addresses (a directly connected peer, RFC 5881), false when it
/// is reached through a router (RFC 5883).
pub fn on_connected_subnet(addr: IpAddr) -> io::Result<bool> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    check(unsafe { libc::getifaddrs(&mut head) })?;
    let mut found = false;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: both point to sockaddrs of the family in sa_family;
        // sockaddr_storage is large enough for any of them.
        let (a, m) = unsafe {
            let copy = |p: *const libc::sockaddr| {
                let mut ss: libc::sockaddr_storage = std::mem::zeroed();
                let len = match libc::c_int::from((*p).sa_family) {
                    libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
                    libc::AF_INET6 => std::mem::size_of::<libc::sockaddr_in6>(),
                    _ => 0,
                };
                std::ptr::copy_nonoverlapping(
                    p.cast::<u8>(),
                    (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
                    len,
                );
                from_sockaddr(&ss)
            };
            (copy(ifa.ifa_addr), copy(ifa.ifa_netmask))
        };
        let (Some(a), Some(m)) = (a, m) else { continue };
        let same = match (a.ip(), m.ip(), addr) {
            (IpAddr::V4(a), IpAddr::V4(m), IpAddr::V4(x)) => {
                let m = u32::from(m);
                m != 0 && u32::from(a) & m == u32::from(x) & m && !a.is_loopback()
            }
            (IpAddr::V6(a), IpAddr::V6(m), IpAddr::V6(x)) => {
                let m = u128::from(m);
                m != 0 && u128::from(a) & m == u128::from(x) & m && !a.is_loopback()
            }
            _ => false,
        };
        if same {
            found = true;
            break;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}
