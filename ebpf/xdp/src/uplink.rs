//! The return path (tcx or clsact ingress of the uplinks: the interfaces
//! the host reaches its route servers and appliances through): traffic from
//! the appliances to this host's VMs, which the kernel would otherwise
//! route, forward and queue to the VM interface.
//!
//! Destination in the local VM prefixes (`STEER_VM4`/`STEER_VM6`, the
//! agent's `vm_prefixes`) -> the same checks as the VM hooks (TTL, IPv4
//! options, fragments, IPv6 extension headers) -> `bpf_fib_lookup` of the
//! destination itself with the uplink as ingress -> the egress must be a VM
//! interface (`STEER_VM_IFACES`) -> MACs rewritten, TTL/hop limit - 1 ->
//! into the peer of a veth whose VM end is in another namespace
//! (`bpf_redirect_peer`: the packet enters the VM's receive path at once,
//! as Cilium's host routing hands host traffic to a pod), out of any other
//! VM interface (`bpf_redirect`; `bpf_redirect_neigh` while the VM's
//! neighbour entry is not valid). The skb keeps its offload state. Anything
//! else goes on unchanged, counted under its reason: with `TC_ACT_UNSPEC`
//! (tcx's `TCX_NEXT`), so the programs other tools may run after this one
//! on the host's own interface still see it, then the kernel.

use aya_ebpf::{bindings::TC_ACT_UNSPEC, maps::lpm_trie::Key, programs::TcContext};
use steer_common::{NextHop, Reason, VM_REDIRECT_PEER};

use crate::{
    STEER_VM_IFACES, STEER_VM4, STEER_VM6, Verdict,
    route::{Destinations, parse},
    tc::{forward, prologue, resolve},
};

/// The local VM prefixes: a destination in them may be forwarded, with no
/// next-hop set (the kernel's FIB says where the VM is).
pub struct LocalVms;

impl Destinations for LocalVms {
    #[inline(always)]
    fn v4(&self, daddr: [u8; 4]) -> Result<u32, Reason> {
        STEER_VM4
            .get(Key::new(32, daddr))
            .map(|_| 0)
            .ok_or(Reason::NoRoute)
    }
    #[inline(always)]
    fn v6(&self, daddr: [u8; 16]) -> Result<u32, Reason> {
        STEER_VM6
            .get(Key::new(128, daddr))
            .map(|_| 0)
            .ok_or(Reason::NoRoute)
    }
}

/// Decides what to do with the skb in `ctx`, rewriting it when it is
/// forwarded to a VM.
#[inline(always)]
pub fn process(ctx: &TcContext) -> Verdict {
    route(ctx).unwrap_or_else(|reason| Verdict::pass(TC_ACT_UNSPEC as u32, reason))
}

/// The return path's steps; `Err` is the reason the skb goes on untouched.
#[inline(always)]
fn route(ctx: &TcContext) -> Result<Verdict, Reason> {
    let ifindex = prologue(ctx)?;
    let p = parse(ctx, &LocalVms)?;
    let dst = NextHop {
        family: p.flow.family as u32,
        addr: p.flow.dst,
    };
    let (fib, resolved) = resolve(ctx, &dst, &p, ifindex)?;
    // SAFETY: the value is only read.
    let how = unsafe { STEER_VM_IFACES.get(&fib.ifindex) }
        .copied()
        .ok_or(Reason::EgressNotVm)?;
    forward(ctx, &p, &fib, resolved, how == VM_REDIRECT_PEER)
}
