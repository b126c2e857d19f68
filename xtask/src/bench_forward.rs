//! `cargo xtask bench forward`: traffic through a host, every forwarding
//! path in the same lab and the same run, in both directions: from the VM
//! to the appliances (`vm-out`) — `kernel` (table 200 and the `ip rule`s
//! only, as `dataplane = "kernel"`), `xdp` (native XDP with TC behind it),
//! `tc` and the default `auto` — and from the appliance back to the VM
//! (`return`) — `kernel`, `tc` (the VM interface's hook only, so the
//! kernel forwards the return traffic), `return` (`tc` plus the return
//! path on the uplink) and `auto` — for both VM interface kinds: a veth,
//! and a tap fed by a VMM process with virtio-net headers
//! (`steer_tests::Vmm`). The host is programmed by the agent's own code
//! (`KernelFib`, `XdpDataplane`), not by hand.
//!
//! ```text
//!   vm (eth0 10.1.1.10; blackhole 10.1.1.200) ── stbench0 [host 10.1.1.1] stbenchup0 ── eth0 [appliance 10.1.0.10: iperf3 -s on 10.250.0.1]
//!                                                                     up1 ── eth0 [sink 10.1.2.10: blackhole 10.251.0.0/16]
//! ```
//!
//! Two cores: the senders (the VM's, or the appliance's) run on CPU 0, the
//! host's receive path on CPU 1 (RPS and veth's threaded NAPI of the VM
//! interface and the uplink pinned there; for the tap, the VMM's copy into
//! it, as a vhost thread), so the generator does not pay for the forwarding
//! and the forwarding is measured on a core of its own.
//!
//! `vm-out` traffic, from sockets in the VM namespace with the default
//! offloads:
//! iperf3 TCP with 1 and 4 streams to the appliance (Gbit/s the receiver
//! got); UDP from [`udpgen`], a `sendmmsg` generator (8 sockets x 16
//! destination ports = 128 flows) with 64- and 1400-byte payloads, to the
//! sink, which drops them on a blackhole route so the receiver costs little;
//! counted there (its interface's received packets, a counter the agent
//! does not own) beside
//! what the generator sent: delivered < offered shows the path, not the
//! generator, was the limit. CPU per packet: busy jiffies of CPU 1
//! (`/proc/stat`: user, system, irq, softirq, steal; not nice, where the
//! niced jobs of other users of a shared machine run) over the packets
//! delivered: the host's receive path and the sink's drop; medians. The
//! fast-path share is 1 - (host `ForwDatagrams` - what came in on the
//! uplink, all of which the kernel forwards to the VM unless the return
//! path runs) / (packets the host got from the VM), all the kernel's
//! counters.
//!
//! `return` traffic, from the appliance's sockets: iperf3 TCP with 1 and 4
//! streams, the appliance sending (`iperf3 -R`: the VM's receive rate);
//! UDP from the same generator in the appliance's namespace towards
//! 10.1.1.200, an address inside the VM's prefix that the VM drops on a
//! blackhole route (the host has its neighbour entry: the VM's MAC), counted
//! at the VM's interface (its received packets) beside what the generator
//! sent. The fast-path share is 1 - (host `ForwDatagrams` - what came from
//! the VM, when no VM hook runs) / (packets the uplink received).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use steer::fib::kernel::{EcmpStrategy, KernelFib, KernelRoute, RouteChange, RouteTarget};
use steer::fib::xdp::{DataplaneMode, XdpConfig, XdpDataplane, XdpMode, XdpTarget};
use steer_tests::{Lab, Netns, Process, Vmm};

use crate::udpgen::{self, Flows};

/// `cargo xtask bench forward` options.
#[derive(clap::Args)]
pub struct Args {
    /// Runs per measurement (the median is printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Only this VM interface kind (`veth` or `tap`).
    #[arg(long)]
    kind: Option<String>,
    /// Only these paths (`kernel`, `xdp`, `tc`, `return`, `auto`; kernel
    /// is always measured, as the reference).
    #[arg(long, value_delimiter = ',')]
    path: Vec<String>,
    /// Only TCP or only UDP (`tcp`, `udp`).
    #[arg(long)]
    traffic: Option<String>,
    /// Which way the traffic goes: `vm-out` (VM to appliance), `return`
    /// (appliance to VM) or `both`.
    #[arg(long, default_value = "both")]
    direction: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Kernel,
    Xdp,
    Tc,
    Return,
    Auto,
}

