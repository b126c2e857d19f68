//! BPF_PROG_TEST_RUN fixtures for both programs (katran / cilium
//! `bpf/tests` style): {name, packet in, map contents, expected action,
//! packet out, counter reason}, run in a fresh network namespace whose
//! routes and permanent neighbour entries make `bpf_fib_lookup`'s answers
//! known. The XDP cases come first, then the TC table, where the packet in
//! is an skb with the `__sk_buff` fields of a real one (ingress device, GSO
//! size and segments), then the return path's table (an appliance's packet
//! arriving on the uplink for a VM). Needs root; fails (never skips)
//! without it.

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
    XdpDataplane::open(&XdpConfig::new(
        pin.0.clone(),
        &[],
        DataplaneMode::Xdp(XdpMode::Native),
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

/// One fixture row (katran `fixtures/*.h` style): a frame in, and what one
/// hook must do with it: the action, the frame out and the one counter that
/// counts it (one packet of the frame's length; every other counter stays).
struct Fixture<A> {
    name: &'static str,
    frame: Vec<u8>,
    /// `(gso_size, gso_segs)` for a GSO superpacket (TC only).
    gso: Option<(u32, u32)>,
    action: A,
    out: Vec<u8>,
    reason: Reason,
}

/// A hook's verdicts and its test run: what makes one runner serve the XDP
/// and the TC tables.
trait HookUnderTest: Copy + PartialEq + std::fmt::Debug + Send + Sync {
    const HOOK: Hook;
    const FORWARD: Self;
    const PASS: Self;
    fn run(dp: &XdpDataplane, frame: &[u8], meta: SkbMeta) -> (Self, Vec<u8>);
}

impl HookUnderTest for XdpAction {
    const HOOK: Hook = Hook::Xdp;
    const FORWARD: Self = XdpAction::Redirect;
    const PASS: Self = XdpAction::Pass;
    fn run(dp: &XdpDataplane, frame: &[u8], meta: SkbMeta) -> (Self, Vec<u8>) {
        let got = dp.test_run(frame, meta.ifindex).unwrap();
        (got.action, got.frame)
    }
}

impl HookUnderTest for TcAction {
    const HOOK: Hook = Hook::Tc;
    const FORWARD: Self = TcAction::Redirect;
    const PASS: Self = TcAction::Ok;
    fn run(dp: &XdpDataplane, frame: &[u8], meta: SkbMeta) -> (Self, Vec<u8>) {
        let got = dp.tc_test_run(frame, meta).unwrap();
        (got.action, got.frame)
    }
}

/// A row forwarded to the next hop as `out`.
fn forwarded<A: HookUnderTest>(name: &'static str, frame: Vec<u8>, out: Vec<u8>) -> Fixture<A> {
    Fixture {
        name,
        frame,
        gso: None,
        action: A::FORWARD,
        out,
        reason: Reason::Forwarded,
    }
}

/// A row handed to the kernel stack unchanged, counted under `reason`.
fn passed<A: HookUnderTest>(name: &'static str, frame: Vec<u8>, reason: Reason) -> Fixture<A> {
    Fixture {
        name,
        out: frame.clone(),
        frame,
        gso: None,
        action: A::PASS,
        reason,
    }
}

/// Runs every row on `dp` and fails naming each row that went wrong.
fn run_fixtures<A: HookUnderTest>(dp: &XdpDataplane, ifindex: u32, rows: &[Fixture<A>]) {
    let mut failures = Vec::new();
    for row in rows {
        let (gso_size, gso_segs) = row.gso.unwrap_or((0, 0));
        let meta = SkbMeta {
            ifindex,
            gso_size,
            gso_segs,
        };
        let before = dp.counters().unwrap();
        let (action, out) = A::run(dp, &row.frame, meta);
        let after = dp.counters().unwrap();
        if action != row.action {
            failures.push(format!(
                "{}: action {action:?}, want {:?}",
                row.name, row.action
            ));
        }
        if out != row.out {
            failures.push(format!(
                "{}: packet out\n    got  {out:02x?}\n    want {:02x?}",
                row.name, row.out
            ));
        }
        let counted = (A::HOOK, row.reason, 1, row.frame.len() as u64);
        failures.extend(counter_errors(row.name, &before, &after, counted));
    }
    assert!(
        failures.is_empty(),
        "{} of {} {} fixtures failed:\n{}",
        failures.len(),
        rows.len(),
        A::HOOK.name(),
        failures.join("\n")
    );
}

/// What differs between the counters' movement from `before` to `after`
/// and exactly `packets`/`bytes` on `(hook, reason)` and nothing elsewhere.
fn counter_errors(
    name: &str,
    before: &DataplaneCounters,
    after: &DataplaneCounters,
    (hook, reason, packets, bytes): (Hook, Reason, u64, u64),
) -> Vec<String> {
    let mut errors = Vec::new();
    for (b, a) in before.values.iter().zip(&after.values) {
        let moved = (a.packets - b.packets, a.bytes - b.bytes);
        let want = if a.hook == hook.name() && a.name == reason.name() {
            (packets, bytes)
        } else {
            (0, 0)
        };
        if moved != want {
            errors.push(format!(
                "{name}: counter {} {} moved {moved:?}, want {want:?}",
                a.hook, a.name
            ));
        }
    }
    errors
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

/// `frame` (IPv6 at 14) routed to the IPv6 NVA: hop limit 64 - 1, MACs
/// replaced; the rest (the UDP checksum, computed or offloaded) untouched.
fn routed_raw_v6(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&NVA6_MAC);
    out[6..12].copy_from_slice(&HOST_UP0_MAC);
    out[14 + 7] = 63;
    out
}

/// The fixtures' IPv4 flow: a VM to 203.0.113.5 (one NVA).
fn base() -> V4 {
    V4::udp(VM_MAC, HOST_VM0_MAC, v4("10.1.1.10"), v4("203.0.113.5"))
}

/// The fixtures' IPv6 flow: a VM to 2001:db8:aaaa::5.
fn base6() -> V6 {
    V6::udp(
        VM_MAC,
        HOST_VM0_MAC,
        v6("2001:db8:1::10"),
        v6("2001:db8:aaaa::5"),
    )
}

/// [`base`] changed by `f`.
fn with(f: impl FnOnce(&mut V4)) -> V4 {
    let mut p = base();
    f(&mut p);
    p
}

/// [`base6`] changed by `f`.
fn with6(f: impl FnOnce(&mut V6)) -> V6 {
    let mut p = base6();
    f(&mut p);
    p
}

/// The base frame with its EtherType or tag replaced by `f`.
fn base_frame(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut frame = base().frame();
    f(&mut frame);
    frame
}

/// The rows both hooks forward alike.
fn forwarded_by_both<A: HookUnderTest>() -> Vec<Fixture<A>> {
    let over6 = with(|p| p.dst = v4("100.64.3.9"));
    vec![
        forwarded(
            "ipv4 forward",
            base().frame(),
            routed_v4(&base(), NVA_MACS[0], HOST_UP0_MAC),
        ),
        forwarded(
            "ipv4 over an ipv6 next hop",
            over6.frame(),
            routed_v4(&over6, NVA6_MAC, HOST_UP0_MAC),
        ),
        forwarded(
            "ipv6 forward",
            base6().frame(),
            routed_raw_v6(&base6().frame()),
        ),
    ]
}

/// The rows both hooks hand to the stack alike.
fn passed_by_both<A: HookUnderTest>() -> Vec<Fixture<A>> {
    vec![
        passed("ttl 1", with(|p| p.ttl = 1).frame(), Reason::TtlExpired),
        passed(
            "hop limit 1",
            with6(|p| p.hop_limit = 1).frame(),
            Reason::TtlExpired,
        ),
        passed(
            "no route",
            with(|p| p.dst = v4("192.0.2.99")).frame(),
            Reason::NoRoute,
        ),
        passed(
            "no ipv6 route",
            with6(|p| p.dst = v6("2001:db8:bbbb::1")).frame(),
            Reason::NoRoute,
        ),
        passed(
            "pass entry",
            with(|p| p.dst = v4("10.1.2.10")).frame(),
            Reason::PassEntry,
        ),
        passed(
            "ipv6 pass entry",
            with6(|p| p.dst = v6("2001:db8:1::20")).frame(),
            Reason::PassEntry,
        ),
        passed(
            "ipv4 options",
            with(|p| p.options = vec![1, 1, 1, 0]).frame(),
            Reason::Ipv4Options,
        ),
        passed(
            "first fragment (MF)",
            with(|p| p.frag = 0x2000).frame(),
            Reason::Ipv4Fragment,
        ),
        passed(
            "ipv6 hop-by-hop header",
            with6(|p| p.next_header = 0).frame(),
            Reason::Ipv6ExtHeader,
        ),
        passed(
            "arp",
            base_frame(|f| f[12..14].copy_from_slice(&0x0806u16.to_be_bytes())),
            Reason::NotIp,
        ),
        passed(
            "vlan tagged",
            base_frame(|f| drop(f.splice(12..12, [0x81, 0x00, 0x00, 0x64]))),
            Reason::NotIp,
        ),
        passed(
            "broadcast frame",
            with(|p| p.dst_mac = [0xff; 6]).frame(),
            Reason::NotUnicast,
        ),
        passed(
            "multicast destination",
            with(|p| p.dst = v4("224.0.0.5")).frame(),
            Reason::NotUnicast,
        ),
        passed(
            "next hop without route",
            with(|p| p.dst = v4("100.64.2.1")).frame(),
            Reason::FibFailed,
        ),
    ]
}

/// The XDP table: forwards, then what XDP leaves to the stack (or to TC).
fn xdp_fixtures() -> Vec<Fixture<XdpAction>> {
    let mut rows = forwarded_by_both();
    rows.extend(passed_by_both());
    rows.extend([
        passed(
            "later fragment (offset)",
            with(|p| p.frag = 0x00b9).frame(),
            Reason::Ipv4Fragment,
        ),
        passed(
            "truncated ipv4 header",
            base().frame()[..14 + 12].to_vec(),
            Reason::Truncated,
        ),
        passed(
            "total length beyond the frame",
            base_frame(|f| f.truncate(f.len() - 8)),
            Reason::Truncated,
        ),
        passed(
            "next hop without neighbour",
            with(|p| p.dst = v4("100.64.1.1")).frame(),
            Reason::NoNeigh,
        ),
        passed(
            "larger than the egress mtu",
            with(|p| p.payload = 1600).frame(),
            Reason::FragNeeded,
        ),
        passed(
            "udp checksum left to offload (on to TC)",
            offloaded_v4(&base()),
            Reason::CsumPartial,
        ),
        passed(
            "ipv6 udp checksum left to offload",
            offloaded_v6(&base6()),
            Reason::CsumPartial,
        ),
    ]);
    rows
}

/// The TC table: an skb with the `__sk_buff` fields of a real one in; TC
/// forwards what XDP left to it (offloaded checksums, GSO, unresolved
/// neighbours) and hands the rest to the stack.
fn tc_fixtures() -> Vec<Fixture<TcAction>> {
    let big = with(|p| p.payload = 1600);
    let no_neigh = with(|p| p.dst = v4("100.64.1.1"));
    let mut rows = forwarded_by_both();
    rows.extend([
        forwarded(
            "udp checksum left to offload is forwarded untouched",
            offloaded_v4(&base()),
            routed_raw_v4(&offloaded_v4(&base()), NVA_MACS[0]),
        ),
        forwarded(
            "ipv6 udp checksum left to offload is forwarded untouched",
            offloaded_v6(&base6()),
            routed_raw_v6(&offloaded_v6(&base6())),
        ),
        Fixture {
            gso: Some((1448, 2)),
            ..forwarded(
                "gso superpacket larger than the egress mtu",
                big.frame(),
                routed_v4(&big, NVA_MACS[0], HOST_UP0_MAC),
            )
        },
        forwarded(
            "next hop without neighbour: the kernel resolves it on the way out",
            no_neigh.frame(),
            routed_v4(&no_neigh, HOST_VM0_MAC, VM_MAC),
        ),
        passed("the same size without gso", big.frame(), Reason::FragNeeded),
    ]);
    rows.extend(passed_by_both());
    rows.extend([
        passed(
            "frame for another host's mac",
            with(|p| p.dst_mac = [0x02, 0, 0, 0, 0x99, 0x99]).frame(),
            Reason::NotUnicast,
        ),
        passed(
            "total length beyond the packet",
            base_frame(|f| f.truncate(f.len() - 8)),
            Reason::Truncated,
        ),
    ]);
    rows
}

/// The return path's verdicts: TC actions, counted under its own hook; it
/// passes with `TC_ACT_UNSPEC`, so other programs on the uplink still run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReturnAction(TcAction);

impl HookUnderTest for ReturnAction {
    const HOOK: Hook = Hook::Return;
    const FORWARD: Self = ReturnAction(TcAction::Redirect);
    const PASS: Self = ReturnAction(TcAction::Next);
    fn run(dp: &XdpDataplane, frame: &[u8], meta: SkbMeta) -> (Self, Vec<u8>) {
        let got = dp.uplink_test_run(frame, meta).unwrap();
        (ReturnAction(got.action), got.frame)
    }
}

/// The return path's IPv4 flow: an appliance behind up0 to the VM
/// 10.1.1.10 behind vm0, with `f` applied.
fn back(f: impl FnOnce(&mut V4)) -> V4 {
    let mut p = V4::udp(
        NVA_MACS[0],
        HOST_UP0_MAC,
        v4("203.0.113.5"),
        v4("10.1.1.10"),
    );
    f(&mut p);
    p
}

/// `p` as the return path leaves it: TTL - 1, from vm0's MAC to the VM's.
fn to_vm(p: &V4) -> V4 {
    let mut out = p.clone();
    out.ttl -= 1;
    out.dst_mac = VM_MAC;
    out.src_mac = HOST_VM0_MAC;
    out
}

/// The return path's table: what it forwards to the VM (resolved, with its
/// offload state, through the kernel's neighbour resolution when the VM's
/// entry is missing) and what it leaves to the kernel, each under its
/// reason.
fn return_fixtures() -> Vec<Fixture<ReturnAction>> {
    let big = back(|p| p.payload = 1600);
    let no_neigh = back(|p| p.dst = v4("10.1.1.99"));
    let v6_in = V6::udp(
        NVA6_MAC,
        HOST_UP0_MAC,
        v6("2001:db8:aaaa::5"),
        v6("2001:db8:1::10"),
    );
    let mut v6_out = v6_in.clone();
    v6_out.hop_limit -= 1;
    v6_out.dst_mac = VM_MAC;
    v6_out.src_mac = HOST_VM0_MAC;
    let mut no_neigh_out = no_neigh.clone();
    no_neigh_out.ttl -= 1;
    vec![
        forwarded(
            "ipv4 to a vm",
            back(|_| {}).frame(),
            to_vm(&back(|_| {})).frame(),
        ),
        forwarded("ipv6 to a vm", v6_in.frame(), v6_out.frame()),
        forwarded(
            "udp checksum left to offload is forwarded untouched",
            offloaded_v4(&back(|_| {})),
            offloaded_v4(&to_vm(&back(|_| {}))),
        ),
        Fixture {
            gso: Some((1448, 2)),
            ..forwarded(
                "gso superpacket larger than the vm interface's mtu",
                big.frame(),
                to_vm(&big).frame(),
            )
        },
        forwarded(
            "vm without a neighbour entry: the kernel resolves it on the way out",
            no_neigh.frame(),
            no_neigh_out.frame(),
        ),
        passed(
            "not a vm prefix",
            back(|p| p.dst = v4("203.0.113.9")).frame(),
            Reason::NoRoute,
        ),
        passed(
            "a vm prefix the kernel routes out of another interface",
            back(|p| p.dst = v4("100.64.9.5")).frame(),
            Reason::EgressNotVm,
        ),
        passed(
            "the host's own address in the vm prefix",
            back(|p| p.dst = v4("10.1.1.1")).frame(),
            Reason::FibFailed,
        ),
        passed("ttl 1", back(|p| p.ttl = 1).frame(), Reason::TtlExpired),
        passed(
            "ipv4 options",
            back(|p| p.options = vec![1, 1, 1, 0]).frame(),
            Reason::Ipv4Options,
        ),
        passed(
            "first fragment (MF)",
            back(|p| p.frag = 0x2000).frame(),
            Reason::Ipv4Fragment,
        ),
        passed("the same size without gso", big.frame(), Reason::FragNeeded),
        passed(
            "frame for another host's mac",
            back(|p| p.dst_mac = [0x02, 0, 0, 0, 0x99, 0x99]).frame(),
            Reason::NotUnicast,
        ),
    ]
}

/// The fast path as the agent runs it by default on these veths.
const NATIVE: DataplaneMode = DataplaneMode::Xdp(XdpMode::Native);

/// Runs `f` in a fresh namespace set up by [`lab`], with the dataplane
/// opened in `mode` on the pin dir `pin` and [`routes`] applied; `f` gets
/// the dataplane, vm0's ifindex and the pin dir.
fn with_dataplane(
    pin: &str,
    mode: DataplaneMode,
    f: impl FnOnce(XdpDataplane, u32, &PinDir) + Send,
) {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new(pin);
    ns.run(|| {
        let ifindex = lab().unwrap();
        let mut dp = XdpDataplane::open(&XdpConfig::new(pin.0.clone(), &[], mode))
            .expect("open the eBPF dataplane");
        dp.apply(&routes()).unwrap();
        f(dp, ifindex, &pin);
    });
}

/// Runs `rows` on a dataplane opened in `mode`.
fn run_table<A: HookUnderTest>(pin: &str, mode: DataplaneMode, rows: Vec<Fixture<A>>) {
    with_dataplane(pin, mode, |dp, ifindex, _| {
        run_fixtures(&dp, ifindex, &rows)
    });
}

#[test]
fn fixtures_give_the_expected_action_frame_and_counter() {
    run_table("fixtures", NATIVE, xdp_fixtures());
}

#[test]
fn generic_mode_forwards_checksums_left_to_offload() {
    run_table(
        "generic",
        DataplaneMode::Xdp(XdpMode::Generic),
        vec![forwarded::<XdpAction>(
            "offloaded udp, generic",
            offloaded_v4(&base()),
            routed_raw_v4(&offloaded_v4(&base()), NVA_MACS[0]),
        )],
    );
}

#[test]
fn tc_fixtures_give_the_expected_action_packet_and_counter() {
    run_table("tc-fixtures", DataplaneMode::Tc, tc_fixtures());
}

#[test]
fn return_path_fixtures_give_the_expected_action_packet_and_counter() {
    with_dataplane("return-fixtures", DataplaneMode::Tc, |mut dp, _, _| {
        ip(&format!(
            "neigh add 10.1.1.10 lladdr {} dev vm0 nud permanent",
            mac_str(&VM_MAC)
        ))
        .unwrap();
        ip(&format!(
            "-6 neigh add 2001:db8:1::10 lladdr {} dev vm0 nud permanent",
            mac_str(&VM_MAC)
        ))
        .unwrap();
        ip("route add 100.64.9.0/24 via 192.0.2.10").unwrap();
        dp.set_interfaces(&["vm0".to_string()]).unwrap();
        dp.set_vm_prefixes(&[
            pfx("10.1.1.0/24"),
            pfx("100.64.9.0/24"),
            pfx("2001:db8:1::/64"),
        ])
        .unwrap();
        assert_eq!(
            dp.vm_prefixes().unwrap(),
            [
                pfx("10.1.1.0/24"),
                pfx("100.64.9.0/24"),
                pfx("2001:db8:1::/64")
            ]
        );
        run_fixtures(&dp, steer_ifindex("up0"), &return_fixtures());
        dp.set_vm_prefixes(&[pfx("10.1.1.0/24")]).unwrap();
        assert_eq!(dp.vm_prefixes().unwrap(), [pfx("10.1.1.0/24")]);
        run_fixtures(
            &dp,
            steer_ifindex("up0"),
            &[passed::<ReturnAction>(
                "a vm prefix no longer configured",
                V6::udp(
                    NVA6_MAC,
                    HOST_UP0_MAC,
                    v6("2001:db8:aaaa::5"),
                    v6("2001:db8:1::10"),
                )
                .frame(),
                Reason::NoRoute,
            )],
        );
    });
}

#[test]
fn tc_ipv4_checksum_matches_a_recomputed_one_for_every_ttl() {
    with_dataplane("tc-checksum", DataplaneMode::Tc, |dp, ifindex, _| {
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
    with_dataplane("checksum", NATIVE, |dp, ifindex, _| {
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
    with_dataplane("ecmp", NATIVE, |dp, ifindex, _| {
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
    with_dataplane("counters", NATIVE, |dp, ifindex, pin| {
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
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    with_dataplane("debug", NATIVE, |mut dp, ifindex, _| {
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
        FlowLab {
            dp: open(pin),
            ifindex,
        }
    }

    /// Runs `f` and checks that the flow-table events it caused are
    /// exactly `want`.
    fn events<R>(&self, want: &[(&'static str, u64)], f: impl FnOnce() -> R) -> R {
        let before = flow_events(&self.dp);
        let r = f();
        assert_eq!(
            event_deltas(&before, &flow_events(&self.dp)),
            BTreeMap::from_iter(want.iter().copied())
        );
        r
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

    /// Sends every flow of `placed` again, the `i`th through XDP if
    /// `xdp(i)` (else TC), and checks each hits its entry and keeps its
    /// member.
    fn stay(&self, placed: &BTreeMap<u16, usize>, xdp: impl Fn(usize) -> bool, when: &str) {
        self.events(&[("hit", placed.len() as u64)], || {
            for (i, (&sport, &member)) in placed.iter().enumerate() {
                assert_eq!(self.send(sport, xdp(i)), member, "flow {sport} {when}");
            }
        });
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
    with_dataplane("flows", NATIVE, |dp, ifindex, pin| {
        let mut lab = FlowLab { dp, ifindex };
        lab.members(&[0, 1, 2]);
        let sports: Vec<u16> = (40000..40064).collect();

        // New: 64 flows, half first seen by TC, half by XDP.
        let placed: BTreeMap<u16, usize> = lab.events(&[("new", 64)], || {
            sports
                .iter()
                .enumerate()
                .map(|(i, &sport)| (sport, lab.send(sport, i % 2 == 1)))
                .collect()
        });
        let spread: std::collections::BTreeSet<usize> = placed.values().copied().collect();
        assert_eq!(
            spread.len(),
            3,
            "flows spread over every member: {placed:?}"
        );

        // Hit: each flow again, through the other hook.
        lab.stay(&placed, |i| i % 2 == 0, "through the other hook");
        let table = lab.dp.flow_table().unwrap();
        assert_eq!((table.entries, table.active), (64, 64));
        let mut per_hop = BTreeMap::new();
        for m in placed.values() {
            *per_hop.entry(nva(*m)).or_insert(0u64) += 1;
        }
        assert_eq!(table.by_next_hop, per_hop);

        // A member joins: no running flow moves; some new flows take it.
        lab.members(&[0, 1, 2, 3]);
        lab.stay(&placed, |_| false, "after the join");
        let joined = (50000..50064u16).filter(|s| lab.via_tc(*s) == 3).count();
        assert!(joined > 0, "no new flow went to the joining member");

        // The agent goes away and a new one adopts the pinned maps.
        drop(lab);
        let mut lab = FlowLab::open(pin, ifindex);
        lab.stay(&placed, |_| true, "after a restart");

        // A member leaves: only its flows move, spread over the others.
        lab.members(&[1, 2, 3]);
        let on_leaver = placed.values().filter(|m| **m == 0).count() as u64;
        let want = [("hit", 64 - on_leaver), ("stale_member", on_leaver)];
        let moved_to = lab.events(&want, || {
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
            moved_to
        });
        assert!(
            moved_to.len() >= 2,
            "the leaver's {on_leaver} flows spread: {moved_to:?}"
        );

        // Idle past the timeout: picked anew.
        lab.dp.set_flow_idle_timeout(1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2100));
        lab.events(&[("idle", 1)], || lab.via_tc(sports[1]));
    });
}

/// A full flow table (an LRU hash) never costs a new flow its forwarding:
/// the least recently used entry makes room, the new flow is recorded and
/// keeps its member, and the table stays at its capacity.
#[test]
fn a_full_flow_table_evicts_the_least_recently_used_flow() {
    use aya::maps::{HashMap as BpfHashMap, Map, MapData};
    use steer_common::{FlowEntry, FlowKey, MAX_FLOWS};
    with_dataplane("flows-lru", NATIVE, |dp, ifindex, pin| {
        let mut lab = FlowLab { dp, ifindex };
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

        lab.events(&[("hit", 1), ("new", 1)], || {
            let first = lab.via_tc(40000);
            assert_eq!(lab.via_xdp(40000), first, "the new flow keeps its member");
        });
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
