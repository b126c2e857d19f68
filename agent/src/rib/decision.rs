//! The BGP decision process (RFC 4271 §9.1.2.2, with RFC 4456 §9 for
//! reflected routes) and the multipath set. Pure: candidates in, an order
//! and reasons out. Every comparison says which step decided it, so `steer
//! show routes PREFIX` can explain why each losing path lost.
//!
//! MED is compared only between paths from the same neighbouring AS, which
//! makes pairwise comparison non-transitive; selection therefore picks the
//! best of each neighbour AS first (where MED applies) and then the best of
//! those winners without MED, the "deterministic MED" order BIRD and FRR
//! offer. Multipath (ECMP) takes every eligible path equal to the best down
//! to and including the AS-path-length step, one per source: equal paths
//! are active/active, a prepended path stays passive.

use super::attrs::AttrSet;
use crate::bgp::attribute::{Origin, PathAttributes};
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr};

/// Default LOCAL_PREF for routes without one (RFC 4271 §5.1.5).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// One step of the decision process.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Step {
    /// Higher LOCAL_PREF (RFC 4271 §9.1.2.1).
    LocalPref,
    /// Shorter AS_PATH (§9.1.2.2 a).
    AsPathLength,
    /// Lower ORIGIN (§9.1.2.2 b).
    Origin,
    /// Lower MED from the same neighbour AS (§9.1.2.2 c).
    Med,
    /// eBGP over iBGP (§9.1.2.2 d).
    ExternalOverInternal,
    /// Lower BGP identifier, or ORIGINATOR_ID (§9.1.2.2 f, RFC 4456 §9).
    RouterId,
    /// Shorter CLUSTER_LIST (RFC 4456 §9).
    ClusterListLength,
    /// Lower peer address (§9.1.2.2 g).
    PeerAddress,
}

impl Step {
    /// The rule in words, with its RFC section.
    pub fn rule(self) -> &'static str {
        match self {
            Step::LocalPref => "higher LOCAL_PREF wins (RFC 4271 9.1.1)",
            Step::AsPathLength => "shorter AS_PATH wins (RFC 4271 9.1.2.2 a)",
            Step::Origin => "lower ORIGIN wins (RFC 4271 9.1.2.2 b)",
            Step::Med => "lower MED from the same neighbour AS wins (RFC 4271 9.1.2.2 c)",
            Step::ExternalOverInternal => "eBGP wins over iBGP (RFC 4271 9.1.2.2 d)",
            Step::RouterId => "lower router id wins (RFC 4271 9.1.2.2 f, RFC 4456 9)",
            Step::ClusterListLength => "shorter CLUSTER_LIST wins (RFC 4456 9)",
            Step::PeerAddress => "lower peer address wins (RFC 4271 9.1.2.2 g)",
        }
    }
}

/// What the decision process needs to know about one path, with the
/// values every comparison reads computed once.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    /// Learned over eBGP.
    pub ebgp: bool,
    /// The BGP identifier of the peer it came from.
    pub peer_router_id: Ipv4Addr,
    /// The address of the peer it came from.
    pub peer_addr: IpAddr,
    /// Who the path came from, for "one path per source" in multipath.
    pub source: u32,
    /// LOCAL_PREF (inverted), AS-path length and ORIGIN in one key, in
    /// the order the first three steps compare them.
    rank: u64,
    local_pref: u32,
    path_len: usize,
    origin_rank: u8,
    neighbour_as: Option<u32>,
    med: u32,
    originator_id: Option<Ipv4Addr>,
    cluster_list_len: usize,
    attrs: PhantomData<&'a AttrSet>,
}

fn origin_rank(o: Option<Origin>) -> u8 {
    match o {
        Some(Origin::Igp) => 0,
        Some(Origin::Egp) => 1,
        Some(Origin::Incomplete) | None => 2,
    }
}

