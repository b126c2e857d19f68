//! `steer server` with OpenBGPD 7 (the portable release of the daemon
//! OpenBSD firewalls run) as an appliance, judged by OpenBGPD's own view
//! (`bgpctl -j`) and by a GoBGP host stand-in: its routes reach the host
//! with every attribute, it receives the VNet prefix from AS 65515, its
//! `bgpctl neighbor down` withdraws its routes and shows its shutdown
//! communication in `steer show peers`, it comes back on `neighbor up`, and
//! the route server's SIGTERM reaches it as Cease/Administrative Shutdown;
//! as a host stand-in (iBGP, ADD-PATH receive) it holds every appliance's
//! path for a prefix.

use anyhow::Result;
use std::time::Duration;
use steer_tests::scenario::{RouteServerLab, rs_neighbor};
use steer_tests::steer::peer_state;
use steer_tests::{AddPaths, Announce, BgpDaemon, BirdConfig, OpenbgpdConfig, wait_for};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
hold_time = 9
keepalive = 3
connect_retry = 1

[[peer]]
name = "edge"
address = "10.1.0.30"
asn = 65030

[hosts]
ranges = ["10.1.0.0/25"]
"#;

#[test]
fn openbgpd_appliance_routes_reach_a_host_and_its_shutdown_communication_withdraws_them()
-> Result<()> {
    let mut s = RouteServerLab::new(RS_CONFIG)
        .appliance_openbgpd(
            "edge",
            OpenbgpdConfig::new("10.1.0.30", 65030).announce(
                Announce::new("10.252.0.0/16")
                    .med(50)
                    .community(65030, 7)
                    .large_community(65030, 1, 1),
            ),
        )
        .host_gobgp("host1", "10.1.0.31")
        .start()?;
    let (edge, host) = (s.openbgpd("edge"), s.host("host1"));

    let at_host = host.wait_routes("10.252.0.0/16", |p| p.len() == 1)?;
    assert_eq!(at_host[0].next_hop_strings(), vec!["10.1.0.30".to_string()]);
    assert_eq!(at_host[0].as_path, vec![65030]);
    assert_eq!(at_host[0].med, Some(50));
    assert_eq!(at_host[0].communities, vec![(65030, 7)]);
    assert_eq!(at_host[0].large_communities, vec![(65030, 1, 1)]);

    let vnet = edge.wait_routes_from("10.1.0.4", "10.1.0.0/16", |p| p.len() == 1)?;
    assert_eq!(vnet[0].as_path, vec![65515]);
    assert_eq!(vnet[0].next_hop_strings(), vec!["10.1.0.4".to_string()]);
    assert!(
        vnet[0].best,
        "OpenBGPD must find the VNet route valid: {vnet:?}"
    );
    let rs = edge.neighbor("10.1.0.4")?;
    assert_eq!(rs["remote_as"], "65515", "{rs:#}");
    assert_eq!(
        rs["session"]["remote"]["capabilities"]["as4byte"], true,
        "{rs:#}"
    );
    assert_eq!(rs["stats"]["prefixes"]["received"], 1, "{rs:#}");

    edge.shut_down("10.1.0.4", "planned maintenance")?;
    let peers =
        s.rs.wait_show(&["peers"], |v| peer_state(v, "edge") != "Established")?;
    let edge_status = peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "edge"))
        .map(|p| p["status"]["last_error"].clone());
    assert_eq!(
        edge_status.and_then(|e| e.as_str().map(str::to_string)),
        Some("received Cease / Administrative Shutdown (6/2): \"planned maintenance\"".to_string()),
        "{peers:#}"
    );
    host.wait_routes("10.252.0.0/16", <[_]>::is_empty)?;

    edge.bring_up("10.1.0.4")?;
    edge.wait_established("10.1.0.4")?;
    host.wait_routes("10.252.0.0/16", |p| p.len() == 1)?;

    s.rs.terminate();
    let edge = s.openbgpd("edge");
    wait_for(
        "OpenBGPD to report the route server's administrative shutdown",
        Duration::from_secs(20),
        || {
            let n = edge.neighbor("10.1.0.4")?;
            Ok((n["last_error_received"] == "Cease, administratively down").then_some(n))
        },
    )
    .map_err(|e| edge.with_logs(e))?;
    Ok(())
}

#[test]
fn openbgpd_as_a_host_holds_every_appliance_path_over_add_path() -> Result<()> {
    let config =
        format!("{RS_CONFIG}\n[[peer]]\nname = \"edge2\"\naddress = \"10.1.0.20\"\nasn = 65020\n");
    let s = RouteServerLab::new(&config)
        .appliance_openbgpd(
            "edge",
            OpenbgpdConfig::new("10.1.0.30", 65030).announce(Announce::new("0.0.0.0/0")),
        )
        .appliance_bird(
            "edge2",
            BirdConfig::new("10.1.0.20", 65020).announce(Announce::new("0.0.0.0/0")),
        )
        .appliance_openbgpd(
            "host1",
            OpenbgpdConfig::new("10.1.0.32", 65515).neighbor(rs_neighbor().add_paths(AddPaths::Rx)),
        )
        .start()?;
    let host = s.openbgpd("host1");
    let paths = host.wait_routes_from("10.1.0.4", "0.0.0.0/0", |p| p.len() == 2)?;
    let mut hops: Vec<(String, Vec<u32>)> = paths
        .iter()
        .map(|p| (p.next_hop_strings().concat(), p.as_path.clone()))
        .collect();
    hops.sort();
    assert_eq!(
        hops,
        vec![
            ("10.1.0.20".to_string(), vec![65020]),
            ("10.1.0.30".to_string(), vec![65030]),
        ]
    );
    let rs = host.neighbor("10.1.0.4")?;
    assert_eq!(rs["stats"]["prefixes"]["received"], 3, "{rs:#}");
    Ok(())
}
