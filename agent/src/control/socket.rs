//! The control socket: a Unix stream socket where each connection sends one
//! JSON [`Request`] line and receives one JSON line back, `{"ok": …}` or
//! `{"error": "…"}`. The daemon's main task answers (it owns the state); this
//! module only moves bytes. The client side is blocking std I/O for the CLI.

use super::{Request, RouteQuery};
use crate::prefix::Prefix;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::warn;

/// A request waiting for the daemon's answer.
pub type Query = (Request, oneshot::Sender<Result<Answer, String>>);

/// A daemon's answer to one request.
#[derive(Debug)]
pub enum Answer {
    /// The answer, sent as it is.
    Json(Value),
    /// A page of `show routes` already serialized as a JSON array (cheaper
    /// for the daemon's main loop than building a [`Value`]).
    Array(Vec<u8>),
    /// The prefixes a `show routes` covers (for
    /// [`RouteQuery::keys_only`]), which the socket then pages through.
    Keys(Vec<Prefix>),
}

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
    /// `socket_group` names no group.
    #[error("socket_group `{0}`: no such group")]
    NoGroup(String),
}

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one write of the answer may take before the client is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefixes per page of `show routes`: one page is what the daemon's main
/// loop does between two route events.
pub const PAGE: usize = 32;
/// Listen backlog: a burst of connections waits instead of being refused.
const BACKLOG: libc::c_int = 1024;
/// Least time between two "refused connections" log lines.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Bind the control socket, replacing a stale socket file but never one a
/// live daemon is serving. The socket is mode 0660 whatever the umask, and
/// owned by `group` when one is given, so an operators' group can use it.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, ControlError> {
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
    let gid = group
        .map(|g| group_id(g).ok_or_else(|| ControlError::NoGroup(g.to_string())))
        .transpose()?;
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(bind_err)?;
    }
    // SAFETY: listen on a socket we own; a second listen only sets the backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        return Err(bind_err(std::io::Error::last_os_error()));
    }
    Ok(listener)
}

/// The id of the group named `name`.
pub fn group_id(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getgrnam_r writes into `grp` and `buf`, both ours and sized.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    let rc =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    (rc == 0 && !out.is_null()).then_some(grp.gr_gid)
}

/// Serve the socket, forwarding each request to `tx`: at most
/// [`MAX_CONNECTIONS`] at once, one request line of at most
/// [`MAX_REQUEST`] bytes within [`REQUEST_TIMEOUT`], and `show routes`
/// fetched and written a page at a time, so no query holds the daemon's
/// main loop or its memory for longer than one page.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Query>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut refused = 0u64;
    let mut last_log: Option<Instant> = None;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if last_log.is_none_or(|t| t.elapsed() >= REFUSED_LOG_EVERY) {
                warn!(
                    "control socket: refused {refused} connections so far: {MAX_CONNECTIONS} are open"
                );
                last_log = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let _ = connection(r, &mut w, &tx).await;
            drop(slot);
        });
    }
}

async fn connection(
    r: OwnedReadHalf,
    w: &mut OwnedWriteHalf,
    tx: &mpsc::Sender<Query>,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut r = tokio::io::BufReader::new(r).take(MAX_REQUEST as u64 + 1);
    let req = match tokio::time::timeout(REQUEST_TIMEOUT, r.read_until(b'\n', &mut line)).await {
        Err(_) => Err(format!(
            "no request line within {}s",
            REQUEST_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => {
            Err(format!("request longer than {MAX_REQUEST} bytes"))
        }
        Ok(Ok(_)) => {
            serde_json::from_slice::<Request>(&line).map_err(|e| format!("bad request: {e}"))
        }
    };
    drop(line);
    let req = match req {
        Ok(r) => r,
        Err(e) => return write(w, json!({ "error": e }).to_string().as_bytes()).await,
    };
    tracing::trace!("control request {req:?}");
    match req {
        Request::Routes(q) => routes(q, w, tx).await,
        req => {
            let v = match ask(tx, req).await {
                Ok(Answer::Json(v)) => json!({ "ok": v }),
                Ok(Answer::Keys(k)) => json!({ "ok": k }),
                Ok(Answer::Array(a)) => {
                    json!({ "ok": serde_json::from_slice::<Value>(&a).unwrap_or_default() })
                }
                Err(e) => json!({ "error": e }),
            };
            write(w, v.to_string().as_bytes()).await
        }
    }
}

/// `show routes`, a page at a time: the daemon first answers with the
/// prefixes the query covers (a snapshot, sorted here, off its main loop),
/// then with the routes of [`PAGE`] of them per request, which are written
/// out before the next is asked for. A daemon that answers with the whole
/// list instead has it written as it is. Each page shows its prefixes as
/// they are when it is read.
async fn routes(
    mut q: RouteQuery,
    w: &mut OwnedWriteHalf,
    tx: &mpsc::Sender<Query>,
) -> std::io::Result<()> {
    q.keys_only = true;
    let keys = match ask(tx, Request::Routes(q.clone())).await {
        Ok(Answer::Keys(k)) => k,
        Ok(Answer::Json(v)) => return write(w, json!({ "ok": v }).to_string().as_bytes()).await,
        Ok(Answer::Array(a)) => {
            let mut out = b"{\"ok\":".to_vec();
            out.extend_from_slice(&a);
            out.push(b'}');
            return write(w, &out).await;
        }
        Err(e) => return write(w, json!({ "error": e }).to_string().as_bytes()).await,
    };
    let keys = tokio::task::spawn_blocking(move || {
        let mut k = keys;
        k.sort_unstable();
        k
    })
    .await
    .map_err(std::io::Error::other)?;
    q.keys_only = false;
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(b"{\"ok\":[");
    let mut first = true;
    for page in keys.chunks(PAGE) {
        q.keys = Some(page.to_vec());
        match ask(tx, Request::Routes(q.clone())).await {
            Ok(Answer::Json(items)) => {
                for item in items.as_array().into_iter().flatten() {
                    if !std::mem::replace(&mut first, false) {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut out, item).map_err(std::io::Error::other)?;
                }
            }
            Ok(Answer::Array(a)) => {
                let inner = a
                    .strip_prefix(b"[")
                    .and_then(|x| x.strip_suffix(b"]"))
                    .unwrap_or_default();
                if !inner.is_empty() {
                    if !std::mem::replace(&mut first, false) {
                        out.push(b',');
                    }
                    out.extend_from_slice(inner);
                }
            }
            Ok(Answer::Keys(_)) => {}
            Err(e) => {
                out.extend_from_slice(format!("],\"error\":{}}}", Value::String(e)).as_bytes());
                return write(w, &out).await;
            }
        }
        tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&out))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        out.clear();
    }
    out.extend_from_slice(b"]}");
    write(w, &out).await
}

