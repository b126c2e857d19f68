//! Steer's fast path: one object, two hooks on every VM-facing interface
//! and the return path on the uplinks, sharing one set of maps.
//!
//! - XDP (`steer_xdp`), before an skb exists: cheapest per packet, but a
//!   bare frame has no offload state, so it leaves TCP/UDP with checksums
//!   left to offload (and anything else it cannot finish) to the next stage.
//! - TC ingress (`steer_tc`, tcx or clsact), on the skb: GSO superpackets,
//!   GRO'd packets and partial checksums are forwarded with their offload
//!   state intact.
//!
//! Both: Ethernet -> IPv4/IPv6 -> destination LPM (PASS or FORWARD with a
//! next-hop set) -> the flow's member of the set (the flow table, `flow.rs`:
//! a running flow keeps its member, a new one takes the flow hash's) ->
//! `bpf_fib_lookup` on that next hop's address with the ingress ifindex
//! (so `ip rule`s apply) -> rewrite MACs, TTL/hop limit - 1, IPv4 checksum -> redirect. What XDP
//! passes reaches TC; what TC passes reaches the kernel, whose table is
//! identical.
//!
//! The return path (`steer_tc_uplink`, `uplink.rs`): traffic entering an
//! uplink for a local VM prefix goes straight to its VM interface (into a
//! veth's peer where it can) instead of through the kernel's forwarding.
//!
//! Every packet is counted under its hook and [`Reason`]. Maps
//! and layouts come from `steer-common`; the static names below are its
//! `MAP_*` names.
#![no_std]
#![no_main]

mod flow;
mod hash;
mod packet;
mod route;
mod tc;
mod uplink;
mod xdp;

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_NO_PREALLOC,
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
    programs::{TcContext, XdpContext},
};
use steer_common::{
    CONFIG_DEBUG, COUNTER_SLOTS, Config, Counter, FLOW_EVENT_COUNT, FlowEntry, FlowKey, Hook,
    MAX_FLOWS, MAX_NH_SETS, MAX_ROUTES, MAX_VM_IFACES, MAX_VM_PREFIXES, NextHopSet, Reason, Route,
};

/// IPv4 destinations: `steer_common::MAP_LPM4`.
#[map]
static STEER_LPM4: LpmTrie<[u8; 4], Route> = LpmTrie::pinned(MAX_ROUTES, 0);

/// IPv6 destinations: `steer_common::MAP_LPM6`.
#[map]
static STEER_LPM6: LpmTrie<[u8; 16], Route> = LpmTrie::pinned(MAX_ROUTES, 0);

/// Next-hop sets by id: `steer_common::MAP_NH_SETS`.
#[map]
static STEER_NHSETS: HashMap<u32, NextHopSet> = HashMap::pinned(MAX_NH_SETS, BPF_F_NO_PREALLOC);

/// Per-CPU packet/byte counters by hook and [`Reason`]:
/// `steer_common::MAP_COUNTERS`.
#[map]
static STEER_COUNTERS: PerCpuArray<Counter> = PerCpuArray::pinned(COUNTER_SLOTS, 0);

/// Runtime switches (slot 0): `steer_common::MAP_CONFIG`.
#[map]
static STEER_CONFIG: Array<Config> = Array::pinned(1, 0);

/// The flow table, shared by both hooks: `steer_common::MAP_FLOWS`.
#[map]
static STEER_FLOWS: LruHashMap<FlowKey, FlowEntry> = LruHashMap::pinned(MAX_FLOWS, 0);

/// Per-CPU flow-table events: `steer_common::MAP_FLOW_STATS`.
#[map]
static STEER_FLOW_STATS: PerCpuArray<u64> = PerCpuArray::pinned(FLOW_EVENT_COUNT as u32, 0);

/// The return path's IPv4 VM prefixes: `steer_common::MAP_VM4`.
#[map]
static STEER_VM4: LpmTrie<[u8; 4], u32> = LpmTrie::pinned(MAX_VM_PREFIXES, 0);

/// The return path's IPv6 VM prefixes: `steer_common::MAP_VM6`.
#[map]
static STEER_VM6: LpmTrie<[u8; 16], u32> = LpmTrie::pinned(MAX_VM_PREFIXES, 0);

/// The VM interfaces the return path may redirect to, by ifindex:
/// `steer_common::MAP_VM_IFACES`.
#[map]
static STEER_VM_IFACES: HashMap<u32, u32> = HashMap::pinned(MAX_VM_IFACES, BPF_F_NO_PREALLOC);

/// What a hook decided for one packet.
pub struct Verdict {
    /// The action returned to the kernel.
    pub action: u32,
    /// The counter it is accounted under.
    pub reason: Reason,
    /// The egress ifindex when redirected, else 0.
    pub egress: u32,
}

impl Verdict {
    /// Leave the packet to the next stage with `action`, counted under
    /// `reason`.
    #[inline(always)]
    pub const fn pass(action: u32, reason: Reason) -> Verdict {
        Verdict {
            action,
            reason,
            egress: 0,
        }
    }
}

#[inline(always)]
fn config() -> Config {
    STEER_CONFIG.get(0).copied().unwrap_or_default()
}

/// Counts the packet and, when debug is on, logs the verdict.
#[inline(always)]
fn account<C: EbpfContext>(
    ctx: &C,
    hook: Hook,
    config: &Config,
    len: u64,
    ifindex: u32,
    v: &Verdict,
) {
    if let Some(c) = STEER_COUNTERS.get_ptr_mut(hook.counter(v.reason)) {
        // SAFETY: a per-CPU slot; nothing else writes it concurrently.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
    if config.flags & CONFIG_DEBUG != 0 {
        aya_log_ebpf::debug!(
            ctx,
            "steer_{}: ifindex {} len {} reason {} egress {}",
            hook.name(),
            ifindex,
            len,
            v.reason.index(),
            v.egress
        );
    }
}

#[xdp]
pub fn steer_xdp(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let config = config();
    let verdict = xdp::process(&ctx, &config);
    account(
        &ctx,
        Hook::Xdp,
        &config,
        len,
        ctx.ingress_ifindex() as u32,
        &verdict,
    );
    verdict.action
}

#[classifier]
pub fn steer_tc(ctx: TcContext) -> i32 {
    let len = ctx.len() as u64;
    let config = config();
    let verdict = tc::process(&ctx, &config);
    // SAFETY: reading a field of the context the kernel passed.
    let ifindex = unsafe { (*ctx.skb.skb).ingress_ifindex };
    account(&ctx, Hook::Tc, &config, len, ifindex, &verdict);
    verdict.action as i32
}

#[classifier]
pub fn steer_tc_uplink(ctx: TcContext) -> i32 {
    let len = ctx.len() as u64;
    let config = config();
    let verdict = uplink::process(&ctx);
    // SAFETY: reading a field of the context the kernel passed.
    let ifindex = unsafe { (*ctx.skb.skb).ingress_ifindex };
    account(&ctx, Hook::Return, &config, len, ifindex, &verdict);
    verdict.action as i32
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// `bpf_fib_lookup` is GPL-only, so the program must declare a
/// GPL-compatible licence (hence this crate's `MIT OR GPL-2.0-only`).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
