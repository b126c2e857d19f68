//! `cargo xtask bench bgp`: P appliances × N prefixes into a route server,
//! timed until an iBGP receiver on the host leg holds every path, for
//! `steer server` (release build), BIRD 2, GoBGP and FRR in the same run on
//! the same input. Every run gets fresh namespaces and a fresh daemon; runs
//! are interleaved (Steer, BIRD, GoBGP, FRR, Steer, …) so machine noise
//! spreads over all of them. The input comes in shapes
//! (`steer_tests::shape`): `packed` (one attribute set per appliance),
//! `table` (an attribute set per UPDATE of 1–10 prefixes) and `churn` (the
//! table loaded untimed, then every prefix re-announced with new attributes
//! and half withdrawn). The UPDATEs are encoded before the clock starts; t0
//! is the first write of the timed phase, with every session (appliances
//! and receiver) Established as the route server itself reports; the
//! receiver notes its first route after t0 and t1, when it first holds
//! exactly the phase's final state. The generator and receiver run in this
//! process, so it re-runs itself as a release build first.

pub(crate) mod cargo;
pub(crate) mod configs;
pub(crate) mod daemon;
pub mod inproc;
mod input;
pub(crate) mod interrupt;
mod paths;
mod recv;
pub(crate) mod report;
pub(crate) mod sender;
pub(crate) mod session;
pub(crate) mod topology;
pub(crate) mod wire;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};

use daemon::{Impl, RouteServer};
use input::{Input, Target};
use recv::Receiver;
use report::{Results, Sample};
use sender::Appliances;
use steer_tests::shape::Shape;
use topology::{MAX_APPLIANCES, Topology};

/// How long sessions may take to come up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the receiver is watched after convergence for stray updates.
const SETTLE: Duration = Duration::from_millis(300);
/// The seed and the stress size (prefixes per appliance).
const DEFAULT_SIZES: [usize; 2] = [1_000, 100_000];

/// An input shape on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ShapeArg {
    /// One attribute set per appliance, UPDATEs packed to 4096 octets.
    Packed,
    /// A distinct attribute set per UPDATE of 1-10 prefixes, AS paths of
    /// 1-8 ASes, communities on a third of the sets.
    Table,
    /// The table, then every prefix re-announced with changed attributes,
    /// then half of them withdrawn (timed until the final state).
    Churn,
}

impl ShapeArg {
    /// The shape it names.
    pub fn shape(self) -> Shape {
        match self {
            ShapeArg::Packed => Shape::Packed,
            ShapeArg::Table => Shape::Table,
            ShapeArg::Churn => Shape::Churn,
        }
    }
}

/// Options of `cargo xtask bench bgp`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Input shapes, comma-separated, each run at every size.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ShapeArg::Packed, ShapeArg::Table, ShapeArg::Churn])]
    pub shape: Vec<ShapeArg>,
    /// Appliances (eBGP peers) announcing routes.
    #[arg(long, default_value_t = 8)]
    pub peers: usize,
    /// Prefixes per appliance, comma-separated sizes run one after the
    /// other [default: 1000,100000, the seed and the stress].
    #[arg(long, value_delimiter = ',')]
    pub prefixes: Vec<usize>,
    /// Runs per implementation and size; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Implementations to run, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Impl>,
    /// Each appliance announces its own N prefixes (P×N prefixes, one path
    /// each) instead of the same N (N prefixes with P equal paths each).
    #[arg(long)]
    pub distinct: bool,
    /// Seconds one run may take from the first UPDATE before it fails.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// The steer binary to test [default: `cargo build --release -p steer`].
    #[arg(long)]
    pub steer_bin: Option<PathBuf>,
    /// Keep each run's lab up this many seconds after convergence, for a
    /// look at the daemon (`ip netns`, birdc, gobgp, steer show).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// Print the four route servers' configurations for --peers and exit.
    #[arg(long)]
    pub print_configs: bool,
}

