//! `cargo xtask bench fib`, eBPF map section. Two measurements, each the
//! median of RUNS: (1) map programming: 100,000 IPv4 prefix upserts through
//! `XdpDataplane::apply` (over 4 shared next-hop sets), a re-point of all
//! of them, and their removal, beside `bpftool batch` writing the same LPM
//! entries; (2) the XDP program's own cost per packet through
//! BPF_PROG_TEST_RUN with repeat (forward, pass entry, no route), beside a
//! constant XDP_PASS program (the harness floor). Forwarding with real
//! traffic, every path against the kernel's, is `cargo xtask bench
//! forward`.

#[path = "../../agent/tests/xdp_support/mod.rs"]
mod xdp_support;

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use steer::fib::xdp::testrun::{self, XdpAction};
use steer::fib::xdp::{DataplaneMode, XdpConfig, XdpDataplane, XdpMode, XdpTarget};
use steer::prefix::Prefix;
use xdp_support::netns::{Netns, PinDir, cmd, ip, sysctl};
use xdp_support::packet::{Mac, V4};

const RUNS: usize = 7;
const PREFIXES: u32 = 100_000;
/// Repeats per non-live forward run: the buffer is reused and its TTL
/// decremented each time, so stay below the 254 forwards TTL 255 allows.
const FORWARD_REPEAT: u32 = 250;
const PASS_REPEAT: u32 = 1_000_000;

const VM_MAC: Mac = [0x02, 0, 0, 0, 0x10, 0x10];
const ROUTER_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];

/// Runs the XDP benchmarks and prints their tables.
pub fn run() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "bench fib (XDP) needs root (BPF, network namespaces)"
    );
    if cfg!(debug_assertions) {
        println!(
            "note: unoptimized xtask; for the real map update rate run `cargo run --release -p xtask -- bench fib`"
        );
    }
    map_updates()?;
    let lab = Lab::new()?;
    program_cost(&lab)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn prefix(i: u32) -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0100_0000 + (i << 8))), 24)
}

fn hops(k: u32) -> XdpTarget {
    XdpTarget::Forward(
        (0..4)
            .map(|j| IpAddr::V4(Ipv4Addr::new(192, 0, 2, (10 + 4 * k + j) as u8)))
            .collect(),
    )
}

fn map_updates() -> Result<()> {
    println!(
        "XDP map programming: {PREFIXES} IPv4 /24 prefixes over 4 shared 4-way next-hop sets, median of {RUNS}"
    );
    let upserts: Vec<(Prefix, Option<XdpTarget>)> = (0..PREFIXES)
        .map(|i| (prefix(i), Some(hops(i % 4))))
        .collect();
    let repoint: Vec<(Prefix, Option<XdpTarget>)> = (0..PREFIXES)
        .map(|i| (prefix(i), Some(hops((i + 1) % 4))))
        .collect();
    let removals: Vec<(Prefix, Option<XdpTarget>)> =
        (0..PREFIXES).map(|i| (prefix(i), None)).collect();
    let (mut ins, mut rep, mut del, mut tool) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let pin = PinDir::new("bench-maps");
        let mut dp = XdpDataplane::open(&XdpConfig::new(
            pin.0.clone(),
            &[],
            DataplaneMode::Xdp(XdpMode::Native),
        ))?;
        for (changes, out) in [
            (&upserts, &mut ins),
            (&repoint, &mut rep),
            (&removals, &mut del),
        ] {
            let t = Instant::now();
            dp.apply(changes)?;
            out.push(t.elapsed().as_secs_f64());
        }
        ensure!(
            dp.is_empty() && dp.nexthop_sets() == 0,
            "removal left state behind"
        );
        tool.push(bpftool_batch(&pin)?);
    }
    let rate = |s: f64| f64::from(PREFIXES) / s;
    let (ins, rep, del, tool) = (median(ins), median(rep), median(del), median(tool));
    println!("  {:<44} {:>10} {:>14}", "", "ms", "prefixes/s");
    for (name, s) in [
        ("steer apply: insert", ins),
        ("steer apply: re-point to another set", rep),
        ("steer apply: remove", del),
        ("bpftool batch: insert the same LPM entries", tool),
    ] {
        println!("  {name:<44} {:>10.1} {:>14.0}", s * 1e3, rate(s));
    }
    println!("  bpftool batch / steer insert: {:.2}x", tool / ins);
    Ok(())
}

/// Seconds for `bpftool batch` to insert the same PREFIXES LPM entries (set
/// id 1) into a fresh pinned LPM trie of the same layout.
fn bpftool_batch(pin: &PinDir) -> Result<f64> {
    let map = pin.0.join("bench_lpm");
    let file = std::env::temp_dir().join(format!("steer-bench-xdp-{}.batch", std::process::id()));
    let create = format!(
        "map create {} type lpm_trie key 8 value 8 entries {} name bench_lpm flags 1",
        map.display(),
        steer_common::MAX_ROUTES
    );
    cmd("bpftool", &create).context("bpftool map create")?;
    let mut script = String::with_capacity(PREFIXES as usize * 120);
    for i in 0..PREFIXES {
        let Prefix::V4 { addr, len } = prefix(i) else {
            unreachable!()
        };
        let o = addr.octets();
        script.push_str(&format!(
            "map update pinned {} key hex {len:02x} 00 00 00 {:02x} {:02x} {:02x} {:02x} value hex 02 00 00 00 01 00 00 00\n",
            map.display(),
            o[0],
            o[1],
            o[2],
            o[3]
        ));
    }
    std::fs::write(&file, script)?;
    let t = Instant::now();
    let out = cmd("bpftool", &format!("batch file {}", file.display()));
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&map);
    out.context("bpftool batch")?;
    Ok(secs)
}

