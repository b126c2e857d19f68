//! The session driver over real TCP on loopback: connection collisions
//! (RFC 4271 §6.8) keep the connection opened by the speaker with the higher
//! BGP identifier and close the other with Cease/7, and a second connection
//! to an established session without graceful restart is refused with
//! Cease/7 while the session stays up.

mod session_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use session_support::{Wire, established, incoming, peer_open, start};
use steer::bgp::error::Notification;
use steer::bgp::message::Message;
use steer::bgp::peer::SessionCommand;
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

#[tokio::test]
async fn second_connection_to_an_established_session_is_refused_with_cease_7() {
    let (h, mut rx, listener) = start(Ipv4Addr::new(10, 1, 0, 4)).await;
    let (s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut first = Wire { s, buf: Vec::new() };
    first.expect_open().await;
    first.send(peer_open(Ipv4Addr::new(10, 1, 0, 10))).await;
    assert!(matches!(first.recv().await, Some(Message::Keepalive)));
    first.send(Message::Keepalive).await;
    established(&mut rx).await;

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
