//! Map layouts shared by the eBPF programs (`ebpf/xdp`: the XDP and the TC
//! hook on the VM interfaces, the return-path hook on the uplinks) and user
//! space (`steer::fib::xdp`): the `#[repr(C)]` keys and
//! values, the hooks and counter reasons, the limits, and the map names both
//! sides use. `no_std`; `aya::Pod` impls behind the `user` feature.
//!
//! Every layout here is ABI with pinned maps that outlive an agent: user
//! space refuses to adopt a pinned routing map whose type, key or value size
//! or capacity differs from these (a counter, config or flow-stats map of
//! another layout is replaced: they are not forwarding state, and user space
//! rewrites the config at every start). The flow table ([`FlowKey`] ->
//! [`FlowEntry`]) is forwarding state: it keeps running flows on their next
//! hop across agent restarts.
#![no_std]

/// Most next hops in one set (ECMP width).
pub const MAX_NEXT_HOPS: usize = 16;

/// Capacity of each LPM trie (entries are allocated on demand).
pub const MAX_ROUTES: u32 = 1 << 20;

/// Capacity of the next-hop-set map; set ids are `1..=MAX_NH_SETS`.
pub const MAX_NH_SETS: u32 = 1 << 16;

/// Name of the IPv4 LPM trie: key `Key<[u8; 4]>`, value [`Route`].
pub const MAP_LPM4: &str = "STEER_LPM4";
/// Name of the IPv6 LPM trie: key `Key<[u8; 16]>`, value [`Route`].
pub const MAP_LPM6: &str = "STEER_LPM6";
/// Name of the next-hop-set hash map: key `u32` set id, value [`NextHopSet`].
pub const MAP_NH_SETS: &str = "STEER_NHSETS";
/// Name of the per-CPU counter array: index [`Hook::counter`], value
/// [`Counter`].
pub const MAP_COUNTERS: &str = "STEER_COUNTERS";
/// Name of the one-slot config array: index 0, value [`Config`].
pub const MAP_CONFIG: &str = "STEER_CONFIG";
/// Name of the flow table, an LRU hash shared by both hooks: key
/// [`FlowKey`], value [`FlowEntry`].
pub const MAP_FLOWS: &str = "STEER_FLOWS";
/// Name of the per-CPU flow-table event counters: index
/// [`FlowEvent::index`], value `u64`.
pub const MAP_FLOW_STATS: &str = "STEER_FLOW_STATS";
/// Name of the return path's IPv4 LPM trie of local VM prefixes: key
/// `Key<[u8; 4]>`, value `u32` (unused, 1).
pub const MAP_VM4: &str = "STEER_VM4";
/// Name of the return path's IPv6 LPM trie of local VM prefixes: key
/// `Key<[u8; 16]>`, value `u32` (unused, 1).
pub const MAP_VM6: &str = "STEER_VM6";
/// Name of the hash map of VM interfaces the return path may redirect to:
/// key the ifindex (`u32`), value [`VM_REDIRECT_PEER`] or
/// [`VM_REDIRECT_EGRESS`].
pub const MAP_VM_IFACES: &str = "STEER_VM_IFACES";
/// The maps user space pins (and adopts after a restart), in load order.
pub const PINNED_MAPS: [&str; 10] = [
    MAP_LPM4,
    MAP_LPM6,
    MAP_NH_SETS,
    MAP_COUNTERS,
    MAP_CONFIG,
    MAP_FLOWS,
    MAP_FLOW_STATS,
    MAP_VM4,
    MAP_VM6,
    MAP_VM_IFACES,
];

/// Capacity of each of the return path's VM-prefix tries (a host announces
/// a few; the route server allows 64 by default).
pub const MAX_VM_PREFIXES: u32 = 1024;
/// Capacity of the VM-interface map.
pub const MAX_VM_IFACES: u32 = 16384;
/// [`MAP_VM_IFACES`] value: a veth whose peer (the VM's end) is in another
/// network namespace, so the packet can be handed straight to the peer's
/// receive path (`bpf_redirect_peer`).
pub const VM_REDIRECT_PEER: u32 = 1;
/// [`MAP_VM_IFACES`] value: any other VM interface (a tap, a veth whose
/// peer is in this namespace): the packet leaves through its transmit path
/// (`bpf_redirect`, or `bpf_redirect_neigh` without a neighbour entry).
pub const VM_REDIRECT_EGRESS: u32 = 2;

