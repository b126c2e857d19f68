//! The user-space side of the next-hop-set map: content-addressed sets
//! shared by every prefix with the same next hops, refcounted, with ids
//! recycled as late as possible (never-used ids first, then freed ids in
//! the order they were freed) so a packet still holding an old id in flight
//! is unlikely to meet a different set under it. Pure bookkeeping: the
//! caller writes the map in the order this table dictates.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use steer_common::{FAMILY_V4, FAMILY_V6, MAX_NEXT_HOPS, NextHop, NextHopSet};

/// The table is full: every id in `1..=max` is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {0} next-hop sets are in use")]
pub struct SetsFull(pub u32);

/// What [`NextHopTable::acquire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// The set's id.
    pub id: u32,
    /// True when the set is new: write it to the map before any prefix
    /// points at it.
    pub created: bool,
}

#[derive(Debug)]
struct Entry {
    hops: Vec<IpAddr>,
    refs: u32,
}

/// Sets by id and by content, with reference counts.
#[derive(Debug)]
pub struct NextHopTable {
    by_hops: HashMap<Vec<IpAddr>, u32>,
    by_id: HashMap<u32, Entry>,
    next_fresh: u32,
    free: VecDeque<u32>,
    max: u32,
}

impl NextHopTable {
    /// An empty table handing out ids `1..=max`.
    pub fn new(max: u32) -> NextHopTable {
        NextHopTable {
            by_hops: HashMap::new(),
            by_id: HashMap::new(),
            next_fresh: 1,
            free: VecDeque::new(),
            max,
        }
    }

    /// Rebuilds the table from sets found in the map and the ids the routes
    /// reference. Returns the ids of sets no route references (and ids out
    /// of range): delete them from the map.
    pub fn adopt(
        max: u32,
        sets: impl IntoIterator<Item = (u32, Vec<IpAddr>)>,
        refs: impl IntoIterator<Item = u32>,
    ) -> (NextHopTable, Vec<u32>) {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for id in refs {
            *counts.entry(id).or_default() += 1;
        }
        let mut table = NextHopTable::new(max);
        let mut unused = Vec::new();
        let mut sets: Vec<(u32, Vec<IpAddr>)> = sets.into_iter().collect();
        sets.sort();
        for (id, hops) in sets {
            let refs = counts.get(&id).copied().unwrap_or(0);
            if refs == 0 || id == 0 || id > max {
                unused.push(id);
                continue;
            }
            table.by_hops.entry(hops.clone()).or_insert(id);
            table.by_id.insert(id, Entry { hops, refs });
        }
        table.next_fresh = table.by_id.keys().max().map_or(1, |m| m + 1);
        table.free = (1..table.next_fresh)
            .filter(|id| !table.by_id.contains_key(id))
            .collect();
        (table, unused)
    }

    /// Takes a reference on the set with exactly `hops` (sorted, deduped),
    /// creating it if needed.
    pub fn acquire(&mut self, hops: &[IpAddr]) -> Result<Acquired, SetsFull> {
        if let Some(&id) = self.by_hops.get(hops) {
            if let Some(e) = self.by_id.get_mut(&id) {
                e.refs += 1;
            }
            return Ok(Acquired { id, created: false });
        }
        let id = if self.next_fresh <= self.max {
            self.next_fresh += 1;
            self.next_fresh - 1
        } else {
            self.free.pop_front().ok_or(SetsFull(self.max))?
        };
        self.by_hops.insert(hops.to_vec(), id);
        self.by_id.insert(
            id,
            Entry {
                hops: hops.to_vec(),
                refs: 1,
            },
        );
        Ok(Acquired { id, created: true })
    }

    /// Drops a reference. True when it was the last: delete the set from the
    /// map (after every prefix that used it has been rewritten).
    pub fn release(&mut self, id: u32) -> bool {
        let Some(e) = self.by_id.get_mut(&id) else {
            return false;
        };
        e.refs -= 1;
        if e.refs > 0 {
            return false;
        }
        if let Some(e) = self.by_id.remove(&id)
            && self.by_hops.get(&e.hops) == Some(&id)
        {
            self.by_hops.remove(&e.hops);
        }
        self.free.push_back(id);
        true
    }

    /// The next hops of set `id`.
    pub fn hops(&self, id: u32) -> Option<&[IpAddr]> {
        self.by_id.get(&id).map(|e| e.hops.as_slice())
    }

    /// References held on set `id` (0 if unknown).
    #[cfg(test)]
    pub fn refs(&self, id: u32) -> u32 {
        self.by_id.get(&id).map_or(0, |e| e.refs)
    }

