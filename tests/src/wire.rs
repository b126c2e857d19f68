//! Hand-built BGP-4 messages (RFC 4271 §4) for the raw speaker and for
//! reading daemons' logs and captures. Independent of the steer codec on
//! purpose: it is the cross-check, so it builds bytes by hand and parses
//! only what tests need (headers, OPEN, NOTIFICATION, and the IPv4 routes
//! of an UPDATE with the attributes a route server's output is compared on).

use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{Result, bail};

/// The 16-byte all-ones marker.
pub const MARKER: [u8; 16] = [0xff; 16];
/// Header length: marker, 2-byte length, 1-byte type.
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended-message capability (RFC 4271 §4).
pub const MESSAGE_MAX: usize = 4096;
/// Message type codes.
pub const OPEN: u8 = 1;
/// UPDATE.
pub const UPDATE: u8 = 2;
/// NOTIFICATION.
pub const NOTIFICATION: u8 = 3;
/// KEEPALIVE.
pub const KEEPALIVE: u8 = 4;
/// ROUTE-REFRESH (RFC 2918).
pub const ROUTE_REFRESH: u8 = 5;
/// AS_TRANS (RFC 6793), the 2-byte AS field of a 4-byte-AS speaker.
pub const AS_TRANS: u16 = 23456;

/// A complete message: header with the right length, then `body`.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// A KEEPALIVE.
pub fn keepalive() -> Vec<u8> {
    message(KEEPALIVE, &[])
}

/// `msg` with its marker's first byte zeroed (RFC 4271 §6.1: 1/1).
pub fn corrupt_marker(mut msg: Vec<u8>) -> Vec<u8> {
    msg[0] = 0;
    msg
}

/// `msg` with its header length field set to `len` (RFC 4271 §6.1: 1/2).
pub fn with_length(mut msg: Vec<u8>, len: u16) -> Vec<u8> {
    msg[16..18].copy_from_slice(&len.to_be_bytes());
    msg
}

/// One capability TLV (RFC 5492).
pub fn capability(code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![code, value.len() as u8];
    out.extend_from_slice(value);
    out
}

/// Multiprotocol IPv4 unicast (RFC 4760).
pub fn cap_ipv4_unicast() -> Vec<u8> {
    capability(1, &[0, 1, 0, 1])
}

/// 4-octet AS numbers (RFC 6793).
pub fn cap_as4(asn: u32) -> Vec<u8> {
    capability(65, &asn.to_be_bytes())
}

/// ADD-PATH for IPv4 unicast; `mode` 1 receive, 2 send, 3 both (RFC 7911).
pub fn cap_add_path_ipv4(mode: u8) -> Vec<u8> {
    capability(69, &[0, 1, 1, mode])
}

/// An OPEN with the given capabilities in one optional parameter (type 2).
/// A 4-byte `asn` goes in the AS4 capability; the 2-byte field gets AS_TRANS.
pub fn open(asn: u32, hold_time: u16, router_id: Ipv4Addr, capabilities: &[Vec<u8>]) -> Vec<u8> {
    let caps: Vec<u8> = capabilities.concat();
    let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
    let mut body = vec![4];
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&hold_time.to_be_bytes());
    body.extend_from_slice(&router_id.octets());
    if caps.is_empty() {
        body.push(0);
    } else {
        body.push((caps.len() + 2) as u8);
        body.push(2);
        body.push(caps.len() as u8);
        body.extend_from_slice(&caps);
    }
    message(OPEN, &body)
}

/// The usual OPEN: IPv4 unicast and AS4.
pub fn simple_open(asn: u32, hold_time: u16, router_id: Ipv4Addr) -> Vec<u8> {
    open(
        asn,
        hold_time,
        router_id,
        &[cap_ipv4_unicast(), cap_as4(asn)],
    )
}

/// One path attribute; the extended-length flag (0x10) is set automatically
/// when the value exceeds 255 bytes or when `flags` already has it.
pub fn attribute(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let extended = flags & 0x10 != 0 || value.len() > 255;
    let mut out = vec![if extended { flags | 0x10 } else { flags }, code];
    if extended {
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
    out
}

/// Encodes an IPv4 prefix as NLRI (length byte, then the significant bytes).
pub fn nlri(prefix: Ipv4Addr, len: u8) -> Vec<u8> {
    let bytes = usize::from(len).div_ceil(8);
    let mut out = vec![len];
    out.extend_from_slice(&prefix.octets()[..bytes]);
    out
}

/// An UPDATE from raw withdrawn-routes, attribute and NLRI bytes.
pub fn update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    message(UPDATE, &body)
}

