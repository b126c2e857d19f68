//! The failover lab: the seed topology with two firewalls in front of an
//! "internet" namespace, as the failover tests and `cargo xtask bench
//! failover` need it.
//!
//! ```text
//!  vm (10.1.1.10) -- host (agent, XDP) --+-- LAN 10.1.0.0/24 --+-- rs (steer server)
//!                                        |                     |
//!                         fw1 (BIRD, .20) --eth1-- in1 \       +-- feeds (.101..; raw
//!                         fw2 (FRR,  .21) --eth1-- in2 -- inet    BGP speakers, load)
//!                                                  198.51.100.1 (the sink)
//! ```
//!
//! Both firewalls announce 0.0.0.0/0; fw2 prepends (passive) unless the
//! lab is active/active. With BFD both run it with the route server at the
//! given timers. A silent death is fw1's LAN link going down on fw1's side
//! (`ip link set eth0 down`): no FIN, no NOTIFICATION.
//!
//! Real appliances are machines of their own; here BIRD and FRR's bfdd
//! share two cores with the route server, the agent and whatever load a
//! test adds. So they run at real-time priority (`chrt -f`), as Steer's
//! own BFD thread does: a late packet from a starved appliance would
//! otherwise be counted against Steer.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::lab::{Lab, Lan};
use crate::netns::Netns;
use crate::route::{Announce, BfdTimers, Neighbor};
use crate::steer::{Role, Steer};
use crate::stream::now_ns;
use crate::wait::{default_timeout, wait_for};
use crate::{Bird, BirdConfig, Frr, FrrConfig};

/// fw1's LAN address.
pub const FW1: &str = "10.1.0.20";
/// fw2's LAN address.
pub const FW2: &str = "10.1.0.21";
/// Where the sink listens.
pub const SINK: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 5001);

/// The load speakers' addresses and AS numbers: 10.1.0.101.., AS 65101...
pub fn feed(i: usize) -> (Ipv4Addr, u32) {
    (Ipv4Addr::new(10, 1, 0, 101 + i as u8), 65101 + i as u32)
}

/// How to build the lab.
#[derive(Clone, Debug)]
pub struct FailoverSpec {
    /// Equal paths through both firewalls (ECMP) instead of fw2 prepending.
    pub active_active: bool,
    /// BFD between the route server and the firewalls; `None`: off.
    pub bfd: Option<BfdTimers>,
    /// BGP hold time everywhere (s); keepalive is a third of it.
    pub hold_time: u16,
    /// The agent's `dataplane` setting.
    pub dataplane: String,
    /// Raw speakers the route server also accepts (passive, no BFD), for
    /// load.
    pub feeds: usize,
    /// The route server and the agent at real-time priority, as the
    /// appliances always are: each stands for a machine of its own, which
    /// other work on a shared test machine must not delay (seen: load 13 on
    /// 2 cores held the route server's withdrawal back 616 ms). Off where
    /// the point is how Steer fares for CPU (the load test, the benchmark).
    pub dedicated_cpu: bool,
}

impl Default for FailoverSpec {
    fn default() -> Self {
        FailoverSpec {
            active_active: false,
            bfd: Some(BfdTimers {
                interval_ms: 300,
                multiplier: 3,
            }),
            hold_time: 9,
            dataplane: "xdp".into(),
            feeds: 0,
            dedicated_cpu: false,
        }
    }
}

/// The running lab; everything is torn down on drop.
pub struct FailoverLab {
    /// The agent.
    pub agent: Steer,
    /// fw2 (FRR).
    pub fw2: Frr,
    /// fw1 (BIRD).
    pub fw1: Bird,
    /// The route server.
    pub rs: Steer,
    /// The VM namespace (where traffic starts).
    pub vm: Netns,
    /// The far end.
    pub inet: Netns,
    /// The host.
    pub host: Netns,
    /// The raw speakers' namespace, when `feeds > 0`.
    pub feeds: Option<Netns>,
    /// The sink's interface towards fw1.
    pub in1: u32,
    /// The sink's interface towards fw2.
    pub in2: u32,
    /// The spec it was built from.
    pub spec: FailoverSpec,
    /// The LAN.
    pub lan: Lan,
    /// The namespaces (dropped last).
    pub lab: Lab,
}

