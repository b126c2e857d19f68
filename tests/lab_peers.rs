//! Smoke test of the lab itself with real daemons and no steer: BIRD, FRR
//! and GoBGP exchange routes on one LAN; GoBGP with ADD-PATH receive keeps
//! both paths BIRD sends over iBGP; ExaBGP sends raw attributes to BIRD
//! (checked on the wire); the raw speaker gets a NOTIFICATION for a bad marker.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Result;
use steer_tests::route::for_prefix;
use steer_tests::wire::{self, Message};
use steer_tests::{
    AddPaths, Announce, BgpDaemon, Bird, BirdConfig, Capture, Exabgp, ExabgpConfig, Frr, FrrConfig,
    Gobgp, GobgpConfig, Lab, Neighbor, Notification, RawAttribute, RawPeer, SessionState,
    default_timeout,
};

const SDWAN_AS: u32 = 65010;
const FW_AS: u32 = 65020;
const RS_AS: u32 = 65515;

fn ips(strs: &[&str]) -> Vec<String> {
    strs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bird_and_frr_routes_reach_gobgp_and_gobgp_routes_reach_bird() -> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let sdwan = lab.on_lan(&lan, "sdwan", "10.1.0.10/24")?;
    let fw = lab.on_lan(&lan, "fw", "10.1.0.20/24")?;
    let rs = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;

    let gobgp = Gobgp::start(
        &rs,
        GobgpConfig::new("10.1.0.4", RS_AS)
            .neighbor(Neighbor::new("sdwan", "10.1.0.10", SDWAN_AS).add_paths(AddPaths::Rx))
            .neighbor(Neighbor::new("fw", "10.1.0.20", FW_AS).add_paths(AddPaths::Rx)),
    )?;
    let mut bird = Bird::start(
        &sdwan,
        BirdConfig::new("10.1.0.10", SDWAN_AS)
            .neighbor(Neighbor::new("rs", "10.1.0.4", RS_AS))
            .announce(
                Announce::new("10.250.0.0/16")
                    .community(65010, 100)
                    .large_community(65010, 1, 2),
            ),
    )?;
    let mut frr = Frr::start(
        &fw,
        FrrConfig::new("fw", "10.1.0.20", FW_AS)
            .neighbor(Neighbor::new("rs", "10.1.0.4", RS_AS))
            .announce(Announce::new("0.0.0.0/0"))
            .announce(Announce::new("203.0.113.0/24").prepend(2)),
    )?;

    bird.wait_established("rs")?;
    frr.wait_established("10.1.0.4")?;
    gobgp.wait_established("10.1.0.10")?;
    gobgp.wait_established("10.1.0.20")?;

    let onprem = gobgp.wait_routes("10.250.0.0/16", |p| p.len() == 1)?;
    assert_eq!(onprem[0].source, "10.1.0.10");
    assert_eq!(onprem[0].next_hop_strings(), ips(&["10.1.0.10"]));
    assert_eq!(onprem[0].as_path, vec![SDWAN_AS]);
    assert_eq!(onprem[0].communities, vec![(65010, 100)]);
    assert_eq!(onprem[0].large_communities, vec![(65010, 1, 2)]);

    let default = gobgp.wait_routes("0.0.0.0/0", |p| p.len() == 1)?;
    assert_eq!(default[0].source, "10.1.0.20");
    assert_eq!(default[0].next_hop_strings(), ips(&["10.1.0.20"]));
    assert_eq!(default[0].as_path, vec![FW_AS]);

    let prepended = gobgp.wait_routes("203.0.113.0/24", |p| p.len() == 1)?;
    assert_eq!(prepended[0].next_hop_strings(), ips(&["10.1.0.20"]));
    assert_eq!(prepended[0].as_path, vec![FW_AS, FW_AS, FW_AS]);

    gobgp.announce(&Announce::new("10.1.0.0/16").community(65515, 7))?;
    let vnet = bird.wait_route("rs", "10.1.0.0/16")?;
    assert_eq!(vnet.len(), 1);
    assert_eq!(vnet[0].next_hop_strings(), ips(&["10.1.0.4"]));
    assert_eq!(vnet[0].as_path, vec![RS_AS]);
    assert_eq!(vnet[0].communities, vec![(65515, 7)]);
    let kernel = sdwan.ip("-4 route show 10.1.0.0/16")?;
    assert_eq!(
        kernel.trim(),
        "10.1.0.0/16 via 10.1.0.4 dev eth0 proto bird metric 32"
    );

    let from_rs = frr.wait_routes_from("10.1.0.4", "10.250.0.0/16", |p| p.len() == 1)?;
    assert_eq!(from_rs[0].as_path, vec![RS_AS, SDWAN_AS]);
    let advertised = frr.advertised_to("10.1.0.4")?;
    let prepend_out = for_prefix(&advertised, "203.0.113.0/24");
    assert_eq!(prepend_out.len(), 1);
    assert_eq!(prepend_out[0].as_path, vec![FW_AS, FW_AS]);

    bird.withdraw("10.250.0.0/16")?;
    gobgp.wait_routes("10.250.0.0/16", |p| p.is_empty())?;
    bird.announce(Announce::new("10.250.0.0/16").prepend(1))?;
    let again = gobgp.wait_routes("10.250.0.0/16", |p| p.len() == 1)?;
    assert_eq!(again[0].as_path, vec![SDWAN_AS, SDWAN_AS]);

    frr.withdraw("203.0.113.0/24")?;
    gobgp.wait_routes("203.0.113.0/24", |p| p.is_empty())?;
    frr.announce(Announce::new("198.51.100.0/24").med(50))?;
    let med = gobgp.wait_routes("198.51.100.0/24", |p| p.len() == 1)?;
    assert_eq!(med[0].med, Some(50));
    assert_eq!(
        for_prefix(&gobgp.adj_in("10.1.0.20")?, "0.0.0.0/0").len(),
        1
    );
    Ok(())
}

