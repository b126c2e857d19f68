//! Steer's XDP fast path, attached to every VM-facing interface.
//!
//! Ethernet -> IPv4/IPv6 -> destination LPM (PASS or FORWARD with a
//! next-hop set) -> flow hash picks one member -> `bpf_fib_lookup` on that
//! next hop's address with the ingress ifindex (so `ip rule`s apply) ->
//! rewrite MACs, TTL/hop limit - 1, IPv4 checksum -> `bpf_redirect`.
//! Anything it cannot finish goes to the kernel (`XDP_PASS`), whose table is
//! identical, and is counted under its [`Reason`]. Maps and layouts come
//! from `steer-common`; the static names below are its `MAP_*` names.
#![no_std]
#![no_main]

mod forward;
mod hash;
mod packet;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, xdp_action},
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray},
    programs::XdpContext,
};
use steer_common::{
    CONFIG_DEBUG, Config, Counter, MAX_NH_SETS, MAX_ROUTES, NextHopSet, REASON_COUNT, Reason, Route,
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

/// Per-CPU packet/byte counters by [`Reason`]: `steer_common::MAP_COUNTERS`.
#[map]
static STEER_COUNTERS: PerCpuArray<Counter> = PerCpuArray::pinned(REASON_COUNT as u32, 0);

/// Runtime switches (slot 0): `steer_common::MAP_CONFIG`.
#[map]
static STEER_CONFIG: Array<Config> = Array::pinned(1, 0);

/// What the program decided for one packet.
pub struct Verdict {
    /// The XDP action returned to the kernel.
    pub action: u32,
    /// The counter it is accounted under.
    pub reason: Reason,
    /// The egress ifindex when redirected, else 0.
    pub egress: u32,
}

impl Verdict {
    /// Leave the packet to the kernel, counted under `reason`.
    #[inline(always)]
    pub const fn pass(reason: Reason) -> Verdict {
        Verdict {
            action: xdp_action::XDP_PASS,
            reason,
            egress: 0,
        }
    }
}

#[xdp]
pub fn steer_xdp(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let config = STEER_CONFIG.get(0).map_or(0, |c| c.flags);
    let verdict = forward::process(&ctx, config);
    if let Some(c) = STEER_COUNTERS.get_ptr_mut(verdict.reason.index()) {
        // SAFETY: a per-CPU slot; nothing else writes it concurrently.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
    if config & CONFIG_DEBUG != 0 {
        aya_log_ebpf::debug!(
            &ctx,
            "steer_xdp: ifindex {} len {} reason {} egress {}",
            ctx.ingress_ifindex() as u32,
            len,
            verdict.reason.index(),
            verdict.egress
        );
    }
    verdict.action
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
