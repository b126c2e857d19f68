//! `cargo xtask bench fanout`: one route server, 2 appliances × N
//! prefixes, and thousands of simulated hosts (`steer_tests::hostsim`:
//! one thread, one epoll, each host an iBGP ADD-PATH session from its own
//! address that behaves as `steer agent` does), for `steer server`
//! (release build) and BIRD 2 with dynamic neighbours, in the same run on
//! the same input. Every run gets fresh namespaces and a fresh daemon:
//!
//! 1. the appliances connect and announce the table; one extra host (the
//!    witness, which also keeps a full table read by the independent
//!    parser) connects and must hold the table, so the route server is
//!    known to be loaded;
//! 2. storm: the N hosts connect at once; timed until every one is
//!    Established and until every one holds the whole table; the route
//!    server's CPU time over it (/proc/PID/stat) per joining host, its
//!    RSS before and after (VmRSS) per host session, and the listen-queue
//!    drops in its namespace (/proc/net/netstat);
//! 3. changes: the first appliance re-announces its N prefixes with
//!    another MED, timed per host from the first write until that host
//!    holds every changed path, and again back;
//! 4. reconnect storm: the N hosts drop their sessions and connect again
//!    at once (agents restarting together).
//!
//! Every phase is bounded (`--timeout`); an implementation that does not
//! finish is reported with how far it got and is not run at larger host
//! counts. Times and counts are the simulator's own; only CPU and memory
//! come from the route server's /proc entries.

mod input;
mod report;

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use steer_tests::hostsim::{self, HostSim, SimConfig, Target};

use steer_tests::fanout::{self, FanoutLab, ListenDrops, RS_ADDR};

use crate::bench_bgp::daemon::{Impl, RouteServer};
use crate::bench_bgp::sender::Appliances;
use crate::bench_bgp::topology::{RS_ASN, appliance};
use crate::bench_bgp::{ShapeArg, cargo, interrupt, report_failure, wait_established};
use input::Input;
use report::{Results, Sample, Storm};

/// How long appliance sessions may take to come up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Quiet time after a phase before the next measurement.
const SETTLE: Duration = Duration::from_millis(500);
/// Appliances.
const APPLIANCES: usize = 2;
/// Descriptors besides one per host, in this process (the simulator) and
/// in the route server.
const NOFILE_SPARE: u64 = 256;

/// The phases `--perf` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PerfPhase {
    /// Storm, changes and reconnect storm.
    All,
    /// The storm only.
    Storm,
    /// The changes only.
    Changes,
}

/// Options of `cargo xtask bench fanout`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Host counts, comma-separated, each a row of the table.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 50_000])]
    pub hosts: Vec<usize>,
    /// Runs per implementation and host count (fresh lab each).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Implementations, comma-separated [default: steer,bird].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Impl>,
    /// Prefixes per appliance.
    #[arg(long, default_value_t = 1_000)]
    pub prefixes: usize,
    /// Input shape of the appliances' table.
    #[arg(long, value_enum, default_value = "table")]
    pub shape: ShapeArg,
    /// Timed changes per run (alternately marking and unmarking).
    #[arg(long, default_value_t = 4)]
    pub changes: usize,
    /// Seconds any one phase may take before it is given up.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Skip the reconnect storm.
    #[arg(long)]
    pub no_reconnect: bool,
    /// The steer binary to test [default: `cargo build --release -p steer`].
    #[arg(long)]
    pub steer_bin: Option<PathBuf>,
    /// Record each Steer run with `perf record -g` (the phases
    /// `--perf-phase` names) into this directory.
    /// into this directory.
    #[arg(long)]
    pub perf: Option<PathBuf>,
    /// What `--perf` records.
    #[arg(long, value_enum, default_value = "all")]
    pub perf_phase: PerfPhase,
}

