//! The TC hook (tcx or clsact ingress of the VM interfaces): the shared
//! routing decision on the skb, then the rewrite through helpers and a
//! redirect to the egress device. The return path (`uplink.rs`) shares its
//! steps ([`prologue`], [`resolve`], [`forward`]). The skb keeps its
//! offload state, so GSO superpackets, GRO'd packets and checksums left to
//! offload (`CHECKSUM_PARTIAL`) leave as they came, to be finished by the
//! egress device or the receiver.
//!
//! As Cilium's host routing does: `bpf_fib_lookup` with a neighbour found
//! rewrites the MACs and `bpf_redirect`s; without one the kernel resolves
//! it on the way out (`bpf_redirect_neigh`), so the flow stays on the
//! member chosen here. The MTU check is the kernel's (`tot_len` 0: it
//! checks the skb, GSO aware). TTL/hop limit - 1 with the IPv4 checksum
//! fixed incrementally (`bpf_l3_csum_replace`); the IPv6 hop limit is
//! written with `BPF_F_RECOMPUTE_CSUM` so a `CHECKSUM_COMPLETE` sum stays
//! true.

use aya_ebpf::{
    bindings::{BPF_F_RECOMPUTE_CSUM, TC_ACT_OK, TC_ACT_REDIRECT},
    helpers::generated::{bpf_redirect, bpf_redirect_neigh, bpf_redirect_peer},
    programs::TcContext,
};
use steer_common::{Config, FAMILY_V4, NextHop, Reason};

use crate::{
    Verdict,
    packet::ETH_HLEN,
    route::{
        FIB_NO_NEIGH, FIB_SKIP_NEIGH, FIB_SUCCESS, FibParams, IPV4_CHECK_OFF, IPV4_TTL_OFF,
        IPV6_HLEN, IPV6_HOP_LIMIT_OFF, Packet, Routes, choose, fib_reason, lookup, parse,
    },
};

/// `PACKET_HOST`: the frame was addressed to this host's MAC.
const PACKET_HOST: u32 = 0;
/// Headers the program reads and writes: Ethernet, IPv6, 18 bytes of TCP.
const HEADERS: u32 = (ETH_HLEN + IPV6_HLEN + 20) as u32;

/// `struct bpf_redir_neigh`.
#[repr(C)]
struct RedirNeigh {
    family: u32,
    addr: [u32; 4],
}

/// Decides what to do with the skb in `ctx`, rewriting it when it is
/// forwarded.
#[inline(always)]
pub fn process(ctx: &TcContext, config: &Config) -> Verdict {
    route(ctx, config).unwrap_or_else(|reason| Verdict::pass(TC_ACT_OK as u32, reason))
}

/// The VM hook's steps; `Err` is the reason the skb goes to the kernel
/// untouched.
#[inline(always)]
fn route(ctx: &TcContext, config: &Config) -> Result<Verdict, Reason> {
    let ifindex = prologue(ctx)?;
    let p = parse(ctx, &Routes)?;
    let hop = choose(&p, config)?;
    let (fib, resolved) = resolve(ctx, &hop, &p, ifindex)?;
    forward(ctx, &p, &fib, resolved, false)
}

/// What every TC hook checks first: a unicast frame to this host, untagged,
/// with its headers in the linear part (pulled there if needed). `Ok` is
/// the ingress ifindex.
#[inline(always)]
pub fn prologue(ctx: &TcContext) -> Result<u32, Reason> {
    let skb = ctx.skb.skb;
    // SAFETY: reading fields of the context the kernel passed.
    let (pkt_type, len, ifindex, vlan) = unsafe {
        (
            (*skb).pkt_type,
            (*skb).len,
            (*skb).ingress_ifindex,
            (*skb).vlan_present,
        )
    };
    if pkt_type != PACKET_HOST {
        return Err(Reason::NotUnicast);
    }
    // A tag the driver took off the frame is still the frame's VLAN.
    if vlan != 0 {
        return Err(Reason::NotIp);
    }
    // The headers must be in the linear part for direct reads; they
    // usually are, so pull only when they are not.
    let want = if len < HEADERS { len } else { HEADERS };
    if ((ctx.data_end() - ctx.data()) as u32) < want && ctx.pull_data(want).is_err() {
        return Err(Reason::Truncated);
    }
    Ok(ifindex)
}

