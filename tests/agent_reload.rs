//! The agent's live reconfiguration (issue 11): `steer reload` adds a VM
//! prefix and a VM interface and drops a route server, without resetting
//! the session to the route server that stays. Checked at the route
//! servers' own views (`steer show` on each), `ip rule` and table 200 in
//! the host's namespace, and the return path's pinned map of VM prefixes
//! (`bpftool`).

use anyhow::Result;
use serde_json::Value;
use steer_tests::{
    Announce, BgpDaemon, Bird, BirdConfig, Lab, Neighbor, Role, Steer, default_timeout, hooks,
    wait_for,
};

fn rs_config(id: &str) -> String {
    format!(
        "asn = 65515\nrouter_id = \"{id}\"\nlisten = [\"{id}\"]\nvnet_prefixes = [\"10.1.0.0/16\"]\n\
         connect_retry = 1\n\n[[peer]]\nname = \"sdwan\"\naddress = \"10.1.0.10\"\nasn = 65010\n\n\
         [hosts]\nranges = [\"10.1.0.0/24\"]\n"
    )
}

fn host_view(rs: &Steer) -> Result<Value> {
    let peers = rs.show(&["peers"])?;
    Ok(peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "host-10.1.0.31"))
        .cloned()
        .unwrap_or_default())
}

fn has_host_path(rs: &Steer, prefix: &str) -> Result<bool> {
    let v = rs.show(&["routes", prefix])?;
    Ok(v.as_array().into_iter().flatten().any(|r| {
        r["prefix"] == prefix
            && r["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["peer"] == "host-10.1.0.31" && p["reason"].is_null())
    }))
}

#[test]
fn reload_adds_a_vm_prefix_and_interface_and_drops_a_route_server_keeping_the_other_session()
-> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs1_ns = lab.on_lan(&lan, "rs1", "10.1.0.4/24")?;
    let rs2_ns = lab.on_lan(&lan, "rs2", "10.1.0.5/24")?;
    let sdwan_ns = lab.on_lan(&lan, "sdwan", "10.1.0.10/24")?;
    let host = lab.on_lan(&lan, "host1", "10.1.0.31/24")?;
    let vm1 = lab.node("vm1")?;
    let vm2 = lab.node("vm2")?;
    lab.link(&host, "vm1", "10.1.1.1/24", &vm1, "eth0", "10.1.1.10/24")?;
    lab.link(&host, "vm2", "10.1.2.1/24", &vm2, "eth0", "10.1.2.10/24")?;
    let rs1 = Steer::start(&rs1_ns, Role::Server, &rs_config("10.1.0.4"))?;
    let rs2 = Steer::start(&rs2_ns, Role::Server, &rs_config("10.1.0.5"))?;
    let sdwan = Bird::start(
        &sdwan_ns,
        BirdConfig::new("10.1.0.10", 65010)
            .neighbor(Neighbor::new("rs1", "10.1.0.4", 65515))
            .neighbor(Neighbor::new("rs2", "10.1.0.5", 65515))
            .announce(Announce::new("10.250.0.0/16")),
    )?;
    sdwan.wait_established("rs1")?;
    let pins = lab.bpf_pin_dir("host1")?;
    let agent_config = |servers: &str, interfaces: &str, prefixes: &str| {
        format!(
            "asn = 65515\nrouter_id = \"10.1.0.31\"\nroute_servers = [{servers}]\n\
             vm_interfaces = [{interfaces}]\nvm_prefixes = [{prefixes}]\npin_dir = \"{}\"\n\
             connect_retry = 1\n",
            pins.display()
        )
    };
    let agent = Steer::start(
        &host,
        Role::Agent,
        &agent_config("\"10.1.0.4\", \"10.1.0.5\"", "\"vm1\"", "\"10.1.1.0/24\""),
    )?;
    for rs in [&rs1, &rs2] {
        wait_for(
            "the host's VM prefix at both route servers",
            default_timeout(),
            || Ok(has_host_path(rs, "10.1.1.0/24")?.then_some(())),
        )?;
    }
    wait_for("table 200 has the on-prem route", default_timeout(), || {
        let t = host.ip("route show table 200")?;
        Ok(t.contains("10.250.0.0/16").then_some(()))
    })?;
    let before = host_view(&rs1)?["status"]["established_count"].clone();
    let vm_map = pins.join("STEER_VM4");
    assert_eq!(hooks::pinned_lpm4(&host, &vm_map)?, ["10.1.1.0/24"]);

    agent.write_config(&agent_config(
        "\"10.1.0.4\"",
        "\"vm1\", \"vm2\"",
        "\"10.1.1.0/24\", \"10.1.2.0/24\"",
    ))?;
    let summary = agent.reload()?;
    eprintln!("agent reload: {summary}");
    assert!(
        summary.ends_with(
            "route servers removed 10.1.0.5 (Cease/3); vm_prefixes +[10.1.2.0/24] -[]; \
             vm_interfaces now [vm1 vm2]"
        ),
        "{summary}"
    );
    wait_for("rs1 learns the new VM prefix", default_timeout(), || {
        Ok(has_host_path(&rs1, "10.1.2.0/24")?.then_some(()))
    })?;
    wait_for("rs2 is told Peer De-configured", default_timeout(), || {
        let v = host_view(&rs2)?;
        let e = v["status"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok(e.contains("Peer De-configured").then_some(()))
    })?;
    wait_for("ip rules for vm2", default_timeout(), || {
        Ok(host.ip("rule show")?.contains("iif vm2").then_some(()))
    })?;
    wait_for(
        "the return path's map holds the new VM prefix",
        default_timeout(),
        || {
            let mut got = hooks::pinned_lpm4(&host, &vm_map)?;
            got.sort();
            Ok((got == ["10.1.1.0/24", "10.1.2.0/24"]).then_some(()))
        },
    )?;
    assert_eq!(
        host_view(&rs1)?["status"]["established_count"],
        before,
        "the session to rs1 was not reset"
    );
    assert_eq!(host_view(&rs1)?["status"]["state"], "Established");
    assert!(host.ip("route show table 200")?.contains("10.250.0.0/16"));

    agent.write_config(&format!(
        "table = 201\n{}",
        agent_config(
            "\"10.1.0.4\"",
            "\"vm1\", \"vm2\"",
            "\"10.1.1.0/24\", \"10.1.2.0/24\""
        )
    ))?;
    let e = agent.reload().unwrap_err().to_string();
    assert!(
        e.contains("table changed: restart steer agent to apply (nothing was changed)"),
        "{e}"
    );
    Ok(())
}
