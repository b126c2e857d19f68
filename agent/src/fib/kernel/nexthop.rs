//! Nexthop objects (RTM_*NEXTHOP, linux/nexthop.h, kernel >= 5.3; resilient
//! groups >= 5.13): one object per gateway, and every route of ours points
//! at a resilient group (`type resilient`, [`RES_BUCKETS`] buckets), one
//! per distinct gateway set — a single gateway too, so the set can grow
//! without a new group. Groups are shared by every route with that set,
//! refcounted by the routes that use them and owned by RTPROT_STEER so a
//! restart finds them again.
//!
//! Why resilient: the kernel maps a flow's multipath hash to a bucket and
//! the bucket to a member. When the group's members change *in place*
//! (RTM_NEWNEXTHOP with NLM_F_REPLACE on the same id), a leaving member's
//! buckets go to the remaining ones (spread), and a joining member gets only
//! buckets idle for the idle timer (`flow_idle_timeout`): a running flow's
//! bucket stays where it is. (Moving a route to another group would start a
//! fresh bucket table and move flows, so the caller replaces a group in
//! place whenever every route using it changes to the same new set.) The
//! unbalanced timer is 0: never force a busy bucket over.
//!
//! This module encodes the messages and keeps the registry; it does no I/O.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::RTPROT_STEER;
use super::abi::*;
use super::batch::Batch;
use super::wire::{self, Msg, family_of};
use crate::prefix::Prefix;

/// Our ids start high so tools that count from 1 rarely meet them. An
/// object is ours only with our protocol *and* an id from here up, so
/// another owner that picked the same protocol number is left alone.
const FIRST_ID: u32 = 0x5300_0000;

/// Buckets per resilient group: enough that the flows running at once
/// leave most buckets idle, so a joining member gets its share of new flows
/// at once (with F running flows, about e^(-F/4096) of the buckets are
/// idle); 4096 buckets of 32 bytes are 128 KiB per distinct gateway set.
pub(crate) const RES_BUCKETS: u16 = 4096;

/// A resilient group's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resilience {
    /// Buckets.
    pub buckets: u16,
    /// Idle timer, in clock_t ticks ([`USER_HZ`]).
    pub idle_timer: u32,
}

impl Resilience {
    /// Our parameters for an idle timeout of `secs`.
    pub fn with_idle_secs(secs: u32) -> Resilience {
        Resilience {
            buckets: RES_BUCKETS,
            idle_timer: secs.saturating_mul(USER_HZ),
        }
    }
}

/// A nexthop object as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NexthopInfo {
    pub id: u32,
    pub protocol: u8,
    pub kind: NexthopKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NexthopKind {
    Gateway(IpAddr),
    /// A group: its member ids and, when resilient, its parameters.
    Group(Vec<u32>, Option<Resilience>),
    Other,
}

fn nhmsg(family: u8) -> [u8; NHMSG_LEN] {
    [family, RT_SCOPE_UNIVERSE, RTPROT_STEER, 0, 0, 0, 0, 0]
}

/// Creates (never replaces) a gateway object on `oif`.
pub(crate) fn push_new_gateway(batch: &mut Batch, id: u32, gw: IpAddr, oif: u32) {
    batch.push(RTM_NEWNEXTHOP, NLM_F_CREATE | NLM_F_EXCL, |e| {
        e.header(&nhmsg(family_of(gw)));
        e.attr_u32(NHA_ID, id);
        e.attr_u32(NHA_OIF, oif);
        e.attr_addr(NHA_GATEWAY, gw);
    });
}

/// Creates (never replaces) an equal-weight resilient group.
pub(crate) fn push_new_group(batch: &mut Batch, id: u32, members: &[u32], res: Resilience) {
    push_group(batch, NLM_F_CREATE | NLM_F_EXCL, id, members, res);
}

/// Replaces the members (and idle timer) of resilient group `id` in place:
/// its buckets stay, only those of leaving members and idle ones move.
pub(crate) fn push_replace_group(batch: &mut Batch, id: u32, members: &[u32], res: Resilience) {
    push_group(batch, NLM_F_CREATE | NLM_F_REPLACE, id, members, res);
}

