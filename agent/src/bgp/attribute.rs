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
//! Decoding classifies every fault the way RFC 7606 asks and names the
//! section in the [`AttributeIssue`] reason, as BIRD's `attrs.c` does:
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
//! MP_REACH_NLRI/MP_UNREACH_NLRI are only located here; the message codec
//! parses their NLRI. Encoding writes attributes in type-code order, with
//! the Extended Length bit only for values over 255 octets.

use super::error::{DecodeError, EncodeError};
use super::iana::{AS_TRANS, UpdateSubcode};
use super::message::{AttributeIssue, CodecConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Attribute type codes (IANA).
pub mod code {
    /// ORIGIN.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC.
    pub const MED: u8 = 4;
    /// LOCAL_PREF.
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES.
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID.
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST.
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES.
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH.
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR.
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY.
    pub const LARGE_COMMUNITIES: u8 = 32;
}

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

/// The flags a known attribute must carry (Optional and Transitive bits,
/// RFC 4271 §5 and each attribute's RFC); `None` for codes not known here.
fn expected_flags(type_code: u8) -> Option<u8> {
    use flags::{OPTIONAL, TRANSITIVE};
    Some(match type_code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => TRANSITIVE,
        code::MED
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => OPTIONAL,
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::EXTENDED_COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::LARGE_COMMUNITIES => OPTIONAL | TRANSITIVE,
        _ => return None,
    })
}

/// The attribute's name, for logs and issue reasons ("unknown" for codes
/// this module does not know).
pub fn name(type_code: u8) -> &'static str {
    match type_code {
        code::ORIGIN => "ORIGIN",
        code::AS_PATH => "AS_PATH",
        code::NEXT_HOP => "NEXT_HOP",
        code::MED => "MULTI_EXIT_DISC",
        code::LOCAL_PREF => "LOCAL_PREF",
        code::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        code::AGGREGATOR => "AGGREGATOR",
        code::COMMUNITIES => "COMMUNITIES",
        code::ORIGINATOR_ID => "ORIGINATOR_ID",
        code::CLUSTER_LIST => "CLUSTER_LIST",
        code::MP_REACH_NLRI => "MP_REACH_NLRI",
        code::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        code::EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        code::AS4_PATH => "AS4_PATH",
        code::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        code::LARGE_COMMUNITIES => "LARGE_COMMUNITY",
        _ => "unknown",
    }
}

/// One attribute as framed in an UPDATE.
#[derive(Copy, Clone, Debug)]
pub(crate) struct WireAttribute<'a> {
    /// The whole attribute, header included: the data of a NOTIFICATION
    /// about it (RFC 4271 §6.3).
    pub raw: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// The path attributes of one UPDATE, decoded and classified.
#[derive(Default)]
pub(crate) struct DecodedAttributes<'a> {
    pub attrs: PathAttributes,
    pub mp_reach: Option<WireAttribute<'a>>,
    pub mp_unreach: Option<WireAttribute<'a>>,
    pub treat_as_withdraw: Vec<AttributeIssue>,
    pub discarded: Vec<AttributeIssue>,
    seen: [u64; 4],
}

impl DecodedAttributes<'_> {
    /// True when an attribute of this type code was present, even if it
    /// was then found malformed.
    pub fn seen(&self, type_code: u8) -> bool {
        self.seen[usize::from(type_code / 64)] & (1 << (type_code % 64)) != 0
    }

    fn mark(&mut self, type_code: u8) {
        self.seen[usize::from(type_code / 64)] |= 1 << (type_code % 64);
    }

    fn withdraw(&mut self, type_code: u8, reason: String) {
        self.treat_as_withdraw
            .push(AttributeIssue { type_code, reason });
    }

    fn discard(&mut self, type_code: u8, reason: String) {
        self.discarded.push(AttributeIssue { type_code, reason });
    }
}

/// What AS4_PATH/AS4_AGGREGATOR held, for the merge of RFC 6793 §4.2.3.
#[derive(Default)]
struct As4 {
    path: Option<AsPath>,
    aggregator: Option<Aggregator>,
}

