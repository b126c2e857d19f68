//! BPF_PROG_TEST_RUN fixtures for both programs (katran / cilium
//! `bpf/tests` style): {name, packet in, map contents, expected action,
//! packet out, counter reason}, run in a fresh network namespace whose
//! routes and permanent neighbour entries make `bpf_fib_lookup`'s answers
//! known. The XDP cases come first, then the TC table, where the packet in
//! is an skb with the `__sk_buff` fields of a real one (ingress device, GSO
//! size and segments). Needs root; fails (never skips) without it.

mod xdp_support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::os::fd::AsFd;

use steer::fib::xdp::testrun::{self, SkbMeta, TcAction, XdpAction};
use steer::fib::xdp::{
    DataplaneCounters, DataplaneMode, Hook, Reason, XdpConfig, XdpDataplane, XdpMode, XdpTarget,
};
use steer::prefix::Prefix;
use xdp_support::netns::{Netns, PinDir, ip, require_root_and, sysctl};
use xdp_support::packet::{Mac, V4, V6, ipv4_checksum, partial_csum};

const VM_MAC: Mac = [0x02, 0, 0, 0, 0x10, 0x10];
const HOST_VM0_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
const HOST_UP0_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x01];
const NVA_MACS: [Mac; 4] = [
    [0x02, 0, 0, 0, 0x0a, 0],
    [0x02, 0, 0, 0, 0x0a, 1],
    [0x02, 0, 0, 0, 0x0a, 2],
    [0x02, 0, 0, 0, 0x0a, 3],
];
const NVA6_MAC: Mac = [0x02, 0, 0, 0, 0x0b, 0];

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn fwd(hops: &[&str]) -> Option<XdpTarget> {
    Some(XdpTarget::Forward(
        hops.iter().map(|h| h.parse::<IpAddr>().unwrap()).collect(),
    ))
}

/// vm0 (ingress, 10.1.1.1/24) and up0 (egress, 192.0.2.1/24, 2001:db8:ff::1/64)
/// with permanent neighbours for the NVAs; no neighbour for 192.0.2.20.
fn lab() -> anyhow::Result<u32> {
    ip("link add vm0 type veth peer name vm0p")?;
    ip("link add up0 type veth peer name up0p")?;
    ip("link set vm0 address 02:00:00:00:00:01")?;
    ip("link set up0 address 02:00:00:00:01:01")?;
    for dev in ["vm0", "vm0p", "up0", "up0p"] {
        ip(&format!("link set {dev} up"))?;
    }
    ip("addr add 10.1.1.1/24 dev vm0")?;
    ip("-6 addr add 2001:db8:1::1/64 dev vm0 nodad")?;
    ip("addr add 192.0.2.1/24 dev up0")?;
    ip("-6 addr add 2001:db8:ff::1/64 dev up0 nodad")?;
    sysctl("net/ipv4/ip_forward", "1")?;
    sysctl("net/ipv6/conf/all/forwarding", "1")?;
    for (i, mac) in NVA_MACS.iter().enumerate() {
        ip(&format!(
            "neigh add 192.0.2.{} lladdr {} dev up0 nud permanent",
            10 + i,
            mac_str(mac)
        ))?;
    }
    ip(&format!(
        "-6 neigh add 2001:db8:ff::10 lladdr {} dev up0 nud permanent",
        mac_str(&NVA6_MAC)
    ))?;
    Ok(steer_ifindex("vm0"))
}

fn mac_str(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn steer_ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

fn routes() -> Vec<(Prefix, Option<XdpTarget>)> {
    vec![
        (pfx("203.0.113.0/24"), fwd(&["192.0.2.10"])),
        (pfx("10.1.0.0/16"), Some(XdpTarget::Pass)),
        (
            pfx("198.51.100.0/24"),
            fwd(&["192.0.2.13", "192.0.2.10", "192.0.2.12", "192.0.2.11"]),
        ),
        (pfx("100.64.1.0/24"), fwd(&["192.0.2.20"])),
        (pfx("100.64.2.0/24"), fwd(&["198.18.0.1"])),
        (pfx("100.64.3.0/24"), fwd(&["2001:db8:ff::10"])),
        (pfx("2001:db8:aaaa::/48"), fwd(&["2001:db8:ff::10"])),
        (pfx("2001:db8:1::/48"), Some(XdpTarget::Pass)),
    ]
}

fn open(pin: &PinDir) -> XdpDataplane {
    open_in(pin, XdpMode::Native)
}

fn open_in(pin: &PinDir, mode: XdpMode) -> XdpDataplane {
    XdpDataplane::open(&XdpConfig::new(
        pin.0.clone(),
        &[],
        DataplaneMode::Xdp(mode),
    ))
    .expect("open the eBPF dataplane")
}

/// `p`'s frame with its UDP checksum left to offload.
fn offloaded_v4(p: &V4) -> Vec<u8> {
    let mut f = p.frame();
    let sum = partial_csum(&p.src.octets(), &p.dst.octets(), 17, 8 + p.payload as u16);
    f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&sum.to_be_bytes());
    f
}

