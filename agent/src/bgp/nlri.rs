//! Address families and NLRI: the prefix encoding of RFC 4271 §4.3, the
//! multiprotocol families of RFC 4760, and ADD-PATH path identifiers
//! (RFC 7911 §3).
//!
//! Decoding masks host bits past the prefix length (RFC 4271 §4.3: "trailing
//! bits are irrelevant") and refuses a length beyond the family's width or a
//! prefix cut short, which RFC 7606 §5.3 makes a session reset (3/10).

use super::error::DecodeError;
use super::iana::UpdateSubcode;
use crate::prefix::{Afi, Prefix};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An AFI/SAFI pair as carried on the wire. Unknown pairs are kept so that
/// capabilities can be echoed and logged; only IPv4/IPv6 unicast carry routes.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Family {
    /// Address Family Identifier.
    pub afi: u16,
    /// Subsequent Address Family Identifier.
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast (1/1).
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast (2/1).
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };

    /// The unicast family of an address family.
    pub fn unicast(afi: Afi) -> Family {
        match afi {
            Afi::Ipv4 => Family::IPV4_UNICAST,
            Afi::Ipv6 => Family::IPV6_UNICAST,
        }
    }

    /// The address family, when it is one Steer routes.
    pub fn afi(self) -> Option<Afi> {
        match (self.afi, self.safi) {
            (1, 1) => Some(Afi::Ipv4),
            (2, 1) => Some(Afi::Ipv6),
            _ => None,
        }
    }

    /// Index 0 for IPv4 unicast, 1 for IPv6 unicast; for per-family arrays.
    pub fn index(self) -> Option<usize> {
        self.afi().map(|a| match a {
            Afi::Ipv4 => 0,
            Afi::Ipv6 => 1,
        })
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.afi, self.safi) {
            (1, 1) => f.write_str("ipv4-unicast"),
            (2, 1) => f.write_str("ipv6-unicast"),
            (a, s) => write!(f, "afi{a}/safi{s}"),
        }
    }
}

impl fmt::Debug for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One NLRI entry: a prefix and, under ADD-PATH, its path identifier
/// (0 when ADD-PATH is not in use for the family and direction).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Nlri {
    /// The network.
    pub prefix: Prefix,
    /// RFC 7911 path identifier, or 0.
    pub path_id: u32,
}

impl Nlri {
    /// An NLRI without a path identifier.
    pub fn new(prefix: Prefix) -> Nlri {
        Nlri { prefix, path_id: 0 }
    }
}

impl Nlri {
    /// Octets this NLRI takes on the wire, with or without a path id.
    pub fn encoded_len(&self, add_path: bool) -> usize {
        let (len, _) = clamped(&self.prefix);
        4 * usize::from(add_path) + 1 + usize::from(len).div_ceil(8)
    }

    /// Append the wire form: `[path id (4)] length (1) prefix (ceil(len/8))`.
    pub fn encode(&self, add_path: bool, out: &mut Vec<u8>) {
        if add_path {
            out.extend_from_slice(&self.path_id.to_be_bytes());
        }
        let (len, _) = clamped(&self.prefix);
        let n = usize::from(len).div_ceil(8);
        out.push(len);
        match self.prefix {
            Prefix::V4 { addr, .. } => out.extend_from_slice(&addr.octets()[..n]),
            Prefix::V6 { addr, .. } => out.extend_from_slice(&addr.octets()[..n]),
        }
    }
}

/// The prefix length, clamped to the family width so that a hand-built
/// `Prefix` with a bad length can never make the encoder slice past the
/// address.
fn clamped(p: &Prefix) -> (u8, u8) {
    let max = p.afi().max_len();
    (p.len().min(max), max)
}

/// Decode a run of NLRI of family `afi` (a Withdrawn Routes field, an NLRI
/// field, or the NLRI of MP_REACH/MP_UNREACH), appending to `out`. With
/// `add_path` each entry starts with a 4-octet path id (RFC 7911 §3).
///
/// Errors are UPDATE Message Error / Invalid Network Field (3/10), the
/// session reset RFC 7606 §5.3 requires when NLRI cannot be parsed; `what`
/// names the field for the reason.
pub fn decode_nlri(
    buf: &[u8],
    afi: Afi,
    add_path: bool,
    what: &str,
    out: &mut Vec<Nlri>,
) -> Result<(), DecodeError> {
    if buf.is_empty() {
        return Ok(());
    }
    let typical = match afi {
        Afi::Ipv4 => 4,
        Afi::Ipv6 => 8,
    } + 4 * usize::from(add_path);
    out.reserve(buf.len() / typical + 1);
    let max = afi.max_len();
    let mut rest = buf;
    while !rest.is_empty() {
        let path_id = if add_path {
            let Some((id, tail)) = rest.split_first_chunk::<4>() else {
                return Err(invalid(what, buf, rest, "path id cut short (RFC 7911 §3)"));
            };
            rest = tail;
            u32::from_be_bytes(*id)
        } else {
            0
        };
        let Some((&len, tail)) = rest.split_first() else {
            return Err(invalid(
                what,
                buf,
                rest,
                "prefix length missing after path id",
            ));
        };
        if len > max {
            return Err(invalid(
                what,
                buf,
                rest,
                &format!("prefix length {len} exceeds {max} (RFC 4271 §4.3)"),
            ));
        }
        let n = usize::from(len).div_ceil(8);
        let Some((bytes, tail)) = tail.split_at_checked(n) else {
            return Err(invalid(
                what,
                buf,
                rest,
                &format!("/{len} prefix needs {n} octets, {} left", tail.len()),
            ));
        };
        let addr = match afi {
            Afi::Ipv4 => {
                let mut a = [0u8; 4];
                a[..n].copy_from_slice(bytes);
                IpAddr::V4(Ipv4Addr::from(a))
            }
            Afi::Ipv6 => {
                let mut a = [0u8; 16];
                a[..n].copy_from_slice(bytes);
                IpAddr::V6(Ipv6Addr::from(a))
            }
        };
        out.push(Nlri {
            prefix: Prefix::new(addr, len),
            path_id,
        });
        rest = tail;
    }
    Ok(())
}

