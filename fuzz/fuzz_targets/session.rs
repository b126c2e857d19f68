//! Fuzz the route server over whole sessions: appliances and hosts connect,
//! send UPDATEs (built from a small pool of prefixes and attribute sets, or
//! arbitrary bytes), End-of-RIB, ROUTE-REFRESH and NOTIFICATIONs, lose
//! their connections, hit their hold timers and reconnect, while time moves
//! on in fuzzer-chosen steps. Each peer runs the real FSM
//! (`steer::bgp::fsm`) and its messages go through the codec and `ingest`
//! as the session driver does; the route server core
//! (`steer::server::core::RouteServer`) gets the resulting events,
//! `tick` and `flush`, and the max-prefix stops it sends back.
//!
//! Properties beyond "no panic", checked after every step:
//! - every path in the table comes from the local source or from a peer
//!   that is established or restarting; so a peer that went down without
//!   graceful restart has no paths left;
//! - stale paths belong to restarting peers only;
//! - a peer's received count is the number of its paths in the table;
//!
//! and after every flush: what each established receiver (host or
//! appliance) decodes from its send queue is exactly what export policy
//! makes of the table now (prefix, path id and next hop).

#![no_main]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use steer::bgp::attribute::{AsPath, Origin, PathAttributes, community};
use steer::bgp::capability::{AddPathFamily, Capability, GracefulRestart};
use steer::bgp::error::Notification;
use steer::bgp::fsm::{Fsm, Input, Output, State, Timer};
use steer::bgp::message::{
    CodecConfig, Message, Open, RouteRefresh, decode, encode_announce, encode_end_of_rib,
    encode_withdraw, frame_len,
};
use steer::bgp::negotiate::Negotiated;
use steer::bgp::nlri::{Family, Nlri};
use steer::bgp::peer::{Established, Outbound, PeerId, PeerMsg, SessionCommand, SessionEvent};
use steer::bgp::routes::{IngestContext, ingest};
use steer::config::{ConfigFile, ServerConfig};
use steer::prefix::Prefix;
use steer::rib::export::{Audience, ExportCache, ExportContext, GroupKey, export};
use steer::rib::table::SourceKind;
use steer::server::core::{LOCAL_PEER, RouteServer};
use steer_fuzz::{Role, SERVER_ASN, SERVER_ID, frame};
use tokio::sync::mpsc;

const CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
vnet_prefixes = ["10.1.0.0/16", "2001:db8:a000::/36"]
ipv6_next_hop = "2001:db8:1::4"
graceful_restart_time = 90

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010

[[peer]]
name = "fw1"
address = "10.1.0.20"
asn = 65020
max_prefixes = 4
graceful_restart = true

[[peer]]
name = "fw2"
address = "10.1.0.21"
asn = 65021

[hosts]
ranges = ["10.1.0.0/24"]
max_prefixes = 3
"#;

const APPLIANCES: [(&str, u32); 3] = [
    ("10.1.0.10", 65010),
    ("10.1.0.20", 65020),
    ("10.1.0.21", 65021),
];
const HOSTS: [&str; 3] = ["10.1.0.31", "10.1.0.32", "10.1.0.33"];

const PREFIXES: [&str; 16] = [
    "10.250.0.0/16",
    "0.0.0.0/0",
    "198.51.100.0/24",
    "10.1.1.0/24",
    "10.1.2.0/24",
    "10.1.0.0/16",
    "10.1.5.0/24",
    "203.0.113.0/24",
    "10.1.1.128/25",
    "192.0.2.0/24",
    "::/0",
    "2001:db8:a000::/36",
    "2001:db8:a001::/48",
    "2001:db8:ff::/48",
    "2001:db8:a002::/48",
    "10.250.1.0/24",
];

