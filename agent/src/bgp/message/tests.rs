//! Message vectors checked both ways, round trips, header and OPEN errors,
//! and the packing of `encode_announce`/`encode_withdraw`.

use super::test_util::*;
use super::*;
use crate::bgp::attribute::{Aggregator, AsPath, LargeCommunity, Origin, RawAttribute, community};
use crate::bgp::error::Notification;
use crate::bgp::iana::CeaseSubcode;

const MARKER: &str = "ffffffff ffffffff ffffffff ffffffff";

fn full(text: &str) -> Vec<u8> {
    hex(&format!("{MARKER} {text}"))
}

fn both_ways(bytes: &[u8], value: &Message, cfg: &CodecConfig) {
    assert_eq!(
        decode(bytes, cfg).as_ref(),
        Ok(value),
        "decode {}",
        to_hex(bytes)
    );
    assert_eq!(
        to_hex(&encoded(value, cfg)),
        to_hex(bytes),
        "encode {value:?}"
    );
}

fn v6(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

fn open_vector() -> (Vec<u8>, Open) {
    let bytes = full(
        "0039 01  04 fde9 005a c0000201  1c
         02 1a  01 04 0001 00 01  01 04 0002 00 01  02 00  41 04 0000fde9  45 04 0001 01 03",
    );
    let open = Open {
        version: 4,
        my_as: 65001,
        hold_time: 90,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                receive: true,
                send: true,
            }]),
        ],
    };
    (bytes, open)
}

// ---------------------------------------------------------------- header

#[test]
fn frame_len_waits_for_a_whole_header() {
    let cfg = CodecConfig::default();
    assert_eq!(frame_len(&[], &cfg), Ok(None));
    assert_eq!(frame_len(&full("0013")[..18], &cfg), Ok(None));
    assert_eq!(frame_len(&full("0013 04"), &cfg), Ok(Some(19)));
    assert_eq!(frame_len(&full("0017 02 0000"), &cfg), Ok(Some(23)));
}

#[test]
fn a_marker_not_all_ones_is_connection_not_synchronized() {
    let mut m = full("0013 04");
    m[5] = 0xfe;
    let e = frame_len(&m, &CodecConfig::default()).unwrap_err();
    assert_eq!(notification(&e), (1, 1, vec![]));
}

#[test]
fn lengths_outside_the_limits_are_bad_message_length_with_the_length_field() {
    let plain = CodecConfig::default();
    let extended = CodecConfig {
        extended_message: true,
        ..CodecConfig::default()
    };
    let cases: [(&str, &CodecConfig, [u8; 2]); 12] = [
        ("0012 04", &plain, [0x00, 0x12]),
        ("0000 02", &plain, [0x00, 0x00]),
        ("1001 02", &plain, [0x10, 0x01]),
        ("1001 03", &plain, [0x10, 0x01]),
        ("1001 01", &extended, [0x10, 0x01]),
        ("1001 04", &extended, [0x10, 0x01]),
        ("0014 04", &plain, [0x00, 0x14]),
        ("001c 01", &plain, [0x00, 0x1c]),
        ("0016 02", &plain, [0x00, 0x16]),
        ("0014 03", &plain, [0x00, 0x14]),
        ("0016 05", &plain, [0x00, 0x16]),
        ("0018 05", &extended, [0x00, 0x18]),
    ];
    for (text, cfg, field) in cases {
        let e = frame_len(&full(text), cfg).unwrap_err();
        assert_eq!(notification(&e), (1, 2, field.to_vec()), "{text}");
        assert!(e.reason.contains("RFC 4271 §6.1"), "{}", e.reason);
    }
}

#[test]
fn extended_messages_raise_the_limit_for_update_notification_only() {
    let extended = CodecConfig {
        extended_message: true,
        ..CodecConfig::default()
    };
    assert_eq!(frame_len(&full("ffff 02"), &extended), Ok(Some(65535)));
    assert_eq!(frame_len(&full("1001 03"), &extended), Ok(Some(4097)));
    assert_eq!(frame_len(&full("1000 01"), &extended), Ok(Some(4096)));
}

#[test]
fn an_unknown_type_is_bad_message_type_with_the_type_octet() {
    for kind in [0u8, 6, 255] {
        let e = frame_len(&full(&format!("0013 {kind:02x}")), &CodecConfig::default()).unwrap_err();
        assert_eq!(notification(&e), (1, 3, vec![kind]));
    }
}

