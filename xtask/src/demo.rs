//! `cargo xtask demo`: the seed scenario in network namespaces, built by the
//! tests' own lab (`steer_tests::Seed`, the scenario `tests/agent_seed.rs`
//! runs), with two route servers as deployed, then a walkthrough of what
//! each daemon, the kernel and the eBPF maps show, and a live proof that VM
//! traffic reaches the right appliance on the fast path.
//!
//! ```text
//! cargo xtask demo [--keep]   build the lab, walk through it, tear it down
//!                             (--keep: leave it up and print how to poke it)
//! cargo xtask demo show       walk through a kept lab again
//! cargo xtask demo down       tear down a kept (or crashed) lab
//! ```
//!
//! Namespaces are `sd-*`, the daemons' files live in `/tmp/steer-test-sd-*`,
//! the agents' pins in `/sys/fs/bpf/steer-test-sd-*`, and `/run/steer-demo`
//! holds the kept lab's description for `show` and `down`. Nothing is added
//! to the root namespace.

mod walk;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use steer_tests::{Lab, Seed, SeedOptions, wait_for};

/// Name prefix of the demo's namespaces.
const PREFIX: &str = "sd";
/// Where a kept lab is described.
const STATE: &str = "/run/steer-demo";

/// What to do.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// Build the lab, walk through it, tear it down (or keep it).
    #[default]
    Run,
    /// Walk through a kept lab again.
    Show,
    /// Tear down a kept or crashed lab.
    Down,
}

/// Options of `cargo xtask demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// run (default), show or down.
    #[arg(value_enum, default_value_t = Action::Run)]
    pub action: Action,
    /// Leave the lab up after the walkthrough.
    #[arg(long)]
    pub keep: bool,
}

/// A daemon the walkthrough talks to: its namespace and control socket.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Node {
    /// The namespace, e.g. `sd-rs1`.
    pub ns: String,
    /// Its control socket (steer), `birdc` socket, or vty dir (FRR).
    pub socket: PathBuf,
}

/// A host: agent, VM and pin dir.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Host {
    /// The host's agent.
    pub agent: Node,
    /// The VM's namespace.
    pub vm: String,
    /// The agent's bpffs pin dir.
    pub pins: PathBuf,
}

/// Everything the walkthrough needs, written to `/run/steer-demo/lab.json`
/// for a kept lab.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct View {
    /// The steer binary.
    pub steer: PathBuf,
    /// The route servers.
    pub route_servers: Vec<Node>,
    /// BIRD (socket: its `birdc -s` socket).
    pub sdwan: Node,
    /// FRR (socket: its `vtysh --vty_socket` dir).
    pub firewall: Node,
    /// The hosts.
    pub hosts: Vec<Host>,
}

impl View {
    fn of(seed: &Seed, steer: &Path) -> View {
        View {
            steer: steer.to_path_buf(),
            route_servers: seed
                .route_servers
                .iter()
                .map(|(ns, rs)| Node {
                    ns: ns.name().to_string(),
                    socket: rs.socket().to_path_buf(),
                })
                .collect(),
            sdwan: Node {
                ns: seed.sdwan.ns().name().to_string(),
                socket: seed.sdwan.dir().join("bird.ctl"),
            },
            firewall: Node {
                ns: seed.firewall.ns().name().to_string(),
                socket: seed.firewall.dir().to_path_buf(),
            },
            hosts: seed
                .hosts
                .iter()
                .map(|h| Host {
                    agent: Node {
                        ns: h.ns.name().to_string(),
                        socket: h.agent.socket().to_path_buf(),
                    },
                    vm: h.vm.name().to_string(),
                    pins: h.pins.clone(),
                })
                .collect(),
        }
    }

    fn state_file() -> PathBuf {
        Path::new(STATE).join("lab.json")
    }

    fn load() -> Result<View> {
        let path = View::state_file();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no kept demo lab ({} is missing); start one with `bash scripts/demo.sh --keep`",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }

    fn save(&self) -> Result<()> {
        std::fs::create_dir_all(STATE).with_context(|| format!("creating {STATE}"))?;
        std::fs::write(View::state_file(), serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", View::state_file().display()))
    }
}

/// Runs `cargo xtask demo`.
pub fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the demo needs root (network namespaces, BGP on port 179, eBPF)");
    }
    match args.action {
        Action::Down => {
            down();
            Ok(())
        }
        Action::Show => {
            let view = View::load()?;
            for ns in view.namespaces() {
                anyhow::ensure!(
                    Path::new("/run/netns").join(&ns).exists(),
                    "namespace {ns} of the kept lab is gone; `cargo xtask demo down`, then start again"
                );
            }
            walk::walk(&view)
        }
        Action::Run => up(args.keep),
    }
}

