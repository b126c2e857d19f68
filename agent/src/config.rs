//! The TOML configuration of `steer server` and `steer agent`: every key,
//! its default, and validation that names the file, the key and what is
//! wrong. Unknown keys are errors (a typo must not silently fall back to a
//! default).

use crate::prefix::Prefix;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {cause}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// The parser's message (line, column, key).
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The key, e.g. `peer[1].asn`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Defaults shared by both roles, as Azure Route Server uses them.
pub mod defaults {
    /// BGP port.
    pub const PORT: u16 = 179;
    /// Hold time (s).
    pub const HOLD_TIME: u16 = 180;
    /// Keepalive (s).
    pub const KEEPALIVE: u16 = 60;
    /// Prefixes accepted per appliance before the session is dropped.
    pub const MAX_PREFIXES: u32 = 1000;
    /// VM prefixes accepted per host.
    pub const HOST_MAX_PREFIXES: u32 = 64;
    /// Idle time after a max-prefix Cease before reconnecting (s).
    pub const MAX_PREFIX_RESTART: u64 = 60;
    /// First connect-retry delay (s); doubles per failure.
    pub const CONNECT_RETRY: u64 = 2;
    /// Longest connect-retry delay (s).
    pub const CONNECT_RETRY_MAX: u64 = 120;
    /// Graceful-restart time we advertise and honour (s).
    pub const GRACEFUL_RESTART_TIME: u16 = 120;
    /// Kernel table for learned routes.
    pub const TABLE: u32 = 200;
    /// Priority of the first `ip rule` for VM interfaces.
    pub const RULE_PRIORITY: u32 = 1000;
    /// How long the agent waits for End-of-RIB before sweeping stale state.
    pub const STALE_TIMEOUT: u64 = 60;
    /// Seconds between the agent's FIB reconciles.
    pub const RECONCILE_INTERVAL: u64 = 30;
    /// Unsent bytes a session's send queue may hold. A full-table dump to a
    /// joining host must fit with the changes that arrive while it goes
    /// out: 800,000 ADD-PATH paths in 145,000 attribute sets (8 appliances
    /// × 100,000 prefixes, a few prefixes per set) encode to about 18 MB,
    /// and the heaviest churn seen at a host is about 0.25 MB/s. 64 MiB
    /// holds that dump three times over, so a receiver that keeps up is
    /// never dropped; one that has stopped is dropped by the send-hold
    /// timer long before it could queue that much under ordinary churn.
    pub const SEND_QUEUE_LIMIT: usize = 64 << 20;
    /// The smallest send-queue limit: one message of the largest size.
    pub const SEND_QUEUE_MIN: usize = 65_535;
    /// BFD transmit and receive interval (ms).
    pub const BFD_INTERVAL_MS: u32 = 300;
    /// BFD Detect Mult.
    pub const BFD_MULTIPLIER: u8 = 3;
    /// Lowest TTL accepted on multihop BFD: any. FRR and routers send 255
    /// (so 254 allows one router between), BIRD the system default of 64.
    pub const BFD_MIN_TTL: u8 = 1;
}

fn d_port() -> u16 {
    defaults::PORT
}
fn d_hold() -> u16 {
    defaults::HOLD_TIME
}
fn d_keepalive() -> u16 {
    defaults::KEEPALIVE
}
fn d_max_prefixes() -> u32 {
    defaults::MAX_PREFIXES
}
fn d_max_prefix_restart() -> u64 {
    defaults::MAX_PREFIX_RESTART
}
fn d_connect_retry() -> u64 {
    defaults::CONNECT_RETRY
}
fn d_connect_retry_max() -> u64 {
    defaults::CONNECT_RETRY_MAX
}
fn d_gr_time() -> u16 {
    defaults::GRACEFUL_RESTART_TIME
}
fn d_listen() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
}
fn d_table() -> u32 {
    defaults::TABLE
}
fn d_rule_priority() -> u32 {
    defaults::RULE_PRIORITY
}
fn d_stale_timeout() -> u64 {
    defaults::STALE_TIMEOUT
}
fn d_reconcile() -> u64 {
    defaults::RECONCILE_INTERVAL
}
fn d_flow_idle() -> u32 {
    crate::fib::DEFAULT_FLOW_IDLE_TIMEOUT
}
fn d_true() -> bool {
    true
}
fn d_send_queue_limit() -> usize {
    defaults::SEND_QUEUE_LIMIT
}
fn d_bfd_interval() -> u32 {
    defaults::BFD_INTERVAL_MS
}
fn d_bfd_multiplier() -> u8 {
    defaults::BFD_MULTIPLIER
}
fn d_bfd_min_ttl() -> u8 {
    defaults::BFD_MIN_TTL
}

/// Session timers common to both roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Proposed hold time in seconds (0 or >= 3).
    pub hold_time: u16,
    /// Keepalive interval in seconds.
    pub keepalive: u16,
    /// First connect-retry delay in seconds.
    pub connect_retry: u64,
    /// Longest connect-retry delay in seconds.
    pub connect_retry_max: u64,
}