fn push_group(batch: &mut Batch, flags: u16, id: u32, members: &[u32], res: Resilience) {
    batch.push(RTM_NEWNEXTHOP, flags, |e| {
        e.header(&nhmsg(AF_UNSPEC));
        e.attr_u32(NHA_ID, id);
        let mut grp = Vec::with_capacity(members.len() * NEXTHOP_GRP_LEN);
        for m in members {
            grp.extend_from_slice(&m.to_ne_bytes());
            grp.extend_from_slice(&[0; NEXTHOP_GRP_LEN - 4]);
        }
        e.attr(NHA_GROUP, &grp);
        e.attr_u16(NHA_GROUP_TYPE, NEXTHOP_GRP_TYPE_RES);
        let nest = e.begin_nest(NHA_RES_GROUP | NLA_F_NESTED);
        e.attr_u16(NHA_RES_GROUP_BUCKETS, res.buckets);
        e.attr_u32(NHA_RES_GROUP_IDLE_TIMER, res.idle_timer);
        e.attr_u32(NHA_RES_GROUP_UNBALANCED_TIMER, 0);
        e.end_nest(nest);
    });
}

pub(crate) fn push_delete(batch: &mut Batch, id: u32) {
    batch.push(RTM_DELNEXTHOP, 0, |e| {
        e.header(&[0; NHMSG_LEN]);
        e.attr_u32(NHA_ID, id);
    });
}

pub(crate) fn dump_header() -> [u8; NHMSG_LEN] {
    [0; NHMSG_LEN]
}

