//! UPDATE (RFC 4271 §4.3) with MP_REACH_NLRI/MP_UNREACH_NLRI for IPv4 and
//! IPv6 unicast (RFC 4760) and ADD-PATH path ids (RFC 7911 §3).
//!
//! Decoding, beyond what [`crate::bgp::attribute`] classifies:
//! - Withdrawn Routes Length or Total Path Attribute Length running past
//!   the message: 3/1 (RFC 4271 §6.3);
//! - NLRI that cannot be parsed, in any of the four places: 3/10 (RFC 7606
//!   §5.3); MP_REACH/MP_UNREACH too short or with a next hop length the
//!   family cannot have: 3/9 with the attribute as data (RFC 7606 §7.11,
//!   §7.12); an MP attribute of a family Steer does not route is dropped
//!   with an attribute-discard issue;
//! - ORIGIN or AS_PATH missing while routes are announced, NEXT_HOP missing
//!   while the NLRI field holds routes (RFC 7606 §3 d), or a next hop that
//!   is not a unicast address (RFC 4271 §6.3): treat-as-withdraw;
//! - treat-as-withdraw in an UPDATE that announces nothing: 3/1 (RFC 7606
//!   §5.2), as BIRD does.
//!
//! Encoding packs NLRI into as few messages as the size limit allows and
//! encodes the attributes once per call.

use super::{CodecConfig, HEADER_LEN, MpReach, MpUnreach, Update, frame};
use crate::bgp::attribute::{
    AttributeIssue, EncodeOptions, PathAttributes, WireAttribute, decode_attributes,
    encode_attributes, expected_flags, flags, put_attribute,
};
use crate::bgp::error::{DecodeError, EncodeError};
use crate::bgp::iana::{AttrType, MessageType, UpdateSubcode};
use crate::bgp::nlri::{Family, Nlri, decode_nlri};
use crate::prefix::Afi;
use std::net::{IpAddr, Ipv6Addr};

/// Decode an UPDATE body (after the header).
pub(super) fn decode(body: &[u8], cfg: &CodecConfig) -> Result<Update, DecodeError> {
    let list_error = |why: String| {
        DecodeError::new(
            UpdateSubcode::MalformedAttributeList,
            Vec::new(),
            format!("{why} (RFC 4271 §6.3)"),
        )
    };
    let Some((&[w0, w1], rest)) = body.split_first_chunk::<2>() else {
        return Err(list_error("no Withdrawn Routes Length".to_string()));
    };
    let wlen = usize::from(u16::from_be_bytes([w0, w1]));
    let Some((withdrawn, rest)) = rest.split_at_checked(wlen) else {
        return Err(list_error(format!(
            "Withdrawn Routes Length {wlen} runs past the message ({} octets left)",
            rest.len()
        )));
    };
    let Some((&[a0, a1], rest)) = rest.split_first_chunk::<2>() else {
        return Err(list_error(format!(
            "no room for the Total Path Attribute Length after {wlen} octets of withdrawn routes"
        )));
    };
    let alen = usize::from(u16::from_be_bytes([a0, a1]));
    let Some((attr_bytes, nlri_bytes)) = rest.split_at_checked(alen) else {
        return Err(list_error(format!(
            "Total Path Attribute Length {alen} runs past the message ({} octets left)",
            rest.len()
        )));
    };
    let add_path = cfg.add_path_receive[0];
    let mut u = Update::default();
    decode_nlri(
        withdrawn,
        Afi::Ipv4,
        add_path,
        "Withdrawn Routes",
        &mut u.withdrawn,
    )?;
    let d = decode_attributes(attr_bytes, cfg)?;
    decode_nlri(nlri_bytes, Afi::Ipv4, add_path, "NLRI field", &mut u.nlri)?;
    let [has_origin, has_as_path, has_next_hop] =
        [AttrType::Origin, AttrType::AsPath, AttrType::NextHop].map(|t| d.seen(t));
    let (mp_reach, mp_unreach) = (d.mp_reach, d.mp_unreach);
    u.attributes = d.attrs;
    u.treat_as_withdraw = d.treat_as_withdraw;
    u.discarded = d.discarded;
    if let Some(a) = mp_reach {
        u.mp_reach = decode_mp_reach(a, cfg, &mut u)?;
    }
    if let Some(a) = mp_unreach {
        u.mp_unreach = decode_mp_unreach(a, cfg, &mut u)?;
    }

    let reach = !u.nlri.is_empty() || u.mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
    if reach {
        for (present, t) in [
            (has_origin, AttrType::Origin),
            (has_as_path, AttrType::AsPath),
        ] {
            if !present {
                treat_as_withdraw(
                    &mut u,
                    t,
                    format!("well-known mandatory {t} is missing (RFC 7606 §3 d)"),
                );
            }
        }
        if !u.nlri.is_empty() && !has_next_hop {
            treat_as_withdraw(
                &mut u,
                AttrType::NextHop,
                "NEXT_HOP is missing with routes in the NLRI field (RFC 7606 §3 d, RFC 4760 §3)"
                    .to_string(),
            );
        }
    }
    if let (false, Some(nh)) = (u.nlri.is_empty(), u.attributes.next_hop)
        && !is_unicast(nh)
    {
        treat_as_withdraw(
            &mut u,
            AttrType::NextHop,
            format!("NEXT_HOP {nh} is not a unicast host address (RFC 4271 §6.3, RFC 7606 §7.3)"),
        );
    }
    if !reach && let Some(first) = u.treat_as_withdraw.first() {
        return Err(DecodeError::new(
            UpdateSubcode::MalformedAttributeList,
            Vec::new(),
            format!(
                "treat-as-withdraw in an UPDATE that announces no route, after: {} (RFC 7606 §5.2)",
                first.reason
            ),
        ));
    }
    Ok(u)
}