/// One step of the scenario.
#[derive(Arbitrary, Debug)]
enum Op {
    /// The peer (re)connects; `caps` chooses its capabilities.
    Connect { peer: u8, caps: u8, hold: u8 },
    /// The peer announces prefixes from the pool with an attribute set.
    Announce {
        peer: u8,
        prefixes: Vec<u8>,
        attrs: u8,
    },
    /// The peer withdraws prefixes from the pool.
    Withdraw { peer: u8, prefixes: Vec<u8> },
    /// The peer sends End-of-RIB.
    EndOfRib { peer: u8, v6: bool },
    /// The peer asks for our routes again.
    RouteRefresh { peer: u8, v6: bool },
    /// The peer sends a message of this type with arbitrary body.
    Raw { peer: u8, kind: u8, body: Vec<u8> },
    /// The connection fails.
    TcpFail { peer: u8 },
    /// The peer sends a NOTIFICATION.
    Notify { peer: u8, code: u8, subcode: u8 },
    /// Our hold timer for the peer expires.
    HoldExpire { peer: u8 },
    /// The server decides and sends.
    Flush,
    /// Time passes.
    Advance { secs: u8 },
}

#[derive(Arbitrary, Debug)]
struct Scenario {
    branch_to_branch: bool,
    ops: Vec<Op>,
}

/// One simulated peer and our session driver for it.
struct Sim {
    addr: IpAddr,
    asn: u32,
    host: bool,
    id: Option<PeerId>,
    fsm: Option<Fsm>,
    epoch: u64,
    negotiated: Option<Negotiated>,
    rx: Option<mpsc::UnboundedReceiver<Bytes>>,
    cmd: Option<mpsc::UnboundedReceiver<SessionCommand>>,
    /// What the peer holds from us: (prefix, path id) -> next hop.
    held: BTreeMap<(Prefix, u32), Option<IpAddr>>,
}

struct World {
    rs: RouteServer,
    sims: Vec<Sim>,
    now: Instant,
}

fn prefix(i: u8) -> Prefix {
    PREFIXES[usize::from(i) % PREFIXES.len()]
        .parse()
        .expect("pool prefix")
}

fn their_open(s: &Sim, caps: u8, hold: u8) -> Open {
    let mut c = vec![Capability::Multiprotocol(Family::IPV4_UNICAST)];
    if caps & 1 != 0 {
        c.push(Capability::Multiprotocol(Family::IPV6_UNICAST));
    }
    if caps & 2 != 0 {
        c.push(Capability::FourOctetAs(s.asn));
    }
    if caps & 4 != 0 {
        c.push(Capability::AddPath(
            [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
                .into_iter()
                .map(|family| AddPathFamily {
                    family,
                    receive: true,
                    send: caps & 8 != 0,
                })
                .collect(),
        ));
    }
    if caps & 0x10 != 0 {
        c.push(Capability::GracefulRestart(GracefulRestart {
            restarting: caps & 0x20 != 0,
            notification: caps & 0x40 != 0,
            restart_time: 60,
            families: vec![
                (Family::IPV4_UNICAST, caps & 0x80 == 0),
                (Family::IPV6_UNICAST, true),
            ],
        }));
    }
    c.push(Capability::RouteRefresh);
    let hold = match hold % 4 {
        0 => 0,
        1 => 3,
        2 => 90,
        _ => 240,
    };
    let id = match s.addr {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::new(192, 0, 2, 1),
    };
    Open::new(s.asn, hold, id, c)
}

fn attrs_for(s: &Sim, choice: u8, v6: bool) -> PathAttributes {
    let mut path: Vec<u32> = if s.host { Vec::new() } else { vec![s.asn] };
    match choice & 3 {
        1 => path.extend([s.asn, s.asn]),
        2 => path.push(SERVER_ASN),
        3 => path.push(65020),
        _ => {}
    }
    let next_hop = match ((choice >> 2) & 3, v6) {
        (0 | 1, false) => s.addr,
        (2, false) => IpAddr::V4(Ipv4Addr::new(10, 1, 0, 99)),
        (3, false) => IpAddr::V4(Ipv4Addr::new(10, 1, 0, 4)),
        (0 | 1, true) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10)),
        (_, true) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x20)),
        _ => unreachable!("two bits"),
    };
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path)),
        next_hop: Some(next_hop),
        med: (choice & 0x10 != 0).then_some(10),
        local_pref: (s.host && choice & 0x20 != 0).then_some(100),
        communities: match choice >> 6 {
            1 => vec![community::NO_EXPORT],
            2 => vec![community::NO_ADVERTISE],
            _ => Vec::new(),
        },
        ..PathAttributes::default()
    }
}

