//! Daemon-neutral BGP vocabulary for the drivers: a neighbour to configure,
//! a route to announce, a route a daemon reports, a session state.

use std::fmt;
use std::net::IpAddr;

/// ADD-PATH (RFC 7911) mode for IPv4 unicast on a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddPaths {
    /// No ADD-PATH capability.
    #[default]
    Off,
    /// Receive several paths per prefix.
    Rx,
    /// Send several paths per prefix.
    Tx,
    /// Both.
    Both,
}

impl AddPaths {
    /// True for `Rx` and `Both`.
    pub fn rx(self) -> bool {
        matches!(self, AddPaths::Rx | AddPaths::Both)
    }
    /// True for `Tx` and `Both`.
    pub fn tx(self) -> bool {
        matches!(self, AddPaths::Tx | AddPaths::Both)
    }
}

/// A BGP neighbour as the drivers configure it. Timers default to hold 9 s,
/// keepalive 3 s, connect retry 1 s: short, so tests converge fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// A label; BIRD uses it as the protocol name (letters, digits, `_`).
    pub name: String,
    /// The neighbour's address.
    pub address: IpAddr,
    /// The neighbour's AS; equal to the local AS means iBGP.
    pub remote_as: u32,
    /// ADD-PATH mode.
    pub add_paths: AddPaths,
    /// Only accept, never open, the TCP connection.
    pub passive: bool,
    /// Hold time in seconds.
    pub hold_time: u16,
    /// Keepalive interval in seconds.
    pub keepalive: u16,
    /// Connect-retry interval in seconds.
    pub connect_retry: u16,
    /// TCP-MD5 password (RFC 2385).
    pub password: Option<String>,
    /// GTSM (RFC 5082) for a directly connected neighbour.
    pub ttl_security: bool,
    /// BFD with this neighbour, coupled to the BGP session.
    pub bfd: Option<BfdTimers>,
    /// eBGP multihop: the neighbour is this many hops away (not on a
    /// shared link).
    pub multihop: Option<u8>,
    /// Our source address for the session (BIRD needs one for multihop
    /// BFD).
    pub local: Option<IpAddr>,
}

/// BFD timers of a neighbour: transmit and receive interval, Detect Mult.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdTimers {
    /// Interval in milliseconds (both directions).
    pub interval_ms: u32,
    /// Detect Mult.
    pub multiplier: u8,
}

impl Neighbor {
    /// A neighbour with the lab's short default timers.
    pub fn new(name: &str, address: &str, remote_as: u32) -> Neighbor {
        Neighbor {
            name: name.to_string(),
            address: address
                .parse()
                .unwrap_or_else(|_| panic!("bad neighbour address {address:?}")),
            remote_as,
            add_paths: AddPaths::Off,
            passive: false,
            hold_time: 9,
            keepalive: 3,
            connect_retry: 1,
            password: None,
            ttl_security: false,
            bfd: None,
            multihop: None,
            local: None,
        }
    }

    /// Signs the session with TCP-MD5 under `password`.
    pub fn password(mut self, password: &str) -> Neighbor {
        self.password = Some(password.to_string());
        self
    }

    /// Turns GTSM on.
    pub fn ttl_security(mut self) -> Neighbor {
        self.ttl_security = true;
        self
    }

    /// Sources the session from `address`.
    pub fn local(mut self, address: &str) -> Neighbor {
        self.local = Some(address.parse().expect("bad local address"));
        self
    }

    /// Runs BFD with the neighbour at `interval_ms` × `multiplier`.
    pub fn bfd(mut self, interval_ms: u32, multiplier: u8) -> Neighbor {
        self.bfd = Some(BfdTimers {
            interval_ms,
            multiplier,
        });
        self
    }

    /// Peers over `hops` hops (eBGP multihop; BFD becomes multihop too).
    pub fn multihop(mut self, hops: u8) -> Neighbor {
        self.multihop = Some(hops);
        self
    }

    /// Sets the ADD-PATH mode.
    pub fn add_paths(mut self, mode: AddPaths) -> Neighbor {
        self.add_paths = mode;
        self
    }

    /// Makes the session passive.
    pub fn passive(mut self) -> Neighbor {
        self.passive = true;
        self
    }