/// Runs the benchmark and prints a table per size.
pub fn run(args: Args) -> Result<()> {
    let sizes = if args.prefixes.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        args.prefixes.clone()
    };
    if args.print_configs {
        return print_configs(args.peers, sizes.iter().max().copied().unwrap_or(0));
    }
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "bench bgp needs root (network namespaces, port 179)"
    );
    ensure!(
        (1..=MAX_APPLIANCES).contains(&args.peers),
        "--peers must be 1..={MAX_APPLIANCES}"
    );
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(sizes.iter().all(|&n| n > 0), "--prefixes must be positive");
    if cfg!(debug_assertions) && std::env::var_os("STEER_BENCH_BGP_DEBUG").is_none() {
        return cargo::rerun_release();
    }
    interrupt::install();
    let impls = if args.only.is_empty() {
        vec![Impl::Steer, Impl::Bird, Impl::Gobgp, Impl::Frr]
    } else {
        args.only.clone()
    };
    let steer_bin = match &args.steer_bin {
        Some(p) => p.clone(),
        None if impls.contains(&Impl::Steer) => cargo::build_steer()?,
        None => PathBuf::from("steer"),
    };
    let mut failures = Vec::new();
    for shape in args.shape.iter().map(|s| s.shape()) {
        for &n in &sizes {
            let input = Input::new(shape, args.peers, n, args.distinct);
            run_size(&args, &impls, &input, &steer_bin, &mut failures)?;
        }
    }
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|(imp, what, e)| format!("{} at {what}: {e}", imp.title()))
            .collect();
        bail!("{} failed run(s):\n{}", failures.len(), list.join("\n"));
    }
    Ok(())
}

/// Every implementation at one shape and size, runs interleaved; prints
/// each run and the table.
fn run_size(
    args: &Args,
    impls: &[Impl],
    input: &Input,
    steer_bin: &Path,
    failures: &mut Vec<(Impl, String, String)>,
) -> Result<()> {
    let what = format!(
        "{} {} x {}",
        input.shape.name(),
        input.peers,
        input.prefixes
    );
    println!("\n== {} ==", input.title());
    let mut results: Vec<Results> = impls
        .iter()
        .map(|&imp| Results {
            imp,
            samples: Vec::new(),
        })
        .collect();
    let timeout = Duration::from_secs(args.timeout);
    for round in 1..=args.runs {
        for r in results.iter_mut() {
            if failures
                .iter()
                .any(|(imp, w, _)| *imp == r.imp && *w == what)
            {
                continue;
            }
            match one_run(
                r.imp,
                input,
                steer_bin,
                timeout,
                Duration::from_secs(args.hold),
            ) {
                Ok(s) => {
                    println!(
                        "  {:<6} run {round}/{}: first {:7.1} ms, last {:9.1} ms  (writes done {:.1} ms, cpu {:.2} s, peak RSS {:.1} MB; receiver cpu {:.2} s)",
                        r.imp.title(),
                        args.runs,
                        s.first_secs * 1e3,
                        s.secs * 1e3,
                        s.written_secs * 1e3,
                        s.cpu_secs,
                        s.peak_rss as f64 / 1e6,
                        s.receiver_cpu_secs
                    );
                    r.samples.push(s);
                }
                Err(e) => {
                    report_failure(r.imp, round, args.runs, &e)?;
                    failures.push((r.imp, what.clone(), format!("{e:#}")));
                }
            }
        }
    }
    print!(
        "{}",
        report::table(&input.title(), input.target().paths, &results)
    );
    Ok(())
}

/// Prints that run `round` of `runs` of `imp` failed with `e`; an
/// interruption ends the benchmark instead.
pub(crate) fn report_failure(
    imp: Impl,
    round: usize,
    runs: usize,
    e: &anyhow::Error,
) -> Result<()> {
    interrupt::check()?;
    println!("  {:<6} run {round}/{runs}: FAILED: {e:#}", imp.title());
    Ok(())
}

/// One implementation, one run, in fresh namespaces.
fn one_run(
    imp: Impl,
    input: &Input,
    steer_bin: &Path,
    timeout: Duration,
    hold: Duration,
) -> Result<Sample> {
    let topo = Topology::build(input.peers)?;
    let mut rs = RouteServer::start(
        imp,
        &topo.rs,
        topo.lab.dir(),
        steer_bin,
        input.peers,
        input.prefixes + 1000,
        None,
    )?;
    let result = measure(&mut rs, &topo, input, timeout, hold).map_err(|e| rs.explain(e));
    rs.stop();
    result
}

