//! Fuzz the OPEN exchange: an arbitrary OPEN body (capabilities and all)
//! is decoded, re-encoded, and offered to the FSM of every role Steer runs
//! (server to appliance, server to host, agent to server), each with the
//! capabilities its daemon sends.
//!
//! Input: one octet choosing our hold time and graceful-restart time, then
//! the OPEN body (after the 19-octet header, which is made to fit).
//!
//! Properties beyond "no panic":
//! - a decode error carries an OPEN Message Error NOTIFICATION (or, for an
//!   OPEN shorter than 29 octets, Message Header Error / Bad Message Length
//!   with the length as data), and the FSM in OpenSent sends exactly that;
//! - a decoded OPEN re-encodes and decodes to the same value;
//! - the FSM either refuses it with the OPEN Message Error subcode the RFC
//!   names (Bad Peer AS exactly when the AS differs from the configured
//!   one; Bad BGP Identifier only for our own identifier on iBGP) or
//!   reaches OpenConfirm, then Established on KEEPALIVE, with what
//!   `negotiate` computes; that result is consistent: hold time is the
//!   smaller of the two and 0 or at least 3, keepalive a third of it; a
//!   family is negotiated only if both sides have it (IPv4 unicast when a
//!   side sends no multiprotocol capability) and Steer routes it, and every
//!   such family is; 4-octet AS and extended messages only if both sent
//!   them; ADD-PATH in a direction only for a negotiated family where one
//!   side sends and the other receives.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steer::bgp::capability::Capability;
use steer::bgp::fsm::{Fsm, Input, Output, State};
use steer::bgp::iana::{CapabilityCode, ErrorCode, HeaderSubcode, MessageType, OpenSubcode};
use steer::bgp::message::{CodecConfig, Message, Open, decode};
use steer::bgp::negotiate::{Negotiated, negotiate};
use steer::bgp::nlri::Family;
use steer_fuzz::{Role, frame};

const HOLD_TIMES: [u16; 6] = [0, 3, 4, 90, 180, u16::MAX];

fn families(o: &Open) -> Vec<Family> {
    let v: Vec<Family> = o.families().collect();
    if v.is_empty() {
        vec![Family::IPV4_UNICAST]
    } else {
        v
    }
}

fn add_path_modes(o: &Open, f: Family) -> Vec<(bool, bool)> {
    o.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::AddPath(v) => Some(v),
            _ => None,
        })
        .flatten()
        .filter(|a| a.family == f)
        .map(|a| (a.receive, a.send))
        .collect()
}

/// `n` as negotiated between `ours` and `theirs` is consistent.
fn check_negotiated(n: &Negotiated, ours: &Open, theirs: &Open) {
    assert_eq!(n.hold_time, ours.hold_time.min(theirs.hold_time));
    assert!(
        n.hold_time == 0 || n.hold_time >= 3,
        "hold time {}",
        n.hold_time
    );
    assert_eq!(n.keepalive, n.hold_time / 3);
    assert_eq!(n.peer_asn, theirs.asn());
    assert_eq!(n.peer_router_id, theirs.router_id);

    let (a, b) = (families(ours), families(theirs));
    let mut expected: Vec<Family> = a
        .iter()
        .copied()
        .filter(|f| b.contains(f) && f.afi().is_some())
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(n.families, expected, "families of {ours:?} and {theirs:?}");

    let both = |code| ours.has_capability(code) && theirs.has_capability(code);
    assert_eq!(
        n.codec.four_octet_as,
        ours.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
            && theirs
                .capabilities
                .iter()
                .any(|c| matches!(c, Capability::FourOctetAs(_)))
    );
    assert_eq!(
        n.codec.extended_message,
        both(CapabilityCode::ExtendedMessage)
    );

    for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        let i = f.index().expect("a routed family");
        let (o, t) = (add_path_modes(ours, f), add_path_modes(theirs, f));
        let negotiated = n.families.contains(&f);
        let receive_possible = negotiated && o.iter().any(|m| m.0) && t.iter().any(|m| m.1);
        let send_possible = negotiated && o.iter().any(|m| m.1) && t.iter().any(|m| m.0);
        assert!(!n.codec.add_path_receive[i] || receive_possible, "{n:?}");
        assert!(!n.codec.add_path_send[i] || send_possible, "{n:?}");
        if o.len() == 1 && t.len() == 1 {
            assert_eq!(n.codec.add_path_receive[i], receive_possible, "{n:?}");
            assert_eq!(n.codec.add_path_send[i], send_possible, "{n:?}");
        }
    }
    assert_eq!(n.graceful_restart.as_ref(), theirs.graceful_restart());
}

