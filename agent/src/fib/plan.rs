//! The FIB plan: what the host should do with each prefix ([`Want`]), how
//! that maps onto the kernel table and the eBPF maps, and the diff from what
//! is installed to what is wanted. Pure; the FIB task applies the result.
//!
//! - A learned route: a kernel unicast/ECMP route and an eBPF forward entry.
//! - The VNet space: an `unreachable` route in the table (VM traffic to an
//!   unused VNet address must not follow a learned default route; the
//!   main-table rule before it already serves every real VNet destination)
//!   and an eBPF pass entry, so the kernel decides.
//! - A connected network of the host: an eBPF pass entry only (the
//!   `lookup main suppress_prefixlength 0` rule serves it in the kernel).

use super::kernel::RouteTarget;
use super::xdp::XdpTarget;
use crate::prefix::Prefix;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

/// What the host does with a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    /// Forward over these next hops (sorted, deduplicated, ECMP).
    Forward(Vec<IpAddr>),
    /// VNet space: the kernel's own routes decide.
    Vnet,
    /// A network connected to this host.
    Connected,
}

impl Want {
    /// The kernel route for this intent, if it needs one in our table.
    pub fn kernel(&self) -> Option<RouteTarget> {
        match self {
            Want::Forward(h) => Some(RouteTarget::Unicast(h.clone())),
            Want::Vnet => Some(RouteTarget::Unreachable),
            Want::Connected => None,
        }
    }

    /// The eBPF map entry for this intent (both hooks read it).
    pub fn xdp(&self) -> XdpTarget {
        match self {
            Want::Forward(h) => XdpTarget::Forward(h.clone()),
            Want::Vnet | Want::Connected => XdpTarget::Pass,
        }
    }
}

/// Changes that take `installed` to `wanted` for the given prefixes:
/// `Some(v)` to install or replace, `None` to remove. Unchanged entries are
/// skipped.
pub fn diff<V: Clone + PartialEq>(
    installed: &HashMap<Prefix, V>,
    wanted: impl IntoIterator<Item = (Prefix, Option<V>)>,
) -> Vec<(Prefix, Option<V>)> {
    let mut out = Vec::new();
    for (p, w) in wanted {
        let cur = installed.get(&p);
        if cur == w.as_ref() {
            continue;
        }
        if w.is_none() && cur.is_none() {
            continue;
        }
        out.push((p, w));
    }
    out
}

/// Removals of everything installed that is not wanted at all (the sweep
/// after a restart, once every route server has re-sent its routes).
pub fn sweep<V, K: Eq + Hash>(
    installed: &HashMap<Prefix, V>,
    wanted: impl Fn(&Prefix) -> bool,
) -> Vec<(Prefix, Option<K>)> {
    let mut out: Vec<(Prefix, Option<K>)> = installed
        .keys()
        .filter(|p| !wanted(p))
        .map(|p| (*p, None))
        .collect();
    out.sort_by_key(|(p, _)| *p);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn wants_map_to_kernel_and_xdp_entries() {
        let f = Want::Forward(vec!["10.1.0.20".parse().unwrap()]);
        assert_eq!(
            f.kernel(),
            Some(RouteTarget::Unicast(vec!["10.1.0.20".parse().unwrap()]))
        );
        assert_eq!(
            f.xdp(),
            XdpTarget::Forward(vec!["10.1.0.20".parse().unwrap()])
        );
        assert_eq!(Want::Vnet.kernel(), Some(RouteTarget::Unreachable));
        assert_eq!(Want::Vnet.xdp(), XdpTarget::Pass);
        assert_eq!(Want::Connected.kernel(), None);
        assert_eq!(Want::Connected.xdp(), XdpTarget::Pass);
    }

    #[test]
    fn diff_skips_unchanged_and_absent_removals() {
        let mut installed = HashMap::new();
        installed.insert(p("10.0.0.0/8"), 1);
        installed.insert(p("10.1.0.0/16"), 2);
        let d = diff(
            &installed,
            vec![
                (p("10.0.0.0/8"), Some(1)),
                (p("10.1.0.0/16"), Some(3)),
                (p("10.2.0.0/16"), None),
                (p("10.3.0.0/16"), Some(4)),
            ],
        );
        assert_eq!(
            d,
            vec![(p("10.1.0.0/16"), Some(3)), (p("10.3.0.0/16"), Some(4))]
        );
    }

    #[test]
    fn sweep_removes_only_what_is_not_wanted() {
        let mut installed = HashMap::new();
        installed.insert(p("10.0.0.0/8"), 1);
        installed.insert(p("10.1.0.0/16"), 2);
        let s: Vec<(Prefix, Option<u8>)> = sweep(&installed, |x| *x == p("10.0.0.0/8"));
        assert_eq!(s, vec![(p("10.1.0.0/16"), None)]);
    }
}
