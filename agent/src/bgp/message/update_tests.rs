//! UPDATE decoding as a table (`cases()`: one row per case with its name,
//! session, bytes and the outcome its RFC names: what survives plus every
//! treat-as-withdraw or discard issue, or the NOTIFICATION), run by one
//! runner that reports every failing row; then re-encoding of unknown
//! attributes, AS4 encoding (RFC 6793 §4.2.2) and attribute order.

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

fn mp_v6() -> MpReach {
    MpReach {
        family: Family::IPV6_UNICAST,
        next_hop: IpAddr::V6("2001:db8::1".parse().unwrap()),
        link_local: None,
        nlri: vec![nlri("2001:db8:1::/48")],
    }
}

// --------------------------------------------------- the decode table

/// What decoding one UPDATE must give: the UPDATE with what survived and
/// every treat-as-withdraw or discard issue, or the session reset with its
/// NOTIFICATION (and the RFC section its reason ends with).
#[derive(Debug)]
enum Outcome {
    Decoded(Box<Update>),
    Reset {
        code: u8,
        subcode: u8,
        data: Vec<u8>,
        reason_ends: &'static str,
    },
}

/// One row of the decode table: a name, the session the UPDATE arrives on,
/// its bytes and the outcome its RFC names.
struct Case {
    name: String,
    cfg: CodecConfig,
    bytes: Vec<u8>,
    want: Outcome,
}

fn row(name: impl Into<String>, cfg: CodecConfig, bytes: Vec<u8>, want: Outcome) -> Case {
    Case {
        name: name.into(),
        cfg,
        bytes,
        want,
    }
}

fn withdraw(attributes: PathAttributes, issues: Vec<AttributeIssue>) -> Outcome {
    Outcome::Decoded(Box::new(withdrawn_with(attributes, issues)))
}

fn discard(attributes: PathAttributes, issues: Vec<AttributeIssue>) -> Outcome {
    Outcome::Decoded(Box::new(discarded_with(attributes, issues)))
}

/// The two routes announced with `attributes` and no issue.
fn clean(attributes: PathAttributes) -> Outcome {
    Outcome::Decoded(Box::new(Update {
        attributes,
        nlri: two_routes(),
        ..Update::default()
    }))
}

fn reset(code: u8, subcode: u8, data: Vec<u8>) -> Outcome {
    Outcome::Reset {
        code,
        subcode,
        data,
        reason_ends: "",
    }
}

fn without(strip: impl FnOnce(&mut PathAttributes)) -> PathAttributes {
    let mut a = good();
    strip(&mut a);
    a
}

const AS_PATH_2: &str = "40 02 06 02 02 fdf2 5ba0";
const AS4_PATH: &str = "c0 11 0a 02 02 0000fdf2 fa56ea01";

fn two_octet() -> CodecConfig {
    CodecConfig::default()
}

fn trans_path() -> PathAttributes {
    PathAttributes {
        as_path: Some(AsPath::sequence([65010, 23456])),
        ..good()
    }
}

fn aggregator(asn: u32) -> Option<Aggregator> {
    Some(Aggregator {
        asn,
        address: Ipv4Addr::new(192, 0, 2, 99),
    })
}

