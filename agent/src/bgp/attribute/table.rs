//! One row per path attribute Steer knows, as BIRD's `bgp_attr_table[]`
//! (proto/bgp/attrs.c): the type code, the Optional and Transitive flags it
//! must carry, what a conflict in them costs (RFC 7606 §3 c), its decoder
//! and its encoder. Each decoder says itself whether a fault is
//! treat-as-withdraw or attribute discard, citing the RFC 7606 section.
//!
//! The table is in type-code order, the order attributes are encoded in.
//! Decoding finds a type code's row through a 256-entry index built at
//! compile time: one array lookup and one call per attribute. Encoding
//! runs the rows' encoders as straight-line code generated from the table.
//! Each encoder writes its attribute when the route has it and the session
//! takes it, and nothing otherwise.

use super::as_path::{
    decode_as_path, is_confed, needs_as4_aggregator, needs_as4_path, put_as_path, two_octet,
};
use super::codec::{DecodedAttributes, EncodeOptions, WireAttribute, put_raw};
use super::flags::{OPTIONAL, TRANSITIVE};
use super::{Aggregator, AsPath, LargeCommunity, Origin, PathAttributes};
use crate::bgp::codec_config::CodecConfig;
use crate::bgp::error::EncodeError;
use crate::bgp::iana::{AS_TRANS, AttrType};
use std::net::{IpAddr, Ipv4Addr};

/// Decodes a well-formed attribute's value into `d`, or records in `d`
/// why it was treat-as-withdraw or discarded.
pub(super) type Decode = for<'a> fn(&mut DecodedAttributes<'a>, WireAttribute<'a>, &CodecConfig);

