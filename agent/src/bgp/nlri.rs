//! Address families and NLRI: the prefix encoding of RFC 4271 §4.3, the
//! multiprotocol families of RFC 4760, and ADD-PATH path identifiers
//! (RFC 7911 §3).

use crate::prefix::{Afi, Prefix};
use std::fmt;

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
