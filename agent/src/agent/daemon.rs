//! The `steer agent` process: iBGP with ADD-PATH to every route server,
//! the host's VM prefixes announced on each session, learned paths merged
//! into the [`AgentRib`], and the result handed to the FIB thread. Graceful
//! restart both ways (RFC 4724, with the N bit of RFC 8538): the route
//! servers keep our VM prefixes while we restart, we keep theirs while they
//! restart, and after our own restart nothing adopted is removed until
//! every route server has sent End-of-RIB (or `stale_timeout` passes).

use super::fib_task::{self, FibCmd, FibHandle, FibSetup};
use super::reload;
use super::rib::AgentRib;
use crate::bgp::attribute::{AsPath, Origin, PathAttributes};
use crate::bgp::capability::{AddPathFamily, Capability, GracefulRestart};
use crate::bgp::error::Notification;
use crate::bgp::fsm::{Backoff, FsmConfig};
use crate::bgp::iana::CeaseSubcode;
use crate::bgp::message::{encode_announce, encode_end_of_rib, encode_withdraw};
use crate::bgp::negotiate::Negotiated;
use crate::bgp::nlri::{Family, Nlri};
use crate::bgp::peer::{Outbound, PeerMsg, SessionCommand, SessionEvent};
use crate::bgp::session::{self, Security, SendLimits, SessionHandle, SessionSpec};
use crate::bgp::status::PeerStatus;
use crate::config::{AgentConfig, ConfigFile, DataplaneSetting, EcmpSetting};
use crate::control::front::{Front, Signal};
use crate::control::metrics::{self, Exposition};
use crate::control::socket;
use crate::control::{Request, RouteQuery};
use crate::fib::kernel::EcmpStrategy;
use crate::fib::xdp::{DataplaneMode, XdpConfig, XdpMode};
use crate::prefix::Afi;
use anyhow::Context;
use bytes::Bytes;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

struct Server {
    addr: std::net::IpAddr,
    status: Arc<PeerStatus>,
    handle: Option<SessionHandle>,
    /// Its send queue and our address, while established.
    out: Option<(Outbound, SocketAddr)>,
    /// Removed by a reload: its slot stays so indices keep their meaning.
    removed: bool,
    epoch: u64,
    negotiated: Option<Negotiated>,
    eor: Vec<Family>,
    restart_deadline: Option<Instant>,
}

struct Agent {
    cfg: Arc<AgentConfig>,
    config_path: PathBuf,
    events: mpsc::UnboundedSender<PeerMsg>,
    restarted: bool,
    rib: AgentRib,
    fib: FibHandle,
    servers: Vec<Server>,
    synced: bool,
    sync_deadline: Instant,
}

/// The capabilities an agent offers its route servers; `restarted` sets
/// the graceful-restart R bit.
pub fn capabilities(cfg: &AgentConfig, restarted: bool) -> Vec<Capability> {
    let fams = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    let mut caps: Vec<Capability> = fams.iter().map(|f| Capability::Multiprotocol(*f)).collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::FourOctetAs(cfg.asn));
    caps.push(Capability::ExtendedMessage);
    caps.push(Capability::AddPath(
        fams.iter()
            .map(|f| AddPathFamily {
                family: *f,
                receive: true,
                send: false,
            })
            .collect(),
    ));
    if cfg.graceful_restart_time > 0 {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restarting: restarted,
            notification: true,
            restart_time: cfg.graceful_restart_time,
            families: fams.iter().map(|f| (*f, true)).collect(),
        }));
    }
    caps
}

/// The UPDATEs announcing `prefixes` (this host's VM prefixes) on one
/// session, with our session address `local` as next hop (or
/// `ipv6_next_hop` for IPv6 prefixes on an IPv4 session).
fn vm_update(
    cfg: &AgentConfig,
    prefixes: &[crate::prefix::Prefix],
    n: &Negotiated,
    local: std::net::IpAddr,
    remote: std::net::IpAddr,
) -> Vec<u8> {
    let mut out = Vec::new();
    for afi in [Afi::Ipv4, Afi::Ipv6] {
        let nlri: Vec<Nlri> = prefixes
            .iter()
            .filter(|p| p.afi() == afi)
            .map(|p| Nlri::new(*p))
            .collect();
        if nlri.is_empty() || !n.has_family(Family::unicast(afi)) {
            continue;
        }
        let next_hop = match (afi, local) {
            (Afi::Ipv4, ip @ std::net::IpAddr::V4(_))
            | (Afi::Ipv6, ip @ std::net::IpAddr::V6(_)) => Some(ip),
            (Afi::Ipv6, _) => cfg.ipv6_next_hop.map(std::net::IpAddr::V6),
            (Afi::Ipv4, _) => None,
        };
        let Some(next_hop) = next_hop else {
            warn!(
                "{} {afi} VM prefixes not announced: the session to {remote} is over the other family (set ipv6_next_hop)",
                nlri.len(),
            );
            continue;
        };
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(next_hop),
            local_pref: Some(crate::rib::decision::DEFAULT_LOCAL_PREF),
            ..PathAttributes::default()
        };
        if let Err(err) = encode_announce(&n.codec, &attrs, &nlri, &mut out) {
            warn!("cannot encode VM prefixes: {err}");
        }
    }
    out
}

