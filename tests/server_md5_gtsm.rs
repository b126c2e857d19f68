//! TCP-MD5 (RFC 2385) and GTSM (RFC 5082) between `steer server` and real
//! peers: BIRD and FRR appliances with the right password and TTL
//! security reach Established (one connecting to the route server, one
//! only accepting, so both the listener's keys and the connecting
//! socket's are used), as do a GoBGP host and `steer agent` under
//! `[hosts] password` and `ttl_security` (the agent with its own
//! `password` and `ttl_security`); an
//! appliance with a wrong password, one with none, and one without TTL
//! security against a route server that requires it never do. The kernel's
//! own counters (TcpExt TCPMD5Failure, TCPMD5NotFound in the route
//! server's namespace) confirm why.

use anyhow::{Result, ensure};
use std::time::{Duration, Instant};
use steer_tests::seed;
use steer_tests::steer::peer_state;
use steer_tests::{
    BgpDaemon, Bird, BirdConfig, Frr, FrrConfig, Gobgp, GobgpConfig, Lab, Neighbor, Netns, Role,
    SessionState, Steer,
};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
hold_time = 9
keepalive = 3
connect_retry = 1

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010
password = "sdwan-key"
ttl_security = true

[[peer]]
name = "firewall"
address = "10.1.0.20"
asn = 65020
password = "fw-key"
ttl_security = true
passive = true

[[peer]]
name = "wrongpw"
address = "10.1.0.30"
asn = 65030
password = "the-right-one"

[[peer]]
name = "nopw"
address = "10.1.0.40"
asn = 65040
password = "a-key"

[[peer]]
name = "farttl"
address = "10.1.0.50"
asn = 65050
password = "ttl-key"
ttl_security = true

[hosts]
ranges = ["10.1.0.64/26"]
password = "hosts-key"
ttl_security = true
"#;

/// TcpExt counters of the namespace, by name.
fn tcp_ext(ns: &Netns, name: &str) -> Result<u64> {
    let text = ns.exec("cat", &["/proc/net/netstat"])?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        anyhow::bail!("no TcpExt in /proc/net/netstat");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.parse().unwrap_or(0))
        .ok_or_else(|| anyhow::anyhow!("no TcpExt {name}"))
}

#[test]
fn md5_and_gtsm_peers_with_the_right_settings_establish_and_the_others_never_do() -> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let sdwan_ns = lab.on_lan(&lan, "sdwan", "10.1.0.10/24")?;
    let fw_ns = lab.on_lan(&lan, "fw", "10.1.0.20/24")?;
    let wrong_ns = lab.on_lan(&lan, "wrongpw", "10.1.0.30/24")?;
    let nopw_ns = lab.on_lan(&lan, "nopw", "10.1.0.40/24")?;
    let far_ns = lab.on_lan(&lan, "farttl", "10.1.0.50/24")?;
    let host_ns = lab.on_lan(&lan, "host", "10.1.0.70/24")?;

    let rs = Steer::start(&rs_ns, Role::Server, RS_CONFIG)?;
    let rs_neighbor = || Neighbor::new("rs", "10.1.0.4", 65515);
    let sdwan = Bird::start(
        &sdwan_ns,
        BirdConfig::new("10.1.0.10", 65010)
            .neighbor(rs_neighbor().password("sdwan-key").ttl_security().passive()),
    )?;
    let fw = Frr::start(
        &fw_ns,
        FrrConfig::new("fw", "10.1.0.20", 65020)
            .neighbor(rs_neighbor().password("fw-key").ttl_security()),
    )?;
    let wrong = Bird::start(
        &wrong_ns,
        BirdConfig::new("10.1.0.30", 65030).neighbor(rs_neighbor().password("not-the-one")),
    )?;
    let nopw = Bird::start(
        &nopw_ns,
        BirdConfig::new("10.1.0.40", 65040).neighbor(rs_neighbor()),
    )?;
    let far = Bird::start(
        &far_ns,
        BirdConfig::new("10.1.0.50", 65050).neighbor(rs_neighbor().password("ttl-key")),
    )?;
    let agent_ns = lab.on_lan(&lan, "agent", "10.1.0.71/24")?;
    let vm = lab.node("vm1")?;
    lab.link(&agent_ns, "vm1", "10.1.1.1/24", &vm, "eth0", "10.1.1.10/24")?;
    let pins = lab.bpf_pin_dir("agent")?;
    let agent = Steer::start(
        &agent_ns,
        Role::Agent,
        &seed::agent_config(
            1,
            1,
            &pins,
            "password = \"hosts-key\"\nttl_security = true\n",
        ),
    )?;
    let host = Gobgp::start(
        &host_ns,
        GobgpConfig::new("10.1.0.70", 65515)
            .neighbor(rs_neighbor().password("hosts-key").ttl_security()),
    )?;

    sdwan.wait_established("rs")?;
    fw.wait_established("10.1.0.4")?;
    host.wait_established("10.1.0.4")?;
    agent.wait_show(&["peers"], |v| peer_state(v, "rs1") == "Established")?;
    let good = ["sdwan", "firewall", "host-10.1.0.70", "host-10.1.0.71"];
    rs.wait_show(&["peers"], |v| {
        good.iter().all(|n| peer_state(v, n) == "Established")
    })?;
    let routes = sdwan.wait_route("rs", "10.1.0.0/16")?;
    ensure!(routes[0].as_path == vec![65515], "{routes:?}");

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let peers = rs.show(&["peers"])?;
        for n in ["wrongpw", "nopw", "farttl"] {
            ensure!(
                peer_state(&peers, n) != "Established",
                "{n} reached Established: {peers:#}"
            );
        }
        for (d, what) in [
            (&wrong, "a wrong password"),
            (&nopw, "no password"),
            (&far, "no TTL security"),
        ] {
            ensure!(
                d.session_state("rs")? != SessionState::Established,
                "BIRD with {what} reached Established; route server: {:#}; BIRD: {}",
                rs.show(&["peers"])?,
                d.birdc("show protocols all bgp_rs")?
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let failures = tcp_ext(&rs_ns, "TCPMD5Failure")?;
    let not_found = tcp_ext(&rs_ns, "TCPMD5NotFound")?;
    eprintln!(
        "route server's kernel after 15 s: TCPMD5Failure {failures} (wrong key), TCPMD5NotFound {not_found} (unsigned)"
    );
    ensure!(failures > 0, "no segment failed its MD5 check");
    ensure!(not_found > 0, "no unsigned segment was dropped");
    let peers = rs.show(&["peers"])?;
    ensure!(
        good.iter().all(|n| peer_state(&peers, n) == "Established"),
        "the protected sessions stayed up: {peers:#}"
    );
    Ok(())
}
