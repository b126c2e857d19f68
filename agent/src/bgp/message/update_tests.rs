//! UPDATE error handling: every RFC 7606 case with its exact outcome (the
//! NOTIFICATION, or the treat-as-withdraw/discard issues and what
//! survives), AS4 merging (RFC 6793 §4.2.3) and attribute encoding rules.

use super::test_util::*;
use super::*;
use crate::bgp::attribute::{Aggregator, AsPath, AsSegment, Origin, RawAttribute};

const ORIGIN: &str = "40 01 01 00";
const AS_PATH: &str = "40 02 06 02 01 0000fdf2";
const NEXT_HOP: &str = "40 03 04 c0000201";
/// MP_REACH_NLRI: IPv6 unicast, next hop 2001:db8::1, 2001:db8:1::/48.
const MP_REACH_V6: &str = "80 0e 1c 0002 01 10 20010db8000000000000000000000001 00 30 20010db80001";

fn announce(attrs: &str) -> Vec<u8> {
    update(&[], &hex(attrs), TWO_ROUTES)
}

fn good() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65010])),
        next_hop: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        ..PathAttributes::default()
    }
}

fn issue(type_code: u8, reason: &str) -> AttributeIssue {
    AttributeIssue {
        type_code,
        reason: reason.to_string(),
    }
}

/// The UPDATE announcing the two routes with `attributes` and `issues` as
/// treat-as-withdraw.
fn withdrawn_with(attributes: PathAttributes, issues: Vec<AttributeIssue>) -> Update {
    Update {
        attributes,
        nlri: two_routes(),
        treat_as_withdraw: issues,
        ..Update::default()
    }
}

fn discarded_with(attributes: PathAttributes, issues: Vec<AttributeIssue>) -> Update {
    Update {
        attributes,
        nlri: two_routes(),
        discarded: issues,
        ..Update::default()
    }
}

fn reset(bytes: &[u8], cfg: &CodecConfig) -> (u8, u8, Vec<u8>) {
    let e = decode_update(bytes, cfg).unwrap_err();
    notification(&e)
}

fn mp_v6() -> MpReach {
    MpReach {
        family: Family::IPV6_UNICAST,
        next_hop: IpAddr::V6("2001:db8::1".parse().unwrap()),
        link_local: None,
        nlri: vec![nlri("2001:db8:1::/48")],
    }
}

// ------------------------------------------------- treat-as-withdraw (§7)

#[test]
fn malformed_origin_is_treat_as_withdraw_rfc7606_7_1() {
    let expected = |reason| {
        withdrawn_with(
            PathAttributes {
                origin: None,
                ..good()
            },
            vec![issue(1, reason)],
        )
    };
    assert_eq!(
        decode_update(
            &announce(&format!("40 01 02 0000 {AS_PATH} {NEXT_HOP}")),
            &ibgp()
        ),
        Ok(expected("ORIGIN length 2, expected 1 (RFC 7606 §7.1)"))
    );
    assert_eq!(
        decode_update(
            &announce(&format!("40 01 01 03 {AS_PATH} {NEXT_HOP}")),
            &ibgp()
        ),
        Ok(expected("ORIGIN value 3 is undefined (RFC 7606 §7.1)"))
    );
}

#[test]
fn malformed_as_path_is_treat_as_withdraw_rfc7606_7_2() {
    let cases = [
        (
            "40 02 04 02 02 0000",
            "segment of 2 ASes runs past the attribute (2 octets left)",
        ),
        ("40 02 02 02 00", "segment of type 2 holds no AS"),
        ("40 02 06 05 01 0000fdf2", "unknown segment type 5"),
        (
            "40 02 07 02 01 0000fdf2 02",
            "one octet left where a segment header must be",
        ),
    ];
    for (as_path, why) in cases {
        assert_eq!(
            decode_update(
                &announce(&format!("{ORIGIN} {as_path} {NEXT_HOP}")),
                &ibgp()
            ),
            Ok(withdrawn_with(
                PathAttributes {
                    as_path: None,
                    ..good()
                },
                vec![issue(
                    2,
                    &format!("malformed AS_PATH: {why} (RFC 7606 §7.2)")
                )]
            )),
            "{as_path}"
        );
    }
}

#[test]
fn a_confederation_segment_from_an_external_peer_is_treat_as_withdraw() {
    let bytes = announce(&format!("{ORIGIN} 40 02 06 03 01 0000fdf2 {NEXT_HOP}"));
    assert_eq!(
        decode_update(&bytes, &ebgp()),
        Ok(withdrawn_with(
            PathAttributes {
                as_path: None,
                ..good()
            },
            vec![issue(
                2,
                "AS_PATH with a confederation segment from an external peer (RFC 5065 §5.3, RFC 7606 §7.2)"
            )]
        ))
    );
    let internal = decode_update(&bytes, &ibgp()).unwrap();
    assert_eq!(
        internal.attributes.as_path,
        Some(AsPath {
            segments: vec![AsSegment::ConfedSequence(vec![65010])]
        })
    );
    assert!(internal.treat_as_withdraw.is_empty());
}

