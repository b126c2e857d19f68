//! The flow table as user space sees it: how many flows it holds, how many
//! of them ran within the idle timeout, on which next hops, and the
//! programs' flow events (hits, new flows, re-picks and why), for `steer
//! show fib` and the metrics. The table itself is the programs'
//! (`ebpf/xdp/src/flow.rs`); user space only reads it, in batches
//! (`BPF_MAP_LOOKUP_BATCH`), so a full table of 2^18 flows costs a few
//! dozen system calls, not half a million.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsFd;

use aya::maps::{MapData, PerCpuArray};
use steer_common::{FLOW_EVENTS, FlowEntry, FlowKey, MAP_FLOW_STATS, MAP_FLOWS, MAX_FLOWS};

use super::{XdpError, map_err, nexthops, sys};

/// Entries read per `BPF_MAP_LOOKUP_BATCH`.
const BATCH: u32 = 8192;

/// `steer show fib`'s flow-table section.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowTableView {
    /// Entries the table can hold (an LRU: beyond it the least recently
    /// used entry makes room).
    pub capacity: u32,
    /// Entries in it now (including flows idle past the timeout that no
    /// packet has re-picked yet).
    pub entries: u64,
    /// Entries whose flow sent within the idle timeout.
    pub active: u64,
    /// `flow_idle_timeout` in seconds (0: the table is off).
    pub idle_timeout: u32,
    /// Active flows per next hop.
    pub by_next_hop: BTreeMap<IpAddr, u64>,
    /// The programs' flow events since the maps were created, by name
    /// (`hit`, `new`, `stale_member`, `idle`, `insert_failed`).
    pub events: BTreeMap<&'static str, u64>,
}

/// Every entry of the flow table (`map`).
pub(super) fn entries(map: &MapData) -> Result<Vec<(FlowKey, FlowEntry)>, XdpError> {
    let mut out = Vec::new();
    sys::map_lookup_batch(
        map.fd().as_fd(),
        size_of::<FlowKey>(),
        size_of::<FlowEntry>(),
        BATCH,
        |k, v| {
            // SAFETY: both are plain #[repr(C)] integers; any bytes of the
            // right length are a valid value, and read_unaligned needs no
            // alignment.
            let key = unsafe { std::ptr::read_unaligned(k.as_ptr().cast::<FlowKey>()) };
            let entry = unsafe { std::ptr::read_unaligned(v.as_ptr().cast::<FlowEntry>()) };
            out.push((key, entry));
        },
    )
    .map_err(|e| XdpError::Map {
        name: MAP_FLOWS,
        cause: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
            call: "bpf_map_lookup_batch",
            io_error: e,
        }),
    })?;
    Ok(out)
}

/// Reads the table and the event counters.
pub(super) fn view(
    map: &MapData,
    stats: &PerCpuArray<MapData, u64>,
    idle_timeout: u32,
) -> Result<FlowTableView, XdpError> {
    let now = monotonic_coarse_ns();
    let idle_ns = u64::from(idle_timeout) * 1_000_000_000;
    let mut v = FlowTableView {
        capacity: MAX_FLOWS,
        idle_timeout,
        ..FlowTableView::default()
    };
    for (_, e) in entries(map)? {
        v.entries += 1;
        if now.saturating_sub(e.last_seen_ns) <= idle_ns {
            v.active += 1;
            if let Some(hop) = nexthops::decode_hop(&e.hop) {
                *v.by_next_hop.entry(hop).or_default() += 1;
            }
        }
    }
    for event in FLOW_EVENTS {
        let per_cpu = stats
            .get(&event.index(), 0)
            .map_err(map_err(MAP_FLOW_STATS))?;
        v.events.insert(event.name(), per_cpu.iter().sum());
    }
    Ok(v)
}

/// `CLOCK_MONOTONIC_COARSE`, the clock of the programs'
/// `bpf_ktime_get_coarse_ns`.
pub(super) fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec passed.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
