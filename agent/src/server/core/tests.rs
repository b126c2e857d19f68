//! Route-server behaviour, driven through session events; what members
//! receive is decoded from their send queues with the codec.

use super::*;
use crate::bgp::attribute::{AsPath, Origin, community};
use crate::bgp::capability::GracefulRestart;
use crate::bgp::message::{CodecConfig, Message, decode, frame_len};
use crate::bgp::nlri::Nlri;
use crate::bgp::peer::Outbound;
use crate::config::ConfigFile;
use crate::control::RouteQuery;
use crate::server::reload::Plan;
use crate::server::view::QueryError;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::sync::mpsc;

pub(super) const CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010

[[peer]]
name = "fw1"
address = "10.1.0.20"
asn = 65020
max_prefixes = 3

[[peer]]
name = "fw2"
address = "10.1.0.21"
asn = 65021

[hosts]
ranges = ["10.1.0.0/24"]
"#;

pub(super) fn server_from(text: &str) -> RouteServer {
    let cfg = ServerConfig::from_str(std::path::Path::new("t.toml"), text).unwrap();
    RouteServer::new(Arc::new(cfg))
}

pub(super) fn server(extra: &str) -> RouteServer {
    server_from(&format!("{extra}\n{CONFIG}"))
}

pub(super) struct Peer {
    pub(super) id: PeerId,
    pub(super) epoch: u64,
    pub(super) rx: mpsc::UnboundedReceiver<Bytes>,
    pub(super) cmd: mpsc::UnboundedReceiver<SessionCommand>,
    pub(super) codec: CodecConfig,
}

fn negotiated(asn: u32, id: &str, ebgp: bool, add_path: bool, gr: bool) -> Negotiated {
    Negotiated {
        peer_asn: asn,
        peer_router_id: id.parse().unwrap(),
        hold_time: 90,
        keepalive: 30,
        families: vec![Family::IPV4_UNICAST],
        route_refresh: true,
        graceful_restart: gr.then(|| GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 120,
            families: vec![(Family::IPV4_UNICAST, true)],
        }),
        codec: CodecConfig {
            four_octet_as: true,
            add_path_send: [add_path, false],
            ebgp,
            ..CodecConfig::default()
        },
    }
}

fn connect(rs: &mut RouteServer, id: PeerId, n: Negotiated, addr: &str) -> Peer {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ctx, crx) = mpsc::unbounded_channel();
    let p = rs.peer_mut(id).unwrap();
    p.cmd = Some(ctx);
    let epoch = 1 + p.status.snapshot().established_count;
    p.status.set_state(crate::bgp::fsm::State::Established);
    let codec = n.codec.clone();
    let out = Outbound::new(tx, p.status.clone());
    rs.handle(
        PeerMsg {
            peer: id,
            epoch,
            event: SessionEvent::Established(Box::new(Established {
                negotiated: n,
                local: "10.1.0.4:179".parse().unwrap(),
                remote: SocketAddr::new(addr.parse().unwrap(), 40000),
                out,
            })),
        },
        Instant::now(),
    );
    Peer {
        id,
        epoch,
        rx,
        cmd: crx,
        codec,
    }
}

pub(super) fn appliance(rs: &mut RouteServer, name: &str) -> Peer {
    let (id, asn, addr) = {
        let p = rs.peers().find(|p| p.name == name).unwrap();
        (p.id, p.asn, p.addr.to_string())
    };
    connect(rs, id, negotiated(asn, &addr, true, false, false), &addr)
}

pub(super) fn host(rs: &mut RouteServer, addr: &str, gr: bool) -> Peer {
    let id = rs.host_for(addr.parse().unwrap()).unwrap();
    connect(rs, id, negotiated(65515, addr, false, true, gr), addr)
}

pub(super) fn attrs(path: &[u32], nh: &str) -> Arc<PathAttributes> {
    Arc::new(PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.iter().copied())),
        next_hop: Some(nh.parse().unwrap()),
        ..PathAttributes::default()
    })
}

pub(super) fn announce(rs: &mut RouteServer, p: &Peer, prefixes: &[&str], a: Arc<PathAttributes>) {
    let batch = RouteBatch {
        family: Family::IPV4_UNICAST,
        attrs: Some(a),
        announce: prefixes
            .iter()
            .map(|s| Nlri::new(s.parse().unwrap()))
            .collect(),
        withdraw: vec![],
    };
    rs.handle(
        PeerMsg {
            peer: p.id,
            epoch: p.epoch,
            event: SessionEvent::Routes(vec![batch]),
        },
        Instant::now(),
    );
    rs.flush();
}

pub(super) fn event(rs: &mut RouteServer, p: &Peer, event: SessionEvent, now: Instant) {
    rs.handle(
        PeerMsg {
            peer: p.id,
            epoch: p.epoch,
            event,
        },
        now,
    );
    rs.flush();
}

