//! The routing decision the hooks share: parse Ethernet and IP, look the
//! destination up in an LPM map ([`Destinations`]: the routes for the VM
//! interfaces' hooks, the local VM prefixes for the return path), check
//! what the fast path must leave to the kernel, pick the flow's next hop
//! from its set, and ask the kernel's FIB (`bpf_fib_lookup`, with the
//! ingress ifindex so the VM interface's `ip rule`s apply) for that next
//! hop's egress and MACs. Each hook then rewrites and redirects in its own
//! way (`xdp.rs`, `tc.rs`, `uplink.rs`).
//!
//! The next hop is chosen in [`choose`]: by the flow table (`flow.rs`: a
//! running flow keeps its member; a new one takes the flow hash's), or by
//! the flow hash alone when the table is off.

use aya_ebpf::{EbpfContext, helpers::generated::bpf_fib_lookup, maps::lpm_trie::Key};
use steer_common::{
    ACTION_FORWARD, Config, FAMILY_V4, FAMILY_V6, FlowKey, MAX_NEXT_HOPS, NextHop, NextHopSet,
    Reason, Route,
};

use crate::{
    STEER_LPM4, STEER_LPM6, STEER_NHSETS, flow,
    hash::flow_hash,
    packet::{
        ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, Frame, Ipv4Hdr, Ipv6Hdr, at, halves,
        is_ipv6_ext_header, l4,
    },
};

/// `bpf_fib_lookup` found route and neighbour.
pub const FIB_SUCCESS: i64 = 0;
/// `bpf_fib_lookup` found the route but no valid neighbour entry.
pub const FIB_NO_NEIGH: i64 = 7;
/// `bpf_fib_lookup`: the packet is larger than the egress MTU.
pub const FIB_FRAG_NEEDED: i64 = 8;
/// `BPF_FIB_LOOKUP_SKIP_NEIGH`: resolve the route only.
pub const FIB_SKIP_NEIGH: u32 = 4;
/// IPv4 header length without options.
pub const IPV4_HLEN: usize = 20;
/// IPv6 fixed header length.
pub const IPV6_HLEN: usize = 40;
/// Offset of the IPv4 TTL (and of the IPv6 hop limit's header) in a frame.
pub const IPV4_TTL_OFF: usize = ETH_HLEN + 8;
/// Offset of the IPv4 header checksum in a frame.
pub const IPV4_CHECK_OFF: usize = ETH_HLEN + 10;
/// Offset of the IPv6 hop limit in a frame.
pub const IPV6_HOP_LIMIT_OFF: usize = ETH_HLEN + 7;

/// `struct bpf_fib_lookup` (uapi), with its unions flattened to the members
/// the programs use.
#[repr(C)]
pub struct FibParams {
    /// `AF_INET` or `AF_INET6` of the looked-up address.
    pub family: u8,
    /// L4 protocol (for policy routing on ports).
    pub l4_protocol: u8,
    /// Source port, network order.
    pub sport: u16,
    /// Destination port, network order.
    pub dport: u16,
    /// In: packet length for the MTU check (0: the kernel checks the skb
    /// itself, GSO aware). Out: the MTU on FRAG_NEEDED.
    pub tot_len: u16,
    /// In: ingress ifindex. Out: egress ifindex.
    pub ifindex: u32,
    /// IPv4 TOS (low byte) or IPv6 flowinfo (network order).
    pub tos_flowinfo: u32,
    /// Source address.
    pub src: [u32; 4],
    /// In: the next hop. Out: the gateway to reach it, if it is not on-link.
    pub dst: [u32; 4],
    /// VLAN (unused).
    pub vlan: u32,
    /// Out: the egress interface's MAC.
    pub smac: [u8; 6],
    /// Out: the neighbour's MAC.
    pub dmac: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<FibParams>() == 64);

/// A packet the fast path may forward: its route's next-hop set and what
/// the later steps need.
pub struct Packet {
    /// The route's next-hop set (0 on the return path).
    pub set_id: u32,
    /// The flow.
    pub flow: FlowKey,
    /// IPv4 total length, or IPv6 fixed header plus payload.
    pub ip_len: u16,
    /// IPv4 TOS or IPv6 flowinfo (network order), for the FIB lookup.
    pub tos_flowinfo: u32,
    /// TTL or hop limit (> 1).
    pub ttl: u8,
    /// The TCP/UDP checksum field as found, if the protocol has one.
    pub l4_check: Option<u16>,
    /// The pseudo-header's unfolded sum: what a checksum left to offload
    /// holds, once folded.
    pub pseudo: u64,
}

