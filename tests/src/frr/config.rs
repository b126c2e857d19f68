//! Renders FRR 8.4 `bgpd.conf` / `zebra.conf` and the vtysh command
//! sequences that change announcements at runtime.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::route::{AddPaths, Announce, Neighbor};

/// What an FRR instance runs (bgpd + zebra).
#[derive(Clone, Debug)]
pub struct FrrConfig {
    /// Hostname (shown in logs and vtysh).
    pub hostname: String,
    /// Router id.
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub asn: u32,
    /// BGP sessions.
    pub neighbors: Vec<Neighbor>,
    /// Prefixes to originate with `network ... route-map`.
    pub announce: Vec<Announce>,
    /// Raw text appended to `bgpd.conf`.
    pub extra: String,
}

impl FrrConfig {
    /// A config with no neighbours and nothing to announce.
    pub fn new(hostname: &str, router_id: &str, asn: u32) -> FrrConfig {
        FrrConfig {
            hostname: hostname.to_string(),
            router_id: router_id.parse().expect("bad router id"),
            asn,
            neighbors: Vec::new(),
            announce: Vec::new(),
            extra: String::new(),
        }
    }

    /// Adds a neighbour.
    pub fn neighbor(mut self, n: Neighbor) -> FrrConfig {
        self.neighbors.push(n);
        self
    }

    /// Adds a prefix to originate.
    pub fn announce(mut self, a: Announce) -> FrrConfig {
        self.announce.push(a);
        self
    }

    /// `zebra.conf`.
    pub fn render_zebra(&self, log: &str) -> String {
        format!("hostname {}\nlog file {log}\n", self.hostname)
    }

    /// `bgpd.conf`.
    pub fn render_bgpd(&self, log: &str) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "frr defaults traditional\nhostname {}", self.hostname);
        let _ = writeln!(c, "log file {log} debugging\ndebug bgp neighbor-events\n!");
        for a in &self.announce {
            for line in route_map(a, self.asn) {
                let _ = writeln!(c, "{line}");
            }
            let _ = writeln!(c, "!");
        }
        let _ = writeln!(c, "router bgp {}", self.asn);
        let _ = writeln!(c, " bgp router-id {}", self.router_id);
        let _ = writeln!(c, " no bgp ebgp-requires-policy");
        let _ = writeln!(c, " no bgp network import-check");
        for n in &self.neighbors {
            let a = n.address;
            let _ = writeln!(c, " neighbor {a} remote-as {}", n.remote_as);
            let _ = writeln!(c, " neighbor {a} timers {} {}", n.keepalive, n.hold_time);
            let _ = writeln!(c, " neighbor {a} timers connect {}", n.connect_retry);
            let _ = writeln!(c, " neighbor {a} advertisement-interval 0");
            if let Some(p) = &n.password {
                let _ = writeln!(c, " neighbor {a} password {p}");
            }
            if n.ttl_security {
                let _ = writeln!(c, " neighbor {a} ttl-security hops 1");
            }
            if n.passive {
                let _ = writeln!(c, " neighbor {a} passive");
            }
            if let Some(hops) = n.multihop {
                let _ = writeln!(c, " neighbor {a} ebgp-multihop {hops}");
            }
            if let Some(local) = n.local {
                let _ = writeln!(c, " neighbor {a} update-source {local}");
            }
            if n.bfd.is_some() {
                let _ = writeln!(c, " neighbor {a} bfd");
                let _ = writeln!(c, " neighbor {a} bfd profile {}", bfd_profile(n));
            }
        }
        let _ = writeln!(c, " address-family ipv4 unicast");
        for a in &self.announce {
            let _ = writeln!(c, "  {}", network(a));
        }
        for n in &self.neighbors {
            if n.add_paths.tx() {
                let _ = writeln!(c, "  neighbor {} addpath-tx-all-paths", n.address);
            }
            if matches!(n.add_paths, AddPaths::Off | AddPaths::Tx) {
                let _ = writeln!(c, "  neighbor {} disable-addpath-rx", n.address);
            }
        }
        let _ = writeln!(c, " exit-address-family\n!");
        c.push_str(&self.extra);
        c.push('\n');
        c
    }
}

impl FrrConfig {
    /// True when a neighbour runs BFD, so bfdd must run too.
    pub fn needs_bfdd(&self) -> bool {
        self.neighbors.iter().any(|n| n.bfd.is_some())
    }