/// `steer server` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Our AS (65515 as Azure Route Server).
    pub asn: u32,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Addresses to accept BGP on.
    #[serde(default = "d_listen")]
    pub listen: Vec<IpAddr>,
    /// TCP port for BGP, listening and connecting.
    #[serde(default = "d_port")]
    pub port: u16,
    /// The virtual network's address space, advertised to every appliance.
    #[serde(default)]
    pub vnet_prefixes: Vec<Prefix>,
    /// Advertise each appliance's routes to the other appliances.
    #[serde(default)]
    pub branch_to_branch: bool,
    /// Next hop for IPv6 prefixes we originate (the VNet's IPv6 space) on
    /// IPv4 sessions; without it they go only over IPv6 sessions.
    #[serde(default)]
    pub ipv6_next_hop: Option<std::net::Ipv6Addr>,
    /// Proposed hold time in seconds (0, or 3 and more).
    #[serde(default = "d_hold")]
    pub hold_time: u16,
    /// Keepalive interval in seconds (capped at a third of the hold time).
    #[serde(default = "d_keepalive")]
    pub keepalive: u16,
    /// First connect-retry delay in seconds; doubles per failure.
    #[serde(default = "d_connect_retry")]
    pub connect_retry: u64,
    /// Longest connect-retry delay in seconds.
    #[serde(default = "d_connect_retry_max")]
    pub connect_retry_max: u64,
    /// Seconds a peer stays down after exceeding max_prefixes.
    #[serde(default = "d_max_prefix_restart")]
    pub max_prefix_restart: u64,
    /// Seconds a peer may take none of our data before the session is
    /// reset (RFC 9687); unset: the larger of 8 minutes and twice the
    /// negotiated hold time.
    #[serde(default)]
    pub send_hold_time: Option<u32>,
    /// Unsent bytes a session's send queue may hold; above it the session
    /// is reset with Cease/8.
    #[serde(default = "d_send_queue_limit")]
    pub send_queue_limit: usize,
    /// Graceful-restart time advertised, and the longest we keep a
    /// restarting peer's routes (seconds; 0 turns graceful restart off).
    #[serde(default = "d_gr_time")]
    pub graceful_restart_time: u16,
    /// Control socket path (default /run/steer/server.sock).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Group owning the control socket (mode 0660), so its members can run
    /// `steer show`; default the daemon's own group.
    #[serde(default)]
    pub socket_group: Option<String>,
    /// Address:port for Prometheus metrics over HTTP (off by default).
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// BFD timers for every appliance with `bfd = true`.
    #[serde(default)]
    pub bfd: BfdConfig,
    /// Network appliances (eBGP).
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// Host agents (iBGP, dynamic neighbours).
    #[serde(default)]
    pub hosts: HostsConfig,
}

/// One appliance, `[[peer]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// A unique name used by `steer show`.
    pub name: String,
    /// The appliance's address.
    pub address: IpAddr,
    /// The appliance's AS (must differ from ours: appliances are eBGP).
    pub asn: u32,
    /// Prefixes accepted before the session is dropped with Cease/1.
    #[serde(default = "d_max_prefixes")]
    pub max_prefixes: u32,
    /// Never connect out; wait for the appliance.
    #[serde(default)]
    pub passive: bool,
    /// Hold time for this peer (defaults to the global one).
    #[serde(default)]
    pub hold_time: Option<u16>,
    /// Keepalive for this peer (defaults to the global one).
    #[serde(default)]
    pub keepalive: Option<u16>,
    /// Send-hold time for this peer (defaults to the global one).
    #[serde(default)]
    pub send_hold_time: Option<u32>,
    /// Send-queue limit for this peer (defaults to the global one).
    #[serde(default)]
    pub send_queue_limit: Option<usize>,
    /// TCP-MD5 key (RFC 2385) for this appliance; both ends must have the same one.
    #[serde(default)]
    pub password: Option<String>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL 255, so
    /// only a directly connected appliance can reach the session.
    #[serde(default)]
    pub ttl_security: bool,
    /// Keep this appliance's routes (stale) while it restarts, when it
    /// asks for it (RFC 4724 helper). Off by default: when an appliance's
    /// session ends, its routes are withdrawn at once so traffic fails
    /// over to the others.
    #[serde(default)]
    pub graceful_restart: bool,
    /// Run BFD with this appliance (RFC 5880/5881/5883) and end the BGP
    /// session at once when it goes Down (RFC 5882, Cease/10 of RFC 9384).
    #[serde(default)]
    pub bfd: bool,
    /// BFD interval for this appliance (ms; defaults to `[bfd]`).
    #[serde(default)]
    pub bfd_interval_ms: Option<u32>,
    /// BFD Detect Mult for this appliance (defaults to `[bfd]`).
    #[serde(default)]
    pub bfd_multiplier: Option<u8>,
    /// Multihop BFD (RFC 5883, UDP 4784) instead of single hop (RFC 5881);
    /// unset: multihop when the address is not on a connected subnet.
    #[serde(default)]
    pub bfd_multihop: Option<bool>,
    /// Lowest TTL accepted from this appliance on multihop BFD (defaults
    /// to `[bfd]`).
    #[serde(default)]
    pub bfd_min_ttl: Option<u8>,
}

/// `[bfd]`: timers shared by every appliance with `bfd = true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfdConfig {
    /// Desired Min TX and Required Min RX interval (ms).
    #[serde(default = "d_bfd_interval")]
    pub interval_ms: u32,
    /// Detect Mult: the peer declares us down after this many intervals.
    #[serde(default = "d_bfd_multiplier")]
    pub multiplier: u8,
    /// Lowest TTL accepted on multihop sessions (RFC 5883 §5); 255 minus
    /// the routers allowed between.
    #[serde(default = "d_bfd_min_ttl")]
    pub min_ttl: u8,
}

impl Default for BfdConfig {
    fn default() -> Self {
        BfdConfig {
            interval_ms: defaults::BFD_INTERVAL_MS,
            multiplier: defaults::BFD_MULTIPLIER,
            min_ttl: defaults::BFD_MIN_TTL,
        }
    }
}

/// The BFD parameters of one appliance, `[bfd]` with its overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerBfd {
    /// Interval (ms).
    pub interval_ms: u32,
    /// Detect Mult.
    pub multiplier: u8,
    /// Multihop, or `None` to detect.
    pub multihop: Option<bool>,
    /// Lowest TTL accepted on multihop.
    pub min_ttl: u8,
}

impl PeerConfig {
    /// This appliance's BFD parameters, when `bfd = true`.
    pub fn bfd(&self, global: &BfdConfig) -> Option<PeerBfd> {
        self.bfd.then(|| PeerBfd {
            interval_ms: self.bfd_interval_ms.unwrap_or(global.interval_ms),
            multiplier: self.bfd_multiplier.unwrap_or(global.multiplier),
            multihop: self.bfd_multihop,
            min_ttl: self.bfd_min_ttl.unwrap_or(global.min_ttl),
        })
    }
}