/// The peer's side of the codec: what it sends is what we receive.
fn peer_codec(n: &Negotiated) -> CodecConfig {
    let mut c = n.codec.clone();
    c.add_path_send = c.add_path_receive;
    c
}

impl World {
    fn new(branch_to_branch: bool) -> World {
        let text = format!("branch_to_branch = {branch_to_branch}\n{CONFIG}");
        let cfg = ServerConfig::from_str(std::path::Path::new("fuzz.toml"), &text)
            .expect("the fuzz server configuration is valid");
        let rs = RouteServer::new(Arc::new(cfg));
        let mut sims = Vec::new();
        for (addr, asn) in APPLIANCES {
            let addr: IpAddr = addr.parse().expect("address");
            let id = rs.appliance_by_addr(addr).expect("configured appliance");
            sims.push(Sim::new(addr, asn, false, Some(id)));
        }
        for addr in HOSTS {
            sims.push(Sim::new(
                addr.parse().expect("address"),
                SERVER_ASN,
                true,
                None,
            ));
        }
        let mut w = World {
            rs,
            sims,
            now: Instant::now(),
        };
        for i in 0..APPLIANCES.len() {
            w.attach(i);
        }
        w
    }

    /// The appliance's session task: a command channel and an FSM that
    /// waits for the connection.
    fn attach(&mut self, i: usize) {
        let s = &mut self.sims[i];
        let Some(id) = s.id else { return };
        let (tx, rx) = mpsc::unbounded_channel();
        self.rs.peer_mut(id).expect("peer").cmd = Some(tx);
        s.cmd = Some(rx);
        let role = if s.host {
            Role::ServerToHost
        } else {
            Role::ServerToAppliance
        };
        let mut fsm = Fsm::new(role.fsm_config(s.asn, 180, 90));
        fsm.process(Input::Start);
        s.fsm = Some(fsm);
    }

    fn sim(&mut self, peer: u8) -> usize {
        usize::from(peer) % self.sims.len()
    }

    fn emit(&mut self, i: usize, event: SessionEvent) {
        let s = &self.sims[i];
        let Some(peer) = s.id else { return };
        self.rs.handle(
            PeerMsg {
                peer,
                epoch: s.epoch,
                event,
            },
            self.now,
        );
    }

    /// Feed the FSM and carry out what it asks, as the session driver does.
    fn input(&mut self, i: usize, input: Input) {
        let Some(fsm) = self.sims[i].fsm.as_mut() else {
            return;
        };
        let outs = fsm.process(input);
        for o in outs {
            match o {
                Output::Established(n) => self.established(i, *n),
                Output::Update(u) => {
                    let s = &self.sims[i];
                    let Some(n) = &s.negotiated else { continue };
                    let ctx = IngestContext {
                        negotiated: n,
                        local_addr: IpAddr::V4(SERVER_ID),
                        ebgp: n.codec.ebgp,
                    };
                    let got = ingest(u, &ctx);
                    if !got.batches.is_empty() {
                        self.emit(i, SessionEvent::Routes(got.batches));
                    }
                    if let Some(f) = got.end_of_rib {
                        self.emit(i, SessionEvent::EndOfRib(f));
                    }
                }
                Output::RouteRefresh(r) => self.emit(i, SessionEvent::RouteRefresh(r.family)),
                Output::Down {
                    reason,
                    was_established,
                } => {
                    if was_established {
                        self.emit(i, SessionEvent::Down { reason });
                    }
                    let s = &mut self.sims[i];
                    s.negotiated = None;
                    s.rx = None;
                    s.held.clear();
                }
                Output::Connect
                | Output::Disconnect
                | Output::Abort(_)
                | Output::Send(_)
                | Output::StartTimer(..)
                | Output::StopTimer(_) => {}
            }
        }
        let s = &mut self.sims[i];
        if s.host && s.fsm.as_ref().is_some_and(|f| f.state() == State::Idle) {
            // A dynamic neighbour's session task ends with its session.
            s.fsm = None;
            s.cmd = None;
            s.id = None;
        }
    }

