//! BGP messages (RFC 4271 §4): framing, OPEN, UPDATE, NOTIFICATION,
//! KEEPALIVE and ROUTE-REFRESH (RFC 2918), with extended message sizes
//! (RFC 8654), MP_REACH/MP_UNREACH (RFC 4760), ADD-PATH NLRI (RFC 7911) and
//! 2-octet AS sessions (RFC 6793). Pure: bytes in, values out; no I/O.
//!
//! UPDATE decoding follows RFC 7606: an error that leaves the message
//! parseable is reported on the [`Update`] (treat-as-withdraw or attribute
//! discard) and the session continues; anything else is a [`DecodeError`]
//! carrying the NOTIFICATION to send.
//!
//! The work sits in private submodules: `frame` (the header for
//! encoders), `open` (OPEN and its optional parameters) and `update`
//! (UPDATE decoding, RFC 7606 classification of what the attribute codec
//! cannot see, and the packing encoders).

pub use super::attribute::AttributeIssue;
use super::attribute::{PathAttributes, expected_flags};
use super::capability::{AddPathFamily, Capability, GracefulRestart};
pub use super::codec_config::{CodecConfig, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use super::error::{DecodeError, EncodeError, Notification};
use super::iana::{AS_TRANS, AttrType, CapabilityCode, HeaderSubcode, MessageType};
use super::nlri::{Family, Nlri};
use crate::prefix::Afi;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod frame;
mod open;
mod update;

#[cfg(test)]
mod capture_tests;
#[cfg(test)]
pub(crate) mod test_util;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod update_tests;

/// Length of the fixed header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// An OPEN message (RFC 4271 §4.2) with its capabilities (RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// Version, 4.
    pub version: u8,
    /// My Autonomous System as on the wire (AS_TRANS for a 4-octet AS).
    pub my_as: u16,
    /// Hold Time in seconds.
    pub hold_time: u16,
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Capabilities from every Capabilities optional parameter, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`, putting AS_TRANS in My AS when it needs 4 octets.
    /// The caller includes [`Capability::FourOctetAs`] itself.
    pub fn new(
        asn: u32,
        hold_time: u16,
        router_id: Ipv4Addr,
        capabilities: Vec<Capability>,
    ) -> Open {
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            router_id,
            capabilities,
        }
    }

    /// The sender's AS: the 4-octet AS capability's value, else My AS.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// The first capability with this code.
    pub fn capability(&self, code: CapabilityCode) -> Option<&Capability> {
        self.capabilities
            .iter()
            .find(|c| c.code() == u8::from(code))
    }

    /// True when the OPEN carries a capability with this code.
    pub fn has_capability(&self, code: CapabilityCode) -> bool {
        self.capability(code).is_some()
    }

    /// The families of the Multiprotocol capabilities, in order. Empty when
    /// there are none (the session then assumes IPv4 unicast).
    pub fn families(&self) -> impl Iterator<Item = Family> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }

    /// The ADD-PATH mode announced for `family`, the last mention winning
    /// when several ADD-PATH capabilities name it.
    pub fn add_path(&self, family: Family) -> Option<AddPathFamily> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::AddPath(v) => v.iter().rev().find(|a| a.family == family),
                _ => None,
            })
            .next_back()
            .copied()
    }

    /// The Graceful Restart capability, if sent.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
    }
}

/// MP_REACH_NLRI (RFC 4760 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    /// AFI/SAFI.
    pub family: Family,
    /// The (global) next hop.
    pub next_hop: IpAddr,
    /// The link-local next hop of a 32-octet IPv6 next hop.
    pub link_local: Option<Ipv6Addr>,
    /// Reachable NLRI.
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    /// AFI/SAFI.
    pub family: Family,
    /// Withdrawn NLRI.
    pub withdrawn: Vec<Nlri>,
}

/// An UPDATE message (RFC 4271 §4.3), decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 unicast Withdrawn Routes field.
    pub withdrawn: Vec<Nlri>,
    /// Path attributes other than MP_REACH/MP_UNREACH.
    pub attributes: PathAttributes,
    /// IPv4 unicast NLRI field.
    pub nlri: Vec<Nlri>,
    /// MP_REACH_NLRI, if present.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI, if present.
    pub mp_unreach: Option<MpUnreach>,
    /// RFC 7606 treat-as-withdraw: when non-empty, every NLRI this UPDATE
    /// announces (NLRI field and MP_REACH) must be handled as withdrawn.
    pub treat_as_withdraw: Vec<AttributeIssue>,
    /// RFC 7606 attribute discard: attributes dropped, route kept.
    pub discarded: Vec<AttributeIssue>,
}

impl Update {
    /// The family this UPDATE marks End-of-RIB for (RFC 4724 §2): an empty
    /// UPDATE for IPv4 unicast, or one holding only an empty MP_UNREACH.
    /// An UPDATE that lost an attribute to RFC 7606 (say, the empty
    /// MP_UNREACH of a family Steer does not route) is not one.
    pub fn end_of_rib(&self) -> Option<Family> {
        let no_attrs = self.attributes == PathAttributes::default();
        if !no_attrs
            || !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.mp_reach.is_some()
            || !self.treat_as_withdraw.is_empty()
            || !self.discarded.is_empty()
        {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Family::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
    }
}

impl Update {
    /// Every NLRI this UPDATE announces: the NLRI field, then MP_REACH.
    /// Under treat-as-withdraw the caller withdraws these instead.
    pub fn announced(&self) -> impl Iterator<Item = &Nlri> {
        let mp = self.mp_reach.as_ref().map_or(&[][..], |r| &r.nlri[..]);
        self.nlri.iter().chain(mp)
    }

    /// Every NLRI this UPDATE withdraws: the Withdrawn Routes field, then
    /// MP_UNREACH.
    pub fn withdrawals(&self) -> impl Iterator<Item = &Nlri> {
        let mp = self
            .mp_unreach
            .as_ref()
            .map_or(&[][..], |u| &u.withdrawn[..]);
        self.withdrawn.iter().chain(mp)
    }
}

/// A ROUTE-REFRESH message (RFC 2918; subtype from RFC 7313).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: Family,
    /// 0 = normal request (RFC 7313 BoRR/EoRR are 1/2).
    pub subtype: u8,
}

/// Any BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
// UPDATE is the common message; boxing it would add an allocation to each.
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// Check the header at the front of `buf` (RFC 4271 §6.1): marker, length
/// within the session's limit and the type's minimum, known type. Returns
/// the whole message's length once 19 octets are there, `None` before.
///
/// OPEN and KEEPALIVE never exceed 4096 octets, even with extended messages
/// (RFC 8654 §4); ROUTE-REFRESH must be exactly 23 octets since Steer
/// negotiates no ORF (RFC 5291).
pub fn frame_len(buf: &[u8], cfg: &CodecConfig) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    if header[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::new(
            HeaderSubcode::NotSynchronized,
            Vec::new(),
            "marker is not all ones (RFC 4271 §6.1)",
        ));
    }
    let field = [header[16], header[17]];
    let len = usize::from(u16::from_be_bytes(field));
    let bad_length = |why: String| {
        DecodeError::new(
            HeaderSubcode::BadLength,
            field.to_vec(),
            format!("{why} (RFC 4271 §6.1)"),
        )
    };
    let limit = cfg.max_message_len();
    if !(HEADER_LEN..=limit).contains(&len) {
        return Err(bad_length(format!("length {len} is outside 19..={limit}")));
    }
    let Some(kind) = MessageType::from_u8(header[18]) else {
        let other = header[18];
        return Err(DecodeError::new(
            HeaderSubcode::BadType,
            vec![other],
            format!("unknown message type {other} (RFC 4271 §6.1)"),
        ));
    };
    let (min, max) = match kind {
        MessageType::Open => (29, MAX_MESSAGE_LEN),
        MessageType::Update => (23, limit),
        MessageType::Notification => (21, limit),
        MessageType::Keepalive => (HEADER_LEN, HEADER_LEN),
        MessageType::RouteRefresh => (23, 23),
    };
    if !(min..=max).contains(&len) {
        return Err(bad_length(format!(
            "{kind} length {len} is outside {min}..={max}"
        )));
    }
    Ok(Some(len))
}

/// Decode one whole message (header included, exactly `frame_len` octets).
pub fn decode(msg: &[u8], cfg: &CodecConfig) -> Result<Message, DecodeError> {
    let Some(len) = frame_len(msg, cfg)? else {
        return Err(DecodeError::new(
            HeaderSubcode::BadLength,
            Vec::new(),
            format!("{} octets cannot hold the 19-octet header", msg.len()),
        ));
    };
    if len != msg.len() {
        return Err(DecodeError::new(
            HeaderSubcode::BadLength,
            msg[16..18].to_vec(),
            format!(
                "length field says {len}, the message has {} octets",
                msg.len()
            ),
        ));
    }
    let body = &msg[HEADER_LEN..];
    match (MessageType::from_u8(msg[18]), body) {
        (Some(MessageType::Open), _) => open::decode(body).map(Message::Open),
        (Some(MessageType::Update), _) => update::decode(body, cfg).map(Message::Update),
        (Some(MessageType::Notification), [c, subcode, data @ ..]) => Ok(Message::Notification(
            Notification::with_data(*c, *subcode, data.to_vec()),
        )),
        (Some(MessageType::Keepalive), _) => Ok(Message::Keepalive),
        (Some(MessageType::RouteRefresh), &[a0, a1, subtype, safi]) => {
            Ok(Message::RouteRefresh(RouteRefresh {
                family: Family {
                    afi: u16::from_be_bytes([a0, a1]),
                    safi,
                },
                subtype,
            }))
        }
        (_, _) => Err(DecodeError::new(
            HeaderSubcode::BadType,
            vec![msg[18]],
            format!(
                "message type {} with a body of {} octets",
                msg[18],
                body.len()
            ),
        )),
    }
}

impl Message {
    /// Append this message's encoding to `out`. Nothing is appended on
    /// error.
    ///
    /// A NOTIFICATION's data is cut to fit the size limit rather than fail,
    /// since it is sent on the way out of a session. An UPDATE is encoded
    /// as given (missing mandatory attributes included, so tests can build
    /// faulty ones), in one message; see [`encode_announce`] for packing.
    pub fn encode(&self, cfg: &CodecConfig, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Message::Open(open) => open::encode(open, out),
            Message::Update(update) => update::encode(update, cfg, out),
            Message::Notification(n) => {
                let start = frame::begin(out, MessageType::Notification);
                let room = cfg.max_message_len() - 21;
                out.extend_from_slice(&[n.code, n.subcode]);
                out.extend_from_slice(&n.data[..n.data.len().min(room)]);
                frame::end(out, start, cfg.max_message_len(), "NOTIFICATION")
            }
            Message::Keepalive => {
                let start = frame::begin(out, MessageType::Keepalive);
                frame::end(out, start, HEADER_LEN, "KEEPALIVE")
            }
            Message::RouteRefresh(r) => {
                let start = frame::begin(out, MessageType::RouteRefresh);
                out.extend_from_slice(&r.family.afi.to_be_bytes());
                out.extend_from_slice(&[r.subtype, r.family.safi]);
                frame::end(out, start, 23, "ROUTE-REFRESH")
            }
        }
    }
}

/// Append UPDATEs announcing `nlri` (all of one family) with `attrs` to
/// `out`, packing as many NLRI per message as the size limit allows. IPv4
/// uses NEXT_HOP and the NLRI field; IPv6 uses MP_REACH with
/// `attrs.next_hop` (and its link-local next hop). Path ids are written when
/// `cfg.add_path_send` is set for the family.
///
/// The attributes are encoded once per call. ORIGIN and the next hop are
/// required; an absent AS_PATH goes out empty (a locally originated route).
/// NLRI of both families are accepted and sent family by family. On error
/// `out` may hold the messages completed before it.
pub fn encode_announce(
    cfg: &CodecConfig,
    attrs: &PathAttributes,
    nlri: &[Nlri],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let Some(first) = nlri.first() else {
        return Ok(());
    };
    if attrs.origin.is_none() {
        return Err(EncodeError::Missing("ORIGIN"));
    }
    let afi = first.prefix.afi();
    if nlri.iter().all(|n| n.prefix.afi() == afi) {
        return update::announce(cfg, attrs, afi, nlri.iter(), out);
    }
    for afi in [Afi::Ipv4, Afi::Ipv6] {
        let mut of_family = nlri.iter().filter(|n| n.prefix.afi() == afi).peekable();
        if of_family.peek().is_some() {
            update::announce(cfg, attrs, afi, of_family, out)?;
        }
    }
    Ok(())
}

/// Append UPDATEs withdrawing `nlri` (all of one family), packed. IPv4 uses
/// the Withdrawn Routes field, IPv6 MP_UNREACH_NLRI; NLRI of both families
/// are accepted and sent family by family.
pub fn encode_withdraw(
    cfg: &CodecConfig,
    nlri: &[Nlri],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let Some(first) = nlri.first() else {
        return Ok(());
    };
    let afi = first.prefix.afi();
    if nlri.iter().all(|n| n.prefix.afi() == afi) {
        update::withdraw(cfg, afi, nlri.iter(), out);
        return Ok(());
    }
    for afi in [Afi::Ipv4, Afi::Ipv6] {
        let mut of_family = nlri.iter().filter(|n| n.prefix.afi() == afi).peekable();
        if of_family.peek().is_some() {
            update::withdraw(cfg, afi, of_family, out);
        }
    }
    Ok(())
}

/// Append the End-of-RIB marker for `family` (RFC 4724 §2).
pub fn encode_end_of_rib(family: Family, out: &mut Vec<u8>) {
    let start = frame::begin(out, MessageType::Update);
    if family == Family::IPV4_UNICAST {
        out.extend_from_slice(&[0, 0, 0, 0]);
    } else {
        out.extend_from_slice(&[
            0,
            0,
            0,
            6,
            expected_flags(AttrType::MpUnreachNlri),
            AttrType::MpUnreachNlri.into(),
            3,
        ]);
        out.extend_from_slice(&family.afi.to_be_bytes());
        out.push(family.safi);
    }
    frame::patch_len(out, start);
}
