//! The little BGP-4 session work the benchmark speakers need (RFC 4271,
//! 4-octet AS from RFC 6793, ADD-PATH from RFC 7911): the OPEN they send, a
//! framing reader, and the capability checks both speakers make on the
//! route server's OPEN. Every message is built and parsed by the tests
//! crate's independent encoder (`steer_tests::wire`, the UPDATEs by
//! `steer_tests::shape`), so tests and benchmarks speak one wire format,
//! and none of it is Steer's codec: the benchmark must not share its bugs.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpStream};

use anyhow::{Context, Result, bail};
use steer_tests::wire as tw;
pub use steer_tests::wire::{
    HEADER_LEN as HEADER, KEEPALIVE, MESSAGE_MAX as MAX_MESSAGE, NOTIFICATION, OPEN, UPDATE,
    keepalive,
};

const CAP_FOUR_OCTET_AS: u8 = 65;
const CAP_ADD_PATH: u8 = 69;

/// An OPEN for `asn` with capabilities multiprotocol IPv4 unicast, 4-octet
/// AS, and (if `add_path_receive`) ADD-PATH receive for IPv4 unicast.
pub fn open(asn: u32, hold_time: u16, id: Ipv4Addr, add_path_receive: bool) -> Vec<u8> {
    let mut caps = vec![tw::cap_ipv4_unicast(), tw::cap_as4(asn)];
    if add_path_receive {
        caps.push(tw::cap_add_path_ipv4(1));
    }
    tw::open(asn, hold_time, id, &caps)
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
    let opt_len = usize::from(body[9]);
    let params = body
        .get(10..10 + opt_len)
        .context("OPEN optional parameters overrun")?;
    let mut open = PeerOpen {
        hold_time: u16::from_be_bytes([body[3], body[4]]),
        four_octet_as: false,
        add_path_send: false,
    };
    for (code, value) in tw::capabilities(params)? {
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
    }
    Ok(open)
}

/// Describes a NOTIFICATION body as "NOTIFICATION code/subcode".
pub fn notification(body: &[u8]) -> String {
    tw::Notification::from_body(body).map_or_else(|e| e.to_string(), |n| n.to_string())
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