fn treat_as_withdraw(u: &mut Update, t: AttrType, reason: String) {
    u.treat_as_withdraw.push(AttributeIssue {
        type_code: t.into(),
        reason,
    });
}

fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[0] != 0 && a.octets()[0] < 224,
        IpAddr::V6(a) => !a.is_unspecified() && !a.is_multicast(),
    }
}

fn optional_error(a: WireAttribute<'_>, why: String) -> DecodeError {
    DecodeError::new(UpdateSubcode::OptionalAttribute, a.raw.to_vec(), why)
}

fn unrouted(u: &mut Update, t: AttrType, family: Family) {
    u.discarded.push(AttributeIssue {
        type_code: t.into(),
        reason: format!("{t} of {family}, a family Steer does not route, ignored (RFC 4760 §6)"),
    });
}

fn decode_mp_reach(
    a: WireAttribute<'_>,
    cfg: &CodecConfig,
    u: &mut Update,
) -> Result<Option<MpReach>, DecodeError> {
    let Some((&[f0, f1, safi, nh_len], rest)) = a.value.split_first_chunk::<4>() else {
        return Err(optional_error(
            a,
            format!(
                "MP_REACH_NLRI of {} octets is shorter than 5 (RFC 7606 §7.11)",
                a.value.len()
            ),
        ));
    };
    let family = Family {
        afi: u16::from_be_bytes([f0, f1]),
        safi,
    };
    let (Some(afi), Some(index)) = (family.afi(), family.index()) else {
        unrouted(u, AttrType::MpReachNlri, family);
        return Ok(None);
    };
    let Some((nh, rest)) = rest.split_at_checked(usize::from(nh_len)) else {
        return Err(optional_error(
            a,
            format!(
                "MP_REACH_NLRI next hop length {nh_len} runs past the attribute (RFC 7606 §7.11)"
            ),
        ));
    };
    let Some((_reserved, nlri)) = rest.split_first() else {
        return Err(optional_error(
            a,
            "MP_REACH_NLRI ends before its Reserved octet (RFC 7606 §7.11)".to_string(),
        ));
    };
    let next_hops = match afi {
        Afi::Ipv4 => <[u8; 4]>::try_from(nh)
            .ok()
            .map(|a| (IpAddr::V4(a.into()), None)),
        Afi::Ipv6 => match nh.split_first_chunk::<16>() {
            Some((global, [])) => Some((IpAddr::V6((*global).into()), None)),
            Some((global, ll)) => <[u8; 16]>::try_from(ll)
                .ok()
                .map(|ll| (IpAddr::V6((*global).into()), Some(Ipv6Addr::from(ll)))),
            None => None,
        },
    };
    let Some((next_hop, link_local)) = next_hops else {
        return Err(optional_error(
            a,
            format!("next hop length {nh_len} is invalid for {family} (RFC 7606 §7.11)"),
        ));
    };
    let mut routes = Vec::new();
    decode_nlri(
        nlri,
        afi,
        cfg.add_path_receive[index],
        "MP_REACH_NLRI",
        &mut routes,
    )?;
    if !routes.is_empty() && !is_unicast(next_hop) {
        treat_as_withdraw(
            u,
            AttrType::MpReachNlri,
            format!(
                "MP_REACH_NLRI next hop {next_hop} is not a unicast host address (RFC 4271 §6.3)"
            ),
        );
    }
    Ok(Some(MpReach {
        family,
        next_hop,
        link_local,
        nlri: routes,
    }))
}

