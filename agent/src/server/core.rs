//! The route server's state machine: peers, the table, update groups, and
//! what each session event does to them. No sockets and no clocks (time is
//! passed in), so the route-server behaviour is unit-tested by feeding
//! events and decoding what lands in the members' send queues.
//!
//! Implements: import policy (own-AS loop, RFC 4271 §9.1.2; VNet space
//! protected from appliance routes; host routes kept inside the VNet; RFC
//! 4456 reflection loops), max-prefix with Cease/1 (RFC 4486 §4, data
//! AFI/SAFI/limit), graceful restart as receiving speaker (RFC 4724 §4.2:
//! stale routes kept for the restart time, swept at End-of-RIB), route
//! refresh (RFC 2918), the originated VNet prefixes, and BGP as a client
//! of BFD (RFC 5882 §3.2, §4.3): a BFD session that goes Down ends the
//! BGP session at once with Cease/10 "BFD Down" (RFC 9384), withdraws the
//! appliance's routes everywhere (graceful restart or not: the forwarding
//! path is what failed), and holds it down until BFD is Up again; a BFD
//! session that never came Up blocks nothing.

use super::view::{AdvertisedView, BfdPeerView, BfdView, PathView, PeerView, RouteView};
use crate::bfd::packet::State as BfdState;
use crate::bfd::session::Signal;
use crate::bfd::status::BfdStatus;
use crate::bgp::attribute::PathAttributes;
use crate::bgp::error::Notification;
use crate::bgp::fsm::DownReason;
use crate::bgp::iana::CeaseSubcode;
use crate::bgp::negotiate::Negotiated;
use crate::bgp::nlri::Family;
use crate::bgp::peer::{Established, Outbound, PeerId, PeerMsg, SessionCommand, SessionEvent};
use crate::bgp::routes::RouteBatch;
use crate::bgp::status::PeerStatus;
use crate::config::ServerConfig;
use crate::control::RouteQuery;
use crate::prefix::Prefix;
use crate::rib::decision::{DEFAULT_LOCAL_PREF, why_lost};
use crate::rib::export::{Audience, ExportContext, GroupKey, local_route_attrs};
use crate::rib::group::{Changes, Member, UpdateGroup};
use crate::rib::table::{CountChange, Path, Rejection, Source, SourceKind, Table};
use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

/// Identity of the local (originated) source.
pub const LOCAL_PEER: PeerId = 0;

#[derive(Debug)]
struct Live {
    epoch: u64,
    source: Arc<Source>,
    negotiated: Negotiated,
    group: u64,
    out: Outbound,
}

#[derive(Debug)]
struct Restarting {
    deadline: Instant,
    families: Vec<Family>,
}

/// One configured appliance or connected host.
#[derive(Debug)]
pub struct PeerEntry {
    /// Identity.
    pub id: PeerId,
    /// Display name.
    pub name: String,
    /// Appliance or host.
    pub kind: SourceKind,
    /// Address.
    pub addr: IpAddr,
    /// Expected AS.
    pub asn: u32,
    /// Received-prefix limit.
    pub max_prefixes: u32,
    /// Live status from the session.
    pub status: Arc<PeerStatus>,
    /// Command channel of its session task.
    pub cmd: Option<UnboundedSender<SessionCommand>>,
    live: Option<Live>,
    received: u32,
    restarting: Option<Restarting>,
    max_prefix_trips: u32,
    /// Keep its routes through its graceful restart.
    pub graceful_restart: bool,
    /// Its BFD session, when `bfd = true` (set by the daemon).
    pub bfd: Option<Arc<BfdStatus>>,
    bfd_held: bool,
}

impl PeerEntry {
    /// A peer with no session yet.
    pub fn new(
        id: PeerId,
        name: String,
        kind: SourceKind,
        addr: IpAddr,
        asn: u32,
        max_prefixes: u32,
    ) -> PeerEntry {
        PeerEntry {
            id,
            name,
            kind,
            addr,
            asn,
            max_prefixes,
            status: Arc::new(PeerStatus::default()),
            cmd: None,
            live: None,
            received: 0,
            restarting: None,
            max_prefix_trips: 0,
            graceful_restart: kind == SourceKind::Host,
            bfd: None,
            bfd_held: false,
        }
    }