/// A router namespace: vm0 in, up0 out towards 192.0.2.10 (a permanent
/// neighbour), for the program's own cost.
struct Lab {
    router: Netns,
    pin: PinDir,
    vm0: u32,
}

impl Lab {
    fn new() -> Result<Lab> {
        let router = Netns::new()?;
        router.run(|| -> Result<()> {
            ip("link add vm0 type veth peer name vm0p")?;
            ip("link add up0 type veth peer name up0p")?;
            ip("link set vm0 address 02:00:00:00:00:01")?;
            for dev in ["vm0", "vm0p", "up0", "up0p"] {
                ip(&format!("link set {dev} up"))?;
            }
            ip("addr add 10.1.1.1/24 dev vm0")?;
            ip("addr add 192.0.2.1/24 dev up0")?;
            ip("neigh add 192.0.2.10 lladdr 02:00:00:00:00:01 dev up0 nud permanent")?;
            ip("route add 203.0.113.0/24 via 192.0.2.10")?;
            ip("route add 198.51.100.0/24 via 192.0.2.10")?;
            sysctl("net/ipv4/ip_forward", "1")?;
            Ok(())
        })?;
        let pin = PinDir::new("bench-cost");
        let vm0 = router.run(|| ifindex("vm0"))?;
        Ok(Lab { router, pin, vm0 })
    }

    fn dataplane(&self) -> Result<XdpDataplane> {
        let mut dp = XdpDataplane::open(&XdpConfig::new(
            self.pin.0.clone(),
            &[],
            DataplaneMode::Xdp(XdpMode::Native),
        ))?;
        dp.apply(&[
            (
                "203.0.113.0/24".parse()?,
                Some(XdpTarget::Forward(vec!["192.0.2.10".parse()?])),
            ),
            ("198.51.100.0/24".parse()?, Some(XdpTarget::Pass)),
            (
                "100.64.0.0/24".parse()?,
                Some(XdpTarget::Forward(vec!["192.0.2.20".parse()?])),
            ),
        ])?;
        Ok(dp)
    }
}

fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    ensure!(i != 0, "no interface {name}");
    Ok(i)
}

fn frame(dst: &str) -> Vec<u8> {
    let mut p = V4::udp(
        VM_MAC,
        ROUTER_MAC,
        Ipv4Addr::new(10, 1, 1, 10),
        dst.parse().unwrap(),
    );
    p.ttl = 255;
    p.payload = 64;
    p.frame()
}

fn program_cost(lab: &Lab) -> Result<()> {
    println!("XDP program cost per packet (BPF_PROG_TEST_RUN, repeat), median of {RUNS}");
    lab.router.run(|| -> Result<()> {
        let dp = lab.dataplane()?;
        let floor = testrun::load_constant_program(XdpAction::Pass)?;
        let cases: [(&str, Vec<u8>, u32, XdpAction); 4] = [
            (
                "forward (LPM, set, hash, fib lookup, rewrite)",
                frame("203.0.113.5"),
                FORWARD_REPEAT,
                XdpAction::Redirect,
            ),
            (
                "fib lookup finds no neighbour (all but rewrite)",
                frame("100.64.0.9"),
                PASS_REPEAT,
                XdpAction::Pass,
            ),
            (
                "pass entry (LPM hit, PASS)",
                frame("198.51.100.7"),
                PASS_REPEAT,
                XdpAction::Pass,
            ),
            (
                "no route (LPM miss)",
                frame("192.0.2.99"),
                PASS_REPEAT,
                XdpAction::Pass,
            ),
        ];
        println!("  {:<48} {:>8}", "", "ns/pkt");
        for (name, f, repeat, action) in cases {
            let calls = if repeat == FORWARD_REPEAT { 400 } else { 1 };
            let mut v = Vec::new();
            for _ in 0..RUNS {
                let mut sum = 0.0;
                for _ in 0..calls {
                    let out = dp.test_run_repeat(&f, lab.vm0, repeat)?;
                    ensure!(out.action == action, "{name}: got {:?}", out.action);
                    sum += f64::from(out.duration_ns);
                }
                v.push(sum / f64::from(calls));
            }
            println!("  {name:<48} {:>8.1}", median(v));
        }
        let mut v = Vec::new();
        for _ in 0..RUNS {
            v.push(f64::from(
                testrun::run(floor.as_fd(), &frame("203.0.113.5"), lab.vm0, PASS_REPEAT)?
                    .duration_ns,
            ));
        }
        println!(
            "  {:<48} {:>8.1}",
            "harness floor (constant XDP_PASS program)",
            median(v)
        );
        Ok(())
    })
}
