//! Hand-built BGP-4 messages (RFC 4271 §4) for the raw speaker and for
//! reading daemons' logs and captures. Independent of the steer codec on
//! purpose: it is the cross-check, so it builds bytes by hand and parses
//! only what tests need (headers, OPEN, NOTIFICATION).

use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{Result, bail};

/// The 16-byte all-ones marker.
pub const MARKER: [u8; 16] = [0xff; 16];
/// Header length: marker, 2-byte length, 1-byte type.
pub const HEADER_LEN: usize = 19;
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
    fn unhex_ignores_spaces_and_prefix() {
        assert_eq!(
            unhex("0xDE AD be:ef").unwrap(),
            vec![0xde, 0xad, 0xbe, 0xef]
        );
    }
}