#[test]
fn decode_refuses_a_buffer_whose_size_differs_from_the_length_field() {
    let cfg = CodecConfig::default();
    let mut m = full("0013 04");
    m.push(0);
    assert_eq!(
        notification(&decode(&m, &cfg).unwrap_err()),
        (1, 2, vec![0, 0x13])
    );
    assert_eq!(
        notification(&decode(&m[..10], &cfg).unwrap_err()),
        (1, 2, vec![])
    );
}

// ------------------------------------------------------------ simple ones

#[test]
fn keepalive_matches_its_bytes_both_ways() {
    both_ways(
        &full("0013 04"),
        &Message::Keepalive,
        &CodecConfig::default(),
    );
}

#[test]
fn notification_matches_its_bytes_both_ways() {
    both_ways(
        &full("0019 03  06 02 03 627965"),
        &Message::Notification(Notification::cease_with_message(
            CeaseSubcode::AdminShutdown,
            "bye",
        )),
        &CodecConfig::default(),
    );
    both_ways(
        &full("0017 03  01 02 0012"),
        &Message::Notification(Notification::with_data(1, 2, vec![0, 0x12])),
        &CodecConfig::default(),
    );
    both_ways(
        &full("0015 03  04 00"),
        &Message::Notification(Notification::new(4, 0)),
        &CodecConfig::default(),
    );
}