/// `p`'s frame with its UDP checksum left to offload.
fn offloaded_v6(p: &V6) -> Vec<u8> {
    let mut f = p.frame();
    let sum = partial_csum(&p.src.octets(), &p.dst.octets(), 17, 8 + p.payload as u16);
    f[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Runs one frame and checks the action, the frame out and that exactly
/// one packet of `frame.len()` bytes was counted, under `reason`.
fn check(
    dp: &XdpDataplane,
    ifindex: u32,
    name: &str,
    frame: &[u8],
    action: XdpAction,
    out: &[u8],
    reason: Reason,
) {
    let before = dp.counters().unwrap();
    let got = dp.test_run(frame, ifindex).unwrap();
    let after = dp.counters().unwrap();
    assert_eq!(got.action, action, "{name}: action");
    assert_eq!(got.frame, out, "{name}: frame out");
    assert_counted(
        name,
        &before,
        &after,
        (Hook::Xdp, reason),
        1,
        frame.len() as u64,
    );
}

fn assert_counted(
    name: &str,
    before: &DataplaneCounters,
    after: &DataplaneCounters,
    (hook, reason): (Hook, Reason),
    packets: u64,
    bytes: u64,
) {
    for (b, a) in before.values.iter().zip(&after.values) {
        let (dp, db) = (a.packets - b.packets, a.bytes - b.bytes);
        if a.hook == hook.name() && a.name == reason.name() {
            assert_eq!((dp, db), (packets, bytes), "{name}: counter {}", a.name);
        } else {
            assert_eq!((dp, db), (0, 0), "{name}: counter {} must not move", a.name);
        }
    }
}

fn forwarded_v4(p: &V4, dst_mac: Mac) -> Vec<u8> {
    let mut out = p.clone();
    out.ttl -= 1;
    out.dst_mac = dst_mac;
    out.src_mac = HOST_UP0_MAC;
    out.frame()
}

#[test]
fn fixtures_give_the_expected_action_frame_and_counter() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("fixtures");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = open(&pin);
        dp.apply(&routes()).unwrap();

        let base = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("203.0.113.5"));
        let base6 = V6::udp(
            VM_MAC,
            HOST_VM0_MAC,
            v6("2001:db8:1::10"),
            v6("2001:db8:aaaa::5"),
        );
        let pass = |f: &[u8]| f.to_vec();
        let redirect = XdpAction::Redirect;
        let p = XdpAction::Pass;

        let case = |name: &str, frame: Vec<u8>, action, out: Vec<u8>, reason| {
            check(&dp, ifindex, name, &frame, action, &out, reason)
        };

        case(
            "ipv4 forward",
            base.frame(),
            redirect,
            forwarded_v4(&base, NVA_MACS[0]),
            Reason::Forwarded,
        );

        let mut over6 = base.clone();
        over6.dst = v4("100.64.3.9");
        case(
            "ipv4 over an ipv6 next hop",
            over6.frame(),
            redirect,
            forwarded_v4(&over6, NVA6_MAC),
            Reason::Forwarded,
        );

        let mut out6 = base6.clone();
        out6.hop_limit = 63;
        out6.dst_mac = NVA6_MAC;
        out6.src_mac = HOST_UP0_MAC;
        case(
            "ipv6 forward",
            base6.frame(),
            redirect,
            out6.frame(),
            Reason::Forwarded,
        );

        let mut t = base.clone();
        t.ttl = 1;
        case("ttl 1", t.frame(), p, pass(&t.frame()), Reason::TtlExpired);
        let mut t = base6.clone();
        t.hop_limit = 1;
        case(
            "hop limit 1",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::TtlExpired,
        );

        let mut t = base.clone();
        t.dst = v4("192.0.2.99");
        case("no route", t.frame(), p, pass(&t.frame()), Reason::NoRoute);
        let mut t = base6.clone();
        t.dst = v6("2001:db8:bbbb::1");
        case(
            "no ipv6 route",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::NoRoute,
        );

        let mut t = base.clone();
        t.dst = v4("10.1.2.10");
        case(
            "pass entry",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::PassEntry,
        );
        let mut t = base6.clone();
        t.dst = v6("2001:db8:1::20");
        case(
            "ipv6 pass entry",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::PassEntry,
        );

        let mut t = base.clone();
        t.options = vec![1, 1, 1, 0];
        case(
            "ipv4 options",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::Ipv4Options,
        );

        let mut t = base.clone();
        t.frag = 0x2000;
        case(
            "first fragment (MF)",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::Ipv4Fragment,
        );
        t.frag = 0x00b9;
        case(
            "later fragment (offset)",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::Ipv4Fragment,
        );

        let mut t = base6.clone();
        t.next_header = 0;
        case(
            "ipv6 hop-by-hop header",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::Ipv6ExtHeader,
        );

        let mut arp = base.frame();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        case("arp", arp.clone(), p, arp, Reason::NotIp);
        let mut vlan = base.frame();
        vlan.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        case("vlan tagged", vlan.clone(), p, vlan, Reason::NotIp);

        let mut t = base.clone();
        t.dst_mac = [0xff; 6];
        case(
            "broadcast frame",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::NotUnicast,
        );
        let mut t = base.clone();
        t.dst = v4("224.0.0.5");
        case(
            "multicast destination",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::NotUnicast,
        );

        let short = base.frame()[..14 + 12].to_vec();
        case(
            "truncated ipv4 header",
            short.clone(),
            p,
            short,
            Reason::Truncated,
        );
        let mut lying = base.frame();
        lying.truncate(lying.len() - 8);
        case(
            "total length beyond the frame",
            lying.clone(),
            p,
            lying,
            Reason::Truncated,
        );

        let mut t = base.clone();
        t.dst = v4("100.64.1.1");
        case(
            "next hop without neighbour",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::NoNeigh,
        );
        let mut t = base.clone();
        t.dst = v4("100.64.2.1");
        case(
            "next hop without route",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::FibFailed,
        );
        let mut t = base.clone();
        t.payload = 1600;
        case(
            "larger than the egress mtu",
            t.frame(),
            p,
            pass(&t.frame()),
            Reason::FragNeeded,
        );

        let f = offloaded_v4(&base);
        case(
            "udp checksum left to offload (on to TC)",
            f.clone(),
            p,
            f,
            Reason::CsumPartial,
        );
        let f = offloaded_v6(&base6);
        case(
            "ipv6 udp checksum left to offload",
            f.clone(),
            p,
            f,
            Reason::CsumPartial,
        );
    });
}

