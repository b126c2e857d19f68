//! The session driver over real TCP on loopback: connection collisions
//! (RFC 4271 §6.8) keep the connection opened by the speaker with the higher
//! BGP identifier and close the other with Cease/7, and a second connection
//! to an established session without graceful restart is refused with
//! Cease/7 while the session stays up. With graceful restart, a new
//! connection leaves the established session alone until it sends a valid
//! OPEN with the same BGP identifier (RFC 4724 §4.2): a bare connect, a
//! garbage OPEN, a wrong AS or another identifier change nothing. Also the
//! hold BFD puts on a session: Cease/10, then neither connecting nor
//! accepting until released.

mod session_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use session_support::{
    Wire, default_limits, establish_outgoing, established, incoming, peer_open, peer_open_with,
    start, start_with,
};
use steer::bgp::capability::{Capability, GracefulRestart};
use steer::bgp::error::Notification;
use steer::bgp::fsm::DownReason;
use steer::bgp::message::{Message, Open};
use steer::bgp::peer::{PeerMsg, SessionCommand, SessionEvent};
use steer::bgp::session::SessionHandle;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = session_support::WAIT;

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
    let e = established(&mut rx).await;
    let addrs = SocketAddrs {
        local: e.local.port(),
        remote: e.remote.port(),
    };
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

fn graceful_restart() -> Capability {
    Capability::GracefulRestart(GracefulRestart {
        restarting: false,
        notification: false,
        restart_time: 120,
        families: vec![],
    })
}

/// No Down event arrives within `d`.
async fn stays_up(rx: &mut mpsc::UnboundedReceiver<PeerMsg>, d: Duration) {
    if let Ok(Some(m)) = timeout(d, async {
        loop {
            match rx.recv().await {
                Some(PeerMsg {
                    event: SessionEvent::Down { reason },
                    ..
                }) => return Some(reason),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    {
        panic!("the established session went down: {m}");
    }
}

#[tokio::test]
async fn only_a_valid_open_from_the_same_speaker_restarts_a_graceful_restart_session() {
    let (h, mut rx, listener) = start_with(
        Ipv4Addr::new(10, 1, 0, 4),
        vec![Capability::FourOctetAs(65515), graceful_restart()],
        default_limits(),
    )
    .await;
    let peer_id = Ipv4Addr::new(10, 1, 0, 10);
    let gr_open = |id| peer_open_with(id, vec![Capability::FourOctetAs(65010), graceful_restart()]);
    let (mut first, e) = establish_outgoing(&mut rx, &listener, gr_open(peer_id)).await;
    assert!(e.negotiated.graceful_restart.is_some());
    let first_remote = e.remote;

    let mut bare = incoming(&h).await;
    bare.expect_open().await;
    stays_up(&mut rx, Duration::from_millis(500)).await;
    first.send(Message::Keepalive).await;
    assert_eq!(h.status.state(), steer::bgp::fsm::State::Established);

    let mut garbage = incoming(&h).await;
    garbage.expect_open().await;
    garbage.s.write_all(&[0xff; 16]).await.unwrap();
    garbage
        .s
        .write_all(&[0, 29, 1, 4, 0xfd, 0xea])
        .await
        .unwrap();
    garbage.s.write_all(&[0; 7]).await.unwrap();
    assert!(
        matches!(garbage.recv().await, Some(Message::Notification(n)) if n.code == 2),
        "a garbage OPEN gets an OPEN Message Error on its own connection"
    );
    let mut wrong_as = incoming(&h).await;
    wrong_as.expect_open().await;
    wrong_as
        .send(Message::Open(Open::new(
            65099,
            90,
            peer_id,
            vec![Capability::FourOctetAs(65099), graceful_restart()],
        )))
        .await;
    assert!(
        matches!(wrong_as.recv().await, Some(Message::Notification(n)) if (n.code, n.subcode) == (2, 2)),
        "Bad Peer AS"
    );
    let mut other_id = incoming(&h).await;
    other_id.expect_open().await;
    other_id.send(gr_open(Ipv4Addr::new(10, 1, 0, 99))).await;
    assert_eq!(
        other_id.recv().await,
        Some(Message::Notification(Notification::new(6, 7))),
        "another BGP identifier is a collision the established session wins"
    );
    stays_up(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(h.status.state(), steer::bgp::fsm::State::Established);
    first.send(Message::Keepalive).await;

    let mut restarted = incoming(&h).await;
    restarted.expect_open().await;
    restarted.send(gr_open(peer_id)).await;
    let reason = loop {
        match timeout(WAIT, rx.recv()).await.unwrap().unwrap().event {
            SessionEvent::Down { reason } => break reason,
            _ => continue,
        }
    };
    assert!(
        matches!(&reason, DownReason::TcpFailed(_)) && reason.is_graceful_restart_candidate(false),
        "{reason}"
    );
    assert!(matches!(restarted.recv().await, Some(Message::Keepalive)));
    restarted.send(Message::Keepalive).await;
    let e = established(&mut rx).await;
    assert_ne!(
        e.remote, first_remote,
        "the new connection carries the session"
    );
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