/// Every (prefix, path id) -> attributes the peer now holds, replaying
/// everything queued to it so far into `held`.
pub(super) fn drain(
    p: &mut Peer,
    held: &mut std::collections::BTreeMap<(String, u32), PathAttributes>,
) -> usize {
    let mut msgs = 0;
    while let Ok(b) = p.rx.try_recv() {
        let mut rest: &[u8] = &b;
        while !rest.is_empty() {
            let n = frame_len(rest, &p.codec).unwrap().unwrap();
            let mut codec = p.codec.clone();
            codec.add_path_receive = codec.add_path_send;
            let m = decode(&rest[..n], &codec).unwrap();
            rest = &rest[n..];
            msgs += 1;
            let Message::Update(u) = m else {
                panic!("not an update")
            };
            let unreach = u.mp_unreach.iter().flat_map(|m| &m.withdrawn);
            for w in u.withdrawn.iter().chain(unreach) {
                held.remove(&(w.prefix.to_string(), w.path_id));
            }
            for n in &u.nlri {
                held.insert((n.prefix.to_string(), n.path_id), u.attributes.clone());
            }
            if let Some(mp) = &u.mp_reach {
                let mut a = u.attributes.clone();
                a.next_hop = Some(mp.next_hop);
                for n in &mp.nlri {
                    held.insert((n.prefix.to_string(), n.path_id), a.clone());
                }
            }
        }
    }
    msgs
}

pub(super) fn held(p: &mut Peer) -> std::collections::BTreeMap<(String, u32), PathAttributes> {
    let mut h = Default::default();
    drain(p, &mut h);
    h
}

#[test]
fn appliances_receive_the_vnet_prefix_with_as_path_65515_and_next_hop_self() {
    let mut rs = server("");
    let mut sd = appliance(&mut rs, "sdwan");
    let h = held(&mut sd);
    let a = &h[&("10.1.0.0/16".to_string(), 0)];
    assert_eq!(a.as_path, Some(AsPath::sequence([65515])));
    assert_eq!(a.next_hop, Some("10.1.0.4".parse().unwrap()));
}

#[test]
fn ipv6_vnet_prefix_uses_the_configured_ipv6_next_hop_on_ipv4_sessions() {
    let text = CONFIG.replace(
        "vnet_prefixes = [\"10.1.0.0/16\"]",
        "vnet_prefixes = [\"10.1.0.0/16\", \"2001:db8:a000::/36\"]\nipv6_next_hop = \"2001:db8:1::4\"",
    );
    let mut rs = server_from(&text);
    let id = rs.host_for("10.1.0.31".parse().unwrap()).unwrap();
    let mut n = negotiated(65515, "10.1.0.31", false, true, false);
    n.families.push(Family::IPV6_UNICAST);
    let mut h = connect(&mut rs, id, n, "10.1.0.31");
    let got = held(&mut h);
    assert_eq!(
        got[&("2001:db8:a000::/36".to_string(), 0)].next_hop,
        Some("2001:db8:1::4".parse().unwrap())
    );
    assert_eq!(
        got[&("10.1.0.0/16".to_string(), 0)].next_hop,
        Some("10.1.0.4".parse().unwrap())
    );
}

#[test]
fn active_active_sends_both_paths_to_hosts_with_add_path() {
    let mut rs = server("");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let fw1 = appliance(&mut rs, "fw1");
    let fw2 = appliance(&mut rs, "fw2");
    announce(&mut rs, &fw1, &["0.0.0.0/0"], attrs(&[65020], "10.1.0.20"));
    announce(&mut rs, &fw2, &["0.0.0.0/0"], attrs(&[65021], "10.1.0.21"));
    let got = held(&mut h);
    let nh: Vec<_> = got
        .iter()
        .filter(|(k, _)| k.0 == "0.0.0.0/0")
        .map(|(k, a)| (k.1, a.next_hop.unwrap().to_string()))
        .collect();
    assert_eq!(
        nh,
        vec![(fw1.id, "10.1.0.20".into()), (fw2.id, "10.1.0.21".into())]
    );
}

#[test]
fn active_passive_sends_only_the_active_path_and_fails_over_at_once() {
    let mut rs = server("");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let fw1 = appliance(&mut rs, "fw1");
    let fw2 = appliance(&mut rs, "fw2");
    announce(&mut rs, &fw1, &["0.0.0.0/0"], attrs(&[65020], "10.1.0.20"));
    announce(
        &mut rs,
        &fw2,
        &["0.0.0.0/0"],
        attrs(&[65021, 65021, 65021], "10.1.0.21"),
    );
    let mut state = Default::default();
    drain(&mut h, &mut state);
    let paths: Vec<_> = state
        .keys()
        .filter(|k| k.0 == "0.0.0.0/0")
        .cloned()
        .collect();
    assert_eq!(paths, vec![("0.0.0.0/0".to_string(), fw1.id)]);

    event(
        &mut rs,
        &fw1,
        SessionEvent::Down {
            reason: DownReason::TcpFailed("closed".into()),
        },
        Instant::now(),
    );
    drain(&mut h, &mut state);
    let paths: Vec<_> = state
        .iter()
        .filter(|(k, _)| k.0 == "0.0.0.0/0")
        .map(|(k, a)| (k.1, a.next_hop.unwrap().to_string()))
        .collect();
    assert_eq!(paths, vec![(fw2.id, "10.1.0.21".to_string())]);
}

