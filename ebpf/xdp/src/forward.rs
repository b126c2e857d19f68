//! The per-packet decision: parse, look the destination up, pick a next
//! hop, resolve it with `bpf_fib_lookup`, rewrite and redirect. Every early
//! return is an `XDP_PASS` with the reason it gave up.

use aya_ebpf::{
    EbpfContext,
    bindings::xdp_action,
    helpers::generated::{bpf_fib_lookup, bpf_redirect},
    maps::lpm_trie::Key,
    programs::XdpContext,
};
use steer_common::{
    ACTION_FORWARD, CONFIG_GENERIC, FAMILY_V4, FAMILY_V6, MAX_NEXT_HOPS, Reason, Route,
};

use crate::{
    STEER_LPM4, STEER_LPM6, STEER_NHSETS, Verdict,
    hash::FlowHash,
    packet::{
        ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, Ipv4Hdr, Ipv6Hdr, at, fold, halves,
        is_ipv6_ext_header, l4,
    },
};

const FIB_SUCCESS: i64 = 0;
const FIB_NO_NEIGH: i64 = 7;
const FIB_FRAG_NEEDED: i64 = 8;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

/// `struct bpf_fib_lookup` (uapi), with its unions flattened to the members
/// this program uses.
#[repr(C)]
struct FibParams {
    family: u8,
    l4_protocol: u8,
    sport: u16,
    dport: u16,
    /// In: packet length for the MTU check. Out: the MTU on FRAG_NEEDED.
    tot_len: u16,
    /// In: ingress ifindex. Out: egress ifindex.
    ifindex: u32,
    /// IPv4 TOS (low byte) or IPv6 flowinfo (network order).
    tos_flowinfo: u32,
    src: [u32; 4],
    dst: [u32; 4],
    vlan: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
}

/// The packet fields the next-hop resolution needs.
struct Flow {
    family: u32,
    protocol: u8,
    sport: u16,
    dport: u16,
    tot_len: u16,
    tos_flowinfo: u32,
    src: [u32; 4],
}

/// Decides what to do with the frame in `ctx` (and rewrites it if it is
/// forwarded). `config` is the config map's flags.
#[inline(always)]
pub fn process(ctx: &XdpContext, config: u32) -> Verdict {
    let Some(eth) = at::<EthHdr>(ctx, 0) else {
        return Verdict::pass(Reason::Truncated);
    };
    // SAFETY: `at` proved the header is inside the frame.
    let eth = unsafe { &mut *eth };
    if eth.dst[0] & 1 != 0 {
        return Verdict::pass(Reason::NotUnicast);
    }
    match u16::from_be_bytes(eth.proto) {
        ETH_P_IP => ipv4(ctx, eth, config),
        ETH_P_IPV6 => ipv6(ctx, eth, config),
        _ => Verdict::pass(Reason::NotIp),
    }
}

#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

