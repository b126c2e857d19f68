//! The route server's table: for every prefix, every path received from
//! every peer (the Adj-RIBs-In, RFC 4271 §3.2, kept together) and the
//! decision's outcome (the Loc-RIB: best path and multipath set). Paths
//! refused by import policy stay visible with their reason but never take
//! part in the decision. Stale paths (RFC 4724 graceful restart) do.

use super::decision::{Candidate, Selection, select};
use crate::bgp::attribute::PathAttributes;
use crate::bgp::session::PeerId;
use crate::prefix::Prefix;
use rustc_hash::{FxHashMap, FxHashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// What kind of speaker a path came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A network appliance (eBGP).
    Appliance,
    /// A host agent (iBGP, dynamic neighbour).
    Host,
    /// Originated by this route server (the VNet prefixes).
    Local,
}

/// The session a path was learned on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Peer identity (0 for local routes).
    pub peer: PeerId,
    /// Peer name for display.
    pub name: String,
    /// Appliance, host or local.
    pub kind: SourceKind,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's address.
    pub addr: IpAddr,
    /// Learned over eBGP.
    pub ebgp: bool,
}

/// Why import policy refused a path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Rejection {
    /// Our own AS is in the AS path (RFC 4271 §9.1.2 loop detection).
    OwnAsInPath,
    /// The prefix is the VNet space or inside it: the VNet's own routes
    /// always win, as Azure's system routes do.
    InsideVnet(Prefix),
    /// An iBGP route reflected back to its originator (RFC 4456 §8).
    ReflectionLoop,
    /// A host announced a prefix outside the VNet space.
    OutsideVnet,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::OwnAsInPath => f.write_str("own AS in AS_PATH (loop)"),
            Rejection::InsideVnet(p) => write!(f, "inside the VNet space {p}"),
            Rejection::ReflectionLoop => f.write_str("ORIGINATOR_ID or CLUSTER_LIST loop"),
            Rejection::OutsideVnet => f.write_str("host route outside the VNet space"),
        }
    }
}

/// One path for one prefix.
#[derive(Clone, Debug)]
pub struct Path {
    /// Where it came from.
    pub source: Arc<Source>,
    /// ADD-PATH path id as received (0 without ADD-PATH).
    pub path_id: u32,
    /// Attributes after import (LOCAL_PREF set for eBGP routes).
    pub attrs: Arc<PathAttributes>,
    /// Kept through the peer's graceful restart, not yet refreshed.
    pub stale: bool,
    /// Import policy refused it.
    pub rejected: Option<Rejection>,
}

impl Path {
    /// The decision-process view of this path.
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            attrs: &self.attrs,
            ebgp: self.source.ebgp,
            peer_router_id: self.source.router_id,
            peer_addr: self.source.addr,
            source: self.source.peer,
        }
    }

    /// Same peer and path id.
    pub fn same_slot(&self, peer: PeerId, path_id: u32) -> bool {
        self.source.peer == peer && self.path_id == path_id
    }
}

/// All paths of one prefix; `paths[..multipath]` is the multipath set
/// (best first), then other eligible paths, then refused ones.
#[derive(Clone, Debug, Default)]
pub struct Dest {
    /// The paths, in decision order after [`Table::decide`].
    pub paths: Vec<Path>,
    /// Size of the multipath set at the front of `paths`.
    pub multipath: usize,
}

impl Dest {
    /// The best path, if any path is eligible.
    pub fn best(&self) -> Option<&Path> {
        (self.multipath > 0).then(|| &self.paths[0])
    }

    /// The multipath set, best first.
    pub fn multipath_set(&self) -> &[Path] {
        &self.paths[..self.multipath]
    }

    /// Eligible paths (not refused), in decision order.
    pub fn eligible(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter().filter(|p| p.rejected.is_none())
    }
}

/// The prefix table with a dirty set for batched decisions.
#[derive(Debug, Default)]
pub struct Table {
    dests: FxHashMap<Prefix, Dest>,
    dirty: FxHashSet<Prefix>,
}