/// What a known attribute with conflicting Optional/Transitive flags costs.
#[derive(Copy, Clone, Debug)]
pub(super) enum Fault {
    /// Treat-as-withdraw (RFC 7606 §3 c).
    Withdraw,
    /// Attribute discard, where the attribute's RFC (cited) says so.
    Discard(&'static str),
}

/// One attribute's row, for decoding.
pub(super) struct AttrSpec {
    /// Type code (and name).
    pub code: AttrType,
    /// The Optional and Transitive bits it must carry (RFC 4271 §5).
    pub flags: u8,
    /// What conflicting flags cost.
    pub bad_flags: Fault,
    /// Its decoder.
    pub decode: Decode,
    /// MP_REACH_NLRI/MP_UNREACH_NLRI: only located here; the message codec
    /// parses and writes them. A fault that hides their NLRI resets the
    /// session (RFC 7606 §3 g, §5.3), and with conflicting flags they are
    /// still located, for their NLRI are what is withdrawn.
    pub carries_nlri: bool,
}

/// Declares the table, one row per attribute in type-code order: type,
/// flags, what conflicting flags cost, decoder, and encoder (`message` for
/// the MP attributes). Generates [`ATTRIBUTES`] for decoding and
/// [`encode_rows`], which calls the encoders in order as straight-line
/// code, so that the small ones are inlined.
macro_rules! attributes {
    ($( $t:ident, $flags:expr, $fault:expr, $decode:ident, $encode:ident; )*) => {
        /// Every attribute Steer knows, in type-code order.
        pub(super) static ATTRIBUTES: &[AttrSpec] = &[$(
            AttrSpec {
                code: AttrType::$t,
                flags: $flags,
                bad_flags: $fault,
                decode: $decode,
                carries_nlri: attributes!(@in_message $encode),
            },
        )*];

        /// Append every attribute the route has and the session takes, in
        /// type-code order, calling `before` ahead of each row; returns
        /// where in `out` the MP attributes go.
        pub(super) fn encode_rows(
            e: &Encoding<'_>,
            out: &mut Vec<u8>,
            mut before: impl FnMut(AttrType, &mut Vec<u8>) -> Result<(), EncodeError>,
        ) -> Result<usize, EncodeError> {
            let mut mp = None;
            $(
                before(AttrType::$t, out)?;
                attributes!(@encode $encode, e, out, mp, $t, $flags);
            )*
            Ok(mp.unwrap_or(out.len()))
        }
    };
    (@in_message message) => { true };
    (@in_message $encode:ident) => { false };
    (@encode message, $e:ident, $out:ident, $mp:ident, $t:ident, $flags:expr) => {
        $mp.get_or_insert($out.len());
    };
    (@encode $encode:ident, $e:ident, $out:ident, $mp:ident, $t:ident, $flags:expr) => {
        $encode($e, &mut AttrOut { out: $out, flags: $flags, code: AttrType::$t.into() })?
    };
}

const OT: u8 = OPTIONAL | TRANSITIVE;
const WITHDRAW: Fault = Fault::Withdraw;
const AS4_DISCARD: Fault = Fault::Discard("RFC 7606 §3 c, RFC 6793 §6");

attributes! {
    // type              flags       bad flags    decoder                   encoder
    Origin,              TRANSITIVE, WITHDRAW,    decode_origin,            encode_origin;
    AsPath,              TRANSITIVE, WITHDRAW,    decode_as_path_attr,      encode_as_path_attr;
    NextHop,             TRANSITIVE, WITHDRAW,    decode_next_hop,          encode_next_hop;
    MultiExitDisc,       OPTIONAL,   WITHDRAW,    decode_med,               encode_med;
    LocalPref,           TRANSITIVE, WITHDRAW,    decode_local_pref,        encode_local_pref;
    AtomicAggregate,     TRANSITIVE, WITHDRAW,    decode_atomic_aggregate,  encode_atomic_aggregate;
    Aggregator,          OT,         WITHDRAW,    decode_aggregator,        encode_aggregator;
    Communities,         OT,         WITHDRAW,    decode_communities,       encode_communities;
    OriginatorId,        OPTIONAL,   WITHDRAW,    decode_originator_id,     encode_originator_id;
    ClusterList,         OPTIONAL,   WITHDRAW,    decode_cluster_list,      encode_cluster_list;
    MpReachNlri,         OPTIONAL,   WITHDRAW,    locate_mp_reach,          message;
    MpUnreachNlri,       OPTIONAL,   WITHDRAW,    locate_mp_unreach,        message;
    ExtendedCommunities, OT,         WITHDRAW,    decode_ext_communities,   encode_ext_communities;
    As4Path,             OT,         AS4_DISCARD, decode_as4_path,          encode_as4_path;
    As4Aggregator,       OT,         AS4_DISCARD, decode_as4_aggregator,    encode_as4_aggregator;
    LargeCommunity,      OT,         WITHDRAW,    decode_large_communities, encode_large_communities;
}

/// The row index of each type code; `u8::MAX` for codes Steer does not know.
static INDEX: [u8; 256] = {
    let mut index = [u8::MAX; 256];
    let mut i = 0;
    while i < ATTRIBUTES.len() {
        index[ATTRIBUTES[i].code as usize] = i as u8;
        i += 1;
    }
    index
};

/// The row of `type_code`, `None` for an attribute Steer does not know.
pub(super) fn spec(type_code: u8) -> Option<&'static AttrSpec> {
    ATTRIBUTES.get(usize::from(INDEX[usize::from(type_code)]))
}

/// The Optional and Transitive bits attribute `t` must carry (RFC 4271 §5
/// and its RFC).
pub(crate) fn expected_flags(t: AttrType) -> u8 {
    spec(t.into()).map_or(0, |s| s.flags)
}

// ------------------------------------------------------------- decoders

/// The value as one 4-octet number, or treat-as-withdraw citing `rfc`.
fn u32_value(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, rfc: &str) -> Option<u32> {
    if let Ok(v) = <[u8; 4]>::try_from(a.value) {
        return Some(u32::from_be_bytes(v));
    }
    let (name, n) = (AttrType::name_of(a.code), a.value.len());
    d.withdraw(a.code, format!("{name} length {n}, expected 4 ({rfc})"));
    None
}

