//! The prefixes appliances announce in the benchmark and the shape tests: /24s from 100.64.0.0/10, then the rest of
//! 10.0.0.0/8 (without 10.0/16, the VNet 10.1/16 and on-prem 10.250/16),
//! 172.16.0.0/12 and 198.18.0.0/15; 85,760 /24s in all. Past that the same
//! /24s come again as more-specifics (/25 at .0, /25 at .128, /26 at .0, …),
//! every one a distinct prefix, so any count fits and the seed (1,000) is
//! plain /24s in 100.64.0.0/14.

use super::Prefix;

const BLOCKS: [(u32, u8); 16] = [
    (ip(100, 64), 10),
    (ip(10, 2), 15),
    (ip(10, 4), 14),
    (ip(10, 8), 13),
    (ip(10, 16), 12),
    (ip(10, 32), 11),
    (ip(10, 64), 10),
    (ip(10, 128), 10),
    (ip(10, 192), 11),
    (ip(10, 224), 12),
    (ip(10, 240), 13),
    (ip(10, 248), 15),
    (ip(10, 251), 16),
    (ip(10, 252), 14),
    (ip(172, 16), 12),
    (ip(198, 18), 15),
];

const fn ip(a: u32, b: u32) -> u32 {
    a << 24 | b << 16
}

fn slash24s() -> impl Iterator<Item = u32> {
    BLOCKS
        .iter()
        .flat_map(|&(base, len)| (0..1u32 << (24 - len)).map(move |i| base + (i << 8)))
}

/// The `k`-th sub-prefix of a /24 in breadth-first order: 0 is the /24
/// itself, 1 and 2 its /25s, 3..=6 its /26s, and so on down to /32.
fn sub_prefix(net: u32, k: u32) -> Prefix {
    let depth = (k + 1).ilog2();
    let index = k + 1 - (1 << depth);
    Prefix {
        addr: net + (index << (8 - depth)),
        len: 24 + depth as u8,
    }
}

/// `count` distinct prefixes, starting at `skip` (so appliances given
/// their own prefixes get disjoint ranges of the same sequence).
pub fn generate(skip: usize, count: usize) -> Vec<Prefix> {
    let nets: Vec<u32> = slash24s().collect();
    let per_round = nets.len();
    assert!(
        skip + count <= per_round * 511,
        "at most {} prefixes",
        per_round * 511
    );
    (skip..skip + count)
        .map(|i| sub_prefix(nets[i % per_round], (i / per_round) as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn prefixes_are_distinct_and_avoid_the_lab_ranges() {
        let all = generate(0, 200_000);
        let set: HashSet<Prefix> = all.iter().copied().collect();
        assert_eq!(set.len(), all.len());
        for p in &all {
            let a = p.addr >> 16;
            assert!(
                ![ip(10, 0) >> 16, ip(10, 1) >> 16, ip(10, 250) >> 16].contains(&a),
                "{p}"
            );
            assert_eq!(
                p.addr & !(u32::MAX.checked_shl(32 - u32::from(p.len)).unwrap_or(0)),
                0,
                "{p}"
            );
        }
        assert_eq!(all[0].to_string(), "100.64.0.0/24");
        assert_eq!(all[999].to_string(), "100.67.231.0/24");
    }

    #[test]
    fn breadth_first_sub_prefixes() {
        let net = ip(100, 64);
        let shown: Vec<String> = (0..4).map(|k| sub_prefix(net, k).to_string()).collect();
        assert_eq!(
            shown,
            [
                "100.64.0.0/24",
                "100.64.0.0/25",
                "100.64.0.128/25",
                "100.64.0.0/26"
            ]
        );
    }
}
