//! Update groups: receivers that would get byte-identical UPDATEs share one
//! Adj-RIB-Out (RFC 4271 §3.2) and one encoding. A change is diffed and
//! encoded once per group, and the same bytes are queued to every member —
//! with thousands of host agents this is the difference between one encode
//! and thousands. A member joining an existing group gets the group's
//! Adj-RIB-Out replayed, then End-of-RIB (RFC 4724 §2).

use super::export::{ExportCache, ExportContext, GroupKey, export};
use super::table::{Dest, Table};
use crate::bgp::attribute::PathAttributes;
use crate::bgp::error::EncodeError;
use crate::bgp::message::{encode_announce, encode_end_of_rib, encode_withdraw};
use crate::bgp::nlri::{Family, Nlri};
use crate::bgp::peer::{Outbound, PeerId};
use crate::prefix::{Afi, Prefix};
use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use tracing::warn;

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

type Out = Vec<(u32, Arc<PathAttributes>)>;

/// One update group.
#[derive(Debug)]
pub struct UpdateGroup {
    /// What its members share.
    pub key: GroupKey,
    /// Its members.
    pub members: Vec<Member>,
    adj_out: FxHashMap<Prefix, Out>,
    cache: ExportCache,
    /// UPDATE messages encoded for this group (not multiplied by members).
    pub messages_encoded: u64,
}

/// Announcements and withdrawals collected for one group, grouped by
/// attribute set so each set is encoded once.
#[derive(Default, Debug)]
pub struct Changes {
    /// Attribute sets in first-seen order with their NLRI.
    sets: Vec<(Arc<PathAttributes>, Vec<Nlri>)>,
    index: FxHashMap<(usize, Afi), usize>,
    last: Option<((usize, Afi), usize)>,
    withdraw: [Vec<Nlri>; 2],
}

fn afi_index(a: Afi) -> usize {
    match a {
        Afi::Ipv4 => 0,
        Afi::Ipv6 => 1,
    }
}

impl Changes {
    fn announce(&mut self, prefix: Prefix, path_id: u32, attrs: &Arc<PathAttributes>) {
        let k = (Arc::as_ptr(attrs) as usize, prefix.afi());
        let nlri = Nlri { prefix, path_id };
        let i = match self.last {
            Some((lk, i)) if lk == k => i,
            _ => {
                let n = self.sets.len();
                let i = *self.index.entry(k).or_insert(n);
                if i == n {
                    self.sets.push((attrs.clone(), Vec::new()));
                }
                self.last = Some((k, i));
                i
            }
        };
        self.sets[i].1.push(nlri);
    }

    fn withdraw(&mut self, prefix: Prefix, path_id: u32) {
        self.withdraw[afi_index(prefix.afi())].push(Nlri { prefix, path_id });
    }

    /// Encode everything; an attribute set that cannot be encoded is
    /// reported with how many prefixes it held, and the rest still goes.
    fn encode(self, key: &GroupKey) -> Encoded {
        let mut bytes = Vec::new();
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
        for (attrs, nlri) in &self.sets {
            let mark = bytes.len();
            if let Err(e) = encode_announce(&key.codec, attrs, nlri, &mut bytes) {
                bytes.truncate(mark);
                failed("an announcement", nlri.len(), e);
            }
        }
        let messages = count_messages(&bytes);
        Encoded { bytes, messages }
    }
}

impl UpdateGroup {
    /// A new group whose Adj-RIB-Out is computed from the whole table.
    pub fn new(key: GroupKey, table: &Table, ctx: &ExportContext) -> UpdateGroup {
        let mut g = UpdateGroup {
            key,
            members: Vec::new(),
            adj_out: FxHashMap::default(),
            cache: ExportCache::default(),
            messages_encoded: 0,
        };
        for (prefix, dest) in table.iter() {
            let out = export(prefix, Some(dest), &g.key, ctx, &mut g.cache);
            if !out.is_empty() {
                g.adj_out.insert(*prefix, out);
            }
        }
        g
    }

    /// Number of (prefix, path) entries advertised.
    pub fn advertised_paths(&self) -> usize {
        self.adj_out.values().map(Vec::len).sum()
    }

    /// What the group advertises for `prefix`.
    pub fn advertised(&self, prefix: &Prefix) -> Option<&[(u32, Arc<PathAttributes>)]> {
        self.adj_out.get(prefix).map(Vec::as_slice)
    }

    /// Everything advertised.
    pub fn iter_advertised(&self) -> impl Iterator<Item = (&Prefix, &Out)> {
        self.adj_out.iter()
    }
    /// The whole Adj-RIB-Out of `families` as UPDATEs, then End-of-RIB for
    /// each: what a joining member (or a ROUTE-REFRESH) receives.
    pub fn dump(&self, families: &[Family]) -> Encoded {
        let mut p = Changes::default();
        for (prefix, out) in &self.adj_out {
            if !families.contains(&Family::unicast(prefix.afi())) {
                continue;
            }
            for (id, a) in out {
                p.announce(*prefix, *id, a);
            }
        }
        let mut enc = p.encode(&self.key);
        for f in families {
            encode_end_of_rib(*f, &mut enc.bytes);
            enc.messages += 1;
        }
        enc
    }

    /// Add a member and queue the dump to it.
    pub fn join(&mut self, m: Member) {
        let enc = self.dump(&self.key.families.clone());
        m.out.send(Bytes::from(enc.bytes), enc.messages);
        self.members.retain(|x| x.peer != m.peer);
        self.members.push(m);
    }

    /// Remove a member; true when the group is now empty.
    pub fn leave(&mut self, peer: PeerId) -> bool {
        self.members.retain(|m| m.peer != peer);
        self.members.is_empty()
    }

    /// Re-export one changed prefix into `changes`: diff what the group
    /// now wants to advertise against its Adj-RIB-Out.
    pub fn refresh_prefix(
        &mut self,
        changes: &mut Changes,
        prefix: &Prefix,
        dest: Option<&Dest>,
        ctx: &ExportContext,
    ) {
        let new = export(prefix, dest, &self.key, ctx, &mut self.cache);
        let same = |a: &(u32, Arc<PathAttributes>), b: &(u32, Arc<PathAttributes>)| {
            a.0 == b.0 && (Arc::ptr_eq(&a.1, &b.1) || a.1 == b.1)
        };
        match self.adj_out.entry(*prefix) {
            Entry::Occupied(mut e) => {
                let old = e.get();
                for o in old {
                    if !new.iter().any(|n| n.0 == o.0) {
                        changes.withdraw(*prefix, o.0);
                    }
                }
                for n in &new {
                    if !old.iter().any(|o| same(o, n)) {
                        changes.announce(*prefix, n.0, &n.1);
                    }
                }
                if new.is_empty() {
                    e.remove();
                } else {
                    *e.get_mut() = new;
                }
            }
            Entry::Vacant(e) => {
                if new.is_empty() {
                    return;
                }
                for n in &new {
                    changes.announce(*prefix, n.0, &n.1);
                }
                e.insert(new);
            }
        }
    }

    /// Encode `changes` once and queue the bytes to every member. Returns
    /// the number of UPDATE messages.
    pub fn send(&mut self, changes: Changes) -> u64 {
        let enc = changes.encode(&self.key);
        if !enc.is_empty() {
            self.messages_encoded += enc.messages;
            let bytes = Bytes::from(enc.bytes);
            for m in &self.members {
                m.out.send(bytes.clone(), enc.messages);
            }
        }
        enc.messages
    }
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
