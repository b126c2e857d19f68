//! IP prefixes: the keys of every table in Steer (RIBs, the kernel FIB plan,
//! the XDP LPM maps). Always canonical: host bits are zero, so two equal
//! networks compare and hash equal.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address family, as BGP numbers it (RFC 4760 AFI).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    /// AFI 1.
    Ipv4,
    /// AFI 2.
    Ipv6,
}

impl Afi {
    /// The IANA address family number.
    pub fn code(self) -> u16 {
        match self {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
        }
    }

    /// Longest prefix length of the family.
    pub fn max_len(self) -> u8 {
        match self {
            Afi::Ipv4 => 32,
            Afi::Ipv6 => 128,
        }
    }
}

impl fmt::Display for Afi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Afi::Ipv4 => "ipv4",
            Afi::Ipv6 => "ipv6",
        })
    }
}

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// No `/len`, bad address or bad length.
    #[error("`{0}` is not a prefix (expected ADDRESS/LENGTH, e.g. 10.1.0.0/16)")]
    Syntax(String),
    /// The length exceeds the family's address width.
    #[error("prefix length {len} is longer than {max} in `{text}`")]
    Length { text: String, len: u8, max: u8 },
    /// Bits set beyond the prefix length.
    #[error("`{text}` has host bits set; did you mean {canonical}?")]
    HostBits { text: String, canonical: String },
}

/// An IPv4 or IPv6 network, canonical (host bits zero).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// An IPv4 network.
    V4 { addr: Ipv4Addr, len: u8 },
    /// An IPv6 network.
    V6 { addr: Ipv6Addr, len: u8 },
}

fn mask4(addr: Ipv4Addr, len: u8) -> Ipv4Addr {
    let bits = u32::from(addr);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ipv4Addr::from(bits & mask)
}

fn mask6(addr: Ipv6Addr, len: u8) -> Ipv6Addr {
    let bits = u128::from(addr);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Ipv6Addr::from(bits & mask)
}

// `len` is the prefix length, not a size: there is nothing to be empty.
#[allow(clippy::len_without_is_empty)]
impl Prefix {
    /// A prefix from an address and length, clearing host bits.
    /// Lengths beyond the family's width are clamped to it.
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        match addr {
            IpAddr::V4(a) => {
                let len = len.min(32);
                Prefix::V4 {
                    addr: mask4(a, len),
                    len,
                }
            }
            IpAddr::V6(a) => {
                let len = len.min(128);
                Prefix::V6 {
                    addr: mask6(a, len),
                    len,
                }
            }
        }
    }

    /// The host route (/32 or /128) for one address.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix::new(addr, if addr.is_ipv4() { 32 } else { 128 })
    }

    /// The default route of a family.
    pub fn default_route(afi: Afi) -> Prefix {
        match afi {
            Afi::Ipv4 => Prefix::V4 {
                addr: Ipv4Addr::UNSPECIFIED,
                len: 0,
            },
            Afi::Ipv6 => Prefix::V6 {
                addr: Ipv6Addr::UNSPECIFIED,
                len: 0,
            },
        }
    }

    /// Parse strictly: host bits set is an error naming the canonical form.
    pub fn parse_strict(text: &str) -> Result<Prefix, PrefixError> {
        let (addr, len) = split(text)?;
        let p = Prefix::new(addr, len);
        if p.addr() != addr {
            return Err(PrefixError::HostBits {
                text: text.to_string(),
                canonical: p.to_string(),
            });
        }
        Ok(p)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        match *self {
            Prefix::V4 { addr, .. } => IpAddr::V4(addr),
            Prefix::V6 { addr, .. } => IpAddr::V6(addr),
        }
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        match *self {
            Prefix::V4 { len, .. } | Prefix::V6 { len, .. } => len,
        }
    }

    /// The address family.
    pub fn afi(&self) -> Afi {
        match self {
            Prefix::V4 { .. } => Afi::Ipv4,
            Prefix::V6 { .. } => Afi::Ipv6,
        }
    }

    /// True when `addr` lies inside this network.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        match (*self, addr) {
            (Prefix::V4 { addr: net, len }, IpAddr::V4(a)) => mask4(a, len) == net,
            (Prefix::V6 { addr: net, len }, IpAddr::V6(a)) => mask6(a, len) == net,
            _ => false,
        }
    }

    /// True when `other` is this network or a more specific one inside it.
    pub fn covers(&self, other: &Prefix) -> bool {
        self.afi() == other.afi() && other.len() >= self.len() && self.contains_addr(other.addr())
    }

    /// The address bytes that the prefix length covers (`ceil(len/8)`
    /// octets), as BGP NLRI encodes them.
    pub fn significant_octets(&self) -> Vec<u8> {
        let n = usize::from(self.len()).div_ceil(8);
        match self.addr() {
            IpAddr::V4(a) => a.octets()[..n].to_vec(),
            IpAddr::V6(a) => a.octets()[..n].to_vec(),
        }
    }
}

