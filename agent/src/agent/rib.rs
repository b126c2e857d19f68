//! The agent's view of the route servers: every path each route server
//! sent (ADD-PATH, RFC 7911), merged into one forwarding intent per prefix.
//! The same next hop from two route servers counts once; paths this host
//! originated (ORIGINATOR_ID is ours, RFC 4456 §8) or pointing at this
//! host are ignored; prefixes carrying the VNet community are the VNet's
//! own space, which the kernel's own routes handle. A route server's paths
//! survive its graceful restart as stale (RFC 4724 §4.2) until it sends
//! End-of-RIB again or the restart time ends.

use crate::bgp::attribute::{PathAttributes, vnet_community};
use crate::bgp::nlri::Family;
use crate::fib::plan::Want;
use crate::prefix::Prefix;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Most next hops per prefix (the XDP next-hop set size).
pub const MAX_NEXT_HOPS: usize = 16;

#[derive(Debug, Clone)]
struct Learned {
    attrs: Arc<PathAttributes>,
    stale: bool,
}

#[derive(Debug, Default)]
struct ServerRoutes {
    paths: FxHashMap<Prefix, FxHashMap<u32, Learned>>,
}

/// One learned path, for `steer show routes` on the agent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LearnedPath {
    /// Route server index (position in `route_servers`).
    pub server: usize,
    /// ADD-PATH id.
    pub path_id: u32,
    /// Next hop.
    pub next_hop: Option<IpAddr>,
    /// AS path.
    pub as_path: String,
    /// Held through the route server's restart.
    pub stale: bool,
    /// Carries the VNet community.
    pub vnet: bool,
}

/// Paths from every route server and the merged intent.
#[derive(Debug)]
pub struct AgentRib {
    servers: Vec<ServerRoutes>,
    asn: u32,
    router_id: Ipv4Addr,
    local_addrs: FxHashSet<IpAddr>,
    configured_vnet: Vec<Prefix>,
    merged: FxHashMap<Prefix, Want>,
    dirty: FxHashSet<Prefix>,
}

impl AgentRib {
    /// A RIB for `servers` route servers.
    pub fn new(
        servers: usize,
        asn: u32,
        router_id: Ipv4Addr,
        configured_vnet: Vec<Prefix>,
    ) -> AgentRib {
        let mut r = AgentRib {
            servers: (0..servers).map(|_| ServerRoutes::default()).collect(),
            asn,
            router_id,
            local_addrs: FxHashSet::default(),
            configured_vnet: configured_vnet.clone(),
            merged: FxHashMap::default(),
            dirty: FxHashSet::default(),
        };
        r.dirty.extend(configured_vnet);
        r
    }

    /// Route servers this RIB has room for.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Room for one more route server (added by a reload).
    pub fn add_server(&mut self) {
        self.servers.push(ServerRoutes::default());
    }

    /// Addresses of this host: paths whose next hop is one are ignored.
    pub fn set_local_addrs(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.local_addrs = addrs.into_iter().collect();
        let all: Vec<Prefix> = self.merged.keys().copied().collect();
        self.dirty.extend(all);
        for s in &self.servers {
            self.dirty.extend(s.paths.keys().copied());
        }
    }

    /// Add or replace a path from route server `server`.
    pub fn announce(
        &mut self,
        server: usize,
        prefix: Prefix,
        path_id: u32,
        attrs: Arc<PathAttributes>,
    ) {
        self.servers[server]
            .paths
            .entry(prefix)
            .or_default()
            .insert(
                path_id,
                Learned {
                    attrs,
                    stale: false,
                },
            );
        self.dirty.insert(prefix);
    }

    /// Remove a path from route server `server`.
    pub fn withdraw(&mut self, server: usize, prefix: Prefix, path_id: u32) {
        let paths = &mut self.servers[server].paths;
        if let Some(m) = paths.get_mut(&prefix) {
            m.remove(&path_id);
            if m.is_empty() {
                paths.remove(&prefix);
            }
            self.dirty.insert(prefix);
        }
    }

    /// The route server's session ended for good: drop its paths.
    pub fn drop_server(&mut self, server: usize) {
        let paths = std::mem::take(&mut self.servers[server].paths);
        self.dirty.extend(paths.into_keys());
    }

    /// The route server is restarting: keep its paths of `families`, stale.
    pub fn mark_stale(&mut self, server: usize, families: &[Family]) -> usize {
        let mut n = 0;
        let mut gone = Vec::new();
        for (p, m) in self.servers[server].paths.iter_mut() {
            if families.contains(&Family::unicast(p.afi())) {
                for l in m.values_mut() {
                    l.stale = true;
                    n += 1;
                }
            } else {
                gone.push(*p);
            }
        }
        for p in gone {
            self.servers[server].paths.remove(&p);
            self.dirty.insert(p);
        }
        n
    }