/// The LPM map a hook looks destinations up in. `Ok` is the next-hop set
/// of a destination the hook may forward (0 where there is none); `Err` the
/// reason it goes on to the next stage.
pub trait Destinations {
    /// An IPv4 destination (raw network order).
    fn v4(&self, daddr: [u8; 4]) -> Result<u32, Reason>;
    /// An IPv6 destination (raw network order).
    fn v6(&self, daddr: [u8; 16]) -> Result<u32, Reason>;
}

/// The routes the agent learned (`STEER_LPM4`/`STEER_LPM6`): the VM
/// interfaces' hooks.
pub struct Routes;

impl Destinations for Routes {
    #[inline(always)]
    fn v4(&self, daddr: [u8; 4]) -> Result<u32, Reason> {
        forward_set(STEER_LPM4.get(Key::new(32, daddr)))
    }
    #[inline(always)]
    fn v6(&self, daddr: [u8; 16]) -> Result<u32, Reason> {
        forward_set(STEER_LPM6.get(Key::new(128, daddr)))
    }
}

#[inline(always)]
fn forward_set(route: Option<&Route>) -> Result<u32, Reason> {
    match route {
        None => Err(Reason::NoRoute),
        Some(r) if r.action == ACTION_FORWARD => Ok(r.nh_set),
        Some(_) => Err(Reason::PassEntry),
    }
}

/// Parses the frame and looks its destination up in `dests`. `Err` is the
/// reason the packet goes on to the next stage.
#[inline(always)]
pub fn parse<F: Frame, D: Destinations>(f: &F, dests: &D) -> Result<Packet, Reason> {
    let eth: *const EthHdr = at(f, 0).ok_or(Reason::Truncated)?;
    // SAFETY: `at` proved the header is inside the frame.
    let eth = unsafe { &*eth };
    if eth.dst[0] & 1 != 0 {
        return Err(Reason::NotUnicast);
    }
    match u16::from_be_bytes(eth.proto) {
        ETH_P_IP => ipv4(f, dests),
        ETH_P_IPV6 => ipv6(f, dests),
        _ => Err(Reason::NotIp),
    }
}

#[inline(always)]
fn ipv4<F: Frame, D: Destinations>(f: &F, dests: &D) -> Result<Packet, Reason> {
    let ip: *const Ipv4Hdr = at(f, ETH_HLEN).ok_or(Reason::Truncated)?;
    // SAFETY: `at` proved the header is inside the frame.
    let ip = unsafe { &*ip };
    if ip.version_ihl >> 4 != 4 {
        return Err(Reason::NotIp);
    }
    let daddr = ip.daddr.to_ne_bytes();
    if daddr[0] >= 224 {
        return Err(Reason::NotUnicast);
    }
    let set_id = dests.v4(daddr)?;
    if ip.version_ihl & 0x0f != 5 {
        return Err(Reason::Ipv4Options);
    }
    if u16::from_be(ip.frag_off) & 0x3fff != 0 {
        return Err(Reason::Ipv4Fragment);
    }
    if ip.ttl <= 1 {
        return Err(Reason::TtlExpired);
    }
    let tot_len = u16::from_be(ip.tot_len);
    if ETH_HLEN + tot_len as usize > f.len() || (tot_len as usize) < IPV4_HLEN {
        return Err(Reason::Truncated);
    }
    let l4 = l4(f, ETH_HLEN + IPV4_HLEN, ip.protocol).ok_or(Reason::Truncated)?;
    Ok(Packet {
        set_id,
        flow: FlowKey {
            src: [ip.saddr, 0, 0, 0],
            dst: [ip.daddr, 0, 0, 0],
            sport: l4.sport,
            dport: l4.dport,
            protocol: ip.protocol,
            family: FAMILY_V4 as u8,
            pad: 0,
        },
        ip_len: tot_len,
        tos_flowinfo: ip.tos as u32,
        ttl: ip.ttl,
        l4_check: l4.check,
        pseudo: halves(ip.saddr)
            + halves(ip.daddr)
            + (ip.protocol as u16).to_be() as u64
            + (tot_len - IPV4_HLEN as u16).to_be() as u64,
    })
}

