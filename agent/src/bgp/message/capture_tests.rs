//! Bytes captured from independent implementations, BIRD 2.0.12 and GoBGP
//! 3.10.0 peering with each other (testdata/capture/run.sh), decoded and
//! checked field by field, and re-encoded: byte for byte where our encoding
//! is canonical, as an equal value where the sender made another choice.

use super::test_util::*;
use super::*;
use crate::bgp::attribute::{AsPath, LargeCommunity, Origin, community};

/// One direction of one captured session.
struct Capture {
    messages: Vec<Vec<u8>>,
    cfg: CodecConfig,
}

fn lines(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(hex)
        .collect()
}

fn open_of(bytes: &[u8]) -> Open {
    match decode(bytes, &CodecConfig::default()) {
        Ok(Message::Open(o)) => o,
        other => panic!("the first message is no OPEN: {other:?}"),
    }
}

/// How the receiver decodes what `sender` sends (and how the sender
/// encoded it), from the two OPENs of the capture.
fn direction(sender: &Open, receiver: &Open, ebgp: bool) -> CodecConfig {
    let both = |c| sender.has_capability(c) && receiver.has_capability(c);
    let mut cfg = CodecConfig {
        four_octet_as: both(CapabilityCode::FourOctetAs),
        extended_message: both(CapabilityCode::ExtendedMessage),
        ebgp,
        ..CodecConfig::default()
    };
    for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        let i = family.index().unwrap();
        let on = sender.add_path(family).is_some_and(|a| a.send)
            && receiver.add_path(family).is_some_and(|a| a.receive);
        cfg.add_path_receive[i] = on;
        cfg.add_path_send[i] = on;
    }
    cfg
}

fn session(bird: &str, gobgp: &str, ebgp: bool) -> (Capture, Capture) {
    let (b, g) = (lines(bird), lines(gobgp));
    let (bo, go) = (open_of(&b[0]), open_of(&g[0]));
    (
        Capture {
            cfg: direction(&bo, &go, ebgp),
            messages: b,
        },
        Capture {
            cfg: direction(&go, &bo, ebgp),
            messages: g,
        },
    )
}

fn p1() -> (Capture, Capture) {
    session(
        include_str!("../testdata/bird-p1.hex"),
        include_str!("../testdata/gobgp-p1.hex"),
        true,
    )
}

fn p2() -> (Capture, Capture) {
    session(
        include_str!("../testdata/bird-p2.hex"),
        include_str!("../testdata/gobgp-p2.hex"),
        true,
    )
}

fn p3() -> (Capture, Capture) {
    session(
        include_str!("../testdata/bird-p3.hex"),
        include_str!("../testdata/gobgp-p3.hex"),
        false,
    )
}

impl Capture {
    fn message(&self, i: usize) -> Message {
        decode(&self.messages[i], &self.cfg).unwrap()
    }

    fn update(&self, i: usize) -> Update {
        decode_update(&self.messages[i], &self.cfg).unwrap()
    }
}

fn gobgp_open(my_as: u16, capabilities: Vec<Capability>) -> Open {
    Open {
        version: 4,
        my_as,
        hold_time: 90,
        router_id: Ipv4Addr::new(10, 77, 0, 2),
        capabilities,
    }
}

fn fqdn() -> Capability {
    Capability::Unknown {
        code: 73,
        data: vec![2, b'v', b'm', 0],
    }
}

fn ipv6_extended_next_hop() -> Capability {
    Capability::Unknown {
        code: 5,
        data: vec![0, 1, 0, 1, 0, 2],
    }
}

fn gr(families: Vec<(Family, bool)>) -> Capability {
    Capability::GracefulRestart(crate::bgp::capability::GracefulRestart {
        restarting: false,
        notification: false,
        restart_time: 120,
        families,
    })
}