/// Asks the kernel's FIB how to reach `hop` for `p` arriving on `ifindex`:
/// the egress and, when the neighbour is resolved (`true`), its MACs;
/// without a valid neighbour entry the route alone (`false`), for
/// `bpf_redirect_neigh`.
#[inline(always)]
pub fn resolve(
    ctx: &TcContext,
    hop: &NextHop,
    p: &Packet,
    ifindex: u32,
) -> Result<(FibParams, bool), Reason> {
    let (mut rc, mut fib) = lookup(ctx, hop, p, ifindex, 0, 0);
    let resolved = rc == FIB_SUCCESS;
    if rc == FIB_NO_NEIGH {
        (rc, fib) = lookup(ctx, hop, p, ifindex, 0, FIB_SKIP_NEIGH);
    }
    if rc != FIB_SUCCESS {
        return Err(fib_reason(rc));
    }
    Ok((fib, resolved))
}

/// Rewrites the skb for its next hop (MACs when `resolved`, TTL/hop limit
/// - 1) and redirects it: into the peer of the veth `fib.ifindex` when
/// `peer` (straight to the other namespace's receive path), else out of
/// `fib.ifindex` (through the kernel's neighbour resolution when not
/// `resolved`). `Err`: the skb could not be rewritten and goes on
/// untouched, for this reason.
#[inline(always)]
pub fn forward(
    ctx: &TcContext,
    p: &Packet,
    fib: &FibParams,
    resolved: bool,
    peer: bool,
) -> Result<Verdict, Reason> {
    // The first write makes the headers writable (a clone's head is
    // copied); once one succeeded the others cannot fail, so a packet is
    // never left half rewritten.
    if resolved {
        let macs: [u8; 12] = concat(&fib.dmac, &fib.smac);
        if ctx.store(0, &macs, 0).is_err() {
            return Err(Reason::Truncated);
        }
    }
    let new_ttl = p.ttl - 1;
    let written = if p.flow.family as u32 == FAMILY_V4 {
        let old = u16::from_ne_bytes([p.ttl, p.flow.protocol]) as u64;
        let new = u16::from_ne_bytes([new_ttl, p.flow.protocol]) as u64;
        ctx.l3_csum_replace(IPV4_CHECK_OFF, old, new, 2)
            .and_then(|()| ctx.store(IPV4_TTL_OFF, &new_ttl, 0))
    } else {
        ctx.store(IPV6_HOP_LIMIT_OFF, &new_ttl, BPF_F_RECOMPUTE_CSUM as u64)
    };
    if written.is_err() {
        return Err(Reason::Truncated);
    }
    let action = if resolved && peer {
        // SAFETY: a plain helper call; flags 0.
        unsafe { bpf_redirect_peer(fib.ifindex, 0) }
    } else if resolved {
        // SAFETY: a plain helper call; flags 0.
        unsafe { bpf_redirect(fib.ifindex, 0) }
    } else {
        let mut nh = RedirNeigh {
            family: fib.family as u32,
            addr: fib.dst,
        };
        // SAFETY: `nh` is a valid `struct bpf_redir_neigh` of the size passed.
        unsafe {
            bpf_redirect_neigh(
                fib.ifindex,
                (&mut nh as *mut RedirNeigh).cast(),
                core::mem::size_of::<RedirNeigh>() as i32,
                0,
            )
        }
    };
    if action != TC_ACT_REDIRECT as i64 {
        // Already rewritten: going on would decrement the TTL twice.
        return Ok(Verdict {
            action: action as u32,
            reason: Reason::RedirectFailed,
            egress: fib.ifindex,
        });
    }
    Ok(Verdict {
        action: TC_ACT_REDIRECT as u32,
        reason: Reason::Forwarded,
        egress: fib.ifindex,
    })
}

#[inline(always)]
fn concat(a: &[u8; 6], b: &[u8; 6]) -> [u8; 12] {
    [
        a[0], a[1], a[2], a[3], a[4], a[5], b[0], b[1], b[2], b[3], b[4], b[5],
    ]
}
