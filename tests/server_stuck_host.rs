//! A host that stops reading cannot grow the route server or slow the
//! others (RFC 9687 send hold, bounded send queues): raw BGP speakers as
//! a churning appliance, a healthy host that times every change, and a
//! host that completes its session, keeps sending KEEPALIVEs and never
//! reads again (its receive window closes).

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use steer_tests::churn::{self, Churner, Stuck, Watcher};
use steer_tests::{Lab, Netns, RawPeer, Role, Steer, default_timeout, wire};

const RS: &str = "10.1.0.4";

fn config(hosts_extra: &str) -> String {
    format!(
        r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]

[[peer]]
name = "churn"
address = "10.1.0.10"
asn = 65010
passive = true
max_prefixes = 300000

[hosts]
ranges = ["10.1.0.0/24"]
{hosts_extra}
"#
    )
}

fn peer<'a>(peers: &'a Value, name: &str) -> &'a Value {
    peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

fn connect(ns: &Netns, asn: u32, id: &str, caps: &[Vec<u8>]) -> Result<RawPeer> {
    let mut p = RawPeer::connect_bgp(ns, RS, default_timeout())?;
    let id: Ipv4Addr = id.parse()?;
    p.establish(&wire::open(asn, 90, id, caps), default_timeout())?;
    Ok(p)
}

fn appliance(ns: &Netns) -> Result<RawPeer> {
    connect(
        ns,
        65010,
        "10.1.0.10",
        &[wire::cap_ipv4_unicast(), wire::cap_as4(65010)],
    )
}

fn host(ns: &Netns, addr: &str, gr: bool) -> Result<RawPeer> {
    connect(ns, 65515, addr, &churn::host_capabilities(65515, gr))
}

fn latencies(sent: &[Instant], reached: &[Instant], from: Instant, to: Instant) -> Vec<Duration> {
    sent.iter()
        .zip(reached)
        .filter(|(s, _)| **s >= from && **s < to)
        .map(|(s, r)| r.saturating_duration_since(*s))
        .collect()
}

#[test]
fn a_host_that_stops_reading_is_dropped_within_the_send_hold_time_and_nothing_else_suffers()
-> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let app_ns = lab.on_lan(&lan, "churn", "10.1.0.10/24")?;
    let ok_ns = lab.on_lan(&lan, "healthy", "10.1.0.31/24")?;
    let stuck_ns = lab.on_lan(&lan, "stuck", "10.1.0.32/24")?;
    let rs = Steer::start(&rs_ns, Role::Server, &config("send_hold_time = 20"))?;
    let pid = rs.pid().context("route server pid")?;

    let prefixes = churn::prefixes(Ipv4Addr::new(100, 64, 0, 0), 24, 900);
    let healthy = Watcher::start(host(&ok_ns, "10.1.0.31", false)?, &prefixes)?;
    let churner = Churner::start(
        appliance(&app_ns)?,
        65010,
        "10.1.0.10".parse()?,
        prefixes.clone(),
        Duration::from_millis(50),
    )?;
    std::thread::sleep(Duration::from_secs(5));
    healthy.check()?;

    let rss_before = churn::rss(pid)?;
    let stuck_started = Instant::now();
    let mut raw = host(&stuck_ns, "10.1.0.32", true)?;
    raw.send(&churn::vm_prefix(
        "10.1.32.0".parse()?,
        "10.1.0.32".parse()?,
    ))?;
    let mut stuck = Stuck::start(raw)?;
    let name = "host-10.1.0.32";
    let mut stall_began = None;
    let mut queued_at = None;
    let mut peak_queue = 0;
    let dropped_at = loop {
        let peers = rs.show(&["peers"])?;
        let now = Instant::now();
        let p = peer(&peers, name);
        let q = &p["status"]["send_queue"];
        let bytes = q["bytes"].as_u64().unwrap_or(0);
        peak_queue = peak_queue.max(bytes);
        if bytes > 0 {
            queued_at.get_or_insert(now);
            let stalled = Duration::from_secs_f64(q["stalled_seconds"].as_f64().unwrap_or(0.0));
            stall_began = Some(now - stalled);
        }
        if p["status"]["state"] != "Established" && queued_at.is_some() {
            break now;
        }
        ensure!(
            stuck_started.elapsed() < Duration::from_secs(90),
            "the stuck host is still Established after 90 s: {p:#}"
        );
        healthy.check()?;
        churner.check()?;
        std::thread::sleep(Duration::from_millis(250));
    };
    let queued_at = queued_at.expect("set before the loop ends");
    let stall_began = stall_began.expect("set with queued_at");
    let waited = dropped_at - stall_began;
    eprintln!(
        "stuck host: its queue first held data {:.1} s after it connected, took nothing more from {:.1} s, dropped {:.1} s after that (peak queue {peak_queue} bytes)",
        (queued_at - stuck_started).as_secs_f64(),
        (stall_began - stuck_started).as_secs_f64(),
        waited.as_secs_f64()
    );
    ensure!(
        waited >= Duration::from_secs(20) && waited <= Duration::from_secs(22),
        "dropped {waited:?} after the route server last saw it take data; send_hold_time is 20 s"
    );
    let peers = rs.show(&["peers"])?;
    let p = peer(&peers, name);
    ensure!(
        p["status"]["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("sent Send Hold Timer Expired / Unspecific (8/0)"),
        "{p:#}"
    );
    ensure!(p["status"]["send_hold_expiries"] == 1, "{p:#}");
    ensure!(
        stuck.was_reset(),
        "the stuck host's connection was not reset"
    );

    let routes = rs.show(&["routes", "10.1.32.0/24"])?;
    let path = &routes[0]["paths"][0];
    ensure!(
        path["peer"] == name && path["stale"] == true,
        "the dropped host's VM prefix is kept as stale (graceful restart): {routes:#}"
    );

    std::thread::sleep(Duration::from_secs(2));
    let rss_after = churn::rss(pid)?;
    let mut rss_max = rss_after;
    for _ in 0..15 {
        std::thread::sleep(Duration::from_secs(1));
        rss_max = rss_max.max(churn::rss(pid)?);
        healthy.check()?;
        churner.check()?;
    }
    let end = Instant::now();
    let grew = rss_max.saturating_sub(rss_after);
    eprintln!(
        "route server RSS (VmRSS): {:.1} MB under churn before the stuck host, {:.1} MB two seconds after its drop, at most {:.1} MB over the next 15 s of churn",
        rss_before as f64 / 1e6,
        rss_after as f64 / 1e6,
        rss_max as f64 / 1e6
    );
    ensure!(
        grew < 1 << 20,
        "RSS grew by {grew} bytes in 15 s after the drop"
    );

    let sent = churner.sent();
    let reached = healthy.reached();
    let settled = end - Duration::from_secs(2);
    ensure!(
        reached.len() >= sent.iter().filter(|s| **s < settled).count(),
        "the healthy host missed changes: {} rounds sent, {} reached",
        sent.len(),
        reached.len()
    );
    let before = churn::median(latencies(&sent, &reached, sent[0], stuck_started));
    let during = churn::median(latencies(&sent, &reached, queued_at, dropped_at));
    let after = churn::median(latencies(&sent, &reached, dropped_at, settled));
    eprintln!(
        "healthy host, median change latency: {before:?} before the stuck host, {during:?} while it was stuck, {after:?} after its drop ({} rounds of 900 prefixes)",
        reached.len()
    );
    let limit = (before * 3).max(before + Duration::from_millis(100));
    ensure!(
        during <= limit && after <= limit,
        "latency changed: {before:?} before, {during:?} stuck, {after:?} after"
    );
    Ok(())
}

