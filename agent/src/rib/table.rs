//! The route server's table: for every prefix, every path received from
//! every peer (the Adj-RIBs-In, RFC 4271 §3.2, kept together) and the
//! decision's outcome (the Loc-RIB: best path and multipath set). Paths
//! refused by import policy stay visible with their reason but never take
//! part in the decision. Stale paths (RFC 4724 graceful restart) do.

use super::attrs::{AttrCache, AttrSet};
use super::decision::{Candidate, Selection, select};
use crate::bgp::attribute::PathAttributes;
use crate::bgp::peer::PeerId;
use crate::prefix::Prefix;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// What kind of speaker a path came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A network appliance (eBGP).
    Appliance,
    /// A host agent (iBGP, dynamic neighbour).
    Host,
    /// Originated by this route server (the VNet prefixes).
    Local,
}

/// The session a path was learned on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Peer identity (0 for local routes).
    pub peer: PeerId,
    /// Peer name for display.
    pub name: String,
    /// Appliance, host or local.
    pub kind: SourceKind,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's address.
    pub addr: IpAddr,
    /// Learned over eBGP.
    pub ebgp: bool,
}

/// Why import policy refused a path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Rejection {
    /// Our own AS is in the AS path (RFC 4271 §9.1.2 loop detection).
    OwnAsInPath,
    /// The prefix is the VNet space or inside it: the VNet's own routes
    /// always win, as Azure's system routes do.
    InsideVnet(Prefix),
    /// An iBGP route reflected back to its originator (RFC 4456 §8).
    ReflectionLoop,
    /// A host announced a prefix outside the VNet space.
    OutsideVnet,
    /// A host announced this VNet prefix or one covering it: the route
    /// server's own route.
    VnetAuthority(Prefix),
    /// `[[hosts.allow]]` does not let this host announce the prefix.
    NotAllowed,
    /// Inside a shorter prefix another host announced first.
    InsideHostPrefix {
        /// The covering prefix.
        prefix: Prefix,
        /// The host holding it.
        holder: String,
    },
    /// Another host announced the same prefix first (a conflict: the older
    /// announcement is used).
    HeldByHost {
        /// The host holding it.
        holder: String,
    },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::OwnAsInPath => f.write_str("own AS in AS_PATH (loop)"),
            Rejection::InsideVnet(p) => write!(f, "inside the VNet space {p}"),
            Rejection::ReflectionLoop => f.write_str("ORIGINATOR_ID or CLUSTER_LIST loop"),
            Rejection::OutsideVnet => f.write_str("host route outside the VNet space"),
            Rejection::VnetAuthority(p) => {
                write!(f, "host route is or covers the VNet prefix {p}")
            }
            Rejection::NotAllowed => f.write_str("not allowed for this host by [[hosts.allow]]"),
            Rejection::InsideHostPrefix { prefix, holder } => {
                write!(f, "inside {prefix}, announced first by {holder}")
            }
            Rejection::HeldByHost { holder } => {
                write!(f, "conflict: announced first by {holder}")
            }
        }
    }
}

/// One path for one prefix.
#[derive(Clone, Debug)]
pub struct Path {
    /// Where it came from.
    pub source: Arc<Source>,
    /// ADD-PATH path id as received (0 without ADD-PATH).
    pub path_id: u32,
    /// Attributes after import (LOCAL_PREF set for eBGP routes), interned.
    pub attrs: Arc<AttrSet>,
    /// Kept through the peer's graceful restart, not yet refreshed.
    pub stale: bool,
    /// Import policy refused it (boxed: rare, and it keeps every path small).
    pub rejected: Option<Box<Rejection>>,
}

impl Path {
    /// The decision-process view of this path.
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate::of_set(
            &self.attrs,
            self.source.ebgp,
            self.source.router_id,
            self.source.addr,
            self.source.peer,
        )
    }

    /// Same peer and path id.
    pub fn same_slot(&self, peer: PeerId, path_id: u32) -> bool {
        self.source.peer == peer && self.path_id == path_id
    }
}

/// A destination's paths as a decision left them: what exports read, of
/// the table now (its paths where they are) or of a prefix as it was
/// before its change (gathered by identity).
#[derive(Clone, Debug)]
pub struct Decided<'a> {
    paths: DecidedPaths<'a>,
    /// Size of the multipath set at the front of the paths.
    pub multipath: usize,
}