    fn established(&mut self, i: usize, n: Negotiated) {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = &mut self.sims[i];
        let Some(id) = s.id else { return };
        let status = self.rs.peer(id).expect("peer").status.clone();
        s.epoch += 1;
        s.rx = Some(rx);
        s.held.clear();
        s.negotiated = Some(n.clone());
        let addr = s.addr;
        self.emit(
            i,
            SessionEvent::Established(Box::new(Established {
                negotiated: n,
                local: SocketAddr::new(IpAddr::V4(SERVER_ID), 179),
                remote: SocketAddr::new(addr, 40000),
                out: Outbound::new(tx, status),
            })),
        );
    }

    fn connect(&mut self, i: usize, caps: u8, hold: u8) {
        if self.sims[i].negotiated.is_some() {
            self.input(i, Input::TcpFailed("peer reconnected".into()));
        }
        if self.sims[i].host && self.sims[i].fsm.is_none() {
            let Some(id) = self.rs.host_for(self.sims[i].addr) else {
                return;
            };
            self.sims[i].id = Some(id);
            self.attach(i);
        }
        let Some(fsm) = self.sims[i].fsm.as_ref() else {
            return;
        };
        if !matches!(fsm.state(), State::Idle | State::Connect | State::Active) {
            self.input(i, Input::TcpFailed("peer reconnected".into()));
        }
        let open = their_open(&self.sims[i], caps, hold);
        self.input(i, Input::TcpConnected);
        self.input(i, Input::Message(Message::Open(open)));
        self.input(i, Input::Message(Message::Keepalive));
    }

    /// The peer sends these bytes (whole messages); we frame and decode
    /// them with the session's codec as the driver does.
    fn receive(&mut self, i: usize, bytes: &[u8]) {
        let codec = self.sims[i]
            .negotiated
            .as_ref()
            .map_or_else(CodecConfig::default, |n| n.codec.clone());
        let mut rest = bytes;
        while !rest.is_empty() {
            let input = match frame_len(rest, &codec) {
                Ok(Some(n)) if rest.len() >= n => {
                    let msg = &rest[..n];
                    rest = &rest[n..];
                    match decode(msg, &codec) {
                        Ok(m) => Input::Message(m),
                        Err(e) => Input::DecodeError(e),
                    }
                }
                Ok(_) => return,
                Err(e) => Input::DecodeError(e),
            };
            let fatal = matches!(input, Input::DecodeError(_));
            self.input(i, input);
            if fatal {
                return;
            }
        }
    }

    /// Sends an UPDATE per family for `picks`: announced with the
    /// attribute set `choice`, or withdrawn when there is none.
    fn update(&mut self, i: usize, picks: &[u8], choice: Option<u8>) {
        let Some(n) = &self.sims[i].negotiated else {
            return;
        };
        let codec = peer_codec(n);
        let mut out = Vec::new();
        for v6 in [false, true] {
            let nlri: Vec<Nlri> = picks
                .iter()
                .map(|p| prefix(*p))
                .filter(|p| p.addr().is_ipv6() == v6)
                .map(Nlri::new)
                .collect();
            let _ = match choice {
                Some(c) => {
                    encode_announce(&codec, &attrs_for(&self.sims[i], c, v6), &nlri, &mut out)
                }
                None => encode_withdraw(&codec, &nlri, &mut out),
            };
        }
        self.receive(i, &out);
    }

