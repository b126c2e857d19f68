//! Socket options the BGP sessions need beyond what tokio and socket2
//! offer: how much of what we sent the peer has acknowledged (the
//! send-hold timer's measure of progress).

use std::io;
use std::os::fd::AsRawFd;

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