#[test]
fn notification_data_is_cut_to_the_size_limit() {
    let n = Message::Notification(Notification::with_data(3, 1, vec![7; 5000]));
    let out = encoded(&n, &CodecConfig::default());
    assert_eq!(out.len(), 4096);
    match decode(&out, &CodecConfig::default()).unwrap() {
        Message::Notification(got) => assert_eq!(got.data, vec![7; 4096 - 21]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn route_refresh_matches_its_bytes_both_ways() {
    both_ways(
        &full("0017 05  0002 00 01"),
        &Message::RouteRefresh(RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: 0,
        }),
        &CodecConfig::default(),
    );
    both_ways(
        &full("0017 05  0001 02 01"),
        &Message::RouteRefresh(RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype: 2,
        }),
        &CodecConfig::default(),
    );
}

#[test]
fn end_of_rib_markers_match_rfc_4724_and_are_recognised() {
    let mut v4 = Vec::new();
    encode_end_of_rib(Family::IPV4_UNICAST, &mut v4);
    assert_eq!(to_hex(&v4), to_hex(&full("0017 02 0000 0000")));
    let mut v6 = Vec::new();
    encode_end_of_rib(Family::IPV6_UNICAST, &mut v6);
    assert_eq!(
        to_hex(&v6),
        to_hex(&full("001d 02 0000 0006 800f03 0002 01"))
    );
    let cfg = ibgp();
    assert_eq!(
        decode_update(&v4, &cfg).unwrap().end_of_rib(),
        Some(Family::IPV4_UNICAST)
    );
    assert_eq!(
        decode_update(&v6, &cfg).unwrap().end_of_rib(),
        Some(Family::IPV6_UNICAST)
    );
}

#[test]
fn an_end_of_rib_for_a_family_not_routed_is_no_end_of_rib() {
    let m = update(&[], &hex("800f03 0001 80"), &[]);
    let u = decode_update(&m, &ibgp()).unwrap();
    assert_eq!(u.mp_unreach, None);
    assert_eq!(u.discarded.len(), 1);
    assert_eq!(u.end_of_rib(), None);
}

// ------------------------------------------------------------------ OPEN

#[test]
fn open_matches_its_bytes_both_ways() {
    let (bytes, open) = open_vector();
    both_ways(&bytes, &Message::Open(open), &CodecConfig::default());
}

#[test]
fn open_without_capabilities_matches_its_bytes_both_ways() {
    let open = Open::new(4_200_000_000, 0, Ipv4Addr::new(10, 0, 0, 1), vec![]);
    assert_eq!(open.my_as, AS_TRANS);
    both_ways(
        &full("001d 01  04 5ba0 0000 0a000001 00"),
        &Message::Open(open),
        &CodecConfig::default(),
    );
}

/// What decoding one OPEN must give.
#[derive(Debug)]
enum OpenOutcome {
    /// Decoded, with exactly these capabilities.
    Capabilities(Vec<Capability>),
    /// Decoded.
    Accepted,
    /// Refused with this NOTIFICATION (code, subcode, data).
    Refused(u8, u8, Vec<u8>),
}

/// Decodes each row's OPEN body (name, body, outcome) and fails naming
/// every row whose outcome differs.
fn open_table(rows: &[(&str, &str, OpenOutcome)]) {
    let mut failures = Vec::new();
    for (name, body, want) in rows {
        let got = decode(
            &message(MessageType::Open, &hex(body)),
            &CodecConfig::default(),
        );
        let ok = match (&got, want) {
            (Ok(Message::Open(o)), OpenOutcome::Capabilities(caps)) => &o.capabilities == caps,
            (Ok(Message::Open(_)), OpenOutcome::Accepted) => true,
            (Err(e), OpenOutcome::Refused(code, sub, data)) => {
                notification(e) == (*code, *sub, data.clone())
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{name}\n    body {body}\n    got  {got:?}\n    want {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} OPEN cases failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn open_accepts_capabilities_spread_over_several_parameters() {
    open_table(&[(
        "capabilities in two parameters",
        "04 fde9 005a c0000201  16
         02 06 01 04 0001 00 01
         02 0c 02 00  41 04 0000fde9  46 00  06 00",
        OpenOutcome::Capabilities(vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
        ]),
    )]);
}

#[test]
fn open_accepts_rfc_9072_extended_optional_parameters() {
    open_table(&[(
        "extended optional parameters (RFC 9072)",
        "04 fde9 005a c0000201  ff ff 0009
         02 0006 41 04 0000fde9",
        OpenOutcome::Capabilities(vec![Capability::FourOctetAs(65001)]),
    )]);
}

#[test]
fn open_with_capabilities_over_253_octets_uses_rfc_9072_and_round_trips() {
    let caps: Vec<Capability> = (0..3)
        .map(|i| Capability::Unknown {
            code: 200 + i,
            data: vec![i; 100],
        })
        .collect();
    let open = Message::Open(Open::new(65001, 90, Ipv4Addr::new(192, 0, 2, 1), caps));
    let out = encoded(&open, &CodecConfig::default());
    assert_eq!(&out[28..34], &[255, 255, 0x01, 0x35, 2, 0x01]);
    assert_eq!(decode(&out, &CodecConfig::default()).unwrap(), open);
}

#[test]
fn open_errors_carry_the_rfc_4271_notification() {
    use OpenOutcome::{Accepted, Refused};
    open_table(&[
        (
            "version 3",
            "03 fde9 005a c0000201 00",
            Refused(2, 1, vec![0, 4]),
        ),
        (
            "version 5",
            "05 fde9 005a c0000201 00",
            Refused(2, 1, vec![0, 4]),
        ),
        (
            "hold time 1",
            "04 fde9 0001 c0000201 00",
            Refused(2, 6, vec![]),
        ),
        (
            "hold time 2",
            "04 fde9 0002 c0000201 00",
            Refused(2, 6, vec![]),
        ),
        (
            "bgp identifier 0.0.0.0",
            "04 fde9 005a 00000000 00",
            Refused(2, 3, vec![]),
        ),
        (
            "parameters length beyond the message",
            "04 fde9 005a c0000201 01",
            Refused(2, 0, vec![]),
        ),
        (
            "unsupported optional parameter type 1",
            "04 fde9 005a c0000201 04 01 02 0000",
            Refused(2, 4, vec![]),
        ),
        ("hold time 0", "04 fde9 0000 c0000201 00", Accepted),
        ("hold time 3", "04 fde9 0003 c0000201 00", Accepted),
    ]);
}

#[test]
fn open_with_a_malformed_capability_or_parameter_is_open_error_unspecific() {
    let unspecific = || OpenOutcome::Refused(2, 0, vec![]);
    open_table(&[
        (
            "parameter of 4 octets holding 2",
            "04 fde9 005a c0000201 04 02 04 4104",
            unspecific(),
        ),
        (
            "multiprotocol capability of 0 octets",
            "04 fde9 005a c0000201 04 02 02 0100",
            unspecific(),
        ),
        (
            "parameter of 5 octets holding 1",
            "04 fde9 005a c0000201 03 02 05 00",
            unspecific(),
        ),
        (
            "parameter of 5 octets holding none",
            "04 fde9 005a c0000201 02 02 05",
            unspecific(),
        ),
        (
            "extended parameter of 3 octets holding 2",
            "04 fde9 005a c0000201 ff ff 0005 02 0003 0200",
            unspecific(),
        ),
    ]);
}

#[test]
fn open_lookups_find_capabilities() {
    let (_, open) = open_vector();
    assert!(open.has_capability(CapabilityCode::RouteRefresh));
    assert!(!open.has_capability(CapabilityCode::GracefulRestart));
    assert_eq!(
        open.capability(CapabilityCode::FourOctetAs),
        Some(&Capability::FourOctetAs(65001))
    );
    assert_eq!(
        open.families().collect::<Vec<_>>(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert_eq!(
        open.add_path(Family::IPV4_UNICAST),
        Some(AddPathFamily {
            family: Family::IPV4_UNICAST,
            receive: true,
            send: true
        })
    );
    assert_eq!(open.add_path(Family::IPV6_UNICAST), None);
    assert_eq!(open.graceful_restart(), None);
    assert_eq!(open.asn(), 65001);
}

// ---------------------------------------------------------------- UPDATE

fn ipv4_update_vector() -> (Vec<u8>, Update) {
    let bytes = full(
        "0057 02  0000 0039
         40 01 01 00
         40 02 0a 02 02 0000fdf2 fa56ea01
         40 03 04 c000020a
         80 04 04 00000032
         c0 08 08 fdf20064 ffffff01
         c0 20 0c 0000fdf2 00000001 00000002
         10 0afa  18 c63364",
    );
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65010, 4_200_000_001])),
            next_hop: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
            med: Some(50),
            communities: vec![0xfdf2_0064, community::NO_EXPORT],
            large_communities: vec![LargeCommunity {
                global: 65010,
                local1: 1,
                local2: 2,
            }],
            ..PathAttributes::default()
        },
        nlri: two_routes(),
        ..Update::default()
    };
    (bytes, u)
}

fn ipv6_add_path_cfg() -> CodecConfig {
    CodecConfig {
        add_path_receive: [false, true],
        add_path_send: [false, true],
        ..ibgp()
    }
}

fn ipv6_update_vector() -> (Vec<u8>, Update) {
    let bytes = full(
        "0080 02  0000 0069
         40 01 01 02
         40 02 00
         40 05 04 00000064
         80 09 04 c0000205
         80 0a 08 c0000206 c0000207
         80 0e 3b 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00
                  00000001 30 20010db80001
                  00000002 30 20010db80001
         c0 10 08 0002fdf2 00000064",
    );
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Incomplete),
            as_path: Some(AsPath::default()),
            local_pref: Some(100),
            originator_id: Some(Ipv4Addr::new(192, 0, 2, 5)),
            cluster_list: vec![Ipv4Addr::new(192, 0, 2, 6), Ipv4Addr::new(192, 0, 2, 7)],
            ext_communities: vec![[0, 2, 0xfd, 0xf2, 0, 0, 0, 100]],
            ..PathAttributes::default()
        },
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: IpAddr::V6(v6("2001:db8::1")),
            link_local: Some(v6("fe80::1")),
            nlri: vec![
                Nlri {
                    prefix: pfx("2001:db8:1::/48"),
                    path_id: 1,
                },
                Nlri {
                    prefix: pfx("2001:db8:1::/48"),
                    path_id: 2,
                },
            ],
        }),
        ..Update::default()
    };
    (bytes, u)
}

