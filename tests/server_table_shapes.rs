//! Unchanged results on real table shapes: three appliances (raw speakers
//! sending `steer_tests::shape`'s UPDATEs, encoded by hand) feed a route
//! server, and an iBGP ADD-PATH receiver on the host leg (a raw speaker
//! decoding with `steer_tests::wire::update_routes`, not Steer's codec)
//! records what it is sent. On the `table` shape (an attribute set per
//! UPDATE of 1–10 prefixes, AS paths of 1–8, communities on a third) and
//! the `churn` shape (the table, then everything re-announced with new
//! attributes and half withdrawn), the receiver's final table from Steer
//! equals the one from BIRD 2 as route server, path for path: prefix,
//! next hop, AS path, MED, communities and origin; and both equal what
//! the appliances announced.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use steer_tests::shape::{Appliance, Attrs, Plan, Prefix, Shape, prefixes};
use steer_tests::wire::{self, Message, update_routes};
use steer_tests::{Bird, BirdConfig, Lab, Netns, RawPeer, Role, Steer};

const RS: &str = "10.1.0.4";
const RS_ASN: u32 = 65515;
const HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 31);
const APPLIANCES: u8 = 3;
const PREFIXES: usize = 300;

/// Every prefix with the attributes of its paths, sorted: path ids are
/// each route server's own, so paths compare as a set per prefix.
type View = BTreeMap<Prefix, Vec<Attrs>>;

fn appliance(i: u8) -> Appliance {
    Appliance {
        addr: Ipv4Addr::new(10, 1, 0, 101 + i),
        asn: 65001 + u32::from(i),
    }
}

fn steer_config() -> String {
    let mut c = format!("asn = {RS_ASN}\nrouter_id = \"{RS}\"\nlisten = [\"{RS}\"]\n");
    for i in 0..APPLIANCES {
        let a = appliance(i);
        c.push_str(&format!(
            "\n[[peer]]\nname = \"nva{i}\"\naddress = \"{}\"\nasn = {}\npassive = true\n",
            a.addr, a.asn
        ));
    }
    c.push_str("\n[hosts]\nranges = [\"10.1.0.0/24\"]\n");
    c
}

/// BIRD as the same route server: every appliance's routes in, nothing
/// back to the appliances, every path to the host with ADD-PATH and the
/// next hop kept (the benchmark's configuration).
fn bird_config() -> BirdConfig {
    let mut extra = format!(
        "template bgp nva {{\n  local {RS} as {RS_ASN};\n  passive on;\n  ipv4 {{ import all; export none; }};\n}}\n"
    );
    for i in 0..APPLIANCES {
        let a = appliance(i);
        extra.push_str(&format!(
            "protocol bgp nva{i} from nva {{ neighbor {} as {}; }}\n",
            a.addr, a.asn
        ));
    }
    extra.push_str(&format!(
        "protocol bgp host {{\n  local {RS} as {RS_ASN};\n  neighbor {HOST} as {RS_ASN};\n  direct;\n  passive on;\n  ipv4 {{ import none; export all; add paths tx; next hop keep; }};\n}}\n"
    ));
    BirdConfig {
        kernel_export: false,
        extra,
        ..BirdConfig::new(RS, RS_ASN)
    }
}

/// What the appliances' UPDATEs leave behind after `phase`.
fn expected(plan: &Plan, ps: &[Prefix], phase: usize) -> View {
    let mut v = View::new();
    for i in 0..APPLIANCES {
        for (p, a) in plan.paths_after(phase, appliance(i), ps) {
            v.entry(p).or_default().push(a);
        }
    }
    for paths in v.values_mut() {
        paths.sort();
    }
    v
}

/// The receiver's table: (prefix, path id) -> attributes.
#[derive(Default)]
struct Received(BTreeMap<(Prefix, u32), Attrs>);

impl Received {
    fn apply(&mut self, body: &[u8]) -> Result<()> {
        let u = update_routes(body, true)?;
        for k in u.withdrawn {
            self.0.remove(&k);
        }
        for k in u.announced {
            let a = u.attrs.clone().context("announced without attributes")?;
            self.0.insert(k, a);
        }
        Ok(())
    }

    fn view(&self) -> View {
        let mut v = View::new();
        for ((p, _), a) in &self.0 {
            v.entry(*p).or_default().push(a.clone());
        }
        for paths in v.values_mut() {
            paths.sort();
        }
        v
    }
}

