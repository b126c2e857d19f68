//! Shared support for the session-driver tests (`tests/session_*.rs`): a
//! session task connecting to a listener on loopback, the peer's end of
//! a connection as a [`Wire`] speaking through Steer's codec, and
//! connections handed to the session as the listener would.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use steer::bgp::capability::Capability;
use steer::bgp::fsm::{Backoff, DownReason, FsmConfig};
use steer::bgp::message::{CodecConfig, Message, Open, decode, frame_len};
use steer::bgp::peer::{Backlog, Established, PeerMsg, SessionCommand, SessionEvent};
use steer::bgp::session::{self, SendLimits, SessionHandle, SessionSpec};
use steer::bgp::status::PeerStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long a test waits for the session to do something.
pub const WAIT: Duration = Duration::from_secs(10);

/// The peer's end of one connection.
pub struct Wire {
    /// The socket.
    pub s: TcpStream,
    /// Bytes read and not yet decoded.
    pub buf: Vec<u8>,
}

impl Wire {
    /// A wire over `s`.
    pub fn new(s: TcpStream) -> Wire {
        Wire { s, buf: Vec::new() }
    }

    /// Encode and send `m`.
    pub async fn send(&mut self, m: Message) {
        let mut out = Vec::new();
        m.encode(&CodecConfig::default(), &mut out).unwrap();
        self.s.write_all(&out).await.unwrap();
    }

    /// The next message, or None at end of stream (or a reset).
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(n) = frame_len(&self.buf, &CodecConfig::default()).unwrap()
                && self.buf.len() >= n
            {
                let m = decode(&self.buf[..n], &CodecConfig::default()).unwrap();
                self.buf.drain(..n);
                return Some(m);
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(WAIT, self.s.read(&mut chunk))
                .await
                .expect("peer silent")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next message, which must be an OPEN.
    pub async fn expect_open(&mut self) -> Open {
        match self.recv().await {
            Some(Message::Open(o)) => o,
            m => panic!("expected OPEN, got {m:?}"),
        }
    }
}

/// An OPEN from the peer (AS 65010, hold 90).
pub fn peer_open(router_id: Ipv4Addr) -> Message {
    peer_open_with(router_id, vec![Capability::FourOctetAs(65010)])
}

/// An OPEN from the peer (AS 65010, hold 90) with these capabilities.
pub fn peer_open_with(router_id: Ipv4Addr, caps: Vec<Capability>) -> Message {
    Message::Open(Open::new(65010, 90, router_id, caps))
}

/// The send limits of a session: RFC 9687's default and 64 MiB.
pub fn default_limits() -> SendLimits {
    SendLimits {
        send_hold_time: None,
        queue_limit: 64 << 20,
    }
}

/// A session (AS 65515, peer AS 65010) connecting to a fresh listener,
/// offering `caps`; returns its handle, its events and the listener.
pub async fn start_with(
    router_id: Ipv4Addr,
    caps: Vec<Capability>,
    send: SendLimits,
) -> (SessionHandle, mpsc::UnboundedReceiver<PeerMsg>, TcpListener) {
    start_with_backlog(router_id, caps, send, None).await
}

/// [`start_with`], the session pausing its reads while `backlog` is over
/// its limit.
pub async fn start_with_backlog(
    router_id: Ipv4Addr,
    caps: Vec<Capability>,
    send: SendLimits,
    backlog: Option<Arc<Backlog>>,
) -> (SessionHandle, mpsc::UnboundedReceiver<PeerMsg>, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = SessionSpec {
        id: 1,
        name: "nva".into(),
        fsm: FsmConfig {
            local_asn: 65515,
            router_id,
            peer_asn: 65010,
            hold_time: 90,
            keepalive: None,
            capabilities: caps,
            passive: false,
            restart: true,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(4),
            },
        },
        remote: listener.local_addr().unwrap(),
        bind: None,
        send,
        security: Default::default(),
        backlog,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let h = session::spawn(spec, tx, None, Arc::new(PeerStatus::default()));
    (h, rx, listener)
}

/// [`start_with`] offering only 4-octet AS, with the default limits.
pub async fn start(
    router_id: Ipv4Addr,
) -> (SessionHandle, mpsc::UnboundedReceiver<PeerMsg>, TcpListener) {
    start_with(
        router_id,
        vec![Capability::FourOctetAs(65515)],
        default_limits(),
    )
    .await
}

/// A connection "from the peer" handed to the session as the listener
/// would: returns the peer's end.
pub async fn incoming(h: &SessionHandle) -> Wire {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_side = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (session_side, _) = l.accept().await.unwrap();
    h.cmd.send(SessionCommand::Incoming(session_side)).unwrap();
    Wire::new(peer_side)
}

/// The first Down event within `within`, if any.
pub async fn down(
    rx: &mut mpsc::UnboundedReceiver<PeerMsg>,
    within: Duration,
) -> Option<DownReason> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(PeerMsg {
                event: SessionEvent::Down { reason },
                ..
            })) => return Some(reason),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The next Established event.
pub async fn established(rx: &mut mpsc::UnboundedReceiver<PeerMsg>) -> Box<Established> {
    loop {
        let m = timeout(WAIT, rx.recv())
            .await
            .expect("no session event")
            .unwrap();
        if let SessionEvent::Established(e) = m.event {
            return e;
        }
    }
}

/// The session Established over the connection it opened to `listener`,
/// the peer opening with `open`; returns the peer's end and the event.
pub async fn establish_outgoing(
    rx: &mut mpsc::UnboundedReceiver<PeerMsg>,
    listener: &TcpListener,
    open: Message,
) -> (Wire, Box<Established>) {
    let (s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut w = Wire::new(s);
    w.expect_open().await;
    w.send(open).await;
    assert!(matches!(w.recv().await, Some(Message::Keepalive)));
    w.send(Message::Keepalive).await;
    let e = established(rx).await;
    (w, e)
}