#[derive(Clone, Debug)]
enum DecidedPaths<'a> {
    Now(&'a [Path]),
    Before(SmallVec<[&'a Path; 8]>),
}

impl<'a> Decided<'a> {
    /// The paths, in decision order.
    pub fn paths(&self) -> impl Iterator<Item = &'a Path> + '_ {
        let (now, before): (&'a [Path], &[&'a Path]) = match &self.paths {
            DecidedPaths::Now(p) => (p, &[]),
            DecidedPaths::Before(p) => (&[], p),
        };
        now.iter().chain(before.iter().copied())
    }

    /// How many paths.
    pub fn len(&self) -> usize {
        match &self.paths {
            DecidedPaths::Now(p) => p.len(),
            DecidedPaths::Before(p) => p.len(),
        }
    }

    /// True without paths.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The multipath set, best first.
    pub fn multipath_set(&self) -> impl Iterator<Item = &'a Path> + '_ {
        self.paths().take(self.multipath)
    }

    /// Eligible paths (not refused), in decision order.
    pub fn eligible(&self) -> impl Iterator<Item = &'a Path> + '_ {
        self.paths().filter(|p| p.rejected.is_none())
    }
}

/// All paths of one prefix; `paths[..multipath]` is the multipath set
/// (best first), then other eligible paths, then refused ones.
#[derive(Clone, Debug)]
pub struct Dest {
    /// The paths, in decision order after [`Table::decide`].
    pub paths: Vec<Path>,
    /// Size of the multipath set at the front of `paths`.
    pub multipath: usize,
    prefix: Prefix,
    /// Its entry in the queue of changes to decide, if queued.
    change: Option<u32>,
    /// In the table (a free slot otherwise).
    live: bool,
    /// A local or host path was eligible at the last decision / the one
    /// before: without either, appliances (outside branch-to-branch) are
    /// neither sent nor withdrawn anything for this prefix.
    for_appliances: [bool; 2],
}

impl Dest {
    fn new(prefix: Prefix) -> Dest {
        Dest {
            paths: Vec::new(),
            multipath: 0,
            prefix,
            change: None,
            live: true,
            for_appliances: [false; 2],
        }
    }

    /// True when appliances may be affected by this prefix's last change
    /// even without branch-to-branch.
    pub fn concerns_appliances(&self) -> bool {
        self.for_appliances[0] || self.for_appliances[1]
    }

    /// The best path, if any path is eligible.
    pub fn best(&self) -> Option<&Path> {
        (self.multipath > 0).then(|| &self.paths[0])
    }

    /// The multipath set, best first.
    pub fn multipath_set(&self) -> &[Path] {
        &self.paths[..self.multipath]
    }

    /// Eligible paths (not refused), in decision order.
    pub fn eligible(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter().filter(|p| p.rejected.is_none())
    }

    /// What exports read.
    pub fn decided(&self) -> Decided<'_> {
        Decided {
            paths: DecidedPaths::Now(&self.paths),
            multipath: self.multipath,
        }
    }
}

/// A prefix changed since the last decision, with what exports need to
/// know what it was then: the order of its paths by identity (peer, path
/// id, kept in the table's queue of identities) and the paths replaced or
/// removed since, kept until the change is exported. Paths left alone are
/// read where they are, not copied.
#[derive(Debug)]
pub struct Change {
    /// The prefix.
    pub prefix: Prefix,
    slot: u32,
    before_at: u32,
    before_len: u32,
    before_multipath: u32,
    gone: bool,
    displaced: Vec<Path>,
}

/// The prefix table. Destinations live in a slab addressed by a slot
/// number: the one hash lookup per received path finds the slot, and the
/// queue of prefixes to decide holds slots, so deciding and exporting a
/// change look nothing up again. Each queued destination knows its entry
/// in the queue, which keeps the queue free of duplicates. The table owns the attribute cache: every
/// path it drops lets go of its set there.
#[derive(Debug, Default)]
pub struct Table {
    dests: Vec<Dest>,
    free: Vec<u32>,
    index: FxHashMap<Prefix, u32>,
    dirty: Vec<Change>,
    /// The queued changes' paths before them, by identity.
    before: Vec<(PeerId, u32)>,
    attrs: AttrCache,
    /// Decisions that changed something (see [`Table::generation`]).
    generation: u64,
}