#[test]
fn malformed_next_hop_is_treat_as_withdraw_rfc7606_7_3() {
    assert_eq!(
        decode_update(
            &announce(&format!("{ORIGIN} {AS_PATH} 40 03 05 c000020100")),
            &ibgp()
        ),
        Ok(withdrawn_with(
            PathAttributes {
                next_hop: None,
                ..good()
            },
            vec![issue(3, "NEXT_HOP length 5, expected 4 (RFC 7606 §7.3)")]
        ))
    );
}

#[test]
fn a_next_hop_that_is_no_unicast_address_is_treat_as_withdraw() {
    for (hex_addr, text) in [
        ("00000000", "0.0.0.0"),
        ("e0000005", "224.0.0.5"),
        ("ffffffff", "255.255.255.255"),
    ] {
        let bytes = announce(&format!("{ORIGIN} {AS_PATH} 40 03 04 {hex_addr}"));
        assert_eq!(
            decode_update(&bytes, &ibgp()),
            Ok(withdrawn_with(
                PathAttributes {
                    next_hop: Some(IpAddr::V4(text.parse().unwrap())),
                    ..good()
                },
                vec![issue(
                    3,
                    &format!(
                        "NEXT_HOP {text} is not a unicast host address (RFC 4271 §6.3, RFC 7606 §7.3)"
                    )
                )]
            ))
        );
    }
}

#[test]
fn malformed_med_is_treat_as_withdraw_rfc7606_7_4() {
    assert_eq!(
        decode_update(
            &announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} 80 04 03 000001")),
            &ibgp()
        ),
        Ok(withdrawn_with(
            good(),
            vec![issue(
                4,
                "MULTI_EXIT_DISC length 3, expected 4 (RFC 7606 §7.4)"
            )]
        ))
    );
}

#[test]
fn malformed_local_pref_from_an_internal_peer_is_treat_as_withdraw_rfc7606_7_5() {
    assert_eq!(
        decode_update(
            &announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} 40 05 02 0064")),
            &ibgp()
        ),
        Ok(withdrawn_with(
            good(),
            vec![issue(5, "LOCAL_PREF length 2, expected 4 (RFC 7606 §7.5)")]
        ))
    );
}

#[test]
fn malformed_communities_are_treat_as_withdraw_rfc7606_7_8() {
    for (attr, len) in [("c0 08 00", 0), ("c0 08 06 000000010002", 6)] {
        assert_eq!(
            decode_update(
                &announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} {attr}")),
                &ibgp()
            ),
            Ok(withdrawn_with(
                good(),
                vec![issue(
                    8,
                    &format!(
                        "COMMUNITIES length {len} is not a non-zero multiple of 4 (RFC 7606 §7.8)"
                    )
                )]
            ))
        );
    }
}

#[test]
fn malformed_originator_id_from_an_internal_peer_is_treat_as_withdraw_rfc7606_7_9() {
    assert_eq!(
        decode_update(
            &announce(&format!(
                "{ORIGIN} {AS_PATH} {NEXT_HOP} 80 09 05 c000020100"
            )),
            &ibgp()
        ),
        Ok(withdrawn_with(
            good(),
            vec![issue(
                9,
                "ORIGINATOR_ID length 5, expected 4 (RFC 7606 §7.9)"
            )]
        ))
    );
}

#[test]
fn malformed_cluster_list_from_an_internal_peer_is_treat_as_withdraw_rfc7606_7_10() {
    for (attr, len) in [("80 0a 00", 0), ("80 0a 06 c00002010000", 6)] {
        assert_eq!(
            decode_update(
                &announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} {attr}")),
                &ibgp()
            ),
            Ok(withdrawn_with(
                good(),
                vec![issue(
                    10,
                    &format!(
                        "CLUSTER_LIST length {len} is not a non-zero multiple of 4 (RFC 7606 §7.10)"
                    )
                )]
            ))
        );
    }
}

#[test]
fn malformed_extended_communities_are_treat_as_withdraw_rfc7606_7_14() {
    assert_eq!(
        decode_update(
            &announce(&format!(
                "{ORIGIN} {AS_PATH} {NEXT_HOP} c0 10 0c 0002fdf200000064 00000000"
            )),
            &ibgp()
        ),
        Ok(withdrawn_with(
            good(),
            vec![issue(
                16,
                "EXTENDED_COMMUNITIES length 12 is not a non-zero multiple of 8 (RFC 7606 §7.14)"
            )]
        ))
    );
}

