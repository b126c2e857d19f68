//! OPEN (RFC 4271 §4.2, §6.2) with its optional parameters: Capabilities
//! (RFC 5492) in one or several parameters, and the extended optional
//! parameters length of RFC 9072, which is accepted on decode and used on
//! encode only when the capabilities outgrow 255 octets.
//!
//! Checks, in RFC 4271 §6.2 order: version (2/1, data = 4 as two octets),
//! hold time 1 or 2 (2/6), BGP Identifier 0 (2/3, RFC 6286 §2.2), then the
//! parameters: a length that disagrees with the message or a malformed
//! capability is 2/0, a parameter other than Capabilities is 2/4. The
//! peer's AS is the session's to check (2/2).

use super::{HEADER_LEN, MAX_MESSAGE_LEN, Open, frame};
use crate::bgp::capability::decode_capabilities;
use crate::bgp::error::{DecodeError, EncodeError};
use crate::bgp::iana::{HeaderSubcode, MessageType, OpenSubcode, ParameterType};
use std::net::Ipv4Addr;

const CAPABILITIES: u8 = ParameterType::Capabilities as u8;
/// RFC 9072 §2: Non-Ext OP Len and Non-Ext OP Type of 255 announce the
/// extended format.
const EXTENDED: u8 = ParameterType::ExtendedLength as u8;

/// Decode an OPEN body (after the header).
pub(super) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
    let &[
        version,
        as0,
        as1,
        h0,
        h1,
        i0,
        i1,
        i2,
        i3,
        opt_len,
        ref params @ ..,
    ] = body
    else {
        return Err(DecodeError::new(
            HeaderSubcode::BadLength,
            u16::try_from(body.len() + HEADER_LEN)
                .unwrap_or(u16::MAX)
                .to_be_bytes()
                .to_vec(),
            "OPEN shorter than 29 octets (RFC 4271 §6.1)",
        ));
    };
    if version != 4 {
        return Err(DecodeError::new(
            OpenSubcode::UnsupportedVersion,
            vec![0, 4],
            format!("version {version} is not supported, 4 is (RFC 4271 §6.2)"),
        ));
    }
    let hold_time = u16::from_be_bytes([h0, h1]);
    if hold_time == 1 || hold_time == 2 {
        return Err(DecodeError::new(
            OpenSubcode::UnacceptableHoldTime,
            Vec::new(),
            format!("hold time {hold_time} is neither 0 nor at least 3 (RFC 4271 §6.2)"),
        ));
    }
    let router_id = Ipv4Addr::new(i0, i1, i2, i3);
    if router_id.is_unspecified() {
        return Err(DecodeError::new(
            OpenSubcode::BadBgpId,
            Vec::new(),
            "BGP Identifier 0.0.0.0 (RFC 6286 §2.2)",
        ));
    }
    Ok(Open {
        version,
        my_as: u16::from_be_bytes([as0, as1]),
        hold_time,
        router_id,
        capabilities: decode_parameters(opt_len, params)?,
    })
}

fn unspecific(reason: String) -> DecodeError {
    DecodeError::new(OpenSubcode::Unspecific, Vec::new(), reason)
}

fn decode_parameters(
    opt_len: u8,
    params: &[u8],
) -> Result<Vec<crate::bgp::capability::Capability>, DecodeError> {
    let (params, wide) = match params {
        &[EXTENDED, l0, l1, ref rest @ ..] if opt_len == EXTENDED => {
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            if rest.len() != len {
                return Err(unspecific(format!(
                    "extended optional parameters length {len}, but {} octets follow (RFC 9072 §2)",
                    rest.len()
                )));
            }
            (rest, true)
        }
        _ => {
            if params.len() != usize::from(opt_len) {
                return Err(unspecific(format!(
                    "optional parameters length {opt_len}, but {} octets follow (RFC 4271 §4.2)",
                    params.len()
                )));
            }
            (params, false)
        }
    };
    let mut caps = Vec::new();
    let mut rest = params;
    while let Some((&kind, tail)) = rest.split_first() {
        let (len, tail) = match (wide, tail) {
            (true, &[l0, l1, ref t @ ..]) => (usize::from(u16::from_be_bytes([l0, l1])), t),
            (false, &[l, ref t @ ..]) => (usize::from(l), t),
            _ => {
                return Err(unspecific(
                    "optional parameter header cut short (RFC 4271 §4.2)".into(),
                ));
            }
        };
        let Some((value, tail)) = tail.split_at_checked(len) else {
            return Err(unspecific(format!(
                "optional parameter {kind} of {len} octets runs past the OPEN ({} left) (RFC 4271 §4.2)",
                tail.len()
            )));
        };
        if kind != CAPABILITIES {
            return Err(DecodeError::new(
                OpenSubcode::UnsupportedOptionalParameter,
                Vec::new(),
                format!(
                    "optional parameter {kind} is not Capabilities (RFC 4271 §6.2, RFC 5492 §3)"
                ),
            ));
        }
        decode_capabilities(value, &mut caps)?;
        rest = tail;
    }
    Ok(caps)
}

/// Append an OPEN. All capabilities go in one Capabilities parameter; past
/// 253 octets of capabilities the RFC 9072 format carries them.
pub(super) fn encode(o: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = frame::begin(out, MessageType::Open);
    out.push(o.version);
    out.extend_from_slice(&o.my_as.to_be_bytes());
    out.extend_from_slice(&o.hold_time.to_be_bytes());
    out.extend_from_slice(&o.router_id.octets());
    let mut caps = Vec::new();
    for c in &o.capabilities {
        if let Err(e) = c.encode(&mut caps) {
            out.truncate(start);
            return Err(e);
        }
    }
    match (caps.len(), u8::try_from(caps.len() + 2)) {
        (0, _) => out.push(0),
        (n, Ok(opt_len)) => {
            out.extend_from_slice(&[opt_len, CAPABILITIES, n as u8]);
            out.extend_from_slice(&caps);
        }
        (n, _) => {
            let param = u16::try_from(n).unwrap_or(u16::MAX);
            let total = u16::try_from(n + 3).unwrap_or(u16::MAX);
            out.extend_from_slice(&[EXTENDED, EXTENDED]);
            out.extend_from_slice(&total.to_be_bytes());
            out.push(CAPABILITIES);
            out.extend_from_slice(&param.to_be_bytes());
            out.extend_from_slice(&caps);
        }
    }
    frame::end(out, start, MAX_MESSAGE_LEN, "OPEN")
}
