//! The `steer server` process: listeners on port 179, one session task per
//! appliance and per connected host, and the main task that owns the
//! [`RouteServer`] and answers the control socket; BFD runs on its own
//! thread and its Up/Down events reach the main task as messages.
//! SIGTERM/SIGINT send Cease/Administrative Shutdown (RFC 8203) to every
//! peer, and BFD AdminDown, before exiting.

use super::core::RouteServer;
use crate::bfd::driver::Event as BfdEvent;
use crate::bgp::capability::{AddPathFamily, Capability, GracefulRestart};
use crate::bgp::fsm::{Backoff, FsmConfig};
use crate::bgp::nlri::Family;
use crate::bgp::peer::{PeerId, PeerMsg, SessionCommand};
use crate::bgp::session::{self, SessionSpec};
use crate::config::ServerConfig;
use crate::control::metrics::{self, Exposition};
use crate::control::socket::{self, Query};
use crate::control::{Request, RouteQuery};
use crate::rib::table::SourceKind;
use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How long one main-loop pass may take in events before deciding and
/// sending: bounds latency while letting bursts coalesce.
const BATCH_BUDGET: Duration = Duration::from_millis(50);

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

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(128)
}

struct Daemon {
    rs: RouteServer,
    events: mpsc::UnboundedSender<PeerMsg>,
    tasks: Vec<JoinHandle<()>>,
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
        let (hold, keepalive, passive) = match p.kind {
            SourceKind::Appliance => {
                let pc = self.rs.config().peers.iter().find(|x| x.address == p.addr);
                (
                    pc.and_then(|x| x.hold_time),
                    pc.and_then(|x| x.keepalive),
                    pc.is_some_and(|x| x.passive),
                )
            }
            _ => (
                self.rs.config().hosts.hold_time,
                self.rs.config().hosts.keepalive,
                true,
            ),
        };
        let spec = SessionSpec {
            id,
            name: p.name.clone(),
            fsm: self.fsm_config(p.kind, p.asn, hold, keepalive, passive),
            remote: SocketAddr::new(p.addr, self.rs.config().port),
            bind: self.bind_for(p.addr),
        };
        let h = session::spawn(spec, self.events.clone(), incoming, p.status.clone());
        if let Some(p) = self.rs.peer_mut(id) {
            p.cmd = Some(h.cmd);
        }
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(h.task);
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

    fn answer(&self, req: Request) -> Result<serde_json::Value, String> {
        let to_json =
            |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| e.to_string());
        match req {
            Request::Peers => to_json(serde_json::to_value(self.rs.show_peers())),
            Request::Routes(q) => self.routes(&q),
            Request::Fib => Err("`show fib` is an agent command; this is a route server".into()),
            Request::Bfd => to_json(serde_json::to_value(self.rs.show_bfd())),
        }
    }

    fn routes(&self, q: &RouteQuery) -> Result<serde_json::Value, String> {
        let v = if q.advertised {
            serde_json::to_value(self.rs.show_advertised(q).map_err(|e| e.to_string())?)
        } else {
            serde_json::to_value(self.rs.show_routes(q).map_err(|e| e.to_string())?)
        };
        v.map_err(|e| e.to_string())
    }

    fn metrics(&self) -> String {
        let mut e = Exposition::default();
        e.sample(
            "steer_rib_prefixes",
            "gauge",
            "Prefixes in the route server's table.",
            &[],
            self.rs.table().len() as f64,
        );
        for p in self.rs.show_peers() {
            let kind = format!("{:?}", p.kind).to_lowercase();
            let l = [("peer", p.name.as_str()), ("kind", kind.as_str())];
            let up = matches!(p.status.state, crate::bgp::fsm::State::Established);
            e.sample(
                "steer_bgp_session_up",
                "gauge",
                "1 when the BGP session is Established.",
                &l,
                f64::from(u8::from(up)),
            );
            e.sample(
                "steer_bgp_prefixes_received",
                "gauge",
                "Paths received from the peer.",
                &l,
                f64::from(p.received),
            );
            e.sample(
                "steer_bgp_prefixes_accepted",
                "gauge",
                "Paths accepted from the peer.",
                &l,
                p.accepted as f64,
            );
            e.sample(
                "steer_bgp_prefixes_advertised",
                "gauge",
                "Paths advertised to the peer.",
                &l,
                p.advertised as f64,
            );
            e.sample(
                "steer_bgp_updates_received_total",
                "counter",
                "UPDATE messages received.",
                &l,
                p.status.updates_in as f64,
            );
            e.sample(
                "steer_bgp_updates_sent_total",
                "counter",
                "UPDATE messages sent.",
                &l,
                p.status.updates_out as f64,
            );
            e.sample(
                "steer_bgp_established_total",
                "counter",
                "Times the session reached Established.",
                &l,
                p.status.established_count as f64,
            );
            e.sample(
                "steer_bgp_max_prefix_trips_total",
                "counter",
                "Sessions ended by max_prefixes.",
                &l,
                f64::from(p.max_prefix_trips),
            );
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
pub async fn run(cfg: ServerConfig, socket_path: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let socket_path = socket_path.unwrap_or_else(|| cfg.socket_path());
    let control = socket::bind(&socket_path)?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (accept_tx, mut accepted) = mpsc::channel::<(TcpStream, SocketAddr)>(64);
    for a in &cfg.listen {
        let addr = SocketAddr::new(*a, cfg.port);
        let l = listen(addr)
            .await
            .with_context(|| format!("cannot listen for BGP on {addr}"))?;
        info!("listening for BGP on {addr}");
        let tx = accept_tx.clone();
        tokio::spawn(async move {
            loop {
                match l.accept().await {
                    Ok((s, remote)) => {
                        if tx.send((s, remote)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!("accept on {addr} failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    let (query_tx, mut queries) = mpsc::channel::<Query>(16);
    tokio::spawn(socket::serve(control, query_tx));
    let (scrape_tx, mut scrapes) = mpsc::channel(4);
    if let Some(addr) = cfg.metrics_listen {
        metrics::serve(addr, scrape_tx)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
    }

    let mut d = Daemon {
        rs: RouteServer::new(cfg.clone()),
        events: events_tx,
        tasks: Vec::new(),
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

    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let deadline = d.rs.next_deadline();
        tokio::select! {
            n = events.recv_many(&mut buf, 1024) => {
                if n == 0 {
                    break;
                }
                let start = Instant::now();
                loop {
                    let now = Instant::now();
                    for m in buf.drain(..) {
                        d.rs.handle(m, now);
                    }
                    if start.elapsed() > BATCH_BUDGET {
                        break;
                    }
                    match events.try_recv() {
                        Ok(m) => buf.push(m),
                        Err(_) => break,
                    }
                }
                d.rs.flush();
                d.rs.tick(Instant::now());
            }
            Some(ev) = recv_bfd(&mut bfd_events) => {
                d.rs.bfd_signal(ev.id, ev.signal);
                d.rs.flush();
            }
            Some((s, remote)) = accepted.recv() => d.accept(s, remote),
            Some((req, reply)) = queries.recv() => {
                d.rs.flush();
                let _ = reply.send(d.answer(req));
            }
            Some(reply) = scrapes.recv() => {
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
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
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
    let _ = std::fs::remove_file(&socket_path);
    info!("stopped");
    Ok(())
}
