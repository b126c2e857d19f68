//! The one task that owns netlink and the eBPF maps (DESIGN: the RIB sends
//! it plans). It runs on its own thread because both are blocking system
//! calls, adopts what a previous agent left (routes by protocol value,
//! pinned maps and links), applies changes in batches, retries what the
//! kernel refused on the next reconcile, and never removes adopted state
//! until told that every route server has re-sent its routes.
//!
//! It also keeps the return path where the traffic to the VMs arrives: on
//! the uplinks, the interfaces the host reaches its route servers and the
//! appliances' next hops through (asked of the kernel, again whenever those
//! change and at every reconcile; before the first sync it only adds to the
//! uplinks a previous run left).

use crate::fib::kernel::{EcmpStrategy, KernelFib, KernelRoute, RouteChange, RouteTarget};
use crate::fib::plan::{self, Want};
use crate::fib::xdp::{
    Attachment, FlowTableView, InterfaceKind, XdpConfig, XdpDataplane, XdpTarget,
};
use crate::prefix::Prefix;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// How the agent's dataplane is set up.
#[derive(Debug, Clone)]
pub struct FibSetup {
    /// Kernel table id.
    pub table: u32,
    /// ECMP install strategy.
    pub ecmp: EcmpStrategy,
    /// VM-facing interfaces.
    pub interfaces: Vec<String>,
    /// First rule priority.
    pub rule_priority: u32,
    /// The eBPF hooks, unless the dataplane is `kernel`.
    pub ebpf: Option<XdpConfig>,
    /// Keep neighbour entries for next hops resolved.
    pub manage_neighbors: bool,
    /// `flow_idle_timeout` (s): the kernel's resilient groups' idle timer.
    pub flow_idle_timeout: u32,
    /// The route servers: the return path goes on the interfaces that reach
    /// them (and the appliances' next hops).
    pub route_servers: Vec<IpAddr>,
    /// Run the return path on the uplinks (with eBPF only).
    pub return_path: bool,
}

/// Requests to the FIB task.
#[derive(Debug)]
pub enum FibCmd {
    /// Merged-intent changes from the RIB (`None`: no longer wanted).
    Apply(Vec<(Prefix, Option<Want>)>),
    /// Every route server has re-sent its routes: remove whatever is
    /// installed but not wanted.
    Sweep,
    /// Re-read the kernel and the host's connected networks and repair any
    /// difference (also retries refused changes).
    Reconcile,
    /// Describe the FIB for `steer show fib`.
    Show(oneshot::Sender<FibView>),
    /// The VM interfaces changed (a reload): hooks and `ip rule`s follow.
    SetInterfaces(Vec<String>),
    /// The VM prefixes changed (a reload): the return path's map follows.
    SetVmPrefixes(Vec<Prefix>),
    /// The route servers changed (a reload): the uplinks may follow.
    SetRouteServers(Vec<IpAddr>),
    /// Stop; with `flush`, remove routes, rules and the eBPF hooks first.
    Shutdown {
        /// Remove the dataplane instead of leaving it forwarding.
        flush: bool,
        /// Done.
        done: oneshot::Sender<()>,
    },
}

/// One prefix in `steer show fib`.
#[derive(Debug, Clone, Serialize)]
pub struct FibEntryView {
    /// The prefix.
    pub prefix: Prefix,
    /// What the agent wants.
    pub want: Option<Want>,
    /// The kernel route in the table, in words.
    pub kernel: Option<String>,
    /// The eBPF LPM map entry (both hooks read it), in words.
    pub xdp: Option<String>,
    /// The kernel and the eBPF map disagree with each other or with the want.
    pub mismatch: bool,
}

/// `steer show fib`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FibView {
    /// Kernel table id.
    pub table: u32,
    /// ECMP strategy.
    pub ecmp: String,
    /// The `dataplane` mode (`auto`, `tc`, `xdp`; `kernel` when no
    /// program runs).
    pub dataplane: String,
    /// The hooks on the VM interfaces.
    pub attached: Vec<Attachment>,
    /// The flow table (none without eBPF).
    pub flows: Option<FlowTableView>,
    /// The programs' counters: hook (`xdp`, `tc`) -> reason -> (packets,
    /// bytes).
    pub counters: BTreeMap<String, BTreeMap<String, (u64, u64)>>,
    /// Deprecated: `counters.xdp`, kept for scripts written before the TC
    /// hook.
    pub xdp_counters: BTreeMap<String, (u64, u64)>,
    /// Every prefix.
    pub entries: Vec<FibEntryView>,
    /// Changes the kernel or the eBPF maps refused, not yet repaired.
    pub failures: Vec<String>,
    /// Still keeping adopted state until every route server has synced.
    pub awaiting_sync: bool,
}