/// What an insert or remove did to a peer's received-prefix count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CountChange {
    /// A new (prefix, path id) from this peer.
    Added,
    /// Replaced an existing path from this peer.
    Replaced,
    /// Removed a path.
    Removed,
    /// Nothing there to remove.
    None,
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::default()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// The paths of one prefix.
    pub fn get(&self, p: &Prefix) -> Option<&Dest> {
        self.dests.get(p)
    }

    /// Every prefix and its paths, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &Dest)> {
        self.dests.iter()
    }

    /// Add or replace the path `path.source.peer`/`path.path_id` for `prefix`.
    pub fn insert(&mut self, prefix: Prefix, path: Path) -> CountChange {
        let d = self.dests.entry(prefix).or_default();
        self.dirty.insert(prefix);
        match d
            .paths
            .iter_mut()
            .find(|p| p.same_slot(path.source.peer, path.path_id))
        {
            Some(old) => {
                *old = path;
                CountChange::Replaced
            }
            None => {
                d.paths.push(path);
                CountChange::Added
            }
        }
    }

    /// Remove one path.
    pub fn remove(&mut self, prefix: &Prefix, peer: PeerId, path_id: u32) -> CountChange {
        let Some(d) = self.dests.get_mut(prefix) else {
            return CountChange::None;
        };
        let before = d.paths.len();
        d.paths.retain(|p| !p.same_slot(peer, path_id));
        if d.paths.len() == before {
            return CountChange::None;
        }
        self.dirty.insert(*prefix);
        CountChange::Removed
    }

    /// Remove every path of `peer` matching `pred`; returns how many.
    pub fn remove_peer_where(
        &mut self,
        peer: PeerId,
        pred: impl Fn(&Prefix, &Path) -> bool,
    ) -> usize {
        let mut n = 0;
        for (prefix, d) in self.dests.iter_mut() {
            let before = d.paths.len();
            d.paths
                .retain(|p| !(p.source.peer == peer && pred(prefix, p)));
            if d.paths.len() != before {
                n += before - d.paths.len();
                self.dirty.insert(*prefix);
            }
        }
        n
    }

    /// Mark every path of `peer` matching `pred` stale; returns how many.
    pub fn mark_stale(&mut self, peer: PeerId, pred: impl Fn(&Prefix) -> bool) -> usize {
        let mut n = 0;
        for (prefix, d) in self.dests.iter_mut() {
            for p in d
                .paths
                .iter_mut()
                .filter(|p| p.source.peer == peer && pred(prefix))
            {
                p.stale = true;
                n += 1;
            }
        }
        n
    }

    /// Mark a prefix for re-decision (e.g. after a policy change).
    pub fn touch(&mut self, prefix: Prefix) {
        if self.dests.contains_key(&prefix) {
            self.dirty.insert(prefix);
        }
    }

    /// True when decisions are pending.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Run the decision process for every changed prefix; returns them
    /// (prefixes left without paths are removed from the table but still
    /// returned, so exports can withdraw them).
    pub fn decide(&mut self) -> Vec<Prefix> {
        let dirty: Vec<Prefix> = self.dirty.drain().collect();
        for prefix in &dirty {
            let Some(d) = self.dests.get_mut(prefix) else {
                continue;
            };
            if d.paths.is_empty() {
                self.dests.remove(prefix);
                continue;
            }
            decide_dest(d);
        }
        dirty
    }
}

fn decide_dest(d: &mut Dest) {
    let (eligible, refused): (Vec<Path>, Vec<Path>) = std::mem::take(&mut d.paths)
        .into_iter()
        .partition(|p| p.rejected.is_none());
    let Selection { order, multipath } = {
        let cands: Vec<Candidate<'_>> = eligible.iter().map(Path::candidate).collect();
        select(&cands)
    };
    let mut slots: Vec<Option<Path>> = eligible.into_iter().map(Some).collect();
    d.paths = order.iter().filter_map(|&i| slots[i].take()).collect();
    d.paths.extend(refused);
    d.multipath = multipath;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::attribute::{AsPath, Origin};

    fn source(peer: PeerId, asn: u32) -> Arc<Source> {
        Arc::new(Source {
            peer,
            name: format!("p{peer}"),
            kind: SourceKind::Appliance,
            asn,
            router_id: Ipv4Addr::new(10, 0, 0, peer as u8),
            addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, peer as u8)),
            ebgp: true,
        })
    }

    fn path(src: &Arc<Source>, hops: usize) -> Path {
        Path {
            source: src.clone(),
            path_id: 0,
            attrs: Arc::new(PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(std::iter::repeat_n(src.asn, hops))),
                next_hop: Some(src.addr),
                local_pref: Some(100),
                ..PathAttributes::default()
            }),
            stale: false,
            rejected: None,
        }
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn decide_orders_multipath_first_and_refused_last() {
        let (a, b, c) = (source(1, 65010), source(2, 65020), source(3, 65030));
        let mut t = Table::new();
        let mut refused = path(&c, 1);
        refused.rejected = Some(Rejection::OwnAsInPath);
        t.insert(p("0.0.0.0/0"), refused);
        t.insert(p("0.0.0.0/0"), path(&a, 3));
        t.insert(p("0.0.0.0/0"), path(&b, 1));
        assert_eq!(t.decide(), vec![p("0.0.0.0/0")]);
        let d = t.get(&p("0.0.0.0/0")).unwrap();
        assert_eq!(d.multipath, 1);
        let order: Vec<u32> = d.paths.iter().map(|x| x.source.peer).collect();
        assert_eq!(order, vec![2, 1, 3]);
        assert_eq!(d.eligible().count(), 2);
        assert!(!t.has_dirty());
    }

    #[test]
    fn replace_and_remove_report_count_changes() {
        let a = source(1, 65010);
        let mut t = Table::new();
        assert_eq!(
            t.insert(p("10.250.0.0/16"), path(&a, 1)),
            CountChange::Added
        );
        assert_eq!(
            t.insert(p("10.250.0.0/16"), path(&a, 2)),
            CountChange::Replaced
        );
        assert_eq!(t.remove(&p("10.250.0.0/16"), 1, 0), CountChange::Removed);
        assert_eq!(t.remove(&p("10.250.0.0/16"), 1, 0), CountChange::None);
        assert_eq!(t.decide(), vec![p("10.250.0.0/16")]);
        assert!(t.is_empty());
    }

    #[test]
    fn remove_peer_and_stale_marking_touch_only_that_peer() {
        let (a, b) = (source(1, 65010), source(2, 65020));
        let mut t = Table::new();
        for s in ["10.0.0.0/8", "10.250.0.0/16"] {
            t.insert(p(s), path(&a, 1));
            t.insert(p(s), path(&b, 1));
        }
        t.decide();
        assert_eq!(t.mark_stale(1, |_| true), 2);
        assert!(
            t.get(&p("10.0.0.0/8"))
                .unwrap()
                .paths
                .iter()
                .any(|x| x.stale && x.source.peer == 1)
        );
        assert_eq!(t.remove_peer_where(1, |_, x| x.stale), 2);
        let dirty = t.decide();
        assert_eq!(dirty.len(), 2);
        assert_eq!(t.get(&p("10.0.0.0/8")).unwrap().paths.len(), 1);
    }
}
