//! BFD between `steer server` and real appliances: FRR's bfdd and BIRD
//! reach Up with it single hop (IPv4 and IPv6) at the configured 300 ms ×
//! 3, BIRD also multihop through a router, each side agreeing on the
//! timers as its own `show` prints them; an appliance that does not speak
//! BFD still gets its BGP session (fail open) and `show peers` says BFD is
//! not running; and when BFD goes Down while TCP still works, the route
//! server ends the session with Cease/10 "BFD Down" (RFC 9384), on the
//! wire, and keeps it down until BFD is Up again.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use steer_tests::{
    Announce, BgpDaemon, Bird, BirdConfig, Capture, Frr, FrrConfig, Gobgp, GobgpConfig, Lab,
    Neighbor, Netns, Role, Steer, wire::Message,
};

/// A route server on 10.1.0.4 (and fd00:1::4) with `peers` (TOML
/// `[[peer]]` tables).
fn rs_config(peers: &str) -> String {
    format!(
        r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4", "fd00:1::4"]
vnet_prefixes = ["10.1.0.0/16"]
hold_time = 9
keepalive = 3
connect_retry = 1
{peers}
"#
    )
}

fn peer(name: &str, address: &str, asn: u32, extra: &str) -> String {
    format!("\n[[peer]]\nname = \"{name}\"\naddress = \"{address}\"\nasn = {asn}\n{extra}\n")
}

/// A LAN with the route server at 10.1.0.4/24 and fd00:1::4/64.
fn lan_with_rs(lab: &mut Lab) -> Result<(steer_tests::Lan, Netns)> {
    let lan = lab.lan("vnet")?;
    let rs = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    rs.ip("addr add fd00:1::4/64 dev eth0 nodad")?;
    Ok((lan, rs))
}

/// The route server's `show bfd` record for `peer`.
fn bfd_of(rs: &Steer, peer: &str) -> Result<Value> {
    let v = rs.show(&["bfd"])?;
    v.as_array()
        .and_then(|a| a.iter().find(|b| b["peer"] == peer).cloned())
        .ok_or_else(|| anyhow::anyhow!("no BFD session for {peer} in {v}"))
}

/// Waits until the route server has `peer`'s BFD session Up with the
/// 300 ms × 3 timers negotiated both ways; returns its record.
fn wait_bfd_up_300x3(rs: &Steer, peer: &str) -> Result<Value> {
    rs.wait_show(&["bfd"], |v| {
        v.as_array().is_some_and(|a| {
            a.iter().any(|b| {
                b["peer"] == peer
                    && b["state"] == "Up"
                    && b["remote_state"] == "Up"
                    && b["tx_interval_us"] == 300_000
                    && b["rx_interval_us"] == 300_000
                    && b["polling"] == false
            })
        })
    })?;
    bfd_of(rs, peer)
}

fn peer_view(rs: &Steer, name: &str) -> Result<Value> {
    let v = rs.show(&["peers"])?;
    v.as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name).cloned())
        .ok_or_else(|| anyhow::anyhow!("no peer {name} in {v}"))
}

fn assert_up_300x3(b: &Value) {
    assert_eq!(b["detection_time_us"], 900_000, "{b:#}");
    assert_eq!(b["detect_mult"], 3, "{b:#}");
    assert_eq!(b["remote_detect_mult"], 3, "{b:#}");
    assert_eq!(b["discarded"], 0, "no packet failed a check: {b:#}");
    assert_ne!(b["remote_disc"], 0, "{b:#}");
    let port = b["source_port"].as_u64().unwrap();
    assert!(
        (49152..=65535).contains(&port),
        "RFC 5881 §4 source port: {port}"
    );
}

/// After BFD came Up, BGP is still in its `established`-th session: BFD's
/// handshake never took the session down.
fn assert_bgp_untouched(rs: &Steer, name: &str, established: u64) -> Result<()> {
    std::thread::sleep(Duration::from_secs(2));
    let p = peer_view(rs, name)?;
    assert_eq!(p["status"]["state"], "Established", "{p:#}");
    assert_eq!(p["status"]["established_count"], established, "{p:#}");
    assert_eq!(p["bfd"]["summary"], "Up", "{p:#}");
    assert_eq!(p["bfd"]["running"], true, "{p:#}");
    Ok(())
}

