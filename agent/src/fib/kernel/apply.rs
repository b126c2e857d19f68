//! Programming the table. One `apply` turns a list of changes into a few
//! batches: missing nexthop objects first (NexthopObjects strategy: gateway
//! objects, new resilient groups, and groups replaced in place), then every
//! route, then deletion of the objects no route uses any more. Each refused
//! change is reported with its prefix and errno; the rest land.
//!
//! Flow affinity in the kernel path: a route keeps its group while its
//! gateway set is the group's; when every route using a group changes to
//! the same new set in one batch (an appliance joining or leaving changes
//! every prefix it shares with the others at once), the group is replaced in
//! place, so its buckets — and the flows in them — stay; only routes that
//! split off a shared group move to another one.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use super::abi::*;
use super::batch::{self, Batch};
use super::wire::ErrorMsg;
use super::{
    ApplyReport, ChangeKind, EcmpStrategy, KernelError, KernelFib, RETRIES, RouteChange,
    RouteFailure, RouteTarget, describe, nexthop, route, transient,
};
use crate::prefix::Prefix;

/// One change, resolved to what goes on the wire.
struct Op<'a> {
    change: &'a RouteChange,
    action: Action,
}

enum Action {
    Upsert {
        kind: u8,
        gateways: Vec<IpAddr>,
        object: Option<u32>,
    },
    Remove,
}

impl Op<'_> {
    fn encode(&self, b: &mut Batch, table: u32) {
        let prefix = self.change.prefix();
        match &self.action {
            Action::Remove => route::push_remove(b, table, prefix),
            Action::Upsert {
                kind,
                gateways,
                object,
            } => {
                let via = match (object, gateways.as_slice()) {
                    (Some(id), _) => route::Via::Object(*id),
                    (None, []) => route::Via::Nothing,
                    (None, [gw]) => route::Via::Gateway(*gw),
                    (None, gws) => route::Via::Multipath(gws),
                };
                route::push_upsert(b, table, prefix, *kind, via);
            }
        }
    }
}

fn failure(change: &RouteChange, e: &ErrorMsg) -> RouteFailure {
    RouteFailure {
        prefix: change.prefix(),
        kind: match change {
            RouteChange::Upsert(_) => ChangeKind::Upsert,
            RouteChange::Remove(_) => ChangeKind::Remove,
        },
        errno: e.errno,
        message: describe(e),
    }
}

/// An item and the id of the nexthop object created for it, or why not.
type Created<T> = (T, Result<u32, ErrorMsg>);

/// A group replaced in place (id, new gateway set), and whether it was.
type Replaced = ((u32, Vec<IpAddr>), Result<(), ErrorMsg>);

/// What [`KernelFib::prepare_objects`] arranged for one batch.
#[derive(Default)]
struct Objects {
    /// Groups replaced in place, with their new gateway sets: their routes
    /// stay on them.
    in_place: HashMap<u32, Vec<IpAddr>>,
    /// Gateway sets that could not get a group, with why.
    failed_sets: HashMap<Vec<IpAddr>, ErrorMsg>,
    /// Groups whose replacement in place failed, with why (their routes
    /// fail with it and are retried on the next reconcile).
    failed_groups: HashMap<u32, ErrorMsg>,
}

fn own_error(errno: i32, message: String) -> ErrorMsg {
    ErrorMsg {
        errno,
        message: Some(message),
    }
}

/// Sorted, without duplicates: the identity of an ECMP set.
fn canonical(gateways: &[IpAddr]) -> Vec<IpAddr> {
    let mut set = gateways.to_vec();
    set.sort_unstable();
    set.dedup();
    set
}

/// The last change for each prefix, in their original order.
fn last_per_prefix(changes: &[RouteChange]) -> Vec<&RouteChange> {
    let mut last: HashMap<Prefix, usize> = HashMap::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        last.insert(c.prefix(), i);
    }
    changes
        .iter()
        .enumerate()
        .filter(|(i, c)| last[&c.prefix()] == *i)
        .map(|(_, c)| c)
        .collect()
}