/// The value as `N`-octet items, or treat-as-withdraw citing `rfc` when
/// its length is not a non-zero multiple of `N`.
fn items<'v, const N: usize>(
    d: &mut DecodedAttributes<'_>,
    a: WireAttribute<'v>,
    rfc: &str,
) -> Option<&'v [[u8; N]]> {
    match a.value.as_chunks::<N>() {
        (items, []) if !items.is_empty() => Some(items),
        _ => {
            let (name, n) = (AttrType::name_of(a.code), a.value.len());
            let why = format!("{name} length {n} is not a non-zero multiple of {N} ({rfc})");
            d.withdraw(a.code, why);
            None
        }
    }
}

/// ORIGIN (RFC 4271 §5.1.1).
fn decode_origin(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, _: &CodecConfig) {
    match a.value {
        [0] => d.attrs.origin = Some(Origin::Igp),
        [1] => d.attrs.origin = Some(Origin::Egp),
        [2] => d.attrs.origin = Some(Origin::Incomplete),
        [v] => d.withdraw(
            a.code,
            format!("ORIGIN value {v} is undefined (RFC 7606 §7.1)"),
        ),
        v => d.withdraw(
            a.code,
            format!("ORIGIN length {}, expected 1 (RFC 7606 §7.1)", v.len()),
        ),
    }
}

/// AS_PATH (RFC 4271 §5.1.2), 2- or 4-octet by the session (RFC 6793);
/// no confederation segments from outside (RFC 5065 §5.3).
fn decode_as_path_attr(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, cfg: &CodecConfig) {
    match decode_as_path(a.value, cfg.four_octet_as) {
        Ok(p) if cfg.ebgp && p.segments.iter().any(is_confed) => d.withdraw(
            a.code,
            "AS_PATH with a confederation segment from an external peer (RFC 5065 §5.3, RFC 7606 §7.2)",
        ),
        Ok(p) => d.attrs.as_path = Some(p),
        Err(why) => d.withdraw(a.code, format!("malformed AS_PATH: {why} (RFC 7606 §7.2)")),
    }
}

/// NEXT_HOP (RFC 4271 §5.1.3).
fn decode_next_hop(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, _: &CodecConfig) {
    if let Some(v) = u32_value(d, a, "RFC 7606 §7.3") {
        d.attrs.next_hop = Some(IpAddr::V4(Ipv4Addr::from(v)));
    }
}

/// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
fn decode_med(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, _: &CodecConfig) {
    if let Some(v) = u32_value(d, a, "RFC 7606 §7.4") {
        d.attrs.med = Some(v);
    }
}

/// LOCAL_PREF (RFC 4271 §5.1.5), internal peers only.
fn decode_local_pref(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, cfg: &CodecConfig) {
    if cfg.ebgp {
        d.discard(a.code, "LOCAL_PREF from an external peer (RFC 7606 §7.5)");
    } else if let Some(v) = u32_value(d, a, "RFC 7606 §7.5") {
        d.attrs.local_pref = Some(v);
    }
}

/// ATOMIC_AGGREGATE (RFC 4271 §5.1.6).
fn decode_atomic_aggregate(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, _: &CodecConfig) {
    match a.value.len() {
        0 => d.attrs.atomic_aggregate = true,
        n => d.discard(
            a.code,
            format!("ATOMIC_AGGREGATE length {n}, expected 0 (RFC 7606 §7.6)"),
        ),
    }
}