/// The route server's count of BGP sessions and BFD Downs with FRR once
/// both have settled.
struct Settled {
    established: u64,
    downs: u64,
}

/// The route server and FRR as appliance `fw` (10.1.0.21) with BFD at
/// 300 ms × 3, BGP Established, and FRR's BFD session settled
/// ([`Frr::wait_bfd_settled`]): if FRR reset BGP on the way, that was its
/// Cease/10, and nothing the route server sent.
fn rs_and_frr(lab: &mut Lab) -> Result<(Steer, Frr, Settled)> {
    let (lan, rs_ns) = lan_with_rs(lab)?;
    let fw = lab.on_lan(&lan, "fw", "10.1.0.21/24")?;
    let rs = Steer::start(
        &rs_ns,
        Role::Server,
        &rs_config(&peer("fw", "10.1.0.21", 65021, "bfd = true")),
    )?;
    let frr = Frr::start(
        &fw,
        FrrConfig::new("fw", "10.1.0.21", 65021)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515).bfd(300, 3))
            .announce(Announce::new("0.0.0.0/0")),
    )?;
    frr.wait_bfd_settled("10.1.0.4", "10.1.0.21")?;
    let p = rs.wait_show(&["peers"], |v| v[0]["status"]["state"] == "Established")?;
    let established = p[0]["status"]["established_count"].as_u64().unwrap();
    if established != 1 {
        assert_eq!(established, 2, "one reset by FRR at most: {:#}", p[0]);
        assert_eq!(
            p[0]["status"]["last_error"], "received Cease / Hard Reset (6/9) data 060a",
            "FRR's Cease/10, nothing the route server sent: {:#}",
            p[0]
        );
    }
    let downs = bfd_of(&rs, "fw")?["downs"].as_u64().unwrap();
    Ok((rs, frr, Settled { established, downs }))
}

#[test]
fn frr_bfdd_reaches_up_with_steer_server_single_hop() -> Result<()> {
    let mut lab = Lab::new()?;
    let (rs, frr, settled) = rs_and_frr(&mut lab)?;
    let b = wait_bfd_up_300x3(&rs, "fw")?;
    assert_up_300x3(&b);
    assert_eq!(b["multihop"], false);
    assert_eq!(b["min_ttl"], 255);
    let theirs = frr.bfd_peer("10.1.0.4")?;
    assert_eq!(theirs["status"], "up", "{theirs:#}");
    assert_eq!(theirs["multihop"], false, "{theirs:#}");
    assert_eq!(theirs["remote-receive-interval"], 300, "{theirs:#}");
    assert_eq!(theirs["remote-transmit-interval"], 300, "{theirs:#}");
    assert_eq!(theirs["remote-detect-multiplier"], 3, "{theirs:#}");
    assert_eq!(
        theirs["id"], b["remote_disc"],
        "FRR's discriminator is ours for it"
    );
    assert_eq!(theirs["remote-id"], b["local_disc"]);
    assert_bgp_untouched(&rs, "fw", settled.established)
}

#[test]
fn bird_reaches_up_with_steer_server_single_hop() -> Result<()> {
    let mut lab = Lab::new()?;
    let (lan, rs_ns) = lan_with_rs(&mut lab)?;
    let fw = lab.on_lan(&lan, "fw", "10.1.0.20/24")?;
    let rs = Steer::start(
        &rs_ns,
        Role::Server,
        &rs_config(&peer("fw", "10.1.0.20", 65020, "bfd = true")),
    )?;
    let bird = Bird::start(
        &fw,
        BirdConfig::new("10.1.0.20", 65020)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515).bfd(300, 3))
            .announce(Announce::new("0.0.0.0/0")),
    )?;
    bird.wait_established("rs")?;
    let b = wait_bfd_up_300x3(&rs, "fw")?;
    assert_up_300x3(&b);
    let theirs = bird.bfd_sessions()?;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0].address.to_string(), "10.1.0.4");
    assert_eq!(
        (
            theirs[0].state.as_str(),
            theirs[0].interval.as_str(),
            theirs[0].timeout.as_str()
        ),
        ("Up", "0.300", "0.900")
    );
    assert_bgp_untouched(&rs, "fw", 1)
}