impl KernelFib {
    /// Applies `changes` in batches (many requests per sendmsg, errors
    /// matched back by sequence number). When a prefix appears more than
    /// once, its last change wins; upserts go before removals. Transient
    /// refusals (EBUSY, ENOBUFS, ...) are retried; every other refusal is in
    /// the report with its prefix and errno, and the rest of the batch still
    /// lands. An `Err` means the socket failed and the outcome of the batch
    /// is unknown.
    pub fn apply(&mut self, changes: &[RouteChange]) -> Result<ApplyReport, KernelError> {
        let changes = last_per_prefix(changes);
        let mut report = ApplyReport::default();
        if self.strategy == EcmpStrategy::NexthopObjects || !self.nh.is_empty() {
            // The kernel deletes objects (and their routes) by itself when
            // their interface goes down.
            self.resync_nexthops()?;
        }
        let objects = match self.strategy {
            EcmpStrategy::NexthopObjects => self.prepare_objects(&changes)?,
            EcmpStrategy::Multipath => Objects::default(),
        };
        let mut ops = Vec::with_capacity(changes.len());
        let mut removals = Vec::new();
        for change in changes {
            match self.plan(change, &objects) {
                Ok(Action::Remove) => removals.push(Op {
                    change,
                    action: Action::Remove,
                }),
                Ok(action) => ops.push(Op { change, action }),
                Err(e) => report.failures.push(failure(change, &e)),
            }
        }
        // The IPv4 trie re-scans a node's children from the lowest index
        // after each leaf removal; removing from the highest prefix down
        // finds a live child at once (about 2x faster for 100k routes).
        removals.sort_unstable_by_key(|op| std::cmp::Reverse(op.change.prefix()));
        ops.extend(removals);
        let table = self.table;
        let (fates, retried) = self.run(
            ops.len(),
            |b, i| ops[i].encode(b, table),
            |i, errno| matches!(ops[i].action, Action::Remove) && errno == libc::ESRCH,
        )?;
        report.retried = retried;
        for (op, fate) in ops.iter().zip(fates) {
            match fate {
                None => {
                    report.applied += 1;
                    let object = match op.action {
                        Action::Upsert { object, .. } => object,
                        Action::Remove => None,
                    };
                    self.nh.set_route(op.change.prefix(), object);
                }
                Some(e) => report.failures.push(failure(op.change, &e)),
            }
        }
        self.collect_garbage()?;
        Ok(report)
    }

    fn plan(&self, change: &RouteChange, objects: &Objects) -> Result<Action, ErrorMsg> {
        let route = match change {
            RouteChange::Remove(_) => return Ok(Action::Remove),
            RouteChange::Upsert(r) => r,
        };
        let plain = |kind| Action::Upsert {
            kind,
            gateways: Vec::new(),
            object: None,
        };
        let gateways = match &route.target {
            RouteTarget::Unreachable => return Ok(plain(RTN_UNREACHABLE)),
            RouteTarget::Blackhole => return Ok(plain(RTN_BLACKHOLE)),
            RouteTarget::Throw => return Ok(plain(RTN_THROW)),
            RouteTarget::Unicast(gws) => canonical(gws),
        };
        if gateways.is_empty() {
            return Err(own_error(
                libc::EINVAL,
                "unicast route without a gateway".into(),
            ));
        }
        let object = match self.strategy {
            EcmpStrategy::Multipath => None,
            EcmpStrategy::NexthopObjects => {
                let current = self.nh.route(&route.prefix);
                if let Some(e) = current.and_then(|g| objects.failed_groups.get(&g)) {
                    return Err(e.clone());
                }
                match (
                    current.filter(|g| self.keeps(*g, &gateways, &objects.in_place)),
                    self.nh.group(&gateways),
                    objects.failed_sets.get(&gateways),
                ) {
                    (Some(id), _, _) | (None, Some(id), _) => Some(id),
                    (None, None, Some(e)) => return Err(e.clone()),
                    (None, None, None) => {
                        return Err(own_error(
                            libc::EINVAL,
                            "no nexthop object for the gateways".into(),
                        ));
                    }
                }
            }
        };
        Ok(Action::Upsert {
            kind: RTN_UNICAST,
            gateways,
            object,
        })
    }

    /// A route on group `g` that wants `gateways` stays on it: the group
    /// has (or is given in place, `moved`) exactly those gateways.
    fn keeps(&self, g: u32, gateways: &[IpAddr], moved: &HashMap<u32, Vec<IpAddr>>) -> bool {
        match moved.get(&g) {
            Some(set) => set == gateways,
            None => {
                self.nh.resilience(g).is_some()
                    && self.nh.resolve(g).is_some_and(|set| set == gateways)
            }
        }
    }