/// AGGREGATOR (RFC 4271 §5.1.7) with a 2- or 4-octet AS by the session.
fn decode_aggregator(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, cfg: &CodecConfig) {
    let (asn, address) = match (cfg.four_octet_as, a.value) {
        (true, &[a0, a1, a2, a3, b0, b1, b2, b3]) => {
            (u32::from_be_bytes([a0, a1, a2, a3]), [b0, b1, b2, b3])
        }
        (false, &[a0, a1, b0, b1, b2, b3]) => {
            (u32::from(u16::from_be_bytes([a0, a1])), [b0, b1, b2, b3])
        }
        (four, v) => {
            let expected = if four { 8 } else { 6 };
            let why = format!(
                "AGGREGATOR length {}, expected {expected} (RFC 7606 §7.7)",
                v.len()
            );
            return d.discard(a.code, why);
        }
    };
    d.attrs.aggregator = Some(Aggregator {
        asn,
        address: Ipv4Addr::from(address),
    });
}

/// COMMUNITIES (RFC 1997).
fn decode_communities(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, _: &CodecConfig) {
    if let Some(items) = items::<4>(d, a, "RFC 7606 §7.8") {
        d.attrs.communities = items.iter().map(|c| u32::from_be_bytes(*c)).collect();
    }
}

/// ORIGINATOR_ID (RFC 4456 §8), internal peers only.
fn decode_originator_id(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, cfg: &CodecConfig) {
    if cfg.ebgp {
        d.discard(
            a.code,
            "ORIGINATOR_ID from an external peer (RFC 4456 §8, RFC 7606 §7.9)",
        );
    } else if let Some(v) = u32_value(d, a, "RFC 7606 §7.9") {
        d.attrs.originator_id = Some(Ipv4Addr::from(v));
    }
}

/// CLUSTER_LIST (RFC 4456 §8), internal peers only.
fn decode_cluster_list(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, cfg: &CodecConfig) {
    if cfg.ebgp {
        d.discard(
            a.code,
            "CLUSTER_LIST from an external peer (RFC 4456 §8, RFC 7606 §7.10)",
        );
    } else if let Some(items) = items::<4>(d, a, "RFC 7606 §7.10") {
        d.attrs.cluster_list = items.iter().map(|c| Ipv4Addr::from(*c)).collect();
    }
}

/// MP_REACH_NLRI (RFC 4760 §3): located for the message codec.
fn locate_mp_reach<'a>(d: &mut DecodedAttributes<'a>, a: WireAttribute<'a>, _: &CodecConfig) {
    d.mp_reach = Some(a);
}

/// MP_UNREACH_NLRI (RFC 4760 §4): located for the message codec.
fn locate_mp_unreach<'a>(d: &mut DecodedAttributes<'a>, a: WireAttribute<'a>, _: &CodecConfig) {
    d.mp_unreach = Some(a);
}

/// EXTENDED COMMUNITIES (RFC 4360).
fn decode_ext_communities(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, _: &CodecConfig) {
    if let Some(items) = items::<8>(d, a, "RFC 7606 §7.14") {
        d.attrs.ext_communities = items.to_vec();
    }
}

/// AS4_PATH (RFC 6793 §3), kept for the merge of §4.2.3; only from a
/// 2-octet session, and without confederation segments (§6).
fn decode_as4_path(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, cfg: &CodecConfig) {
    if cfg.four_octet_as {
        return d.discard(a.code, "AS4_PATH on a 4-octet AS session (RFC 6793 §4.1)");
    }
    match decode_as_path(a.value, true) {
        Ok(mut p) => {
            if p.segments.iter().any(is_confed) {
                p.segments.retain(|s| !is_confed(s));
                d.discard(
                    a.code,
                    "confederation segments removed from AS4_PATH (RFC 6793 §6)",
                );
            }
            d.as4.path = Some(p);
        }
        Err(why) => d.discard(a.code, format!("malformed AS4_PATH: {why} (RFC 6793 §6)")),
    }
}