fn sent_notification(out: &[Output]) -> Option<&steer::bgp::error::Notification> {
    out.iter().find_map(|o| match o {
        Output::Send(Message::Notification(n)) => Some(n),
        _ => None,
    })
}

/// Offer `theirs` to `role`'s FSM expecting `peer_asn`.
fn exchange(role: Role, peer_asn: u32, hold: u16, gr_time: u16, theirs: &Open) {
    let cfg = role.fsm_config(peer_asn, hold, gr_time);
    let mut fsm = Fsm::new(cfg.clone());
    fsm.process(Input::Start);
    let out = fsm.process(Input::TcpConnected);
    let ours = out
        .iter()
        .find_map(|o| match o {
            Output::Send(Message::Open(o)) => Some(o.clone()),
            _ => None,
        })
        .expect("OpenSent sends our OPEN");
    assert_eq!(fsm.state(), State::OpenSent);
    let out = fsm.process(Input::Message(Message::Open(theirs.clone())));
    let bad_as = theirs.asn() != peer_asn;
    let bad_id = theirs.router_id == cfg.router_id && peer_asn == cfg.local_asn;
    if let Some(n) = sent_notification(&out) {
        assert_eq!(fsm.state(), State::Idle);
        assert_eq!(n.code, u8::from(ErrorCode::OpenMessage), "{n:?}");
        match n.subcode {
            s if s == u8::from(OpenSubcode::BadPeerAs) => assert!(bad_as),
            s if s == u8::from(OpenSubcode::BadBgpId) => assert!(!bad_as && bad_id),
            s => panic!("OPEN refused with unexpected subcode {s}: {n:?}"),
        }
        return;
    }
    assert!(!bad_as && !bad_id, "accepted a bad OPEN: {theirs:?}");
    assert_eq!(fsm.state(), State::OpenConfirm);
    let expected = negotiate(&ours, theirs, cfg.peer_asn != cfg.local_asn);
    assert_eq!(fsm.negotiated(), Some(&expected));
    assert_eq!(expected.codec.ebgp, role.ebgp());
    check_negotiated(&expected, &ours, theirs);
    let out = fsm.process(Input::Message(Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Established(n) if **n == expected))
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let hold = HOLD_TIMES[usize::from(choice) % HOLD_TIMES.len()];
    let gr_time = if choice & 0x80 != 0 { 0 } else { 120 };
    let Some(msg) = frame(MessageType::Open.into(), body) else {
        return;
    };
    let theirs = match decode(&msg, &CodecConfig::default()) {
        Ok(Message::Open(o)) => o,
        Ok(m) => panic!("an OPEN decoded as {m:?}"),
        Err(e) => {
            let n = &e.notification;
            let short = (
                u8::from(ErrorCode::MessageHeader),
                u8::from(HeaderSubcode::BadLength),
            );
            if (n.code, n.subcode) == short {
                assert!(body.len() < 10, "{e:?}");
                assert_eq!(n.data, (msg.len() as u16).to_be_bytes());
            } else {
                assert_eq!(n.code, u8::from(ErrorCode::OpenMessage), "{e:?}");
            }
            for role in Role::ALL {
                let mut fsm = Fsm::new(role.fsm_config(role.configured_peer_asn(), hold, gr_time));
                fsm.process(Input::Start);
                fsm.process(Input::TcpConnected);
                let out = fsm.process(Input::DecodeError(e.clone()));
                assert_eq!(sent_notification(&out), Some(n));
                assert_eq!(fsm.state(), State::Idle);
            }
            return;
        }
    };
    let mut again = Vec::new();
    if Message::Open(theirs.clone())
        .encode(&CodecConfig::default(), &mut again)
        .is_ok()
    {
        let d = decode(&again, &CodecConfig::default()).expect("a re-encoded OPEN decodes");
        assert_eq!(d, Message::Open(theirs.clone()));
    }
    for role in Role::ALL {
        exchange(role, role.configured_peer_asn(), hold, gr_time, &theirs);
        let asn = theirs.asn();
        if asn != role.configured_peer_asn() && role.ebgp() == (asn != steer_fuzz::SERVER_ASN) {
            exchange(role, asn, hold, gr_time, &theirs);
        }
    }
});
