//! Renders a gobgpd TOML configuration.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use crate::route::Neighbor;

/// What a gobgpd instance runs. The gRPC API listens on the namespace's
/// loopback (`127.0.0.1:api_port`), so every instance can use the same port.
#[derive(Clone, Debug)]
pub struct GobgpConfig {
    /// Router id.
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub asn: u32,
    /// BGP sessions.
    pub neighbors: Vec<Neighbor>,
    /// Source address for every session (e.g. the host's LAN address).
    pub local_address: Option<IpAddr>,
    /// BGP listen port; `-1` disables listening (default 179).
    pub listen_port: i32,
    /// gRPC API port on 127.0.0.1 (default 50051).
    pub api_port: u16,
    /// Raw TOML appended to the file.
    pub extra: String,
}

impl GobgpConfig {
    /// A config with no neighbours.
    pub fn new(router_id: &str, asn: u32) -> GobgpConfig {
        GobgpConfig {
            router_id: router_id.parse().expect("bad router id"),
            asn,
            neighbors: Vec::new(),
            local_address: None,
            listen_port: 179,
            api_port: 50051,
            extra: String::new(),
        }
    }

    /// Adds a neighbour.
    pub fn neighbor(mut self, n: Neighbor) -> GobgpConfig {
        self.neighbors.push(n);
        self
    }

    /// Renders the TOML.
    pub fn render(&self) -> String {
        let mut c = String::new();
        let _ = writeln!(
            c,
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}",
            self.asn, self.router_id, self.listen_port
        );
        for n in &self.neighbors {
            let _ = writeln!(
                c,
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
                n.address, n.remote_as
            );
            if let Some(p) = &n.password {
                let _ = writeln!(c, "    auth-password = \"{p}\"");
            }
            if n.ttl_security {
                let _ = writeln!(
                    c,
                    "  [neighbors.ttl-security.config]\n    enabled = true\n    ttl-min = 255"
                );
            }
            let _ = writeln!(
                c,
                "  [neighbors.timers.config]\n    connect-retry = {}\n    hold-time = {}\n    keepalive-interval = {}\n    idle-hold-time-after-reset = 1",
                n.connect_retry, n.hold_time, n.keepalive
            );
            if n.passive || self.local_address.is_some() {
                let _ = writeln!(c, "  [neighbors.transport.config]");
                if n.passive {
                    let _ = writeln!(c, "    passive-mode = true");
                }
                if let Some(ip) = self.local_address {
                    let _ = writeln!(c, "    local-address = \"{ip}\"");
                }
            }
            for family in ["ipv4-unicast", "ipv6-unicast"] {
                let _ = writeln!(
                    c,
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\""
                );
                if n.add_paths.rx() || n.add_paths.tx() {
                    let _ = writeln!(c, "    [neighbors.afi-safis.add-paths.config]");
                    if n.add_paths.rx() {
                        let _ = writeln!(c, "      receive = true");
                    }
                    if n.add_paths.tx() {
                        let _ = writeln!(c, "      send-max = 8");
                    }
                }
            }
        }
        c.push_str(&self.extra);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::AddPaths;

    #[test]
    fn add_path_receive_and_short_idle_hold_are_rendered() {
        let cfg = GobgpConfig::new("10.1.0.31", 65515)
            .neighbor(Neighbor::new("rs1", "10.1.0.4", 65515).add_paths(AddPaths::Rx));
        let text = cfg.render();
        assert!(text.contains("neighbor-address = \"10.1.0.4\"\n    peer-as = 65515"));
        assert!(text.contains("idle-hold-time-after-reset = 1"));
        assert!(text.contains("[neighbors.afi-safis.add-paths.config]\n      receive = true"));
    }
}
