//! Capability vectors, both ways, and the malformed cases (RFC 5492).

use super::*;
use crate::bgp::message::test_util::hex;

fn encode(c: &Capability) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(&mut out).expect("encode");
    out
}

fn decode_one(bytes: &[u8]) -> Result<Capability, DecodeError> {
    let mut caps = Vec::new();
    decode_capabilities(bytes, &mut caps)?;
    assert_eq!(caps.len(), 1, "one capability in {bytes:02x?}");
    Ok(caps.remove(0))
}

/// Each capability with its hand-written encoding (RFC 5492 §4 layout).
fn vectors() -> Vec<(Capability, Vec<u8>)> {
    vec![
        (
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            hex("01 04 0001 00 01"),
        ),
        (
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            hex("01 04 0002 00 01"),
        ),
        (Capability::RouteRefresh, hex("02 00")),
        (Capability::ExtendedMessage, hex("06 00")),
        (
            Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: true,
                restart_time: 120,
                families: vec![(Family::IPV4_UNICAST, true), (Family::IPV6_UNICAST, false)],
            }),
            hex("40 0a c078 0001 01 80 0002 01 00"),
        ),
        (
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time: 4095,
                families: vec![],
            }),
            hex("40 02 0fff"),
        ),
        (
            Capability::FourOctetAs(4_200_000_000),
            hex("41 04 fa56ea00"),
        ),
        (
            Capability::AddPath(vec![
                AddPathFamily {
                    family: Family::IPV4_UNICAST,
                    receive: true,
                    send: true,
                },
                AddPathFamily {
                    family: Family::IPV6_UNICAST,
                    receive: true,
                    send: false,
                },
                AddPathFamily {
                    family: Family::IPV6_UNICAST,
                    receive: false,
                    send: true,
                },
            ]),
            hex("45 0c 0001 01 03 0002 01 01 0002 01 02"),
        ),
        (Capability::EnhancedRouteRefresh, hex("46 00")),
        (
            Capability::Unknown {
                code: 73,
                data: b"\x03abc\x00".to_vec(),
            },
            hex("49 05 03 616263 00"),
        ),
        (
            Capability::Unknown {
                code: 128,
                data: vec![],
            },
            hex("80 00"),
        ),
    ]
}

#[test]
fn every_capability_matches_its_hand_written_bytes_both_ways() {
    for (cap, bytes) in vectors() {
        assert_eq!(encode(&cap), bytes, "encode {cap:?}");
        assert_eq!(decode_one(&bytes).unwrap(), cap, "decode {bytes:02x?}");
    }
}

#[test]
fn every_capability_round_trips_and_reports_its_code() {
    for (cap, bytes) in vectors() {
        assert_eq!(decode_one(&encode(&cap)).unwrap(), cap);
        assert_eq!(cap.code(), bytes[0]);
    }
}

#[test]
fn several_capabilities_in_one_parameter_decode_in_order() {
    let mut caps = Vec::new();
    decode_capabilities(&hex("01 04 0001 00 01  02 00  41 04 0000fde9"), &mut caps).unwrap();
    assert_eq!(
        caps,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
        ]
    );
}

#[test]
fn graceful_restart_keeps_only_its_defined_flag_bits() {
    let cap = decode_one(&hex("40 06 3fff 0001 01 7f")).unwrap();
    assert_eq!(
        cap,
        Capability::GracefulRestart(GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 4095,
            families: vec![(Family::IPV4_UNICAST, false)],
        })
    );
}

#[test]
fn add_path_with_an_undefined_mode_is_kept_as_unknown() {
    assert_eq!(
        decode_one(&hex("45 04 0001 01 04")).unwrap(),
        Capability::Unknown {
            code: 69,
            data: vec![0, 1, 1, 4],
        }
    );
}

#[test]
fn known_capabilities_of_the_wrong_length_are_open_error_unspecific() {
    for bytes in [
        "01 03 0001 00",
        "01 05 0001 00 01 00",
        "02 01 00",
        "06 01 00",
        "46 02 0000",
        "40 01 00",
        "40 04 0078 0001",
        "41 02 fde9",
        "45 05 0001 01 03 00",
    ] {
        let e = decode_one(&hex(bytes)).unwrap_err();
        assert_eq!(
            (
                e.notification.code,
                e.notification.subcode,
                e.notification.data.len()
            ),
            (2, 0, 0),
            "{bytes}"
        );
        assert!(e.reason.contains("RFC 5492 §4"), "{}", e.reason);
    }
}

#[test]
fn a_capability_overrunning_its_parameter_is_open_error_unspecific() {
    let mut caps = Vec::new();
    let e = decode_capabilities(&hex("02 00 41 04 0000"), &mut caps).unwrap_err();
    assert_eq!((e.notification.code, e.notification.subcode), (2, 0));
    let e = decode_capabilities(&hex("02 00 41"), &mut caps).unwrap_err();
    assert_eq!((e.notification.code, e.notification.subcode), (2, 0));
}

#[test]
fn a_capability_value_over_255_octets_cannot_be_encoded() {
    let mut out = vec![9];
    let e = Capability::Unknown {
        code: 200,
        data: vec![0; 256],
    }
    .encode(&mut out)
    .unwrap_err();
    assert_eq!(
        e,
        EncodeError::TooLarge {
            what: "capability",
            limit: 255
        }
    );
    assert_eq!(out, vec![9], "nothing is left behind");
}
