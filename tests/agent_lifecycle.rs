//! Routes leave the host's dataplane when they go away upstream, and the
//! dataplane survives the agent: a withdrawn prefix and an appliance whose
//! session ends leave the kernel table and the eBPF map; a route server that
//! dies is bridged by graceful restart, then swept; `kill -9` of the agent
//! under a steady flow loses no packet, with the default dataplane (TC, and
//! the return path carrying the replies on the uplink) and with XDP, and a
//! route withdrawn while it was down is swept after it resyncs; SIGTERM
//! keeps the dataplane (the return path included) unless `flush_on_exit`
//! asks to remove it.

use anyhow::Result;
use serde_json::Value;
use std::time::{Duration, Instant};
use steer_tests::scenario::{RouteServer, RouteServerLab};
use steer_tests::{
    Announce, BirdConfig, FrrConfig, Netns, Steer, default_timeout, hooks, traffic, wait_for,
};

fn rs_config(gr_time: u16) -> String {
    format!(
        r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
connect_retry = 1
graceful_restart_time = {gr_time}

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
"#
    )
}

fn agent_config(pins: &std::path::Path, extra: &str) -> String {
    let interfaces = if extra.contains("vm_interfaces") {
        ""
    } else {
        "vm_interfaces = [\"vm1\"]\n"
    };
    format!(
        "asn = 65515\nrouter_id = \"10.1.0.31\"\nroute_servers = [\"10.1.0.4\"]\n{interfaces}vm_prefixes = [\"10.1.1.0/24\"]\npin_dir = \"{}\"\nconnect_retry = 1\nstale_timeout = 30\n{extra}",
        pins.display()
    )
}

fn setup(gr_time: u16, agent_extra: &str) -> Result<RouteServer> {
    let extra = agent_extra.to_string();
    let h = RouteServerLab::new(&rs_config(gr_time))
        .appliance_bird(
            "sdwan",
            BirdConfig::new("10.1.0.10", 65010)
                .announce(Announce::new("10.250.0.0/16"))
                .announce(Announce::new("10.251.0.0/16")),
        )
        .appliance_frr(
            "fw",
            FrrConfig::new("fw", "10.1.0.20", 65020).announce(Announce::new("0.0.0.0/0")),
        )
        .host_agent("host1", "10.1.0.31", move |pins| agent_config(pins, &extra))
        .vm("vm1", "host1", "10.1.1.1/24", "10.1.1.10/24")
        .prepare(|n| {
            n["sdwan"].ip("addr add 10.250.0.1/16 dev lo")?;
            n["fw"].ip("addr add 203.0.113.1/24 dev lo")?;
            Ok(())
        })
        .start()?;
    wait_state(&h, |t, x| {
        ["default", "10.250.0.0/16", "10.251.0.0/16"]
            .iter()
            .all(|p| t.contains(p))
            && ["0.0.0.0/0", "10.250.0.0/16", "10.251.0.0/16"]
                .iter()
                .all(|p| x.contains(p))
    })?;
    Ok(h)
}