    /// True while BFD holds its BGP session down.
    pub fn bfd_held(&self) -> bool {
        self.bfd_held
    }

    /// True when its session task is running.
    pub fn has_session(&self) -> bool {
        self.cmd.as_ref().is_some_and(|c| !c.is_closed())
    }
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// No such peer name.
    #[error("no peer named `{0}`")]
    NoPeer(String),
    /// `--advertised` without `--peer`.
    #[error("--advertised needs --peer NAME")]
    AdvertisedNeedsPeer,
    /// Not a prefix or address.
    #[error("`{0}` is neither a prefix nor an address")]
    BadPrefix(String),
    /// The peer has no session, so nothing is advertised.
    #[error("peer `{0}` is not established; nothing is advertised to it")]
    NotEstablished(String),
}

/// The route server.
#[derive(Debug)]
pub struct RouteServer {
    cfg: Arc<ServerConfig>,
    table: Table,
    peers: FxHashMap<PeerId, PeerEntry>,
    groups: Vec<(u64, UpdateGroup)>,
    next_group: u64,
    next_peer: PeerId,
    ctx: ExportContext,
    local: Arc<Source>,
}

impl RouteServer {
    /// A route server with its configured appliances (no sessions yet) and
    /// its VNet prefixes originated.
    pub fn new(cfg: Arc<ServerConfig>) -> RouteServer {
        let local = Arc::new(Source {
            peer: LOCAL_PEER,
            name: "local".into(),
            kind: SourceKind::Local,
            asn: cfg.asn,
            router_id: cfg.router_id,
            addr: IpAddr::V4(cfg.router_id),
            ebgp: false,
        });
        let mut rs = RouteServer {
            ctx: ExportContext {
                local_asn: cfg.asn,
                router_id: cfg.router_id,
                branch_to_branch: cfg.branch_to_branch,
                ipv6_next_hop: cfg.ipv6_next_hop,
            },
            table: Table::new(),
            peers: FxHashMap::default(),
            groups: Vec::new(),
            next_group: 1,
            next_peer: 1,
            local,
            cfg: cfg.clone(),
        };
        // One attribute set per family: exports cache by attribute set, and
        // next hop self differs between the families.
        let attrs = [Arc::new(local_route_attrs()), Arc::new(local_route_attrs())];
        for p in &cfg.vnet_prefixes {
            let family_attrs = &attrs[usize::from(p.afi() == crate::prefix::Afi::Ipv6)];
            rs.table.insert(
                *p,
                Path {
                    source: rs.local.clone(),
                    path_id: 0,
                    attrs: family_attrs.clone(),
                    stale: false,
                    rejected: None,
                },
            );
        }
        for p in &cfg.peers {
            let id = rs.alloc_id();
            let mut e = PeerEntry::new(
                id,
                p.name.clone(),
                SourceKind::Appliance,
                p.address,
                p.asn,
                p.max_prefixes,
            );
            e.graceful_restart = p.graceful_restart;
            rs.peers.insert(id, e);
        }
        rs.table.decide();
        rs
    }