    fn send_message(&mut self, i: usize, m: Message) {
        let codec = self.sims[i]
            .negotiated
            .as_ref()
            .map_or_else(CodecConfig::default, peer_codec);
        let mut out = Vec::new();
        if m.encode(&codec, &mut out).is_ok() {
            self.receive(i, &out);
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Connect { peer, caps, hold } => {
                let i = self.sim(peer);
                self.connect(i, caps, hold);
            }
            Op::Announce {
                peer,
                prefixes,
                attrs,
            } => {
                let i = self.sim(peer);
                self.update(i, &prefixes, Some(attrs));
            }
            Op::Withdraw { peer, prefixes } => {
                let i = self.sim(peer);
                self.update(i, &prefixes, None);
            }
            Op::EndOfRib { peer, v6 } => {
                let i = self.sim(peer);
                let mut out = Vec::new();
                let f = if v6 {
                    Family::IPV6_UNICAST
                } else {
                    Family::IPV4_UNICAST
                };
                encode_end_of_rib(f, &mut out);
                self.receive(i, &out);
            }
            Op::RouteRefresh { peer, v6 } => {
                let i = self.sim(peer);
                let family = if v6 {
                    Family::IPV6_UNICAST
                } else {
                    Family::IPV4_UNICAST
                };
                self.send_message(
                    i,
                    Message::RouteRefresh(RouteRefresh { family, subtype: 0 }),
                );
            }
            Op::Raw { peer, kind, body } => {
                let i = self.sim(peer);
                if let Some(m) = frame(kind % 6, &body) {
                    self.receive(i, &m);
                }
            }
            Op::TcpFail { peer } => {
                let i = self.sim(peer);
                self.input(i, Input::TcpFailed("reset".into()));
            }
            Op::Notify {
                peer,
                code,
                subcode,
            } => {
                let i = self.sim(peer);
                self.send_message(
                    i,
                    Message::Notification(Notification::new(code % 8, subcode % 12)),
                );
            }
            Op::HoldExpire { peer } => {
                let i = self.sim(peer);
                self.input(i, Input::TimerExpired(Timer::Hold));
            }
            Op::Flush => {
                self.rs.flush();
                self.check_held();
            }
            Op::Advance { secs } => {
                self.now += Duration::from_secs(u64::from(secs));
                self.rs.tick(self.now);
            }
        }
        self.commands();
        self.check_table();
    }

    /// Carry out what the server told the sessions (max-prefix stops, BFD
    /// holds and releases as `bgp::session` does them).
    fn commands(&mut self) {
        for i in 0..self.sims.len() {
            while let Some(c) = self.sims[i].cmd.as_mut().and_then(|c| c.try_recv().ok()) {
                match c {
                    SessionCommand::StopFor(n, d) => self.input(i, Input::StopFor(n, d)),
                    SessionCommand::Stop(n) => self.input(i, Input::Stop(n)),
                    SessionCommand::Incoming(_) => unreachable!("no sockets here"),
                    SessionCommand::Hold(n) => self.input(i, Input::Stop(n)),
                    SessionCommand::Release => self.input(i, Input::Start),
                }
            }
        }
    }

    fn check_table(&self) {
        let views: BTreeMap<String, steer::server::view::PeerView> = self
            .rs
            .show_peers()
            .into_iter()
            .map(|v| (v.name.clone(), v))
            .collect();
        let mut counts: BTreeMap<PeerId, u32> = BTreeMap::new();
        for (prefix, dest) in self.rs.table().iter() {
            let mut hosts_used: Vec<PeerId> = dest
                .eligible()
                .filter(|p| p.source.kind == SourceKind::Host)
                .map(|p| p.source.peer)
                .collect();
            hosts_used.dedup();
            assert!(
                hosts_used.len() <= 1,
                "{prefix}: paths of several hosts are used at once: {hosts_used:?}"
            );
            for p in dest
                .eligible()
                .filter(|p| p.source.kind == SourceKind::Host)
            {
                assert!(
                    self.rs
                        .config()
                        .vnet_prefixes
                        .iter()
                        .any(|v| v.covers(prefix) && v != prefix),
                    "{prefix}: a host path outside the VNet is used"
                );
                assert_eq!(
                    p.attrs
                        .attributes()
                        .next_hop
                        .filter(|_| prefix.addr().is_ipv4() == p.source.addr.is_ipv4()),
                    (prefix.addr().is_ipv4() == p.source.addr.is_ipv4()).then_some(p.source.addr),
                    "{prefix}: a host path's next hop is not its session address"
                );
            }
            for p in &dest.paths {
                let id = p.source.peer;
                if id == LOCAL_PEER {
                    continue;
                }
                let entry = self
                    .rs
                    .peer(id)
                    .unwrap_or_else(|| panic!("{prefix}: path from unknown peer {id}"));
                let v = &views[&entry.name];
                assert!(
                    v.update_group.is_some() || v.stale,
                    "{prefix}: path from {} which is neither established nor restarting",
                    entry.name
                );
                assert!(
                    !p.stale || v.stale,
                    "{prefix}: stale path from {} which is not restarting",
                    entry.name
                );
                *counts.entry(id).or_default() += 1;
            }
        }
        for p in self.rs.peers() {
            let v = &views[&p.name];
            assert_eq!(
                v.received,
                counts.get(&p.id).copied().unwrap_or(0),
                "received count of {} disagrees with its paths in the table",
                p.name
            );
        }
    }

