//! `cargo xtask bench fib`: kernel route programming, Steer's batched
//! rtnetlink (`KernelFib::apply`) against `ip -batch` with the same routes,
//! in a fresh named network namespace removed afterwards. Scenarios:
//! (a) 100,000 IPv4 routes with one gateway; (b) 10,000 routes with four
//! next hops each; each through both strategies (plain gateways and
//! RTA_MULTIPATH, or nexthop objects) and both matching `ip` forms (`via`
//! / `nexthop via` lists, or `nexthop` objects and `nhid`). The table is flushed between
//! runs; each variant runs RUNS times, interleaved, and medians and the
//! ratio ip-batch/steer are printed.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use steer::fib::kernel::{
    EcmpStrategy, KernelFib, KernelRoute, RTPROT_STEER, RouteChange, RouteTarget,
};
use steer::prefix::Prefix;

const TABLE: u32 = 1000;
const RUNS: usize = 5;
const VARIANTS: [Variant; 4] = [
    Variant::Steer(EcmpStrategy::Multipath),
    Variant::Steer(EcmpStrategy::NexthopObjects),
    Variant::IpBatch(IpForm::Via),
    Variant::IpBatch(IpForm::Nhid),
];
const GATEWAYS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 99, 0, 10),
    Ipv4Addr::new(10, 99, 0, 11),
    Ipv4Addr::new(10, 99, 0, 12),
    Ipv4Addr::new(10, 99, 0, 13),
];

/// Runs the FIB benchmark and prints its table.
pub fn run() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "bench fib needs root (network namespaces, rtnetlink)"
    );
    if cfg!(debug_assertions) {
        println!(
            "note: xtask is an unoptimized build; for Steer's real speed run `cargo run --release -p xtask -- bench fib`"
        );
    }
    let ns = Netns::create()?;
    ns.setup()?;
    let dir = std::env::temp_dir().join(format!("steer-bench-fib-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());

    println!(
        "FIB programming in netns {} (table {TABLE}), median of {RUNS} runs",
        ns.name
    );
    let scenarios = [
        Scenario {
            title: "(a) 100000 IPv4 routes, 1 gateway",
            routes: (0..100_000).map(|i| route(i, &GATEWAYS[..1])).collect(),
        },
        Scenario {
            title: "(b) 10000 IPv4 routes, 4 next hops each",
            routes: (0..10_000).map(|i| route(i, &GATEWAYS)).collect(),
        },
    ];
    for scenario in &scenarios {
        let t = scenario.measure(&ns, &dir)?;
        println!("{}", scenario.render(&t));
        let [mp, nh, ip_via, ip_nhid] = [t[0], t[1], t[2], t[3]];
        println!(
            "  ip -batch via   / steer multipath:        {:.2}x",
            ratio(ip_via, mp)
        );
        println!(
            "  ip -batch nhid  / steer nexthop objects:  {:.2}x",
            ratio(ip_nhid, nh)
        );
        println!(
            "  best ip -batch  / best steer:             {:.2}x",
            ratio(ip_via.min(ip_nhid), mp.min(nh))
        );
        let (winner, factor) = if nh <= mp {
            ("nexthop objects", ratio(mp, nh))
        } else {
            ("multipath", ratio(nh, mp))
        };
        println!("  steer strategy: {winner} is {factor:.2}x faster");
    }
    Ok(())
}

fn ratio(num: Duration, den: Duration) -> f64 {
    num.as_secs_f64() / den.as_secs_f64()
}

fn route(i: u32, gateways: &[Ipv4Addr]) -> KernelRoute {
    let net = Ipv4Addr::from(0x0b00_0000 + (i << 8));
    KernelRoute {
        prefix: Prefix::new(IpAddr::V4(net), 24),
        target: RouteTarget::Unicast(gateways.iter().map(|g| IpAddr::V4(*g)).collect()),
    }
}

#[derive(Clone, Copy)]
enum IpForm {
    /// `route replace P via A` or `nexthop via A nexthop via B ...`.
    Via,
    /// `nexthop replace id N ...` objects (and a group), then `route ... nhid`.
    Nhid,
}

#[derive(Clone, Copy)]
enum Variant {
    Steer(EcmpStrategy),
    IpBatch(IpForm),
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Steer(EcmpStrategy::Multipath) => "steer multipath (via / RTA_MULTIPATH)",
            Variant::Steer(EcmpStrategy::NexthopObjects) => "steer nexthop objects (nhid)",
            Variant::IpBatch(IpForm::Via) => "ip -batch via",
            Variant::IpBatch(IpForm::Nhid) => "ip -batch nhid (nexthop objects)",
        }
    }
}

struct Scenario {
    title: &'static str,
    routes: Vec<KernelRoute>,
}

