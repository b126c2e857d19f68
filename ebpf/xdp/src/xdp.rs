//! The XDP hook: the shared routing decision on a bare frame, then the
//! rewrite (MACs, TTL/hop limit, IPv4 checksum) in place and
//! `bpf_redirect`. A bare frame carries no offload state, so TCP/UDP whose
//! checksum is left to offload goes on (`pass_csum_partial`) to the TC hook
//! unless the program runs in generic mode, where the redirected skb keeps
//! that state.

use aya_ebpf::{bindings::xdp_action, helpers::generated::bpf_redirect, programs::XdpContext};
use steer_common::{CONFIG_GENERIC, Config, Reason};

use crate::{
    Verdict,
    packet::{ETH_HLEN, EthHdr, Ipv4Hdr, Ipv6Hdr, at, fold},
    route::{FIB_SUCCESS, Routes, choose, fib_reason, lookup, parse},
};

/// Decides what to do with the frame in `ctx` (and rewrites it if it is
/// forwarded). `config` is the config map's slot.
#[inline(always)]
pub fn process(ctx: &XdpContext, config: &Config) -> Verdict {
    let pass = |reason| Verdict::pass(xdp_action::XDP_PASS, reason);
    let p = match parse(ctx, &Routes) {
        Ok(p) => p,
        Err(reason) => return pass(reason),
    };
    if let Some(check) = p.l4_check
        && config.flags & CONFIG_GENERIC == 0
        && fold(p.pseudo) == check
    {
        return pass(Reason::CsumPartial);
    }
    let hop = match choose(&p, config) {
        Ok(h) => h,
        Err(reason) => return pass(reason),
    };
    let ifindex = ctx.ingress_ifindex() as u32;
    let (rc, fib) = lookup(ctx, &hop, &p, ifindex, p.ip_len, 0);
    if rc != FIB_SUCCESS {
        return pass(fib_reason(rc));
    }
    // SAFETY: a plain helper call; flags 0.
    let action = unsafe { bpf_redirect(fib.ifindex, 0) } as u32;
    if action != xdp_action::XDP_REDIRECT {
        return pass(Reason::FibFailed);
    }
    let Some(eth) = at::<EthHdr, _>(ctx, 0) else {
        return pass(Reason::Truncated);
    };
    // SAFETY: `at` proved the header is inside the frame.
    let eth = unsafe { &mut *eth };
    eth.dst = fib.dmac;
    eth.src = fib.smac;
    if p.flow.family as u32 == steer_common::FAMILY_V4 {
        let Some(ip) = at::<Ipv4Hdr, _>(ctx, ETH_HLEN) else {
            return pass(Reason::Truncated);
        };
        // SAFETY: `at` proved the header is inside the frame.
        let ip = unsafe { &mut *ip };
        let check = ip.check as u32 + 0x0100u16.to_be() as u32;
        ip.check = (check + (check >= 0xffff) as u32) as u16;
        ip.ttl -= 1;
    } else {
        let Some(ip) = at::<Ipv6Hdr, _>(ctx, ETH_HLEN) else {
            return pass(Reason::Truncated);
        };
        // SAFETY: `at` proved the header is inside the frame.
        unsafe { (*ip).hop_limit -= 1 };
    }
    Verdict {
        action,
        reason: Reason::Forwarded,
        egress: fib.ifindex,
    }
}