const PATHS: [Path; 5] = [Path::Kernel, Path::Xdp, Path::Tc, Path::Return, Path::Auto];

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Kernel => "kernel",
            Path::Xdp => "xdp",
            Path::Tc => "tc",
            Path::Return => "tc + return",
            Path::Auto => "auto (default)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Path::Kernel => "kernel",
            Path::Xdp => "xdp",
            Path::Tc => "tc",
            Path::Return => "return",
            Path::Auto => "auto",
        }
    }

    fn mode(self) -> Option<DataplaneMode> {
        match self {
            Path::Kernel => None,
            Path::Xdp => Some(DataplaneMode::Xdp(XdpMode::Native)),
            Path::Tc | Path::Return => Some(DataplaneMode::Tc),
            Path::Auto => Some(DataplaneMode::Auto),
        }
    }

    /// Whether the uplink is offered to the return path (which `auto`
    /// takes only where it returns to the VM interface, as the agent does).
    fn uplink(self) -> bool {
        matches!(self, Path::Return | Path::Auto)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// From the VM to the appliances.
    VmOut,
    /// From the appliance back to the VM.
    Return,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::VmOut => "VM -> appliance",
            Direction::Return => "appliance -> VM (return traffic)",
        }
    }

    /// The paths compared in this direction.
    fn measures(self, path: Path) -> bool {
        match self {
            Direction::VmOut => path != Path::Return,
            Direction::Return => path != Path::Xdp,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Veth,
    Tap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Traffic {
    Tcp(u32),
    Udp(usize),
}

const TRAFFIC: [Traffic; 4] = [
    Traffic::Tcp(1),
    Traffic::Tcp(4),
    Traffic::Udp(64),
    Traffic::Udp(1400),
];

impl Traffic {
    fn name(self) -> String {
        match self {
            Traffic::Tcp(n) => format!("TCP {n} stream{}", if n == 1 { "" } else { "s" }),
            Traffic::Udp(n) => format!("UDP {n} B"),
        }
    }
}

/// One measurement.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    /// Gbit/s (TCP) or packets/s delivered (UDP).
    rate: f64,
    /// UDP: packets/s the generator sent.
    offered: f64,
    /// Busy CPU ns per delivered packet (UDP).
    cpu_ns: f64,
    /// Share of the packets of the measured direction that bypassed the
    /// kernel's forwarding.
    fast_share: f64,
}

/// The host's VM interface (a name unique on the machine: its NAPI thread
/// is found by name).
const VM_IF: &str = "stbench0";
/// The CPU the VM's senders (generator, iperf3) run on.
const VM_CPU: usize = 0;
/// The host's uplink to the appliance (unique on the machine, as
/// [`VM_IF`]).
const UPLINK_IF: &str = "stbenchup0";
/// The CPU the host's receive path runs on: veth's NAPI thread, or the
/// VMM's copy into the tap (as a vhost thread would).
const HOST_CPU: usize = 1;
const APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const SINK: Ipv4Addr = Ipv4Addr::new(10, 251, 0, 1);
/// The VM's address for return UDP: inside its prefix, dropped by the VM
/// on a blackhole route.
const VM_SINK: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 200);
const VM_PREFIX: &str = "10.1.1.0/24";