/// Queue `d` for the next decision (once) and return its change.
fn mark<'a>(
    dirty: &'a mut Vec<Change>,
    before: &mut Vec<(PeerId, u32)>,
    slot: u32,
    d: &mut Dest,
) -> &'a mut Change {
    let at = *d.change.get_or_insert_with(|| {
        let before_at = before.len();
        before.extend(d.paths.iter().map(|p| (p.source.peer, p.path_id)));
        dirty.push(Change {
            prefix: d.prefix,
            slot,
            before_at: u32::try_from(before_at).unwrap_or(u32::MAX),
            before_len: u32::try_from(d.paths.len()).unwrap_or(u32::MAX),
            before_multipath: u32::try_from(d.multipath).unwrap_or(u32::MAX),
            gone: false,
            displaced: Vec::new(),
        });
        u32::try_from(dirty.len() - 1).expect("fewer than 2^32 changes")
    });
    &mut dirty[at as usize]
}

/// Queue storage kept from one decision to the next, in changes (a
/// burst's larger queue is freed).
const KEPT_CHANGES: usize = 16_384;

/// What an insert or remove did to a peer's received-prefix count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CountChange {
    /// A new (prefix, path id) from this peer.
    Added,
    /// Replaced an existing path from this peer.
    Replaced,
    /// Removed a path.
    Removed,
    /// Nothing there to remove.
    None,
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::default()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The paths of one prefix.
    pub fn get(&self, p: &Prefix) -> Option<&Dest> {
        self.index.get(p).map(|&i| &self.dests[i as usize])
    }

    /// Every prefix and its paths, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &Dest)> {
        self.dests.iter().filter(|d| d.live).map(|d| (&d.prefix, d))
    }

    /// The shared set equal to `a` (see [`AttrCache`]).
    pub fn intern(&mut self, a: &PathAttributes) -> Arc<AttrSet> {
        self.attrs.intern(a)
    }

    /// Distinct attribute sets the table's paths hold.
    pub fn attr_sets(&self) -> usize {
        self.attrs.len()
    }

    /// How many decisions have changed something: what the table exports
    /// at one generation holds until the next (path attributes and the
    /// decided order only change through a decision).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn slot_for(&mut self, prefix: Prefix) -> u32 {
        match self.index.entry(prefix) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.dests[s as usize] = Dest::new(prefix);
                        s
                    }
                    None => {
                        self.dests.push(Dest::new(prefix));
                        u32::try_from(self.dests.len() - 1).expect("fewer than 2^32 prefixes")
                    }
                };
                *e.insert(slot)
            }
        }
    }

    /// Add or replace the path `path.source.peer`/`path.path_id` for `prefix`.
    pub fn insert(&mut self, prefix: Prefix, path: Path) -> CountChange {
        let slot = self.slot_for(prefix);
        let d = &mut self.dests[slot as usize];
        let change = mark(&mut self.dirty, &mut self.before, slot, d);
        match d
            .paths
            .iter_mut()
            .find(|p| p.same_slot(path.source.peer, path.path_id))
        {
            Some(old) => {
                change.displaced.push(std::mem::replace(old, path));
                CountChange::Replaced
            }
            None => {
                d.paths.push(path);
                CountChange::Added
            }
        }
    }

    /// Remove one path.
    pub fn remove(&mut self, prefix: &Prefix, peer: PeerId, path_id: u32) -> CountChange {
        let Some(&slot) = self.index.get(prefix) else {
            return CountChange::None;
        };
        let d = &mut self.dests[slot as usize];
        let Some(at) = d.paths.iter().position(|p| p.same_slot(peer, path_id)) else {
            return CountChange::None;
        };
        mark(&mut self.dirty, &mut self.before, slot, d)
            .displaced
            .push(d.paths.remove(at));
        CountChange::Removed
    }

    /// Remove every path of `peer` matching `pred`; returns how many.
    pub fn remove_peer_where(
        &mut self,
        peer: PeerId,
        pred: impl Fn(&Prefix, &Path) -> bool,
    ) -> usize {
        let mut n = 0;
        for (slot, d) in self.dests.iter_mut().enumerate() {
            let prefix = d.prefix;
            if !d.live
                || !d
                    .paths
                    .iter()
                    .any(|p| p.source.peer == peer && pred(&prefix, p))
            {
                continue;
            }
            let change = mark(&mut self.dirty, &mut self.before, slot as u32, d);
            let before = change.displaced.len();
            change.displaced.extend(
                d.paths
                    .extract_if(.., |p| p.source.peer == peer && pred(&prefix, p)),
            );
            n += change.displaced.len() - before;
        }
        n
    }

    /// Mark every path of `peer` matching `pred` stale; returns how many.
    pub fn mark_stale(&mut self, peer: PeerId, pred: impl Fn(&Prefix) -> bool) -> usize {
        let mut n = 0;
        for d in self.dests.iter_mut().filter(|d| d.live) {
            let prefix = d.prefix;
            for p in d
                .paths
                .iter_mut()
                .filter(|p| p.source.peer == peer && pred(&prefix))
            {
                p.stale = true;
                n += 1;
            }
        }
        n
    }

    /// True when decisions are pending.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Prefixes waiting for a decision.
    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Run the decision process for every changed prefix; returns them
    /// (prefixes left without paths are removed from the table but still
    /// returned, so exports can withdraw them).
    pub fn decide(&mut self) -> Vec<Prefix> {
        let changes = self.decide_changes();
        let prefixes = changes.iter().map(|c| c.prefix).collect();
        self.release(changes);
        prefixes
    }

    /// [`Table::decide`], returning each changed prefix with its paths as
    /// the previous decision left them. Hand them back to
    /// [`Table::release`] once exported.
    pub fn decide_changes(&mut self) -> Vec<Change> {
        self.decide_with(1, |_, _| ()).0
    }

    /// Decide every changed prefix and hand the changes, in `shards`
    /// groups by slot, to `export` on as many threads (the calling one
    /// among them): each shard decides and reads only its own part of the
    /// slab, so deciding and exporting a large change run on every core.
    /// Returns the changes, for [`Table::release`] once sent, and what
    /// `export` returned for each shard, in slot order.
    pub fn decide_with<R: Send>(
        &mut self,
        shards: usize,
        export: impl Fn(&[Change], Shard<'_>) -> R + Sync,
    ) -> (Vec<Change>, Vec<R>) {
        let mut changes = std::mem::take(&mut self.dirty);
        if !changes.is_empty() {
            self.generation += 1;
        }
        let shards = shards.clamp(1, changes.len().max(1));
        let per = self.dests.len().div_ceil(shards).max(1);
        let bounds = partition(&mut changes, per, shards);
        let before = &self.before;
        let export = &export;
        let results = std::thread::scope(|scope| {
            let (mut dests, mut rest): (&mut [Dest], &mut [Change]) =
                (&mut self.dests, &mut changes);
            let mut works = Vec::new();
            for (i, n) in bounds.iter().enumerate() {
                let (mine, after) = std::mem::take(&mut rest).split_at_mut(*n);
                rest = after;
                let take = per.min(dests.len());
                let (slab, others) = std::mem::take(&mut dests).split_at_mut(take);
                dests = others;
                let offset = i * per;
                works.push(move || {
                    decide_shard(mine, slab, offset);
                    let shard = Shard {
                        dests: slab,
                        offset,
                        before,
                    };
                    export(mine, shard)
                });
            }
            let mut works = works.into_iter();
            let mut first = works.next().expect("at least one shard");
            let others: Vec<_> = works.map(|w| scope.spawn(w)).collect();
            let mut results = vec![first()];
            results.extend(
                others
                    .into_iter()
                    .map(|h| h.join().expect("export shard panicked")),
            );
            results
        });
        for c in changes.iter().filter(|c| c.gone) {
            self.index.remove(&c.prefix);
            self.free.push(c.slot);
        }
        (changes, results)
    }

    /// The table as one export shard.
    pub fn shard(&self) -> Shard<'_> {
        Shard {
            dests: &self.dests,
            offset: 0,
            before: &self.before,
        }
    }

    /// Let go of the paths a decision's changes kept.
    pub fn release(&mut self, mut changes: Vec<Change>) {
        for c in changes.drain(..) {
            for p in c.displaced {
                self.attrs.release(p.attrs);
            }
        }
        if self.dirty.is_empty() && changes.capacity() <= KEPT_CHANGES {
            self.dirty = changes;
        }
        self.before.clear();
        self.before.shrink_to(KEPT_CHANGES * 8);
    }
}

