//! The route server under test as a process: started in the route-server
//! namespace with its configuration from [`super::configs`], asked how many
//! sessions are Established through its own CLI, and measured from /proc
//! (peak RSS = `VmHWM`, CPU = utime + stime). Every one of the four is a
//! single process (FRR's bgpd runs without zebra). Stopped (SIGTERM, then
//! SIGKILL) when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use steer_tests::{Netns, Process};

use super::configs;

/// The route server implementations the benchmark compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Impl {
    /// `steer server` (release build).
    Steer,
    /// BIRD 2.
    Bird,
    /// GoBGP (gobgpd).
    Gobgp,
    /// FRR bgpd.
    Frr,
}

impl Impl {
    /// Display name.
    pub fn title(self) -> &'static str {
        match self {
            Impl::Steer => "Steer",
            Impl::Bird => "BIRD",
            Impl::Gobgp => "GoBGP",
            Impl::Frr => "FRR",
        }
    }
}

/// A running route server.
pub struct RouteServer {
    imp: Impl,
    ns: Netns,
    dir: PathBuf,
    steer_bin: PathBuf,
    process: Process,
}

const GOBGP_API: &str = "127.0.0.1:50051";
const FRR_BGPD: &str = "/usr/lib/frr/bgpd";

impl RouteServer {
    /// Writes the configuration for `appliances` into `dir` and starts the
    /// daemon in `ns`. The host leg is `bench bgp`'s one receiver, or with
    /// `hosts_range` dynamic neighbours from that range (Steer and BIRD).
    pub fn start(
        imp: Impl,
        ns: &Netns,
        dir: &Path,
        steer_bin: &Path,
        appliances: usize,
        max_prefixes: usize,
        hosts_range: Option<&str>,
    ) -> Result<RouteServer> {
        let log = dir.join(format!("{imp:?}.log").to_lowercase());
        if hosts_range.is_some() && matches!(imp, Impl::Gobgp | Impl::Frr) {
            bail!(
                "{}: dynamic host neighbours are only set up for Steer and BIRD",
                imp.title()
            );
        }
        let cmd = match imp {
            Impl::Steer => {
                let hosts = hosts_range.unwrap_or(super::topology::LAN);
                let conf = write(
                    dir,
                    "steer.toml",
                    &configs::steer(appliances, max_prefixes, hosts),
                )?;
                let check = Command::new(steer_bin)
                    .args(["check", "server", "--config"])
                    .arg(&conf)
                    .output()?;
                if !check.status.success() {
                    bail!(
                        "steer check rejects the config: {}",
                        String::from_utf8_lossy(&check.stderr)
                    );
                }
                let mut cmd = ns.command(steer_bin)?;
                cmd.args(["server", "--log", "info", "--config"])
                    .arg(&conf)
                    .arg("--socket")
                    .arg(dir.join("steer.sock"))
                    .env_remove("RUST_LOG");
                cmd
            }
            Impl::Bird => {
                let text = configs::bird(
                    appliances,
                    &dir.join("bird-daemon.log").display().to_string(),
                    hosts_range,
                );
                let conf = write(dir, "bird.conf", &text)?;
                let check = Command::new("bird")
                    .arg("-p")
                    .arg("-c")
                    .arg(&conf)
                    .output()?;
                if !check.status.success() {
                    bail!(
                        "bird -p rejects the config: {}",
                        String::from_utf8_lossy(&check.stderr)
                    );
                }
                let mut cmd = ns.command("bird")?;
                cmd.arg("-f")
                    .arg("-c")
                    .arg(&conf)
                    .arg("-s")
                    .arg(dir.join("bird.ctl"));
                cmd.arg("-P").arg(dir.join("bird.pid"));
                cmd
            }
            Impl::Gobgp => {
                let conf = write(dir, "gobgpd.toml", &configs::gobgp(appliances))?;
                let mut cmd = ns.command("gobgpd")?;
                cmd.arg("-f")
                    .arg(&conf)
                    .args(["-t", "toml", "--api-hosts", GOBGP_API]);
                cmd.args(["--log-level=info", "--log-plain", "--pprof-disable"]);
                cmd
            }
            Impl::Frr => {
                steer_tests::route::require_tool(FRR_BGPD, "frr")?;
                let text = configs::frr(appliances, &dir.join("bgpd.log").display().to_string());
                let conf = write(dir, "bgpd.conf", &text)?;
                let mut cmd = ns.command(FRR_BGPD)?;
                cmd.args(["-u", "root", "-g", "frrvty", "-Z", "-n"])
                    .arg("--vty_socket")
                    .arg(dir)
                    .arg("-i")
                    .arg(dir.join("bgpd.pid"))
                    .arg("-f")
                    .arg(&conf);
                cmd
            }
        };
        let process = ns.spawn(imp.title(), cmd, &log)?;
        Ok(RouteServer {
            imp,
            ns: ns.clone(),
            dir: dir.to_path_buf(),
            steer_bin: steer_bin.to_path_buf(),
            process,
        })
    }

