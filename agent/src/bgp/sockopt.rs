//! Socket options the BGP sessions need beyond what tokio and socket2
//! offer: how much of what we sent the peer has acknowledged (the
//! send-hold timer's measure of progress), TCP-MD5 signatures (RFC 2385)
//! keyed per peer address or per address prefix, and the Generalized TTL
//! Security Mechanism (RFC 5082).

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// `TCP_MD5SIG_FLAG_PREFIX` of linux/tcp.h: the key covers a prefix.
const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;

/// `struct tcp_md5sig` of linux/tcp.h.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; libc::TCP_MD5SIG_MAXKEYLEN],
}

fn setsockopt<T>(s: &impl AsRawFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a valid T for the duration of the call, and its size
    // is what the option expects (checked by the kernel).
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn is_ipv6_socket(s: &impl AsRawFd) -> io::Result<bool> {
    // SAFETY: sockaddr_storage is plain data; getsockname writes at most
    // `len` bytes.
    let mut a: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as above.
    let rc = unsafe { libc::getsockname(s.as_raw_fd(), (&raw mut a).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::c_int::from(a.ss_family) == libc::AF_INET6)
}

/// The key structure for `addr`/`prefix_len` on a socket of the given
/// family: an IPv6 socket keys IPv4 peers by their mapped address, with
/// the IPv4 prefix length (as the kernel expects).
fn md5_sig(addr: IpAddr, prefix_len: u8, key: &[u8], v6_socket: bool) -> io::Result<TcpMd5Sig> {
    if key.is_empty() || key.len() > libc::TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a TCP-MD5 key has 1 to {} bytes",
                libc::TCP_MD5SIG_MAXKEYLEN
            ),
        ));
    }
    // SAFETY: all fields are plain data; zeroes are valid.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match (addr, v6_socket) {
        (IpAddr::V4(a), false) => {
            // SAFETY: sockaddr_storage is large and aligned enough for
            // sockaddr_in.
            let sin = unsafe { &mut *(&raw mut sig.addr).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(a).to_be();
        }
        (IpAddr::V6(_), false) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an IPv4 socket cannot hold a key for an IPv6 peer",
            ));
        }
        (a, true) => {
            let v6 = match a {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            // SAFETY: sockaddr_storage is large and aligned enough for
            // sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut sig.addr).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
        }
    }
    sig.flags = TCP_MD5SIG_FLAG_PREFIX;
    sig.prefixlen = prefix_len;
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    Ok(sig)
}

/// Sign segments to and require signatures from `addr`/`prefix_len` with
/// `key` (RFC 2385; on a listening socket the key covers every
/// connection accepted from that prefix). Linux ≥ 4.13.
pub fn set_md5_key(s: &impl AsRawFd, addr: IpAddr, prefix_len: u8, key: &[u8]) -> io::Result<()> {
    let sig = md5_sig(addr, prefix_len, key, is_ipv6_socket(s)?)?;
    setsockopt(s, libc::IPPROTO_TCP, libc::TCP_MD5SIG_EXT, &sig)
}

/// RFC 5082 for a directly connected peer: send with TTL (hop limit) 255
/// and drop what arrives with less, so only a neighbour one hop away can
/// reach the session. IPv6 sockets set both families' options (an IPv4
/// peer reaches them as a mapped address).
pub fn set_gtsm(s: &impl AsRawFd) -> io::Result<()> {
    set_ttl_255(s)?;
    let min: libc::c_int = 255;
    if is_ipv6_socket(s)? {
        setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)?;
    }
    setsockopt(s, libc::IPPROTO_IP, libc::IP_MINTTL, &min)
}

/// Most IPv4 prefixes one listener filter checks (its jumps are 8-bit).
pub const GTSM_FILTER_MAX: usize = 80;

fn insn(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// A classic BPF program for a listening socket: IPv4 segments from
/// `sources` with a TTL below 255 are dropped, everything else passes.
fn gtsm_program(sources: &[(std::net::Ipv4Addr, u8)]) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD};
    use libc::{BPF_RET, BPF_RSH, BPF_W};
    let net = |off: i32| (libc::SKF_NET_OFF + off) as u32;
    let n = sources.len();
    let mut p = vec![
        insn(BPF_LD | BPF_B | BPF_ABS, net(0), 0, 0),
        insn(BPF_ALU | BPF_RSH | BPF_K, 4, 0, 0),
        // Not IPv4: pass (jump over the prefix blocks to "accept").
        insn(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, (3 * n) as u8),
    ];
    for (i, (addr, len)) in sources.iter().enumerate() {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        p.push(insn(BPF_LD | BPF_W | BPF_ABS, net(12), 0, 0));
        p.push(insn(BPF_ALU | BPF_AND | BPF_K, mask, 0, 0));
        let to_ttl = (3 * (n - i) - 2) as u8;
        p.push(insn(
            BPF_JMP | BPF_JEQ | BPF_K,
            u32::from(*addr) & mask,
            to_ttl,
            0,
        ));
    }
    p.push(insn(BPF_RET | BPF_K, u32::MAX, 0, 0));
    p.push(insn(BPF_LD | BPF_B | BPF_ABS, net(8), 0, 0));
    p.push(insn(BPF_JMP | BPF_JGE | BPF_K, 255, 0, 1));
    p.push(insn(BPF_RET | BPF_K, u32::MAX, 0, 0));
    p.push(insn(BPF_RET | BPF_K, 0, 0, 0));
    p
}

