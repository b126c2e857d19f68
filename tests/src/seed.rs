//! The seed scenario of DESIGN.md, built once for the tests and the demo
//! (`cargo xtask demo`): one or two `steer server`s on the VNet LAN, BIRD as
//! the SD-WAN appliance announcing on-prem 10.250.0.0/16, FRR as the
//! firewall announcing 0.0.0.0/0, and hosts running `steer agent`, each
//! with a VM namespace behind its `vm<N>` interface.
//!
//! ```text
//!   sdwan 10.1.0.10 (BIRD, AS 65010)     firewall 10.1.0.20 (FRR, AS 65020)
//!        \________ LAN 10.1.0.0/24: rs1 10.1.0.4, rs2 10.1.0.5 ________/
//!                host1 10.1.0.31 -- vm1 10.1.1.10 (10.1.1.1 on host1)
//!                host2 10.1.0.32 -- vm2 10.1.2.10 (10.1.2.1 on host2)
//! ```

use std::path::PathBuf;

use anyhow::Result;

use crate::bird::{Bird, BirdConfig};
use crate::daemon::BgpDaemon;
use crate::frr::{Frr, FrrConfig};
use crate::lab::{Lab, Lan};
use crate::netns::Netns;
use crate::route::{Announce, Neighbor};
use crate::steer::{Role, Steer};

/// The route servers' AS (as Azure's).
pub const RS_ASN: u32 = 65515;
/// The SD-WAN appliance's address and AS.
pub const SDWAN: (&str, u32) = ("10.1.0.10", 65010);
/// The firewall appliance's address and AS.
pub const FIREWALL: (&str, u32) = ("10.1.0.20", 65020);
/// An on-prem address (on the SD-WAN appliance's loopback).
pub const ON_PREM_HOST: &str = "10.250.0.1";
/// An "internet" address (on the firewall's loopback).
pub const INTERNET_HOST: &str = "203.0.113.1";

/// The address of route server `i` (0-based): 10.1.0.4, 10.1.0.5, ...
pub fn rs_addr(i: usize) -> String {
    format!("10.1.0.{}", 4 + i)
}

/// What to build.
#[derive(Clone, Debug)]
pub struct SeedOptions {
    /// How many route servers (the demo runs two, as deployed).
    pub route_servers: usize,
    /// How many hosts, each with one VM.
    pub hosts: u8,
    /// Lines appended to every route server's config.
    pub server_extra: String,
    /// Lines appended to every agent's config (e.g. `dataplane = "tc"`).
    pub agent_extra: String,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            route_servers: 1,
            hosts: 2,
            server_extra: String::new(),
            agent_extra: String::new(),
        }
    }
}

/// A host of the seed: its namespace, agent, VM and pin dir.
pub struct SeedHost {
    /// The host's namespace (`host<N>`).
    pub ns: Netns,
    /// `steer agent`.
    pub agent: Steer,
    /// The VM's namespace (`vm<N>`).
    pub vm: Netns,
    /// The agent's bpffs pin dir.
    pub pins: PathBuf,
}

/// The running seed scenario; everything is stopped and removed on drop.
pub struct Seed {
    /// The route servers with their namespaces (`rs1`, `rs2`).
    pub route_servers: Vec<(Netns, Steer)>,
    /// The SD-WAN appliance.
    pub sdwan: Bird,
    /// The firewall appliance.
    pub firewall: Frr,
    /// The hosts.
    pub hosts: Vec<SeedHost>,
    /// The VNet LAN.
    pub lan: Lan,
    /// The lab (dropped last, after the daemons).
    pub lab: Lab,
}

/// A route server's config (short timers so sessions come up in seconds).
pub fn server_config(i: usize, extra: &str) -> String {
    let addr = rs_addr(i);
    format!(
        r#"asn = {RS_ASN}
router_id = "{addr}"
listen = ["{addr}"]
vnet_prefixes = ["10.1.0.0/16"]
branch_to_branch = false
hold_time = 9
keepalive = 3
connect_retry = 1

[[peer]]
name = "sdwan"
address = "{}"
asn = {}

[[peer]]
name = "firewall"
address = "{}"
asn = {}

[hosts]
ranges = ["10.1.0.0/24"]
{extra}
"#,
        SDWAN.0, SDWAN.1, FIREWALL.0, FIREWALL.1
    )
}