/// AS4_AGGREGATOR (RFC 6793 §3), kept for the merge of §4.2.3; only from a
/// 2-octet session.
fn decode_as4_aggregator(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, cfg: &CodecConfig) {
    if cfg.four_octet_as {
        return d.discard(
            a.code,
            "AS4_AGGREGATOR on a 4-octet AS session (RFC 6793 §4.1)",
        );
    }
    match a.value {
        &[a0, a1, a2, a3, b0, b1, b2, b3] => {
            d.as4.aggregator = Some(Aggregator {
                asn: u32::from_be_bytes([a0, a1, a2, a3]),
                address: Ipv4Addr::new(b0, b1, b2, b3),
            });
        }
        v => d.discard(
            a.code,
            format!(
                "AS4_AGGREGATOR length {}, expected 8 (RFC 6793 §6)",
                v.len()
            ),
        ),
    }
}

/// LARGE_COMMUNITY (RFC 8092).
fn decode_large_communities(d: &mut DecodedAttributes<'_>, a: WireAttribute<'_>, _: &CodecConfig) {
    if let Some(items) = items::<12>(d, a, "RFC 8092 §6") {
        d.attrs.large_communities = items
            .iter()
            .map(|c| LargeCommunity {
                global: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                local1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                local2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            })
            .collect();
    }
}

// ------------------------------------------------------------- encoders

/// One UPDATE's attributes as a session sends them, with what RFC 6793
/// decides once for all rows: the AS path that goes out (the empty path
/// for a route this speaker originates) and, to a 2-octet peer, the
/// AS4_PATH/AS4_AGGREGATOR that go with it.
pub(super) struct Encoding<'a> {
    attrs: &'a PathAttributes,
    four_octet_as: bool,
    ebgp: bool,
    next_hop: bool,
    as_path: Option<&'a AsPath>,
    as4_path: Option<&'a AsPath>,
    as4_aggregator: Option<Aggregator>,
}

/// The AS_PATH of a route this speaker originates (RFC 4271 §5.1.2).
static EMPTY_AS_PATH: AsPath = AsPath {
    segments: Vec::new(),
};

impl<'a> Encoding<'a> {
    pub(super) fn new(
        attrs: &'a PathAttributes,
        cfg: &CodecConfig,
        opts: EncodeOptions,
    ) -> Encoding<'a> {
        let as_path = match &attrs.as_path {
            Some(p) => Some(p),
            None if opts.empty_as_path => Some(&EMPTY_AS_PATH),
            None => None,
        };
        let four = cfg.four_octet_as;
        let as4_path = as_path.filter(|p| !four && needs_as4_path(p));
        Encoding {
            attrs,
            four_octet_as: four,
            ebgp: cfg.ebgp,
            next_hop: opts.next_hop,
            as_path,
            as4_path,
            as4_aggregator: attrs
                .aggregator
                .filter(|a| !four && needs_as4_aggregator(a, as4_path.is_some())),
        }
    }
}

/// Where an encoder writes: the row's flags and type code go in the header.
pub(super) struct AttrOut<'o> {
    pub out: &'o mut Vec<u8>,
    pub flags: u8,
    pub code: u8,
}

impl AttrOut<'_> {
    /// Append the attribute with the value `value` writes.
    fn put(&mut self, value: impl FnOnce(&mut Vec<u8>)) -> Result<(), EncodeError> {
        put_raw(self.out, self.flags, self.code, value)
    }

    /// Append a list attribute, each item written by `item`; nothing for
    /// an empty list (RFC 7606 makes an empty one malformed).
    fn put_each<T>(
        &mut self,
        items: &[T],
        item: impl Fn(&T, &mut Vec<u8>),
    ) -> Result<(), EncodeError> {
        if items.is_empty() {
            return Ok(());
        }
        self.put(|o| {
            for i in items {
                item(i, o);
            }
        })
    }
}

fn encode_origin(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    let Some(origin) = e.attrs.origin else {
        return Ok(());
    };
    let v = match origin {
        Origin::Igp => 0,
        Origin::Egp => 1,
        Origin::Incomplete => 2,
    };
    w.put(|o| o.push(v))
}

/// With AS_TRANS for 4-octet ASes on a 2-octet session (RFC 6793 §4.2.2).
fn encode_as_path_attr(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    let Some(p) = e.as_path else {
        return Ok(());
    };
    w.put(|o| put_as_path(o, p.segments.iter(), e.four_octet_as))
}