/// Runs the benchmark and prints a table.
pub fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "bench fanout needs root (network namespaces, port 179)"
    );
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(
        args.hosts
            .iter()
            .all(|&n| (1..fanout::MAX_HOSTS).contains(&n)),
        "--hosts must be 1..{}",
        fanout::MAX_HOSTS
    );
    ensure!(args.prefixes >= 1, "--prefixes must be positive");
    if cfg!(debug_assertions) && std::env::var_os("STEER_BENCH_BGP_DEBUG").is_none() {
        return cargo::rerun_release();
    }
    interrupt::install();
    let most = args.hosts.iter().max().copied().unwrap_or(0) as u64;
    let nofile = hostsim::raise_nofile(most + NOFILE_SPARE)?;
    let fits = nofile.saturating_sub(NOFILE_SPARE) as usize;
    let impls = if args.only.is_empty() {
        vec![Impl::Steer, Impl::Bird]
    } else {
        args.only.clone()
    };
    ensure!(
        impls.iter().all(|i| matches!(i, Impl::Steer | Impl::Bird)),
        "bench fanout runs Steer and BIRD only"
    );
    let steer_bin = match &args.steer_bin {
        Some(p) => p.clone(),
        None if impls.contains(&Impl::Steer) => cargo::build_steer()?,
        None => PathBuf::from("steer"),
    };
    if let Some(dir) = &args.perf {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let input = Input::new(args.shape.shape(), APPLIANCES, args.prefixes);
    println!("{}", input.title());
    println!(
        "RLIMIT_NOFILE {nofile} (inherited by the route servers: room for {fits} hosts); load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut all: Vec<Results> = Vec::new();
    let mut gave_up: Vec<Impl> = Vec::new();
    for &n in &args.hosts {
        println!("\n== {n} hosts ==");
        if n > fits {
            println!(
                "  skipped: every session takes a descriptor in the route server and in the simulator, and RLIMIT_NOFILE is {nofile} here; raising the hard limit needs CAP_SYS_RESOURCE (or run under LimitNOFILE={})",
                n as u64 + NOFILE_SPARE
            );
            continue;
        }
        let mut results: Vec<Results> = impls
            .iter()
            .map(|&imp| Results {
                imp,
                hosts: n,
                samples: Vec::new(),
            })
            .collect();
        for round in 1..=args.runs {
            for r in results.iter_mut() {
                if gave_up.contains(&r.imp) {
                    continue;
                }
                let s = match one_run(r.imp, n, round, &input, &args, &steer_bin) {
                    Ok(s) => s,
                    Err(e) => {
                        report_failure(r.imp, round, args.runs, &e)?;
                        gave_up.push(r.imp);
                        continue;
                    }
                };
                println!(
                    "  {:<6} run {round}/{}: {}",
                    r.imp.title(),
                    args.runs,
                    s.line()
                );
                if s.storm.unfinished.is_some() || s.change_unfinished.is_some() {
                    println!(
                        "  {}: not run again at this or a larger host count",
                        r.imp.title()
                    );
                    gave_up.push(r.imp);
                }
                r.samples.push(s);
            }
        }
        for imp in &impls {
            if gave_up.contains(imp)
                && results
                    .iter()
                    .all(|r| r.imp != *imp || r.samples.is_empty())
            {
                println!(
                    "  {}: skipped (did not finish at a smaller host count)",
                    imp.title()
                );
            }
        }
        all.extend(results.into_iter().filter(|r| !r.samples.is_empty()));
        print!("\n{}", report::table(&all));
    }
    Ok(())
}

/// One implementation, one run, in fresh namespaces.
fn one_run(
    imp: Impl,
    n: usize,
    round: usize,
    input: &Input,
    args: &Args,
    steer_bin: &Path,
) -> Result<Sample> {
    let addrs: Vec<_> = (0..APPLIANCES).map(|i| appliance(i).0).collect();
    let lab = FanoutLab::build(&addrs, n + 1)?;
    let mut rs = RouteServer::start(
        imp,
        &lab.rs,
        lab.lab.dir(),
        steer_bin,
        APPLIANCES,
        input.prefixes + 1000,
        Some(fanout::HOSTS_RANGE),
    )?;
    let perf = match (&args.perf, imp) {
        (Some(dir), Impl::Steer) => Some(dir.join(format!("steer-{n}-run{round}.data"))),
        _ => None,
    };
    let result = measure(&mut rs, &lab, n, input, args, perf.as_deref()).map_err(|e| rs.explain(e));
    rs.stop();
    result
}

/// `perf record -g` on the route server until dropped.
struct Perf(Child);

impl Perf {
    fn start(pid: u32, out: &Path) -> Result<Perf> {
        let child = Command::new("perf")
            .args([
                "record",
                "-g",
                "-F",
                "999",
                "-q",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(out)
            .spawn()
            .context("starting perf record")?;
        println!("  perf record of pid {pid} into {}", out.display());
        Ok(Perf(child))
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        // SAFETY: signals the perf child we started and still own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

/// Waits until `want` hosts hold the target; `Err` is what was missing
/// when `timeout` passed (with the route server and simulator checked on
/// every turn). Returns the route server's CPU seconds at that moment.
fn wait_reached(
    rs: &mut RouteServer,
    sim: &mut HostSim,
    apps: &Appliances,
    want: usize,
    since: Instant,
    timeout: Duration,
) -> Result<std::result::Result<f64, String>> {
    loop {
        interrupt::check()?;
        let p = sim.progress();
        if p.reached >= want {
            return Ok(Ok(rs.cpu_seconds()?));
        }
        sim.check()?;
        apps.check()?;
        rs.ensure_running()?;
        if since.elapsed() > timeout {
            return Ok(Err(format!(
                "after {} s {} of {} hosts Established, {} held the target ({} sessions lost, {} failed setups)",
                timeout.as_secs(),
                p.established,
                sim.hosts(),
                p.reached,
                p.downs,
                p.setup_failures
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn secs(t: Option<Instant>, t0: Instant) -> Option<f64> {
    t.map(|t| t.saturating_duration_since(t0).as_secs_f64())
}

/// All N hosts (indexes 0..n) connect at once; timed until every one is
/// Established and holds `target`.
fn storm(
    rs: &mut RouteServer,
    lab: &FanoutLab,
    sim: &mut HostSim,
    apps: &Appliances,
    n: usize,
    target: Target,
    timeout: Duration,
) -> Result<Storm> {
    let listen0 = ListenDrops::read(&lab.rs)?;
    let (cpu0, sim0) = (rs.cpu_seconds()?, sim.progress().cpu);
    let t0 = sim.expect(target)?;
    sim.connect(0..n)?;
    let done = wait_reached(rs, sim, apps, n + 1, t0, timeout)?;
    let listen = ListenDrops::read(&lab.rs)?.since(listen0);
    let sim_cpu = (sim.progress().cpu - sim0).as_secs_f64();
    let cpu = match done {
        Ok(cpu) => cpu - cpu0,
        Err(why) => {
            return Ok(Storm {
                hosts: n,
                unfinished: Some(why),
                listen,
                sim_cpu,
                ..Storm::default()
            });
        }
    };
    let hosts = sim.report()?;
    let joined = &hosts[..n];
    if let Some(h) = joined.iter().find(|h| h.reached.is_none()) {
        bail!(
            "the simulator counted every host done, but {} is not",
            h.addr
        );
    }
    let mut dumped: Vec<f64> = joined.iter().filter_map(|h| secs(h.reached, t0)).collect();
    dumped.sort_by(f64::total_cmp);
    Ok(Storm {
        hosts: n,
        established: joined
            .iter()
            .filter_map(|h| secs(h.established, t0))
            .reduce(f64::max),
        dumped: dumped.last().copied(),
        dumped_median: Some(report::percentile(&dumped, 0.5)),
        unfinished: None,
        listen,
        cpu,
        sim_cpu,
    })
}

fn measure(
    rs: &mut RouteServer,
    lab: &FanoutLab,
    n: usize,
    input: &Input,
    args: &Args,
    perf: Option<&Path>,
) -> Result<Sample> {
    let timeout = Duration::from_secs(args.timeout);
    let mut apps = Appliances::connect(&lab.nva, APPLIANCES, SETUP_TIMEOUT)?;
    wait_established(rs, APPLIANCES)?;
    apps.go(&input.load);
    let loaded = Instant::now();
    while apps.written().is_none() {
        apps.check()?;
        ensure!(
            loaded.elapsed() < timeout,
            "the appliances could not write the table"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut sim = HostSim::start(
        &lab.sim,
        SimConfig {
            server: SocketAddrV4::new(RS_ADDR, 179),
            asn: RS_ASN,
            hosts: lab.hosts.clone(),
            marker: Input::marker(),
            witness: Some(n),
        },
    )?;
    let full = input.target(false);
    let t0 = sim.expect(full)?;
    sim.connect(n..n + 1)?;
    if let Err(why) = wait_reached(rs, &mut sim, &apps, 1, t0, timeout)? {
        bail!("the witness host did not get the table: {why}");
    }
    input.verify(&sim.witness()?, false)?;
    std::thread::sleep(SETTLE);
    let rss_before = rs.rss()?;
    let pid = rs.pid();
    let record = |phase: PerfPhase| -> Result<Option<Perf>> {
        match perf {
            Some(out) if args.perf_phase == phase => Perf::start(pid, out).map(Some),
            _ => Ok(None),
        }
    };
    let _whole = record(PerfPhase::All)?;
    let recording = record(PerfPhase::Storm)?;
    let mut sample = Sample {
        storm: storm(rs, lab, &mut sim, &apps, n, full, timeout)?,
        rss_before,
        ..Sample::default()
    };
    drop(recording);
    if sample.storm.unfinished.is_some() {
        return Ok(sample);
    }
    std::thread::sleep(SETTLE);
    sample.rss_after = rs.rss()?;
    input.verify(&sim.witness()?, false)?;
    let (sim0, cpu0) = (sim.progress().cpu, rs.cpu_seconds()?);
    let mut marked = false;
    let recording = record(PerfPhase::Changes)?;
    for c in 0..args.changes {
        marked = Input::marks(c);
        sim.expect(input.target(marked))?;
        let t0 = apps.go(input.change(c));
        match wait_reached(rs, &mut sim, &apps, n + 1, t0, timeout)? {
            Ok(cpu) => sample.cpu_changes = cpu - cpu0,
            Err(why) => {
                sample.change_unfinished = Some(why);
                return Ok(sample);
            }
        }
        let hosts = sim.report()?;
        sample.changes_ms.extend(
            hosts
                .iter()
                .filter_map(|h| secs(h.reached, t0))
                .map(|s| s * 1e3),
        );
        sample.changes += 1;
        input.verify(&sim.witness()?, marked)?;
        std::thread::sleep(SETTLE);
    }
    drop(recording);
    sample.sim_cpu_changes = (sim.progress().cpu - sim0).as_secs_f64();
    if !args.no_reconnect {
        sim.disconnect(0..n)?;
        std::thread::sleep(SETTLE);
        sample.reconnect = Some(storm(
            rs,
            lab,
            &mut sim,
            &apps,
            n,
            input.target(marked),
            timeout,
        )?);
    }
    let bad: Vec<String> = sim
        .report()?
        .iter()
        .filter(|h| h.downs > 0)
        .take(3)
        .map(|h| format!("{}: {}", h.addr, h.last_error.as_deref().unwrap_or("?")))
        .collect();
    sample.downs = sim.progress().downs;
    if !bad.is_empty() {
        println!("  sessions lost, e.g. {}", bad.join("; "));
    }
    Ok(sample)
}
