//! Import policy for host agents: the route server is the only authority
//! over the VNet, so a host (any address in `[hosts] ranges`, which makes it
//! an iBGP dynamic neighbour) can only say "these VM prefixes are behind
//! me", never move another host's VMs, the VNet itself, or what the
//! appliances send.
//!
//! The rules, in the order they are checked:
//! 1. the prefix lies inside a `vnet_prefixes` entry and is longer than it
//!    (the VNet prefix itself or one covering it is the route server's own
//!    route, RFC 4271 §9.1.2 leaves import policy to the speaker);
//! 2. with `[[hosts.allow]]` entries, the host's address must match one and
//!    the prefix lie inside one of its `prefixes`;
//! 3. a prefix inside another host's accepted, shorter prefix is refused,
//!    unless rule 2 granted it explicitly (a migrated VM's /32 announced by
//!    its new host is the legitimate case; the operator says so);
//! 4. the same prefix from two hosts is a conflict: the older announcement
//!    is used and the newer one is kept, refused, until the older goes.
//!
//! Attributes are normalised ([`HostPolicy::normalise`]): the next hop is
//! the session address (for the session's own address family), LOCAL_PREF
//! is [`DEFAULT_LOCAL_PREF`], and MED, AS_PATH and ORIGIN carry no
//! preference, so no host can out-prefer another or the route server.
//!
//! Rule 4 keeps the older announcement because it is the one traffic
//! already follows: preferring the newer would let any host (or anything
//! holding a host's address) take a running VM's traffic by announcing it,
//! and a flapping duplicate would move the traffic with every flap. A
//! legitimate move withdraws from the old host first, as VM migration does.

use crate::bgp::attribute::{AsPath, Origin, PathAttributes};
use crate::bgp::peer::PeerId;
use crate::prefix::Prefix;
use crate::rib::decision::DEFAULT_LOCAL_PREF;
use crate::rib::table::Rejection;
use rustc_hash::FxHashMap;
use std::net::IpAddr;

/// One `[[hosts.allow]]` entry: hosts in `range` may announce prefixes
/// inside `prefixes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// Host addresses the entry applies to.
    pub range: Prefix,
    /// What they may announce.
    pub prefixes: Vec<Prefix>,
}

/// The static part of the host policy (rules 1–2 and the grants of rule 3).
#[derive(Clone, Debug, Default)]
pub struct HostPolicy {
    vnet: Vec<Prefix>,
    allow: Vec<AllowRule>,
}

impl HostPolicy {
    /// The policy for these VNet prefixes and allow entries.
    pub fn new(vnet: Vec<Prefix>, allow: Vec<AllowRule>) -> HostPolicy {
        HostPolicy { vnet, allow }
    }

    /// Rules 1 and 2 for `prefix` from the host at `host`.
    pub fn admit(&self, host: IpAddr, prefix: &Prefix) -> Result<(), Rejection> {
        if let Some(v) = self.vnet.iter().find(|v| prefix.covers(v)) {
            return Err(Rejection::VnetAuthority(*v));
        }
        if !self.vnet.iter().any(|v| v.covers(prefix)) {
            return Err(Rejection::OutsideVnet);
        }
        if !self.allow.is_empty() && !self.granted(host, prefix) {
            return Err(Rejection::NotAllowed);
        }
        Ok(())
    }

    /// True when an allow entry for `host` lists a prefix covering `prefix`.
    pub fn granted(&self, host: IpAddr, prefix: &Prefix) -> bool {
        self.allow
            .iter()
            .filter(|r| r.range.contains_addr(host))
            .any(|r| r.prefixes.iter().any(|p| p.covers(prefix)))
    }

    /// The attributes a host's announcement is used with, or `None` when
    /// they are already so.
    pub fn normalise(
        &self,
        attrs: &PathAttributes,
        host: IpAddr,
        v6: bool,
    ) -> Option<PathAttributes> {
        let force_next_hop = host.is_ipv6() == v6 && attrs.next_hop != Some(host);
        let empty_path = attrs.as_path.as_ref().is_none_or(|p| p.segments.is_empty());
        if !force_next_hop
            && attrs.local_pref == Some(DEFAULT_LOCAL_PREF)
            && attrs.med.is_none()
            && empty_path
            && attrs.origin == Some(Origin::Igp)
        {
            return None;
        }
        let mut a = attrs.clone();
        if force_next_hop {
            a.next_hop = Some(host);
            a.link_local_next_hop = None;
        }
        a.local_pref = Some(DEFAULT_LOCAL_PREF);
        a.med = None;
        a.as_path = Some(AsPath::default());
        a.origin = Some(Origin::Igp);
        Some(a)
    }
}

/// One host path that claims a prefix.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The host.
    pub peer: PeerId,
    /// Its ADD-PATH id.
    pub path_id: u32,
}