fn encode_next_hop(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    match (e.next_hop, e.attrs.next_hop) {
        (true, Some(IpAddr::V4(nh))) => w.put(|o| o.extend_from_slice(&nh.octets())),
        _ => Ok(()),
    }
}

fn encode_med(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    match e.attrs.med {
        Some(med) => w.put(|o| o.extend_from_slice(&med.to_be_bytes())),
        None => Ok(()),
    }
}

/// Never to an external peer (RFC 4271 §5.1.5).
fn encode_local_pref(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    match (e.ebgp, e.attrs.local_pref) {
        (false, Some(lp)) => w.put(|o| o.extend_from_slice(&lp.to_be_bytes())),
        _ => Ok(()),
    }
}

fn encode_atomic_aggregate(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    if e.attrs.atomic_aggregate {
        w.put(|_| {})
    } else {
        Ok(())
    }
}

/// AS_TRANS on a 2-octet session when AS4_AGGREGATOR goes too (RFC 6793
/// §4.2.2, §4.2.3).
fn encode_aggregator(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    let Some(agg) = e.attrs.aggregator else {
        return Ok(());
    };
    w.put(|o| {
        if e.four_octet_as {
            o.extend_from_slice(&agg.asn.to_be_bytes());
        } else if e.as4_aggregator.is_some() {
            o.extend_from_slice(&AS_TRANS.to_be_bytes());
        } else {
            o.extend_from_slice(&two_octet(agg.asn).to_be_bytes());
        }
        o.extend_from_slice(&agg.address.octets());
    })
}

fn encode_communities(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    w.put_each(&e.attrs.communities, |c, o| {
        o.extend_from_slice(&c.to_be_bytes())
    })
}

/// Never to an external peer (RFC 4456 §8).
fn encode_originator_id(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    match (e.ebgp, e.attrs.originator_id) {
        (false, Some(id)) => w.put(|o| o.extend_from_slice(&id.octets())),
        _ => Ok(()),
    }
}

/// Never to an external peer (RFC 4456 §8).
fn encode_cluster_list(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    if e.ebgp {
        return Ok(());
    }
    w.put_each(&e.attrs.cluster_list, |id, o| {
        o.extend_from_slice(&id.octets())
    })
}

fn encode_ext_communities(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    w.put_each(&e.attrs.ext_communities, |c, o| o.extend_from_slice(c))
}

/// To a 2-octet peer when the path holds a 4-octet AS, without
/// confederation segments (RFC 6793 §4.2.2).
fn encode_as4_path(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    let Some(p) = e.as4_path else {
        return Ok(());
    };
    w.put(|o| put_as_path(o, p.segments.iter().filter(|s| !is_confed(s)), true))
}

fn encode_as4_aggregator(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    let Some(agg) = e.as4_aggregator else {
        return Ok(());
    };
    w.put(|o| {
        o.extend_from_slice(&agg.asn.to_be_bytes());
        o.extend_from_slice(&agg.address.octets());
    })
}

fn encode_large_communities(e: &Encoding<'_>, w: &mut AttrOut<'_>) -> Result<(), EncodeError> {
    w.put_each(&e.attrs.large_communities, |l, o| {
        o.extend_from_slice(&l.global.to_be_bytes());
        o.extend_from_slice(&l.local1.to_be_bytes());
        o.extend_from_slice(&l.local2.to_be_bytes());
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_known_type_in_type_code_order() {
        let codes: Vec<AttrType> = ATTRIBUTES.iter().map(|r| r.code).collect();
        assert_eq!(codes, AttrType::ALL);
        assert!(codes.is_sorted());
        for t in AttrType::ALL {
            assert_eq!(spec(u8::from(*t)).map(|r| r.code), Some(*t));
        }
        assert!(spec(0).is_none() && spec(26).is_none() && spec(255).is_none());
    }
}
