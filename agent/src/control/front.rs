//! What a daemon shows the outside, set up and polled the same way by both
//! roles: the control socket, the metrics listener, and the signals that
//! stop (SIGTERM, SIGINT) or reload (SIGHUP) it. The daemon's main loop
//! owns its state and answers what arrives here, as holo's event loop keeps
//! these inputs beside each protocol instance.

use super::metrics::{self, Scrape};
use super::socket::{self, ControlError, Query};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::signal::unix::{self as unix_signal, SignalKind};
use tokio::sync::mpsc;

/// Why the front could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// The control socket.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The metrics listener.
    #[error("cannot serve metrics on {addr}: {cause}")]
    Metrics {
        /// `metrics_listen`.
        addr: SocketAddr,
        /// The error.
        cause: std::io::Error,
    },
    /// A signal handler.
    #[error("cannot handle {signal}: {cause}")]
    Signal {
        /// Which.
        signal: &'static str,
        /// The error.
        cause: std::io::Error,
    },
}

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT (named): shut down.
    Stop(&'static str),
    /// SIGHUP: read the configuration again.
    Reload,
}

/// The control socket's requests, metrics scrapes and signals of one daemon.
#[derive(Debug)]
pub struct Front {
    /// Requests from `steer show` and `steer reload`.
    pub queries: mpsc::Receiver<Query>,
    /// Metrics scrapes (none without `metrics_listen`).
    pub scrapes: mpsc::Receiver<Scrape>,
    /// Stop and reload signals.
    pub signals: Signals,
    socket_path: PathBuf,
}

/// The signals a daemon acts on.
#[derive(Debug)]
pub struct Signals {
    term: unix_signal::Signal,
    int: unix_signal::Signal,
    hup: unix_signal::Signal,
}

impl Signals {
    /// The next signal (cancel-safe, for `select!`).
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

impl Front {
    /// Binds the control socket at `socket_path` (mode 0660, owned by
    /// `group`), serves metrics on `metrics_listen`, and installs the
    /// signal handlers.
    pub async fn open(
        socket_path: &Path,
        group: Option<&str>,
        metrics_listen: Option<SocketAddr>,
    ) -> Result<Front, FrontError> {
        let control = socket::bind(socket_path, group)?;
        let (query_tx, queries) = mpsc::channel::<Query>(16);
        tokio::spawn(socket::serve(control, query_tx));
        let (scrape_tx, scrapes) = mpsc::channel(4);
        if let Some(addr) = metrics_listen {
            metrics::serve(addr, scrape_tx)
                .await
                .map_err(|cause| FrontError::Metrics { addr, cause })?;
        }
        let handler = |kind: SignalKind, signal: &'static str| {
            unix_signal::signal(kind).map_err(|cause| FrontError::Signal { signal, cause })
        };
        Ok(Front {
            queries,
            scrapes,
            signals: Signals {
                term: handler(SignalKind::terminate(), "SIGTERM")?,
                int: handler(SignalKind::interrupt(), "SIGINT")?,
                hup: handler(SignalKind::hangup(), "SIGHUP")?,
            },
            socket_path: socket_path.to_path_buf(),
        })
    }

    /// Removes the control socket.
    pub fn close(self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}
