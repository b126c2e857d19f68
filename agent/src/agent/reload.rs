//! Live reconfiguration of the agent (`steer reload`, SIGHUP): the VM
//! interfaces, the VM prefixes and the route servers change without a
//! restart; other keys need one. Pure: the daemon applies the plan.
//!
//! Route servers added get a session, removed ones Cease/3 "Peer
//! De-configured" (RFC 4486) and their paths are withdrawn from the FIB;
//! VM prefixes added are announced and removed ones withdrawn on every
//! established session; the VM interfaces get (or lose) the eBPF hooks and
//! `ip rule`s. Sessions to unchanged route servers are not touched.

use crate::config::{AgentConfig, ReloadError, changed_keys};
use crate::prefix::Prefix;
use std::net::IpAddr;

/// What applying a new agent configuration does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AgentPlan {
    /// Route servers to connect to.
    pub servers_added: Vec<IpAddr>,
    /// Route servers to leave (Cease/3).
    pub servers_removed: Vec<IpAddr>,
    /// VM prefixes to announce.
    pub prefixes_added: Vec<Prefix>,
    /// VM prefixes to withdraw.
    pub prefixes_removed: Vec<Prefix>,
    /// The new VM interfaces, when they changed.
    pub interfaces: Option<Vec<String>>,
}

impl AgentPlan {
    /// One line for the log and the `steer reload` answer.
    pub fn summary(&self) -> String {
        let list = |v: &[IpAddr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let pfx = |v: &[Prefix]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut parts = Vec::new();
        if !self.servers_added.is_empty() {
            parts.push(format!(
                "route servers added {}",
                list(&self.servers_added).join(" ")
            ));
        }
        if !self.servers_removed.is_empty() {
            parts.push(format!(
                "route servers removed {} (Cease/3)",
                list(&self.servers_removed).join(" ")
            ));
        }
        if !self.prefixes_added.is_empty() || !self.prefixes_removed.is_empty() {
            parts.push(format!(
                "vm_prefixes +[{}] -[{}]",
                pfx(&self.prefixes_added).join(" "),
                pfx(&self.prefixes_removed).join(" ")
            ));
        }
        if let Some(i) = &self.interfaces {
            parts.push(format!("vm_interfaces now [{}]", i.join(" ")));
        }
        if parts.is_empty() {
            "no change".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Compares `old` and `new`; every key but the three live ones must be
/// unchanged (a new key must be added here or below).
pub fn plan(old: &AgentConfig, new: &AgentConfig) -> Result<AgentPlan, ReloadError> {
    let keys = changed_keys!(old, new;
        asn, router_id, port, table, ipv6_next_hop, vnet_prefixes, dataplane, xdp,
        return_path, xdp_debug, pin_dir, ecmp, rule_priority, flush_on_exit, manage_neighbors,
        stale_timeout, graceful_restart_time, reconcile_interval, flow_idle_timeout,
        hold_time, keepalive, connect_retry, connect_retry_max, send_hold_time,
        send_queue_limit, password, ttl_security, socket, socket_group, metrics_listen,
    );
    if !keys.is_empty() {
        return Err(ReloadError::NeedsRestart {
            role: "agent",
            keys,
        });
    }
    let minus = |a: &[IpAddr], b: &[IpAddr]| a.iter().filter(|x| !b.contains(x)).copied().collect();
    let pminus =
        |a: &[Prefix], b: &[Prefix]| a.iter().filter(|x| !b.contains(x)).copied().collect();
    Ok(AgentPlan {
        servers_added: minus(&new.route_servers, &old.route_servers),
        servers_removed: minus(&old.route_servers, &new.route_servers),
        prefixes_added: pminus(&new.vm_prefixes, &old.vm_prefixes),
        prefixes_removed: pminus(&old.vm_prefixes, &new.vm_prefixes),
        interfaces: (old.vm_interfaces != new.vm_interfaces).then(|| new.vm_interfaces.clone()),
    })
}

#[cfg(test)]
mod tests;
