//! The `steer server` process: listeners on port 179, one session task per
//! appliance and per connected host, and the main task that owns the
//! [`RouteServer`] and answers the control socket; BFD runs on its own
//! thread and its Up/Down events reach the main task as messages.
//! SIGTERM/SIGINT send Cease/Administrative Shutdown (RFC 8203) to every
//! peer, and BFD AdminDown, before exiting.

use super::core::RouteServer;
use super::reload;
use super::view::QueryError;
use crate::bfd::driver::Event as BfdEvent;
use crate::bgp::capability::{AddPathFamily, Capability, GracefulRestart};
use crate::bgp::fsm::{Backoff, FsmConfig};
use crate::bgp::nlri::Family;
use crate::bgp::peer::{Backlog, PeerId, PeerMsg, SessionCommand, event_paths};
use crate::bgp::session::{self, Security, SendLimits, SessionSpec};
use crate::bgp::sockopt;
use crate::config::{ConfigFile, ServerConfig};
use crate::control::front::{Front, Signal};
use crate::control::metrics::{self, Exposition};
use crate::control::socket::Answer;
use crate::control::{Request, RouteQuery};
use crate::rib::table::SourceKind;
use anyhow::Context;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How long one main-loop pass may take in events before deciding and
/// sending: bounds latency while letting bursts coalesce.
const BATCH_BUDGET: Duration = Duration::from_millis(50);

/// Decoded paths that may wait for the main task before the sessions stop
/// reading their sockets (about 100 bytes each while they wait).
const BACKLOG_PATHS: usize = 128 * 1024;

/// Accepted connections waiting for the main task: the accept thread
/// keeps taking connections off the kernel's queue while the main task is
/// busy (a storm of hosts joining), so none waits for a SYN
/// retransmission.
const ACCEPTED_QUEUE: usize = 4096;

