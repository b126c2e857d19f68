//! Path attributes (RFC 4271 §4.3, §5) and their error handling (RFC 7606).
//!
//! Supported: ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF,
//! ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES (RFC 1997), ORIGINATOR_ID and
//! CLUSTER_LIST (RFC 4456), EXTENDED COMMUNITIES (RFC 4360), LARGE
//! COMMUNITIES (RFC 8092), AS4_PATH/AS4_AGGREGATOR (RFC 6793, merged into
//! AS_PATH/AGGREGATOR on decode and produced on encode for 2-octet peers).
//! MP_REACH_NLRI/MP_UNREACH_NLRI (RFC 4760) are carried by
//! [`super::message::Update`], not here. Unknown optional transitive
//! attributes are kept (and re-sent with the Partial bit); unknown optional
//! non-transitive ones are dropped.
//!
//! Each attribute Steer knows is one row of the table in `table.rs`, as in
//! BIRD's `bgp_attr_table[]`: its type code, the flags it must carry, what
//! a conflict in them costs, its decoder and its encoder. Each decoder
//! classifies its own faults the way RFC 7606 asks and names the section
//! in the [`AttributeIssue`] reason, as BIRD's `attrs.c` does:
//!
//! - treat-as-withdraw: malformed ORIGIN (§7.1), AS_PATH (§7.2), NEXT_HOP
//!   (§7.3), MULTI_EXIT_DISC (§7.4), LOCAL_PREF (§7.5), COMMUNITIES (§7.8),
//!   ORIGINATOR_ID (§7.9), CLUSTER_LIST (§7.10), EXTENDED COMMUNITIES
//!   (§7.14), LARGE_COMMUNITY (RFC 8092 §6); conflicting Optional or
//!   Transitive flags on a known attribute (§3 c); an attribute running past
//!   the path attributes (§4);
//! - attribute discard: ATOMIC_AGGREGATE (§7.6) and AGGREGATOR (§7.7) of a
//!   wrong length, malformed AS4_PATH/AS4_AGGREGATOR (RFC 6793 §6), AS4_*
//!   on a 4-octet session (RFC 6793 §4.1) or ignored by §4.2.3, LOCAL_PREF
//!   (§7.5), ORIGINATOR_ID and CLUSTER_LIST (RFC 4456 §8) from an external
//!   peer, and every repeat of an attribute but the first (§3 g);
//! - session reset: MP_REACH_NLRI/MP_UNREACH_NLRI twice (§3 g, 3/1), an
//!   unrecognized well-known attribute (RFC 4271 §6.3, 3/2), an MP attribute
//!   running past the path attributes (§5.3, 3/9).
//!
//! What is the same for every attribute (the header, repeats, flags,
//! unknown attributes, type-code order on encode) is in `codec.rs`; the
//! AS_PATH wire forms and the AS4 transition of RFC 6793 in `as_path.rs`.
//! MP_REACH_NLRI/MP_UNREACH_NLRI are only located here; the message codec
//! parses their NLRI. Encoding writes attributes in type-code order, with
//! the Extended Length bit only for values over 255 octets.

mod as_path;
mod codec;
mod table;

pub(crate) use codec::{
    EncodeOptions, WireAttribute, decode_attributes, encode_attributes, put_attribute,
};
pub(crate) use table::expected_flags;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    /// Optional.
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial.
    pub const PARTIAL: u8 = 0x20;
    /// Extended Length.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Well-known communities (RFC 1997).
pub mod community {
    /// NO_EXPORT.
    pub const NO_EXPORT: u32 = 0xFFFF_FF01;
    /// NO_ADVERTISE.
    pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
    /// NO_EXPORT_SUBCONFED.
    pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;
}

/// ORIGIN values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Origin {
    /// 0: IGP.
    Igp,
    /// 1: EGP.
    Egp,
    /// 2: INCOMPLETE.
    Incomplete,
}

/// One AS_PATH segment (RFC 4271 §4.3, RFC 5065 confederation types).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AsSegment {
    /// AS_SET (type 1).
    Set(Vec<u32>),
    /// AS_SEQUENCE (type 2).
    Sequence(Vec<u32>),
    /// AS_CONFED_SEQUENCE (type 3).
    ConfedSequence(Vec<u32>),
    /// AS_CONFED_SET (type 4).
    ConfedSet(Vec<u32>),
}

