//! The TC hook (tcx or clsact ingress): the shared routing decision on the
//! skb, then the rewrite through helpers and a redirect to the egress
//! device. The skb keeps its offload state, so GSO superpackets, GRO'd
//! packets and checksums left to offload (`CHECKSUM_PARTIAL`) leave as they
//! came, to be finished by the egress device or the receiver.
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
    helpers::generated::{bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};
use steer_common::{FAMILY_V4, Reason};

use crate::{
    Verdict,
    packet::ETH_HLEN,
    route::{
        FIB_NO_NEIGH, FIB_SKIP_NEIGH, FIB_SUCCESS, IPV4_CHECK_OFF, IPV4_TTL_OFF, IPV6_HLEN,
        IPV6_HOP_LIMIT_OFF, choose, fib_reason, lookup, parse,
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
pub fn process(ctx: &TcContext) -> Verdict {
    let pass = |reason| Verdict::pass(TC_ACT_OK as u32, reason);
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
        return pass(Reason::NotUnicast);
    }
    // A tag the driver took off the frame is still the frame's VLAN.
    if vlan != 0 {
        return pass(Reason::NotIp);
    }
    // The headers must be in the linear part for direct reads; they
    // usually are, so pull only when they are not.
    let want = if len < HEADERS { len } else { HEADERS };
    if ((ctx.data_end() - ctx.data()) as u32) < want && ctx.pull_data(want).is_err() {
        return pass(Reason::Truncated);
    }
    let p = match parse(ctx) {
        Ok(p) => p,
        Err(reason) => return pass(reason),
    };
    let hop = match choose(p.set_id, &p.flow) {
        Ok(h) => h,
        Err(reason) => return pass(reason),
    };
    let (mut rc, mut fib) = lookup(ctx, &hop, &p, ifindex, 0, 0);
    let resolved = rc == FIB_SUCCESS;
    if rc == FIB_NO_NEIGH {
        (rc, fib) = lookup(ctx, &hop, &p, ifindex, 0, FIB_SKIP_NEIGH);
    }
    if rc != FIB_SUCCESS {
        return pass(fib_reason(rc));
    }
    // The first write makes the headers writable (a clone's head is
    // copied); once one succeeded the others cannot fail, so a packet is
    // never left half rewritten.
    if resolved {
        let macs: [u8; 12] = concat(&fib.dmac, &fib.smac);
        if ctx.store(0, &macs, 0).is_err() {
            return pass(Reason::Truncated);
        }
    }
    let new_ttl = p.ttl - 1;
    let written = if p.flow.family == FAMILY_V4 {
        let old = u16::from_ne_bytes([p.ttl, p.flow.protocol]) as u64;
        let new = u16::from_ne_bytes([new_ttl, p.flow.protocol]) as u64;
        ctx.l3_csum_replace(IPV4_CHECK_OFF, old, new, 2)
            .and_then(|()| ctx.store(IPV4_TTL_OFF, &new_ttl, 0))
    } else {
        ctx.store(IPV6_HOP_LIMIT_OFF, &new_ttl, BPF_F_RECOMPUTE_CSUM as u64)
    };
    if written.is_err() {
        return pass(Reason::Truncated);
    }
    let action = if resolved {
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
        return Verdict {
            action: action as u32,
            reason: Reason::RedirectFailed,
            egress: fib.ifindex,
        };
    }
    Verdict {
        action: TC_ACT_REDIRECT as u32,
        reason: Reason::Forwarded,
        egress: fib.ifindex,
    }
}

#[inline(always)]
fn concat(a: &[u8; 6], b: &[u8; 6]) -> [u8; 12] {
    [
        a[0], a[1], a[2], a[3], a[4], a[5], b[0], b[1], b[2], b[3], b[4], b[5],
    ]
}
