//! Renders an OpenBGPD `bgpd.conf` (bgpd.conf(5), OpenBGPD 7) from an
//! [`OpenbgpdConfig`].

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::route::{AddPaths, Announce, Neighbor};

/// What an OpenBGPD instance runs: its identity, BGP neighbours and the
/// prefixes it originates. Filters allow everything in and out (OpenBGPD,
/// like RFC 8212, sends and accepts nothing on eBGP without them), and the
/// kernel's table is left alone (`fib-update no`).
#[derive(Clone, Debug)]
pub struct OpenbgpdConfig {
    /// Router id.
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub asn: u32,
    /// BGP sessions, `descr` set to [`Neighbor::name`].
    pub neighbors: Vec<Neighbor>,
    /// Prefixes to originate (`network` statements).
    pub announce: Vec<Announce>,
}

impl OpenbgpdConfig {
    /// A config with no neighbours and nothing to announce.
    pub fn new(router_id: &str, asn: u32) -> OpenbgpdConfig {
        OpenbgpdConfig {
            router_id: router_id.parse().expect("bad router id"),
            asn,
            neighbors: Vec::new(),
            announce: Vec::new(),
        }
    }

    /// Adds a neighbour.
    pub fn neighbor(mut self, n: Neighbor) -> OpenbgpdConfig {
        self.neighbors.push(n);
        self
    }

    /// Adds a prefix to originate.
    pub fn announce(mut self, a: Announce) -> OpenbgpdConfig {
        self.announce.push(a);
        self
    }

    /// Renders the configuration; `socket` is the control socket's path.
    pub fn render(&self, socket: &str) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "AS {}", self.asn);
        let _ = writeln!(c, "router-id {}", self.router_id);
        let _ = writeln!(c, "socket \"{socket}\"");
        let _ = writeln!(c, "fib-update no");
        let _ = writeln!(c, "log updates");
        for a in &self.announce {
            let _ = writeln!(c, "network {}{}", a.prefix, set_block(a));
        }
        for n in &self.neighbors {
            let _ = writeln!(c, "neighbor {} {{", n.address);
            let _ = writeln!(c, "  remote-as {}", n.remote_as);
            let _ = writeln!(c, "  descr \"{}\"", n.name);
            let _ = writeln!(c, "  holdtime {}", n.hold_time);
            if n.passive {
                let _ = writeln!(c, "  passive");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(c, "  tcp md5sig password \"{p}\"");
            }
            if n.ttl_security {
                let _ = writeln!(c, "  ttl-security yes");
            }
            if let Some(hops) = n.multihop {
                let _ = writeln!(c, "  multihop {hops}");
            }
            if let Some(local) = n.local {
                let _ = writeln!(c, "  local-address {local}");
            }
            if n.add_paths.rx() {
                let _ = writeln!(c, "  announce add-path recv yes");
            }
            if n.add_paths.tx() {
                let _ = writeln!(c, "  announce add-path send all");
            }
            if n.add_paths != AddPaths::Off || n.remote_as == self.asn {
                let _ = writeln!(c, "  announce IPv4 unicast");
            }
            let _ = writeln!(c, "}}");
        }
        let _ = writeln!(c, "allow from any\nallow to any");
        c
    }
}

/// ` set { ... }` with the announcement's attributes, or nothing.
fn set_block(a: &Announce) -> String {
    let mut set = Vec::new();
    if let Some(nh) = a.next_hop {
        set.push(format!("nexthop {nh}"));
    }
    if a.prepend > 0 {
        set.push(format!("prepend-self {}", a.prepend));
    }
    if let Some(med) = a.med {
        set.push(format!("med {med}"));
    }
    for (asn, value) in &a.communities {
        set.push(format!("community {asn}:{value}"));
    }
    for (g, l1, l2) in &a.large_communities {
        set.push(format!("large-community {g}:{l1}:{l2}"));
    }
    if set.is_empty() {
        String::new()
    } else {
        format!(" set {{ {} }}", set.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_attributes_and_the_neighbour_block_are_rendered() {
        let cfg = OpenbgpdConfig::new("10.1.0.30", 65030)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515).password("k"))
            .announce(
                Announce::new("10.252.0.0/16")
                    .med(50)
                    .community(65030, 7)
                    .large_community(65030, 1, 1),
            );
        let text = cfg.render("/tmp/s.sock");
        assert!(text.contains(
            "network 10.252.0.0/16 set { med 50 community 65030:7 large-community 65030:1:1 }"
        ));
        assert!(text.contains(
            "neighbor 10.1.0.4 {\n  remote-as 65515\n  descr \"rs\"\n  holdtime 9\n  tcp md5sig password \"k\"\n}"
        ));
        assert!(text.ends_with("allow from any\nallow to any\n"));
    }
}