/// Capacity of the flow table. An LRU map: when it is full, a new flow
/// evicts the least recently used entry instead of failing, so a flood of
/// new flows costs old idle flows their entry, never forwarding. 2^18
/// entries of 80 bytes (key, value) take about 32 MiB of kernel memory.
pub const MAX_FLOWS: u32 = 1 << 18;
/// Name of the XDP program in the object.
pub const PROGRAM_NAME: &str = "steer_xdp";
/// Name of the TC (tcx / clsact ingress) program in the object.
pub const TC_PROGRAM_NAME: &str = "steer_tc";
/// Name of the return-path program (tcx / clsact ingress of the uplinks)
/// in the object.
pub const UPLINK_PROGRAM_NAME: &str = "steer_tc_uplink";

/// [`Route::action`]: leave the packet to the kernel (VNet / connected space).
pub const ACTION_PASS: u32 = 1;
/// [`Route::action`]: forward through next-hop set [`Route::nh_set`].
pub const ACTION_FORWARD: u32 = 2;

/// Address family numbers of [`NextHop::family`] (Linux `AF_INET`).
pub const FAMILY_V4: u32 = 2;
/// Linux `AF_INET6`.
pub const FAMILY_V6: u32 = 10;

/// [`Config::flags`] bit: emit aya-log debug events.
pub const CONFIG_DEBUG: u32 = 1;
/// [`Config::flags`] bit: the XDP program runs in generic (skb) mode, where
/// a redirect keeps the skb's checksum-offload state, so packets whose L4
/// checksum is still left to offload may be forwarded.
pub const CONFIG_GENERIC: u32 = 2;

/// Value of both LPM tries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// [`ACTION_PASS`] or [`ACTION_FORWARD`].
    pub action: u32,
    /// Key into the next-hop-set map when forwarding; 0 for PASS.
    pub nh_set: u32,
}

/// One next hop: an IPv4 or IPv6 address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u32,
    /// The address in network byte order as raw memory (octets in wire
    /// order); IPv4 uses word 0 only, the rest is zero.
    pub addr: [u32; 4],
}

/// An ECMP group: `count` valid entries at the front of `hops`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHopSet {
    /// Number of valid entries, `1..=MAX_NEXT_HOPS`.
    pub count: u32,
    /// The members; entries at `count..` are zero.
    pub hops: [NextHop; MAX_NEXT_HOPS],
}

/// A packet and byte count, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes of the frames (Ethernet header included).
    pub bytes: u64,
}

/// Runtime switches of the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Bit set of `CONFIG_*`.
    pub flags: u32,
    /// Seconds a flow may be silent and keep its next hop
    /// (`flow_idle_timeout`); after that its next packet is picked anew.
    /// 0: the flow table is not used (every packet picked by the flow hash).
    pub flow_idle_secs: u32,
}

/// The 5-tuple of a flow: the flow table's key, and what the flow hash
/// and the kernel's multipath hash are computed over. Addresses are raw
/// network order (IPv4 in word 0, the rest zero); ports are 0 for
/// protocols without them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: [u32; 4],
    /// Destination address.
    pub dst: [u32; 4],
    /// Source port, raw network order.
    pub sport: u16,
    /// Destination port, raw network order.
    pub dport: u16,
    /// L4 protocol.
    pub protocol: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`] (as a byte).
    pub family: u8,
    /// Zero.
    pub pad: u16,
}

/// A flow's next hop, kept while the flow runs: the address (not an index
/// into the set, so a set change does not remap it), where it was last
/// found in its set (a shortcut, checked on every use), and when the flow
/// was last seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntry {
    /// The next hop.
    pub hop: NextHop,
    /// The next-hop set the hop was last found in.
    pub set_id: u32,
    /// Its index in that set.
    pub index: u32,
    /// Zero.
    pub pad: u32,
    /// `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC) of the flow's last packet,
    /// updated at most every [`FLOW_TOUCH_NS`].
    pub last_seen_ns: u64,
}