#[test]
fn generic_mode_forwards_checksums_left_to_offload() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("generic");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = open_in(&pin, XdpMode::Generic);
        dp.apply(&routes()).unwrap();
        let base = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("203.0.113.5"));
        let mut out = offloaded_v4(&base);
        out[0..6].copy_from_slice(&NVA_MACS[0]);
        out[6..12].copy_from_slice(&HOST_UP0_MAC);
        out[14 + 8] = 63;
        let sum = ipv4_checksum(&{
            let mut h = out[14..34].to_vec();
            h[10..12].copy_from_slice(&[0, 0]);
            h
        });
        out[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
        check(
            &dp,
            ifindex,
            "offloaded udp, generic",
            &offloaded_v4(&base),
            XdpAction::Redirect,
            &out,
            Reason::Forwarded,
        );
    });
}

/// One TC fixture: an skb in, what must come out.
struct TcCase {
    name: &'static str,
    frame: Vec<u8>,
    /// `(gso_size, gso_segs)` for a GSO superpacket.
    gso: Option<(u32, u32)>,
    action: TcAction,
    out: Vec<u8>,
    reason: Reason,
}

/// `p` with TTL - 1 and the IPv4 checksum recomputed, MACs as given.
fn routed_v4(p: &V4, dst_mac: Mac, src_mac: Mac) -> Vec<u8> {
    let mut out = p.clone();
    out.ttl -= 1;
    out.dst_mac = dst_mac;
    out.src_mac = src_mac;
    out.frame()
}

