//! The receiver's table: (prefix, path id) -> next hop, stored per prefix
//! (a short vector of paths each) so 800,000 paths cost 100,000 hash
//! entries, not 800,000: the receiver must stay cheaper than any route
//! server it measures.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use rustc_hash::FxHashMap;

/// One path's key: prefix address, prefix length, path id.
pub type PathKey = (u32, u8, u32);

/// Paths by prefix.
#[derive(Default)]
pub struct PathTable {
    by_prefix: FxHashMap<u64, Vec<(u32, u32)>>,
    len: usize,
}

fn prefix_key(addr: u32, len: u8) -> u64 {
    u64::from(addr) << 8 | u64::from(len)
}

impl PathTable {
    /// Adds or replaces a path.
    pub fn insert(&mut self, (addr, len, id): PathKey, next_hop: u32) {
        let paths = self.by_prefix.entry(prefix_key(addr, len)).or_default();
        match paths.iter_mut().find(|(i, _)| *i == id) {
            Some(p) => p.1 = next_hop,
            None => {
                paths.push((id, next_hop));
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
            paths.swap_remove(i);
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

    /// Prefixes with at least one path.
    pub fn prefixes(&self) -> usize {
        self.by_prefix.len()
    }

    /// Paths per next hop.
    pub fn next_hops(&self) -> BTreeMap<Ipv4Addr, usize> {
        let mut out = BTreeMap::new();
        for &(_, nh) in self.by_prefix.values().flatten() {
            *out.entry(Ipv4Addr::from(nh)).or_insert(0) += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_paths_and_prefixes() {
        let mut t = PathTable::default();
        t.insert((1, 24, 1), 7);
        t.insert((1, 24, 2), 8);
        t.insert((1, 24, 1), 9);
        t.insert((1, 25, 1), 9);
        assert_eq!((t.len(), t.prefixes()), (3, 2));
        t.remove((1, 24, 1));
        t.remove((1, 24, 5));
        assert_eq!((t.len(), t.prefixes()), (2, 2));
        assert_eq!(t.next_hops().values().sum::<usize>(), 2);
    }
}
