//! Helpers for the codec's tests: hex vectors and hand-built messages.

use super::{CodecConfig, HEADER_LEN, Message, MessageType, Update, decode};
use crate::bgp::error::DecodeError;
use crate::bgp::nlri::Nlri;
use crate::prefix::Prefix;

/// Bytes from hex text; whitespace and `#` comments to the end of a line
/// are ignored.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Lower-case hex, for readable assertion failures.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A message of type `kind` around `body`.
pub(crate) fn message(kind: MessageType, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(
        &u16::try_from(HEADER_LEN + body.len())
            .unwrap()
            .to_be_bytes(),
    );
    m.push(kind.into());
    m.extend_from_slice(body);
    m
}

/// An UPDATE from its three raw fields.
pub(crate) fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    message(MessageType::Update, &body)
}

/// A 4-octet AS iBGP session without ADD-PATH.
pub(crate) fn ibgp() -> CodecConfig {
    CodecConfig {
        four_octet_as: true,
        ..CodecConfig::default()
    }
}

/// A 4-octet AS eBGP session without ADD-PATH.
pub(crate) fn ebgp() -> CodecConfig {
    CodecConfig {
        four_octet_as: true,
        ebgp: true,
        ..CodecConfig::default()
    }
}

/// 10.250.0.0/16 and 198.51.100.0/24 in NLRI encoding.
pub(crate) const TWO_ROUTES: &[u8] = &[16, 10, 250, 24, 198, 51, 100];

/// A prefix from text.
pub(crate) fn pfx(text: &str) -> Prefix {
    text.parse().expect("prefix")
}

/// An NLRI without path id.
pub(crate) fn nlri(text: &str) -> Nlri {
    Nlri::new(pfx(text))
}

/// The two routes of [`TWO_ROUTES`].
pub(crate) fn two_routes() -> Vec<Nlri> {
    vec![nlri("10.250.0.0/16"), nlri("198.51.100.0/24")]
}

/// Decode an UPDATE, panicking on any other message.
pub(crate) fn decode_update(bytes: &[u8], cfg: &CodecConfig) -> Result<Update, DecodeError> {
    decode(bytes, cfg).map(|m| match m {
        Message::Update(u) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    })
}

/// The NOTIFICATION (code, subcode, data) a decode error carries.
pub(crate) fn notification(e: &DecodeError) -> (u8, u8, Vec<u8>) {
    (
        e.notification.code,
        e.notification.subcode,
        e.notification.data.clone(),
    )
}

/// Encode one message, panicking on error.
pub(crate) fn encoded(m: &Message, cfg: &CodecConfig) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(cfg, &mut out).expect("encode");
    out
}

/// The type codes of an UPDATE's path attributes, in wire order.
pub(crate) fn attribute_codes(msg: &[u8]) -> Vec<u8> {
    let wlen = usize::from(u16::from_be_bytes([msg[19], msg[20]]));
    let at = 21 + wlen;
    let alen = usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    let mut rest = &msg[at + 2..at + 2 + alen];
    let mut codes = Vec::new();
    while !rest.is_empty() {
        let hdr = if rest[0] & 0x10 != 0 { 4 } else { 3 };
        let len = if hdr == 4 {
            usize::from(u16::from_be_bytes([rest[2], rest[3]]))
        } else {
            usize::from(rest[2])
        };
        codes.push(rest[1]);
        rest = &rest[hdr + len..];
    }
    codes
}