#[test]
fn gobgp_with_add_path_rx_holds_every_path_bird_sends_over_ibgp() -> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let host = lab.on_lan(&lan, "host1", "10.1.0.31/24")?;

    let mut config = BirdConfig::new("10.1.0.4", RS_AS)
        .neighbor(Neighbor::new("host1", "10.1.0.31", RS_AS).add_paths(AddPaths::Tx))
        .announce(Announce::new("10.250.0.0/16").next_hop("10.1.0.10"));
    config.extra =
        "protocol static announce_b { ipv4; route 10.250.0.0/16 via 10.1.0.20; }".to_string();
    let bird = Bird::start(&rs, config)?;
    let agent = Gobgp::start(
        &host,
        GobgpConfig::new("10.1.0.31", RS_AS)
            .neighbor(Neighbor::new("rs", "10.1.0.4", RS_AS).add_paths(AddPaths::Rx)),
    )?;
    bird.wait_established("host1")?;
    agent.wait_established("10.1.0.4")?;

    let paths = agent.wait_routes("10.250.0.0/16", |p| p.len() == 2)?;
    let mut next_hops: Vec<String> = paths.iter().flat_map(|p| p.next_hop_strings()).collect();
    next_hops.sort();
    assert_eq!(next_hops, ips(&["10.1.0.10", "10.1.0.20"]));
    assert!(
        paths
            .iter()
            .all(|p| p.source == "10.1.0.4" && p.as_path.is_empty())
    );
    assert!(paths.iter().all(|p| p.local_pref == Some(100)));
    assert_eq!(agent.adj_in("10.1.0.4")?.len(), 2);
    Ok(())
}