    fn alloc_id(&mut self) -> PeerId {
        let id = self.next_peer;
        self.next_peer += 1;
        id
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// The table (for tests and views).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// A peer by id.
    pub fn peer(&self, id: PeerId) -> Option<&PeerEntry> {
        self.peers.get(&id)
    }

    /// A peer by id, mutable (the wiring attaches sessions).
    pub fn peer_mut(&mut self, id: PeerId) -> Option<&mut PeerEntry> {
        self.peers.get_mut(&id)
    }

    /// Every peer.
    pub fn peers(&self) -> impl Iterator<Item = &PeerEntry> {
        self.peers.values()
    }

    /// The configured appliance with this address.
    pub fn appliance_by_addr(&self, addr: IpAddr) -> Option<PeerId> {
        self.peers
            .values()
            .find(|p| p.kind == SourceKind::Appliance && p.addr == addr)
            .map(|p| p.id)
    }

    /// The host entry for this address, created when the address lies in
    /// `[hosts] ranges` (dynamic neighbours). `None`: refuse the connection.
    pub fn host_for(&mut self, addr: IpAddr) -> Option<PeerId> {
        if let Some(p) = self
            .peers
            .values()
            .find(|p| p.kind == SourceKind::Host && p.addr == addr)
        {
            return Some(p.id);
        }
        if !self.cfg.hosts.ranges.iter().any(|r| r.contains_addr(addr)) {
            return None;
        }
        let id = self.alloc_id();
        let max = self
            .cfg
            .hosts
            .max_prefixes
            .unwrap_or(crate::config::defaults::MAX_PREFIXES);
        let mut e = PeerEntry::new(
            id,
            format!("host-{addr}"),
            SourceKind::Host,
            addr,
            self.cfg.asn,
            max,
        );
        e.graceful_restart = self.cfg.hosts.graceful_restart;
        self.peers.insert(id, e);
        Some(id)
    }

    /// Apply one session event.
    pub fn handle(&mut self, msg: PeerMsg, now: Instant) {
        match msg.event {
            SessionEvent::Established(e) => self.established(msg.peer, msg.epoch, *e),
            SessionEvent::Routes(b) => self.routes(msg.peer, msg.epoch, b),
            SessionEvent::EndOfRib(f) => self.end_of_rib(msg.peer, msg.epoch, f),
            SessionEvent::RouteRefresh(f) => self.route_refresh(msg.peer, msg.epoch, f),
            SessionEvent::Down { reason } => self.down(msg.peer, msg.epoch, reason, now),
        }
    }

    fn live(&self, id: PeerId, epoch: u64) -> bool {
        self.peers
            .get(&id)
            .and_then(|p| p.live.as_ref())
            .is_some_and(|l| l.epoch == epoch)
    }

    fn established(&mut self, id: PeerId, epoch: u64, e: Established) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let n = e.negotiated;
        let ebgp = peer.kind == SourceKind::Appliance;
        let source = Arc::new(Source {
            peer: id,
            name: peer.name.clone(),
            kind: peer.kind,
            asn: n.peer_asn,
            router_id: n.peer_router_id,
            addr: e.remote.ip(),
            ebgp,
        });
        let audience = if ebgp {
            Audience::Appliances { asn: n.peer_asn }
        } else {
            Audience::Hosts
        };
        let key = GroupKey {
            audience,
            codec: n.codec.clone(),
            families: n.families.clone(),
            local: e.local.ip(),
        };
        if let Some(r) = &mut peer.restarting {
            let keep: Vec<Family> = r
                .families
                .iter()
                .copied()
                .filter(|f| {
                    n.graceful_restart
                        .as_ref()
                        .is_some_and(|g| g.families.iter().any(|(gf, fwd)| gf == f && *fwd))
                })
                .collect();
            let drop: Vec<Family> = r
                .families
                .iter()
                .copied()
                .filter(|f| !keep.contains(f))
                .collect();
            r.families = keep;
            for f in drop {
                let swept = sweep_stale(&mut self.table, id, f);
                peer.received = peer.received.saturating_sub(swept as u32);
            }
            if r.families.is_empty() {
                peer.restarting = None;
            }
        }
        // Decide (and tell the existing groups) before a new group starts
        // from the table: the sweep above may have changed it.
        self.flush();
        let group = match self.groups.iter().position(|(_, g)| g.key == key) {
            Some(i) => self.groups[i].0,
            None => {
                let gid = self.next_group;
                self.next_group += 1;
                self.groups
                    .push((gid, UpdateGroup::new(key, &self.table, &self.ctx)));
                gid
            }
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Some((_, g)) = self.groups.iter_mut().find(|(gid, _)| *gid == group) {
            g.join(Member {
                peer: id,
                out: e.out.clone(),
            });
        }
        info!(peer = %peer.name, "joined update group {group}");
        peer.live = Some(Live {
            epoch,
            source,
            negotiated: n,
            group,
            out: e.out,
        });
    }

    fn import_check(
        &self,
        prefix: &Prefix,
        attrs: &PathAttributes,
        source: &Source,
    ) -> Option<Rejection> {
        match source.kind {
            SourceKind::Appliance => {
                if attrs
                    .as_path
                    .as_ref()
                    .is_some_and(|p| p.contains(self.cfg.asn))
                {
                    return Some(Rejection::OwnAsInPath);
                }
                self.cfg
                    .vnet_prefixes
                    .iter()
                    .find(|v| v.covers(prefix))
                    .map(|v| Rejection::InsideVnet(*v))
            }
            SourceKind::Host => {
                if attrs.originator_id == Some(self.cfg.router_id)
                    || attrs.cluster_list.contains(&self.cfg.router_id)
                {
                    return Some(Rejection::ReflectionLoop);
                }
                if !self.cfg.vnet_prefixes.is_empty()
                    && !self.cfg.vnet_prefixes.iter().any(|v| v.covers(prefix))
                {
                    return Some(Rejection::OutsideVnet);
                }
                None
            }
            SourceKind::Local => None,
        }
    }

    fn routes(&mut self, id: PeerId, epoch: u64, batches: Vec<RouteBatch>) {
        if !self.live(id, epoch) {
            return;
        }
        let source = self.peers[&id].live.as_ref().expect("live").source.clone();
        let limit = self.peers[&id].max_prefixes;
        let mut received = self.peers[&id].received;
        for b in batches {
            for w in &b.withdraw {
                if self.table.remove(&w.prefix, id, w.path_id) == CountChange::Removed {
                    received = received.saturating_sub(1);
                }
            }
            let Some(attrs) = b.attrs else { continue };
            let attrs = if attrs.local_pref.is_none() {
                let mut a = (*attrs).clone();
                a.local_pref = Some(DEFAULT_LOCAL_PREF);
                Arc::new(a)
            } else {
                attrs
            };
            for n in &b.announce {
                let rejected = self.import_check(&n.prefix, &attrs, &source);
                let path = Path {
                    source: source.clone(),
                    path_id: n.path_id,
                    attrs: attrs.clone(),
                    stale: false,
                    rejected: rejected.map(Box::new),
                };
                if self.table.insert(n.prefix, path) == CountChange::Added {
                    received += 1;
                    if received > limit {
                        self.peers.get_mut(&id).expect("peer").received = received;
                        self.max_prefix_exceeded(id, b.family, limit, received);
                        return;
                    }
                }
            }
        }
        self.peers.get_mut(&id).expect("peer").received = received;
    }

    fn max_prefix_exceeded(&mut self, id: PeerId, family: Family, limit: u32, received: u32) {
        let idle = Duration::from_secs(self.cfg.max_prefix_restart);
        let mut data = family.afi.to_be_bytes().to_vec();
        data.push(family.safi);
        data.extend_from_slice(&limit.to_be_bytes());
        let n = Notification::error(CeaseSubcode::MaxPrefixes, data);
        let peer = self.peers.get_mut(&id).expect("peer");
        warn!(
            peer = %peer.name,
            "{received} prefixes exceed max_prefixes {limit}: ending the session with {n}, retrying in {}s",
            idle.as_secs()
        );
        peer.max_prefix_trips += 1;
        if let Some(c) = &peer.cmd {
            let _ = c.send(SessionCommand::StopFor(n, idle));
        }
        self.detach(id);
        let peer = self.peers.get_mut(&id).expect("peer");
        peer.restarting = None;
        peer.received = 0;
        self.table.remove_peer_where(id, |_, _| true);
    }

    /// Take a peer out of its group and forget its live session.
    fn detach(&mut self, id: PeerId) {
        let Some(live) = self.peers.get_mut(&id).and_then(|p| p.live.take()) else {
            return;
        };
        if let Some(i) = self.groups.iter().position(|(g, _)| *g == live.group)
            && self.groups[i].1.leave(id)
        {
            info!("update group {} is empty; removed", live.group);
            self.groups.remove(i);
        }
    }

    fn end_of_rib(&mut self, id: PeerId, epoch: u64, f: Family) {
        if !self.live(id, epoch) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(r) = &mut peer.restarting else {
            return;
        };
        if let Some(i) = r.families.iter().position(|x| *x == f) {
            r.families.remove(i);
            let n = sweep_stale(&mut self.table, id, f);
            peer.received = peer.received.saturating_sub(n as u32);
            info!(peer = %peer.name, "End-of-RIB for {f}: removed {n} stale paths");
        }
        if r.families.is_empty() {
            peer.restarting = None;
        }
    }

    fn route_refresh(&mut self, id: PeerId, epoch: u64, f: Family) {
        if !self.live(id, epoch) {
            return;
        }
        self.flush();
        let live = self.peers[&id].live.as_ref().expect("live");
        if let Some((_, g)) = self.groups.iter().find(|(gid, _)| *gid == live.group)
            && g.key.families.contains(&f)
        {
            let enc = g.dump(&[f]);
            live.out.send(Bytes::from(enc.bytes), enc.messages);
        }
    }

    fn down(&mut self, id: PeerId, epoch: u64, reason: DownReason, now: Instant) {
        if !self.live(id, epoch) {
            return;
        }
        let negotiated = self.peers[&id]
            .live
            .as_ref()
            .expect("live")
            .negotiated
            .clone();
        self.detach(id);
        let gr_time = negotiated
            .graceful_restart
            .as_ref()
            .map_or(0, |g| g.restart_time)
            .min(self.cfg.graceful_restart_time);
        let graceful = self.peers[&id].graceful_restart
            && reason.is_graceful_restart_candidate(negotiated.notification_restart());
        let families: Vec<Family> = if graceful && gr_time > 0 {
            negotiated
                .families
                .iter()
                .copied()
                .filter(|f| negotiated.peer_preserves(*f))
                .collect()
        } else {
            Vec::new()
        };
        let peer = self.peers.get_mut(&id).expect("peer");
        if families.is_empty() {
            let n = self.table.remove_peer_where(id, |_, _| true);
            info!(peer = %peer.name, "session down ({reason}): withdrew {n} paths");
            peer.received = 0;
            peer.restarting = None;
        } else {
            let keep = families.clone();
            let n = self
                .table
                .mark_stale(id, |p| keep.contains(&Family::unicast(p.afi())));
            let dropped = self
                .table
                .remove_peer_where(id, |p, _| !keep.contains(&Family::unicast(p.afi())));
            peer.received = peer.received.saturating_sub(dropped as u32);
            info!(
                peer = %peer.name,
                "session down ({reason}): graceful restart, keeping {n} paths as stale for {gr_time}s"
            );
            peer.restarting = Some(Restarting {
                deadline: now + Duration::from_secs(u64::from(gr_time)),
                families,
            });
        }
    }

    /// A BFD signal for an appliance (RFC 5882). Down: Cease/10 to the
    /// session, which stays down; its routes are withdrawn now, not when
    /// the session task reports back. Up: the held session starts again.
    /// AdminDown or a restarted remote session: no action (§4.2), and
    /// nothing stays held.
    pub fn bfd_signal(&mut self, id: PeerId, signal: Signal) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match signal {
            Signal::Down(diag) => {
                peer.bfd_held = true;
                if let Some(c) = &peer.cmd {
                    let _ = c.send(SessionCommand::Hold(CeaseSubcode::BfdDown.into()));
                }
                let name = peer.name.clone();
                self.detach(id);
                let n = self.table.remove_peer_where(id, |_, _| true);
                let peer = self.peers.get_mut(&id).expect("peer");
                peer.received = 0;
                peer.restarting = None;
                warn!(
                    peer = %name,
                    "BFD Down (diagnostic {diag}): session ended with Cease/10, withdrew {n} paths; held down until BFD is Up"
                );
            }
            Signal::Up => {
                if std::mem::take(&mut peer.bfd_held) {
                    info!(peer = %peer.name, "BFD Up: BGP may come up again");
                    if let Some(c) = &peer.cmd {
                        let _ = c.send(SessionCommand::Release);
                    }
                }
            }
            Signal::AdminDown | Signal::RemoteRestarted => {
                info!(
                    peer = %peer.name,
                    "{}",
                    if signal == Signal::AdminDown {
                        "BFD session administratively down: no action on BGP (RFC 5882 §4.2)"
                    } else {
                        "BFD: the peer started a new BFD session; its packets arrive, so no action on BGP"
                    }
                );
                if std::mem::take(&mut peer.bfd_held)
                    && let Some(c) = &peer.cmd
                {
                    let _ = c.send(SessionCommand::Release);
                }
            }
        }
    }