fn decode_mp_unreach(
    a: WireAttribute<'_>,
    cfg: &CodecConfig,
    u: &mut Update,
) -> Result<Option<MpUnreach>, DecodeError> {
    let Some((&[f0, f1, safi], nlri)) = a.value.split_first_chunk::<3>() else {
        return Err(optional_error(
            a,
            format!(
                "MP_UNREACH_NLRI of {} octets is shorter than 3 (RFC 7606 §7.12)",
                a.value.len()
            ),
        ));
    };
    let family = Family {
        afi: u16::from_be_bytes([f0, f1]),
        safi,
    };
    let (Some(afi), Some(index)) = (family.afi(), family.index()) else {
        unrouted(u, AttrType::MpUnreachNlri, family);
        return Ok(None);
    };
    let mut withdrawn = Vec::new();
    decode_nlri(
        nlri,
        afi,
        cfg.add_path_receive[index],
        "MP_UNREACH_NLRI",
        &mut withdrawn,
    )?;
    Ok(Some(MpUnreach { family, withdrawn }))
}

/// Append one UPDATE holding exactly `u`.
pub(super) fn encode(u: &Update, cfg: &CodecConfig, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = frame::begin(out, MessageType::Update);
    if let Err(e) = encode_body(u, cfg, out) {
        out.truncate(start);
        return Err(e);
    }
    frame::end(out, start, cfg.max_message_len(), "UPDATE")
}

fn encode_body(u: &Update, cfg: &CodecConfig, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let too_large = EncodeError::TooLarge {
        what: "UPDATE",
        limit: cfg.max_message_len(),
    };
    let add_path = cfg.add_path_send[0];
    let wpos = out.len();
    out.extend_from_slice(&[0, 0]);
    for n in &u.withdrawn {
        n.encode(add_path, out);
    }
    patch_u16(out, wpos).ok_or(too_large.clone())?;
    let next_hop = match u.attributes.next_hop {
        Some(IpAddr::V4(_)) => true,
        Some(nh) if !u.nlri.is_empty() => {
            return Err(EncodeError::NextHopFamily {
                next_hop: nh,
                family: "ipv4-unicast",
            });
        }
        _ => false,
    };
    let mut attrs = Vec::new();
    let split = encode_attributes(
        &u.attributes,
        cfg,
        EncodeOptions {
            next_hop,
            empty_as_path: false,
        },
        &mut attrs,
    )?;
    let apos = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&attrs[..split]);
    if let Some(r) = &u.mp_reach {
        check_next_hop(r.family, r.next_hop, r.link_local)?;
        let add_path = send_path_ids(cfg, r.family);
        put_attribute(out, AttrType::MpReachNlri, |o| {
            put_mp_reach_head(o, r.family, r.next_hop, r.link_local);
            for n in &r.nlri {
                n.encode(add_path, o);
            }
        })?;
    }
    if let Some(w) = &u.mp_unreach {
        let add_path = send_path_ids(cfg, w.family);
        put_attribute(out, AttrType::MpUnreachNlri, |o| {
            o.extend_from_slice(&w.family.afi.to_be_bytes());
            o.push(w.family.safi);
            for n in &w.withdrawn {
                n.encode(add_path, o);
            }
        })?;
    }
    out.extend_from_slice(&attrs[split..]);
    patch_u16(out, apos).ok_or(too_large)?;
    for n in &u.nlri {
        n.encode(add_path, out);
    }
    Ok(())
}

