//! The receiver's table: (prefix, path id) -> next hop and MED, stored per
//! prefix (a short vector of paths each) so 800,000 paths cost 100,000
//! hash entries, not 800,000: the receiver must stay cheaper than any route
//! server it measures. It counts the paths whose MED carries the churn
//! mark as it goes, so the end of a churn run is seen at once.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use rustc_hash::FxHashMap;

use super::input::churned;

/// One path's key: prefix address, prefix length, path id.
pub type PathKey = (u32, u8, u32);

/// What the receiver keeps of a path: next hop and MED (0 for none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathValue {
    /// NEXT_HOP.
    pub next_hop: u32,
    /// MULTI_EXIT_DISC.
    pub med: u32,
}

/// Paths by prefix.
#[derive(Default)]
pub struct PathTable {
    by_prefix: FxHashMap<u64, Vec<(u32, PathValue)>>,
    len: usize,
    churned: usize,
}

fn prefix_key(addr: u32, len: u8) -> u64 {
    u64::from(addr) << 8 | u64::from(len)
}

impl PathTable {
    /// Adds or replaces a path.
    pub fn insert(&mut self, (addr, len, id): PathKey, v: PathValue) {
        let paths = self.by_prefix.entry(prefix_key(addr, len)).or_default();
        self.churned += usize::from(churned(v.med));
        match paths.iter_mut().find(|(i, _)| *i == id) {
            Some(p) => {
                self.churned -= usize::from(churned(p.1.med));
                p.1 = v;
            }
            None => {
                paths.push((id, v));
                self.len += 1;
            }
        }
    }

    /// Removes a path, if held.
    pub fn remove(&mut self, (addr, len, id): PathKey) {
        let key = prefix_key(addr, len);
        let Some(paths) = self.by_prefix.get_mut(&key) else {
            return;
        };
        if let Some(i) = paths.iter().position(|(x, _)| *x == id) {
            let (_, v) = paths.swap_remove(i);
            self.churned -= usize::from(churned(v.med));
            self.len -= 1;
            if paths.is_empty() {
                self.by_prefix.remove(&key);
            }
        }
    }

    /// Paths held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Paths held whose MED carries the churn mark.
    pub fn churned(&self) -> usize {
        self.churned
    }

    /// Prefixes with at least one path.
    pub fn prefixes(&self) -> usize {
        self.by_prefix.len()
    }

    /// Sum of the paths' MEDs.
    pub fn med_sum(&self) -> u64 {
        self.by_prefix
            .values()
            .flatten()
            .map(|(_, v)| u64::from(v.med))
            .sum()
    }

    /// Paths per next hop.
    pub fn next_hops(&self) -> BTreeMap<Ipv4Addr, usize> {
        let mut out = BTreeMap::new();
        for (_, v) in self.by_prefix.values().flatten() {
            *out.entry(Ipv4Addr::from(v.next_hop)).or_insert(0) += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(next_hop: u32, med: u32) -> PathValue {
        PathValue { next_hop, med }
    }

    #[test]
    fn counts_paths_prefixes_and_churned_paths() {
        let mut t = PathTable::default();
        t.insert((1, 24, 1), v(7, 0));
        t.insert((1, 24, 2), v(8, 0x8000_0001));
        t.insert((1, 24, 1), v(9, 0x8000_0002));
        t.insert((1, 25, 1), v(9, 5));
        assert_eq!((t.len(), t.prefixes(), t.churned()), (3, 2, 2));
        t.remove((1, 24, 1));
        t.remove((1, 24, 5));
        assert_eq!((t.len(), t.prefixes(), t.churned()), (2, 2, 1));
        assert_eq!(t.next_hops().values().sum::<usize>(), 2);
        assert_eq!(t.med_sum(), 0x8000_0001 + 5);
    }
}
