//! The eBPF fast path's user-space half. Loads the embedded object
//! (`ebpf/xdp`: an XDP and a TC program for the VM interfaces and the
//! return path's TC program for the uplinks, sharing one set of maps),
//! adopts or pins its maps under a per-instance bpffs dir, attaches the
//! hooks each VM-facing interface needs and the return path on the uplinks
//! through pinned links, writes routes into the LPM maps with shared,
//! refcounted next-hop sets, and the local VM prefixes and VM interfaces
//! into the return path's maps.
//!
//! Forwarding never depends on this process being alive: maps and links are
//! pinned, so an agent restart (or `kill -9`) leaves the last programs
//! forwarding with the last routes, and the next [`XdpDataplane::open`]
//! adopts them and swaps the new programs in atomically (`BPF_LINK_UPDATE`
//! on the XDP and tcx links; an in-place filter change on clsact).
//! Dropping an [`XdpDataplane`] therefore changes nothing in the kernel;
//! only [`XdpDataplane::remove`] detaches and unpins.
//!
//! Layouts and map names live in `steer-common`; the pin dir holds
//! `STEER_LPM4`, `STEER_LPM6`, `STEER_NHSETS`, `STEER_COUNTERS`,
//! `STEER_CONFIG`, the flow table `STEER_FLOWS` and its `STEER_FLOW_STATS`,
//! the return path's `STEER_VM4`, `STEER_VM6` and `STEER_VM_IFACES`,
//! `links/<native|generic|tcx|uplink-tcx>/<ifname>` and the clsact markers
//! `links/<clsact|uplink-clsact>/<ifname>/`. The flow table is pinned like the routes, so
//! running flows keep their next hop across agent restarts ([`flows`]).
//!
//! Offloads: a guest (virtio with `csum`/TSO, or a veth) hands over GSO
//! superpackets and TCP/UDP whose checksum holds only the pseudo-header
//! sum, to be finished by offload. The TC hook works on the skb and keeps
//! that state; native XDP redirects a bare frame, so it passes such packets
//! on (`pass_csum_partial`) to TC. Which hooks run where is
//! [`DataplaneMode`]'s choice ([`hooks`]).

mod attach;
mod counters;
mod flows;
pub mod hooks;
mod links;
mod logs;
mod nexthops;
mod object;
mod pin_dir;
pub mod redirect_targets;
mod sys;
pub mod tc_links;
#[cfg(feature = "testing")]
pub mod testrun;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray};
use aya::programs::Xdp;
use steer_common::{
    ACTION_FORWARD, ACTION_PASS, CONFIG_DEBUG, CONFIG_GENERIC, Config, Counter, FlowEntry, FlowKey,
    MAP_CONFIG, MAP_COUNTERS, MAP_FLOW_STATS, MAP_FLOWS, MAP_LPM4, MAP_LPM6, MAP_NH_SETS,
    MAP_VM_IFACES, MAP_VM4, MAP_VM6, MAX_NEXT_HOPS, MAX_NH_SETS, MAX_VM_PREFIXES, NextHopSet,
    PINNED_MAPS, PROGRAM_NAME, Route,
};

pub use attach::{AttachMode, Attachment};
pub use counters::{CounterValue, DataplaneCounters};
pub use flows::FlowTableView;
pub use hooks::{DataplaneMode, Hooks, InterfaceKind, XdpMode};
pub use object::OBJECT;
pub use steer_common::{Hook, Reason};

use crate::prefix::Prefix;
use nexthops::NextHopTable;
pub use pin_dir::PinDir;

/// Where and how to run the fast path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    /// Per-instance bpffs directory, e.g. `/sys/fs/bpf/steer/<instance>`.
    pub pin_dir: PathBuf,
    /// The VM-facing interfaces (in the caller's network namespace).
    pub interfaces: Vec<String>,
    /// Which hooks run, per interface kind.
    pub mode: DataplaneMode,
    /// Emit aya-log debug events (config key `xdp_debug`).
    pub debug: bool,
    /// Attach TC through a clsact qdisc even where the kernel has tcx (the
    /// fallback for kernels before 6.6, tested on new ones with this).
    pub force_clsact: bool,
    /// Seconds a flow may be silent and keep its next hop
    /// (`flow_idle_timeout`); 0 turns the flow table off (every packet is
    /// picked by the flow hash alone).
    pub flow_idle_timeout: u32,
    /// The local VM prefixes (`vm_prefixes`): the return path forwards
    /// traffic to them.
    pub vm_prefixes: Vec<Prefix>,
    /// The interfaces the return path runs on (the uplinks); empty: it is
    /// off.
    pub uplinks: Vec<String>,
}