    /// End-of-RIB (or restart time over): drop stale paths of `family`.
    pub fn sweep_stale(&mut self, server: usize, family: Option<Family>) -> usize {
        let mut n = 0;
        let paths = &mut self.servers[server].paths;
        for (p, m) in paths.iter_mut() {
            if family.is_some_and(|f| Family::unicast(p.afi()) != f) {
                continue;
            }
            let before = m.len();
            m.retain(|_, l| !l.stale);
            if m.len() != before {
                n += before - m.len();
                self.dirty.insert(*p);
            }
        }
        paths.retain(|_, m| !m.is_empty());
        n
    }

    fn is_vnet_marked(&self, a: &PathAttributes) -> bool {
        a.large_communities.contains(&vnet_community(self.asn))
    }

    fn want(&self, prefix: &Prefix) -> Option<Want> {
        if self.configured_vnet.contains(prefix) {
            return Some(Want::Vnet);
        }
        let mut hops = BTreeSet::new();
        let mut vnet = false;
        for s in &self.servers {
            let Some(m) = s.paths.get(prefix) else {
                continue;
            };
            for l in m.values() {
                let a = &l.attrs;
                if a.originator_id == Some(self.router_id) {
                    continue;
                }
                if self.is_vnet_marked(a) {
                    vnet = true;
                    continue;
                }
                if let Some(nh) = a.next_hop
                    && !self.local_addrs.contains(&nh)
                {
                    hops.insert(nh);
                }
            }
        }
        if vnet {
            return Some(Want::Vnet);
        }
        if hops.is_empty() {
            return None;
        }
        Some(Want::Forward(
            hops.into_iter().take(MAX_NEXT_HOPS).collect(),
        ))
    }

    /// The VNet prefixes in effect (configured and learned).
    pub fn vnet_prefixes(&self) -> Vec<Prefix> {
        let mut v: Vec<Prefix> = self
            .merged
            .iter()
            .filter(|(_, w)| **w == Want::Vnet)
            .map(|(p, _)| *p)
            .collect();
        v.sort();
        v
    }

    /// Recompute changed prefixes; returns what changed (None = no longer
    /// wanted).
    pub fn take_changes(&mut self) -> Vec<(Prefix, Option<Want>)> {
        let dirty: Vec<Prefix> = self.dirty.drain().collect();
        let mut out = Vec::new();
        for p in dirty {
            let new = self.want(&p);
            let old = self.merged.get(&p);
            if old == new.as_ref() {
                continue;
            }
            match &new {
                Some(w) => self.merged.insert(p, w.clone()),
                None => self.merged.remove(&p),
            };
            out.push((p, new));
        }
        out.sort_by_key(|(p, _)| *p);
        out
    }

    /// The merged intent for every prefix.
    pub fn merged(&self) -> &FxHashMap<Prefix, Want> {
        &self.merged
    }

    /// Every path per prefix, for display.
    pub fn paths(&self, prefix: &Prefix) -> Vec<LearnedPath> {
        let mut v = Vec::new();
        for (i, s) in self.servers.iter().enumerate() {
            for (id, l) in s.paths.get(prefix).into_iter().flatten() {
                v.push(LearnedPath {
                    server: i,
                    path_id: *id,
                    next_hop: l.attrs.next_hop,
                    as_path: l
                        .attrs
                        .as_path
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    stale: l.stale,
                    vnet: self.is_vnet_marked(&l.attrs),
                });
            }
        }
        v.sort_by_key(|p| (p.server, p.path_id));
        v
    }

    /// Every prefix any route server sent, sorted.
    pub fn prefixes(&self) -> Vec<Prefix> {
        let mut all: BTreeSet<Prefix> = BTreeSet::new();
        for s in &self.servers {
            all.extend(s.paths.keys().copied());
        }
        all.extend(self.configured_vnet.iter().copied());
        all.into_iter().collect()
    }

