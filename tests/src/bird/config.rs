//! Renders a BIRD 2 configuration from a [`BirdConfig`].

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::route::{AddPaths, Announce, Neighbor};

/// What a BIRD instance runs: its identity, BGP neighbours, the prefixes it
/// originates, and whether learned BGP routes go to the namespace's kernel
/// table (so an appliance can route replies back).
#[derive(Clone, Debug)]
pub struct BirdConfig {
    /// Router id.
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub asn: u32,
    /// BGP sessions; protocol `bgp_<Neighbor::name>` each (the prefix keeps
    /// names like `rs` clear of BIRD keywords).
    pub neighbors: Vec<Neighbor>,
    /// Prefixes to originate (static protocol `announce`; routes of any
    /// protocol named `announce*`, e.g. one added in `extra`, are exported too).
    pub announce: Vec<Announce>,
    /// Export learned BGP routes to the kernel (default true).
    pub kernel_export: bool,
    /// Re-advertise routes learned over BGP to every neighbour, not only the
    /// announced ones (default false).
    pub export_learned: bool,
    /// Raw text appended to the configuration.
    pub extra: String,
}

impl BirdConfig {
    /// A config with no neighbours and nothing to announce.
    pub fn new(router_id: &str, asn: u32) -> BirdConfig {
        BirdConfig {
            router_id: router_id.parse().expect("bad router id"),
            asn,
            neighbors: Vec::new(),
            announce: Vec::new(),
            kernel_export: true,
            export_learned: false,
            extra: String::new(),
        }
    }

    /// Adds a neighbour.
    pub fn neighbor(mut self, n: Neighbor) -> BirdConfig {
        self.neighbors.push(n);
        self
    }

    /// Adds a prefix to originate.
    pub fn announce(mut self, a: Announce) -> BirdConfig {
        self.announce.push(a);
        self
    }

    /// Renders the configuration; `log` is the log file path.
    pub fn render(&self, log: &str) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "log \"{log}\" all;");
        let _ = writeln!(c, "router id {};", self.router_id);
        let _ = writeln!(c, "debug protocols {{ states, events }};");
        let _ = writeln!(c, "protocol device {{ scan time 2; }}");
        if self.kernel_export {
            let _ = writeln!(
                c,
                "protocol kernel {{\n  ipv4 {{ import none; export where source = RTS_BGP; }};\n  merge paths on;\n  learn off;\n}}"
            );
        }
        let _ = writeln!(c, "protocol static announce {{\n  ipv4;");
        for a in &self.announce {
            let _ = writeln!(c, "  {}", static_route(a, self.asn));
        }
        let _ = writeln!(c, "}}");
        if let Some(b) = self.neighbors.iter().find_map(|n| n.bfd) {
            let timers = format!(
                "interval {} ms; multiplier {};",
                b.interval_ms, b.multiplier
            );
            let _ = writeln!(
                c,
                "protocol bfd {{\n  interface \"*\" {{ {timers} }};\n  multihop {{ {timers} }};\n}}"
            );
        }
        for n in &self.neighbors {
            c.push_str(&self.protocol(n));
        }
        c.push_str(&self.extra);
        c.push('\n');
        c
    }

    fn protocol(&self, n: &Neighbor) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "protocol bgp {} {{", protocol_name(&n.name));
        let _ = writeln!(c, "  local as {};", self.asn);
        let _ = writeln!(c, "  neighbor {} as {};", n.address, n.remote_as);
        if n.remote_as == self.asn {
            let _ = writeln!(c, "  direct;");
        }
        if let Some(hops) = n.multihop {
            let _ = writeln!(c, "  multihop {hops};");
        }
        if let Some(local) = n.local {
            let _ = writeln!(c, "  source address {local};");
        }
        if n.bfd.is_some() {
            let _ = writeln!(c, "  bfd on;");
        }
        let _ = writeln!(c, "  hold time {};", n.hold_time);
        let _ = writeln!(c, "  keepalive time {};", n.keepalive);
        let _ = writeln!(c, "  connect retry time {};", n.connect_retry);
        let _ = writeln!(c, "  connect delay time 1;");
        let _ = writeln!(c, "  error wait time 1, 5;");
        if n.passive {
            let _ = writeln!(c, "  passive on;");
        }
        if let Some(p) = &n.password {
            let _ = writeln!(c, "  password \"{p}\";");
        }
        if n.ttl_security {
            let _ = writeln!(c, "  ttl security on;");
        }
        let export = if self.export_learned {
            "where proto ~ \"announce*\" || source = RTS_BGP"
        } else {
            "where proto ~ \"announce*\""
        };
        let _ = writeln!(c, "  ipv4 {{\n    import all;\n    export {export};");
        let add_paths = match n.add_paths {
            AddPaths::Off => None,
            AddPaths::Rx => Some("rx"),
            AddPaths::Tx => Some("tx"),
            AddPaths::Both => Some("on"),
        };
        if let Some(mode) = add_paths {
            let _ = writeln!(c, "    add paths {mode};");
        }
        let _ = writeln!(c, "  }};\n}}");
        c
    }
}

