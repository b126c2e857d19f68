//! Netlink framing (RFC 3549, linux/netlink.h): an append-only encoder that
//! packs many messages into one buffer, and zero-copy iterators over the
//! messages and attributes of a reply.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::abi::*;

/// A reply that does not parse as netlink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A header or attribute claims more bytes than there are.
    #[error("truncated netlink {what} ({have} of {need} bytes)")]
    Truncated {
        what: &'static str,
        have: usize,
        need: usize,
    },
}

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds netlink messages back to back in one buffer.
#[derive(Default)]
pub(crate) struct Encoder {
    buf: Vec<u8>,
    msg_start: usize,
}

impl Encoder {
    pub fn with_capacity(bytes: usize) -> Encoder {
        Encoder {
            buf: Vec::with_capacity(bytes),
            msg_start: 0,
        }
    }

    /// Starts a message; `finish` writes its length.
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32) {
        self.msg_start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
    }

    /// The fixed family header (rtmsg, nhmsg, ...), padded to 4 bytes.
    pub fn header(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.pad();
    }

    pub fn finish(&mut self) {
        let len = (self.buf.len() - self.msg_start) as u32;
        self.buf[self.msg_start..self.msg_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = (4 + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    pub fn attr_u8(&mut self, ty: u16, v: u8) {
        self.attr(ty, &[v]);
    }

    pub fn attr_u16(&mut self, ty: u16, v: u16) {
        self.attr(ty, &v.to_ne_bytes());
    }

    pub fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    pub fn attr_addr(&mut self, ty: u16, addr: IpAddr) {
        match addr {
            IpAddr::V4(a) => self.attr(ty, &a.octets()),
            IpAddr::V6(a) => self.attr(ty, &a.octets()),
        }
    }

    /// RTA_VIA: a `struct rtvia` (family + address), for a gateway of the
    /// other family than the route (RFC 5549 style).
    pub fn attr_via(&mut self, ty: u16, addr: IpAddr) {
        let mut v = Vec::with_capacity(18);
        v.extend_from_slice(&u16::from(family_of(addr)).to_ne_bytes());
        match addr {
            IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
        }
        self.attr(ty, &v);
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    /// Opens a nested attribute; returns the offset `end_nest` needs.
    pub fn begin_nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    pub fn end_nest(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Raw bytes inside a nest (e.g. a `struct rtnexthop`); returns their
    /// offset so a length can be patched with `patch_u16`.
    pub fn raw(&mut self, bytes: &[u8]) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(bytes);
        at
    }

    pub fn patch_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    fn pad(&mut self) {
        let n = align4(self.buf.len()) - self.buf.len();
        self.buf.extend_from_slice(&[0; 3][..n]);
    }
}

/// The address family number of an address.
pub(crate) fn family_of(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// One netlink message of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages of one received datagram.
pub(crate) fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf }
}

pub(crate) struct Messages<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Msg<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32_at(self.buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > self.buf.len() {
            let have = self.buf.len();
            self.buf = &[];
            return Some(Err(WireError::Truncated {
                what: "message",
                have,
                need: len.max(NLMSG_HDRLEN),
            }));
        }
        let msg = Msg {
            ty: u16_at(self.buf, 4),
            flags: u16_at(self.buf, 6),
            seq: u32_at(self.buf, 8),
            payload: &self.buf[NLMSG_HDRLEN..len],
        };
        self.buf = &self.buf[align4(len).min(self.buf.len())..];
        Some(Ok(msg))
    }
}

/// The attributes (type without flag bits, payload) in `buf`.
pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { buf }
}

pub(crate) struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < 4 {
            return None;
        }
        let len = u16_at(self.buf, 0) as usize;
        if len < 4 || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let item = (u16_at(self.buf, 2) & NLA_TYPE_MASK, &self.buf[4..len]);
        self.buf = &self.buf[align4(len).min(self.buf.len())..];
        Some(item)
    }
}

/// The payload of an NLMSG_ERROR: errno 0 is an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorMsg {
    /// Positive errno, 0 for an ack.
    pub errno: i32,
    /// The kernel's extended-ack text, if it sent one.
    pub message: Option<String>,
}

