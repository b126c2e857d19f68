//! Real traffic through the attached program: a "VM" namespace sends UDP
//! to an internet address; the host namespace has the program on the
//! VM-facing veth and NO kernel route for that address, so only the XDP
//! redirect can deliver it to the NVA namespace, where it must arrive with
//! TTL 63 and a valid checksum. Needs root, `ip`, `ethtool` and `ping`;
//! fails without them.

mod xdp_support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use steer::fib::xdp::{Reason, XdpConfig, XdpDataplane, XdpMode, XdpTarget};
use xdp_support::netns::{Netns, PinDir, cmd, ip, require_root_and, sysctl};

const DATAGRAMS: usize = 10;
const PAYLOAD: usize = 64;

/// Receives one datagram on `sock` and returns its IPv4 TTL (IP_RECVTTL).
fn recv_ttl(sock: &UdpSocket) -> std::io::Result<(usize, u8)> {
    let mut buf = [0u8; 2048];
    let mut cbuf = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: a valid socket and msghdr.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: walking the control messages the kernel wrote into `cbuf`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TTL {
                let ttl = *(libc::CMSG_DATA(c) as *const libc::c_int);
                return Ok((n as usize, ttl as u8));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Err(std::io::Error::other("no IP_TTL control message"))
}

/// Sends UDP from the VM namespace through the host's XDP program (in
/// `mode`) to the NVA and checks TTL, delivery and the `forwarded` counter.
/// `guest_csum_offload`: whether the VM's veth leaves checksums to offload
/// (CHECKSUM_PARTIAL), as a virtio guest does by default. `expect`: the
/// counter every datagram must land in; for anything but `Forwarded` the
/// host gets the kernel route (as the agent always installs it) so the
/// kernel delivers what XDP passes up.
fn forward_through_xdp(mode: XdpMode, guest_csum_offload: bool, expect: Reason) {
    require_root_and(&["ip", "ethtool", "ping"]);
    let host = Netns::new().unwrap();
    let vm = Netns::new().unwrap();
    let nva = Netns::new().unwrap();
    let pin = PinDir::new("traffic");

    host.run(|| {
        ip(&format!(
            "link add vmtap type veth peer name eth0 netns {}",
            vm.path()
        ))
        .unwrap();
        ip(&format!(
            "link add nva0 type veth peer name eth0 netns {}",
            nva.path()
        ))
        .unwrap();
        ip("addr add 10.1.1.1/24 dev vmtap").unwrap();
        ip("addr add 192.0.2.1/24 dev nva0").unwrap();
        ip("link set vmtap up").unwrap();
        ip("link set nva0 up").unwrap();
        sysctl("net/ipv4/ip_forward", "1").unwrap();
    });
    vm.run(|| {
        ip("addr add 10.1.1.10/24 dev eth0").unwrap();
        ip("link set eth0 up").unwrap();
        ip("route add default via 10.1.1.1").unwrap();
        if !guest_csum_offload {
            cmd("ethtool", "-K eth0 tx off").unwrap();
        }
    });
    let receiver = nva.run(|| {
        ip("addr add 192.0.2.2/24 dev eth0").unwrap();
        ip("addr add 203.0.113.5/32 dev lo").unwrap();
        ip("link set eth0 up").unwrap();
        ip("route add 10.1.0.0/16 via 192.0.2.1").unwrap();
        cmd("ethtool", "-K eth0 gro on").unwrap();
        let sock = UdpSocket::bind("203.0.113.5:9999").unwrap();
        let on: libc::c_int = 1;
        // SAFETY: setting an int socket option on a valid socket.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_RECVTTL,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        assert_eq!(rc, 0);
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock
    });

    let mut dp = host.run(|| {
        cmd("ping", "-c 1 -W 2 192.0.2.2").expect("host reaches the NVA (resolves its MAC)");
        if expect == Reason::Forwarded {
            assert!(
                ip("route get 203.0.113.5").is_err(),
                "the host has no kernel route to 203.0.113.5: only XDP can deliver"
            );
        } else {
            ip("route add 203.0.113.0/24 via 192.0.2.2").unwrap();
        }
        let mut dp = XdpDataplane::open(&XdpConfig {
            pin_dir: pin.0.clone(),
            interfaces: vec!["vmtap".into()],
            mode,
            debug: false,
        })
        .unwrap();
        dp.apply(&[(
            "203.0.113.0/24".parse().unwrap(),
            Some(XdpTarget::Forward(vec![
                "192.0.2.2".parse::<IpAddr>().unwrap(),
            ])),
        )])
        .unwrap();
        dp
    });
    let before = dp.counters().unwrap();

    vm.run(|| {
        let sock = UdpSocket::bind("10.1.1.10:0").unwrap();
        sock.set_ttl(64).unwrap();
        let to: SocketAddr = "203.0.113.5:9999".parse().unwrap();
        for _ in 0..DATAGRAMS {
            sock.send_to(&[0x5a; PAYLOAD], to).unwrap();
        }
    });

    let got: Vec<(usize, u8)> = (0..DATAGRAMS)
        .map(|_| {
            recv_ttl(&receiver).unwrap_or_else(|e| {
                let udp = nva.run(|| cmd("grep", "^Udp: /proc/thread-self/net/snmp").unwrap());
                panic!(
                    "datagram lost ({e}); NVA {udp}XDP counters:\n{}",
                    dp.counters().unwrap()
                )
            })
        })
        .collect();
    assert_eq!(got, vec![(PAYLOAD, 63); DATAGRAMS]);

    let after = dp.counters().unwrap();
    let frame = (14 + 20 + 8 + PAYLOAD) as u64;
    assert_eq!(
        after.packets(expect) - before.packets(expect),
        DATAGRAMS as u64
    );
    assert_eq!(
        after.get(expect).bytes - before.get(expect).bytes,
        DATAGRAMS as u64 * frame
    );
    if expect != Reason::Forwarded {
        assert_eq!(
            after.packets(Reason::Forwarded),
            before.packets(Reason::Forwarded)
        );
    }
    host.run(|| dp.set_interfaces(&[]).unwrap());
}

#[test]
fn native_xdp_forwards_udp_from_a_vm_with_ttl_decremented() {
    forward_through_xdp(XdpMode::Native, false, Reason::Forwarded);
}

/// Generic XDP redirects the skb itself, so a checksum left to offload is
/// still completed on the way out.
#[test]
fn generic_xdp_forwards_udp_from_a_vm_that_offloads_checksums() {
    forward_through_xdp(XdpMode::Generic, true, Reason::Forwarded);
}

/// Native XDP would redirect a bare frame and lose the offload state, so
/// the program hands such datagrams to the kernel, which delivers them
/// with a finished checksum.
#[test]
fn native_xdp_passes_offloaded_checksums_to_the_kernel_which_delivers_them() {
    forward_through_xdp(XdpMode::Native, true, Reason::CsumPartial);
}