impl Scenario {
    /// Median time of each variant, runs interleaved so drift hits all.
    fn measure(&self, ns: &Netns, dir: &std::path::Path) -> Result<Vec<Duration>> {
        let changes: Vec<RouteChange> = self
            .routes
            .iter()
            .cloned()
            .map(RouteChange::Upsert)
            .collect();
        let files: Vec<Option<std::path::PathBuf>> = VARIANTS
            .into_iter()
            .enumerate()
            .map(|(k, v)| match v {
                Variant::IpBatch(form) => {
                    let path = dir.join(format!("batch-{k}-{}.txt", self.routes.len()));
                    std::fs::write(&path, ip_batch(&self.routes, form)).map(|_| Some(path))
                }
                Variant::Steer(_) => Ok(None),
            })
            .collect::<std::io::Result<_>>()?;
        let mut times = vec![Vec::with_capacity(RUNS); VARIANTS.len()];
        for _ in 0..RUNS {
            for (k, v) in VARIANTS.into_iter().enumerate() {
                ns.run(flush)?;
                let t = match (v, &files[k]) {
                    (Variant::Steer(strategy), _) => ns.run(|| steer_apply(strategy, &changes))?,
                    (Variant::IpBatch(_), Some(file)) => ns.ip_batch(file)?,
                    (Variant::IpBatch(_), None) => bail!("no batch file"),
                };
                let installed = ns.run(|| {
                    Ok(KernelFib::open(TABLE, EcmpStrategy::Multipath)?
                        .dump()?
                        .len())
                })?;
                ensure!(
                    installed == self.routes.len(),
                    "{}: {installed} of {} routes installed",
                    v.label(),
                    self.routes.len()
                );
                times[k].push(t);
            }
        }
        ns.run(flush)?;
        Ok(times.into_iter().map(median).collect())
    }

    fn render(&self, medians: &[Duration]) -> String {
        let mut out = format!("{}\n", self.title);
        for (v, t) in VARIANTS.iter().zip(medians) {
            let per_route = t.as_secs_f64() * 1e6 / self.routes.len() as f64;
            let _ = writeln!(
                out,
                "  {:<38} {:>9.1} ms  ({per_route:.2} us/route)",
                v.label(),
                t.as_secs_f64() * 1e3
            );
        }
        out.trim_end().to_string()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Empties the table and the namespace's nexthop objects (`ip -batch`
/// numbers its objects outside Steer's id range, so they are not Steer's).
fn flush() -> Result<()> {
    KernelFib::open(TABLE, EcmpStrategy::Multipath)?.flush()?;
    ip(&["nexthop", "flush"])
}

/// Opens, applies and times one batch from an empty table.
fn steer_apply(strategy: EcmpStrategy, changes: &[RouteChange]) -> Result<Duration> {
    let start = Instant::now();
    let mut fib = KernelFib::open(TABLE, strategy)?;
    let report = fib.apply(changes)?;
    let took = start.elapsed();
    ensure!(
        report.failures.is_empty() && report.applied == changes.len(),
        "steer: {} applied, failures: {:?}",
        report.applied,
        report.failures.iter().take(3).collect::<Vec<_>>()
    );
    Ok(took)
}

/// The `ip -batch` file that installs the same routes.
fn ip_batch(routes: &[KernelRoute], form: IpForm) -> String {
    let mut out = String::with_capacity(routes.len() * 96);
    let proto = RTPROT_STEER;
    if let IpForm::Nhid = form {
        for (i, gw) in GATEWAYS.iter().enumerate() {
            let _ = writeln!(
                out,
                "nexthop replace id {} via {gw} dev up0 proto {proto}",
                i + 1
            );
        }
        let _ = writeln!(out, "nexthop replace id 100 group 1/2/3/4 proto {proto}");
    }
    for r in routes {
        let RouteTarget::Unicast(gws) = &r.target else {
            continue;
        };
        let _ = write!(
            out,
            "route replace {} table {TABLE} proto {proto}",
            r.prefix
        );
        match (form, gws.as_slice()) {
            (IpForm::Via, [gw]) => {
                let _ = write!(out, " via {gw}");
            }
            (IpForm::Via, gws) => {
                for gw in gws {
                    let _ = write!(out, " nexthop via {gw}");
                }
            }
            (IpForm::Nhid, [gw]) => {
                let id = GATEWAYS
                    .iter()
                    .position(|g| IpAddr::V4(*g) == *gw)
                    .map_or(0, |i| i + 1);
                let _ = write!(out, " nhid {id}");
            }
            (IpForm::Nhid, _) => out.push_str(" nhid 100"),
        }
        out.push('\n');
    }
    out
}

/// A named network namespace, deleted when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Result<Netns> {
        let name = format!("steer-bench-fib-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        Ok(Netns { name })
    }

    /// lo, and a veth uplink 10.99.0.1/16 whose subnet holds the gateways.
    fn setup(&self) -> Result<()> {
        let n = self.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", n, "link", "add", "up0", "type", "veth", "peer", "name", "up0p",
        ])?;
        ip(&["-n", n, "link", "set", "up0", "up"])?;
        ip(&["-n", n, "link", "set", "up0p", "up"])?;
        ip(&["-n", n, "addr", "add", "10.99.0.1/16", "dev", "up0"])?;
        Ok(())
    }

    /// Runs `f` on a thread that has entered the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
                // SAFETY: setns on a valid namespace fd; affects this thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns {path}: {}", std::io::Error::last_os_error());
                }
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("benchmark thread panicked"))?
        })
    }

    /// Times `ip -n NS -batch FILE` as a process.
    fn ip_batch(&self, file: &std::path::Path) -> Result<Duration> {
        let start = Instant::now();
        let out = Command::new("ip")
            .args(["-n", &self.name, "-batch"])
            .arg(file)
            .output()
            .context("run ip -batch")?;
        let took = start.elapsed();
        ensure!(
            out.status.success(),
            "ip -batch {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(took)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `ip ARGS` in the calling thread's namespace.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}