/// Every decode case, grouped by outcome: treat-as-withdraw (RFC 7606 §7
/// per attribute, §3 c flags, §3 d missing, §4 lengths), attribute discard,
/// session reset (§3 g, §5.2, §5.3, RFC 4271 §6.3), unknown attributes, and
/// the RFC 6793 transition on 2-octet sessions. A new case is one row.
fn cases() -> Vec<Case> {
    let mut c = Vec::new();
    let base = format!("{ORIGIN} {AS_PATH} {NEXT_HOP}");

    // ---- treat-as-withdraw
    let no_origin = || without(|a| a.origin = None);
    let no_as_path = || without(|a| a.as_path = None);
    let no_next_hop = || without(|a| a.next_hop = None);
    c.push(row(
        "malformed_origin_is_treat_as_withdraw_rfc7606_7_1 (length)",
        ibgp(),
        announce(&format!("40 01 02 0000 {AS_PATH} {NEXT_HOP}")),
        withdraw(
            no_origin(),
            vec![issue(1, "ORIGIN length 2, expected 1 (RFC 7606 §7.1)")],
        ),
    ));
    c.push(row(
        "malformed_origin_is_treat_as_withdraw_rfc7606_7_1 (value)",
        ibgp(),
        announce(&format!("40 01 01 03 {AS_PATH} {NEXT_HOP}")),
        withdraw(
            no_origin(),
            vec![issue(1, "ORIGIN value 3 is undefined (RFC 7606 §7.1)")],
        ),
    ));
    for (as_path, why) in [
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
    ] {
        c.push(row(
            format!("malformed_as_path_is_treat_as_withdraw_rfc7606_7_2 ({as_path})"),
            ibgp(),
            announce(&format!("{ORIGIN} {as_path} {NEXT_HOP}")),
            withdraw(
                no_as_path(),
                vec![issue(
                    2,
                    &format!("malformed AS_PATH: {why} (RFC 7606 §7.2)"),
                )],
            ),
        ));
    }
    let confed = announce(&format!("{ORIGIN} 40 02 06 03 01 0000fdf2 {NEXT_HOP}"));
    c.push(row(
        "a_confederation_segment_from_an_external_peer_is_treat_as_withdraw",
        ebgp(),
        confed.clone(),
        withdraw(
            no_as_path(),
            vec![issue(
                2,
                "AS_PATH with a confederation segment from an external peer (RFC 5065 §5.3, RFC 7606 §7.2)",
            )],
        ),
    ));
    c.push(row(
        "a_confederation_segment_from_an_internal_peer_is_kept",
        ibgp(),
        confed,
        clean(PathAttributes {
            as_path: Some(AsPath {
                segments: vec![AsSegment::ConfedSequence(vec![65010])],
            }),
            ..good()
        }),
    ));
    c.push(row(
        "malformed_next_hop_is_treat_as_withdraw_rfc7606_7_3",
        ibgp(),
        announce(&format!("{ORIGIN} {AS_PATH} 40 03 05 c000020100")),
        withdraw(
            no_next_hop(),
            vec![issue(3, "NEXT_HOP length 5, expected 4 (RFC 7606 §7.3)")],
        ),
    ));
    for (hex_addr, text) in [
        ("00000000", "0.0.0.0"),
        ("e0000005", "224.0.0.5"),
        ("ffffffff", "255.255.255.255"),
    ] {
        c.push(row(
            format!("a_next_hop_that_is_no_unicast_address_is_treat_as_withdraw ({text})"),
            ibgp(),
            announce(&format!("{ORIGIN} {AS_PATH} 40 03 04 {hex_addr}")),
            withdraw(
                without(|a| a.next_hop = Some(IpAddr::V4(text.parse().unwrap()))),
                vec![issue(
                    3,
                    &format!(
                        "NEXT_HOP {text} is not a unicast host address (RFC 4271 §6.3, RFC 7606 §7.3)"
                    ),
                )],
            ),
        ));
    }
    for (name, attr, code, reason) in [
        (
            "malformed_med_is_treat_as_withdraw_rfc7606_7_4",
            "80 04 03 000001",
            4,
            "MULTI_EXIT_DISC length 3, expected 4 (RFC 7606 §7.4)",
        ),
        (
            "malformed_local_pref_from_an_internal_peer_is_treat_as_withdraw_rfc7606_7_5",
            "40 05 02 0064",
            5,
            "LOCAL_PREF length 2, expected 4 (RFC 7606 §7.5)",
        ),
        (
            "malformed_communities_are_treat_as_withdraw_rfc7606_7_8 (empty)",
            "c0 08 00",
            8,
            "COMMUNITIES length 0 is not a non-zero multiple of 4 (RFC 7606 §7.8)",
        ),
        (
            "malformed_communities_are_treat_as_withdraw_rfc7606_7_8 (6 octets)",
            "c0 08 06 000000010002",
            8,
            "COMMUNITIES length 6 is not a non-zero multiple of 4 (RFC 7606 §7.8)",
        ),
        (
            "malformed_originator_id_from_an_internal_peer_is_treat_as_withdraw_rfc7606_7_9",
            "80 09 05 c000020100",
            9,
            "ORIGINATOR_ID length 5, expected 4 (RFC 7606 §7.9)",
        ),
        (
            "malformed_cluster_list_from_an_internal_peer_is_treat_as_withdraw_rfc7606_7_10 (empty)",
            "80 0a 00",
            10,
            "CLUSTER_LIST length 0 is not a non-zero multiple of 4 (RFC 7606 §7.10)",
        ),
        (
            "malformed_cluster_list_from_an_internal_peer_is_treat_as_withdraw_rfc7606_7_10 (6 octets)",
            "80 0a 06 c00002010000",
            10,
            "CLUSTER_LIST length 6 is not a non-zero multiple of 4 (RFC 7606 §7.10)",
        ),
        (
            "malformed_extended_communities_are_treat_as_withdraw_rfc7606_7_14",
            "c0 10 0c 0002fdf200000064 00000000",
            16,
            "EXTENDED_COMMUNITIES length 12 is not a non-zero multiple of 8 (RFC 7606 §7.14)",
        ),
        (
            "malformed_large_communities_are_treat_as_withdraw_rfc8092_6 (empty)",
            "c0 20 00",
            32,
            "LARGE_COMMUNITY length 0 is not a non-zero multiple of 12 (RFC 8092 §6)",
        ),
        (
            "malformed_large_communities_are_treat_as_withdraw_rfc8092_6 (13 octets)",
            "c0 20 0d 0000fdf2 00000001 00000002 03",
            32,
            "LARGE_COMMUNITY length 13 is not a non-zero multiple of 12 (RFC 8092 §6)",
        ),
    ] {
        c.push(row(
            name,
            ibgp(),
            announce(&format!("{base} {attr}")),
            withdraw(good(), vec![issue(code, reason)]),
        ));
    }
    for (attrs, surviving, code, reason) in [
        (
            format!("c0 01 01 00 {AS_PATH} {NEXT_HOP}"),
            no_origin(),
            1,
            "ORIGIN flags 0xc0 conflict with the expected 0x40 (RFC 7606 §3 c)",
        ),
        (
            format!("{base} c0 04 04 00000001"),
            good(),
            4,
            "MULTI_EXIT_DISC flags 0xc0 conflict with the expected 0x80 (RFC 7606 §3 c)",
        ),
        (
            format!("{base} 80 08 04 00000001"),
            good(),
            8,
            "COMMUNITIES flags 0x80 conflict with the expected 0xc0 (RFC 7606 §3 c)",
        ),
        (
            format!("{ORIGIN} {AS_PATH} 00 03 04 c0000201"),
            no_next_hop(),
            3,
            "NEXT_HOP flags 0x00 conflict with the expected 0x40 (RFC 7606 §3 c)",
        ),
    ] {
        c.push(row(
            format!(
                "conflicting_flags_on_known_attributes_are_treat_as_withdraw_rfc7606_3c ({code})"
            ),
            ibgp(),
            announce(&attrs),
            withdraw(surviving, vec![issue(code, reason)]),
        ));
    }
    c.push(row(
        "partial_and_extended_length_bits_are_no_flag_conflict",
        ibgp(),
        announce(&format!(
            "50 01 0001 00 {AS_PATH} {NEXT_HOP} e0 08 04 00000001"
        )),
        clean(PathAttributes {
            communities: vec![1],
            ..good()
        }),
    ));
    c.push(row(
        "mp_reach_with_conflicting_flags_is_treat_as_withdraw_but_keeps_its_routes",
        ibgp(),
        update(
            &[],
            &hex(&format!("{ORIGIN} {AS_PATH} c0{}", &MP_REACH_V6[2..])),
            &[],
        ),
        Outcome::Decoded(Box::new(Update {
            attributes: no_next_hop(),
            mp_reach: Some(mp_v6()),
            treat_as_withdraw: vec![issue(
                14,
                "MP_REACH_NLRI flags 0xc0 conflict with the expected 0x80 (RFC 7606 §3 c)",
            )],
            ..Update::default()
        })),
    ));
    let missing_origin = issue(1, "well-known mandatory ORIGIN is missing (RFC 7606 §3 d)");
    let missing_as_path = issue(2, "well-known mandatory AS_PATH is missing (RFC 7606 §3 d)");
    let missing_next_hop = issue(
        3,
        "NEXT_HOP is missing with routes in the NLRI field (RFC 7606 §3 d, RFC 4760 §3)",
    );
    let missing = "missing_well_known_attributes_with_routes_are_treat_as_withdraw_rfc7606_3d";
    c.push(row(
        format!("{missing} (ORIGIN)"),
        ibgp(),
        announce(&format!("{AS_PATH} {NEXT_HOP}")),
        withdraw(no_origin(), vec![missing_origin.clone()]),
    ));
    c.push(row(
        format!("{missing} (AS_PATH)"),
        ibgp(),
        announce(&format!("{ORIGIN} {NEXT_HOP}")),
        withdraw(no_as_path(), vec![missing_as_path.clone()]),
    ));
    c.push(row(
        format!("{missing} (NEXT_HOP)"),
        ibgp(),
        announce(&format!("{ORIGIN} {AS_PATH}")),
        withdraw(no_next_hop(), vec![missing_next_hop.clone()]),
    ));
    c.push(row(
        format!("{missing} (all three)"),
        ibgp(),
        announce(""),
        withdraw(
            PathAttributes::default(),
            vec![
                missing_origin.clone(),
                missing_as_path,
                missing_next_hop.clone(),
            ],
        ),
    ));
    c.push(row(
        format!("{missing} (ORIGIN beside MP_REACH_NLRI)"),
        ibgp(),
        update(&[], &hex(&format!("{AS_PATH} {MP_REACH_V6}")), &[]),
        Outcome::Decoded(Box::new(Update {
            attributes: PathAttributes {
                origin: None,
                next_hop: None,
                ..good()
            },
            mp_reach: Some(mp_v6()),
            treat_as_withdraw: vec![missing_origin],
            ..Update::default()
        })),
    ));
    c.push(row(
        "next_hop_is_not_required_when_only_mp_reach_announces",
        ibgp(),
        update(&[], &hex(&format!("{ORIGIN} {AS_PATH} {MP_REACH_V6}")), &[]),
        Outcome::Decoded(Box::new(Update {
            attributes: no_next_hop(),
            mp_reach: Some(mp_v6()),
            ..Update::default()
        })),
    ));
    c.push(row(
        "an_attribute_running_past_the_attributes_is_treat_as_withdraw_rfc7606_4",
        ibgp(),
        announce(&format!("{ORIGIN} {AS_PATH} 40 03 08 c0000201")),
        withdraw(
            no_next_hop(),
            vec![
                issue(
                    3,
                    "attribute 3 of 8 octets at offset 13 runs past the path attributes (4 octets left) (RFC 7606 §4)",
                ),
                missing_next_hop,
            ],
        ),
    ));
    for (tail, code, reason) in [
        (
            "40",
            0,
            "attribute header cut short at offset 20 (RFC 7606 §4)",
        ),
        (
            "40 05",
            5,
            "attribute 5 header cut short at offset 20 (RFC 7606 §4)",
        ),
        (
            "50 05 00",
            5,
            "attribute 5 header cut short at offset 20 (RFC 7606 §4)",
        ),
    ] {
        c.push(row(
            format!(
                "fewer_octets_than_an_attribute_header_is_treat_as_withdraw_rfc7606_4 ({tail})"
            ),
            ibgp(),
            announce(&format!("{base} {tail}")),
            withdraw(good(), vec![issue(code, reason)]),
        ));
    }

    // ---- attribute discard
    let ibgp_only = announce(&format!(
        "{base} 40 05 04 00000064 80 09 04 c0000205 80 0a 04 c0000206"
    ));
    c.push(row(
        "local_pref_originator_id_and_cluster_list_from_an_external_peer_are_discarded",
        ebgp(),
        ibgp_only.clone(),
        discard(
            good(),
            vec![
                issue(5, "LOCAL_PREF from an external peer (RFC 7606 §7.5)"),
                issue(
                    9,
                    "ORIGINATOR_ID from an external peer (RFC 4456 §8, RFC 7606 §7.9)",
                ),
                issue(
                    10,
                    "CLUSTER_LIST from an external peer (RFC 4456 §8, RFC 7606 §7.10)",
                ),
            ],
        ),
    ));
    c.push(row(
        "local_pref_originator_id_and_cluster_list_from_an_internal_peer_are_kept",
        ibgp(),
        ibgp_only,
        clean(PathAttributes {
            local_pref: Some(100),
            originator_id: Some(Ipv4Addr::new(192, 0, 2, 5)),
            cluster_list: vec![Ipv4Addr::new(192, 0, 2, 6)],
            ..good()
        }),
    ));
    c.push(row(
        "atomic_aggregate_of_a_wrong_length_is_discarded_rfc7606_7_6",
        ibgp(),
        announce(&format!("{base} 40 06 01 00")),
        discard(
            good(),
            vec![issue(
                6,
                "ATOMIC_AGGREGATE length 1, expected 0 (RFC 7606 §7.6)",
            )],
        ),
    ));
    c.push(row(
        "aggregator_of_a_wrong_length_is_discarded_rfc7606_7_7 (4-octet session)",
        ibgp(),
        announce(&format!("{base} c0 07 06 fdf2 c0000201")),
        discard(
            good(),
            vec![issue(7, "AGGREGATOR length 6, expected 8 (RFC 7606 §7.7)")],
        ),
    ));
    c.push(row(
        "aggregator_of_a_wrong_length_is_discarded_rfc7606_7_7 (2-octet session)",
        two_octet(),
        announce(&format!(
            "{ORIGIN} 40 02 04 02 01 fdf2 {NEXT_HOP} c0 07 08 0000fdf2 c0000201"
        )),
        discard(
            good(),
            vec![issue(7, "AGGREGATOR length 8, expected 6 (RFC 7606 §7.7)")],
        ),
    ));
    c.push(row(
        "repeated_attributes_keep_the_first_rfc7606_3g",
        ibgp(),
        announce(&format!(
            "{base} 80 04 04 00000001 80 04 04 00000002 40 01 01 02"
        )),
        discard(
            PathAttributes {
                med: Some(1),
                ..good()
            },
            vec![
                issue(
                    4,
                    "repeated attribute 4 (MULTI_EXIT_DISC) discarded, the first kept (RFC 7606 §3 g)",
                ),
                issue(
                    1,
                    "repeated attribute 1 (ORIGIN) discarded, the first kept (RFC 7606 §3 g)",
                ),
            ],
        ),
    ));
    c.push(row(
        "an_attribute_discard_without_routes_is_no_session_reset",
        ibgp(),
        update(&[], &hex("40 06 01 00"), &[]),
        Outcome::Decoded(Box::new(Update {
            discarded: vec![issue(
                6,
                "ATOMIC_AGGREGATE length 1, expected 0 (RFC 7606 §7.6)",
            )],
            ..Update::default()
        })),
    ));
    c.push(row(
        "an_mp_attribute_of_a_family_not_routed_is_discarded",
        ibgp(),
        announce(&format!(
            "{base} 80 0e 0e 0001 80 04 c0000201 00 40 0a0a0a0a 80 0f 03 0019 46"
        )),
        discard(
            good(),
            vec![
                issue(
                    14,
                    "MP_REACH_NLRI of afi1/safi128, a family Steer does not route, ignored (RFC 4760 §6)",
                ),
                issue(
                    15,
                    "MP_UNREACH_NLRI of afi25/safi70, a family Steer does not route, ignored (RFC 4760 §6)",
                ),
            ],
        ),
    ));

    // ---- session reset
    for (what, attrs) in [
        (
            "MP_REACH_NLRI",
            format!("{ORIGIN} {AS_PATH} {MP_REACH_V6} {MP_REACH_V6}"),
        ),
        (
            "MP_UNREACH_NLRI",
            "80 0f 03 0002 01 80 0f 03 0002 01".to_string(),
        ),
    ] {
        c.push(row(
            format!("mp_reach_or_mp_unreach_twice_is_malformed_attribute_list_rfc7606_3g ({what})"),
            ibgp(),
            update(&[], &hex(&attrs), &[]),
            reset(3, 1, vec![]),
        ));
    }
    let bad_med = hex("80 04 03 000001");
    for (what, withdrawn) in [
        ("alone", &[][..]),
        ("beside withdrawals", &[16, 10, 250][..]),
    ] {
        c.push(row(
            format!(
                "treat_as_withdraw_without_announced_routes_is_a_session_reset_rfc7606_5_2 ({what})"
            ),
            ibgp(),
            update(withdrawn, &bad_med, &[]),
            Outcome::Reset {
                code: 3,
                subcode: 1,
                data: vec![],
                reason_ends: "(RFC 7606 §5.2)",
            },
        ));
    }
    for body in ["0010 100a 0000", "0000 0010 40010100", "0002 080a"] {
        c.push(row(
            format!("field_lengths_running_past_the_message_are_malformed_attribute_list ({body})"),
            ibgp(),
            message(MessageType::Update, &hex(body)),
            reset(3, 1, vec![]),
        ));
    }
    let attrs = hex(&base);
    for (what, m) in [
        ("NLRI /33", update(&[], &attrs, &[33, 1, 2, 3, 4, 5])),
        ("NLRI cut short", update(&[], &attrs, &[24, 10, 0])),
        ("withdrawn /33", update(&[33, 1, 2, 3, 4, 5], &[], &[])),
        (
            "MP_REACH_NLRI /129",
            update(
                &[],
                &hex(&format!(
                    "{ORIGIN} {AS_PATH} 80 0e 17 0002 01 10 20010db8000000000000000000000001 00 81 20"
                )),
                &[],
            ),
        ),
        (
            "MP_UNREACH_NLRI cut short",
            update(&[], &hex("80 0f 06 0002 01 30 2001"), &[]),
        ),
    ] {
        c.push(row(
            format!("nlri_that_cannot_be_parsed_is_invalid_network_field_rfc7606_5_3 ({what})"),
            ibgp(),
            m,
            reset(3, 10, vec![]),
        ));
    }
    for attr in [
        "80 0e 04 0002 0110",
        "80 0e 14 0002 01 0f 20010db800000000000000000000ff 00",
        "80 0e 15 0001 01 10 20010db8000000000000000000000001 00",
        "80 0e 06 0002 01 10 2001",
        "80 0e 08 0001 01 04 c0000201",
        "80 0f 02 0002",
    ] {
        c.push(row(
            format!(
                "malformed_mp_attributes_are_optional_attribute_error_with_the_attribute ({attr})"
            ),
            ibgp(),
            update(&[], &hex(&format!("{ORIGIN} {AS_PATH} {attr}")), &[]),
            reset(3, 9, hex(attr)),
        ));
    }
    c.push(row(
        "an_mp_attribute_running_past_the_attributes_is_optional_attribute_error",
        ibgp(),
        update(
            &[],
            &hex(&format!("{ORIGIN} {AS_PATH} 80 0e 20 0002 01")),
            &[],
        ),
        reset(3, 9, hex("80 0e 20 0002 01")),
    ));
    c.push(row(
        "an_unrecognized_well_known_attribute_is_a_session_reset_with_the_attribute",
        ibgp(),
        announce(&format!("{base} 40 63 02 abcd")),
        reset(3, 2, hex("40 63 02 abcd")),
    ));

    // ---- unknown attributes
    c.push(row(
        "unknown_optional_non_transitive_attributes_are_dropped_silently",
        ibgp(),
        announce(&format!("{base} 80 63 02 abcd")),
        clean(good()),
    ));

    // ---- RFC 6793 on 2-octet sessions (and AS4_* on 4-octet ones)
    c.push(row(
        "as4_attributes_on_a_four_octet_session_are_discarded",
        ibgp(),
        announce(&format!("{base} {AS4_PATH} c0 12 08 fa56ea01 c0000263")),
        discard(
            good(),
            vec![
                issue(17, "AS4_PATH on a 4-octet AS session (RFC 6793 §4.1)"),
                issue(18, "AS4_AGGREGATOR on a 4-octet AS session (RFC 6793 §4.1)"),
            ],
        ),
    ));
    c.push(row(
        "as4_path_replaces_the_trailing_ases_of_as_path",
        two_octet(),
        announce(&format!(
            "{ORIGIN} 40 02 0a 02 04 fdf2 fdfc 5ba0 5ba0 {NEXT_HOP} c0 11 0a 02 02 fa56ea01 fa56ea02"
        )),
        clean(PathAttributes {
            as_path: Some(AsPath::sequence([65010, 65020, 4_200_000_001, 4_200_000_002])),
            ..good()
        }),
    ));
    c.push(row(
        "as4_path_keeps_leading_sets_and_confederation_segments_of_as_path",
        two_octet(),
        announce(&format!(
            "{ORIGIN} 40 02 10 03 01 fde8 01 02 fdf2 fdfc 02 02 5ba0 fdfd {NEXT_HOP} c0 11 0a 02 02 fa56ea01 0000fdfd"
        )),
        clean(PathAttributes {
            as_path: Some(AsPath {
                segments: vec![
                    AsSegment::ConfedSequence(vec![65000]),
                    AsSegment::Set(vec![65010, 65020]),
                    AsSegment::Sequence(vec![4_200_000_001, 65021]),
                ],
            }),
            ..good()
        }),
    ));
    c.push(row(
        "as4_attributes_are_ignored_when_aggregator_is_not_as_trans",
        two_octet(),
        announce(&format!(
            "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 07 06 fde9 c0000263 {AS4_PATH} c0 12 08 fa56ea01 c0000263"
        )),
        discard(
            PathAttributes {
                aggregator: aggregator(65001),
                ..trans_path()
            },
            vec![
                issue(
                    18,
                    "AS4_AGGREGATOR ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)",
                ),
                issue(
                    17,
                    "AS4_PATH ignored: AGGREGATOR's AS is not AS_TRANS (RFC 6793 §4.2.3)",
                ),
            ],
        ),
    ));
    c.push(row(
        "an_as4_path_longer_than_as_path_is_ignored",
        two_octet(),
        announce(&format!(
            "{ORIGIN} 40 02 04 02 01 5ba0 {NEXT_HOP} {AS4_PATH}"
        )),
        discard(
            PathAttributes {
                as_path: Some(AsPath::sequence([23456])),
                ..good()
            },
            vec![issue(
                17,
                "AS4_PATH ignored: it holds more ASes than AS_PATH (RFC 6793 §4.2.3)",
            )],
        ),
    ));
    c.push(row(
        "malformed_as4_attributes_are_discarded_rfc6793_6",
        two_octet(),
        announce(&format!(
            "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 07 06 5ba0 c0000263 c0 11 02 02 00 c0 12 06 fa56 c0000263"
        )),
        discard(
            PathAttributes {
                aggregator: aggregator(23456),
                ..trans_path()
            },
            vec![
                issue(
                    17,
                    "malformed AS4_PATH: segment of type 2 holds no AS (RFC 6793 §6)",
                ),
                issue(18, "AS4_AGGREGATOR length 6, expected 8 (RFC 6793 §6)"),
            ],
        ),
    ));
    c.push(row(
        "as4_attributes_with_conflicting_flags_are_discarded",
        two_octet(),
        announce(&format!(
            "{ORIGIN} {AS_PATH_2} {NEXT_HOP} 80 11 0a 02 02 0000fdf2 fa56ea01"
        )),
        discard(
            trans_path(),
            vec![issue(
                17,
                "AS4_PATH flags 0x80 conflict with the expected 0xc0 (RFC 7606 §3 c, RFC 6793 §6)",
            )],
        ),
    ));
    c.push(row(
        "confederation_segments_in_as4_path_are_removed",
        two_octet(),
        announce(&format!(
            "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 11 10 03 01 0000fde8 02 02 0000fdf2 fa56ea01"
        )),
        discard(
            PathAttributes {
                as_path: Some(AsPath::sequence([65010, 4_200_000_001])),
                ..good()
            },
            vec![issue(
                17,
                "confederation segments removed from AS4_PATH (RFC 6793 §6)",
            )],
        ),
    ));
    c.push(row(
        "as4_aggregator_without_aggregator_is_ignored",
        two_octet(),
        announce(&format!(
            "{ORIGIN} {AS_PATH_2} {NEXT_HOP} c0 12 08 fa56ea01 c0000263"
        )),
        discard(
            trans_path(),
            vec![issue(
                18,
                "AS4_AGGREGATOR ignored: no AGGREGATOR (RFC 6793 §4.2.3)",
            )],
        ),
    ));
    c
}

#[test]
fn every_update_decode_case_gets_the_outcome_its_rfc_names() {
    let cases = cases();
    let mut failures = Vec::new();
    for c in &cases {
        let got = decode_update(&c.bytes, &c.cfg);
        let ok = match (&got, &c.want) {
            (Ok(u), Outcome::Decoded(want)) => u == want.as_ref(),
            (
                Err(e),
                Outcome::Reset {
                    code,
                    subcode,
                    data,
                    reason_ends,
                },
            ) => {
                notification(e) == (*code, *subcode, data.clone())
                    && e.reason.ends_with(reason_ends)
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}\n    bytes {}\n    got   {got:?}\n    want  {:?}",
                c.name,
                to_hex(&c.bytes),
                c.want
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} decode cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------ unknown attributes

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

// ------------------------------------------------------------ encoding

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