impl Agent {
    fn handle(&mut self, m: PeerMsg) {
        let i = (m.peer - 1) as usize;
        let Some(s) = self.servers.get_mut(i).filter(|s| !s.removed) else {
            return;
        };
        match m.event {
            SessionEvent::Established(e) => {
                s.epoch = m.epoch;
                s.negotiated = Some(e.negotiated.clone());
                s.eor.clear();
                let mut bytes = vm_update(
                    &self.cfg,
                    &self.cfg.vm_prefixes,
                    &e.negotiated,
                    e.local.ip(),
                    e.remote.ip(),
                );
                for f in &e.negotiated.families {
                    encode_end_of_rib(*f, &mut bytes);
                }
                e.out.send(Bytes::from(bytes), 1);
                s.out = Some((e.out.clone(), e.local));
                self.rib.set_local_addrs(
                    self.servers
                        .iter()
                        .filter_map(|x| x.status.snapshot().local.map(|a| a.ip()))
                        .chain(std::iter::once(e.local.ip())),
                );
                info!(
                    "route server {} established; announced {} VM prefixes",
                    e.remote.ip(),
                    self.cfg.vm_prefixes.len()
                );
            }
            SessionEvent::Routes(batches) => {
                if m.epoch != s.epoch {
                    return;
                }
                for b in batches {
                    for w in b.withdraw {
                        self.rib.withdraw(i, w.prefix, w.path_id);
                    }
                    if let Some(a) = b.attrs {
                        for n in b.announce {
                            self.rib.announce(i, n.prefix, n.path_id, a.clone());
                        }
                    }
                }
            }
            SessionEvent::EndOfRib(f) => {
                if m.epoch != s.epoch {
                    return;
                }
                if !s.eor.contains(&f) {
                    s.eor.push(f);
                }
                let n = self.rib.sweep_stale(i, Some(f));
                if n > 0 {
                    info!(
                        "route server {}: End-of-RIB for {f}, {n} stale paths removed",
                        s.addr
                    );
                }
                if s.negotiated
                    .as_ref()
                    .is_some_and(|n| n.families.iter().all(|f| s.eor.contains(f)))
                {
                    s.restart_deadline = None;
                }
                self.check_sync(Instant::now());
            }
            SessionEvent::RouteRefresh(_) => {}
            SessionEvent::Down { reason } => {
                if m.epoch != s.epoch {
                    return;
                }
                let n = s.negotiated.take();
                s.out = None;
                s.eor.clear();
                let families: Vec<Family> = match &n {
                    Some(n) if reason.is_graceful_restart_candidate(n.notification_restart()) => n
                        .families
                        .iter()
                        .copied()
                        .filter(|f| n.peer_preserves(*f))
                        .collect(),
                    _ => Vec::new(),
                };
                let restart_time = n
                    .as_ref()
                    .and_then(|n| n.graceful_restart.as_ref())
                    .map_or(0, |g| g.restart_time);
                if families.is_empty() || restart_time == 0 {
                    self.rib.drop_server(i);
                    info!(
                        "route server {} down ({reason}): its paths withdrawn",
                        s.addr
                    );
                } else {
                    let k = self.rib.mark_stale(i, &families);
                    s.restart_deadline =
                        Some(Instant::now() + Duration::from_secs(u64::from(restart_time)));
                    info!(
                        "route server {} down ({reason}): keeping {k} paths for up to {restart_time}s (graceful restart)",
                        s.addr
                    );
                }
            }
        }
    }