fn rs_config(spec: &FailoverSpec) -> String {
    let mut c = format!(
        r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
hold_time = {hold}
keepalive = {ka}
connect_retry = 1
connect_retry_max = 2
metrics_listen = "127.0.0.1:9179"
"#,
        hold = spec.hold_time,
        ka = spec.hold_time / 3
    );
    if let Some(b) = spec.bfd {
        c.push_str(&format!(
            "\n[bfd]\ninterval_ms = {}\nmultiplier = {}\n",
            b.interval_ms, b.multiplier
        ));
    }
    let bfd = if spec.bfd.is_some() { "bfd = true" } else { "" };
    c.push_str(&format!(
        "\n[[peer]]\nname = \"fw1\"\naddress = \"{FW1}\"\nasn = 65020\n{bfd}\n\n[[peer]]\nname = \"fw2\"\naddress = \"{FW2}\"\nasn = 65021\n{bfd}\n"
    ));
    for i in 0..spec.feeds {
        let (addr, asn) = feed(i);
        c.push_str(&format!(
            "\n[[peer]]\nname = \"feed{i}\"\naddress = \"{addr}\"\nasn = {asn}\npassive = true\nmax_prefixes = 1000000\n"
        ));
    }
    c.push_str("\n[hosts]\nranges = [\"10.1.0.0/24\"]\n");
    c
}

fn agent_config(spec: &FailoverSpec, pin_dir: &std::path::Path) -> String {
    format!(
        r#"
asn = 65515
router_id = "10.1.0.31"
route_servers = ["10.1.0.4"]
vm_interfaces = ["vm1"]
vm_prefixes = ["10.1.1.0/24"]
dataplane = "{dataplane}"
pin_dir = "{pins}"
hold_time = 9
keepalive = 3
connect_retry = 1
stale_timeout = 5
"#,
        dataplane = spec.dataplane,
        pins = pin_dir.display()
    )
}

fn neighbor(spec: &FailoverSpec) -> Neighbor {
    let n = Neighbor::new("rs", "10.1.0.4", 65515).timers(spec.hold_time, spec.hold_time / 3);
    match spec.bfd {
        Some(b) => n.bfd(b.interval_ms, b.multiplier),
        None => n,
    }
}

