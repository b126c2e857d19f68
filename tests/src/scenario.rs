//! The route-server lab most lab tests start from: `steer server` at
//! [`RS_ADDR`] on one LAN with appliances (BIRD, FRR, OpenBGPD, ExaBGP), host
//! stand-ins (GoBGP, ExaBGP) or `steer agent` hosts with their VMs next to
//! it, every session Established before the test begins.
//!
//! ```no_run
//! use steer_tests::scenario::RouteServerLab;
//! use steer_tests::{Announce, FrrConfig};
//!
//! # fn main() -> anyhow::Result<()> {
//! # let config = "";
//! let lab = RouteServerLab::new(config)
//!     .appliance_frr("fw", FrrConfig::new("fw", "10.1.0.20", 65020).announce(Announce::new("0.0.0.0/0")))
//!     .host_gobgp("host1", "10.1.0.31")
//!     .start()?;
//! lab.host("host1").wait_routes("0.0.0.0/0", |p| p.len() == 1)?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::steer::peer_state;
use crate::{
    AddPaths, BgpDaemon, Bird, BirdConfig, Exabgp, ExabgpConfig, Frr, FrrConfig, Gobgp,
    GobgpConfig, Lab, Lan, Neighbor, Netns, Openbgpd, OpenbgpdConfig, Role, Steer,
};

/// The route server's address on the LAN (a /24).
pub const RS_ADDR: &str = "10.1.0.4";
/// The route server's AS (Azure Route Server's).
pub const RS_ASN: u32 = 65515;

/// The route server as an appliance's or host's neighbour, named `rs`.
pub fn rs_neighbor() -> Neighbor {
    Neighbor::new("rs", RS_ADDR, RS_ASN)
}

enum Member {
    Node,
    Bird(BirdConfig),
    Frr(FrrConfig),
    Openbgpd(OpenbgpdConfig),
    Exabgp(ExabgpConfig),
    Host(GobgpConfig),
    Agent(Box<dyn FnOnce(&Path) -> String>),
}

/// A VM namespace linked to its host: `(vm, host, host side, vm side)`.
type Vm = (String, String, String, String);

/// What a test does to the namespaces before any daemon starts.
type Prepare = Box<dyn FnOnce(&BTreeMap<String, Netns>) -> Result<()>>;

/// The builder: the server's config and the LAN's members, in the order
/// they start.
pub struct RouteServerLab {
    config: String,
    members: Vec<(String, String, Member)>,
    vms: Vec<Vm>,
    prepare: Option<Prepare>,
}

/// A started route-server lab. Daemons are dropped before the route
/// server, and the namespaces last.
pub struct RouteServer {
    agents: BTreeMap<String, Steer>,
    hosts: BTreeMap<String, Gobgp>,
    exabgps: BTreeMap<String, Exabgp>,
    frrs: BTreeMap<String, Frr>,
    openbgpds: BTreeMap<String, Openbgpd>,
    birds: BTreeMap<String, Bird>,
    /// `steer server`.
    pub rs: Steer,
    nodes: BTreeMap<String, Netns>,
    pin_dirs: BTreeMap<String, PathBuf>,
    /// The LAN every member is on.
    pub lan: Lan,
    /// The lab, for nodes off the LAN.
    pub lab: Lab,
}

impl RouteServerLab {
    /// A lab whose route server runs with `config_toml`.
    pub fn new(config_toml: &str) -> RouteServerLab {
        RouteServerLab {
            config: config_toml.to_string(),
            members: Vec::new(),
            vms: Vec::new(),
            prepare: None,
        }
    }

    fn member(mut self, node: &str, addr: impl ToString, m: Member) -> RouteServerLab {
        self.members
            .push((node.to_string(), format!("{}/24", addr.to_string()), m));
        self
    }

    /// A node on the LAN at `addr` with nothing started in it.
    pub fn node(self, node: &str, addr: &str) -> RouteServerLab {
        self.member(node, addr, Member::Node)
    }

    /// A BIRD appliance at its router id; a config without neighbours gets
    /// [`rs_neighbor`].
    pub fn appliance_bird(self, node: &str, mut config: BirdConfig) -> RouteServerLab {
        if config.neighbors.is_empty() {
            config = config.neighbor(rs_neighbor());
        }
        self.member(node, config.router_id, Member::Bird(config))
    }

