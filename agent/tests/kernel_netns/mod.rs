//! Test support for the kernel FIB tests: each test body runs on its own
//! thread inside a fresh network namespace (unshare(CLONE_NEWNET)); netlink
//! sockets and `ip` processes started from that thread live in it, and the
//! namespace dies with the thread. Needs root and fails loudly without.
#![allow(dead_code)]

use std::net::IpAddr;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use steer::prefix::Prefix;

/// Runs `body` in a fresh network namespace with `lo` up; panics with the
/// body's error or panic.
pub fn in_netns(body: impl FnOnce() -> Result<()> + Send + 'static) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "kernel FIB tests need root (network namespaces, rtnetlink); run them as root, e.g. `sudo -E cargo test -p steer --test kernel_fib`"
    );
    let joined = std::thread::spawn(move || -> Result<()> {
        // SAFETY: unshare only changes this thread's namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            bail!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        }
        ip("link set lo up")?;
        body()
    })
    .join();
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `ip ARGS` (split on whitespace) in the calling thread's namespace;
/// its stdout, or an error with its stderr.
pub fn ip(args: &str) -> Result<String> {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .with_context(|| format!("run ip {args}"))?;
    ensure!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs `ip -j ARGS` and parses the JSON array it prints.
pub fn ip_json(args: &str) -> Result<Vec<serde_json::Value>> {
    let text = ip(&format!("-j {args}"))?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).with_context(|| format!("parse `ip -j {args}`: {text}"))
}

/// Writes a sysctl of the calling thread's namespace.
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("write {path}"))
}

/// A veth pair, both ends up.
pub fn veth(name: &str, peer: &str) -> Result<()> {
    ip(&format!("link add {name} type veth peer name {peer}"))?;
    ip(&format!("link set {name} up"))?;
    ip(&format!("link set {peer} up"))?;
    Ok(())
}

/// The uplink the appliance gateways sit on: `up0` with 192.0.2.1/24 and
/// 2001:db8:1::1/64 (gateways 192.0.2.10.. and 2001:db8:1::10..).
pub fn uplink() -> Result<()> {
    veth("up0", "up0p")?;
    ip("addr add 192.0.2.1/24 dev up0")?;
    ip("addr add 2001:db8:1::1/64 dev up0 nodad")?;
    Ok(())
}

pub fn addr(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn prefix(s: &str) -> Prefix {
    Prefix::parse_strict(s).expect("test prefix")
}

/// How many nexthop objects exist in the namespace.
pub fn nexthop_count() -> Result<usize> {
    Ok(ip_json("nexthop show")?.len())
}

/// How many routes `ip` lists in `table` (both families; a family without
/// the table has none).
pub fn route_count(table: u32) -> Result<usize> {
    let mut n = 0;
    for fam in ["-4", "-6"] {
        match ip_json(&format!("{fam} route show table {table}")) {
            Ok(routes) => n += routes.len(),
            Err(e) if e.to_string().contains("FIB table does not exist") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