/// How often a flow's `last_seen_ns` is rewritten (1 s): one write per
/// flow and second, not per packet.
pub const FLOW_TOUCH_NS: u64 = 1_000_000_000;

/// What the flow table did for one packet with a next-hop set.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEvent {
    /// A running flow kept its next hop.
    Hit = 0,
    /// No entry: a new flow (or one the LRU evicted), picked by the flow
    /// hash.
    New = 1,
    /// The entry's next hop left the set: picked anew by the flow hash.
    StaleMember = 2,
    /// The flow was idle longer than the timeout: picked anew.
    Idle = 3,
    /// Recording the pick failed (the packet was forwarded anyway).
    InsertFailed = 4,
}

/// Number of [`FlowEvent`]s (slots of the flow stats map).
pub const FLOW_EVENT_COUNT: usize = 5;

/// Every flow event, in index order.
pub const FLOW_EVENTS: [FlowEvent; FLOW_EVENT_COUNT] = [
    FlowEvent::Hit,
    FlowEvent::New,
    FlowEvent::StaleMember,
    FlowEvent::Idle,
    FlowEvent::InsertFailed,
];

impl FlowEvent {
    /// The stats map index.
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// A stable snake_case name, as `steer show` and metrics print it.
    pub const fn name(self) -> &'static str {
        match self {
            FlowEvent::Hit => "hit",
            FlowEvent::New => "new",
            FlowEvent::StaleMember => "stale_member",
            FlowEvent::Idle => "idle",
            FlowEvent::InsertFailed => "insert_failed",
        }
    }
}

/// What happened to a packet at one [`Hook`]. Everything but
/// [`Reason::Forwarded`] and [`Reason::RedirectFailed`] went on to the next
/// stage (XDP: to the TC hook, if attached, and the kernel; TC and the
/// return path: to the kernel).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Rewritten and redirected to the next hop's interface (on TC also: a
    /// redirect through the kernel's neighbour resolution, when the next
    /// hop's neighbour entry was not valid yet).
    Forwarded = 0,
    /// The destination matched no prefix.
    NoRoute = 1,
    /// The longest match is a PASS entry (VNet / connected space).
    PassEntry = 2,
    /// `bpf_fib_lookup` found the route but no valid neighbour entry.
    NoNeigh = 3,
    /// `bpf_fib_lookup` needs fragmentation (packet larger than the MTU).
    FragNeeded = 4,
    /// Any other `bpf_fib_lookup` failure (no route to the next hop,
    /// blackhole, forwarding disabled, ...).
    FibFailed = 5,
    /// TTL or hop limit <= 1.
    TtlExpired = 6,
    /// IPv4 header with options (ihl != 5).
    Ipv4Options = 7,
    /// IPv4 fragment (MF set or a non-zero offset).
    Ipv4Fragment = 8,
    /// IPv6 extension header the program does not walk.
    Ipv6ExtHeader = 9,
    /// Not IPv4/IPv6 directly over Ethernet (ARP, VLAN tags, ...).
    NotIp = 10,
    /// Broadcast/multicast frame or destination, or link-local IPv6.
    NotUnicast = 11,
    /// Frame shorter than the headers it announces.
    Truncated = 12,
    /// The route names a next-hop set that is missing or empty.
    NoNextHopSet = 13,
    /// TCP/UDP whose checksum is left to offload (it holds only the
    /// pseudo-header sum, as virtio guests and veths send it): a native-mode
    /// XDP redirect would lose the offload state and deliver a bad checksum.
    /// XDP only; the TC hook forwards these with their offload state.
    CsumPartial = 14,
    /// Redirected, but the redirect did not happen: at XDP, the target did
    /// not take the frame (a veth whose peer has no NAPI), which user space
    /// reads from the targets' statistics; at TC, the redirect helper
    /// refused an already rewritten packet, which is then dropped.
    RedirectFailed = 15,
    /// Return path only: the kernel routes the destination out of an
    /// interface that is not one of this host's VM interfaces.
    EgressNotVm = 16,
}

/// Number of [`Reason`]s (counter slots per hook).
pub const REASON_COUNT: usize = 17;