#[test]
fn captured_opens_decode_to_the_configured_capabilities() {
    let both = vec![(Family::IPV4_UNICAST, false), (Family::IPV6_UNICAST, false)];
    let llgr = Capability::Unknown {
        code: 71,
        data: vec![],
    };
    let both_add_path = Capability::AddPath(vec![
        AddPathFamily {
            family: Family::IPV4_UNICAST,
            receive: true,
            send: true,
        },
        AddPathFamily {
            family: Family::IPV6_UNICAST,
            receive: true,
            send: true,
        },
    ]);
    let (bird, gobgp) = p1();
    assert_eq!(
        bird.message(0),
        Message::Open(Open {
            version: 4,
            my_as: 65001,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 77, 0, 1),
            capabilities: vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::ExtendedMessage,
                gr(both.clone()),
                Capability::FourOctetAs(65001),
                Capability::EnhancedRouteRefresh,
                llgr.clone(),
            ],
        })
    );
    assert_eq!(
        gobgp.message(0),
        Message::Open(gobgp_open(
            AS_TRANS,
            vec![
                Capability::RouteRefresh,
                fqdn(),
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::FourOctetAs(4_200_000_002),
                gr(both),
                ipv6_extended_next_hop(),
            ]
        ))
    );
    let (bird, gobgp) = p2();
    assert_eq!(
        bird.message(0),
        Message::Open(Open {
            version: 4,
            my_as: 65001,
            hold_time: 240,
            router_id: Ipv4Addr::new(10, 77, 0, 1),
            capabilities: vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::RouteRefresh,
                gr(vec![]),
                Capability::EnhancedRouteRefresh,
                llgr.clone(),
            ],
        })
    );
    assert_eq!(
        gobgp.message(0),
        Message::Open(gobgp_open(
            65002,
            vec![
                Capability::RouteRefresh,
                fqdn(),
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(65002),
                ipv6_extended_next_hop(),
            ]
        ))
    );
    let (bird, gobgp) = p3();
    let Message::Open(bird_open) = bird.message(0) else {
        panic!("no OPEN");
    };
    assert_eq!(
        bird_open,
        Open {
            version: 4,
            my_as: AS_TRANS,
            hold_time: 240,
            router_id: Ipv4Addr::new(10, 77, 0, 1),
            capabilities: vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                gr(vec![]),
                Capability::FourOctetAs(4_200_000_002),
                both_add_path.clone(),
                Capability::EnhancedRouteRefresh,
                llgr,
            ],
        }
    );
    assert_eq!(bird_open.asn(), 4_200_000_002);
    assert_eq!(
        gobgp.message(0),
        Message::Open(gobgp_open(
            AS_TRANS,
            vec![
                Capability::RouteRefresh,
                fqdn(),
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::FourOctetAs(4_200_000_002),
                ipv6_extended_next_hop(),
                both_add_path,
            ]
        ))
    );
    assert_eq!(bird.cfg.add_path_receive, [true, true]);
    assert!(bird.cfg.four_octet_as && !p2().0.cfg.four_octet_as);
}

#[test]
fn every_captured_message_decodes_cleanly_and_re_encodes() {
    // Where the sender chose differently from our canonical form, the
    // re-encoding is only checked to decode to the same value:
    // BIRD writes MP_REACH/MP_UNREACH first and always with Extended Length;
    // BIRD sets Partial on communities it attached to a learned route;
    // GoBGP sends AIGP (26, optional non-transitive), which we drop.
    let (p1_bird, p1_gobgp) = p1();
    let (p2_bird, p2_gobgp) = p2();
    let (p3_bird, p3_gobgp) = p3();
    let cases = [
        ("bird-p1", p1_bird, vec![5, 9, 10]),
        ("gobgp-p1", p1_gobgp, vec![3, 9]),
        ("bird-p2", p2_bird, vec![4]),
        ("gobgp-p2", p2_gobgp, vec![3]),
        ("bird-p3", p3_bird, vec![10, 11, 12, 15, 16, 18]),
        ("gobgp-p3", p3_gobgp, vec![3]),
    ];
    for (name, capture, different) in cases {
        let mut differs = Vec::new();
        for (i, bytes) in capture.messages.iter().enumerate() {
            assert_eq!(
                frame_len(bytes, &capture.cfg),
                Ok(Some(bytes.len())),
                "{name}[{i}]"
            );
            let m = decode(bytes, &capture.cfg).unwrap_or_else(|e| panic!("{name}[{i}]: {e}"));
            if let Message::Update(u) = &m {
                assert!(
                    u.treat_as_withdraw.is_empty() && u.discarded.is_empty(),
                    "{name}[{i}]: {u:?}"
                );
            }
            let again = encoded(&m, &capture.cfg);
            if again != *bytes {
                differs.push(i);
                assert_eq!(decode(&again, &capture.cfg), Ok(m), "{name}[{i}]");
            }
        }
        assert_eq!(
            differs, different,
            "{name}: messages not re-encoded byte for byte"
        );
    }
}