fn split(text: &str) -> Result<(IpAddr, u8), PrefixError> {
    let syntax = || PrefixError::Syntax(text.to_string());
    let (a, l) = text.trim().split_once('/').ok_or_else(syntax)?;
    let addr = IpAddr::from_str(a).map_err(|_| syntax())?;
    let len: u8 = l.parse().map_err(|_| syntax())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(PrefixError::Length {
            text: text.to_string(),
            len,
            max,
        });
    }
    Ok((addr, len))
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// Lenient parse: host bits are cleared (as `ip route` does).
    fn from_str(text: &str) -> Result<Prefix, PrefixError> {
        let (addr, len) = split(text)?;
        Ok(Prefix::new(addr, len))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len())
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let s = String::deserialize(d)?;
        Prefix::parse_strict(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_clears_host_bits() {
        let p = Prefix::new("10.1.2.3".parse().unwrap(), 16);
        assert_eq!(p.to_string(), "10.1.0.0/16");
        let p = Prefix::new("2001:db8::1".parse().unwrap(), 32);
        assert_eq!(p.to_string(), "2001:db8::/32");
    }

    #[test]
    fn strict_parse_names_the_canonical_form() {
        let e = Prefix::parse_strict("10.1.0.4/16").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`10.1.0.4/16` has host bits set; did you mean 10.1.0.0/16?"
        );
        assert!(matches!(
            Prefix::parse_strict("10.0.0.0/33"),
            Err(PrefixError::Length {
                len: 33,
                max: 32,
                ..
            })
        ));
        assert!(matches!(
            Prefix::parse_strict("10.0.0.0"),
            Err(PrefixError::Syntax(_))
        ));
        assert_eq!(
            Prefix::parse_strict("0.0.0.0/0").unwrap(),
            Prefix::default_route(Afi::Ipv4)
        );
    }

    #[test]
    fn covers_is_reflexive_and_respects_family_and_length() {
        let vnet: Prefix = "10.1.0.0/16".parse().unwrap();
        assert!(vnet.covers(&vnet));
        assert!(vnet.covers(&"10.1.2.0/24".parse().unwrap()));
        assert!(!vnet.covers(&"10.0.0.0/8".parse().unwrap()));
        assert!(!vnet.covers(&"10.2.0.0/24".parse().unwrap()));
        assert!(!vnet.covers(&"::/0".parse().unwrap()));
        assert!(Prefix::default_route(Afi::Ipv4).covers(&vnet));
    }

    #[test]
    fn significant_octets_follow_length() {
        let p: Prefix = "10.1.128.0/17".parse().unwrap();
        assert_eq!(p.significant_octets(), vec![10, 1, 128]);
        assert!(
            Prefix::default_route(Afi::Ipv6)
                .significant_octets()
                .is_empty()
        );
    }
}
