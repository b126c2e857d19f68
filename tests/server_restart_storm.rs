//! A restart storm of hosts (issue 10): thousands of simulated agents
//! (`steer_tests::hostsim`, each an iBGP ADD-PATH session from its own
//! address, behaving as `steer agent` does) connect to `steer server` at
//! once, drop their sessions together and connect again at once. Every
//! one ends Established and holding the whole table, as the simulator
//! counts it, with no connection dropped by a full listen queue
//! (`ListenOverflows` of the route server's namespace); then one
//! appliance's change reaches every one of them. One witness host reads
//! every UPDATE with the tests' independent parser and must hold exactly
//! the appliances' paths.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use steer_tests::fanout::{FanoutLab, HOSTS_RANGE, ListenDrops, RS_ADDR};
use steer_tests::hostsim::{self, HostSim, SimConfig, Target, Witness};
use steer_tests::shape::{Appliance, Attrs, CHURNED, Plan, Prefix, Shape, prefixes};
use steer_tests::{RawPeer, Role, Steer, default_timeout, wait_for, wire};

/// Hosts in the storm (one more, the witness, joins first).
const HOSTS: usize = 2_000;
/// Prefixes per appliance (two appliances: every host holds twice as many paths).
const PREFIXES: usize = 200;
const ASN: u32 = 65515;

const APPLIANCES: [Appliance; 2] = [
    Appliance {
        addr: Ipv4Addr::new(10, 1, 0, 101),
        asn: 65001,
    },
    Appliance {
        addr: Ipv4Addr::new(10, 1, 0, 102),
        asn: 65002,
    },
];

fn config() -> String {
    let mut c = format!("asn = {ASN}\nrouter_id = \"{RS_ADDR}\"\nlisten = [\"{RS_ADDR}\"]\n");
    for (i, a) in APPLIANCES.iter().enumerate() {
        c.push_str(&format!(
            "\n[[peer]]\nname = \"nva{i}\"\naddress = \"{}\"\nasn = {}\npassive = true\n",
            a.addr, a.asn
        ));
    }
    c.push_str(&format!("\n[hosts]\nranges = [\"{HOSTS_RANGE}\"]\n"));
    c
}

/// The witness's table grouped by prefix, each prefix's attributes sorted.
fn by_prefix(paths: impl IntoIterator<Item = (Prefix, Attrs)>) -> Vec<(Prefix, Vec<Attrs>)> {
    let mut m = std::collections::BTreeMap::<Prefix, Vec<Attrs>>::new();
    for (p, a) in paths {
        m.entry(p).or_default().push(a);
    }
    m.into_iter()
        .map(|(p, mut v)| {
            v.sort();
            (p, v)
        })
        .collect()
}

fn witness_paths(w: &Witness) -> Result<Vec<(Prefix, Vec<Attrs>)>> {
    ensure!(
        w.error.is_none(),
        "the witness could not parse: {:?}",
        w.error
    );
    Ok(by_prefix(w.table.iter().map(|((p, _), a)| (*p, a.clone()))))
}

/// Waits until `want` hosts hold the current target, failing with the
/// simulator's counts.
fn wait_all(sim: &mut HostSim, want: usize, what: &str) -> Result<Duration> {
    let start = Instant::now();
    wait_for(what, default_timeout(), || {
        sim.check()?;
        let p = sim.progress();
        if p.reached >= want {
            return Ok(Some(start.elapsed()));
        }
        anyhow::bail!(
            "{} Established, {} hold the target, {} sessions lost, {} failed setups",
            p.established,
            p.reached,
            p.downs,
            p.setup_failures
        )
    })
}

/// Every host is Established and holds exactly `target`.
fn check_every_host(sim: &HostSim, target: Target) -> Result<()> {
    let hosts = sim.report()?;
    let wrong: Vec<String> = hosts
        .iter()
        .filter(|h| h.established.is_none() || h.paths != target.paths || h.marked != target.marked)
        .take(5)
        .map(|h| {
            format!(
                "{} {:?}: {} paths, {} marked ({:?})",
                h.addr, h.state, h.paths, h.marked, h.last_error
            )
        })
        .collect();
    ensure!(
        wrong.is_empty(),
        "hosts without the whole table: {}",
        wrong.join("; ")
    );
    Ok(())
}

