//! Nexthop objects (RTM_*NEXTHOP, linux/nexthop.h, kernel >= 5.3): one
//! object per gateway and one multipath group per distinct gateway set,
//! shared by every route with that set, refcounted by the routes that use
//! it and owned by RTPROT_STEER so a restart finds them again. This module
//! encodes the messages and keeps the registry; it does no I/O.

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
    Group(Vec<u32>),
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

/// Creates (never replaces) an equal-weight multipath group.
pub(crate) fn push_new_group(batch: &mut Batch, id: u32, members: &[u32]) {
    batch.push(RTM_NEWNEXTHOP, NLM_F_CREATE | NLM_F_EXCL, |e| {
        e.header(&nhmsg(AF_UNSPEC));
        e.attr_u32(NHA_ID, id);
        let mut grp = Vec::with_capacity(members.len() * NEXTHOP_GRP_LEN);
        for m in members {
            grp.extend_from_slice(&m.to_ne_bytes());
            grp.extend_from_slice(&[0; NEXTHOP_GRP_LEN - 4]);
        }
        e.attr(NHA_GROUP, &grp);
        e.attr_u16(NHA_GROUP_TYPE, NEXTHOP_GRP_TYPE_MPATH);
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
                )
            }
            _ => {}
        }
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
    groups: HashMap<Vec<IpAddr>, u32>,
    members: HashMap<u32, Vec<IpAddr>>,
    gateway_of: HashMap<u32, IpAddr>,
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
        for n in all.iter().filter(ours) {
            if let NexthopKind::Group(ids) = &n.kind {
                let set: Option<Vec<IpAddr>> =
                    ids.iter().map(|i| r.gateway_of.get(i).copied()).collect();
                if let Some(mut set) = set {
                    set.sort();
                    r.groups.insert(set.clone(), n.id);
                    r.members.insert(n.id, set);
                }
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

    pub fn add_group(&mut self, set: Vec<IpAddr>, id: u32) {
        self.members.insert(id, set.clone());
        self.groups.insert(set, id);
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
            self.groups.remove(&set);
        }
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
                kind: NexthopKind::Group(vec![G2, G1]),
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
        assert_eq!(r.unused(), vec![g3]);
        r.set_route("10.0.0.0/8".parse().unwrap(), None);
        assert_eq!(r.unused(), vec![GROUP, G1, G2, g3]);
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
    fn group_message_decodes_to_its_members() {
        let mut b = Batch::default();
        push_new_group(&mut b, 7, &[3, 4]);
        let bytes = b.bytes().to_vec();
        let msg = wire::messages(&bytes).next().unwrap().unwrap();
        assert_eq!(
            parse(&msg),
            Some(NexthopInfo {
                id: 7,
                protocol: RTPROT_STEER,
                kind: NexthopKind::Group(vec![3, 4])
            })
        );
    }
}