/// Part of the slab, as one export shard reads it.
#[derive(Clone, Copy, Debug)]
pub struct Shard<'a> {
    dests: &'a [Dest],
    offset: usize,
    before: &'a [(PeerId, u32)],
}

impl<'a> Shard<'a> {
    /// The prefix's destination now, if it still has paths.
    pub fn after(&self, c: &Change) -> Option<&'a Dest> {
        (!c.gone).then(|| &self.dests[c.slot as usize - self.offset])
    }

    /// The prefix as the previous decision left it.
    pub fn before<'c>(&self, c: &'c Change) -> Decided<'c>
    where
        'a: 'c,
    {
        let at = c.before_at as usize;
        let ids = &self.before[at..at + c.before_len as usize];
        let paths = if ids.is_empty() {
            SmallVec::new()
        } else {
            let current: &[Path] = self.after(c).map_or(&[], |d| &d.paths);
            ids.iter()
                .filter_map(|&(peer, id)| {
                    c.displaced
                        .iter()
                        .chain(current)
                        .find(|p| p.same_slot(peer, id))
                })
                .collect()
        };
        Decided {
            paths: DecidedPaths::Before(paths),
            multipath: c.before_multipath as usize,
        }
    }
}

/// Order `changes` by the shard (`per` slots each) their slot falls in,
/// in place; returns how many each of the `shards` shards got.
fn partition(changes: &mut [Change], per: usize, shards: usize) -> Vec<usize> {
    let mut counts = Vec::with_capacity(shards);
    let mut start = 0;
    for s in 0..shards {
        let mut end = start;
        for i in start..changes.len() {
            if changes[i].slot as usize / per == s {
                changes.swap(i, end);
                end += 1;
            }
        }
        counts.push(end - start);
        start = end;
    }
    counts
}

