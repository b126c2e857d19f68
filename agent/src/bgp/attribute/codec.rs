//! What is the same for every path attribute: the attribute header and
//! its Extended Length bit (RFC 4271 §4.3), an attribute running past the
//! path attributes (RFC 7606 §4, §5.3), repeats (RFC 7606 §3 g), flags in
//! conflict with the attribute's row (RFC 7606 §3 c), unknown attributes
//! (RFC 4271 §5, §6.3), and the type-code order of encoding. The rest is
//! each attribute's row in [`super::table`].

use super::as_path::{As4, merge_as4};
use super::table::{Encoding, Fault, encode_rows, expected_flags, spec};
use super::{AttributeIssue, PathAttributes, RawAttribute, flags};
use crate::bgp::codec_config::CodecConfig;
use crate::bgp::error::{DecodeError, EncodeError};
use crate::bgp::iana::{AttrType, UpdateSubcode};

/// One attribute as framed in an UPDATE.
#[derive(Copy, Clone, Debug)]
pub(crate) struct WireAttribute<'a> {
    /// The type code.
    pub code: u8,
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
    /// AS4_PATH/AS4_AGGREGATOR until they are merged (RFC 6793 §4.2.3).
    pub(super) as4: As4,
    seen: [u64; 4],
}

impl DecodedAttributes<'_> {
    /// True when an attribute of this type was present, even if it was
    /// then found malformed.
    pub fn seen(&self, t: AttrType) -> bool {
        let type_code = u8::from(t);
        self.seen[usize::from(type_code / 64)] & (1 << (type_code % 64)) != 0
    }

    fn seen_code(&self, type_code: u8) -> bool {
        self.seen[usize::from(type_code / 64)] & (1 << (type_code % 64)) != 0
    }

    fn mark(&mut self, type_code: u8) {
        self.seen[usize::from(type_code / 64)] |= 1 << (type_code % 64);
    }

    /// Record a treat-as-withdraw fault of attribute `type_code`.
    pub(super) fn withdraw(&mut self, type_code: u8, reason: impl Into<String>) {
        let reason = reason.into();
        self.treat_as_withdraw
            .push(AttributeIssue { type_code, reason });
    }

    /// Record an attribute-discard fault of attribute `type_code`.
    pub(super) fn discard(&mut self, type_code: u8, reason: impl Into<String>) {
        let reason = reason.into();
        self.discarded.push(AttributeIssue { type_code, reason });
    }
}

