//! `steer server` with real appliances: BIRD as the SD-WAN appliance and FRR
//! as the firewall reach Established, their routes show in `steer show
//! routes`, each receives the VNet prefix with AS path 65515, a GoBGP host
//! stand-in receives their routes over iBGP, a connection from an unknown
//! address is closed without an OPEN, Prometheus metrics report the
//! sessions, and SIGTERM sends Cease/Administrative Shutdown to every peer.

use anyhow::Result;
use serde_json::Value;
use std::time::Duration;
use steer_tests::scenario::RouteServerLab;
use steer_tests::steer::peer_state;
use steer_tests::{Announce, BgpDaemon, BirdConfig, FrrConfig, RawPeer, wait_for};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
branch_to_branch = false
hold_time = 9
keepalive = 3
connect_retry = 1
metrics_listen = "127.0.0.1:9179"

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010
max_prefixes = 1000

[[peer]]
name = "firewall"
address = "10.1.0.20"
asn = 65020

[hosts]
ranges = ["10.1.0.0/25"]
"#;

#[test]
fn bird_and_frr_appliances_exchange_routes_with_the_route_server_and_its_host_leg() -> Result<()> {
    let mut s = RouteServerLab::new(RS_CONFIG)
        .node("stranger", "10.1.0.200")
        .appliance_bird(
            "sdwan",
            BirdConfig::new("10.1.0.10", 65010)
                .announce(Announce::new("10.250.0.0/16").community(65010, 100)),
        )
        .appliance_frr(
            "fw",
            FrrConfig::new("fw", "10.1.0.20", 65020).announce(Announce::new("0.0.0.0/0")),
        )
        .host_gobgp("host1", "10.1.0.31")
        .start()?;
    let (bird, frr, host) = (s.bird("sdwan"), s.frr("fw"), s.host("host1"));
    let rs = &s.rs;

    let peers = rs.wait_show(&["peers"], |v| {
        ["sdwan", "firewall", "host-10.1.0.31"]
            .iter()
            .all(|n| peer_state(v, n) == "Established")
    })?;
    assert_eq!(peers.as_array().map(Vec::len), Some(3), "{peers:#}");

    let routes = rs.wait_show(&["routes"], |v| v.as_array().is_some_and(|a| a.len() == 3))?;
    let by_prefix = |p: &str| -> Value {
        routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["prefix"] == p)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let onprem = by_prefix("10.250.0.0/16");
    assert_eq!(onprem["paths"][0]["peer"], "sdwan");
    assert_eq!(onprem["paths"][0]["next_hop"], "10.1.0.10");
    assert_eq!(onprem["paths"][0]["as_path"], "65010");
    assert_eq!(onprem["paths"][0]["communities"][0], "65010:100");
    assert_eq!(onprem["paths"][0]["best"], true);
    let default = by_prefix("0.0.0.0/0");
    assert_eq!(default["paths"][0]["peer"], "firewall");
    assert_eq!(default["paths"][0]["next_hop"], "10.1.0.20");
    assert_eq!(by_prefix("10.1.0.0/16")["paths"][0]["peer"], "local");

    let vnet_at_bird = bird.wait_route("rs", "10.1.0.0/16")?;
    assert_eq!(vnet_at_bird[0].as_path, vec![65515]);
    assert_eq!(
        vnet_at_bird[0].next_hop_strings(),
        vec!["10.1.0.4".to_string()]
    );
    let vnet_at_frr = frr.wait_routes_from("10.1.0.4", "10.1.0.0/16", |p| p.len() == 1)?;
    assert_eq!(vnet_at_frr[0].as_path, vec![65515]);
    assert!(
        bird.routes_from("rs")?
            .iter()
            .all(|r| r.prefix != "0.0.0.0/0"),
        "appliance routes must not reach other appliances without branch_to_branch"
    );

    let onprem_at_host = host.wait_routes("10.250.0.0/16", |p| p.len() == 1)?;
    assert_eq!(
        onprem_at_host[0].next_hop_strings(),
        vec!["10.1.0.10".to_string()]
    );
    assert_eq!(onprem_at_host[0].as_path, vec![65010]);
    assert_eq!(onprem_at_host[0].local_pref, Some(100));
    let default_at_host = host.wait_routes("0.0.0.0/0", |p| p.len() == 1)?;
    assert_eq!(
        default_at_host[0].next_hop_strings(),
        vec!["10.1.0.20".to_string()]
    );
    let vnet_at_host = host.wait_routes("10.1.0.0/16", |p| p.len() == 1)?;
    assert_eq!(vnet_at_host[0].large_communities, vec![(65515, 1, 1)]);

    let metrics = rs.ns().exec(
        "python3",
        &["-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9179/metrics').read().decode())"],
    )?;
    for line in [
        "steer_bgp_session_up{peer=\"sdwan\",kind=\"appliance\"} 1",
        "steer_bgp_session_up{peer=\"firewall\",kind=\"appliance\"} 1",
        "steer_bgp_prefixes_accepted{peer=\"sdwan\",kind=\"appliance\"} 1",
        "steer_rib_prefixes 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }

    let advertised = rs.show(&["routes", "--peer", "sdwan", "--advertised"])?;
    let adv: Vec<&str> = advertised
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(adv, vec!["10.1.0.0/16"]);

    let mut stranger = RawPeer::connect_bgp(s.ns("stranger"), "10.1.0.4", Duration::from_secs(5))?;
    assert!(
        stranger.is_closed(Duration::from_secs(5)),
        "a connection from outside the peers and host ranges must be closed"
    );
    assert!(
        stranger.received().is_empty(),
        "no OPEN may be sent to a stranger"
    );

    s.rs.terminate();
    let (bird, frr) = (s.bird("sdwan"), s.frr("fw"));
    wait_for(
        "BIRD to log the administrative shutdown",
        Duration::from_secs(20),
        || {
            let log = std::fs::read_to_string(bird.log_path())?;
            Ok(log
                .contains("Received: Administrative shutdown: \"steer server shutting down\"")
                .then_some(()))
        },
    )?;
    let frr_reset = frr.last_reset("10.1.0.4")?.unwrap_or_default();
    assert!(
        frr_reset.to_lowercase().contains("shutdown") || frr_reset.to_lowercase().contains("cease"),
        "FRR's last reset: {frr_reset}"
    );
    Ok(())
}
