//! Flow affinity with stateful appliances (issue 8): three firewalls
//! announce 0.0.0.0/0 with equal AS paths. A VM namespace (default
//! offloads) runs 64 UDP flows through the host while the ECMP set
//! changes; each firewall's own socket records which flow (source port)
//! reached it in which phase. Counted at the far ends, not by the agent:
//! - two firewalls, then a third joins: 0 of the 64 running flows move;
//!   new flows started after the join reach the newcomer too;
//! - the agent is killed (`kill -9`) and restarted: no flow moves;
//! - one of the first two leaves: exactly its flows move (each to one
//!   other firewall, spread over both), no other flow moves (128 running
//!   flows by then, on all three).
//!
//! Run through the eBPF path (`dataplane = "auto"`: TC on the veth) and
//! through the kernel path (`dataplane = "kernel"`: resilient nexthop
//! groups), with `flow_idle_timeout = 5` so the kernel's idle buckets are
//! free for the newcomer within the test.

use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use steer_tests::scenario::{RouteServerLab, rs_neighbor};
use steer_tests::traffic;
use steer_tests::{
    Announce, BgpDaemon, Bird, BirdConfig, FrrConfig, Netns, Process, Steer, wait_for,
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

[[peer]]
name = "fw2"
address = "10.1.0.21"
asn = 65021

[[peer]]
name = "fw3"
address = "10.1.0.22"
asn = 65022

[hosts]
ranges = ["10.1.0.0/24"]
"#;

const FIREWALLS: [&str; 3] = ["10.1.0.20", "10.1.0.21", "10.1.0.22"];
/// The firewalls' namespaces, in the order of [`FIREWALLS`].
const FW_NODES: [&str; 3] = ["fw1", "fw2", "fw3"];
/// The running flows: source ports 40000.. .
const FLOWS: u16 = 64;
/// Flows started after the join: source ports 50000.. .
const NEW_FLOWS: u16 = 64;
/// Idle timeout of the flow table and of the kernel's resilient groups.
const IDLE_SECS: u64 = 5;

/// A UDP sink on a firewall that logs `<source port> <phase>` per datagram.
fn sink(ns: &Netns, dir: &Path, name: &str) -> Result<Process> {
    let mut cmd = ns.command("python3")?;
    cmd.args([
        "-u",
        "-c",
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('203.0.113.1',9000))\nwhile True:\n  d,a=s.recvfrom(2048)\n  print(a[1],d.decode(),flush=True)",
    ]);
    ns.spawn(name, cmd, &dir.join(format!("{name}.log")))
}

/// The VM's sender: every 50 ms one datagram per running flow, each from
/// its own long-lived socket, carrying the phase read from `phase`; flows
/// 50000.. start once the phase file says 1 or more. Stops when `phase`
/// says `stop` (or after 180 s).
fn sender(vm: &Netns, dir: &Path, phase: &Path) -> Result<Process> {
    let script = format!(
        r#"import socket,time
def sock(port):
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
    s.bind(('10.1.1.10',port))
    return s
old=[sock(40000+i) for i in range({FLOWS})]
new=[]
end=time.time()+180
while time.time()<end:
    p=open('{phase}').read().strip()
    if p=='stop':
        break
    if p!='0' and not new:
        new=[sock(50000+i) for i in range({NEW_FLOWS})]
    for s in old+new:
        s.sendto(p.encode(),('203.0.113.1',9000))
    time.sleep(0.05)
"#,
        phase = phase.display()
    );
    let mut cmd = vm.command("python3")?;
    cmd.args(["-u", "-c", &script]);
    vm.spawn("sender", cmd, &dir.join("sender.log"))
}

/// (source port, phase) -> firewalls (indexes) that received it.
type Seen = BTreeMap<(u16, u32), BTreeSet<usize>>;

fn seen(sinks: &[Process]) -> Result<Seen> {
    let mut m: Seen = BTreeMap::new();
    for (fw, s) in sinks.iter().enumerate() {
        let text = std::fs::read_to_string(s.log_path()).context("sink log")?;
        for l in text.lines() {
            let mut w = l.split_whitespace();
            if let (Some(Ok(port)), Some(Ok(phase))) =
                (w.next().map(str::parse), w.next().map(str::parse))
            {
                m.entry((port, phase)).or_default().insert(fw);
            }
        }
    }
    Ok(m)
}

/// Firewalls that received `port` in any of `phases`.
fn firewalls_of(seen: &Seen, port: u16, phases: &[u32]) -> BTreeSet<usize> {
    phases
        .iter()
        .filter_map(|p| seen.get(&(port, *p)))
        .flatten()
        .copied()
        .collect()
}

