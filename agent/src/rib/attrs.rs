//! Attribute sets as the route server's table keeps them: interned,
//! compact and counted, as BIRD's attribute cache (`rta_lookup`) keeps
//! them. Every path that carries an equal set shares one allocation; the
//! set lives as long as a path holds it and leaves the cache with its last
//! path.
//!
//! An [`AttrSet`] is one allocation: the values the decision process
//! (RFC 4271 §9.1.2.2, RFC 4456 §9) and export policy read on every
//! comparison, decoded once, and the whole set serialized in a private
//! compact form (a presence bitmap, then each attribute present in a fixed
//! order) that is its identity for interning and from which the full
//! [`PathAttributes`] are rebuilt for encoding and display. A set of the
//! benchmark's tables takes about 110 bytes here against about 340 as a
//! `PathAttributes` with its vectors.

use crate::bgp::attribute::{
    Aggregator, AsPath, AsSegment, LargeCommunity, Origin, PathAttributes, RawAttribute, community,
};
use rustc_hash::FxHashSet;
use smallvec::SmallVec;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Serialized bytes kept inside the set's own allocation.
const INLINE: usize = 56;

/// Presence bits of the serialized form, in serialization order.
mod has {
    pub const ORIGIN: u16 = 1 << 0;
    pub const AS_PATH: u16 = 1 << 1;
    pub const NEXT_HOP: u16 = 1 << 2;
    pub const LINK_LOCAL: u16 = 1 << 3;
    pub const MED: u16 = 1 << 4;
    pub const LOCAL_PREF: u16 = 1 << 5;
    pub const ATOMIC_AGGREGATE: u16 = 1 << 6;
    pub const AGGREGATOR: u16 = 1 << 7;
    pub const COMMUNITIES: u16 = 1 << 8;
    pub const EXT_COMMUNITIES: u16 = 1 << 9;
    pub const LARGE_COMMUNITIES: u16 = 1 << 10;
    pub const ORIGINATOR_ID: u16 = 1 << 11;
    pub const CLUSTER_LIST: u16 = 1 << 12;
    pub const UNKNOWN: u16 = 1 << 13;
}

/// Flags of the decoded header.
mod flag {
    pub const NEIGHBOUR_AS: u8 = 1 << 0;
    pub const NO_EXPORT: u8 = 1 << 1;
    pub const NO_ADVERTISE: u8 = 1 << 2;
}

/// One interned attribute set.
#[derive(Debug)]
pub struct AttrSet {
    local_pref: u32,
    med: u32,
    neighbour_as: u32,
    originator_id: u32,
    path_len: u32,
    cluster_len: u16,
    present: u16,
    origin: u8,
    flags: u8,
    body: SmallVec<[u8; INLINE]>,
}

impl AttrSet {
    /// A set of its own, outside any cache (tests, originated routes).
    pub fn new(a: &PathAttributes) -> Arc<AttrSet> {
        let mut body = Vec::new();
        serialize(a, &mut body);
        Arc::new(AttrSet::with_body(a, &body))
    }

    fn with_body(a: &PathAttributes, body: &[u8]) -> AttrSet {
        let first = a.as_path.as_ref().and_then(AsPath::first_asn);
        let flags = first.map_or(0, |_| flag::NEIGHBOUR_AS)
            | if a.has_community(community::NO_EXPORT) {
                flag::NO_EXPORT
            } else {
                0
            }
            | if a.has_community(community::NO_ADVERTISE) {
                flag::NO_ADVERTISE
            } else {
                0
            };
        AttrSet {
            local_pref: a.local_pref.unwrap_or(0),
            med: a.med.unwrap_or(0),
            neighbour_as: first.unwrap_or(0),
            originator_id: a.originator_id.map_or(0, u32::from),
            path_len: u32::try_from(a.as_path_len()).unwrap_or(u32::MAX),
            cluster_len: u16::try_from(a.cluster_list.len()).unwrap_or(u16::MAX),
            present: u16::from_le_bytes([body[0], body[1]]),
            origin: match a.origin {
                Some(Origin::Igp) => 0,
                Some(Origin::Egp) => 1,
                Some(Origin::Incomplete) => 2,
                None => 3,
            },
            flags,
            body: SmallVec::from_slice(body),
        }
    }

    /// LOCAL_PREF.
    pub fn local_pref(&self) -> Option<u32> {
        (self.present & has::LOCAL_PREF != 0).then_some(self.local_pref)
    }

    /// MULTI_EXIT_DISC.
    pub fn med(&self) -> Option<u32> {
        (self.present & has::MED != 0).then_some(self.med)
    }