#[test]
fn malformed_large_communities_are_treat_as_withdraw_rfc8092_6() {
    for (attr, len) in [
        ("c0 20 00", 0),
        ("c0 20 0d 0000fdf2 00000001 00000002 03", 13),
    ] {
        assert_eq!(
            decode_update(
                &announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} {attr}")),
                &ibgp()
            ),
            Ok(withdrawn_with(
                good(),
                vec![issue(
                    32,
                    &format!(
                        "LARGE_COMMUNITY length {len} is not a non-zero multiple of 12 (RFC 8092 §6)"
                    )
                )]
            ))
        );
    }
}

#[test]
fn conflicting_flags_on_known_attributes_are_treat_as_withdraw_rfc7606_3c() {
    let cases = [
        (
            format!("c0 01 01 00 {AS_PATH} {NEXT_HOP}"),
            PathAttributes {
                origin: None,
                ..good()
            },
            issue(
                1,
                "ORIGIN flags 0xc0 conflict with the expected 0x40 (RFC 7606 §3 c)",
            ),
        ),
        (
            format!("{ORIGIN} {AS_PATH} {NEXT_HOP} c0 04 04 00000001"),
            good(),
            issue(
                4,
                "MULTI_EXIT_DISC flags 0xc0 conflict with the expected 0x80 (RFC 7606 §3 c)",
            ),
        ),
        (
            format!("{ORIGIN} {AS_PATH} {NEXT_HOP} 80 08 04 00000001"),
            good(),
            issue(
                8,
                "COMMUNITIES flags 0x80 conflict with the expected 0xc0 (RFC 7606 §3 c)",
            ),
        ),
        (
            format!("{ORIGIN} {AS_PATH} 00 03 04 c0000201"),
            PathAttributes {
                next_hop: None,
                ..good()
            },
            issue(
                3,
                "NEXT_HOP flags 0x00 conflict with the expected 0x40 (RFC 7606 §3 c)",
            ),
        ),
    ];
    for (attrs, surviving, expected) in cases {
        assert_eq!(
            decode_update(&announce(&attrs), &ibgp()),
            Ok(withdrawn_with(surviving, vec![expected])),
            "{attrs}"
        );
    }
}

#[test]
fn partial_and_extended_length_bits_are_no_flag_conflict() {
    let u = decode_update(
        &announce(&format!(
            "50 01 0001 00 {AS_PATH} {NEXT_HOP} e0 08 04 00000001"
        )),
        &ibgp(),
    )
    .unwrap();
    assert_eq!(
        u,
        Update {
            attributes: PathAttributes {
                communities: vec![1],
                ..good()
            },
            nlri: two_routes(),
            ..Update::default()
        }
    );
}

#[test]
fn mp_reach_with_conflicting_flags_is_treat_as_withdraw_but_keeps_its_routes() {
    let bytes = update(
        &[],
        &hex(&format!("{ORIGIN} {AS_PATH} c0{}", &MP_REACH_V6[2..])),
        &[],
    );
    assert_eq!(
        decode_update(&bytes, &ibgp()),
        Ok(Update {
            attributes: PathAttributes {
                next_hop: None,
                ..good()
            },
            mp_reach: Some(mp_v6()),
            treat_as_withdraw: vec![issue(
                14,
                "MP_REACH_NLRI flags 0xc0 conflict with the expected 0x80 (RFC 7606 §3 c)"
            )],
            ..Update::default()
        })
    );
}

#[test]
fn missing_well_known_attributes_with_routes_are_treat_as_withdraw_rfc7606_3d() {
    let origin = issue(1, "well-known mandatory ORIGIN is missing (RFC 7606 §3 d)");
    let as_path = issue(2, "well-known mandatory AS_PATH is missing (RFC 7606 §3 d)");
    let next_hop = issue(
        3,
        "NEXT_HOP is missing with routes in the NLRI field (RFC 7606 §3 d, RFC 4760 §3)",
    );
    assert_eq!(
        decode_update(&announce(&format!("{AS_PATH} {NEXT_HOP}")), &ibgp()),
        Ok(withdrawn_with(
            PathAttributes {
                origin: None,
                ..good()
            },
            vec![origin.clone()]
        ))
    );
    assert_eq!(
        decode_update(&announce(&format!("{ORIGIN} {NEXT_HOP}")), &ibgp()),
        Ok(withdrawn_with(
            PathAttributes {
                as_path: None,
                ..good()
            },
            vec![as_path.clone()]
        ))
    );
    assert_eq!(
        decode_update(&announce(&format!("{ORIGIN} {AS_PATH}")), &ibgp()),
        Ok(withdrawn_with(
            PathAttributes {
                next_hop: None,
                ..good()
            },
            vec![next_hop.clone()]
        ))
    );
    assert_eq!(
        decode_update(&announce(""), &ibgp()),
        Ok(withdrawn_with(
            PathAttributes::default(),
            vec![origin.clone(), as_path, next_hop]
        ))
    );
    let mp_only = update(&[], &hex(&format!("{AS_PATH} {MP_REACH_V6}")), &[]);
    assert_eq!(
        decode_update(&mp_only, &ibgp()),
        Ok(Update {
            attributes: PathAttributes {
                origin: None,
                next_hop: None,
                ..good()
            },
            mp_reach: Some(mp_v6()),
            treat_as_withdraw: vec![origin],
            ..Update::default()
        })
    );
}