/// Waits until the receiver holds `target`; returns when it first did.
fn wait_reached(
    rs: &mut RouteServer,
    receiver: &Receiver,
    apps: &Appliances,
    target: Target,
    t0: Instant,
    timeout: Duration,
) -> Result<Instant> {
    loop {
        interrupt::check()?;
        if let Some(t1) = receiver.reached() {
            return Ok(t1);
        }
        receiver.check()?;
        apps.check()?;
        rs.ensure_running()?;
        if t0.elapsed() > timeout {
            bail!(
                "timed out after {} s: the receiver held {} paths, waiting for {target:?} (appliances {} writing)",
                timeout.as_secs(),
                receiver.paths(),
                if apps.written().is_some() {
                    "done"
                } else {
                    "still"
                }
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn measure(
    rs: &mut RouteServer,
    topo: &Topology,
    input: &Input,
    timeout: Duration,
    hold: Duration,
) -> Result<Sample> {
    let receiver = Receiver::connect(&topo.host, SETUP_TIMEOUT)?;
    let mut apps = Appliances::connect(&topo.nva, input.peers, SETUP_TIMEOUT)?;
    wait_established(rs, input.peers + 1)?;
    receiver.check()?;
    apps.check()?;
    ensure!(
        receiver.paths() == 0,
        "receiver holds {} paths before any UPDATE",
        receiver.paths()
    );
    let (timed, load) = input.phases.split_last().expect("at least one phase");
    for (phase, target) in load.iter().zip(&input.targets) {
        receiver.expect(*target);
        let t0 = apps.go(phase);
        wait_reached(rs, &receiver, &apps, *target, t0, timeout)?;
        std::thread::sleep(SETTLE);
    }
    let cpu0 = rs.cpu_seconds()?;
    receiver.expect(input.target());
    let t0 = apps.go(timed);
    let t1 = wait_reached(rs, &receiver, &apps, input.target(), t0, timeout)?;
    let cpu_secs = rs.cpu_seconds()? - cpu0;
    let first = receiver.first().unwrap_or(t1);
    let written = apps.written().unwrap_or(t1);
    std::thread::sleep(SETTLE);
    apps.check()?;
    let peak_rss = rs.peak_rss()?;
    if !hold.is_zero() {
        hold_lab(rs, topo, hold);
    }
    let receiver_cpu_secs = receiver.cpu().as_secs_f64();
    let summary = receiver.finish()?;
    input.verify(&summary)?;
    drop(apps);
    Ok(Sample {
        secs: (t1 - t0).as_secs_f64(),
        first_secs: first.saturating_duration_since(t0).as_secs_f64(),
        written_secs: written.saturating_duration_since(t0).as_secs_f64(),
        cpu_secs,
        peak_rss,
        receiver_cpu_secs,
    })
}

fn hold_lab(rs: &RouteServer, topo: &Topology, hold: Duration) {
    println!(
        "  holding the lab for {} s: pid {} in netns {}, files in {}",
        hold.as_secs(),
        rs.pid(),
        topo.rs.name(),
        topo.lab.dir().display()
    );
    let until = Instant::now() + hold;
    while Instant::now() < until && interrupt::check().is_ok() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the route server itself reports `sessions` Established.
pub(crate) fn wait_established(rs: &mut RouteServer, sessions: usize) -> Result<()> {
    let start = Instant::now();
    loop {
        interrupt::check()?;
        rs.ensure_running()?;
        let up = rs.established();
        if matches!(up, Ok(n) if n >= sessions) {
            return Ok(());
        }
        if start.elapsed() > SETUP_TIMEOUT {
            bail!(
                "the route server does not show {sessions} sessions Established after {SETUP_TIMEOUT:?}: {up:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn print_configs(peers: usize, prefixes: usize) -> Result<()> {
    ensure!(
        (1..=MAX_APPLIANCES).contains(&peers),
        "--peers must be 1..={MAX_APPLIANCES}"
    );
    println!(
        "# steer.toml\n{}",
        configs::steer(peers, prefixes + 1000, topology::LAN)
    );
    println!(
        "# bird.conf\n{}",
        configs::bird(peers, "/tmp/bird.log", None)
    );
    println!("# gobgpd.toml\n{}", configs::gobgp(peers));
    println!(
        "# bgpd.conf (FRR)\n{}",
        configs::frr(peers, "/tmp/bgpd.log")
    );
    Ok(())
}