impl View {
    fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.route_servers.iter().map(|n| n.ns.clone()).collect();
        v.push(self.sdwan.ns.clone());
        v.push(self.firewall.ns.clone());
        for h in &self.hosts {
            v.push(h.agent.ns.clone());
            v.push(h.vm.clone());
        }
        v
    }
}

fn steer_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("STEER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    walk::say("cargo build --release -p steer");
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--release", "-p", "steer"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(status.success(), "cargo build --release -p steer failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("steer");
    // SAFETY: set before any thread of this process reads the environment.
    unsafe { std::env::set_var("STEER_BIN", &bin) };
    Ok(bin)
}

fn up(keep: bool) -> Result<()> {
    let t0 = Instant::now();
    let steer = steer_binary()?.canonicalize()?;
    if Path::new(STATE).exists() || !lab_namespaces().is_empty() {
        walk::say("removing what a previous demo run left behind");
        down();
    }
    walk::section("Starting the lab");
    walk::lab_table();
    let seed = Seed::start(
        Lab::named(PREFIX)?,
        &SeedOptions {
            route_servers: 2,
            hosts: 2,
            ..SeedOptions::default()
        },
    )?;
    walk::ok(&format!(
        "all 8 sessions (2 appliances + 2 hosts, each to both route servers) Established after {:.0} s",
        t0.elapsed().as_secs_f64()
    ));
    wait_routes(&seed)?;
    let view = View::of(&seed, &steer);
    walk::walk(&view)?;
    if keep {
        view.save()?;
        // The daemons, namespaces, temp dirs and pins outlive this process
        // on purpose; `demo down` removes them by name.
        std::mem::forget(seed);
        walk::section("5. The lab stays up (--keep)");
        walk::poke_help(&view);
    } else {
        walk::section("5. Teardown");
        drop(seed);
        let left = lab_namespaces();
        anyhow::ensure!(left.is_empty(), "leftovers after teardown: {left:?}");
        walk::ok("daemons stopped, namespaces sd-* deleted, pins and temp dirs removed");
    }
    walk::say(&format!(
        "\ndemo done in {:.0} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Waits until the hosts hold the appliances' routes and the appliances
/// hold the hosts' VM prefixes.
fn wait_routes(seed: &Seed) -> Result<()> {
    walk::say("waiting for the routes ...");
    for (i, h) in seed.hosts.iter().enumerate() {
        let n = i + 1;
        wait_for(
            &format!("host{n} table 200: 10.250.0.0/16 and default"),
            Duration::from_secs(30),
            || {
                let t = h.ns.ip("route show table 200")?;
                Ok((t.contains("10.250.0.0/16") && t.contains("default")).then_some(()))
            },
        )?;
        for appliance in [seed.sdwan.ns(), seed.firewall.ns()] {
            wait_for(
                &format!("{}: 10.1.{n}.0/24 via host{n}", appliance.name()),
                Duration::from_secs(30),
                || {
                    let t = appliance.ip("route show")?;
                    Ok(t.lines()
                        .any(|l| l.starts_with(&format!("10.1.{n}.0/24")))
                        .then_some(()))
                },
            )?;
        }
    }
    walk::ok("routes in place");
    Ok(())
}

fn lab_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{PREFIX}-")))
        .collect()
}

/// Stops the kept lab's daemons (SIGTERM, then what is left is killed) and
/// removes its namespaces, pins, temp dirs and state.
fn down() {
    let namespaces = lab_namespaces();
    let pids: Vec<libc::pid_t> = namespaces
        .iter()
        .flat_map(|ns| {
            std::process::Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    for &pid in &pids {
        // SAFETY: kill(2) of a process inside the demo's own namespaces.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let removed = steer_tests::lab::remove_named(PREFIX);
    let _ = std::fs::remove_dir_all(STATE);
    if removed.is_empty() {
        walk::say("no demo lab to tear down");
    } else {
        walk::ok(&format!(
            "demo lab torn down: {} daemons stopped, {} namespaces deleted",
            pids.len(),
            removed.len()
        ));
    }
}
