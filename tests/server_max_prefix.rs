//! Max-prefix: an appliance announcing one prefix more than its limit gets
//! Cease/1 with AFI/SAFI/limit (RFC 4486), its routes are withdrawn from the
//! host leg, it is held down, and the other sessions stay up.

use anyhow::Result;
use serde_json::Value;
use std::time::Duration;
use steer_tests::scenario::RouteServerLab;
use steer_tests::{Announce, FrrConfig, Notification, default_timeout};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
connect_retry = 1
max_prefix_restart = 300

[[peer]]
name = "greedy"
address = "10.1.0.30"
asn = 65030
max_prefixes = 10

[[peer]]
name = "fw"
address = "10.1.0.20"
asn = 65020

[hosts]
ranges = ["10.1.0.0/24"]
"#;

fn peer<'a>(peers: &'a Value, name: &str) -> &'a Value {
    peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn one_prefix_over_the_limit_ends_only_that_session_with_cease_1_and_withdraws_its_routes()
-> Result<()> {
    let s = RouteServerLab::new(RS_CONFIG)
        .appliance_frr(
            "fw",
            FrrConfig::new("fw", "10.1.0.20", 65020).announce(Announce::new("0.0.0.0/0")),
        )
        .host_gobgp("host1", "10.1.0.31")
        .appliance_exabgp("greedy", "10.1.0.30", 65030)
        .start()?;
    let (rs, exa, host) = (&s.rs, s.exabgp("greedy"), s.host("host1"));

    let prefixes: Vec<String> = (0..11)
        .map(|i| format!("198.51.100.{}/28", i * 16))
        .collect();
    for p in &prefixes[..10] {
        exa.announce(p, "next-hop self")?;
    }
    host.wait_routes(&prefixes[9], |p| p.len() == 1)?;
    let at_host = host.rib()?;
    assert_eq!(
        at_host
            .iter()
            .filter(|r| r.prefix.starts_with("198.51.100."))
            .count(),
        10
    );

    exa.announce(&prefixes[10], "next-hop self")?;
    let n = exa.wait_notification(default_timeout())?;
    assert_eq!(
        n,
        Notification {
            code: 6,
            subcode: 1,
            data: vec![0, 1, 1, 0, 0, 0, 10],
        }
    );
    host.wait_routes(&prefixes[0], |p| p.is_empty())?;
    let at_host = host.rib()?;
    assert_eq!(
        at_host
            .iter()
            .filter(|r| r.prefix.starts_with("198.51.100."))
            .count(),
        0
    );
    assert!(
        at_host.iter().any(|r| r.prefix == "0.0.0.0/0"),
        "the firewall's route must stay"
    );

    std::thread::sleep(Duration::from_secs(3));
    let peers = rs.show(&["peers"])?;
    let greedy = peer(&peers, "greedy");
    assert_ne!(greedy["status"]["state"], "Established", "{greedy:#}");
    assert!(
        greedy["status"]["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("sent Cease / Maximum Number of Prefixes Reached (6/1)"),
        "{greedy:#}"
    );
    assert_eq!(greedy["max_prefix_trips"], 1);
    assert_eq!(peer(&peers, "fw")["status"]["state"], "Established");
    assert_eq!(
        peer(&peers, "host-10.1.0.31")["status"]["state"],
        "Established"
    );
    Ok(())
}