/// Decode the Path Attributes field of an UPDATE (RFC 4271 §4.3) under
/// RFC 7606. Returns an error only for the faults that reset the session.
pub(crate) fn decode_attributes<'a>(
    buf: &'a [u8],
    cfg: &CodecConfig,
) -> Result<DecodedAttributes<'a>, DecodeError> {
    let mut d = DecodedAttributes::default();
    let mut as4 = As4::default();
    let mut rest = buf;
    while !rest.is_empty() {
        let offset = buf.len() - rest.len();
        let Some(&[attr_flags, type_code]) = rest.first_chunk::<2>() else {
            d.withdraw(
                0,
                format!("attribute header cut short at offset {offset} (RFC 7606 §4)"),
            );
            break;
        };
        let hdr = if attr_flags & flags::EXTENDED_LENGTH != 0 {
            4
        } else {
            3
        };
        let len = match rest.get(2..hdr) {
            Some(&[l]) => Some(usize::from(l)),
            Some(&[h, l]) => Some(usize::from(u16::from_be_bytes([h, l]))),
            _ => None,
        };
        let Some(raw) = len.and_then(|len| rest.get(..hdr + len)) else {
            if matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                return Err(DecodeError::new(
                    UpdateSubcode::OptionalAttribute,
                    rest.to_vec(),
                    format!(
                        "{} runs past the path attributes, so its NLRI cannot be located (RFC 7606 §4, §5.3)",
                        name(type_code)
                    ),
                ));
            }
            let what = match len {
                None => format!("attribute {type_code} header cut short at offset {offset}"),
                Some(len) => format!(
                    "attribute {type_code} of {len} octets at offset {offset} runs past the path attributes ({} octets left)",
                    rest.len() - hdr
                ),
            };
            d.withdraw(type_code, format!("{what} (RFC 7606 §4)"));
            break;
        };
        rest = &rest[raw.len()..];
        let a = WireAttribute {
            raw,
            value: &raw[hdr..],
        };
        if d.seen(type_code) {
            if matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                return Err(DecodeError::new(
                    UpdateSubcode::MalformedAttributeList,
                    Vec::new(),
                    format!("{} appears twice (RFC 7606 §3 g)", name(type_code)),
                ));
            }
            d.discard(
                type_code,
                format!(
                    "repeated attribute {type_code} ({}) discarded, the first kept (RFC 7606 §3 g)",
                    name(type_code)
                ),
            );
            continue;
        }
        d.mark(type_code);
        decode_one(&mut d, &mut as4, attr_flags, type_code, a, cfg)?;
    }
    if !cfg.four_octet_as {
        merge_as4(&mut d, as4);
    }
    d.attrs.unknown.sort_by_key(|u| u.type_code);
    Ok(d)
}