    /// Replay each receiver's queue and compare with export of the table.
    fn check_held(&mut self) {
        let cfg = self.rs.config();
        let ctx = ExportContext {
            local_asn: cfg.asn,
            router_id: cfg.router_id,
            branch_to_branch: cfg.branch_to_branch,
            ipv6_next_hop: cfg.ipv6_next_hop,
        };
        for s in &mut self.sims {
            let (Some(n), Some(rx)) = (&s.negotiated, s.rx.as_mut()) else {
                continue;
            };
            let mut codec = n.codec.clone();
            codec.add_path_receive = codec.add_path_send;
            while let Ok(b) = rx.try_recv() {
                let mut rest: &[u8] = &b;
                while !rest.is_empty() {
                    let len = frame_len(rest, &codec)
                        .expect("queued messages have valid headers")
                        .expect("queued messages are whole");
                    let m = decode(&rest[..len], &codec).expect("queued messages decode");
                    rest = &rest[len..];
                    let Message::Update(u) = m else {
                        panic!("queued a non-UPDATE: {m:?}")
                    };
                    assert!(
                        u.treat_as_withdraw.is_empty() && u.discarded.is_empty(),
                        "{u:?}"
                    );
                    let unreach = u.mp_unreach.iter().flat_map(|m| &m.withdrawn);
                    for w in u.withdrawn.iter().chain(unreach) {
                        s.held.remove(&(w.prefix, w.path_id));
                    }
                    for x in &u.nlri {
                        s.held.insert((x.prefix, x.path_id), u.attributes.next_hop);
                    }
                    if let Some(mp) = &u.mp_reach {
                        for x in &mp.nlri {
                            s.held.insert((x.prefix, x.path_id), Some(mp.next_hop));
                        }
                    }
                }
            }
            let key = GroupKey {
                audience: if s.host {
                    Audience::Hosts
                } else {
                    Audience::Appliances { asn: n.peer_asn }
                },
                codec: n.codec.clone(),
                families: n.families.clone(),
                local: IpAddr::V4(SERVER_ID),
            };
            let mut cache = ExportCache::default();
            let mut expected = BTreeMap::new();
            for (prefix, dest) in self.rs.table().iter() {
                for (id, a) in export(prefix, Some(dest), &key, &ctx, &mut cache) {
                    expected.insert((*prefix, id), a.next_hop);
                }
            }
            assert_eq!(
                s.held, expected,
                "what {} holds differs from the table",
                s.addr
            );
        }
    }
}

impl Sim {
    fn new(addr: IpAddr, asn: u32, host: bool, id: Option<PeerId>) -> Sim {
        Sim {
            addr,
            asn,
            host,
            id,
            fsm: None,
            epoch: 0,
            negotiated: None,
            rx: None,
            cmd: None,
            held: BTreeMap::new(),
        }
    }
}

fuzz_target!(|sc: Scenario| {
    let mut w = World::new(sc.branch_to_branch);
    for op in sc.ops.into_iter().take(64) {
        w.step(op);
    }
    w.rs.flush();
    w.check_held();
});