/// A listener's own thread: blocking `accept` in a loop, each connection
/// handed to the main task. On a thread of its own (not a task among
/// thousands of sessions on the runtime's workers), it is scheduled as
/// soon as connections wait, which keeps the kernel's accept queue from
/// overflowing while the workers are busy sending dumps.
fn accept_loop(
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tx: mpsc::Sender<(std::net::TcpStream, SocketAddr)>,
) {
    loop {
        match listener.accept() {
            Ok(c) => {
                if tx.blocking_send(c).is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!("accept on {addr} failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Accepted connections the main task starts sessions for after each
/// batch of events: route events go first, but a storm of them must not
/// starve new connections.
const ACCEPTS_PER_BATCH: usize = 256;

/// The capabilities a route server offers one kind of peer. Graceful
/// restart lists both families with forwarding preserved: what a route
/// server hands out stays valid while it restarts (the appliances and hosts
/// forward), so receivers keep our routes until we send End-of-RIB again.
pub fn capabilities(asn: u32, gr_time: u16, hosts: bool) -> Vec<Capability> {
    let mut caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
        Capability::ExtendedMessage,
    ];
    if gr_time > 0 {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restarting: false,
            notification: true,
            restart_time: gr_time,
            families: vec![(Family::IPV4_UNICAST, true), (Family::IPV6_UNICAST, true)],
        }));
    }
    if hosts {
        caps.push(Capability::AddPath(
            [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
                .into_iter()
                .map(|family| AddPathFamily {
                    family,
                    receive: false,
                    send: true,
                })
                .collect(),
        ));
    }
    caps
}

/// Process settings for a route server, made before any thread starts:
/// one malloc arena. The session tasks decode UPDATEs on the runtime's
/// worker threads and the RIB frees them on the main thread; with an arena
/// per thread, the memory a burst's decoded UPDATEs took stays with the
/// workers' arenas while the table grows the main one beside it (measured:
/// 164 MB peak against 136 MB with one arena at 8 x 100,000 paths).
pub fn prepare_process() {
    // SAFETY: mallopt only changes allocator tuning; called before other
    // threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The accept queue the BGP listeners ask for. When every host reconnects
/// at once (a route server restart), the connections beyond the queue
/// have their SYNs dropped and wait for the retransmission (1 s, then 3 s,
/// ...). The kernel caps it at the namespace's `net.core.somaxconn`
/// (4096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// The accept queue a listener gets: [`LISTEN_BACKLOG`], capped by
/// `net.core.somaxconn` when that can be read.
fn accept_queue() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map_or(LISTEN_BACKLOG, |max| max.min(LISTEN_BACKLOG))
}

async fn listen(addr: SocketAddr, cfg: &ServerConfig) -> anyhow::Result<TcpListener> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    protect(&s, addr, cfg)?;
    Ok(s.listen(LISTEN_BACKLOG)?)
}

/// The listener's half of RFC 2385 and RFC 5082: an MD5 key per appliance
/// with a password and per host range when `[hosts] password` is set (the
/// kernel picks the longest matching prefix, and an accepted connection
/// keeps its key), and for GTSM TTL 255 on SYN-ACKs and a socket filter
/// dropping IPv4 segments below TTL 255 from its peers from the SYN on
/// (accepted connections inherit it; each also gets its minimum TTL in
/// the session, which covers IPv6 peers).
fn protect(s: &impl AsRawFd, addr: SocketAddr, cfg: &ServerConfig) -> anyhow::Result<()> {
    let reachable = |ip: IpAddr| addr.is_ipv6() || ip.is_ipv4();
    for (i, p) in cfg.peers.iter().enumerate() {
        if let Some(key) = &p.password
            && reachable(p.address)
        {
            sockopt::set_md5_key(
                s,
                p.address,
                sockopt::host_prefix_len(p.address),
                key.as_bytes(),
            )
            .with_context(|| format!("peer[{i}].password: cannot set the TCP-MD5 key on {addr}"))?;
        }
    }
    if let Some(key) = &cfg.hosts.password {
        for r in cfg.hosts.ranges.iter().filter(|r| reachable(r.addr())) {
            sockopt::set_md5_key(s, r.addr(), r.len(), key.as_bytes()).with_context(|| {
                format!("hosts.password: cannot set the TCP-MD5 key for {r} on {addr}")
            })?;
        }
    }
    let mut gtsm: Vec<(Ipv4Addr, u8)> = cfg
        .peers
        .iter()
        .filter(|p| p.ttl_security)
        .filter_map(|p| match canonical(p.address) {
            IpAddr::V4(a) => Some((a, 32)),
            IpAddr::V6(_) => None,
        })
        .collect();
    if cfg.hosts.ttl_security {
        gtsm.extend(cfg.hosts.ranges.iter().filter_map(|r| match r.addr() {
            IpAddr::V4(a) => Some((a, r.len())),
            IpAddr::V6(_) => None,
        }));
    }
    if cfg.hosts.ttl_security || cfg.peers.iter().any(|p| p.ttl_security) {
        sockopt::set_ttl_255(s).with_context(|| format!("ttl_security: TTL 255 on {addr}"))?;
        sockopt::set_gtsm_filter(s, &gtsm)
            .with_context(|| format!("ttl_security: the TTL filter on {addr}"))?;
    }
    Ok(())
}

/// After a reload, the keys and filters of the listeners for `new`: keys
/// of appliances that left or lost their password are deleted (an empty
/// key), and the TTL filter is replaced (emptied when no peer uses GTSM).
fn reprotect(
    s: &impl AsRawFd,
    addr: SocketAddr,
    old: &ServerConfig,
    new: &ServerConfig,
) -> anyhow::Result<()> {
    let reachable = |ip: IpAddr| addr.is_ipv6() || ip.is_ipv4();
    for p in old.peers.iter().filter(|p| p.password.is_some()) {
        let kept = new
            .peers
            .iter()
            .any(|n| n.address == p.address && n.password.is_some());
        if !kept && reachable(p.address) {
            sockopt::set_md5_key(s, p.address, sockopt::host_prefix_len(p.address), &[])
                .with_context(|| format!("deleting the TCP-MD5 key of {} on {addr}", p.address))?;
        }
    }
    protect(s, addr, new)?;
    let gtsm = |c: &ServerConfig| c.hosts.ttl_security || c.peers.iter().any(|p| p.ttl_security);
    if gtsm(old) && !gtsm(new) {
        sockopt::set_gtsm_filter(s, &[])
            .with_context(|| format!("ttl_security: clearing the TTL filter on {addr}"))?;
    }
    Ok(())
}

struct Daemon {
    rs: RouteServer,
    backlog: Arc<Backlog>,
    events: mpsc::UnboundedSender<PeerMsg>,
    tasks: Vec<JoinHandle<()>>,
    /// Finished tasks are reaped when `tasks` reaches this length (twice
    /// what was left last time), so starting a session costs the same with
    /// any number of peers.
    reap_at: usize,
    config_path: PathBuf,
    listeners: Vec<(SocketAddr, OwnedFd)>,
}

impl Daemon {
    fn fsm_config(
        &self,
        kind: SourceKind,
        peer_asn: u32,
        hold: Option<u16>,
        keepalive: Option<u16>,
        passive: bool,
    ) -> FsmConfig {
        let c = self.rs.config();
        FsmConfig {
            local_asn: c.asn,
            router_id: c.router_id,
            peer_asn,
            hold_time: hold.unwrap_or(c.hold_time),
            keepalive: Some(keepalive.unwrap_or(c.keepalive)),
            capabilities: capabilities(c.asn, c.graceful_restart_time, kind == SourceKind::Host),
            passive,
            restart: kind == SourceKind::Appliance,
            backoff: Backoff {
                initial: Duration::from_secs(c.connect_retry),
                max: Duration::from_secs(c.connect_retry_max),
            },
        }
    }

    fn bind_for(&self, peer: IpAddr) -> Option<IpAddr> {
        self.rs
            .config()
            .listen
            .iter()
            .copied()
            .find(|a| !a.is_unspecified() && a.is_ipv4() == peer.is_ipv4())
    }

    fn start_session(&mut self, id: PeerId, incoming: Option<TcpStream>) {
        let Some(p) = self.rs.peer(id) else { return };
        let c = self.rs.config();
        let (hold, keepalive, passive, send_hold, queue_limit, security) = match p.kind {
            SourceKind::Appliance => {
                let pc = c.peers.iter().find(|x| x.address == p.addr);
                (
                    pc.and_then(|x| x.hold_time),
                    pc.and_then(|x| x.keepalive),
                    pc.is_some_and(|x| x.passive),
                    pc.and_then(|x| x.send_hold_time),
                    pc.and_then(|x| x.send_queue_limit),
                    Security {
                        password: pc.and_then(|x| x.password.clone()),
                        ttl_security: pc.is_some_and(|x| x.ttl_security),
                    },
                )
            }
            _ => (
                c.hosts.hold_time,
                c.hosts.keepalive,
                true,
                c.hosts.send_hold_time,
                c.hosts.send_queue_limit,
                Security {
                    password: c.hosts.password.clone(),
                    ttl_security: c.hosts.ttl_security,
                },
            ),
        };
        let send = SendLimits {
            send_hold_time: send_hold
                .or(c.send_hold_time)
                .map(|s| Duration::from_secs(u64::from(s))),
            queue_limit: queue_limit.unwrap_or(c.send_queue_limit),
        };
        let spec = SessionSpec {
            id,
            name: p.name.clone(),
            fsm: self.fsm_config(p.kind, p.asn, hold, keepalive, passive),
            remote: SocketAddr::new(p.addr, self.rs.config().port),
            bind: self.bind_for(p.addr),
            send,
            security,
            backlog: Some(self.backlog.clone()),
        };
        let h = session::spawn(spec, self.events.clone(), incoming, p.status.clone());
        if let Some(p) = self.rs.peer_mut(id) {
            p.cmd = Some(h.cmd);
        }
        if self.tasks.len() >= self.reap_at {
            self.tasks.retain(|t| !t.is_finished());
            self.reap_at = (2 * self.tasks.len()).max(64);
        }
        self.tasks.push(h.task);
    }

    /// A connection from the accept thread, into the runtime.
    fn accept_std(&mut self, stream: std::net::TcpStream, remote: SocketAddr) {
        match stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream))
        {
            Ok(s) => self.accept(s, remote),
            Err(e) => warn!("accepted connection from {remote} unusable: {e}"),
        }
    }

    fn accept(&mut self, stream: TcpStream, remote: SocketAddr) {
        let ip = canonical(remote.ip());
        if let Some(id) = self.rs.appliance_by_addr(ip) {
            if let Some(c) = self.rs.peer(id).and_then(|p| p.cmd.clone()) {
                let _ = c.send(SessionCommand::Incoming(stream));
            }
            return;
        }
        match self.rs.host_for(ip) {
            Some(id) => {
                let existing = self
                    .rs
                    .peer(id)
                    .filter(|p| p.has_session())
                    .and_then(|p| p.cmd.clone());
                match existing {
                    Some(c) => {
                        let _ = c.send(SessionCommand::Incoming(stream));
                    }
                    None => self.start_session(id, Some(stream)),
                }
            }
            None => info!(
                "closed connection from {remote}: not a configured peer and not in [hosts] ranges"
            ),
        }
    }

    /// `steer reload` and SIGHUP: read the configuration file again and
    /// apply what changed (see [`crate::server::reload`]); an invalid file,
    /// or one changing a key that needs a restart, changes nothing.
    fn reload(&mut self) -> Result<String, String> {
        let path = self.config_path.display().to_string();
        let fail = |e: String| {
            warn!("reload refused: {e}");
            e
        };
        let new = ServerConfig::load(&self.config_path).map_err(|e| fail(e.to_string()))?;
        let plan =
            reload::plan(self.rs.config(), &new).map_err(|e| fail(format!("{path}: {e}")))?;
        for (addr, fd) in &self.listeners {
            reprotect(fd, *addr, self.rs.config(), &new).map_err(|e| fail(format!("{e:#}")))?;
        }
        let start = self.rs.reconfigure(Arc::new(new), &plan);
        for id in start {
            self.start_session(id, None);
        }
        self.rs.flush();
        let summary = plan.summary();
        info!("reloaded {path}: {summary}");
        Ok(format!("reloaded {path}: {summary}"))
    }

    fn answer(&mut self, req: Request) -> Result<Answer, String> {
        let to_json = |v: Result<serde_json::Value, serde_json::Error>| {
            v.map(Answer::Json).map_err(|e| e.to_string())
        };
        match req {
            Request::Peers => to_json(serde_json::to_value(self.rs.show_peers())),
            Request::Routes(q) => self.routes(&q),
            Request::Fib => Err("`show fib` is an agent command; this is a route server".into()),
            Request::Reload => self
                .reload()
                .map(|s| Answer::Json(serde_json::Value::String(s))),
            Request::Bfd => to_json(serde_json::to_value(self.rs.show_bfd())),
        }
    }

    fn routes(&self, q: &RouteQuery) -> Result<Answer, String> {
        let e = |e: QueryError| e.to_string();
        if q.keys_only {
            return self.rs.route_keys(q).map(Answer::Keys).map_err(e);
        }
        let v = if q.advertised {
            serde_json::to_vec(&self.rs.show_advertised(q).map_err(e)?)
        } else {
            serde_json::to_vec(&self.rs.show_routes(q).map_err(e)?)
        };
        v.map(Answer::Array).map_err(|e| e.to_string())
    }

    fn metrics(&self) -> String {
        let mut e = Exposition::default();
        e.add(&metrics::RIB_PREFIXES, &[], self.rs.table().len() as f64);
        for p in self.rs.show_peers() {
            let kind = format!("{:?}", p.kind).to_lowercase();
            let l = [("peer", p.name.as_str()), ("kind", kind.as_str())];
            let up = matches!(p.status.state, crate::bgp::fsm::State::Established);
            e.add(&metrics::BGP_SESSION_UP, &l, f64::from(u8::from(up)));
            e.add(&metrics::BGP_PREFIXES_RECEIVED, &l, f64::from(p.received));
            e.add(&metrics::BGP_PREFIXES_ACCEPTED, &l, p.accepted as f64);
            e.add(&metrics::BGP_PREFIXES_ADVERTISED, &l, p.advertised as f64);
            e.add(
                &metrics::BGP_UPDATES_RECEIVED_TOTAL,
                &l,
                p.status.updates_in as f64,
            );
            e.add(
                &metrics::BGP_UPDATES_SENT_TOTAL,
                &l,
                p.status.updates_out as f64,
            );
            e.add(
                &metrics::BGP_ESTABLISHED_TOTAL,
                &l,
                p.status.established_count as f64,
            );
            e.add(
                &metrics::BGP_MAX_PREFIX_TRIPS_TOTAL,
                &l,
                f64::from(p.max_prefix_trips),
            );
            e.send_queue(&l, &p.status);
        }
        super::bfd::metrics(&self.rs, &mut e);
        e.finish()
    }
}