/// RFC 5082 on a listening socket shared by peers with and without GTSM:
/// drop IPv4 segments from `sources` that arrive with a TTL below 255,
/// from the SYN on. Connections accepted from the listener inherit the
/// filter, so no segment of theirs is read before the check (setting
/// the minimum TTL only once accepted would let an OPEN sent right after
/// the handshake through). At most [`GTSM_FILTER_MAX`] prefixes.
pub fn set_gtsm_filter(s: &impl AsRawFd, sources: &[(std::net::Ipv4Addr, u8)]) -> io::Result<()> {
    if sources.len() > GTSM_FILTER_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("GTSM covers at most {GTSM_FILTER_MAX} IPv4 prefixes per listener"),
        ));
    }
    let mut prog = gtsm_program(sources);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    setsockopt(s, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Send with TTL (hop limit) 255 only, requiring nothing: what a listening
/// socket needs so the SYN-ACK reaches a GTSM peer.
pub fn set_ttl_255(s: &impl AsRawFd) -> io::Result<()> {
    let ttl: libc::c_int = 255;
    if is_ipv6_socket(s)? {
        setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
    }
    setsockopt(s, libc::IPPROTO_IP, libc::IP_TTL, &ttl)
}

/// The host address for a key covering one peer.
pub fn host_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Bytes the peer has acknowledged on this connection (`tcpi_bytes_acked`
/// of TCP_INFO, Linux ≥ 4.1).
pub fn bytes_acked(s: &impl AsRawFd) -> io::Result<u64> {
    // SAFETY: tcp_info is plain data; zeroes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.tcpi_bytes_acked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Ipv4Addr;

    const TEST_NET: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 0);

    #[test]
    fn md5_keys_are_keyed_by_prefix_in_the_sockets_family() {
        let sig = md5_sig(IpAddr::V4(TEST_NET), 24, b"secret", false).unwrap();
        let sin = unsafe { &*(&raw const sig.addr).cast::<libc::sockaddr_in>() };
        assert_eq!(libc::c_int::from(sin.sin_family), libc::AF_INET);
        assert_eq!(u32::from_be(sin.sin_addr.s_addr), u32::from(TEST_NET));
        assert_eq!((sig.flags, sig.prefixlen, sig.keylen), (1, 24, 6));
        assert_eq!(&sig.key[..7], b"secret\0");
        let sig = md5_sig(IpAddr::V4(TEST_NET), 32, b"k", true).unwrap();
        let sin6 = unsafe { &*(&raw const sig.addr).cast::<libc::sockaddr_in6>() };
        assert_eq!(libc::c_int::from(sin6.sin6_family), libc::AF_INET6);
        assert_eq!(sin6.sin6_addr.s6_addr, TEST_NET.to_ipv6_mapped().octets());
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216, "linux/tcp.h layout");
        assert!(md5_sig(IpAddr::V4(TEST_NET), 32, &[], false).is_err());
        assert!(md5_sig(IpAddr::V4(TEST_NET), 32, &[b'x'; 81], false).is_err());
        assert!(md5_sig("2001:db8::1".parse().unwrap(), 128, b"k", false).is_err());
    }

    /// Loopback: a listener keyed for 127.0.0.0/8 accepts a client with the
    /// same key, and a client with another key never connects.
    #[test]
    fn md5_signed_connections_need_the_same_key_on_both_ends() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_md5_key(&l, IpAddr::V4(Ipv4Addr::LOCALHOST), 8, b"right").unwrap();
        set_gtsm(&l).unwrap();
        let connect = |key: &[u8]| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            set_md5_key(&s, IpAddr::V4(Ipv4Addr::LOCALHOST), 32, key).unwrap();
            set_gtsm(&s).unwrap();
            s.connect_timeout(
                &l.local_addr().unwrap().into(),
                std::time::Duration::from_secs(2),
            )
        };
        connect(b"right").expect("the right key connects");
        let e = connect(b"wrong").expect_err("a wrong key never connects");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }

    /// Loopback keeps the TTL a packet was sent with: a listener filtering
    /// 127.0.0.0/8 takes a client sending TTL 255 and never sees one
    /// sending 64, while a source outside the filter passes at any TTL.
    #[test]
    fn the_gtsm_filter_drops_low_ttl_segments_from_its_sources_only() {
        let connect = |l: &std::net::TcpListener, ttl: u32| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_ttl_v4(ttl).unwrap();
            s.connect_timeout(
                &l.local_addr().unwrap().into(),
                std::time::Duration::from_secs(2),
            )
        };
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_gtsm_filter(&l, &[(TEST_NET, 24)]).unwrap();
        connect(&l, 64).expect("127.0.0.1 is not under GTSM");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_gtsm_filter(&l, &[(TEST_NET, 24), (Ipv4Addr::new(127, 0, 0, 0), 8)]).unwrap();
        connect(&l, 255).expect("TTL 255 passes");
        let e = connect(&l, 64).expect_err("TTL 64 never connects");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(set_gtsm_filter(&l, &vec![(TEST_NET, 32); GTSM_FILTER_MAX + 1]).is_err());
    }

    #[test]
    fn bytes_acked_counts_what_the_peer_received() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut b, _) = l.accept().unwrap();
        let before = bytes_acked(&a).unwrap();
        a.write_all(&[7; 1000]).unwrap();
        let mut got = [0; 1000];
        b.read_exact(&mut got).unwrap();
        for _ in 0..100 {
            if bytes_acked(&a).unwrap() >= before + 1000 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("acknowledged bytes never reached 1000");
    }
}