#[test]
fn bird_reaches_up_with_steer_server_over_ipv6() -> Result<()> {
    let mut lab = Lab::new()?;
    let (lan, rs_ns) = lan_with_rs(&mut lab)?;
    let fw = lab.on_lan(&lan, "fw", "10.1.0.20/24")?;
    fw.ip("addr add fd00:1::20/64 dev eth0 nodad")?;
    let rs = Steer::start(
        &rs_ns,
        Role::Server,
        &rs_config(&peer("fw6", "fd00:1::20", 65020, "bfd = true")),
    )?;
    let bird = Bird::start(
        &fw,
        BirdConfig::new("10.1.0.20", 65020)
            .neighbor(Neighbor::new("rs", "fd00:1::4", 65515).bfd(300, 3)),
    )?;
    bird.wait_established("rs")?;
    let b = wait_bfd_up_300x3(&rs, "fw6")?;
    assert_up_300x3(&b);
    assert_eq!(b["local"], "fd00:1::4");
    let theirs = bird.bfd_sessions()?;
    assert_eq!(theirs[0].address.to_string(), "fd00:1::4");
    assert_eq!(theirs[0].state, "Up");
    assert_bgp_untouched(&rs, "fw6", 1)
}

#[test]
fn bird_reaches_up_multihop_through_one_router() -> Result<()> {
    let mut lab = Lab::new()?;
    let (lan, rs_ns) = lan_with_rs(&mut lab)?;
    let router = lab.on_lan(&lan, "router", "10.1.0.1/24")?;
    let fw = lab.node("fw")?;
    lab.link(&router, "eth1", "10.9.0.1/24", &fw, "eth0", "10.9.0.10/24")?;
    rs_ns.ip("route add 10.9.0.0/24 via 10.1.0.1")?;
    fw.ip("route add 10.1.0.0/24 via 10.9.0.1")?;
    // BIRD sends multihop BFD with the system's TTL (64), 63 here: a
    // minimum of 64 refuses it and says so.
    let mut rs = Steer::start(
        &rs_ns,
        Role::Server,
        &rs_config(&peer(
            "far",
            "10.9.0.10",
            65030,
            "bfd = true\nbfd_min_ttl = 64",
        )),
    )?;
    let bird = Bird::start(
        &fw,
        BirdConfig::new("10.9.0.10", 65030).neighbor(
            Neighbor::new("rs", "10.1.0.4", 65515)
                .multihop(2)
                .local("10.9.0.10")
                .bfd(300, 3),
        ),
    )?;
    bird.wait_established("rs")?;
    let b = rs.wait_show(&["bfd"], |v| v[0]["discarded"].as_u64() > Some(2))?;
    assert_eq!(
        b[0]["last_discard"],
        "TTL 63 is below the multihop minimum 64 (RFC 5883 §5)"
    );
    assert_eq!(b[0]["state"], "Down");
    assert_eq!(b[0]["packets_in"], 0);
    let p = peer_view(&rs, "far")?;
    assert_eq!(
        p["status"]["state"], "Established",
        "never Up: BGP not blocked"
    );

    rs.write_config(&rs_config(&peer("far", "10.9.0.10", 65030, "bfd = true")))?;
    rs.restart()?;
    let b = wait_bfd_up_300x3(&rs, "far")?;
    assert_up_300x3(&b);
    assert_eq!(b["multihop"], true, "not on a connected subnet: RFC 5883");
    assert_eq!(b["min_ttl"], 1, "any TTL by default");
    let theirs = bird.bfd_sessions()?;
    assert_eq!(
        theirs[0].interface, "---",
        "BIRD runs it multihop: {theirs:?}"
    );
    assert_eq!(theirs[0].state, "Up");
    assert!(
        rs.log()
            .contains("BFD to 10.9.0.10 (far): not on a connected subnet, so multihop"),
        "{}",
        rs.log_tail()
    );
    std::thread::sleep(Duration::from_secs(2));
    let p = peer_view(&rs, "far")?;
    assert_eq!(p["status"]["state"], "Established", "{p:#}");
    assert_eq!(p["bfd"]["summary"], "Up", "{p:#}");
    Ok(())
}