    /// ORIGIN.
    pub fn origin(&self) -> Option<Origin> {
        match self.origin {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }

    /// The AS-path length the decision process compares (0 when absent).
    pub fn as_path_len(&self) -> usize {
        self.path_len as usize
    }

    /// The first AS of a leading AS_SEQUENCE: the neighbour AS for MED.
    pub fn neighbour_as(&self) -> Option<u32> {
        (self.flags & flag::NEIGHBOUR_AS != 0).then_some(self.neighbour_as)
    }

    /// ORIGINATOR_ID.
    pub fn originator_id(&self) -> Option<Ipv4Addr> {
        (self.present & has::ORIGINATOR_ID != 0).then(|| Ipv4Addr::from(self.originator_id))
    }

    /// Entries in CLUSTER_LIST.
    pub fn cluster_list_len(&self) -> usize {
        usize::from(self.cluster_len)
    }

    /// True when COMMUNITIES holds `c`.
    pub fn has_community(&self, c: u32) -> bool {
        match c {
            community::NO_EXPORT => self.flags & flag::NO_EXPORT != 0,
            community::NO_ADVERTISE => self.flags & flag::NO_ADVERTISE != 0,
            c => self.attributes().has_community(c),
        }
    }

    /// True when `asn` appears anywhere in AS_PATH.
    pub fn as_path_contains(&self, asn: u32) -> bool {
        if self.present & has::AS_PATH == 0 {
            return false;
        }
        let mut r = Reader::new(&self.body);
        if self.present & has::ORIGIN != 0 {
            r.u8();
        }
        (0..r.u16()).any(|_| {
            r.u8();
            let n = r.u16();
            (0..n).fold(false, |found, _| r.u32() == asn || found)
        })
    }

    /// The whole set, rebuilt.
    pub fn attributes(&self) -> PathAttributes {
        deserialize(&self.body)
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).unwrap_or(u32::MAX));
}

fn segment_kind(s: &AsSegment) -> (u8, &[u32]) {
    match s {
        AsSegment::Set(v) => (1, v),
        AsSegment::Sequence(v) => (2, v),
        AsSegment::ConfedSequence(v) => (3, v),
        AsSegment::ConfedSet(v) => (4, v),
    }
}

/// The compact form of `a`: a presence bitmap, then each attribute present
/// in bitmap order. Equal sets give equal bytes.
fn serialize(a: &PathAttributes, out: &mut Vec<u8>) {
    let mut present = 0;
    let mut bit = |b: u16, on: bool| {
        if on {
            present |= b;
        }
    };
    bit(has::ORIGIN, a.origin.is_some());
    bit(has::AS_PATH, a.as_path.is_some());
    bit(has::NEXT_HOP, a.next_hop.is_some());
    bit(has::LINK_LOCAL, a.link_local_next_hop.is_some());
    bit(has::MED, a.med.is_some());
    bit(has::LOCAL_PREF, a.local_pref.is_some());
    bit(has::ATOMIC_AGGREGATE, a.atomic_aggregate);
    bit(has::AGGREGATOR, a.aggregator.is_some());
    bit(has::COMMUNITIES, !a.communities.is_empty());
    bit(has::EXT_COMMUNITIES, !a.ext_communities.is_empty());
    bit(has::LARGE_COMMUNITIES, !a.large_communities.is_empty());
    bit(has::ORIGINATOR_ID, a.originator_id.is_some());
    bit(has::CLUSTER_LIST, !a.cluster_list.is_empty());
    bit(has::UNKNOWN, !a.unknown.is_empty());
    put_u16(out, present);
    if let Some(o) = a.origin {
        out.push(o as u8);
    }
    if let Some(p) = &a.as_path {
        put_u16(out, u16::try_from(p.segments.len()).unwrap_or(u16::MAX));
        for s in p.segments.iter().take(usize::from(u16::MAX)) {
            let (kind, asns) = segment_kind(s);
            out.push(kind);
            put_u16(out, u16::try_from(asns.len()).unwrap_or(u16::MAX));
            for asn in asns.iter().take(usize::from(u16::MAX)) {
                put_u32(out, *asn);
            }
        }
    }
    match a.next_hop {
        Some(IpAddr::V4(v4)) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
        None => {}
    }
    if let Some(ll) = a.link_local_next_hop {
        out.extend_from_slice(&ll.octets());
    }
    if let Some(m) = a.med {
        put_u32(out, m);
    }
    if let Some(l) = a.local_pref {
        put_u32(out, l);
    }
    if let Some(g) = a.aggregator {
        put_u32(out, g.asn);
        out.extend_from_slice(&g.address.octets());
    }
    if !a.communities.is_empty() {
        put_len(out, a.communities.len());
        for c in &a.communities {
            put_u32(out, *c);
        }
    }
    if !a.ext_communities.is_empty() {
        put_len(out, a.ext_communities.len());
        for e in &a.ext_communities {
            out.extend_from_slice(e);
        }
    }
    if !a.large_communities.is_empty() {
        put_len(out, a.large_communities.len());
        for l in &a.large_communities {
            put_u32(out, l.global);
            put_u32(out, l.local1);
            put_u32(out, l.local2);
        }
    }
    if let Some(o) = a.originator_id {
        out.extend_from_slice(&o.octets());
    }
    if !a.cluster_list.is_empty() {
        put_len(out, a.cluster_list.len());
        for c in &a.cluster_list {
            out.extend_from_slice(&c.octets());
        }
    }
    if !a.unknown.is_empty() {
        put_len(out, a.unknown.len());
        for u in &a.unknown {
            out.push(u.flags);
            out.push(u.type_code);
            put_len(out, u.value.len());
            out.extend_from_slice(&u.value);
        }
    }
}