    /// Sets hold time and keepalive interval (seconds).
    pub fn timers(mut self, hold_time: u16, keepalive: u16) -> Neighbor {
        self.hold_time = hold_time;
        self.keepalive = keepalive;
        self
    }
}

/// A prefix a daemon originates, with optional attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announce {
    /// The prefix, e.g. "10.250.0.0/16".
    pub prefix: String,
    /// An explicit next hop; by default the daemon uses its own address.
    pub next_hop: Option<IpAddr>,
    /// How many extra copies of the local AS to prepend.
    pub prepend: u8,
    /// Standard communities (RFC 1997) as (asn, value).
    pub communities: Vec<(u16, u16)>,
    /// Large communities (RFC 8092) as (global, local1, local2).
    pub large_communities: Vec<(u32, u32, u32)>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
}

impl Announce {
    /// Announces `prefix` with default attributes.
    pub fn new(prefix: &str) -> Announce {
        Announce {
            prefix: prefix.to_string(),
            ..Announce::default()
        }
    }
    /// Prepends the local AS `n` extra times.
    pub fn prepend(mut self, n: u8) -> Announce {
        self.prepend = n;
        self
    }
    /// Adds a standard community.
    pub fn community(mut self, asn: u16, value: u16) -> Announce {
        self.communities.push((asn, value));
        self
    }
    /// Adds a large community.
    pub fn large_community(mut self, global: u32, l1: u32, l2: u32) -> Announce {
        self.large_communities.push((global, l1, l2));
        self
    }
    /// Sets an explicit next hop.
    pub fn next_hop(mut self, ip: &str) -> Announce {
        self.next_hop = Some(ip.parse().expect("bad next hop"));
        self
    }
    /// Sets the MED.
    pub fn med(mut self, med: u32) -> Announce {
        self.med = Some(med);
        self
    }
}

/// One path for one prefix as a daemon reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// The prefix, e.g. "10.250.0.0/16".
    pub prefix: String,
    /// Who sent it: the BIRD protocol name, or the neighbour address for
    /// FRR and GoBGP; empty for locally originated routes.
    pub source: String,
    /// Next hops (several for a BIRD ECMP route).
    pub next_hops: Vec<IpAddr>,
    /// The AS path, segments flattened in order.
    pub as_path: Vec<u32>,
    /// "igp", "egp" or "incomplete", when reported.
    pub origin: Option<String>,
    /// LOCAL_PREF, when present.
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC, when present.
    pub med: Option<u32>,
    /// Standard communities.
    pub communities: Vec<(u16, u16)>,
    /// Large communities.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// Attributes the daemon did not decode: (type code, value bytes).
    pub unknown: Vec<(u8, Vec<u8>)>,
    /// The daemon's best path for the prefix.
    pub best: bool,
}

impl Route {
    /// The next hops as strings (handy in assertions).
    pub fn next_hop_strings(&self) -> Vec<String> {
        self.next_hops.iter().map(|ip| ip.to_string()).collect()
    }
}

/// Routes for one prefix.
pub fn for_prefix<'a>(routes: &'a [Route], prefix: &str) -> Vec<&'a Route> {
    routes.iter().filter(|r| r.prefix == prefix).collect()
}

/// A BGP session state (RFC 4271 §8.2.2), as any driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Idle.
    Idle,
    /// Connect.
    Connect,
    /// Active.
    Active,
    /// OpenSent.
    OpenSent,
    /// OpenConfirm.
    OpenConfirm,
    /// Established.
    Established,
    /// Anything else the daemon said (e.g. BIRD's "down").
    Other(String),
}

impl SessionState {
    /// Parses a daemon's state word, case-insensitively.
    pub fn parse(word: &str) -> SessionState {
        match word.trim().to_ascii_lowercase().as_str() {
            "idle" => SessionState::Idle,
            "connect" => SessionState::Connect,
            "active" => SessionState::Active,
            "opensent" => SessionState::OpenSent,
            "openconfirm" => SessionState::OpenConfirm,
            "established" => SessionState::Established,
            _ => SessionState::Other(word.trim().to_string()),
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionState::Other(s) => write!(f, "{s}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Fails unless `tool` is on PATH, naming the Debian package to install.
pub fn require_tool(tool: &str, package: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        || std::path::Path::new(tool).is_file();
    if !found {
        anyhow::bail!("`{tool}` not found: install Debian package `{package}` (scripts/setup.sh)");
    }
    Ok(())
}
