//! Bringing one benchmark speaker's session up: connect from its address
//! inside its namespace, exchange OPEN and KEEPALIVE, retrying until the
//! route server accepts (a daemon that just started may still refuse or
//! reset the connection), and a KEEPALIVE timer for the negotiated hold time.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use steer_tests::Netns;

use super::interrupt;
use super::topology::{self, RS_ADDR};
use super::wire::{self, MsgReader, PeerOpen};

/// The hold time the speakers propose.
pub const HOLD_TIME: u16 = 180;

/// An Established session: the route server's OPEN, a reader positioned
/// after the handshake, and a handle for writing.
pub struct Established {
    /// What the route server offered.
    pub open: PeerOpen,
    /// Reads the rest of the session.
    pub reader: MsgReader,
    /// Writes (a clone of the same socket).
    pub writer: TcpStream,
}

/// Connects from `from` in `ns` to the route server on port 179 and runs
/// the handshake with `our_open`; retries until `timeout`.
pub fn establish(
    ns: &Netns,
    from: Ipv4Addr,
    our_open: &[u8],
    timeout: Duration,
) -> Result<Established> {
    let to = SocketAddrV4::new(RS_ADDR, 179);
    let deadline = Instant::now() + timeout;
    loop {
        interrupt::check()?;
        let attempt = topology::connect(ns, from, to).and_then(|s| {
            let writer = s.try_clone()?;
            let (open, reader) = wire::handshake(s, our_open)?;
            Ok(Established {
                open,
                reader,
                writer,
            })
        });
        match attempt {
            Ok(e) => return Ok(e),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| {
                    format!("session {from} -> {to} not Established after {timeout:?}")
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Sends KEEPALIVE every third of the negotiated hold time until `stop`,
/// on the calling thread (the only writer of `writer` from then on); a
/// write error ends it quietly (the reader reports the session's end).
pub fn keepalive_loop(mut writer: TcpStream, peer_hold: u16, stop: &AtomicBool) {
    let hold = HOLD_TIME.min(peer_hold);
    if hold == 0 {
        return;
    }
    let every = Duration::from_secs(u64::from(hold / 3).max(1));
    let msg = wire::keepalive();
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next {
            if writer.write_all(&msg).is_err() {
                return;
            }
            next += every;
        }
    }
}

/// Fails unless the route server offered what a speaker relies on.
pub fn require(open: &PeerOpen, add_path_send: bool) -> Result<()> {
    if !open.four_octet_as {
        bail!("the route server did not offer the 4-octet AS capability");
    }
    if add_path_send && !open.add_path_send {
        bail!("the route server did not offer ADD-PATH send for IPv4 unicast");
    }
    Ok(())
}