/// Which host announced which prefix first (rules 3–4), and which
/// announcements wait for a covering prefix to go.
#[derive(Debug, Default)]
pub struct Claims {
    /// Claims per prefix in arrival order; the first one's peer holds it.
    by_prefix: FxHashMap<Prefix, Vec<Claim>>,
    /// Per covering prefix, the host paths refused by rule 3 because of it.
    blocked: FxHashMap<Prefix, Vec<(Prefix, Claim)>>,
    /// Per host, the prefixes it claims or waits for (to forget a host).
    by_peer: FxHashMap<PeerId, Vec<(Prefix, u32)>>,
}

/// What changed when a claim went away.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// The prefix has a new holder whose paths are now usable.
    pub promoted: Vec<(Prefix, Claim)>,
    /// Paths refused by rule 3 because of the released prefix: decide again.
    pub unblocked: Vec<(Prefix, Claim)>,
}

impl Claims {
    /// The host holding `prefix`.
    pub fn holder(&self, prefix: &Prefix) -> Option<PeerId> {
        self.by_prefix
            .get(prefix)
            .and_then(|v| v.first())
            .map(|c| c.peer)
    }

    /// The longest shorter prefix covering `prefix` held by a host other
    /// than `peer` (rule 3).
    pub fn covering_holder(&self, prefix: &Prefix, peer: PeerId) -> Option<(Prefix, PeerId)> {
        (0..prefix.len()).rev().find_map(|len| {
            let sup = Prefix::new(prefix.addr(), len);
            self.holder(&sup).filter(|h| *h != peer).map(|h| (sup, h))
        })
    }

    /// Rules 3–4 for a path that passed [`HostPolicy::admit`]: records it
    /// and says whether it is usable. `granted` lifts rule 3.
    pub fn claim(
        &mut self,
        prefix: Prefix,
        claim: Claim,
        granted: bool,
        names: impl Fn(PeerId) -> String,
    ) -> Result<(), Rejection> {
        if let Some(v) = self.by_prefix.get(&prefix)
            && v.contains(&claim)
        {
            return match v[0].peer {
                h if h == claim.peer => Ok(()),
                h => Err(Rejection::HeldByHost { holder: names(h) }),
            };
        }
        self.forget(&prefix, claim);
        if !granted && let Some((sup, holder)) = self.covering_holder(&prefix, claim.peer) {
            self.blocked.entry(sup).or_default().push((prefix, claim));
            self.by_peer
                .entry(claim.peer)
                .or_default()
                .push((prefix, claim.path_id));
            return Err(Rejection::InsideHostPrefix {
                prefix: sup,
                holder: names(holder),
            });
        }
        let v = self.by_prefix.entry(prefix).or_default();
        v.push(claim);
        self.by_peer
            .entry(claim.peer)
            .or_default()
            .push((prefix, claim.path_id));
        match v[0].peer {
            h if h == claim.peer => Ok(()),
            h => Err(Rejection::HeldByHost { holder: names(h) }),
        }
    }

    /// Forgets one path's claim (withdrawn, or its session gone).
    pub fn release(&mut self, prefix: &Prefix, claim: Claim) -> Released {
        let before = self.holder(prefix);
        self.forget(prefix, claim);
        let after = self.holder(prefix);
        let mut out = Released::default();
        if before == after {
            return out;
        }
        if let Some(h) = after {
            out.promoted = self.by_prefix[prefix]
                .iter()
                .filter(|c| c.peer == h)
                .map(|c| (*prefix, *c))
                .collect();
        }
        out.unblocked = self.blocked.remove(prefix).unwrap_or_default();
        for (p, c) in &out.unblocked {
            self.unindex(c.peer, p, c.path_id);
        }
        out
    }

    /// Every prefix and path id `peer` claims or waits for.
    pub fn of_peer(&self, peer: PeerId) -> Vec<(Prefix, u32)> {
        self.by_peer.get(&peer).cloned().unwrap_or_default()
    }

    fn forget(&mut self, prefix: &Prefix, claim: Claim) {
        if let Some(v) = self.by_prefix.get_mut(prefix) {
            v.retain(|c| *c != claim);
            if v.is_empty() {
                self.by_prefix.remove(prefix);
            }
        }
        for len in 0..prefix.len() {
            let sup = Prefix::new(prefix.addr(), len);
            if let Some(v) = self.blocked.get_mut(&sup) {
                v.retain(|(p, c)| !(p == prefix && *c == claim));
                if v.is_empty() {
                    self.blocked.remove(&sup);
                }
            }
        }
        self.unindex(claim.peer, prefix, claim.path_id);
    }

    fn unindex(&mut self, peer: PeerId, prefix: &Prefix, path_id: u32) {
        if let Some(v) = self.by_peer.get_mut(&peer) {
            v.retain(|(p, id)| !(p == prefix && *id == path_id));
            if v.is_empty() {
                self.by_peer.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests;