fn decode_one<'a>(
    d: &mut DecodedAttributes<'a>,
    as4: &mut As4,
    attr_flags: u8,
    type_code: u8,
    a: WireAttribute<'a>,
    cfg: &CodecConfig,
) -> Result<(), DecodeError> {
    let value = a.value;
    let n = value.len();
    let Some(expected) = expected_flags(type_code) else {
        if attr_flags & flags::OPTIONAL == 0 {
            return Err(DecodeError::new(
                UpdateSubcode::UnrecognizedWellKnown,
                a.raw.to_vec(),
                format!("unrecognized well-known attribute {type_code} (RFC 4271 §6.3)"),
            ));
        }
        if attr_flags & flags::TRANSITIVE != 0 {
            d.attrs.unknown.push(RawAttribute {
                flags: attr_flags & (flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL),
                type_code,
                value: value.to_vec(),
            });
        }
        return Ok(());
    };
    if (attr_flags ^ expected) & (flags::OPTIONAL | flags::TRANSITIVE) != 0 {
        let why = format!(
            "{} flags {attr_flags:#04x} conflict with the expected {expected:#04x}",
            name(type_code)
        );
        match type_code {
            code::AS4_PATH | code::AS4_AGGREGATOR => {
                d.discard(type_code, format!("{why} (RFC 7606 §3 c, RFC 6793 §6)"));
                return Ok(());
            }
            code::MP_REACH_NLRI => d.mp_reach = Some(a),
            code::MP_UNREACH_NLRI => d.mp_unreach = Some(a),
            _ => {}
        }
        d.withdraw(type_code, format!("{why} (RFC 7606 §3 c)"));
        return Ok(());
    }
    let word = match value {
        &[a, b, c, e] => Some(u32::from_be_bytes([a, b, c, e])),
        _ => None,
    };
    match type_code {
        code::ORIGIN => match value {
            [0] => d.attrs.origin = Some(Origin::Igp),
            [1] => d.attrs.origin = Some(Origin::Egp),
            [2] => d.attrs.origin = Some(Origin::Incomplete),
            [v] => d.withdraw(type_code, format!("ORIGIN value {v} is undefined (RFC 7606 §7.1)")),
            _ => d.withdraw(type_code, format!("ORIGIN length {n}, expected 1 (RFC 7606 §7.1)")),
        },
        code::AS_PATH => match decode_as_path(value, cfg.four_octet_as) {
            Ok(p) if cfg.ebgp && p.segments.iter().any(is_confed) => d.withdraw(
                type_code,
                "AS_PATH with a confederation segment from an external peer (RFC 5065 §5.3, RFC 7606 §7.2)"
                    .to_string(),
            ),
            Ok(p) => d.attrs.as_path = Some(p),
            Err(why) => d.withdraw(type_code, format!("malformed AS_PATH: {why} (RFC 7606 §7.2)")),
        },
        code::NEXT_HOP => match word {
            Some(v) => d.attrs.next_hop = Some(IpAddr::V4(Ipv4Addr::from(v))),
            None => d.withdraw(type_code, format!("NEXT_HOP length {n}, expected 4 (RFC 7606 §7.3)")),
        },
        code::MED => match word {
            Some(v) => d.attrs.med = Some(v),
            None => d.withdraw(
                type_code,
                format!("MULTI_EXIT_DISC length {n}, expected 4 (RFC 7606 §7.4)"),
            ),
        },
        code::LOCAL_PREF => match word {
            _ if cfg.ebgp => d.discard(
                type_code,
                "LOCAL_PREF from an external peer (RFC 7606 §7.5)".to_string(),
            ),
            Some(v) => d.attrs.local_pref = Some(v),
            None => d.withdraw(type_code, format!("LOCAL_PREF length {n}, expected 4 (RFC 7606 §7.5)")),
        },
        code::ATOMIC_AGGREGATE => {
            if n == 0 {
                d.attrs.atomic_aggregate = true;
            } else {
                d.discard(
                    type_code,
                    format!("ATOMIC_AGGREGATE length {n}, expected 0 (RFC 7606 §7.6)"),
                );
            }
        }
        code::AGGREGATOR => match (cfg.four_octet_as, value) {
            (true, &[a0, a1, a2, a3, b0, b1, b2, b3]) => {
                d.attrs.aggregator = Some(Aggregator {
                    asn: u32::from_be_bytes([a0, a1, a2, a3]),
                    address: Ipv4Addr::new(b0, b1, b2, b3),
                });
            }
            (false, &[a0, a1, b0, b1, b2, b3]) => {
                d.attrs.aggregator = Some(Aggregator {
                    asn: u32::from(u16::from_be_bytes([a0, a1])),
                    address: Ipv4Addr::new(b0, b1, b2, b3),
                });
            }
            (four, _) => d.discard(
                type_code,
                format!(
                    "AGGREGATOR length {n}, expected {} (RFC 7606 §7.7)",
                    if four { 8 } else { 6 }
                ),
            ),
        },
        code::COMMUNITIES => {
            if n == 0 || !n.is_multiple_of(4) {
                d.withdraw(
                    type_code,
                    format!("COMMUNITIES length {n} is not a non-zero multiple of 4 (RFC 7606 §7.8)"),
                );
            } else {
                d.attrs.communities = value
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
        }
        code::ORIGINATOR_ID => match word {
            _ if cfg.ebgp => d.discard(
                type_code,
                "ORIGINATOR_ID from an external peer (RFC 4456 §8, RFC 7606 §7.9)".to_string(),
            ),
            Some(v) => d.attrs.originator_id = Some(Ipv4Addr::from(v)),
            None => d.withdraw(
                type_code,
                format!("ORIGINATOR_ID length {n}, expected 4 (RFC 7606 §7.9)"),
            ),
        },
        code::CLUSTER_LIST => {
            if cfg.ebgp {
                d.discard(
                    type_code,
                    "CLUSTER_LIST from an external peer (RFC 4456 §8, RFC 7606 §7.10)".to_string(),
                );
            } else if n == 0 || !n.is_multiple_of(4) {
                d.withdraw(
                    type_code,
                    format!("CLUSTER_LIST length {n} is not a non-zero multiple of 4 (RFC 7606 §7.10)"),
                );
            } else {
                d.attrs.cluster_list = value
                    .chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect();
            }
        }
        code::MP_REACH_NLRI => d.mp_reach = Some(a),
        code::MP_UNREACH_NLRI => d.mp_unreach = Some(a),
        code::EXTENDED_COMMUNITIES => {
            if n == 0 || !n.is_multiple_of(8) {
                d.withdraw(
                    type_code,
                    format!(
                        "EXTENDED_COMMUNITIES length {n} is not a non-zero multiple of 8 (RFC 7606 §7.14)"
                    ),
                );
            } else {
                d.attrs.ext_communities = value
                    .chunks_exact(8)
                    .map(|c| {
                        let mut e = [0u8; 8];
                        e.copy_from_slice(c);
                        e
                    })
                    .collect();
            }
        }
        code::AS4_PATH => {
            if cfg.four_octet_as {
                d.discard(
                    type_code,
                    "AS4_PATH on a 4-octet AS session (RFC 6793 §4.1)".to_string(),
                );
                return Ok(());
            }
            match decode_as_path(value, true) {
                Ok(mut p) => {
                    if p.segments.iter().any(is_confed) {
                        p.segments.retain(|s| !is_confed(s));
                        d.discard(
                            type_code,
                            "confederation segments removed from AS4_PATH (RFC 6793 §6)".to_string(),
                        );
                    }
                    as4.path = Some(p);
                }
                Err(why) => d.discard(type_code, format!("malformed AS4_PATH: {why} (RFC 6793 §6)")),
            }
        }
        code::AS4_AGGREGATOR => {
            if cfg.four_octet_as {
                d.discard(
                    type_code,
                    "AS4_AGGREGATOR on a 4-octet AS session (RFC 6793 §4.1)".to_string(),
                );
                return Ok(());
            }
            match value {
                &[a0, a1, a2, a3, b0, b1, b2, b3] => {
                    as4.aggregator = Some(Aggregator {
                        asn: u32::from_be_bytes([a0, a1, a2, a3]),
                        address: Ipv4Addr::new(b0, b1, b2, b3),
                    });
                }
                _ => d.discard(
                    type_code,
                    format!("AS4_AGGREGATOR length {n}, expected 8 (RFC 6793 §6)"),
                ),
            }
        }
        code::LARGE_COMMUNITIES => {
            if n == 0 || !n.is_multiple_of(12) {
                d.withdraw(
                    type_code,
                    format!("LARGE_COMMUNITY length {n} is not a non-zero multiple of 12 (RFC 8092 §6)"),
                );
            } else {
                d.attrs.large_communities = value
                    .chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        local1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        local2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                    })
                    .collect();
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_confed(s: &AsSegment) -> bool {
    matches!(s, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_))
}

fn segment_asns(s: &AsSegment) -> &[u32] {
    match s {
        AsSegment::Set(v)
        | AsSegment::Sequence(v)
        | AsSegment::ConfedSequence(v)
        | AsSegment::ConfedSet(v) => v,
    }
}

/// Parse AS_PATH/AS4_PATH segments (RFC 4271 §4.3, RFC 6793 §3). A path is
/// malformed on an unknown segment type, an empty segment, or a segment
/// running past the value (RFC 7606 §7.2).
fn decode_as_path(value: &[u8], four_octet: bool) -> Result<AsPath, String> {
    let width = if four_octet { 4 } else { 2 };
    let mut segments = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let Some((&[kind, count], tail)) = rest.split_first_chunk::<2>() else {
            return Err("one octet left where a segment header must be".to_string());
        };
        if count == 0 {
            return Err(format!("segment of type {kind} holds no AS"));
        }
        let Some((body, tail)) = tail.split_at_checked(usize::from(count) * width) else {
            return Err(format!(
                "segment of {count} ASes runs past the attribute ({} octets left)",
                tail.len()
            ));
        };
        let asns: Vec<u32> = if four_octet {
            body.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            body.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        segments.push(match kind {
            1 => AsSegment::Set(asns),
            2 => AsSegment::Sequence(asns),
            3 => AsSegment::ConfedSequence(asns),
            4 => AsSegment::ConfedSet(asns),
            _ => return Err(format!("unknown segment type {kind}")),
        });
        rest = tail;
    }
    Ok(AsPath { segments })
}

/// RFC 6793 §4.2.3: rebuild the 4-octet AS path and aggregator from what a
/// 2-octet session carried.
fn merge_as4(d: &mut DecodedAttributes<'_>, as4: As4) {
    let mut use_as4_path = true;
    match (d.attrs.aggregator, as4.aggregator) {
        (Some(agg), four) if agg.asn != u32::from(AS_TRANS) => {
            use_as4_path = false;
            if four.is_some() {
                d.discard(
                    code::AS4_AGGREGATOR,
                    "AS4_AGGREGATOR ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)"
                        .to_string(),
                );
            }
            if as4.path.is_some() {
                d.discard(
                    code::AS4_PATH,
                    "AS4_PATH ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)"
                        .to_string(),
                );
            }
        }
        (Some(_), Some(four)) => d.attrs.aggregator = Some(four),
        (None, Some(_)) => d.discard(
            code::AS4_AGGREGATOR,
            "AS4_AGGREGATOR ignored: no AGGREGATOR (RFC 6793 §4.2.3)".to_string(),
        ),
        _ => {}
    }
    let (Some(as4_path), true) = (as4.path, use_as4_path) else {
        return;
    };
    let Some(as_path) = &d.attrs.as_path else {
        return;
    };
    match merge_paths(as_path, as4_path) {
        Some(p) => d.attrs.as_path = Some(p),
        None => d.discard(
            code::AS4_PATH,
            "AS4_PATH ignored: it holds more ASes than AS_PATH (RFC 6793 §4.2.3)".to_string(),
        ),
    }
}

/// The leading ASes of `as_path` that AS4_PATH lacks, then AS4_PATH
/// (RFC 6793 §4.2.3); `None` when AS4_PATH is the longer. Confederation
/// segments count zero, sets one (RFC 4271 §9.1.2.2).
fn merge_paths(as_path: &AsPath, as4_path: AsPath) -> Option<AsPath> {
    let mut keep = as_path.path_len().checked_sub(as4_path.path_len())?;
    let mut segments = Vec::with_capacity(as_path.segments.len() + as4_path.segments.len());
    for s in &as_path.segments {
        match s {
            AsSegment::Sequence(v) => {
                if keep == 0 {
                    break;
                }
                let k = keep.min(v.len());
                segments.push(AsSegment::Sequence(v[..k].to_vec()));
                keep -= k;
            }
            AsSegment::Set(_) => {
                if keep == 0 {
                    break;
                }
                segments.push(s.clone());
                keep -= 1;
            }
            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => segments.push(s.clone()),
        }
    }
    for s in as4_path.segments {
        match (segments.last_mut(), s) {
            (Some(AsSegment::Sequence(last)), AsSegment::Sequence(v))
                if last.len() + v.len() <= 255 =>
            {
                last.extend(v);
            }
            (_, s) => segments.push(s),
        }
    }
    Some(AsPath { segments })
}

/// What [`encode_attributes`] writes beyond the attributes themselves.
#[derive(Copy, Clone, Debug)]
pub(crate) struct EncodeOptions {
    /// Write NEXT_HOP from `next_hop` when it is IPv4.
    pub next_hop: bool,
    /// Write an empty AS_PATH when `as_path` is absent (a route this
    /// speaker originates, RFC 4271 §5.1.2).
    pub empty_as_path: bool,
}

/// Append path attributes in type-code order and return the offset, from
/// where they start in `out`, at which codes above MP_UNREACH_NLRI begin:
/// the MP attributes go there.
///
/// On a 2-octet session AS_PATH/AGGREGATOR carry AS_TRANS and AS4_PATH/
/// AS4_AGGREGATOR are added when an AS needs 4 octets (RFC 6793 §4.2.2);
/// with AS4_PATH, AGGREGATOR is always AS_TRANS so that the receiver does
/// not ignore AS4_PATH (§4.2.3).
/// To an external peer LOCAL_PREF (RFC 4271 §5.1.5), ORIGINATOR_ID and
/// CLUSTER_LIST (RFC 4456 §8) are never sent. Unknown attributes go out
/// optional transitive with the Partial bit (RFC 4271 §5); an entry of
/// `unknown` with a code this module knows is skipped.
pub(crate) fn encode_attributes(
    attrs: &PathAttributes,
    cfg: &CodecConfig,
    opts: EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    use flags::{OPTIONAL, TRANSITIVE};
    let base = out.len();
    let mut unknown: Vec<&RawAttribute> = attrs
        .unknown
        .iter()
        .filter(|u| expected_flags(u.type_code).is_none())
        .collect();
    unknown.sort_by_key(|u| u.type_code);
    let mut unknown = unknown.into_iter().peekable();
    let mut unknown_below = |limit: u16, out: &mut Vec<u8>| -> Result<(), EncodeError> {
        while let Some(u) = unknown.next_if(|u| u16::from(u.type_code) < limit) {
            put_attribute(
                out,
                OPTIONAL | TRANSITIVE | flags::PARTIAL,
                u.type_code,
                |o| o.extend_from_slice(&u.value),
            )?;
        }
        Ok(())
    };
    let four = cfg.four_octet_as;
    let wide = |asn: u32| asn > u32::from(u16::MAX);
    let empty = AsPath::default();
    let as_path = match &attrs.as_path {
        Some(p) => Some(p),
        None if opts.empty_as_path => Some(&empty),
        None => None,
    };
    let as4_path = as_path.filter(|p| {
        !four
            && p.segments
                .iter()
                .any(|s| segment_asns(s).iter().any(|&a| wide(a)))
    });
    // A receiver ignores AS4_PATH unless AGGREGATOR carries AS_TRANS
    // (RFC 6793 §4.2.3), so with AS4_PATH the aggregator always goes out
    // as AS_TRANS plus AS4_AGGREGATOR, even when its AS would fit.
    let as4_aggregator = attrs
        .aggregator
        .filter(|a| !four && (wide(a.asn) || as4_path.is_some()));

    unknown_below(code::ORIGIN.into(), out)?;
    if let Some(o) = attrs.origin {
        let v = match o {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        };
        put_attribute(out, TRANSITIVE, code::ORIGIN, |o| o.push(v))?;
    }
    unknown_below(code::AS_PATH.into(), out)?;
    if let Some(p) = as_path {
        put_attribute(out, TRANSITIVE, code::AS_PATH, |o| {
            put_as_path(o, p.segments.iter(), four)
        })?;
    }
    unknown_below(code::NEXT_HOP.into(), out)?;
    if let (true, Some(IpAddr::V4(nh))) = (opts.next_hop, attrs.next_hop) {
        put_attribute(out, TRANSITIVE, code::NEXT_HOP, |o| {
            o.extend_from_slice(&nh.octets())
        })?;
    }
    unknown_below(code::MED.into(), out)?;
    if let Some(med) = attrs.med {
        put_attribute(out, OPTIONAL, code::MED, |o| {
            o.extend_from_slice(&med.to_be_bytes())
        })?;
    }
    unknown_below(code::LOCAL_PREF.into(), out)?;
    if let (false, Some(lp)) = (cfg.ebgp, attrs.local_pref) {
        put_attribute(out, TRANSITIVE, code::LOCAL_PREF, |o| {
            o.extend_from_slice(&lp.to_be_bytes())
        })?;
    }
    unknown_below(code::ATOMIC_AGGREGATE.into(), out)?;
    if attrs.atomic_aggregate {
        put_attribute(out, TRANSITIVE, code::ATOMIC_AGGREGATE, |_| {})?;
    }
    unknown_below(code::AGGREGATOR.into(), out)?;
    if let Some(agg) = attrs.aggregator {
        put_attribute(out, OPTIONAL | TRANSITIVE, code::AGGREGATOR, |o| {
            if four {
                o.extend_from_slice(&agg.asn.to_be_bytes());
            } else if as4_aggregator.is_some() {
                o.extend_from_slice(&AS_TRANS.to_be_bytes());
            } else {
                o.extend_from_slice(&two_octet(agg.asn).to_be_bytes());
            }
            o.extend_from_slice(&agg.address.octets());
        })?;
    }
    unknown_below(code::COMMUNITIES.into(), out)?;
    if !attrs.communities.is_empty() {
        put_attribute(out, OPTIONAL | TRANSITIVE, code::COMMUNITIES, |o| {
            for c in &attrs.communities {
                o.extend_from_slice(&c.to_be_bytes());
            }
        })?;
    }
    unknown_below(code::ORIGINATOR_ID.into(), out)?;
    if let (false, Some(id)) = (cfg.ebgp, attrs.originator_id) {
        put_attribute(out, OPTIONAL, code::ORIGINATOR_ID, |o| {
            o.extend_from_slice(&id.octets())
        })?;
    }
    unknown_below(code::CLUSTER_LIST.into(), out)?;
    if !cfg.ebgp && !attrs.cluster_list.is_empty() {
        put_attribute(out, OPTIONAL, code::CLUSTER_LIST, |o| {
            for id in &attrs.cluster_list {
                o.extend_from_slice(&id.octets());
            }
        })?;
    }
    unknown_below(code::MP_REACH_NLRI.into(), out)?;
    let split = out.len() - base;
    unknown_below(code::EXTENDED_COMMUNITIES.into(), out)?;
    if !attrs.ext_communities.is_empty() {
        put_attribute(
            out,
            OPTIONAL | TRANSITIVE,
            code::EXTENDED_COMMUNITIES,
            |o| {
                for e in &attrs.ext_communities {
                    o.extend_from_slice(e);
                }
            },
        )?;
    }
    unknown_below(code::AS4_PATH.into(), out)?;
    if let Some(p) = as4_path {
        put_attribute(out, OPTIONAL | TRANSITIVE, code::AS4_PATH, |o| {
            put_as_path(o, p.segments.iter().filter(|s| !is_confed(s)), true)
        })?;
    }
    unknown_below(code::AS4_AGGREGATOR.into(), out)?;
    if let Some(agg) = as4_aggregator {
        put_attribute(out, OPTIONAL | TRANSITIVE, code::AS4_AGGREGATOR, |o| {
            o.extend_from_slice(&agg.asn.to_be_bytes());
            o.extend_from_slice(&agg.address.octets());
        })?;
    }
    unknown_below(code::LARGE_COMMUNITIES.into(), out)?;
    if !attrs.large_communities.is_empty() {
        put_attribute(out, OPTIONAL | TRANSITIVE, code::LARGE_COMMUNITIES, |o| {
            for l in &attrs.large_communities {
                o.extend_from_slice(&l.global.to_be_bytes());
                o.extend_from_slice(&l.local1.to_be_bytes());
                o.extend_from_slice(&l.local2.to_be_bytes());
            }
        })?;
    }
    unknown_below(256, out)?;
    Ok(split)
}

fn two_octet(asn: u32) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS)
}