#[inline(always)]
fn ipv6<F: Frame, D: Destinations>(f: &F, dests: &D) -> Result<Packet, Reason> {
    let ip: *const Ipv6Hdr = at(f, ETH_HLEN).ok_or(Reason::Truncated)?;
    // SAFETY: `at` proved the header is inside the frame.
    let ip = unsafe { &*ip };
    if u32::from_be(ip.vtc_flow) >> 28 != 6 {
        return Err(Reason::NotIp);
    }
    let daddr = ip.daddr;
    let first = daddr[0].to_ne_bytes();
    if first[0] == 0xff || (first[0] == 0xfe && first[1] & 0xc0 == 0x80) {
        return Err(Reason::NotUnicast);
    }
    // SAFETY: [u32; 4] and [u8; 16] have the same size and no invalid values.
    let key: [u8; 16] = unsafe { core::mem::transmute(daddr) };
    let set_id = dests.v6(key)?;
    if is_ipv6_ext_header(ip.nexthdr) {
        return Err(Reason::Ipv6ExtHeader);
    }
    if ip.hop_limit <= 1 {
        return Err(Reason::TtlExpired);
    }
    let payload = u16::from_be(ip.payload_len) as usize;
    if ETH_HLEN + IPV6_HLEN + payload > f.len() {
        return Err(Reason::Truncated);
    }
    let l4 = l4(f, ETH_HLEN + IPV6_HLEN, ip.nexthdr).ok_or(Reason::Truncated)?;
    let saddr = ip.saddr;
    Ok(Packet {
        set_id,
        flow: FlowKey {
            src: saddr,
            dst: daddr,
            sport: l4.sport,
            dport: l4.dport,
            protocol: ip.nexthdr,
            family: FAMILY_V6 as u8,
            pad: 0,
        },
        ip_len: (IPV6_HLEN + payload) as u16,
        tos_flowinfo: ip.vtc_flow & 0x0fff_ffffu32.to_be(),
        ttl: ip.hop_limit,
        l4_check: l4.check,
        pseudo: (ip.nexthdr as u16).to_be() as u64
            + (payload as u16).to_be() as u64
            + halves(saddr[0])
            + halves(saddr[1])
            + halves(saddr[2])
            + halves(saddr[3])
            + halves(daddr[0])
            + halves(daddr[1])
            + halves(daddr[2])
            + halves(daddr[3]),
    })
}

/// The member of `p`'s next-hop set that carries its flow.
#[inline(always)]
pub fn choose(p: &Packet, config: &Config) -> Result<NextHop, Reason> {
    // SAFETY: the value is only read; user space replaces sets atomically.
    let set = unsafe { STEER_NHSETS.get(p.set_id) }.ok_or(Reason::NoNextHopSet)?;
    if set.count == 0 || set.count as usize > MAX_NEXT_HOPS {
        return Err(Reason::NoNextHopSet);
    }
    if config.flow_idle_secs == 0 {
        return Ok(hash_pick(set, &p.flow).0);
    }
    Ok(flow::choose(set, p, config.flow_idle_secs))
}

/// The flow hash's member of `set` for `flow`, and its index.
#[inline(always)]
pub fn hash_pick(set: &NextHopSet, flow: &FlowKey) -> (NextHop, u32) {
    let idx = flow_hash(flow).pick(set.count);
    member(set, idx).unwrap_or((set.hops[0], 0))
}

/// Member `idx` of `set`, if it has one.
#[inline(always)]
pub fn member(set: &NextHopSet, idx: u32) -> Option<(NextHop, u32)> {
    // LLVM may prove idx < count <= 16 and drop the check below; the
    // verifier cannot, so hide the value behind a volatile read.
    // SAFETY: reading a local.
    let i = unsafe { core::ptr::read_volatile(&idx) } as usize;
    if i >= MAX_NEXT_HOPS || i >= set.count as usize {
        return None;
    }
    Some((set.hops[i], idx))
}

/// Asks the kernel's FIB how to reach `hop` for `p` arriving on `ifindex`:
/// the return code and the filled-in parameters. `tot_len` is the length to
/// check against the egress MTU (0: let the kernel check the skb).
#[inline(always)]
pub fn lookup<C: EbpfContext>(
    ctx: &C,
    hop: &NextHop,
    p: &Packet,
    ifindex: u32,
    tot_len: u16,
    flags: u32,
) -> (i64, FibParams) {
    let same_family = hop.family == p.flow.family as u32;
    let mut fib = FibParams {
        family: hop.family as u8,
        l4_protocol: p.flow.protocol,
        sport: p.flow.sport,
        dport: p.flow.dport,
        tot_len,
        ifindex,
        tos_flowinfo: if same_family { p.tos_flowinfo } else { 0 },
        src: if same_family { p.flow.src } else { [0; 4] },
        dst: hop.addr,
        vlan: 0,
        smac: [0; 6],
        dmac: [0; 6],
    };
    // SAFETY: `fib` is a valid `struct bpf_fib_lookup` of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            (&mut fib as *mut FibParams).cast(),
            core::mem::size_of::<FibParams>() as i32,
            flags,
        )
    };
    (rc, fib)
}

/// The pass reason of a failed FIB lookup.
#[inline(always)]
pub fn fib_reason(rc: i64) -> Reason {
    match rc {
        FIB_NO_NEIGH => Reason::NoNeigh,
        FIB_FRAG_NEEDED => Reason::FragNeeded,
        _ => Reason::FibFailed,
    }
}
