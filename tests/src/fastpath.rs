//! The lab for fast-path tests: the seed's control plane (a route server,
//! an appliance announcing on-prem IPv4 and IPv6 prefixes, a host agent)
//! and a VM behind the host, on a veth or on a tap driven by a [`Vmm`].
//!
//! ```text
//!   vm (eth0 10.1.1.10, 2001:db8:a001::10) ── vm1 [host1 10.1.0.31] ── LAN ── [appliance 10.1.0.10: 10.250.0.1, 2001:db8:250::1]
//!      back0 192.0.2.2 ─────────────────────────────────────────────────────── back0 192.0.2.1
//! ```
//!
//! Replies come back over `back0`, a direct link, so that everything the
//! host's kernel forwards is VM -> appliance traffic the fast path missed:
//! its `ForwDatagrams` (and `Ip6OutForwDatagrams`) count exactly that.
//! [`FastPathLab::send_returns_through_the_host`] turns that around for
//! the return path: the appliance reaches the VM through the host (from its
//! addresses behind the route), the VM answers over `back0`.

use anyhow::Result;

use crate::{
    Announce, BgpDaemon, Gobgp, GobgpConfig, Lab, Neighbor, Netns, Role, Steer, Vmm,
    default_timeout, wait_for,
};

/// The appliance's IPv4 address behind the route.
pub const APPLIANCE_V4: &str = "10.250.0.1";
/// The appliance's IPv6 address behind the route.
pub const APPLIANCE_V6: &str = "2001:db8:250::1";
/// The VM's IPv4 address.
pub const VM_V4: &str = "10.1.1.10";
/// The VM's IPv6 address.
pub const VM_V6: &str = "2001:db8:a001::10";

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16", "2001:db8:a000::/36"]
ipv6_next_hop = "2001:db8:1::4"
connect_retry = 1

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010

[hosts]
ranges = ["10.1.0.0/24"]
"#;

/// The VM's NIC as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmNic {
    /// A veth with its default offloads.
    Veth,
    /// A tap fed by a VMM with virtio-net headers.
    Tap,
}

/// The running lab; everything goes away on drop.
pub struct FastPathLab {
    /// The VM.
    pub vm: Netns,
    /// The host running the agent.
    pub host: Netns,
    /// The appliance.
    pub appliance: Netns,
    /// The LAN's bridge ports of the host and the appliance, in the LAN's
    /// namespace.
    pub lan_ports: (Netns, String, String),
    /// The agent on the host.
    pub agent: Steer,
    /// The VMM, for a tap.
    pub vmm: Option<Vmm>,
    _appliance_bgp: Gobgp,
    _rs: Steer,
    /// The lab (last: dropped after the daemons).
    pub lab: Lab,
}

impl FastPathLab {
    /// Builds the lab with the agent's config extended by `agent_extra`
    /// (e.g. `dataplane = "xdp"`), and waits for the routes in table 200.
    pub fn new(nic: VmNic, agent_extra: &str) -> Result<FastPathLab> {
        let mut lab = Lab::new()?;
        let lan = lab.lan("vnet")?;
        let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
        let appliance = lab.node("sdwan")?;
        let appliance_port = lan.attach(&appliance, "eth0", "10.1.0.10/24")?;
        let host = lab.node("host1")?;
        let host_port = lan.attach(&host, "eth0", "10.1.0.31/24")?;
        let vm = lab.node("vm1")?;
        rs_ns.ip("-6 addr add 2001:db8:1::4/64 dev eth0 nodad")?;
        appliance.ip("-6 addr add 2001:db8:1::10/64 dev eth0 nodad")?;
        host.ip("-6 addr add 2001:db8:1::31/64 dev eth0 nodad")?;
        appliance.ip(&format!("addr add {APPLIANCE_V4}/32 dev lo"))?;
        appliance.ip(&format!("-6 addr add {APPLIANCE_V6}/128 dev lo"))?;
        let vmm = match nic {
            VmNic::Veth => {
                lab.link(&host, "vm1", "10.1.1.1/24", &vm, "eth0", "10.1.1.10/24")?;
                None
            }
            VmNic::Tap => {
                let vmm = Vmm::start(&vm, "eth0", &host, "vm1", None)?;
                vm.ip("addr add 10.1.1.10/24 dev eth0")?;
                host.ip("addr add 10.1.1.1/24 dev vm1")?;
                vm.ip("link set eth0 up")?;
                host.ip("link set vm1 up")?;
                Some(vmm)
            }
        };
        host.ip("-6 addr add 2001:db8:a001::1/64 dev vm1 nodad")?;
        vm.ip("-6 addr add 2001:db8:a001::10/64 dev eth0 nodad")?;
        vm.ip("route add default via 10.1.1.1")?;
        vm.ip("-6 route add default via 2001:db8:a001::1")?;
        host.sysctl("net.ipv6.conf.all.forwarding", "1")?;

        lab.link(
            &appliance,
            "back0",
            "192.0.2.1/30",
            &vm,
            "back0",
            "192.0.2.2/30",
        )?;
        appliance.ip("-6 addr add fd00:b::1/64 dev back0 nodad")?;
        vm.ip("-6 addr add fd00:b::2/64 dev back0 nodad")?;
        appliance.ip("route add 10.1.1.0/24 via 192.0.2.2")?;
        appliance.ip("-6 route add 2001:db8:a001::/64 via fd00:b::2")?;
        for key in ["all", "default", "back0", "eth0"] {
            vm.sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "0")?;
        }