    /// After our own restart, sweep once every route server has sent
    /// End-of-RIB for every family, or the timeout passed.
    fn check_sync(&mut self, now: Instant) {
        if self.synced {
            return;
        }
        let all = self.servers.iter().filter(|s| !s.removed).all(|s| {
            s.negotiated
                .as_ref()
                .is_some_and(|n| n.families.iter().all(|f| s.eor.contains(f)))
        });
        if all || now >= self.sync_deadline {
            if !all {
                warn!(
                    "not every route server sent End-of-RIB within {}s: removing stale state anyway",
                    self.cfg.stale_timeout
                );
            }
            self.synced = true;
            self.push_changes();
            self.fib.send(FibCmd::Sweep);
        }
    }

    fn tick(&mut self, now: Instant) {
        for (i, s) in self.servers.iter_mut().enumerate() {
            if s.restart_deadline.is_some_and(|d| d <= now) {
                s.restart_deadline = None;
                let n = self.rib.sweep_stale(i, None);
                info!(
                    "route server {}: restart time over, {n} stale paths removed",
                    s.addr
                );
            }
        }
        self.check_sync(now);
        self.push_changes();
    }

    /// Starts a session to the route server at `addr` in a new slot.
    fn add_server(&mut self, addr: std::net::IpAddr) {
        let cfg = &self.cfg;
        let i = self.servers.len();
        let status = Arc::new(PeerStatus::default());
        let spec = SessionSpec {
            id: (i + 1) as u32,
            name: format!("rs{}", i + 1),
            fsm: FsmConfig {
                local_asn: cfg.asn,
                router_id: cfg.router_id,
                peer_asn: cfg.asn,
                hold_time: cfg.hold_time,
                keepalive: Some(cfg.keepalive),
                capabilities: capabilities(cfg, self.restarted),
                passive: false,
                restart: true,
                backoff: Backoff {
                    initial: Duration::from_secs(cfg.connect_retry),
                    max: Duration::from_secs(cfg.connect_retry_max),
                },
            },
            remote: SocketAddr::new(addr, cfg.port),
            bind: None,
            send: SendLimits {
                send_hold_time: cfg
                    .send_hold_time
                    .map(|s| Duration::from_secs(u64::from(s))),
                queue_limit: cfg.send_queue_limit,
            },
            security: Security {
                password: cfg.password.clone(),
                ttl_security: cfg.ttl_security,
            },
            backlog: None,
        };
        let handle = session::spawn(spec, self.events.clone(), None, status.clone());
        if i >= self.rib.server_count() {
            self.rib.add_server();
        }
        self.servers.push(Server {
            addr,
            status,
            handle: Some(handle),
            out: None,
            removed: false,
            epoch: 0,
            negotiated: None,
            eor: Vec::new(),
            restart_deadline: None,
        });
    }

    /// `steer reload` and SIGHUP: read the configuration file again and
    /// apply the VM interfaces, VM prefixes and route servers it names (see
    /// [`crate::agent::reload`]); anything else changed refuses the reload.
    fn reload(&mut self) -> Result<String, String> {
        let path = self.config_path.display().to_string();
        let fail = |e: String| {
            warn!("reload refused: {e}");
            e
        };
        let new = AgentConfig::load(&self.config_path).map_err(|e| fail(e.to_string()))?;
        let plan = reload::plan(&self.cfg, &new).map_err(|e| fail(format!("{path}: {e}")))?;
        self.cfg = Arc::new(new);
        for (i, s) in self.servers.iter_mut().enumerate() {
            if s.removed || !plan.servers_removed.contains(&s.addr) {
                continue;
            }
            if let Some(h) = s.handle.take() {
                let _ = h.cmd.send(SessionCommand::Stop(Notification::from(
                    CeaseSubcode::PeerDeconfigured,
                )));
            }
            s.removed = true;
            s.out = None;
            s.negotiated = None;
            s.restart_deadline = None;
            self.rib.drop_server(i);
        }
        for addr in &plan.servers_added {
            self.add_server(*addr);
        }
        for s in self.servers.iter().filter(|s| !s.removed) {
            let (Some((out, local)), Some(n)) = (&s.out, &s.negotiated) else {
                continue;
            };
            let mut bytes = vm_update(&self.cfg, &plan.prefixes_added, n, local.ip(), s.addr);
            let gone: Vec<Nlri> = plan
                .prefixes_removed
                .iter()
                .map(|p| Nlri::new(*p))
                .collect();
            if let Err(e) = encode_withdraw(&n.codec, &gone, &mut bytes) {
                warn!("cannot encode the withdrawal of VM prefixes: {e}");
            }
            if !bytes.is_empty() {
                out.send(Bytes::from(bytes), 1);
            }
        }
        if let Some(interfaces) = &plan.interfaces {
            self.fib.send(FibCmd::SetInterfaces(interfaces.clone()));
        }
        if !plan.prefixes_added.is_empty() || !plan.prefixes_removed.is_empty() {
            self.fib
                .send(FibCmd::SetVmPrefixes(self.cfg.vm_prefixes.clone()));
        }
        if !plan.servers_added.is_empty() || !plan.servers_removed.is_empty() {
            self.fib
                .send(FibCmd::SetRouteServers(self.cfg.route_servers.clone()));
        }
        self.check_sync(Instant::now());
        self.push_changes();
        let summary = plan.summary();
        info!("reloaded {path}: {summary}");
        Ok(format!("reloaded {path}: {summary}"))
    }