#[test]
fn max_prefix_ends_the_session_with_cease_1_and_withdraws_its_routes() {
    let mut rs = server("max_prefix_restart = 30");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let mut fw1 = appliance(&mut rs, "fw1");
    let mut sd = appliance(&mut rs, "sdwan");
    announce(
        &mut rs,
        &fw1,
        &["198.51.100.0/24", "203.0.113.0/24"],
        attrs(&[65020], "10.1.0.20"),
    );
    announce(
        &mut rs,
        &sd,
        &["10.250.0.0/16"],
        attrs(&[65010], "10.1.0.10"),
    );
    let mut state = Default::default();
    drain(&mut h, &mut state);
    assert_eq!(state.len(), 4);

    announce(
        &mut rs,
        &fw1,
        &["192.0.2.0/25", "192.0.2.128/25"],
        attrs(&[65020], "10.1.0.20"),
    );
    match fw1.cmd.try_recv().unwrap() {
        SessionCommand::StopFor(n, d) => {
            assert_eq!((n.code, n.subcode), (6, 1));
            assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 3]);
            assert_eq!(d, Duration::from_secs(30));
        }
        c => panic!("expected StopFor, got {c:?}"),
    }
    drain(&mut h, &mut state);
    let left: Vec<String> = state.keys().map(|k| k.0.clone()).collect();
    assert_eq!(left, vec!["10.1.0.0/16", "10.250.0.0/16"]);
    assert!(sd.cmd.try_recv().is_err());
    let _ = held(&mut sd);
    announce(
        &mut rs,
        &fw1,
        &["192.0.2.0/24"],
        attrs(&[65020], "10.1.0.20"),
    );
    assert!(rs.table().get(&"192.0.2.0/24".parse().unwrap()).is_none());
}

#[test]
fn routes_with_our_own_as_or_inside_the_vnet_are_refused_but_shown() {
    let mut rs = server("");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let sd = appliance(&mut rs, "sdwan");
    announce(
        &mut rs,
        &sd,
        &["10.250.0.0/16"],
        attrs(&[65010, 65515], "10.1.0.10"),
    );
    announce(&mut rs, &sd, &["10.1.5.0/24"], attrs(&[65010], "10.1.0.10"));
    let got = held(&mut h);
    assert!(got.keys().all(|k| k.0 == "10.1.0.0/16"), "{got:?}");
    let v = rs
        .show_routes(&RouteQuery {
            peer: Some("sdwan".into()),
            ..RouteQuery::default()
        })
        .unwrap();
    let reasons: Vec<_> = v
        .iter()
        .map(|r| (r.prefix.to_string(), r.paths[0].reason.clone().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "10.1.5.0/24".to_string(),
                "refused: inside the VNet space 10.1.0.0/16".to_string()
            ),
            (
                "10.250.0.0/16".to_string(),
                "refused: own AS in AS_PATH (loop)".to_string()
            ),
        ]
    );
}

#[test]
fn host_routes_go_to_appliances_and_are_reflected_to_other_hosts() {
    let mut rs = server("");
    let h1 = host(&mut rs, "10.1.0.31", false);
    let mut h2 = host(&mut rs, "10.1.0.32", false);
    let mut sd = appliance(&mut rs, "sdwan");
    let mut a = (*attrs(&[], "10.1.0.31")).clone();
    a.local_pref = Some(100);
    announce(&mut rs, &h1, &["10.1.1.0/24"], Arc::new(a));
    let to_sd = held(&mut sd);
    let x = &to_sd[&("10.1.1.0/24".to_string(), 0)];
    assert_eq!(x.as_path, Some(AsPath::sequence([65515])));
    assert_eq!(x.next_hop, Some("10.1.0.31".parse().unwrap()));
    let to_h2 = held(&mut h2);
    let y = &to_h2[&("10.1.1.0/24".to_string(), h1.id)];
    assert_eq!(y.originator_id, Some(Ipv4Addr::new(10, 1, 0, 31)));
    assert_eq!(y.cluster_list, vec![Ipv4Addr::new(10, 1, 0, 4)]);
}

#[test]
fn host_route_outside_the_vnet_is_refused() {
    let mut rs = server("");
    let h1 = host(&mut rs, "10.1.0.31", false);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &h1, &["0.0.0.0/0"], attrs(&[], "10.1.0.31"));
    assert!(held(&mut sd).keys().all(|k| k.0 != "0.0.0.0/0"));
}

#[test]
fn hosts_with_identical_sessions_share_one_update_group_and_one_encoding() {
    let mut rs = server("");
    let mut hosts: Vec<Peer> = (31..41)
        .map(|i| host(&mut rs, &format!("10.1.0.{i}"), false))
        .collect();
    let sd = appliance(&mut rs, "sdwan");
    for h in &mut hosts {
        let _ = held(h);
    }
    let groups_before = rs.groups.len();
    announce(
        &mut rs,
        &sd,
        &["10.250.0.0/16"],
        attrs(&[65010], "10.1.0.10"),
    );
    assert_eq!(groups_before, 2);
    let host_group = rs
        .groups
        .iter()
        .find(|(_, g)| g.key.audience == Audience::Hosts)
        .unwrap();
    assert_eq!(host_group.1.members.len(), 10);
    assert_eq!(host_group.1.messages_encoded, 1);
    for h in &mut hosts {
        assert_eq!(drain(h, &mut Default::default()), 1);
    }
}

