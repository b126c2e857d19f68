//! The kernel side of the host FIB: Steer's dedicated routing table,
//! programmed over rtnetlink (RFC 3549) in batches, never one round trip
//! per route; the policy rules that send VM traffic (and only VM traffic)
//! into it; managed neighbours for appliance next hops; and the host's
//! connected prefixes, which become XDP pass entries.
//!
//! Routes, nexthop objects and rules carry `rtm_protocol` [`RTPROT_STEER`],
//! so a restarted agent finds what it installed ([`KernelFib::dump`]).
//!
//! The messages are encoded by hand (`wire`, `route`, `nexthop`, `rule`,
//! `neigh`) rather than with netlink-packet-route: that crate (0.34) has no
//! nexthop objects, and packing 100,000 requests straight into one reusable
//! buffer avoids a tree of allocations per message.

mod abi;
mod apply;
mod batch;
mod host;
mod neigh;
mod nexthop;
mod route;
mod rule;
mod socket;
mod wire;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use crate::prefix::{Afi, Prefix};
use abi::*;
use batch::Batch;
use nexthop::{Registry, Resilience};
use socket::NlSocket;
use wire::ErrorMsg;

pub use wire::WireError;

/// Our `rtm_protocol` (and nexthop/rule protocol): routes are found and
/// reconciled by it after a restart. `ip route` prints `proto steer` once
/// `/etc/iproute2/rt_protos.d/steer.conf` maps `211 steer` (FRR already names 186-197; 196 is its `static`).
pub const RTPROT_STEER: u8 = 211;

/// How often a request refused with a transient errno is sent again.
const RETRIES: u32 = 3;

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// One gateway or an ECMP set; the kernel resolves each gateway's
    /// interface. Order and duplicates are not significant: sets are
    /// installed sorted and deduplicated, and dumped that way.
    Unicast(Vec<IpAddr>),
    /// Drop with ICMP unreachable.
    Unreachable,
    /// Drop silently.
    Blackhole,
    /// Fail the lookup in this table so rule evaluation continues.
    Throw,
}

/// A route in Steer's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelRoute {
    /// The destination network.
    pub prefix: Prefix,
    /// What the route does.
    pub target: RouteTarget,
}

/// One change to Steer's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Install the route, replacing whatever route of ours has its prefix.
    Upsert(KernelRoute),
    /// Remove our route for the prefix; removing an absent route succeeds.
    Remove(Prefix),
}

impl RouteChange {
    /// The prefix the change is about.
    pub fn prefix(&self) -> Prefix {
        match self {
            RouteChange::Upsert(r) => r.prefix,
            RouteChange::Remove(p) => *p,
        }
    }
}

/// How routes reach their gateways in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EcmpStrategy {
    /// Each route carries its gateway (RTA_GATEWAY) or its ECMP set
    /// (RTA_MULTIPATH); the kernel finds the interfaces.
    Multipath,
    /// Routes point (RTA_NH_ID) at shared nexthop objects (RTM_NEWNEXTHOP,
    /// kernel >= 5.3): one object per gateway, used directly by
    /// single-gateway routes, and one group per distinct ECMP set; created
    /// on first use, deleted when no route uses them. The default: it
    /// measured 1.4x faster for single-gateway routes and 2.4x for 4-way
    /// ECMP routes (`cargo xtask bench fib`), and a next-hop change touches
    /// one object instead of every route.
    #[default]
    NexthopObjects,
}

/// Which kind of change failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// An [`RouteChange::Upsert`].
    Upsert,
    /// A [`RouteChange::Remove`].
    Remove,
}

/// A change the kernel refused, after retries of transient errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFailure {
    /// The route's prefix.
    pub prefix: Prefix,
    /// What was attempted.
    pub kind: ChangeKind,
    /// The positive errno (e.g. `libc::ENETUNREACH`).
    pub errno: i32,
    /// The kernel's extended-ack text, else the errno's description.
    pub message: String,
}

impl fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.kind {
            ChangeKind::Upsert => "install",
            ChangeKind::Remove => "remove",
        };
        write!(
            f,
            "{op} {}: {} (errno {})",
            self.prefix, self.message, self.errno
        )
    }
}

