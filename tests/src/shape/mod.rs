//! Input shapes for route servers: what P appliances announce, encoded by
//! hand (RFC 4271 UPDATEs with 4-octet AS numbers, RFC 6793), and the
//! state a receiver of every path must end up holding. Shared by `cargo
//! xtask bench bgp` and the lab tests that compare Steer's output with
//! BIRD's; independent of Steer's codec, so neither shares its bugs.
//!
//! - [`Shape::Packed`]: one attribute set per appliance (ORIGIN IGP,
//!   AS_PATH `[asn]`, NEXT_HOP), as many prefixes per UPDATE as 4096 octets
//!   hold. What hides per-attribute-set cost.
//! - [`Shape::Table`]: what real tables look like: a distinct attribute set
//!   per UPDATE with 1–10 prefixes, AS paths of 1–8 ASes, MED differing
//!   per UPDATE, COMMUNITIES (sorted) on about a third of the sets, now
//!   and then ORIGIN INCOMPLETE.
//! - [`Shape::Churn`]: the table, then (timed) every prefix re-announced
//!   with changed attributes, then the odd groups withdrawn. Re-announced
//!   paths carry a MED with the top bit set, so a receiver can tell the
//!   final state from the first.
//!
//! Appliances announce the same groups of prefixes, and a group's AS-path
//! length is the same at every appliance: every path of a prefix ties up
//! to the AS-path length, so a route server's multipath set, which Steer
//! sends to hosts, is every path, which BIRD with `add paths tx` sends.
//! The receiver then holds P paths per prefix from either, and their
//! attributes can be compared path for path.

pub mod prefixes;

use std::net::Ipv4Addr;
use std::ops::Range;

pub use crate::wire::{Attrs, Prefix};
use crate::wire::{MESSAGE_MAX, UPDATE, message};

/// The MED bit that marks a path re-announced by the churn phase.
pub const CHURNED: u32 = 0x8000_0000;

/// Which input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// One attribute set per appliance, UPDATEs packed to 4096 octets.
    Packed,
    /// A distinct attribute set per UPDATE of 1–10 prefixes.
    Table,
    /// The table, then re-announced with other attributes, then half withdrawn.
    Churn,
}

impl Shape {
    /// Lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Packed => "packed",
            Shape::Table => "table",
            Shape::Churn => "churn",
        }
    }
}

/// An appliance: its address (also the next hop it announces) and AS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appliance {
    /// Address and next hop.
    pub addr: Ipv4Addr,
    /// AS (first in every AS path it sends).
    pub asn: u32,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic hash of `parts`: the shapes' only source of variety.
fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED, |h, &p| splitmix(h ^ p))
}

/// An AS for a transit hop: 1..=64000 but AS_TRANS, so never an
/// appliance's, the route server's or a private AS.
fn transit_asn(h: u64) -> u32 {
    match 1 + (h % 64_000) as u32 {
        23_456 => 23_457,
        a => a,
    }
}

/// How one appliance's prefixes are cut into UPDATEs, the same at every
/// appliance.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The input.
    pub shape: Shape,
    /// Prefix index ranges, one per attribute set.
    pub groups: Vec<Range<usize>>,
}

const ROUND_LOAD: u64 = 0;
const ROUND_CHURN: u64 = 1;

impl Plan {
    /// The groups for `prefixes` prefixes per appliance: one for `packed`
    /// (one attribute set, packed into as few UPDATEs as fit), 1–10
    /// prefixes each otherwise.
    pub fn new(shape: Shape, prefixes: usize) -> Plan {
        if shape == Shape::Packed {
            let all = 0..prefixes;
            return Plan {
                shape,
                groups: vec![all],
            };
        }
        let mut groups = Vec::new();
        let mut at = 0;
        while at < prefixes {
            let n = 1 + (mix(&[groups.len() as u64]) % 10) as usize;
            let end = (at + n).min(prefixes);
            groups.push(at..end);
            at = end;
        }
        Plan { shape, groups }
    }