    /// `bfdd.conf`: one profile per neighbour with BFD.
    pub fn render_bfdd(&self, log: &str) -> String {
        let mut c = String::new();
        let _ = writeln!(
            c,
            "hostname {}\nlog file {log} debugging\ndebug bfd peer\ndebug bfd zebra\n!\nbfd",
            self.hostname
        );
        for n in &self.neighbors {
            if let Some(b) = n.bfd {
                let _ = writeln!(c, " profile {}", bfd_profile(n));
                let _ = writeln!(c, "  detect-multiplier {}", b.multiplier);
                let _ = writeln!(c, "  receive-interval {}", b.interval_ms);
                let _ = writeln!(c, "  transmit-interval {}", b.interval_ms);
                let _ = writeln!(c, " !");
            }
        }
        let _ = writeln!(c, "!");
        c
    }
}

fn bfd_profile(n: &Neighbor) -> String {
    format!("bfd-{}", n.address.to_string().replace([':', '.'], "-"))
}

/// The route-map name for an announced prefix.
pub fn route_map_name(prefix: &str) -> String {
    format!("ANN-{}", prefix.replace(['.', '/'], "_"))
}

/// The `network` line for an announcement.
pub fn network(a: &Announce) -> String {
    format!(
        "network {} route-map {}",
        a.prefix,
        route_map_name(&a.prefix)
    )
}

/// The route-map setting an announcement's attributes.
pub fn route_map(a: &Announce, asn: u32) -> Vec<String> {
    let mut lines = vec![format!("route-map {} permit 10", route_map_name(&a.prefix))];
    if a.prepend > 0 {
        let asns = vec![asn.to_string(); usize::from(a.prepend)].join(" ");
        lines.push(format!(" set as-path prepend {asns}"));
    }
    if !a.communities.is_empty() {
        let list: Vec<String> = a
            .communities
            .iter()
            .map(|(x, y)| format!("{x}:{y}"))
            .collect();
        lines.push(format!(" set community {}", list.join(" ")));
    }
    if !a.large_communities.is_empty() {
        let list: Vec<String> = a
            .large_communities
            .iter()
            .map(|(g, l1, l2)| format!("{g}:{l1}:{l2}"))
            .collect();
        lines.push(format!(" set large-community {}", list.join(" ")));
    }
    if let Some(med) = a.med {
        lines.push(format!(" set metric {med}"));
    }
    if let Some(nh) = a.next_hop {
        lines.push(format!(" set ip next-hop {nh}"));
    }
    lines.push(" exit".to_string());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_neighbor_gets_a_bfdd_profile_and_the_bgp_bfd_lines() {
        let cfg = FrrConfig::new("fw", "10.1.0.20", 65020)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515).bfd(300, 3));
        assert!(cfg.needs_bfdd());
        let bgpd = cfg.render_bgpd("/tmp/b.log");
        assert!(
            bgpd.contains(" neighbor 10.1.0.4 bfd\n neighbor 10.1.0.4 bfd profile bfd-10-1-0-4\n")
        );
        let bfdd = cfg.render_bfdd("/tmp/f.log");
        assert!(bfdd.contains(
            "bfd\n profile bfd-10-1-0-4\n  detect-multiplier 3\n  receive-interval 300\n  transmit-interval 300\n !\n"
        ), "{bfdd}");
    }

    #[test]
    fn prepend_renders_as_network_route_map() {
        let cfg = FrrConfig::new("fw", "10.1.0.20", 65020)
            .neighbor(Neighbor::new("rs1", "10.1.0.4", 65515))
            .announce(
                Announce::new("203.0.113.0/24")
                    .prepend(2)
                    .community(65020, 7),
            );
        let text = cfg.render_bgpd("/tmp/b.log");
        assert!(text.contains(
            "route-map ANN-203_0_113_0_24 permit 10\n set as-path prepend 65020 65020\n set community 65020:7\n"
        ));
        assert!(text.contains("  network 203.0.113.0/24 route-map ANN-203_0_113_0_24\n"));
        assert!(text.contains(" neighbor 10.1.0.4 timers 3 9\n"));
        assert!(text.contains("  neighbor 10.1.0.4 disable-addpath-rx\n"));
    }
}
