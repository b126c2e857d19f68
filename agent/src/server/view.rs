//! What `steer show peers`, `steer show bfd` and `steer show routes` return: plain
//! serializable records (the `--json` output) built from the server state.

use crate::bfd::packet::State as BfdState;
use crate::bfd::status::BfdSnapshot;
use crate::bgp::attribute::{Origin, PathAttributes, community};
use crate::bgp::status::StatusSnapshot;
use crate::prefix::Prefix;
use crate::rib::table::{Path, SourceKind};
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