    /// Number of live sets.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// The map value for `hops` (1..=16 addresses).
pub fn encode(hops: &[IpAddr]) -> NextHopSet {
    let mut set = NextHopSet {
        count: hops.len().min(MAX_NEXT_HOPS) as u32,
        hops: [NextHop {
            family: 0,
            addr: [0; 4],
        }; MAX_NEXT_HOPS],
    };
    for (slot, hop) in set.hops.iter_mut().zip(hops) {
        *slot = match hop {
            IpAddr::V4(a) => NextHop {
                family: FAMILY_V4,
                addr: [u32::from_ne_bytes(a.octets()), 0, 0, 0],
            },
            IpAddr::V6(a) => {
                let o = a.octets();
                let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                NextHop {
                    family: FAMILY_V6,
                    addr: [w(0), w(4), w(8), w(12)],
                }
            }
        };
    }
    set
}

/// The next hops of a map value; `None` if it is malformed.
pub fn decode(set: &NextHopSet) -> Option<Vec<IpAddr>> {
    let count = set.count as usize;
    if count == 0 || count > MAX_NEXT_HOPS {
        return None;
    }
    set.hops[..count].iter().map(decode_hop).collect()
}

/// The address of one next hop, if its family is one of ours.
pub fn decode_hop(h: &NextHop) -> Option<IpAddr> {
    match h.family {
        FAMILY_V4 => Some(IpAddr::from(h.addr[0].to_ne_bytes())),
        FAMILY_V6 => {
            let mut o = [0u8; 16];
            for (chunk, w) in o.chunks_exact_mut(4).zip(h.addr) {
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn prefixes_with_the_same_hops_share_one_set() {
        let mut t = NextHopTable::new(8);
        let a = t.acquire(&ips(&["192.0.2.1", "192.0.2.2"])).unwrap();
        let b = t.acquire(&ips(&["192.0.2.1", "192.0.2.2"])).unwrap();
        assert_eq!(
            a,
            Acquired {
                id: 1,
                created: true
            }
        );
        assert_eq!(
            b,
            Acquired {
                id: 1,
                created: false
            }
        );
        assert_eq!(t.refs(1), 2);
        assert!(!t.release(1));
        assert!(t.release(1));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn freed_ids_are_reused_only_after_fresh_ids_run_out_and_in_fifo_order() {
        let mut t = NextHopTable::new(3);
        let one = ips(&["192.0.2.1"]);
        let two = ips(&["192.0.2.2"]);
        let three = ips(&["192.0.2.3"]);
        assert_eq!(t.acquire(&one).unwrap().id, 1);
        assert_eq!(t.acquire(&two).unwrap().id, 2);
        assert!(t.release(2));
        assert!(t.release(1));
        assert_eq!(t.acquire(&three).unwrap().id, 3);
        assert_eq!(t.acquire(&one).unwrap().id, 2);
        assert_eq!(t.acquire(&two).unwrap().id, 1);
        assert_eq!(t.acquire(&ips(&["192.0.2.4"])), Err(SetsFull(3)));
    }

    #[test]
    fn adopt_counts_references_and_returns_unreferenced_sets() {
        let sets = vec![
            (1, ips(&["192.0.2.1"])),
            (4, ips(&["2001:db8::1", "2001:db8::2"])),
            (6, ips(&["192.0.2.9"])),
        ];
        let (mut t, unused) = NextHopTable::adopt(8, sets, [1, 4, 4]);
        assert_eq!(unused, vec![6]);
        assert_eq!(t.refs(1), 1);
        assert_eq!(t.refs(4), 2);
        assert_eq!(
            t.hops(4),
            Some(ips(&["2001:db8::1", "2001:db8::2"]).as_slice())
        );
        assert_eq!(
            t.acquire(&ips(&["192.0.2.1"])).unwrap(),
            Acquired {
                id: 1,
                created: false
            }
        );
        assert_eq!(t.acquire(&ips(&["192.0.2.7"])).unwrap().id, 5);
        assert_eq!(t.acquire(&ips(&["192.0.2.8"])).unwrap().id, 6);
    }

    #[test]
    fn encode_and_decode_round_trip_both_families() {
        let hops = ips(&["192.0.2.1", "2001:db8::fe", "10.0.0.1"]);
        let set = encode(&hops);
        assert_eq!(set.count, 3);
        assert_eq!(set.hops[0].family, FAMILY_V4);
        assert_eq!(set.hops[0].addr[0].to_ne_bytes(), [192, 0, 2, 1]);
        assert_eq!(set.hops[1].family, FAMILY_V6);
        assert_eq!(set.hops[3].family, 0);
        assert_eq!(decode(&set), Some(hops));
        let mut bad = set;
        bad.count = 0;
        assert_eq!(decode(&bad), None);
    }
}
