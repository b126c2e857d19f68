//! OPEN optional parameters and capabilities (RFC 5492), with the ones
//! Steer speaks: multiprotocol (RFC 4760), route refresh (RFC 2918),
//! extended messages (RFC 8654), graceful restart (RFC 4724, with the
//! N bit of RFC 8538), 4-octet AS (RFC 6793), ADD-PATH (RFC 7911) and
//! enhanced route refresh (RFC 7313, recognised only). Unknown
//! capabilities are kept verbatim.
//!
//! A known capability whose value has the wrong length is malformed: OPEN
//! Message Error, subcode 0 (Unspecific), as BIRD does; RFC 5492 names no
//! subcode for it. An ADD-PATH value other than 0..=3 makes that capability
//! "not understood" (RFC 7911 §4): it is kept as [`Capability::Unknown`].

use super::error::{DecodeError, EncodeError};
use super::iana::OpenSubcode;
use super::nlri::Family;

/// Capability codes (IANA).
pub mod code {
    /// Multiprotocol Extensions.
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route Refresh.
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended Message.
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// Graceful Restart.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Support for 4-octet AS number.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// ADD-PATH.
    pub const ADD_PATH: u8 = 69;
    /// Enhanced Route Refresh.
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// One capability from an OPEN.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Capability {
    /// Multiprotocol Extensions for one AFI/SAFI (code 1).
    Multiprotocol(Family),
    /// Route Refresh (code 2).
    RouteRefresh,
    /// Extended Message (code 6).
    ExtendedMessage,
    /// Graceful Restart (code 64).
    GracefulRestart(GracefulRestart),
    /// 4-octet AS number (code 65).
    FourOctetAs(u32),
    /// ADD-PATH (code 69): per family, whether the sender can send and/or
    /// receive multiple paths.
    AddPath(Vec<AddPathFamily>),
    /// Enhanced Route Refresh (code 70).
    EnhancedRouteRefresh,
    /// Anything else, verbatim.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        data: Vec<u8>,
    },
}

/// The Graceful Restart capability (RFC 4724 §3, RFC 8538 §2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restarting: bool,
    /// N bit: graceful restart also for NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Restart Time in seconds (12 bits).
    pub restart_time: u16,
    /// Families for which the sender preserves state, with the F bit
    /// (forwarding state preserved across this restart).
    pub families: Vec<(Family, bool)>,
}

/// One family of the ADD-PATH capability (RFC 7911 §4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AddPathFamily {
    /// The family.
    pub family: Family,
    /// The sender can receive multiple paths.
    pub receive: bool,
    /// The sender can send multiple paths.
    pub send: bool,
}

/// Graceful Restart flag bits (RFC 4724 §3, RFC 8538 §2), in the first
/// octet of the capability value, and the per-family F bit.
mod gr {
    pub const RESTARTING: u16 = 0x8000;
    pub const NOTIFICATION: u16 = 0x4000;
    pub const TIME_MASK: u16 = 0x0fff;
    pub const FORWARDING: u8 = 0x80;
}