/// A NOTIFICATION's contents (RFC 4271 §4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

impl Notification {
    /// Parses a NOTIFICATION body (after the header).
    pub fn from_body(body: &[u8]) -> Result<Notification> {
        if body.len() < 2 {
            bail!("NOTIFICATION body too short: {body:02x?}");
        }
        Ok(Notification {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        })
    }

    /// Encodes it as a complete message.
    pub fn to_message(&self) -> Vec<u8> {
        let mut body = vec![self.code, self.subcode];
        body.extend_from_slice(&self.data);
        message(NOTIFICATION, &body)
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NOTIFICATION {}/{}", self.code, self.subcode)?;
        if !self.data.is_empty() {
            write!(f, " data {}", hex(&self.data))?;
        }
        Ok(())
    }
}

/// One path attribute of a received UPDATE: flags, type code and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathAttribute {
    /// Attribute flags (RFC 4271 §4.3).
    pub flags: u8,
    /// Attribute type code.
    pub code: u8,
    /// The value octets.
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE body (after the header), in wire order.
pub fn update_attributes(body: &[u8]) -> Result<Vec<PathAttribute>> {
    let field = |at: usize| -> Result<usize> {
        match body.get(at..at + 2) {
            Some(b) => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
            None => bail!("UPDATE body cut short at {at}: {}", hex(body)),
        }
    };
    let at = 2 + field(0)?;
    let len = field(at)?;
    let Some(mut rest) = body.get(at + 2..at + 2 + len) else {
        bail!("path attributes run past the UPDATE: {}", hex(body));
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let hdr = if rest.first().is_some_and(|f| f & 0x10 != 0) {
            4
        } else {
            3
        };
        let Some(h) = rest.get(..hdr) else {
            bail!("attribute header cut short: {}", hex(rest));
        };
        let len = if hdr == 4 {
            usize::from(u16::from_be_bytes([h[2], h[3]]))
        } else {
            usize::from(h[2])
        };
        let Some(value) = rest.get(hdr..hdr + len) else {
            bail!("attribute {} runs past the attributes", h[1]);
        };
        out.push(PathAttribute {
            flags: h[0],
            code: h[1],
            value: value.to_vec(),
        });
        rest = &rest[hdr + len..];
    }
    Ok(out)
}

/// The IPv4 prefixes an UPDATE body announces in its NLRI field (after
/// the path attributes), as (network, length).
pub fn update_nlri(body: &[u8]) -> Result<Vec<(Ipv4Addr, u8)>> {
    let field = |at: usize| -> Result<usize> {
        match body.get(at..at + 2) {
            Some(b) => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
            None => bail!("UPDATE body cut short at {at}: {}", hex(body)),
        }
    };
    let at = 2 + field(0)?;
    let Some(mut rest) = body.get(at + 2 + field(at)?..) else {
        bail!("path attributes run past the UPDATE: {}", hex(body));
    };
    let mut out = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).div_ceil(8);
        let (Some(bytes), true) = (tail.get(..n), len <= 32) else {
            bail!("bad NLRI /{len}: {}", hex(rest));
        };
        let mut a = [0u8; 4];
        a[..n].copy_from_slice(bytes);
        out.push((Ipv4Addr::from(a), len));
        rest = &tail[n..];
    }
    Ok(out)
}

/// The ASes of an AS_PATH or AS4_PATH value, segments flattened, with
/// `width` octets per AS (2 on a 2-octet session's AS_PATH, else 4).
pub fn as_path_asns(value: &[u8], width: usize) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut rest = value;
    while let [_kind, n, tail @ ..] = rest {
        let n = usize::from(*n);
        let Some(asns) = tail.get(..n * width) else {
            bail!("AS path segment runs past the attribute: {}", hex(value));
        };
        out.extend(
            asns.chunks(width)
                .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))),
        );
        rest = &tail[n * width..];
    }
    if !rest.is_empty() {
        bail!("trailing octets in AS path: {}", hex(value));
    }
    Ok(out)
}

/// An IPv4 prefix as it travels in NLRI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// Network address (host bits zero).
    pub addr: u32,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Prefix {
    /// Octets it takes in NLRI.
    pub fn encoded_len(self) -> usize {
        1 + usize::from(self.len).div_ceil(8)
    }

    /// Appends it as NLRI.
    pub fn encode(self, out: &mut Vec<u8>) {
        out.push(self.len);
        out.extend_from_slice(&self.addr.to_be_bytes()[..usize::from(self.len).div_ceil(8)]);
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.len)
    }
}

