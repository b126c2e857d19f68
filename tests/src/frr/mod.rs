//! FRR 8.4 as a lab peer: zebra + bgpd per namespace (and bfdd when a
//! neighbour runs BFD, with its own `--bfdctl DIR/bfdd.sock`), each instance
//! with its own paths (`--vty_socket DIR -z DIR/zserv.api -i DIR/<d>.pid`), run as
//! `-u root -g frrvty` (root is not in FRR's compiled-in vty group, and the
//! daemons refuse `-g root`), queried with `vtysh --vty_socket DIR -c ... json`.

mod config;
mod show;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tempfile::TempDir;

pub use config::FrrConfig;
pub use show::{parse_advertised, parse_paths};

use crate::daemon::BgpDaemon;
use crate::netns::Netns;
use crate::process::Process;
use crate::route::{Announce, Route, SessionState, require_tool};
use crate::wait::{TAIL_LINES, default_timeout, tail, wait_for};

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";
const BFDD: &str = "/usr/lib/frr/bfdd";

/// A running zebra + bgpd pair (+ bfdd); all stopped on drop.
pub struct Frr {
    bgpd: Process,
    bfdd: Option<Process>,
    zebra: Process,
    ns: Netns,
    config: FrrConfig,
    dir: TempDir,
}

impl Frr {
    /// Starts zebra, then bgpd, in `ns`; waits until vtysh reaches both.
    pub fn start(ns: &Netns, config: FrrConfig) -> Result<Frr> {
        require_tool(ZEBRA, "frr")?;
        require_tool(BGPD, "frr")?;
        require_tool("vtysh", "frr")?;
        let dir = crate::tmp::dir(&format!("{}-frr", ns.name()))?;
        let d = dir.path().to_path_buf();
        let zebra_conf =
            crate::tmp::write(&d, "zebra.conf", &config.render_zebra(&log(&d, "zebra")))?;
        let bgpd_conf = crate::tmp::write(&d, "bgpd.conf", &config.render_bgpd(&log(&d, "bgpd")))?;
        let zserv = d.join("zserv.api");
        let zebra = spawn(ns, &d, "zebra", ZEBRA, &zebra_conf, &zserv, &[])?;
        let mut zebra = zebra;
        wait_for(
            &format!("FRR zebra in {}: zserv socket missing", ns.name()),
            default_timeout(),
            || {
                zebra.ensure_running()?;
                Ok(zserv.exists().then_some(()))
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}; zebra output:\n{}", zebra.log_tail()))?;
        let bfdd = if config.needs_bfdd() {
            require_tool(BFDD, "frr")?;
            let conf = crate::tmp::write(&d, "bfdd.conf", &config.render_bfdd(&log(&d, "bfdd")))?;
            let ctl = d.join("bfdd.sock");
            let extra = [std::ffi::OsStr::new("--bfdctl"), ctl.as_os_str()];
            Some(spawn(ns, &d, "bfdd", BFDD, &conf, &zserv, &extra)?)
        } else {
            None
        };
        let bgpd = spawn(ns, &d, "bgpd", BGPD, &bgpd_conf, &zserv, &[])?;
        let mut frr = Frr {
            bgpd,
            bfdd,
            zebra,
            ns: ns.clone(),
            config,
            dir,
        };
        let what = format!(
            "FRR in {}: vtysh cannot reach zebra and bgpd",
            frr.ns.name()
        );
        wait_for(&what, default_timeout(), || {
            frr.zebra.ensure_running()?;
            frr.bgpd.ensure_running()?;
            if let Some(b) = frr.bfdd.as_mut() {
                b.ensure_running()?;
            }
            let out = frr.vtysh(&["show daemons"])?;
            let bfdd = frr.bfdd.is_none() || out.contains("bfdd");
            Ok((out.contains("zebra") && out.contains("bgpd") && bfdd).then_some(()))
        })
        .map_err(|e| frr.with_logs(e))?;
        Ok(frr)
    }

    /// The namespace FRR runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Runs `vtysh --vty_socket DIR -c C1 -c C2 ...` and returns stdout.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String> {
        let mut cmd = std::process::Command::new("vtysh");
        cmd.arg("--vty_socket").arg(self.dir.path());
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        let out = cmd.output().context("running vtysh")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "vtysh {commands:?} in {}: {}{}",
                self.ns.name(),
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Runs a `show ... json` command and parses it.
    pub fn show_json(&self, command: &str) -> Result<Value> {
        let text = self.vtysh(&[command])?;
        serde_json::from_str(&text).with_context(|| format!("`{command}` is not JSON: {text}"))
    }

    /// Why the session with `peer` last went down (`lastResetDueTo`, plus
    /// `lastNotificationReason` when FRR has one).
    pub fn last_reset(&self, peer: &str) -> Result<Option<String>> {
        let json = self.show_json(&format!("show bgp neighbors {peer} json"))?;
        let p = json.get(peer);
        let get = |k: &str| {
            p.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(
            match (get("lastResetDueTo"), get("lastNotificationReason")) {
                (Some(a), Some(b)) => Some(format!("{a}: {b}")),
                (a, b) => a.or(b),
            },
        )
    }

    /// bfdd's view of its session with `peer` (`show bfd peer PEER json`):
    /// `status`, `diagnostic`, `remote-diagnostic`, `uptime`, intervals.
    pub fn bfd_peer(&self, peer: &str) -> Result<Value> {
        self.show_json(&format!("show bfd peer {peer} json"))
    }

    /// Waits until bfdd's session with `peer` is the one bgpd keeps (from
    /// `local`) and is Up, then until BGP with `peer` is Established.
    ///
    /// FRR 8.4's bgpd registers its BFD session with source 0.0.0.0 and,
    /// once BGP is Established, replaces it with one from the connection's
    /// address and interface. When the first one was already Up, bgpd takes
    /// the replacement's initial Down as BFD Down and resets the BGP session
    /// it has just established with Cease/10 (inside a Hard Reset), once.
    /// A test that counts sessions or BFD Downs starts counting after this.
    pub fn wait_bfd_settled(&self, peer: &str, local: &str) -> Result<()> {
        wait_for(
            &format!("FRR's BFD session with {peer} from {local} Up"),
            default_timeout(),
            || {
                let b = self.bfd_peer(peer)?;
                if b["local"] == local && b["status"] == "up" {
                    Ok(Some(()))
                } else {
                    bail!("{b}")
                }
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.log_tail()))?;
        self.wait_established(peer)
    }

    /// bfdd's counters for its session with `peer` (`show bfd peer PEER
    /// counters json`): `session-up`, `session-down` events and packets.
    pub fn bfd_counters(&self, peer: &str) -> Result<Value> {
        self.show_json(&format!("show bfd peer {peer} counters json"))
    }

    /// bfdd's process id, when it runs.
    pub fn bfdd_pid(&self) -> Option<u32> {
        self.bfdd.as_ref().map(Process::pid)
    }

    /// Sends `sig` to bfdd (SIGSTOP freezes BFD while bgpd and TCP go
    /// on; SIGCONT resumes it); fails when bfdd is not running.
    pub fn signal_bfdd(&self, sig: libc::c_int) -> Result<()> {
        match &self.bfdd {
            Some(b) => {
                b.signal(sig);
                Ok(())
            }
            None => bail!(
                "bfdd is not running: no neighbour of {} has BFD",
                self.ns.name()
            ),
        }
    }

    /// Every path in the BGP table (all peers, ADD-PATH paths included).
    pub fn routes(&self) -> Result<Vec<Route>> {
        Ok(parse_paths(&self.show_json("show bgp ipv4 unicast json")?))
    }

    /// What FRR advertises to `peer`.
    pub fn advertised_to(&self, peer: &str) -> Result<Vec<Route>> {
        Ok(parse_advertised(&self.show_json(&format!(
            "show bgp ipv4 unicast neighbors {peer} advertised-routes json"
        ))?))
    }

    /// Originates `a` now (route-map + `network`), replacing any previous
    /// announcement of the same prefix.
    pub fn announce(&mut self, a: Announce) -> Result<()> {
        let mut cmds = vec![
            "configure terminal".to_string(),
            format!("no route-map {}", config::route_map_name(&a.prefix)),
        ];
        cmds.extend(config::route_map(&a, self.config.asn));
        cmds.push(format!("router bgp {}", self.config.asn));
        cmds.push("address-family ipv4 unicast".to_string());
        cmds.push(config::network(&a));
        let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
        self.vtysh(&refs)?;
        self.config.announce.retain(|x| x.prefix != a.prefix);
        self.config.announce.push(a);
        Ok(())
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&mut self, prefix: &str) -> Result<()> {
        let asn = format!("router bgp {}", self.config.asn);
        let no = format!("no network {prefix}");
        self.vtysh(&[
            "configure terminal",
            &asn,
            "address-family ipv4 unicast",
            &no,
        ])?;
        self.config.announce.retain(|x| x.prefix != prefix);
        Ok(())
    }

    /// This instance's dir (configs, sockets, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops bgpd, bfdd, then zebra.
    pub fn stop(&mut self) {
        self.bgpd.stop();
        if let Some(b) = self.bfdd.as_mut() {
            b.stop();
        }
        self.zebra.stop();
    }
}

impl BgpDaemon for Frr {
    fn kind(&self) -> &'static str {
        "FRR"
    }

    fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The state of the session with `peer` (an address).
    fn session_state(&self, peer: &str) -> Result<SessionState> {
        let json = self.show_json(&format!("show bgp neighbors {peer} json"))?;
        let state = json
            .get(peer)
            .and_then(|p| p.get("bgpState"))
            .and_then(Value::as_str)
            .with_context(|| format!("no bgpState for {peer}: {json}"))?;
        Ok(SessionState::parse(state))
    }

    /// The paths accepted from `peer`.
    fn routes_from(&self, peer: &str) -> Result<Vec<Route>> {
        Ok(parse_paths(&self.show_json(&format!(
            "show bgp ipv4 unicast neighbors {peer} routes json"
        ))?))
    }

    fn log_tail(&self) -> String {
        let d = self.dir.path();
        let bfdd = match &self.bfdd {
            Some(b) => format!(
                "\n--- bfdd.log\n{}\n--- bfdd stdout\n{}",
                tail(Path::new(&log(d, "bfdd")), TAIL_LINES),
                b.log_tail()
            ),
            None => String::new(),
        };
        format!(
            "--- bgpd.log\n{}\n--- bgpd stdout\n{}\n--- zebra.log\n{}\n--- zebra stdout\n{}{bfdd}",
            tail(Path::new(&log(d, "bgpd")), TAIL_LINES),
            self.bgpd.log_tail(),
            tail(Path::new(&log(d, "zebra")), 10),
            self.zebra.log_tail(),
        )
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        let mut pids = vec![("bgpd", self.bgpd.pid()), ("zebra", self.zebra.pid())];
        if let Some(b) = &self.bfdd {
            pids.push(("bfdd", b.pid()));
        }
        self.stop();
        for (daemon, pid) in pids {
            let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/{daemon}.{pid}"));
        }
    }
}

fn log(dir: &Path, daemon: &str) -> String {
    dir.join(format!("{daemon}.log")).display().to_string()
}

fn spawn(
    ns: &Netns,
    dir: &Path,
    daemon: &str,
    bin: &str,
    conf: &Path,
    zserv: &Path,
    extra: &[&std::ffi::OsStr],
) -> Result<Process> {
    let mut cmd = ns.command(bin)?;
    cmd.args(["-u", "root", "-g", "frrvty"])
        .arg("--vty_socket")
        .arg(dir)
        .arg("-z")
        .arg(zserv)
        .arg("-i")
        .arg(dir.join(format!("{daemon}.pid")))
        .arg("-f")
        .arg(conf)
        .args(extra);
    let stdout: PathBuf = dir.join(format!("{daemon}.stdout"));
    ns.spawn(daemon, cmd, &stdout)
}