fn kernel_text(t: &RouteTarget) -> String {
    match t {
        RouteTarget::Unicast(h) => format!(
            "via {}",
            h.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        RouteTarget::Unreachable => "unreachable".into(),
        RouteTarget::Blackhole => "blackhole".into(),
        RouteTarget::Throw => "throw".into(),
    }
}

fn xdp_text(t: &XdpTarget) -> String {
    match t {
        XdpTarget::Forward(h) => format!(
            "forward {}",
            h.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        XdpTarget::Pass => "pass".into(),
    }
}

struct FibState {
    setup: FibSetup,
    kernel: KernelFib,
    xdp: Option<XdpDataplane>,
    learned: HashMap<Prefix, Want>,
    /// How many learned routes use each next hop: the uplinks are looked
    /// for again only when a next hop appears or goes, not per batch.
    hop_refs: HopRefs,
    connected: HashSet<Prefix>,
    k_installed: HashMap<Prefix, RouteTarget>,
    x_installed: HashMap<Prefix, XdpTarget>,
    neighbors: HashSet<IpAddr>,
    failures: BTreeMap<Prefix, String>,
    synced: bool,
    /// The addresses the uplinks were last found for (route servers and
    /// next hops).
    uplink_addrs: BTreeSet<IpAddr>,
    /// Uplinks a previous run left, kept until the first sync.
    adopted_uplinks: Vec<String>,
}

impl FibState {
    fn open(setup: FibSetup) -> anyhow::Result<FibState> {
        // eBPF first: it claims the pin dir, so a second agent configured
        // with the same one stops before touching the kernel table or rules.
        let mut adopted_uplinks = Vec::new();
        let xdp = match &setup.ebpf {
            Some(c) => {
                let mut c = c.clone();
                c.interfaces = present(&setup.interfaces);
                if setup.return_path {
                    adopted_uplinks = XdpDataplane::recorded_uplinks(&c.pin_dir)
                        .into_iter()
                        .filter(|u| exists(u))
                        .collect();
                }
                c.uplinks = adopted_uplinks.clone();
                Some(XdpDataplane::open(&c)?)
            }
            None => None,
        };
        let mut kernel = KernelFib::open_with(setup.table, setup.ecmp, setup.flow_idle_timeout)?;
        let k_installed: HashMap<Prefix, RouteTarget> = kernel
            .dump()?
            .into_iter()
            .map(|r| (r.prefix, r.target))
            .collect();
        kernel.ensure_rules(&setup.interfaces, setup.rule_priority)?;
        let x_installed: HashMap<Prefix, XdpTarget> = xdp
            .as_ref()
            .map(|x| x.entries().into_iter().collect())
            .unwrap_or_default();
        if let Some(x) = &xdp {
            info!(
                "eBPF pins in {}: adopted {} entries, {} next-hop sets and the counters left by a previous run; hooks: {}",
                x.pin_dir().display(),
                x_installed.len(),
                x.nexthop_sets(),
                attachments_text(&x.attached()).join("; ")
            );
        }
        info!(
            "adopted {} kernel routes in table {} and {} eBPF map entries; kept until every route server has re-sent its routes",
            k_installed.len(),
            setup.table,
            x_installed.len()
        );
        let mut s = FibState {
            setup,
            kernel,
            xdp,
            learned: HashMap::new(),
            hop_refs: HopRefs::default(),
            connected: HashSet::new(),
            k_installed,
            x_installed,
            neighbors: HashSet::new(),
            failures: BTreeMap::new(),
            synced: false,
            uplink_addrs: BTreeSet::new(),
            adopted_uplinks,
        };
        s.refresh_connected();
        s.refresh_uplinks(true);
        Ok(s)
    }

    /// The route servers and every next hop learned: the return path goes
    /// on the interfaces that reach them.
    fn uplink_addrs(&self) -> BTreeSet<IpAddr> {
        let mut addrs: BTreeSet<IpAddr> = self.setup.route_servers.iter().copied().collect();
        addrs.extend(self.hop_refs.0.keys().copied());
        addrs
    }

    /// Learns (`Some`) or forgets (`None`) the route for `p`, keeping
    /// [`FibState::hop_refs`]; true when a next hop appeared or went.
    fn learn(&mut self, p: Prefix, w: Option<Want>) -> bool {
        let added = self.hop_refs.count(w.as_ref(), 1);
        let old = match w {
            Some(w) => self.learned.insert(p, w),
            None => self.learned.remove(&p),
        };
        self.hop_refs.count(old.as_ref(), -1) | added
    }

    /// Puts the return path on the uplinks (see the module header) when
    /// their addresses changed, or always when `force`; with the return
    /// path off, or no VM interface it forwards to, takes it off every
    /// interface.
    fn refresh_uplinks(&mut self, force: bool) {
        if self.xdp.is_none() {
            return;
        }
        let addrs = self.uplink_addrs();
        if !force && addrs == self.uplink_addrs {
            return;
        }
        let mut want: BTreeSet<String> = BTreeSet::new();
        let returns = self
            .xdp
            .as_ref()
            .is_some_and(XdpDataplane::returns_anywhere);
        if self.setup.return_path && returns {
            let list: Vec<IpAddr> = addrs.iter().copied().collect();
            match self.kernel.egress_interfaces(&list) {
                Ok(ifindexes) => want.extend(ifindexes.into_iter().filter_map(ifname)),
                Err(e) => {
                    warn!(
                        "cannot find the uplinks (the interfaces to the route servers and appliances): {e}"
                    );
                    return;
                }
            }
            if !self.synced {
                want.extend(self.adopted_uplinks.iter().cloned());
            }
            want.retain(|u| {
                !self.setup.interfaces.contains(u)
                    && InterfaceKind::of(u).is_ok_and(|k| k != InterfaceKind::NotEthernet)
            });
        }
        self.uplink_addrs = addrs;
        let want: Vec<String> = want.into_iter().collect();
        let Some(x) = &mut self.xdp else { return };
        if x.live_uplinks() == want {
            return;
        }
        match x.set_uplinks(&want) {
            Ok(()) if want.is_empty() => info!("return path: on no interface"),
            Ok(()) => info!("return path on the uplinks: {}", want.join(", ")),
            Err(e) => warn!("cannot put the return path on {want:?}: {e}"),
        }
    }

    fn effective(&self, p: &Prefix) -> Option<Want> {
        if self.connected.contains(p) {
            return Some(Want::Connected);
        }
        let want = self.learned.get(p).cloned()?;
        if self.synced {
            return Some(want);
        }
        let k = match self.k_installed.get(p) {
            Some(RouteTarget::Unicast(h)) => h.as_slice(),
            _ => &[],
        };
        let x = match self.x_installed.get(p) {
            Some(XdpTarget::Forward(h)) => h.as_slice(),
            _ => &[],
        };
        Some(plan::grow_only(want, &[k, x]))
    }

    fn refresh_connected(&mut self) {
        match self.kernel.connected_prefixes() {
            Ok(v) => {
                let new: HashSet<Prefix> = v.into_iter().collect();
                let touched: Vec<Prefix> =
                    new.symmetric_difference(&self.connected).copied().collect();
                self.connected = new;
                self.install(&touched, false);
            }
            Err(e) => warn!("cannot read connected networks: {e}"),
        }
    }

    /// Make the kernel and the eBPF maps match the wanted state for `prefixes`.
    /// Removals of prefixes nobody wants happen only when `remove` or
    /// after the sync.
    fn install(&mut self, prefixes: &[Prefix], remove: bool) {
        let mut k_changes = Vec::new();
        let mut x_changes = Vec::new();
        for p in prefixes {
            let want = self.effective(p);
            let allow_remove = remove || self.synced;
            let k_want = want.as_ref().and_then(Want::kernel);
            if k_want.as_ref() != self.k_installed.get(p) && (k_want.is_some() || allow_remove) {
                k_changes.push(match k_want {
                    Some(t) => RouteChange::Upsert(KernelRoute {
                        prefix: *p,
                        target: t,
                    }),
                    None => RouteChange::Remove(*p),
                });
            }
            let x_want = want.as_ref().map(Want::xdp);
            if self.xdp.is_some()
                && x_want.as_ref() != self.x_installed.get(p)
                && (x_want.is_some() || allow_remove)
            {
                x_changes.push((*p, x_want));
            }
        }
        self.apply_kernel(k_changes);
        self.apply_xdp(x_changes);
        if self.setup.manage_neighbors {
            self.ensure_neighbors(prefixes);
        }
    }

    fn apply_kernel(&mut self, changes: Vec<RouteChange>) {
        if changes.is_empty() {
            return;
        }
        let t = Instant::now();
        let report = match self.kernel.apply(&changes) {
            Ok(r) => r,
            Err(e) => {
                error!(
                    "kernel route batch of {} failed: {e}; will retry on the next reconcile",
                    changes.len()
                );
                for c in &changes {
                    self.failures.insert(c.prefix(), format!("kernel: {e}"));
                }
                return;
            }
        };
        let failed: HashSet<Prefix> = report.failures.iter().map(|f| f.prefix).collect();
        for f in &report.failures {
            warn!("kernel refused: {f}");
            self.failures.insert(f.prefix, format!("kernel: {f}"));
        }
        for c in changes {
            let p = c.prefix();
            if failed.contains(&p) {
                continue;
            }
            self.failures.remove(&p);
            match c {
                RouteChange::Upsert(r) => self.k_installed.insert(r.prefix, r.target),
                RouteChange::Remove(p) => self.k_installed.remove(&p),
            };
        }
        tracing::debug!(
            "kernel: {} changes ({} retried, {} refused) in {:?}",
            report.applied,
            report.retried,
            report.failures.len(),
            t.elapsed()
        );
    }

    fn apply_xdp(&mut self, changes: Vec<(Prefix, Option<XdpTarget>)>) {
        let Some(x) = &mut self.xdp else { return };
        if changes.is_empty() {
            return;
        }
        match x.apply(&changes) {
            Ok(()) => {
                for (p, t) in changes {
                    match t {
                        Some(t) => self.x_installed.insert(p, t),
                        None => self.x_installed.remove(&p),
                    };
                }
            }
            Err(e) => {
                error!("eBPF map update failed: {e}; will retry on the next reconcile");
                for (p, _) in &changes {
                    self.failures.insert(*p, format!("xdp: {e}"));
                }
                self.x_installed = x.entries().into_iter().collect();
            }
        }
    }

    fn ensure_neighbors(&mut self, prefixes: &[Prefix]) {
        let mut hops = Vec::new();
        for p in prefixes {
            if let Some(Want::Forward(h)) = self.learned.get(p) {
                hops.extend(h.iter().copied().filter(|h| !self.neighbors.contains(h)));
            }
        }
        for h in hops {
            if self.neighbors.contains(&h) {
                continue;
            }
            match self.kernel.ensure_neighbor(h) {
                Ok(()) => {
                    self.neighbors.insert(h);
                }
                Err(e) => warn!("cannot keep a neighbour entry for next hop {h}: {e}"),
            }
        }
    }

    fn all_prefixes(&self) -> Vec<Prefix> {
        let mut all: BTreeSet<Prefix> = BTreeSet::new();
        all.extend(self.learned.keys().copied());
        all.extend(self.connected.iter().copied());
        all.extend(self.k_installed.keys().copied());
        all.extend(self.x_installed.keys().copied());
        all.into_iter().collect()
    }

    /// Attach the hooks to VM interfaces that appeared since (a VM
    /// started) or were recreated, and let go of those that vanished.
    fn refresh_interfaces(&mut self) {
        let Some(x) = &mut self.xdp else { return };
        let mut want = present(&self.setup.interfaces);
        want.sort();
        let have = x.live_interfaces();
        if want == have {
            return;
        }
        match x.set_interfaces(&want) {
            Ok(()) => info!(
                "eBPF hooks now: {}",
                attachments_text(&x.attached()).join("; ")
            ),
            Err(e) => warn!("cannot attach the eBPF hooks to {want:?}: {e}"),
        }
    }

    fn reconcile(&mut self) {
        match self.kernel.dump() {
            Ok(v) => self.k_installed = v.into_iter().map(|r| (r.prefix, r.target)).collect(),
            Err(e) => warn!("cannot read table {}: {e}", self.setup.table),
        }
        if let Some(x) = &self.xdp {
            self.x_installed = x.entries().into_iter().collect();
        }
        if let Err(e) = self
            .kernel
            .ensure_rules(&self.setup.interfaces, self.setup.rule_priority)
        {
            warn!("cannot restore ip rules: {e}");
        }
        self.refresh_interfaces();
        self.refresh_connected();
        let all = self.all_prefixes();
        self.install(&all, false);
        self.refresh_uplinks(true);
    }

    /// The return path's VM prefixes follow a reload.
    fn set_vm_prefixes(&mut self, prefixes: Vec<Prefix>) {
        let Some(x) = &mut self.xdp else { return };
        match x.set_vm_prefixes(&prefixes) {
            Ok(()) => info!(
                "return path VM prefixes now: {}",
                prefixes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => warn!("cannot write the return path's VM prefixes: {e}"),
        }
    }

    fn view(&self) -> FibView {
        let mut entries = Vec::new();
        for p in self.all_prefixes() {
            let want = self.effective(&p);
            let k = self.k_installed.get(&p);
            let x = self.x_installed.get(&p);
            let k_ok = want.as_ref().and_then(Want::kernel).as_ref() == k;
            let x_ok = self.xdp.is_none() || want.as_ref().map(Want::xdp).as_ref() == x;
            entries.push(FibEntryView {
                prefix: p,
                want,
                kernel: k.map(kernel_text),
                xdp: x.map(xdp_text),
                mismatch: !(k_ok && x_ok),
            });
        }
        let flows = self.xdp.as_ref().and_then(|x| {
            x.flow_table()
                .map_err(|e| warn!("cannot read the flow table: {e}"))
                .ok()
        });
        let (dataplane, attached, counters) = match &self.xdp {
            Some(x) => {
                let mut counters: BTreeMap<String, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
                match x.counters() {
                    Ok(c) => {
                        for v in c.values {
                            counters
                                .entry(v.hook.to_string())
                                .or_default()
                                .insert(v.name.to_string(), (v.packets, v.bytes));
                        }
                    }
                    Err(e) => warn!("cannot read the eBPF counters: {e}"),
                }
                (x.mode().to_string(), x.attached(), counters)
            }
            None => ("kernel".to_string(), Vec::new(), BTreeMap::new()),
        };
        FibView {
            table: self.setup.table,
            ecmp: format!("{:?}", self.setup.ecmp),
            dataplane,
            attached,
            flows,
            xdp_counters: counters.get("xdp").cloned().unwrap_or_default(),
            counters,
            entries,
            failures: self
                .failures
                .iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect(),
            awaiting_sync: !self.synced,
        }
    }

    fn shutdown(&mut self, flush: bool) {
        if !flush {
            info!(
                "leaving {} kernel routes, the ip rules and the eBPF hooks in place: forwarding continues while the agent is down",
                self.k_installed.len()
            );
            return;
        }
        if let Err(e) = self.kernel.flush() {
            error!("flush of table {} failed: {e}", self.setup.table);
        }
        if let Some(x) = self.xdp.take() {
            let dir = x.pin_dir().to_path_buf();
            drop(x);
            if let Err(e) = XdpDataplane::remove(&dir) {
                error!("removing the eBPF hooks and maps failed: {e}");
            }
        }
        info!("dataplane flushed: routes, rules and eBPF hooks removed");
    }
}

/// The configured VM interfaces that exist now, in configured order. A VM
/// interface usually appears when its VM starts: missing ones are logged
/// and picked up by the periodic reconcile.
fn present(interfaces: &[String]) -> Vec<String> {
    interfaces
        .iter()
        .filter(|name| {
            let exists = exists(name);
            if !exists {
                warn!("VM interface {name} does not exist yet: the eBPF hooks attach when it appears (checked every reconcile_interval)");
            }
            exists
        })
        .cloned()
        .collect()
}

/// How many learned routes use each next hop.
#[derive(Debug, Default)]
struct HopRefs(HashMap<IpAddr, u32>);

impl HopRefs {
    /// Counts `w`'s next hops once more (`delta` 1) or once less (-1);
    /// true when a next hop appeared or went.
    fn count(&mut self, w: Option<&Want>, delta: i32) -> bool {
        let Some(Want::Forward(hops)) = w else {
            return false;
        };
        let mut changed = false;
        for h in hops {
            let n = self.0.entry(*h).or_insert(0);
            changed |= *n == 0;
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.0.remove(h);
                changed = true;
            }
        }
        changed
    }
}

/// Whether an interface named `name` exists in this namespace.
fn exists(name: &str) -> bool {
    std::ffi::CString::new(name)
        // SAFETY: a valid NUL-terminated string.
        .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) } != 0)
        .unwrap_or(false)
}

