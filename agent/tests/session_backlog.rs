//! The session driver while the route server's backlog is full, over real
//! TCP on loopback: the session stops reading its socket, and its hold
//! timer does not end a session whose peer kept sending KEEPALIVEs that
//! wait unread; once the backlog drains they are read and the session
//! goes on. A peer silent through and after the pause is still dropped
//! with Hold Timer Expired.

mod session_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use session_support::{Wire, default_limits, down, establish_outgoing, start_with_backlog};
use steer::bgp::capability::Capability;
use steer::bgp::fsm::DownReason;
use steer::bgp::iana::ErrorCode;
use steer::bgp::message::{Message, Open};
use steer::bgp::peer::{Backlog, PeerMsg};
use tokio::sync::mpsc;

const ID: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 4);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
/// The hold time the peer offers (and so the session's).
const HOLD: u16 = 3;

async fn paused_session() -> (
    Wire,
    mpsc::UnboundedReceiver<PeerMsg>,
    std::sync::Arc<Backlog>,
    steer::bgp::session::SessionHandle,
) {
    let backlog = Backlog::new(10);
    let (h, mut rx, listener) = start_with_backlog(
        ID,
        vec![Capability::FourOctetAs(65515)],
        default_limits(),
        Some(backlog.clone()),
    )
    .await;
    let open = Message::Open(Open::new(
        65010,
        HOLD,
        PEER_ID,
        vec![Capability::FourOctetAs(65010)],
    ));
    let (w, _) = establish_outgoing(&mut rx, &listener, open).await;
    backlog.add(11);
    assert!(backlog.over());
    (w, rx, backlog, h)
}

#[tokio::test]
async fn a_peer_whose_keepalives_wait_unread_behind_a_full_backlog_is_not_dropped() {
    let (mut w, mut rx, backlog, _h) = paused_session().await;
    for _ in 0..(3 * HOLD) {
        w.send(Message::Keepalive).await;
        assert_eq!(down(&mut rx, Duration::from_secs(1)).await, None);
    }
    backlog.done(11);
    for _ in 0..(2 * HOLD) {
        w.send(Message::Keepalive).await;
        assert_eq!(down(&mut rx, Duration::from_secs(1)).await, None);
    }
}

#[tokio::test]
async fn a_peer_silent_through_and_after_the_pause_is_dropped_with_hold_timer_expired() {
    let (_w, mut rx, backlog, _h) = paused_session().await;
    assert_eq!(
        down(&mut rx, Duration::from_secs(u64::from(HOLD) + 1)).await,
        None
    );
    backlog.done(11);
    let reason = down(&mut rx, Duration::from_secs(3 * u64::from(HOLD))).await;
    assert!(
        matches!(&reason, Some(DownReason::NotificationSent(n)) if n.code == u8::from(ErrorCode::HoldTimerExpired)),
        "{reason:?}"
    );
}