/// Segments of up to 255 ASes each; empty segments are left out (RFC 7606
/// §7.2 makes them malformed).
fn put_as_path<'s>(
    out: &mut Vec<u8>,
    segments: impl Iterator<Item = &'s AsSegment>,
    four_octet: bool,
) {
    for s in segments {
        let kind = match s {
            AsSegment::Set(_) => 1,
            AsSegment::Sequence(_) => 2,
            AsSegment::ConfedSequence(_) => 3,
            AsSegment::ConfedSet(_) => 4,
        };
        for chunk in segment_asns(s).chunks(255) {
            out.push(kind);
            out.push(chunk.len() as u8);
            for &asn in chunk {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    out.extend_from_slice(&two_octet(asn).to_be_bytes());
                }
            }
        }
    }
}

/// Append one attribute whose value `value` writes, with the Extended
/// Length bit only when the value exceeds 255 octets.
pub(crate) fn put_attribute(
    out: &mut Vec<u8>,
    attr_flags: u8,
    type_code: u8,
    value: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[attr_flags & !flags::EXTENDED_LENGTH, type_code, 0]);
    value(out);
    let len = out.len() - start - 3;
    if let Ok(short) = u8::try_from(len) {
        out[start + 2] = short;
    } else if let Ok(long) = u16::try_from(len) {
        out[start] |= flags::EXTENDED_LENGTH;
        let [hi, lo] = long.to_be_bytes();
        out[start + 2] = hi;
        out.insert(start + 3, lo);
    } else {
        out.truncate(start);
        return Err(EncodeError::TooLarge {
            what: "path attribute",
            limit: usize::from(u16::MAX),
        });
    }
    Ok(())
}
