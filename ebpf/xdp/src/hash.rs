//! The flow hash that picks an ECMP member when the kernel's choice is not
//! a member of the set (or the flow table is off): deterministic (no seed),
//! so one flow maps to the same member on every CPU and across program
//! reloads.

use steer_common::{FAMILY_V4, FlowKey};

/// The flow hash of `k` (the same words, in the same order, as every release
/// so far).
#[inline(always)]
pub fn flow_hash(k: &FlowKey) -> FlowHash {
    let ports = ((k.sport as u32) << 16) | k.dport as u32;
    let h = FlowHash::new();
    if k.family as u32 == FAMILY_V4 {
        return h
            .word(k.src[0])
            .word(k.dst[0])
            .word(k.protocol as u32)
            .word(ports);
    }
    h.word(k.src[0])
        .word(k.src[1])
        .word(k.src[2])
        .word(k.src[3])
        .word(k.dst[0])
        .word(k.dst[1])
        .word(k.dst[2])
        .word(k.dst[3])
        .word(k.protocol as u32)
        .word(ports)
}

/// Accumulates 32-bit words of a flow key.
pub struct FlowHash(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl FlowHash {
    /// An empty hash.
    #[inline(always)]
    pub const fn new() -> FlowHash {
        FlowHash(K)
    }

    /// Mixes in one word.
    #[inline(always)]
    pub fn word(self, w: u32) -> FlowHash {
        FlowHash((self.0 ^ w as u64).wrapping_mul(K).rotate_left(31))
    }

    /// Finishes (murmur3 fmix64) and maps onto `0..count` without a division.
    #[inline(always)]
    pub fn pick(self, count: u32) -> u32 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        (((h as u32) as u64 * count as u64) >> 32) as u32
    }
}