fn as4_update_vector() -> (Vec<u8>, Update) {
    let bytes = full(
        "0053 02  0000 0035
         40 01 01 00
         40 02 06 02 02 fdf2 5ba0
         40 03 04 c000020a
         c0 07 06 5ba0 c0000263
         c0 11 0a 02 02 0000fdf2 fa56ea01
         c0 12 08 fa56ea01 c0000263
         10 0afa  18 c63364",
    );
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65010, 4_200_000_001])),
            next_hop: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
            aggregator: Some(Aggregator {
                asn: 4_200_000_001,
                address: Ipv4Addr::new(192, 0, 2, 99),
            }),
            ..PathAttributes::default()
        },
        nlri: two_routes(),
        ..Update::default()
    };
    (bytes, u)
}

fn two_octet_ebgp() -> CodecConfig {
    CodecConfig {
        ebgp: true,
        ..CodecConfig::default()
    }
}

#[test]
fn ipv4_update_with_communities_matches_its_bytes_both_ways() {
    let (bytes, u) = ipv4_update_vector();
    both_ways(&bytes, &Message::Update(u), &ebgp());
}

#[test]
fn ipv6_mp_reach_with_link_local_and_path_ids_matches_its_bytes_both_ways() {
    let (bytes, u) = ipv6_update_vector();
    both_ways(&bytes, &Message::Update(u), &ipv6_add_path_cfg());
}