#[test]
fn next_hop_is_not_required_when_only_mp_reach_announces() {
    let bytes = update(&[], &hex(&format!("{ORIGIN} {AS_PATH} {MP_REACH_V6}")), &[]);
    assert_eq!(
        decode_update(&bytes, &ibgp()),
        Ok(Update {
            attributes: PathAttributes {
                next_hop: None,
                ..good()
            },
            mp_reach: Some(mp_v6()),
            ..Update::default()
        })
    );
}

#[test]
fn an_attribute_running_past_the_attributes_is_treat_as_withdraw_rfc7606_4() {
    let bytes = announce(&format!("{ORIGIN} {AS_PATH} 40 03 08 c0000201"));
    assert_eq!(
        decode_update(&bytes, &ibgp()),
        Ok(withdrawn_with(
            PathAttributes {
                next_hop: None,
                ..good()
            },
            vec![
                issue(
                    3,
                    "attribute 3 of 8 octets at offset 13 runs past the path attributes (4 octets left) (RFC 7606 §4)"
                ),
                issue(
                    3,
                    "NEXT_HOP is missing with routes in the NLRI field (RFC 7606 §3 d, RFC 4760 §3)"
                ),
            ]
        ))
    );
}

#[test]
fn fewer_octets_than_an_attribute_header_is_treat_as_withdraw_rfc7606_4() {
    let base = format!("{ORIGIN} {AS_PATH} {NEXT_HOP}");
    let cases = [
        (
            "40",
            issue(0, "attribute header cut short at offset 20 (RFC 7606 §4)"),
        ),
        (
            "40 05",
            issue(5, "attribute 5 header cut short at offset 20 (RFC 7606 §4)"),
        ),
        (
            "50 05 00",
            issue(5, "attribute 5 header cut short at offset 20 (RFC 7606 §4)"),
        ),
    ];
    for (tail, expected) in cases {
        assert_eq!(
            decode_update(&announce(&format!("{base} {tail}")), &ibgp()),
            Ok(withdrawn_with(good(), vec![expected])),
            "{tail}"
        );
    }
}

// -------------------------------------------------- attribute discard

#[test]
fn local_pref_originator_id_and_cluster_list_from_an_external_peer_are_discarded() {
    let bytes = announce(&format!(
        "{ORIGIN} {AS_PATH} {NEXT_HOP} 40 05 04 00000064 80 09 04 c0000205 80 0a 04 c0000206"
    ));
    assert_eq!(
        decode_update(&bytes, &ebgp()),
        Ok(discarded_with(
            good(),
            vec![
                issue(5, "LOCAL_PREF from an external peer (RFC 7606 §7.5)"),
                issue(
                    9,
                    "ORIGINATOR_ID from an external peer (RFC 4456 §8, RFC 7606 §7.9)"
                ),
                issue(
                    10,
                    "CLUSTER_LIST from an external peer (RFC 4456 §8, RFC 7606 §7.10)"
                ),
            ]
        ))
    );
    let internal = decode_update(&bytes, &ibgp()).unwrap();
    assert_eq!(internal.attributes.local_pref, Some(100));
    assert_eq!(
        internal.attributes.originator_id,
        Some(Ipv4Addr::new(192, 0, 2, 5))
    );
    assert_eq!(
        internal.attributes.cluster_list,
        vec![Ipv4Addr::new(192, 0, 2, 6)]
    );
}

#[test]
fn atomic_aggregate_of_a_wrong_length_is_discarded_rfc7606_7_6() {
    assert_eq!(
        decode_update(
            &announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} 40 06 01 00")),
            &ibgp()
        ),
        Ok(discarded_with(
            good(),
            vec![issue(
                6,
                "ATOMIC_AGGREGATE length 1, expected 0 (RFC 7606 §7.6)"
            )]
        ))
    );
}

#[test]
fn aggregator_of_a_wrong_length_is_discarded_rfc7606_7_7() {
    assert_eq!(
        decode_update(
            &announce(&format!(
                "{ORIGIN} {AS_PATH} {NEXT_HOP} c0 07 06 fdf2 c0000201"
            )),
            &ibgp()
        ),
        Ok(discarded_with(
            good(),
            vec![issue(7, "AGGREGATOR length 6, expected 8 (RFC 7606 §7.7)")]
        ))
    );
    let two_octet = announce(&format!(
        "{ORIGIN} 40 02 04 02 01 fdf2 {NEXT_HOP} c0 07 08 0000fdf2 c0000201"
    ));
    assert_eq!(
        decode_update(&two_octet, &CodecConfig::default()),
        Ok(discarded_with(
            good(),
            vec![issue(7, "AGGREGATOR length 8, expected 6 (RFC 7606 §7.7)")]
        ))
    );
}