/// `frame` (IPv4 at 14) with TTL - 1, the IPv4 checksum recomputed and the
/// MACs replaced; the rest (an offloaded L4 checksum) untouched.
fn routed_raw_v4(frame: &[u8], dst_mac: Mac) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&HOST_UP0_MAC);
    out[14 + 8] -= 1;
    out[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let sum = ipv4_checksum(&out[14..34]);
    out[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    out
}

fn tc_cases() -> Vec<TcCase> {
    let base = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("203.0.113.5"));
    let base6 = V6::udp(
        VM_MAC,
        HOST_VM0_MAC,
        v6("2001:db8:1::10"),
        v6("2001:db8:aaaa::5"),
    );
    let fwd = |name, frame: Vec<u8>, out: Vec<u8>, gso| TcCase {
        name,
        frame,
        gso,
        action: TcAction::Redirect,
        out,
        reason: Reason::Forwarded,
    };
    let pass = |name, frame: Vec<u8>, reason| TcCase {
        name,
        out: frame.clone(),
        frame,
        gso: None,
        action: TcAction::Ok,
        reason,
    };
    let with = |f: &dyn Fn(&mut V4)| {
        let mut p = base.clone();
        f(&mut p);
        p
    };
    let with6 = |f: &dyn Fn(&mut V6)| {
        let mut p = base6.clone();
        f(&mut p);
        p
    };
    let mut out6 = base6.clone();
    out6.hop_limit = 63;
    out6.dst_mac = NVA6_MAC;
    out6.src_mac = HOST_UP0_MAC;
    let mut out6_offloaded = offloaded_v6(&base6);
    out6_offloaded[0..6].copy_from_slice(&NVA6_MAC);
    out6_offloaded[6..12].copy_from_slice(&HOST_UP0_MAC);
    out6_offloaded[14 + 7] = 63;
    let over6 = with(&|p| p.dst = v4("100.64.3.9"));
    let big = with(&|p| p.payload = 1600);
    let no_neigh = with(&|p| p.dst = v4("100.64.1.1"));
    let other_host = with(&|p| p.dst_mac = [0x02, 0, 0, 0, 0x99, 0x99]);
    let mut arp = base.frame();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut vlan = base.frame();
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
    let mut lying = base.frame();
    lying.truncate(lying.len() - 8);
    vec![
        fwd(
            "ipv4 forward",
            base.frame(),
            routed_v4(&base, NVA_MACS[0], HOST_UP0_MAC),
            None,
        ),
        fwd(
            "ipv4 over an ipv6 next hop",
            over6.frame(),
            routed_v4(&over6, NVA6_MAC, HOST_UP0_MAC),
            None,
        ),
        fwd("ipv6 forward", base6.frame(), out6.frame(), None),
        fwd(
            "udp checksum left to offload is forwarded untouched",
            offloaded_v4(&base),
            routed_raw_v4(&offloaded_v4(&base), NVA_MACS[0]),
            None,
        ),
        fwd(
            "ipv6 udp checksum left to offload is forwarded untouched",
            offloaded_v6(&base6),
            out6_offloaded,
            None,
        ),
        fwd(
            "gso superpacket larger than the egress mtu",
            big.frame(),
            routed_v4(&big, NVA_MACS[0], HOST_UP0_MAC),
            Some((1448, 2)),
        ),
        fwd(
            "next hop without neighbour: the kernel resolves it on the way out",
            no_neigh.frame(),
            routed_v4(&no_neigh, HOST_VM0_MAC, VM_MAC),
            None,
        ),
        pass("the same size without gso", big.frame(), Reason::FragNeeded),
        pass(
            "next hop without route",
            with(&|p| p.dst = v4("100.64.2.1")).frame(),
            Reason::FibFailed,
        ),
        pass("ttl 1", with(&|p| p.ttl = 1).frame(), Reason::TtlExpired),
        pass(
            "hop limit 1",
            with6(&|p| p.hop_limit = 1).frame(),
            Reason::TtlExpired,
        ),
        pass(
            "no route",
            with(&|p| p.dst = v4("192.0.2.99")).frame(),
            Reason::NoRoute,
        ),
        pass(
            "no ipv6 route",
            with6(&|p| p.dst = v6("2001:db8:bbbb::1")).frame(),
            Reason::NoRoute,
        ),
        pass(
            "pass entry",
            with(&|p| p.dst = v4("10.1.2.10")).frame(),
            Reason::PassEntry,
        ),
        pass(
            "ipv6 pass entry",
            with6(&|p| p.dst = v6("2001:db8:1::20")).frame(),
            Reason::PassEntry,
        ),
        pass(
            "ipv4 options",
            with(&|p| p.options = vec![1, 1, 1, 0]).frame(),
            Reason::Ipv4Options,
        ),
        pass(
            "first fragment (MF)",
            with(&|p| p.frag = 0x2000).frame(),
            Reason::Ipv4Fragment,
        ),
        pass(
            "ipv6 hop-by-hop header",
            with6(&|p| p.next_header = 0).frame(),
            Reason::Ipv6ExtHeader,
        ),
        pass("arp", arp, Reason::NotIp),
        pass("vlan tagged", vlan, Reason::NotIp),
        pass(
            "broadcast frame",
            with(&|p| p.dst_mac = [0xff; 6]).frame(),
            Reason::NotUnicast,
        ),
        pass(
            "frame for another host's mac",
            other_host.frame(),
            Reason::NotUnicast,
        ),
        pass(
            "multicast destination",
            with(&|p| p.dst = v4("224.0.0.5")).frame(),
            Reason::NotUnicast,
        ),
        pass("total length beyond the packet", lying, Reason::Truncated),
    ]
}

