//! The session driver over real TCP on loopback: connection collisions
//! (RFC 4271 §6.8) keep the connection opened by the speaker with the higher
//! BGP identifier and close the other with Cease/7, and a second connection
//! to an established session without graceful restart is refused with
//! Cease/7 while the session stays up. Also the hold BFD puts on a
//! session: Cease/10, then neither connecting nor accepting until released.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use steer::bgp::capability::Capability;
use steer::bgp::error::Notification;
use steer::bgp::fsm::{Backoff, FsmConfig};
use steer::bgp::message::{CodecConfig, Message, Open, decode, frame_len};
use steer::bgp::peer::{PeerMsg, SessionCommand, SessionEvent};
use steer::bgp::session::{self, SessionHandle, SessionSpec};
use steer::bgp::status::PeerStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    async fn send(&mut self, m: Message) {
        let mut out = Vec::new();
        m.encode(&CodecConfig::default(), &mut out).unwrap();
        self.s.write_all(&out).await.unwrap();
    }

    /// The next message, or None at end of stream.
    async fn recv(&mut self) -> Option<Message> {
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
                .unwrap();
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn expect_open(&mut self) -> Open {
        match self.recv().await {
            Some(Message::Open(o)) => o,
            m => panic!("expected OPEN, got {m:?}"),
        }
    }
}

fn peer_open(router_id: Ipv4Addr) -> Message {
    Message::Open(Open::new(
        65010,
        90,
        router_id,
        vec![Capability::FourOctetAs(65010)],
    ))
}

async fn start(
    router_id: Ipv4Addr,
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
            capabilities: vec![Capability::FourOctetAs(65515)],
            passive: false,
            restart: true,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(4),
            },
        },
        remote: listener.local_addr().unwrap(),
        bind: None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let h = session::spawn(spec, tx, None, Arc::new(PeerStatus::default()));
    (h, rx, listener)
}

/// A connection "from the peer" handed to the session as the listener
/// would: returns the peer's end.
async fn incoming(h: &SessionHandle) -> Wire {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_side = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (session_side, _) = l.accept().await.unwrap();
    h.cmd.send(SessionCommand::Incoming(session_side)).unwrap();
    Wire {
        s: peer_side,
        buf: Vec::new(),
    }
}

async fn established(rx: &mut mpsc::UnboundedReceiver<PeerMsg>) -> SocketAddrs {
    loop {
        let m = timeout(WAIT, rx.recv())
            .await
            .expect("no session event")
            .unwrap();
        if let SessionEvent::Established(e) = m.event {
            return SocketAddrs {
                local: e.local.port(),
                remote: e.remote.port(),
            };
        }
    }
}

struct SocketAddrs {
    local: u16,
    remote: u16,
}

async fn run_collision(local_id: Ipv4Addr, peer_id: Ipv4Addr) -> (bool, SocketAddrs, u16, u16) {
    let (h, mut rx, listener) = start(local_id).await;
    let (s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut outgoing = Wire { s, buf: Vec::new() };
    let out_port = outgoing.s.local_addr().unwrap().port();
    outgoing.expect_open().await;
    let mut inc = incoming(&h).await;
    let in_port = inc.s.local_addr().unwrap().port();
    inc.expect_open().await;

    outgoing.send(peer_open(peer_id)).await;
    assert!(matches!(outgoing.recv().await, Some(Message::Keepalive)));
    inc.send(peer_open(peer_id)).await;

    let cease7 = Some(Message::Notification(Notification::new(6, 7)));
    let (winner, loser, outgoing_survives) = match inc.recv().await {
        Some(Message::Keepalive) => (inc, outgoing, false),
        m => {
            assert_eq!(m, cease7, "the incoming connection lost: Cease/7");
            (outgoing, inc, true)
        }
    };
    let mut winner = winner;
    let mut loser = loser;
    if outgoing_survives {
        assert_eq!(loser.recv().await, None, "the losing connection is closed");
    } else {
        assert_eq!(
            loser.recv().await,
            cease7,
            "the outgoing connection lost: Cease/7"
        );
        assert_eq!(loser.recv().await, None);
    }
    winner.send(Message::Keepalive).await;
    let addrs = established(&mut rx).await;
    h.cmd
        .send(SessionCommand::Stop(Notification::new(6, 2)))
        .unwrap();
    (outgoing_survives, addrs, out_port, in_port)
}

#[tokio::test]
async fn collision_keeps_our_connection_when_our_router_id_is_higher() {
    let (outgoing_survives, addrs, out_port, _) =
        run_collision(Ipv4Addr::new(10, 1, 0, 9), Ipv4Addr::new(10, 1, 0, 1)).await;
    assert!(outgoing_survives);
    assert_eq!(
        addrs.remote, out_port,
        "established on the connection we opened"
    );
}

#[tokio::test]
async fn collision_keeps_the_peers_connection_when_its_router_id_is_higher() {
    let (outgoing_survives, addrs, _, in_port) =
        run_collision(Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 9)).await;
    assert!(!outgoing_survives);
    assert_eq!(
        addrs.remote, in_port,
        "established on the connection the peer opened"
    );
    assert_ne!(addrs.local, 0);
}

/// A session Established over the connection it opened; returns its
/// handle, the peer's end, and the listener it connects to.
async fn established_session() -> (SessionHandle, Wire, TcpListener) {
    let (h, mut rx, listener) = start(Ipv4Addr::new(10, 1, 0, 4)).await;
    let (s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut first = Wire { s, buf: Vec::new() };
    first.expect_open().await;
    first.send(peer_open(Ipv4Addr::new(10, 1, 0, 10))).await;
    assert!(matches!(first.recv().await, Some(Message::Keepalive)));
    first.send(Message::Keepalive).await;
    established(&mut rx).await;
    (h, first, listener)
}

#[tokio::test]
async fn second_connection_to_an_established_session_is_refused_with_cease_7() {
    let (h, mut first, _listener) = established_session().await;

    let mut second = incoming(&h).await;
    assert_eq!(
        second.recv().await,
        Some(Message::Notification(Notification::new(6, 7)))
    );
    assert_eq!(second.recv().await, None);
    first.send(Message::Keepalive).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.status.state(), steer::bgp::fsm::State::Established);
}

#[tokio::test]
async fn hold_sends_cease_10_and_neither_connects_nor_accepts_until_released() {
    let (h, mut first, listener) = established_session().await;

    h.cmd
        .send(SessionCommand::Hold(Notification::new(6, 10)))
        .unwrap();
    assert_eq!(
        first.recv().await,
        Some(Message::Notification(Notification::new(6, 10)))
    );
    assert_eq!(first.recv().await, None);
    // Backoff would reconnect within about a second; held, it must not.
    assert!(
        timeout(Duration::from_secs(3), listener.accept())
            .await
            .is_err(),
        "a held session connected out"
    );
    let mut refused = incoming(&h).await;
    assert_eq!(refused.recv().await, None, "a held session accepted");
    assert_eq!(h.status.state(), steer::bgp::fsm::State::Idle);

    h.cmd.send(SessionCommand::Release).unwrap();
    let (s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut again = Wire { s, buf: Vec::new() };
    again.expect_open().await;
}