/// Reads what [`serialize`] wrote; the bytes are always our own.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b: &b[2..] }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.b.split_first_chunk::<N>().expect("own serialization");
        self.b = rest;
        *head
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn len(&mut self) -> usize {
        self.u32() as usize
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        head
    }
}

fn deserialize(body: &[u8]) -> PathAttributes {
    let present = u16::from_le_bytes([body[0], body[1]]);
    let on = |b: u16| present & b != 0;
    let mut r = Reader::new(body);
    let mut a = PathAttributes::default();
    if on(has::ORIGIN) {
        a.origin = Some(match r.u8() {
            0 => Origin::Igp,
            1 => Origin::Egp,
            _ => Origin::Incomplete,
        });
    }
    if on(has::AS_PATH) {
        let segments = (0..r.u16())
            .map(|_| {
                let kind = r.u8();
                let asns: Vec<u32> = (0..r.u16()).map(|_| r.u32()).collect();
                match kind {
                    1 => AsSegment::Set(asns),
                    2 => AsSegment::Sequence(asns),
                    3 => AsSegment::ConfedSequence(asns),
                    _ => AsSegment::ConfedSet(asns),
                }
            })
            .collect();
        a.as_path = Some(AsPath { segments });
    }
    if on(has::NEXT_HOP) {
        a.next_hop = Some(match r.u8() {
            4 => IpAddr::V4(Ipv4Addr::from(r.take::<4>())),
            _ => IpAddr::V6(Ipv6Addr::from(r.take::<16>())),
        });
    }
    if on(has::LINK_LOCAL) {
        a.link_local_next_hop = Some(Ipv6Addr::from(r.take::<16>()));
    }
    if on(has::MED) {
        a.med = Some(r.u32());
    }
    if on(has::LOCAL_PREF) {
        a.local_pref = Some(r.u32());
    }
    a.atomic_aggregate = on(has::ATOMIC_AGGREGATE);
    if on(has::AGGREGATOR) {
        a.aggregator = Some(Aggregator {
            asn: r.u32(),
            address: Ipv4Addr::from(r.take::<4>()),
        });
    }
    if on(has::COMMUNITIES) {
        a.communities = (0..r.len()).map(|_| r.u32()).collect();
    }
    if on(has::EXT_COMMUNITIES) {
        a.ext_communities = (0..r.len()).map(|_| r.take::<8>()).collect();
    }
    if on(has::LARGE_COMMUNITIES) {
        a.large_communities = (0..r.len())
            .map(|_| LargeCommunity {
                global: r.u32(),
                local1: r.u32(),
                local2: r.u32(),
            })
            .collect();
    }
    if on(has::ORIGINATOR_ID) {
        a.originator_id = Some(Ipv4Addr::from(r.take::<4>()));
    }
    if on(has::CLUSTER_LIST) {
        a.cluster_list = (0..r.len())
            .map(|_| Ipv4Addr::from(r.take::<4>()))
            .collect();
    }
    if on(has::UNKNOWN) {
        a.unknown = (0..r.len())
            .map(|_| {
                let flags = r.u8();
                let type_code = r.u8();
                let n = r.len();
                RawAttribute {
                    flags,
                    type_code,
                    value: r.bytes(n).to_vec(),
                }
            })
            .collect();
    }
    a
}

/// A cache entry, looked up by the serialized form.
#[derive(Debug)]
struct Interned(Arc<AttrSet>);

impl Borrow<[u8]> for Interned {
    fn borrow(&self) -> &[u8] {
        &self.0.body
    }
}

impl Hash for Interned {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.body[..].hash(h);
    }
}

impl PartialEq for Interned {
    fn eq(&self, other: &Interned) -> bool {
        self.0.body == other.0.body
    }
}

impl Eq for Interned {}

/// The attribute cache: every distinct set the table holds, once.
#[derive(Debug, Default)]
pub struct AttrCache {
    sets: FxHashSet<Interned>,
    buf: Vec<u8>,
}

