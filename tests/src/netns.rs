//! A handle on one network namespace: run commands in it, spawn daemons in
//! it, open sockets from it.
//!
//! Commands enter the namespace with `setns(2)` between fork and exec (not
//! `ip netns exec`), so they keep the root mount namespace: `/sys/fs/bpf`
//! stays the shared bpffs and nothing is remounted. The namespace itself is
//! created and deleted by [`crate::Lab`]; a `Netns` is a cheap clone.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use crate::process::Process;

/// A named network namespace under `/run/netns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A handle on the existing namespace `/run/netns/<name>`.
    pub fn from_name(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
        }
    }

    /// The full namespace name (with the lab's per-run prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> Result<File> {
        let path = format!("/run/netns/{}", self.name);
        File::open(&path).with_context(|| format!("opening netns {path}"))
    }

    /// A `Command` for `program` that runs inside this namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Result<Command> {
        let ns = self.open()?;
        let mut cmd = Command::new(program);
        // SAFETY: setns(2) is async-signal-safe and touches no Rust state.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// The body of an HTTP GET of `url` from inside the namespace (e.g. a
    /// daemon's `/metrics`).
    pub fn http_get(&self, url: &str) -> Result<String> {
        let script =
            format!("import urllib.request;print(urllib.request.urlopen({url:?}).read().decode())");
        self.exec("python3", &["-c", script.as_str()])
    }

    /// Runs `program args` in the namespace and returns its output, whatever
    /// the exit status.
    pub fn output<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<Output> {
        self.command(program)?
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program} in {}", self.name))
    }

    /// Runs `program args` in the namespace; fails (quoting stderr) unless it
    /// exits 0, and returns its stdout.
    pub fn exec<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<String> {
        let out = self.output(program, args)?;
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        if !out.status.success() {
            bail!(
                "`{program} {}` in {} failed ({}): {}{}",
                shown.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a whitespace-separated command line (no shell, no quoting), e.g.
    /// `ns.run("ip route add 10.250.0.0/16 via 10.1.0.10")`.
    pub fn run(&self, line: &str) -> Result<String> {
        let mut words = line.split_whitespace();
        let program = words.next().ok_or_else(|| anyhow!("empty command"))?;
        let args: Vec<&str> = words.collect();
        self.exec(program, &args)
    }

    /// Runs `script` with `sh -c` in the namespace.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.exec("sh", &["-c", script])
    }

    /// `ip ARGS` in the namespace.
    pub fn ip(&self, args: &str) -> Result<String> {
        self.run(&format!("ip {args}"))
    }

    /// Sets a sysctl of this namespace (`net.*` keys are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Starts a long-running `cmd` (from [`Netns::command`]) as its own
    /// process group, stdout and stderr appended to `log`.
    pub fn spawn(&self, label: &str, cmd: Command, log: &Path) -> Result<Process> {
        Process::spawn(&format!("{label} in {}", self.name), cmd, log)
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it
    /// creates belong to the namespace for their whole life.
    pub fn enter<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.thread(f)?
            .join()
            .map_err(|_| anyhow!("thread in netns {} panicked", self.name))?
    }

    /// Starts `f` on a thread that has entered this namespace and returns
    /// at once; join the handle for its result.
    pub fn thread<T, F>(&self, f: F) -> Result<std::thread::JoinHandle<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = self.open()?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || {
            // SAFETY: plain syscall on a valid fd; affects this thread only.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(anyhow!(
                    "setns into {name}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(f())
        }))
    }

    /// Starts a worker thread in this namespace: `setup` runs first and
    /// this returns once it has (with its error, if any); then `run` gets
    /// what it made. Join the handle for `run`'s result.
    pub fn worker<S, T>(
        &self,
        setup: impl FnOnce() -> Result<S> + Send + 'static,
        run: impl FnOnce(S) -> Result<T> + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<Result<T>>>>
    where
        T: Send + 'static,
    {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = self.thread(move || match setup() {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                run(s)
            }
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                Err(e)
            }
        })?;
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .map_err(|_| anyhow!("worker in {} did not start", self.name))??;
        Ok(thread)
    }

    /// The index of interface `ifname` in this namespace.
    pub fn ifindex(&self, ifname: &str) -> Result<u32> {
        let out = self.ip(&format!("-o link show dev {ifname}"))?;
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| anyhow!("no index for {ifname} in {}: {out}", self.name))
    }
}