    /// The attributes appliance `a` sends for group `k` in round 0 (the
    /// table) or 1 (churn's re-announcement).
    fn attrs(&self, a: Appliance, k: usize, round: u64) -> Attrs {
        if self.shape == Shape::Packed {
            return Attrs {
                origin: 0,
                as_path: vec![a.asn],
                next_hop: a.addr,
                med: None,
                communities: Vec::new(),
            };
        }
        let (k, asn) = (k as u64, u64::from(a.asn));
        let hops = 1 + mix(&[k, round, 1]) % 8;
        let mut as_path = vec![a.asn];
        as_path.extend((1..hops).map(|j| transit_asn(mix(&[k, round, j, asn]))));
        let marker = if round == ROUND_CHURN { CHURNED } else { 0 };
        let med = ((k as u32).wrapping_mul(0x9E37_79B1).wrapping_add(a.asn) & !CHURNED) | marker;
        let mut communities: Vec<u32> = if mix(&[k, round, asn, 3]).is_multiple_of(3) {
            let n = 1 + mix(&[k, round, asn, 4]) % 4;
            (0..n)
                .map(|m| {
                    let h = mix(&[k, round, asn, 5, m]);
                    (transit_asn(h >> 16) << 16) | (h & 0xffff) as u32
                })
                .collect()
        } else {
            Vec::new()
        };
        // Sorted, as BIRD and FRR send them (a set, RFC 1997).
        communities.sort_unstable();
        communities.dedup();
        Attrs {
            origin: if mix(&[k, round, 7]).is_multiple_of(10) {
                2
            } else {
                0
            },
            as_path,
            next_hop: a.addr,
            med: Some(med),
            communities,
        }
    }

    /// What appliance `a` sends for its `prefixes`, phase by phase: one
    /// phase (the table) for `packed` and `table`, two for `churn` (the
    /// table; then re-announce everything and withdraw the odd groups).
    pub fn phases(&self, a: Appliance, prefixes: &[Prefix]) -> Vec<Vec<u8>> {
        let announce = |round| {
            let mut out = Vec::new();
            for (k, g) in self.groups.iter().enumerate() {
                encode_announce(&self.attrs(a, k, round), &prefixes[g.clone()], &mut out);
            }
            out
        };
        let mut phases = vec![announce(ROUND_LOAD)];
        if self.shape == Shape::Churn {
            let mut churn = announce(ROUND_CHURN);
            let gone: Vec<Prefix> = self
                .groups
                .iter()
                .skip(1)
                .step_by(2)
                .flat_map(|g| prefixes[g.clone()].iter().copied())
                .collect();
            encode_withdraw(&gone, &mut churn);
            phases.push(churn);
        }
        phases
    }

    /// Appliance `a`'s table (round 0, as the first phase announces it)
    /// once more, with the churn mark set in every MED when `marked`, and
    /// the paths a receiver then holds from it. Only the MED changes, so
    /// every path stays in a route server's multipath set: the change a
    /// fan-out benchmark times.
    pub fn remarked(
        &self,
        a: Appliance,
        prefixes: &[Prefix],
        marked: bool,
    ) -> (Vec<u8>, Vec<(Prefix, Attrs)>) {
        let mut out = Vec::new();
        let mut paths = Vec::new();
        for (k, g) in self.groups.iter().enumerate() {
            let mut attrs = self.attrs(a, k, ROUND_LOAD);
            if marked {
                attrs.med = Some(attrs.med.unwrap_or(0) | CHURNED);
            }
            encode_announce(&attrs, &prefixes[g.clone()], &mut out);
            paths.extend(prefixes[g.clone()].iter().map(|p| (*p, attrs.clone())));
        }
        (out, paths)
    }

    /// How many phases [`Plan::phases`] returns.
    pub fn phase_count(&self) -> usize {
        if self.shape == Shape::Churn { 2 } else { 1 }
    }

    /// Group `k`'s attributes once `phase` has gone through, or `None`
    /// when it is withdrawn by then.
    fn state(&self, phase: usize, k: usize) -> Option<u64> {
        match (self.shape, phase) {
            (Shape::Churn, 0) | (Shape::Packed | Shape::Table, _) => Some(ROUND_LOAD),
            (Shape::Churn, _) => k.is_multiple_of(2).then_some(ROUND_CHURN),
        }
    }

