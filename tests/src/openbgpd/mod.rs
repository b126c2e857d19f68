//! OpenBGPD as a lab peer: `bgpd -d` (OpenBGPD 7, the portable release) in
//! a namespace with a generated config, runtime announce/withdraw
//! (regenerate + `bgpctl reload`), neighbour shutdown with a shutdown
//! communication, and queries through `bgpctl -j` parsed into [`Route`]s
//! and session states.

mod config;
mod show;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tempfile::TempDir;

pub use config::OpenbgpdConfig;
pub use show::{neighbor, parse_rib, parse_state};

use crate::daemon::BgpDaemon;
use crate::netns::Netns;
use crate::process::Process;
use crate::route::{Announce, Route, SessionState, require_tool};
use crate::wait::{default_timeout, wait_for};

/// OpenBGPD's daemon; FRR also ships a `bgpd`, off PATH in /usr/lib/frr.
const BGPD: &str = "/usr/sbin/bgpd";
/// Where bgpd's unprivileged processes chroot (the `_openbgpd` user's
/// home; systemd's `RuntimeDirectory=` creates it for the packaged unit).
const CHROOT: &str = "/run/openbgpd";

/// A running OpenBGPD; stopped on drop.
pub struct Openbgpd {
    process: Process,
    ns: Netns,
    config: OpenbgpdConfig,
    socket: PathBuf,
    conf_path: PathBuf,
    dir: TempDir,
}

impl Openbgpd {
    /// Checks the config with `bgpd -n`, starts `bgpd -d` in `ns`, and
    /// waits until its control socket answers.
    pub fn start(ns: &Netns, config: OpenbgpdConfig) -> Result<Openbgpd> {
        require_tool(BGPD, "openbgpd")?;
        require_tool("bgpctl", "openbgpd")?;
        std::fs::create_dir_all(CHROOT).with_context(|| format!("creating {CHROOT}"))?;
        let dir = crate::tmp::dir(&format!("{}-openbgpd", ns.name()))?;
        let socket = dir.path().join("bgpd.sock");
        let conf_path = dir.path().join("bgpd.conf");
        write_checked(&conf_path, &config, &socket)?;
        let mut cmd = ns.command(BGPD)?;
        cmd.arg("-d").arg("-f").arg(&conf_path);
        let process = ns.spawn("openbgpd", cmd, &dir.path().join("bgpd.log"))?;
        let mut bgpd = Openbgpd {
            process,
            ns: ns.clone(),
            config,
            socket,
            conf_path,
            dir,
        };
        let what = format!(
            "OpenBGPD in {}: control socket not answering",
            bgpd.ns.name()
        );
        wait_for(&what, default_timeout(), || {
            bgpd.process.ensure_running()?;
            Ok(bgpd.bgpctl(&["show", "summary"]).ok())
        })
        .map_err(|e| bgpd.with_logs(e))?;
        Ok(bgpd)
    }

    /// The namespace OpenBGPD runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Runs `bgpctl -s SOCK ARGS` and returns its output.
    pub fn bgpctl(&self, args: &[&str]) -> Result<String> {
        let out = std::process::Command::new("bgpctl")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running bgpctl")?;
        if !out.status.success() {
            bail!(
                "bgpctl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `bgpctl -j ARGS` and parses the JSON.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let text = self.bgpctl(&all)?;
        serde_json::from_str(&text).with_context(|| format!("bgpctl {args:?} is not JSON: {text}"))
    }

    /// `bgpctl -j show neighbor`'s entry for `peer` (address or name).
    pub fn neighbor(&self, peer: &str) -> Result<Value> {
        let json = self.json(&["show", "neighbor"])?;
        neighbor(&json, peer)
            .cloned()
            .with_context(|| format!("no neighbour {peer} in: {json}"))
    }

    /// Every path in OpenBGPD's RIB (`show rib detail`).
    pub fn rib(&self) -> Result<Vec<Route>> {
        Ok(parse_rib(&self.json(&["show", "rib", "detail"])?))
    }

    /// Takes the session with `peer` down (`bgpctl neighbor PEER down
    /// REASON`): Cease/Administrative Shutdown carrying `reason` (RFC
    /// 9003).
    pub fn shut_down(&self, peer: &str, reason: &str) -> Result<()> {
        self.bgpctl(&["neighbor", peer, "down", reason]).map(drop)
    }

    /// Lets the session with `peer` come up again (`bgpctl neighbor PEER
    /// up`).
    pub fn bring_up(&self, peer: &str) -> Result<()> {
        self.bgpctl(&["neighbor", peer, "up"]).map(drop)
    }

    /// Originates `a` (replacing an announcement of the same prefix).
    pub fn announce(&mut self, a: Announce) -> Result<()> {
        self.config.announce.retain(|x| x.prefix != a.prefix);
        self.config.announce.push(a);
        self.reload()
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&mut self, prefix: &str) -> Result<()> {
        self.config.announce.retain(|x| x.prefix != prefix);
        self.reload()
    }

    fn reload(&mut self) -> Result<()> {
        write_checked(&self.conf_path, &self.config, &self.socket)?;
        self.bgpctl(&["reload"]).map(drop)
    }

    /// This instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops bgpd (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn write_checked(path: &Path, config: &OpenbgpdConfig, socket: &Path) -> Result<()> {
    let text = config.render(&socket.display().to_string());
    std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    let out = std::process::Command::new(BGPD)
        .arg("-n")
        .arg("-f")
        .arg(path)
        .output()
        .context("running bgpd -n")?;
    if !out.status.success() {
        bail!(
            "OpenBGPD rejects the generated config: {}\n{text}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl BgpDaemon for Openbgpd {
    fn kind(&self) -> &'static str {
        "OpenBGPD"
    }

    fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The state of the session with `peer` (address or name).
    fn session_state(&self, peer: &str) -> Result<SessionState> {
        let json = self.json(&["show", "neighbor"])?;
        parse_state(&json, peer).with_context(|| format!("no state for {peer} in: {json}"))
    }

    /// Every path received from `peer` (its address).
    fn routes_from(&self, peer: &str) -> Result<Vec<Route>> {
        Ok(self
            .rib()?
            .into_iter()
            .filter(|r| r.source == peer)
            .collect())
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
