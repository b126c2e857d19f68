//! The demo's walkthrough: each step prints the command a reader would type
//! (with the lab's own namespaces and paths) and its output, then checks
//! what it must show; the traffic step proves, with tcpdump on both
//! appliances and the agent's counters, that VM traffic reaches the right
//! appliance straight from its host on the fast path.

use std::io::IsTerminal;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::{Host, View};

fn style(code: &str, text: &str) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A section heading.
pub fn section(title: &str) {
    println!("\n{}", style("1", &format!("== {title} ==")));
}

/// A plain line.
pub fn say(text: &str) {
    println!("{text}");
}

fn note(text: &str) {
    println!("{}", style("2", text));
}

/// A passed check.
pub fn ok(text: &str) {
    println!("{}", style("32", &format!("✔ {text}")));
}

/// Runs `cmd`, printing `shown` as the command line and the output indented.
fn show(shown: &str, mut cmd: Command) -> Result<String> {
    println!("{}", style("1", &format!("$ {shown}")));
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{shown}`"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text.lines() {
        println!("    {line}");
    }
    ensure!(out.status.success(), "`{shown}` failed ({})", out.status);
    Ok(text)
}

/// `tool args` inside namespace `ns`, entered with nsenter (which keeps the
/// root mount namespace, so bpffs stays visible).
fn in_ns(ns: &str, tool: &str, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(tool)
        .args(args);
    c
}

fn steer_show(view: &View, socket: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(&view.steer);
    c.arg("show").args(args).arg("--socket").arg(socket);
    c
}

fn steer_json(view: &View, socket: &std::path::Path, args: &[&str]) -> Result<Value> {
    let out = steer_show(view, socket, args)
        .arg("--json")
        .output()
        .context("running steer show")?;
    ensure!(
        out.status.success(),
        "steer show {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The lab's layout, printed before it starts.
pub fn lab_table() {
    say("  namespace    runs                    address      role
  sd-sdwan     BIRD 2, AS 65010        10.1.0.10    SD-WAN NVA: announces on-prem 10.250.0.0/16 (10.250.0.1 on lo)
  sd-firewall  FRR 8 bgpd, AS 65020    10.1.0.20    firewall NVA: announces 0.0.0.0/0 (203.0.113.1 on lo = \"internet\")
  sd-rs1       steer server, AS 65515  10.1.0.4     route server
  sd-rs2       steer server, AS 65515  10.1.0.5     route server (the second of the pair)
  sd-host1     steer agent             10.1.0.31    hypervisor; VM interface vm1 10.1.1.1/24
  sd-host2     steer agent             10.1.0.32    hypervisor; VM interface vm2 10.1.2.1/24
  sd-vm1       -                       10.1.1.10    VM behind host1 (default via 10.1.1.1)
  sd-vm2       -                       10.1.2.10    VM behind host2 (default via 10.1.2.1)
  sd-lan       bridge br0              -            the VNet LAN 10.1.0.0/24 joining the boxes above");
}

/// The whole walkthrough.
pub fn walk(view: &View) -> Result<()> {
    sessions(view)?;
    routes(view)?;
    hosts(view)?;
    traffic(view)
}

fn sessions(view: &View) -> Result<()> {
    section("1. BGP sessions");
    note("Two route servers (steer server rs1, rs2: AS 65515). Each has an eBGP session to");
    note("both appliances (SD-WAN: BIRD, firewall: FRR) and an iBGP + ADD-PATH session to");
    note("the agent on each host (dynamic neighbours from [hosts] ranges).");
    for rs in &view.route_servers {
        let text = show(
            &format!("steer show peers --socket {}", rs.socket.display()),
            steer_show(view, &rs.socket, &["peers"]),
        )?;
        ensure!(
            text.matches("Established").count() >= 4,
            "{}: not every session is Established",
            rs.ns
        );
    }
    note("The same sessions seen from the appliances themselves:");
    let birdc = view.sdwan.socket.display().to_string();
    show(
        &format!("birdc -s {birdc} show protocols    # SD-WAN (BIRD)"),
        in_ns(
            &view.sdwan.ns,
            "birdc",
            &["-s", &birdc, "show", "protocols"],
        ),
    )?;
    let vty = view.firewall.socket.display().to_string();
    show(
        &format!("vtysh --vty_socket {vty} -c 'show bgp ipv4 unicast summary'    # firewall (FRR)"),
        in_ns(
            &view.firewall.ns,
            "vtysh",
            &["--vty_socket", &vty, "-c", "show bgp ipv4 unicast summary"],
        ),
    )?;
    Ok(())
}

fn routes(view: &View) -> Result<()> {
    section("2. Routes learned from each appliance, and what was advertised to it");
    let rs = &view.route_servers[0];
    note("rs1 shown; rs2 holds the same. The route servers program nothing themselves.");
    for peer in ["sdwan", "firewall"] {
        show(
            &format!("steer show routes --peer {peer}"),
            steer_show(view, &rs.socket, &["routes", "--peer", peer]),
        )?;
    }
    note("Advertised to the appliances: the VNet space (next hop: the route server) and each");
    note("host's VM prefix (next hop: that host), so replies come straight back to the host:");
    for peer in ["sdwan", "firewall"] {
        show(
            &format!("steer show routes --peer {peer} --advertised"),
            steer_show(
                view,
                &rs.socket,
                &["routes", "--peer", peer, "--advertised"],
            ),
        )?;
    }
    note("Why a path won or lost, step by step with its RFC section:");
    show(
        "steer show routes 10.250.0.1",
        steer_show(view, &rs.socket, &["routes", "10.250.0.1"]),
    )?;
    note("What the appliances installed from that (their own kernel tables):");
    for (node, proto) in [(&view.sdwan, "bird"), (&view.firewall, "bgp")] {
        show(
            &format!("ip -n {} route show proto {proto}", node.ns),
            ip(&node.ns, &["route", "show", "proto", proto]),
        )?;
    }
    Ok(())
}

fn ip(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["-n", ns]).args(args);
    c
}

fn hosts(view: &View) -> Result<()> {
    section("3. Each host's effective routes");
    note("Only the VM interface's traffic uses table 200 (ip rules); the host's own traffic");
    note("keeps its main table, so the learned default route never captures the hypervisor.");
    for (i, h) in view.hosts.iter().enumerate() {
        let n = i + 1;
        say(&format!(
            "\n{}",
            style(
                "1",
                &format!("-- host{n} (VM interface vm{n}, VM 10.1.{n}.10) --")
            )
        ));
        show(
            &format!("ip -n {} rule", h.agent.ns),
            ip(&h.agent.ns, &["rule"]),
        )?;
        let table = show(
            &format!("ip -n {} route show table 200", h.agent.ns),
            ip(&h.agent.ns, &["route", "show", "table", "200"]),
        )?;
        ensure!(
            table.contains("10.250.0.0/16") && table.contains("default"),
            "host{n}: table 200 lacks the appliances' routes"
        );
        show(
            &format!(
                "nsenter --net=/run/netns/{} bpftool net show dev vm{n}",
                h.agent.ns
            ),
            in_ns(
                &h.agent.ns,
                "bpftool",
                &["net", "show", "dev", &format!("vm{n}")],
            ),
        )?;
        show(
            &format!("steer show fib --socket {}", h.agent.socket.display()),
            steer_show(view, &h.agent.socket, &["fib"]),
        )?;
    }
    let pins = view.hosts[0].pins.join("STEER_LPM4");
    note("\nThe eBPF programs' own route map, read straight from bpffs (not through the agent).");
    note("Key: prefix length (u32, little endian) + address; value: action (1 pass, 2 forward)");
    note("+ next-hop set id:");
    let mut c = Command::new("bpftool");
    c.args(["map", "dump", "pinned"]).arg(&pins);
    show(&format!("bpftool map dump pinned {}", pins.display()), c)?;
    Ok(())
}

/// Packets the eBPF hooks forwarded on a host, all hooks and CPUs.
fn forwarded(view: &View, host: &Host) -> Result<u64> {
    let fib = steer_json(view, &host.agent.socket, &["fib"])?;
    Ok(["tc", "xdp"]
        .iter()
        .filter_map(|hook| fib["counters"][hook]["forwarded"][0].as_u64())
        .sum())
}

/// tcpdump of ICMP echo requests on an appliance's LAN interface.
struct Capture {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Capture {
    fn start(ns: &str, out: std::path::PathBuf) -> Result<Capture> {
        let err = out.with_extension("err");
        let child = in_ns(
            ns,
            "timeout",
            &[
                "20",
                "tcpdump",
                "-l",
                "-n",
                "-e",
                "-t",
                "-i",
                "eth0",
                "icmp[icmptype] == icmp-echo",
            ],
        )
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()
        .context("starting tcpdump")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&err)?.contains("listening on") {
            ensure!(Instant::now() < deadline, "tcpdump in {ns} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Capture { child, out })
    }

    fn stop(mut self) -> Result<String> {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) of our own child (timeout, which forwards it).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
        Ok(std::fs::read_to_string(&self.out)?)
    }
}

/// VM `n` pings `dst`: the echo requests must arrive at `want` only.
fn proof(view: &View, n: usize, dst: &str, want: usize, label: &str) -> Result<()> {
    let host = &view.hosts[n - 1];
    let appliances = [&view.sdwan, &view.firewall];
    let dir = tempfile::Builder::new()
        .prefix("steer-demo-proof")
        .tempdir()?;
    let captures = appliances
        .iter()
        .enumerate()
        .map(|(i, a)| Capture::start(&a.ns, dir.path().join(format!("cap{i}"))))
        .collect::<Result<Vec<_>>>()?;
    let before = forwarded(view, host)?;
    let ping = in_ns(&host.vm, "ping", &["-c", "5", "-i", "0.2", "-W", "1", dst]).output()?;
    let text = String::from_utf8_lossy(&ping.stdout);
    say(&style(
        "1",
        &format!("$ ip netns exec {} ping -c 5 {dst}    # {label}", host.vm),
    ));
    for line in text
        .lines()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        say(&format!("    {line}"));
    }
    let seen: Vec<String> = captures
        .into_iter()
        .map(Capture::stop)
        .collect::<Result<_>>()?;
    let after = forwarded(view, host)?;
    let from = format!("10.1.{n}.10 > {dst}");
    let counts: Vec<usize> = seen.iter().map(|s| s.matches(&from).count()).collect();
    say(&format!(
        "    captured on {}'s eth0 (tcpdump -e: source MAC > destination MAC):",
        appliances[want].ns
    ));
    for line in seen[want].lines().filter(|l| l.contains(&from)).take(2) {
        say(&format!("      {line}"));
    }
    say(&format!(
        "    echo requests from 10.1.{n}.10 seen: {} {}, {} {}",
        appliances[0].ns, counts[0], appliances[1].ns, counts[1]
    ));
    say(&format!(
        "    eBPF forwarded on host{n}: {before} -> {after} (+{})",
        after - before
    ));
    ensure!(ping.status.success(), "vm{n} cannot reach {dst} ({label})");
    ensure!(
        counts[want] >= 5,
        "vm{n} -> {dst}: only {} echo requests arrived at {}",
        counts[want],
        appliances[want].ns
    );
    ensure!(
        counts[1 - want] == 0,
        "vm{n} -> {dst}: {} echo requests went to {}",
        counts[1 - want],
        appliances[1 - want].ns
    );
    ensure!(
        after - before >= 5,
        "vm{n} -> {dst}: the fast path forwarded only {} packets",
        after - before
    );
    ok(&format!(
        "vm{n} -> {dst} reached the {label} appliance, replies came back, the fast path forwarded it"
    ));
    Ok(())
}

fn traffic(view: &View) -> Result<()> {
    section("4. Live proof: VM traffic goes straight to the right appliance");
    note("tcpdump runs on both appliances while a VM pings; the fast path's counters come");
    note("from 'steer show fib' before and after.");
    for h in &view.hosts {
        for dst in ["10.250.0.1", "203.0.113.1"] {
            let _ = in_ns(&h.vm, "ping", &["-c", "1", "-W", "1", "-q", dst]).output();
        }
    }
    for n in 1..=view.hosts.len() {
        say("");
        proof(view, n, "10.250.0.1", 0, "SD-WAN (on-prem)")?;
        say("");
        proof(view, n, "203.0.113.1", 1, "firewall (internet)")?;
    }
    if view.hosts.len() >= 2 {
        say("");
        note("VM to VM across hosts: host1 sends it straight to host2 (10.1.2.0/24 via 10.1.0.32,");
        note("host2's VM prefix, learned through the route servers), never via an appliance:");
        let text = show(
            &format!("ip netns exec {} ping -c 3 10.1.2.10", view.hosts[0].vm),
            in_ns(
                &view.hosts[0].vm,
                "ping",
                &["-c", "3", "-i", "0.2", "-W", "1", "10.1.2.10"],
            ),
        )?;
        if !text.contains(" 0% packet loss") {
            bail!("vm1 cannot reach vm2");
        }
    }
    Ok(())
}

/// How to look around a kept lab.
pub fn poke_help(view: &View) {
    let h = &view.hosts[0];
    let rs = &view.route_servers[0];
    let steer = view.steer.display();
    say(&format!(
        "The lab is up. Poke around (as root; namespaces: ip netns list | grep ^sd-):

  # kernel state of a host (the VM's traffic uses table 200 through the ip rules)
  ip netns exec {host} ip route show table 200
  ip netns exec {host} ip rule
  nsenter --net=/run/netns/{host} bpftool net         # the eBPF program on vm1

  # the eBPF maps, pinned on bpffs
  bpftool map dump pinned {pins}/STEER_LPM4
  bpftool map dump pinned {pins}/STEER_COUNTERS

  # steer show: route servers and agents (one socket each)
  {steer} show peers --socket {rs_sock}
  {steer} show routes --socket {rs_sock} 10.250.0.1
  {steer} show routes --socket {rs_sock} --peer sdwan --advertised
  {steer} show fib --socket {host_sock}

  # traffic, and the appliances' own view
  ip netns exec {vm} ping 10.250.0.1               # on-prem, via the SD-WAN appliance
  ip netns exec {vm} ping 203.0.113.1              # internet, via the firewall
  ip netns exec {sdwan} tcpdump -n -i eth0 icmp
  ip netns exec {sdwan} birdc -s {birdc} show route
  ip netns exec {fw} vtysh --vty_socket {vty} -c 'show bgp ipv4 unicast'

  bash scripts/demo.sh show    # this walkthrough again
  bash scripts/demo.sh down    # tear it all down (daemons, namespaces, pins)",
        host = h.agent.ns,
        pins = h.pins.display(),
        rs_sock = rs.socket.display(),
        host_sock = h.agent.socket.display(),
        vm = h.vm,
        sdwan = view.sdwan.ns,
        birdc = view.sdwan.socket.display(),
        fw = view.firewall.ns,
        vty = view.firewall.socket.display(),
    ));
}