#[test]
fn repeated_attributes_keep_the_first_rfc7606_3g() {
    let bytes = announce(&format!(
        "{ORIGIN} {AS_PATH} {NEXT_HOP} 80 04 04 00000001 80 04 04 00000002 40 01 01 02"
    ));
    assert_eq!(
        decode_update(&bytes, &ibgp()),
        Ok(discarded_with(
            PathAttributes {
                med: Some(1),
                ..good()
            },
            vec![
                issue(
                    4,
                    "repeated attribute 4 (MULTI_EXIT_DISC) discarded, the first kept (RFC 7606 §3 g)"
                ),
                issue(
                    1,
                    "repeated attribute 1 (ORIGIN) discarded, the first kept (RFC 7606 §3 g)"
                ),
            ]
        ))
    );
}

#[test]
fn an_attribute_discard_without_routes_is_no_session_reset() {
    let bytes = update(&[], &hex("40 06 01 00"), &[]);
    assert_eq!(
        decode_update(&bytes, &ibgp()),
        Ok(Update {
            discarded: vec![issue(
                6,
                "ATOMIC_AGGREGATE length 1, expected 0 (RFC 7606 §7.6)"
            )],
            ..Update::default()
        })
    );
}

#[test]
fn an_mp_attribute_of_a_family_not_routed_is_discarded() {
    let bytes = announce(&format!(
        "{ORIGIN} {AS_PATH} {NEXT_HOP} 80 0e 0e 0001 80 04 c0000201 00 40 0a0a0a0a 80 0f 03 0019 46"
    ));
    assert_eq!(
        decode_update(&bytes, &ibgp()),
        Ok(discarded_with(
            good(),
            vec![
                issue(
                    14,
                    "MP_REACH_NLRI of afi1/safi128, a family Steer does not route, ignored (RFC 4760 §6)"
                ),
                issue(
                    15,
                    "MP_UNREACH_NLRI of afi25/safi70, a family Steer does not route, ignored (RFC 4760 §6)"
                ),
            ]
        ))
    );
}

// ------------------------------------------------------- session reset

#[test]
fn mp_reach_or_mp_unreach_twice_is_malformed_attribute_list_rfc7606_3g() {
    let twice = format!("{ORIGIN} {AS_PATH} {MP_REACH_V6} {MP_REACH_V6}");
    assert_eq!(
        reset(&update(&[], &hex(&twice), &[]), &ibgp()),
        (3, 1, vec![])
    );
    let twice = "80 0f 03 0002 01 80 0f 03 0002 01";
    assert_eq!(
        reset(&update(&[], &hex(twice), &[]), &ibgp()),
        (3, 1, vec![])
    );
}

#[test]
fn treat_as_withdraw_without_announced_routes_is_a_session_reset_rfc7606_5_2() {
    let bad_med = hex("80 04 03 000001");
    let e = decode_update(&update(&[], &bad_med, &[]), &ibgp()).unwrap_err();
    assert_eq!(notification(&e), (3, 1, vec![]));
    assert!(e.reason.ends_with("(RFC 7606 §5.2)"), "{}", e.reason);
    assert_eq!(
        reset(&update(&[16, 10, 250], &bad_med, &[]), &ibgp()),
        (3, 1, vec![])
    );
}

#[test]
fn field_lengths_running_past_the_message_are_malformed_attribute_list() {
    for body in ["0010 100a 0000", "0000 0010 40010100", "0002 080a"] {
        let m = message(MessageType::Update, &hex(body));
        assert_eq!(reset(&m, &ibgp()), (3, 1, vec![]), "{body}");
    }
}

#[test]
fn nlri_that_cannot_be_parsed_is_invalid_network_field_rfc7606_5_3() {
    let attrs = hex(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP}"));
    let cases = [
        update(&[], &attrs, &[33, 1, 2, 3, 4, 5]),
        update(&[], &attrs, &[24, 10, 0]),
        update(&[33, 1, 2, 3, 4, 5], &[], &[]),
        update(
            &[],
            &hex(&format!(
                "{ORIGIN} {AS_PATH} 80 0e 17 0002 01 10 20010db8000000000000000000000001 00 81 20"
            )),
            &[],
        ),
        update(&[], &hex("80 0f 06 0002 01 30 2001"), &[]),
    ];
    for m in cases {
        assert_eq!(reset(&m, &ibgp()), (3, 10, vec![]), "{}", to_hex(&m));
    }
}

#[test]
fn malformed_mp_attributes_are_optional_attribute_error_with_the_attribute() {
    let cases = [
        "80 0e 04 0002 0110",
        "80 0e 14 0002 01 0f 20010db800000000000000000000ff 00",
        "80 0e 15 0001 01 10 20010db8000000000000000000000001 00",
        "80 0e 06 0002 01 10 2001",
        "80 0e 08 0001 01 04 c0000201",
        "80 0f 02 0002",
    ];
    for attr in cases {
        let m = update(&[], &hex(&format!("{ORIGIN} {AS_PATH} {attr}")), &[]);
        assert_eq!(reset(&m, &ibgp()), (3, 9, hex(attr)), "{attr}");
    }
}