#[test]
fn tc_fixtures_give_the_expected_action_packet_and_counter() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("tc-fixtures");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = XdpDataplane::open(&XdpConfig::new(pin.0.clone(), &[], DataplaneMode::Tc))
            .expect("open the eBPF dataplane");
        dp.apply(&routes()).unwrap();
        for case in tc_cases() {
            let (gso_size, gso_segs) = case.gso.unwrap_or((0, 0));
            let meta = SkbMeta {
                ifindex,
                gso_size,
                gso_segs,
            };
            let before = dp.counters().unwrap();
            let got = dp.tc_test_run(&case.frame, meta).unwrap();
            let after = dp.counters().unwrap();
            assert_eq!(got.action, case.action, "{}: action", case.name);
            assert_eq!(got.frame, case.out, "{}: packet out", case.name);
            assert_counted(
                case.name,
                &before,
                &after,
                (Hook::Tc, case.reason),
                1,
                case.frame.len() as u64,
            );
        }
    });
}

#[test]
fn tc_ipv4_checksum_matches_a_recomputed_one_for_every_ttl() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("tc-checksum");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp =
            XdpDataplane::open(&XdpConfig::new(pin.0.clone(), &[], DataplaneMode::Tc)).unwrap();
        dp.apply(&routes()).unwrap();
        let meta = SkbMeta {
            ifindex,
            ..SkbMeta::default()
        };
        for ttl in 2..=255u8 {
            for host in [1u8, 10, 254] {
                let mut p = V4::udp(
                    VM_MAC,
                    HOST_VM0_MAC,
                    Ipv4Addr::new(10, 1, 1, host),
                    v4("203.0.113.5"),
                );
                p.ttl = ttl;
                let got = dp.tc_test_run(&p.frame(), meta).unwrap();
                assert_eq!(got.action, TcAction::Redirect);
                assert_eq!(
                    got.frame,
                    routed_v4(&p, NVA_MACS[0], HOST_UP0_MAC),
                    "ttl {ttl}"
                );
            }
        }
    });
}

#[test]
fn forwarded_ipv4_checksum_matches_a_recomputed_one_for_every_ttl() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("checksum");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = open(&pin);
        dp.apply(&routes()).unwrap();
        for ttl in 2..=255u8 {
            for host in [1u8, 10, 254] {
                let src = Ipv4Addr::new(10, 1, 1, host);
                let mut p = V4::udp(VM_MAC, HOST_VM0_MAC, src, v4("203.0.113.5"));
                p.ttl = ttl;
                let got = dp.test_run(&p.frame(), ifindex).unwrap();
                assert_eq!(got.action, XdpAction::Redirect);
                let header = &got.frame[14..34];
                assert_eq!(header[8], ttl - 1);
                assert_eq!(ipv4_checksum(header), 0, "ttl {ttl}: checksum must verify");
                let mut zeroed = header.to_vec();
                zeroed[10..12].copy_from_slice(&[0, 0]);
                assert_eq!(
                    header[10..12],
                    ipv4_checksum(&zeroed).to_be_bytes(),
                    "ttl {ttl}: incremental checksum equals the recomputed one"
                );
            }
        }
    });
}

#[test]
fn ecmp_keeps_each_flow_on_one_member_and_spreads_flows_over_all() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("ecmp");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = open(&pin);
        dp.apply(&routes()).unwrap();
        let mut per_member: BTreeMap<Mac, u32> = BTreeMap::new();
        let flows = 256u16;
        for sport in 0..flows {
            let mut p = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("198.51.100.7"));
            p.sport = 1024 + sport;
            let first = dp.test_run(&p.frame(), ifindex).unwrap();
            assert_eq!(first.action, XdpAction::Redirect);
            let mac: Mac = first.frame[0..6].try_into().unwrap();
            for _ in 0..3 {
                let again = dp.test_run(&p.frame(), ifindex).unwrap();
                assert_eq!(
                    again.frame[0..6],
                    mac,
                    "flow {sport} must stay on one member"
                );
            }
            *per_member.entry(mac).or_default() += 1;
        }
        assert_eq!(
            per_member.keys().copied().collect::<Vec<_>>(),
            NVA_MACS.to_vec(),
            "every member gets flows"
        );
        for (mac, n) in &per_member {
            assert!(*n >= 32, "member {} got {n} of {flows} flows", mac_str(mac));
        }
    });
}