/// The attributes of one IPv4 path that the shape tests compare: what a
/// route server's iBGP export keeps (next hop, AS path, MED, communities,
/// origin).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attrs {
    /// ORIGIN: 0 IGP, 1 EGP, 2 INCOMPLETE.
    pub origin: u8,
    /// The AS_PATH's ASes, segments flattened (4-octet).
    pub as_path: Vec<u32>,
    /// NEXT_HOP (or the MP_REACH next hop).
    pub next_hop: Ipv4Addr,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// COMMUNITIES, in order.
    pub communities: Vec<u32>,
}

impl Attrs {
    /// The path attributes on the wire, in type-code order, AS_PATH as one
    /// AS_SEQUENCE of 4-octet ASes.
    pub fn encode(&self) -> Vec<u8> {
        let mut path = vec![2, self.as_path.len() as u8];
        for a in &self.as_path {
            path.extend_from_slice(&a.to_be_bytes());
        }
        let mut out = attribute(0x40, 1, &[self.origin]);
        out.extend(attribute(0x40, 2, &path));
        out.extend(attribute(0x40, 3, &self.next_hop.octets()));
        if let Some(med) = self.med {
            out.extend(attribute(0x80, 4, &med.to_be_bytes()));
        }
        if !self.communities.is_empty() {
            let v: Vec<u8> = self
                .communities
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect();
            out.extend(attribute(0xc0, 8, &v));
        }
        out
    }
}

/// The IPv4 unicast routes of one UPDATE: NLRI with their path ids (0
/// without ADD-PATH), from the classic fields and MP_REACH/MP_UNREACH.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateRoutes {
    /// Withdrawn (prefix, path id).
    pub withdrawn: Vec<(Prefix, u32)>,
    /// Announced (prefix, path id).
    pub announced: Vec<(Prefix, u32)>,
    /// The announced routes' attributes (`None` when nothing is announced).
    pub attrs: Option<Attrs>,
}

fn ipv4_nlri(mut b: &[u8], add_path: bool, out: &mut Vec<(Prefix, u32)>) -> Result<()> {
    while !b.is_empty() {
        let id = if add_path {
            let Some(h) = b.get(..4) else {
                bail!("path id cut short: {}", hex(b));
            };
            b = &b[4..];
            u32::from_be_bytes([h[0], h[1], h[2], h[3]])
        } else {
            0
        };
        let Some(&len) = b.first() else {
            bail!("NLRI length missing after path id {id}");
        };
        if len > 32 {
            bail!("IPv4 prefix length {len}");
        }
        let n = usize::from(len).div_ceil(8);
        let Some(bytes) = b.get(1..1 + n) else {
            bail!("NLRI cut short: {}", hex(b));
        };
        let mut addr = [0u8; 4];
        addr[..n].copy_from_slice(bytes);
        out.push((
            Prefix {
                addr: u32::from_be_bytes(addr),
                len,
            },
            id,
        ));
        b = &b[1 + n..];
    }
    Ok(())
}

