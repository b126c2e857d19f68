//! The host's forwarding state: the plan (desired vs. installed), the
//! kernel table (rtnetlink) and the eBPF maps and hooks (aya).
pub mod kernel;
pub mod plan;
pub mod xdp;

/// The default `flow_idle_timeout` (seconds): how long a flow may be silent
/// and keep its appliance. Used for the eBPF flow table and as the idle
/// timer of the kernel's resilient nexthop groups, so both paths forget a
/// flow at the same moment. 300 s is the order of what the cloud load
/// balancers that front stateful appliances keep a silent flow sticky
/// (Azure Load Balancer 4 min, AWS Gateway Load Balancer 350 s for TCP).
pub const DEFAULT_FLOW_IDLE_TIMEOUT: u32 = 300;