/// Waits until the agent's want for 0.0.0.0/0 is exactly the firewalls
/// `members` and both the kernel and the eBPF map hold it.
fn converged(agent: &Steer, members: &[usize]) -> Result<()> {
    let what = format!("0.0.0.0/0 on firewalls {members:?}");
    wait_for(&what, steer_tests::default_timeout(), || {
        let fib = agent.show(&["fib"])?;
        let Some(e) = fib["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["prefix"] == "0.0.0.0/0")
        else {
            return Ok(None);
        };
        let want = e["want"].to_string();
        let ok = !e["mismatch"].as_bool().unwrap_or(true)
            && FIREWALLS
                .iter()
                .enumerate()
                .all(|(i, a)| want.contains(a) == members.contains(&i));
        Ok(ok.then_some(()))
    })
}

fn set_phase(path: &Path, phase: &str) -> Result<()> {
    std::fs::write(path, phase).with_context(|| format!("write {}", path.display()))
}

/// What the firewalls received, per flow and phase.
struct Outcome {
    seen: Seen,
    /// Packets the host received from the VM (interface statistics).
    from_vm: u64,
    /// Packets the host's kernel forwarded (`Ip:ForwDatagrams`).
    by_kernel: u64,
    summary: String,
}

fn run(dataplane: &str) -> Result<Outcome> {
    let bird = |i: usize| {
        BirdConfig::new(FIREWALLS[i], 65020 + i as u32)
            .neighbor(rs_neighbor())
            .announce(Announce::new("0.0.0.0/0"))
    };
    let mut s = RouteServerLab::new(RS_CONFIG)
        .appliance_frr(
            "fw1",
            FrrConfig::new("fw1", FIREWALLS[0], 65020).announce(Announce::new("0.0.0.0/0")),
        )
        .appliance_bird("fw2", bird(1))
        .node("fw3", FIREWALLS[2])
        .host_agent("host1", "10.1.0.31", {
            let dataplane = dataplane.to_string();
            move |pins| {
                format!(
                    "asn = 65515\nrouter_id = \"10.1.0.31\"\nroute_servers = [\"10.1.0.4\"]\n\
                     vm_interfaces = [\"vm1\"]\nvm_prefixes = [\"10.1.1.0/24\"]\n\
                     dataplane = \"{dataplane}\"\npin_dir = \"{}\"\nconnect_retry = 1\n\
                     flow_idle_timeout = {IDLE_SECS}\n",
                    pins.display()
                )
            }
        })
        .vm("vm1", "host1", "10.1.1.1/24", "10.1.1.10/24")
        .prepare(|n| {
            for fw in FW_NODES {
                n[fw].ip("addr add 203.0.113.1/24 dev lo")?;
            }
            Ok(())
        })
        .start()?;
    let (host, vm) = (s.ns("host1").clone(), s.ns("vm1").clone());
    let lab_dir = s.lab.dir().to_path_buf();
    converged(s.agent("host1"), &[0, 1])?;
    let sinks: Vec<Process> = FW_NODES
        .iter()
        .enumerate()
        .map(|(i, fw)| sink(s.ns(fw), &lab_dir, &format!("sink{}", i + 1)))
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_millis(500));
    vm.output("ping", &["-c", "2", "-W", "1", "10.1.1.1"])?;
    let phase: PathBuf = lab_dir.join("phase");
    set_phase(&phase, "0")?;
    let snmp0 = traffic::snmp(&host)?;
    let (rx0, _) = traffic::iface_packets(&host, "vm1")?;
    let _sender = sender(&vm, &lab_dir, &phase)?;
    std::thread::sleep(Duration::from_secs(2));

    // A third firewall joins; new flows start once idle buckets and new
    // picks can reach it.
    let fw3 = Bird::start(s.ns("fw3"), bird(2))?;
    fw3.wait_established("rs")?;
    converged(s.agent("host1"), &[0, 1, 2])?;
    std::thread::sleep(Duration::from_secs(IDLE_SECS + 2));
    set_phase(&phase, "1")?;
    std::thread::sleep(Duration::from_secs(2));

    // The agent is killed (-9) and restarted: its pinned flow table and
    // the kernel's groups carry the flows meanwhile and after.
    s.agent_mut("host1").kill9();
    std::thread::sleep(Duration::from_millis(500));
    s.agent_mut("host1").restart()?;
    converged(s.agent("host1"), &[0, 1, 2])?;
    std::thread::sleep(Duration::from_secs(2));

    // The second firewall leaves (phase 2 while the set changes, 3 after).
    set_phase(&phase, "2")?;
    std::thread::sleep(Duration::from_millis(200));
    s.bird_mut("fw2").stop();
    converged(s.agent("host1"), &[0, 2])?;
    std::thread::sleep(Duration::from_millis(200));
    set_phase(&phase, "3")?;
    std::thread::sleep(Duration::from_secs(2));
    set_phase(&phase, "stop")?;
    std::thread::sleep(Duration::from_millis(500));
    let by_kernel = traffic::snmp(&host)?["Ip:ForwDatagrams"] - snmp0["Ip:ForwDatagrams"];
    let from_vm = traffic::iface_packets(&host, "vm1")?.0 - rx0;

    let fib = s.agent("host1").show(&["fib"])?;
    let summary = format!(
        "{dataplane}: {from_vm} packets from the VM, {by_kernel} forwarded by the kernel; \
         agent's flow table {} counters {}",
        fib["flows"], fib["counters"]
    );
    println!("{summary}");
    Ok(Outcome {
        seen: seen(&sinks)?,
        from_vm,
        by_kernel,
        summary,
    })
}

