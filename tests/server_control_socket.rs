//! The control socket's bounds (issue 11): mode and group as configured, a
//! 100 MB request, 3,000 idle connections, `show routes --json` over 100k
//! routes from four clients and one client that never reads, all while an
//! appliance changes a route. Outcomes are measured outside the code under
//! test: the daemon's RSS and open descriptors from /proc, the socket's
//! mode from stat, and the route change's latency at a raw iBGP host.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use steer_tests::wire::{self, Message};
use steer_tests::{Lab, RawPeer, Role, Steer, default_timeout, wait_for};

const ROUTES: u32 = 100_000;
/// The daemon's limits (agent/src/control/socket.rs).
const MAX_REQUEST: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 64;

fn config(group: &str) -> String {
    format!(
        r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]
socket_group = "{group}"

[[peer]]
name = "bulk"
address = "10.1.0.20"
asn = 65020
passive = true
max_prefixes = 200000

[hosts]
ranges = ["10.1.0.0/24"]
"#
    )
}

/// UPDATEs announcing `count` /32s from 100.64.0.0 on, 700 per UPDATE.
fn bulk_updates(count: u32) -> Vec<Vec<u8>> {
    let attrs = [
        wire::attribute(0x40, 1, &[0]),
        wire::attribute(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xfc]),
        wire::attribute(0x40, 3, &[10, 1, 0, 20]),
    ]
    .concat();
    (0..count)
        .collect::<Vec<u32>>()
        .chunks(700)
        .map(|c| {
            let nlri: Vec<u8> = c
                .iter()
                .flat_map(|i| wire::nlri(Ipv4Addr::from(0x6440_0000 + i), 32))
                .collect();
            wire::update(&[], &attrs, &nlri)
        })
        .collect()
}

fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

fn fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Reads UPDATEs at the host until `prefix` is announced; the time it took.
fn wait_announced(host: &mut RawPeer, prefix: (Ipv4Addr, u8)) -> Result<Duration> {
    let start = Instant::now();
    loop {
        match host.recv(default_timeout())? {
            Some(Message::Update(body)) if wire::update_nlri(&body)?.contains(&prefix) => {
                return Ok(start.elapsed());
            }
            Some(_) => {}
            None => bail!("the host's session closed"),
        }
    }
}

/// Reads everything queued to the host until it is quiet for a second.
fn drain(host: &mut RawPeer) {
    while host.recv(Duration::from_secs(1)).is_ok_and(|m| m.is_some()) {}
}