/// Runs the benchmark and prints its tables.
pub fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "bench forward needs root (namespaces, BPF)"
    );
    ensure!(
        args.runs > 0 && args.seconds > 0,
        "--runs and --seconds must be positive"
    );
    let kinds: Vec<Kind> = match args.kind.as_deref() {
        None => vec![Kind::Veth, Kind::Tap],
        Some("veth") => vec![Kind::Veth],
        Some("tap") => vec![Kind::Tap],
        Some(other) => bail!("--kind {other}: use veth or tap"),
    };
    let directions: Vec<Direction> = match args.direction.as_str() {
        "vm-out" => vec![Direction::VmOut],
        "return" => vec![Direction::Return],
        "both" => vec![Direction::VmOut, Direction::Return],
        other => bail!("--direction {other}: use vm-out, return or both"),
    };
    let wanted: Vec<Traffic> = match args.traffic.as_deref() {
        None => TRAFFIC.to_vec(),
        Some("tcp") => TRAFFIC
            .into_iter()
            .filter(|t| matches!(t, Traffic::Tcp(_)))
            .collect(),
        Some("udp") => TRAFFIC
            .into_iter()
            .filter(|t| matches!(t, Traffic::Udp(_)))
            .collect(),
        Some(other) => bail!("--traffic {other}: use tcp or udp"),
    };
    if cfg!(debug_assertions) {
        println!(
            "note: unoptimized xtask; the generator is faster in `cargo run --release -p xtask -- bench forward`"
        );
    }
    for p in &args.path {
        ensure!(
            PATHS.iter().any(|x| x.key() == p),
            "--path {p}: use kernel, xdp, tc, return or auto"
        );
    }
    let chosen = |p: Path| {
        p == Path::Kernel || args.path.is_empty() || args.path.iter().any(|x| x == p.key())
    };
    for kind in kinds {
        let lab = Bench::new(kind)?;
        // [direction][path][traffic], paths in PATHS order.
        let mut samples: Vec<Vec<Vec<Vec<Sample>>>> =
            vec![vec![vec![Vec::new(); TRAFFIC.len()]; PATHS.len()]; directions.len()];
        for run in 0..args.runs {
            eprintln!("{kind:?}: run {} of {}", run + 1, args.runs);
            for (p, path) in PATHS.iter().enumerate() {
                if !chosen(*path) || !directions.iter().any(|d| d.measures(*path)) {
                    continue;
                }
                let dp = lab.use_path(*path)?;
                let hooks = Hooks {
                    vm: dp.is_some(),
                    uplink: dp.as_ref().is_some_and(|d| !d.live_uplinks().is_empty()),
                };
                for (d, dir) in directions.iter().enumerate() {
                    if !dir.measures(*path) {
                        continue;
                    }
                    for (t, traffic) in TRAFFIC.iter().enumerate() {
                        if !wanted.contains(traffic) {
                            continue;
                        }
                        let s =
                            lab.measure(*dir, hooks, *traffic, Duration::from_secs(args.seconds))?;
                        samples[d][p][t].push(s);
                    }
                }
                lab.drop_path(dp)?;
            }
        }
        for (d, dir) in directions.iter().enumerate() {
            print_table(kind, *dir, &args, &samples[d]);
        }
    }
    Ok(())
}

