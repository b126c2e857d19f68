//! OPEN optional parameters and capabilities (RFC 5492), with the ones
//! Steer speaks: multiprotocol (RFC 4760), route refresh (RFC 2918),
//! extended messages (RFC 8654), graceful restart (RFC 4724, with the
//! N bit of RFC 8538), 4-octet AS (RFC 6793), ADD-PATH (RFC 7911) and
//! enhanced route refresh (RFC 7313, recognised only). Unknown
//! capabilities are kept verbatim.
//!
//! Each capability is one row of the `capabilities!` table below: its
//! [`Capability`] variant, its code from [`CapabilityCode`], how its value
//! is read and how it is written; the enum, [`Capability::code`] and the
//! dispatch of decode and encode are generated from those rows, as
//! routecore does for path attributes.
//!
//! A known capability whose value has the wrong length is malformed: OPEN
//! Message Error, subcode 0 (Unspecific), as BIRD does; RFC 5492 names no
//! subcode for it. An ADD-PATH value other than 0..=3 makes that capability
//! "not understood" (RFC 7911 §4): it is kept as [`Capability::Unknown`].

use super::error::{DecodeError, EncodeError};
use super::iana::{CapabilityCode, OpenSubcode};
use super::nlri::Family;

/// Generates [`Capability`] (the rows' variants plus `Unknown`), its
/// `code()`, and the decode and encode of a known capability's value from
/// one row per capability. A row's decoder gets the value and returns the
/// capability, or the length the value should have had; its encoder gets
/// `out` (and the variant's field, by the row's name for it) and appends
/// the value. Every [`CapabilityCode`] needs a row: the decode dispatch is
/// an exhaustive `match`.
macro_rules! capabilities {
    ($(
        $(#[$doc:meta])*
        $variant:ident $(($field:ident: $value:ty))? = $code:ident,
            decode: |$dv:pat_param| $decode:expr,
            encode: |$ev:pat_param| $encode:expr;
    )*) => {
        /// One capability from an OPEN.
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
        pub enum Capability {
            $( $(#[$doc])* $variant $(($value))?, )*
            /// Anything else, verbatim.
            Unknown {
                /// Capability code.
                code: u8,
                /// Capability value.
                data: Vec<u8>,
            },
        }

        impl Capability {
            /// The capability code (IANA).
            pub fn code(&self) -> u8 {
                match self {
                    $( Capability::$variant { .. } => CapabilityCode::$code.into(), )*
                    Capability::Unknown { code, .. } => *code,
                }
            }

            fn encode_value(&self, out: &mut Vec<u8>) {
                match self {
                    $( Capability::$variant $(($field))? => {
                        let $ev: &mut Vec<u8> = out;
                        $encode
                    } )*
                    Capability::Unknown { data, .. } => out.extend_from_slice(data),
                }
            }

            fn decode_value(code: CapabilityCode, value: &[u8]) -> Result<Capability, &'static str> {
                match code {
                    $( CapabilityCode::$code => {
                        let $dv: &[u8] = value;
                        $decode
                    } )*
                }
            }
        }
    };
}

capabilities! {
    /// Multiprotocol Extensions for one AFI/SAFI (code 1).
    Multiprotocol(family: Family) = Multiprotocol,
        decode: |v| match *v {
            [a0, a1, _reserved, safi] => Ok(Capability::Multiprotocol(Family {
                afi: u16::from_be_bytes([a0, a1]),
                safi,
            })),
            _ => Err("4"),
        },
        encode: |out| {
            out.extend_from_slice(&family.afi.to_be_bytes());
            out.extend_from_slice(&[0, family.safi]);
        };
    /// Route Refresh (code 2).
    RouteRefresh = RouteRefresh,
        decode: |v| empty(v, Capability::RouteRefresh),
        encode: |_| ();
    /// Extended Message (code 6).
    ExtendedMessage = ExtendedMessage,
        decode: |v| empty(v, Capability::ExtendedMessage),
        encode: |_| ();
    /// Graceful Restart (code 64).
    GracefulRestart(g: GracefulRestart) = GracefulRestart,
        decode: |v| decode_graceful_restart(v),
        encode: |out| encode_graceful_restart(g, out);
    /// 4-octet AS number (code 65).
    FourOctetAs(asn: u32) = FourOctetAs,
        decode: |v| match *v {
            [a0, a1, a2, a3] => Ok(Capability::FourOctetAs(u32::from_be_bytes([a0, a1, a2, a3]))),
            _ => Err("4"),
        },
        encode: |out| out.extend_from_slice(&asn.to_be_bytes());
    /// ADD-PATH (code 69): per family, whether the sender can send and/or
    /// receive multiple paths.
    AddPath(families: Vec<AddPathFamily>) = AddPath,
        decode: |v| decode_add_path(v),
        encode: |out| {
            for a in families {
                out.extend_from_slice(&a.family.afi.to_be_bytes());
                out.push(a.family.safi);
                out.push(u8::from(a.receive) | (u8::from(a.send) << 1));
            }
        };
    /// Enhanced Route Refresh (code 70).
    EnhancedRouteRefresh = EnhancedRouteRefresh,
        decode: |v| empty(v, Capability::EnhancedRouteRefresh),
        encode: |_| ();
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

/// A capability with no value (RFC 2918 §2, RFC 8654 §3, RFC 7313 §3).
fn empty(value: &[u8], cap: Capability) -> Result<Capability, &'static str> {
    if value.is_empty() { Ok(cap) } else { Err("0") }
}

/// Restart flags and time, then AFI, SAFI and flags per family (RFC 4724
/// §3); flag bits other than R, N and F are ignored.
fn decode_graceful_restart(value: &[u8]) -> Result<Capability, &'static str> {
    let Some((word, rest)) = value.split_first_chunk::<2>() else {
        return Err("2 + 4n");
    };
    if rest.len() % 4 != 0 {
        return Err("2 + 4n");
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

fn encode_graceful_restart(g: &GracefulRestart, out: &mut Vec<u8>) {
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

/// AFI, SAFI and Send/Receive per family (RFC 7911 §4); a Send/Receive
/// value above 3 makes the capability not understood, so it is kept as
/// unknown.
fn decode_add_path(value: &[u8]) -> Result<Capability, &'static str> {
    if !value.len().is_multiple_of(4) {
        return Err("4n");
    }
    if value.chunks_exact(4).any(|c| c[3] > 3) {
        return Ok(Capability::Unknown {
            code: CapabilityCode::AddPath.into(),
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

impl Capability {
    /// Append this capability as code, length and value (RFC 5492 §4).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[self.code(), 0]);
        self.encode_value(out);
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
        let Some(known) = CapabilityCode::from_u8(code) else {
            return Ok(Capability::Unknown {
                code,
                data: value.to_vec(),
            });
        };
        Capability::decode_value(known, value).map_err(|expected| {
            DecodeError::new(
                OpenSubcode::Unspecific,
                Vec::new(),
                format!(
                    "malformed capability {code}: {} value octets, expected {expected} (RFC 5492 §4)",
                    value.len()
                ),
            )
        })
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
mod tests;