    /// The groups whose every route changes to one same new gateway set in
    /// this batch (routes removed from the group are fine), with that set.
    fn whole_group_moves(&self, changes: &[&RouteChange]) -> HashMap<u32, Vec<IpAddr>> {
        let by_prefix: HashMap<Prefix, &RouteChange> =
            changes.iter().map(|c| (c.prefix(), *c)).collect();
        let mut out = HashMap::new();
        'groups: for (g, users) in self.nh.routes_by_group() {
            let mut target: Option<Vec<IpAddr>> = None;
            for p in &users {
                match by_prefix.get(p) {
                    None => continue 'groups,
                    Some(RouteChange::Upsert(r)) => match &r.target {
                        RouteTarget::Unicast(gws) if !gws.is_empty() => {
                            let set = canonical(gws);
                            if target.as_ref().is_some_and(|t| *t != set) {
                                continue 'groups;
                            }
                            target = Some(set);
                        }
                        _ => {}
                    },
                    Some(RouteChange::Remove(_)) => {}
                }
            }
            if let Some(set) = target
                && self.nh.resolve(g).as_ref() != Some(&set)
            {
                out.insert(g, set);
            }
        }
        out
    }

    /// Creates the gateway objects and groups that the routes in `changes`
    /// need and replaces in place the groups whose routes all move to one
    /// new set; says which sets and groups failed, with why.
    fn prepare_objects(&mut self, changes: &[&RouteChange]) -> Result<Objects, KernelError> {
        let moves = self.whole_group_moves(changes);
        let mut sets: HashSet<Vec<IpAddr>> = HashSet::new();
        for c in changes {
            if let RouteChange::Upsert(r) = c
                && let RouteTarget::Unicast(targets) = &r.target
                && !targets.is_empty()
            {
                let set = canonical(targets);
                let stays = self
                    .nh
                    .route(&r.prefix)
                    .is_some_and(|g| self.keeps(g, &set, &moves));
                if !stays && self.nh.group(&set).is_none() {
                    sets.insert(set);
                }
            }
        }
        let mut objects = Objects::default();
        let mut gws: Vec<IpAddr> = sets
            .iter()
            .chain(moves.values())
            .flatten()
            .filter(|g| self.nh.gateway(**g).is_none())
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if gws.is_empty() && sets.is_empty() && moves.is_empty() {
            return Ok(objects);
        }
        gws.sort_unstable();
        let mut gw_failed: HashMap<IpAddr, ErrorMsg> = HashMap::new();
        let mut resolved = Vec::new();
        for (gw, oif) in gws.iter().zip(self.lookup_oifs(&gws)?) {
            match oif {
                Ok(oif) => resolved.push((*gw, oif)),
                Err(e) => {
                    gw_failed.insert(*gw, e);
                }
            }
        }
        let created = self.create_objects(resolved, |b, id, &(gw, oif)| {
            nexthop::push_new_gateway(b, id, gw, oif)
        })?;
        for ((gw, _), result) in created {
            match result {
                Ok(id) => self.nh.add_gateway(gw, id),
                Err(e) => {
                    gw_failed.insert(gw, e);
                }
            }
        }
        let member_ids = |set: &[IpAddr], nh: &nexthop::Registry| -> Result<Vec<u32>, ErrorMsg> {
            set.iter()
                .map(|g| match (nh.gateway(*g), gw_failed.get(g)) {
                    (Some(id), _) => Ok(id),
                    (None, e) => Err(own_error(
                        e.map_or(libc::ENETUNREACH, |e| e.errno),
                        format!(
                            "gateway {g}: {}",
                            e.map_or_else(|| "no nexthop object".to_string(), describe)
                        ),
                    )),
                })
                .collect()
        };
        let mut groups = Vec::new();
        for set in sets {
            match member_ids(&set, &self.nh) {
                Ok(members) => groups.push((set, members)),
                Err(e) => {
                    objects.failed_sets.insert(set, e);
                }
            }
        }
        let res = self.resilience;
        let created = self.create_objects(groups, |b, id, (_, members)| {
            nexthop::push_new_group(b, id, members, res)
        })?;
        for ((set, _), result) in created {
            match result {
                Ok(id) => self.nh.add_group(set, id, res),
                Err(e) => {
                    objects.failed_sets.insert(set, e);
                }
            }
        }
        let mut replacements = Vec::new();
        for (g, set) in moves {
            match member_ids(&set, &self.nh) {
                Ok(members) => replacements.push((g, set, members)),
                Err(e) => {
                    objects.failed_groups.insert(g, e);
                }
            }
        }
        for ((g, set), result) in self.replace_groups(replacements)? {
            match result {
                Ok(()) => {
                    objects.in_place.insert(g, set);
                }
                Err(e) => {
                    objects.failed_groups.insert(g, e);
                }
            }
        }
        Ok(objects)
    }

    /// Replaces groups in place (id, new gateway set, its member ids) with
    /// this instance's resilience; records and returns each one's outcome.
    pub(super) fn replace_groups(
        &mut self,
        groups: Vec<(u32, Vec<IpAddr>, Vec<u32>)>,
    ) -> Result<Vec<Replaced>, KernelError> {
        let res = self.resilience;
        let (fates, _) = self.run(
            groups.len(),
            |b, i| nexthop::push_replace_group(b, groups[i].0, &groups[i].2, res),
            |_, _| false,
        )?;
        let mut out = Vec::with_capacity(groups.len());
        for ((g, set, _), fate) in groups.into_iter().zip(fates) {
            match fate {
                None => {
                    self.nh.replace_group(g, set.clone(), res);
                    out.push(((g, set), Ok(())));
                }
                Some(e) => out.push(((g, set), Err(e))),
            }
        }
        Ok(out)
    }

    /// The interface the host reaches each gateway through (RTM_GETROUTE):
    /// nexthop objects need one, plain routes let the kernel find it.
    pub(super) fn lookup_oifs(
        &mut self,
        gws: &[IpAddr],
    ) -> Result<Vec<Result<u32, ErrorMsg>>, KernelError> {
        let mut b = Batch::with_capacity(gws.len());
        for &gw in gws {
            route::push_lookup(&mut b, gw);
        }
        let mut oifs = vec![None; gws.len()];
        let fates = batch::execute(&mut self.sock, b, |i, m| {
            if let Some(r) = route::parse(m) {
                oifs[i] = r.oif;
            }
        })?;
        Ok(fates
            .into_iter()
            .zip(oifs)
            .zip(gws)
            .map(|((fate, oif), gw)| match (fate, oif) {
                (Some(e), _) => Err(e),
                (None, Some(oif)) => Ok(oif),
                (None, None) => Err(own_error(
                    libc::ENETUNREACH,
                    format!("no interface reaches gateway {gw}"),
                )),
            })
            .collect())
    }

    /// Creates nexthop objects under fresh ids; an id someone else took
    /// meanwhile (EEXIST) or a transient refusal gets another id and try.
    fn create_objects<T>(
        &mut self,
        items: Vec<T>,
        encode: impl Fn(&mut Batch, u32, &T),
    ) -> Result<Vec<Created<T>>, KernelError> {
        let mut done = Vec::with_capacity(items.len());
        let mut todo = items;
        for attempt in 0..=RETRIES {
            if todo.is_empty() {
                break;
            }
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(1 << (2 * attempt)));
            }
            let ids: Vec<u32> = todo.iter().map(|_| self.nh.allocate()).collect();
            let mut b = Batch::with_capacity(todo.len());
            for (item, &id) in todo.iter().zip(&ids) {
                encode(&mut b, id, item);
            }
            let fates = batch::execute(&mut self.sock, b, |_, _| {})?;
            let mut again = Vec::new();
            for ((item, id), fate) in todo.into_iter().zip(ids).zip(fates) {
                match fate {
                    None => done.push((item, Ok(id))),
                    Some(e)
                        if (e.errno == libc::EEXIST || transient(e.errno)) && attempt < RETRIES =>
                    {
                        again.push(item)
                    }
                    Some(e) => done.push((item, Err(e))),
                }
            }
            todo = again;
        }
        Ok(done)
    }

    /// Deletes the nexthop objects no route of ours uses. One that cannot
    /// be deleted stays registered and is tried again on the next apply.
    fn collect_garbage(&mut self) -> Result<(), KernelError> {
        let ids = self.nh.unused();
        if ids.is_empty() {
            return Ok(());
        }
        let (fates, _) = self.run(
            ids.len(),
            |b, i| nexthop::push_delete(b, ids[i]),
            |_, errno| errno == libc::ENOENT,
        )?;
        for (&id, fate) in ids.iter().zip(fates) {
            match fate {
                None => self.nh.forget(id),
                Some(e) => {
                    tracing::warn!(id, errno = e.errno, message = %describe(&e), "could not delete an unused nexthop object; will retry")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::kernel::KernelRoute;

    #[test]
    fn last_change_per_prefix_wins_and_order_is_kept() {
        let p = |s: &str| -> Prefix { s.parse().unwrap() };
        let up = |s: &str| {
            RouteChange::Upsert(KernelRoute {
                prefix: p(s),
                target: RouteTarget::Blackhole,
            })
        };
        let changes = vec![
            up("10.0.0.0/8"),
            up("10.1.0.0/16"),
            RouteChange::Remove(p("10.0.0.0/8")),
        ];
        let kept = last_per_prefix(&changes);
        assert_eq!(kept, vec![&changes[1], &changes[2]]);
    }

    #[test]
    fn canonical_set_is_sorted_and_deduplicated() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(
            canonical(&[ip("192.0.2.2"), ip("192.0.2.1"), ip("192.0.2.2")]),
            vec![ip("192.0.2.1"), ip("192.0.2.2")]
        );
    }
}
