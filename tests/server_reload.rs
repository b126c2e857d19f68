//! Live reconfiguration (issue 11): `steer reload` and SIGHUP add, remove
//! and change appliances, VNet prefixes and host ranges without touching
//! the sessions that did not change. Checked at the BIRD appliances (their
//! sessions' `since` and last error) and a GoBGP host's table.

use std::time::Duration;

use anyhow::Result;
use steer_tests::scenario::{RouteServerLab, rs_neighbor};
use steer_tests::{Announce, BgpDaemon, Bird, BirdConfig, default_timeout, wait_for};

fn config(appliances: &[(&str, &str, u32)], vnet: &str, ranges: &str, fw1_limit: u32) -> String {
    let mut s = format!(
        "asn = 65515\nrouter_id = \"10.1.0.4\"\nlisten = [\"10.1.0.4\"]\n\
         vnet_prefixes = [{vnet}]\nconnect_retry = 1\n"
    );
    for (name, addr, asn) in appliances {
        s.push_str(&format!(
            "\n[[peer]]\nname = \"{name}\"\naddress = \"{addr}\"\nasn = {asn}\n"
        ));
        if *name == "fw1" {
            s.push_str(&format!("max_prefixes = {fw1_limit}\n"));
        }
    }
    s.push_str(&format!("\n[hosts]\nranges = [{ranges}]\n"));
    s
}

fn has(routes: &[steer_tests::Route], prefix: &str) -> bool {
    routes.iter().any(|r| r.prefix == prefix)
}

#[test]
fn reload_adds_removes_and_changes_peers_without_resetting_the_unchanged_ones() -> Result<()> {
    let fw = |addr: &str, asn: u32, prefix: &str| {
        BirdConfig::new(addr, asn)
            .neighbor(rs_neighbor())
            .announce(Announce::new(prefix))
    };
    let a = config(
        &[("fw1", "10.1.0.201", 65021), ("fw2", "10.1.0.202", 65022)],
        "\"10.1.0.0/16\"",
        "\"10.1.0.0/25\"",
        1000,
    );
    let s = RouteServerLab::new(&a)
        .appliance_bird("fw1", fw("10.1.0.201", 65021, "198.51.100.0/24"))
        .appliance_bird("fw2", fw("10.1.0.202", 65022, "203.0.113.0/24"))
        .node("fw3", "10.1.0.203")
        .host_gobgp("host", "10.1.0.31")
        .start()?;
    let fw3 = Bird::start(s.ns("fw3"), fw("10.1.0.203", 65023, "192.0.2.0/24"))?;
    let (rs, fw1, fw2, host) = (&s.rs, s.bird("fw1"), s.bird("fw2"), s.host("host"));
    host.wait_routes("203.0.113.0/24", |p| p.len() == 1)?;
    host.wait_routes("198.51.100.0/24", |p| p.len() == 1)?;
    std::thread::sleep(Duration::from_secs(1));
    let fw1_since = fw1.since("rs")?;

    let b = config(
        &[("fw1", "10.1.0.201", 65021), ("fw3", "10.1.0.203", 65023)],
        "\"10.1.0.0/16\", \"10.2.0.0/16\"",
        "\"10.1.0.0/24\"",
        500,
    );
    rs.write_config(&b)?;
    let summary = rs.reload()?;
    assert!(
        summary.ends_with(
            "added fw3; removed fw2 (Cease/3); changed in place fw1 (max_prefixes); \
             vnet_prefixes +[10.2.0.0/16] -[]; hosts: ranges"
        ),
        "{summary}"
    );
    wait_for("fw2 told Peer De-configured", default_timeout(), || {
        Ok(fw2
            .last_error("rs")?
            .filter(|e| e.to_lowercase().contains("de-configured"))
            .map(|_| ()))
    })?;
    fw3.wait_established("rs")?;
    host.wait_routes("192.0.2.0/24", |p| p.len() == 1)?;
    host.wait_routes("203.0.113.0/24", |p| p.is_empty())?;
    wait_for("fw1 learns the new VNet prefix", default_timeout(), || {
        Ok(has(&fw1.routes()?, "10.2.0.0/16").then_some(()))
    })?;
    assert_eq!(fw1.since("rs")?, fw1_since, "fw1's session was not reset");
    let peers = rs.show(&["peers"])?;
    let fw1_view = peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "fw1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(fw1_view["max_prefixes"], 500, "{fw1_view}");

    let invalid = b.replace(
        "connect_retry = 1",
        "connect_retry = 1\nbranch_to_brnch = true",
    );
    rs.write_config(&invalid)?;
    let e = rs.reload().unwrap_err().to_string();
    assert!(
        e.contains("steer.toml") && e.contains("branch_to_brnch"),
        "the refusal names the file and the key: {e}"
    );
    rs.write_config(&b.replace("asn = 65515", "asn = 65516"))?;
    let e = rs.reload().unwrap_err().to_string();
    assert!(
        e.contains("asn changed: restart steer server to apply (nothing was changed)"),
        "{e}"
    );
    assert_eq!(
        fw1.since("rs")?,
        fw1_since,
        "refused reloads change nothing"
    );
    assert!(has(&fw1.routes()?, "10.2.0.0/16"));

    rs.write_config(&b.replace(", \"10.2.0.0/16\"", ""))?;
    let pid = rs.pid().expect("steer server pid");
    // SAFETY: kill sends a signal to the route server we started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    wait_for("SIGHUP withdraws 10.2.0.0/16", default_timeout(), || {
        Ok((!has(&fw1.routes()?, "10.2.0.0/16")).then_some(()))
    })?;
    assert_eq!(fw1.since("rs")?, fw1_since);
    assert_eq!(
        fw3.session_state("rs")?,
        steer_tests::SessionState::Established
    );
    Ok(())
}
