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
//! changes one is refused whole, naming them. So is any change to the BFD
//! sessions (the `[bfd]` table, an appliance with BFD added, removed, reset
//! or given other BFD settings): the BFD thread starts its sessions once.

use crate::config::{PeerConfig, ServerConfig, changed_keys};
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
    let mut restart = changed_keys!(old, new;
        asn, router_id, listen, port, branch_to_branch, ipv6_next_hop,
        graceful_restart_time, socket, socket_group, metrics_listen,
    );
    restart.extend(
        changed_keys!(old.hosts, new.hosts; password, ttl_security)
            .into_iter()
            .map(|k| {
                if k == "password" {
                    "hosts.password"
                } else {
                    "hosts.ttl_security"
                }
            }),
    );
    if !changed_keys!(old.bfd, new.bfd; interval_ms, multiplier, min_ttl).is_empty() {
        restart.push("bfd");
    }
    if bfd_sessions_change(old, new) {
        restart.push("peer BFD sessions");
    }
    if !restart.is_empty() {
        return Err(ReloadError::NeedsRestart {
            role: "server",
            keys: restart,
        });
    }

    let mut p = Plan {
        global: changed_keys!(old, new;
            connect_retry, connect_retry_max, max_prefix_restart, hold_time, keepalive,
            send_hold_time, send_queue_limit,
        ),
        ..Plan::default()
    };
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

    p.hosts = changed_keys!(old.hosts, new.hosts;
        ranges, max_prefixes, hold_time, keepalive, send_hold_time, send_queue_limit,
        graceful_restart,
    );
    let allow = |h: &crate::config::HostsConfig| {
        h.allow
            .iter()
            .map(|a| (a.range, a.prefixes.clone()))
            .collect::<Vec<_>>()
    };
    if allow(&old.hosts) != allow(&new.hosts) {
        p.hosts.push("allow");
    }
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
    let timers = |c: &ServerConfig, p: &PeerConfig| {
        (
            p.hold_time.unwrap_or(c.hold_time),
            p.keepalive.unwrap_or(c.keepalive),
            p.send_hold_time.or(c.send_hold_time),
            p.send_queue_limit.unwrap_or(c.send_queue_limit),
        )
    };
    let (ot, nt) = (timers(old, o), timers(new, n));
    let mut reset = changed_keys!(o, n; address, asn, passive, password, ttl_security);
    let effective = [
        (ot.0 != nt.0, "hold_time"),
        (ot.1 != nt.1, "keepalive"),
        (ot.2 != nt.2, "send_hold_time"),
        (ot.3 != nt.3, "send_queue_limit"),
    ];
    reset.extend(effective.iter().filter(|(c, _)| *c).map(|(_, k)| *k));
    let in_place = changed_keys!(o, n; max_prefixes, graceful_restart);
    (reset, in_place)
}
/// True when the BFD sessions would differ: an appliance with BFD added or
/// removed, its BFD settings changed, or its session reset (a new session
/// is a new peer to the BFD thread, which starts its sessions once).
fn bfd_sessions_change(old: &ServerConfig, new: &ServerConfig) -> bool {
    let bfd_of = |c: &ServerConfig, p: &PeerConfig| p.bfd(&c.bfd);
    old.peers.iter().any(|o| {
        let n = new.peers.iter().find(|n| n.name == o.name);
        let had = bfd_of(old, o);
        match n {
            None => had.is_some(),
            Some(n) => {
                had != bfd_of(new, n)
                    || (had.is_some() && !peer_changes(old, o, new, n).0.is_empty())
            }
        }
    }) || new
        .peers
        .iter()
        .any(|n| !old.peers.iter().any(|o| o.name == n.name) && bfd_of(new, n).is_some())
}

fn diff(a: &[Prefix], b: &[Prefix]) -> Vec<Prefix> {
    a.iter().filter(|p| !b.contains(p)).copied().collect()
}

#[cfg(test)]
mod tests;