#[test]
fn bird_ebgp_update_carries_its_export_filter_attributes() {
    let (bird, _) = p1();
    assert_eq!(
        bird.update(3),
        Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([65001, 4_200_000_009])),
                next_hop: Some(IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1))),
                med: Some(50),
                communities: vec![(65001 << 16) | 100, community::NO_EXPORT],
                ext_communities: vec![[0x00, 0x02, 0xfd, 0xe9, 0, 0, 0, 100]],
                large_communities: vec![LargeCommunity {
                    global: 65001,
                    local1: 1,
                    local2: 2,
                }],
                ..PathAttributes::default()
            },
            nlri: vec![
                nlri("10.1.2.0/24"),
                nlri("10.250.0.0/16"),
                nlri("10.250.16.0/20")
            ],
            ..Update::default()
        }
    );
    assert_eq!(bird.update(4).end_of_rib(), Some(Family::IPV4_UNICAST));
    assert_eq!(bird.update(6).end_of_rib(), Some(Family::IPV6_UNICAST));
}

#[test]
fn bird_ipv6_update_has_a_global_and_link_local_next_hop() {
    let (bird, _) = p1();
    let u = bird.update(5);
    assert_eq!(
        attribute_codes(&bird.messages[5]),
        vec![14, 1, 2, 4, 8, 16, 32]
    );
    assert_eq!(
        u.mp_reach,
        Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: IpAddr::V6("2001:db8:77::1".parse().unwrap()),
            link_local: Some("fe80::44a0:9bff:fe91:61fc".parse().unwrap()),
            nlri: vec![nlri("2001:db8:250::/48"), nlri("2001:db8:1:2::/64")],
        })
    );
    assert_eq!(u.attributes.next_hop, None);
    assert_eq!(
        bird.update(10).mp_unreach,
        Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![nlri("2001:db8:250::/48"), nlri("2001:db8:1:2::/64")],
        })
    );
}

#[test]
fn bird_route_refresh_and_shutdown_communication_decode() {
    let (bird, _) = p1();
    assert_eq!(
        bird.message(7),
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype: 0
        })
    );
    assert_eq!(
        bird.message(8),
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: 0
        })
    );
    let Message::Notification(n) = bird.message(11) else {
        panic!("no NOTIFICATION");
    };
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(n.shutdown_message().as_deref(), Some("steer codec capture"));
}