/// One `show routes --json` over the socket, as the CLI sends it; returns
/// the number of routes in the answer.
fn show_routes(socket: &Path) -> Result<usize> {
    let mut s = UnixStream::connect(socket)?;
    s.write_all(b"{\"show\":\"routes\"}\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line).context("answer is one JSON line")?;
    ensure!(v.get("error").is_none(), "show routes: {}", v["error"]);
    v["ok"].as_array().map(Vec::len).context("no ok list")
}

fn raise_fd_limit(n: u64) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit with a valid struct.
    ensure!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0,
        "setrlimit: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

#[test]
fn bounded_control_socket_keeps_memory_and_route_latency_under_floods_and_large_queries()
-> Result<()> {
    raise_fd_limit(16_384)?;
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let bulk_ns = lab.on_lan(&lan, "bulk", "10.1.0.20/24")?;
    let host_ns = lab.on_lan(&lan, "host", "10.1.0.31/24")?;
    // SAFETY: umask only changes this process's file creation mask.
    let old_umask = unsafe { libc::umask(0) };
    let rs = Steer::start(&rs_ns, Role::Server, &config("nogroup"));
    unsafe { libc::umask(old_umask) };
    let rs = rs?;
    let pid = rs.pid().context("steer server pid")?;
    let socket = rs.socket().to_path_buf();
    wait_for("control socket", default_timeout(), || {
        Ok(socket.exists().then_some(()))
    })?;

    let meta = std::fs::metadata(&socket)?;
    assert_eq!(meta.mode() & 0o777, 0o660, "mode under umask 000");
    let getent = std::process::Command::new("getent")
        .args(["group", "nogroup"])
        .output()?;
    let gid: u32 = String::from_utf8_lossy(&getent.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .context("getent group nogroup")?;
    assert_eq!(meta.gid(), gid, "socket_group");

    let mut bulk = RawPeer::connect_bgp(&bulk_ns, "10.1.0.4", default_timeout())?;
    bulk.establish_simple(65020, 0, Ipv4Addr::new(10, 1, 0, 20))?;
    let mut host = RawPeer::connect_bgp(&host_ns, "10.1.0.4", default_timeout())?;
    host.establish_simple(65515, 0, Ipv4Addr::new(10, 1, 0, 31))?;
    for u in bulk_updates(ROUTES) {
        bulk.send(&u)?;
    }
    rs.wait_show(&["peers"], |v| {
        v.as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == "bulk"))
            .is_some_and(|p| p["received"] == ROUTES)
    })?;
    drain(&mut host);
    std::thread::sleep(Duration::from_secs(1));
    let idle_fds = fds(pid)?;
    let baseline = status_kb(pid, "VmRSS:")?;
    eprintln!("idle: RSS {baseline} kB, {idle_fds} descriptors");

    let mut big = UnixStream::connect(&socket)?;
    let writer = {
        let mut w = big.try_clone()?;
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 20];
            (0..100).try_for_each(|_| w.write_all(&chunk))
        })
    };
    let mut answer = String::new();
    big.set_read_timeout(Some(default_timeout()))?;
    BufReader::new(&mut big).read_line(&mut answer)?;
    assert_eq!(
        answer.trim(),
        format!("{{\"error\":\"request longer than {MAX_REQUEST} bytes\"}}")
    );
    assert!(
        writer.join().unwrap().is_err(),
        "the daemon stopped reading"
    );
    drop(big);

    let idle: Vec<UnixStream> = (0..3000)
        .map(|_| UnixStream::connect(&socket))
        .collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(500));
    let held = fds(pid)?;
    eprintln!("3,000 idle connections: the daemon holds {held} descriptors");
    assert!(
        held <= idle_fds + MAX_CONNECTIONS + 2,
        "{held} descriptors held for 3,000 idle connections"
    );
    wait_for(
        "idle connections timed out",
        Duration::from_secs(15),
        || Ok((fds(pid)? <= idle_fds + 2).then_some(())),
    )?;
    drop(idle);

    let mut next_prefix = 0u8;
    let mut change = |host: &mut RawPeer| -> Result<Duration> {
        let attrs = [
            wire::attribute(0x40, 1, &[0]),
            wire::attribute(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xfc]),
            wire::attribute(0x40, 3, &[10, 1, 0, 20]),
        ]
        .concat();
        let prefix = (Ipv4Addr::new(198, 51, 100, next_prefix), 32);
        next_prefix += 1;
        bulk.send(&wire::update(&[], &attrs, &wire::nlri(prefix.0, prefix.1)))?;
        let took = wait_announced(host, prefix)?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(took)
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let quiet = median((0..7).map(|_| change(&mut host)).collect::<Result<_>>()?);

    let mut stuck = UnixStream::connect(&socket)?;
    stuck.write_all(b"{\"show\":\"routes\"}\n")?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let s = socket.clone();
            let stop = stop.clone();
            std::thread::spawn(move || -> Result<Vec<usize>> {
                let mut counts = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    counts.push(show_routes(&s)?);
                }
                Ok(counts)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let during = median((0..7).map(|_| change(&mut host)).collect::<Result<_>>()?);
    let peak = status_kb(pid, "VmRSS:")?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut queries = 0;
    for r in readers {
        for n in r.join().unwrap()? {
            assert!(n > ROUTES as usize, "show routes listed {n} routes");
            queries += 1;
        }
    }
    eprintln!(
        "route change to the host, median of 7: {quiet:?} idle, {during:?} during {queries} `show routes` of 100k routes from 4 clients and a stuck reader; RSS peak {peak} kB"
    );
    assert!(queries >= 4, "{queries} queries finished");
    assert!(
        during < quiet + Duration::from_millis(10),
        "queries added {:?} to a route change ({quiet:?} idle, {during:?} during)",
        during.saturating_sub(quiet)
    );

    wait_for("the stuck reader dropped", Duration::from_secs(30), || {
        stuck.set_read_timeout(Some(Duration::from_millis(1)))?;
        Ok((fds(pid)? <= idle_fds + 1).then_some(()))
    })?;
    let mut rest = Vec::new();
    stuck.set_read_timeout(Some(Duration::from_secs(5)))?;
    let _ = stuck.read_to_end(&mut rest);
    drop(stuck);
    std::thread::sleep(Duration::from_secs(1));
    let after = status_kb(pid, "VmRSS:")?;
    eprintln!("RSS: idle {baseline} kB, after everything {after} kB");
    assert!(
        after <= 2 * baseline,
        "RSS {after} kB after the queries, idle {baseline} kB"
    );
    Ok(())
}