impl XdpConfig {
    /// A config with the defaults for everything but the pin dir, the
    /// interfaces and the mode.
    pub fn new(pin_dir: impl Into<PathBuf>, interfaces: &[&str], mode: DataplaneMode) -> Self {
        XdpConfig {
            pin_dir: pin_dir.into(),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            mode,
            debug: false,
            force_clsact: false,
            flow_idle_timeout: crate::fib::DEFAULT_FLOW_IDLE_TIMEOUT,
            vm_prefixes: Vec::new(),
            uplinks: Vec::new(),
        }
    }
}

/// What the fast path does with a destination prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum XdpTarget {
    /// Forward over one of these next hops (1..=16, sorted, deduped), by
    /// flow hash.
    Forward(Vec<IpAddr>),
    /// Leave it to the kernel (VNet / connected space).
    Pass,
}

/// Errors of the eBPF fast path. Each message states its cause once: no
/// variant exposes an inner error as `source()` that its text already
/// includes, so `{:#}` chains never repeat it.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// A file or directory operation failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        cause: io::Error,
    },
    /// The pin dir is not, and cannot be created, on a bpf filesystem.
    #[error(
        "{}: not on a bpf filesystem ({} is not bpffs). The agent pins its maps and links \
         there so that forwarding survives a restart. Under `ip netns exec`, which mounts a \
         fresh /sys without bpffs, start the agent with `nsenter --net=/run/netns/NAME` \
         instead; otherwise mount it (`mount -t bpf bpf /sys/fs/bpf`) or set `pin_dir` to a \
         directory on a bpffs",
        pin_dir.display(),
        found.display()
    )]
    NoBpffs {
        /// The configured pin dir.
        pin_dir: PathBuf,
        /// The nearest existing path checked.
        found: PathBuf,
    },
    /// Another running agent holds the pin dir.
    #[error(
        "{}: in use by another running steer agent{}; give each agent its own `pin_dir` \
         (the default is per `table`)",
        path.display(),
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    PinDirBusy {
        /// The pin dir.
        path: PathBuf,
        /// The holder's pid, when /proc/locks tells.
        holder: Option<u32>,
    },
    /// Parsing or loading the object failed.
    #[error("loading the eBPF object: {0}")]
    Load(Box<aya::EbpfError>),
    /// Loading, attaching or replacing a program failed (verifier,
    /// permissions, kernel support).
    #[error("eBPF program: {0}")]
    Program(aya::programs::ProgramError),
    /// The object lacks the program.
    #[error("the eBPF object has no program `{0}`")]
    MissingProgram(&'static str),
    /// The object lacks a map.
    #[error("the eBPF object has no map `{0}`")]
    MissingMap(&'static str),
    /// A map operation failed.
    #[error("map {name}: {cause}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// The cause.
        cause: MapError,
    },
    /// A pinned map has another layout than this build's.
    #[error(
        "pinned map {} has layout {found}, this build expects {expected}; \
         remove the pin dir (steer agent flush) to start over",
        path.display()
    )]
    IncompatibleMap {
        /// The pinned map.
        path: PathBuf,
        /// (type, key size, value size, max entries) found.
        found: String,
        /// (type, key size, value size, max entries) expected.
        expected: String,
    },
    /// A configured interface does not exist.
    #[error("no interface named `{0}`")]
    NoSuchInterface(String),
    /// Attaching to an interface failed (EBUSY: another XDP program is on it).
    #[error("attaching {hook} to {interface}: {cause}")]
    Attach {
        /// The interface.
        interface: String,
        /// The hook and mode asked for.
        hook: &'static str,
        /// The cause.
        cause: io::Error,
    },
    /// A link operation on a pinned link failed.
    #[error("{op} on {}: {cause}", path.display())]
    Link {
        /// The link's pin path.
        path: PathBuf,
        /// The bpf command.
        op: &'static str,
        /// The cause.
        cause: io::Error,
    },
    /// More VM prefixes of one family than the return path's map holds.
    #[error(
        "{count} IPv{version} VM prefixes: the return path holds at most {max}",
        max = MAX_VM_PREFIXES
    )]
    TooManyVmPrefixes {
        /// 4 or 6.
        version: u8,
        /// How many were given.
        count: usize,
    },
    /// A forward target with no or too many next hops.
    #[error("{prefix}: a forward target needs 1..={max} next hops, got {count}", max = MAX_NEXT_HOPS)]
    BadTarget {
        /// The prefix.
        prefix: Prefix,
        /// Distinct next hops given.
        count: usize,
    },
    /// Every next-hop-set id is in use.
    #[error("{0}")]
    SetsFull(nexthops::SetsFull),
    /// Starting the log bridge failed.
    #[error("aya-log: {0}")]
    Log(aya_log::Error),
    /// `BPF_PROG_TEST_RUN` failed.
    #[cfg(feature = "testing")]
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(io::Error),
}