/// Every thread of process `pid` to SCHED_FIFO 20 (`chrt -a -f -p`).
fn realtime(pid: u32) -> Result<()> {
    crate::route::require_tool("chrt", "util-linux")?;
    let out = std::process::Command::new("chrt")
        .args(["-a", "-f", "-p", "20", &pid.to_string()])
        .output()?;
    if !out.status.success() {
        bail!(
            "chrt -a -f -p 20 {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl FailoverLab {
    /// Builds the lab and waits until it is [ready](FailoverLab::wait_ready).
    pub fn start(spec: FailoverSpec) -> Result<FailoverLab> {
        let mut lab = Lab::new()?;
        let lan = lab.lan("vnet")?;
        let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
        let fw1_ns = lab.on_lan(&lan, "fw1", &format!("{FW1}/24"))?;
        let fw2_ns = lab.on_lan(&lan, "fw2", &format!("{FW2}/24"))?;
        let inet = lab.node("inet")?;
        lab.link(&fw1_ns, "eth1", "10.9.1.1/24", &inet, "in1", "10.9.1.2/24")?;
        lab.link(&fw2_ns, "eth1", "10.9.2.1/24", &inet, "in2", "10.9.2.2/24")?;
        inet.ip(&format!("addr add {}/32 dev lo", SINK.ip()))?;
        fw1_ns.ip("route add 198.51.100.0/24 via 10.9.1.2")?;
        fw2_ns.ip("route add 198.51.100.0/24 via 10.9.2.2")?;
        let feeds = if spec.feeds > 0 {
            let ns = lab.on_lan(&lan, "feeds", &format!("{}/24", feed(0).0))?;
            for i in 1..spec.feeds {
                ns.ip(&format!("addr add {}/24 dev eth0", feed(i).0))?;
            }
            Some(ns)
        } else {
            None
        };

        let rs = Steer::start(&rs_ns, Role::Server, &rs_config(&spec))?;
        let fw1 = Bird::start(
            &fw1_ns,
            BirdConfig::new(FW1, 65020)
                .neighbor(neighbor(&spec))
                .announce(Announce::new("0.0.0.0/0")),
        )?;
        let prepend = if spec.active_active { 0 } else { 2 };
        let fw2 = Frr::start(
            &fw2_ns,
            FrrConfig::new("fw2", FW2, 65021)
                .neighbor(neighbor(&spec))
                .announce(Announce::new("0.0.0.0/0").prepend(prepend)),
        )?;

        realtime(fw1.pid())?;
        if let Some(pid) = fw2.bfdd_pid() {
            realtime(pid)?;
        }
        let host = lab.node("host1")?;
        let vm = lab.node("vm1")?;
        lan.attach(&host, "eth0", "10.1.0.31/24")?;
        lab.link(&host, "vm1", "10.1.1.1/24", &vm, "eth0", "10.1.1.10/24")?;
        vm.ip("route add default via 10.1.1.1")?;
        let pins = lab.bpf_pin_dir("host1")?;
        let agent = Steer::start(&host, Role::Agent, &agent_config(&spec, &pins))?;
        if spec.dedicated_cpu {
            for s in [&rs, &agent] {
                realtime(s.pid().context("steer is not running")?)?;
            }
        }
        let in1 = inet.ifindex("in1")?;
        let in2 = inet.ifindex("in2")?;
        let l = FailoverLab {
            agent,
            fw2,
            fw1,
            rs,
            vm,
            inet,
            host,
            feeds,
            in1,
            in2,
            spec,
            lan,
            lab,
        };
        l.wait_ready()?;
        Ok(l)
    }

    /// The route server's Prometheus metrics.
    pub fn rs_metrics(&self) -> Result<String> {
        self.rs.ns().http_get("http://127.0.0.1:9179/metrics")
    }

    /// The default route's next hops the agent must have when both
    /// firewalls are up.
    pub fn healthy_next_hops(&self) -> Vec<&'static str> {
        if self.spec.active_active {
            vec![FW1, FW2]
        } else {
            vec![FW1]
        }
    }

    /// Waits until both firewalls are Established (and BFD Up with the
    /// configured timers in force both ways, FRR's BFD session settled:
    /// [`Frr::wait_bfd_settled`]), and the agent forwards the
    /// default route, kernel and XDP, by [`FailoverLab::healthy_next_hops`].
    pub fn wait_ready(&self) -> Result<()> {
        let timeout = default_timeout() * 2;
        if self.spec.bfd.is_some() {
            self.fw2.wait_bfd_settled("10.1.0.4", FW2)?;
        }
        wait_for(
            "both firewalls Established at the route server",
            timeout,
            || {
                let v = self.rs.show(&["peers"])?;
                let up = |n: &str| {
                    v.as_array().is_some_and(|a| {
                        a.iter()
                            .any(|p| p["name"] == n && p["status"]["state"] == "Established")
                    })
                };
                if up("fw1") && up("fw2") {
                    Ok(Some(()))
                } else {
                    bail!("{v}")
                }
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}\nrs log:\n{}", self.rs.log_tail()))?;
        if let Some(b) = self.spec.bfd {
            let us = u64::from(b.interval_ms) * 1000;
            wait_for(
                "BFD Up with both firewalls at the configured timers",
                timeout,
                || {
                    let v = self.rs.show(&["bfd"])?;
                    let ok = v.as_array().is_some_and(|a| {
                        a.len() == 2
                            && a.iter().all(|s| {
                                s["state"] == "Up"
                                    && s["remote_state"] == "Up"
                                    && s["tx_interval_us"] == us
                                    && s["rx_interval_us"] == us
                                    && s["polling"] == false
                                    && s["bgp_held"] == false
                            })
                    });
                    if ok { Ok(Some(())) } else { bail!("{v}") }
                },
            )?;
        }
        let want = self.healthy_next_hops();
        wait_for(
            "the agent forwarding 0.0.0.0/0 by both paths",
            timeout,
            || {
                let hops = self.default_route()?;
                if hops == want {
                    Ok(Some(()))
                } else {
                    bail!("agent has {hops:?}, want {want:?}")
                }
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}\nagent log:\n{}", self.agent.log_tail()))
    }

    /// The default route's next hops in the agent's kernel table and XDP
    /// map, when the two agree and match what it wants; empty otherwise.
    pub fn default_route(&self) -> Result<Vec<&'static str>> {
        let v: Value = self.agent.show(&["fib"])?;
        let entry = v["entries"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["prefix"] == "0.0.0.0/0"));
        let Some(e) = entry else {
            return Ok(Vec::new());
        };
        if e["mismatch"] == true {
            return Ok(Vec::new());
        }
        let kernel = e["kernel"].as_str().unwrap_or("");
        Ok([FW1, FW2]
            .into_iter()
            .filter(|fw| kernel.split([' ', ',']).any(|w| w == *fw))
            .collect())
    }

    /// fw1 dies silently: its LAN link goes down on its side. Returns the
    /// time ([`now_ns`]) just before.
    pub fn cut_fw1(&self) -> Result<u64> {
        let t = now_ns();
        self.fw1.ns().ip("link set eth0 down")?;
        Ok(t)
    }

    /// fw1's link comes back.
    pub fn restore_fw1(&self) -> Result<()> {
        self.fw1.ns().ip("link set eth0 up")?;
        Ok(())
    }

    /// Waits until the route server's BFD with fw1 is Up again and its BGP
    /// session Established (after [`FailoverLab::restore_fw1`]).
    pub fn wait_fw1_back(&self, timeout: Duration) -> Result<()> {
        wait_for("fw1 back: BFD Up and BGP Established", timeout, || {
            let p = self.rs.show(&["peers"])?;
            let fw1 = p
                .as_array()
                .and_then(|a| a.iter().find(|x| x["name"] == "fw1").cloned())
                .unwrap_or(Value::Null);
            let bfd_ok = self.spec.bfd.is_none() || fw1["bfd"]["running"] == true;
            if bfd_ok && fw1["status"]["state"] == "Established" {
                Ok(Some(()))
            } else {
                bail!("{fw1}")
            }
        })
    }
}
