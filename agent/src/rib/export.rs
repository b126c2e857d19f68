//! Export policy: which paths of a prefix go to which kind of receiver,
//! and with what attributes.
//!
//! - To host agents (iBGP, RFC 4456 route reflection; RFC 7911 ADD-PATH):
//!   the whole multipath set, each path under its own path id, next hops
//!   unchanged so hosts forward straight to the appliance; host routes are
//!   reflected with ORIGINATOR_ID/CLUSTER_LIST; the VNet prefixes go with
//!   next hop self and the [`vnet_community`] so agents know the VNet space.
//! - To appliances (eBGP): the best eligible path only, our AS prepended
//!   (RFC 4271 §5.1.2), next hop unchanged for host and appliance routes
//!   (the receivers share the subnet) and self for the VNet prefixes;
//!   appliance routes only with branch-to-branch; never a path whose AS
//!   path already holds the receiver's AS; NO_EXPORT and NO_ADVERTISE
//!   honoured (RFC 1997); iBGP-only attributes stripped.

use super::attrs::AttrSet;
use super::table::{Decided, Dest, Path, Source, SourceKind};
use crate::bgp::attribute::{AsPath, Origin, PathAttributes, community, vnet_community};
use crate::bgp::message::CodecConfig;
use crate::bgp::nlri::Family;
use crate::prefix::{Afi, Prefix};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Who a group sends to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Appliances of one AS.
    Appliances {
        /// Their AS.
        asn: u32,
    },
    /// Host agents.
    Hosts,
}

/// Everything that makes two receivers get byte-identical UPDATEs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupKey {
    /// Kind of receiver.
    pub audience: Audience,
    /// Encoding (AS size, ADD-PATH, message size).
    pub codec: CodecConfig,
    /// Families negotiated.
    pub families: Vec<Family>,
    /// Our address on the sessions (next hop self).
    pub local: IpAddr,
}

/// Server-wide facts exports need.
#[derive(Clone, Debug)]
pub struct ExportContext {
    /// Our AS.
    pub local_asn: u32,
    /// Our router id, also the cluster id.
    pub router_id: Ipv4Addr,
    /// Appliance routes go to other appliances.
    pub branch_to_branch: bool,
    /// Next hop self for IPv6 routes we originate on IPv4 sessions.
    pub ipv6_next_hop: Option<std::net::Ipv6Addr>,
}

/// Caches exported attributes per imported set, source and family, so
/// every prefix sharing a set shares one exported `Arc` too.
#[derive(Debug, Default)]
pub struct ExportCache {
    map: FxHashMap<SetKey, Exported>,
}

/// A cached export and the imported set and source its key points at.
type Exported = (Arc<AttrSet>, Arc<Source>, Arc<PathAttributes>);

/// What an exported set depends on besides the group: the imported set,
/// the source (kind, router id) and the family (next hop self). Whoever
/// keys by it holds both `Arc`s, so the addresses stay theirs.
pub(super) type SetKey = (usize, usize, Afi);

pub(super) fn set_key(p: &Path, afi: Afi) -> SetKey {
    (
        Arc::as_ptr(&p.attrs) as usize,
        Arc::as_ptr(&p.source) as usize,
        afi,
    )
}

impl ExportCache {
    fn get_or(
        &mut self,
        p: &Path,
        afi: Afi,
        make: impl FnOnce() -> PathAttributes,
    ) -> Arc<PathAttributes> {
        self.map
            .entry(set_key(p, afi))
            .or_insert_with(|| (p.attrs.clone(), p.source.clone(), Arc::new(make())))
            .2
            .clone()
    }

    /// Cached entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn family_of(p: &Prefix) -> Family {
    Family::unicast(p.afi())
}

/// Our own next hop for `afi` on this group's sessions: the session
/// address when its family matches, else the configured IPv6 next hop.
fn next_hop_self(afi: Afi, key: &GroupKey, ctx: &ExportContext) -> Option<IpAddr> {
    match (afi, key.local) {
        (Afi::Ipv4, IpAddr::V4(_)) | (Afi::Ipv6, IpAddr::V6(_)) => Some(key.local),
        (Afi::Ipv6, IpAddr::V4(_)) => ctx.ipv6_next_hop.map(IpAddr::V6),
        (Afi::Ipv4, IpAddr::V6(_)) => None,
    }
}

/// The paths a group receives for one prefix, each under the path id it is
/// sent with: export policy's choice, before any attribute is rewritten.
pub type Selected<'a> = SmallVec<[(u32, &'a Path); 8]>;