#[test]
fn thousands_of_hosts_reconnecting_at_once_all_get_the_whole_table_and_then_a_change() -> Result<()>
{
    hostsim::raise_nofile(2 * HOSTS as u64 + 1024)?;
    let addrs: Vec<Ipv4Addr> = APPLIANCES.iter().map(|a| a.addr).collect();
    let lab = FanoutLab::build(&addrs, HOSTS + 1)?;
    let rs = Steer::start(&lab.rs, Role::Server, &config())?;

    let plan = Plan::new(Shape::Table, PREFIXES);
    let ps = prefixes::generate(0, PREFIXES);
    let mut appliances = Vec::new();
    let mut table = Vec::new();
    for a in APPLIANCES {
        let mut p = RawPeer::connect(
            &lab.nva,
            Some(IpAddr::V4(a.addr)),
            SocketAddr::new(IpAddr::V4(RS_ADDR), 179),
            default_timeout(),
        )?;
        p.establish(&wire::simple_open(a.asn, 0, a.addr), default_timeout())?;
        p.send(&plan.phases(a, &ps)[0])?;
        table.extend(plan.paths_after(0, a, &ps));
        appliances.push(p);
    }
    let full = Target {
        paths: (APPLIANCES.len() * PREFIXES) as u32,
        marked: 0,
    };

    let mut sim = HostSim::start(
        &lab.sim,
        SimConfig {
            server: SocketAddrV4::new(RS_ADDR, 179),
            asn: ASN,
            hosts: lab.hosts.clone(),
            marker: std::sync::Arc::new(|a| a.med.is_some_and(|m| m & CHURNED != 0)),
            witness: Some(HOSTS),
        },
    )?;
    sim.expect(full)?;
    sim.connect(HOSTS..HOSTS + 1)?;
    wait_all(&mut sim, 1, "the witness host holding the table")?;
    assert_eq!(witness_paths(&sim.witness()?)?, by_prefix(table.clone()));

    let listen0 = ListenDrops::read(&lab.rs)?;
    sim.expect(full)?;
    sim.connect(0..HOSTS)?;
    let first = wait_all(&mut sim, HOSTS + 1, "every host holding the table")?;
    check_every_host(&sim, full)?;

    sim.disconnect(0..HOSTS)?;
    sim.expect(full)?;
    sim.connect(0..HOSTS)?;
    let again = wait_all(
        &mut sim,
        HOSTS + 1,
        "every reconnected host holding the table",
    )?;
    check_every_host(&sim, full)?;
    assert_eq!(
        ListenDrops::read(&lab.rs)?.since(listen0),
        ListenDrops::default(),
        "connections dropped by a full listen queue"
    );
    assert_eq!(sim.progress().downs, 0, "sessions lost besides the drop");

    let (change, changed) = plan.remarked(APPLIANCES[0], &ps, true);
    let marked = Target {
        marked: PREFIXES as u32,
        ..full
    };
    sim.expect(marked)?;
    appliances[0].send(&change)?;
    let spread = wait_all(&mut sim, HOSTS + 1, "every host holding the change")?;
    check_every_host(&sim, marked)?;
    let mut now = changed;
    now.extend(plan.paths_after(0, APPLIANCES[1], &ps));
    assert_eq!(witness_paths(&sim.witness()?)?, by_prefix(now));
    let p = sim.progress();
    println!(
        "{HOSTS} hosts: whole table in {:.1} s, again after a reconnect in {:.1} s; a {PREFIXES}-path change reached all in {:.2} s (simulator CPU {:.1} s, {} distinct UPDATEs decoded)",
        first.as_secs_f64(),
        again.as_secs_f64(),
        spread.as_secs_f64(),
        p.cpu.as_secs_f64(),
        p.decoded
    );
    drop(sim);
    drop(rs);
    Ok(())
}