    /// An FRR appliance at its router id; a config without neighbours gets
    /// [`rs_neighbor`].
    pub fn appliance_frr(self, node: &str, mut config: FrrConfig) -> RouteServerLab {
        if config.neighbors.is_empty() {
            config = config.neighbor(rs_neighbor());
        }
        self.member(node, config.router_id, Member::Frr(config))
    }

    /// An OpenBGPD appliance at its router id; a config without neighbours
    /// gets [`rs_neighbor`].
    pub fn appliance_openbgpd(self, node: &str, mut config: OpenbgpdConfig) -> RouteServerLab {
        if config.neighbors.is_empty() {
            config = config.neighbor(rs_neighbor());
        }
        self.member(node, config.router_id, Member::Openbgpd(config))
    }

    /// An ExaBGP appliance at `addr` in AS `asn`, peering with the server.
    pub fn appliance_exabgp(self, node: &str, addr: &str, asn: u32) -> RouteServerLab {
        let config = ExabgpConfig::new(addr, asn, RS_ADDR, RS_ASN);
        self.member(node, addr, Member::Exabgp(config))
    }

    /// An ExaBGP host stand-in at `addr`: iBGP with the server.
    pub fn host_exabgp(self, node: &str, addr: &str) -> RouteServerLab {
        self.appliance_exabgp(node, addr, RS_ASN)
    }

    /// A GoBGP host stand-in at `addr`: iBGP with the server, receiving
    /// ADD-PATH.
    pub fn host_gobgp(self, node: &str, addr: &str) -> RouteServerLab {
        let config = GobgpConfig::new(addr, RS_ASN).neighbor(rs_neighbor().add_paths(AddPaths::Rx));
        self.member(node, addr, Member::Host(config))
    }

    /// A `steer agent` host at `addr`; `config` makes its configuration
    /// from its bpffs pin dir.
    pub fn host_agent(
        self,
        node: &str,
        addr: &str,
        config: impl FnOnce(&Path) -> String + 'static,
    ) -> RouteServerLab {
        self.member(node, addr, Member::Agent(Box::new(config)))
    }

    /// A VM namespace `vm` off the LAN, linked to `host` (interface `vm` at
    /// `host_cidr` there, `eth0` at `vm_cidr` in the VM), its default route
    /// via the host.
    pub fn vm(mut self, vm: &str, host: &str, host_cidr: &str, vm_cidr: &str) -> RouteServerLab {
        self.vms.push((
            vm.to_string(),
            host.to_string(),
            host_cidr.to_string(),
            vm_cidr.to_string(),
        ));
        self
    }

    /// Runs `f` on the namespaces (by node name, VMs included) once they
    /// exist and before any daemon starts.
    pub fn prepare(
        mut self,
        f: impl FnOnce(&BTreeMap<String, Netns>) -> Result<()> + 'static,
    ) -> RouteServerLab {
        self.prepare = Some(Box::new(f));
        self
    }

