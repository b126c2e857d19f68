//! What `steer show peers`, `steer show bfd` and `steer show routes`
//! return: plain serializable records (the `--json` output), and the
//! queries on the route server that build them.

use super::core::{PeerEntry, RouteServer};
use crate::bfd::packet::State as BfdState;
use crate::bfd::status::BfdSnapshot;
use crate::bgp::attribute::{Origin, PathAttributes, community};
use crate::bgp::peer::PeerId;
use crate::bgp::status::StatusSnapshot;
use crate::control::RouteQuery;
use crate::prefix::Prefix;
use crate::rib::decision::why_lost;
use crate::rib::export::{ExportCache, export};
use crate::rib::group::UpdateGroup;
use crate::rib::table::{Path, SourceKind};
use rustc_hash::FxHashMap;
use std::net::IpAddr;

/// One peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerView {
    /// Name.
    pub name: String,
    /// Appliance or host.
    pub kind: SourceKind,
    /// Address.
    pub address: IpAddr,
    /// AS.
    pub asn: u32,
    /// Session status.
    pub status: StatusSnapshot,
    /// Paths received (Adj-RIB-In, counted against max_prefixes).
    pub received: u32,
    /// Paths accepted by import policy.
    pub accepted: usize,
    /// Paths advertised to it.
    pub advertised: usize,
    /// Limit.
    pub max_prefixes: u32,
    /// Times the limit ended the session.
    pub max_prefix_trips: u32,
    /// Stale paths held for a graceful restart.
    pub stale: bool,
    /// Its update group.
    pub update_group: Option<u64>,
    /// Its BFD session, when configured.
    pub bfd: Option<BfdPeerView>,
}

/// BFD as `steer show peers` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BfdPeerView {
    /// The BFD session's state.
    pub state: BfdState,
    /// BFD is Up (the peer speaks it and the path works).
    pub running: bool,
    /// The BGP session is held down because BFD went Down.
    pub holds_bgp: bool,
    /// In words, for the table.
    pub summary: String,
}

/// One session of `steer show bfd`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BfdView {
    /// The appliance's name.
    pub peer: String,
    /// Its BGP session is held down until BFD is Up.
    pub bgp_held: bool,
    /// The BFD session.
    #[serde(flatten)]
    pub status: BfdSnapshot,
}

/// Attributes in display form.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttrView {
    /// Next hop.
    pub next_hop: Option<IpAddr>,
    /// AS path, space separated.
    pub as_path: String,
    /// igp, egp or incomplete.
    pub origin: Option<&'static str>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// MED.
    pub med: Option<u32>,
    /// Communities as `asn:value` or well-known names.
    pub communities: Vec<String>,
    /// Large communities as `a:b:c`.
    pub large_communities: Vec<String>,
    /// Extended communities in hex.
    pub ext_communities: Vec<String>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<std::net::Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: Vec<std::net::Ipv4Addr>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR as `asn address`.
    pub aggregator: Option<String>,
    /// Unknown optional transitive attributes kept, as `type:hex`.
    pub unknown: Vec<String>,
}

fn community_name(c: u32) -> String {
    match c {
        community::NO_EXPORT => "no-export".into(),
        community::NO_ADVERTISE => "no-advertise".into(),
        community::NO_EXPORT_SUBCONFED => "no-export-subconfed".into(),
        c => format!("{}:{}", c >> 16, c & 0xffff),
    }
}

impl AttrView {
    /// Display form of `a`.
    pub fn new(a: &PathAttributes) -> AttrView {
        AttrView {
            next_hop: a.next_hop,
            as_path: a
                .as_path
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            origin: a.origin.map(|o| match o {
                Origin::Igp => "igp",
                Origin::Egp => "egp",
                Origin::Incomplete => "incomplete",
            }),
            local_pref: a.local_pref,
            med: a.med,
            communities: a.communities.iter().map(|c| community_name(*c)).collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(|l| format!("{}:{}:{}", l.global, l.local1, l.local2))
                .collect(),
            ext_communities: a
                .ext_communities
                .iter()
                .map(|e| e.iter().map(|b| format!("{b:02x}")).collect())
                .collect(),
            originator_id: a.originator_id,
            cluster_list: a.cluster_list.clone(),
            atomic_aggregate: a.atomic_aggregate,
            aggregator: a.aggregator.map(|g| format!("{} {}", g.asn, g.address)),
            unknown: a
                .unknown
                .iter()
                .map(|u| {
                    let hex: String = u.value.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{}:{hex}", u.type_code)
                })
                .collect(),
        }
    }
}