#[test]
fn an_mp_attribute_running_past_the_attributes_is_optional_attribute_error() {
    let m = update(
        &[],
        &hex(&format!("{ORIGIN} {AS_PATH} 80 0e 20 0002 01")),
        &[],
    );
    assert_eq!(reset(&m, &ibgp()), (3, 9, hex("80 0e 20 0002 01")));
}

#[test]
fn an_unrecognized_well_known_attribute_is_a_session_reset_with_the_attribute() {
    let m = announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} 40 63 02 abcd"));
    assert_eq!(reset(&m, &ibgp()), (3, 2, hex("40 63 02 abcd")));
}

// -------------------------------------------------- unknown attributes

#[test]
fn unknown_optional_transitive_attributes_are_kept_in_code_order_and_resent_partial() {
    let m = announce(&format!(
        "{ORIGIN} {AS_PATH} {NEXT_HOP} d0 64 0001 ef c0 63 02 abcd"
    ));
    let u = decode_update(&m, &ibgp()).unwrap();
    assert_eq!(
        u.attributes.unknown,
        vec![
            RawAttribute {
                flags: 0xc0,
                type_code: 99,
                value: vec![0xab, 0xcd]
            },
            RawAttribute {
                flags: 0xc0,
                type_code: 100,
                value: vec![0xef]
            },
        ]
    );
    let out = encoded(&Message::Update(u), &ibgp());
    assert_eq!(
        to_hex(&out),
        to_hex(&announce(&format!(
            "{ORIGIN} {AS_PATH} {NEXT_HOP} e0 63 02 abcd e0 64 01 ef"
        )))
    );
}

#[test]
fn unknown_optional_non_transitive_attributes_are_dropped_silently() {
    let m = announce(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP} 80 63 02 abcd"));
    assert_eq!(
        decode_update(&m, &ibgp()),
        Ok(Update {
            attributes: good(),
            nlri: two_routes(),
            ..Update::default()
        })
    );
}

// ---------------------------------------------------------- RFC 6793

const AS_PATH_2: &str = "40 02 06 02 02 fdf2 5ba0";
const AS4_PATH: &str = "c0 11 0a 02 02 0000fdf2 fa56ea01";

fn two_octet() -> CodecConfig {
    CodecConfig::default()
}

#[test]
fn as4_attributes_on_a_four_octet_session_are_discarded() {
    let m = announce(&format!(
        "{ORIGIN} {AS_PATH} {NEXT_HOP} {AS4_PATH} c0 12 08 fa56ea01 c0000263"
    ));
    assert_eq!(
        decode_update(&m, &ibgp()),
        Ok(discarded_with(
            good(),
            vec![
                issue(17, "AS4_PATH on a 4-octet AS session (RFC 6793 §4.1)"),
                issue(18, "AS4_AGGREGATOR on a 4-octet AS session (RFC 6793 §4.1)"),
            ]
        ))
    );
}

#[test]
fn as4_path_replaces_the_trailing_ases_of_as_path() {
    let m = announce(&format!(
        "{ORIGIN} 40 02 0a 02 04 fdf2 fdfc 5ba0 5ba0 {NEXT_HOP} c0 11 0a 02 02 fa56ea01 fa56ea02"
    ));
    let u = decode_update(&m, &two_octet()).unwrap();
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::sequence([
            65010,
            65020,
            4_200_000_001,
            4_200_000_002
        ]))
    );
    assert!(u.discarded.is_empty() && u.treat_as_withdraw.is_empty());
}

#[test]
fn as4_path_keeps_leading_sets_and_confederation_segments_of_as_path() {
    let m = announce(&format!(
        "{ORIGIN} 40 02 10 03 01 fde8 01 02 fdf2 fdfc 02 02 5ba0 fdfd {NEXT_HOP} c0 11 0a 02 02 fa56ea01 0000fdfd"
    ));
    let u = decode_update(&m, &two_octet()).unwrap();
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath {
            segments: vec![
                AsSegment::ConfedSequence(vec![65000]),
                AsSegment::Set(vec![65010, 65020]),
                AsSegment::Sequence(vec![4_200_000_001, 65021]),
            ]
        })
    );
}

#[test]
fn as4_attributes_are_ignored_when_aggregator_is_not_as_trans() {
    let m = announce(&format!(
        "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 07 06 fde9 c0000263 {AS4_PATH} c0 12 08 fa56ea01 c0000263"
    ));
    assert_eq!(
        decode_update(&m, &two_octet()),
        Ok(discarded_with(
            PathAttributes {
                as_path: Some(AsPath::sequence([65010, 23456])),
                aggregator: Some(Aggregator {
                    asn: 65001,
                    address: Ipv4Addr::new(192, 0, 2, 99)
                }),
                ..good()
            },
            vec![
                issue(
                    18,
                    "AS4_AGGREGATOR ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)"
                ),
                issue(
                    17,
                    "AS4_PATH ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)"
                ),
            ]
        ))
    );
}