/// An AS_PATH, always held with 4-octet AS numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AsPath {
    /// Segments in wire order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> AsPath {
        let v: Vec<u32> = asns.into_iter().collect();
        if v.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment::Sequence(v)],
        }
    }

    /// The length the decision process compares (RFC 4271 §9.1.2.2 a):
    /// each AS in a sequence counts 1, a set counts 1, confederation
    /// segments count 0 (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.len(),
                AsSegment::Set(_) => 1,
                AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => 0,
            })
            .sum()
    }

    /// True when `asn` appears anywhere in the path.
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| match s {
            AsSegment::Set(v)
            | AsSegment::Sequence(v)
            | AsSegment::ConfedSequence(v)
            | AsSegment::ConfedSet(v) => v.contains(&asn),
        })
    }

    /// The first AS of the path when it starts with an AS_SEQUENCE: the
    /// neighbour AS for the MED comparison (RFC 4271 §9.1.2.2 c) and the
    /// first-AS check on eBGP sessions.
    pub fn first_asn(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment::Sequence(v)) => v.first().copied(),
            _ => None,
        }
    }

    /// The last AS of the path's final AS_SEQUENCE: the originating AS.
    pub fn origin_asn(&self) -> Option<u32> {
        match self.segments.last() {
            Some(AsSegment::Sequence(v)) => v.last().copied(),
            _ => None,
        }
    }

    /// This path with `asn` prepended (RFC 4271 §5.1.2 b), adding a new
    /// leading AS_SEQUENCE when the first segment is not one or is full.
    pub fn prepend(&self, asn: u32) -> AsPath {
        let mut segments = self.segments.clone();
        match segments.first_mut() {
            Some(AsSegment::Sequence(v)) if v.len() < 255 => v.insert(0, asn),
            _ => segments.insert(0, AsSegment::Sequence(vec![asn])),
        }
        AsPath { segments }
    }
}

impl std::fmt::Display for AsPath {
    /// BIRD/FRR style: `65010 65020 {65030 65040}`; `(…)` for confederation.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.segments {
            let (open, close, v) = match s {
                AsSegment::Sequence(v) => ("", "", v),
                AsSegment::Set(v) => ("{", "}", v),
                AsSegment::ConfedSequence(v) => ("(", ")", v),
                AsSegment::ConfedSet(v) => ("[", "]", v),
            };
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(open)?;
            for (i, a) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// AGGREGATOR (with a 4-octet AS, whatever the session's AS size).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Aggregator {
    /// The aggregating AS.
    pub asn: u32,
    /// The aggregating speaker.
    pub address: Ipv4Addr,
}

/// A LARGE_COMMUNITY value (RFC 8092).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct LargeCommunity {
    /// Global Administrator (an ASN).
    pub global: u32,
    /// Local Data Part 1.
    pub local1: u32,
    /// Local Data Part 2.
    pub local2: u32,
}

/// The large community that marks the VNet address space (RFC 8092):
/// `ASN:1:1`. The route server sends the VNet prefixes with it; agents
/// treat prefixes carrying it as the VNet's own space.
pub fn vnet_community(asn: u32) -> LargeCommunity {
    LargeCommunity {
        global: asn,
        local1: 1,
        local2: 1,
    }
}

/// One attribute problem that RFC 7606 lets the session survive.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AttributeIssue {
    /// The attribute's type code.
    pub type_code: u8,
    /// What was wrong and the RFC section that decides the outcome.
    pub reason: String,
}

/// An attribute kept verbatim: unknown optional transitive ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RawAttribute {
    /// Optional, Transitive and Partial bits as received (Extended Length
    /// and the unused low bits are dropped; encode recomputes the former
    /// and always sets Partial, RFC 4271 §5).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The path attributes of a route. On the wire NEXT_HOP is IPv4 only; in a
/// RIB `next_hop` holds the route's next hop whatever its family (the
/// session copies an MP_REACH next hop here), so one type serves both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH (AS4_PATH already merged in).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP, or the MP_REACH next hop in a RIB.
    pub next_hop: Option<IpAddr>,
    /// A link-local IPv6 next hop from a 32-octet MP_REACH next hop.
    pub link_local_next_hop: Option<Ipv6Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (AS4_AGGREGATOR merged in).
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES, in received order.
    pub communities: Vec<u32>,
    /// EXTENDED COMMUNITIES, each 8 octets.
    pub ext_communities: Vec<[u8; 8]>,
    /// LARGE_COMMUNITY values.
    pub large_communities: Vec<LargeCommunity>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: Vec<Ipv4Addr>,
    /// Unknown optional transitive attributes, verbatim, in type-code
    /// order (as decoded and as encoded, so equal sets compare equal).
    pub unknown: Vec<RawAttribute>,
}

impl PathAttributes {
    /// True when COMMUNITIES holds `c`.
    pub fn has_community(&self, c: u32) -> bool {
        self.communities.contains(&c)
    }

    /// The AS-path length for the decision process (0 when absent).
    pub fn as_path_len(&self) -> usize {
        self.as_path.as_ref().map_or(0, AsPath::path_len)
    }
}