/// Parses an UPDATE body (after the header) into its IPv4 unicast routes;
/// `add_path` says whether NLRI carry path ids (RFC 7911 §3). AS_PATH is
/// read with 4-octet ASes (RFC 6793); attributes other than ORIGIN,
/// AS_PATH, NEXT_HOP, MED, COMMUNITIES and the MP ones are skipped.
pub fn update_routes(body: &[u8], add_path: bool) -> Result<UpdateRoutes> {
    let field = |at: usize| -> Result<usize> {
        match body.get(at..at + 2) {
            Some(b) => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
            None => bail!("UPDATE body cut short at {at}: {}", hex(body)),
        }
    };
    let wlen = field(0)?;
    let Some(withdrawn) = body.get(2..2 + wlen) else {
        bail!("withdrawn routes run past the UPDATE: {}", hex(body));
    };
    let alen = field(2 + wlen)?;
    let nlri_at = 4 + wlen + alen;
    let Some(nlri) = body.get(nlri_at..) else {
        bail!("path attributes run past the UPDATE: {}", hex(body));
    };
    let mut u = UpdateRoutes::default();
    ipv4_nlri(withdrawn, add_path, &mut u.withdrawn)?;
    ipv4_nlri(nlri, add_path, &mut u.announced)?;
    let (mut origin, mut as_path, mut next_hop, mut med, mut communities) =
        (None, None, None, None, Vec::new());
    for a in update_attributes(body)? {
        let v = a.value.as_slice();
        match a.code {
            1 => origin = v.first().copied(),
            2 => as_path = Some(as_path_asns(v, 4)?),
            3 if v.len() == 4 => next_hop = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            4 if v.len() == 4 => med = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            8 => {
                communities = v
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            14 if v.starts_with(&[0, 1, 1]) && v.len() >= 9 => {
                let nh_len = usize::from(v[3]);
                next_hop = Some(Ipv4Addr::new(v[4], v[5], v[6], v[7]));
                let Some(rest) = v.get(4 + nh_len + 1..) else {
                    bail!("MP_REACH_NLRI cut short: {}", hex(v));
                };
                ipv4_nlri(rest, add_path, &mut u.announced)?;
            }
            15 if v.starts_with(&[0, 1, 1]) => ipv4_nlri(&v[3..], add_path, &mut u.withdrawn)?,
            _ => {}
        }
    }
    if !u.announced.is_empty() {
        let (Some(origin), Some(as_path), Some(next_hop)) = (origin, as_path, next_hop) else {
            bail!(
                "routes announced without ORIGIN, AS_PATH or NEXT_HOP: {}",
                hex(body)
            );
        };
        u.attrs = Some(Attrs {
            origin,
            as_path,
            next_hop,
            med,
            communities,
        });
    }
    Ok(u)
}

/// A received message, split by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN: version, AS (2-byte field), hold time, router id, optional params.
    Open {
        /// Version (4).
        version: u8,
        /// The 2-byte My AS field.
        asn: u16,
        /// Hold time.
        hold_time: u16,
        /// BGP identifier.
        router_id: Ipv4Addr,
        /// Raw optional parameters.
        params: Vec<u8>,
    },
    /// UPDATE body, unparsed.
    Update(Vec<u8>),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// Any other type, with its body.
    Other(u8, Vec<u8>),
}

/// Splits one message off the front of `buf`: `Ok(None)` if incomplete,
/// `Ok(Some((message, consumed)))`, or an error on a bad marker or length.
pub fn parse(buf: &[u8]) -> Result<Option<(Message, usize)>> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16] != MARKER {
        bail!("bad marker in {}", hex(&buf[..HEADER_LEN]));
    }
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    if !(HEADER_LEN..=65535).contains(&len) {
        bail!("bad length {len}");
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[HEADER_LEN..len];
    let msg = match buf[18] {
        OPEN if body.len() >= 10 => Message::Open {
            version: body[0],
            asn: u16::from_be_bytes([body[1], body[2]]),
            hold_time: u16::from_be_bytes([body[3], body[4]]),
            router_id: Ipv4Addr::new(body[5], body[6], body[7], body[8]),
            params: body[10..].to_vec(),
        },
        UPDATE => Message::Update(body.to_vec()),
        NOTIFICATION => Message::Notification(Notification::from_body(body)?),
        KEEPALIVE => Message::Keepalive,
        other => Message::Other(other, body.to_vec()),
    };
    Ok(Some((msg, len)))
}

/// Splits a byte stream into complete messages (stops at the first error or
/// incomplete tail).
pub fn split(mut buf: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let Ok(Some((msg, used))) = parse(buf) {
        out.push(msg);
        buf = &buf[used..];
    }
    out
}

/// The capabilities (code, value) an OPEN's optional parameters carry
/// (RFC 5492: parameter type 2, any number of TLVs in each); an error when
/// a parameter or capability overruns.
pub fn capabilities(mut params: &[u8]) -> Result<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    while !params.is_empty() {
        let [kind, len, rest @ ..] = params else {
            bail!("OPEN optional parameter header overruns: {}", hex(params));
        };
        let len = usize::from(*len);
        let Some(mut caps) = rest.get(..len) else {
            bail!(
                "OPEN optional parameter {kind} overruns ({len} of {})",
                rest.len()
            );
        };
        params = &rest[len..];
        if *kind != 2 {
            continue;
        }
        while !caps.is_empty() {
            let [code, len, rest @ ..] = caps else {
                bail!("capability header overruns: {}", hex(caps));
            };
            let len = usize::from(*len);
            let Some(value) = rest.get(..len) else {
                bail!("capability {code} overruns ({len} of {})", rest.len());
            };
            out.push((*code, value.to_vec()));
            caps = &rest[len..];
        }
    }
    Ok(out)
}