/// The first three steps as one key: lower is better.
fn rank(local_pref: u32, path_len: usize, origin_rank: u8) -> u64 {
    (u64::from(u32::MAX - local_pref) << 32)
        | (u64::try_from(path_len.min(0xff_ffff)).unwrap_or(0) << 8)
        | u64::from(origin_rank)
}

impl<'a> Candidate<'a> {
    /// A candidate for `attrs` learned from the given peer.
    pub fn new(
        attrs: &'a PathAttributes,
        ebgp: bool,
        peer_router_id: Ipv4Addr,
        peer_addr: IpAddr,
        source: u32,
    ) -> Candidate<'a> {
        let (local_pref, path_len, origin_rank) = (
            attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
            attrs.as_path_len(),
            origin_rank(attrs.origin),
        );
        Candidate {
            ebgp,
            peer_router_id,
            peer_addr,
            source,
            rank: rank(local_pref, path_len, origin_rank),
            local_pref,
            path_len,
            origin_rank,
            neighbour_as: attrs.as_path.as_ref().and_then(|p| p.first_asn()),
            med: attrs.med.unwrap_or(0),
            originator_id: attrs.originator_id,
            cluster_list_len: attrs.cluster_list.len(),
            attrs: PhantomData,
        }
    }

    /// A candidate for an interned set learned from the given peer: the
    /// same values, read from the set's decoded header.
    pub fn of_set(
        attrs: &'a AttrSet,
        ebgp: bool,
        peer_router_id: Ipv4Addr,
        peer_addr: IpAddr,
        source: u32,
    ) -> Candidate<'a> {
        let (local_pref, path_len, origin_rank) = (
            attrs.local_pref().unwrap_or(DEFAULT_LOCAL_PREF),
            attrs.as_path_len(),
            origin_rank(attrs.origin()),
        );
        Candidate {
            ebgp,
            peer_router_id,
            peer_addr,
            source,
            rank: rank(local_pref, path_len, origin_rank),
            local_pref,
            path_len,
            origin_rank,
            neighbour_as: attrs.neighbour_as(),
            med: attrs.med().unwrap_or(0),
            originator_id: attrs.originator_id(),
            cluster_list_len: attrs.cluster_list_len(),
            attrs: PhantomData,
        }
    }

    fn router_id(&self) -> Ipv4Addr {
        self.originator_id.unwrap_or(self.peer_router_id)
    }
}

/// A decided comparison: `order` is `Less` when the first path is better.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Which is better.
    pub order: Ordering,
    /// The step that decided (or the last one, when equal).
    pub step: Step,
}

fn by(step: Step, order: Ordering) -> Option<Verdict> {
    (order != Ordering::Equal).then_some(Verdict { order, step })
}

/// Compare two paths; MED applies only when both come from the same
/// neighbour AS and `with_med` is set.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>, with_med: bool) -> Verdict {
    by(Step::LocalPref, b.local_pref.cmp(&a.local_pref))
        .or_else(|| by(Step::AsPathLength, a.path_len.cmp(&b.path_len)))
        .or_else(|| by(Step::Origin, a.origin_rank.cmp(&b.origin_rank)))
        .or_else(|| {
            if with_med && a.neighbour_as == b.neighbour_as {
                by(Step::Med, a.med.cmp(&b.med))
            } else {
                None
            }
        })
        .or_else(|| by(Step::ExternalOverInternal, b.ebgp.cmp(&a.ebgp)))
        .or_else(|| by(Step::RouterId, a.router_id().cmp(&b.router_id())))
        .or_else(|| {
            by(
                Step::ClusterListLength,
                a.cluster_list_len.cmp(&b.cluster_list_len),
            )
        })
        .or_else(|| by(Step::PeerAddress, a.peer_addr.cmp(&b.peer_addr)))
        .unwrap_or(Verdict {
            order: Ordering::Equal,
            step: Step::PeerAddress,
        })
}

/// True when `a` and `b` tie on every step up to and including AS-path
/// length: the multipath criterion.
pub fn multipath_equal(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    a.local_pref == b.local_pref && a.path_len == b.path_len
}