#[inline(always)]
fn forward_set(route: Option<&Route>) -> Result<u32, Verdict> {
    match route {
        None => Err(Verdict::pass(Reason::NoRoute)),
        Some(r) if r.action == ACTION_FORWARD => Ok(r.nh_set),
        Some(_) => Err(Verdict::pass(Reason::PassEntry)),
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, eth: &mut EthHdr, config: u32) -> Verdict {
    let Some(ip) = at::<Ipv4Hdr>(ctx, ETH_HLEN) else {
        return Verdict::pass(Reason::Truncated);
    };
    // SAFETY: `at` proved the header is inside the frame.
    let ip = unsafe { &mut *ip };
    if ip.version_ihl >> 4 != 4 {
        return Verdict::pass(Reason::NotIp);
    }
    let daddr = ip.daddr.to_ne_bytes();
    if daddr[0] >= 224 {
        return Verdict::pass(Reason::NotUnicast);
    }
    let set_id = match forward_set(STEER_LPM4.get(Key::new(32, daddr))) {
        Ok(id) => id,
        Err(v) => return v,
    };
    if ip.version_ihl & 0x0f != 5 {
        return Verdict::pass(Reason::Ipv4Options);
    }
    if u16::from_be(ip.frag_off) & 0x3fff != 0 {
        return Verdict::pass(Reason::Ipv4Fragment);
    }
    if ip.ttl <= 1 {
        return Verdict::pass(Reason::TtlExpired);
    }
    let tot_len = u16::from_be(ip.tot_len);
    if ETH_HLEN + tot_len as usize > frame_len(ctx) || (tot_len as usize) < IPV4_HLEN {
        return Verdict::pass(Reason::Truncated);
    }
    let Some(l4) = l4(ctx, ETH_HLEN + IPV4_HLEN, ip.protocol) else {
        return Verdict::pass(Reason::Truncated);
    };
    if let Some(check) = l4.check
        && config & CONFIG_GENERIC == 0
    {
        let pseudo = halves(ip.saddr)
            + halves(ip.daddr)
            + (ip.protocol as u16).to_be() as u64
            + (tot_len - IPV4_HLEN as u16).to_be() as u64;
        if fold(pseudo) == check {
            return Verdict::pass(Reason::CsumPartial);
        }
    }
    let (sport, dport) = (l4.sport, l4.dport);
    let hash = FlowHash::new()
        .word(ip.saddr)
        .word(ip.daddr)
        .word(ip.protocol as u32)
        .word(((sport as u32) << 16) | dport as u32);
    let flow = Flow {
        family: FAMILY_V4,
        protocol: ip.protocol,
        sport,
        dport,
        tot_len,
        tos_flowinfo: ip.tos as u32,
        src: [ip.saddr, 0, 0, 0],
    };
    let fib = match resolve(ctx, set_id, hash, &flow) {
        Ok(fib) => fib,
        Err(v) => return v,
    };
    eth.dst = fib.dmac;
    eth.src = fib.smac;
    let check = ip.check as u32 + 0x0100u16.to_be() as u32;
    ip.check = (check + (check >= 0xffff) as u32) as u16;
    ip.ttl -= 1;
    redirect(fib.ifindex)
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, eth: &mut EthHdr, config: u32) -> Verdict {
    let Some(ip) = at::<Ipv6Hdr>(ctx, ETH_HLEN) else {
        return Verdict::pass(Reason::Truncated);
    };
    // SAFETY: `at` proved the header is inside the frame.
    let ip = unsafe { &mut *ip };
    if u32::from_be(ip.vtc_flow) >> 28 != 6 {
        return Verdict::pass(Reason::NotIp);
    }
    let daddr = ip.daddr;
    let first = daddr[0].to_ne_bytes();
    if first[0] == 0xff || (first[0] == 0xfe && first[1] & 0xc0 == 0x80) {
        return Verdict::pass(Reason::NotUnicast);
    }
    // SAFETY: [u32; 4] and [u8; 16] have the same size and no invalid values.
    let key: [u8; 16] = unsafe { core::mem::transmute(daddr) };
    let set_id = match forward_set(STEER_LPM6.get(Key::new(128, key))) {
        Ok(id) => id,
        Err(v) => return v,
    };
    if is_ipv6_ext_header(ip.nexthdr) {
        return Verdict::pass(Reason::Ipv6ExtHeader);
    }
    if ip.hop_limit <= 1 {
        return Verdict::pass(Reason::TtlExpired);
    }
    let payload = u16::from_be(ip.payload_len) as usize;
    if ETH_HLEN + IPV6_HLEN + payload > frame_len(ctx) {
        return Verdict::pass(Reason::Truncated);
    }
    let Some(l4) = l4(ctx, ETH_HLEN + IPV6_HLEN, ip.nexthdr) else {
        return Verdict::pass(Reason::Truncated);
    };
    let saddr = ip.saddr;
    if let Some(check) = l4.check
        && config & CONFIG_GENERIC == 0
    {
        let pseudo = (ip.nexthdr as u16).to_be() as u64
            + (payload as u16).to_be() as u64
            + halves(saddr[0])
            + halves(saddr[1])
            + halves(saddr[2])
            + halves(saddr[3])
            + halves(daddr[0])
            + halves(daddr[1])
            + halves(daddr[2])
            + halves(daddr[3]);
        if fold(pseudo) == check {
            return Verdict::pass(Reason::CsumPartial);
        }
    }
    let (sport, dport) = (l4.sport, l4.dport);
    let hash = FlowHash::new()
        .word(saddr[0])
        .word(saddr[1])
        .word(saddr[2])
        .word(saddr[3])
        .word(daddr[0])
        .word(daddr[1])
        .word(daddr[2])
        .word(daddr[3])
        .word(ip.nexthdr as u32)
        .word(((sport as u32) << 16) | dport as u32);
    let flow = Flow {
        family: FAMILY_V6,
        protocol: ip.nexthdr,
        sport,
        dport,
        tot_len: (IPV6_HLEN + payload) as u16,
        tos_flowinfo: ip.vtc_flow & 0x0fff_ffffu32.to_be(),
        src: saddr,
    };
    let fib = match resolve(ctx, set_id, hash, &flow) {
        Ok(fib) => fib,
        Err(v) => return v,
    };
    eth.dst = fib.dmac;
    eth.src = fib.smac;
    ip.hop_limit -= 1;
    redirect(fib.ifindex)
}

/// Picks the flow's member of set `set_id` and asks the kernel's FIB (with
/// the ingress ifindex, so policy rules apply) for its egress and MACs.
#[inline(always)]
fn resolve(
    ctx: &XdpContext,
    set_id: u32,
    hash: FlowHash,
    flow: &Flow,
) -> Result<FibParams, Verdict> {
    // SAFETY: the value is only read; user space replaces sets atomically.
    let Some(set) = (unsafe { STEER_NHSETS.get(set_id) }) else {
        return Err(Verdict::pass(Reason::NoNextHopSet));
    };
    let count = set.count;
    if count == 0 || count as usize > MAX_NEXT_HOPS {
        return Err(Verdict::pass(Reason::NoNextHopSet));
    }
    let idx = hash.pick(count) as usize;
    // LLVM proves idx < count <= 16 and would drop the check below; the
    // verifier cannot, so hide the value behind a volatile read.
    // SAFETY: reading a local.
    let idx = unsafe { core::ptr::read_volatile(&idx) };
    if idx >= MAX_NEXT_HOPS {
        return Err(Verdict::pass(Reason::NoNextHopSet));
    }
    let hop = &set.hops[idx];
    let same_family = hop.family == flow.family;
    let mut fib = FibParams {
        family: hop.family as u8,
        l4_protocol: flow.protocol,
        sport: flow.sport,
        dport: flow.dport,
        tot_len: flow.tot_len,
        ifindex: ctx.ingress_ifindex() as u32,
        tos_flowinfo: if same_family { flow.tos_flowinfo } else { 0 },
        src: if same_family { flow.src } else { [0; 4] },
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
            0,
        )
    };
    match rc {
        FIB_SUCCESS => Ok(fib),
        FIB_NO_NEIGH => Err(Verdict::pass(Reason::NoNeigh)),
        FIB_FRAG_NEEDED => Err(Verdict::pass(Reason::FragNeeded)),
        _ => Err(Verdict::pass(Reason::FibFailed)),
    }
}

#[inline(always)]
fn redirect(ifindex: u32) -> Verdict {
    // SAFETY: a plain helper call; flags 0.
    let action = unsafe { bpf_redirect(ifindex, 0) } as u32;
    Verdict {
        action,
        reason: if action == xdp_action::XDP_REDIRECT {
            Reason::Forwarded
        } else {
            Reason::FibFailed
        },
        egress: ifindex,
    }
}

const _: () = assert!(core::mem::size_of::<FibParams>() == 64);