/// Host `n`'s agent config (1-based), peering with `route_servers` servers.
pub fn agent_config(n: u8, route_servers: usize, pins: &std::path::Path, extra: &str) -> String {
    let servers: Vec<String> = (0..route_servers)
        .map(|i| format!("\"{}\"", rs_addr(i)))
        .collect();
    format!(
        r#"asn = {RS_ASN}
router_id = "10.1.0.3{n}"
route_servers = [{}]
table = 200
vm_interfaces = ["vm{n}"]
vm_prefixes = ["10.1.{n}.0/24"]
pin_dir = "{}"
hold_time = 9
keepalive = 3
connect_retry = 1
stale_timeout = 5
{extra}
"#,
        servers.join(", "),
        pins.display()
    )
}

impl Seed {
    /// Builds the scenario in `lab` and waits until every session is
    /// Established (as the appliances and the agents report them).
    pub fn start(mut lab: Lab, opts: &SeedOptions) -> Result<Seed> {
        let lan = lab.lan("lan")?;
        let sdwan_ns = lab.on_lan(&lan, "sdwan", &format!("{}/24", SDWAN.0))?;
        let fw_ns = lab.on_lan(&lan, "firewall", &format!("{}/24", FIREWALL.0))?;
        sdwan_ns.ip(&format!("addr add {ON_PREM_HOST}/16 dev lo"))?;
        fw_ns.ip(&format!("addr add {INTERNET_HOST}/24 dev lo"))?;

        let mut route_servers = Vec::new();
        let mut bird = BirdConfig::new(SDWAN.0, SDWAN.1).announce(Announce::new("10.250.0.0/16"));
        let mut frr =
            FrrConfig::new("firewall", FIREWALL.0, FIREWALL.1).announce(Announce::new("0.0.0.0/0"));
        for i in 0..opts.route_servers {
            let name = format!("rs{}", i + 1);
            let ns = lab.on_lan(&lan, &name, &format!("{}/24", rs_addr(i)))?;
            let rs = Steer::start(&ns, Role::Server, &server_config(i, &opts.server_extra))?;
            route_servers.push((ns, rs));
            bird = bird.neighbor(Neighbor::new(&name, &rs_addr(i), RS_ASN));
            frr = frr.neighbor(Neighbor::new(&name, &rs_addr(i), RS_ASN));
        }
        let sdwan = Bird::start(&sdwan_ns, bird)?;
        let firewall = Frr::start(&fw_ns, frr)?;

        let mut hosts = Vec::new();
        for n in 1..=opts.hosts {
            let ns = lab.on_lan(&lan, &format!("host{n}"), &format!("10.1.0.3{n}/24"))?;
            let vm = lab.node(&format!("vm{n}"))?;
            lab.link(
                &ns,
                &format!("vm{n}"),
                &format!("10.1.{n}.1/24"),
                &vm,
                "eth0",
                &format!("10.1.{n}.10/24"),
            )?;
            vm.ip(&format!("route add default via 10.1.{n}.1"))?;
            let pins = lab.bpf_pin_dir(&format!("host{n}"))?;
            let config = agent_config(n, opts.route_servers, &pins, &opts.agent_extra);
            let agent = Steer::start(&ns, Role::Agent, &config)?;
            hosts.push(SeedHost {
                ns,
                agent,
                vm,
                pins,
            });
        }
        let seed = Seed {
            route_servers,
            sdwan,
            firewall,
            hosts,
            lan,
            lab,
        };
        seed.wait_established()?;
        Ok(seed)
    }

    /// Waits until both appliances and every agent report every session to
    /// every route server Established.
    pub fn wait_established(&self) -> Result<()> {
        for i in 0..self.route_servers.len() {
            self.sdwan.wait_established(&format!("rs{}", i + 1))?;
            self.firewall.wait_established(&rs_addr(i))?;
        }
        let want = self.route_servers.len();
        for h in &self.hosts {
            h.agent.wait_show(&["peers"], |v| {
                v.as_array().is_some_and(|a| {
                    a.len() == want && a.iter().all(|p| p["status"]["state"] == "Established")
                })
            })?;
        }
        Ok(())
    }
}