/// BPF_PROG_TEST_RUN's repeat runs the program on the same buffer, so each
/// run sees the previous one's rewrite: from TTL 64, 63 runs forward and the
/// remaining ones meet TTL 1.
/// The benchmark's floor, the two-instruction program loaded and run
/// without aya, returns its action and leaves the frame as it was.
#[test]
fn the_constant_program_returns_its_action_and_the_frame_unchanged() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    ns.run(|| {
        let frame = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("203.0.113.5")).frame();
        for action in [XdpAction::Pass, XdpAction::Drop, XdpAction::Tx] {
            let prog = testrun::load_constant_program(action).unwrap();
            let out = testrun::run(prog.as_fd(), &frame, steer_ifindex("lo"), 10).unwrap();
            assert_eq!((out.action, &out.frame), (action, &frame), "{action:?}");
        }
    });
}

#[test]
fn counters_split_repeated_runs_between_forwarded_and_ttl_expired() {
    require_root_and(&["ip", "bpftool"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("counters");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = open(&pin);
        dp.apply(&routes()).unwrap();
        let before = dp.counters().unwrap();
        let p = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("203.0.113.5"));
        let len = p.frame().len() as u64;
        let out = dp.test_run_repeat(&p.frame(), ifindex, 100).unwrap();
        assert_eq!(out.action, XdpAction::Pass);
        assert_eq!(out.frame[14 + 8], 1, "TTL after 63 forwards");
        let after = dp.counters().unwrap();
        for (b, a) in before.values.iter().zip(&after.values) {
            let delta = (a.packets - b.packets, a.bytes - b.bytes);
            let want = match (a.hook, a.name) {
                ("xdp", "forwarded") => (63, 63 * len),
                ("xdp", "pass_ttl_expired") => (37, 37 * len),
                _ => (0, 0),
            };
            assert_eq!(delta, want, "counter {} {}", a.hook, a.name);
        }
        let dump = xdp_support::netns::cmd(
            "bpftool",
            &format!(
                "-j map dump pinned {}",
                pin.0.join("STEER_COUNTERS").display()
            ),
        )
        .unwrap();
        assert_eq!(
            bpftool_packets(&dump),
            after.values.iter().map(|v| v.packets).collect::<Vec<_>>(),
            "bpftool reads the same per-CPU counters: {dump}"
        );
        let text = after.to_string();
        assert!(
            text.lines().any(|l| l.starts_with("xdp   forwarded ")),
            "{text}"
        );
        assert_eq!(
            text.lines().count(),
            1 + steer_common::HOOK_COUNT * steer_common::REASON_COUNT
        );
    });
}

/// Packets per counter index from `bpftool -j map dump` of the per-CPU
/// counter map (raw bytes: no BTF for aya's legacy map definitions), summed
/// over CPUs.
fn bpftool_packets(dump: &str) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(dump).unwrap();
    let byte = |b: &serde_json::Value| {
        u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    v.as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|cpu| {
                    let raw: Vec<u8> = cpu["value"].as_array().unwrap().iter().map(byte).collect();
                    u64::from_le_bytes(raw[0..8].try_into().unwrap())
                })
                .sum()
        })
        .collect()
}

struct Capture;

static RECORDS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

fn debug_records() -> Vec<String> {
    let all = RECORDS.lock().unwrap();
    all.iter()
        .filter(|r| r.starts_with("steer_xdp: ") || r.starts_with("steer_tc: "))
        .cloned()
        .collect()
}

#[test]
fn debug_events_reach_the_log_facade_only_while_switched_on() {
    require_root_and(&["ip"]);
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("debug");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = open(&pin);
        dp.apply(&routes()).unwrap();
        let frame = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("10.1.2.10")).frame();

        dp.set_debug(true).unwrap();
        dp.test_run(&frame, ifindex).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while debug_records().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let want = format!(
            "steer_xdp: ifindex {ifindex} len {} reason {} egress 0",
            frame.len(),
            Reason::PassEntry.index()
        );
        assert_eq!(debug_records(), vec![want]);
        let meta = SkbMeta {
            ifindex,
            ..SkbMeta::default()
        };
        dp.tc_test_run(&frame, meta).unwrap();
        let want_tc = format!(
            "steer_tc: ifindex {ifindex} len {} reason {} egress 0",
            frame.len(),
            Reason::PassEntry.index()
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while debug_records().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(debug_records()[1..], [want_tc]);

        dp.set_debug(false).unwrap();
        dp.test_run(&frame, ifindex).unwrap();
        dp.tc_test_run(&frame, meta).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert_eq!(debug_records().len(), 2, "no events while debug is off");
    });
}

