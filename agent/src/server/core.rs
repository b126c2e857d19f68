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

use super::host_policy::{AllowRule, Claim, Claims, HostPolicy, Released};
use super::reload::Plan;
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
use crate::config::{PeerConfig, ServerConfig};
use crate::prefix::Prefix;
use crate::rib::decision::DEFAULT_LOCAL_PREF;
use crate::rib::export::{Audience, ExportContext, GroupKey, local_route_attrs};
use crate::rib::group::{Changes, Member, UpdateGroup, refresh};
use crate::rib::table::{CountChange, Path, Rejection, Source, SourceKind, Table};
use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

/// Identity of the local (originated) source.
pub const LOCAL_PEER: PeerId = 0;

/// Paths a burst changes before the route server decides and sends
/// without waiting for its owner's flush (see `early_flush_paths`).
const EARLY_FLUSH_PATHS: usize = 262_144;
/// Group members that raise that number by one more step.
const EARLY_FLUSH_MEMBERS: usize = 64;
/// Least time between two flushes its owner asks for with
/// [`RouteServer::flush_due`]: a change after a quiet spell goes out at
/// once, a stream of changes goes out in batches this far apart instead of
/// one flush per read, each re-deciding the prefixes that every peer's
/// next read touches again.
pub const FLUSH_SPACING: Duration = Duration::from_millis(25);
/// Changed prefixes from which a flush decides and exports on every core
/// (see [`crate::rib::table::Table::decide_with`]): below it, a thread
/// costs more than it saves.
const PARALLEL_FLUSH: usize = 4096;
/// Most threads a flush uses.
const MAX_SHARDS: usize = 4;
/// Changed prefixes a flush encodes and queues at a time, so a large one
/// holds a bounded amount of output.
const EXPORT_CHUNK: usize = 8192;
/// The hosts waiting to be forgotten are looked at when their list has
/// doubled since the last look, or this long after it: a storm of
/// thousands of hosts setting up never costs a look at every one of them
/// per event.
const DEPARTING_SWEEP: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct Live {
    pub(super) epoch: u64,
    pub(super) source: Arc<Source>,
    pub(super) negotiated: Negotiated,
    pub(super) group: u64,
    pub(super) out: Outbound,
}

