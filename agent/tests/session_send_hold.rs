//! The session driver against a peer that stops reading, over real TCP on
//! loopback: the send-hold timer (RFC 9687) resets the connection once the
//! peer has taken nothing for the send-hold time, a send queue over its
//! byte limit ends the session with Cease/8 and releases what it held
//! (shared encodings included), and a peer that reads slowly but keeps
//! taking data is never dropped.

mod session_support;

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use session_support::{Wire, down, establish_outgoing, peer_open, start_with};
use steer::bgp::capability::Capability;
use steer::bgp::error::Notification;
use steer::bgp::fsm::DownReason;
use steer::bgp::message::Message;
use steer::bgp::peer::PeerMsg;
use steer::bgp::session::SendLimits;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

const ID: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 4);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);

/// `n` UPDATE-typed messages of 4,096 bytes (the peer never decodes them).
fn chunk(n: usize) -> Bytes {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&4096u16.to_be_bytes());
    m.push(2);
    m.resize(4096, 0);
    Bytes::from(m.repeat(n))
}

async fn session(
    send: SendLimits,
) -> (
    Wire,
    steer::bgp::peer::Outbound,
    mpsc::UnboundedReceiver<PeerMsg>,
    steer::bgp::session::SessionHandle,
) {
    let (h, mut rx, listener) = start_with(ID, vec![Capability::FourOctetAs(65515)], send).await;
    socket2::SockRef::from(&listener)
        .set_recv_buffer_size(4096)
        .unwrap();
    let (w, e) = establish_outgoing(&mut rx, &listener, peer_open(PEER_ID)).await;
    (w, e.out, rx, h)
}

/// True once a write from the peer's end fails as after a RST.
async fn peer_was_reset(w: &mut Wire) -> bool {
    for _ in 0..50 {
        match w.s.write_all(&[0xff; 19]).await {
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return true;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_reset_with_send_hold_timer_expired() {
    let hold = Duration::from_secs(2);
    let (mut w, out, mut rx, h) = session(SendLimits {
        send_hold_time: Some(hold),
        queue_limit: 1 << 30,
    })
    .await;
    let shared = chunk(16);
    let mut stalled_at = None;
    let start = Instant::now();
    let reason = loop {
        out.send(shared.clone(), 16);
        w.send(Message::Keepalive).await;
        let q = h.status.snapshot().send_queue;
        if stalled_at.is_none() && q.bytes > 256 << 10 {
            stalled_at = Some(Instant::now());
        }
        if let Some(r) = down(&mut rx, Duration::from_millis(10)).await {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never dropped");
    };
    let stalled_at = stalled_at.expect("the queue grew while the peer read nothing");
    assert_eq!(
        reason,
        DownReason::NotificationSent(Notification::new(8, 0)),
        "Send Hold Timer Expired"
    );
    let after = stalled_at.elapsed();
    assert!(
        after + Duration::from_secs(1) >= hold && after <= hold + Duration::from_secs(3),
        "dropped {after:?} after the queue stalled, with a send-hold time of {hold:?}"
    );
    assert_eq!(h.status.snapshot().send_hold_expiries, 1);
    assert_eq!(h.status.snapshot().send_queue.bytes, 0);
    assert!(shared.is_unique(), "the shared encoding is released");
    assert!(!out.send(shared.clone(), 16), "the queue is gone");
    assert!(
        peer_was_reset(&mut w).await,
        "the connection was reset, not drained"
    );
}

#[tokio::test]
async fn a_send_queue_over_its_limit_ends_the_session_with_cease_8_and_keeps_nothing() {
    let (mut w, out, mut rx, h) = session(SendLimits {
        send_hold_time: None,
        queue_limit: 256 << 10,
    })
    .await;
    let shared = chunk(16);
    let mut refused = false;
    for _ in 0..1000 {
        if !out.send(shared.clone(), 16) {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the queue never refused a push");
    let reason = down(&mut rx, Duration::from_secs(5)).await;
    assert_eq!(
        reason,
        Some(DownReason::NotificationSent(Notification::new(6, 8))),
        "Cease / Out of Resources"
    );
    let s = h.status.snapshot();
    assert_eq!((s.queue_overflows, s.send_queue.bytes), (1, 0));
    assert!(shared.is_unique(), "the shared encoding is released");
    assert!(
        peer_was_reset(&mut w).await,
        "the connection was reset, not drained"
    );
}

#[tokio::test]
async fn a_slow_reader_that_keeps_taking_data_is_not_dropped() {
    let (mut w, out, mut rx, h) = session(SendLimits {
        send_hold_time: Some(Duration::from_secs(2)),
        queue_limit: 64 << 20,
    })
    .await;
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(6) {
            let mut buf = vec![0u8; 64 << 10];
            if let Ok(Ok(n)) = tokio::time::timeout(
                Duration::from_millis(100),
                tokio::io::AsyncReadExt::read(&mut w.s, &mut buf),
            )
            .await
            {
                got += n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got
    });
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(5) {
        assert!(out.send(chunk(64), 64));
        sent += 64 * 4096;
        assert_eq!(down(&mut rx, Duration::from_millis(100)).await, None);
    }
    let backlog = h.status.snapshot().send_queue.bytes;
    let got = reader.await.unwrap();
    assert!(
        backlog > 512 << 10 && got > 64 << 10,
        "the reader took {got} of {sent} bytes, {backlog} waited: it must be slow and still read"
    );
    assert_eq!(h.status.snapshot().send_hold_expiries, 0);
    assert_eq!(
        h.status.state(),
        steer::bgp::fsm::State::Established,
        "a slow reader stays"
    );
}
