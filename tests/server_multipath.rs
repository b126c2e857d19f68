//! Multipath towards hosts: two firewall appliances (BIRD and FRR) with
//! equal AS paths are active/active (a GoBGP host stand-in with ADD-PATH
//! receives both paths); when one prepends it is passive and only the
//! active path is sent; when the active appliance's TCP session closes the
//! passive path is sent at once, and when the active appliance goes silent
//! it is sent within the hold time.

use anyhow::Result;
use std::time::{Duration, Instant};
use steer_tests::scenario::{RouteServer, RouteServerLab, rs_neighbor};
use steer_tests::{Announce, BgpDaemon, BirdConfig, FrrConfig};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
connect_retry = 1

[[peer]]
name = "fw1"
address = "10.1.0.20"
asn = 65020
hold_time = 9
keepalive = 3

[[peer]]
name = "fw2"
address = "10.1.0.21"
asn = 65021

[hosts]
ranges = ["10.1.0.0/24"]
"#;

fn topology(fw2_prepend: u8) -> Result<RouteServer> {
    let mut default = Announce::new("0.0.0.0/0");
    if fw2_prepend > 0 {
        default = default.prepend(fw2_prepend);
    }
    RouteServerLab::new(RS_CONFIG)
        .appliance_bird(
            "fw1",
            BirdConfig::new("10.1.0.20", 65020)
                .neighbor(rs_neighbor().timers(9, 3))
                .announce(Announce::new("0.0.0.0/0")),
        )
        .appliance_frr(
            "fw2",
            FrrConfig::new("fw2", "10.1.0.21", 65021).announce(default),
        )
        .host_gobgp("host1", "10.1.0.31")
        .start()
}

fn bird_pid(t: &RouteServer) -> Result<i32> {
    let pid = t
        .ns("fw1")
        .exec("cat", &[t.bird("fw1").dir().join("bird.pid")])?;
    Ok(pid.trim().parse()?)
}

fn next_hops(t: &RouteServer, accept: impl Fn(&[String]) -> bool) -> Result<Vec<String>> {
    let paths = t.host("host1").wait_routes("0.0.0.0/0", |p| {
        let mut v: Vec<String> = p.iter().flat_map(|r| r.next_hop_strings()).collect();
        v.sort();
        accept(&v)
    })?;
    let mut v: Vec<String> = paths.iter().flat_map(|r| r.next_hop_strings()).collect();
    v.sort();
    Ok(v)
}

#[test]
fn equal_paths_from_two_firewalls_reach_the_host_as_two_add_path_paths() -> Result<()> {
    let t = topology(0)?;
    let hops = next_hops(&t, |v| v.len() == 2)?;
    assert_eq!(hops, vec!["10.1.0.20", "10.1.0.21"]);
    Ok(())
}

#[test]
fn prepended_firewall_is_passive_and_takes_over_at_once_when_the_active_session_closes()
-> Result<()> {
    let t = topology(2)?;
    assert_eq!(next_hops(&t, |v| v == ["10.1.0.20"])?, vec!["10.1.0.20"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        next_hops(&t, |_| true)?,
        vec!["10.1.0.20"],
        "the passive path must not be sent"
    );

    let pid = bird_pid(&t)?;
    let t0 = Instant::now();
    // SIGKILL: no NOTIFICATION, the kernel just closes the TCP connection.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(next_hops(&t, |v| v == ["10.1.0.21"])?, vec!["10.1.0.21"]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "failover on TCP close took {took:?}"
    );
    assert_eq!(
        t.frr("fw2").session_state("10.1.0.4")?,
        steer_tests::SessionState::Established
    );
    Ok(())
}

#[test]
fn silent_active_firewall_fails_over_within_the_hold_time() -> Result<()> {
    let t = topology(2)?;
    assert_eq!(next_hops(&t, |v| v == ["10.1.0.20"])?, vec!["10.1.0.20"]);
    let pid = bird_pid(&t)?;
    let t0 = Instant::now();
    // SIGSTOP: the kernel keeps the TCP connection open, BGP goes silent.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let r = next_hops(&t, |v| v == ["10.1.0.21"]);
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(r?, vec!["10.1.0.21"]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(13),
        "failover after silence took {took:?}, expected about the 9 s hold time"
    );
    Ok(())
}