fn median(v: Vec<f64>) -> Option<f64> {
    let mut v = v;
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn print_table(kind: Kind, dir: Direction, args: &Args, samples: &[Vec<Vec<Sample>>]) {
    let what = match kind {
        Kind::Veth => "veth (the lab's: GRO on both ends, default offloads)",
        Kind::Tap => "tap fed by a VMM with virtio-net headers (guest: checksum offload, TSO)",
    };
    println!(
        "\n{}; VM interface: {what}; median of {} runs of {} s; ratio against kernel in ()",
        dir.name(),
        args.runs,
        args.seconds
    );
    let mut header = format!("  {:<15}", "path");
    for t in TRAFFIC {
        header.push_str(&format!(" {:>22}", t.name()));
    }
    header.push_str(&format!(
        " {:>16} {:>16} {:>11}",
        "CPU ns/pkt 64B", "CPU ns/pkt 1400B", "fast path"
    ));
    println!("{header}");
    let kernel = PATHS.iter().position(|p| *p == Path::Kernel).unwrap_or(0);
    let med =
        |p: usize, t: usize, f: fn(&Sample) -> f64| median(samples[p][t].iter().map(f).collect());
    let ratio = |p: usize, v: f64, k: Option<f64>| match k {
        Some(k) if p != kernel && k > 0.0 => format!(" ({:.2}x)", v / k),
        _ => String::new(),
    };
    for (p, path) in PATHS.iter().enumerate() {
        if samples[p].iter().all(Vec::is_empty) {
            continue;
        }
        let mut line = format!("  {:<15}", path.name());
        for (t, traffic) in TRAFFIC.iter().enumerate() {
            let Some(v) = med(p, t, |s| s.rate) else {
                line.push_str(&format!(" {:>22}", "-"));
                continue;
            };
            let k = med(kernel, t, |s| s.rate);
            let cell = match traffic {
                Traffic::Tcp(_) => format!("{v:.2} Gbit/s"),
                Traffic::Udp(_) => format!(
                    "{:.0}k/{:.0}k pps",
                    v / 1e3,
                    med(p, t, |s| s.offered).unwrap_or(0.0) / 1e3
                ),
            };
            line.push_str(&format!(" {:>22}", cell + &ratio(p, v, k)));
        }
        for t in [2, 3] {
            let cell = match med(p, t, |s| s.cpu_ns) {
                Some(v) => format!("{v:.0}{}", ratio(p, v, med(kernel, t, |s| s.cpu_ns))),
                None => "-".into(),
            };
            line.push_str(&format!(" {cell:>16}"));
        }
        let share = samples[p]
            .iter()
            .flatten()
            .map(|s| s.fast_share)
            .fold(f64::INFINITY, f64::min);
        line.push_str(&format!(" {:>10.1}%", share * 100.0));
        println!("{line}");
    }
    println!(
        "  UDP cells: delivered/offered (the generator's own send rate); fast path: the lowest \
         share of the direction's packets that bypassed the kernel's forwarding in any measurement"
    );
}

/// The lab of one VM interface kind.
struct Bench {
    _lab: Lab,
    vm: Netns,
    host: Netns,
    app: Netns,
    sink: Netns,
    flows: Flows,
    return_flows: Flows,
    pin: PathBuf,
    _vmm: Option<Vmm>,
    _iperf: Process,
}

impl Bench {
    fn new(kind: Kind) -> Result<Bench> {
        let mut lab = Lab::new()?;
        let vm = lab.node("vm")?;
        let host = lab.node("host")?;
        let app = lab.node("app")?;
        let sink = lab.node("sink")?;
        let vmm = match kind {
            Kind::Veth => {
                lab.link(&host, VM_IF, "10.1.1.1/24", &vm, "eth0", "10.1.1.10/24")?;
                None
            }
            Kind::Tap => {
                let vmm = Vmm::start(&vm, "eth0", &host, VM_IF, Some([HOST_CPU, VM_CPU]))?;
                vm.ip("addr add 10.1.1.10/24 dev eth0")?;
                vm.ip("link set eth0 up")?;
                host.ip(&format!("addr add 10.1.1.1/24 dev {VM_IF}"))?;
                host.ip(&format!("link set {VM_IF} up"))?;
                Some(vmm)
            }
        };
        lab.link(
            &host,
            UPLINK_IF,
            "10.1.0.31/24",
            &app,
            "eth0",
            "10.1.0.10/24",
        )?;
        lab.link(&host, "up1", "10.1.2.1/24", &sink, "eth0", "10.1.2.10/24")?;
        // The host knows the sinks' MACs: no ARP while measuring.
        host.ip(&format!(
            "neigh replace 10.1.2.10 lladdr {} dev up1 nud permanent",
            mac_text(mac(&sink, "eth0")?)
        ))?;
        host.ip(&format!(
            "neigh replace {VM_SINK} lladdr {} dev {VM_IF} nud permanent",
            mac_text(mac(&vm, "eth0")?)
        ))?;
        sink.ip("route add blackhole 10.251.0.0/16")?;
        vm.ip(&format!("route add blackhole {VM_SINK}/32"))?;
        vm.ip("route add default via 10.1.1.1")?;
        app.ip(&format!("addr add {APPLIANCE}/32 dev lo"))?;
        app.ip("route add 10.1.1.0/24 via 10.1.0.31")?;
        host.sysctl("net.ipv4.ip_forward", "1")?;
        host.enter(|| -> Result<()> {
            let mut k = KernelFib::open(200, EcmpStrategy::default())?;
            k.ensure_rules(&[VM_IF.to_string()], 1000)?;
            let report = k.apply(&[
                RouteChange::Upsert(KernelRoute {
                    prefix: "10.250.0.0/16".parse()?,
                    target: RouteTarget::Unicast(vec!["10.1.0.10".parse()?]),
                }),
                RouteChange::Upsert(KernelRoute {
                    prefix: "10.251.0.0/16".parse()?,
                    target: RouteTarget::Unicast(vec!["10.1.2.10".parse()?]),
                }),
                RouteChange::Upsert(KernelRoute {
                    prefix: "10.1.0.0/16".parse()?,
                    target: RouteTarget::Unreachable,
                }),
            ])?;
            ensure!(report.failures.is_empty(), "{:?}", report.failures);
            k.ensure_neighbor("10.1.0.10".parse()?)?;
            k.ensure_neighbor("10.1.2.10".parse()?)?;
            Ok(())
        })??;
        let receivers: &[&str] = match kind {
            Kind::Veth => &[VM_IF, UPLINK_IF],
            Kind::Tap => &[UPLINK_IF],
        };
        let mask = 1u32 << HOST_CPU;
        for iface in receivers {
            host.exec(
                "ip",
                &[
                    "netns",
                    "exec",
                    host.name(),
                    "sh",
                    "-c",
                    &format!(
                        "echo 1 > /sys/class/net/{iface}/threaded && \
                         echo {mask:x} > /sys/class/net/{iface}/queues/rx-0/rps_cpus"
                    ),
                ],
            )?;
        }
        let pin = lab.bpf_pin_dir("bench-forward")?;
        let log = lab.dir().join("iperf3.log");
        let mut cmd = app.command("taskset")?;
        cmd.args([
            "-c",
            &VM_CPU.to_string(),
            "iperf3",
            "-s",
            "-B",
            &APPLIANCE.to_string(),
        ]);
        let iperf = app.spawn("iperf3 -s", cmd, &log)?;
        vm.output(
            "ping",
            &["-c", "2", "-i", "0.2", "-W", "1", &APPLIANCE.to_string()],
        )?;
        pin_napi_threads(HOST_CPU)?;
        let flows = Flows {
            iface: "eth0".into(),
            src_mac: mac(&vm, "eth0")?,
            dst_mac: mac(&host, VM_IF)?,
            src: Ipv4Addr::new(10, 1, 1, 10),
            dst: SINK,
            payload: 0,
        };
        let return_flows = Flows {
            iface: "eth0".into(),
            src_mac: mac(&app, "eth0")?,
            dst_mac: mac(&host, UPLINK_IF)?,
            src: APPLIANCE,
            dst: VM_SINK,
            payload: 0,
        };
        Ok(Bench {
            flows,
            return_flows,
            _lab: lab,
            vm,
            host,
            app,
            pin,
            sink,
            _vmm: vmm,
            _iperf: iperf,
        })
    }

    /// Puts the hooks of `path` on the VM interface and, where the path
    /// has it, the return path on the uplink (none for kernel). Like the
    /// agent, the return path stays off the uplink when the mode returns to
    /// no VM interface.
    fn use_path(&self, path: Path) -> Result<Option<XdpDataplane>> {
        let Some(mode) = path.mode() else {
            return Ok(None);
        };
        let mut cfg = XdpConfig::new(self.pin.clone(), &[VM_IF], mode);
        cfg.vm_prefixes = vec![VM_PREFIX.parse()?];
        if path.uplink() {
            cfg.uplinks = vec![UPLINK_IF.to_string()];
        }
        let dp = self.host.enter(move || -> Result<XdpDataplane> {
            let mut dp = XdpDataplane::open(&cfg)?;
            dp.apply(&[
                (
                    "10.250.0.0/16".parse()?,
                    Some(XdpTarget::Forward(vec!["10.1.0.10".parse()?])),
                ),
                (
                    "10.251.0.0/16".parse()?,
                    Some(XdpTarget::Forward(vec!["10.1.2.10".parse()?])),
                ),
                ("10.1.0.0/16".parse()?, Some(XdpTarget::Pass)),
            ])?;
            if !dp.returns_anywhere() {
                dp.set_uplinks(&[])?;
            }
            Ok(dp)
        })??;
        pin_napi_threads(HOST_CPU)?;
        Ok(Some(dp))
    }

    fn drop_path(&self, dp: Option<XdpDataplane>) -> Result<()> {
        let Some(dp) = dp else { return Ok(()) };
        let pin = self.pin.clone();
        self.host.enter(move || -> Result<()> {
            drop(dp);
            XdpDataplane::remove(&pin)?;
            std::fs::create_dir_all(&pin)?;
            Ok(())
        })?
    }

    fn measure(
        &self,
        dir: Direction,
        hooks: Hooks,
        traffic: Traffic,
        secs: Duration,
    ) -> Result<Sample> {
        let (sender, flows, receiver, receiver_if) = match dir {
            Direction::VmOut => (&self.vm, &self.flows, &self.sink, "eth0"),
            Direction::Return => (&self.app, &self.return_flows, &self.vm, "eth0"),
        };
        let host0 = self.host_counters()?;
        let cpu0 = cpu_jiffies()?;
        let rx0 = rx_packets(receiver, receiver_if)?;
        let (rate, offered, elapsed) = match traffic {
            Traffic::Tcp(streams) => (
                self.iperf_tcp(streams, secs, dir == Direction::Return)?,
                0.0,
                secs,
            ),
            Traffic::Udp(payload) => {
                let flows = Flows {
                    payload,
                    ..flows.clone()
                };
                let (sent, elapsed) = udpgen::generate(sender, &flows, &[VM_CPU], secs)?;
                std::thread::sleep(Duration::from_millis(200));
                let arrived = rx_packets(receiver, receiver_if)? - rx0;
                ensure!(arrived > 0, "nothing reached {}", receiver.name());
                let t = elapsed.as_secs_f64();
                (arrived as f64 / t, sent as f64 / t, elapsed)
            }
        };
        let cpu1 = cpu_jiffies()?;
        let host1 = self.host_counters()?;
        let d = host1.delta(&host0);
        // What the kernel forwarded in the other direction: all of it when
        // no hook of ours runs there, and at most all of it otherwise (then
        // nothing is subtracted: the share shown is a lower bound).
        let (measured, other) = match dir {
            Direction::VmOut => (d.from_vm, d.from_uplink),
            Direction::Return => (d.from_uplink, d.from_vm),
        };
        let other_hook = match dir {
            Direction::VmOut => hooks.uplink,
            Direction::Return => hooks.vm,
        };
        let other_by_kernel = if other_hook { 0 } else { other };
        let kernel_fwd = d.forwarded.saturating_sub(other_by_kernel);
        let delivered = if let Traffic::Udp(_) = traffic {
            rate * elapsed.as_secs_f64()
        } else {
            measured as f64
        };
        let busy_ns = (cpu1 - cpu0) as f64 * 1e9 / clock_ticks();
        Ok(Sample {
            rate,
            offered,
            cpu_ns: busy_ns / delivered.max(1.0),
            fast_share: (1.0 - kernel_fwd as f64 / measured.max(1) as f64).max(0.0),
        })
    }

    /// The host's counters: packets its VM interface and its uplink
    /// received, and ForwDatagrams.
    fn host_counters(&self) -> Result<HostCounters> {
        let snmp = self.host.exec("cat", &["/proc/net/snmp"])?;
        Ok(HostCounters {
            from_vm: rx_packets(&self.host, VM_IF)?,
            from_uplink: rx_packets(&self.host, UPLINK_IF)?,
            forwarded: snmp_field(&snmp, "Ip:", "ForwDatagrams")?,
        })
    }

    fn iperf_tcp(&self, streams: u32, secs: Duration, reverse: bool) -> Result<f64> {
        let (secs, streams, cpu, server) = (
            secs.as_secs().to_string(),
            streams.to_string(),
            VM_CPU.to_string(),
            APPLIANCE.to_string(),
        );
        let mut args = vec![
            "-c", &cpu, "iperf3", "-c", &server, "-t", &secs, "-P", &streams, "-J",
        ];
        if reverse {
            args.push("-R");
        }
        let out = self.vm.exec("taskset", &args)?;
        let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 -J output")?;
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .map(|b| b / 1e9)
            .with_context(|| format!("iperf3 gave no receive rate: {out}"))
    }
}

/// Which of our hooks run: on the VM interface, on the uplink.
#[derive(Clone, Copy, Debug)]
struct Hooks {
    vm: bool,
    uplink: bool,
}

/// The host's counters that say which path the packets took.
#[derive(Clone, Copy, Debug)]
struct HostCounters {
    /// Packets the VM interface received (from the VM).
    from_vm: u64,
    /// Packets the uplink received (from the appliance).
    from_uplink: u64,
    /// `Ip: ForwDatagrams`: packets the kernel forwarded.
    forwarded: u64,
}

impl HostCounters {
    fn delta(&self, before: &HostCounters) -> HostCounters {
        HostCounters {
            from_vm: self.from_vm - before.from_vm,
            from_uplink: self.from_uplink - before.from_uplink,
            forwarded: self.forwarded - before.forwarded,
        }
    }
}

/// A counter of a `/proc/net/snmp` section (`Ip:`, `Udp:`).
fn snmp_field(snmp: &str, section: &str, field: &str) -> Result<u64> {
    let mut lines = snmp.lines().filter(|l| l.starts_with(section));
    let (names, values) = (
        lines.next().context("snmp section")?,
        lines.next().context("snmp section")?,
    );
    let col = names
        .split_whitespace()
        .position(|n| n == field)
        .with_context(|| format!("{section} {field}"))?;
    Ok(values
        .split_whitespace()
        .nth(col)
        .context("snmp value")?
        .parse()?)
}

/// The MAC of `iface` in `ns`.
fn mac(ns: &Netns, iface: &str) -> Result<[u8; 6]> {
    let link: serde_json::Value = serde_json::from_str(&ns.ip(&format!("-j link show {iface}"))?)?;
    let text = link[0]["address"].as_str().context("no MAC")?;
    let bytes: Vec<u8> = text
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("MAC {text}"))
}

