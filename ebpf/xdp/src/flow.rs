//! The flow table: per-flow next-hop state shared by both hooks, so ECMP is
//! safe for stateful appliances. A running flow keeps its next hop while
//! that hop is in the prefix's set; a flow whose hop left the set, that was
//! idle longer than `flow_idle_timeout`, or that has no entry (new, or
//! evicted by the LRU) is picked anew and recorded.
//!
//! A new flow takes the flow hash's member of the current set (the member
//! it had before the flow table existed, so an upgrade moves no flow). A
//! flow whose member left is re-picked by the flow hash salted with the
//! member it lost: unsalted, every flow of the leaver would land on the
//! one member that inherits the leaver's index. The flow hash
//! is not the kernel's multipath hash (for forwarded packets the kernel
//! hashes the skb, which `bpf_fib_lookup` cannot reproduce), so a flow the
//! kernel path forwards keeps its member through the kernel's own resilient
//! nexthop group (`fib::kernel::nexthop`), not through this table.

use aya_ebpf::helpers::generated::bpf_ktime_get_coarse_ns;
use steer_common::{FLOW_TOUCH_NS, FlowEntry, FlowEvent, MAX_NEXT_HOPS, NextHop, NextHopSet};

use crate::{
    STEER_FLOW_STATS, STEER_FLOWS,
    hash::flow_hash,
    route::{Packet, hash_pick, member},
};

/// The next hop of `p`'s flow in `set` (the set of `p.set_id`), recording
/// a new pick in the flow table.
#[inline(always)]
pub fn choose(set: &NextHopSet, p: &Packet, idle_secs: u32) -> NextHop {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let idle_ns = idle_secs as u64 * 1_000_000_000;
    let mut lost = None;
    match STEER_FLOWS.get_ptr_mut(&p.flow) {
        Some(e) => {
            // SAFETY: a live map value; concurrent writers only store
            // whole timestamps or a re-found index, all of which stay valid.
            let e = unsafe { &mut *e };
            if now.saturating_sub(e.last_seen_ns) > idle_ns {
                count(FlowEvent::Idle);
            } else if let Some(index) = position(set, p.set_id, e) {
                if e.set_id != p.set_id || e.index != index {
                    e.set_id = p.set_id;
                    e.index = index;
                }
                if now.saturating_sub(e.last_seen_ns) >= FLOW_TOUCH_NS {
                    e.last_seen_ns = now;
                }
                count(FlowEvent::Hit);
                return e.hop;
            } else {
                count(FlowEvent::StaleMember);
                lost = Some(e.hop);
            }
        }
        None => count(FlowEvent::New),
    }
    let (hop, index) = match lost {
        Some(old) => {
            let salted =
                flow_hash(&p.flow).word(old.addr[0] ^ old.addr[1] ^ old.addr[2] ^ old.addr[3]);
            member(set, salted.pick(set.count)).unwrap_or((set.hops[0], 0))
        }
        None => hash_pick(set, &p.flow),
    };
    let entry = FlowEntry {
        hop,
        set_id: p.set_id,
        index,
        pad: 0,
        last_seen_ns: now,
    };
    if STEER_FLOWS.insert(&p.flow, &entry, 0).is_err() {
        count(FlowEvent::InsertFailed);
    }
    hop
}

/// The index of `e`'s hop in `set` (the set `set_id`), if it is a member:
/// the recorded index when the set is the same, else a scan.
#[inline(always)]
fn position(set: &NextHopSet, set_id: u32, e: &FlowEntry) -> Option<u32> {
    if e.set_id == set_id
        && let Some((hop, index)) = member(set, e.index)
        && same(&hop, &e.hop)
    {
        return Some(index);
    }
    find(set, &e.hop)
}

/// The index of `hop` in `set`, if it is a member.
#[inline(always)]
fn find(set: &NextHopSet, hop: &NextHop) -> Option<u32> {
    for i in 0..MAX_NEXT_HOPS {
        if i >= set.count as usize {
            break;
        }
        if same(&set.hops[i], hop) {
            return Some(i as u32);
        }
    }
    None
}

/// Field by field: a derived comparison of the arrays may become a `bcmp`
/// call, which BPF has not.
#[inline(always)]
fn same(a: &NextHop, b: &NextHop) -> bool {
    a.family == b.family
        && a.addr[0] == b.addr[0]
        && a.addr[1] == b.addr[1]
        && a.addr[2] == b.addr[2]
        && a.addr[3] == b.addr[3]
}

#[inline(always)]
fn count(event: FlowEvent) {
    if let Some(c) = STEER_FLOW_STATS.get_ptr_mut(event.index()) {
        // SAFETY: a per-CPU slot; nothing else writes it concurrently.
        unsafe { *c += 1 };
    }
}