    /// The paths of appliance `a` a receiver holds once `phase` has gone
    /// through.
    pub fn paths_after<'a>(
        &'a self,
        phase: usize,
        a: Appliance,
        prefixes: &'a [Prefix],
    ) -> impl Iterator<Item = (Prefix, Attrs)> + 'a {
        self.groups.iter().enumerate().flat_map(move |(k, g)| {
            let attrs = self.state(phase, k).map(|round| self.attrs(a, k, round));
            prefixes[g.clone()]
                .iter()
                .filter_map(move |p| Some((*p, attrs.clone()?)))
        })
    }

    /// The paths of appliance `a` a receiver holds at the end.
    pub fn final_paths<'a>(
        &'a self,
        a: Appliance,
        prefixes: &'a [Prefix],
    ) -> impl Iterator<Item = (Prefix, Attrs)> + 'a {
        self.paths_after(self.phase_count() - 1, a, prefixes)
    }

    /// How many of an appliance's prefixes it announces once `phase` has
    /// gone through.
    pub fn prefixes_after(&self, phase: usize) -> usize {
        self.groups
            .iter()
            .enumerate()
            .filter(|(k, _)| self.state(phase, *k).is_some())
            .map(|(_, g)| g.len())
            .sum()
    }
}

/// Appends UPDATEs announcing `prefixes` with `attrs`, as many per message
/// as 4096 octets hold.
pub fn encode_announce(attrs: &Attrs, prefixes: &[Prefix], out: &mut Vec<u8>) {
    let a = attrs.encode();
    let mut rest = prefixes;
    while !rest.is_empty() {
        let mut room = MESSAGE_MAX - 19 - 4 - a.len();
        let n = rest
            .iter()
            .take_while(|p| {
                let fits = p.encoded_len() <= room;
                room = room.saturating_sub(p.encoded_len());
                fits
            })
            .count();
        let mut body = Vec::with_capacity(MESSAGE_MAX);
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&(a.len() as u16).to_be_bytes());
        body.extend_from_slice(&a);
        for p in &rest[..n] {
            p.encode(&mut body);
        }
        out.extend(message(UPDATE, &body));
        rest = &rest[n..];
    }
}

