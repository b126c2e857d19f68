//! ECMP: two firewall appliances announce 0.0.0.0/0 with equal AS paths;
//! the agent installs both next hops, and many UDP flows from a VM spread
//! over both firewalls while every flow stays on one of them — through TC
//! (the default; flow hash over the 5-tuple), through XDP, and through the
//! kernel path.

use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use steer_tests::scenario::RouteServerLab;
use steer_tests::{Announce, BirdConfig, FrrConfig, Netns, Process, wait_for};

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

[[peer]]
name = "fw2"
address = "10.1.0.21"
asn = 65021

[hosts]
ranges = ["10.1.0.0/24"]
"#;

const FLOWS: u16 = 64;
const PER_FLOW: u16 = 5;

/// A UDP sink that prints `srcport` per datagram to its log.
fn sink(ns: &Netns, lab_dir: &std::path::Path, name: &str) -> Result<Process> {
    let log = lab_dir.join(format!("{name}.log"));
    let mut cmd = ns.command("python3")?;
    cmd.args([
        "-u",
        "-c",
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('203.0.113.1',9000))\nwhile True:\n  d,a=s.recvfrom(2048)\n  print(a[1],flush=True)",
    ]);
    ns.spawn(name, cmd, &log)
}

fn ports(p: &Process) -> Result<PortCounts> {
    let text = std::fs::read_to_string(p.log_path()).context("sink log")?;
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if let Ok(port) = l.trim().parse::<u16>() {
            *m.entry(port).or_insert(0) += 1;
        }
    }
    Ok(m)
}

fn send_flows(vm: &Netns) -> Result<()> {
    let script = format!(
        "import socket,time\nfor r in range({PER_FLOW}):\n  for i in range({FLOWS}):\n    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n    s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n    s.bind(('10.1.1.10',40000+i))\n    s.sendto(b'x'*64,('203.0.113.1',9000))\n    s.close()\n  time.sleep(0.05)\n"
    );
    vm.exec("python3", &["-c", &script])?;
    Ok(())
}

/// Datagrams received per source port at one firewall.
type PortCounts = BTreeMap<u16, u32>;

/// What each firewall received, and how many packets `hook` forwarded,
/// with `dataplane` (`auto`, `xdp`, `kernel`).
fn run(dataplane: &str, hook: &str) -> Result<(PortCounts, PortCounts, u64)> {
    let dataplane = dataplane.to_string();
    let s = RouteServerLab::new(RS_CONFIG)
        .appliance_frr(
            "fw1",
            FrrConfig::new("fw1", "10.1.0.20", 65020).announce(Announce::new("0.0.0.0/0")),
        )
        .appliance_bird(
            "fw2",
            BirdConfig::new("10.1.0.21", 65021).announce(Announce::new("0.0.0.0/0")),
        )
        .host_agent("host1", "10.1.0.31", {
            let dataplane = dataplane.clone();
            move |pins| {
                format!(
                    "asn = 65515\nrouter_id = \"10.1.0.31\"\nroute_servers = [\"10.1.0.4\"]\nvm_interfaces = [\"vm1\"]\nvm_prefixes = [\"10.1.1.0/24\"]\ndataplane = \"{dataplane}\"\npin_dir = \"{}\"\nconnect_retry = 1\n",
                    pins.display()
                )
            }
        })
        .vm("vm1", "host1", "10.1.1.1/24", "10.1.1.10/24")
        .prepare(move |n| {
            if dataplane == "xdp" {
                // Guests that compute their own checksums can be forwarded by
                // native XDP; TC forwards them either way.
                n["vm1"].exec("ethtool", &["-K", "eth0", "tx", "off"])?;
            }
            for fw in ["fw1", "fw2"] {
                n[fw].ip("addr add 203.0.113.1/24 dev lo")?;
            }
            Ok(())
        })
        .start()?;
    let (host, vm, agent) = (s.ns("host1"), s.ns("vm1"), s.agent("host1"));
    wait_for(
        "an ECMP default route in table 200",
        steer_tests::default_timeout(),
        || {
            let t = host.ip("route show table 200")?;
            let nh = host.ip("nexthop show")?;
            Ok(
                (t.contains("default") && (t.contains("nexthop via") || nh.contains("group")))
                    .then_some(()),
            )
        },
    )?;
    let s1 = sink(s.ns("fw1"), s.lab.dir(), "sink1")?;
    let s2 = sink(s.ns("fw2"), s.lab.dir(), "sink2")?;
    std::thread::sleep(Duration::from_millis(500));
    vm.output("ping", &["-c", "2", "-W", "1", "10.1.1.1"])?;
    let before: serde_json::Value = agent.show(&["fib"])?;
    send_flows(vm)?;
    std::thread::sleep(Duration::from_secs(1));
    let after: serde_json::Value = agent.show(&["fib"])?;
    let fwd = |v: &serde_json::Value| v["counters"][hook]["forwarded"][0].as_u64().unwrap_or(0);
    Ok((ports(&s1)?, ports(&s2)?, fwd(&after) - fwd(&before)))
}

fn check(a: &PortCounts, b: &PortCounts) {
    let sa: BTreeSet<u16> = a.keys().copied().collect();
    let sb: BTreeSet<u16> = b.keys().copied().collect();
    assert!(
        sa.is_disjoint(&sb),
        "a flow was split across firewalls: {:?}",
        sa.intersection(&sb).collect::<Vec<_>>()
    );
    assert_eq!(
        sa.len() + sb.len(),
        usize::from(FLOWS),
        "flows lost: fw1 {sa:?} fw2 {sb:?}"
    );
    assert!(
        a.values()
            .chain(b.values())
            .all(|n| *n == u32::from(PER_FLOW)),
        "fw1 {a:?}\nfw2 {b:?}"
    );
    let min = usize::from(FLOWS) / 5;
    assert!(
        sa.len() >= min && sb.len() >= min,
        "flows did not spread: fw1 {} fw2 {}",
        sa.len(),
        sb.len()
    );
}

#[test]
fn flows_spread_over_two_equal_firewalls_and_each_stays_on_one_through_tc() -> Result<()> {
    let (a, b, forwarded) = run("auto", "tc")?;
    check(&a, &b);
    assert!(
        forwarded >= u64::from(FLOWS * PER_FLOW),
        "TC forwarded only {forwarded}"
    );
    Ok(())
}

#[test]
fn flows_spread_over_two_equal_firewalls_and_each_stays_on_one_through_xdp() -> Result<()> {
    let (a, b, forwarded) = run("xdp", "xdp")?;
    check(&a, &b);
    assert!(
        forwarded >= u64::from(FLOWS * PER_FLOW),
        "XDP forwarded only {forwarded}"
    );
    Ok(())
}

#[test]
fn flows_spread_over_two_equal_firewalls_and_each_stays_on_one_through_the_kernel() -> Result<()> {
    let (a, b, forwarded) = run("kernel", "tc")?;
    check(&a, &b);
    assert_eq!(forwarded, 0);
    Ok(())
}