#[test]
fn an_as4_path_longer_than_as_path_is_ignored() {
    let m = announce(&format!(
        "{ORIGIN} 40 02 04 02 01 5ba0 {NEXT_HOP} {AS4_PATH}"
    ));
    assert_eq!(
        decode_update(&m, &two_octet()),
        Ok(discarded_with(
            PathAttributes {
                as_path: Some(AsPath::sequence([23456])),
                ..good()
            },
            vec![issue(
                17,
                "AS4_PATH ignored: it holds more ASes than AS_PATH (RFC 6793 §4.2.3)"
            )]
        ))
    );
}

#[test]
fn malformed_as4_attributes_are_discarded_rfc6793_6() {
    let m = announce(&format!(
        "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 07 06 5ba0 c0000263 c0 11 02 02 00 c0 12 06 fa56 c0000263"
    ));
    assert_eq!(
        decode_update(&m, &two_octet()),
        Ok(discarded_with(
            PathAttributes {
                as_path: Some(AsPath::sequence([65010, 23456])),
                aggregator: Some(Aggregator {
                    asn: 23456,
                    address: Ipv4Addr::new(192, 0, 2, 99)
                }),
                ..good()
            },
            vec![
                issue(
                    17,
                    "malformed AS4_PATH: segment of type 2 holds no AS (RFC 6793 §6)"
                ),
                issue(18, "AS4_AGGREGATOR length 6, expected 8 (RFC 6793 §6)"),
            ]
        ))
    );
}

#[test]
fn as4_attributes_with_conflicting_flags_are_discarded() {
    let m = announce(&format!(
        "{ORIGIN} {AS_PATH_2} {NEXT_HOP} 80 11 0a 02 02 0000fdf2 fa56ea01"
    ));
    assert_eq!(
        decode_update(&m, &two_octet()),
        Ok(discarded_with(
            PathAttributes {
                as_path: Some(AsPath::sequence([65010, 23456])),
                ..good()
            },
            vec![issue(
                17,
                "AS4_PATH flags 0x80 conflict with the expected 0xc0 (RFC 7606 §3 c, RFC 6793 §6)"
            )]
        ))
    );
}

#[test]
fn confederation_segments_in_as4_path_are_removed() {
    let m = announce(&format!(
        "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 11 10 03 01 0000fde8 02 02 0000fdf2 fa56ea01"
    ));
    assert_eq!(
        decode_update(&m, &two_octet()),
        Ok(discarded_with(
            PathAttributes {
                as_path: Some(AsPath::sequence([65010, 4_200_000_001])),
                ..good()
            },
            vec![issue(
                17,
                "confederation segments removed from AS4_PATH (RFC 6793 §6)"
            )]
        ))
    );
}

#[test]
fn as4_aggregator_without_aggregator_is_ignored() {
    let m = announce(&format!(
        "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 12 08 fa56ea01 c0000263"
    ));
    assert_eq!(
        decode_update(&m, &two_octet()),
        Ok(discarded_with(
            PathAttributes {
                as_path: Some(AsPath::sequence([65010, 23456])),
                ..good()
            },
            vec![issue(
                18,
                "AS4_AGGREGATOR ignored: no AGGREGATOR (RFC 6793 §4.2.3)"
            )]
        ))
    );
}

#[test]
fn two_octet_encoding_uses_as_trans_and_adds_as4_attributes_only_when_needed() {
    let narrow = PathAttributes {
        as_path: Some(AsPath::sequence([65010, 65020])),
        aggregator: Some(Aggregator {
            asn: 65001,
            address: Ipv4Addr::new(192, 0, 2, 99),
        }),
        ..good()
    };
    let out = encoded(
        &Message::Update(Update {
            attributes: narrow,
            nlri: two_routes(),
            ..Update::default()
        }),
        &two_octet(),
    );
    assert_eq!(
        to_hex(&out),
        to_hex(&announce(&format!(
            "{ORIGIN} 40 02 06 02 02 fdf2 fdfc {NEXT_HOP} c0 07 06 fde9 c0000263"
        )))
    );
}

/// A 2-octet session carrying a 4-octet path and an aggregator whose AS
/// fits in two octets: AGGREGATOR AS_TRANS, AS4_PATH and AS4_AGGREGATOR.
const AS4_WITH_NARROW_AGGREGATOR: &str = "40 01 01 00 40 02 06 02 02 fdf2 5ba0 40 03 04 c0000201 \
     c0 07 06 5ba0 c0000263 c0 11 0a 02 02 0000fdf2 fa56ea01 c0 12 08 0000fde9 c0000263";