async fn ask(tx: &mpsc::Sender<Query>, req: Request) -> Result<Answer, String> {
    let (otx, orx) = oneshot::channel();
    if tx.send((req, otx)).await.is_err() {
        return Err("daemon is shutting down".to_string());
    }
    orx.await.unwrap_or_else(|_| Err("no answer".into()))
}

/// Writes `text` and the closing newline, within [`WRITE_TIMEOUT`].
async fn write(w: &mut OwnedWriteHalf, text: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(text.len() + 1);
    buf.extend_from_slice(text);
    buf.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&buf))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon with `n` routes, 100.64.0.0/32 on.
    async fn fake_daemon(mut rx: mpsc::Receiver<Query>, n: u32) {
        let prefix = |i: u32| Prefix::host(std::net::Ipv4Addr::from(0x6440_0000 + i).into());
        while let Some((req, reply)) = rx.recv().await {
            let Request::Routes(q) = req else {
                let _ = reply.send(Ok(Answer::Json(json!("peers"))));
                continue;
            };
            let answer = match (q.keys_only, q.keys) {
                (true, _) => Answer::Keys((0..n).rev().map(prefix).collect()),
                (false, Some(k)) => {
                    Answer::Json(k.iter().map(|p| json!({ "prefix": p })).collect())
                }
                (false, None) => {
                    Answer::Json((0..n).map(|i| json!({ "prefix": prefix(i) })).collect())
                }
            };
            let _ = reply.send(Ok(answer));
        }
    }

    fn socket_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("steer-ctl-{}-{name}.sock", std::process::id()))
    }

    #[tokio::test]
    async fn show_routes_is_streamed_page_by_page_as_one_json_line() {
        let path = socket_path("pages");
        let listener = bind(&path, None).unwrap();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(fake_daemon(rx, 10 * PAGE as u32 + 7));
        tokio::spawn(serve(listener, tx));
        let p = path.clone();
        let v =
            tokio::task::spawn_blocking(move || query(&p, &Request::Routes(RouteQuery::default())))
                .await
                .unwrap()
                .unwrap();
        let items = v.as_array().unwrap();
        assert_eq!(items.len(), 10 * PAGE + 7);
        for (i, item) in items.iter().enumerate() {
            let want = std::net::Ipv4Addr::from(0x6440_0000 + i as u32);
            assert_eq!(item["prefix"], format!("{want}/32"), "in order, each once");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn the_socket_is_0660_and_an_unknown_group_is_refused() {
        let path = socket_path("mode");
        let old = unsafe { libc::umask(0) };
        let l = bind(&path, Some("root"));
        unsafe { libc::umask(old) };
        let _l = l.unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 0);
        let e = bind(&socket_path("nogroup"), Some("no-such-group-steer")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "socket_group `no-such-group-steer`: no such group"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn an_overlong_request_is_answered_with_an_error_and_nothing_more_is_read() {
        let path = socket_path("long");
        let listener = bind(&path, None).unwrap();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(fake_daemon(rx, 1));
        tokio::spawn(serve(listener, tx));
        let p = path.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            let mut w = s.try_clone().unwrap();
            let writer = std::thread::spawn(move || w.write_all(&vec![b'x'; 4 << 20]));
            let mut line = String::new();
            BufReader::new(&mut s).read_line(&mut line).unwrap();
            (line, writer.join().unwrap().is_err())
        })
        .await
        .unwrap();
        assert_eq!(
            answer,
            (
                format!("{{\"error\":\"request longer than {MAX_REQUEST} bytes\"}}\n"),
                true
            )
        );
        let _ = std::fs::remove_file(&path);
    }
}
