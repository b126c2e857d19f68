//! Operating a running daemon: the control socket behind `steer show`, the
//! renderers of its answers, and Prometheus metrics.

pub mod metrics;
pub mod render;
pub mod socket;

use crate::server::core::RouteQuery;

/// A question to a daemon over its control socket (one JSON line).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "show", rename_all = "lowercase")]
pub enum Request {
    /// BGP sessions.
    Peers,
    /// Routes (route server) or learned routes (agent).
    Routes(RouteQuery),
    /// The agent's kernel table and eBPF maps side by side, with the hooks and their counters.
    Fib,
}