#[test]
fn graceful_restart_keeps_stale_routes_until_end_of_rib() {
    let mut rs = server("");
    let h1 = host(&mut rs, "10.1.0.31", true);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(
        &mut rs,
        &h1,
        &["10.1.1.0/24", "10.1.9.0/24"],
        attrs(&[], "10.1.0.31"),
    );
    let mut state = Default::default();
    drain(&mut sd, &mut state);
    assert_eq!(state.len(), 3);

    let t0 = Instant::now();
    event(
        &mut rs,
        &h1,
        SessionEvent::Down {
            reason: DownReason::TcpFailed("reset".into()),
        },
        t0,
    );
    drain(&mut sd, &mut state);
    assert_eq!(state.len(), 3, "stale routes must stay advertised");
    assert!(rs.peers().any(|p| p.restarting.is_some()));

    let h1 = host(&mut rs, "10.1.0.31", true);
    announce(&mut rs, &h1, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    drain(&mut sd, &mut state);
    assert_eq!(state.len(), 3);
    event(
        &mut rs,
        &h1,
        SessionEvent::EndOfRib(Family::IPV4_UNICAST),
        t0,
    );
    drain(&mut sd, &mut state);
    let left: Vec<String> = state.keys().map(|k| k.0.clone()).collect();
    assert_eq!(left, vec!["10.1.0.0/16", "10.1.1.0/24"]);
}

#[test]
fn reconnect_without_graceful_restart_withdraws_the_stale_routes_at_once() {
    let mut rs = server("");
    let h1 = host(&mut rs, "10.1.0.31", true);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &h1, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    let mut state = Default::default();
    drain(&mut sd, &mut state);
    assert_eq!(state.len(), 2);
    let down = SessionEvent::Down {
        reason: DownReason::TcpFailed("reset".into()),
    };
    event(&mut rs, &h1, down, Instant::now());
    let mut h1 = host(&mut rs, "10.1.0.31", false);
    drain(&mut sd, &mut state);
    let left: Vec<String> = state.keys().map(|k| k.0.clone()).collect();
    assert_eq!(left, vec!["10.1.0.0/16"]);
    assert!(held(&mut h1).keys().all(|k| k.0 != "10.1.1.0/24"));
    assert!(rs.table().get(&"10.1.1.0/24".parse().unwrap()).is_none());
    let view = rs
        .show_peers()
        .into_iter()
        .find(|p| p.name == "host-10.1.0.31");
    let view = view.unwrap();
    assert_eq!((view.received, view.stale), (0, false));
}

#[test]
fn graceful_restart_time_expiry_sweeps_stale_routes() {
    let mut rs = server("");
    let h1 = host(&mut rs, "10.1.0.31", true);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &h1, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    let mut state = Default::default();
    drain(&mut sd, &mut state);
    let t0 = Instant::now();
    event(
        &mut rs,
        &h1,
        SessionEvent::Down {
            reason: DownReason::TcpFailed("reset".into()),
        },
        t0,
    );
    rs.tick(t0 + crate::rib::group::DUMP_KEEP);
    assert_eq!(rs.next_deadline(), Some(t0 + Duration::from_secs(120)));
    rs.tick(t0 + Duration::from_secs(121));
    rs.flush();
    drain(&mut sd, &mut state);
    assert_eq!(state.len(), 1);
}

/// Whether sdwan's route is still sent to a host after its TCP session
/// fails, on a server built from `text`.
fn appliance_route_kept_after_tcp_loss(text: &str) -> bool {
    let mut rs = server_from(text);
    let mut h = host(&mut rs, "10.1.0.31", false);
    let id = rs.peers().find(|p| p.name == "sdwan").unwrap().id;
    let sd = connect(
        &mut rs,
        id,
        negotiated(65010, "10.1.0.10", true, false, true),
        "10.1.0.10",
    );
    announce(
        &mut rs,
        &sd,
        &["10.250.0.0/16"],
        attrs(&[65010], "10.1.0.10"),
    );
    let mut state = Default::default();
    drain(&mut h, &mut state);
    assert!(state.contains_key(&("10.250.0.0/16".to_string(), id)));
    let down = SessionEvent::Down {
        reason: DownReason::TcpFailed("closed".into()),
    };
    event(&mut rs, &sd, down, Instant::now());
    drain(&mut h, &mut state);
    state.contains_key(&("10.250.0.0/16".to_string(), id))
}

#[test]
fn appliance_routes_are_withdrawn_at_once_unless_graceful_restart_is_configured() {
    assert!(!appliance_route_kept_after_tcp_loss(CONFIG));
    let with_gr = CONFIG.replace("asn = 65010\n", "asn = 65010\ngraceful_restart = true\n");
    assert!(
        appliance_route_kept_after_tcp_loss(&with_gr),
        "kept as stale"
    );
}

#[test]
fn notification_is_not_a_graceful_restart() {
    let mut rs = server("");
    let h1 = host(&mut rs, "10.1.0.31", true);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &h1, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    let mut state = Default::default();
    drain(&mut sd, &mut state);
    event(
        &mut rs,
        &h1,
        SessionEvent::Down {
            reason: DownReason::NotificationReceived(Notification::new(6, 2)),
        },
        Instant::now(),
    );
    drain(&mut sd, &mut state);
    assert_eq!(state.len(), 1);
}

#[test]
fn branch_to_branch_sends_one_appliances_routes_to_the_others() {
    let mut rs = server("branch_to_branch = true");
    let mut fw1 = appliance(&mut rs, "fw1");
    let sd = appliance(&mut rs, "sdwan");
    announce(
        &mut rs,
        &sd,
        &["10.250.0.0/16"],
        attrs(&[65010], "10.1.0.10"),
    );
    let got = held(&mut fw1);
    let a = &got[&("10.250.0.0/16".to_string(), 0)];
    assert_eq!(a.as_path, Some(AsPath::sequence([65515, 65010])));
    assert_eq!(a.next_hop, Some("10.1.0.10".parse().unwrap()));
}

#[test]
fn no_advertise_is_kept_but_never_sent() {
    let mut rs = server("");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let sd = appliance(&mut rs, "sdwan");
    let mut a = (*attrs(&[65010], "10.1.0.10")).clone();
    a.communities = vec![community::NO_ADVERTISE];
    announce(&mut rs, &sd, &["10.250.0.0/16"], Arc::new(a));
    assert!(held(&mut h).keys().all(|k| k.0 != "10.250.0.0/16"));
    assert!(rs.table().get(&"10.250.0.0/16".parse().unwrap()).is_some());
}

#[test]
fn show_routes_explains_why_the_prepended_path_lost() {
    let mut rs = server("");
    let fw1 = appliance(&mut rs, "fw1");
    let fw2 = appliance(&mut rs, "fw2");
    announce(
        &mut rs,
        &fw1,
        &["0.0.0.0/0"],
        attrs(&[65020, 65020], "10.1.0.20"),
    );
    announce(&mut rs, &fw2, &["0.0.0.0/0"], attrs(&[65021], "10.1.0.21"));
    let v = rs
        .show_routes(&RouteQuery {
            prefix: Some("203.0.113.9".into()),
            ..RouteQuery::default()
        })
        .unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].prefix.to_string(), "0.0.0.0/0");
    assert_eq!(v[0].paths[0].peer, "fw2");
    assert!(v[0].paths[0].best);
    assert_eq!(
        v[0].paths[1].reason.as_deref(),
        Some("shorter AS_PATH wins (RFC 4271 9.1.2.2 a)")
    );
    let adv = rs
        .show_advertised(&RouteQuery {
            peer: Some("fw1".into()),
            advertised: true,
            ..RouteQuery::default()
        })
        .unwrap();
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].prefix.to_string(), "10.1.0.0/16");
    assert_eq!(
        rs.show_advertised(&RouteQuery {
            peer: Some("nope".into()),
            advertised: true,
            ..RouteQuery::default()
        })
        .unwrap_err(),
        QueryError::NoPeer("nope".into())
    );
}