    /// The number of Established sessions the daemon itself reports.
    pub fn established(&self) -> Result<usize> {
        let (text, word) = match self.imp {
            Impl::Steer => {
                let sock = self.dir.join("steer.sock").display().to_string();
                let bin = self.steer_bin.display().to_string();
                (
                    self.ns
                        .exec(&bin, &["show", "peers", "--json", "--socket", &sock])?,
                    "\"Established\"",
                )
            }
            Impl::Bird => {
                let sock = self.dir.join("bird.ctl").display().to_string();
                (
                    self.ns.exec("birdc", &["-s", &sock, "show", "protocols"])?,
                    "Established",
                )
            }
            Impl::Gobgp => {
                let (host, port) = GOBGP_API.split_once(':').expect("host:port");
                (
                    self.ns
                        .exec("gobgp", &["-u", host, "-p", port, "neighbor"])?,
                    "Establ",
                )
            }
            Impl::Frr => {
                let out = std::process::Command::new("vtysh")
                    .arg("--vty_socket")
                    .arg(&self.dir)
                    .args(["-c", "show bgp neighbors json"])
                    .output()?;
                (
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    "\"bgpState\":\"Established\"",
                )
            }
        };
        Ok(text.matches(word).count())
    }

    /// Fails (with the log tail) if the daemon has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.process
            .ensure_running()
            .map_err(|e| anyhow!("{e:#}; last log lines:\n{}", self.log_tail()))
    }

    /// `e`, the failure of a run, with the daemon's last log lines.
    pub fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        let title = self.imp.title();
        anyhow!(
            "{title}: {e:#}\nlast log lines of {title}:\n{}",
            self.log_tail()
        )
    }

    /// The last lines of its output (and BIRD's own log file).
    pub fn log_tail(&self) -> String {
        let mut tail = self.process.log_tail();
        let own_log = match self.imp {
            Impl::Bird => Some("bird-daemon.log"),
            Impl::Frr => Some("bgpd.log"),
            Impl::Steer | Impl::Gobgp => None,
        };
        if let Some(name) = own_log {
            tail.push_str(&steer_tests::wait::tail(&self.dir.join(name), 10));
        }
        tail
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Peak resident set size (`VmHWM`) in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        self.status_bytes("VmHWM:")
    }

    /// Resident set size now (`VmRSS`) in bytes.
    pub fn rss(&self) -> Result<u64> {
        self.status_bytes("VmRSS:")
    }

    fn status_bytes(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {field} in {path}"))?;
        Ok(kib * 1024)
    }

    /// CPU seconds used so far (user + system, all threads).
    pub fn cpu_seconds(&self) -> Result<f64> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| -> Result<f64> {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .with_context(|| format!("bad {path}"))
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok((ticks(11)? + ticks(12)?) / hz)
    }

    /// SIGTERM (then SIGKILL) and reap.
    pub fn stop(&mut self) {
        let pid = self.pid();
        self.process.stop();
        if self.imp == Impl::Frr {
            let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/bgpd.{pid}"));
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