    fn push_changes(&mut self) {
        let changes = self.rib.take_changes();
        if !changes.is_empty() {
            self.fib.send(FibCmd::Apply(changes));
        }
    }

    fn peers(&self) -> serde_json::Value {
        let v: Vec<serde_json::Value> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.removed)
            .map(|(i, s)| {
                serde_json::json!({
                    "name": format!("rs{}", i + 1),
                    "kind": "route-server",
                    "address": s.addr,
                    "asn": self.cfg.asn,
                    "status": s.status.snapshot(),
                    "received": self.rib.path_count(i),
                    "accepted": self.rib.path_count(i),
                    "advertised": self.cfg.vm_prefixes.len(),
                    "stale": s.restart_deadline.is_some(),
                })
            })
            .collect();
        serde_json::Value::Array(v)
    }

    fn routes(&self, q: &RouteQuery) -> Result<serde_json::Value, String> {
        if q.advertised {
            return Ok(serde_json::json!(
                self.cfg
                    .vm_prefixes
                    .iter()
                    .map(|p| serde_json::json!({"prefix": p, "path_id": 0, "next_hop": null, "as_path": "", "communities": [], "large_communities": []}))
                    .collect::<Vec<_>>()
            ));
        }
        let server_filter = match &q.peer {
            Some(name) => Some(
                (1..=self.servers.len())
                    .find(|i| {
                        format!("rs{i}") == *name || self.servers[i - 1].addr.to_string() == *name
                    })
                    .ok_or_else(|| {
                        format!(
                            "no route server named `{name}` (rs1..rs{})",
                            self.servers.len()
                        )
                    })?
                    - 1,
            ),
            None => None,
        };
        let filter: Option<crate::prefix::Prefix> = match &q.prefix {
            Some(t) => Some(t.parse().map_err(|e| format!("{e}"))?),
            None => None,
        };
        let mut out = Vec::new();
        for p in self.rib.prefixes() {
            if filter.is_some_and(|f| f != p) {
                continue;
            }
            let want = self.rib.merged().get(&p);
            let paths: Vec<serde_json::Value> = self
                .rib
                .paths(&p)
                .into_iter()
                .filter(|x| server_filter.is_none_or(|s| s == x.server))
                .map(|x| {
                    serde_json::json!({
                        "peer": format!("rs{}", x.server + 1),
                        "path_id": x.path_id,
                        "next_hop": x.next_hop,
                        "as_path": x.as_path,
                        "local_pref": null, "med": null, "communities": [],
                        "large_communities": if x.vnet { vec!["vnet"] } else { vec![] },
                        "best": want.is_some(),
                        "multipath": matches!(want, Some(crate::fib::plan::Want::Forward(h)) if x.next_hop.is_some_and(|n| h.contains(&n))),
                        "stale": x.stale,
                        "reason": null,
                    })
                })
                .collect();
            if !paths.is_empty() || want.is_some() {
                out.push(serde_json::json!({"prefix": p, "want": want, "paths": paths}));
            }
        }
        Ok(serde_json::Value::Array(out))
    }

    async fn answer(&self, req: Request) -> Result<serde_json::Value, String> {
        match req {
            Request::Peers => Ok(self.peers()),
            Request::Routes(q) => self.routes(&q),
            Request::Reload => Err("reload is handled by the main loop".into()),
            Request::Bfd => Err(
                "`show bfd` is a route server command: BFD runs between the route servers and the appliances".into(),
            ),
            Request::Fib => {
                let (tx, rx) = oneshot::channel();
                if !self.fib.send(FibCmd::Show(tx)) {
                    return Err("the FIB thread has stopped".into());
                }
                let v = rx
                    .await
                    .map_err(|_| "no answer from the FIB thread".to_string())?;
                serde_json::to_value(v).map_err(|e| e.to_string())
            }
        }
    }

    async fn metrics(&self) -> String {
        let mut e = Exposition::default();
        for (i, s) in self.servers.iter().enumerate().filter(|(_, s)| !s.removed) {
            let name = format!("rs{}", i + 1);
            let addr = s.addr.to_string();
            let l = [("peer", name.as_str()), ("address", addr.as_str())];
            let st = s.status.snapshot();
            let up = matches!(st.state, crate::bgp::fsm::State::Established);
            e.add(&metrics::BGP_SESSION_UP, &l, f64::from(u8::from(up)));
            e.add(
                &metrics::BGP_PREFIXES_RECEIVED,
                &l,
                self.rib.path_count(i) as f64,
            );
            e.send_queue(&l, &st);
        }
        e.add(
            &metrics::AGENT_WANTED_PREFIXES,
            &[],
            self.rib.merged().len() as f64,
        );
        let (tx, rx) = oneshot::channel();
        if self.fib.send(FibCmd::Show(tx))
            && let Ok(v) = rx.await
        {
            let installed = v.entries.iter().filter(|x| x.kernel.is_some()).count();
            let mismatched = v.entries.iter().filter(|x| x.mismatch).count();
            e.add(&metrics::FIB_KERNEL_ROUTES, &[], installed as f64);
            e.add(&metrics::FIB_MISMATCHED_PREFIXES, &[], mismatched as f64);
            e.add(&metrics::FIB_FAILURES, &[], v.failures.len() as f64);
            for (hook, reasons) in &v.counters {
                for (reason, (pkts, bytes)) in reasons {
                    e.add(
                        &metrics::DATAPLANE_PACKETS_TOTAL,
                        &[("hook", hook), ("reason", reason)],
                        *pkts as f64,
                    );
                    e.add(
                        &metrics::DATAPLANE_BYTES_TOTAL,
                        &[("hook", hook), ("reason", reason)],
                        *bytes as f64,
                    );
                }
            }
            if let Some(f) = &v.flows {
                crate::control::metrics::flow_table(&mut e, f);
            }
            for (reason, (pkts, bytes)) in v.counters.get("xdp").into_iter().flatten() {
                e.add(
                    &metrics::XDP_PACKETS_TOTAL,
                    &[("reason", reason)],
                    *pkts as f64,
                );
                e.add(
                    &metrics::XDP_BYTES_TOTAL,
                    &[("reason", reason)],
                    *bytes as f64,
                );
            }
        }
        e.finish()
    }
}