/// Which paths of `dest` go to the group, under which path ids.
pub fn select<'a>(
    prefix: &Prefix,
    dest: &Decided<'a>,
    key: &GroupKey,
    ctx: &ExportContext,
) -> Selected<'a> {
    let mut out = Selected::new();
    if !key.families.contains(&family_of(prefix)) {
        return out;
    }
    let self_hop = next_hop_self(prefix.afi(), key, ctx);
    match key.audience {
        Audience::Hosts => {
            let add_path = family_of(prefix)
                .index()
                .is_some_and(|i| key.codec.add_path_send[i]);
            for p in dest.multipath_set() {
                if p.attrs.has_community(community::NO_ADVERTISE) {
                    continue;
                }
                if p.source.kind == SourceKind::Local && self_hop.is_none() {
                    continue;
                }
                out.push((if add_path { p.source.peer } else { 0 }, p));
                if !add_path {
                    break;
                }
            }
        }
        Audience::Appliances { asn } => {
            if let Some(p) = dest
                .eligible()
                .find(|p| to_appliance_allowed(p, asn, ctx))
                .filter(|p| p.source.kind != SourceKind::Local || self_hop.is_some())
            {
                out.push((0, p));
            }
        }
    }
    out
}

/// The attributes `p` is sent with to the group, for a prefix of `afi`.
pub fn attributes(p: &Path, afi: Afi, key: &GroupKey, ctx: &ExportContext) -> PathAttributes {
    let self_hop = next_hop_self(afi, key, ctx);
    match key.audience {
        Audience::Hosts => to_host(p, self_hop, ctx),
        Audience::Appliances { .. } => to_appliance(p, self_hop, ctx),
    }
}

/// The paths (path id, attributes) a group receives for one prefix.
pub fn export(
    prefix: &Prefix,
    dest: Option<&Dest>,
    key: &GroupKey,
    ctx: &ExportContext,
    cache: &mut ExportCache,
) -> Vec<(u32, Arc<PathAttributes>)> {
    let Some(dest) = dest else { return Vec::new() };
    let afi = prefix.afi();
    select(prefix, &dest.decided(), key, ctx)
        .into_iter()
        .map(|(id, p)| (id, cache.get_or(p, afi, || attributes(p, afi, key, ctx))))
        .collect()
}

fn to_appliance_allowed(p: &Path, asn: u32, ctx: &ExportContext) -> bool {
    let kind_ok = match p.source.kind {
        SourceKind::Local | SourceKind::Host => true,
        SourceKind::Appliance => ctx.branch_to_branch && p.source.asn != asn,
    };
    kind_ok
        && !p.attrs.has_community(community::NO_ADVERTISE)
        && !p.attrs.has_community(community::NO_EXPORT)
        && !p.attrs.as_path_contains(asn)
}

fn to_host(p: &Path, self_hop: Option<IpAddr>, ctx: &ExportContext) -> PathAttributes {
    let mut a = p.attrs.attributes();
    a.local_pref
        .get_or_insert(super::decision::DEFAULT_LOCAL_PREF);
    match p.source.kind {
        SourceKind::Appliance => {}
        SourceKind::Host => {
            a.originator_id.get_or_insert(p.source.router_id);
            a.cluster_list.insert(0, ctx.router_id);
        }
        SourceKind::Local => {
            a.next_hop = self_hop;
            a.link_local_next_hop = None;
            let c = vnet_community(ctx.local_asn);
            if !a.large_communities.contains(&c) {
                a.large_communities.push(c);
            }
        }
    }
    a
}

fn to_appliance(p: &Path, self_hop: Option<IpAddr>, ctx: &ExportContext) -> PathAttributes {
    let mut a = p.attrs.attributes();
    a.as_path = Some(a.as_path.as_ref().map_or_else(
        || AsPath::sequence([ctx.local_asn]),
        |x| x.prepend(ctx.local_asn),
    ));
    a.local_pref = None;
    a.originator_id = None;
    a.cluster_list.clear();
    a.link_local_next_hop = None;
    a.origin.get_or_insert(Origin::Igp);
    match p.source.kind {
        SourceKind::Local => a.next_hop = self_hop,
        SourceKind::Appliance => a.med = None,
        SourceKind::Host => {}
    }
    a
}

