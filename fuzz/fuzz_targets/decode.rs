//! Fuzz the BGP codec: `frame_len` and `decode` on arbitrary bytes under
//! several session settings; whatever decodes is re-encoded (alone, and
//! through the packing encoders) and must decode again. Nothing may panic.
//!
//! Properties checked beyond "no panic": a message that decoded without
//! RFC 7606 issues and re-encodes, decodes again without issues; on 4-octet
//! AS sessions (no AS4_PATH merging) it decodes to the same value, up to
//! the Partial bit that re-sent unknown attributes gain.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steer::bgp::message::{
    CodecConfig, Message, Update, decode, encode_announce, encode_withdraw, frame_len,
};

fn configs() -> [CodecConfig; 5] {
    [
        CodecConfig::default(),
        CodecConfig {
            four_octet_as: true,
            ..CodecConfig::default()
        },
        CodecConfig {
            four_octet_as: true,
            ebgp: true,
            add_path_receive: [true, true],
            add_path_send: [true, true],
            ..CodecConfig::default()
        },
        CodecConfig {
            four_octet_as: true,
            extended_message: true,
            add_path_receive: [false, true],
            add_path_send: [false, true],
            ..CodecConfig::default()
        },
        CodecConfig {
            ebgp: true,
            add_path_receive: [true, false],
            add_path_send: [true, false],
            ..CodecConfig::default()
        },
    ]
}

fn clean(m: &Message) -> bool {
    match m {
        Message::Update(u) => u.treat_as_withdraw.is_empty() && u.discarded.is_empty(),
        _ => true,
    }
}

fn partial(m: &Message) -> Message {
    let mut m = m.clone();
    if let Message::Update(u) = &mut m {
        for a in &mut u.attributes.unknown {
            a.flags |= 0x20;
        }
    }
    m
}

fn exercise(msg: &[u8], cfg: &CodecConfig) {
    let Ok(m) = decode(msg, cfg) else {
        return;
    };
    let mut out = Vec::new();
    if m.encode(cfg, &mut out).is_ok() && clean(&m) {
        let again = decode(&out, cfg).expect("a re-encoded clean message decodes");
        assert!(clean(&again), "re-encoding introduced issues: {again:?}");
        if cfg.four_octet_as {
            assert_eq!(again, partial(&m));
        }
    }
    if let Message::Update(u) = &m {
        pack(u, cfg);
    }
}

/// The packing encoders on what the UPDATE carried: they may refuse
/// (missing next hop, too large), never panic, and what they write decodes.
fn pack(u: &Update, cfg: &CodecConfig) {
    let mut out = Vec::new();
    let mut attrs = u.attributes.clone();
    if let Some(r) = &u.mp_reach {
        attrs.next_hop = Some(r.next_hop);
        attrs.link_local_next_hop = r.link_local;
        let _ = encode_announce(cfg, &attrs, &r.nlri, &mut out);
    }
    let _ = encode_announce(cfg, &u.attributes, &u.nlri, &mut out);
    let _ = encode_withdraw(cfg, &u.withdrawn, &mut out);
    if let Some(w) = &u.mp_unreach {
        let _ = encode_withdraw(cfg, &w.withdrawn, &mut out);
    }
    let mut rest = &out[..];
    while !rest.is_empty() {
        let len = frame_len(rest, cfg)
            .expect("packed messages have valid headers")
            .expect("packed messages are whole");
        decode(&rest[..len], cfg).expect("packed messages decode");
        rest = &rest[len..];
    }
}

fuzz_target!(|data: &[u8]| {
    for cfg in &configs() {
        let _ = decode(data, cfg);
        let mut rest = data;
        while let Ok(Some(len)) = frame_len(rest, cfg) {
            let Some(msg) = rest.get(..len) else {
                break;
            };
            exercise(msg, cfg);
            rest = &rest[len..];
        }
    }
});