impl From<Box<aya::EbpfError>> for XdpError {
    fn from(e: Box<aya::EbpfError>) -> Self {
        XdpError::Load(e)
    }
}

impl From<aya::programs::ProgramError> for XdpError {
    fn from(e: aya::programs::ProgramError) -> Self {
        XdpError::Program(e)
    }
}

impl From<nexthops::SetsFull> for XdpError {
    fn from(e: nexthops::SetsFull) -> Self {
        XdpError::SetsFull(e)
    }
}

impl From<aya_log::Error> for XdpError {
    fn from(e: aya_log::Error) -> Self {
        XdpError::Log(e)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Installed {
    Pass,
    Forward(u32),
}

impl Installed {
    fn route(self) -> Route {
        match self {
            Installed::Pass => Route {
                action: ACTION_PASS,
                nh_set: 0,
            },
            Installed::Forward(id) => Route {
                action: ACTION_FORWARD,
                nh_set: id,
            },
        }
    }

    fn set(self) -> Option<u32> {
        match self {
            Installed::Forward(id) => Some(id),
            Installed::Pass => None,
        }
    }
}

/// The loaded programs, their maps and their links.
pub struct XdpDataplane {
    pin_dir: PathBuf,
    _pins: PinDir,
    mode: DataplaneMode,
    force_clsact: bool,
    ebpf: Ebpf,
    lpm4: LpmTrie<MapData, [u8; 4], Route>,
    lpm6: LpmTrie<MapData, [u8; 16], Route>,
    sets: BpfHashMap<MapData, u32, NextHopSet>,
    counters: PerCpuArray<MapData, Counter>,
    config: Array<MapData, Config>,
    flows: MapData,
    flow_stats: PerCpuArray<MapData, u64>,
    vm4: LpmTrie<MapData, [u8; 4], u32>,
    vm6: LpmTrie<MapData, [u8; 16], u32>,
    vm_ifaces: BpfHashMap<MapData, u32, u32>,
    return_targets: usize,
    flow_idle_timeout: u32,
    table: NextHopTable,
    routes: HashMap<Prefix, Installed>,
    attached: attach::Attached,
    logs: Option<logs::LogPump>,
    debug: bool,
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, XdpError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(XdpError::MissingMap(name))?;
    T::try_from(map).map_err(|cause| XdpError::Map { name, cause })
}

pub(crate) fn map_err(name: &'static str) -> impl Fn(MapError) -> XdpError {
    move |cause| XdpError::Map { name, cause }
}

fn is_not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// Makes the LPM trie `map` (value 1 everywhere) hold exactly `want`:
/// inserts first, then removes what is no longer wanted.
fn sync_lpm<K: aya::Pod + PartialEq>(
    map: &mut LpmTrie<MapData, K, u32>,
    name: &'static str,
    want: &[Key<K>],
) -> Result<(), XdpError> {
    let have: Vec<Key<K>> = map
        .keys()
        .collect::<Result<_, _>>()
        .map_err(map_err(name))?;
    for k in want {
        map.insert(k, 1u32, 0).map_err(map_err(name))?;
    }
    let wanted = |k: &Key<K>| {
        want.iter()
            .any(|w| w.prefix_len() == k.prefix_len() && w.data() == k.data())
    };
    for k in have.iter().filter(|k| !wanted(k)) {
        match map.remove(k) {
            Err(e) if !is_not_found(&e) => return Err(map_err(name)(e)),
            _ => {}
        }
    }
    Ok(())
}

fn normalize(prefix: &Prefix, target: &XdpTarget) -> Result<XdpTarget, XdpError> {
    match target {
        XdpTarget::Pass => Ok(XdpTarget::Pass),
        XdpTarget::Forward(hops) => {
            let mut hops = hops.clone();
            hops.sort();
            hops.dedup();
            if hops.is_empty() || hops.len() > MAX_NEXT_HOPS {
                return Err(XdpError::BadTarget {
                    prefix: *prefix,
                    count: hops.len(),
                });
            }
            Ok(XdpTarget::Forward(hops))
        }
    }
}

impl XdpDataplane {
    /// Loads the programs, adopts the maps pinned in `cfg.pin_dir` (or pins
    /// new ones), and puts the hooks on every VM interface and the return
    /// path on every uplink (after its maps are written): a pinned link gets
    /// the new program atomically; missing ones are attached and pinned;
    /// hooks no longer wanted are detached.
    pub fn open(cfg: &XdpConfig) -> Result<XdpDataplane, XdpError> {
        let pins = PinDir::claim(&cfg.pin_dir)?;
        let mut ebpf = object::load(&cfg.pin_dir)?;
        let mut dp = XdpDataplane {
            pin_dir: cfg.pin_dir.clone(),
            _pins: pins,
            mode: cfg.mode,
            force_clsact: cfg.force_clsact,
            lpm4: take_map(&mut ebpf, MAP_LPM4)?,
            lpm6: take_map(&mut ebpf, MAP_LPM6)?,
            sets: take_map(&mut ebpf, MAP_NH_SETS)?,
            counters: take_map(&mut ebpf, MAP_COUNTERS)?,
            config: take_map(&mut ebpf, MAP_CONFIG)?,
            flows: match ebpf.take_map(MAP_FLOWS) {
                Some(Map::LruHashMap(m)) => m,
                Some(_) => {
                    return Err(XdpError::Map {
                        name: MAP_FLOWS,
                        cause: MapError::InvalidMapType { map_type: 0 },
                    });
                }
                None => return Err(XdpError::MissingMap(MAP_FLOWS)),
            },
            flow_stats: take_map(&mut ebpf, MAP_FLOW_STATS)?,
            vm4: take_map(&mut ebpf, MAP_VM4)?,
            vm6: take_map(&mut ebpf, MAP_VM6)?,
            vm_ifaces: take_map(&mut ebpf, MAP_VM_IFACES)?,
            return_targets: 0,
            flow_idle_timeout: cfg.flow_idle_timeout,
            ebpf,
            table: NextHopTable::new(MAX_NH_SETS),
            routes: HashMap::new(),
            attached: attach::Attached::default(),
            logs: None,
            debug: false,
        };
        dp.adopt()?;
        dp.set_debug(cfg.debug)?;
        dp.set_interfaces(&cfg.interfaces)?;
        dp.set_vm_prefixes(&cfg.vm_prefixes)?;
        dp.set_uplinks(&cfg.uplinks)?;
        Ok(dp)
    }

    /// Makes the return path's VM-prefix maps hold exactly `prefixes`:
    /// the new ones are added before the old ones leave, so a prefix kept
    /// across a change is never missing.
    pub fn set_vm_prefixes(&mut self, prefixes: &[Prefix]) -> Result<(), XdpError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for p in prefixes {
            match p.addr() {
                IpAddr::V4(a) => v4.push(Key::new(u32::from(p.len()), a.octets())),
                IpAddr::V6(a) => v6.push(Key::new(u32::from(p.len()), a.octets())),
            }
        }
        for (version, count) in [(4, v4.len()), (6, v6.len())] {
            if count > MAX_VM_PREFIXES as usize {
                return Err(XdpError::TooManyVmPrefixes { version, count });
            }
        }
        sync_lpm(&mut self.vm4, MAP_VM4, &v4)?;
        sync_lpm(&mut self.vm6, MAP_VM6, &v6)
    }

    /// The return path's VM prefixes as installed, sorted.
    pub fn vm_prefixes(&self) -> Result<Vec<Prefix>, XdpError> {
        let mut out = Vec::new();
        for k in self.vm4.keys() {
            let k = k.map_err(map_err(MAP_VM4))?;
            out.push(Prefix::new(
                IpAddr::V4(Ipv4Addr::from(k.data())),
                k.prefix_len() as u8,
            ));
        }
        for k in self.vm6.keys() {
            let k = k.map_err(map_err(MAP_VM6))?;
            out.push(Prefix::new(
                IpAddr::V6(Ipv6Addr::from(k.data())),
                k.prefix_len() as u8,
            ));
        }
        out.sort();
        Ok(out)
    }

    /// Rebuilds the route mirror and the set table from the pinned maps,
    /// dropping routes whose set is missing and sets no route uses.
    fn adopt(&mut self) -> Result<(), XdpError> {
        let mut sets = HashMap::new();
        let mut broken = Vec::new();
        for item in self.sets.iter() {
            let (id, set) = item.map_err(map_err(MAP_NH_SETS))?;
            match nexthops::decode(&set) {
                Some(hops) => {
                    sets.insert(id, hops);
                }
                None => broken.push(id),
            }
        }
        let mut found: Vec<(Prefix, Route)> = Vec::new();
        for item in self.lpm4.iter() {
            let (k, r) = item.map_err(map_err(MAP_LPM4))?;
            let p = Prefix::new(IpAddr::V4(Ipv4Addr::from(k.data())), k.prefix_len() as u8);
            found.push((p, r));
        }
        for item in self.lpm6.iter() {
            let (k, r) = item.map_err(map_err(MAP_LPM6))?;
            let p = Prefix::new(IpAddr::V6(Ipv6Addr::from(k.data())), k.prefix_len() as u8);
            found.push((p, r));
        }
        let mut refs = Vec::new();
        for (p, r) in found {
            let installed = match r.action {
                ACTION_FORWARD if sets.contains_key(&r.nh_set) => Installed::Forward(r.nh_set),
                ACTION_PASS => Installed::Pass,
                _ => {
                    self.write(&p, None)?;
                    continue;
                }
            };
            refs.extend(installed.set());
            self.routes.insert(p, installed);
        }
        let (table, unused) = NextHopTable::adopt(MAX_NH_SETS, sets, refs);
        self.table = table;
        for id in unused.into_iter().chain(broken) {
            self.delete_set(id)?;
        }
        Ok(())
    }

    /// The prefixes installed now and what they do, sorted by prefix.
    pub fn entries(&self) -> Vec<(Prefix, XdpTarget)> {
        let mut out: Vec<(Prefix, XdpTarget)> = self
            .routes
            .iter()
            .map(|(p, i)| (*p, self.target_of(*i)))
            .collect();
        out.sort_by_key(|a| a.0);
        out
    }

    fn target_of(&self, installed: Installed) -> XdpTarget {
        match installed {
            Installed::Pass => XdpTarget::Pass,
            Installed::Forward(id) => XdpTarget::Forward(
                self.table
                    .hops(id)
                    .map(<[IpAddr]>::to_vec)
                    .unwrap_or_default(),
            ),
        }
    }

    /// Number of installed prefixes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no prefix is installed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of live next-hop sets.
    pub fn nexthop_sets(&self) -> usize {
        self.table.len()
    }

    /// Upserts (`Some`) and removes (`None`) prefixes; for one prefix listed
    /// twice the last change wins. New next-hop sets are written before any
    /// prefix points at them, and sets are deleted only after no prefix
    /// does, so a packet never meets a missing or half-written set. All
    /// targets are validated before anything is written.
    pub fn apply(&mut self, changes: &[(Prefix, Option<XdpTarget>)]) -> Result<(), XdpError> {
        let mut last: HashMap<Prefix, usize> = HashMap::with_capacity(changes.len());
        for (i, (p, _)) in changes.iter().enumerate() {
            last.insert(*p, i);
        }
        let mut wanted: Vec<(Prefix, Option<XdpTarget>)> = Vec::with_capacity(last.len());
        for (i, (p, t)) in changes.iter().enumerate() {
            if last.get(p) == Some(&i) {
                wanted.push((*p, t.as_ref().map(|t| normalize(p, t)).transpose()?));
            }
        }

        let mut desired: Vec<(Prefix, Option<Installed>)> = Vec::with_capacity(wanted.len());
        for (p, t) in wanted {
            let installed = match t {
                None => None,
                Some(XdpTarget::Pass) => Some(Installed::Pass),
                Some(XdpTarget::Forward(hops)) => match self.acquire(&hops) {
                    Ok(id) => Some(Installed::Forward(id)),
                    Err(e) => {
                        self.release_all(
                            desired
                                .iter()
                                .filter_map(|(_, i)| i.and_then(Installed::set)),
                        );
                        return Err(e);
                    }
                },
            };
            desired.push((p, installed));
        }

        let mut retired = Vec::new();
        for n in 0..desired.len() {
            let (p, want) = desired[n];
            let have = self.routes.get(&p).copied();
            if have == want {
                retired.extend(want.and_then(Installed::set));
                continue;
            }
            if let Err(e) = self.write(&p, want) {
                let pending = desired[n..]
                    .iter()
                    .filter_map(|(_, i)| i.and_then(Installed::set));
                let ids: Vec<u32> = pending.chain(retired).collect();
                self.release_all(ids);
                return Err(e);
            }
            match want {
                Some(i) => self.routes.insert(p, i),
                None => self.routes.remove(&p),
            };
            retired.extend(have.and_then(Installed::set));
        }
        self.release_all(retired);
        Ok(())
    }

    fn acquire(&mut self, hops: &[IpAddr]) -> Result<u32, XdpError> {
        let got = self.table.acquire(hops)?;
        if got.created
            && let Err(cause) = self.sets.insert(got.id, nexthops::encode(hops), 0)
        {
            self.table.release(got.id);
            return Err(XdpError::Map {
                name: MAP_NH_SETS,
                cause,
            });
        }
        Ok(got.id)
    }

    /// Drops references; sets that lose their last one leave the map. A
    /// failed delete only leaks an unused entry (the id is rewritten when
    /// reused), so it is logged, not returned.
    fn release_all(&mut self, ids: impl IntoIterator<Item = u32>) {
        for id in ids {
            if self.table.release(id)
                && let Err(e) = self.delete_set(id)
            {
                tracing::warn!(id, error = %e, "deleting an unused next-hop set");
            }
        }
    }

    fn delete_set(&mut self, id: u32) -> Result<(), XdpError> {
        match self.sets.remove(&id) {
            Err(e) if !is_not_found(&e) => Err(XdpError::Map {
                name: MAP_NH_SETS,
                cause: e,
            }),
            _ => Ok(()),
        }
    }

    fn write(&mut self, p: &Prefix, want: Option<Installed>) -> Result<(), XdpError> {
        let len = u32::from(p.len());
        let (name, result) = match (p.addr(), want) {
            (IpAddr::V4(a), Some(i)) => (
                MAP_LPM4,
                self.lpm4.insert(&Key::new(len, a.octets()), i.route(), 0),
            ),
            (IpAddr::V6(a), Some(i)) => (
                MAP_LPM6,
                self.lpm6.insert(&Key::new(len, a.octets()), i.route(), 0),
            ),
            (IpAddr::V4(a), None) => (MAP_LPM4, self.lpm4.remove(&Key::new(len, a.octets()))),
            (IpAddr::V6(a), None) => (MAP_LPM6, self.lpm6.remove(&Key::new(len, a.octets()))),
        };
        match result {
            Err(e) if !(want.is_none() && is_not_found(&e)) => {
                Err(XdpError::Map { name, cause: e })
            }
            _ => Ok(()),
        }
    }

    /// The counters by hook and reason, summed over CPUs, with XDP
    /// redirects their targets refused moved to `redirect_failed`.
    pub fn counters(&self) -> Result<DataplaneCounters, XdpError> {
        DataplaneCounters::read(&self.counters, self.xdp_refused())
    }

    /// The flow table: size, active flows per next hop, events.
    pub fn flow_table(&self) -> Result<FlowTableView, XdpError> {
        flows::view(&self.flows, &self.flow_stats, self.flow_idle_timeout)
    }

    /// Every flow-table entry (the programs' per-flow next hops).
    pub fn flow_entries(&self) -> Result<Vec<(FlowKey, FlowEntry)>, XdpError> {
        flows::entries(&self.flows)
    }

    /// The flows' idle timeout in seconds (0: the flow table is off).
    pub fn flow_idle_timeout(&self) -> u32 {
        self.flow_idle_timeout
    }

    /// Changes the flows' idle timeout (no reload needed).
    pub fn set_flow_idle_timeout(&mut self, secs: u32) -> Result<(), XdpError> {
        self.flow_idle_timeout = secs;
        self.write_config()
    }

    /// Switches the programs' debug events on or off (no reload needed).
    /// Events reach `log`/`tracing` at debug level, target `steer_xdp`.
    pub fn set_debug(&mut self, on: bool) -> Result<(), XdpError> {
        if on && self.logs.is_none() {
            self.logs = Some(logs::LogPump::start(&mut self.ebpf)?);
        }
        self.debug = on;
        self.write_config()
    }

    fn write_config(&mut self) -> Result<(), XdpError> {
        let mut flags = 0;
        if self.debug {
            flags |= CONFIG_DEBUG;
        }
        if self.mode == DataplaneMode::Xdp(XdpMode::Generic) {
            flags |= CONFIG_GENERIC;
        }
        let config = Config {
            flags,
            flow_idle_secs: self.flow_idle_timeout,
        };
        self.config.set(0, config, 0).map_err(map_err(MAP_CONFIG))
    }

    fn program(&self) -> Result<&Xdp, XdpError> {
        let prog = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(XdpError::MissingProgram(PROGRAM_NAME))?;
        Ok(prog.try_into()?)
    }

    /// The kernel id of the XDP program this instance loaded.
    pub fn program_id(&self) -> Result<u32, XdpError> {
        Ok(self.program()?.info()?.id())
    }

    /// The kernel id of the TC program this instance loaded.
    pub fn tc_program_id(&self) -> Result<u32, XdpError> {
        Ok(self.tc_program()?.info()?.id())
    }

    /// The kernel id of the return path's program this instance loaded.
    pub fn uplink_program_id(&self) -> Result<u32, XdpError> {
        Ok(self.uplink_program()?.info()?.id())
    }

    fn tc_program(&self) -> Result<&aya::programs::SchedClassifier, XdpError> {
        self.classifier(steer_common::TC_PROGRAM_NAME)
    }

    /// The return path's program.
    fn uplink_program(&self) -> Result<&aya::programs::SchedClassifier, XdpError> {
        self.classifier(steer_common::UPLINK_PROGRAM_NAME)
    }

    fn classifier(&self, name: &'static str) -> Result<&aya::programs::SchedClassifier, XdpError> {
        let prog = self
            .ebpf
            .program(name)
            .ok_or(XdpError::MissingProgram(name))?;
        Ok(prog.try_into()?)
    }

    /// The dataplane mode.
    pub fn mode(&self) -> DataplaneMode {
        self.mode
    }

    /// The pin dir of this instance.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Detaches every hook recorded under `pin_dir`, unpins the maps and
    /// removes the directory (for a flush on shutdown). Idempotent. The
    /// programs and maps are freed once no process holds them.
    pub fn remove(pin_dir: &Path) -> Result<(), XdpError> {
        if !pin_dir.exists() {
            return Ok(());
        }
        attach::detach_all(pin_dir)?;
        for name in PINNED_MAPS {
            let path = pin_dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(XdpError::Io { path, cause: e });
                }
                _ => {}
            }
        }
        std::fs::remove_dir(pin_dir).map_err(|cause| XdpError::Io {
            path: pin_dir.to_path_buf(),
            cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataplane_can_move_to_the_task_that_owns_it() {
        fn send<T: Send>() {}
        send::<XdpDataplane>();
    }

    #[test]
    fn an_error_chain_states_each_cause_once() {
        let e = anyhow::Error::new(XdpError::Io {
            path: "/sys/fs/bpf/steer/agent-200".into(),
            cause: io::Error::from_raw_os_error(libc::ENOENT),
        })
        .context("cannot set up the dataplane");
        assert_eq!(
            format!("{e:#}"),
            "cannot set up the dataplane: /sys/fs/bpf/steer/agent-200: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn forward_targets_are_sorted_deduped_and_bounded() {
        let p: Prefix = "203.0.113.0/24".parse().unwrap();
        let ips = |l: &[&str]| -> Vec<IpAddr> { l.iter().map(|s| s.parse().unwrap()).collect() };
        let t = XdpTarget::Forward(ips(&["192.0.2.2", "2001:db8::1", "192.0.2.1", "192.0.2.2"]));
        assert_eq!(
            normalize(&p, &t).unwrap(),
            XdpTarget::Forward(ips(&["192.0.2.1", "192.0.2.2", "2001:db8::1"]))
        );
        assert_eq!(normalize(&p, &XdpTarget::Pass).unwrap(), XdpTarget::Pass);
        assert!(matches!(
            normalize(&p, &XdpTarget::Forward(vec![])),
            Err(XdpError::BadTarget { count: 0, .. })
        ));
    }
}
