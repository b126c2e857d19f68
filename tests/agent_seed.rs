//! The seed scenario with real appliances and real packets: BIRD is the
//! SD-WAN appliance (10.250.0.0/16), FRR the firewall (0.0.0.0/0), one
//! route server, two hosts each with a VM namespace. VM traffic to on-prem
//! arrives at the SD-WAN appliance, internet-bound traffic at the firewall,
//! VM to VM crosses hosts, and replies come back because the appliances
//! learned the VM prefixes. With the default dataplane (`auto`: the TC
//! program on a veth, and the return path on the host's uplink) and with
//! `xdp`, the counters and the metrics show the fast path did the
//! forwarding both ways; with `kernel` the kernel table does the same job.
//! The deprecated `xdp` key still works, with a warning.

use anyhow::Result;
use serde_json::Value;
use steer_tests::{Lab, Netns, Seed, SeedOptions, Steer, wait_for};

/// The seed with one route server; `dataplane` is the agents' key and
/// value line, e.g. `dataplane = "tc"`, or "" for the default.
fn seed(dataplane: &str) -> Result<Seed> {
    Seed::start(
        Lab::new()?,
        &SeedOptions {
            agent_extra: format!("{dataplane}\nmetrics_listen = \"127.0.0.1:9180\""),
            ..SeedOptions::default()
        },
    )
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

fn forwarded(agent: &Steer, hook: &str) -> Result<u64> {
    let v: Value = agent.show(&["fib"])?;
    Ok(v["counters"][hook]["forwarded"][0].as_u64().unwrap_or(0))
}

fn metrics(host: &Netns) -> Result<String> {
    host.exec(
        "python3",
        &["-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9180/metrics').read().decode())"],
    )
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The hooks `steer show fib` lists: `interface hook mode` each.
fn hooks(agent: &Steer) -> Result<Vec<String>> {
    let fib: Value = agent.show(&["fib"])?;
    Ok(fib["attached"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            ["interface", "hook", "mode"]
                .map(|k| a[k].as_str().unwrap_or(""))
                .join(" ")
        })
        .collect())
}

fn check_traffic(s: &Seed) -> Result<()> {
    let host1 = &s.hosts[0].ns;
    let t = wait_table(
        host1,
        &[
            "default",
            "10.250.0.0/16",
            "10.1.2.0/24",
            "unreachable 10.1.0.0/16",
        ],
    )?;
    let vm1 = &s.hosts[0].vm;
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

fn no_mismatch(agent: &Steer) -> Result<()> {
    let fib: Value = agent.show(&["fib"])?;
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
fn vm_traffic_reaches_each_appliance_through_tc_by_default_and_replies_come_back_on_the_return_path()
-> Result<()> {
    let s = seed("")?;
    let (host, agent) = (&s.hosts[0].ns, &s.hosts[0].agent);
    assert_eq!(hooks(agent)?, ["vm1 tc tcx", "eth0 return tcx"]);
    let before = (forwarded(agent, "tc")?, forwarded(agent, "return")?);
    check_traffic(&s)?;
    let after = (forwarded(agent, "tc")?, forwarded(agent, "return")?);
    assert!(
        after.0 >= before.0 + 40,
        "TC forwarded {} packets, expected at least 40",
        after.0 - before.0
    );
    assert!(
        after.1 >= before.1 + 40,
        "the return path forwarded {} replies, expected at least 40",
        after.1 - before.1
    );
    let m = metrics(host)?;
    for hook in ["tc", "return"] {
        let line =
            format!("steer_dataplane_packets_total{{hook=\"{hook}\",reason=\"forwarded\"}} ");
        assert!(metric(&m, &line) >= 40.0, "{line}: {m}");
    }
    assert!(
        m.contains("steer_bgp_session_up{peer=\"rs1\",address=\"10.1.0.4\"} 1"),
        "{m}"
    );
    no_mismatch(agent)
}

#[test]
fn vm_traffic_takes_xdp_with_the_deprecated_xdp_key_and_the_old_metric_still_counts() -> Result<()>
{
    let s = seed("xdp = \"native\"")?;
    let (host, agent) = (&s.hosts[0].ns, &s.hosts[0].agent);
    assert_eq!(
        hooks(agent)?,
        ["vm1 xdp native", "vm1 tc tcx", "eth0 return tcx"],
        "XDP, with TC behind it, and the return path"
    );
    assert!(
        agent.log().contains("config key `xdp` is deprecated"),
        "{}",
        agent.log_tail()
    );
    let before = forwarded(agent, "xdp")?;
    check_traffic(&s)?;
    let after = forwarded(agent, "xdp")?;
    assert!(
        after >= before + 40,
        "XDP forwarded {} packets, expected at least 40",
        after - before
    );
    let m = metrics(host)?;
    for line in [
        "steer_xdp_packets_total{reason=\"forwarded\"} ",
        "steer_dataplane_packets_total{hook=\"xdp\",reason=\"forwarded\"} ",
    ] {
        assert!(metric(&m, line) >= 40.0, "{line}: {m}");
    }
    no_mismatch(agent)
}

#[test]
fn vm_traffic_takes_the_kernel_table_when_the_dataplane_is_kernel() -> Result<()> {
    let s = seed("dataplane = \"kernel\"")?;
    check_traffic(&s)?;
    let fib: Value = s.hosts[0].agent.show(&["fib"])?;
    assert_eq!(fib["attached"].as_array().map(Vec::len), Some(0));
    assert_eq!(fib["dataplane"], "kernel");
    let t = table_200(&s.hosts[0].ns)?;
    assert!(
        t.lines()
            .any(|l| l.starts_with("10.250.0.0/16 ") && l.contains(" via 10.1.0.10 dev eth0")),
        "{t}"
    );
    Ok(())
}
