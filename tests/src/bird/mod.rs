//! BIRD 2 as a lab peer: `bird -f` in a namespace with a generated config,
//! runtime announce/withdraw (regenerate + `birdc configure`), and queries
//! through `birdc -s SOCK` parsed into [`Route`]s and session states.

mod config;
mod show;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

pub use config::{BirdConfig, PROTOCOL_PREFIX, protocol_name};
pub use show::{BfdSession, parse_bfd_sessions, parse_last_error, parse_routes, parse_state};

use crate::daemon::BgpDaemon;
use crate::netns::Netns;
use crate::process::Process;
use crate::route::{Announce, Route, SessionState, require_tool};
use crate::wait::{TAIL_LINES, default_timeout, tail, wait_for};

/// A running BIRD; stopped on drop.
pub struct Bird {
    process: Process,
    ns: Netns,
    config: BirdConfig,
    socket: PathBuf,
    conf_path: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl Bird {
    /// Checks the config with `bird -p`, starts `bird -f` in `ns`, and waits
    /// until its control socket answers.
    pub fn start(ns: &Netns, config: BirdConfig) -> Result<Bird> {
        require_tool("bird", "bird2")?;
        require_tool("birdc", "bird2")?;
        let dir = crate::tmp::dir(&format!("{}-bird", ns.name()))?;
        let socket = dir.path().join("bird.ctl");
        let log = dir.path().join("bird.log");
        let conf_path = dir.path().join("bird.conf");
        write_checked(&conf_path, &config, &log)?;
        let mut cmd = ns.command("bird")?;
        cmd.arg("-f")
            .arg("-c")
            .arg(&conf_path)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(dir.path().join("bird.pid"));
        let process = ns.spawn("bird", cmd, &dir.path().join("stdout.log"))?;
        let mut bird = Bird {
            process,
            ns: ns.clone(),
            config,
            socket,
            conf_path,
            log,
            dir,
        };
        let what = format!("BIRD in {}: control socket not answering", bird.ns.name());
        wait_for(&what, default_timeout(), || {
            bird.process.ensure_running()?;
            Ok(bird.birdc("show status").ok())
        })
        .map_err(|e| bird.with_logs(e))?;
        Ok(bird)
    }

    /// BIRD's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The namespace BIRD runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The current configuration.
    pub fn config(&self) -> &BirdConfig {
        &self.config
    }

    /// Runs one `birdc` command and returns its output; fails on a BIRD
    /// error reply (lines starting with a 8xxx/9xxx code in `-v` mode).
    pub fn birdc(&self, command: &str) -> Result<String> {
        let mut args = vec!["-s".to_string(), self.socket.display().to_string()];
        args.extend(command.split_whitespace().map(str::to_string));
        let out = std::process::Command::new("birdc")
            .args(&args)
            .output()
            .context("running birdc")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || text.contains("Unable to connect") {
            bail!(
                "birdc {command}: {}{}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(text)
    }

    /// The `Last error:` BIRD shows for neighbour `peer` (e.g. "Received:
    /// Bad peer AS" or "Error: Malformed AS_PATH"), if any.
    pub fn last_error(&self, peer: &str) -> Result<Option<String>> {
        Ok(parse_last_error(&self.birdc(&format!(
            "show protocols all {}",
            protocol_name(peer)
        ))?))
    }

    /// When the session to neighbour `peer` last changed state, as `birdc
    /// show protocols` prints it: unchanged while the session stays up.
    pub fn since(&self, peer: &str) -> Result<String> {
        let text = self.birdc(&format!("show protocols {}", protocol_name(peer)))?;
        let name = protocol_name(peer);
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&name.as_str()))
                    .then(|| f.get(4..6).map(|s| s.join(" ")))
                    .flatten()
            })
            .with_context(|| format!("no `since` for {name} in: {text}"))
    }

    /// BIRD's BFD sessions (`show bfd sessions`).
    pub fn bfd_sessions(&self) -> Result<Vec<BfdSession>> {
        Ok(parse_bfd_sessions(&self.birdc("show bfd sessions")?))
    }

    /// Every route (every path) in BIRD's table; `source` is the neighbour
    /// name for BGP routes, the protocol name otherwise.
    pub fn routes(&self) -> Result<Vec<Route>> {
        Ok(neighbor_sources(parse_routes(
            &self.birdc("show route all")?,
        )))
    }

    /// Originates `a` (replacing an announcement of the same prefix).
    pub fn announce(&mut self, a: Announce) -> Result<()> {
        self.config.announce.retain(|x| x.prefix != a.prefix);
        self.config.announce.push(a);
        self.reconfigure()
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&mut self, prefix: &str) -> Result<()> {
        self.config.announce.retain(|x| x.prefix != prefix);
        self.reconfigure()
    }

    /// Replaces the whole configuration and applies it.
    pub fn set_config(&mut self, config: BirdConfig) -> Result<()> {
        self.config = config;
        self.reconfigure()
    }

    fn reconfigure(&mut self) -> Result<()> {
        write_checked(&self.conf_path, &self.config, &self.log)?;
        let out = self.birdc("configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!("birdc configure in {}: {out}", self.ns.name());
        }
        Ok(())
    }

    /// The BIRD log file.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// This instance's temp dir.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops BIRD (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn neighbor_sources(mut routes: Vec<Route>) -> Vec<Route> {
    for r in &mut routes {
        if let Some(name) = r.source.strip_prefix(PROTOCOL_PREFIX) {
            r.source = name.to_string();
        }
    }
    routes
}

fn write_checked(path: &std::path::Path, config: &BirdConfig, log: &std::path::Path) -> Result<()> {
    let text = config.render(&log.display().to_string());
    std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    let out = std::process::Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(path)
        .output()
        .context("running bird -p")?;
    if !out.status.success() {
        bail!(
            "BIRD rejects the generated config: {}\n{text}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl BgpDaemon for Bird {
    fn kind(&self) -> &'static str {
        "BIRD"
    }

    fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The BGP state of the session with neighbour `peer` (its name).
    fn session_state(&self, peer: &str) -> Result<SessionState> {
        let text = self.birdc(&format!("show protocols all {}", protocol_name(peer)))?;
        parse_state(&text).with_context(|| format!("no state for {peer} in: {text}"))
    }

    /// Every path neighbour `peer` sent (with ADD-PATH, all of them).
    fn routes_from(&self, peer: &str) -> Result<Vec<Route>> {
        Ok(neighbor_sources(parse_routes(&self.birdc(&format!(
            "show route all protocol {}",
            protocol_name(peer)
        ))?)))
    }

    fn log_tail(&self) -> String {
        format!(
            "{}\n{}",
            tail(&self.log, TAIL_LINES),
            self.process.log_tail()
        )
    }
}