/// The attributes of a route this server originates (the VNet prefixes),
/// before export: the next hop is filled in per receiver.
pub fn local_route_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        local_pref: Some(super::decision::DEFAULT_LOCAL_PREF),
        ..PathAttributes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::attribute::AsPath;
    use crate::rib::table::{Rejection, Table};

    fn ctx(b2b: bool) -> ExportContext {
        ExportContext {
            local_asn: 65515,
            router_id: Ipv4Addr::new(10, 1, 0, 4),
            branch_to_branch: b2b,
            ipv6_next_hop: None,
        }
    }

    fn key(audience: Audience, add_path: bool) -> GroupKey {
        GroupKey {
            audience,
            codec: CodecConfig {
                four_octet_as: true,
                add_path_send: [add_path, false],
                ..CodecConfig::default()
            },
            families: vec![Family::IPV4_UNICAST],
            local: "10.1.0.4".parse().unwrap(),
        }
    }

    fn src(peer: u32, kind: SourceKind, asn: u32, addr: &str) -> Arc<Source> {
        Arc::new(Source {
            peer,
            name: format!("p{peer}"),
            kind,
            asn,
            router_id: addr.parse().unwrap(),
            addr: addr.parse().unwrap(),
            ebgp: kind == SourceKind::Appliance,
        })
    }

    fn path(s: &Arc<Source>, as_path: &[u32], communities: Vec<u32>) -> Path {
        Path {
            source: s.clone(),
            path_id: 0,
            attrs: AttrSet::new(&PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(as_path.iter().copied())),
                next_hop: Some(s.addr),
                local_pref: Some(100),
                med: Some(7),
                communities,
                ..PathAttributes::default()
            }),
            stale: false,
            rejected: None,
        }
    }

    fn table_with(paths: Vec<(&str, Path)>) -> Table {
        let mut t = Table::new();
        for (p, x) in paths {
            t.insert(p.parse().unwrap(), x);
        }
        t.decide();
        t
    }

    fn run(
        t: &Table,
        prefix: &str,
        k: &GroupKey,
        c: &ExportContext,
    ) -> Vec<(u32, Arc<PathAttributes>)> {
        let p: Prefix = prefix.parse().unwrap();
        export(&p, t.get(&p), k, c, &mut ExportCache::default())
    }

    #[test]
    fn hosts_get_every_multipath_member_under_its_own_path_id() {
        let (f1, f2) = (
            src(1, SourceKind::Appliance, 65020, "10.1.0.20"),
            src(2, SourceKind::Appliance, 65021, "10.1.0.21"),
        );
        let t = table_with(vec![
            ("0.0.0.0/0", path(&f1, &[65020], vec![])),
            ("0.0.0.0/0", path(&f2, &[65021], vec![])),
        ]);
        let out = run(&t, "0.0.0.0/0", &key(Audience::Hosts, true), &ctx(false));
        let ids: Vec<u32> = out.iter().map(|x| x.0).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(out[0].1.next_hop, Some("10.1.0.20".parse().unwrap()));
        assert_eq!(out[0].1.as_path, Some(AsPath::sequence([65020])));
    }

    #[test]
    fn hosts_without_add_path_get_only_the_best() {
        let (f1, f2) = (
            src(1, SourceKind::Appliance, 65020, "10.1.0.20"),
            src(2, SourceKind::Appliance, 65021, "10.1.0.21"),
        );
        let t = table_with(vec![
            ("0.0.0.0/0", path(&f1, &[65020], vec![])),
            ("0.0.0.0/0", path(&f2, &[65021], vec![])),
        ]);
        let out = run(&t, "0.0.0.0/0", &key(Audience::Hosts, false), &ctx(false));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 0);
    }

    #[test]
    fn passive_prepended_path_is_not_sent_to_hosts() {
        let (f1, f2) = (
            src(1, SourceKind::Appliance, 65020, "10.1.0.20"),
            src(2, SourceKind::Appliance, 65021, "10.1.0.21"),
        );
        let t = table_with(vec![
            ("0.0.0.0/0", path(&f1, &[65020, 65020, 65020], vec![])),
            ("0.0.0.0/0", path(&f2, &[65021], vec![])),
        ]);
        let out = run(&t, "0.0.0.0/0", &key(Audience::Hosts, true), &ctx(false));
        assert_eq!(out.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn host_routes_are_reflected_with_originator_and_cluster_list() {
        let h = src(5, SourceKind::Host, 65515, "10.1.0.31");
        let t = table_with(vec![("10.1.1.0/24", path(&h, &[], vec![]))]);
        let out = run(&t, "10.1.1.0/24", &key(Audience::Hosts, true), &ctx(false));
        assert_eq!(out[0].1.originator_id, Some("10.1.0.31".parse().unwrap()));
        assert_eq!(out[0].1.cluster_list, vec![Ipv4Addr::new(10, 1, 0, 4)]);
    }

    #[test]
    fn appliances_get_host_routes_with_our_as_prepended_and_next_hop_kept() {
        let h = src(5, SourceKind::Host, 65515, "10.1.0.31");
        let t = table_with(vec![("10.1.1.0/24", path(&h, &[], vec![]))]);
        let out = run(
            &t,
            "10.1.1.0/24",
            &key(Audience::Appliances { asn: 65010 }, false),
            &ctx(false),
        );
        assert_eq!(out.len(), 1);
        let a = &out[0].1;
        assert_eq!(a.as_path, Some(AsPath::sequence([65515])));
        assert_eq!(a.next_hop, Some("10.1.0.31".parse().unwrap()));
        assert_eq!(a.local_pref, None);
    }

    #[test]
    fn vnet_prefix_goes_to_appliances_with_next_hop_self_and_as_path_65515() {
        let local = src(0, SourceKind::Local, 65515, "10.1.0.4");
        let t = table_with(vec![(
            "10.1.0.0/16",
            Path {
                source: local.clone(),
                path_id: 0,
                attrs: AttrSet::new(&local_route_attrs()),
                stale: false,
                rejected: None,
            },
        )]);
        let out = run(
            &t,
            "10.1.0.0/16",
            &key(Audience::Appliances { asn: 65010 }, false),
            &ctx(false),
        );
        assert_eq!(out[0].1.as_path, Some(AsPath::sequence([65515])));
        assert_eq!(out[0].1.next_hop, Some("10.1.0.4".parse().unwrap()));
        let hosts = run(&t, "10.1.0.0/16", &key(Audience::Hosts, true), &ctx(false));
        assert!(
            hosts[0]
                .1
                .large_communities
                .contains(&vnet_community(65515))
        );
    }

    #[test]
    fn appliance_routes_go_to_other_appliances_only_with_branch_to_branch() {
        let s = src(1, SourceKind::Appliance, 65010, "10.1.0.10");
        let t = table_with(vec![("10.250.0.0/16", path(&s, &[65010], vec![]))]);
        let fw = key(Audience::Appliances { asn: 65020 }, false);
        assert!(run(&t, "10.250.0.0/16", &fw, &ctx(false)).is_empty());
        let out = run(&t, "10.250.0.0/16", &fw, &ctx(true));
        assert_eq!(out[0].1.as_path, Some(AsPath::sequence([65515, 65010])));
        assert_eq!(out[0].1.med, None);
        let own = key(Audience::Appliances { asn: 65010 }, false);
        assert!(run(&t, "10.250.0.0/16", &own, &ctx(true)).is_empty());
    }

    #[test]
    fn no_advertise_goes_nowhere_and_no_export_only_to_hosts() {
        let s = src(1, SourceKind::Appliance, 65010, "10.1.0.10");
        let t = table_with(vec![
            (
                "10.250.1.0/24",
                path(&s, &[65010], vec![community::NO_ADVERTISE]),
            ),
            (
                "10.250.2.0/24",
                path(&s, &[65010], vec![community::NO_EXPORT]),
            ),
        ]);
        let hosts = key(Audience::Hosts, true);
        let fw = key(Audience::Appliances { asn: 65020 }, false);
        assert!(run(&t, "10.250.1.0/24", &hosts, &ctx(true)).is_empty());
        assert!(run(&t, "10.250.1.0/24", &fw, &ctx(true)).is_empty());
        assert_eq!(run(&t, "10.250.2.0/24", &hosts, &ctx(true)).len(), 1);
        assert!(run(&t, "10.250.2.0/24", &fw, &ctx(true)).is_empty());
    }

    #[test]
    fn refused_paths_are_never_exported() {
        let s = src(1, SourceKind::Appliance, 65010, "10.1.0.10");
        let mut p = path(&s, &[65010], vec![]);
        p.rejected = Some(Box::new(Rejection::OwnAsInPath));
        let t = table_with(vec![("10.250.0.0/16", p)]);
        assert!(run(&t, "10.250.0.0/16", &key(Audience::Hosts, true), &ctx(true)).is_empty());
    }

    #[test]
    fn families_not_negotiated_are_not_exported() {
        let s = src(1, SourceKind::Appliance, 65010, "10.1.0.10");
        let t = table_with(vec![("2001:db8::/32", path(&s, &[65010], vec![]))]);
        assert!(run(&t, "2001:db8::/32", &key(Audience::Hosts, true), &ctx(true)).is_empty());
    }

    #[test]
    fn export_cache_builds_one_attribute_set_per_imported_set() {
        let s = src(1, SourceKind::Appliance, 65010, "10.1.0.10");
        let shared = path(&s, &[65010], vec![]);
        let mut t = Table::new();
        for i in 0..100u32 {
            let p = Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24);
            t.insert(p, shared.clone());
        }
        t.decide();
        let mut cache = ExportCache::default();
        let k = key(Audience::Hosts, true);
        let outs: Vec<_> = t
            .iter()
            .map(|(p, d)| export(p, Some(d), &k, &ctx(false), &mut cache))
            .collect();
        assert_eq!(cache.len(), 1);
        assert!(outs.windows(2).all(|w| Arc::ptr_eq(&w[0][0].1, &w[1][0].1)));
    }
}
