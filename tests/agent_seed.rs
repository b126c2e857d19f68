//! The seed scenario with real appliances and real packets: BIRD is the
//! SD-WAN appliance (10.250.0.0/16), FRR the firewall (0.0.0.0/0), one
//! route server, two hosts each with a VM namespace. VM traffic to on-prem
//! arrives at the SD-WAN appliance, internet-bound traffic at the firewall,
//! VM to VM crosses hosts, and replies come back because the appliances
//! learned the VM prefixes. With XDP the counters show the fast path did the
//! forwarding; with `xdp = "off"` the kernel table does the same job.

use anyhow::Result;
use serde_json::Value;
use steer_tests::{
    Announce, BgpDaemon, Bird, BirdConfig, Frr, FrrConfig, Lab, Neighbor, Netns, Role, Steer,
    wait_for,
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

[[peer]]
name = "firewall"
address = "10.1.0.20"
asn = 65020

[hosts]
ranges = ["10.1.0.0/24"]
"#;

fn agent_config(n: u8, xdp: &str, pin_dir: &std::path::Path) -> String {
    format!(
        r#"
asn = 65515
router_id = "10.1.0.3{n}"
route_servers = ["10.1.0.4"]
table = 200
vm_interfaces = ["vm{n}"]
vm_prefixes = ["10.1.{n}.0/24"]
xdp = "{xdp}"
pin_dir = "{}"
hold_time = 9
keepalive = 3
connect_retry = 1
stale_timeout = 5
metrics_listen = "127.0.0.1:9180"
"#,
        pin_dir.display()
    )
}

struct Seed {
    _lab: Lab,
    _rs: Steer,
    _sdwan: Bird,
    _fw: Frr,
    hosts: Vec<(Netns, Steer)>,
    vms: Vec<Netns>,
}

fn seed(xdp: &str) -> Result<Seed> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let sdwan_ns = lab.on_lan(&lan, "sdwan", "10.1.0.10/24")?;
    let fw_ns = lab.on_lan(&lan, "fw", "10.1.0.20/24")?;
    sdwan_ns.ip("addr add 10.250.0.1/16 dev lo")?;
    fw_ns.ip("addr add 203.0.113.1/24 dev lo")?;
    sdwan_ns.sysctl("net.ipv4.ip_forward", "1")?;
    fw_ns.sysctl("net.ipv4.ip_forward", "1")?;

    let rs = Steer::start(&rs_ns, Role::Server, RS_CONFIG)?;
    let sdwan = Bird::start(
        &sdwan_ns,
        BirdConfig::new("10.1.0.10", 65010)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515))
            .announce(Announce::new("10.250.0.0/16")),
    )?;
    let fw = Frr::start(
        &fw_ns,
        FrrConfig::new("fw", "10.1.0.20", 65020)
            .neighbor(Neighbor::new("rs", "10.1.0.4", 65515))
            .announce(Announce::new("0.0.0.0/0")),
    )?;

    let mut hosts = Vec::new();
    let mut vms = Vec::new();
    for n in 1..=2u8 {
        let host = lab.node(&format!("host{n}"))?;
        let vm = lab.node(&format!("vm{n}"))?;
        lan.attach(&host, "eth0", &format!("10.1.0.3{n}/24"))?;
        lab.link(
            &host,
            &format!("vm{n}"),
            &format!("10.1.{n}.1/24"),
            &vm,
            "eth0",
            &format!("10.1.{n}.10/24"),
        )?;
        vm.ip(&format!("route add default via 10.1.{n}.1"))?;
        let pins = lab.bpf_pin_dir(&format!("host{n}"))?;
        let agent = Steer::start(&host, Role::Agent, &agent_config(n, xdp, &pins))?;
        hosts.push((host, agent));
        vms.push(vm);
    }
    sdwan.wait_established("rs")?;
    fw.wait_established("10.1.0.4")?;
    for (_, agent) in &hosts {
        agent.wait_show(&["peers"], |v| v[0]["status"]["state"] == "Established")?;
    }
    Ok(Seed {
        _lab: lab,
        _rs: rs,
        _sdwan: sdwan,
        _fw: fw,
        hosts,
        vms,
    })
}