#[test]
fn a_burst_trips_the_per_session_queue_limit_with_cease_8_and_the_others_carry_on() -> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let app_ns = lab.on_lan(&lan, "burst", "10.1.0.10/24")?;
    let stuck_ns = lab.on_lan(&lan, "stuck", "10.1.0.32/24")?;
    let late_ns = lab.on_lan(&lan, "late", "10.1.0.33/24")?;
    let rs = Steer::start(&rs_ns, Role::Server, &config("send_queue_limit = 262144"))?;

    let mut app = appliance(&app_ns)?;
    // With graceful restart, so the dropped host stays listed (stale).
    let mut stuck = Stuck::start(host(&stuck_ns, "10.1.0.32", true)?)?;
    let name = "host-10.1.0.32";
    let burst = churn::prefixes(Ipv4Addr::new(100, 64, 0, 0), 28, 200_000);
    let t0 = Instant::now();
    for part in burst.chunks(20_000) {
        app.send(&churn::announce(65010, "10.1.0.10".parse()?, 1, part))?;
        std::thread::sleep(Duration::from_millis(100));
    }
    // The burst goes on with small changes: a single chunk over the limit
    // is taken into an empty queue (a full-table dump must go out), so
    // what trips the limit is anything queued behind it.
    let mut med = 2;
    let p = loop {
        let peers = rs.show(&["peers"])?;
        let p = peer(&peers, name).clone();
        ensure!(!p.is_null(), "{name} is not listed: {peers:#}");
        if p["status"]["state"] != "Established" {
            break p;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the stuck host survived a 200,000-prefix burst for 30 s: {p:#}");
        }
        app.send(&churn::announce(
            65010,
            "10.1.0.10".parse()?,
            med,
            &burst[..100],
        ))?;
        med += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "queue limit tripped {:.1} s after the burst began",
        t0.elapsed().as_secs_f64()
    );
    ensure!(
        p["status"]["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("sent Cease / Out of Resources (6/8)"),
        "{p:#}"
    );
    ensure!(p["status"]["queue_overflows"] == 1, "{p:#}");
    ensure!(p["status"]["send_hold_expiries"] == 0, "{p:#}");
    ensure!(
        stuck.was_reset(),
        "the stuck host's connection was not reset"
    );

    let peers = rs.show(&["peers"])?;
    ensure!(
        peer(&peers, "churn")["status"]["state"] == "Established",
        "the appliance's session must not suffer: {peers:#}"
    );
    let late = Watcher::start(host(&late_ns, "10.1.0.33", false)?, &burst)?;
    let start = Instant::now();
    while late.reached().is_empty() {
        late.check()?;
        ensure!(
            start.elapsed() < default_timeout(),
            "a host connecting after the burst got {} bytes, not every path",
            late.bytes()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
