//! A daemon started by the lab: its own process group, output in a log file,
//! stopped with SIGTERM (then SIGKILL) when dropped.
//!
//! Signals go to the process group, so helpers a daemon forks (ExaBGP's API
//! process, for one) end with it; the group is signalled before the leader is
//! reaped, so its id cannot have been reused.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::wait::{Fatal, TAIL_LINES, tail};

/// How long [`Process::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running (or finished) child process owned by a test.
#[derive(Debug)]
pub struct Process {
    label: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Process {
    /// Spawns `cmd` in a new process group, stdout and stderr appended to
    /// `log`, stdin from /dev/null.
    pub fn spawn(label: &str, mut cmd: Command, log: &Path) -> Result<Process> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {label}: {cmd:?}"))?;
        Ok(Process {
            label: label.to_string(),
            child,
            log: log.to_path_buf(),
            status: None,
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What this process is, e.g. "bird in st123-0-sdwan".
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file holding its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of its stdout/stderr log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, TAIL_LINES)
    }

    /// True while the process has not exited (it is not reaped by this call).
    pub fn is_running(&mut self) -> bool {
        self.status.is_none() && !self.exited_unreaped()
    }

    /// Fails ("<label> exited (<status>)") if the process has exited;
    /// callers add log tails.
    pub fn ensure_running(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let message = match self.reap() {
            Some(status) => format!("{} exited ({status})", self.label),
            None => format!("{} exited", self.label),
        };
        Err(Fatal(message).into())
    }

    fn exited_unreaped(&self) -> bool {
        // SAFETY: waitid with WNOWAIT only inspects our own child.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            rc == 0 && info.si_pid() != 0
        }
    }

    fn signal_group(&self, sig: libc::c_int) {
        if self.status.is_none() {
            // SAFETY: the leader is not reaped yet, so the group id is ours.
            unsafe {
                libc::kill(-(self.child.id() as libc::pid_t), sig);
            }
        }
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.signal_group(libc::SIGKILL);
            self.status = self.child.wait().ok();
        }
        self.status
    }

    /// Sends `sig` to the process group (e.g. SIGHUP to reload).
    pub fn signal(&self, sig: libc::c_int) {
        self.signal_group(sig);
    }

    /// SIGTERM, wait up to `grace` for the leader to exit, then SIGKILL the
    /// whole group and reap. Returns the leader's exit status.
    pub fn stop_within(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        self.signal_group(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace && !self.exited_unreaped() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.reap()
    }

    /// [`Process::stop_within`] with [`STOP_GRACE`].
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_within(STOP_GRACE)
    }

    /// SIGKILL to the whole group, then reap (a crash, as `kill -9`).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.reap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