fn nva(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i as u8))
}

/// The NVA a forwarded frame went to, by its destination MAC.
fn member_of(frame: &[u8]) -> usize {
    NVA_MACS
        .iter()
        .position(|m| frame[0..6] == m[..])
        .unwrap_or_else(|| panic!("not sent to an NVA: {:02x?}", &frame[0..6]))
}

fn flow_events(dp: &XdpDataplane) -> BTreeMap<&'static str, u64> {
    dp.flow_table().unwrap().events
}

fn event_deltas(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(k, v)| (*k, v - before[k]))
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// The flow-table lab: the fast path on a fresh pin dir with the
/// 198.51.100.0/24 set on `members` (NVA indexes).
struct FlowLab {
    dp: XdpDataplane,
    ifindex: u32,
}

impl FlowLab {
    fn open(pin: &PinDir, ifindex: u32) -> FlowLab {
        let dp = XdpDataplane::open(&XdpConfig::new(
            pin.0.clone(),
            &[],
            DataplaneMode::Xdp(XdpMode::Native),
        ))
        .unwrap();
        FlowLab { dp, ifindex }
    }

    fn members(&mut self, members: &[usize]) {
        let hops: Vec<IpAddr> = members.iter().map(|i| nva(*i)).collect();
        self.dp
            .apply(&[(pfx("198.51.100.0/24"), Some(XdpTarget::Forward(hops)))])
            .unwrap();
    }

    fn flow(sport: u16) -> V4 {
        let mut p = V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("198.51.100.7"));
        p.sport = sport;
        p
    }

    fn via_tc(&self, sport: u16) -> usize {
        let meta = SkbMeta {
            ifindex: self.ifindex,
            ..SkbMeta::default()
        };
        let got = self
            .dp
            .tc_test_run(&Self::flow(sport).frame(), meta)
            .unwrap();
        assert_eq!(got.action, TcAction::Redirect, "flow {sport} via TC");
        member_of(&got.frame)
    }

    fn via_xdp(&self, sport: u16) -> usize {
        let got = self
            .dp
            .test_run(&Self::flow(sport).frame(), self.ifindex)
            .unwrap();
        assert_eq!(got.action, XdpAction::Redirect, "flow {sport} via XDP");
        member_of(&got.frame)
    }

    /// Flow `sport` through XDP (`xdp`) or TC.
    fn send(&self, sport: u16, xdp: bool) -> usize {
        if xdp {
            self.via_xdp(sport)
        } else {
            self.via_tc(sport)
        }
    }
}