fn invalid(what: &str, all: &[u8], rest: &[u8], why: &str) -> DecodeError {
    DecodeError::new(
        UpdateSubcode::InvalidNetworkField,
        Vec::new(),
        format!(
            "malformed {what} at offset {}: {why} (RFC 7606 §5.3)",
            all.len() - rest.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(buf: &[u8], afi: Afi, add_path: bool) -> Result<Vec<Nlri>, DecodeError> {
        let mut out = Vec::new();
        decode_nlri(buf, afi, add_path, "NLRI field", &mut out).map(|()| out)
    }

    fn n(text: &str, path_id: u32) -> Nlri {
        Nlri {
            prefix: text.parse().unwrap(),
            path_id,
        }
    }

    #[test]
    fn ipv4_and_ipv6_prefixes_match_their_hand_written_bytes_both_ways() {
        let cases: [(Nlri, bool, &[u8]); 6] = [
            (n("0.0.0.0/0", 0), false, &[0]),
            (n("10.250.0.0/16", 0), false, &[16, 10, 250]),
            (n("10.1.128.0/17", 0), false, &[17, 10, 1, 128]),
            (n("192.0.2.1/32", 7), true, &[0, 0, 0, 7, 32, 192, 0, 2, 1]),
            (n("2001:db8::/32", 0), false, &[32, 0x20, 0x01, 0x0d, 0xb8]),
            (n("::/0", 0x0102_0304), true, &[1, 2, 3, 4, 0]),
        ];
        for (nlri, add_path, bytes) in cases {
            let mut out = Vec::new();
            nlri.encode(add_path, &mut out);
            assert_eq!(out, bytes, "encode {nlri:?}");
            assert_eq!(nlri.encoded_len(add_path), bytes.len());
            let afi = nlri.prefix.afi();
            assert_eq!(decode(bytes, afi, add_path).unwrap(), vec![nlri]);
        }
    }

    #[test]
    fn decode_masks_trailing_host_bits() {
        assert_eq!(
            decode(&[17, 10, 1, 0xff], Afi::Ipv4, false).unwrap(),
            vec![n("10.1.128.0/17", 0)]
        );
        assert_eq!(
            decode(&[12, 0x20, 0x1f], Afi::Ipv6, false).unwrap(),
            vec![n("2010::/12", 0)]
        );
    }

    #[test]
    fn a_length_beyond_the_family_width_is_invalid_network_field() {
        for (bytes, afi) in [
            (&[33, 1, 2, 3, 4, 5][..], Afi::Ipv4),
            (&[129; 18][..], Afi::Ipv6),
        ] {
            let e = decode(bytes, afi, false).unwrap_err();
            assert_eq!(e.notification, crate::bgp::error::Notification::new(3, 10));
            assert!(e.reason.contains("exceeds"), "{}", e.reason);
        }
    }

    #[test]
    fn a_prefix_or_path_id_cut_short_is_invalid_network_field() {
        for (bytes, add_path) in [
            (&[24, 10, 0][..], false),
            (&[16, 10, 250, 8][..], false),
            (&[0, 0, 1][..], true),
            (&[0, 0, 0, 1][..], true),
        ] {
            let e = decode(bytes, Afi::Ipv4, add_path).unwrap_err();
            assert_eq!(
                e.notification,
                crate::bgp::error::Notification::new(3, 10),
                "{bytes:?}"
            );
            assert!(e.reason.contains("RFC 7606 §5.3"), "{}", e.reason);
        }
    }

    #[test]
    fn encode_clamps_a_hand_built_overlong_prefix_instead_of_panicking() {
        let bad = Nlri::new(Prefix::V4 {
            addr: Ipv4Addr::new(10, 0, 0, 0),
            len: 40,
        });
        let mut out = Vec::new();
        bad.encode(false, &mut out);
        assert_eq!(out, vec![32, 10, 0, 0, 0]);
        assert_eq!(bad.encoded_len(false), 5);
    }
}
