//! BGP messages (RFC 4271 §4): framing, OPEN, UPDATE, NOTIFICATION,
//! KEEPALIVE and ROUTE-REFRESH (RFC 2918), with extended message sizes
//! (RFC 8654), MP_REACH/MP_UNREACH (RFC 4760), ADD-PATH NLRI (RFC 7911) and
//! 2-octet AS sessions (RFC 6793). Pure: bytes in, values out; no I/O.
//!
//! UPDATE decoding follows RFC 7606: an error that leaves the message
//! parseable is reported on the [`Update`] (treat-as-withdraw or attribute
//! discard) and the session continues; anything else is a [`DecodeError`]
//! carrying the NOTIFICATION to send.

use super::attribute::PathAttributes;
use super::capability::Capability;
use super::error::{DecodeError, EncodeError, Notification};
use super::nlri::{Family, Nlri};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the fixed header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// Maximum message size without RFC 8654.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Maximum message size with RFC 8654 extended messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// AS_TRANS (RFC 6793): the 2-octet stand-in for a 4-octet AS.
pub const AS_TRANS: u16 = 23456;

/// Message type codes.
pub mod kind {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH.
    pub const ROUTE_REFRESH: u8 = 5;
}

/// How one session encodes and decodes, from what its OPENs negotiated.
/// The default (nothing negotiated) is right for the OPEN exchange itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecConfig {
    /// Both sides sent the 4-octet AS capability.
    pub four_octet_as: bool,
    /// Both sides sent the extended message capability.
    pub extended_message: bool,
    /// Per family index ([`Family::index`]): NLRI we receive carry path ids.
    pub add_path_receive: [bool; 2],
    /// Per family index: NLRI we send carry path ids.
    pub add_path_send: [bool; 2],
    /// The peer is external: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST
    /// from it are discarded (RFC 7606 §7.5, RFC 4456 §8).
    pub ebgp: bool,
}

impl CodecConfig {
    /// The largest UPDATE/NOTIFICATION/ROUTE-REFRESH this session carries.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

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
    pub fn new(asn: u32, hold_time: u16, router_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
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
}

/// One attribute problem that RFC 7606 lets the session survive.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AttributeIssue {
    /// The attribute's type code.
    pub type_code: u8,
    /// What was wrong and the RFC section that decides the outcome.
    pub reason: String,
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
    pub fn end_of_rib(&self) -> Option<Family> {
        let no_attrs = self.attributes == PathAttributes::default();
        if !no_attrs || !self.withdrawn.is_empty() || !self.nlri.is_empty() || self.mp_reach.is_some() {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Family::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
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
pub fn frame_len(buf: &[u8], cfg: &CodecConfig) -> Result<Option<usize>, DecodeError> {
    let _ = (buf, cfg);
    todo!("codec")
}

/// Decode one whole message (header included, exactly `frame_len` octets).
pub fn decode(msg: &[u8], cfg: &CodecConfig) -> Result<Message, DecodeError> {
    let _ = (msg, cfg);
    todo!("codec")
}

impl Message {
    /// Append this message's encoding to `out`.
    pub fn encode(&self, cfg: &CodecConfig, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let _ = (cfg, out);
        todo!("codec")
    }
}

/// Append UPDATEs announcing `nlri` (all of one family) with `attrs` to
/// `out`, packing as many NLRI per message as the size limit allows. IPv4
/// uses NEXT_HOP and the NLRI field; IPv6 uses MP_REACH with
/// `attrs.next_hop` (and its link-local next hop). Path ids are written when
/// `cfg.add_path_send` is set for the family.
pub fn encode_announce(
    cfg: &CodecConfig,
    attrs: &PathAttributes,
    nlri: &[Nlri],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let _ = (cfg, attrs, nlri, out);
    todo!("codec")
}

/// Append UPDATEs withdrawing `nlri` (all of one family), packed.
pub fn encode_withdraw(cfg: &CodecConfig, nlri: &[Nlri], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let _ = (cfg, nlri, out);
    todo!("codec")
}

/// Append the End-of-RIB marker for `family` (RFC 4724 §2).
pub fn encode_end_of_rib(family: Family, out: &mut Vec<u8>) {
    let _ = (family, out);
    todo!("codec")
}
