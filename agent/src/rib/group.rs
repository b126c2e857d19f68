//! Update groups: receivers that would get byte-identical UPDATEs share one
//! encoding. A change is diffed and encoded once per group, and the same
//! bytes are queued to every member — with thousands of host agents this
//! is the difference between one encode and thousands. A member joining an
//! existing group gets the group's Adj-RIB-Out replayed, then End-of-RIB
//! (RFC 4724 §2).
//!
//! A group keeps no copy of its Adj-RIB-Out (RFC 4271 §3.2): export policy
//! is a function of a destination's decided paths, so what a group was
//! sent for a prefix is the export of the prefix as the previous decision
//! left it, which the table hands over with each change. Diffing the two
//! exports gives the withdrawals and the announcements; the dump and
//! `steer show routes --advertised` export the table as it is.
//!
//! Members joining together (a storm of hosts reconnecting) share one
//! encoded dump: it is kept, tagged with the table's generation, until the
//! table changes or [`DUMP_KEEP`] has passed, so a burst of joins costs one
//! encoding and one copy of the bytes, not one per member.

use super::export::{ExportContext, GroupKey, SetKey, attributes, select, set_key};
use super::table::{Decided, Path, Table};
use crate::bgp::error::EncodeError;
use crate::bgp::message::{encode_announce, encode_end_of_rib, encode_withdraw};
use crate::bgp::nlri::{Family, Nlri};
use crate::bgp::peer::{Outbound, PeerId};
use crate::prefix::{Afi, Prefix};
use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// How long an encoded dump is kept for further joining members.
pub const DUMP_KEEP: Duration = Duration::from_secs(1);

/// The last full dump and what it was made from.
#[derive(Debug)]
struct Dumped {
    generation: u64,
    bytes: Bytes,
    messages: u64,
    made: Instant,
}

/// A group member.
#[derive(Debug, Clone)]
pub struct Member {
    /// The session.
    pub peer: PeerId,
    /// Its send queue.
    pub out: Outbound,
}

/// Encoded UPDATEs and how many messages they hold.
#[derive(Debug, Default, Clone)]
pub struct Encoded {
    /// The bytes, possibly several messages.
    pub bytes: Vec<u8>,
    /// Number of UPDATE messages.
    pub messages: u64,
}

