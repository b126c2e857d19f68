//! Real traffic through the attached programs: a "VM" namespace sends UDP
//! to an internet address; the host namespace has the hooks on the
//! VM-facing veth and NO kernel route for that address, so only a redirect
//! by one of the programs can deliver it to the NVA namespace, where it must
//! arrive with TTL 63 and a valid checksum. Which hook forwarded it is read
//! from the counters. Needs root, `ip`, `ethtool` and `ping`; fails without
//! them.

mod xdp_support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use steer::fib::xdp::{
    DataplaneMode, Hook, Reason, XdpConfig, XdpDataplane, XdpMode, XdpTarget, redirect_targets,
};
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

/// Log lines written while a closure ran on this thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What a run should show.
struct Expect {
    /// Every datagram arrives at the NVA.
    delivered: bool,
    /// Counters that each rise by exactly one per datagram.
    counted: &'static [(Hook, Reason)],
}

/// Sends UDP from the VM namespace through the host's hooks (in `mode`) to
/// the NVA and checks TTL, delivery and the counters. `guest_csum_offload`:
/// whether the VM's veth leaves checksums to offload (CHECKSUM_PARTIAL), as
/// a virtio guest does by default. `nva_napi`: whether the NVA's end of the
/// uplink veth has NAPI (GRO on), without which XDP redirects into it fail.
fn forward(mode: DataplaneMode, guest_csum_offload: bool, nva_napi: bool, expect: Expect) {
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
        let gro = if nva_napi { "on" } else { "off" };
        cmd("ethtool", &format!("-K eth0 gro {gro}")).unwrap();
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
        assert!(
            ip("route get 203.0.113.5").is_err(),
            "the host has no kernel route to 203.0.113.5: only a program can deliver"
        );
        let nva0 = std::ffi::CString::new("nva0").unwrap();
        // SAFETY: a valid C string.
        let index = unsafe { libc::if_nametoindex(nva0.as_ptr()) };
        assert_eq!(
            redirect_targets::accepts_redirects(index).unwrap(),
            nva_napi,
            "the kernel says whether nva0 takes XDP redirects (what the agent warns about)"
        );
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        let mut dp = XdpDataplane::open(&XdpConfig::new(pin.0.clone(), &["vmtap"], mode)).unwrap();
        drop(guard);
        let warned = log
            .text()
            .contains("XDP redirects into veth nva0 will be dropped");
        assert_eq!(
            warned,
            matches!(mode, DataplaneMode::Xdp(_)) && !nva_napi,
            "the attach-time warning about nva0:\n{}",
            log.text()
        );
        dp.apply(&[(
            "203.0.113.0/24".parse().unwrap(),
            Some(XdpTarget::Forward(vec![
                "192.0.2.2".parse::<IpAddr>().unwrap(),
            ])),
        )])
        .unwrap();
        dp
    });
    let before = host.run(|| dp.counters().unwrap());

    vm.run(|| {
        let sock = UdpSocket::bind("10.1.1.10:0").unwrap();
        sock.set_ttl(64).unwrap();
        let to: SocketAddr = "203.0.113.5:9999".parse().unwrap();
        for _ in 0..DATAGRAMS {
            sock.send_to(&[0x5a; PAYLOAD], to).unwrap();
        }
    });

    if expect.delivered {
        let got: Vec<(usize, u8)> = (0..DATAGRAMS)
            .map(|_| {
                recv_ttl(&receiver).unwrap_or_else(|e| {
                    let udp = nva.run(|| cmd("grep", "^Udp: /proc/thread-self/net/snmp").unwrap());
                    panic!(
                        "datagram lost ({e}); NVA {udp}counters:\n{}",
                        host.run(|| dp.counters().unwrap())
                    )
                })
            })
            .collect();
        assert_eq!(got, vec![(PAYLOAD, 63); DATAGRAMS]);
    } else {
        assert!(recv_ttl(&receiver).is_err(), "nothing arrives");
    }

    let after = host.run(|| dp.counters().unwrap());
    let links = host.run(|| ip("-s link show").unwrap_or_default());
    let frame = (14 + 20 + 8 + PAYLOAD) as u64;
    for v in &after.values {
        let b = before
            .values
            .iter()
            .find(|b| b.hook == v.hook && b.name == v.name)
            .unwrap();
        let listed = expect
            .counted
            .iter()
            .any(|(h, r)| h.name() == v.hook && r.name() == v.name);
        let want = if listed {
            (DATAGRAMS as u64, DATAGRAMS as u64 * frame)
        } else {
            (0, 0)
        };
        if v.name == "pass_not_ip" || v.name == "pass_not_unicast" || v.name == "pass_no_route" {
            continue; // ARP, IPv6 neighbour discovery and router solicitations
        }
        assert_eq!(
            (v.packets - b.packets, v.bytes - b.bytes),
            want,
            "counter {} {}:\n{after}host interfaces:\n{links}",
            v.hook,
            v.name
        );
    }
    host.run(|| dp.set_interfaces(&[]).unwrap());
}

#[test]
fn native_xdp_forwards_udp_from_a_vm_with_ttl_decremented() {
    forward(
        DataplaneMode::Xdp(XdpMode::Native),
        false,
        true,
        Expect {
            delivered: true,
            counted: &[(Hook::Xdp, Reason::Forwarded)],
        },
    );
}

/// Generic XDP redirects the skb itself, so a checksum left to offload is
/// still completed on the way out.
#[test]
fn generic_xdp_forwards_udp_from_a_vm_that_offloads_checksums() {
    forward(
        DataplaneMode::Xdp(XdpMode::Generic),
        true,
        true,
        Expect {
            delivered: true,
            counted: &[(Hook::Xdp, Reason::Forwarded)],
        },
    );
}

/// Native XDP would redirect a bare frame and lose the offload state, so
/// the program passes such datagrams on, and the TC program behind it
/// forwards them with their offload state.
#[test]
fn native_xdp_passes_offloaded_checksums_to_tc_which_forwards_them() {
    forward(
        DataplaneMode::Xdp(XdpMode::Native),
        true,
        true,
        Expect {
            delivered: true,
            counted: &[
                (Hook::Xdp, Reason::CsumPartial),
                (Hook::Tc, Reason::Forwarded),
            ],
        },
    );
}

#[test]
fn tc_alone_forwards_udp_from_a_vm_that_offloads_checksums() {
    forward(
        DataplaneMode::Tc,
        true,
        true,
        Expect {
            delivered: true,
            counted: &[(Hook::Tc, Reason::Forwarded)],
        },
    );
}

/// A veth whose peer has no NAPI refuses XDP redirects: the kernel drops
/// the frames (and counts them at the ingress), and so do the counters, as
/// redirect_failed, not as forwarded.
#[test]
fn xdp_redirects_a_veth_refuses_are_warned_about_at_attach_and_counted_as_redirect_failed() {
    forward(
        DataplaneMode::Xdp(XdpMode::Native),
        false,
        false,
        Expect {
            delivered: false,
            counted: &[(Hook::Xdp, Reason::RedirectFailed)],
        },
    );
}