/// Write at `pos` the length of what follows its two octets.
fn patch_u16(out: &mut [u8], pos: usize) -> Option<()> {
    let len = u16::try_from(out.len() - pos - 2).ok()?;
    out[pos..pos + 2].copy_from_slice(&len.to_be_bytes());
    Some(())
}

fn send_path_ids(cfg: &CodecConfig, family: Family) -> bool {
    family.index().is_some_and(|i| cfg.add_path_send[i])
}

fn family_name(family: Family) -> &'static str {
    match family.afi() {
        Some(Afi::Ipv4) => "ipv4-unicast",
        Some(Afi::Ipv6) => "ipv6-unicast",
        None => "other",
    }
}

fn check_next_hop(
    family: Family,
    next_hop: IpAddr,
    link_local: Option<Ipv6Addr>,
) -> Result<(), EncodeError> {
    match (family.afi(), next_hop, link_local) {
        (Some(Afi::Ipv4), IpAddr::V4(_), None)
        | (Some(Afi::Ipv6), IpAddr::V6(_), _)
        | (None, _, _) => Ok(()),
        _ => Err(EncodeError::NextHopFamily {
            next_hop,
            family: family_name(family),
        }),
    }
}

/// AFI, SAFI, next hop length and next hop(s), Reserved.
fn put_mp_reach_head(
    out: &mut Vec<u8>,
    family: Family,
    next_hop: IpAddr,
    link_local: Option<Ipv6Addr>,
) {
    out.extend_from_slice(&family.afi.to_be_bytes());
    out.push(family.safi);
    let len_pos = out.len();
    out.push(0);
    match next_hop {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
    if let Some(ll) = link_local {
        out.extend_from_slice(&ll.octets());
    }
    out[len_pos] = (out.len() - len_pos - 1) as u8;
    out.push(0);
}

/// Open an MP attribute whose length is not yet known: Extended Length
/// for now, [`close_mp`] shrinks it when the value fits in 255 octets.
fn open_mp(out: &mut Vec<u8>, t: AttrType) -> usize {
    let pos = out.len();
    out.extend_from_slice(&[expected_flags(t) | flags::EXTENDED_LENGTH, t.into(), 0, 0]);
    pos
}

fn close_mp(out: &mut Vec<u8>, pos: usize) {
    let len = out.len() - pos - 4;
    if let Ok(short) = u8::try_from(len) {
        out[pos] &= !flags::EXTENDED_LENGTH;
        out[pos + 2] = short;
        out.remove(pos + 3);
    } else {
        let long = u16::try_from(len).unwrap_or(u16::MAX);
        out[pos + 2..pos + 4].copy_from_slice(&long.to_be_bytes());
    }
}

/// The longest NLRI of a family: a host route, with its path id.
fn max_nlri_len(afi: Afi, add_path: bool) -> usize {
    4 * usize::from(add_path) + 1 + usize::from(afi.max_len()) / 8
}

/// Append UPDATEs announcing `nlri`, all of family `afi`, with `attrs`.
pub(super) fn announce<'a>(
    cfg: &CodecConfig,
    attrs: &PathAttributes,
    afi: Afi,
    nlri: impl Iterator<Item = &'a Nlri>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let family = Family::unicast(afi);
    let add_path = send_path_ids(cfg, family);
    let limit = cfg.max_message_len();
    let next_hop = match (afi, attrs.next_hop) {
        (_, None) => return Err(EncodeError::Missing("NEXT_HOP")),
        (Afi::Ipv4, Some(nh @ IpAddr::V4(_))) | (Afi::Ipv6, Some(nh @ IpAddr::V6(_))) => nh,
        (_, Some(nh)) => {
            return Err(EncodeError::NextHopFamily {
                next_hop: nh,
                family: family_name(family),
            });
        }
    };
    let link_local = attrs.link_local_next_hop.filter(|_| afi == Afi::Ipv6);
    let mut body = Vec::with_capacity(128);
    let split = encode_attributes(
        attrs,
        cfg,
        EncodeOptions {
            next_hop: afi == Afi::Ipv4,
            empty_as_path: true,
        },
        &mut body,
    )?;
    let (low, high) = body.split_at(split);
    let mut head = Vec::new();
    if afi == Afi::Ipv6 {
        put_mp_reach_head(&mut head, family, next_hop, link_local);
    }
    let mp_overhead = if afi == Afi::Ipv6 { 4 + head.len() } else { 0 };
    if HEADER_LEN + 4 + body.len() + mp_overhead + max_nlri_len(afi, add_path) > limit {
        return Err(EncodeError::TooLarge {
            what: "path attributes",
            limit,
        });
    }
    let mut nlri = nlri.peekable();
    while nlri.peek().is_some() {
        let start = frame::begin(out, MessageType::Update);
        out.extend_from_slice(&[0, 0]);
        let apos = out.len();
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(low);
        if afi == Afi::Ipv4 {
            out.extend_from_slice(high);
            let _ = patch_u16(out, apos);
            while let Some(n) =
                nlri.next_if(|n| out.len() - start + n.encoded_len(add_path) <= limit)
            {
                n.encode(add_path, out);
            }
        } else {
            let mp = open_mp(out, AttrType::MpReachNlri);
            out.extend_from_slice(&head);
            while let Some(n) =
                nlri.next_if(|n| out.len() - start + n.encoded_len(add_path) + high.len() <= limit)
            {
                n.encode(add_path, out);
            }
            close_mp(out, mp);
            out.extend_from_slice(high);
            let _ = patch_u16(out, apos);
        }
        frame::patch_len(out, start);
    }
    Ok(())
}

