//! Multipath towards hosts: two firewall appliances (BIRD and FRR) with
//! equal AS paths are active/active (a GoBGP host stand-in with ADD-PATH
//! receives both paths); when one prepends it is passive and only the
//! active path is sent; when the active appliance's TCP session closes the
//! passive path is sent at once, and when the active appliance goes silent
//! it is sent within the hold time.

use anyhow::Result;
use std::time::{Duration, Instant};
use steer_tests::{
    AddPaths, Announce, BgpDaemon, Bird, BirdConfig, Frr, FrrConfig, Gobgp, GobgpConfig, Lab,
    Neighbor, Netns, Role, Steer,
};

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

struct Topology {
    _lab: Lab,
    _rs: Steer,
    fw1_ns: Netns,
    fw2: Frr,
    host: Gobgp,
}

fn topology(fw2_prepend: u8) -> Result<(Topology, Bird)> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let fw1_ns = lab.on_lan(&lan, "fw1", "10.1.0.20/24")?;
    let fw2_ns = lab.on_lan(&lan, "fw2", "10.1.0.21/24")?;
    let host_ns = lab.on_lan(&lan, "host1", "10.1.0.31/24")?;
    let rs = Steer::start(&rs_ns, Role::Server, RS_CONFIG)?;
    let fw1 = start_fw1(&fw1_ns)?;
    let mut default = Announce::new("0.0.0.0/0");
    if fw2_prepend > 0 {
        default = default.prepend(fw2_prepend);
    }
    let fw2 = Frr::start(
        &fw2_ns,
        FrrConfig::new("fw2", "10.1.0.21", 65021)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515))
            .announce(default),
    )?;
    let host = Gobgp::start(
        &host_ns,
        GobgpConfig::new("10.1.0.31", 65515)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515).add_paths(AddPaths::Rx)),
    )?;
    fw1.wait_established("rs")?;
    fw2.wait_established("10.1.0.4")?;
    host.wait_established("10.1.0.4")?;
    Ok((
        Topology {
            _lab: lab,
            _rs: rs,
            fw1_ns,
            fw2,
            host,
        },
        fw1,
    ))
}

fn start_fw1(ns: &Netns) -> Result<Bird> {
    Bird::start(
        ns,
        BirdConfig::new("10.1.0.20", 65020)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515).timers(9, 3))
            .announce(Announce::new("0.0.0.0/0")),
    )
}

fn bird_pid(t: &Topology, fw1: &Bird) -> Result<i32> {
    let pid = t.fw1_ns.exec("cat", &[fw1.dir().join("bird.pid")])?;
    Ok(pid.trim().parse()?)
}

fn next_hops(t: &Topology, accept: impl Fn(&[String]) -> bool) -> Result<Vec<String>> {
    let paths = t.host.wait_routes("0.0.0.0/0", |p| {
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
    let (t, _fw1) = topology(0)?;
    let hops = next_hops(&t, |v| v.len() == 2)?;
    assert_eq!(hops, vec!["10.1.0.20", "10.1.0.21"]);
    Ok(())
}

#[test]
fn prepended_firewall_is_passive_and_takes_over_at_once_when_the_active_session_closes()
-> Result<()> {
    let (t, fw1) = topology(2)?;
    assert_eq!(next_hops(&t, |v| v == ["10.1.0.20"])?, vec!["10.1.0.20"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        next_hops(&t, |_| true)?,
        vec!["10.1.0.20"],
        "the passive path must not be sent"
    );

    let pid = bird_pid(&t, &fw1)?;
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
        t.fw2.session_state("10.1.0.4")?,
        steer_tests::SessionState::Established
    );
    Ok(())
}

#[test]
fn silent_active_firewall_fails_over_within_the_hold_time() -> Result<()> {
    let (t, fw1) = topology(2)?;
    assert_eq!(next_hops(&t, |v| v == ["10.1.0.20"])?, vec!["10.1.0.20"]);
    let pid = bird_pid(&t, &fw1)?;
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