#[test]
fn exabgp_raw_attributes_reach_bird_on_the_wire_and_bird_verdicts_are_reported() -> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let sdwan = lab.on_lan(&lan, "sdwan", "10.1.0.10/24")?;
    let exa_ns = lab.on_lan(&lan, "exa", "10.1.0.30/24")?;

    let bird = Bird::start(
        &sdwan,
        BirdConfig::new("10.1.0.10", SDWAN_AS).neighbor(Neighbor::new("exa", "10.1.0.30", 65030)),
    )?;
    let mut capture = Capture::start(&exa_ns, "eth0", "tcp port 179")?;
    let mut exa = Exabgp::start(
        &exa_ns,
        ExabgpConfig::new("10.1.0.30", 65030, "10.1.0.10", SDWAN_AS),
    )?;
    exa.wait_established()?;
    bird.wait_established("exa")?;

    let unknown = RawAttribute::new(0xc0, 0xf0, &[0xde, 0xad, 0xbe, 0xef]);
    exa.announce_raw("192.0.2.0/24", std::slice::from_ref(&unknown))?;
    let accepted = bird.wait_route("exa", "192.0.2.0/24")?;
    assert_eq!(
        accepted[0].unknown,
        vec![(0xf0, vec![0xde, 0xad, 0xbe, 0xef])]
    );
    assert_eq!(accepted[0].as_path, vec![65030]);

    let bad_origin = RawAttribute::new(0x40, 0x01, &[5]);
    exa.announce_raw("198.51.100.0/24", std::slice::from_ref(&bad_origin))?;
    exa.announce("203.0.113.0/24", "")?;
    bird.wait_route("exa", "203.0.113.0/24")?;
    assert!(for_prefix(&bird.routes_from("exa")?, "198.51.100.0/24").is_empty());
    assert_eq!(bird.session_state("exa")?, SessionState::Established);

    let bad_mp_reach = RawAttribute::new(0x80, 0x0e, &[0x00, 0x01]);
    exa.announce_raw("198.51.100.128/25", std::slice::from_ref(&bad_mp_reach))?;
    let notification = exa.wait_notification(default_timeout())?;
    assert_eq!(
        notification,
        Notification {
            code: 3,
            subcode: 9,
            data: vec![]
        }
    );
    exa.withdraw("198.51.100.128/25")?;
    exa.stop();

    let on_wire: Vec<Vec<u8>> = capture
        .bgp_messages()?
        .into_iter()
        .filter(|(src, _, _)| *src.ip() == Ipv4Addr::new(10, 1, 0, 30))
        .filter_map(|(_, _, m)| match m {
            Message::Update(body) => Some(body),
            _ => None,
        })
        .collect();
    for attr in [&unknown, &bad_origin, &bad_mp_reach] {
        let bytes = wire::attribute(attr.flags, attr.code, &attr.value);
        assert!(
            on_wire
                .iter()
                .any(|u| u.windows(bytes.len()).any(|w| w == bytes)),
            "attribute {} not on the wire",
            wire::hex(&bytes)
        );
    }
    Ok(())
}

#[test]
fn raw_speaker_bad_marker_gets_notification_1_1_from_bird() -> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let sdwan = lab.on_lan(&lan, "sdwan", "10.1.0.10/24")?;
    let raw_ns = lab.on_lan(&lan, "raw", "10.1.0.50/24")?;
    let bird = Bird::start(
        &sdwan,
        BirdConfig::new("10.1.0.10", SDWAN_AS)
            .neighbor(Neighbor::new("raw", "10.1.0.50", 65050).passive()),
    )?;

    let mut peer = RawPeer::connect_bgp(&raw_ns, "10.1.0.10", default_timeout())?;
    let open = peer.establish_simple(65050, 9, Ipv4Addr::new(10, 1, 0, 50))?;
    assert!(matches!(open, Message::Open { asn: 65010, .. }));
    bird.wait_established("raw")?;

    peer.send(&wire::corrupt_marker(wire::keepalive()))?;
    let n = peer.expect_notification(Duration::from_secs(10))?;
    assert_eq!(
        n,
        Notification {
            code: 1,
            subcode: 1,
            data: vec![]
        }
    );
    assert!(peer.is_closed(Duration::from_secs(10)));
    Ok(())
}
