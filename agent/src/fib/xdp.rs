//! The XDP fast path's user-space half. Loads the embedded program
//! (`ebpf/xdp`), adopts or pins its maps under a per-instance bpffs dir,
//! attaches it to the VM-facing interfaces through pinned bpf_links, and
//! writes routes into its LPM maps with shared, refcounted next-hop sets.
//!
//! Forwarding never depends on this process being alive: maps and links are
//! pinned, so an agent restart (or `kill -9`) leaves the last program
//! forwarding with the last routes, and the next [`XdpDataplane::open`]
//! adopts them and swaps the new program in atomically (`BPF_LINK_UPDATE`).
//! Dropping an [`XdpDataplane`] therefore changes nothing in the kernel;
//! only [`XdpDataplane::remove`] detaches and unpins.
//!
//! Layouts and map names live in `steer-common`; the pin dir holds
//! `STEER_LPM4`, `STEER_LPM6`, `STEER_NHSETS`, `STEER_COUNTERS`,
//! `STEER_CONFIG` and `links/<native|generic>/<ifname>`.
//!
//! Checksum offload: a guest (virtio with `csum`, or a veth) may hand over
//! TCP/UDP whose checksum holds only the pseudo-header sum, to be finished
//! by offload. Generic XDP redirects the skb and keeps that state; native
//! XDP redirects a bare frame and would deliver a bad checksum, so in native
//! mode the program passes such packets to the kernel
//! (`pass_csum_partial`). On VM taps whose guests offload checksums, use
//! generic mode or turn the offload off in the guest/VMM to keep them on the
//! fast path.

mod links;
mod logs;
mod nexthops;
mod object;
mod pin_dir;
mod sys;
pub mod testrun;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError, PerCpuArray};
use aya::programs::Xdp;
use steer_common::{
    ACTION_FORWARD, ACTION_PASS, CONFIG_DEBUG, CONFIG_GENERIC, Config, Counter, MAP_CONFIG,
    MAP_COUNTERS, MAP_LPM4, MAP_LPM6, MAP_NH_SETS, MAX_NEXT_HOPS, MAX_NH_SETS, NextHopSet,
    PINNED_MAPS, PROGRAM_NAME, REASONS, Route,
};

pub use object::OBJECT;
pub use steer_common::Reason;

use crate::prefix::Prefix;
use nexthops::NextHopTable;
pub use pin_dir::PinDir;

/// How the program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (veth, most NICs): the fast one.
    Native,
    /// In the generic network stack (`XDP_FLAGS_SKB_MODE`): works anywhere.
    Generic,
}

impl XdpMode {
    /// `native` or `generic`.
    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }

    fn flags(self) -> u32 {
        match self {
            XdpMode::Native => sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => sys::XDP_FLAGS_SKB_MODE,
        }
    }

    fn other(self) -> XdpMode {
        match self {
            XdpMode::Native => XdpMode::Generic,
            XdpMode::Generic => XdpMode::Native,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and how to run the fast path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    /// Per-instance bpffs directory, e.g. `/sys/fs/bpf/steer/<instance>`.
    pub pin_dir: PathBuf,
    /// The VM-facing interfaces (in the caller's network namespace).
    pub interfaces: Vec<String>,
    /// Attach mode for all of them.
    pub mode: XdpMode,
    /// Emit aya-log debug events (config key `xdp_debug`).
    pub debug: bool,
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

/// Errors of the XDP fast path. Each message states its cause once: no
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
    #[error("loading the XDP object: {0}")]
    Load(Box<aya::EbpfError>),
    /// Loading the program into the kernel failed (verifier, permissions).
    #[error("loading the XDP program: {0}")]
    Program(aya::programs::ProgramError),
    /// The object lacks the program.
    #[error("the XDP object has no program `{0}`")]
    MissingProgram(&'static str),
    /// The object lacks a map.
    #[error("the XDP object has no map `{0}`")]
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
    #[error("attaching XDP ({mode}) to {interface}: {cause}")]
    Attach {
        /// The interface.
        interface: String,
        /// The mode asked for.
        mode: XdpMode,
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

/// One counter, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CounterValue {
    /// Its reason's name (`forwarded`, `pass_no_route`, ...).
    pub name: &'static str,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// All counters, in [`Reason`] order. Pinned, so they count across restarts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct XdpCounters {
    /// One per reason.
    pub values: Vec<CounterValue>,
}

impl XdpCounters {
    /// The counter of `reason`.
    pub fn get(&self, reason: Reason) -> CounterValue {
        self.values[reason.index() as usize]
    }

    /// Packets counted under `reason`.
    pub fn packets(&self, reason: Reason) -> u64 {
        self.get(reason).packets
    }

    /// Packets under every reason (everything the program saw).
    pub fn total_packets(&self) -> u64 {
        self.values.iter().map(|v| v.packets).sum()
    }
}

impl fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<22} {:>14} {:>16}", "reason", "packets", "bytes")?;
        for v in &self.values {
            writeln!(f, "{:<22} {:>14} {:>16}", v.name, v.packets, v.bytes)?;
        }
        Ok(())
    }
}

/// An interface the program is attached to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    /// Interface name.
    pub interface: String,
    /// Its ifindex now; 0 if the interface has gone.
    pub ifindex: u32,
    /// Attach mode.
    pub mode: XdpMode,
    /// The bpf_link id (stable across program replacements).
    pub link_id: u32,
    /// The program the link runs; 0 if unknown.
    pub prog_id: u32,
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

