//! The `steer` binary under test: built once per test process with the
//! tests' own profile, started as `steer server|agent --config FILE --socket
//! SOCK` in a namespace (log at debug level in a file), queried with
//! `steer show ARGS --socket SOCK --json`, stopped with SIGTERM or `kill -9`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::netns::Netns;
use crate::process::{Process, STOP_GRACE};
use crate::wait::{TAIL_LINES, default_timeout, tail, wait_for};

/// Which daemon to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `steer server`: the route server.
    Server,
    /// `steer agent`: the host agent.
    Agent,
}

impl Role {
    fn subcommand(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }
}

static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The freshly built `steer` binary: `STEER_BIN` if set, else `cargo build
/// -p steer --bin steer` (once per process) with the profile and target dir
/// of the running test executable.
pub fn binary() -> Result<PathBuf> {
    BINARY
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("STEER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let deps = exe.parent().context("test executable has no parent dir")?;
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().context("deps dir has no parent")?
    } else {
        deps
    };
    let target_dir = profile_dir.parent().context("profile dir has no parent")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => bail!("cannot tell the cargo profile from {}", exe.display()),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("tests crate has no parent dir")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .args([
            "build",
            "-p",
            "steer",
            "--bin",
            "steer",
            "--profile",
            &profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(workspace)
        .output()
        .context("running cargo build -p steer")?;
    if !out.status.success() {
        bail!(
            "cargo build -p steer --bin steer --profile {profile} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bin = profile_dir.join("steer");
    if !bin.is_file() {
        bail!("cargo build succeeded but {} is missing", bin.display());
    }
    Ok(bin)
}

/// A running `steer server` or `steer agent`; stopped on drop.
pub struct Steer {
    process: Option<Process>,
    ns: Netns,
    role: Role,
    binary: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl Steer {
    /// Writes `config_toml` to a file and starts `steer <role>` in `ns`;
    /// waits until the control socket exists.
    pub fn start(ns: &Netns, role: Role, config_toml: &str) -> Result<Steer> {
        let binary = binary()?;
        let dir = crate::tmp::dir(&format!("{}-steer-{}", ns.name(), role.subcommand()))?;
        let config = crate::tmp::write(dir.path(), "steer.toml", config_toml)?;
        let mut steer = Steer {
            process: None,
            ns: ns.clone(),
            role,
            binary,
            config,
            socket: dir.path().join("steer.sock"),
            log: dir.path().join("steer.log"),
            dir,
        };
        steer.launch()?;
        Ok(steer)
    }

    fn launch(&mut self) -> Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let level = std::env::var("STEER_TEST_RUST_LOG").unwrap_or_else(|_| "debug".into());
        let mut cmd = self.ns.command(&self.binary)?;
        cmd.arg(self.role.subcommand())
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .env("RUST_LOG", level)
            .env("RUST_BACKTRACE", "1");
        let process =
            self.ns
                .spawn(&format!("steer {}", self.role.subcommand()), cmd, &self.log)?;
        self.process = Some(process);
        let what = format!(
            "steer {} in {}: control socket {} not created",
            self.role.subcommand(),
            self.ns.name(),
            self.socket.display()
        );
        let socket = self.socket.clone();
        let result = wait_for(&what, default_timeout(), || {
            if let Some(p) = self.process.as_mut() {
                p.ensure_running()?;
            }
            Ok(socket.exists().then_some(()))
        });
        result.map_err(|e| self.with_logs(e))
    }

    /// The namespace it runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The control socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The config file path (rewrite it with [`Steer::write_config`]).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replaces the config file (takes effect on the next start).
    pub fn write_config(&self, config_toml: &str) -> Result<()> {
        std::fs::write(&self.config, config_toml).context("writing steer config")
    }

    /// Runs `steer reload --socket SOCK`: the daemon's summary of what
    /// changed, or its refusal as the error.
    pub fn reload(&self) -> Result<String> {
        let mut cmd = self.ns.command(&self.binary)?;
        cmd.arg("reload").arg("--socket").arg(&self.socket);
        let out = cmd.output().context("running steer reload")?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// This instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `steer show ARGS --socket SOCK --json` and parses the output.
    pub fn show(&self, args: &[&str]) -> Result<Value> {
        let mut cmd = self.ns.command(&self.binary)?;
        cmd.arg("show")
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--json");
        let out = cmd.output().context("running steer show")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "steer show {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            );
        }
        serde_json::from_str(&stdout)
            .with_context(|| format!("steer show {} is not JSON: {stdout}", args.join(" ")))
    }

    /// Polls `steer show ARGS` until `accept` holds; returns that output.
    pub fn wait_show(&self, args: &[&str], accept: impl Fn(&Value) -> bool) -> Result<Value> {
        let what = format!(
            "steer {} in {}: `steer show {}` not as expected",
            self.role.subcommand(),
            self.ns.name(),
            args.join(" ")
        );
        wait_for(&what, default_timeout(), || {
            let v = self.show(args)?;
            if accept(&v) {
                Ok(Some(v))
            } else {
                bail!("got {v}")
            }
        })
        .map_err(|e| self.with_logs(e))
    }

    /// SIGTERM and wait (up to `grace`, then SIGKILL); returns the exit status.
    pub fn terminate_within(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.process.as_mut().and_then(|p| p.stop_within(grace))
    }

    /// SIGTERM with the default grace period.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.terminate_within(STOP_GRACE)
    }

    /// `kill -9` (a crash); returns the exit status.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        self.process.as_mut().and_then(Process::kill)
    }

    /// Starts it again (after [`Steer::terminate`] or [`Steer::kill9`]) with
    /// the current config file; the log file keeps growing.
    pub fn restart(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
        self.launch()
    }

    /// True while the daemon runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Process::is_running)
    }

    /// The process id, while started.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, TAIL_LINES)
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow!("{e:#}; last log lines:\n{}", self.log_tail())
    }
}

/// The session state of peer `name` in `steer show peers --json` output
/// (empty when it is not listed).
pub fn peer_state(peers: &Value, name: &str) -> String {
    peers
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .map(|p| p["status"]["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}