#[test]
fn two_octet_session_update_with_as4_attributes_matches_its_bytes_both_ways() {
    let (bytes, u) = as4_update_vector();
    both_ways(&bytes, &Message::Update(u), &two_octet_ebgp());
}

#[test]
fn ipv4_withdraw_with_path_ids_matches_its_bytes_both_ways() {
    let bytes = full("0026 02  000f 00000005 10 0afa 00000006 18 c63364  0000");
    let u = Update {
        withdrawn: vec![
            Nlri {
                prefix: pfx("10.250.0.0/16"),
                path_id: 5,
            },
            Nlri {
                prefix: pfx("198.51.100.0/24"),
                path_id: 6,
            },
        ],
        ..Update::default()
    };
    let cfg = CodecConfig {
        add_path_receive: [true, false],
        add_path_send: [true, false],
        ..ibgp()
    };
    both_ways(&bytes, &Message::Update(u.clone()), &cfg);
    let mut out = Vec::new();
    encode_withdraw(&cfg, &u.withdrawn, &mut out).unwrap();
    assert_eq!(to_hex(&out), to_hex(&bytes));
}

#[test]
fn ipv6_withdraw_matches_its_bytes_both_ways() {
    let bytes = full("0024 02  0000 000d 80 0f 0a 0002 01 30 20010db80001");
    let u = Update {
        mp_unreach: Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![nlri("2001:db8:1::/48")],
        }),
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(u.clone()), &ibgp());
    let mut out = Vec::new();
    encode_withdraw(&ibgp(), &u.mp_unreach.unwrap().withdrawn, &mut out).unwrap();
    assert_eq!(to_hex(&out), to_hex(&bytes));
}

#[test]
fn encode_announce_writes_the_same_bytes_as_the_vectors() {
    let (bytes, u) = ipv4_update_vector();
    let mut out = Vec::new();
    encode_announce(&ebgp(), &u.attributes, &u.nlri, &mut out).unwrap();
    assert_eq!(to_hex(&out), to_hex(&bytes));

    let (bytes, u) = ipv6_update_vector();
    let reach = u.mp_reach.clone().unwrap();
    let attrs = PathAttributes {
        next_hop: Some(reach.next_hop),
        link_local_next_hop: reach.link_local,
        ..u.attributes.clone()
    };
    let mut out = Vec::new();
    encode_announce(&ipv6_add_path_cfg(), &attrs, &reach.nlri, &mut out).unwrap();
    assert_eq!(to_hex(&out), to_hex(&bytes));

    let (bytes, u) = as4_update_vector();
    let mut out = Vec::new();
    encode_announce(&two_octet_ebgp(), &u.attributes, &u.nlri, &mut out).unwrap();
    assert_eq!(to_hex(&out), to_hex(&bytes));
}

