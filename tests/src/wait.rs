//! Polling with a deadline instead of sleeps, and log tails for failure
//! messages, so a slow (loaded, 2-core) machine only makes tests slower.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How often [`wait_for`] probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The default deadline for anything a daemon has to do (a session coming up,
/// a route arriving): `STEER_TEST_TIMEOUT_SECS`, or 60 s.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("STEER_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// An error that ends a [`wait_for`] at once (e.g. the daemon died).
#[derive(Debug)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

/// Calls `probe` until it returns `Ok(Some(value))` or `timeout` passes.
///
/// `Ok(None)` means "not yet"; an `Err` also means "not yet" but is kept, so
/// the timeout error can say what the last probe saw, unless it is (or
/// wraps) a [`Fatal`], which fails at once. The error message is
/// `"<what> after <secs>s; last probe: <...>"`; callers add log tails.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::from("condition not met"),
            Err(e) if e.chain().any(|c| c.is::<Fatal>()) => bail!("{what}: {e:#}"),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() >= timeout {
            bail!(
                "{what} after {:.0}s; last probe: {last}",
                timeout.as_secs_f64()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The last `lines` lines of a log file (or a note that it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// The number of log lines failure messages quote.
pub const TAIL_LINES: usize = 25;