    /// Builds the LAN, starts the server and every member, and waits until
    /// each member's session with the server is Established.
    pub fn start(self) -> Result<RouteServer> {
        let mut lab = Lab::new()?;
        let lan = lab.lan("vnet")?;
        let rs_ns = lab.on_lan(&lan, "rs", &format!("{RS_ADDR}/24"))?;
        let mut nodes = BTreeMap::new();
        for (node, cidr, _) in &self.members {
            nodes.insert(node.clone(), lab.on_lan(&lan, node, cidr)?);
        }
        for (vm, host, host_cidr, vm_cidr) in &self.vms {
            let vm_ns = lab.node(vm)?;
            lab.link(&nodes[host], vm, host_cidr, &vm_ns, "eth0", vm_cidr)?;
            let gateway = host_cidr.split('/').next().unwrap_or(host_cidr);
            vm_ns.ip(&format!("route add default via {gateway}"))?;
            nodes.insert(vm.clone(), vm_ns);
        }
        if let Some(prepare) = self.prepare {
            prepare(&nodes)?;
        }
        let rs = Steer::start(&rs_ns, Role::Server, &self.config)?;
        let mut s = RouteServer {
            agents: BTreeMap::new(),
            hosts: BTreeMap::new(),
            exabgps: BTreeMap::new(),
            frrs: BTreeMap::new(),
            openbgpds: BTreeMap::new(),
            birds: BTreeMap::new(),
            rs,
            nodes,
            pin_dirs: BTreeMap::new(),
            lan,
            lab,
        };
        let mut agent_addrs = Vec::new();
        for (node, cidr, member) in self.members {
            let ns = &s.nodes[&node];
            match member {
                Member::Node => {}
                Member::Bird(c) => drop(s.birds.insert(node, Bird::start(ns, c)?)),
                Member::Frr(c) => drop(s.frrs.insert(node, Frr::start(ns, c)?)),
                Member::Openbgpd(c) => drop(s.openbgpds.insert(node, Openbgpd::start(ns, c)?)),
                Member::Exabgp(c) => drop(s.exabgps.insert(node, Exabgp::start(ns, c)?)),
                Member::Host(c) => drop(s.hosts.insert(node, Gobgp::start(ns, c)?)),
                Member::Agent(config) => {
                    let pins = s.lab.bpf_pin_dir(&node)?;
                    let agent = Steer::start(ns, Role::Agent, &config(&pins))?;
                    s.agents.insert(node.clone(), agent);
                    s.pin_dirs.insert(node, pins);
                    agent_addrs.push(cidr.trim_end_matches("/24").to_string());
                }
            }
        }
        for bird in s.birds.values() {
            bird.wait_established("rs")?;
        }
        for frr in s.frrs.values() {
            frr.wait_established(RS_ADDR)?;
        }
        for bgpd in s.openbgpds.values() {
            bgpd.wait_established(RS_ADDR)?;
        }
        for exa in s.exabgps.values_mut() {
            exa.wait_established()?;
        }
        for host in s.hosts.values() {
            host.wait_established(RS_ADDR)?;
        }
        for addr in agent_addrs {
            let name = format!("host-{addr}");
            s.rs.wait_show(&["peers"], |v| peer_state(v, &name) == "Established")?;
        }
        Ok(s)
    }
}

fn named<'a, T>(kind: &str, all: &'a BTreeMap<String, T>, node: &str) -> &'a T {
    all.get(node)
        .unwrap_or_else(|| panic!("no {kind} `{node}` in this route-server lab"))
}

fn named_mut<'a, T>(kind: &str, all: &'a mut BTreeMap<String, T>, node: &str) -> &'a mut T {
    all.get_mut(node)
        .unwrap_or_else(|| panic!("no {kind} `{node}` in this route-server lab"))
}

impl RouteServer {
    /// The namespace of the LAN member `node`.
    pub fn ns(&self, node: &str) -> &Netns {
        named("node", &self.nodes, node)
    }

    /// The BIRD appliance in `node`.
    pub fn bird(&self, node: &str) -> &Bird {
        named("BIRD appliance", &self.birds, node)
    }

    /// The BIRD appliance in `node`, to change its routes or stop it.
    pub fn bird_mut(&mut self, node: &str) -> &mut Bird {
        named_mut("BIRD appliance", &mut self.birds, node)
    }

    /// The FRR appliance in `node`.
    pub fn frr(&self, node: &str) -> &Frr {
        named("FRR appliance", &self.frrs, node)
    }

    /// The FRR appliance in `node`, to change its routes or stop it.
    pub fn frr_mut(&mut self, node: &str) -> &mut Frr {
        named_mut("FRR appliance", &mut self.frrs, node)
    }

    /// The OpenBGPD appliance in `node`.
    pub fn openbgpd(&self, node: &str) -> &Openbgpd {
        named("OpenBGPD appliance", &self.openbgpds, node)
    }

    /// The OpenBGPD appliance in `node`, to change its routes or stop it.
    pub fn openbgpd_mut(&mut self, node: &str) -> &mut Openbgpd {
        named_mut("OpenBGPD appliance", &mut self.openbgpds, node)
    }

    /// The ExaBGP appliance in `node`.
    pub fn exabgp(&self, node: &str) -> &Exabgp {
        named("ExaBGP appliance", &self.exabgps, node)
    }

    /// The `steer agent` in `node`.
    pub fn agent(&self, node: &str) -> &Steer {
        named("agent", &self.agents, node)
    }

    /// The `steer agent` in `node`, to stop, restart or reconfigure it.
    pub fn agent_mut(&mut self, node: &str) -> &mut Steer {
        named_mut("agent", &mut self.agents, node)
    }

    /// The bpffs pin dir of the agent in `node`.
    pub fn pin_dir(&self, node: &str) -> &Path {
        named::<PathBuf>("agent", &self.pin_dirs, node)
    }

    /// The GoBGP host stand-in in `node`.
    pub fn host(&self, node: &str) -> &Gobgp {
        named("GoBGP host", &self.hosts, node)
    }
}