/// Updates exercising every attribute and NLRI placement.
fn sample_updates() -> Vec<Update> {
    let (_, a) = ipv4_update_vector();
    let (_, b) = ipv6_update_vector();
    let (_, c) = as4_update_vector();
    let everything = PathAttributes {
        origin: Some(Origin::Egp),
        as_path: Some(AsPath {
            segments: vec![
                crate::bgp::attribute::AsSegment::Sequence(vec![65001, 4_200_000_000, 65002]),
                crate::bgp::attribute::AsSegment::Set(vec![65100, 65101]),
            ],
        }),
        next_hop: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))),
        med: Some(0),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some(Aggregator {
            asn: 4_200_000_009,
            address: Ipv4Addr::new(203, 0, 113, 9),
        }),
        communities: vec![1, 2, 3],
        ext_communities: vec![[0, 2, 0, 1, 0, 0, 0, 1], [1, 2, 3, 4, 5, 6, 7, 8]],
        large_communities: vec![
            LargeCommunity {
                global: 4_200_000_000,
                local1: 0,
                local2: u32::MAX,
            };
            3
        ],
        originator_id: Some(Ipv4Addr::new(198, 51, 100, 1)),
        cluster_list: vec![Ipv4Addr::new(198, 51, 100, 2)],
        unknown: vec![
            RawAttribute {
                flags: 0xe0,
                type_code: 11,
                value: vec![1, 2, 3],
            },
            RawAttribute {
                flags: 0xe0,
                type_code: 99,
                value: vec![0; 300],
            },
        ],
        ..PathAttributes::default()
    };
    vec![
        a,
        b,
        c,
        Update::default(),
        Update {
            withdrawn: two_routes(),
            attributes: everything.clone(),
            nlri: vec![nlri("0.0.0.0/0"), nlri("192.0.2.255/32")],
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: IpAddr::V6(v6("2001:db8::2")),
                link_local: None,
                nlri: vec![nlri("::/0"), nlri("2001:db8:ffff::1/128")],
            }),
            mp_unreach: Some(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![nlri("2001:db8:2::/48")],
            }),
            ..Update::default()
        },
        Update {
            attributes: PathAttributes {
                communities: (0..100).collect(),
                ..everything
            },
            mp_reach: Some(MpReach {
                family: Family::IPV4_UNICAST,
                next_hop: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                link_local: None,
                nlri: vec![nlri("10.1.0.0/16")],
            }),
            ..Update::default()
        },
    ]
}

#[test]
fn every_message_type_round_trips_under_every_session_setting() {
    let configs = [
        CodecConfig::default(),
        ibgp(),
        CodecConfig {
            add_path_receive: [true, true],
            add_path_send: [true, true],
            extended_message: true,
            ..ibgp()
        },
        CodecConfig {
            add_path_receive: [true, false],
            add_path_send: [true, false],
            ..CodecConfig::default()
        },
    ];
    let (_, open) = open_vector();
    let mut messages = vec![
        Message::Open(open),
        Message::Keepalive,
        Message::Notification(Notification::cease_with_message(
            CeaseSubcode::AdminShutdown,
            "maintenance",
        )),
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype: 1,
        }),
    ];
    messages.extend(sample_updates().into_iter().map(Message::Update));
    for cfg in &configs {
        for m in &messages {
            let bytes = encoded(m, cfg);
            assert_eq!(frame_len(&bytes, cfg), Ok(Some(bytes.len())));
            assert_eq!(
                decode(&bytes, cfg),
                Ok(without_unsent_path_ids(m, cfg)),
                "{cfg:?} {m:?}"
            );
        }
    }
}

/// `m` as a session without ADD-PATH for a family sees it: path ids 0.
fn without_unsent_path_ids(m: &Message, cfg: &CodecConfig) -> Message {
    let Message::Update(u) = m else {
        return m.clone();
    };
    let mut u = u.clone();
    let clear = |routes: &mut Vec<Nlri>, family: Family| {
        let i = family.index().unwrap();
        if !cfg.add_path_send[i] {
            routes.iter_mut().for_each(|n| n.path_id = 0);
        }
    };
    clear(&mut u.withdrawn, Family::IPV4_UNICAST);
    clear(&mut u.nlri, Family::IPV4_UNICAST);
    if let Some(r) = u.mp_reach.as_mut() {
        clear(&mut r.nlri, r.family);
    }
    if let Some(w) = u.mp_unreach.as_mut() {
        clear(&mut w.withdrawn, w.family);
    }
    Message::Update(u)
}

#[test]
fn ebgp_encoding_leaves_out_local_pref_originator_id_and_cluster_list() {
    let (_, u) = ipv6_update_vector();
    let bytes = encoded(&Message::Update(u.clone()), &ebgp());
    let got = decode_update(&bytes, &ibgp()).unwrap();
    assert_eq!(got.attributes.local_pref, None);
    assert_eq!(got.attributes.originator_id, None);
    assert_eq!(got.attributes.cluster_list, Vec::<Ipv4Addr>::new());
    assert_eq!(got.attributes.ext_communities, u.attributes.ext_communities);
}

// --------------------------------------------------------------- packing

fn announce_attrs(next_hop: IpAddr) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65010])),
        next_hop: Some(next_hop),
        ..PathAttributes::default()
    }
}

