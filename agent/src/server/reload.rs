//! Live reconfiguration (`steer reload`, SIGHUP): what a new configuration
//! changes, and which changes need a session reset. Pure: the route server
//! applies the plan ([`crate::server::core::RouteServer::reconfigure`]) and
//! the daemon starts and stops the sessions.
//!
//! Like BIRD's `configure`, a peer is reset only when its session's terms
//! change (address, AS, timers, password, TTL security, passive mode); a
//! new `max_prefixes` or `graceful_restart` applies in place. A removed
//! appliance gets Cease/3 "Peer De-configured" and a reset one Cease/6
//! "Other Configuration Change" (RFC 4486). Keys the listening sockets or
//! every session's OPEN depend on need a restart, and a configuration that
//! changes one is refused whole, naming them.

use crate::config::{PeerConfig, ServerConfig};
use crate::prefix::Prefix;

pub use crate::config::ReloadError;

/// What applying a new configuration does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Appliances no longer configured (Cease/3).
    pub removed: Vec<String>,
    /// Appliances newly configured.
    pub added: Vec<String>,
    /// Appliances whose session terms changed, with the keys (Cease/6,
    /// then a new session).
    pub reset: Vec<(String, Vec<&'static str>)>,
    /// Appliances with changes applied in place, with the keys.
    pub in_place: Vec<(String, Vec<&'static str>)>,
    /// VNet prefixes now originated.
    pub vnet_added: Vec<Prefix>,
    /// VNet prefixes no longer originated.
    pub vnet_removed: Vec<Prefix>,
    /// `[hosts]` keys that changed (applied in place; hosts outside the new
    /// ranges are disconnected with Cease/3).
    pub hosts: Vec<&'static str>,
    /// Other keys applied in place (to sessions started from now on where
    /// they concern sessions).
    pub global: Vec<&'static str>,
}

impl Plan {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }

    /// One line for the log and the `steer reload` answer.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let list = |v: &[String]| v.join(" ");
        let keyed = |v: &[(String, Vec<&str>)]| {
            v.iter()
                .map(|(n, k)| format!("{n} ({})", k.join(", ")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !self.added.is_empty() {
            parts.push(format!("added {}", list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {} (Cease/3)", list(&self.removed)));
        }
        if !self.reset.is_empty() {
            parts.push(format!("reset {} (Cease/6)", keyed(&self.reset)));
        }
        if !self.in_place.is_empty() {
            parts.push(format!("changed in place {}", keyed(&self.in_place)));
        }
        if !self.vnet_added.is_empty() || !self.vnet_removed.is_empty() {
            let show = |v: &[Prefix]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
            parts.push(format!(
                "vnet_prefixes +[{}] -[{}]",
                show(&self.vnet_added).join(" "),
                show(&self.vnet_removed).join(" ")
            ));
        }
        if !self.hosts.is_empty() {
            parts.push(format!("hosts: {}", self.hosts.join(", ")));
        }
        if !self.global.is_empty() {
            parts.push(format!("in place: {}", self.global.join(", ")));
        }
        if parts.is_empty() {
            "no change".to_string()
        } else {
            parts.join("; ")
        }
    }
}

/// Compares `old` and `new` and says what applying `new` does.
pub fn plan(old: &ServerConfig, new: &ServerConfig) -> Result<Plan, ReloadError> {
    let mut restart = Vec::new();
    let mut need = |changed: bool, key: &'static str| {
        if changed {
            restart.push(key);
        }
    };
    need(old.asn != new.asn, "asn");
    need(old.router_id != new.router_id, "router_id");
    need(old.listen != new.listen, "listen");
    need(old.port != new.port, "port");
    need(
        old.branch_to_branch != new.branch_to_branch,
        "branch_to_branch",
    );
    need(old.ipv6_next_hop != new.ipv6_next_hop, "ipv6_next_hop");
    need(
        old.graceful_restart_time != new.graceful_restart_time,
        "graceful_restart_time",
    );
    need(old.socket != new.socket, "socket");
    need(old.socket_group != new.socket_group, "socket_group");
    need(old.metrics_listen != new.metrics_listen, "metrics_listen");
    need(old.hosts.password != new.hosts.password, "hosts.password");
    need(
        old.hosts.ttl_security != new.hosts.ttl_security,
        "hosts.ttl_security",
    );
    if !restart.is_empty() {
        return Err(ReloadError::NeedsRestart {
            role: "server",
            keys: restart,
        });
    }

    let mut p = Plan::default();
    let mut global = |changed: bool, key: &'static str| {
        if changed {
            p.global.push(key);
        }
    };
    global(old.connect_retry != new.connect_retry, "connect_retry");
    global(
        old.connect_retry_max != new.connect_retry_max,
        "connect_retry_max",
    );
    global(
        old.max_prefix_restart != new.max_prefix_restart,
        "max_prefix_restart",
    );
    global(old.hold_time != new.hold_time, "hold_time");
    global(old.keepalive != new.keepalive, "keepalive");
    global(old.send_hold_time != new.send_hold_time, "send_hold_time");
    global(
        old.send_queue_limit != new.send_queue_limit,
        "send_queue_limit",
    );

    for o in &old.peers {
        match new.peers.iter().find(|n| n.name == o.name) {
            None => p.removed.push(o.name.clone()),
            Some(n) => {
                let (reset, in_place) = peer_changes(old, o, new, n);
                if !reset.is_empty() {
                    p.reset.push((o.name.clone(), reset));
                } else if !in_place.is_empty() {
                    p.in_place.push((o.name.clone(), in_place));
                }
            }
        }
    }
    p.added = new
        .peers
        .iter()
        .filter(|n| !old.peers.iter().any(|o| o.name == n.name))
        .map(|n| n.name.clone())
        .collect();
    p.vnet_added = diff(&new.vnet_prefixes, &old.vnet_prefixes);
    p.vnet_removed = diff(&old.vnet_prefixes, &new.vnet_prefixes);

    let (oh, nh) = (&old.hosts, &new.hosts);
    let mut hosts = |changed: bool, key: &'static str| {
        if changed {
            p.hosts.push(key);
        }
    };
    hosts(oh.ranges != nh.ranges, "ranges");
    hosts(oh.max_prefixes != nh.max_prefixes, "max_prefixes");
    hosts(oh.hold_time != nh.hold_time, "hold_time");
    hosts(oh.keepalive != nh.keepalive, "keepalive");
    hosts(oh.send_hold_time != nh.send_hold_time, "send_hold_time");
    hosts(
        oh.send_queue_limit != nh.send_queue_limit,
        "send_queue_limit",
    );
    hosts(
        oh.graceful_restart != nh.graceful_restart,
        "graceful_restart",
    );
    let allow = |h: &crate::config::HostsConfig| {
        h.allow
            .iter()
            .map(|a| (a.range, a.prefixes.clone()))
            .collect::<Vec<_>>()
    };
    hosts(allow(oh) != allow(nh), "allow");
    Ok(p)
}

/// The keys of one appliance that need a new session, and those that apply
/// in place. Timers compare as in effect (a global default counts).
fn peer_changes(
    old: &ServerConfig,
    o: &PeerConfig,
    new: &ServerConfig,
    n: &PeerConfig,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut reset = Vec::new();
    let mut add = |changed: bool, key: &'static str| {
        if changed {
            reset.push(key);
        }
    };
    add(o.address != n.address, "address");
    add(o.asn != n.asn, "asn");
    add(o.passive != n.passive, "passive");
    add(
        o.hold_time.unwrap_or(old.hold_time) != n.hold_time.unwrap_or(new.hold_time),
        "hold_time",
    );
    add(
        o.keepalive.unwrap_or(old.keepalive) != n.keepalive.unwrap_or(new.keepalive),
        "keepalive",
    );
    add(
        o.send_hold_time.or(old.send_hold_time) != n.send_hold_time.or(new.send_hold_time),
        "send_hold_time",
    );
    add(
        o.send_queue_limit.unwrap_or(old.send_queue_limit)
            != n.send_queue_limit.unwrap_or(new.send_queue_limit),
        "send_queue_limit",
    );
    add(o.password != n.password, "password");
    add(o.ttl_security != n.ttl_security, "ttl_security");
    let mut in_place = Vec::new();
    if o.max_prefixes != n.max_prefixes {
        in_place.push("max_prefixes");
    }
    if o.graceful_restart != n.graceful_restart {
        in_place.push("graceful_restart");
    }
    (reset, in_place)
}

fn diff(a: &[Prefix], b: &[Prefix]) -> Vec<Prefix> {
    a.iter().filter(|p| !b.contains(p)).copied().collect()
}

#[cfg(test)]
mod tests;
