//! The control socket: a Unix stream socket where each connection sends one
//! JSON [`Request`] line and receives one JSON line back, `{"ok": …}` or
//! `{"error": "…"}`. The daemon's main task answers (it owns the state); this
//! module only moves bytes. The client side is blocking std I/O for the CLI.

use super::Request;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// A request waiting for the daemon's answer.
pub type Query = (Request, oneshot::Sender<Result<Value, String>>);

/// Why the control socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process is serving the socket.
    #[error("{0}: another daemon is already listening on this control socket")]
    InUse(PathBuf),
    /// Creating or binding failed.
    #[error("{path}: cannot create control socket: {cause}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The error.
        cause: std::io::Error,
    },
    /// Connecting failed.
    #[error("{path}: cannot connect (is the daemon running? pass --socket PATH): {cause}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The error.
        cause: std::io::Error,
    },
    /// The exchange failed.
    #[error("{path}: {message}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(String),
}

/// Bind the control socket, replacing a stale socket file but never one a
/// live daemon is serving.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let bind_err = |cause| ControlError::Bind {
        path: path.to_path_buf(),
        cause,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    UnixListener::bind(path).map_err(bind_err)
}

/// Serve the socket, forwarding each request to `tx`.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Query>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(r);
            if r.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match serde_json::from_str::<Request>(&line) {
                Ok(req) => {
                    tracing::trace!("control request {req:?}");
                    let (otx, orx) = oneshot::channel();
                    if tx.send((req, otx)).await.is_err() {
                        Err("daemon is shutting down".to_string())
                    } else {
                        orx.await.unwrap_or_else(|_| Err("no answer".into()))
                    }
                }
                Err(e) => Err(format!("bad request: {e}")),
            };
            let v = match answer {
                Ok(v) => serde_json::json!({ "ok": v }),
                Err(e) => serde_json::json!({ "error": e }),
            };
            let mut text = v.to_string();
            text.push('\n');
            let _ = w.write_all(text.as_bytes()).await;
        });
    }
}

/// Ask a daemon (blocking): the CLI side.
pub fn query(path: &Path, req: &Request) -> Result<Value, ControlError> {
    let proto = |message: String| ControlError::Protocol {
        path: path.to_path_buf(),
        message,
    };
    let mut s =
        std::os::unix::net::UnixStream::connect(path).map_err(|cause| ControlError::Connect {
            path: path.to_path_buf(),
            cause,
        })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| proto(e.to_string()))?;
    let mut text = serde_json::to_string(req).map_err(|e| proto(e.to_string()))?;
    text.push('\n');
    s.write_all(text.as_bytes())
        .map_err(|e| proto(format!("send failed: {e}")))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| proto(format!("no answer: {e}")))?;
    let mut v: Value =
        serde_json::from_str(&line).map_err(|e| proto(format!("bad answer: {e}")))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(ControlError::Daemon(e.to_string()));
    }
    Ok(v.get_mut("ok").map(Value::take).unwrap_or(Value::Null))
}
