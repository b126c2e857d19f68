//! The flow hash that picks an ECMP member: deterministic (no seed), so one
//! flow maps to the same member on every CPU and across program reloads.

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
