//! Hosts must not hijack routes (issue 11): a speaker in `[hosts] ranges`
//! tries each hijack of the issue's table against `steer server`, and the
//! views of a BIRD appliance (`birdc`), a GoBGP host with ADD-PATH
//! (`gobgp`) and a raw-socket host that records every UPDATE stay what the
//! route server and the victim host announced.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use steer_tests::scenario::RouteServerLab;
use steer_tests::wire::{self, Message};
use steer_tests::{
    Announce, BirdConfig, Notification, RawPeer, Route, Steer, default_timeout, wait_for,
};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.8.0.0/16"]
connect_retry = 1
max_prefix_restart = 300

[[peer]]
name = "sdwan"
address = "10.1.0.20"
asn = 65020

[hosts]
ranges = ["10.1.0.0/24"]
"#;

/// The next hops of every path a daemon holds for `prefix`.
fn hops(routes: &[Route], prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = routes
        .iter()
        .filter(|r| r.prefix == prefix)
        .flat_map(|r| r.next_hops.iter().map(|h| h.to_string()))
        .collect();
    v.sort();
    v
}

/// The reasons `steer show routes` gives for `prefix`, per peer.
fn reasons(rs: &Steer, prefix: &str) -> Result<Vec<(String, String)>> {
    let v = rs.show(&["routes", prefix])?;
    Ok(v.as_array()
        .context("routes is a list")?
        .iter()
        .filter(|r| r["prefix"] == prefix)
        .flat_map(|r| r["paths"].as_array().cloned().unwrap_or_default())
        .map(|p: Value| {
            (
                p["peer"].as_str().unwrap_or("").to_string(),
                p["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

fn wait_refused(rs: &Steer, prefix: &str, peer: &str, reason: &str) -> Result<()> {
    wait_for(
        &format!("{peer}'s {prefix} refused with {reason:?}"),
        default_timeout(),
        || {
            let r = reasons(rs, prefix)?;
            if r.iter().any(|(p, why)| p == peer && why.contains(reason)) {
                Ok(Some(()))
            } else {
                anyhow::bail!("have {r:?}")
            }
        },
    )
}

#[test]
fn every_hijack_from_the_host_range_is_refused_and_no_view_changes() -> Result<()> {
    let s = RouteServerLab::new(RS_CONFIG)
        .appliance_bird(
            "sdwan",
            BirdConfig::new("10.1.0.20", 65020).announce(Announce::new("192.0.2.0/24")),
        )
        .host_exabgp("victim", "10.1.0.31")
        .host_gobgp("other", "10.1.0.32")
        .host_exabgp("attacker", "10.1.0.33")
        .node("flood", "10.1.0.34")
        .node("watch", "10.1.0.35")
        .start()?;
    let (rs, sdwan, other) = (&s.rs, s.bird("sdwan"), s.host("other"));
    let (victim, attacker) = (s.exabgp("victim"), s.exabgp("attacker"));
    let mut watch = RawPeer::connect_bgp(s.ns("watch"), "10.1.0.4", default_timeout())?;
    watch.establish_simple(65515, 90, Ipv4Addr::new(10, 1, 0, 35))?;

    victim.announce("10.8.1.0/24", "")?;
    other.wait_routes("10.8.1.0/24", |p| !p.is_empty())?;

    // The issue's table, row by row.
    attacker.announce("10.8.1.0/24", "")?;
    wait_refused(rs, "10.8.1.0/24", "host-10.1.0.33", "conflict")?;
    attacker.announce("10.8.1.0/24", "local-preference 200")?;
    attacker.announce("10.8.1.10/32", "")?;
    wait_refused(rs, "10.8.1.10/32", "host-10.1.0.33", "inside 10.8.1.0/24")?;
    attacker.send("announce route 10.8.0.0/16 next-hop 10.8.0.99 local-preference 200")?;
    wait_refused(rs, "10.8.0.0/16", "host-10.1.0.33", "VNet prefix")?;
    attacker.announce("0.0.0.0/0", "")?;
    attacker.announce("192.0.2.128/25", "")?;
    wait_refused(rs, "192.0.2.128/25", "host-10.1.0.33", "VNet space")?;

    let mut flood = RawPeer::connect_bgp(s.ns("flood"), "10.1.0.4", default_timeout())?;
    flood.establish_simple(65515, 90, Ipv4Addr::new(10, 1, 0, 34))?;
    let nlri: Vec<u8> = (0..700u32)
        .flat_map(|i| {
            wire::nlri(
                Ipv4Addr::new(10, 8, 200 + (i / 250) as u8, (i % 250) as u8),
                32,
            )
        })
        .collect();
    let attrs = [
        wire::attribute(0x40, 1, &[0]),
        wire::attribute(0x40, 2, &[]),
        wire::attribute(0x40, 3, &[10, 1, 0, 34]),
        wire::attribute(0x40, 5, &200u32.to_be_bytes()),
    ]
    .concat();
    flood.send(&wire::update(&[], &attrs, &nlri))?;
    assert_eq!(
        flood.expect_notification(default_timeout())?,
        Notification {
            code: 6,
            subcode: 1,
            data: vec![0, 1, 1, 0, 0, 0, 64],
        },
        "Cease/1 with AFI/SAFI and the hosts' default limit of 64"
    );

    // Everything the attacker sent was handled before this marker.
    victim.announce("10.8.9.0/24", "")?;
    other.wait_routes("10.8.9.0/24", |p| !p.is_empty())?;
    wait_for("BIRD has the marker", default_timeout(), || {
        let r = sdwan.routes()?;
        ensure!(!hops(&r, "10.8.9.0/24").is_empty(), "not yet");
        Ok(Some(()))
    })?;

    let at_sdwan = sdwan.routes()?;
    let at_other = other.rib()?;
    assert_eq!(hops(&at_sdwan, "10.8.1.0/24"), ["10.1.0.31"], "birdc");
    assert_eq!(hops(&at_other, "10.8.1.0/24"), ["10.1.0.31"], "gobgp");
    assert!(
        at_other
            .iter()
            .filter(|r| r.prefix == "10.8.1.0/24")
            .all(|r| r.local_pref == Some(100)),
        "gobgp: {at_other:?}"
    );
    assert_eq!(hops(&at_sdwan, "10.8.1.10/32"), Vec::<String>::new());
    assert_eq!(hops(&at_other, "10.8.1.10/32"), Vec::<String>::new());
    assert_eq!(hops(&at_sdwan, "10.8.0.0/16"), ["10.1.0.4"], "birdc");
    assert_eq!(hops(&at_other, "10.8.0.0/16"), ["10.1.0.4"], "gobgp");
    assert_eq!(hops(&at_other, "0.0.0.0/0"), Vec::<String>::new());
    assert_eq!(hops(&at_other, "192.0.2.128/25"), Vec::<String>::new());
    assert_eq!(hops(&at_other, "192.0.2.0/24"), ["10.1.0.20"]);
    let flooded = |r: &&Route| r.prefix.starts_with("10.8.2");
    assert_eq!(at_sdwan.iter().filter(flooded).count(), 0, "birdc");
    assert_eq!(at_other.iter().filter(flooded).count(), 0, "gobgp");

    // The raw host saw every UPDATE the route server sent: none of the
    // flood, none of the attacker's, the victim's and the marker.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        if watch.recv(left).is_err() {
            break;
        }
    }
    let seen: Vec<(Ipv4Addr, u8)> = watch
        .received()
        .iter()
        .filter_map(|m| match m {
            Message::Update(body) => wire::update_nlri(body).ok(),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        seen.iter().all(|(a, _)| a.octets()[2] < 200),
        "the flood reached a host: {seen:?}"
    );
    assert!(seen.contains(&(Ipv4Addr::new(10, 8, 9, 0), 24)), "{seen:?}");
    for m in watch.received() {
        let Message::Update(body) = m else { continue };
        if wire::update_nlri(body)?.contains(&(Ipv4Addr::new(10, 8, 1, 0), 24)) {
            let attrs = wire::update_attributes(body)?;
            let nh = attrs.iter().find(|a| a.code == 3).context("NEXT_HOP")?;
            assert_eq!(nh.value, [10, 1, 0, 31], "the victim's VM prefix moved");
        }
    }
    assert!(
        !seen.contains(&(Ipv4Addr::new(10, 8, 1, 10), 32)),
        "{seen:?}"
    );
    Ok(())
}