#[test]
fn gobgp_ebgp_updates_decode_with_communities_and_without_aigp() {
    let (_, gobgp) = p1();
    assert_eq!(
        gobgp.update(2),
        Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([4_200_000_002])),
                next_hop: Some(IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2))),
                med: Some(10),
                communities: vec![(65002 << 16) | 1],
                large_communities: vec![LargeCommunity {
                    global: 4_200_000_002,
                    local1: 1,
                    local2: 1,
                }],
                ..PathAttributes::default()
            },
            nlri: vec![nlri("10.250.0.0/16")],
            ..Update::default()
        }
    );
    assert_eq!(attribute_codes(&gobgp.messages[3]), vec![1, 2, 3, 8, 26]);
    let aigp = gobgp.update(3);
    assert_eq!(aigp.attributes.origin, Some(Origin::Incomplete));
    assert_eq!(aigp.attributes.communities, vec![community::NO_EXPORT]);
    assert!(aigp.attributes.unknown.is_empty());
    assert_eq!(
        gobgp.update(6).mp_reach,
        Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: IpAddr::V6("2001:db8:77::2".parse().unwrap()),
            link_local: None,
            nlri: vec![nlri("2001:db8:250::/48")],
        })
    );
    assert_eq!(gobgp.update(5).end_of_rib(), Some(Family::IPV4_UNICAST));
    assert_eq!(gobgp.update(8).end_of_rib(), Some(Family::IPV6_UNICAST));
    assert_eq!(gobgp.update(16).withdrawn, vec![nlri("203.0.113.0/24")]);
    assert_eq!(
        gobgp.update(17).mp_unreach.unwrap().withdrawn,
        vec![nlri("2001:db8:99::/48")]
    );
}

#[test]
fn bird_two_octet_session_merges_as4_path() {
    let (bird, gobgp) = p2();
    assert!(!bird.cfg.four_octet_as);
    assert_eq!(
        attribute_codes(&bird.messages[2]),
        vec![1, 2, 3, 4, 8, 16, 17, 32]
    );
    let u = bird.update(2);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::sequence([65001, 4_200_000_009]))
    );
    assert_eq!(
        bird.update(4).attributes.as_path,
        Some(AsPath::sequence([65001, 4_200_000_009, 4_200_000_002]))
    );
    let raw_as_path = hex("40 02 06 02 02 fde9 5ba0");
    assert!(
        bird.messages[2]
            .windows(raw_as_path.len())
            .any(|w| w == raw_as_path),
        "AS_PATH carries AS_TRANS on the wire"
    );
    assert_eq!(
        gobgp.update(2).attributes.as_path,
        Some(AsPath::sequence([65002]))
    );
}

#[test]
fn ibgp_add_path_updates_carry_path_ids_both_ways() {
    let (bird, gobgp) = p3();
    let u = bird.update(2);
    assert_eq!(u.attributes.local_pref, Some(100));
    assert_eq!(u.attributes.as_path, Some(AsPath::default()));
    assert_eq!(
        u.nlri,
        ["10.1.2.0/24", "10.250.0.0/16", "10.250.16.0/20"]
            .map(|p| Nlri {
                prefix: pfx(p),
                path_id: 2
            })
            .to_vec()
    );
    assert_eq!(
        bird.update(14).withdrawn,
        [4, 5]
            .map(|path_id| Nlri {
                prefix: pfx("203.0.113.0/24"),
                path_id
            })
            .to_vec()
    );
    assert_eq!(
        bird.update(11).mp_reach.unwrap().nlri,
        ["2001:db8:250::/48", "2001:db8:1:2::/64"]
            .map(|p| Nlri {
                prefix: pfx(p),
                path_id: 3
            })
            .to_vec()
    );
    let (two, one) = (gobgp.update(4), gobgp.update(5));
    assert_eq!(
        (two.nlri, two.attributes.local_pref),
        (
            vec![Nlri {
                prefix: pfx("10.99.0.0/24"),
                path_id: 2
            }],
            Some(300)
        )
    );
    assert_eq!(
        (one.nlri, one.attributes.local_pref),
        (
            vec![Nlri {
                prefix: pfx("10.99.0.0/24"),
                path_id: 1
            }],
            Some(100)
        )
    );
}

#[test]
fn captured_updates_without_path_ids_fail_as_a_session_would_under_add_path() {
    let (bird, _) = p1();
    let wrong = CodecConfig {
        add_path_receive: [true, false],
        ..bird.cfg.clone()
    };
    let e = decode(&bird.messages[3], &wrong).unwrap_err();
    assert_eq!(notification(&e), (3, 10, vec![]));
}