/// Append UPDATEs withdrawing `nlri`, all of family `afi`.
pub(super) fn withdraw<'a>(
    cfg: &CodecConfig,
    afi: Afi,
    nlri: impl Iterator<Item = &'a Nlri>,
    out: &mut Vec<u8>,
) {
    let family = Family::unicast(afi);
    let add_path = send_path_ids(cfg, family);
    let limit = cfg.max_message_len();
    let mut nlri = nlri.peekable();
    while nlri.peek().is_some() {
        let start = frame::begin(out, MessageType::Update);
        if afi == Afi::Ipv4 {
            let wpos = out.len();
            out.extend_from_slice(&[0, 0]);
            while let Some(n) =
                nlri.next_if(|n| out.len() - start + n.encoded_len(add_path) + 2 <= limit)
            {
                n.encode(add_path, out);
            }
            let _ = patch_u16(out, wpos);
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&[0, 0]);
            let apos = out.len();
            out.extend_from_slice(&[0, 0]);
            let mp = open_mp(out, AttrType::MpUnreachNlri);
            out.extend_from_slice(&family.afi.to_be_bytes());
            out.push(family.safi);
            while let Some(n) =
                nlri.next_if(|n| out.len() - start + n.encoded_len(add_path) <= limit)
            {
                n.encode(add_path, out);
            }
            close_mp(out, mp);
            let _ = patch_u16(out, apos);
        }
        frame::patch_len(out, start);
    }
}