#[test]
fn a_peer_without_bfd_still_establishes_and_show_peers_says_bfd_is_not_running() -> Result<()> {
    let mut lab = Lab::new()?;
    let (lan, rs_ns) = lan_with_rs(&mut lab)?;
    let fw = lab.on_lan(&lan, "fw", "10.1.0.22/24")?;
    let rs = Steer::start(
        &rs_ns,
        Role::Server,
        &rs_config(&peer("nobfd", "10.1.0.22", 65022, "bfd = true")),
    )?;
    let gobgp = Gobgp::start(
        &fw,
        GobgpConfig::new("10.1.0.22", 65022).neighbor(Neighbor::new("rs", "10.1.0.4", 65515)),
    )?;
    gobgp.wait_established("10.1.0.4")?;
    let p = rs.wait_show(&["peers"], |v| v[0]["status"]["state"] == "Established")?;
    let p = &p[0];
    assert_eq!(
        p["bfd"]["summary"], "not running (BGP not blocked)",
        "{p:#}"
    );
    assert_eq!(p["bfd"]["running"], false);
    assert_eq!(p["bfd"]["holds_bgp"], false);
    // BFD keeps trying at its slow rate; BGP stays up all along.
    std::thread::sleep(Duration::from_secs(5));
    let p = peer_view(&rs, "nobfd")?;
    assert_eq!(p["status"]["state"], "Established", "{p:#}");
    assert_eq!(p["status"]["established_count"], 1);
    let b = bfd_of(&rs, "nobfd")?;
    assert_eq!(b["state"], "Down");
    assert_eq!(b["packets_in"], 0);
    assert!(b["packets_out"].as_u64().unwrap() >= 4, "{b:#}");
    let text = rs.ns().exec(
        steer_tests::steer::binary()?.to_str().unwrap(),
        &["show", "peers", "--socket", rs.socket().to_str().unwrap()],
    )?;
    assert!(text.contains("not running (BGP not blocked)"), "{text}");
    Ok(())
}

#[test]
fn bfd_down_while_tcp_works_sends_cease_10_and_holds_bgp_until_bfd_is_up() -> Result<()> {
    let mut lab = Lab::new()?;
    let (rs, frr, settled) = rs_and_frr(&mut lab)?;
    wait_bfd_up_300x3(&rs, "fw")?;
    let mut cap = Capture::start(rs.ns(), "eth0", "tcp port 179")?;

    // FRR's bfdd hangs; bgpd and TCP keep working.
    frr.signal_bfdd(libc::SIGSTOP)?;
    let b = rs.wait_show(&["bfd"], |v| v[0]["bgp_held"] == true)?;
    assert_eq!(b[0]["last_down_diag"], "1 (Control Detection Time Expired)");
    let held_for = Duration::from_secs(6);
    std::thread::sleep(held_for);
    let p = peer_view(&rs, "fw")?;
    assert_ne!(
        p["status"]["state"], "Established",
        "held while BFD is Down: {p:#}"
    );
    assert_eq!(p["bfd"]["summary"], "Down, BGP held");
    assert!(
        p["status"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("BFD Down")),
        "{p:#}"
    );
    let sent: Vec<_> = cap
        .bgp_messages()?
        .into_iter()
        .filter_map(|(src, _, m)| match m {
            Message::Notification(n) if src.ip().to_string() == "10.1.0.4" => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].code, sent[0].subcode),
        (6, 10),
        "Cease/BFD Down on the wire"
    );

    frr.signal_bfdd(libc::SIGCONT)?;
    let p = rs.wait_show(&["peers"], |v| v[0]["status"]["state"] == "Established")?;
    assert_eq!(p[0]["status"]["established_count"], settled.established + 1);
    assert_eq!(p[0]["bfd"]["summary"], "Up");
    let b = bfd_of(&rs, "fw")?;
    assert_eq!(b["state"], "Up");
    assert_eq!(b["downs"], settled.downs + 1);
    let log = std::fs::read_to_string(frr.dir().join("bgpd.log"))?;
    assert!(
        log.lines()
            .any(|l| l.contains("received from neighbor 10.1.0.4") && l.contains("6/10")),
        "FRR logs the Cease/10 it received:\n{}",
        frr.log_tail()
    );
    Ok(())
}