    /// `steer show bfd`: every appliance with BFD.
    pub fn show_bfd(&self) -> Vec<BfdView> {
        let mut v: Vec<BfdView> = self
            .peers
            .values()
            .filter_map(|p| {
                p.bfd.as_ref().map(|b| BfdView {
                    peer: p.name.clone(),
                    bgp_held: p.bfd_held,
                    status: b.snapshot(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.peer.cmp(&b.peer));
        v
    }

    /// Expire graceful-restart state and forget departed hosts.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.restarting.as_ref().is_some_and(|r| r.deadline <= now))
            .map(|p| p.id)
            .collect();
        for id in expired {
            let n = self.table.remove_peer_where(id, |_, p| p.stale);
            let peer = self.peers.get_mut(&id).expect("peer");
            peer.received = peer.received.saturating_sub(n as u32);
            peer.restarting = None;
            info!(peer = %peer.name, "graceful restart time over: removed {n} stale paths");
        }
        self.peers.retain(|_, p| {
            p.kind != SourceKind::Host
                || p.live.is_some()
                || p.restarting.is_some()
                || p.received > 0
                || p.has_session()
        });
    }

    /// When [`RouteServer::tick`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.restarting.as_ref().map(|r| r.deadline))
            .min()
    }

    /// Decide changed prefixes and send the resulting UPDATEs to every group:
    /// one table lookup per prefix, one encoding per group.
    pub fn flush(&mut self) -> u64 {
        if !self.table.has_dirty() {
            return 0;
        }
        let changed = self.table.decide();
        let mut changes: Vec<Changes> = self.groups.iter().map(|_| Changes::default()).collect();
        for prefix in &changed {
            let dest = self.table.get(prefix);
            let skip_appliances =
                !self.ctx.branch_to_branch && dest.is_some_and(|d| !d.concerns_appliances());
            for ((_, g), c) in self.groups.iter_mut().zip(changes.iter_mut()) {
                if skip_appliances && matches!(g.key.audience, Audience::Appliances { .. }) {
                    continue;
                }
                g.refresh_prefix(c, prefix, dest, &self.ctx);
            }
        }
        self.groups
            .iter_mut()
            .zip(changes)
            .map(|((_, g), c)| g.send(c))
            .sum()
    }

    /// Send Cease/Administrative Shutdown to every session.
    pub fn shutdown(&mut self, message: &str) {
        for p in self.peers.values() {
            if let Some(c) = &p.cmd {
                let _ = c.send(SessionCommand::Stop(Notification::cease_with_message(
                    CeaseSubcode::AdminShutdown,
                    message,
                )));
            }
        }
    }

    /// Paths accepted by import policy, per peer, in one pass over the table.
    fn accepted_counts(&self) -> FxHashMap<PeerId, usize> {
        let mut m = FxHashMap::default();
        for p in self.table.iter().flat_map(|(_, d)| d.paths.iter()) {
            if p.rejected.is_none() {
                *m.entry(p.source.peer).or_insert(0) += 1;
            }
        }
        m
    }

    fn advertised_count(&self, id: PeerId) -> usize {
        let Some(live) = self.peers.get(&id).and_then(|p| p.live.as_ref()) else {
            return 0;
        };
        self.groups
            .iter()
            .find(|(g, _)| *g == live.group)
            .map_or(0, |(_, g)| g.advertised_paths())
    }

    /// `steer show peers`.
    pub fn show_peers(&self) -> Vec<PeerView> {
        let accepted = self.accepted_counts();
        let mut v: Vec<PeerView> = self
            .peers
            .values()
            .map(|p| PeerView {
                name: p.name.clone(),
                kind: p.kind,
                address: p.addr,
                asn: p.asn,
                status: p.status.snapshot(),
                received: p.received,
                accepted: accepted.get(&p.id).copied().unwrap_or(0),
                advertised: self.advertised_count(p.id),
                max_prefixes: p.max_prefixes,
                max_prefix_trips: p.max_prefix_trips,
                stale: p.restarting.is_some(),
                update_group: p.live.as_ref().map(|l| l.group),
                bfd: p
                    .bfd
                    .as_ref()
                    .map(|b| bfd_peer_view(&b.snapshot(), p.bfd_held)),
            })
            .collect();
        v.sort_by_key(|p| (p.kind != SourceKind::Appliance, p.address));
        v
    }

    fn peer_by_name(&self, name: &str) -> Result<&PeerEntry, QueryError> {
        self.peers
            .values()
            .find(|p| p.name == name)
            .ok_or_else(|| QueryError::NoPeer(name.to_string()))
    }

    fn match_prefix(&self, text: &str) -> Result<Vec<Prefix>, QueryError> {
        if text.contains('/') {
            let p: Prefix = text
                .parse()
                .map_err(|_| QueryError::BadPrefix(text.into()))?;
            return Ok(vec![p]);
        }
        let addr: IpAddr = text
            .parse()
            .map_err(|_| QueryError::BadPrefix(text.into()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        for len in (0..=max).rev() {
            let p = Prefix::new(addr, len);
            if self.table.get(&p).is_some() {
                return Ok(vec![p]);
            }
        }
        Ok(Vec::new())
    }

    /// `steer show routes [--peer NAME] [PREFIX]`.
    pub fn show_routes(&self, q: &RouteQuery) -> Result<Vec<RouteView>, QueryError> {
        let peer = q
            .peer
            .as_deref()
            .map(|n| self.peer_by_name(n))
            .transpose()?;
        let prefixes: Vec<Prefix> = match &q.prefix {
            Some(t) => self.match_prefix(t)?,
            None => {
                let mut v: Vec<Prefix> = self.table.iter().map(|(p, _)| *p).collect();
                v.sort();
                v
            }
        };
        let mut out = Vec::new();
        for prefix in prefixes {
            let Some(d) = self.table.get(&prefix) else {
                continue;
            };
            let best = d.best();
            let paths: Vec<PathView> = d
                .paths
                .iter()
                .enumerate()
                .filter(|(_, p)| peer.is_none_or(|x| x.id == p.source.peer))
                .map(|(i, p)| {
                    let reason = match (&p.rejected, best) {
                        (Some(r), _) => Some(format!("refused: {r}")),
                        (None, Some(b)) if i >= d.multipath => {
                            let v = why_lost(&b.candidate(), &p.candidate());
                            Some(v.step.rule().to_string())
                        }
                        _ => None,
                    };
                    PathView::new(p, i == 0 && d.multipath > 0, i < d.multipath, reason)
                })
                .collect();
            if !paths.is_empty() {
                out.push(RouteView { prefix, paths });
            }
        }
        Ok(out)
    }

    /// `steer show routes --peer NAME --advertised [PREFIX]`.
    pub fn show_advertised(&self, q: &RouteQuery) -> Result<Vec<AdvertisedView>, QueryError> {
        let name = q.peer.as_deref().ok_or(QueryError::AdvertisedNeedsPeer)?;
        let peer = self.peer_by_name(name)?;
        let live = peer
            .live
            .as_ref()
            .ok_or_else(|| QueryError::NotEstablished(name.into()))?;
        let Some((_, g)) = self.groups.iter().find(|(gid, _)| *gid == live.group) else {
            return Ok(Vec::new());
        };
        let filter: Option<Vec<Prefix>> = q
            .prefix
            .as_deref()
            .map(|t| self.match_prefix(t))
            .transpose()?;
        let mut v: Vec<AdvertisedView> = g
            .iter_advertised()
            .filter(|(p, _)| filter.as_ref().is_none_or(|f| f.contains(p)))
            .flat_map(|(p, paths)| {
                paths
                    .iter()
                    .map(|(id, a)| AdvertisedView::new(*p, *id, a))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_by_key(|a| (a.prefix, a.path_id));
        Ok(v)
    }
}

/// The BFD column of `steer show peers`.
fn bfd_peer_view(s: &crate::bfd::status::BfdSnapshot, held: bool) -> BfdPeerView {
    let state = s.session.state;
    let summary = if held {
        "Down, BGP held".to_string()
    } else if state == BfdState::Up {
        "Up".to_string()
    } else if s.packets_in == 0 {
        "not running (BGP not blocked)".to_string()
    } else {
        format!("{state} (BGP not blocked)")
    };
    BfdPeerView {
        state,
        running: state == BfdState::Up,
        holds_bgp: held,
        summary,
    }
}

fn sweep_stale(table: &mut Table, id: PeerId, f: Family) -> usize {
    table.remove_peer_where(id, |p, x| x.stale && Family::unicast(p.afi()) == f)
}

#[cfg(test)]
mod tests;