/// Appends UPDATEs withdrawing `prefixes`, as many per message as 4096
/// octets hold.
pub fn encode_withdraw(prefixes: &[Prefix], out: &mut Vec<u8>) {
    let mut rest = prefixes;
    while !rest.is_empty() {
        let mut withdrawn = Vec::new();
        let mut n = 0;
        while n < rest.len() && withdrawn.len() + rest[n].encoded_len() <= MESSAGE_MAX - 19 - 4 {
            rest[n].encode(&mut withdrawn);
            n += 1;
        }
        let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&withdrawn);
        body.extend_from_slice(&0u16.to_be_bytes());
        out.extend(message(UPDATE, &body));
        rest = &rest[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message, split, update_routes};
    use std::collections::BTreeMap;

    fn app(i: u8) -> Appliance {
        Appliance {
            addr: Ipv4Addr::new(10, 1, 0, 101 + i),
            asn: 65001 + u32::from(i),
        }
    }

    /// Replays `bytes` into a table of prefix -> attributes with the
    /// independent parser.
    fn replay(bytes: &[u8], table: &mut BTreeMap<Prefix, Attrs>) {
        for m in split(bytes) {
            let Message::Update(body) = m else {
                panic!("not an UPDATE")
            };
            let u = update_routes(&body, false).unwrap();
            for (p, _) in u.withdrawn {
                table.remove(&p);
            }
            for (p, _) in u.announced {
                table.insert(p, u.attrs.clone().unwrap());
            }
        }
    }

    #[test]
    fn table_groups_hold_one_to_ten_prefixes_and_cover_every_prefix_once() {
        let plan = Plan::new(Shape::Table, 10_000);
        assert!(plan.groups.iter().all(|g| (1..=10).contains(&g.len())));
        assert_eq!(plan.groups.first().unwrap().start, 0);
        assert!(plan.groups.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(plan.groups.last().unwrap().end, 10_000);
        let avg = 10_000.0 / plan.groups.len() as f64;
        assert!((5.0..6.0).contains(&avg), "{avg}");
    }

    #[test]
    fn table_attribute_sets_differ_per_update_and_paths_tie_across_appliances() {
        let plan = Plan::new(Shape::Table, 3_000);
        let sets: Vec<Attrs> = (0..plan.groups.len())
            .map(|k| plan.attrs(app(0), k, ROUND_LOAD))
            .collect();
        let distinct: std::collections::HashSet<&Attrs> = sets.iter().collect();
        assert_eq!(distinct.len(), sets.len());
        let with_communities = sets.iter().filter(|a| !a.communities.is_empty()).count();
        assert!((sets.len() / 4..sets.len() * 2 / 5).contains(&with_communities));
        let lens: std::collections::BTreeSet<usize> =
            sets.iter().map(|a| a.as_path.len()).collect();
        assert_eq!(lens, (1..=8).collect());
        for k in 0..plan.groups.len() {
            let (a, b) = (plan.attrs(app(0), k, 0), plan.attrs(app(1), k, 0));
            assert_eq!(a.as_path.len(), b.as_path.len());
            assert_eq!((a.as_path[0], b.as_path[0]), (65001, 65002));
            assert!(!a.as_path.contains(&65515) && !a.as_path.contains(&23456));
        }
    }

    #[test]
    fn remarked_table_changes_only_the_med_mark() {
        let ps = prefixes::generate(0, 500);
        let plan = Plan::new(Shape::Table, ps.len());
        let mut t = BTreeMap::new();
        replay(&plan.phases(app(1), &ps)[0], &mut t);
        let (bytes, paths) = plan.remarked(app(1), &ps, true);
        replay(&bytes, &mut t);
        let want: BTreeMap<Prefix, Attrs> = paths.into_iter().collect();
        assert_eq!(t, want);
        for (p, before) in plan.paths_after(0, app(1), &ps) {
            let now = &t[&p];
            assert_eq!(now.med, before.med.map(|m| m | CHURNED));
            assert_eq!(
                (&now.as_path, now.next_hop),
                (&before.as_path, before.next_hop)
            );
        }
        let (bytes, paths) = plan.remarked(app(1), &ps, false);
        replay(&bytes, &mut t);
        assert!(t.values().all(|a| a.med.unwrap() & CHURNED == 0));
        assert_eq!(paths.len(), 500);
    }

    #[test]
    fn packed_shape_is_one_attribute_set_in_full_messages() {
        let ps = prefixes::generate(0, 3000);
        let plan = Plan::new(Shape::Packed, ps.len());
        let bytes = &plan.phases(app(0), &ps)[0];
        let msgs = split(bytes);
        assert_eq!(msgs.len(), 3);
        let mut t = BTreeMap::new();
        replay(bytes, &mut t);
        assert_eq!(t.len(), 3000);
        assert!(t.values().all(|a| a.as_path == [65001] && a.med.is_none()));
    }

    #[test]
    fn replaying_each_shape_gives_its_final_paths() {
        let ps = prefixes::generate(0, 2_000);
        for shape in [Shape::Packed, Shape::Table, Shape::Churn] {
            let plan = Plan::new(shape, ps.len());
            let mut t = BTreeMap::new();
            let phases = plan.phases(app(2), &ps);
            assert_eq!(phases.len(), plan.phase_count());
            for (n, phase) in phases.iter().enumerate() {
                replay(phase, &mut t);
                let want: BTreeMap<Prefix, Attrs> = plan.paths_after(n, app(2), &ps).collect();
                assert_eq!(t, want, "{shape:?} phase {n}");
            }
            let want: BTreeMap<Prefix, Attrs> = plan.final_paths(app(2), &ps).collect();
            assert_eq!(t, want, "{shape:?}");
            assert_eq!(want.len(), plan.prefixes_after(plan.phase_count() - 1));
            if shape == Shape::Churn {
                assert!(want.values().all(|a| a.med.unwrap() & CHURNED != 0));
                assert!((900..1100).contains(&want.len()));
            }
        }
    }
}