/// The flow table's rows: new flows spread over the set and are recorded;
/// a running flow hits its entry on both hooks (one table); a joining
/// member takes no running flow but new ones; the table survives the agent
/// (a new `XdpDataplane` on the same pin dir, as after `kill -9`); a flow
/// whose member left is picked anew, the others stay; an idle flow is
/// picked anew.
#[test]
fn flow_table_rows_hit_miss_stale_member_and_idle() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("flows");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut lab = FlowLab::open(&pin, ifindex);
        lab.dp.apply(&routes()).unwrap();
        lab.members(&[0, 1, 2]);
        let sports: Vec<u16> = (40000..40064).collect();

        // New: 64 flows, half first seen by TC, half by XDP.
        let before = flow_events(&lab.dp);
        let placed: BTreeMap<u16, usize> = sports
            .iter()
            .enumerate()
            .map(|(i, &sport)| (sport, lab.send(sport, i % 2 == 1)))
            .collect();
        assert_eq!(
            event_deltas(&before, &flow_events(&lab.dp)),
            BTreeMap::from([("new", 64)])
        );
        let spread: std::collections::BTreeSet<usize> = placed.values().copied().collect();
        assert_eq!(
            spread.len(),
            3,
            "flows spread over every member: {placed:?}"
        );

        // Hit: each flow again, through the other hook.
        let before = flow_events(&lab.dp);
        for (i, &sport) in sports.iter().enumerate() {
            assert_eq!(lab.send(sport, i % 2 == 0), placed[&sport], "flow {sport}");
        }
        assert_eq!(
            event_deltas(&before, &flow_events(&lab.dp)),
            BTreeMap::from([("hit", 64)])
        );
        let table = lab.dp.flow_table().unwrap();
        assert_eq!((table.entries, table.active), (64, 64));
        let mut per_hop = BTreeMap::new();
        for m in placed.values() {
            *per_hop.entry(nva(*m)).or_insert(0u64) += 1;
        }
        assert_eq!(table.by_next_hop, per_hop);

        // A member joins: no running flow moves; some new flows take it.
        lab.members(&[0, 1, 2, 3]);
        let before = flow_events(&lab.dp);
        for &sport in &sports {
            assert_eq!(
                lab.via_tc(sport),
                placed[&sport],
                "flow {sport} after the join"
            );
        }
        assert_eq!(
            event_deltas(&before, &flow_events(&lab.dp)),
            BTreeMap::from([("hit", 64)])
        );
        let joined = (50000..50064u16).filter(|s| lab.via_tc(*s) == 3).count();
        assert!(joined > 0, "no new flow went to the joining member");

        // The agent goes away and a new one adopts the pinned maps.
        drop(lab);
        let mut lab = FlowLab::open(&pin, ifindex);
        let before = flow_events(&lab.dp);
        for &sport in &sports {
            assert_eq!(
                lab.via_xdp(sport),
                placed[&sport],
                "flow {sport} after a restart"
            );
        }
        assert_eq!(
            event_deltas(&before, &flow_events(&lab.dp)),
            BTreeMap::from([("hit", 64)])
        );

        // A member leaves: only its flows move, spread over the others.
        lab.members(&[1, 2, 3]);
        let before = flow_events(&lab.dp);
        let mut moved_to = BTreeMap::new();
        for &sport in &sports {
            let got = lab.via_xdp(sport);
            if placed[&sport] == 0 {
                assert_ne!(got, 0, "flow {sport} left the leaver");
                *moved_to.entry(got).or_insert(0) += 1;
            } else {
                assert_eq!(got, placed[&sport], "flow {sport} was not on the leaver");
            }
        }
        let on_leaver = placed.values().filter(|m| **m == 0).count() as u64;
        assert_eq!(
            event_deltas(&before, &flow_events(&lab.dp)),
            BTreeMap::from([("hit", 64 - on_leaver), ("stale_member", on_leaver)])
        );
        assert!(
            moved_to.len() >= 2,
            "the leaver's {on_leaver} flows spread: {moved_to:?}"
        );

        // Idle past the timeout: picked anew.
        lab.dp.set_flow_idle_timeout(1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let before = flow_events(&lab.dp);
        lab.via_tc(sports[1]);
        assert_eq!(
            event_deltas(&before, &flow_events(&lab.dp)),
            BTreeMap::from([("idle", 1)])
        );
    });
}

/// A full flow table (an LRU hash) never costs a new flow its forwarding:
/// the least recently used entry makes room, the new flow is recorded and
/// keeps its member, and the table stays at its capacity.
#[test]
fn a_full_flow_table_evicts_the_least_recently_used_flow() {
    use aya::maps::{HashMap as BpfHashMap, Map, MapData};
    use steer_common::{FlowEntry, FlowKey, MAX_FLOWS};
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("flows-lru");
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut lab = FlowLab::open(&pin, ifindex);
        lab.dp.apply(&routes()).unwrap();
        lab.members(&[0, 1, 2]);
        let pinned = MapData::from_pin(pin.0.join(steer_common::MAP_FLOWS)).unwrap();
        let mut flows: BpfHashMap<_, FlowKey, FlowEntry> =
            BpfHashMap::try_from(Map::LruHashMap(pinned)).unwrap();
        let filler = FlowEntry {
            last_seen_ns: 0,
            ..FlowEntry::default()
        };
        for i in 0..MAX_FLOWS {
            let key = FlowKey {
                src: [i.to_be(), 0, 0, 0],
                dst: [0x0a00_0001u32.to_be(), 0, 0, 0],
                protocol: 17,
                family: 2,
                ..FlowKey::default()
            };
            flows.insert(key, filler, 0).unwrap();
        }
        let full = lab.dp.flow_table().unwrap().entries;
        assert!(
            full >= u64::from(MAX_FLOWS) * 9 / 10,
            "filled to {full} of {MAX_FLOWS}"
        );

        let before = flow_events(&lab.dp);
        let first = lab.via_tc(40000);
        assert_eq!(lab.via_xdp(40000), first, "the new flow keeps its member");
        assert_eq!(
            event_deltas(&before, &flow_events(&lab.dp)),
            BTreeMap::from([("hit", 1), ("new", 1)])
        );
        let entries = lab.dp.flow_entries().unwrap();
        assert!(entries.len() as u64 <= u64::from(MAX_FLOWS));
        assert!(
            entries
                .iter()
                .any(|(k, e)| k.sport == 40000u16.to_be() && e.hop.addr[0] != 0),
            "the new flow is in the full table"
        );
    });
}