fn split_messages(mut bytes: &[u8], cfg: &CodecConfig) -> Vec<Update> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = frame_len(bytes, cfg).unwrap().unwrap();
        out.push(decode_update(&bytes[..len], cfg).unwrap());
        bytes = &bytes[len..];
    }
    out
}

fn lengths(mut bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    while bytes.len() >= HEADER_LEN {
        let len = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        out.push(len);
        bytes = &bytes[len..];
    }
    out
}

fn v4_routes(count: u32) -> Vec<Nlri> {
    (0..count)
        .map(|i| {
            Nlri::new(Prefix::new(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))),
                24,
            ))
        })
        .collect()
}

fn v6_routes(count: u32, path_id: u32) -> Vec<Nlri> {
    (0..count)
        .map(|i| Nlri {
            prefix: Prefix::new(
                IpAddr::V6(Ipv6Addr::from(
                    (0x2001_0db8_u128 << 96) | (u128::from(i) << 64),
                )),
                64,
            ),
            path_id,
        })
        .collect()
}

use crate::prefix::Prefix;

#[test]
fn announce_packs_ipv4_nlri_up_to_4096_octets() {
    let cfg = ibgp();
    let routes = v4_routes(3000);
    let mut out = Vec::new();
    encode_announce(
        &cfg,
        &announce_attrs(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        &routes,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        lengths(&out),
        vec![43 + 4 * 1013, 43 + 4 * 1013, 43 + 4 * 974]
    );
    let updates = split_messages(&out, &cfg);
    assert!(
        updates
            .iter()
            .all(|u| u.attributes == updates[0].attributes)
    );
    let got: Vec<Nlri> = updates.into_iter().flat_map(|u| u.nlri).collect();
    assert_eq!(got, routes);
}

#[test]
fn announce_fills_extended_messages_when_negotiated() {
    let cfg = CodecConfig {
        extended_message: true,
        ..ibgp()
    };
    let routes = v4_routes(20_000);
    let mut out = Vec::new();
    encode_announce(
        &cfg,
        &announce_attrs(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        &routes,
        &mut out,
    )
    .unwrap();
    assert_eq!(lengths(&out), vec![43 + 4 * 16373, 43 + 4 * 3627]);
    let got: Vec<Nlri> = split_messages(&out, &cfg)
        .into_iter()
        .flat_map(|u| u.nlri)
        .collect();
    assert_eq!(got, routes);
}

#[test]
fn announce_packs_ipv6_nlri_with_path_ids_into_mp_reach() {
    let cfg = ipv6_add_path_cfg();
    let routes = v6_routes(700, 9);
    let mut out = Vec::new();
    let attrs = announce_attrs(IpAddr::V6(v6("2001:db8::1")));
    encode_announce(&cfg, &attrs, &routes, &mut out).unwrap();
    assert_eq!(
        lengths(&out),
        vec![61 + 13 * 310, 61 + 13 * 310, 61 + 13 * 80]
    );
    let updates = split_messages(&out, &cfg);
    let got: Vec<Nlri> = updates
        .iter()
        .flat_map(|u| u.mp_reach.clone().unwrap().nlri)
        .collect();
    assert_eq!(got, routes);
    assert_eq!(updates[0].attributes.next_hop, None);
    assert_eq!(
        updates[0].mp_reach.as_ref().unwrap().next_hop,
        IpAddr::V6(v6("2001:db8::1"))
    );
}

#[test]
fn a_small_mp_reach_uses_a_one_octet_length() {
    let mut out = Vec::new();
    let attrs = announce_attrs(IpAddr::V6(v6("2001:db8::1")));
    encode_announce(&ipv6_add_path_cfg(), &attrs, &v6_routes(5, 1), &mut out).unwrap();
    assert_eq!(lengths(&out), vec![19 + 4 + 13 + 3 + 21 + 5 * 13]);
    assert_eq!(&out[36..39], &[0x80, 14, 21 + 5 * 13]);
}

#[test]
fn withdraw_packs_ipv4_and_ipv6_nlri() {
    let cfg = ibgp();
    let mut out = Vec::new();
    encode_withdraw(&cfg, &v4_routes(2000), &mut out).unwrap();
    assert_eq!(lengths(&out), vec![23 + 4 * 1018, 23 + 4 * 982]);
    let got: Vec<Nlri> = split_messages(&out, &cfg)
        .into_iter()
        .flat_map(|u| u.withdrawn)
        .collect();
    assert_eq!(got, v4_routes(2000));

    let mut out = Vec::new();
    encode_withdraw(&cfg, &v6_routes(500, 0), &mut out).unwrap();
    assert_eq!(lengths(&out), vec![30 + 9 * 451, 30 + 9 * 49]);
    let got: Vec<Nlri> = split_messages(&out, &cfg)
        .into_iter()
        .flat_map(|u| u.mp_unreach.unwrap().withdrawn)
        .collect();
    assert_eq!(got, v6_routes(500, 0));
}

#[test]
fn mixed_families_are_sent_family_by_family() {
    let cfg = ibgp();
    let mut routes = v6_routes(2, 0);
    routes.insert(1, nlri("10.0.0.0/8"));
    let mut out = Vec::new();
    encode_withdraw(&cfg, &routes, &mut out).unwrap();
    let updates = split_messages(&out, &cfg);
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].withdrawn, vec![nlri("10.0.0.0/8")]);
    assert_eq!(
        updates[1].mp_unreach.as_ref().unwrap().withdrawn,
        v6_routes(2, 0)
    );
}