#[test]
fn late_events_from_a_superseded_session_are_ignored() {
    let mut rs = server("");
    let sd = appliance(&mut rs, "sdwan");
    let stale = Peer {
        id: sd.id,
        epoch: sd.epoch + 7,
        rx: mpsc::unbounded_channel().1,
        cmd: mpsc::unbounded_channel().1,
        codec: CodecConfig::default(),
    };
    announce(
        &mut rs,
        &stale,
        &["10.250.0.0/16"],
        attrs(&[65010], "10.1.0.10"),
    );
    assert!(rs.table().get(&"10.250.0.0/16".parse().unwrap()).is_none());
}

#[test]
fn unknown_source_address_gets_no_host_entry() {
    let mut rs = server("");
    assert_eq!(rs.host_for("192.0.2.1".parse().unwrap()), None);
    assert!(rs.host_for("10.1.0.99".parse().unwrap()).is_some());
}

#[test]
fn show_routes_by_pages_of_a_key_snapshot_lists_every_route_once_in_order() {
    let mut rs = server("");
    let sd = appliance(&mut rs, "sdwan");
    let all: Vec<String> = (0..900u32)
        .map(|i| format!("{}/32", Ipv4Addr::from(0x6440_0000 + i * 7)))
        .collect();
    for chunk in all.chunks(100) {
        let c: Vec<&str> = chunk.iter().map(String::as_str).collect();
        announce(&mut rs, &sd, &c, attrs(&[65010], "10.1.0.10"));
    }
    let whole = rs.show_routes(&RouteQuery::default()).unwrap();
    let mut keys = rs.route_keys(&RouteQuery::default()).unwrap();
    keys.sort();
    let mut paged = Vec::new();
    for page in keys.chunks(64) {
        let q = RouteQuery {
            keys: Some(page.to_vec()),
            ..RouteQuery::default()
        };
        paged.extend(rs.show_routes(&q).unwrap());
    }
    assert_eq!(paged.len(), 901, "every prefix and the VNet prefix");
    assert_eq!(
        paged.iter().map(|r| r.prefix).collect::<Vec<_>>(),
        whole.iter().map(|r| r.prefix).collect::<Vec<_>>()
    );
}