impl AttrCache {
    /// The shared set equal to `a`, made when there is none yet.
    pub fn intern(&mut self, a: &PathAttributes) -> Arc<AttrSet> {
        self.buf.clear();
        serialize(a, &mut self.buf);
        if let Some(e) = self.sets.get(&self.buf[..]) {
            return e.0.clone();
        }
        let set = Arc::new(AttrSet::with_body(a, &self.buf));
        self.sets.insert(Interned(set.clone()));
        set
    }

    /// A path lets go of `set`: when no other path holds it, it leaves
    /// the cache and is freed.
    pub fn release(&mut self, set: Arc<AttrSet>) {
        if Arc::strong_count(&set) == 2
            && self
                .sets
                .get(&set.body[..])
                .is_some_and(|e| Arc::ptr_eq(&e.0, &set))
        {
            self.sets.remove(&set.body[..]);
        }
    }

    /// Distinct sets held.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// True when no set is held.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Egp),
            as_path: Some(AsPath {
                segments: vec![
                    AsSegment::Sequence(vec![65010, 4_200_000_000]),
                    AsSegment::Set(vec![1, 2]),
                    AsSegment::ConfedSequence(vec![3]),
                    AsSegment::ConfedSet(vec![]),
                ],
            }),
            next_hop: Some("2001:db8::1".parse().unwrap()),
            link_local_next_hop: Some("fe80::1".parse().unwrap()),
            med: Some(0),
            local_pref: Some(200),
            atomic_aggregate: true,
            aggregator: Some(Aggregator {
                asn: 65010,
                address: Ipv4Addr::new(10, 0, 0, 1),
            }),
            communities: vec![community::NO_EXPORT, 0x0001_0002],
            ext_communities: vec![[0, 2, 0, 1, 0, 0, 0, 7]],
            large_communities: vec![LargeCommunity {
                global: 65515,
                local1: 1,
                local2: 1,
            }],
            originator_id: Some(Ipv4Addr::new(10, 1, 0, 31)),
            cluster_list: vec![Ipv4Addr::new(10, 1, 0, 4), Ipv4Addr::new(10, 1, 0, 5)],
            unknown: vec![RawAttribute {
                flags: 0xe0,
                type_code: 99,
                value: vec![1; 300],
            }],
        }
    }

    #[test]
    fn every_attribute_survives_the_compact_form() {
        for a in [full(), PathAttributes::default()] {
            assert_eq!(AttrSet::new(&a).attributes(), a);
        }
        let v4 = PathAttributes {
            next_hop: Some("10.1.0.10".parse().unwrap()),
            ..PathAttributes::default()
        };
        assert_eq!(AttrSet::new(&v4).attributes(), v4);
    }

    #[test]
    fn decision_values_are_read_without_rebuilding_the_set() {
        let s = AttrSet::new(&full());
        assert_eq!(s.local_pref(), Some(200));
        assert_eq!(s.med(), Some(0));
        assert_eq!(s.origin(), Some(Origin::Egp));
        assert_eq!(s.as_path_len(), 3);
        assert_eq!(s.neighbour_as(), Some(65010));
        assert_eq!(s.originator_id(), Some(Ipv4Addr::new(10, 1, 0, 31)));
        assert_eq!(s.cluster_list_len(), 2);
        assert!(s.has_community(community::NO_EXPORT));
        assert!(!s.has_community(community::NO_ADVERTISE));
        assert!(s.has_community(0x0001_0002));
        assert!(s.as_path_contains(4_200_000_000) && s.as_path_contains(3));
        assert!(!s.as_path_contains(65515));
        let none = AttrSet::new(&PathAttributes::default());
        assert_eq!(
            (
                none.local_pref(),
                none.med(),
                none.origin(),
                none.neighbour_as()
            ),
            (None, None, None, None)
        );
        assert!(!none.as_path_contains(0));
    }

    #[test]
    fn equal_sets_share_one_allocation_until_their_last_path_lets_go() {
        let mut cache = AttrCache::default();
        let a = cache.intern(&full());
        let b = cache.intern(&full());
        assert!(Arc::ptr_eq(&a, &b));
        let mut other = full();
        other.med = Some(1);
        let c = cache.intern(&other);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.len(), 2);
        cache.release(a);
        assert_eq!(cache.len(), 2, "b still holds it");
        cache.release(b);
        assert_eq!(cache.len(), 1);
        let outside = AttrSet::new(&other);
        let keep = outside.clone();
        cache.release(outside);
        assert_eq!(
            cache.len(),
            1,
            "a set from outside the cache never removes the cached one"
        );
        drop(keep);
        cache.release(c);
        assert!(cache.is_empty());
    }
}