/// Decodes an RTM_NEWNEXTHOP from a dump.
pub(crate) fn parse(msg: &Msg) -> Option<NexthopInfo> {
    let p = msg.payload;
    if msg.ty != RTM_NEWNEXTHOP || p.len() < NHMSG_LEN {
        return None;
    }
    let (fam, protocol) = (p[0], p[2]);
    let mut id = None;
    let mut kind = NexthopKind::Other;
    let mut group_type = NEXTHOP_GRP_TYPE_MPATH;
    let mut res = Resilience {
        buckets: 0,
        idle_timer: 0,
    };
    for (ty, v) in wire::attrs(&p[NHMSG_LEN..]) {
        match ty {
            NHA_ID => id = wire::as_u32(v),
            NHA_GATEWAY => {
                kind = wire::as_addr(fam, v).map_or(NexthopKind::Other, NexthopKind::Gateway)
            }
            NHA_GROUP => {
                kind = NexthopKind::Group(
                    v.chunks_exact(NEXTHOP_GRP_LEN)
                        .map(|c| wire::u32_at(c, 0))
                        .collect(),
                    None,
                )
            }
            NHA_GROUP_TYPE if v.len() >= 2 => group_type = wire::u16_at(v, 0),
            NHA_RES_GROUP => {
                for (ty, v) in wire::attrs(v) {
                    match ty {
                        NHA_RES_GROUP_BUCKETS if v.len() >= 2 => res.buckets = wire::u16_at(v, 0),
                        NHA_RES_GROUP_IDLE_TIMER => res.idle_timer = wire::as_u32(v).unwrap_or(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let NexthopKind::Group(_, r) = &mut kind
        && group_type == NEXTHOP_GRP_TYPE_RES
    {
        *r = Some(res);
    }
    Some(NexthopInfo {
        id: id?,
        protocol,
        kind,
    })
}

/// Which of our nexthop objects exist, what they contain, and which of our
/// routes use them.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    gateway_ids: HashMap<IpAddr, u32>,
    gateway_of: HashMap<u32, IpAddr>,
    /// The group new routes with a set share: one of the current ones.
    groups: HashMap<Vec<IpAddr>, u32>,
    /// Every group of ours and its gateways.
    members: HashMap<u32, Vec<IpAddr>>,
    /// Groups of ours that are resilient with [`RES_BUCKETS`] buckets (the
    /// others, left by older releases, are replaced), and their parameters.
    current: HashMap<u32, Resilience>,
    taken: HashSet<u32>,
    next_id: u32,
    route_nh: HashMap<Prefix, u32>,
}

impl Registry {
    /// Rebuilds from a nexthop dump (every owner's, so ids never collide).
    pub fn load(all: &[NexthopInfo]) -> Registry {
        let mut r = Registry {
            next_id: FIRST_ID,
            ..Registry::default()
        };
        r.taken = all.iter().map(|n| n.id).collect();
        let ours = |n: &&NexthopInfo| n.protocol == RTPROT_STEER && n.id >= FIRST_ID;
        for n in all.iter().filter(ours) {
            if let NexthopKind::Gateway(gw) = n.kind {
                r.gateway_ids.insert(gw, n.id);
                r.gateway_of.insert(n.id, gw);
            }
        }
        let mut groups: Vec<&NexthopInfo> = all
            .iter()
            .filter(ours)
            .filter(|n| matches!(n.kind, NexthopKind::Group(..)))
            .collect();
        groups.sort_by_key(|n| n.id);
        for n in groups {
            let NexthopKind::Group(ids, res) = &n.kind else {
                continue;
            };
            let set: Option<Vec<IpAddr>> =
                ids.iter().map(|i| r.gateway_of.get(i).copied()).collect();
            let Some(mut set) = set else { continue };
            set.sort();
            r.members.insert(n.id, set.clone());
            if let Some(res) = res.filter(|res| res.buckets == RES_BUCKETS) {
                r.current.insert(n.id, res);
                r.groups.entry(set).or_insert(n.id);
            }
        }
        r
    }

    /// Rebuilds the objects from a fresh dump; routes that used an object
    /// which is gone (the kernel deleted them with it) are forgotten.
    pub fn resync(&mut self, all: &[NexthopInfo]) {
        let routes = std::mem::take(&mut self.route_nh);
        *self = Registry::load(all);
        self.route_nh = routes
            .into_iter()
            .filter(|(_, id)| self.members.contains_key(id) || self.gateway_of.contains_key(id))
            .collect();
    }

    /// True when no nexthop object of ours is known.
    pub fn is_empty(&self) -> bool {
        self.gateway_of.is_empty() && self.members.is_empty()
    }

    /// The current group new routes with gateway `set` share.
    pub fn group(&self, set: &[IpAddr]) -> Option<u32> {
        self.groups.get(set).copied()
    }

    pub fn gateway(&self, gw: IpAddr) -> Option<u32> {
        self.gateway_ids.get(&gw).copied()
    }

    /// The gateways behind one of our objects (a group or a gateway).
    pub fn resolve(&self, id: u32) -> Option<Vec<IpAddr>> {
        self.members
            .get(&id)
            .cloned()
            .or_else(|| self.gateway_of.get(&id).map(|gw| vec![*gw]))
    }

    /// The parameters of a current (resilient, our bucket count) group.
    pub fn resilience(&self, id: u32) -> Option<Resilience> {
        self.current.get(&id).copied()
    }

    /// The object a route of ours uses now.
    pub fn route(&self, prefix: &Prefix) -> Option<u32> {
        self.route_nh.get(prefix).copied()
    }

    /// Every route of ours by the current group it uses.
    pub fn routes_by_group(&self) -> HashMap<u32, Vec<Prefix>> {
        let mut out: HashMap<u32, Vec<Prefix>> = HashMap::new();
        for (p, id) in &self.route_nh {
            if self.current.contains_key(id) {
                out.entry(*id).or_default().push(*p);
            }
        }
        out
    }

    /// Routes of ours that do not use a current group: a gateway object
    /// directly, or a group of an older release.
    pub fn routes_on_old_objects(&self) -> Vec<Prefix> {
        let mut out: Vec<Prefix> = self
            .route_nh
            .iter()
            .filter(|(_, id)| !self.current.contains_key(id))
            .map(|(p, _)| *p)
            .collect();
        out.sort();
        out
    }

    /// Current groups whose idle timer is not `res`'s.
    pub fn groups_to_retime(&self, res: Resilience) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .current
            .iter()
            .filter(|(_, r)| **r != res)
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }

    pub fn allocate(&mut self) -> u32 {
        while self.taken.contains(&self.next_id) || self.next_id == 0 {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let id = self.next_id;
        self.taken.insert(id);
        id
    }

    pub fn add_gateway(&mut self, gw: IpAddr, id: u32) {
        self.gateway_ids.insert(gw, id);
        self.gateway_of.insert(id, gw);
    }

    /// Records a new current group.
    pub fn add_group(&mut self, set: Vec<IpAddr>, id: u32, res: Resilience) {
        self.members.insert(id, set.clone());
        self.current.insert(id, res);
        self.groups.entry(set).or_insert(id);
    }

    /// Records that current group `id` now has the gateways `set` (replaced
    /// in place) and parameters `res`.
    pub fn replace_group(&mut self, id: u32, set: Vec<IpAddr>, res: Resilience) {
        if let Some(old) = self.members.insert(id, set.clone()) {
            self.unshare(id, old);
        }
        self.current.insert(id, res);
        self.groups.entry(set).or_insert(id);
    }

    /// `id` no longer stands for `set`: another current group with that set
    /// (the lowest id), if any, is the one new routes share.
    fn unshare(&mut self, id: u32, set: Vec<IpAddr>) {
        if self.groups.get(&set) != Some(&id) {
            return;
        }
        self.groups.remove(&set);
        let other = self
            .current
            .keys()
            .filter(|g| **g != id && self.members.get(g) == Some(&set))
            .min()
            .copied();
        if let Some(other) = other {
            self.groups.insert(set, other);
        }
    }

    /// Records which object (if any) a route of ours now uses.
    pub fn set_route(&mut self, prefix: Prefix, nh: Option<u32>) {
        match nh {
            Some(id) => self.route_nh.insert(prefix, id),
            None => self.route_nh.remove(&prefix),
        };
    }

    pub fn clear_routes(&mut self) {
        self.route_nh.clear();
    }

    /// Objects no route uses, in a safe deletion order: groups first, then
    /// gateways that no remaining group contains.
    pub fn unused(&self) -> Vec<u32> {
        let used: HashSet<u32> = self.route_nh.values().copied().collect();
        let mut out: Vec<u32> = self
            .members
            .keys()
            .filter(|id| !used.contains(id))
            .copied()
            .collect();
        out.sort_unstable();
        let kept: HashSet<IpAddr> = self
            .members
            .iter()
            .filter(|(id, _)| used.contains(id))
            .flat_map(|(_, set)| set.iter().copied())
            .collect();
        let mut gws: Vec<u32> = self
            .gateway_of
            .iter()
            .filter(|(id, gw)| !used.contains(id) && !kept.contains(gw))
            .map(|(id, _)| *id)
            .collect();
        gws.sort_unstable();
        out.extend(gws);
        out
    }

    /// Forgets a deleted object.
    pub fn forget(&mut self, id: u32) {
        if let Some(set) = self.members.remove(&id) {
            self.unshare(id, set);
        }
        self.current.remove(&id);
        if let Some(gw) = self.gateway_of.remove(&id) {
            self.gateway_ids.remove(&gw);
        }
        self.taken.remove(&id);
    }

    /// Every object of ours, groups first.
    pub fn all(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self.members.keys().copied().collect();
        out.extend(self.gateway_of.keys().copied());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const G1: u32 = FIRST_ID + 10;
    const G2: u32 = FIRST_ID + 11;
    const GROUP: u32 = FIRST_ID + 12;
    const OLD_GROUP: u32 = FIRST_ID + 13;
    const RES: Resilience = Resilience {
        buckets: RES_BUCKETS,
        idle_timer: 300 * USER_HZ,
    };

    fn loaded() -> Registry {
        let mut r = Registry::load(&[
            NexthopInfo {
                id: FIRST_ID,
                protocol: 4,
                kind: NexthopKind::Other,
            },
            NexthopInfo {
                id: G1,
                protocol: RTPROT_STEER,
                kind: NexthopKind::Gateway(ip("192.0.2.1")),
            },
            NexthopInfo {
                id: G2,
                protocol: RTPROT_STEER,
                kind: NexthopKind::Gateway(ip("192.0.2.2")),
            },
            NexthopInfo {
                id: GROUP,
                protocol: RTPROT_STEER,
                kind: NexthopKind::Group(vec![G2, G1], Some(RES)),
            },
            NexthopInfo {
                id: OLD_GROUP,
                protocol: RTPROT_STEER,
                kind: NexthopKind::Group(vec![G1, G2], None),
            },
            NexthopInfo {
                id: 7,
                protocol: RTPROT_STEER,
                kind: NexthopKind::Gateway(ip("192.0.2.9")),
            },
        ]);
        r.set_route("10.0.0.0/8".parse().unwrap(), Some(GROUP));
        r
    }

    #[test]
    fn load_keys_groups_by_their_sorted_gateway_set() {
        let r = loaded();
        assert_eq!(r.group(&[ip("192.0.2.1"), ip("192.0.2.2")]), Some(GROUP));
        assert_eq!(
            r.resolve(GROUP),
            Some(vec![ip("192.0.2.1"), ip("192.0.2.2")])
        );
        assert_eq!(r.resolve(G1), Some(vec![ip("192.0.2.1")]));
    }

    #[test]
    fn groups_of_older_releases_are_known_but_never_shared_and_their_routes_listed() {
        let mut r = loaded();
        assert_eq!(r.resilience(GROUP), Some(RES));
        assert_eq!(r.resilience(OLD_GROUP), None);
        assert_eq!(
            r.resolve(OLD_GROUP),
            Some(vec![ip("192.0.2.1"), ip("192.0.2.2")])
        );
        r.set_route("10.2.0.0/16".parse().unwrap(), Some(OLD_GROUP));
        r.set_route("10.3.0.0/16".parse().unwrap(), Some(G1));
        assert_eq!(
            r.routes_on_old_objects(),
            vec![
                "10.2.0.0/16".parse::<Prefix>().unwrap(),
                "10.3.0.0/16".parse().unwrap()
            ]
        );
        assert_eq!(
            r.routes_by_group(),
            HashMap::from([(GROUP, vec!["10.0.0.0/8".parse().unwrap()])])
        );
    }

    #[test]
    fn a_group_replaced_in_place_takes_its_new_set_and_hands_the_old_one_on() {
        let mut r = loaded();
        let twin = FIRST_ID + 30;
        let pair = vec![ip("192.0.2.1"), ip("192.0.2.2")];
        r.add_group(pair.clone(), twin, RES);
        assert_eq!(r.group(&pair), Some(GROUP), "the first one stays shared");
        let three = vec![ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")];
        r.replace_group(GROUP, three.clone(), RES);
        assert_eq!(r.resolve(GROUP), Some(three.clone()));
        assert_eq!(r.group(&three), Some(GROUP));
        assert_eq!(
            r.group(&pair),
            Some(twin),
            "the twin now stands for the pair"
        );
        r.forget(twin);
        assert_eq!(r.group(&pair), None);
    }

    #[test]
    fn groups_with_another_idle_timer_are_listed_for_retiming() {
        let r = loaded();
        assert!(r.groups_to_retime(RES).is_empty());
        assert_eq!(
            r.groups_to_retime(Resilience::with_idle_secs(60)),
            vec![GROUP]
        );
    }

    #[test]
    fn objects_of_our_protocol_below_our_id_range_are_not_ours() {
        let r = loaded();
        assert_eq!(r.gateway(ip("192.0.2.9")), None);
        assert_eq!(r.resolve(7), None);
        assert!(!r.all().contains(&7));
    }

    #[test]
    fn allocate_skips_ids_owned_by_anyone() {
        let mut r = loaded();
        assert_eq!(r.allocate(), FIRST_ID + 1);
        assert_eq!(r.allocate(), FIRST_ID + 2);
    }

    #[test]
    fn unused_lists_groups_before_their_gateways_and_keeps_used_ones() {
        let mut r = loaded();
        let g3 = FIRST_ID + 20;
        r.add_gateway(ip("192.0.2.3"), g3);
        assert_eq!(r.unused(), vec![OLD_GROUP, g3]);
        r.set_route("10.0.0.0/8".parse().unwrap(), None);
        assert_eq!(r.unused(), vec![GROUP, OLD_GROUP, G1, G2, g3]);
    }

    #[test]
    fn resync_forgets_routes_whose_object_vanished() {
        let mut r = loaded();
        r.set_route("10.9.0.0/16".parse().unwrap(), Some(G1));
        r.resync(&[NexthopInfo {
            id: G1,
            protocol: RTPROT_STEER,
            kind: NexthopKind::Gateway(ip("192.0.2.1")),
        }]);
        assert_eq!(r.route_nh.len(), 1);
        assert_eq!(r.route_nh.get(&"10.9.0.0/16".parse().unwrap()), Some(&G1));
        assert_eq!(r.group(&[ip("192.0.2.1"), ip("192.0.2.2")]), None);
    }

    #[test]
    fn group_messages_decode_to_their_members_and_resilience() {
        for replace in [false, true] {
            let mut b = Batch::default();
            if replace {
                push_replace_group(&mut b, 7, &[3, 4], RES);
            } else {
                push_new_group(&mut b, 7, &[3, 4], RES);
            }
            let bytes = b.bytes().to_vec();
            let msg = wire::messages(&bytes).next().unwrap().unwrap();
            assert_eq!(
                parse(&msg),
                Some(NexthopInfo {
                    id: 7,
                    protocol: RTPROT_STEER,
                    kind: NexthopKind::Group(vec![3, 4], Some(RES))
                })
            );
        }
    }
}