/// Table 200 as `ip route` prints it and the XDP entries as
/// `prefix=target` lines.
fn state(h: &RouteServer) -> Result<(String, String)> {
    let t = h.ns("host1").ip("route show table 200")?;
    let fib: Value = h.agent("host1").show(&["fib"])?;
    let x = fib["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| !e["xdp"].is_null())
        .map(|e| {
            format!(
                "{}={}",
                e["prefix"].as_str().unwrap_or(""),
                e["xdp"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok((t, x))
}

fn wait_state(h: &RouteServer, ok: impl Fn(&str, &str) -> bool) -> Result<(String, String)> {
    wait_for(
        "table 200 and the XDP map to match",
        default_timeout(),
        || {
            let (t, x) = state(h)?;
            Ok(ok(&t, &x).then_some((t, x)))
        },
    )
}

#[test]
fn withdrawn_prefix_and_ended_appliance_session_leave_kernel_and_xdp() -> Result<()> {
    let mut h = setup(120, "")?;
    h.bird_mut("sdwan").withdraw("10.251.0.0/16")?;
    let (t, x) = wait_state(&h, |t, x| {
        !t.contains("10.251.0.0/16") && !x.contains("10.251.0.0/16")
    })?;
    assert!(
        t.contains("10.250.0.0/16") && x.contains("10.250.0.0/16=forward 10.1.0.10"),
        "{t}\n{x}"
    );

    h.frr_mut("fw").stop();
    let (t, x) = wait_state(&h, |t, x| {
        !t.contains("default") && !x.contains("0.0.0.0/0")
    })?;
    assert!(t.contains("10.250.0.0/16"), "{t}");
    assert!(x.contains("10.250.0.0/16"), "{x}");
    Ok(())
}

#[test]
fn route_server_loss_is_bridged_for_its_restart_time_then_swept() -> Result<()> {
    let mut h = setup(6, "")?;
    let t0 = Instant::now();
    h.rs.kill9();
    std::thread::sleep(Duration::from_secs(3));
    let (t, x) = state(&h)?;
    assert!(
        t.contains("10.250.0.0/16") && x.contains("10.250.0.0/16"),
        "kept while restarting:\n{t}\n{x}"
    );
    let (t, _) = wait_state(&h, |t, x| {
        !t.contains("10.250.0.0/16") && !x.contains("10.250.0.0/16")
    })
    .map_err(|e| e.context(h.agent("host1").log_tail()))?;
    assert!(
        t0.elapsed() >= Duration::from_secs(5),
        "swept too early: {:?}",
        t0.elapsed()
    );
    assert!(
        t.contains("unreachable 10.1.0.0/16") || !t.contains("default"),
        "{t}"
    );
    Ok(())
}

fn steady_ping(vm: &Netns, dst: &str, count: u32) -> Result<std::process::Child> {
    let mut cmd = vm.command("ping")?;
    cmd.args(["-i", "0.01", "-c", &count.to_string(), "-W", "1", dst])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    Ok(cmd.spawn()?)
}

/// Echo requests sent and replies received, and the sequence numbers of
/// the requests that got no reply (to tell when in the test they were lost).
fn loss(child: std::process::Child) -> Result<(u32, u32, Vec<u32>)> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .to_string();
    let nums: Vec<u32> = line
        .split(", ")
        .filter_map(|p| p.split_whitespace().next()?.parse().ok())
        .collect();
    anyhow::ensure!(nums.len() >= 2, "ping summary not found: {text}");
    let answered: std::collections::BTreeSet<u32> = text
        .lines()
        .filter_map(|l| {
            l.split("icmp_seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let missing = (1..=nums[0]).filter(|s| !answered.contains(s)).collect();
    Ok((nums[0], nums[1], missing))
}

#[test]
fn kill_9_of_the_agent_loses_no_packet_and_a_route_withdrawn_meanwhile_is_swept() -> Result<()> {
    kill_9_loses_no_packet("", &["tc", "return"])
}

#[test]
fn kill_9_of_the_agent_loses_no_packet_with_the_xdp_dataplane() -> Result<()> {
    kill_9_loses_no_packet("dataplane = \"xdp\"\n", &["xdp", "return"])
}

fn forwarded(agent: &Steer, hook: &str) -> Result<u64> {
    let fib: Value = agent.show(&["fib"])?;
    Ok(fib["counters"][hook]["forwarded"][0].as_u64().unwrap_or(0))
}

/// Pings through the host while the agent is killed and restarted: none is
/// lost, and each of `hooks` forwarded (at least) every echo request, or
/// reply, meanwhile.
fn kill_9_loses_no_packet(dataplane: &str, hooks: &[&str]) -> Result<()> {
    let mut h = setup(120, dataplane)?;
    h.ns("vm1")
        .output("ping", &["-c", "3", "-i", "0.1", "10.250.0.1"])?;
    let before: Vec<u64> = hooks
        .iter()
        .map(|hook| forwarded(h.agent("host1"), hook))
        .collect::<Result<_>>()?;
    let backlog_drops = traffic::softnet_dropped()?;
    let ping = steady_ping(h.ns("vm1"), "10.250.0.1", 800)?;
    let start = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    h.agent_mut("host1").kill9();
    let killed = start.elapsed();
    h.bird_mut("sdwan").withdraw("10.251.0.0/16")?;
    std::thread::sleep(Duration::from_secs(2));
    let (t, x) = state_without_agent(&h)?;
    assert!(
        t.contains("10.251.0.0/16"),
        "the dead agent's routes stay in place:\n{t}"
    );
    assert!(
        x.contains("10.251.0.0/16"),
        "and in the pinned XDP map:\n{x}"
    );
    let restarting = start.elapsed();
    h.agent_mut("host1").restart()?;
    let restarted = start.elapsed();
    let (sent, received, missing) = loss(ping)?;
    assert_eq!(
        (sent, received),
        (800, 800),
        "packets lost across kill -9 and restart: echo requests {missing:?} (one per 10 ms \
         from the start) got no reply; the agent was killed at {killed:?}, restarted from \
         {restarting:?} to {restarted:?}, and the ping ended at {:?}; meanwhile the kernel's \
         per-CPU backlogs (shared by every namespace) dropped {} packets",
        start.elapsed(),
        traffic::softnet_dropped()? - backlog_drops
    );
    for (hook, before) in hooks.iter().zip(before) {
        let carried = forwarded(h.agent("host1"), hook)? - before;
        assert!(carried >= 800, "{hook} forwarded only {carried} of 800");
    }
    wait_state(&h, |t, x| {
        !t.contains("10.251.0.0/16") && !x.contains("10.251.0.0/16") && t.contains("10.250.0.0/16")
    })?;
    Ok(())
}

/// The pinned XDP map as bpftool sees it while no agent runs: the
/// prefixes present, from the LPM map's keys.
fn state_without_agent(h: &RouteServer) -> Result<(String, String)> {
    let t = h.ns("host1").ip("route show table 200")?;
    let x = hooks::pinned_lpm4(h.ns("host1"), &h.pin_dir("host1").join("STEER_LPM4"))?;
    Ok((t, x.join("\n")))
}

#[test]
fn reconcile_repairs_a_deleted_route_and_attaches_tc_to_a_vm_interface_that_appears() -> Result<()>
{
    let mut h = setup(
        120,
        "vm_interfaces = [\"vm1\", \"vm9\"]\nreconcile_interval = 2\n",
    )?;
    h.ns("host1").ip("route del 10.250.0.0/16 table 200")?;
    wait_state(&h, |t, _| t.contains("10.250.0.0/16"))?;
    let host = h.ns("host1").clone();
    let vm9 = h.lab.node("vm9")?;
    h.lab
        .link(&host, "vm9", "10.1.9.1/24", &vm9, "eth0", "10.1.9.10/24")?;
    wait_for("the TC program on vm9", default_timeout(), || {
        let fib: Value = h.agent("host1").show(&["fib"])?;
        Ok(fib["attached"].to_string().contains("vm9").then_some(()))
    })?;
    assert_eq!(hooks::tcx_programs(h.ns("host1"), "vm9")?.len(), 1);
    Ok(())
}

#[test]
fn sigterm_keeps_the_dataplane_and_flush_on_exit_removes_it() -> Result<()> {
    let mut h = setup(120, "")?;
    h.agent_mut("host1").terminate();
    let t = h.ns("host1").ip("route show table 200")?;
    assert!(t.contains("10.250.0.0/16"), "{t}");
    for (iface, what) in [("vm1", "the TC program"), ("eth0", "the return path")] {
        assert_eq!(
            hooks::tcx_programs(h.ns("host1"), iface)?.len(),
            1,
            "{what} must stay attached"
        );
    }
    assert!(h.ns("host1").ip("rule show")?.contains("lookup 200"));
    assert_eq!(
        h.ns("vm1")
            .output("ping", &["-c", "3", "-i", "0.1", "-W", "1", "10.250.0.1"])?
            .status
            .code(),
        Some(0)
    );

    h.agent("host1")
        .write_config(&agent_config(h.pin_dir("host1"), "flush_on_exit = true\n"))?;
    h.agent_mut("host1").restart()?;
    wait_state(&h, |t, _| t.contains("10.250.0.0/16"))?;
    h.agent_mut("host1").terminate();
    assert_eq!(h.ns("host1").ip("route show table 200")?.trim(), "");
    assert!(!h.ns("host1").ip("rule show")?.contains("lookup 200"));
    assert!(hooks::tcx_programs(h.ns("host1"), "vm1")?.is_empty());
    assert!(hooks::tcx_programs(h.ns("host1"), "eth0")?.is_empty());
    assert_eq!(hooks::xdp_program(h.ns("host1"), "vm1")?, None);
    assert!(!h.pin_dir("host1").exists(), "pins removed");
    Ok(())
}
