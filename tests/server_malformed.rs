//! Malformed input from real peers gets the outcome RFC 7606 names, and the
//! daemon keeps running: ExaBGP sends raw attributes (treat-as-withdraw:
//! the session stays up and the prefix is withdrawn downstream; attribute
//! discard: the route stays without the attribute; session reset: the exact
//! NOTIFICATION), and a raw speaker sends a bad marker, a bad length, an
//! unknown message type and an unparseable NLRI.

use anyhow::Result;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::Duration;
use steer_tests::scenario::{RouteServer, RouteServerLab};
use steer_tests::wire::{self, Message};
use steer_tests::{
    BgpDaemon, Exabgp, ExabgpConfig, Netns, Notification, RawAttribute, RawPeer, SessionState,
    Steer, default_timeout,
};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
connect_retry = 1

[[peer]]
name = "exa"
address = "10.1.0.30"
asn = 65030

[[peer]]
name = "raw"
address = "10.1.0.40"
asn = 65040
passive = true

[hosts]
ranges = ["10.1.0.0/25"]
"#;

/// The server and a GoBGP host, with the `exa` and `raw` nodes on the LAN
/// and nothing started in them.
fn setup() -> Result<RouteServer> {
    RouteServerLab::new(RS_CONFIG)
        .node("exa", "10.1.0.30")
        .node("raw", "10.1.0.40")
        .host_gobgp("host1", "10.1.0.31")
        .start()
}

fn route(rs: &Steer, prefix: &str) -> Result<Value> {
    let v = rs.show(&["routes", prefix])?;
    Ok(v.as_array()
        .and_then(|a| a.first())
        .map(|r| r["paths"][0].clone())
        .unwrap_or(Value::Null))
}