        let rs = Steer::start(&rs_ns, Role::Server, RS_CONFIG)?;
        let appliance_bgp = Gobgp::start(
            &appliance,
            GobgpConfig::new("10.1.0.10", 65010).neighbor(Neighbor::new("rs", "10.1.0.4", 65515)),
        )?;
        appliance_bgp.wait_established("10.1.0.4")?;
        appliance_bgp.announce(&Announce::new("10.250.0.0/16").next_hop("10.1.0.10"))?;
        appliance_bgp.announce(&Announce::new("2001:db8:250::/48").next_hop("2001:db8:1::10"))?;
        let pins = lab.bpf_pin_dir("host1")?;
        let agent = Steer::start(
            &host,
            Role::Agent,
            &format!(
                "asn = 65515\nrouter_id = \"10.1.0.31\"\nroute_servers = [\"10.1.0.4\"]\n\
                 vm_interfaces = [\"vm1\"]\nvm_prefixes = [\"10.1.1.0/24\", \"2001:db8:a001::/64\"]\n\
                 ipv6_next_hop = \"2001:db8:1::31\"\npin_dir = \"{}\"\nconnect_retry = 1\n{agent_extra}\n",
                pins.display()
            ),
        )?;
        wait_for(
            "the appliance's routes in table 200",
            default_timeout(),
            || {
                let v4 = host.ip("route show table 200")?;
                let v6 = host.ip("-6 route show table 200")?;
                Ok(
                    (v4.contains("10.250.0.0/16") && v6.contains("2001:db8:250::/48"))
                        .then_some(()),
                )
            },
        )?;
        for dst in [APPLIANCE_V4, APPLIANCE_V6] {
            vm.output("ping", &["-c", "2", "-i", "0.2", "-W", "1", dst])?;
        }
        Ok(FastPathLab {
            vm,
            host,
            appliance,
            lan_ports: (
                lan.ns().clone(),
                host_port.peer_ifname,
                appliance_port.peer_ifname,
            ),
            agent,
            vmm,
            _appliance_bgp: appliance_bgp,
            _rs: rs,
            lab,
        })
    }

    /// Sends the appliance's traffic to the VM through the host (from
    /// [`APPLIANCE_V4`] and [`APPLIANCE_V6`]) and the VM's answers to those
    /// addresses over `back0`: then everything the host's kernel forwards is
    /// appliance -> VM traffic the return path missed.
    pub fn send_returns_through_the_host(&self) -> Result<()> {
        for (ns, route) in [
            (
                &self.appliance,
                format!("10.1.1.0/24 via 10.1.0.31 src {APPLIANCE_V4}"),
            ),
            (
                &self.appliance,
                format!("2001:db8:a001::/64 via 2001:db8:1::31 src {APPLIANCE_V6}"),
            ),
            (
                &self.vm,
                format!("{APPLIANCE_V4}/32 via 192.0.2.1 dev back0"),
            ),
            (
                &self.vm,
                format!("{APPLIANCE_V6}/128 via fd00:b::1 dev back0"),
            ),
        ] {
            ns.ip(&format!("route replace {route}"))?;
        }
        for key in ["all", "default", "back0", "eth0"] {
            self.appliance
                .sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "0")?;
        }
        for dst in [VM_V4, VM_V6] {
            self.appliance
                .output("ping", &["-c", "2", "-i", "0.2", "-W", "1", dst])?;
        }
        Ok(())
    }

    /// Packets the agent's `hook` forwarded so far.
    pub fn forwarded(&self, hook: &str) -> Result<u64> {
        let v = self.agent.show(&["fib"])?;
        Ok(v["counters"][hook]["forwarded"][0].as_u64().unwrap_or(0))
    }

    /// The agent's counter `reason` at `hook`.
    pub fn counter(&self, hook: &str, reason: &str) -> Result<u64> {
        let v = self.agent.show(&["fib"])?;
        Ok(v["counters"][hook][reason][0].as_u64().unwrap_or(0))
    }
}