fn table_200(host: &Netns) -> Result<String> {
    host.ip("route show table 200")
}

fn wait_table(host: &Netns, want: &[&str]) -> Result<String> {
    wait_for(
        "the learned routes in table 200",
        steer_tests::default_timeout(),
        || {
            let t = table_200(host)?;
            Ok(want.iter().all(|w| t.contains(w)).then_some(t))
        },
    )
}

fn ping(vm: &Netns, dst: &str, count: u32) -> Result<u32> {
    let out = vm.output(
        "ping",
        &["-c", &count.to_string(), "-i", "0.05", "-W", "1", dst],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let received = text
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find(|p| p.ends_with(" received"))
                .map(|p| p.trim_end_matches(" received").to_string())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(received)
}

fn forwarded(agent: &Steer) -> Result<u64> {
    let v: Value = agent.show(&["fib"])?;
    Ok(v["xdp_counters"]["forwarded"][0].as_u64().unwrap_or(0))
}

fn check_traffic(s: &Seed) -> Result<()> {
    let (host1, _) = &s.hosts[0];
    let t = wait_table(
        host1,
        &[
            "default",
            "10.250.0.0/16",
            "10.1.2.0/24",
            "unreachable 10.1.0.0/16",
        ],
    )?;
    let vm1 = &s.vms[0];
    // Warm the neighbour entries, then count.
    ping(vm1, "10.250.0.1", 2)?;
    ping(vm1, "203.0.113.1", 2)?;
    assert_eq!(
        ping(vm1, "10.250.0.1", 20)?,
        20,
        "VM -> on-prem via the SD-WAN appliance\n{t}"
    );
    assert_eq!(
        ping(vm1, "203.0.113.1", 20)?,
        20,
        "VM -> internet via the firewall\n{t}"
    );
    assert_eq!(
        ping(vm1, "10.1.2.10", 10)?,
        10,
        "VM -> VM on the other host"
    );
    Ok(())
}

#[test]
fn vm_traffic_reaches_each_appliance_through_xdp_and_replies_come_back() -> Result<()> {
    let s = seed("native")?;
    let before = forwarded(&s.hosts[0].1)?;
    check_traffic(&s)?;
    let after = forwarded(&s.hosts[0].1)?;
    assert!(
        after >= before + 40,
        "XDP forwarded {} packets, expected at least 40",
        after - before
    );
    let metrics = s.hosts[0].0.exec(
        "python3",
        &["-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9180/metrics').read().decode())"],
    )?;
    let forwarded_metric: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("steer_xdp_packets_total{reason=\"forwarded\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(forwarded_metric >= 40.0, "{metrics}");
    assert!(
        metrics.contains("steer_bgp_session_up{peer=\"rs1\",address=\"10.1.0.4\"} 1"),
        "{metrics}"
    );
    let fib: Value = s.hosts[0].1.show(&["fib"])?;
    let mismatched: Vec<&Value> = fib["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["mismatch"] == true)
        .collect();
    assert!(mismatched.is_empty(), "{mismatched:#?}");
    Ok(())
}

#[test]
fn vm_traffic_takes_the_kernel_table_when_xdp_is_off() -> Result<()> {
    let s = seed("off")?;
    check_traffic(&s)?;
    let fib: Value = s.hosts[0].1.show(&["fib"])?;
    assert_eq!(fib["xdp_attached"].as_array().map(Vec::len), Some(0));
    let t = table_200(&s.hosts[0].0)?;
    assert!(
        t.lines()
            .any(|l| l.starts_with("10.250.0.0/16 ") && l.contains(" via 10.1.0.10 dev eth0")),
        "{t}"
    );
    Ok(())
}