/// Routing VM traffic needs forwarding on. ECMP in the kernel path hashes
/// the 5-tuple and nothing else (policy 3, fields 55 = 0x37: addresses,
/// protocol, ports), so a flow's bucket in the resilient group never
/// changes while the flow runs. (Policy 1 uses a socket's own random hash
/// when the sender left one on the packet, e.g. a container's socket behind
/// a veth, and TCP changes that hash on a retransmission timeout.)
fn enable_forwarding() {
    for (path, v) in [
        ("/proc/sys/net/ipv4/ip_forward", "1"),
        ("/proc/sys/net/ipv6/conf/all/forwarding", "1"),
        ("/proc/sys/net/ipv4/fib_multipath_hash_fields", "55"),
        ("/proc/sys/net/ipv6/fib_multipath_hash_fields", "55"),
        ("/proc/sys/net/ipv4/fib_multipath_hash_policy", "3"),
        ("/proc/sys/net/ipv6/fib_multipath_hash_policy", "3"),
    ] {
        match std::fs::read_to_string(path) {
            Ok(cur) if cur.trim() == v => {}
            _ => match std::fs::write(path, v) {
                Ok(()) => info!("enabled forwarding: {path} = {v}"),
                Err(e) => {
                    warn!("cannot enable forwarding ({path}): {e}; VM traffic will not be routed")
                }
            },
        }
    }
}