/// One received path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathView {
    /// Peer name.
    pub peer: String,
    /// Appliance, host or local.
    pub kind: SourceKind,
    /// ADD-PATH id as received.
    pub path_id: u32,
    /// Attributes.
    #[serde(flatten)]
    pub attrs: AttrView,
    /// The best path.
    pub best: bool,
    /// In the multipath (ECMP) set.
    pub multipath: bool,
    /// Held through a graceful restart.
    pub stale: bool,
    /// Why it is not used: refused by import policy, or the decision step
    /// it lost on.
    pub reason: Option<String>,
}

impl PathView {
    /// Display form of a path.
    pub fn new(p: &Path, best: bool, multipath: bool, reason: Option<String>) -> PathView {
        PathView {
            peer: p.source.name.clone(),
            kind: p.source.kind,
            path_id: p.path_id,
            attrs: AttrView::new(&p.attrs.attributes()),
            best,
            multipath,
            stale: p.stale,
            reason,
        }
    }
}

/// All paths of a prefix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteView {
    /// The prefix.
    pub prefix: Prefix,
    /// Its paths, best first.
    pub paths: Vec<PathView>,
}

/// One advertised path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdvertisedView {
    /// The prefix.
    pub prefix: Prefix,
    /// ADD-PATH id sent (0 without ADD-PATH).
    pub path_id: u32,
    /// Attributes as sent.
    #[serde(flatten)]
    pub attrs: AttrView,
}

impl AdvertisedView {
    /// Display form of an advertised path.
    pub fn new(prefix: Prefix, path_id: u32, a: &PathAttributes) -> AdvertisedView {
        AdvertisedView {
            prefix,
            path_id,
            attrs: AttrView::new(a),
        }
    }
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// No such peer name.
    #[error("no peer named `{0}`")]
    NoPeer(String),
    /// `--advertised` without `--peer`.
    #[error("--advertised needs --peer NAME")]
    AdvertisedNeedsPeer,
    /// Not a prefix or address.
    #[error("`{0}` is neither a prefix nor an address")]
    BadPrefix(String),
    /// The peer has no session, so nothing is advertised.
    #[error("peer `{0}` is not established; nothing is advertised to it")]
    NotEstablished(String),
}

