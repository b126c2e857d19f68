//! The message header for encoders (RFC 4271 §4.1): marker, length, type,
//! with the length filled in once the body is written.

use crate::bgp::error::EncodeError;
use crate::bgp::iana::MessageType;

/// Start a message of type `kind`; returns where it begins in `out`.
pub(super) fn begin(out: &mut Vec<u8>, kind: MessageType) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, kind.into()]);
    start
}

/// Write the length of the message that begins at `start`.
pub(super) fn patch_len(out: &mut [u8], start: usize) {
    let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
}

/// Finish the message that begins at `start`, or drop it and fail when it
/// exceeds `limit`.
pub(super) fn end(
    out: &mut Vec<u8>,
    start: usize,
    limit: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    if out.len() - start > limit.min(usize::from(u16::MAX)) {
        out.truncate(start);
        return Err(EncodeError::TooLarge { what, limit });
    }
    patch_len(out, start);
    Ok(())
}