impl Encoded {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Count the messages in a buffer of whole BGP messages.
pub fn count_messages(buf: &[u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while i + 19 <= buf.len() {
        let len = usize::from(u16::from_be_bytes([buf[i + 16], buf[i + 17]]));
        if len < 19 {
            break;
        }
        i += len;
        n += 1;
    }
    n
}

/// One update group.
#[derive(Debug)]
pub struct UpdateGroup {
    /// What its members share.
    pub key: GroupKey,
    /// Its members.
    pub members: Vec<Member>,
    /// Each member's place in `members`: joining and leaving cost the same
    /// with ten members or ten thousand.
    places: FxHashMap<PeerId, usize>,
    advertised: usize,
    /// UPDATE messages encoded for this group (not multiplied by members).
    pub messages_encoded: u64,
    dumped: Option<Dumped>,
}

/// One attribute set to announce and its NLRI.
#[derive(Debug)]
struct Pending {
    path: Path,
    afi: Afi,
    nlri: Vec<Nlri>,
}

/// Announcements and withdrawals collected for one group, grouped by
/// attribute set so each set is encoded once.
#[derive(Default, Debug)]
pub struct Changes {
    /// Attribute sets in first-seen order with their NLRI.
    sets: Vec<Pending>,
    index: FxHashMap<SetKey, usize>,
    last: Option<(SetKey, usize)>,
    withdraw: [Vec<Nlri>; 2],
}

fn afi_index(a: Afi) -> usize {
    match a {
        Afi::Ipv4 => 0,
        Afi::Ipv6 => 1,
    }
}

impl Changes {
    /// Room for about `prefixes` changed prefixes.
    pub fn with_capacity(prefixes: usize) -> Changes {
        Changes {
            index: FxHashMap::with_capacity_and_hasher(prefixes, Default::default()),
            ..Changes::default()
        }
    }

    fn announce(&mut self, prefix: Prefix, path_id: u32, p: &Path) {
        let afi = prefix.afi();
        let k = set_key(p, afi);
        let nlri = Nlri { prefix, path_id };
        let i = match self.last {
            Some((lk, i)) if lk == k => i,
            _ => {
                let n = self.sets.len();
                let i = *self.index.entry(k).or_insert(n);
                if i == n {
                    self.sets.push(Pending {
                        path: p.clone(),
                        afi,
                        nlri: Vec::new(),
                    });
                }
                self.last = Some((k, i));
                i
            }
        };
        self.sets[i].nlri.push(nlri);
    }

    fn withdraw(&mut self, prefix: Prefix, path_id: u32) {
        self.withdraw[afi_index(prefix.afi())].push(Nlri { prefix, path_id });
    }

    /// Encode everything; an attribute set that cannot be encoded is
    /// reported with how many prefixes it held, and the rest still goes.
    pub fn encode(self, key: &GroupKey, ctx: &ExportContext) -> Encoded {
        let nlri: usize = self.sets.iter().map(|s| s.nlri.len()).sum::<usize>()
            + self.withdraw.iter().map(Vec::len).sum::<usize>();
        let mut bytes = Vec::with_capacity(nlri * 10 + self.sets.len() * 64);
        let failed = |what: &str, n: usize, e: EncodeError| {
            warn!(
                "cannot encode {what} of {n} prefixes for {:?}: {e}",
                key.audience
            );
        };
        for w in &self.withdraw {
            if !w.is_empty() {
                let mark = bytes.len();
                if let Err(e) = encode_withdraw(&key.codec, w, &mut bytes) {
                    bytes.truncate(mark);
                    failed("the withdrawal", w.len(), e);
                }
            }
        }
        for s in &self.sets {
            let attrs = attributes(&s.path, s.afi, key, ctx);
            let mark = bytes.len();
            if let Err(e) = encode_announce(&key.codec, &attrs, &s.nlri, &mut bytes) {
                bytes.truncate(mark);
                failed("an announcement", s.nlri.len(), e);
            }
        }
        let messages = count_messages(&bytes);
        Encoded { bytes, messages }
    }
}

fn same_export(a: &Path, b: &Path) -> bool {
    Arc::ptr_eq(&a.attrs, &b.attrs)
        && a.source.kind == b.source.kind
        && a.source.router_id == b.source.router_id
}

impl UpdateGroup {
    /// A new group, advertising what the table holds for it.
    pub fn new(key: GroupKey, table: &Table, ctx: &ExportContext) -> UpdateGroup {
        let advertised = table
            .iter()
            .map(|(prefix, d)| select(prefix, &d.decided(), &key, ctx).len())
            .sum();
        UpdateGroup {
            key,
            members: Vec::new(),
            places: FxHashMap::default(),
            advertised,
            messages_encoded: 0,
            dumped: None,
        }
    }

    /// Number of (prefix, path) entries advertised.
    pub fn advertised_paths(&self) -> usize {
        self.advertised
    }
    /// The whole Adj-RIB-Out of `families` as UPDATEs, then End-of-RIB for
    /// each: what a joining member (or a ROUTE-REFRESH) receives.
    pub fn dump(&self, table: &Table, ctx: &ExportContext, families: &[Family]) -> Encoded {
        let mut p = Changes::default();
        for (prefix, d) in table.iter() {
            if !families.contains(&Family::unicast(prefix.afi())) {
                continue;
            }
            for (id, path) in select(prefix, &d.decided(), &self.key, ctx) {
                p.announce(*prefix, id, path);
            }
        }
        let mut enc = p.encode(&self.key, ctx);
        for f in families {
            encode_end_of_rib(*f, &mut enc.bytes);
            enc.messages += 1;
        }
        enc
    }

    /// Add a member and queue the dump to it: the one kept from an
    /// earlier join when the table has not changed since and it is less
    /// than [`DUMP_KEEP`] old at `now`.
    pub fn join(&mut self, m: Member, table: &Table, ctx: &ExportContext, now: Instant) {
        let fresh = self
            .dumped
            .as_ref()
            .filter(|d| d.generation == table.generation() && now < d.made + DUMP_KEEP);
        let (bytes, messages) = match fresh {
            Some(d) => (d.bytes.clone(), d.messages),
            None => {
                let enc = self.dump(table, ctx, &self.key.families.clone());
                let bytes = Bytes::from(enc.bytes);
                self.dumped = Some(Dumped {
                    generation: table.generation(),
                    bytes: bytes.clone(),
                    messages: enc.messages,
                    made: now,
                });
                (bytes, enc.messages)
            }
        };
        m.out.send(bytes, messages);
        match self.places.get(&m.peer) {
            Some(&i) => self.members[i] = m,
            None => {
                self.places.insert(m.peer, self.members.len());
                self.members.push(m);
            }
        }
    }

    /// When the kept dump is to be let go, if one is kept.
    pub fn dump_expires(&self) -> Option<Instant> {
        self.dumped.as_ref().map(|d| d.made + DUMP_KEEP)
    }

    /// Lets go of the kept dump if it is stale at `now` or the table has
    /// moved on from `generation`.
    pub fn expire_dump(&mut self, generation: u64, now: Instant) {
        if self
            .dumped
            .as_ref()
            .is_some_and(|d| d.generation != generation || now >= d.made + DUMP_KEEP)
        {
            self.dumped = None;
        }
    }

    /// Remove a member; true when the group is now empty.
    pub fn leave(&mut self, peer: PeerId) -> bool {
        if let Some(i) = self.places.remove(&peer) {
            self.members.swap_remove(i);
            if let Some(moved) = self.members.get(i) {
                self.places.insert(moved.peer, i);
            }
        }
        self.members.is_empty()
    }

    /// Re-export one changed prefix into `changes`: diff what the group
    /// gets now against what it got as the previous decision stood.
    pub fn refresh_prefix(
        &mut self,
        changes: &mut Changes,
        prefix: &Prefix,
        before: &Decided<'_>,
        after: Option<&Decided<'_>>,
        ctx: &ExportContext,
    ) {
        let delta = refresh(&self.key, changes, prefix, before, after, ctx);
        self.count(delta);
    }

    /// Add `delta` (from [`refresh`]) to the paths advertised.
    pub fn count(&mut self, delta: isize) {
        self.advertised = self.advertised.saturating_add_signed(delta);
    }

    /// Encode `changes` once and queue the bytes to every member. Returns
    /// the number of UPDATE messages.
    pub fn send(&mut self, changes: Changes, ctx: &ExportContext) -> u64 {
        self.deliver(changes.encode(&self.key, ctx))
    }

    /// Queue encoded UPDATEs to every member and count them.
    pub fn deliver(&mut self, enc: Encoded) -> u64 {
        let n = self.queue(enc);
        self.messages_encoded += n;
        n
    }

    /// Queue encoded UPDATEs to every member; returns the messages, for
    /// the caller to add to `messages_encoded`.
    pub fn queue(&self, enc: Encoded) -> u64 {
        if !enc.is_empty() {
            let bytes = Bytes::from(enc.bytes);
            for m in &self.members {
                m.out.send(bytes.clone(), enc.messages);
            }
        }
        enc.messages
    }
}

/// Re-export one changed prefix for the group of `key` into `changes`:
/// diff what the group gets now against what it got as the previous
/// decision stood. Returns how the count of advertised paths changes.
pub fn refresh(
    key: &GroupKey,
    changes: &mut Changes,
    prefix: &Prefix,
    before: &Decided<'_>,
    after: Option<&Decided<'_>>,
    ctx: &ExportContext,
) -> isize {
    let old = select(prefix, before, key, ctx);
    let new = after
        .map(|d| select(prefix, d, key, ctx))
        .unwrap_or_default();
    let mut delta = 0;
    for (id, _) in &old {
        if !new.iter().any(|(n, _)| n == id) {
            changes.withdraw(*prefix, *id);
            delta -= 1;
        }
    }
    for (id, p) in &new {
        match old.iter().find(|(o, _)| o == id) {
            Some((_, q)) if same_export(q, p) => {}
            Some(_) => changes.announce(*prefix, *id, p),
            None => {
                changes.announce(*prefix, *id, p);
                delta += 1;
            }
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_messages_walks_the_length_fields() {
        let mut b = Vec::new();
        encode_end_of_rib(Family::IPV4_UNICAST, &mut b);
        encode_end_of_rib(Family::IPV6_UNICAST, &mut b);
        assert_eq!(count_messages(&b), 2);
        assert_eq!(count_messages(&b[..10]), 0);
    }
}