/// The queries behind `steer show`, answered from the route server's
/// state.
impl RouteServer {
    /// `steer show bfd`: every appliance with BFD.
    pub fn show_bfd(&self) -> Vec<BfdView> {
        let mut v: Vec<BfdView> = self
            .peers
            .values()
            .filter_map(|p| {
                p.bfd.as_ref().map(|b| BfdView {
                    peer: p.name.clone(),
                    bgp_held: p.bfd_held,
                    status: b.snapshot(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.peer.cmp(&b.peer));
        v
    }

    /// Paths accepted by import policy, per peer, in one pass over the table.
    fn accepted_counts(&self) -> FxHashMap<PeerId, usize> {
        let mut m = FxHashMap::default();
        for p in self.table.iter().flat_map(|(_, d)| d.paths.iter()) {
            if p.rejected.is_none() {
                *m.entry(p.source.peer).or_insert(0) += 1;
            }
        }
        m
    }

    fn advertised_count(&self, id: PeerId) -> usize {
        let Some(live) = self.peers.get(&id).and_then(|p| p.live.as_ref()) else {
            return 0;
        };
        self.groups
            .iter()
            .find(|(g, _)| *g == live.group)
            .map_or(0, |(_, g)| g.advertised_paths())
    }

    /// `steer show peers`.
    pub fn show_peers(&self) -> Vec<PeerView> {
        let accepted = self.accepted_counts();
        let mut v: Vec<PeerView> = self
            .peers
            .values()
            .map(|p| PeerView {
                name: p.name.clone(),
                kind: p.kind,
                address: p.addr,
                asn: p.asn,
                status: p.status.snapshot(),
                received: p.received,
                accepted: accepted.get(&p.id).copied().unwrap_or(0),
                advertised: self.advertised_count(p.id),
                max_prefixes: p.max_prefixes,
                max_prefix_trips: p.max_prefix_trips,
                stale: p.restarting.is_some(),
                update_group: p.live.as_ref().map(|l| l.group),
                bfd: p
                    .bfd
                    .as_ref()
                    .map(|b| bfd_peer_view(&b.snapshot(), p.bfd_held)),
            })
            .collect();
        v.sort_by_key(|p| (p.kind != SourceKind::Appliance, p.address));
        v
    }

    fn peer_by_name(&self, name: &str) -> Result<&PeerEntry, QueryError> {
        self.peers
            .values()
            .find(|p| p.name == name)
            .ok_or_else(|| QueryError::NoPeer(name.to_string()))
    }

    fn match_prefix(&self, text: &str) -> Result<Vec<Prefix>, QueryError> {
        if text.contains('/') {
            let p: Prefix = text
                .parse()
                .map_err(|_| QueryError::BadPrefix(text.into()))?;
            return Ok(vec![p]);
        }
        let addr: IpAddr = text
            .parse()
            .map_err(|_| QueryError::BadPrefix(text.into()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        for len in (0..=max).rev() {
            let p = Prefix::new(addr, len);
            if self.table.get(&p).is_some() {
                return Ok(vec![p]);
            }
        }
        Ok(Vec::new())
    }

    /// The prefixes `show routes` (or with `advertised`, `show routes
    /// --advertised`) covers for `q`, unsorted: the snapshot the control
    /// socket pages through.
    pub fn route_keys(&self, q: &RouteQuery) -> Result<Vec<Prefix>, QueryError> {
        if let Some(t) = &q.prefix {
            return self.match_prefix(t);
        }
        if q.advertised {
            self.advertised_group(q)?;
        }
        Ok(self.table.iter().map(|(p, _)| *p).collect())
    }

    /// `steer show routes [--peer NAME] [PREFIX]`: with `q.keys`, the
    /// routes of those prefixes only, in their order.
    pub fn show_routes(&self, q: &RouteQuery) -> Result<Vec<RouteView>, QueryError> {
        let peer = q
            .peer
            .as_deref()
            .map(|n| self.peer_by_name(n))
            .transpose()?;
        let prefixes = match &q.keys {
            Some(k) => k.clone(),
            None => {
                let mut v = self.route_keys(q)?;
                v.sort_unstable();
                v
            }
        };
        let mut out = Vec::new();
        for prefix in prefixes {
            let Some(d) = self.table.get(&prefix) else {
                continue;
            };
            let best = d.best();
            let paths: Vec<PathView> = d
                .paths
                .iter()
                .enumerate()
                .filter(|(_, p)| peer.is_none_or(|x| x.id == p.source.peer))
                .map(|(i, p)| {
                    let reason = match (&p.rejected, best) {
                        (Some(r), _) => Some(format!("refused: {r}")),
                        (None, Some(b)) if i >= d.multipath => {
                            let v = why_lost(&b.candidate(), &p.candidate());
                            Some(v.step.rule().to_string())
                        }
                        _ => None,
                    };
                    PathView::new(p, i == 0 && d.multipath > 0, i < d.multipath, reason)
                })
                .collect();
            if !paths.is_empty() {
                out.push(RouteView { prefix, paths });
            }
        }
        Ok(out)
    }

    /// The update group of `q.peer`, for `--advertised`.
    fn advertised_group(&self, q: &RouteQuery) -> Result<Option<&UpdateGroup>, QueryError> {
        let name = q.peer.as_deref().ok_or(QueryError::AdvertisedNeedsPeer)?;
        let peer = self.peer_by_name(name)?;
        let live = peer
            .live
            .as_ref()
            .ok_or_else(|| QueryError::NotEstablished(name.into()))?;
        Ok(self
            .groups
            .iter()
            .find(|(gid, _)| *gid == live.group)
            .map(|(_, g)| g))
    }

    /// `steer show routes --peer NAME --advertised [PREFIX]`: with
    /// `q.keys`, those prefixes only.
    pub fn show_advertised(&self, q: &RouteQuery) -> Result<Vec<AdvertisedView>, QueryError> {
        let Some(g) = self.advertised_group(q)? else {
            return Ok(Vec::new());
        };
        let prefixes: Vec<Prefix> = match (&q.keys, q.prefix.as_deref()) {
            (Some(k), _) => k.clone(),
            (None, Some(t)) => self.match_prefix(t)?,
            (None, None) => self.table.iter().map(|(p, _)| *p).collect(),
        };
        let mut cache = ExportCache::default();
        let mut v: Vec<AdvertisedView> = prefixes
            .iter()
            .filter_map(|p| self.table.get(p).map(|d| (p, d)))
            .flat_map(|(p, d)| {
                export(p, Some(d), &g.key, &self.ctx, &mut cache)
                    .into_iter()
                    .map(|(id, a)| AdvertisedView::new(*p, id, &a))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_by_key(|a| (a.prefix, a.path_id));
        Ok(v)
    }
}

/// The BFD column of `steer show peers`.
fn bfd_peer_view(s: &crate::bfd::status::BfdSnapshot, held: bool) -> BfdPeerView {
    let state = s.session.state;
    let summary = if held {
        "Down, BGP held".to_string()
    } else if state == BfdState::Up {
        "Up".to_string()
    } else if s.packets_in == 0 {
        "not running (BGP not blocked)".to_string()
    } else {
        format!("{state} (BGP not blocked)")
    };
    BfdPeerView {
        state,
        running: state == BfdState::Up,
        holds_bgp: held,
        summary,
    }
}