/// Reads UPDATEs until the receiver's view equals `want` (then for one
/// more second, so that a late change would show), or fails after 60 s
/// with what differs.
fn receive_until(rx: &mut RawPeer, table: &mut Received, want: &View) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settled: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match (table.view() == *want, settled) {
            (true, Some(t)) if now >= t => return Ok(()),
            (true, None) => settled = Some(now + Duration::from_secs(1)),
            (false, _) => settled = None,
            _ => {}
        }
        if now >= deadline {
            let got = table.view();
            let wrong: Vec<_> = want
                .iter()
                .filter(|(p, a)| got.get(p) != Some(a))
                .take(3)
                .map(|(p, a)| format!("{p}: want {a:?}, got {:?}", got.get(p)))
                .collect();
            bail!(
                "receiver holds {} prefixes, {} expected; first differences: {wrong:#?}",
                got.len(),
                want.len()
            );
        }
        let wait = settled.map_or(deadline, |t| t.min(deadline)) - now;
        match rx.recv(wait.max(Duration::from_millis(10))) {
            Ok(Some(Message::Update(body))) => table.apply(&body)?,
            Ok(Some(Message::Notification(n))) => bail!("route server sent {n}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("route server closed the receiver's session"),
            Err(_) => {}
        }
    }
}

/// Runs `shape` through a fresh lab with the route server `start` makes
/// (kept running until the end); returns the receiver's view after each
/// phase.
fn run<D>(shape: Shape, start: impl FnOnce(&Netns) -> Result<D>) -> Result<Vec<View>> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("lan")?;
    let rs_ns = lab.on_lan(&lan, "rs", &format!("{RS}/24"))?;
    let host_ns = lab.on_lan(&lan, "host", &format!("{HOST}/24"))?;
    let nva_ns = lab.on_lan(&lan, "nva", &format!("{}/24", appliance(0).addr))?;
    for i in 1..APPLIANCES {
        nva_ns.ip(&format!("addr add {}/24 dev eth0", appliance(i).addr))?;
    }
    let _rs = start(&rs_ns)?;
    let rs: SocketAddr = format!("{RS}:179").parse()?;
    let timeout = Duration::from_secs(30);
    let mut rx = RawPeer::connect(&host_ns, Some(IpAddr::V4(HOST)), rs, timeout)?;
    let caps = [
        wire::cap_ipv4_unicast(),
        wire::cap_as4(RS_ASN),
        wire::cap_add_path_ipv4(1),
    ];
    rx.establish(&wire::open(RS_ASN, 0, HOST, &caps), timeout)?;
    let mut nvas = Vec::new();
    for i in 0..APPLIANCES {
        let a = appliance(i);
        let mut p = RawPeer::connect(&nva_ns, Some(IpAddr::V4(a.addr)), rs, timeout)?;
        p.establish_simple(a.asn, 0, a.addr)?;
        nvas.push(p);
    }
    let ps = prefixes::generate(0, PREFIXES);
    let plan = Plan::new(shape, ps.len());
    let phases: Vec<Vec<Vec<u8>>> = (0..APPLIANCES)
        .map(|i| plan.phases(appliance(i), &ps))
        .collect();
    let mut table = Received::default();
    let mut views = Vec::new();
    for phase in 0..plan.phase_count() {
        for (nva, bytes) in nvas.iter_mut().zip(&phases) {
            nva.send(&bytes[phase])?;
        }
        let want = expected(&plan, &ps, phase);
        receive_until(&mut rx, &mut table, &want)
            .with_context(|| format!("{shape:?} phase {phase}"))?;
        views.push(table.view());
    }
    Ok(views)
}

fn same_as_bird(shape: Shape) -> Result<()> {
    let steer = run(shape, |ns| Steer::start(ns, Role::Server, &steer_config()))
        .context("Steer as route server")?;
    let bird = run(shape, |ns| Bird::start(ns, bird_config())).context("BIRD as route server")?;
    assert_eq!(steer.len(), bird.len());
    for (phase, (s, b)) in steer.iter().zip(&bird).enumerate() {
        assert_eq!(s, b, "{shape:?} phase {phase}: Steer and BIRD differ");
    }
    let last = steer.last().expect("a phase");
    let paths: usize = last.values().map(Vec::len).sum();
    let multi_as = last
        .values()
        .flatten()
        .filter(|a| a.as_path.len() > 1)
        .count();
    let with_communities = last
        .values()
        .flatten()
        .filter(|a| !a.communities.is_empty())
        .count();
    assert!(paths >= 3 * PREFIXES / 2, "{paths} paths");
    assert!(multi_as > paths / 2 && with_communities > paths / 5);
    Ok(())
}

#[test]
fn table_shape_reaches_the_host_exactly_as_through_bird() -> Result<()> {
    same_as_bird(Shape::Table)
}

#[test]
fn churned_table_ends_at_the_host_exactly_as_through_bird() -> Result<()> {
    same_as_bird(Shape::Churn)
}