#[derive(Debug)]
pub(super) struct Restarting {
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
    pub(super) live: Option<Live>,
    pub(super) received: u32,
    pub(super) restarting: Option<Restarting>,
    pub(super) max_prefix_trips: u32,
    /// Keep its routes through its graceful restart.
    pub graceful_restart: bool,
    /// Its BFD session, when `bfd = true` (set by the daemon).
    pub bfd: Option<Arc<BfdStatus>>,
    pub(super) bfd_held: bool,
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

/// The route server.
#[derive(Debug)]
pub struct RouteServer {
    pub(super) cfg: Arc<ServerConfig>,
    pub(super) table: Table,
    pub(super) peers: FxHashMap<PeerId, PeerEntry>,
    pub(super) groups: Vec<(u64, UpdateGroup)>,
    pub(super) next_group: u64,
    pub(super) next_peer: PeerId,
    pub(super) ctx: ExportContext,
    pub(super) local: Arc<Source>,
    pub(super) host_policy: HostPolicy,
    pub(super) claims: Claims,
    pub(super) changed_paths: usize,
    pub(super) last_flush: Option<Instant>,
    pub(super) flush_wanted: Option<Instant>,
    pub(super) cpus: usize,
    /// Appliances and hosts by address, so a connection or an event never
    /// scans every peer.
    pub(super) appliance_addrs: FxHashMap<IpAddr, PeerId>,
    pub(super) host_addrs: FxHashMap<IpAddr, PeerId>,
    /// Graceful-restart deadlines, earliest first; an entry whose peer no
    /// longer restarts with that deadline is dropped when it comes up.
    pub(super) restart_deadlines: BinaryHeap<Reverse<(Instant, PeerId)>>,
    /// Hosts whose session went away (or never came): forgotten by a
    /// later [`RouteServer::tick`] once nothing is left of them (no session
    /// task, no paths, no restart).
    pub(super) departing: Vec<PeerId>,
    /// When `departing` was last looked at, and how many it kept then.
    pub(super) departing_swept: Option<(Instant, usize)>,
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
            host_policy: host_policy_of(&cfg),
            claims: Claims::default(),
            cfg: cfg.clone(),
            changed_paths: 0,
            last_flush: None,
            flush_wanted: None,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_SHARDS)),
            appliance_addrs: FxHashMap::default(),
            host_addrs: FxHashMap::default(),
            restart_deadlines: BinaryHeap::new(),
            departing: Vec::new(),
            departing_swept: None,
        };
        rs.originate(&cfg.vnet_prefixes);
        for p in &cfg.peers {
            rs.add_appliance(p);
        }
        rs.table.decide();
        rs
    }

    /// Originates the VNet prefixes `prefixes`.
    fn originate(&mut self, prefixes: &[Prefix]) {
        let attrs = self.table.intern(&local_route_attrs());
        for p in prefixes {
            self.table.insert(
                *p,
                Path {
                    source: self.local.clone(),
                    path_id: 0,
                    attrs: attrs.clone(),
                    stale: false,
                    rejected: None,
                },
            );
        }
    }

    /// A configured appliance's entry (no session yet).
    fn add_appliance(&mut self, p: &PeerConfig) -> PeerId {
        let id = self.alloc_id();
        let mut e = PeerEntry::new(
            id,
            p.name.clone(),
            SourceKind::Appliance,
            p.address,
            p.asn,
            p.max_prefixes,
        );
        e.graceful_restart = p.graceful_restart;
        self.peers.insert(id, e);
        self.appliance_addrs.insert(p.address, id);
        id
    }

    /// Applies a reload [`Plan`] computed for `new`: removed appliances and
    /// hosts outside the new ranges get Cease/3 and reset appliances
    /// Cease/6, their routes withdrawn; new and reset appliances get fresh
    /// entries, whose ids are returned (start their sessions); limits, the
    /// VNet prefixes and the host policy change in place, and every path
    /// they concern is judged again. Unchanged sessions are not touched.
    pub fn reconfigure(&mut self, new: Arc<ServerConfig>, plan: &Plan) -> Vec<PeerId> {
        let by_name = |rs: &RouteServer, name: &str| {
            rs.peers
                .values()
                .find(|p| p.kind == SourceKind::Appliance && p.name == name)
                .map(|p| p.id)
        };
        for name in &plan.removed {
            if let Some(id) = by_name(self, name) {
                self.remove_peer(id, CeaseSubcode::PeerDeconfigured);
            }
        }
        for (name, _) in &plan.reset {
            if let Some(id) = by_name(self, name) {
                self.remove_peer(id, CeaseSubcode::OtherConfigChange);
            }
        }
        let outside: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.kind == SourceKind::Host)
            .filter(|p| !new.hosts.ranges.iter().any(|r| r.contains_addr(p.addr)))
            .map(|p| p.id)
            .collect();
        for id in outside {
            self.remove_peer(id, CeaseSubcode::PeerDeconfigured);
        }
        self.cfg = new.clone();
        self.host_policy = host_policy_of(&new);
        let start = plan
            .added
            .iter()
            .chain(plan.reset.iter().map(|(n, _)| n))
            .filter_map(|name| new.peers.iter().find(|p| &p.name == name))
            .map(|pc| self.add_appliance(pc))
            .collect();
        let limits: Vec<(PeerId, u32, bool)> = self
            .peers
            .values()
            .filter_map(|p| match p.kind {
                SourceKind::Host => {
                    Some((p.id, new.hosts.max_prefixes, new.hosts.graceful_restart))
                }
                _ => new
                    .peers
                    .iter()
                    .find(|c| c.name == p.name)
                    .map(|c| (p.id, c.max_prefixes, c.graceful_restart)),
            })
            .collect();
        for (id, max, gr) in limits {
            let p = self.peers.get_mut(&id).expect("peer");
            p.max_prefixes = max;
            p.graceful_restart = gr;
            if p.received > max && p.live.is_some() {
                let received = p.received;
                self.max_prefix_exceeded(id, Family::IPV4_UNICAST, max, received);
            }
        }
        for p in &plan.vnet_removed {
            self.table.remove(p, LOCAL_PEER, 0);
        }
        self.originate(&plan.vnet_added);
        if !plan.vnet_added.is_empty()
            || !plan.vnet_removed.is_empty()
            || plan.hosts.contains(&"allow")
        {
            self.reimport();
        }
        start
    }

    /// Ends a peer's session with Cease/`subcode` and forgets it and its
    /// routes.
    fn remove_peer(&mut self, id: PeerId, subcode: CeaseSubcode) {
        let Some(p) = self.peers.get(&id) else { return };
        let n = Notification::error(subcode, Vec::new());
        info!(peer = %p.name, "reload: ending the session with {n}");
        if let Some(c) = &p.cmd {
            let _ = c.send(SessionCommand::Stop(n));
        }
        self.detach(id);
        self.table.remove_peer_where(id, |_, _| true);
        self.resync_claims(id);
        self.forget(id);
    }

    /// Drops a peer's entry and its address index.
    fn forget(&mut self, id: PeerId) {
        if let Some(p) = self.peers.remove(&id) {
            let index = match p.kind {
                SourceKind::Host => &mut self.host_addrs,
                _ => &mut self.appliance_addrs,
            };
            if index.get(&p.addr) == Some(&id) {
                index.remove(&p.addr);
            }
        }
    }

    /// Judges every learned path again by the prefix rules of import
    /// policy (after the VNet prefixes or `[[hosts.allow]]` changed).
    fn reimport(&mut self) {
        let statically = |r: &Option<Rejection>| {
            matches!(
                r,
                Some(Rejection::OutsideVnet | Rejection::VnetAuthority(_) | Rejection::NotAllowed)
            )
        };
        let paths: Vec<(Prefix, Arc<Source>, u32, Option<Rejection>)> = self
            .table
            .iter()
            .flat_map(|(p, d)| {
                d.paths
                    .iter()
                    .filter(|x| x.source.kind != SourceKind::Local)
                    .map(move |x| {
                        (
                            *p,
                            x.source.clone(),
                            x.path_id,
                            x.rejected.as_deref().cloned(),
                        )
                    })
            })
            .collect();
        for (prefix, source, path_id, old) in paths {
            let c = Claim {
                peer: source.peer,
                path_id,
            };
            if matches!(
                old,
                Some(Rejection::OwnAsInPath | Rejection::ReflectionLoop)
            ) {
                continue;
            }
            let new = match (source.kind, self.import_check_prefix(&prefix, &source)) {
                (SourceKind::Host, Some(r)) => {
                    if !statically(&old) {
                        self.release_claim(prefix, c);
                    }
                    Some(r)
                }
                (SourceKind::Host, None) if statically(&old) => {
                    self.claim(prefix, &source, path_id).err()
                }
                (SourceKind::Host, None) => continue,
                (_, verdict) => verdict,
            };
            if new != old {
                self.set_rejection(prefix, c, new);
            }
        }
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
        self.appliance_addrs.get(&addr).copied()
    }

    /// The host entry for this address, created when the address lies in
    /// `[hosts] ranges` (dynamic neighbours). `None`: refuse the connection.
    pub fn host_for(&mut self, addr: IpAddr) -> Option<PeerId> {
        if let Some(id) = self.host_addrs.get(&addr) {
            return Some(*id);
        }
        if !self.cfg.hosts.ranges.iter().any(|r| r.contains_addr(addr)) {
            return None;
        }
        let id = self.alloc_id();
        let max = self.cfg.hosts.max_prefixes;
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
        self.host_addrs.insert(addr, id);
        self.departing.push(id);
        Some(id)
    }

    /// Apply one session event.
    pub fn handle(&mut self, msg: PeerMsg, now: Instant) {
        match msg.event {
            SessionEvent::Established(e) => self.established(msg.peer, msg.epoch, *e, now),
            SessionEvent::Routes(b) => self.routes(msg.peer, msg.epoch, b, now),
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

    fn established(&mut self, id: PeerId, epoch: u64, e: Established, now: Instant) {
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
                let swept = sweep_stale(&mut self.table, id, f, peer.received);
                peer.received = peer.received.saturating_sub(swept as u32);
            }
            if r.families.is_empty() {
                peer.restarting = None;
            }
        }
        self.resync_claims(id);
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
            g.join(
                Member {
                    peer: id,
                    out: e.out.clone(),
                },
                &self.table,
                &self.ctx,
                now,
            );
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

    /// Import policy's verdict on a whole batch: what its attributes alone
    /// decide.
    fn import_check_attrs(&self, attrs: &PathAttributes, source: &Source) -> Option<Rejection> {
        match source.kind {
            SourceKind::Appliance => attrs
                .as_path
                .as_ref()
                .is_some_and(|p| p.contains(self.cfg.asn))
                .then_some(Rejection::OwnAsInPath),
            SourceKind::Host => (attrs.originator_id == Some(self.cfg.router_id)
                || attrs.cluster_list.contains(&self.cfg.router_id))
            .then_some(Rejection::ReflectionLoop),
            SourceKind::Local => None,
        }
    }

    /// Import policy's verdict on one prefix of a batch its attributes
    /// passed.
    fn import_check_prefix(&self, prefix: &Prefix, source: &Source) -> Option<Rejection> {
        match source.kind {
            SourceKind::Appliance => self
                .cfg
                .vnet_prefixes
                .iter()
                .find(|v| v.covers(prefix))
                .map(|v| Rejection::InsideVnet(*v)),
            SourceKind::Host => self.host_policy.admit(source.addr, prefix).err(),
            SourceKind::Local => None,
        }
    }

    fn routes(&mut self, id: PeerId, epoch: u64, batches: Vec<RouteBatch>, now: Instant) {
        if !self.live(id, epoch) {
            return;
        }
        let source = self.peers[&id].live.as_ref().expect("live").source.clone();
        let host = source.kind == SourceKind::Host;
        let limit = self.peers[&id].max_prefixes;
        let mut received = self.peers[&id].received;
        if let Some((family, count)) = self.over_limit(id, &batches, received, limit) {
            self.max_prefix_exceeded(id, family, limit, count);
            return;
        }
        for b in batches {
            self.changed_paths += b.withdraw.len() + b.announce.len();
            for w in &b.withdraw {
                if self.table.remove(&w.prefix, id, w.path_id) == CountChange::Removed {
                    received = received.saturating_sub(1);
                    if host {
                        self.release_claim(
                            w.prefix,
                            Claim {
                                peer: id,
                                path_id: w.path_id,
                            },
                        );
                    }
                }
            }
            let Some(attrs) = b.attrs else { continue };
            let refused = self.import_check_attrs(&attrs, &source);
            let attrs = match host {
                true => match self
                    .host_policy
                    .normalise(&attrs, source.addr, b.family.afi == 2)
                {
                    Some(a) => self.table.intern(&a),
                    None => self.table.intern(&attrs),
                },
                false if attrs.local_pref.is_none() => {
                    let mut a = Arc::unwrap_or_clone(attrs);
                    a.local_pref = Some(DEFAULT_LOCAL_PREF);
                    self.table.intern(&a)
                }
                false => self.table.intern(&attrs),
            };
            for n in &b.announce {
                let mut rejected = refused
                    .clone()
                    .or_else(|| self.import_check_prefix(&n.prefix, &source));
                if host && rejected.is_none() {
                    rejected = self.claim(n.prefix, &source, n.path_id).err();
                }
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
        let quiet = self.last_flush.is_none_or(|t| now >= t + FLUSH_SPACING);
        if quiet || self.changed_paths >= self.early_flush_paths() {
            self.last_flush = Some(now);
            self.flush();
        }
    }

    /// Changed paths after which [`RouteServer::routes`] flushes by itself,
    /// so output keeps flowing while a long burst still arrives (the first
    /// routes after a quiet spell go out at once). Each flush re-decides
    /// the prefixes changed since the last, and peers send their tables
    /// one after another, so a prefix is decided once per flush its paths
    /// are spread over: the fewer flushes in a burst, the less work. And a
    /// flush costs one queued write per group member, so the more members,
    /// the more paths each flush carries.
    fn early_flush_paths(&self) -> usize {
        let members: usize = self.groups.iter().map(|(_, g)| g.members.len()).sum();
        EARLY_FLUSH_PATHS * (members / EARLY_FLUSH_MEMBERS).max(1)
    }

    /// The prefix count one read of UPDATEs would take a peer to, when that
    /// is above its limit: the whole read is then refused before any of it
    /// is decided or exported (a host flooding /32s gets none through).
    fn over_limit(
        &self,
        id: PeerId,
        batches: &[RouteBatch],
        received: u32,
        limit: u32,
    ) -> Option<(Family, u32)> {
        let announced: usize = batches.iter().map(|b| b.announce.len()).sum();
        if received as usize + announced <= limit as usize {
            return None;
        }
        let present = |p: &Prefix, path_id: u32| {
            self.table
                .get(p)
                .is_some_and(|d| d.paths.iter().any(|x| x.same_slot(id, path_id)))
        };
        let mut count = i64::from(received);
        let mut added = FxHashSet::default();
        for b in batches {
            count -= b
                .withdraw
                .iter()
                .filter(|w| present(&w.prefix, w.path_id))
                .count() as i64;
            for n in &b.announce {
                if !present(&n.prefix, n.path_id) && added.insert((n.prefix, n.path_id)) {
                    count += 1;
                }
            }
            if count > i64::from(limit) {
                return Some((b.family, count as u32));
            }
        }
        None
    }

    /// Rules 3–4 of the host policy for an admitted host path, logged when
    /// it is refused.
    fn claim(&mut self, prefix: Prefix, source: &Source, path_id: u32) -> Result<(), Rejection> {
        let granted = self.host_policy.granted(source.addr, &prefix);
        let peers = &self.peers;
        let claim = Claim {
            peer: source.peer,
            path_id,
        };
        let r = self
            .claims
            .claim(prefix, claim, granted, |h| peer_name(peers, h));
        if let Err(e) = &r {
            warn!(peer = %source.name, "{prefix} refused: {e}");
        }
        r
    }

    /// A host path went away: the prefix may have a new holder, and paths
    /// waiting for it to go are decided again.
    fn release_claim(&mut self, prefix: Prefix, claim: Claim) {
        let r = self.claims.release(&prefix, claim);
        self.apply_released(r);
    }

    fn apply_released(&mut self, r: Released) {
        for (prefix, c) in r.promoted {
            if let Some(name) = self.peers.get(&c.peer).map(|p| p.name.clone()) {
                info!(peer = %name, "{prefix}: its announcement is used now that the older one is gone");
            }
            self.set_rejection(prefix, c, None);
        }
        for (prefix, c) in r.unblocked {
            let Some(source) = self
                .table
                .get(&prefix)
                .and_then(|d| d.paths.iter().find(|x| x.same_slot(c.peer, c.path_id)))
                .map(|x| x.source.clone())
            else {
                continue;
            };
            let verdict = self.claim(prefix, &source, c.path_id).err();
            self.set_rejection(prefix, c, verdict);
        }
    }

    /// Forgets the claims of `id`'s paths that left the table.
    fn resync_claims(&mut self, id: PeerId) {
        for (prefix, path_id) in self.claims.of_peer(id) {
            let kept = self
                .table
                .get(&prefix)
                .is_some_and(|d| d.paths.iter().any(|x| x.same_slot(id, path_id)));
            if !kept {
                self.release_claim(prefix, Claim { peer: id, path_id });
            }
        }
    }

    fn set_rejection(&mut self, prefix: Prefix, c: Claim, rejected: Option<Rejection>) {
        let Some(mut path) = self
            .table
            .get(&prefix)
            .and_then(|d| d.paths.iter().find(|x| x.same_slot(c.peer, c.path_id)))
            .cloned()
        else {
            return;
        };
        path.rejected = rejected.map(Box::new);
        self.table.insert(prefix, path);
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
        self.resync_claims(id);
    }

    /// Take a peer out of its group and forget its live session.
    fn detach(&mut self, id: PeerId) {
        let Some(live) = self.peers.get_mut(&id).and_then(|p| p.live.take()) else {
            return;
        };
        if self
            .peers
            .get(&id)
            .is_some_and(|p| p.kind == SourceKind::Host)
        {
            self.departing.push(id);
        }
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
            let n = sweep_stale(&mut self.table, id, f, peer.received);
            peer.received = peer.received.saturating_sub(n as u32);
            info!(peer = %peer.name, "End-of-RIB for {f}: removed {n} stale paths");
        }
        if r.families.is_empty() {
            peer.restarting = None;
        }
        self.resync_claims(id);
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
            let enc = g.dump(&self.table, &self.ctx, &[f]);
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
        let holds_paths = peer.received > 0 || peer.restarting.is_some();
        if families.is_empty() {
            let n = remove_held(&mut self.table, id, holds_paths, |_, _| true);
            info!(peer = %peer.name, "session down ({reason}): withdrew {n} paths");
            peer.received = 0;
            peer.restarting = None;
        } else {
            let keep = families.clone();
            let n = match holds_paths {
                true => self
                    .table
                    .mark_stale(id, |p| keep.contains(&Family::unicast(p.afi()))),
                false => 0,
            };
            let dropped = remove_held(&mut self.table, id, holds_paths, |p, _| {
                !keep.contains(&Family::unicast(p.afi()))
            });
            peer.received = peer.received.saturating_sub(dropped as u32);
            info!(
                peer = %peer.name,
                "session down ({reason}): graceful restart, keeping {n} paths as stale for {gr_time}s"
            );
            let deadline = now + Duration::from_secs(u64::from(gr_time));
            peer.restarting = Some(Restarting { deadline, families });
            self.restart_deadlines.push(Reverse((deadline, id)));
        }
        self.resync_claims(id);
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

    /// Expire graceful-restart state and forget departed hosts. Looks only
    /// at the restarts that are due and the hosts that lost their session.
    pub fn tick(&mut self, now: Instant) {
        let generation = self.table.generation();
        for (_, g) in &mut self.groups {
            g.expire_dump(generation, now);
        }
        while let Some(Reverse((deadline, id))) = self.restart_deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.restart_deadlines.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer
                .restarting
                .as_ref()
                .is_none_or(|r| r.deadline != deadline)
            {
                continue;
            }
            let n = remove_held(&mut self.table, id, peer.received > 0, |_, p| p.stale);
            let peer = self.peers.get_mut(&id).expect("peer");
            peer.received = peer.received.saturating_sub(n as u32);
            peer.restarting = None;
            info!(peer = %peer.name, "graceful restart time over: removed {n} stale paths");
            self.resync_claims(id);
        }
        let due = match self.departing_swept {
            None => true,
            Some((at, kept)) => {
                now >= at + DEPARTING_SWEEP || self.departing.len() >= 2 * kept.max(32)
            }
        };
        if !due || self.departing.is_empty() {
            return;
        }
        let mut waiting = Vec::new();
        for id in std::mem::take(&mut self.departing) {
            let Some(p) = self.peers.get(&id) else {
                continue;
            };
            if p.kind != SourceKind::Host || p.live.is_some() {
                continue;
            }
            if p.restarting.is_some() || p.received > 0 || p.has_session() {
                waiting.push(id);
            } else {
                self.forget(id);
            }
        }
        self.departing_swept = Some((now, waiting.len()));
        self.departing = waiting;
    }

    /// When [`RouteServer::tick`] or a deferred flush next has work: a
    /// graceful restart ending, a deferred flush, or a kept dump to let go.
    /// (Departed hosts are forgotten by the next tick that comes anyway.)
    pub fn next_deadline(&self) -> Option<Instant> {
        let restart = self.restart_deadlines.peek().map(|Reverse((t, _))| *t);
        let dumps = self.groups.iter().filter_map(|(_, g)| g.dump_expires());
        [restart, self.flush_wanted]
            .into_iter()
            .flatten()
            .chain(dumps)
            .min()
    }

    /// [`RouteServer::flush`] unless the last flush asked for this way was
    /// less than [`FLUSH_SPACING`] ago; then the flush is deferred to
    /// [`RouteServer::next_deadline`].
    pub fn flush_due(&mut self, now: Instant) -> u64 {
        if !self.table.has_dirty() {
            return 0;
        }
        if let Some(t) = self.last_flush
            && now < t + FLUSH_SPACING
        {
            self.flush_wanted = Some(t + FLUSH_SPACING);
            return 0;
        }
        self.last_flush = Some(now);
        self.flush()
    }

    /// Decide changed prefixes and send the resulting UPDATEs to every group:
    /// no table lookup per prefix, one encoding per group.
    pub fn flush(&mut self) -> u64 {
        self.changed_paths = 0;
        self.flush_wanted = None;
        if !self.table.has_dirty() {
            return 0;
        }
        let shards = if self.table.dirty_len() >= PARALLEL_FLUSH {
            self.cpus
        } else {
            1
        };
        let (groups, ctx) = (&self.groups, &self.ctx);
        let (changed, counts) = self.table.decide_with(shards, |changes, shard| {
            let mut counts = vec![(0u64, 0isize); groups.len()];
            for chunk in changes.chunks(EXPORT_CHUNK) {
                let mut out: Vec<Changes> = groups
                    .iter()
                    .map(|_| Changes::with_capacity(chunk.len()))
                    .collect();
                for c in chunk {
                    let dest = shard.after(c);
                    let skip_appliances =
                        !ctx.branch_to_branch && dest.is_some_and(|d| !d.concerns_appliances());
                    let (before, after) = (shard.before(c), dest.map(|d| d.decided()));
                    for (((_, g), ch), (_, delta)) in
                        groups.iter().zip(out.iter_mut()).zip(counts.iter_mut())
                    {
                        if skip_appliances && matches!(g.key.audience, Audience::Appliances { .. })
                        {
                            continue;
                        }
                        *delta += refresh(&g.key, ch, &c.prefix, &before, after.as_ref(), ctx);
                    }
                }
                for (((_, g), ch), (sent, _)) in groups.iter().zip(out).zip(counts.iter_mut()) {
                    *sent += g.queue(ch.encode(&g.key, ctx));
                }
            }
            counts
        });
        let mut sent = 0;
        for shard in counts {
            for ((_, g), (messages, delta)) in self.groups.iter_mut().zip(shard) {
                g.count(delta);
                g.messages_encoded += messages;
                sent += messages;
            }
        }
        self.table.release(changed);
        sent
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
}

fn host_policy_of(cfg: &ServerConfig) -> HostPolicy {
    HostPolicy::new(
        cfg.vnet_prefixes.clone(),
        cfg.hosts
            .allow
            .iter()
            .map(|a| AllowRule {
                range: a.range,
                prefixes: a.prefixes.clone(),
            })
            .collect(),
    )
}

fn peer_name(peers: &FxHashMap<PeerId, PeerEntry>, id: PeerId) -> String {
    peers
        .get(&id)
        .map_or_else(|| format!("peer {id}"), |p| p.name.clone())
}

/// Removes `id`'s stale paths of `f`; a peer that holds no paths at all
/// (`received`, a host without VM prefixes) costs no look at the table.
fn sweep_stale(table: &mut Table, id: PeerId, f: Family, received: u32) -> usize {
    remove_held(table, id, received > 0, |p, x| {
        x.stale && Family::unicast(p.afi()) == f
    })
}

/// Removes the paths of `id` that `pred` selects. A peer that `holds` no
/// path (none received, no restart: most hosts) costs no look at the
/// table; in debug builds (the tests, the fuzz targets) the table is
/// checked to agree.
fn remove_held(
    table: &mut Table,
    id: PeerId,
    holds: bool,
    pred: impl Fn(&Prefix, &Path) -> bool,
) -> usize {
    if !holds {
        debug_assert!(
            table
                .iter()
                .all(|(_, d)| d.decided().paths().all(|p| p.source.peer != id)),
            "peer {id} holds paths its count says it does not"
        );
        return 0;
    }
    table.remove_peer_where(id, pred)
}

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;