    /// Paths received from one route server.
    pub fn path_count(&self, server: usize) -> usize {
        self.servers[server]
            .paths
            .values()
            .map(FxHashMap::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::attribute::{AsPath, LargeCommunity};

    fn a(nh: &str) -> Arc<PathAttributes> {
        Arc::new(PathAttributes {
            as_path: Some(AsPath::sequence([65020])),
            next_hop: Some(nh.parse().unwrap()),
            ..PathAttributes::default()
        })
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn rib() -> AgentRib {
        AgentRib::new(2, 65515, Ipv4Addr::new(10, 1, 0, 31), vec![])
    }

    fn nh(v: &[&str]) -> Want {
        Want::Forward(v.iter().map(|s| s.parse().unwrap()).collect())
    }

    #[test]
    fn same_next_hop_from_two_route_servers_counts_once() {
        let mut r = rib();
        r.announce(0, p("0.0.0.0/0"), 1, a("10.1.0.20"));
        r.announce(0, p("0.0.0.0/0"), 2, a("10.1.0.21"));
        r.announce(1, p("0.0.0.0/0"), 7, a("10.1.0.21"));
        assert_eq!(
            r.take_changes(),
            vec![(p("0.0.0.0/0"), Some(nh(&["10.1.0.20", "10.1.0.21"])))]
        );
        assert!(r.take_changes().is_empty());
    }

    #[test]
    fn losing_one_route_server_changes_nothing_when_the_other_has_the_same_paths() {
        let mut r = rib();
        for s in 0..2 {
            r.announce(s, p("0.0.0.0/0"), 1, a("10.1.0.20"));
        }
        r.take_changes();
        r.drop_server(0);
        assert!(r.take_changes().is_empty());
        r.drop_server(1);
        assert_eq!(r.take_changes(), vec![(p("0.0.0.0/0"), None)]);
    }

    #[test]
    fn withdraw_shrinks_the_ecmp_set() {
        let mut r = rib();
        r.announce(0, p("0.0.0.0/0"), 1, a("10.1.0.20"));
        r.announce(0, p("0.0.0.0/0"), 2, a("10.1.0.21"));
        r.take_changes();
        r.withdraw(0, p("0.0.0.0/0"), 1);
        assert_eq!(
            r.take_changes(),
            vec![(p("0.0.0.0/0"), Some(nh(&["10.1.0.21"])))]
        );
    }

    #[test]
    fn own_routes_and_own_next_hops_are_ignored() {
        let mut r = rib();
        r.set_local_addrs(["10.1.0.31".parse().unwrap()]);
        let mut own = (*a("10.1.0.32")).clone();
        own.originator_id = Some(Ipv4Addr::new(10, 1, 0, 31));
        r.announce(0, p("10.1.1.0/24"), 1, Arc::new(own));
        r.announce(0, p("10.1.7.0/24"), 1, a("10.1.0.31"));
        r.announce(0, p("10.1.2.0/24"), 2, a("10.1.0.32"));
        assert_eq!(
            r.take_changes(),
            vec![(p("10.1.2.0/24"), Some(nh(&["10.1.0.32"])))]
        );
    }

    #[test]
    fn vnet_community_and_configured_vnet_mean_kernel_handles_it() {
        let mut r = AgentRib::new(
            1,
            65515,
            Ipv4Addr::new(10, 1, 0, 31),
            vec![p("10.2.0.0/16")],
        );
        let mut v = (*a("10.1.0.4")).clone();
        v.large_communities = vec![LargeCommunity {
            global: 65515,
            local1: 1,
            local2: 1,
        }];
        r.announce(0, p("10.1.0.0/16"), 0, Arc::new(v));
        assert_eq!(
            r.take_changes(),
            vec![
                (p("10.1.0.0/16"), Some(Want::Vnet)),
                (p("10.2.0.0/16"), Some(Want::Vnet))
            ]
        );
        assert_eq!(r.vnet_prefixes(), vec![p("10.1.0.0/16"), p("10.2.0.0/16")]);
    }

    #[test]
    fn stale_paths_stay_until_swept() {
        let mut r = rib();
        r.announce(0, p("0.0.0.0/0"), 1, a("10.1.0.20"));
        r.announce(0, p("2001:db8::/32"), 1, a("2001:db8::20"));
        r.take_changes();
        assert_eq!(r.mark_stale(0, &[Family::IPV4_UNICAST]), 1);
        assert_eq!(r.take_changes(), vec![(p("2001:db8::/32"), None)]);
        r.announce(0, p("0.0.0.0/0"), 1, a("10.1.0.20"));
        assert_eq!(r.sweep_stale(0, Some(Family::IPV4_UNICAST)), 0);
        assert!(r.take_changes().is_empty());
        r.mark_stale(0, &[Family::IPV4_UNICAST]);
        assert_eq!(r.sweep_stale(0, None), 1);
        assert_eq!(r.take_changes(), vec![(p("0.0.0.0/0"), None)]);
    }

    #[test]
    fn ecmp_set_is_capped_at_sixteen() {
        let mut r = rib();
        for i in 0..20u32 {
            r.announce(0, p("0.0.0.0/0"), i + 1, a(&format!("10.1.0.{}", 100 + i)));
        }
        match &r.take_changes()[0].1 {
            Some(Want::Forward(v)) => assert_eq!(v.len(), 16),
            w => panic!("{w:?}"),
        }
    }
}