#[test]
fn a_narrow_aggregator_beside_as4_path_goes_out_as_as_trans_so_as4_path_survives() {
    let attributes = PathAttributes {
        as_path: Some(AsPath::sequence([65010, 4_200_000_001])),
        aggregator: Some(Aggregator {
            asn: 65001,
            address: Ipv4Addr::new(192, 0, 2, 99),
        }),
        ..good()
    };
    let m = Message::Update(Update {
        attributes,
        nlri: two_routes(),
        ..Update::default()
    });
    let out = encoded(&m, &two_octet());
    assert_eq!(to_hex(&out), to_hex(&announce(AS4_WITH_NARROW_AGGREGATOR)));
    assert_eq!(decode(&out, &two_octet()), Ok(m));
}

/// Found by the `decode` fuzz target (issue 7): AGGREGATOR AS_TRANS with
/// AS4_AGGREGATOR AS 0 and AS4_PATH decoded cleanly, but the re-encoding
/// put AS 0 in AGGREGATOR beside AS4_PATH, which the decoder then had to
/// ignore (RFC 6793 §4.2.3). The input is the fuzzer's, trailing bytes
/// included; its first message is the UPDATE.
#[test]
fn fuzz_regression_as4_aggregator_zero_beside_as4_path_round_trips() {
    let input = hex("ffffffffffffffffffffffffffffffff 0053 02 0000 0035 \
         40 01 01 00 40 02 06 02 02 fdf2 5ba0 40 03 04 c000020a c0 07 06 5ba0 c02d0263 \
         c0 11 0a 02 02 0000fdf2 fa56ea01 c0 12 08 00000000 00000000 \
         00000000000000fa56ea01c000ffffffffffffffffff0031640afa140afa10");
    let cfg = two_octet();
    let first = &input[..0x53];
    let m = decode_update(first, &cfg).unwrap();
    assert!(
        m.treat_as_withdraw.is_empty() && m.discarded.is_empty(),
        "{m:?}"
    );
    assert_eq!(
        m.attributes.as_path,
        Some(AsPath::sequence([65010, 4_200_000_001]))
    );
    let again = decode_update(&encoded(&Message::Update(m.clone()), &cfg), &cfg).unwrap();
    assert_eq!(again, m);
}

// ------------------------------------------------------------ encoding

#[test]
fn attributes_are_written_in_type_code_order_with_unknown_ones_in_between() {
    let raw = |type_code| RawAttribute {
        flags: 0xc0,
        type_code,
        value: vec![type_code],
    };
    let attrs = PathAttributes {
        med: Some(1),
        local_pref: Some(2),
        atomic_aggregate: true,
        aggregator: Some(Aggregator {
            asn: 1,
            address: Ipv4Addr::new(192, 0, 2, 9),
        }),
        communities: vec![1],
        originator_id: Some(Ipv4Addr::new(192, 0, 2, 8)),
        cluster_list: vec![Ipv4Addr::new(192, 0, 2, 7)],
        ext_communities: vec![[0; 8]],
        large_communities: vec![crate::bgp::attribute::LargeCommunity {
            global: 1,
            local1: 2,
            local2: 3,
        }],
        unknown: vec![raw(40), raw(11), raw(20), raw(0), raw(8), raw(14)],
        ..good()
    };
    let u = Update {
        attributes: attrs,
        nlri: two_routes(),
        mp_reach: Some(mp_v6()),
        mp_unreach: Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![],
        }),
        ..Update::default()
    };
    let out = encoded(&Message::Update(u), &ibgp());
    assert_eq!(
        attribute_codes(&out),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 20, 32, 40]
    );
}

#[test]
fn extended_length_is_used_only_past_255_octets() {
    for (count, flags) in [(63u32, 0xc0u8), (64, 0xd0)] {
        let attrs = PathAttributes {
            communities: (0..count).collect(),
            ..good()
        };
        let u = Update {
            attributes: attrs,
            nlri: two_routes(),
            ..Update::default()
        };
        let out = encoded(&Message::Update(u.clone()), &ibgp());
        let at = 23 + 20;
        assert_eq!((out[at], out[at + 1]), (flags, 8), "{count} communities");
        assert_eq!(decode_update(&out, &ibgp()), Ok(u));
    }
}

#[test]
fn a_path_of_more_than_255_ases_is_split_into_segments() {
    let long: Vec<u32> = (1..=300).collect();
    let u = Update {
        attributes: PathAttributes {
            as_path: Some(AsPath::sequence(long.clone())),
            ..good()
        },
        nlri: two_routes(),
        ..Update::default()
    };
    let out = encoded(&Message::Update(u), &ibgp());
    let got = decode_update(&out, &ibgp())
        .unwrap()
        .attributes
        .as_path
        .unwrap();
    assert_eq!(
        got.segments,
        vec![
            AsSegment::Sequence(long[..255].to_vec()),
            AsSegment::Sequence(long[255..].to_vec())
        ]
    );
    assert_eq!(got.path_len(), 300);
}
