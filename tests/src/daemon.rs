//! What every BGP daemon driver shares: waiting for a session state and
//! failing with the daemon's log tail.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::netns::Netns;
use crate::route::{Route, SessionState};
use crate::wait::{default_timeout, wait_for};

/// A BGP daemon running in a lab namespace.
pub trait BgpDaemon {
    /// "BIRD", "FRR", "GoBGP".
    fn kind(&self) -> &'static str;

    /// Its namespace.
    fn netns(&self) -> &Netns;

    /// The state of the session with `peer` (as the driver names peers).
    fn session_state(&self, peer: &str) -> Result<SessionState>;

    /// The paths received from `peer`.
    fn routes_from(&self, peer: &str) -> Result<Vec<Route>>;

    /// The last lines of the daemon's log.
    fn log_tail(&self) -> String;

    /// `e` with the daemon's last log lines appended.
    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!("{e:#}; last log lines:\n{}", self.log_tail())
    }

    /// Waits until the session with `peer` reaches `state`.
    fn wait_state(&self, peer: &str, state: SessionState, timeout: Duration) -> Result<()> {
        let what = format!(
            "{} in {}: session {peer} not {state}",
            self.kind(),
            self.netns().name()
        );
        wait_for(&what, timeout, || {
            let now = self.session_state(peer)?;
            if now == state {
                Ok(Some(()))
            } else {
                bail!("state {now}")
            }
        })
        .map_err(|e| self.with_logs(e))
    }

    /// Waits until the session with `peer` is Established.
    fn wait_established(&self, peer: &str) -> Result<()> {
        self.wait_state(peer, SessionState::Established, default_timeout())
    }

    /// Waits until the paths from `peer` for `prefix` satisfy `accept`;
    /// returns them.
    fn wait_routes_from(
        &self,
        peer: &str,
        prefix: &str,
        accept: impl Fn(&[Route]) -> bool,
    ) -> Result<Vec<Route>> {
        let what = format!(
            "{} in {}: routes for {prefix} from {peer} not as expected",
            self.kind(),
            self.netns().name()
        );
        wait_for(&what, default_timeout(), || {
            let paths: Vec<Route> = self
                .routes_from(peer)?
                .into_iter()
                .filter(|r| r.prefix == prefix)
                .collect();
            if accept(&paths) {
                Ok(Some(paths))
            } else {
                bail!("have {paths:?}")
            }
        })
        .map_err(|e| self.with_logs(e))
    }

    /// Waits until `peer` has sent at least one path for `prefix`.
    fn wait_route(&self, peer: &str, prefix: &str) -> Result<Vec<Route>> {
        self.wait_routes_from(peer, prefix, |paths| !paths.is_empty())
    }
}
