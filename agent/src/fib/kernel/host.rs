//! The host around Steer's table: the policy rules that send VM traffic
//! into it, the host's connected prefixes (XDP pass entries), managed
//! neighbour entries for appliance next hops, and the interfaces the host
//! reaches route servers and appliances through (the return path's
//! uplinks).

use std::collections::HashSet;
use std::net::IpAddr;

use super::abi::*;
use super::batch::{self, Batch};
use super::neigh::{self, NeighInfo};
use super::route::{self, RouteInfo};
use super::rule::{self, RuleSpec};
use super::wire::family_of;
use super::{KernelError, KernelFib, Refusal, refusal};
use crate::prefix::{Afi, Prefix};

fn describe_rule(verb: &str, r: &RuleSpec) -> String {
    let fam = if r.family == AF_INET { "ipv4" } else { "ipv6" };
    let action = match (r.action, r.suppress_prefixlen) {
        (FR_ACT_UNREACHABLE, _) => "unreachable".to_string(),
        (_, Some(len)) => format!("lookup {} suppress_prefixlength {len}", r.table),
        _ => format!("lookup {}", r.table),
    };
    format!("{verb} {fam} rule {}: iif {} {action}", r.priority, r.iif)
}

fn is_connected(r: &RouteInfo) -> bool {
    let direct =
        r.kind == RTN_UNICAST && r.gateways.is_empty() && r.nh_id.is_none() && r.oif.is_some();
    direct
        && match r.prefix.afi() {
            Afi::Ipv4 => r.scope == RT_SCOPE_LINK,
            Afi::Ipv6 => {
                let link_local: Prefix =
                    Prefix::new(IpAddr::from([0xfe80u16, 0, 0, 0, 0, 0, 0, 0]), 10);
                let multicast: Prefix =
                    Prefix::new(IpAddr::from([0xff00u16, 0, 0, 0, 0, 0, 0, 0]), 8);
                r.protocol == RTPROT_KERNEL
                    && !link_local.covers(&r.prefix)
                    && !multicast.covers(&r.prefix)
            }
        }
}

impl KernelFib {
    /// Installs, for each VM interface and both families, the rules at
    /// `priority` P: `iif VM lookup main suppress_prefixlength 0` (main
    /// routes more specific than a default beat learned ones), P+1 `iif VM
    /// lookup TABLE`, P+2 `iif VM unreachable`. Idempotent; our rules that
    /// are not in that set (interfaces no longer listed, another priority)
    /// are removed. Host-originated traffic matches none of them.
    pub fn ensure_rules(
        &mut self,
        interfaces: &[String],
        priority: u32,
    ) -> Result<(), KernelError> {
        if priority == 0 || priority > u32::MAX - 2 {
            return Err(KernelError::InvalidPriority(priority));
        }
        let desired = rule::desired(interfaces, self.table, priority);
        let existing = self.our_rules()?;
        let have: HashSet<&RuleSpec> = existing.iter().collect();
        let want: HashSet<&RuleSpec> = desired.iter().collect();
        let mut work: Vec<(bool, &RuleSpec)> = desired
            .iter()
            .filter(|r| !have.contains(r))
            .map(|r| (true, r))
            .collect();
        work.extend(
            existing
                .iter()
                .filter(|r| !want.contains(r))
                .map(|r| (false, r)),
        );
        self.rule_work(&work)
    }

    /// Removes every rule of ours.
    pub fn remove_rules(&mut self) -> Result<(), KernelError> {
        let existing = self.our_rules()?;
        let work: Vec<(bool, &RuleSpec)> = existing.iter().map(|r| (false, r)).collect();
        self.rule_work(&work)
    }