pub(crate) fn parse_error(msg: &Msg) -> Result<ErrorMsg, WireError> {
    let p = msg.payload;
    if p.len() < 4 {
        return Err(WireError::Truncated {
            what: "error",
            have: p.len(),
            need: 4,
        });
    }
    let errno = -i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
    let mut message = None;
    if msg.flags & NLM_F_ACK_TLVS != 0 && p.len() >= 4 + NLMSG_HDRLEN {
        let orig_len = if msg.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align4(u32_at(p, 4) as usize)
        };
        let tlv_at = (4 + orig_len).min(p.len());
        for (ty, v) in attrs(&p[tlv_at..]) {
            if ty == NLMSGERR_ATTR_MSG {
                let text = v.split(|&b| b == 0).next().unwrap_or(&[]);
                message = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    Ok(ErrorMsg { errno, message })
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A u32 attribute payload, if it has the right size.
pub(crate) fn as_u32(v: &[u8]) -> Option<u32> {
    (v.len() == 4).then(|| u32_at(v, 0))
}

/// An address attribute payload of the given family.
pub(crate) fn as_addr(family: u8, v: &[u8]) -> Option<IpAddr> {
    match (family, v.len()) {
        (AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        (AF_INET6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(v);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// An RTA_VIA payload (`struct rtvia`).
pub(crate) fn as_via(v: &[u8]) -> Option<IpAddr> {
    if v.len() < 2 {
        return None;
    }
    as_addr(u16_at(v, 0) as u8, &v[2..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_pads_attributes_and_sets_message_length() {
        let mut e = Encoder::default();
        e.begin(RTM_NEWROUTE, NLM_F_REQUEST, 7);
        e.header(&[1, 2, 3]);
        e.attr_u8(FRA_PROTOCOL, 211);
        e.finish();
        let b = e.bytes();
        assert_eq!(b.len(), 16 + 4 + 8);
        assert_eq!(u32_at(b, 0), 28);
        assert_eq!(u16_at(b, 4), RTM_NEWROUTE);
        assert_eq!(u32_at(b, 8), 7);
        assert_eq!(&b[16..20], &[1, 2, 3, 0]);
        assert_eq!(&b[20..28], &[5, 0, 21, 0, 211, 0, 0, 0]);
    }

    #[test]
    fn messages_and_attrs_round_trip_through_the_encoder() {
        let mut e = Encoder::default();
        for seq in 1..=2 {
            e.begin(RTM_NEWNEXTHOP, 0, seq);
            e.header(&[0; NHMSG_LEN]);
            e.attr_u32(NHA_ID, seq * 10);
            let n = e.begin_nest(RTA_MULTIPATH);
            e.attr_addr(RTA_GATEWAY, "192.0.2.1".parse().unwrap());
            e.end_nest(n);
            e.finish();
        }
        let msgs: Vec<_> = messages(e.bytes()).map(Result::unwrap).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].seq, 2);
        let a: Vec<_> = attrs(&msgs[1].payload[NHMSG_LEN..]).collect();
        assert_eq!(a[0], (NHA_ID, &20u32.to_ne_bytes()[..]));
        assert_eq!(a[1].0, RTA_MULTIPATH);
        let inner: Vec<_> = attrs(a[1].1).collect();
        assert_eq!(
            as_addr(AF_INET, inner[0].1),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn capped_error_yields_errno_and_extended_ack_text() {
        let mut p = Vec::new();
        p.extend_from_slice(&(-101i32).to_ne_bytes());
        p.extend_from_slice(&[0; NLMSG_HDRLEN]);
        let mut e = Encoder::default();
        e.attr(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0");
        p.extend_from_slice(e.bytes());
        let msg = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
            seq: 3,
            payload: &p,
        };
        assert_eq!(
            parse_error(&msg).unwrap(),
            ErrorMsg {
                errno: 101,
                message: Some("Nexthop has invalid gateway".into())
            }
        );
    }

    #[test]
    fn truncated_message_is_an_error_not_a_panic() {
        let mut b = vec![0u8; 16];
        b[0] = 40;
        let r: Vec<_> = messages(&b).collect();
        assert_eq!(
            r,
            vec![Err(WireError::Truncated {
                what: "message",
                have: 16,
                need: 40
            })]
        );
    }
}
