//! Developer tasks: `cargo xtask build-ebpf | test | demo | bench <bgp|bgp-core|fanout|fib|forward|failover> | fuzz`.

mod alloc_count;
mod bench_bgp;
mod bench_failover;
mod bench_fanout;
mod bench_fib;
mod bench_forward;
mod bench_xdp;
mod demo;
mod ebpf;
mod fuzz;
mod udpgen;

use anyhow::Result;

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Steer developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the XDP program (nightly, bpfel-unknown-none, bpf-linker).
    BuildEbpf,
    /// Run the test suite exactly as CI does (scripts/test.sh).
    Test,
    /// The seed scenario in network namespaces, walked through (the lab of
    /// the tests; scripts/demo.sh installs and builds, then runs this).
    Demo(demo::Args),
    /// Benchmarks that run the competitor in the same run and print ratios.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// Fuzz every target (or the ones named): long random runs, or with
    /// --ci the deterministic replay-and-search step CI runs.
    Fuzz(fuzz::Args),
}

#[derive(Subcommand)]
enum Bench {
    /// Route server: P appliances x N prefixes, Steer vs BIRD, GoBGP, FRR.
    Bgp(bench_bgp::Args),
    /// The route server's core in this process on `bench bgp`'s input:
    /// time, allocations and memory per stage, for profiling.
    BgpCore(bench_bgp::inproc::Args),
    /// Route server fan-out: thousands of simulated hosts (restart storm,
    /// a 1,000-route change to every host, memory and CPU per host), Steer
    /// vs BIRD with dynamic neighbours.
    Fanout(bench_fanout::Args),
    /// Host FIB: kernel programming vs `ip -batch`, eBPF map rate and cost.
    Fib,
    /// Silent deaths of an appliance: the VM's outage with BFD at 300 ms x
    /// 3 and 50 ms x 3 beside BGP's hold time alone.
    Failover(bench_failover::Args),
    /// Forwarding VM traffic: kernel vs xdp vs tc vs auto, veth and tap.
    Forward(bench_forward::Args),
}

fn script(name: &str, args: &[String]) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = std::process::Command::new("bash")
        .arg(root.join("scripts").join(name))
        .args(args)
        .status()?;
    anyhow::ensure!(status.success(), "scripts/{name} failed: {status}");
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::BuildEbpf => ebpf::build(),
        Cmd::Test => script("test.sh", &[]),
        Cmd::Demo(args) => demo::run(args),
        Cmd::Bench {
            which: Bench::Bgp(args),
        } => bench_bgp::run(args),
        Cmd::Bench {
            which: Bench::BgpCore(args),
        } => bench_bgp::inproc::run(args),
        Cmd::Bench {
            which: Bench::Fanout(args),
        } => bench_fanout::run(args),
        Cmd::Bench { which: Bench::Fib } => bench_fib::run().and_then(|()| bench_xdp::run()),
        Cmd::Bench {
            which: Bench::Failover(args),
        } => bench_failover::run(args),
        Cmd::Fuzz(args) => fuzz::run_all(args),
        Cmd::Bench {
            which: Bench::Forward(args),
        } => bench_forward::run(args),
    }
}