#[test]
fn a_change_too_large_for_one_core_reaches_hosts_exactly_as_on_one() {
    let mut rs = server("");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let fw1 = appliance(&mut rs, "fw1");
    let fw2 = appliance(&mut rs, "fw2");
    let prefixes: Vec<String> = (0..6000u32)
        .map(|i| format!("100.{}.{}.0/24", 64 + i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let limit = |rs: &mut RouteServer, id: PeerId| {
        rs.peer_mut(id).unwrap().max_prefixes = 10_000;
    };
    limit(&mut rs, fw1.id);
    limit(&mut rs, fw2.id);
    announce(&mut rs, &fw1, &refs, attrs(&[65020], "10.1.0.20"));
    announce(&mut rs, &fw2, &refs, attrs(&[65021], "10.1.0.21"));
    let mut state = Default::default();
    drain(&mut h, &mut state);
    assert_eq!(state.len(), 12_001);
    let batch = RouteBatch {
        family: Family::IPV4_UNICAST,
        attrs: None,
        announce: vec![],
        withdraw: refs.iter().map(|s| Nlri::new(s.parse().unwrap())).collect(),
    };
    event(
        &mut rs,
        &fw1,
        SessionEvent::Routes(vec![batch]),
        Instant::now(),
    );
    drain(&mut h, &mut state);
    assert_eq!(state.len(), 6001);
    assert!(
        state
            .keys()
            .all(|(p, id)| p == "10.1.0.0/16" || *id == fw2.id)
    );
    let group = rs
        .groups
        .iter()
        .find(|(_, g)| g.key.audience == Audience::Hosts);
    assert_eq!(group.unwrap().1.advertised_paths(), 6001);
}

fn reload(rs: &mut RouteServer, text: &str) -> (Plan, Vec<PeerId>) {
    let new = ServerConfig::from_str(std::path::Path::new("t.toml"), text).unwrap();
    let plan = crate::server::reload::plan(rs.config(), &new).unwrap();
    let start = rs.reconfigure(Arc::new(new), &plan);
    rs.flush();
    (plan, start)
}

#[test]
fn reload_stops_a_removed_appliance_with_cease_3_and_leaves_the_others_alone() {
    let mut rs = server("");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let mut fw1 = appliance(&mut rs, "fw1");
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &fw1, &["0.0.0.0/0"], attrs(&[65020], "10.1.0.20"));
    announce(
        &mut rs,
        &sd,
        &["10.250.0.0/16"],
        attrs(&[65010], "10.1.0.10"),
    );
    let mut at_host = Default::default();
    drain(&mut h, &mut at_host);
    let _ = held(&mut sd);
    let text = CONFIG
        .replace(
            "name = \"fw1\"\naddress = \"10.1.0.20\"\nasn = 65020\nmax_prefixes = 3\n",
            "name = \"fw3\"\naddress = \"10.1.0.22\"\nasn = 65022\n",
        )
        .replace("[\"10.1.0.0/16\"]", "[\"10.1.0.0/16\", \"10.9.0.0/16\"]");
    let (plan, start) = reload(&mut rs, &text);
    assert_eq!(plan.removed, ["fw1"]);
    assert_eq!(plan.added, ["fw3"]);
    assert_eq!(start.len(), 1);
    assert_eq!(rs.peer(start[0]).unwrap().name, "fw3");
    match fw1.cmd.try_recv().unwrap() {
        SessionCommand::Stop(n) => assert_eq!((n.code, n.subcode), (6, 3)),
        c => panic!("expected Stop, got {c:?}"),
    }
    assert!(sd.cmd.try_recv().is_err(), "sdwan's session is untouched");
    drain(&mut h, &mut at_host);
    let at_host: Vec<&str> = at_host.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(at_host, ["10.1.0.0/16", "10.250.0.0/16", "10.9.0.0/16"]);
    let at_sd: Vec<String> = held(&mut sd).keys().map(|k| k.0.clone()).collect();
    assert_eq!(at_sd, ["10.9.0.0/16"], "only the new VNet prefix is sent");
    let _ = fw1.rx.try_recv();
}

#[test]
fn reload_judges_host_routes_again_when_the_vnet_or_the_ranges_shrink() {
    let mut rs = server("");
    let mut h1 = host(&mut rs, "10.1.0.31", false);
    let h2 = host(&mut rs, "10.1.0.200", false);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &h1, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    announce(&mut rs, &h2, &["10.1.2.0/24"], attrs(&[], "10.1.0.200"));
    let mut at_sd = Default::default();
    drain(&mut sd, &mut at_sd);
    assert_eq!(at_sd.len(), 3);
    let text = CONFIG
        .replace("[\"10.1.0.0/16\"]", "[\"10.1.0.0/24\"]")
        .replace("ranges = [\"10.1.0.0/24\"]", "ranges = [\"10.1.0.0/25\"]");
    let (plan, _) = reload(&mut rs, &text);
    assert_eq!(plan.hosts, ["ranges"]);
    let _ = h1.rx.try_recv();
    drain(&mut sd, &mut at_sd);
    let left: Vec<&str> = at_sd.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(
        left,
        ["10.1.0.0/24"],
        "10.1.1.0/24 is outside the VNet now, and h2 outside the ranges"
    );
    assert_eq!(
        rs.show_routes(&RouteQuery {
            prefix: Some("10.1.1.0/24".into()),
            ..RouteQuery::default()
        })
        .unwrap()[0]
            .paths[0]
            .reason
            .as_deref(),
        Some("refused: host route outside the VNet space")
    );
    assert!(rs.peers().all(|p| p.addr.to_string() != "10.1.0.200"));
}

/// fw1 active and fw2 passive for the default route, one host; fw1's BFD
/// status attached as the daemon does.
fn bfd_pair(extra: &str) -> (RouteServer, Peer, Peer, Peer) {
    let mut rs = server(extra);
    let h = host(&mut rs, "10.1.0.31", false);
    let mut fw1 = appliance(&mut rs, "fw1");
    let fw2 = appliance(&mut rs, "fw2");
    let timers = crate::bfd::session::Timers {
        desired_min_tx: Duration::from_millis(300),
        required_min_rx: Duration::from_millis(300),
        detect_mult: 3,
    };
    let session = crate::bfd::session::Session::new(7, timers, Instant::now(), 1);
    let path = crate::bfd::status::Path {
        remote: "10.1.0.20".parse().unwrap(),
        local: None,
        multihop: false,
        min_ttl: 255,
        source_port: 49152,
    };
    rs.peer_mut(fw1.id).unwrap().bfd = Some(Arc::new(BfdStatus::new(session.view(), path)));
    announce(&mut rs, &fw1, &["0.0.0.0/0"], attrs(&[65020], "10.1.0.20"));
    announce(
        &mut rs,
        &fw2,
        &["0.0.0.0/0"],
        attrs(&[65021, 65021], "10.1.0.21"),
    );
    while fw1.cmd.try_recv().is_ok() {}
    (rs, h, fw1, fw2)
}

/// fw1's BFD detection time expired; the daemon flushes right after.
fn bfd_down(rs: &mut RouteServer, id: PeerId) {
    rs.bfd_signal(
        id,
        Signal::Down(crate::bfd::packet::Diag::DetectionTimeExpired),
    );
    rs.flush();
}

fn default_route_next_hops(
    h: &mut Peer,
    state: &mut std::collections::BTreeMap<(String, u32), PathAttributes>,
) -> Vec<String> {
    drain(h, state);
    state
        .iter()
        .filter(|(k, _)| k.0 == "0.0.0.0/0")
        .map(|(_, a)| a.next_hop.unwrap().to_string())
        .collect()
}

#[test]
fn bfd_down_sends_cease_10_withdraws_at_once_and_holds_the_session() {
    let (mut rs, mut h, mut fw1, fw2) = bfd_pair("");
    let mut state = Default::default();
    assert_eq!(
        default_route_next_hops(&mut h, &mut state),
        vec!["10.1.0.20"]
    );
    bfd_down(&mut rs, fw1.id);
    assert_eq!(
        default_route_next_hops(&mut h, &mut state),
        vec!["10.1.0.21"],
        "the passive appliance takes over without waiting for the session task"
    );
    match fw1.cmd.try_recv() {
        Ok(SessionCommand::Hold(n)) => assert!(n.is(CeaseSubcode::BfdDown), "{n}"),
        other => panic!("expected Hold(Cease/10), got {other:?}"),
    }
    assert!(rs.peer(fw1.id).unwrap().bfd_held());
    assert!(rs.peer(fw2.id).unwrap().live.is_some());
    // The session task reports its Down later, with the old epoch: nothing
    // changes any more.
    event(
        &mut rs,
        &fw1,
        SessionEvent::Down {
            reason: DownReason::NotificationSent(CeaseSubcode::BfdDown.into()),
        },
        Instant::now(),
    );
    assert_eq!(
        default_route_next_hops(&mut h, &mut state),
        vec!["10.1.0.21"]
    );
    let v = rs.show_peers();
    let fw1_view = v.iter().find(|p| p.name == "fw1").unwrap();
    let b = fw1_view.bfd.as_ref().unwrap();
    assert!(b.holds_bgp && !b.running);
    assert_eq!(b.summary, "Down, BGP held");
    assert!(v.iter().find(|p| p.name == "fw2").unwrap().bfd.is_none());
}

#[test]
fn bfd_up_releases_the_held_session_once() {
    let (mut rs, _h, mut fw1, _fw2) = bfd_pair("");
    rs.bfd_signal(fw1.id, Signal::Up);
    assert!(
        fw1.cmd.try_recv().is_err(),
        "nothing held: nothing to release"
    );
    rs.bfd_signal(
        fw1.id,
        Signal::Down(crate::bfd::packet::Diag::DetectionTimeExpired),
    );
    assert!(matches!(fw1.cmd.try_recv(), Ok(SessionCommand::Hold(_))));
    rs.bfd_signal(fw1.id, Signal::Up);
    assert!(matches!(fw1.cmd.try_recv(), Ok(SessionCommand::Release)));
    assert!(!rs.peer(fw1.id).unwrap().bfd_held());
    rs.bfd_signal(fw1.id, Signal::Up);
    assert!(fw1.cmd.try_recv().is_err());
}

#[test]
fn bfd_admin_down_takes_no_action_and_releases_a_hold() {
    let (mut rs, mut h, mut fw1, _fw2) = bfd_pair("");
    let mut state = Default::default();
    default_route_next_hops(&mut h, &mut state);
    rs.bfd_signal(fw1.id, Signal::AdminDown);
    rs.flush();
    assert_eq!(
        default_route_next_hops(&mut h, &mut state),
        vec!["10.1.0.20"]
    );
    assert!(fw1.cmd.try_recv().is_err());
    rs.bfd_signal(
        fw1.id,
        Signal::Down(crate::bfd::packet::Diag::NeighborSignaledDown),
    );
    assert!(matches!(fw1.cmd.try_recv(), Ok(SessionCommand::Hold(_))));
    rs.bfd_signal(fw1.id, Signal::AdminDown);
    assert!(matches!(fw1.cmd.try_recv(), Ok(SessionCommand::Release)));
}

#[test]
fn bfd_down_withdraws_even_with_graceful_restart_configured() {
    let text = CONFIG.replace(
        "max_prefixes = 3\n",
        "max_prefixes = 3\ngraceful_restart = true\n",
    );
    let mut rs = server_from(&text);
    let mut h = host(&mut rs, "10.1.0.31", false);
    let id = rs.peers().find(|p| p.name == "fw1").unwrap().id;
    let fw1 = connect(
        &mut rs,
        id,
        negotiated(65020, "10.1.0.20", true, false, true),
        "10.1.0.20",
    );
    announce(&mut rs, &fw1, &["0.0.0.0/0"], attrs(&[65020], "10.1.0.20"));
    let mut state = Default::default();
    assert_eq!(
        default_route_next_hops(&mut h, &mut state),
        vec!["10.1.0.20"]
    );
    bfd_down(&mut rs, fw1.id);
    assert!(default_route_next_hops(&mut h, &mut state).is_empty());
    rs.tick(Instant::now() + crate::rib::group::DUMP_KEEP);
    assert!(rs.next_deadline().is_none(), "nothing kept as stale");
}

#[test]
fn a_bfd_session_that_never_came_up_says_not_running_and_blocks_nothing() {
    let (rs, _h, fw1, _fw2) = bfd_pair("");
    let v = rs.show_peers();
    let b = v
        .iter()
        .find(|p| p.name == "fw1")
        .unwrap()
        .bfd
        .clone()
        .unwrap();
    assert_eq!(b.summary, "not running (BGP not blocked)");
    assert!(!b.holds_bgp && !b.running);
    assert!(rs.peer(fw1.id).unwrap().live.is_some());
    let bfd = rs.show_bfd();
    assert_eq!(bfd.len(), 1);
    assert_eq!(bfd[0].peer, "fw1");
    assert!(!bfd[0].bgp_held);
}

#[test]
fn a_departed_host_is_forgotten_by_its_address_once_its_session_task_ended() {
    let mut rs = server("");
    let h = host(&mut rs, "10.1.0.31", false);
    let addr: IpAddr = "10.1.0.31".parse().unwrap();
    assert_eq!(rs.host_for(addr), Some(h.id), "found by address");
    event(
        &mut rs,
        &h,
        SessionEvent::Down {
            reason: DownReason::TcpFailed("reset".into()),
        },
        Instant::now(),
    );
    rs.tick(Instant::now());
    assert!(rs.peer(h.id).is_some(), "its session task still runs");
    let old = h.id;
    drop(h);
    rs.tick(Instant::now() + Duration::from_secs(1));
    assert!(rs.peer(old).is_none(), "forgotten at the next look");
    let new = rs.host_for(addr).unwrap();
    assert_ne!(new, old, "a new connection gets a new entry");
    assert_eq!(
        rs.peers().filter(|p| p.kind == SourceKind::Host).count(),
        1,
        "the old entry is gone, the new one is the only host"
    );
    assert_eq!(
        rs.appliance_by_addr("10.1.0.20".parse().unwrap())
            .map(|id| rs.peer(id).unwrap().name.clone()),
        Some("fw1".to_string())
    );
}

#[test]
fn hosts_joining_while_the_table_stands_share_one_encoded_dump() {
    let mut rs = server("");
    let fw1 = appliance(&mut rs, "fw1");
    announce(&mut rs, &fw1, &["0.0.0.0/0"], attrs(&[65020], "10.1.0.20"));
    let mut a = host(&mut rs, "10.1.0.31", false);
    let mut b = host(&mut rs, "10.1.0.32", false);
    let (da, db) = (a.rx.try_recv().unwrap(), b.rx.try_recv().unwrap());
    assert!(!da.is_empty());
    assert_eq!(da.as_ptr(), db.as_ptr(), "one encoding for both joins");
    let fw2 = appliance(&mut rs, "fw2");
    announce(&mut rs, &fw2, &["0.0.0.0/0"], attrs(&[65021], "10.1.0.21"));
    let mut c = host(&mut rs, "10.1.0.33", false);
    let dc = c.rx.try_recv().unwrap();
    assert_ne!(dc.as_ptr(), da.as_ptr(), "the table changed: a new dump");
    rs.tick(Instant::now() + crate::rib::group::DUMP_KEEP);
    let mut d = host(&mut rs, "10.1.0.34", false);
    let paths = |h: &std::collections::BTreeMap<(String, u32), PathAttributes>| {
        h.keys().filter(|(p, _)| p == "0.0.0.0/0").count()
    };
    let mut got = Default::default();
    assert!(drain(&mut d, &mut got) > 0);
    assert_eq!(paths(&got), 2, "a dump made after the kept one expired");
    assert!(d.rx.try_recv().is_err());
}

#[test]
fn hosts_setting_up_are_looked_at_when_their_list_doubles_or_a_second_passed() {
    let mut rs = server("");
    let now = Instant::now();
    let mut sessions = Vec::new();
    let mut setting_up = |rs: &mut RouteServer, from: u8, n: u8| -> Vec<PeerId> {
        (from..from + n)
            .map(|i| {
                let id = rs.host_for(format!("10.1.0.{i}").parse().unwrap()).unwrap();
                let (tx, rx) = mpsc::unbounded_channel();
                rs.peer_mut(id).unwrap().cmd = Some(tx);
                sessions.push(rx);
                id
            })
            .collect()
    };
    let mut ids = setting_up(&mut rs, 100, 40);
    rs.tick(now);
    assert_eq!(
        rs.departing_swept,
        Some((now, 40)),
        "first look keeps all 40"
    );
    ids.extend(setting_up(&mut rs, 140, 30));
    let soon = now + Duration::from_millis(10);
    rs.tick(soon);
    assert_eq!(rs.departing_swept, Some((now, 40)), "70 is not twice 40");
    ids.extend(setting_up(&mut rs, 170, 10));
    rs.tick(soon);
    assert_eq!(rs.departing_swept, Some((soon, 80)), "80 is");
    drop(sessions);
    rs.tick(soon);
    assert!(
        ids.iter().all(|id| rs.peer(*id).is_some()),
        "not looked at yet"
    );
    rs.tick(soon + DEPARTING_SWEEP);
    assert!(ids.iter().all(|id| rs.peer(*id).is_none()), "forgotten");
}
