//! AS_PATH and AS4_PATH on the wire (RFC 4271 §4.3, RFC 6793 §3) and the
//! transition between 2- and 4-octet AS numbers (RFC 6793 §4.2): the merge
//! of AS4_PATH/AS4_AGGREGATOR into AS_PATH/AGGREGATOR after decoding a
//! 2-octet session's UPDATE, and when AS4_PATH/AS4_AGGREGATOR go out to one.

use super::codec::DecodedAttributes;
use super::{Aggregator, AsPath, AsSegment};
use crate::bgp::iana::{AS_TRANS, AttrType};

/// What AS4_PATH/AS4_AGGREGATOR held, for the merge of RFC 6793 §4.2.3.
#[derive(Default)]
pub(super) struct As4 {
    pub path: Option<AsPath>,
    pub aggregator: Option<Aggregator>,
}

pub(super) fn is_confed(s: &AsSegment) -> bool {
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
pub(super) fn decode_as_path(value: &[u8], four_octet: bool) -> Result<AsPath, String> {
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
pub(super) fn merge_as4(d: &mut DecodedAttributes<'_>) {
    let as4 = std::mem::take(&mut d.as4);
    let mut use_as4_path = true;
    match (d.attrs.aggregator, as4.aggregator) {
        (Some(agg), four) if agg.asn != u32::from(AS_TRANS) => {
            use_as4_path = false;
            if four.is_some() {
                d.discard(
                    AttrType::As4Aggregator.into(),
                    "AS4_AGGREGATOR ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)",
                );
            }
            if as4.path.is_some() {
                d.discard(
                    AttrType::As4Path.into(),
                    "AS4_PATH ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)",
                );
            }
        }
        (Some(_), Some(four)) => d.attrs.aggregator = Some(four),
        (None, Some(_)) => d.discard(
            AttrType::As4Aggregator.into(),
            "AS4_AGGREGATOR ignored: no AGGREGATOR (RFC 6793 §4.2.3)",
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
            AttrType::As4Path.into(),
            "AS4_PATH ignored: it holds more ASes than AS_PATH (RFC 6793 §4.2.3)",
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

fn is_wide(asn: u32) -> bool {
    asn > u32::from(u16::MAX)
}

/// To a 2-octet peer, AS4_PATH goes with a path holding a 4-octet AS (RFC
/// 6793 §4.2.2).
pub(super) fn needs_as4_path(p: &AsPath) -> bool {
    p.segments
        .iter()
        .any(|s| segment_asns(s).iter().any(|&a| is_wide(a)))
}

/// To a 2-octet peer, AS4_AGGREGATOR goes with an aggregator of a 4-octet
/// AS (RFC 6793 §4.2.2), and also whenever AS4_PATH goes: a receiver
/// ignores AS4_PATH unless AGGREGATOR carries AS_TRANS (§4.2.3), so the
/// aggregator then goes out as AS_TRANS plus AS4_AGGREGATOR even when its
/// AS would fit.
pub(super) fn needs_as4_aggregator(a: &Aggregator, with_as4_path: bool) -> bool {
    is_wide(a.asn) || with_as4_path
}

pub(super) fn two_octet(asn: u32) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS)
}

/// Segments of up to 255 ASes each; empty segments are left out (RFC 7606
/// §7.2 makes them malformed).
pub(super) fn put_as_path<'s>(
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