async fn recv_bfd(rx: &mut Option<mpsc::UnboundedReceiver<BfdEvent>>) -> Option<BfdEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Run the route server until SIGTERM or SIGINT.
pub async fn run(
    cfg: ServerConfig,
    config_path: PathBuf,
    socket_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let limit = match super::nofile::raise() {
        Ok(r) => {
            info!("open-file limit {} (was {} at start)", r.now, r.before);
            Some(r.now)
        }
        Err(e) => {
            warn!("cannot raise the open-file limit: {e}");
            None
        }
    };
    if let Some(w) = limit.and_then(|l| super::nofile::advice(l, &cfg)) {
        warn!("{w}");
    }
    let socket_path = socket_path.unwrap_or_else(|| cfg.socket_path());
    let mut front = Front::open(
        &socket_path,
        cfg.socket_group.as_deref(),
        cfg.metrics_listen,
    )
    .await?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (accept_tx, mut accepted) =
        mpsc::channel::<(std::net::TcpStream, SocketAddr)>(ACCEPTED_QUEUE);
    let mut listeners = Vec::new();
    for a in &cfg.listen {
        let addr = SocketAddr::new(*a, cfg.port);
        let l = listen(addr, &cfg)
            .await
            .with_context(|| format!("cannot listen for BGP on {addr}"))?;
        info!(
            "listening for BGP on {addr} (accept queue {})",
            accept_queue()
        );
        listeners.push((
            addr,
            l.as_fd()
                .try_clone_to_owned()
                .context("keeping the listener for reloads")?,
        ));
        let l = l.into_std().context("taking the listener to its thread")?;
        l.set_nonblocking(false)?;
        let tx = accept_tx.clone();
        std::thread::Builder::new()
            .name(format!("bgp-accept-{}", listeners.len()))
            .spawn(move || accept_loop(l, addr, tx))
            .context("starting the accept thread")?;
    }

    let mut d = Daemon {
        rs: RouteServer::new(cfg.clone()),
        backlog: Backlog::new(BACKLOG_PATHS),
        events: events_tx,
        tasks: Vec::new(),
        reap_at: 64,
        config_path,
        listeners,
    };
    let appliances: Vec<PeerId> =
        d.rs.peers()
            .filter(|p| p.kind == SourceKind::Appliance)
            .map(|p| p.id)
            .collect();
    let (bfd, mut bfd_events) = match super::bfd::start(&mut d.rs)? {
        Some((b, rx)) => (Some(b), Some(rx)),
        None => (None, None),
    };
    for id in appliances {
        d.start_session(id, None);
    }
    info!(
        "route server AS {} id {} up: {} appliances, hosts from {:?}, control socket {}",
        cfg.asn,
        cfg.router_id,
        cfg.peers.len(),
        cfg.hosts
            .ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        socket_path.display()
    );

    let mut buf = Vec::with_capacity(1024);
    loop {
        let deadline = d.rs.next_deadline();
        // Biased: route events first, so a query (one page of `show routes`
        // at a time) delays a route change by one page at most; a query is
        // still answered after every batch of events, so neither starves.
        tokio::select! {
            biased;
            signal = front.signals.next() => match signal {
                Signal::Stop(name) => { info!("{name}: shutting down"); break; }
                Signal::Reload => {
                    info!("SIGHUP: reloading");
                    let _ = d.reload();
                }
            },
            n = events.recv_many(&mut buf, 1024) => {
                if n == 0 {
                    break;
                }
                let start = Instant::now();
                loop {
                    let now = Instant::now();
                    for m in buf.drain(..) {
                        let paths = event_paths(&m.event);
                        d.rs.handle(m, now);
                        d.backlog.done(paths);
                    }
                    if start.elapsed() > BATCH_BUDGET {
                        break;
                    }
                    match events.try_recv() {
                        Ok(m) => buf.push(m),
                        Err(_) => break,
                    }
                }
                d.rs.flush_due(Instant::now());
                d.rs.tick(Instant::now());
                for _ in 0..ACCEPTS_PER_BATCH {
                    match accepted.try_recv() {
                        Ok((s, remote)) => d.accept_std(s, remote),
                        Err(_) => break,
                    }
                }
                if let Ok((req, reply)) = front.queries.try_recv() {
                    let _ = reply.send(d.answer(req));
                }
            }
            Some(ev) = recv_bfd(&mut bfd_events) => {
                d.rs.bfd_signal(ev.id, ev.signal);
                d.rs.flush();
            }
            Some((s, remote)) = accepted.recv() => d.accept_std(s, remote),
            Some((req, reply)) = front.queries.recv() => {
                d.rs.flush();
                let _ = reply.send(d.answer(req));
            }
            Some(reply) = front.scrapes.recv() => {
                let _ = reply.send(d.metrics());
            }
            () = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                d.rs.tick(Instant::now());
                d.rs.flush();
            }
        }
    }
    d.rs.shutdown("steer server shutting down");
    if let Some(b) = bfd {
        b.shutdown();
    }
    for t in d.tasks.drain(..) {
        if tokio::time::timeout(Duration::from_secs(3), t)
            .await
            .is_err()
        {
            error!("a session did not stop within 3s");
        }
    }
    front.close();
    info!("stopped");
    Ok(())
}