/// Checks the outcome at the far ends and prints the counts.
fn check(o: &Outcome) {
    let seen = &o.seen;
    let summary = &o.summary;
    // Before the join, every running flow on exactly one of fw1/fw2.
    let mut first = BTreeMap::new();
    for port in 40000..40000 + FLOWS {
        let fws = firewalls_of(seen, port, &[0]);
        assert_eq!(
            fws.len(),
            1,
            "flow {port} before the join: {fws:?}\n{summary}"
        );
        first.insert(port, *fws.first().unwrap());
    }
    let on: Vec<usize> = (0..3)
        .map(|fw| first.values().filter(|f| **f == fw).count())
        .collect();
    assert!(on[0] > 0 && on[1] > 0 && on[2] == 0, "{on:?}\n{summary}");

    // The join and the agent's restart: 0 of the running flows move.
    let moved_on_join: Vec<u16> = (40000..40000 + FLOWS)
        .filter(|p| firewalls_of(seen, *p, &[0, 1]) != BTreeSet::from([first[p]]))
        .collect();
    // New flows after the join: each on one firewall (across the restart),
    // some on the newcomer.
    let mut new_on = [0usize; 3];
    for port in 50000..50000 + NEW_FLOWS {
        let fws = firewalls_of(seen, port, &[1]);
        assert_eq!(fws.len(), 1, "new flow {port}: {fws:?}\n{summary}");
        new_on[*fws.first().unwrap()] += 1;
    }

    // The leave: exactly fw2's flows move, each to one other firewall
    // (phase 2, while the set changes, may see them at either).
    let mut moved_on_leave = 0;
    let mut moved_to = BTreeMap::new();
    let mut placed: BTreeMap<u16, usize> = first.clone();
    for port in 50000..50000 + NEW_FLOWS {
        placed.insert(port, *firewalls_of(seen, port, &[1]).first().unwrap());
    }
    let on_leaver = placed.values().filter(|f| **f == 1).count();
    for (port, fw) in &placed {
        let after = firewalls_of(seen, *port, &[3]);
        if *fw == 1 {
            assert_eq!(
                after.len(),
                1,
                "fw2's flow {port} after: {after:?}\n{summary}"
            );
            let to = *after.first().unwrap();
            assert_ne!(to, 1, "fw2's flow {port} still at fw2\n{summary}");
            moved_on_leave += 1;
            *moved_to.entry(to).or_insert(0) += 1;
        } else {
            let all = firewalls_of(seen, *port, &[0, 1, 2, 3]);
            if all != BTreeSet::from([*fw]) {
                moved_on_leave += 1;
            }
        }
    }
    println!(
        "running flows on fw1/fw2 before the join: {}/{}; moved on the join: {} of {FLOWS}; \
         new flows on fw1/fw2/fw3: {new_on:?}; on fw2 when it left: {on_leaver} of {}; \
         moved on the leave: {moved_on_leave} (to fw1/fw3: {moved_to:?})",
        on[0],
        on[1],
        moved_on_join.len(),
        placed.len()
    );
    assert_eq!(
        moved_on_join,
        Vec::<u16>::new(),
        "moved on the join\n{summary}"
    );
    assert!(
        new_on[2] > 0,
        "no new flow reached fw3: {new_on:?}\n{summary}"
    );
    assert_eq!(
        moved_on_leave, on_leaver,
        "only fw2's {on_leaver} flows may move\n{summary}"
    );
    assert_eq!(moved_to.len(), 2, "fw2's flows spread: {moved_to:?}");
}

#[test]
fn running_flows_stay_on_their_firewall_when_one_joins_or_leaves_through_ebpf() -> Result<()> {
    let o = run("auto")?;
    check(&o);
    assert!(
        o.from_vm > 10_000 && o.by_kernel * 100 <= o.from_vm,
        "the eBPF path carried at least 99%: {}",
        o.summary
    );
    Ok(())
}

#[test]
fn running_flows_stay_on_their_firewall_when_one_joins_or_leaves_through_the_kernel() -> Result<()>
{
    let o = run("kernel")?;
    check(&o);
    assert!(
        o.from_vm > 10_000 && o.by_kernel * 100 >= o.from_vm * 99,
        "the kernel forwarded at least 99%: {}",
        o.summary
    );
    Ok(())
}
