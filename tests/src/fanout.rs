//! The fan-out lab, shared by `cargo xtask bench fanout` and the restart
//! storm test: one LAN with the route server ([`RS_ADDR`]) and a node
//! holding every appliance address, and a veth straight from the route
//! server to the node the host simulator ([`crate::hostsim`]) runs in
//! ([`SIM_ADDR`]; the hosts' traffic crosses no bridge, as it would reach
//! a real route server's NIC). The hosts' addresses, [`FIRST_HOST`]
//! upwards inside [`HOSTS_RANGE`], are bindable in the simulator's node
//! through AnyIP local routes and routed there from the route server's
//! (`HOSTS_RANGE via SIM_ADDR`; the LAN's /24 and the link's /30 stay
//! connected, so no host needs a neighbour entry). The route server's
//! node gets the listen-queue sysctls a storm of connections needs: they
//! are per namespace, so the machine's own are never touched.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, ensure};

use crate::hostsim::anyip_routes;
use crate::{Lab, Netns};

/// The route server's address on the LAN (a /24).
pub const RS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 4);
/// The simulator node's address on its link to the route server.
pub const SIM_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 255, 254);
/// The route server's address on that link.
pub const RS_LINK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 255, 253);
/// The range the route server accepts hosts from.
pub const HOSTS_RANGE: &str = "10.1.0.0/16";
/// The first host's address.
pub const FIRST_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 0);
/// Most hosts the range holds between the LAN's /24 and the link's /30.
pub const MAX_HOSTS: usize = 65_000;
/// `net.core.somaxconn` and `net.ipv4.tcp_max_syn_backlog` in the route
/// server's node: the longest accept queue a listener may ask for, and
/// the half-open connections kept before SYN cookies.
pub const LISTEN_SYSCTL: u32 = 4096;

/// One lab's namespaces and host addresses (removed when dropped).
pub struct FanoutLab {
    /// The route server's node.
    pub rs: Netns,
    /// The appliances' node.
    pub nva: Netns,
    /// The host simulator's node.
    pub sim: Netns,
    /// Every host's address.
    pub hosts: Vec<Ipv4Addr>,
    /// Declared last: dropped after everything above.
    pub lab: Lab,
}

impl FanoutLab {
    /// The LAN with the appliances at `appliances` and `hosts` host
    /// addresses.
    pub fn build(appliances: &[Ipv4Addr], hosts: usize) -> Result<FanoutLab> {
        ensure!(
            hosts <= MAX_HOSTS,
            "at most {MAX_HOSTS} hosts fit in {HOSTS_RANGE}"
        );
        let mut lab = Lab::new()?;
        let lan = lab.lan("lan")?;
        let rs = lab.on_lan(&lan, "rs", &format!("{RS_ADDR}/24"))?;
        let sim = lab.node("hosts")?;
        lab.link(
            &rs,
            "hosts",
            &format!("{RS_LINK_ADDR}/30"),
            &sim,
            "eth0",
            &format!("{SIM_ADDR}/30"),
        )?;
        sim.ip(&format!("route add default via {RS_LINK_ADDR}"))?;
        for (ns, ifname) in [(&sim, "eth0"), (&rs, "hosts")] {
            receive_on_napi_thread(ns, ifname)?;
        }
        let nva = lab.node("nva")?;
        for (i, a) in appliances.iter().enumerate() {
            if i == 0 {
                lan.attach(&nva, "eth0", &format!("{a}/24"))?;
            } else {
                nva.ip(&format!("addr add {a}/24 dev eth0"))?;
            }
        }
        for (addr, len) in anyip_routes(FIRST_HOST, hosts as u32) {
            sim.ip(&format!("route add local {addr}/{len} dev lo"))?;
        }
        rs.ip(&format!("route add {HOSTS_RANGE} via {SIM_ADDR}"))?;
        for key in ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"] {
            rs.sysctl(key, &LISTEN_SYSCTL.to_string())?;
        }
        let first = u32::from(FIRST_HOST);
        let hosts = (0..hosts as u32)
            .map(|i| Ipv4Addr::from(first + i))
            .collect();
        Ok(FanoutLab {
            rs,
            nva,
            sim,
            hosts,
            lab,
        })
    }
}

/// GRO and threaded NAPI on the veth end `ifname` in `ns`: what arrives
/// there is received on a kernel thread of its own instead of in the
/// softirq of the sender (with plain veth, the simulated hosts' TCP input
/// would run in, and be charged to, the route server's process).
fn receive_on_napi_thread(ns: &Netns, ifname: &str) -> Result<()> {
    ns.exec("ethtool", &["-K", ifname, "gro", "on"])?;
    ns.exec(
        "ip",
        &[
            "netns",
            "exec",
            ns.name(),
            "sh",
            "-c",
            &format!("echo 1 > /sys/class/net/{ifname}/threaded"),
        ],
    )?;
    Ok(())
}

/// The listen-queue counters of a namespace (`/proc/net/netstat`, read
/// from inside it): SYNs and handshakes dropped at a listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenDrops {
    /// `TcpExt: ListenOverflows`: the accept queue was full.
    pub overflows: u64,
    /// `TcpExt: ListenDrops`: every drop at a listener.
    pub drops: u64,
}

impl ListenDrops {
    /// The counters of `ns` now.
    pub fn read(ns: &Netns) -> Result<ListenDrops> {
        let text = ns.exec("cat", &["/proc/net/netstat"])?;
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (names, values) = lines
            .next()
            .zip(lines.next())
            .context("no TcpExt lines in /proc/net/netstat")?;
        let field = |name: &str| -> Result<u64> {
            let i = names
                .split_whitespace()
                .position(|n| n == name)
                .with_context(|| format!("no {name} in /proc/net/netstat"))?;
            values
                .split_whitespace()
                .nth(i)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("bad {name} in /proc/net/netstat"))
        };
        Ok(ListenDrops {
            overflows: field("ListenOverflows")?,
            drops: field("ListenDrops")?,
        })
    }

    /// What happened between `before` and `self`.
    pub fn since(self, before: ListenDrops) -> ListenDrops {
        ListenDrops {
            overflows: self.overflows.saturating_sub(before.overflows),
            drops: self.drops.saturating_sub(before.drops),
        }
    }
}