/// Candidate positions in decision order; inline up to 16 paths.
pub type Order = SmallVec<[u16; 16]>;

/// The outcome for one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Candidate indexes, best first; multipath members follow the best,
    /// then the rest in preference order.
    pub order: Order,
    /// How many of `order`'s first entries form the multipath set (1 when
    /// only the best; 0 when there are no candidates).
    pub multipath: usize,
}

/// `compare(a, b, with_med).order` without naming the step: the first
/// three steps as one key, then the rest in the same order.
fn ordering(a: &Candidate<'_>, b: &Candidate<'_>, with_med: bool) -> Ordering {
    a.rank
        .cmp(&b.rank)
        .then_with(|| {
            if with_med && a.neighbour_as == b.neighbour_as {
                a.med.cmp(&b.med)
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| b.ebgp.cmp(&a.ebgp))
        .then_with(|| a.router_id().cmp(&b.router_id()))
        .then_with(|| a.cluster_list_len.cmp(&b.cluster_list_len))
        .then_with(|| a.peer_addr.cmp(&b.peer_addr))
}

fn better(a: &Candidate<'_>, b: &Candidate<'_>, with_med: bool) -> bool {
    ordering(a, b, with_med) == Ordering::Less
}

/// Run the decision process over `cands` (at most 65,535).
pub fn select(cands: &[Candidate<'_>]) -> Selection {
    match cands.len() {
        0 => {
            return Selection {
                order: Order::new(),
                multipath: 0,
            };
        }
        1 => {
            return Selection {
                order: smallvec::smallvec![0],
                multipath: 1,
            };
        }
        _ => {}
    }
    let mut groups: SmallVec<[(Option<u32>, usize); 16]> = SmallVec::new();
    for (i, c) in cands.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == c.neighbour_as) {
            Some((_, w)) => {
                if better(c, &cands[*w], true) {
                    *w = i;
                }
            }
            None => groups.push((c.neighbour_as, i)),
        }
    }
    let best = groups
        .iter()
        .map(|&(_, w)| w)
        .reduce(|w, i| {
            if better(&cands[i], &cands[w], false) {
                i
            } else {
                w
            }
        })
        .expect("non-empty");

    let mut order: Order = smallvec::smallvec![best as u16];
    let mut sources: SmallVec<[u32; 16]> = smallvec::smallvec![cands[best].source];
    let mut rest: Order = (0..cands.len())
        .filter(|&i| i != best)
        .map(|i| i as u16)
        .collect();
    rest.sort_by(|&x, &y| {
        ordering(&cands[usize::from(x)], &cands[usize::from(y)], false).then_with(|| x.cmp(&y))
    });
    let mut others = Order::new();
    for i in rest {
        let c = &cands[usize::from(i)];
        if multipath_equal(c, &cands[best]) && !sources.contains(&c.source) {
            sources.push(c.source);
            order.push(i);
        } else {
            others.push(i);
        }
    }
    let multipath = order.len();
    order.extend(others);
    Selection { order, multipath }
}

/// Why `loser` is not the best path `best`: the first step where it is
/// worse. `None` when it is in the multipath set.
pub fn why_lost(best: &Candidate<'_>, loser: &Candidate<'_>) -> Verdict {
    let v = compare(best, loser, true);
    if v.order == Ordering::Less {
        return v;
    }
    compare(best, loser, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::attribute::AsPath;

    fn attrs(path: &[u32]) -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(path.iter().copied())),
            next_hop: Some("10.1.0.10".parse().unwrap()),
            local_pref: Some(100),
            ..PathAttributes::default()
        }
    }

    fn cand(a: &PathAttributes, src: u32, id: [u8; 4]) -> Candidate<'_> {
        Candidate::new(
            a,
            true,
            Ipv4Addr::from(id),
            IpAddr::V4(Ipv4Addr::from(id)),
            src,
        )
    }

    #[test]
    fn equal_paths_from_two_appliances_are_active_active() {
        let a = attrs(&[65020]);
        let b = attrs(&[65021]);
        let s = select(&[cand(&a, 1, [10, 1, 0, 20]), cand(&b, 2, [10, 1, 0, 21])]);
        assert_eq!(s.multipath, 2);
        assert_eq!(s.order.as_slice(), &[0, 1]);
    }

    #[test]
    fn prepended_path_is_passive_and_loses_on_as_path_length() {
        let a = attrs(&[65020, 65020, 65020]);
        let b = attrs(&[65021]);
        let (ca, cb) = (cand(&a, 1, [10, 1, 0, 20]), cand(&b, 2, [10, 1, 0, 21]));
        let s = select(&[ca.clone(), cb.clone()]);
        assert_eq!(s.order.as_slice(), &[1, 0]);
        assert_eq!(s.multipath, 1);
        assert_eq!(why_lost(&cb, &ca).step, Step::AsPathLength);
    }

    #[test]
    fn higher_local_pref_beats_shorter_path() {
        let mut a = attrs(&[65020, 65020]);
        a.local_pref = Some(200);
        let b = attrs(&[65021]);
        let s = select(&[cand(&b, 2, [1, 1, 1, 1]), cand(&a, 1, [2, 2, 2, 2])]);
        assert_eq!(s.order[0], 1);
        assert_eq!(
            why_lost(&cand(&a, 1, [2, 2, 2, 2]), &cand(&b, 2, [1, 1, 1, 1])).step,
            Step::LocalPref
        );
    }

    #[test]
    fn origin_igp_beats_incomplete() {
        let a = attrs(&[65020]);
        let mut b = attrs(&[65021]);
        b.origin = Some(Origin::Incomplete);
        let s = select(&[cand(&b, 2, [1, 1, 1, 1]), cand(&a, 1, [2, 2, 2, 2])]);
        assert_eq!(s.order[0], 1);
        // Origin is after the multipath cut: still ECMP.
        assert_eq!(s.multipath, 2);
    }

    #[test]
    fn med_counts_only_within_the_same_neighbour_as() {
        let mut a = attrs(&[65020]);
        a.med = Some(50);
        let mut b = attrs(&[65020]);
        b.med = Some(10);
        let (ca, cb) = (cand(&a, 1, [1, 1, 1, 1]), cand(&b, 2, [2, 2, 2, 2]));
        assert_eq!(compare(&ca, &cb, true).step, Step::Med);
        assert_eq!(select(&[ca.clone(), cb.clone()]).order[0], 1);
        let mut c = attrs(&[65030]);
        c.med = Some(90);
        let cc = cand(&c, 3, [3, 3, 3, 3]);
        assert_eq!(compare(&ca, &cc, true).step, Step::RouterId);
    }

    #[test]
    fn deterministic_med_does_not_depend_on_input_order() {
        let mut a = attrs(&[65020]);
        a.med = Some(100);
        let mut b = attrs(&[65030]);
        b.med = Some(0);
        let mut c = attrs(&[65020]);
        c.med = Some(50);
        let cands = [
            cand(&a, 1, [1, 1, 1, 1]),
            cand(&b, 2, [3, 3, 3, 3]),
            cand(&c, 3, [2, 2, 2, 2]),
        ];
        let first = usize::from(select(&cands).order[0]);
        let perms = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for p in perms {
            let v: Vec<Candidate<'_>> = p.iter().map(|&i| cands[i].clone()).collect();
            let s = select(&v);
            assert_eq!(p[usize::from(s.order[0])], first, "permutation {p:?}");
        }
        assert_eq!(first, 2);
    }

    #[test]
    fn ebgp_beats_ibgp_then_router_id_then_cluster_list_then_address() {
        let a = attrs(&[65020]);
        let mut ia = cand(&a, 1, [1, 1, 1, 1]);
        ia.ebgp = false;
        let eb = cand(&a, 2, [9, 9, 9, 9]);
        assert_eq!(
            compare(&eb, &ia, true),
            Verdict {
                order: Ordering::Less,
                step: Step::ExternalOverInternal
            }
        );
        let low = cand(&a, 3, [1, 0, 0, 1]);
        assert_eq!(compare(&low, &eb, true).step, Step::RouterId);
        let mut r = attrs(&[65020]);
        r.originator_id = Some(Ipv4Addr::new(9, 9, 9, 9));
        r.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1)];
        let mut q = r.clone();
        q.cluster_list.push(Ipv4Addr::new(2, 2, 2, 2));
        assert_eq!(
            compare(&cand(&r, 1, [5, 5, 5, 5]), &cand(&q, 2, [5, 5, 5, 5]), true).step,
            Step::ClusterListLength
        );
        let mut same_id = cand(&a, 4, [7, 7, 7, 7]);
        same_id.peer_addr = "10.0.0.2".parse().unwrap();
        let mut same_id2 = cand(&a, 5, [7, 7, 7, 7]);
        same_id2.peer_addr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            compare(&same_id2, &same_id, true),
            Verdict {
                order: Ordering::Less,
                step: Step::PeerAddress
            }
        );
    }

    #[test]
    fn multipath_takes_one_path_per_source() {
        let a = attrs(&[65020]);
        let b = attrs(&[65020]);
        let s = select(&[cand(&a, 1, [1, 1, 1, 1]), cand(&b, 1, [1, 1, 1, 2])]);
        assert_eq!(s.multipath, 1);
    }

    #[test]
    fn originator_id_replaces_router_id_for_reflected_routes() {
        let mut a = attrs(&[]);
        a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1));
        let b = attrs(&[]);
        let (mut ca, mut cb) = (cand(&a, 1, [9, 9, 9, 9]), cand(&b, 2, [5, 5, 5, 5]));
        ca.ebgp = false;
        cb.ebgp = false;
        assert_eq!(
            compare(&ca, &cb, true),
            Verdict {
                order: Ordering::Less,
                step: Step::RouterId
            }
        );
    }

    #[test]
    fn missing_local_pref_counts_as_default() {
        let mut a = attrs(&[65020]);
        a.local_pref = None;
        let b = attrs(&[65021]);
        assert!(multipath_equal(
            &cand(&a, 1, [1, 1, 1, 1]),
            &cand(&b, 2, [2, 2, 2, 2])
        ));
    }

    #[test]
    fn the_fast_order_agrees_with_compare_on_every_step() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut sets = Vec::new();
        for _ in 0..64 {
            let first = [65010, 65020][next(2) as usize];
            let mut a = attrs(&vec![first; 1 + next(3) as usize]);
            a.local_pref = [None, Some(100), Some(200)][next(3) as usize];
            a.origin = [Some(Origin::Igp), Some(Origin::Incomplete), None][next(3) as usize];
            a.med = [None, Some(0), Some(5)][next(3) as usize];
            if next(4) == 0 {
                a.originator_id = Some(Ipv4Addr::new(1, 1, 1, next(3) as u8));
                a.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9); next(3) as usize];
            }
            sets.push((a, next(2) == 0, [10, 1, 0, next(3) as u8]));
        }
        let cands: Vec<Candidate<'_>> = sets
            .iter()
            .enumerate()
            .map(|(i, (a, ebgp, id))| {
                let mut c = cand(a, i as u32, *id);
                c.ebgp = *ebgp;
                c
            })
            .collect();
        for a in &cands {
            for b in &cands {
                for with_med in [false, true] {
                    assert_eq!(ordering(a, b, with_med), compare(a, b, with_med).order);
                }
            }
        }
    }

    #[test]
    fn empty_input_selects_nothing() {
        assert_eq!(
            select(&[]),
            Selection {
                order: Order::new(),
                multipath: 0
            }
        );
    }
}