/// `[hosts]`: where agents connect from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsConfig {
    /// Source ranges accepted as iBGP host agents. A configured `[[peer]]`
    /// address inside a range is still that appliance.
    #[serde(default)]
    pub ranges: Vec<Prefix>,
    /// Prefixes accepted per host (default 64): an UPDATE that would go
    /// beyond it is refused whole and the session ends with Cease/1.
    #[serde(default = "d_host_max_prefixes")]
    pub max_prefixes: u32,
    /// Hold time proposed to hosts (defaults to the global one).
    #[serde(default)]
    pub hold_time: Option<u16>,
    /// Keepalive for hosts (defaults to the global one).
    #[serde(default)]
    pub keepalive: Option<u16>,
    /// Send-hold time for hosts (defaults to the global one).
    #[serde(default)]
    pub send_hold_time: Option<u32>,
    /// Send-queue limit per host (defaults to the global one).
    #[serde(default)]
    pub send_queue_limit: Option<usize>,
    /// TCP-MD5 key (RFC 2385) for every host in `ranges` (one kernel key per range); both ends must have the same one.
    #[serde(default)]
    pub password: Option<String>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL 255, so
    /// only a directly connected host can reach the session.
    #[serde(default)]
    pub ttl_security: bool,
    /// Keep a host's VM prefixes (stale) while its agent restarts (RFC
    /// 4724 helper), so appliances keep routing replies. On by default.
    #[serde(default = "d_true")]
    pub graceful_restart: bool,
    /// `[[hosts.allow]]`: when present, which hosts may announce which
    /// prefixes (a host matching no entry announces nothing).
    #[serde(default)]
    pub allow: Vec<HostAllow>,
}

/// One `[[hosts.allow]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAllow {
    /// Host addresses it applies to.
    pub range: Prefix,
    /// Prefixes (inside `vnet_prefixes`) those hosts may announce, and
    /// anything inside them, even inside another host's prefix.
    pub prefixes: Vec<Prefix>,
}

fn d_host_max_prefixes() -> u32 {
    defaults::HOST_MAX_PREFIXES
}

impl Default for HostsConfig {
    fn default() -> Self {
        HostsConfig {
            ranges: Vec::new(),
            max_prefixes: defaults::HOST_MAX_PREFIXES,
            allow: Vec::new(),
            hold_time: None,
            keepalive: None,
            send_hold_time: None,
            send_queue_limit: None,
            password: None,
            ttl_security: false,
            graceful_restart: true,
        }
    }
}

/// The agent's forwarding path on the VM interfaces (`dataplane`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataplaneSetting {
    /// Per interface kind, the hooks that measured fastest.
    #[default]
    Auto,
    /// The TC program alone (on the skb: keeps GSO and checksum offload).
    Tc,
    /// Native XDP, with the TC program behind it for what XDP passes.
    Xdp,
    /// No eBPF program: table 200 and the `ip rule`s only.
    Kernel,
}

/// The deprecated `xdp` key, an alias of `dataplane`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpSetting {
    /// `dataplane = "xdp"`.
    Native,
    /// `dataplane = "tc"`: generic XDP's point was to keep the skb's
    /// offload state, which the TC program does, faster.
    Generic,
    /// `dataplane = "kernel"`.
    Off,
}

impl XdpSetting {
    /// The `dataplane` value this alias stands for.
    pub fn dataplane(self) -> DataplaneSetting {
        match self {
            XdpSetting::Native => DataplaneSetting::Xdp,
            XdpSetting::Generic => DataplaneSetting::Tc,
            XdpSetting::Off => DataplaneSetting::Kernel,
        }
    }

    fn name(self) -> &'static str {
        match self {
            XdpSetting::Native => "native",
            XdpSetting::Generic => "generic",
            XdpSetting::Off => "off",
        }
    }
}

impl DataplaneSetting {
    /// The key's value as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            DataplaneSetting::Auto => "auto",
            DataplaneSetting::Tc => "tc",
            DataplaneSetting::Xdp => "xdp",
            DataplaneSetting::Kernel => "kernel",
        }
    }
}

/// How the agent installs ECMP routes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EcmpSetting {
    /// Let Steer pick (the strategy that measured fastest).
    #[default]
    Auto,
    /// RTA_MULTIPATH routes.
    Multipath,
    /// Nexthop objects and groups.
    Nexthop,
}

