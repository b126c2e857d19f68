//! The ip rules that send VM traffic into Steer's table, checked with the
//! kernel's own lookups (`ip route get`) in a namespace (root required):
//! VM traffic uses the learned table, the host's own traffic never does,
//! connected (main-table) destinations beat learned routes, and VM traffic
//! with no learned route is unreachable rather than leaking to the host's
//! default route.

mod kernel_netns;

use anyhow::{Result, ensure};
use kernel_netns::*;
use steer::fib::kernel::{
    EcmpStrategy, KernelError, KernelFib, KernelRoute, RouteChange, RouteTarget,
};

const TABLE: u32 = 1000;
const PRIORITY: u32 = 100;

/// A hypervisor: VM interface vm0 (10.1.1.1/24, 2001:db8:10::1/64), uplink
/// up0 with the host's own default routes, and learned routes in TABLE,
/// including a learned route that overlaps the VM's connected subnet.
fn hypervisor() -> Result<KernelFib> {
    uplink()?;
    veth("vm0", "vm0p")?;
    ip("addr add 10.1.1.1/24 dev vm0")?;
    ip("addr add 2001:db8:10::1/64 dev vm0 nodad")?;
    ip("route add default via 192.0.2.254")?;
    ip("-6 route add default via 2001:db8:1::fe")?;
    sysctl("net.ipv4.ip_forward", "1")?;
    sysctl("net.ipv6.conf.all.forwarding", "1")?;
    let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
    let learned = [
        ("203.0.113.0/24", "192.0.2.10"),
        ("10.1.0.0/16", "192.0.2.11"),
        ("2001:db8:f00::/48", "2001:db8:1::10"),
        ("2001:db8:10::/48", "2001:db8:1::11"),
    ];
    let changes: Vec<RouteChange> = learned
        .iter()
        .map(|(p, gw)| {
            RouteChange::Upsert(KernelRoute {
                prefix: prefix(p),
                target: RouteTarget::Unicast(vec![addr(gw)]),
            })
        })
        .collect();
    let report = fib.apply(&changes)?;
    ensure!(report.failures.is_empty(), "{:?}", report.failures);
    fib.ensure_rules(&["vm0".to_string()], PRIORITY)?;
    Ok(fib)
}

/// `ip route get` as JSON: (gateway or "", dev), or the error text.
fn get(args: &str) -> Result<(String, String), String> {
    match ip_json(&format!("route get {args}")) {
        Ok(v) => {
            let r = &v[0];
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            Ok((s("gateway"), s("dev")))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn ok(gateway: &str, dev: &str) -> Result<(String, String), String> {
    Ok((gateway.to_string(), dev.to_string()))
}

#[test]
fn vm_traffic_uses_the_table_and_host_traffic_never_does() {
    in_netns(|| {
        let _fib = hypervisor()?;
        assert_eq!(
            get("203.0.113.1 from 10.1.1.10 iif vm0"),
            ok("192.0.2.10", "up0")
        );
        assert_eq!(
            get("203.0.113.1"),
            ok("192.0.2.254", "up0"),
            "host traffic: main table"
        );
        assert_eq!(
            get("2001:db8:f00::1 from 2001:db8:10::10 iif vm0"),
            ok("2001:db8:1::10", "up0")
        );
        assert_eq!(get("2001:db8:f00::1"), ok("2001:db8:1::fe", "up0"));
        Ok(())
    });
}

#[test]
fn connected_destinations_from_a_vm_beat_learned_routes() {
    in_netns(|| {
        let _fib = hypervisor()?;
        assert_eq!(get("10.1.1.20 from 10.1.1.10 iif vm0"), ok("", "vm0"));
        assert_eq!(
            get("10.1.2.20 from 10.1.1.10 iif vm0"),
            ok("192.0.2.11", "up0"),
            "learned /16 beyond the connected /24"
        );
        assert_eq!(
            get("2001:db8:10::20 from 2001:db8:10::10 iif vm0"),
            ok("", "vm0")
        );
        Ok(())
    });
}

#[test]
fn vm_traffic_without_a_learned_route_is_unreachable_not_the_hosts_default() {
    in_netns(|| {
        let _fib = hypervisor()?;
        let v4 = get("198.51.100.1 from 10.1.1.10 iif vm0");
        assert!(matches!(&v4, Err(e) if e.contains("unreachable")), "{v4:?}");
        let v6 = get("2001:db8:ffff::1 from 2001:db8:10::10 iif vm0");
        assert!(matches!(&v6, Err(e) if e.contains("unreachable")), "{v6:?}");
        assert_eq!(get("198.51.100.1"), ok("192.0.2.254", "up0"));
        Ok(())
    });
}

fn our_rules() -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ip_json(&format!("{fam} -d rule show"))? {
            if r["iif"].is_string() {
                out.push((
                    r["priority"].as_u64().unwrap_or_default(),
                    format!("{fam} {}", r["iif"].as_str().unwrap_or_default()),
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn ensure_rules_is_idempotent_and_drops_interfaces_no_longer_listed() {
    in_netns(|| {
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        let both = ["vm0".to_string(), "vm1".to_string()];
        fib.ensure_rules(&both, PRIORITY)?;
        fib.ensure_rules(&both, PRIORITY)?;
        assert_eq!(our_rules()?.len(), 12);
        fib.ensure_rules(&both[..1], PRIORITY)?;
        let expect: Vec<(u64, String)> = [100, 101, 102]
            .iter()
            .flat_map(|&p| [(p, "-4 vm0".to_string()), (p, "-6 vm0".to_string())])
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(our_rules()?, expect);
        let mut restarted = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        restarted.ensure_rules(&both[..1], 200)?;
        assert_eq!(
            our_rules()?.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![200, 200, 201, 201, 202, 202],
            "a new priority replaces the old rules"
        );
        restarted.remove_rules()?;
        assert_eq!(our_rules()?, vec![]);
        Ok(())
    });
}

#[test]
fn rules_of_other_owners_are_left_alone() {
    in_netns(|| {
        ip("rule add pref 100 iif vm9 lookup 77")?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        fib.ensure_rules(&["vm0".to_string()], 100)?;
        fib.remove_rules()?;
        assert_eq!(our_rules()?, vec![(100, "-4 vm9".to_string())]);
        Ok(())
    });
}

#[test]
fn priorities_without_room_for_three_rules_are_refused() {
    in_netns(|| {
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        for p in [0, u32::MAX - 1] {
            let r = fib.ensure_rules(&["vm0".to_string()], p);
            ensure!(
                matches!(r, Err(KernelError::InvalidPriority(q)) if q == p),
                "{p}: {r:?}"
            );
        }
        Ok(())
    });
}
