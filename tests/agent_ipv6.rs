//! IPv6 end to end: an appliance (GoBGP) announces an IPv6 prefix with an
//! IPv6 next hop over its IPv4 session (MP-BGP, RFC 4760); the route server
//! passes it to the host over iBGP with ADD-PATH; the agent installs it in
//! the kernel table and the eBPF IPv6 map, and a VM's IPv6 ping reaches the
//! appliance through the TC program (the default dataplane). The host's
//! IPv6 VM prefix and the VNet's IPv6 space reach the appliance with the
//! configured IPv6 next hops.

use anyhow::Result;
use serde_json::Value;
use steer_tests::{
    Announce, BgpDaemon, Gobgp, GobgpConfig, Lab, Neighbor, Role, Steer, default_timeout, wait_for,
};

const RS_CONFIG: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16", "2001:db8:a000::/36"]
ipv6_next_hop = "2001:db8:1::4"
connect_retry = 1

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010

[hosts]
ranges = ["10.1.0.0/24"]
"#;

#[test]
fn ipv6_route_over_an_ipv4_session_reaches_kernel_and_ebpf_map_and_carries_vm_traffic_through_tc()
-> Result<()> {
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let sdwan_ns = lab.on_lan(&lan, "sdwan", "10.1.0.10/24")?;
    let host = lab.on_lan(&lan, "host1", "10.1.0.31/24")?;
    let vm = lab.node("vm1")?;
    lab.link(&host, "vm1", "10.1.1.1/24", &vm, "eth0", "10.1.1.10/24")?;
    sdwan_ns.ip("-6 addr add 2001:db8:1::10/64 dev eth0 nodad")?;
    sdwan_ns.ip("-6 addr add 2001:db8:250::1/128 dev lo")?;
    host.ip("-6 addr add 2001:db8:1::31/64 dev eth0 nodad")?;
    rs_ns.ip("-6 addr add 2001:db8:1::4/64 dev eth0 nodad")?;
    host.ip("-6 addr add 2001:db8:a001::1/64 dev vm1 nodad")?;
    vm.ip("-6 addr add 2001:db8:a001::10/64 dev eth0 nodad")?;
    vm.ip("-6 route add default via 2001:db8:a001::1")?;
    // GoBGP does not program the kernel: the appliance's return route is
    // static here, and what it learned is checked in its RIB below.
    sdwan_ns.ip("-6 route add 2001:db8:a001::/64 via 2001:db8:1::31")?;

    let _rs = Steer::start(&rs_ns, Role::Server, RS_CONFIG)?;
    let sdwan = Gobgp::start(
        &sdwan_ns,
        GobgpConfig::new("10.1.0.10", 65010).neighbor(Neighbor::new("rs", "10.1.0.4", 65515)),
    )?;
    sdwan.wait_established("10.1.0.4")?;
    sdwan.announce(&Announce::new("2001:db8:250::/48").next_hop("2001:db8:1::10"))?;
    let pins = lab.bpf_pin_dir("host1")?;
    let agent = Steer::start(
        &host,
        Role::Agent,
        &format!(
            "asn = 65515\nrouter_id = \"10.1.0.31\"\nroute_servers = [\"10.1.0.4\"]\nvm_interfaces = [\"vm1\"]\nvm_prefixes = [\"10.1.1.0/24\", \"2001:db8:a001::/64\"]\nipv6_next_hop = \"2001:db8:1::31\"\npin_dir = \"{}\"\nconnect_retry = 1\n",
            pins.display()
        ),
    )?;
    let table = wait_for("the IPv6 route in table 200", default_timeout(), || {
        let t = host.ip("-6 route show table 200")?;
        Ok(t.contains("2001:db8:250::/48").then_some(t))
    })?;
    assert!(table.contains("via 2001:db8:1::10 dev eth0"), "{table}");
    assert!(
        table.contains("unreachable 2001:db8:a000::/36"),
        "the VNet's IPv6 space: {table}"
    );
    let fib: Value = agent.show(&["fib"])?;
    let entry = fib["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["prefix"] == "2001:db8:250::/48")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(entry["xdp"], "forward 2001:db8:1::10", "{fib:#}");
    assert_eq!(entry["mismatch"], false);

    let learned = wait_for(
        "the appliance to learn the IPv6 VM prefix and VNet space",
        default_timeout(),
        || {
            let v = sdwan.json(&["global", "rib", "-a", "ipv6"])?.to_string();
            Ok((v.contains("2001:db8:a001::/64") && v.contains("2001:db8:a000::/36")).then_some(v))
        },
    )?;
    assert!(
        learned.contains("2001:db8:1::31"),
        "VM prefix next hop: {learned}"
    );
    assert!(
        learned.contains("2001:db8:1::4"),
        "VNet next hop: {learned}"
    );

    vm.output("ping", &["-6", "-c", "2", "-W", "1", "2001:db8:250::1"])?;
    let before = fib["counters"]["tc"]["forwarded"][0].as_u64().unwrap_or(0);
    let out = vm.output(
        "ping",
        &["-6", "-c", "10", "-i", "0.05", "-W", "1", "2001:db8:250::1"],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10 received"), "{text}");
    let after: Value = agent.show(&["fib"])?;
    let forwarded = after["counters"]["tc"]["forwarded"][0]
        .as_u64()
        .unwrap_or(0)
        - before;
    assert!(forwarded >= 10, "TC forwarded {forwarded} IPv6 packets");
    Ok(())
}