/// `steer agent` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Our AS: the route servers' AS (iBGP).
    pub asn: u32,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Route servers to peer with; all are used.
    pub route_servers: Vec<IpAddr>,
    /// TCP port of the route servers.
    #[serde(default = "d_port")]
    pub port: u16,
    /// Kernel table for learned routes.
    #[serde(default = "d_table")]
    pub table: u32,
    /// VM-facing interfaces: the eBPF hooks attach here and their traffic uses `table`.
    #[serde(default)]
    pub vm_interfaces: Vec<String>,
    /// The host's VM prefixes, announced so appliances can route back.
    #[serde(default)]
    pub vm_prefixes: Vec<Prefix>,
    /// Next hop for IPv6 VM prefixes on IPv4 sessions (this host's IPv6
    /// address towards the appliances); without it IPv6 VM prefixes go
    /// only over IPv6 sessions.
    #[serde(default)]
    pub ipv6_next_hop: Option<std::net::Ipv6Addr>,
    /// The VNet address space, always handled by the kernel's own routes.
    /// Learned from the route servers when empty.
    #[serde(default)]
    pub vnet_prefixes: Vec<Prefix>,
    /// Forwarding path: auto, tc, xdp or kernel.
    #[serde(default)]
    pub dataplane: Option<DataplaneSetting>,
    /// Deprecated alias of `dataplane`: native, generic or off.
    #[serde(default)]
    pub xdp: Option<XdpSetting>,
    /// With an eBPF dataplane, the return path on the uplinks (traffic from
    /// the appliances to the VMs); `false` keeps Steer's programs off the
    /// interfaces it was not given.
    #[serde(default = "d_true")]
    pub return_path: bool,
    /// aya-log debug events from the eBPF programs.
    #[serde(default)]
    pub xdp_debug: bool,
    /// bpffs directory for pinned maps and links (per instance).
    #[serde(default)]
    pub pin_dir: Option<PathBuf>,
    /// ECMP install strategy: auto, multipath or nexthop.
    #[serde(default)]
    pub ecmp: EcmpSetting,
    /// Priority of the first of the three `ip rule`s per VM interface.
    #[serde(default = "d_rule_priority")]
    pub rule_priority: u32,
    /// On SIGTERM remove routes, rules and the eBPF hooks instead of keeping the
    /// dataplane forwarding while the agent is down.
    #[serde(default)]
    pub flush_on_exit: bool,
    /// Keep resolved neighbour entries for next hops so the fast path can forward
    /// the first packet of a flow.
    #[serde(default = "d_true")]
    pub manage_neighbors: bool,
    /// Seconds to wait for End-of-RIB from every route server before
    /// removing state that no route server re-announced.
    #[serde(default = "d_stale_timeout")]
    pub stale_timeout: u64,
    /// Graceful-restart time advertised to the route servers (seconds).
    #[serde(default = "d_gr_time")]
    pub graceful_restart_time: u16,
    /// Seconds between FIB reconciles: re-read the kernel table, repair
    /// differences, retry refused changes, attach the eBPF hooks to VM interfaces that
    /// appeared.
    #[serde(default = "d_reconcile")]
    pub reconcile_interval: u64,
    /// Seconds a flow may be silent and keep its appliance (the eBPF flow
    /// table's idle timeout and the kernel's resilient nexthop groups' idle
    /// timer).
    #[serde(default = "d_flow_idle")]
    pub flow_idle_timeout: u32,
    /// Proposed hold time in seconds (0, or 3 and more).
    #[serde(default = "d_hold")]
    pub hold_time: u16,
    /// Keepalive interval in seconds (capped at a third of the hold time).
    #[serde(default = "d_keepalive")]
    pub keepalive: u16,
    /// First connect-retry delay in seconds; doubles per failure.
    #[serde(default = "d_connect_retry")]
    pub connect_retry: u64,
    /// Longest connect-retry delay in seconds.
    #[serde(default = "d_connect_retry_max")]
    pub connect_retry_max: u64,
    /// Seconds a route server may take none of our data before the session
    /// is reset (RFC 9687); unset: the larger of 8 minutes and twice the
    /// negotiated hold time.
    #[serde(default)]
    pub send_hold_time: Option<u32>,
    /// Unsent bytes a session's send queue may hold.
    #[serde(default = "d_send_queue_limit")]
    pub send_queue_limit: usize,
    /// TCP-MD5 key (RFC 2385) for the route-server sessions; both ends must have the same one.
    #[serde(default)]
    pub password: Option<String>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL 255, so
    /// only a directly connected route server can reach the session.
    #[serde(default)]
    pub ttl_security: bool,
    /// Control socket path (default /run/steer/agent.sock).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Group owning the control socket (mode 0660); default the daemon's.
    #[serde(default)]
    pub socket_group: Option<String>,
    /// Address:port for Prometheus metrics over HTTP (off by default).
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Longest `flow_idle_timeout` (s): a day. (The kernel takes up to about
/// 49 days as a resilient group's idle timer.)
const MAX_FLOW_IDLE_TIMEOUT: u32 = 86_400;

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|cause| ConfigError::Read {
        file: file.to_path_buf(),
        cause,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(file: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// The shortest BFD interval accepted (ms).
pub const BFD_INTERVAL_MIN_MS: u32 = 10;
/// The longest BFD interval accepted (ms).
pub const BFD_INTERVAL_MAX_MS: u32 = 60_000;

struct Check<'a> {
    file: &'a Path,
}

impl Check<'_> {
    fn fail(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn asn(&self, key: &str, asn: u32) -> Result<(), ConfigError> {
        if asn == 0 || asn == 23456 || asn == u32::MAX {
            return Err(self.fail(key, format!("{asn} is a reserved AS number")));
        }
        Ok(())
    }

    fn group(&self, key: &str, group: Option<&str>) -> Result<(), ConfigError> {
        match group {
            Some(g) if crate::control::socket::group_id(g).is_none() => {
                Err(self.fail(key, format!("`{g}` is not a group on this machine")))
            }
            _ => Ok(()),
        }
    }

    fn router_id(&self, key: &str, id: Ipv4Addr) -> Result<(), ConfigError> {
        if id.is_unspecified() {
            return Err(self.fail(key, "0.0.0.0 is not a valid BGP identifier"));
        }
        Ok(())
    }

    fn timers(&self, prefix: &str, hold: u16, keepalive: u16) -> Result<(), ConfigError> {
        if hold != 0 && hold < 3 {
            return Err(self.fail(
                format!("{prefix}hold_time"),
                format!("{hold} s is not allowed: use 0 (no keepalives) or at least 3"),
            ));
        }
        if hold != 0 && keepalive == 0 {
            return Err(self.fail(
                format!("{prefix}keepalive"),
                "0 only makes sense with hold_time = 0",
            ));
        }
        Ok(())
    }

    fn send(
        &self,
        prefix: &str,
        send_hold_time: Option<u32>,
        queue_limit: Option<usize>,
    ) -> Result<(), ConfigError> {
        if send_hold_time == Some(0) {
            return Err(self.fail(
                format!("{prefix}send_hold_time"),
                "must be at least 1 second (leave it out for RFC 9687's default: the larger of 8 minutes and twice the hold time)",
            ));
        }
        if let Some(l) = queue_limit
            && l < defaults::SEND_QUEUE_MIN
        {
            return Err(self.fail(
                format!("{prefix}send_queue_limit"),
                format!(
                    "{l} bytes cannot hold one message of {} bytes",
                    defaults::SEND_QUEUE_MIN
                ),
            ));
        }
        Ok(())
    }

    fn password(&self, key: &str, password: Option<&str>) -> Result<(), ConfigError> {
        match password {
            Some(p) if p.is_empty() || p.len() > 80 => Err(self.fail(
                key,
                format!(
                    "a TCP-MD5 password has 1 to 80 bytes (this one has {})",
                    p.len()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn bfd(
        &self,
        prefix: &str,
        interval_ms: u32,
        multiplier: u8,
        min_ttl: u8,
    ) -> Result<(), ConfigError> {
        if !(BFD_INTERVAL_MIN_MS..=BFD_INTERVAL_MAX_MS).contains(&interval_ms) {
            return Err(self.fail(
                format!("{prefix}interval_ms"),
                format!(
                    "{interval_ms} ms is outside {BFD_INTERVAL_MIN_MS}-{BFD_INTERVAL_MAX_MS} ms"
                ),
            ));
        }
        if multiplier == 0 {
            return Err(self.fail(
                format!("{prefix}multiplier"),
                "0 is not allowed: the peer needs at least one interval to detect a failure (RFC 5880 §4.1)",
            ));
        }
        if min_ttl == 0 {
            return Err(self.fail(format!("{prefix}min_ttl"), "must be 1-255"));
        }
        Ok(())
    }

    fn prefixes(&self, key: &str, list: &[Prefix]) -> Result<(), ConfigError> {
        let mut seen = BTreeSet::new();
        for (i, p) in list.iter().enumerate() {
            if !seen.insert(p) {
                return Err(self.fail(format!("{key}[{i}]"), format!("{p} is listed twice")));
            }
        }
        Ok(())
    }
}

impl Timers {
    fn check(&self, c: &Check<'_>) -> Result<(), ConfigError> {
        c.timers("", self.hold_time, self.keepalive)?;
        if self.connect_retry == 0 {
            return Err(c.fail("connect_retry", "must be at least 1 second"));
        }
        if self.connect_retry_max < self.connect_retry {
            return Err(c.fail(
                "connect_retry_max",
                format!(
                    "{} s is less than connect_retry ({} s)",
                    self.connect_retry_max, self.connect_retry
                ),
            ));
        }
        Ok(())
    }
}

/// The names of the fields that differ between two values, for the
/// fields listed: `changed_keys!(old, new; asn, router_id)`.
macro_rules! changed_keys {
    ($old:expr, $new:expr; $($key:ident),* $(,)?) => {{
        let mut keys: Vec<&'static str> = Vec::new();
        $(if $old.$key != $new.$key {
            keys.push(stringify!($key));
        })*
        keys
    }};
}
pub(crate) use changed_keys;

/// Why a new configuration cannot be applied to a running daemon.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReloadError {
    /// These keys changed and need a restart of the daemon.
    #[error("{} changed: restart steer {role} to apply (nothing was changed)", .keys.join(", "))]
    NeedsRestart {
        /// `server` or `agent`.
        role: &'static str,
        /// The keys.
        keys: Vec<&'static str>,
    },
}

/// A configuration file type: parsed with serde, then checked as a whole.
pub trait ConfigFile: Sized + for<'de> Deserialize<'de> {
    /// Checks that need more than one key, naming the key at fault.
    fn validate(&self, file: &Path) -> Result<(), ConfigError>;

    /// Read, parse and validate a configuration file.
    fn load(file: &Path) -> Result<Self, ConfigError> {
        Self::from_str(file, &read(file)?)
    }

    /// Parse and validate configuration text; `file` names it in errors.
    fn from_str(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = parse(file, text)?;
        cfg.validate(file)?;
        Ok(cfg)
    }
}

impl ConfigFile for ServerConfig {
    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        self.check(file)
    }
}

impl ConfigFile for AgentConfig {
    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        self.check(file)
    }
}

impl ServerConfig {
    /// The session timers.
    pub fn timers(&self) -> Timers {
        Timers {
            hold_time: self.hold_time,
            keepalive: self.keepalive,
            connect_retry: self.connect_retry,
            connect_retry_max: self.connect_retry_max,
        }
    }
    fn check(&self, file: &Path) -> Result<(), ConfigError> {
        let c = Check { file };
        c.asn("asn", self.asn)?;
        c.router_id("router_id", self.router_id)?;
        self.timers().check(&c)?;
        c.prefixes("vnet_prefixes", &self.vnet_prefixes)?;
        c.prefixes("hosts.ranges", &self.hosts.ranges)?;
        c.group("socket_group", self.socket_group.as_deref())?;
        if self.listen.is_empty() {
            return Err(c.fail("listen", "needs at least one address (0.0.0.0 for all)"));
        }
        if self.port == 0 {
            return Err(c.fail("port", "0 is not a TCP port"));
        }
        c.bfd(
            "bfd.",
            self.bfd.interval_ms,
            self.bfd.multiplier,
            self.bfd.min_ttl,
        )?;
        let mut names = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            let k = |f: &str| format!("peer[{i}].{f}");
            if p.name.is_empty() || p.name.contains(char::is_whitespace) {
                return Err(c.fail(k("name"), "must be a non-empty word"));
            }
            if !names.insert(p.name.as_str()) {
                return Err(c.fail(k("name"), format!("`{}` is used by another peer", p.name)));
            }
            if !addrs.insert(p.address) {
                return Err(c.fail(
                    k("address"),
                    format!("{} is used by another peer", p.address),
                ));
            }
            c.asn(&k("asn"), p.asn)?;
            if p.asn == self.asn {
                return Err(c.fail(
                    k("asn"),
                    format!(
                        "{} is the route server's own AS; appliances are eBGP peers (hosts connect through [hosts])",
                        p.asn
                    ),
                ));
            }
            if p.max_prefixes == 0 {
                return Err(c.fail(k("max_prefixes"), "must be at least 1"));
            }
            c.timers(
                &format!("peer[{i}]."),
                p.hold_time.unwrap_or(self.hold_time),
                p.keepalive.unwrap_or(self.keepalive),
            )?;
            c.send(&format!("peer[{i}]."), p.send_hold_time, p.send_queue_limit)?;
            c.password(&format!("peer[{i}].password"), p.password.as_deref())?;
            if p.password.is_none()
                && let Some(r) = self
                    .hosts
                    .ranges
                    .iter()
                    .find(|r| self.hosts.password.is_some() && r.contains_addr(p.address))
            {
                return Err(c.fail(
                    format!("peer[{i}].password"),
                    format!(
                        "{} lies in hosts range {r}, which has a password: the kernel would require it from this appliance too; give the appliance its own password",
                        p.address
                    ),
                ));
            }
            match p.bfd(&self.bfd) {
                Some(b) => c.bfd(&k("bfd_"), b.interval_ms, b.multiplier, b.min_ttl)?,
                None => {
                    let set = [
                        ("bfd_interval_ms", p.bfd_interval_ms.is_some()),
                        ("bfd_multiplier", p.bfd_multiplier.is_some()),
                        ("bfd_multihop", p.bfd_multihop.is_some()),
                        ("bfd_min_ttl", p.bfd_min_ttl.is_some()),
                    ];
                    if let Some((key, _)) = set.iter().find(|(_, s)| *s) {
                        return Err(
                            c.fail(k(key), "has no effect without `bfd = true` for this peer")
                        );
                    }
                }
            }
        }
        c.send("", self.send_hold_time, Some(self.send_queue_limit))?;
        c.send(
            "hosts.",
            self.hosts.send_hold_time,
            self.hosts.send_queue_limit,
        )?;
        c.password("hosts.password", self.hosts.password.as_deref())?;
        c.timers(
            "hosts.",
            self.hosts.hold_time.unwrap_or(self.hold_time),
            self.hosts.keepalive.unwrap_or(self.keepalive),
        )?;
        if self.hosts.max_prefixes == 0 {
            return Err(c.fail("hosts.max_prefixes", "must be at least 1"));
        }
        for (i, a) in self.hosts.allow.iter().enumerate() {
            let k = |f: &str| format!("hosts.allow[{i}].{f}");
            if !self.hosts.ranges.iter().any(|r| r.covers(&a.range)) {
                return Err(c.fail(
                    k("range"),
                    format!("{} is not inside any of hosts.ranges", a.range),
                ));
            }
            if a.prefixes.is_empty() {
                return Err(c.fail(k("prefixes"), "lists no prefix"));
            }
            if let Some(p) = a
                .prefixes
                .iter()
                .find(|p| !self.vnet_prefixes.iter().any(|v| v.covers(p)))
            {
                return Err(c.fail(
                    k("prefixes"),
                    format!("{p} is not inside vnet_prefixes; hosts may only announce VNet space"),
                ));
            }
        }
        Ok(())
    }

    /// The control socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/steer/server.sock"))
    }
}

impl AgentConfig {
    /// The session timers.
    pub fn timers(&self) -> Timers {
        Timers {
            hold_time: self.hold_time,
            keepalive: self.keepalive,
            connect_retry: self.connect_retry,
            connect_retry_max: self.connect_retry_max,
        }
    }
    fn check(&self, file: &Path) -> Result<(), ConfigError> {
        let c = Check { file };
        c.asn("asn", self.asn)?;
        c.router_id("router_id", self.router_id)?;
        self.timers().check(&c)?;
        c.send("", self.send_hold_time, Some(self.send_queue_limit))?;
        c.password("password", self.password.as_deref())?;
        if self.route_servers.is_empty() {
            return Err(c.fail("route_servers", "needs at least one route server address"));
        }
        let mut seen = BTreeSet::new();
        for (i, a) in self.route_servers.iter().enumerate() {
            if !seen.insert(a) {
                return Err(c.fail(
                    format!("route_servers[{i}]"),
                    format!("{a} is listed twice"),
                ));
            }
        }
        if matches!(self.table, 0 | 253..=255) {
            return Err(c.fail(
                "table",
                format!(
                    "{} is a reserved kernel table (0, default 253, main 254, local 255)",
                    self.table
                ),
            ));
        }
        c.prefixes("vm_prefixes", &self.vm_prefixes)?;
        c.prefixes("vnet_prefixes", &self.vnet_prefixes)?;
        c.group("socket_group", self.socket_group.as_deref())?;
        let mut ifs = BTreeSet::new();
        for (i, name) in self.vm_interfaces.iter().enumerate() {
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                return Err(c.fail(
                    format!("vm_interfaces[{i}]"),
                    format!(
                        "`{name}` is not a valid interface name (1-15 characters, no '/' or spaces)"
                    ),
                ));
            }
            if !ifs.insert(name) {
                return Err(c.fail(
                    format!("vm_interfaces[{i}]"),
                    format!("`{name}` is listed twice"),
                ));
            }
        }
        if self.reconcile_interval == 0 {
            return Err(c.fail("reconcile_interval", "must be at least 1 second"));
        }
        if !(1..=MAX_FLOW_IDLE_TIMEOUT).contains(&self.flow_idle_timeout) {
            return Err(c.fail(
                "flow_idle_timeout",
                format!(
                    "{} is out of range: a flow's idle timeout is 1 to {MAX_FLOW_IDLE_TIMEOUT} \
                     seconds (one day)",
                    self.flow_idle_timeout
                ),
            ));
        }
        if let (Some(d), Some(x)) = (self.dataplane, self.xdp) {
            return Err(c.fail(
                "xdp",
                format!(
                    "`xdp` is the deprecated alias of `dataplane`, which is set too (`{}`); \
                     keep only `dataplane` (`xdp = \"{}\"` means `dataplane = \"{}\"`)",
                    d.name(),
                    x.name(),
                    x.dataplane().name()
                ),
            ));
        }
        if self.rule_priority == 0 || self.rule_priority > 32000 {
            return Err(c.fail(
                "rule_priority",
                "must be between 1 and 32000 so the rules sit before the main table's (32766)",
            ));
        }
        Ok(())
    }

    /// The control socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/steer/agent.sock"))
    }

    /// The forwarding path, and what to log when the deprecated `xdp` key
    /// chose it.
    pub fn dataplane(&self) -> (DataplaneSetting, Option<String>) {
        match (self.dataplane, self.xdp) {
            (Some(d), _) => (d, None),
            (None, Some(x)) => (
                x.dataplane(),
                Some(format!(
                    "config key `xdp` is deprecated: `xdp = \"{}\"` now means `dataplane = \"{}\"`; \
                     write that instead (or leave it out: the default `auto` measured fastest)",
                    x.name(),
                    x.dataplane().name()
                )),
            ),
            (None, None) => (DataplaneSetting::Auto, None),
        }
    }

    /// The bpffs directory for this agent's pinned objects.
    pub fn pin_path(&self) -> PathBuf {
        self.pin_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/sys/fs/bpf/steer/agent-{}", self.table)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_SERVER: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]            # BGP on port 179 of these addresses
vnet_prefixes = ["10.1.0.0/16"]  # advertised to every appliance
branch_to_branch = false         # when true, one appliance's routes go to the others

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010
max_prefixes = 1000              # the default; above it the session is dropped

[[peer]]
name = "firewall"
address = "10.1.0.20"
asn = 65020

[hosts]
ranges = ["10.1.0.0/24"]         # host agents connect from here (iBGP, no per-host config)
"#;

    const ISSUE_AGENT: &str = r#"
asn = 65515
router_id = "10.1.0.31"
route_servers = ["10.1.0.4", "10.1.0.5"]  # iBGP to each; both are used
table = 200                               # kernel table for learned routes
vm_interfaces = ["vm1"]                   # the eBPF hooks attach here; their traffic looks up `table`
vm_prefixes = ["10.1.1.0/24"]             # announced, so appliances can route back
dataplane = "auto"                        # auto | tc | xdp | kernel
"#;

    fn server(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_str(Path::new("rs.toml"), text)
    }

    fn agent(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::from_str(Path::new("agent.toml"), text)
    }

    #[test]
    fn the_issue_server_example_loads_with_defaults() {
        let c = server(ISSUE_SERVER).unwrap();
        assert_eq!(c.asn, 65515);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[1].max_prefixes, 1000);
        assert_eq!(c.hold_time, 180);
        assert_eq!(c.keepalive, 60);
        assert_eq!(c.port, 179);
        assert_eq!(c.hosts.ranges[0].to_string(), "10.1.0.0/24");
        assert_eq!(c.socket_path(), PathBuf::from("/run/steer/server.sock"));
    }

    #[test]
    fn the_issue_agent_example_loads_with_defaults() {
        let c = agent(ISSUE_AGENT).unwrap();
        assert_eq!(c.route_servers.len(), 2);
        assert_eq!(c.table, 200);
        assert_eq!(c.dataplane(), (DataplaneSetting::Auto, None));
        assert!(!c.flush_on_exit);
        assert_eq!(c.rule_priority, 1000);
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_file_and_key() {
        let e = server(&format!("{ISSUE_SERVER}\nbranch_to_brnch = true\n")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("rs.toml: "), "{msg}");
        assert!(msg.contains("branch_to_brnch"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let e = server(&ISSUE_SERVER.replace("asn = 65010", "asn = \"65010\"")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 11"), "{msg}");
    }

    #[test]
    fn host_bits_in_a_prefix_name_the_canonical_form() {
        let e = server(&ISSUE_SERVER.replace("10.1.0.0/16", "10.1.0.4/16")).unwrap_err();
        assert!(e.to_string().contains("did you mean 10.1.0.0/16"), "{e}");
    }

    #[test]
    fn appliance_in_our_own_as_is_refused() {
        let e = server(&ISSUE_SERVER.replace("asn = 65020", "asn = 65515")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `peer[1].asn`: 65515 is the route server's own AS; appliances are eBGP peers (hosts connect through [hosts])"
        );
    }

    #[test]
    fn duplicate_peer_names_and_addresses_are_refused() {
        let e = server(&ISSUE_SERVER.replace("\"firewall\"", "\"sdwan\"")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `peer[1].name`: `sdwan` is used by another peer"
        );
        let e = server(&ISSUE_SERVER.replace("10.1.0.20", "10.1.0.10")).unwrap_err();
        assert!(e.to_string().contains("peer[1].address"), "{e}");
    }

    #[test]
    fn hosts_default_to_64_prefixes_and_no_allow_map() {
        let c = server(ISSUE_SERVER).unwrap();
        assert_eq!(c.hosts.max_prefixes, 64);
        assert!(c.hosts.allow.is_empty());
    }

    #[test]
    fn a_hosts_allow_entry_outside_the_ranges_or_the_vnet_is_refused_naming_the_key() {
        let entry = |range: &str, prefixes: &str| {
            server(&format!(
                "{ISSUE_SERVER}\n[[hosts.allow]]\nrange = \"{range}\"\nprefixes = [{prefixes}]\n"
            ))
        };
        let ok = entry("10.1.0.31/32", "\"10.1.1.0/24\"").unwrap();
        assert_eq!(ok.hosts.allow[0].prefixes[0].to_string(), "10.1.1.0/24");
        assert_eq!(
            entry("192.0.2.1/32", "\"10.1.1.0/24\"")
                .unwrap_err()
                .to_string(),
            "rs.toml: key `hosts.allow[0].range`: 192.0.2.1/32 is not inside any of hosts.ranges"
        );
        assert_eq!(
            entry("10.1.0.31/32", "\"192.0.2.0/24\"")
                .unwrap_err()
                .to_string(),
            "rs.toml: key `hosts.allow[0].prefixes`: 192.0.2.0/24 is not inside vnet_prefixes; hosts may only announce VNet space"
        );
        assert_eq!(
            entry("10.1.0.31/32", "").unwrap_err().to_string(),
            "rs.toml: key `hosts.allow[0].prefixes`: lists no prefix"
        );
    }

    #[test]
    fn hold_time_of_two_is_refused() {
        let e = server(&format!("hold_time = 2\n{ISSUE_SERVER}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `hold_time`: 2 s is not allowed: use 0 (no keepalives) or at least 3"
        );
        assert!(server(&format!("hold_time = 0\nkeepalive = 0\n{ISSUE_SERVER}")).is_ok());
    }

    #[test]
    fn send_hold_time_and_queue_limit_are_checked_per_peer_and_for_hosts() {
        let c = server(ISSUE_SERVER).unwrap();
        assert_eq!(c.send_hold_time, None);
        assert_eq!(c.send_queue_limit, 64 << 20);
        let e = server(&ISSUE_SERVER.replace("asn = 65020", "asn = 65020\nsend_hold_time = 0"))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rs.toml: key `peer[1].send_hold_time`: must be at least 1 second"),
            "{e}"
        );
        let e = server(&format!("{ISSUE_SERVER}send_queue_limit = 4096\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `hosts.send_queue_limit`: 4096 bytes cannot hold one message of 65535 bytes"
        );
        let c = server(&format!(
            "send_hold_time = 20\n{ISSUE_SERVER}send_hold_time = 30\n"
        ))
        .unwrap();
        assert_eq!(
            (c.send_hold_time, c.hosts.send_hold_time),
            (Some(20), Some(30))
        );
        let e = agent(&format!("send_hold_time = 0\n{ISSUE_AGENT}")).unwrap_err();
        assert!(e.to_string().contains("key `send_hold_time`"), "{e}");
    }

    #[test]
    fn passwords_are_checked_and_an_appliance_in_a_protected_host_range_needs_its_own() {
        let hosts_key = format!("{ISSUE_SERVER}password = \"hosts-key\"\nttl_security = true\n");
        let e = server(&hosts_key).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `peer[0].password`: 10.1.0.10 lies in hosts range 10.1.0.0/24, which has a password: the kernel would require it from this appliance too; give the appliance its own password"
        );
        let keyed = |text: &str, key: &str| {
            text.replace("asn = 65010", &format!("asn = 65010\npassword = \"{key}\""))
                .replace("asn = 65020", "asn = 65020\npassword = \"fw\"")
        };
        let c = server(&keyed(&hosts_key, "sdwan")).unwrap();
        assert_eq!(c.hosts.password.as_deref(), Some("hosts-key"));
        assert_eq!(c.peers[0].password.as_deref(), Some("sdwan"));
        assert!(c.hosts.ttl_security && !c.peers[0].ttl_security);
        let long = "x".repeat(81);
        let e = server(&keyed(ISSUE_SERVER, &long)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `peer[0].password`: a TCP-MD5 password has 1 to 80 bytes (this one has 81)"
        );
        let e = server(&format!("{ISSUE_SERVER}password = \"\"\n")).unwrap_err();
        assert!(e.to_string().contains("key `peer[0].password`"), "{e}");
        let e = server(&keyed(&format!("{ISSUE_SERVER}password = \"\"\n"), "a")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rs.toml: key `hosts.password`: a TCP-MD5 password"),
            "{e}"
        );
        let e = agent(&format!("password = \"\"\n{ISSUE_AGENT}")).unwrap_err();
        assert!(e.to_string().contains("key `password`"), "{e}");
        let c = agent(&format!(
            "password = \"k\"\nttl_security = true\n{ISSUE_AGENT}"
        ))
        .unwrap();
        assert_eq!((c.password.as_deref(), c.ttl_security), (Some("k"), true));
    }

    #[test]
    fn bfd_defaults_to_300_ms_times_3_and_peers_override_it() {
        let text = ISSUE_SERVER.replace(
            "asn = 65020\n",
            "asn = 65020\nbfd = true\nbfd_interval_ms = 50\nbfd_multihop = true\n",
        );
        let c = server(&text).unwrap();
        assert_eq!(c.peers[0].bfd(&c.bfd), None, "off unless bfd = true");
        assert_eq!(
            c.peers[1].bfd(&c.bfd),
            Some(PeerBfd {
                interval_ms: 50,
                multiplier: 3,
                multihop: Some(true),
                min_ttl: 1
            })
        );
        let c = server(&format!(
            "{ISSUE_SERVER}\n[bfd]\ninterval_ms = 100\nmultiplier = 5\n"
        ))
        .unwrap();
        assert_eq!((c.bfd.interval_ms, c.bfd.multiplier), (100, 5));
    }

    #[test]
    fn bad_bfd_timers_name_their_key() {
        let e = server(&format!("{ISSUE_SERVER}\n[bfd]\nmultiplier = 0\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `bfd.multiplier`: 0 is not allowed: the peer needs at least one interval to detect a failure (RFC 5880 §4.1)"
        );
        let e = server(&ISSUE_SERVER.replace(
            "asn = 65020\n",
            "asn = 65020\nbfd = true\nbfd_interval_ms = 5\n",
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `peer[1].bfd_interval_ms`: 5 ms is outside 10-60000 ms"
        );
        let e = server(&format!("{ISSUE_SERVER}\n[bfd]\nintervall_ms = 100\n")).unwrap_err();
        assert!(e.to_string().contains("intervall_ms"), "{e}");
    }

    #[test]
    fn a_per_peer_bfd_key_without_bfd_true_is_refused() {
        let e = server(&ISSUE_SERVER.replace("asn = 65020\n", "asn = 65020\nbfd_multiplier = 5\n"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rs.toml: key `peer[1].bfd_multiplier`: has no effect without `bfd = true` for this peer"
        );
    }

    #[test]
    fn reserved_table_is_refused() {
        let e = agent(&ISSUE_AGENT.replace("table = 200", "table = 254")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("agent.toml: key `table`: 254 is a reserved"),
            "{e}"
        );
    }

    #[test]
    fn bad_dataplane_is_refused_naming_the_value() {
        let e = agent(&ISSUE_AGENT.replace("\"auto\"", "\"turbo\"")).unwrap_err();
        assert!(e.to_string().contains("turbo"), "{e}");
        assert!(e.to_string().starts_with("agent.toml: "), "{e}");
    }

    #[test]
    fn the_flow_idle_timeout_defaults_to_300_s_and_is_bounded() {
        let c = agent(ISSUE_AGENT).unwrap();
        assert_eq!(c.flow_idle_timeout, 300);
        let c = agent(&format!("{ISSUE_AGENT}flow_idle_timeout = 3600\n")).unwrap();
        assert_eq!(c.flow_idle_timeout, 3600);
        for bad in ["0", "86401"] {
            let e = agent(&format!("{ISSUE_AGENT}flow_idle_timeout = {bad}\n")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "agent.toml: key `flow_idle_timeout`: {bad} is out of range: a flow's idle \
                     timeout is 1 to 86400 seconds (one day)"
                )
            );
        }
    }

    #[test]
    fn the_return_path_is_on_unless_switched_off() {
        assert!(agent(ISSUE_AGENT).unwrap().return_path);
        let c = agent(&format!("{ISSUE_AGENT}return_path = false\n")).unwrap();
        assert!(!c.return_path);
        let e = agent(&format!("{ISSUE_AGENT}return_path = \"off\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("agent.toml: "), "{e}");
        assert!(e.to_string().contains("return_path"), "{e}");
    }

    #[test]
    fn the_dataplane_defaults_to_auto() {
        let c = agent(&ISSUE_AGENT.replace("dataplane = \"auto\"", "")).unwrap();
        assert_eq!(c.dataplane(), (DataplaneSetting::Auto, None));
    }

    #[test]
    fn the_deprecated_xdp_key_maps_onto_dataplane_with_a_note() {
        for (old, new) in [
            ("native", DataplaneSetting::Xdp),
            ("generic", DataplaneSetting::Tc),
            ("off", DataplaneSetting::Kernel),
        ] {
            let text = ISSUE_AGENT.replace("dataplane = \"auto\"", &format!("xdp = \"{old}\""));
            let (got, note) = agent(&text).unwrap().dataplane();
            assert_eq!(got, new, "xdp = {old}");
            let note = note.expect("a deprecation note");
            assert!(
                note.contains(&format!("dataplane = \"{}\"", new.name())),
                "{note}"
            );
        }
    }

    #[test]
    fn both_dataplane_and_xdp_are_refused() {
        let e = agent(&format!("xdp = \"off\"\n{ISSUE_AGENT}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "agent.toml: key `xdp`: `xdp` is the deprecated alias of `dataplane`, which is set \
             too (`auto`); keep only `dataplane` (`xdp = \"off\"` means `dataplane = \"kernel\"`)"
        );
    }

    #[test]
    fn agent_without_route_servers_is_refused() {
        let e = agent(&ISSUE_AGENT.replace("[\"10.1.0.4\", \"10.1.0.5\"]", "[]")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "agent.toml: key `route_servers`: needs at least one route server address"
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = ServerConfig::load(Path::new("/nonexistent/rs.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/rs.toml: cannot read"),
            "{e}"
        );
    }
}