/// Lowercase hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex, ignoring spaces, colons and a `0x` prefix.
pub fn unhex(text: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let digits: Vec<u8> = t
        .bytes()
        .filter(|c| !matches!(c, b' ' | b':' | b'\t'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        bail!("odd number of hex digits in {text:?}");
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair)?;
            Ok(u8::from_str_radix(s, 16)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_nineteen_bytes_of_header() {
        let k = keepalive();
        assert_eq!(k.len(), 19);
        assert_eq!(&k[16..], &[0, 19, 4]);
    }

    #[test]
    fn open_round_trips_through_parse() {
        let bytes = simple_open(65010, 9, Ipv4Addr::new(10, 1, 0, 10));
        let (msg, used) = parse(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        match msg {
            Message::Open {
                version,
                asn,
                hold_time,
                router_id,
                params,
            } => {
                assert_eq!((version, asn, hold_time), (4, 65010, 9));
                assert_eq!(router_id, Ipv4Addr::new(10, 1, 0, 10));
                assert_eq!(
                    params,
                    vec![2, 12, 1, 4, 0, 1, 0, 1, 65, 4, 0, 0, 0xfd, 0xf2]
                );
            }
            other => panic!("not an OPEN: {other:?}"),
        }
    }

    #[test]
    fn capabilities_lists_every_tlv_of_an_open_and_refuses_an_overrun() {
        let caps = [cap_ipv4_unicast(), cap_as4(65010), cap_add_path_ipv4(1)];
        let bytes = open(65010, 9, Ipv4Addr::new(10, 1, 0, 10), &caps);
        let Some((Message::Open { params, .. }, _)) = parse(&bytes).unwrap() else {
            panic!("not an OPEN");
        };
        assert_eq!(
            capabilities(&params).unwrap(),
            vec![
                (1, vec![0, 1, 0, 1]),
                (65, 65010u32.to_be_bytes().to_vec()),
                (69, vec![0, 1, 1, 1]),
            ]
        );
        assert!(capabilities(&params[..params.len() - 1]).is_err());
        assert!(capabilities(&[2, 2, 65, 4]).is_err());
    }

    #[test]
    fn four_byte_asn_goes_in_as_trans() {
        let bytes = simple_open(4_200_000_000, 90, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(&bytes[20..22], &AS_TRANS.to_be_bytes());
    }

    #[test]
    fn notification_parses_code_subcode_and_data() {
        let n = Notification {
            code: 2,
            subcode: 2,
            data: vec![0xfd, 0xe8],
        };
        let msgs = split(&n.to_message());
        assert_eq!(msgs, vec![Message::Notification(n)]);
    }

    #[test]
    fn corrupted_headers_change_only_their_field() {
        assert_eq!(corrupt_marker(keepalive())[..2], [0x00, 0xff]);
        assert_eq!(with_length(keepalive(), 18)[16..], [0, 18, 4]);
    }

    #[test]
    fn long_attribute_gets_extended_length() {
        let a = attribute(0xc0, 0xf0, &[0; 300]);
        assert_eq!(&a[..4], &[0xd0, 0xf0, 0x01, 0x2c]);
    }

    #[test]
    fn nlri_keeps_only_significant_bytes() {
        assert_eq!(nlri(Ipv4Addr::new(10, 250, 0, 0), 16), vec![16, 10, 250]);
        assert_eq!(nlri(Ipv4Addr::new(0, 0, 0, 0), 0), vec![0]);
    }

    #[test]
    fn update_routes_reads_add_path_nlri_and_the_compared_attributes() {
        let attrs = Attrs {
            origin: 2,
            as_path: vec![65001, 4_200_000_000],
            next_hop: Ipv4Addr::new(10, 1, 0, 101),
            med: Some(7),
            communities: vec![0x0001_0002],
        };
        let mut nlri = vec![0, 0, 0, 9];
        nlri.extend(self::nlri(Ipv4Addr::new(100, 64, 1, 0), 24));
        let withdrawn = [0, 0, 0, 3, 25, 100, 64, 2, 128];
        let msg = update(&withdrawn, &attrs.encode(), &nlri);
        let u = update_routes(&msg[HEADER_LEN..], true).unwrap();
        let p = |addr: [u8; 4], len| Prefix {
            addr: u32::from_be_bytes(addr),
            len,
        };
        assert_eq!(u.announced, vec![(p([100, 64, 1, 0], 24), 9)]);
        assert_eq!(u.withdrawn, vec![(p([100, 64, 2, 128], 25), 3)]);
        assert_eq!(u.attrs, Some(attrs));
        assert_eq!(p([100, 64, 2, 128], 25).to_string(), "100.64.2.128/25");
    }

    #[test]
    fn unhex_ignores_spaces_and_prefix() {
        assert_eq!(
            unhex("0xDE AD be:ef").unwrap(),
            vec![0xde, 0xad, 0xbe, 0xef]
        );
    }
}