/// Decode the Path Attributes field of an UPDATE (RFC 4271 §4.3) under
/// RFC 7606. Returns an error only for the faults that reset the session.
pub(crate) fn decode_attributes<'a>(
    buf: &'a [u8],
    cfg: &CodecConfig,
) -> Result<DecodedAttributes<'a>, DecodeError> {
    let mut d = DecodedAttributes::default();
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
        let row = spec(type_code);
        let carries_nlri = row.is_some_and(|r| r.carries_nlri);
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
            if carries_nlri {
                return Err(DecodeError::new(
                    UpdateSubcode::OptionalAttribute,
                    rest.to_vec(),
                    format!(
                        "{} runs past the path attributes, so its NLRI cannot be located (RFC 7606 §4, §5.3)",
                        AttrType::name_of(type_code)
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
            code: type_code,
            raw,
            value: &raw[hdr..],
        };
        if d.seen_code(type_code) {
            if carries_nlri {
                return Err(DecodeError::new(
                    UpdateSubcode::MalformedAttributeList,
                    Vec::new(),
                    format!(
                        "{} appears twice (RFC 7606 §3 g)",
                        AttrType::name_of(type_code)
                    ),
                ));
            }
            d.discard(
                type_code,
                format!(
                    "repeated attribute {type_code} ({}) discarded, the first kept (RFC 7606 §3 g)",
                    AttrType::name_of(type_code)
                ),
            );
            continue;
        }
        d.mark(type_code);
        let Some(row) = row else {
            unknown(&mut d, attr_flags, a)?;
            continue;
        };
        if (attr_flags ^ row.flags) & (flags::OPTIONAL | flags::TRANSITIVE) != 0 {
            let why = format!(
                "{} flags {attr_flags:#04x} conflict with the expected {:#04x}",
                row.code, row.flags
            );
            match row.bad_flags {
                Fault::Withdraw => {
                    // The NLRI of an MP attribute are still located: they
                    // are what the UPDATE withdraws.
                    if carries_nlri {
                        (row.decode)(&mut d, a, cfg);
                    }
                    d.withdraw(type_code, format!("{why} (RFC 7606 §3 c)"));
                }
                Fault::Discard(rfc) => d.discard(type_code, format!("{why} ({rfc})")),
            }
            continue;
        }
        (row.decode)(&mut d, a, cfg);
    }
    if !cfg.four_octet_as {
        merge_as4(&mut d);
    }
    d.attrs.unknown.sort_by_key(|u| u.type_code);
    Ok(d)
}

/// An attribute Steer does not know: a well-known one resets the session
/// (RFC 4271 §6.3), an optional transitive one is kept, an optional
/// non-transitive one dropped (RFC 4271 §5).
fn unknown(
    d: &mut DecodedAttributes<'_>,
    attr_flags: u8,
    a: WireAttribute<'_>,
) -> Result<(), DecodeError> {
    if attr_flags & flags::OPTIONAL == 0 {
        return Err(DecodeError::new(
            UpdateSubcode::UnrecognizedWellKnown,
            a.raw.to_vec(),
            format!(
                "unrecognized well-known attribute {} (RFC 4271 §6.3)",
                a.code
            ),
        ));
    }
    if attr_flags & flags::TRANSITIVE != 0 {
        d.attrs.unknown.push(RawAttribute {
            flags: attr_flags & (flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL),
            type_code: a.code,
            value: a.value.to_vec(),
        });
    }
    Ok(())
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
/// Each row's encoder decides whether its attribute goes out: on a 2-octet
/// session AS_PATH/AGGREGATOR carry AS_TRANS and AS4_PATH/AS4_AGGREGATOR
/// are added (RFC 6793 §4.2.2, §4.2.3); to an external peer LOCAL_PREF (RFC
/// 4271 §5.1.5), ORIGINATOR_ID and CLUSTER_LIST (RFC 4456 §8) are never
/// sent. Unknown attributes go out optional transitive with the Partial
/// bit (RFC 4271 §5); an entry of `unknown` with a code Steer knows is
/// skipped.
pub(crate) fn encode_attributes(
    attrs: &PathAttributes,
    cfg: &CodecConfig,
    opts: EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let base = out.len();
    let mut unknown: Vec<&RawAttribute> = attrs
        .unknown
        .iter()
        .filter(|u| spec(u.type_code).is_none())
        .collect();
    unknown.sort_by_key(|u| u.type_code);
    let mut unknown = unknown.into_iter().peekable();
    let mut unknown_below = |limit: u16, out: &mut Vec<u8>| -> Result<(), EncodeError> {
        while let Some(u) = unknown.next_if(|u| u16::from(u.type_code) < limit) {
            put_raw(
                out,
                flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL,
                u.type_code,
                |o| o.extend_from_slice(&u.value),
            )?;
        }
        Ok(())
    };
    let e = Encoding::new(attrs, cfg, opts);
    let mp = encode_rows(&e, out, |t, out| unknown_below(u8::from(t).into(), out))?;
    unknown_below(256, out)?;
    Ok(mp - base)
}

/// Append attribute `t`, with the flags of its row, whose value `value`
/// writes.
pub(crate) fn put_attribute(
    out: &mut Vec<u8>,
    t: AttrType,
    value: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    put_raw(out, expected_flags(t), t.into(), value)
}

/// Append one attribute whose value `value` writes, with the Extended
/// Length bit only when the value exceeds 255 octets.
pub(super) fn put_raw(
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