/// The outcome of [`KernelFib::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Changes the kernel accepted.
    pub applied: usize,
    /// Requests that were sent again after a transient error.
    pub retried: usize,
    /// Changes that failed, each with its prefix and errno.
    pub failures: Vec<RouteFailure>,
}

/// A request the kernel refused outside a route batch (rules, neighbours,
/// flush).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was asked, e.g. `add rule 100: iif vm0 lookup main`.
    pub what: String,
    /// The positive errno.
    pub errno: i32,
    /// The kernel's extended-ack text, else the errno's description.
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (errno {})", self.what, self.message, self.errno)
    }
}

fn join(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(Refusal::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why the kernel FIB could not do what was asked. Like every error type
/// here, each message states its cause once and exposes no `source()`.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The netlink socket itself failed.
    #[error("netlink socket: {op}: {cause}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The system error.
        cause: io::Error,
    },
    /// A reply did not parse.
    #[error("malformed netlink reply: {0}")]
    Wire(WireError),
    /// The kernel refused one or more requests.
    #[error("kernel refused {}", join(.0))]
    Refused(Vec<Refusal>),
    /// Table ids 0, 253, 254 and 255 belong to the kernel.
    #[error("routing table {0} is reserved (0, 253 default, 254 main, 255 local)")]
    ReservedTable(u32),
    /// Rule priorities P..=P+2 must fit in 1..=u32::MAX.
    #[error("rule priority {0} leaves no room for P+1 and P+2 (use 1..=4294967293)")]
    InvalidPriority(u32),
    /// A neighbour was asked for an address that is not one.
    #[error("{gateway} cannot be a managed neighbour: {reason}")]
    NotANeighbor {
        /// The address asked for.
        gateway: IpAddr,
        /// Why not.
        reason: String,
    },
    /// A dump kept being interrupted by concurrent changes.
    #[error("dump of {0} was interrupted by concurrent changes on every attempt")]
    DumpInterrupted(&'static str),
}

impl From<WireError> for KernelError {
    fn from(e: WireError) -> Self {
        KernelError::Wire(e)
    }
}

impl KernelError {
    pub(crate) fn io(op: &'static str, cause: io::Error) -> KernelError {
        KernelError::Io { op, cause }
    }

    pub(crate) fn request(what: String, e: ErrorMsg) -> KernelError {
        KernelError::Refused(vec![refusal(what, e)])
    }
}

pub(crate) fn refusal(what: String, e: ErrorMsg) -> Refusal {
    Refusal {
        what,
        errno: e.errno,
        message: describe(&e),
    }
}

/// The kernel's own words if it sent any, else the errno's.
pub(crate) fn describe(e: &ErrorMsg) -> String {
    e.message
        .clone()
        .unwrap_or_else(|| io::Error::from_raw_os_error(e.errno).to_string())
}

/// Errnos worth sending the same request again for.
fn transient(errno: i32) -> bool {
    matches!(
        errno,
        libc::EBUSY | libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM | libc::EINTR
    )
}

/// Steer's routing table in the calling thread's network namespace.
///
/// One instance per namespace owns every RTPROT_STEER nexthop object in it.
pub struct KernelFib {
    sock: NlSocket,
    table: u32,
    strategy: EcmpStrategy,
    nh: Registry,
    resilience: Resilience,
}

impl KernelFib {
    /// Opens rtnetlink in the calling thread's network namespace and learns
    /// which nexthop objects of ours exist and which routes use them, with
    /// the default flow idle timeout ([`KernelFib::open_with`]).
    pub fn open(table: u32, strategy: EcmpStrategy) -> Result<Self, KernelError> {
        Self::open_with(table, strategy, crate::fib::DEFAULT_FLOW_IDLE_TIMEOUT)
    }

    /// [`KernelFib::open`] with resilient groups whose idle timer is
    /// `flow_idle_timeout` seconds. Groups of ours with another timer are
    /// given this one in place, and routes still on objects of an older
    /// release (a gateway object directly, a hash-threshold group) move to
    /// resilient groups.
    pub fn open_with(
        table: u32,
        strategy: EcmpStrategy,
        flow_idle_timeout: u32,
    ) -> Result<Self, KernelError> {
        if matches!(
            table,
            RT_TABLE_UNSPEC | RT_TABLE_DEFAULT | RT_TABLE_MAIN | RT_TABLE_LOCAL
        ) {
            return Err(KernelError::ReservedTable(table));
        }
        let sock = NlSocket::open().map_err(|e| KernelError::io("open", e))?;
        let mut fib = KernelFib {
            sock,
            table,
            strategy,
            nh: Registry::default(),
            resilience: Resilience::with_idle_secs(flow_idle_timeout),
        };
        fib.reload_nexthops()?;
        if !fib.nh.is_empty() {
            for r in fib.dump_table(RTPROT_STEER)? {
                fib.nh.set_route(r.prefix, r.nh_id);
            }
            if strategy == EcmpStrategy::NexthopObjects {
                fib.upgrade_objects()?;
            }
        }
        Ok(fib)
    }

    /// Gives every group of ours this instance's idle timer (in place), and
    /// moves routes off objects of an older release onto resilient groups.
    fn upgrade_objects(&mut self) -> Result<(), KernelError> {
        let mut retime = Vec::new();
        for g in self.nh.groups_to_retime(self.resilience) {
            let Some(set) = self.nh.resolve(g) else {
                continue;
            };
            let members: Option<Vec<u32>> = set.iter().map(|gw| self.nh.gateway(*gw)).collect();
            retime.extend(members.map(|m| (g, set, m)));
        }
        for ((g, _), result) in self.replace_groups(retime)? {
            if let Err(e) = result {
                tracing::warn!(
                    group = g,
                    "cannot set a resilient group's idle timer: {}",
                    describe(&e)
                );
            }
        }
        let old = self.nh.routes_on_old_objects();
        if old.is_empty() {
            return Ok(());
        }
        let changes: Vec<RouteChange> = old
            .iter()
            .filter_map(|p| {
                let gws = self.nh.resolve(self.nh.route(p)?)?;
                Some(RouteChange::Upsert(KernelRoute {
                    prefix: *p,
                    target: RouteTarget::Unicast(gws),
                }))
            })
            .collect();
        let report = self.apply(&changes)?;
        tracing::info!(
            "moved {} routes from nexthop objects of an older release to resilient groups ({} refused)",
            report.applied,
            report.failures.len()
        );
        for f in &report.failures {
            tracing::warn!("{f}");
        }
        Ok(())
    }

    /// The routing table id.
    pub fn table(&self) -> u32 {
        self.table
    }

    /// The ECMP strategy in use.
    pub fn strategy(&self) -> EcmpStrategy {
        self.strategy
    }

    /// Our routes (protocol [`RTPROT_STEER`]) in the table, IPv4 then IPv6,
    /// sorted by prefix; nexthop groups are resolved back to gateway sets.
    /// Used to adopt the kernel's state after a restart.
    pub fn dump(&mut self) -> Result<Vec<KernelRoute>, KernelError> {
        self.reload_nexthops()?;
        self.nh.clear_routes();
        let mut out = Vec::new();
        for r in self.dump_table(RTPROT_STEER)? {
            self.nh.set_route(r.prefix, r.nh_id);
            let target = match r.kind {
                RTN_UNICAST => {
                    let mut gws = r
                        .nh_id
                        .and_then(|id| self.nh.resolve(id))
                        .unwrap_or(r.gateways);
                    gws.sort();
                    gws.dedup();
                    RouteTarget::Unicast(gws)
                }
                RTN_UNREACHABLE => RouteTarget::Unreachable,
                RTN_BLACKHOLE => RouteTarget::Blackhole,
                RTN_THROW => RouteTarget::Throw,
                other => {
                    tracing::warn!(prefix = %r.prefix, kind = other, "route of ours with a type Steer never installs");
                    continue;
                }
            };
            out.push(KernelRoute {
                prefix: r.prefix,
                target,
            });
        }
        out.sort_by_key(|r| r.prefix);
        Ok(out)
    }

    /// Removes all our routes, nexthop objects and rules.
    pub fn flush(&mut self) -> Result<(), KernelError> {
        let table = self.table;
        let mut routes = self.dump_table(RTPROT_STEER)?;
        // Highest prefix first: see the removal order in `apply`.
        routes.sort_unstable_by_key(|r| std::cmp::Reverse(r.prefix));
        let (fates, _) = self.run(
            routes.len(),
            |b, i| route::push_remove(b, table, routes[i].prefix),
            |_, errno| errno == libc::ESRCH,
        )?;
        let mut refused: Vec<Refusal> = routes
            .iter()
            .zip(fates)
            .filter_map(|(r, f)| f.map(|e| refusal(format!("remove route {}", r.prefix), e)))
            .collect();
        self.nh.clear_routes();
        self.reload_nexthops()?;
        let ids = self.nh.all();
        let (fates, _) = self.run(
            ids.len(),
            |b, i| nexthop::push_delete(b, ids[i]),
            |_, errno| errno == libc::ENOENT,
        )?;
        for (&id, fate) in ids.iter().zip(fates) {
            match fate {
                None => self.nh.forget(id),
                Some(e) => refused.push(refusal(format!("delete nexthop {id}"), e)),
            }
        }
        if let Err(KernelError::Refused(more)) = self.remove_rules() {
            refused.extend(more);
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(KernelError::Refused(refused))
        }
    }

    /// Rebuilds the registry from the kernel's nexthop objects, forgetting
    /// which routes use them.
    fn reload_nexthops(&mut self) -> Result<(), KernelError> {
        let all = self.dump_nexthops()?;
        self.nh = Registry::load(&all);
        Ok(())
    }

    /// Rebuilds the registry from the kernel's nexthop objects, keeping the
    /// routes that use objects which still exist.
    fn resync_nexthops(&mut self) -> Result<(), KernelError> {
        let all = self.dump_nexthops()?;
        self.nh.resync(&all);
        Ok(())
    }

    fn dump_nexthops(&mut self) -> Result<Vec<nexthop::NexthopInfo>, KernelError> {
        batch::dump(
            &mut self.sock,
            "nexthops",
            (RTM_GETNEXTHOP, &nexthop::dump_header()),
            |_| {},
            nexthop::parse,
        )
    }

    /// Routes of `protocol` (0 = any) in our table, both families.
    fn dump_table(&mut self, protocol: u8) -> Result<Vec<route::RouteInfo>, KernelError> {
        let table = self.table;
        self.dump_routes(table, protocol)
    }

    fn dump_routes(
        &mut self,
        table: u32,
        protocol: u8,
    ) -> Result<Vec<route::RouteInfo>, KernelError> {
        let mut out = Vec::new();
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            let routes = batch::dump(
                &mut self.sock,
                "routes",
                (RTM_GETROUTE, &route::dump_header(afi, table, protocol)),
                |e| e.attr_u32(RTA_TABLE, table),
                |m| {
                    route::parse(m).filter(|r| {
                        !r.cloned && r.table == table && (protocol == 0 || r.protocol == protocol)
                    })
                },
            );
            match routes {
                Ok(routes) => out.extend(routes),
                // A family that never had a route in the table has no table.
                Err(KernelError::Refused(r)) if r.iter().all(|r| r.errno == libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Sends `n` requests built by `encode` as one batch, sending those
    /// refused with a transient errno again (up to [`RETRIES`] times, with
    /// backoff). Refusals for which `benign(index, errno)` holds count as
    /// success. Returns
    /// each request's final fate and how many re-sends there were.
    fn run(
        &mut self,
        n: usize,
        encode: impl Fn(&mut Batch, usize),
        benign: impl Fn(usize, i32) -> bool,
    ) -> Result<(Vec<Option<ErrorMsg>>, usize), KernelError> {
        let mut fates: Vec<Option<ErrorMsg>> = vec![None; n];
        let mut pending: Vec<usize> = (0..n).collect();
        let mut retried = 0;
        for attempt in 0..=RETRIES {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                retried += pending.len();
                std::thread::sleep(Duration::from_millis(1 << (2 * attempt)));
            }
            let mut b = Batch::with_capacity(pending.len());
            for &i in &pending {
                encode(&mut b, i);
            }
            let got = batch::execute(&mut self.sock, b, |_, _| {})?;
            let mut again = Vec::new();
            for (&i, fate) in pending.iter().zip(got) {
                fates[i] = match fate {
                    Some(e) if benign(i, e.errno) => None,
                    Some(e) if transient(e.errno) && attempt < RETRIES => {
                        again.push(i);
                        Some(e)
                    }
                    other => other,
                };
            }
            pending = again;
        }
        Ok((fates, retried))
    }
}