    fn our_rules(&mut self) -> Result<Vec<RuleSpec>, KernelError> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            out.extend(batch::dump(
                &mut self.sock,
                "rules",
                (RTM_GETRULE, &rule::dump_header(family)),
                |_| {},
                rule::parse_ours,
            )?);
        }
        Ok(out)
    }

    /// Adds (`true`) or deletes (`false`) rules in one batch.
    fn rule_work(&mut self, work: &[(bool, &RuleSpec)]) -> Result<(), KernelError> {
        let (fates, _) = self.run(
            work.len(),
            |b, i| match work[i] {
                (true, r) => rule::push_add(b, r),
                (false, r) => rule::push_delete(b, r),
            },
            |i, errno| {
                errno
                    == if work[i].0 {
                        libc::EEXIST
                    } else {
                        libc::ENOENT
                    }
            },
        )?;
        let refused: Vec<Refusal> = work
            .iter()
            .zip(fates)
            .filter_map(|(&(add, r), fate)| {
                fate.map(|e| refusal(describe_rule(if add { "add" } else { "delete" }, r), e))
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(KernelError::Refused(refused))
        }
    }

    /// The host's connected networks from the main table, both families:
    /// IPv4 scope-link routes and IPv6 kernel routes without a gateway
    /// (link-local and multicast excluded). Sorted, without duplicates.
    pub fn connected_prefixes(&mut self) -> Result<Vec<Prefix>, KernelError> {
        let mut out: Vec<Prefix> = self
            .dump_routes(RT_TABLE_MAIN, 0)?
            .iter()
            .filter(|r| is_connected(r))
            .map(|r| r.prefix)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Makes the kernel resolve `gateway` and keep its neighbour entry
    /// fresh (NTF_EXT_MANAGED, kernel >= 5.16) on the interface the host
    /// reaches it through, so XDP's bpf_fib_lookup finds its MAC. The
    /// gateway must be on a connected network. Idempotent; a permanent
    /// (administrator's) entry is left as it is.
    pub fn ensure_neighbor(&mut self, gateway: IpAddr) -> Result<(), KernelError> {
        let not = |reason: String| KernelError::NotANeighbor { gateway, reason };
        let oif = match self.lookup(gateway)? {
            None => return Err(not("the host has no route to it".into())),
            Some(r) if r.kind == RTN_LOCAL => {
                return Err(not("it is one of the host's own addresses".into()));
            }
            Some(r) if r.kind != RTN_UNICAST => {
                return Err(not("the host has no unicast route to it".into()));
            }
            Some(r) if r.gateways.iter().any(|g| *g != gateway) => {
                return Err(not(format!(
                    "it is reached via {}, not on a connected network",
                    r.gateways[0]
                )));
            }
            Some(r) => r
                .oif
                .ok_or_else(|| not("its route has no interface".into()))?,
        };
        let settled = |n: NeighInfo| n.managed || n.state & (NUD_PERMANENT | NUD_NOARP) != 0;
        if self.neighbor(oif, gateway)?.is_some_and(settled) {
            return Ok(());
        }
        let mut b = Batch::with_capacity(1);
        neigh::push_managed(&mut b, oif, gateway);
        match batch::execute(&mut self.sock, b, |_, _| {})?.remove(0) {
            None => Ok(()),
            Some(e) => Err(KernelError::request(
                format!("add managed neighbour {gateway} (ifindex {oif})"),
                e,
            )),
        }
    }

    /// The interfaces the host itself reaches `addrs` through (the
    /// uplinks towards route servers and appliances), by ifindex, sorted;
    /// an address it has no route to adds none.
    pub fn egress_interfaces(&mut self, addrs: &[IpAddr]) -> Result<Vec<u32>, KernelError> {
        let mut out: Vec<u32> = self
            .lookup_oifs(addrs)?
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The route the host itself would use for `addr`; `None` if none.
    fn lookup(&mut self, addr: IpAddr) -> Result<Option<RouteInfo>, KernelError> {
        let mut b = Batch::with_capacity(1);
        route::push_lookup(&mut b, addr);
        let mut found = None;
        let fate = batch::execute(&mut self.sock, b, |_, m| found = route::parse(m))?.remove(0);
        match fate {
            None => Ok(found),
            Some(e) if matches!(e.errno, libc::ENETUNREACH | libc::EHOSTUNREACH) => Ok(None),
            Some(e) => Err(KernelError::request(
                format!("look up the route to {addr}"),
                e,
            )),
        }
    }

    fn neighbor(&mut self, ifindex: u32, dst: IpAddr) -> Result<Option<NeighInfo>, KernelError> {
        let mut b = Batch::with_capacity(1);
        neigh::push_get(&mut b, ifindex, dst);
        let mut found = None;
        let fate = batch::execute(&mut self.sock, b, |_, m| found = neigh::parse(m))?.remove(0);
        match fate {
            None => Ok(found),
            Some(e) if e.errno == libc::ENOENT => Ok(None),
            Some(e) => Err(KernelError::request(
                format!(
                    "get neighbour {dst} ({})",
                    if family_of(dst) == AF_INET {
                        "ipv4"
                    } else {
                        "ipv6"
                    }
                ),
                e,
            )),
        }
    }
}