impl Capability {
    /// The capability code (IANA).
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Append this capability as code, length and value (RFC 5492 §4).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[self.code(), 0]);
        match self {
            Capability::Multiprotocol(f) => {
                out.extend_from_slice(&f.afi.to_be_bytes());
                out.extend_from_slice(&[0, f.safi]);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::GracefulRestart(g) => {
                let mut word = g.restart_time & gr::TIME_MASK;
                if g.restarting {
                    word |= gr::RESTARTING;
                }
                if g.notification {
                    word |= gr::NOTIFICATION;
                }
                out.extend_from_slice(&word.to_be_bytes());
                for (f, forwarding) in &g.families {
                    out.extend_from_slice(&f.afi.to_be_bytes());
                    out.push(f.safi);
                    out.push(if *forwarding { gr::FORWARDING } else { 0 });
                }
            }
            Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Capability::AddPath(families) => {
                for a in families {
                    out.extend_from_slice(&a.family.afi.to_be_bytes());
                    out.push(a.family.safi);
                    out.push(u8::from(a.receive) | (u8::from(a.send) << 1));
                }
            }
            Capability::Unknown { data, .. } => out.extend_from_slice(data),
        }
        let len = out.len() - start - 2;
        match u8::try_from(len) {
            Ok(l) => {
                out[start + 1] = l;
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(EncodeError::TooLarge {
                    what: "capability",
                    limit: 255,
                })
            }
        }
    }

    /// Decode one capability from its code and value (RFC 5492 §4).
    pub fn decode(code: u8, value: &[u8]) -> Result<Capability, DecodeError> {
        let malformed = |expected: &str| {
            DecodeError::new(
                OpenSubcode::Unspecific,
                Vec::new(),
                format!(
                    "malformed capability {code}: {} value octets, expected {expected} (RFC 5492 §4)",
                    value.len()
                ),
            )
        };
        let empty = |cap: Capability| {
            if value.is_empty() {
                Ok(cap)
            } else {
                Err(malformed("0"))
            }
        };
        match code {
            code::MULTIPROTOCOL => match value {
                [a0, a1, _reserved, safi] => Ok(Capability::Multiprotocol(Family {
                    afi: u16::from_be_bytes([*a0, *a1]),
                    safi: *safi,
                })),
                _ => Err(malformed("4")),
            },
            code::ROUTE_REFRESH => empty(Capability::RouteRefresh),
            code::EXTENDED_MESSAGE => empty(Capability::ExtendedMessage),
            code::ENHANCED_ROUTE_REFRESH => empty(Capability::EnhancedRouteRefresh),
            code::GRACEFUL_RESTART => {
                let Some((word, rest)) = value.split_first_chunk::<2>() else {
                    return Err(malformed("2 + 4n"));
                };
                if rest.len() % 4 != 0 {
                    return Err(malformed("2 + 4n"));
                }
                let word = u16::from_be_bytes(*word);
                Ok(Capability::GracefulRestart(GracefulRestart {
                    restarting: word & gr::RESTARTING != 0,
                    notification: word & gr::NOTIFICATION != 0,
                    restart_time: word & gr::TIME_MASK,
                    families: rest
                        .chunks_exact(4)
                        .map(|c| {
                            let f = Family {
                                afi: u16::from_be_bytes([c[0], c[1]]),
                                safi: c[2],
                            };
                            (f, c[3] & gr::FORWARDING != 0)
                        })
                        .collect(),
                }))
            }
            code::FOUR_OCTET_AS => match value.first_chunk::<4>() {
                Some(asn) if value.len() == 4 => {
                    Ok(Capability::FourOctetAs(u32::from_be_bytes(*asn)))
                }
                _ => Err(malformed("4")),
            },
            code::ADD_PATH => {
                if !value.len().is_multiple_of(4) {
                    return Err(malformed("4n"));
                }
                if value.chunks_exact(4).any(|c| c[3] > 3) {
                    return Ok(Capability::Unknown {
                        code,
                        data: value.to_vec(),
                    });
                }
                Ok(Capability::AddPath(
                    value
                        .chunks_exact(4)
                        .map(|c| AddPathFamily {
                            family: Family {
                                afi: u16::from_be_bytes([c[0], c[1]]),
                                safi: c[2],
                            },
                            receive: c[3] & 1 != 0,
                            send: c[3] & 2 != 0,
                        })
                        .collect(),
                ))
            }
            _ => Ok(Capability::Unknown {
                code,
                data: value.to_vec(),
            }),
        }
    }
}

/// Decode the value of one Capabilities optional parameter (RFC 5492 §4):
/// any number of capabilities back to back, appended to `out` in order.
/// A capability that overruns the parameter is an OPEN Message Error 2/0.
pub fn decode_capabilities(buf: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let mut rest = buf;
    while let Some((&[code, len], tail)) = rest.split_first_chunk::<2>() {
        let Some((value, tail)) = tail.split_at_checked(usize::from(len)) else {
            return Err(DecodeError::new(
                OpenSubcode::Unspecific,
                Vec::new(),
                format!(
                    "capability {code} of {len} octets overruns its parameter ({} left) (RFC 5492 §4)",
                    tail.len()
                ),
            ));
        };
        out.push(Capability::decode(code, value)?);
        rest = tail;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::new(
            OpenSubcode::Unspecific,
            Vec::new(),
            "capability header cut short (RFC 5492 §4)",
        ))
    }
}

#[cfg(test)]
#[path = "codec/capability_tests.rs"]
mod tests;