fn fib_setup(cfg: &AgentConfig) -> FibSetup {
    let mode = match cfg.dataplane().0 {
        DataplaneSetting::Kernel => None,
        DataplaneSetting::Xdp => Some(DataplaneMode::Xdp(XdpMode::Native)),
        DataplaneSetting::Tc => Some(DataplaneMode::Tc),
        DataplaneSetting::Auto => Some(DataplaneMode::Auto),
    };
    FibSetup {
        table: cfg.table,
        ecmp: match cfg.ecmp {
            EcmpSetting::Multipath => EcmpStrategy::Multipath,
            EcmpSetting::Nexthop => EcmpStrategy::NexthopObjects,
            EcmpSetting::Auto => EcmpStrategy::default(),
        },
        interfaces: cfg.vm_interfaces.clone(),
        rule_priority: cfg.rule_priority,
        ebpf: mode.map(|mode| XdpConfig {
            pin_dir: cfg.pin_path(),
            interfaces: cfg.vm_interfaces.clone(),
            mode,
            debug: cfg.xdp_debug,
            force_clsact: false,
            flow_idle_timeout: cfg.flow_idle_timeout,
            vm_prefixes: cfg.vm_prefixes.clone(),
            uplinks: Vec::new(),
        }),
        manage_neighbors: cfg.manage_neighbors,
        flow_idle_timeout: cfg.flow_idle_timeout,
        route_servers: cfg.route_servers.clone(),
        return_path: cfg.return_path && mode.is_some(),
    }
}

/// Run the agent until SIGTERM or SIGINT.
pub async fn run(
    cfg: AgentConfig,
    config_path: PathBuf,
    socket_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let socket_path = socket_path.unwrap_or_else(|| cfg.socket_path());
    let mut front = Front::open(
        &socket_path,
        cfg.socket_group.as_deref(),
        cfg.metrics_listen,
    )
    .await?;
    let (dataplane, deprecated) = cfg.dataplane();
    if let Some(note) = deprecated {
        warn!("{note}");
    }
    enable_forwarding();
    let (fib, fib_thread) =
        fib_task::start(fib_setup(&cfg)).context("cannot set up the dataplane")?;

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let restarted = cfg.pin_path().join(steer_common::MAP_LPM4).exists();
    let mut agent = Agent {
        rib: AgentRib::new(
            cfg.route_servers.len(),
            cfg.asn,
            cfg.router_id,
            cfg.vnet_prefixes.clone(),
        ),
        fib,
        servers: Vec::new(),
        config_path,
        events: events_tx,
        restarted,
        synced: false,
        sync_deadline: Instant::now() + Duration::from_secs(cfg.stale_timeout),
        cfg: cfg.clone(),
    };
    for addr in &cfg.route_servers {
        agent.add_server(*addr);
    }
    agent.push_changes();
    info!(
        "agent AS {} id {} up: route servers {:?}, table {}, VM interfaces {:?}, dataplane {}, control socket {}",
        cfg.asn,
        cfg.router_id,
        cfg.route_servers,
        cfg.table,
        cfg.vm_interfaces,
        dataplane.name(),
        socket_path.display()
    );

    let mut buf = Vec::with_capacity(256);
    let mut reconcile = tokio::time::interval(Duration::from_secs(cfg.reconcile_interval));
    reconcile.tick().await;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = events.recv_many(&mut buf, 256) => {
                if n == 0 {
                    break;
                }
                for m in buf.drain(..) {
                    agent.handle(m);
                }
                while let Ok(m) = events.try_recv() {
                    agent.handle(m);
                }
                agent.push_changes();
            }
            Some((req, reply)) = front.queries.recv() => {
                let answer = match req {
                    Request::Reload => agent.reload().map(serde_json::Value::String),
                    req => agent.answer(req).await,
                };
                let _ = reply.send(answer.map(socket::Answer::Json));
            }
            signal = front.signals.next() => match signal {
                Signal::Stop(name) => { info!("{name}: shutting down"); break; }
                Signal::Reload => {
                    info!("SIGHUP: reloading");
                    let _ = agent.reload();
                }
            },
            Some(reply) = front.scrapes.recv() => {
                let _ = reply.send(agent.metrics().await);
            }
            _ = reconcile.tick() => { agent.fib.send(FibCmd::Reconcile); }
            _ = ticker.tick() => agent.tick(Instant::now()),
        }
    }
    let n = if cfg.flush_on_exit {
        Notification::from(CeaseSubcode::HardReset)
    } else {
        Notification::cease_with_message(CeaseSubcode::AdminShutdown, "steer agent restarting")
    };
    let mut tasks = Vec::new();
    for s in &mut agent.servers {
        if let Some(h) = s.handle.take() {
            let _ = h.cmd.send(SessionCommand::Stop(n.clone()));
            tasks.push(h.task);
        }
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    let (done_tx, done_rx) = oneshot::channel();
    agent.fib.send(FibCmd::Shutdown {
        flush: cfg.flush_on_exit,
        done: done_tx,
    });
    let _ = done_rx.await;
    let _ = fib_thread.join();
    front.close();
    info!("stopped");
    Ok(())
}