/// The loaded program, its maps and its links.
pub struct XdpDataplane {
    pin_dir: PathBuf,
    _pins: PinDir,
    mode: XdpMode,
    ebpf: Ebpf,
    lpm4: LpmTrie<MapData, [u8; 4], Route>,
    lpm6: LpmTrie<MapData, [u8; 16], Route>,
    sets: BpfHashMap<MapData, u32, NextHopSet>,
    counters: PerCpuArray<MapData, Counter>,
    config: Array<MapData, Config>,
    table: NextHopTable,
    routes: HashMap<Prefix, Installed>,
    links: BTreeMap<String, links::Link>,
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

fn map_err(name: &'static str) -> impl Fn(MapError) -> XdpError {
    move |cause| XdpError::Map { name, cause }
}

fn is_not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
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
    /// Loads the program, adopts the maps pinned in `cfg.pin_dir` (or pins
    /// new ones), and puts the program on every interface: the pinned link
    /// of an interface gets the new program atomically; interfaces without
    /// one get a new pinned link; pinned links of interfaces no longer
    /// listed are detached.
    pub fn open(cfg: &XdpConfig) -> Result<XdpDataplane, XdpError> {
        let pins = PinDir::claim(&cfg.pin_dir)?;
        let mut ebpf = object::load(&cfg.pin_dir)?;
        let mut dp = XdpDataplane {
            pin_dir: cfg.pin_dir.clone(),
            _pins: pins,
            mode: cfg.mode,
            lpm4: take_map(&mut ebpf, MAP_LPM4)?,
            lpm6: take_map(&mut ebpf, MAP_LPM6)?,
            sets: take_map(&mut ebpf, MAP_NH_SETS)?,
            counters: take_map(&mut ebpf, MAP_COUNTERS)?,
            config: take_map(&mut ebpf, MAP_CONFIG)?,
            ebpf,
            table: NextHopTable::new(MAX_NH_SETS),
            routes: HashMap::new(),
            links: BTreeMap::new(),
            logs: None,
            debug: false,
        };
        dp.adopt()?;
        dp.set_debug(cfg.debug)?;
        dp.set_interfaces(&cfg.interfaces)?;
        Ok(dp)
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

    /// The counters summed over CPUs, in [`Reason`] order.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut values = Vec::with_capacity(REASONS.len());
        for reason in REASONS {
            let per_cpu = self
                .counters
                .get(&reason.index(), 0)
                .map_err(map_err(MAP_COUNTERS))?;
            let (packets, bytes) = per_cpu
                .iter()
                .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes));
            values.push(CounterValue {
                name: reason.name(),
                packets,
                bytes,
            });
        }
        Ok(XdpCounters { values })
    }

    /// Switches the program's debug events on or off (no reload needed).
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
        if self.mode == XdpMode::Generic {
            flags |= CONFIG_GENERIC;
        }
        self.config
            .set(0, Config { flags }, 0)
            .map_err(map_err(MAP_CONFIG))
    }

    fn program(&self) -> Result<&Xdp, XdpError> {
        let prog = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(XdpError::MissingProgram(PROGRAM_NAME))?;
        Ok(prog.try_into()?)
    }

    /// The kernel id of the program this instance loaded.
    pub fn program_id(&self) -> Result<u32, XdpError> {
        Ok(self.program()?.info()?.id())
    }

    /// Attaches to every interface in `interfaces` (replacing the program of
    /// existing pinned links atomically) and detaches the pinned links of
    /// interfaces not listed.
    pub fn set_interfaces(&mut self, interfaces: &[String]) -> Result<(), XdpError> {
        let prog = self
            .program()?
            .fd()?
            .try_clone()
            .map_err(|cause| XdpError::Io {
                path: self.pin_dir.clone(),
                cause,
            })?;
        let mut attached = BTreeMap::new();
        for iface in interfaces {
            let link = links::attach(prog.as_fd(), &self.pin_dir, iface, self.mode)?;
            attached.insert(iface.clone(), link);
        }
        for (mode, iface, path) in links::pinned(&self.pin_dir) {
            if !interfaces.contains(&iface) || mode != self.mode {
                links::detach_pinned(&path)?;
            }
        }
        self.links = attached;
        Ok(())
    }

    /// The interfaces the program is on, with link and program ids (as
    /// `steer show fib` prints them).
    pub fn attached(&self) -> Vec<Attachment> {
        self.links
            .iter()
            .map(|(iface, link)| {
                let info = sys::xdp_link_info(link.fd.as_fd()).ok();
                Attachment {
                    interface: iface.clone(),
                    ifindex: info.map_or(0, |i| i.ifindex),
                    mode: link.mode,
                    link_id: info.map_or(0, |i| i.id),
                    prog_id: info.map_or(0, |i| i.prog_id),
                }
            })
            .collect()
    }

    /// The pin dir of this instance.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Detaches every link pinned under `pin_dir`, unpins the maps and
    /// removes the directory (for a flush on shutdown). Idempotent. The
    /// program and maps are freed once no process holds them.
    pub fn remove(pin_dir: &Path) -> Result<(), XdpError> {
        if !pin_dir.exists() {
            return Ok(());
        }
        for (_, _, path) in links::pinned(pin_dir) {
            links::detach_pinned(&path)?;
        }
        links::remove_dirs(pin_dir)?;
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

    #[test]
    fn counters_print_one_named_line_per_reason() {
        let c = XdpCounters {
            values: REASONS
                .iter()
                .map(|r| CounterValue {
                    name: r.name(),
                    packets: r.index().into(),
                    bytes: 100,
                })
                .collect(),
        };
        assert_eq!(c.packets(Reason::NoNeigh), 3);
        assert_eq!(c.total_packets(), (0..REASONS.len() as u64).sum::<u64>());
        let text = c.to_string();
        assert_eq!(text.lines().count(), 1 + REASONS.len());
        assert_eq!(
            text.lines()
                .nth(4)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["pass_no_neigh", "3", "100"]
        );
    }
}