#[test]
fn announce_refuses_what_it_cannot_send() {
    let cfg = ibgp();
    let v4 = two_routes();
    let mut out = Vec::new();
    let no_origin = PathAttributes {
        origin: None,
        ..announce_attrs(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
    };
    assert_eq!(
        encode_announce(&cfg, &no_origin, &v4, &mut out),
        Err(EncodeError::Missing("ORIGIN"))
    );
    let no_next_hop = PathAttributes {
        next_hop: None,
        ..announce_attrs(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
    };
    assert_eq!(
        encode_announce(&cfg, &no_next_hop, &v4, &mut out),
        Err(EncodeError::Missing("NEXT_HOP"))
    );
    let v6_next_hop = announce_attrs(IpAddr::V6(v6("2001:db8::1")));
    assert_eq!(
        encode_announce(&cfg, &v6_next_hop, &v4, &mut out),
        Err(EncodeError::NextHopFamily {
            next_hop: IpAddr::V6(v6("2001:db8::1")),
            family: "ipv4-unicast"
        })
    );
    let huge = PathAttributes {
        communities: (0..1100).collect(),
        ..announce_attrs(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
    };
    assert_eq!(
        encode_announce(&cfg, &huge, &v4, &mut out),
        Err(EncodeError::TooLarge {
            what: "path attributes",
            limit: 4096
        })
    );
    assert!(out.is_empty());
    encode_announce(&cfg, &huge, &[], &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn an_absent_as_path_is_announced_empty() {
    let attrs = PathAttributes {
        as_path: None,
        ..announce_attrs(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
    };
    let mut out = Vec::new();
    encode_announce(&ibgp(), &attrs, &two_routes(), &mut out).unwrap();
    let u = decode_update(&out, &ibgp()).unwrap();
    assert_eq!(u.attributes.as_path, Some(AsPath::default()));
    assert!(u.treat_as_withdraw.is_empty());
}

#[test]
fn message_encode_refuses_an_update_over_the_limit_and_leaves_out_untouched() {
    let u = Update {
        nlri: v4_routes(1100),
        attributes: announce_attrs(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        ..Update::default()
    };
    let mut out = vec![1, 2, 3];
    assert_eq!(
        Message::Update(u).encode(&ibgp(), &mut out),
        Err(EncodeError::TooLarge {
            what: "UPDATE",
            limit: 4096
        })
    );
    assert_eq!(out, vec![1, 2, 3]);
}

#[test]
fn update_helpers_list_announced_and_withdrawn_routes() {
    let u = &sample_updates()[4];
    assert_eq!(
        u.announced()
            .map(|n| n.prefix.to_string())
            .collect::<Vec<_>>(),
        [
            "0.0.0.0/0",
            "192.0.2.255/32",
            "::/0",
            "2001:db8:ffff::1/128"
        ]
    );
    assert_eq!(
        u.withdrawals()
            .map(|n| n.prefix.to_string())
            .collect::<Vec<_>>(),
        ["10.250.0.0/16", "198.51.100.0/24", "2001:db8:2::/48"]
    );
}