/// The name of interface `ifindex`, unless it is gone or the loopback.
fn ifname(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname writes at most.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    (name != "lo").then_some(name)
}

/// One line per hook: `vm1 tc (tcx, veth, link 3, prog 9)`.
fn attachments_text(a: &[Attachment]) -> Vec<String> {
    a.iter()
        .map(|a| {
            format!(
                "{} {} ({}, {}, link {}, prog {})",
                a.interface,
                a.hook,
                a.mode.name(),
                a.kind.name(),
                a.link_id,
                a.prog_id
            )
        })
        .collect()
}

/// Handle to the FIB thread.
#[derive(Debug, Clone)]
pub struct FibHandle {
    tx: std_mpsc::Sender<FibCmd>,
}

impl FibHandle {
    /// Queue a command; false when the FIB thread has stopped.
    pub fn send(&self, cmd: FibCmd) -> bool {
        self.tx.send(cmd).is_ok()
    }
}

/// Open the dataplane (adopting what exists) and start the FIB thread.
pub fn start(setup: FibSetup) -> anyhow::Result<(FibHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std_mpsc::channel::<FibCmd>();
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let join = std::thread::Builder::new().name("steer-fib".into()).spawn(move || {
        let mut s = match FibState::open(setup) {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let mut queue = std::collections::VecDeque::new();
        loop {
            if queue.is_empty() {
                match rx.recv() {
                    Ok(c) => queue.push_back(c),
                    Err(_) => return,
                }
            }
            while let Ok(c) = rx.try_recv() {
                queue.push_back(c);
            }
            let Some(cmd) = queue.pop_front() else { continue };
            match cmd {
                FibCmd::Apply(mut changes) => {
                    while matches!(queue.front(), Some(FibCmd::Apply(_))) {
                        if let Some(FibCmd::Apply(v)) = queue.pop_front() {
                            changes.extend(v);
                        }
                    }
                    let mut prefixes = Vec::with_capacity(changes.len());
                    let mut hops_changed = false;
                    for (p, w) in changes {
                        hops_changed |= s.learn(p, w);
                        prefixes.push(p);
                    }
                    prefixes.sort();
                    prefixes.dedup();
                    s.install(&prefixes, true);
                    if hops_changed {
                        s.refresh_uplinks(false);
                    }
                }
                FibCmd::Sweep => {
                    s.synced = true;
                    let all = s.all_prefixes();
                    info!("every route server has re-sent its routes: removing what none of them wants");
                    s.install(&all, true);
                    s.refresh_uplinks(true);
                }
                FibCmd::Reconcile => s.reconcile(),
                FibCmd::SetInterfaces(interfaces) => {
                    s.setup.interfaces = interfaces;
                    s.reconcile();
                }
                FibCmd::SetVmPrefixes(prefixes) => s.set_vm_prefixes(prefixes),
                FibCmd::SetRouteServers(servers) => {
                    s.setup.route_servers = servers;
                    s.refresh_uplinks(true);
                }
                FibCmd::Show(reply) => {
                    let _ = reply.send(s.view());
                }
                FibCmd::Shutdown { flush, done } => {
                    s.shutdown(flush);
                    let _ = done.send(());
                    return;
                }
            }
        }
    })?;
    ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the FIB thread died while opening the dataplane"))??;
    Ok((FibHandle { tx }, join))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(hops: &[&str]) -> Want {
        Want::Forward(hops.iter().map(|h| h.parse().unwrap()).collect())
    }

    #[test]
    fn hop_refs_report_only_a_next_hop_that_appears_or_goes() {
        let mut r = HopRefs::default();
        assert!(r.count(Some(&fwd(&["10.1.0.10"])), 1), "a new hop");
        assert!(!r.count(Some(&fwd(&["10.1.0.10"])), 1), "a second route");
        assert!(r.count(Some(&fwd(&["10.1.0.10", "10.1.0.20"])), 1));
        assert!(!r.count(Some(&Want::Vnet), 1), "no next hop");
        assert!(!r.count(None, -1));
        assert!(!r.count(Some(&fwd(&["10.1.0.10"])), -1));
        assert!(!r.count(Some(&fwd(&["10.1.0.10"])), -1));
        assert!(
            r.count(Some(&fwd(&["10.1.0.10", "10.1.0.20"])), -1),
            "both gone"
        );
        assert!(r.0.is_empty());
    }
}