fn state(rs: &Steer, name: &str) -> Result<String> {
    let v = rs.show(&["peers"])?;
    Ok(v.as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .map(|p| p["status"]["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default())
}

#[test]
fn exabgp_raw_attributes_get_treat_as_withdraw_attribute_discard_or_session_reset() -> Result<()> {
    let mut s = setup()?;
    let mut exa = Exabgp::start(
        s.ns("exa"),
        ExabgpConfig::new("10.1.0.30", 65030, "10.1.0.4", 65515),
    )?;
    exa.wait_established()?;

    // Treat-as-withdraw (RFC 7606 §7.1, §3 c): a known route re-announced
    // with a bad ORIGIN value, and another with wrong ORIGIN flags.
    exa.announce("192.0.2.0/25", "next-hop self")?;
    exa.announce("192.0.2.128/25", "next-hop self")?;
    s.host("host1")
        .wait_routes("192.0.2.0/25", |p| p.len() == 1)?;
    s.host("host1")
        .wait_routes("192.0.2.128/25", |p| p.len() == 1)?;
    exa.announce_raw("192.0.2.0/25", &[RawAttribute::new(0x40, 0x01, &[5])])?;
    exa.announce_raw("192.0.2.128/25", &[RawAttribute::new(0xc0, 0x01, &[0])])?;
    s.host("host1")
        .wait_routes("192.0.2.0/25", |p| p.is_empty())?;
    s.host("host1")
        .wait_routes("192.0.2.128/25", |p| p.is_empty())?;
    assert_eq!(route(&s.rs, "192.0.2.0/25")?, Value::Null);
    assert_eq!(exa.session_state(), SessionState::Established);
    assert_eq!(state(&s.rs, "exa")?, "Established");
    assert!(exa.notifications().is_empty(), "{:?}", exa.notifications());

    // Attribute discard (RFC 7606 §7.7): AGGREGATOR of the wrong length is
    // dropped, the route is kept; a well-formed one passes as a control.
    exa.announce_raw(
        "203.0.113.0/25",
        &[RawAttribute::new(0xc0, 0x07, &[0, 1, 2])],
    )?;
    exa.announce_raw(
        "203.0.113.128/25",
        &[RawAttribute::new(
            0xc0,
            0x07,
            &[0, 0, 0xfe, 0x26, 10, 1, 0, 30],
        )],
    )?;
    s.host("host1")
        .wait_routes("203.0.113.0/25", |p| p.len() == 1)?;
    s.host("host1")
        .wait_routes("203.0.113.128/25", |p| p.len() == 1)?;
    assert_eq!(route(&s.rs, "203.0.113.0/25")?["aggregator"], Value::Null);
    assert_eq!(
        route(&s.rs, "203.0.113.128/25")?["aggregator"],
        "65062 10.1.0.30"
    );
    let rib = s
        .host("host1")
        .json(&["global", "rib", "203.0.113.0/25"])?
        .to_string();
    assert!(
        !rib.contains("\"type\":7,"),
        "discarded AGGREGATOR reached the host: {rib}"
    );

    // Unknown optional transitive attribute: kept and passed on.
    exa.announce_raw(
        "198.51.100.0/24",
        &[RawAttribute::new(0xc0, 0xf0, &[0xde, 0xad, 0xbe, 0xef])],
    )?;
    s.host("host1")
        .wait_routes("198.51.100.0/24", |p| p.len() == 1)?;
    assert_eq!(
        route(&s.rs, "198.51.100.0/24")?["unknown"][0],
        "240:deadbeef"
    );

    // Session reset (RFC 7606 §7.11): MP_REACH_NLRI too short to parse.
    exa.announce_raw(
        "198.51.100.128/25",
        &[RawAttribute::new(0x80, 0x0e, &[0x00, 0x01])],
    )?;
    let n = exa.wait_notification(default_timeout())?;
    assert_eq!((n.code, n.subcode), (3, 9), "{n:?}");
    assert!(
        s.rs.is_running(),
        "the route server must survive malformed input"
    );
    assert_eq!(
        s.host("host1").session_state("10.1.0.4")?,
        SessionState::Established
    );
    exa.withdraw("198.51.100.128/25")?;
    Ok(())
}

fn raw(ns: &Netns) -> Result<RawPeer> {
    let mut p = RawPeer::connect_bgp(ns, "10.1.0.4", Duration::from_secs(10))?;
    let first = p.recv(Duration::from_secs(10))?;
    assert!(
        matches!(first, Some(Message::Open { .. })),
        "expected the server's OPEN, got {first:?}"
    );
    Ok(p)
}

#[test]
fn raw_speaker_header_errors_get_the_exact_notification() -> Result<()> {
    let s = setup()?;

    let mut p = raw(s.ns("raw"))?;
    p.send(&wire::corrupt_marker(wire::keepalive()))?;
    assert_eq!(
        p.expect_notification(default_timeout())?,
        Notification {
            code: 1,
            subcode: 1,
            data: vec![]
        }
    );
    assert!(p.is_closed(Duration::from_secs(5)));

    let mut p = raw(s.ns("raw"))?;
    p.send(&wire::with_length(wire::keepalive(), 5000))?;
    assert_eq!(
        p.expect_notification(default_timeout())?,
        Notification {
            code: 1,
            subcode: 2,
            data: vec![0x13, 0x88]
        }
    );

    let mut p = raw(s.ns("raw"))?;
    p.send(&wire::message(9, &[]))?;
    assert_eq!(
        p.expect_notification(default_timeout())?,
        Notification {
            code: 1,
            subcode: 3,
            data: vec![9]
        }
    );

    let mut p = RawPeer::connect_bgp(s.ns("raw"), "10.1.0.4", Duration::from_secs(10))?;
    p.establish_simple(65040, 90, Ipv4Addr::new(10, 1, 0, 40))?;
    let origin = wire::attribute(0x40, 1, &[0]);
    let as_path = wire::attribute(0x40, 2, &[2, 1, 0xfe, 0x40]);
    let next_hop = wire::attribute(0x40, 3, &[10, 1, 0, 40]);
    let attrs = [origin, as_path, next_hop].concat();
    p.send(&wire::update(&[], &attrs, &[33, 10, 0, 0, 0, 0]))?;
    assert_eq!(
        p.expect_notification(default_timeout())?,
        Notification {
            code: 3,
            subcode: 10,
            data: vec![]
        }
    );

    assert!(
        s.rs.show(&["peers"]).is_ok(),
        "the route server must keep answering"
    );
    assert_eq!(
        s.host("host1").session_state("10.1.0.4")?,
        SessionState::Established
    );
    Ok(())
}
