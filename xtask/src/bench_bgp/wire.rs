//! The little BGP-4 the benchmark speakers need (RFC 4271, 4-octet AS from
//! RFC 6793, ADD-PATH from RFC 7911): OPEN and KEEPALIVE encoding, a framing
//! reader, and the capability checks both speakers make on the route
//! server's OPEN. The UPDATEs come from `steer_tests::shape`. Nothing here
//! is Steer's codec: the benchmark must not share its bugs.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpStream};

use anyhow::{Context, Result, bail};

/// Largest BGP message without the extended-message capability.
pub const MAX_MESSAGE: usize = 4096;
/// Fixed BGP header: marker, length, type.
pub const HEADER: usize = 19;
/// Message type OPEN.
pub const OPEN: u8 = 1;
/// Message type UPDATE.
pub const UPDATE: u8 = 2;
/// Message type NOTIFICATION.
pub const NOTIFICATION: u8 = 3;
/// Message type KEEPALIVE.
pub const KEEPALIVE: u8 = 4;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_FOUR_OCTET_AS: u8 = 65;
const CAP_ADD_PATH: u8 = 69;
const AS_TRANS: u16 = 23456;

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER + body.len());
    m.extend_from_slice(&[0xff; 16]);
    m.extend_from_slice(&((HEADER + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// A KEEPALIVE message.
pub fn keepalive() -> Vec<u8> {
    frame(KEEPALIVE, &[])
}

/// An OPEN for `asn` with capabilities multiprotocol IPv4 unicast, 4-octet
/// AS, and (if `add_path_receive`) ADD-PATH receive for IPv4 unicast.
pub fn open(asn: u32, hold_time: u16, id: Ipv4Addr, add_path_receive: bool) -> Vec<u8> {
    let mut caps = vec![CAP_MULTIPROTOCOL, 4, 0, 1, 0, 1, CAP_FOUR_OCTET_AS, 4];
    caps.extend_from_slice(&asn.to_be_bytes());
    if add_path_receive {
        caps.extend_from_slice(&[CAP_ADD_PATH, 4, 0, 1, 1, 1]);
    }
    let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
    let mut body = vec![4];
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&hold_time.to_be_bytes());
    body.extend_from_slice(&id.octets());
    body.push(2 + caps.len() as u8);
    body.push(2);
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    frame(OPEN, &body)
}

/// Reads whole BGP messages from a stream through one large buffer.
pub struct MsgReader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl MsgReader {
    /// A reader with a 1 MiB buffer.
    pub fn new(stream: TcpStream) -> MsgReader {
        MsgReader {
            stream,
            buf: vec![0; 1 << 20],
            start: 0,
            end: 0,
        }
    }

    fn fill(&mut self, need: usize) -> io::Result<bool> {
        while self.end - self.start < need {
            if self.start > 0 && self.buf.len() - self.start < need.max(MAX_MESSAGE) {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.stream.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return Ok(false);
            }
            self.end += n;
        }
        Ok(true)
    }

    /// The next message as (type, body); `None` when the peer closed.
    pub fn next(&mut self) -> io::Result<Option<(u8, &[u8])>> {
        if !self.fill(HEADER)? {
            return Ok(None);
        }
        let h = &self.buf[self.start..self.start + HEADER];
        let len = usize::from(u16::from_be_bytes([h[16], h[17]]));
        let kind = h[18];
        if !(HEADER..=65535).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad BGP length {len}"),
            ));
        }
        if !self.fill(len)? {
            return Ok(None);
        }
        let body = self.start + HEADER..self.start + len;
        self.start += len;
        Ok(Some((kind, &self.buf[body])))
    }
}

/// What the speakers need to know about the route server's OPEN.
#[derive(Clone, Copy, Debug)]
pub struct PeerOpen {
    /// Its proposed hold time.
    pub hold_time: u16,
    /// It offered the 4-octet AS capability.
    pub four_octet_as: bool,
    /// It offered ADD-PATH send for IPv4 unicast.
    pub add_path_send: bool,
}

fn parse_open(body: &[u8]) -> Result<PeerOpen> {
    if body.len() < 10 {
        bail!("short OPEN ({} bytes)", body.len());
    }
    let hold_time = u16::from_be_bytes([body[3], body[4]]);
    let opt_len = usize::from(body[9]);
    let mut params = body
        .get(10..10 + opt_len)
        .context("OPEN optional parameters overrun")?;
    let mut open = PeerOpen {
        hold_time,
        four_octet_as: false,
        add_path_send: false,
    };
    while params.len() >= 2 {
        let (kind, len) = (params[0], usize::from(params[1]));
        let value = params.get(2..2 + len).context("OPEN parameter overrun")?;
        if kind == 2 {
            scan_capabilities(value, &mut open)?;
        }
        params = &params[2 + len..];
    }
    Ok(open)
}

fn scan_capabilities(mut caps: &[u8], open: &mut PeerOpen) -> Result<()> {
    while caps.len() >= 2 {
        let (code, len) = (caps[0], usize::from(caps[1]));
        let value = caps.get(2..2 + len).context("capability overrun")?;
        match code {
            CAP_FOUR_OCTET_AS => open.four_octet_as = true,
            CAP_ADD_PATH => {
                for entry in value.chunks_exact(4) {
                    if entry[..3] == [0, 1, 1] && entry[3] & 2 != 0 {
                        open.add_path_send = true;
                    }
                }
            }
            _ => {}
        }
        caps = &caps[2 + len..];
    }
    Ok(())
}

/// Describes a NOTIFICATION body as "code X subcode Y".
pub fn notification(body: &[u8]) -> String {
    match body {
        [code, sub, ..] => format!("NOTIFICATION code {code} subcode {sub}"),
        _ => "NOTIFICATION (short)".to_string(),
    }
}

/// Runs the OPEN exchange on a connected stream: sends `our_open`, reads
/// the peer's OPEN, sends KEEPALIVE, waits for its KEEPALIVE. Returns the
/// peer's OPEN and the reader (positioned after that KEEPALIVE).
pub fn handshake(stream: TcpStream, our_open: &[u8]) -> Result<(PeerOpen, MsgReader)> {
    let mut writer = stream.try_clone()?;
    writer.write_all(our_open).context("sending OPEN")?;
    let mut reader = MsgReader::new(stream);
    let mut peer = None;
    loop {
        let Some((kind, body)) = reader.next().context("reading during the handshake")? else {
            bail!("route server closed the connection during the handshake");
        };
        match kind {
            OPEN => {
                peer = Some(parse_open(body)?);
                writer
                    .write_all(&keepalive())
                    .context("sending KEEPALIVE")?;
            }
            KEEPALIVE if peer.is_some() => break,
            NOTIFICATION => bail!("route server sent {}", notification(body)),
            _ => {}
        }
    }
    Ok((peer.expect("set before the loop ends"), reader))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_offers_add_path_receive_and_four_octet_as() {
        let m = open(65515, 180, Ipv4Addr::new(10, 1, 0, 31), true);
        let p = parse_open(&m[HEADER..]).unwrap();
        assert!(p.four_octet_as);
        assert!(!p.add_path_send);
        assert_eq!(p.hold_time, 180);
        assert!(m.windows(6).any(|w| w == [CAP_ADD_PATH, 4, 0, 1, 1, 1]));
    }
}