/// Packets `iface` in `ns` received (`/proc/net/dev`). The sinks drop what
/// they get on a blackhole route: the cheapest receiver that still takes
/// it off the wire.
fn rx_packets(ns: &Netns, iface: &str) -> Result<u64> {
    let dev = ns.exec("cat", &["/proc/net/dev"])?;
    dev.lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            (name.trim() == iface).then(|| rest.split_whitespace().nth(1)?.parse().ok())?
        })
        .with_context(|| format!("{iface} in {}'s /proc/net/dev", ns.name()))
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Threaded NAPI kthreads (`napi/<dev>-<id>`) of the lab's VM interface
/// and uplink pinned to `cpu`. Attaching XDP re-creates a veth's NAPI, so
/// this runs after every change of path.
fn pin_napi_threads(cpu: usize) -> Result<()> {
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if ![VM_IF, UPLINK_IF]
            .iter()
            .any(|i| comm.starts_with(&format!("napi/{i}-")))
        {
            continue;
        }
        let pid = entry.file_name().to_string_lossy().into_owned();
        let out = std::process::Command::new("taskset")
            .args(["-pc", &cpu.to_string(), &pid])
            .output()?;
        ensure!(
            out.status.success(),
            "taskset -pc {cpu} {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Busy jiffies of `HOST_CPU`, where the host's receive path runs.
fn cpu_jiffies() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let f: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with(&format!("cpu{HOST_CPU} ")))
        .context("/proc/stat")?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    ensure!(f.len() >= 8, "/proc/stat cpu line");
    // user, system, irq, softirq, steal: not idle, not iowait, and not
    // nice, where the other (niced) jobs of a shared machine run.
    Ok(f[0] + f[2] + f[5] + f[6] + f[7])
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}