/// Decide the changed destinations of one part of the slab, which starts
/// at slot `offset`; empty ones are marked gone (the index and the free
/// list are the caller's).
fn decide_shard(changes: &mut [Change], dests: &mut [Dest], offset: usize) {
    for c in changes {
        let d = &mut dests[c.slot as usize - offset];
        d.change = None;
        if d.paths.is_empty() {
            d.live = false;
            d.paths = Vec::new();
            c.gone = true;
            continue;
        }
        decide_dest(d);
    }
}

/// Order `d.paths` best first (multipath set, other eligible paths, then
/// refused ones) without allocating for up to 16 paths.
fn decide_dest(d: &mut Dest) {
    let mut eligible = 0;
    for i in 0..d.paths.len() {
        if d.paths[i].rejected.is_none() {
            d.paths.swap(eligible, i);
            eligible += 1;
        }
    }
    let Selection { order, multipath } = {
        let cands: SmallVec<[Candidate<'_>; 16]> =
            d.paths[..eligible].iter().map(Path::candidate).collect();
        select(&cands)
    };
    apply_order(&mut d.paths[..eligible], &order);
    d.multipath = multipath;
    d.for_appliances = [
        d.for_appliances[1],
        d.paths[..eligible]
            .iter()
            .any(|p| p.source.kind != SourceKind::Appliance),
    ];
}

/// Permute `paths` in place so that `paths[k]` becomes the old
/// `paths[order[k]]`.
fn apply_order(paths: &mut [Path], order: &[u16]) {
    let mut want: SmallVec<[u16; 16]> = SmallVec::from_slice(order);
    for k in 0..want.len() {
        let src = usize::from(want[k]);
        if src != k {
            paths.swap(k, src);
            if let Some(w) = want.iter_mut().skip(k + 1).find(|w| usize::from(**w) == k) {
                *w = src as u16;
            }
            want[k] = k as u16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::attribute::{AsPath, Origin};

    fn source(peer: PeerId, asn: u32) -> Arc<Source> {
        Arc::new(Source {
            peer,
            name: format!("p{peer}"),
            kind: SourceKind::Appliance,
            asn,
            router_id: Ipv4Addr::new(10, 0, 0, peer as u8),
            addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, peer as u8)),
            ebgp: true,
        })
    }

    fn path(src: &Arc<Source>, hops: usize) -> Path {
        Path {
            source: src.clone(),
            path_id: 0,
            attrs: AttrSet::new(&PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(std::iter::repeat_n(src.asn, hops))),
                next_hop: Some(src.addr),
                local_pref: Some(100),
                ..PathAttributes::default()
            }),
            stale: false,
            rejected: None,
        }
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn decide_orders_multipath_first_and_refused_last() {
        let (a, b, c) = (source(1, 65010), source(2, 65020), source(3, 65030));
        let mut t = Table::new();
        let mut refused = path(&c, 1);
        refused.rejected = Some(Box::new(Rejection::OwnAsInPath));
        t.insert(p("0.0.0.0/0"), refused);
        t.insert(p("0.0.0.0/0"), path(&a, 3));
        t.insert(p("0.0.0.0/0"), path(&b, 1));
        assert_eq!(t.decide(), vec![p("0.0.0.0/0")]);
        let d = t.get(&p("0.0.0.0/0")).unwrap();
        assert_eq!(d.multipath, 1);
        let order: Vec<u32> = d.paths.iter().map(|x| x.source.peer).collect();
        assert_eq!(order, vec![2, 1, 3]);
        assert_eq!(d.eligible().count(), 2);
        assert!(!t.has_dirty());
    }

    #[test]
    fn apply_order_permutes_in_place_for_every_order_of_four() {
        let src = source(1, 65010);
        let mk = |i: u32| {
            let mut x = path(&src, 1);
            x.path_id = i;
            x
        };
        let mut perms = vec![vec![0u16, 1, 2, 3]];
        for _ in 0..24 {
            let mut p = perms.last().unwrap().clone();
            // next lexicographic permutation
            let Some(i) = (0..3).rev().find(|&i| p[i] < p[i + 1]) else {
                break;
            };
            let j = (i + 1..4).rev().find(|&j| p[j] > p[i]).unwrap();
            p.swap(i, j);
            p[i + 1..].reverse();
            perms.push(p);
        }
        assert_eq!(perms.len(), 24);
        for order in perms {
            let mut v: Vec<Path> = (0..4).map(mk).collect();
            apply_order(&mut v, &order);
            let got: Vec<u32> = v.iter().map(|x| x.path_id).collect();
            let want: Vec<u32> = order.iter().map(|&o| u32::from(o)).collect();
            assert_eq!(got, want, "order {order:?}");
        }
    }

    #[test]
    fn replace_and_remove_report_count_changes() {
        let a = source(1, 65010);
        let mut t = Table::new();
        assert_eq!(
            t.insert(p("10.250.0.0/16"), path(&a, 1)),
            CountChange::Added
        );
        assert_eq!(
            t.insert(p("10.250.0.0/16"), path(&a, 2)),
            CountChange::Replaced
        );
        assert_eq!(t.remove(&p("10.250.0.0/16"), 1, 0), CountChange::Removed);
        assert_eq!(t.remove(&p("10.250.0.0/16"), 1, 0), CountChange::None);
        assert_eq!(t.decide(), vec![p("10.250.0.0/16")]);
        assert!(t.is_empty());
    }

    #[test]
    fn deciding_in_shards_decides_and_exports_every_change_once() {
        let (a, b) = (source(1, 65010), source(2, 65020));
        let prefix = |i: u32| Prefix::new(IpAddr::V4(Ipv4Addr::from(0x6440_0000 + (i << 8))), 24);
        let mut t = Table::new();
        for i in 0..1000 {
            t.insert(prefix(i), path(&a, 2));
            t.insert(prefix(i), path(&b, 1));
        }
        t.decide();
        for i in 0..1000 {
            t.remove(&prefix(i), 2, 0);
            if i % 2 == 0 {
                t.remove(&prefix(i), 1, 0);
            }
        }
        let (changes, seen) = t.decide_with(3, |changes, shard| {
            changes
                .iter()
                .map(|c| {
                    let now = shard.after(c);
                    let best = now.map(|d| d.best().expect("a path").source.peer);
                    (c.prefix, shard.before(c).len(), best)
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(seen.len(), 3);
        let mut seen: Vec<_> = seen.into_iter().flatten().collect();
        seen.sort();
        let mut want: Vec<_> = (0..1000)
            .map(|i| (prefix(i), 2, (i % 2 == 1).then_some(1)))
            .collect();
        want.sort();
        assert_eq!(seen, want);
        t.release(changes);
        assert_eq!(t.len(), 500);
        assert!(!t.has_dirty());
        t.insert(prefix(0), path(&a, 1));
        assert_eq!(t.decide(), vec![prefix(0)]);
        assert_eq!(t.len(), 501);
    }

    #[test]
    fn remove_peer_and_stale_marking_touch_only_that_peer() {
        let (a, b) = (source(1, 65010), source(2, 65020));
        let mut t = Table::new();
        for s in ["10.0.0.0/8", "10.250.0.0/16"] {
            t.insert(p(s), path(&a, 1));
            t.insert(p(s), path(&b, 1));
        }
        t.decide();
        assert_eq!(t.mark_stale(1, |_| true), 2);
        assert!(
            t.get(&p("10.0.0.0/8"))
                .unwrap()
                .paths
                .iter()
                .any(|x| x.stale && x.source.peer == 1)
        );
        assert_eq!(t.remove_peer_where(1, |_, x| x.stale), 2);
        let dirty = t.decide();
        assert_eq!(dirty.len(), 2);
        assert_eq!(t.get(&p("10.0.0.0/8")).unwrap().paths.len(), 1);
    }
}
