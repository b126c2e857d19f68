//! Operating a running daemon: the control socket behind `steer show`, the
//! renderers of its answers, and Prometheus metrics.

pub mod front;
pub mod metrics;
pub mod render;
pub mod socket;

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
    /// Read the configuration file again and apply what changed.
    Reload,
    /// BFD sessions (route server).
    Bfd,
}

/// A route query from `steer show routes`.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct RouteQuery {
    /// Only paths from (or, with `advertised`, sent to) this peer.
    pub peer: Option<String>,
    /// What was advertised to `peer` instead of what was received.
    #[serde(default)]
    pub advertised: bool,
    /// One prefix, or an address for a longest-prefix match.
    pub prefix: Option<String>,
    /// Answer with the prefixes the query covers, unsorted, instead of the
    /// routes (the control socket's snapshot for paging; never on the wire).
    #[serde(skip)]
    pub keys_only: bool,
    /// Only these prefixes (a page of that snapshot; never on the wire).
    #[serde(skip)]
    pub keys: Option<Vec<crate::prefix::Prefix>>,
}
