//! A connection from the address of an established host that negotiated
//! graceful restart leaves its session alone until it sends a valid OPEN
//! with the host's BGP identifier (RFC 4724 §4.2, issue 11): a bare TCP
//! connect and a garbage OPEN from that address change nothing, while a
//! real restart still takes over. Raw BGP speakers against `steer server`.

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::Duration;
use steer_tests::churn;
use steer_tests::{Lab, RawPeer, Role, Steer, default_timeout, wait_for, wire};

const RS: &str = "10.1.0.4";
const HOST: &str = "host-10.1.0.31";

const CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]

[hosts]
ranges = ["10.1.0.0/24"]
"#;

fn host_status(rs: &Steer) -> Result<Value> {
    let peers = rs.show(&["peers"])?;
    peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == HOST))
        .map(|p| p["status"].clone())
        .with_context(|| format!("{HOST} not listed: {peers:#}"))
}

fn vm_route_stale(rs: &Steer) -> Result<Value> {
    let routes = rs.show(&["routes", "10.1.31.0/24"])?;
    Ok(routes[0]["paths"][0]["stale"].clone())
}

/// The session is up on its first connection: same establishment count,
/// its VM prefix not stale, and the host's own connection still open.
fn untouched(rs: &Steer, host: &mut RawPeer, count: &Value, what: &str) -> Result<()> {
    let st = host_status(rs)?;
    ensure!(
        st["state"] == "Established" && st["established_count"] == *count,
        "after {what}: {st:#}"
    );
    ensure!(
        vm_route_stale(rs)? == false,
        "after {what}: the VM prefix became stale"
    );
    host.send(&wire::keepalive())?;
    ensure!(
        !host.is_closed(Duration::from_millis(500)),
        "after {what}: the host's connection was closed"
    );
    Ok(())
}

#[test]
fn a_bare_connect_or_garbage_open_from_a_graceful_restart_hosts_address_leaves_its_session_up()
-> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let host_ns = lab.on_lan(&lan, "host", "10.1.0.31/24")?;
    let rs = Steer::start(&rs_ns, Role::Server, CONFIG)?;

    let id: Ipv4Addr = "10.1.0.31".parse()?;
    let open = wire::open(65515, 90, id, &churn::host_capabilities(65515, true));
    let mut host = RawPeer::connect_bgp(&host_ns, RS, default_timeout())?;
    host.establish(&open, default_timeout())?;
    host.send(&churn::vm_prefix("10.1.31.0".parse()?, id))?;
    wait_for("the host's VM prefix", default_timeout(), || {
        Ok((vm_route_stale(&rs)? == false).then_some(()))
    })?;
    let count = host_status(&rs)?["established_count"].clone();
    ensure!(count == 1, "{count}");

    let mut bare = RawPeer::connect_bgp(&host_ns, RS, default_timeout())?;
    std::thread::sleep(Duration::from_secs(3));
    untouched(&rs, &mut host, &count, "a bare connect")?;
    drop(bare.recv(Duration::from_millis(100)));
    drop(bare);
    std::thread::sleep(Duration::from_millis(500));
    untouched(&rs, &mut host, &count, "a bare connect closed again")?;

    let mut garbage = RawPeer::connect_bgp(&host_ns, RS, default_timeout())?;
    let mut bad = wire::message(1, &[4, 0xff, 0xdc, 0, 90, 10, 1, 0, 31, 0]);
    bad[19] = 9;
    garbage.send(&bad)?;
    let n = garbage.expect_notification(default_timeout())?;
    ensure!(
        n.code == 2,
        "a garbage OPEN gets an OPEN Message Error: {n}"
    );
    untouched(&rs, &mut host, &count, "a garbage OPEN")?;

    let mut other_id = RawPeer::connect_bgp(&host_ns, RS, default_timeout())?;
    other_id.send(&wire::open(
        65515,
        90,
        "10.1.0.99".parse()?,
        &churn::host_capabilities(65515, true),
    ))?;
    let n = other_id.expect_notification(default_timeout())?;
    ensure!(
        (n.code, n.subcode) == (6, 7),
        "an OPEN with another BGP identifier loses the collision: {n}"
    );
    untouched(
        &rs,
        &mut host,
        &count,
        "an OPEN with another BGP identifier",
    )?;

    let mut restarted = RawPeer::connect_bgp(&host_ns, RS, default_timeout())?;
    restarted.establish(&open, default_timeout())?;
    ensure!(
        host.is_closed(default_timeout()),
        "the old connection outlived the restart"
    );
    wait_for("the restarted host's session", default_timeout(), || {
        let st = host_status(&rs)?;
        Ok((st["state"] == "Established" && st["established_count"] == 2).then_some(()))
    })?;
    Ok(())
}