/// The BIRD protocol name for a neighbour name.
pub fn protocol_name(neighbor: &str) -> String {
    format!("{PROTOCOL_PREFIX}{neighbor}")
}

/// Prepended to neighbour names to form protocol names.
pub const PROTOCOL_PREFIX: &str = "bgp_";

fn static_route(a: &Announce, asn: u32) -> String {
    let dest = match a.next_hop {
        Some(ip) => format!("via {ip}"),
        None => "blackhole".to_string(),
    };
    let mut attrs = String::new();
    for _ in 0..a.prepend {
        let _ = write!(attrs, " bgp_path.prepend({asn});");
    }
    for (x, y) in &a.communities {
        let _ = write!(attrs, " bgp_community.add(({x},{y}));");
    }
    for (g, l1, l2) in &a.large_communities {
        let _ = write!(attrs, " bgp_large_community.add(({g},{l1},{l2}));");
    }
    if let Some(med) = a.med {
        let _ = write!(attrs, " bgp_med = {med};");
    }
    if attrs.is_empty() {
        format!("route {} {dest};", a.prefix)
    } else {
        format!("route {} {dest} {{{attrs} }};", a.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_communities_render_as_static_route_attributes() {
        let a = Announce::new("10.250.0.0/16")
            .prepend(2)
            .community(65010, 100)
            .large_community(65010, 1, 2);
        assert_eq!(
            static_route(&a, 65010),
            "route 10.250.0.0/16 blackhole { bgp_path.prepend(65010); bgp_path.prepend(65010); \
             bgp_community.add((65010,100)); bgp_large_community.add((65010,1,2)); };"
        );
    }

    #[test]
    fn bfd_neighbor_gets_bfd_on_and_a_bfd_protocol_with_its_timers() {
        let cfg = BirdConfig::new("10.1.0.20", 65020).neighbor(
            Neighbor::new("rs", "10.1.0.4", 65515)
                .bfd(300, 3)
                .multihop(2),
        );
        let text = cfg.render("/tmp/x.log");
        assert!(text.contains(
            "protocol bfd {\n  interface \"*\" { interval 300 ms; multiplier 3; };\n  multihop { interval 300 ms; multiplier 3; };\n}"
        ), "{text}");
        assert!(text.contains("  multihop 2;\n  bfd on;\n"), "{text}");
    }

    #[test]
    fn ibgp_neighbor_is_direct_with_add_paths() {
        let cfg = BirdConfig::new("10.1.0.31", 65515)
            .neighbor(Neighbor::new("rs1", "10.1.0.4", 65515).add_paths(AddPaths::Rx));
        let text = cfg.render("/tmp/x.log");
        assert!(text.contains(
            "protocol bgp bgp_rs1 {\n  local as 65515;\n  neighbor 10.1.0.4 as 65515;\n  direct;"
        ));
        assert!(text.contains("    add paths rx;\n"));
    }
}