/// Every reason, in index order.
pub const REASONS: [Reason; REASON_COUNT] = [
    Reason::Forwarded,
    Reason::NoRoute,
    Reason::PassEntry,
    Reason::NoNeigh,
    Reason::FragNeeded,
    Reason::FibFailed,
    Reason::TtlExpired,
    Reason::Ipv4Options,
    Reason::Ipv4Fragment,
    Reason::Ipv6ExtHeader,
    Reason::NotIp,
    Reason::NotUnicast,
    Reason::Truncated,
    Reason::NoNextHopSet,
    Reason::CsumPartial,
    Reason::RedirectFailed,
    Reason::EgressNotVm,
];

impl Reason {
    /// The counter map index.
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// A stable snake_case name, as `steer show` and metrics print it.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Forwarded => "forwarded",
            Reason::NoRoute => "pass_no_route",
            Reason::PassEntry => "pass_entry",
            Reason::NoNeigh => "pass_no_neigh",
            Reason::FragNeeded => "pass_frag_needed",
            Reason::FibFailed => "pass_fib_failed",
            Reason::TtlExpired => "pass_ttl_expired",
            Reason::Ipv4Options => "pass_ipv4_options",
            Reason::Ipv4Fragment => "pass_ipv4_fragment",
            Reason::Ipv6ExtHeader => "pass_ipv6_ext_header",
            Reason::NotIp => "pass_not_ip",
            Reason::NotUnicast => "pass_not_unicast",
            Reason::Truncated => "pass_truncated",
            Reason::NoNextHopSet => "pass_no_nexthop_set",
            Reason::CsumPartial => "pass_csum_partial",
            Reason::RedirectFailed => "redirect_failed",
            Reason::EgressNotVm => "pass_egress_not_vm",
        }
    }
}

/// Where a program runs: the counter map holds [`REASON_COUNT`] slots per
/// hook, hook after hook.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// XDP, before an skb exists.
    Xdp = 0,
    /// TC ingress (tcx or clsact), on the skb.
    Tc = 1,
    /// The return path: TC ingress of the uplinks, for traffic to the
    /// host's VMs.
    Return = 2,
}

/// Number of [`Hook`]s.
pub const HOOK_COUNT: usize = 3;

/// Every hook, in counter-map order.
pub const HOOKS: [Hook; HOOK_COUNT] = [Hook::Xdp, Hook::Tc, Hook::Return];

/// Size of the counter map.
pub const COUNTER_SLOTS: u32 = (HOOK_COUNT * REASON_COUNT) as u32;

impl Hook {
    /// `xdp`, `tc` or `return`, as `steer show` and metrics print it.
    pub const fn name(self) -> &'static str {
        match self {
            Hook::Xdp => "xdp",
            Hook::Tc => "tc",
            Hook::Return => "return",
        }
    }

    /// The counter map index of `reason` at this hook.
    pub const fn counter(self, reason: Reason) -> u32 {
        self as u32 * REASON_COUNT as u32 + reason as u32
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are #[repr(C)] of integers with no padding.
    unsafe impl aya::Pod for super::Route {}
    unsafe impl aya::Pod for super::NextHop {}
    unsafe impl aya::Pod for super::NextHopSet {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowEntry {}
}

const _: () = {
    assert!(core::mem::size_of::<Route>() == 8);
    assert!(core::mem::size_of::<NextHop>() == 20);
    assert!(core::mem::size_of::<NextHopSet>() == 4 + 20 * MAX_NEXT_HOPS);
    assert!(core::mem::size_of::<Counter>() == 16);
    assert!(core::mem::size_of::<Config>() == 8);
    assert!(core::mem::size_of::<FlowKey>() == 40);
    assert!(core::mem::size_of::<FlowEntry>() == 40);
    let mut e = 0;
    while e < FLOW_EVENT_COUNT {
        assert!(FLOW_EVENTS[e] as usize == e);
        e += 1;
    }
    let mut i = 0;
    while i < REASON_COUNT {
        assert!(REASONS[i] as usize == i);
        i += 1;
    }
    let mut h = 0;
    while h < HOOK_COUNT {
        assert!(HOOKS[h] as usize == h);
        h += 1;
    }
    assert!(Hook::Return.counter(Reason::EgressNotVm) == COUNTER_SLOTS - 1);
};
