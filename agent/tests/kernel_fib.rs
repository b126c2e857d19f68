//! The kernel FIB against a real kernel, each test in its own network
//! namespace (root required): routes round-trip through apply and dump for
//! every target kind and both families and ECMP strategies, failures are
//! reported per prefix, big batches land, a restarted instance adopts what
//! the last one installed, nexthop objects are collected, neighbours become
//! managed, and the host's connected prefixes are found.

mod kernel_netns;

use anyhow::{Result, ensure};
use kernel_netns::*;
use steer::fib::kernel::{
    ApplyReport, ChangeKind, EcmpStrategy, KernelError, KernelFib, KernelRoute, RouteChange,
    RouteFailure, RouteTarget,
};

const TABLE: u32 = 1000;

fn route(p: &str, target: RouteTarget) -> KernelRoute {
    KernelRoute {
        prefix: prefix(p),
        target,
    }
}

fn via(gws: &[&str]) -> RouteTarget {
    RouteTarget::Unicast(gws.iter().map(|g| addr(g)).collect())
}

fn upserts(routes: &[KernelRoute]) -> Vec<RouteChange> {
    routes.iter().cloned().map(RouteChange::Upsert).collect()
}

fn clean(applied: usize) -> ApplyReport {
    ApplyReport {
        applied,
        retried: 0,
        failures: Vec::new(),
    }
}

fn round_trip(strategy: EcmpStrategy, routes: Vec<KernelRoute>) -> Result<()> {
    uplink()?;
    let mut fib = KernelFib::open(TABLE, strategy)?;
    assert_eq!(fib.apply(&upserts(&routes))?, clean(routes.len()));
    let mut want = routes;
    want.sort_by_key(|r| r.prefix);
    assert_eq!(fib.dump()?, want);
    Ok(())
}

#[test]
fn unicast_routes_of_both_families_round_trip_through_dump() {
    in_netns(|| {
        round_trip(
            EcmpStrategy::Multipath,
            vec![
                route("203.0.113.0/24", via(&["192.0.2.10"])),
                route("0.0.0.0/0", via(&["192.0.2.11"])),
                route("2001:db8:f00::/48", via(&["2001:db8:1::10"])),
                route("::/0", via(&["2001:db8:1::11"])),
            ],
        )
    });
}

fn ecmp_routes() -> Vec<KernelRoute> {
    vec![
        route("203.0.113.0/24", via(&["192.0.2.10", "192.0.2.11"])),
        route(
            "198.51.100.0/24",
            via(&["192.0.2.13", "192.0.2.12", "192.0.2.11", "192.0.2.10"]),
        ),
        route(
            "2001:db8:f00::/48",
            via(&["2001:db8:1::10", "2001:db8:1::11"]),
        ),
    ]
}

fn sorted_gateways(routes: Vec<KernelRoute>) -> Vec<KernelRoute> {
    routes
        .into_iter()
        .map(|mut r| {
            if let RouteTarget::Unicast(g) = &mut r.target {
                g.sort();
            }
            r
        })
        .collect()
}

#[test]
fn ecmp_routes_round_trip_with_rta_multipath_and_no_nexthop_objects() {
    in_netns(|| {
        round_trip(EcmpStrategy::Multipath, sorted_gateways(ecmp_routes()))?;
        assert_eq!(nexthop_count()?, 0);
        let shown = ip_json(&format!("route show table {TABLE} 198.51.100.0/24"))?;
        assert_eq!(shown[0]["nexthops"].as_array().map(Vec::len), Some(4));
        Ok(())
    });
}

#[test]
fn ecmp_routes_round_trip_with_nexthop_groups() {
    in_netns(|| {
        round_trip(EcmpStrategy::NexthopObjects, sorted_gateways(ecmp_routes()))?;
        // 4 + 2 IPv4 gateways share objects: 4 gateways, 2 IPv6 gateways,
        // 3 groups.
        assert_eq!(nexthop_count()?, 9);
        let shown = ip_json(&format!("route show table {TABLE} 203.0.113.0/24"))?;
        assert!(
            shown[0]["nhid"].as_u64().is_some(),
            "route uses a group: {shown:?}"
        );
        Ok(())
    });
}

#[test]
fn unreachable_blackhole_and_throw_round_trip_in_both_families() {
    in_netns(|| {
        round_trip(
            EcmpStrategy::NexthopObjects,
            vec![
                route("10.250.0.0/16", RouteTarget::Unreachable),
                route("10.251.0.0/16", RouteTarget::Blackhole),
                route("10.252.0.0/16", RouteTarget::Throw),
                route("2001:db8:a::/48", RouteTarget::Unreachable),
                route("2001:db8:b::/48", RouteTarget::Blackhole),
                route("2001:db8:c::/48", RouteTarget::Throw),
            ],
        )
    });
}

#[test]
fn upsert_replaces_the_route_for_its_prefix() {
    for strategy in [EcmpStrategy::Multipath, EcmpStrategy::NexthopObjects] {
        in_netns(move || {
            uplink()?;
            let mut fib = KernelFib::open(TABLE, strategy)?;
            let steps = [
                via(&["192.0.2.10"]),
                via(&["192.0.2.10", "192.0.2.11"]),
                RouteTarget::Blackhole,
                via(&["192.0.2.12"]),
            ];
            for target in steps {
                for p in ["203.0.113.0/24", "2001:db8:f00::/48"] {
                    let target = match (&target, p.contains(':')) {
                        (RouteTarget::Unicast(g), true) => RouteTarget::Unicast(
                            g.iter()
                                .map(|a| addr(&a.to_string().replace("192.0.2.", "2001:db8:1::")))
                                .collect(),
                        ),
                        _ => target.clone(),
                    };
                    let r = route(p, target);
                    assert_eq!(fib.apply(&upserts(std::slice::from_ref(&r)))?, clean(1));
                    let dumped: Vec<_> = fib
                        .dump()?
                        .into_iter()
                        .filter(|d| d.prefix == r.prefix)
                        .collect();
                    assert_eq!(dumped, vec![r], "{strategy:?}");
                }
            }
            assert_eq!(route_count(TABLE)?, 2);
            let objects = match strategy {
                EcmpStrategy::Multipath => 0,
                EcmpStrategy::NexthopObjects => 4,
            };
            assert_eq!(
                nexthop_count()?,
                objects,
                "{strategy:?}: only the last gateways' objects and their groups are left"
            );
            Ok(())
        });
    }
}

#[test]
fn remove_deletes_the_route_and_removing_an_absent_route_succeeds() {
    in_netns(|| {
        uplink()?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        let routes = [
            route("203.0.113.0/24", via(&["192.0.2.10", "192.0.2.11"])),
            route("198.51.100.0/24", via(&["192.0.2.10"])),
            route("2001:db8:f00::/48", RouteTarget::Blackhole),
        ];
        fib.apply(&upserts(&routes))?;
        let removes: Vec<_> = ["203.0.113.0/24", "2001:db8:f00::/48", "192.0.2.128/25"]
            .iter()
            .map(|p| RouteChange::Remove(prefix(p)))
            .collect();
        assert_eq!(fib.apply(&removes)?, clean(3));
        assert_eq!(fib.dump()?, vec![routes[1].clone()]);
        assert_eq!(
            nexthop_count()?,
            2,
            "the remaining route's gateway and its group"
        );
        Ok(())
    });
}

#[test]
fn removal_never_touches_routes_of_other_protocols() {
    in_netns(|| {
        uplink()?;
        ip(&format!(
            "route add 203.0.113.0/24 via 192.0.2.10 table {TABLE} proto static"
        ))?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        assert_eq!(
            fib.apply(&[RouteChange::Remove(prefix("203.0.113.0/24"))])?,
            clean(1)
        );
        assert_eq!(route_count(TABLE)?, 1);
        assert_eq!(fib.dump()?, vec![]);
        Ok(())
    });
}

#[test]
fn unreachable_gateway_is_reported_with_its_prefix_and_the_rest_lands() {
    for strategy in [EcmpStrategy::Multipath, EcmpStrategy::NexthopObjects] {
        in_netns(move || {
            uplink()?;
            let mut fib = KernelFib::open(TABLE, strategy)?;
            let good = [
                route("10.0.1.0/24", via(&["192.0.2.10"])),
                route("10.0.3.0/24", via(&["192.0.2.10", "192.0.2.11"])),
                route("2001:db8:3::/48", via(&["2001:db8:1::10"])),
            ];
            let changes = vec![
                RouteChange::Upsert(good[0].clone()),
                RouteChange::Upsert(route("10.0.2.0/24", via(&["198.51.100.1"]))),
                RouteChange::Upsert(good[1].clone()),
                RouteChange::Upsert(route("10.0.4.0/24", via(&["192.0.2.10", "198.51.100.2"]))),
                RouteChange::Upsert(good[2].clone()),
                RouteChange::Upsert(route("10.0.5.0/24", RouteTarget::Unicast(vec![]))),
            ];
            let report = fib.apply(&changes)?;
            let mut failed: Vec<_> = report
                .failures
                .iter()
                .map(|f| (f.prefix.to_string(), f.kind, f.errno))
                .collect();
            failed.sort();
            assert_eq!(
                failed,
                vec![
                    (
                        "10.0.2.0/24".to_string(),
                        ChangeKind::Upsert,
                        libc::ENETUNREACH
                    ),
                    (
                        "10.0.4.0/24".to_string(),
                        ChangeKind::Upsert,
                        libc::ENETUNREACH
                    ),
                    ("10.0.5.0/24".to_string(), ChangeKind::Upsert, libc::EINVAL),
                ],
                "{strategy:?}: {:#?}",
                report.failures
            );
            assert!(report.failures.iter().all(|f| !f.message.is_empty()));
            assert_eq!(report.applied, 3);
            assert_eq!(fib.dump()?, {
                let mut g = good.to_vec();
                g.sort_by_key(|r| r.prefix);
                g
            });
            Ok(())
        });
    }
}

#[test]
fn ten_thousand_route_batch_lands_completely() {
    in_netns(|| {
        uplink()?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        let routes: Vec<KernelRoute> = (0..10_000u32)
            .map(|i| {
                let gws: &[&str] = if i % 2 == 0 {
                    &["192.0.2.10"]
                } else {
                    &["192.0.2.10", "192.0.2.11"]
                };
                KernelRoute {
                    prefix: steer::prefix::Prefix::new(
                        std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(),
                        24,
                    ),
                    target: via(gws),
                }
            })
            .collect();
        assert_eq!(fib.apply(&upserts(&routes))?, clean(10_000));
        assert_eq!(fib.dump()?, routes);
        assert_eq!(route_count(TABLE)?, 10_000);
        Ok(())
    });
}

#[test]
fn every_failure_in_a_mostly_failing_multi_chunk_batch_is_reported_once() {
    in_netns(|| {
        uplink()?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        let net = |i: u32| {
            steer::prefix::Prefix::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24)
        };
        let changes: Vec<RouteChange> = (0..12_000u32)
            .map(|i| {
                let gw = if i % 3 == 0 {
                    "192.0.2.10"
                } else {
                    "198.51.100.1"
                };
                RouteChange::Upsert(KernelRoute {
                    prefix: net(i),
                    target: via(&[gw]),
                })
            })
            .collect();
        let report = fib.apply(&changes)?;
        assert_eq!(report.applied, 4_000);
        let mut failed: Vec<_> = report
            .failures
            .iter()
            .map(|f| (f.prefix, f.errno))
            .collect();
        failed.sort();
        let want: Vec<_> = (0..12_000u32)
            .filter(|i| i % 3 != 0)
            .map(|i| (net(i), libc::ENETUNREACH))
            .collect();
        assert_eq!(failed, want);
        assert_eq!(route_count(TABLE)?, 4_000);
        Ok(())
    });
}

#[test]
fn fresh_instance_adopts_what_the_previous_one_installed() {
    in_netns(|| {
        uplink()?;
        let routes = vec![
            route("203.0.113.0/24", via(&["192.0.2.10", "192.0.2.11"])),
            route("198.51.100.0/24", via(&["192.0.2.12"])),
            route("10.250.0.0/16", RouteTarget::Blackhole),
            route(
                "2001:db8:f00::/48",
                via(&["2001:db8:1::10", "2001:db8:1::11"]),
            ),
        ];
        {
            let mut first = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
            first.apply(&upserts(&routes))?;
        }
        let mut second = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        let mut want = routes.clone();
        want.sort_by_key(|r| r.prefix);
        assert_eq!(second.dump()?, want);
        // The adopted groups are reused, and collected once unused.
        let objects = nexthop_count()?;
        second.apply(&upserts(&[route(
            "192.0.2.128/25",
            via(&["192.0.2.11", "192.0.2.10"]),
        )]))?;
        assert_eq!(nexthop_count()?, objects);
        let removes: Vec<_> = ["203.0.113.0/24", "2001:db8:f00::/48", "192.0.2.128/25"]
            .iter()
            .map(|p| RouteChange::Remove(prefix(p)))
            .collect();
        second.apply(&removes)?;
        let left: Vec<_> = ip_json("nexthop show")?
            .iter()
            .map(|n| n["gateway"].clone())
            .collect();
        assert_eq!(
            left,
            vec![serde_json::json!("192.0.2.12"), serde_json::Value::Null],
            "only the single-gateway route's object and its group"
        );
        Ok(())
    });
}

#[test]
fn nexthop_objects_are_shared_by_a_gateway_set_and_deleted_when_unused() {
    in_netns(|| {
        uplink()?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        let ab = via(&["192.0.2.10", "192.0.2.11"]);
        fib.apply(&upserts(&[
            route("203.0.113.0/24", ab.clone()),
            route("198.51.100.0/24", via(&["192.0.2.11", "192.0.2.10"])),
        ]))?;
        assert_eq!(nexthop_count()?, 3, "two gateways and one shared group");
        fib.apply(&[RouteChange::Remove(prefix("203.0.113.0/24"))])?;
        assert_eq!(nexthop_count()?, 3, "the group still has a route");
        fib.apply(&upserts(&[route(
            "198.51.100.0/24",
            via(&["192.0.2.11", "192.0.2.12"]),
        )]))?;
        let mut gateways: Vec<String> = ip_json("nexthop show")?
            .iter()
            .filter_map(|n| n["gateway"].as_str().map(String::from))
            .collect();
        gateways.sort();
        assert_eq!(
            gateways,
            vec!["192.0.2.11", "192.0.2.12"],
            "192.0.2.10 went with the old group"
        );
        assert_eq!(nexthop_count()?, 3);
        fib.apply(&[RouteChange::Remove(prefix("198.51.100.0/24"))])?;
        assert_eq!(nexthop_count()?, 0);
        Ok(())
    });
}

/// Every route points at a resilient group, a single gateway too (so its
/// set can grow in place); the gateway objects are shared.
#[test]
fn single_gateway_routes_get_a_resilient_group_on_the_shared_gateway_object() {
    in_netns(|| {
        uplink()?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        fib.apply(&upserts(&[
            route("203.0.113.0/24", via(&["192.0.2.10"])),
            route("198.51.100.0/24", via(&["192.0.2.10", "192.0.2.11"])),
            route("2001:db8:f00::/48", via(&["2001:db8:1::10"])),
        ]))?;
        assert_eq!(
            nexthop_count()?,
            6,
            "two IPv4 gateways, one IPv6 gateway, three groups"
        );
        let single = ip_json(&format!("route show table {TABLE} 203.0.113.0/24"))?;
        let objects = ip_json("nexthop show")?;
        let gateway_object = objects
            .iter()
            .find(|n| n["gateway"] == "192.0.2.10")
            .map(|n| n["id"].clone())
            .unwrap();
        let group = objects
            .iter()
            .find(|n| n["id"] == single[0]["nhid"])
            .unwrap();
        assert_eq!(group["type"], "resilient", "{group}");
        assert_eq!(group["group"][0]["id"], gateway_object, "{group}");
        assert_eq!(group["group"].as_array().unwrap().len(), 1, "{group}");
        Ok(())
    });
}

#[test]
fn objects_the_kernel_deleted_with_their_interface_are_recreated() {
    in_netns(|| {
        uplink()?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        let routes = [
            route("203.0.113.0/24", via(&["192.0.2.10", "192.0.2.11"])),
            route("198.51.100.0/24", via(&["192.0.2.12"])),
        ];
        assert_eq!(fib.apply(&upserts(&routes))?, clean(2));
        ip("link set up0 down")?;
        assert_eq!(
            (nexthop_count()?, route_count(TABLE)?),
            (0, 0),
            "the kernel flushed both"
        );
        ip("link set up0 up")?;
        assert_eq!(fib.apply(&upserts(&routes))?, clean(2));
        assert_eq!(fib.dump()?, vec![routes[1].clone(), routes[0].clone()]);
        assert_eq!(nexthop_count()?, 5, "three gateways, two groups");
        Ok(())
    });
}

#[test]
fn foreign_nexthop_objects_are_left_alone() {
    in_netns(|| {
        uplink()?;
        // Same protocol number as ours, but not from Steer's id range.
        ip("nexthop add id 7 via 192.0.2.10 dev up0 proto 211")?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        fib.apply(&upserts(&[route(
            "203.0.113.0/24",
            via(&["192.0.2.10", "192.0.2.11"]),
        )]))?;
        fib.flush()?;
        let left = ip_json("nexthop show")?;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["id"], 7);
        Ok(())
    });
}

#[test]
fn flush_removes_our_routes_objects_and_rules_only() {
    in_netns(|| {
        uplink()?;
        ip(&format!(
            "route add 10.9.0.0/16 via 192.0.2.10 table {TABLE}"
        ))?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        fib.apply(&upserts(&ecmp_routes()))?;
        fib.apply(&upserts(&[route(
            "10.250.0.0/16",
            RouteTarget::Unreachable,
        )]))?;
        fib.ensure_rules(&["vm0".to_string()], 100)?;
        fib.flush()?;
        assert_eq!(fib.dump()?, vec![]);
        assert_eq!(
            route_count(TABLE)?,
            1,
            "the route of another protocol stays"
        );
        assert_eq!(nexthop_count()?, 0);
        assert_eq!(
            ip_json("rule show iif vm0")?.len() + ip_json("-6 rule show iif vm0")?.len(),
            0
        );
        Ok(())
    });
}

#[test]
fn reserved_tables_are_refused() {
    for table in [0, 253, 254, 255] {
        assert!(matches!(
            KernelFib::open(table, EcmpStrategy::Multipath),
            Err(KernelError::ReservedTable(t)) if t == table
        ));
    }
}

#[test]
fn failure_display_names_the_prefix_and_errno() {
    let f = RouteFailure {
        prefix: prefix("10.0.2.0/24"),
        kind: ChangeKind::Upsert,
        errno: libc::ENETUNREACH,
        message: "Nexthop has invalid gateway".into(),
    };
    assert_eq!(
        f.to_string(),
        "install 10.0.2.0/24: Nexthop has invalid gateway (errno 101)"
    );
}

#[test]
fn connected_prefixes_are_the_hosts_directly_attached_networks() {
    in_netns(|| {
        uplink()?;
        veth("vm0", "vm0p")?;
        ip("addr add 10.1.1.1/24 dev vm0")?;
        ip("route add 10.1.0.0/16 dev vm0")?;
        ip("route add 10.250.0.0/16 via 192.0.2.10")?;
        ip("route add default via 192.0.2.254")?;
        ip("-6 route add default via 2001:db8:1::fe")?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        fib.apply(&upserts(&[route("10.5.0.0/16", via(&["192.0.2.10"]))]))?;
        let got: Vec<String> = fib
            .connected_prefixes()?
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            vec![
                "10.1.0.0/16",
                "10.1.1.0/24",
                "192.0.2.0/24",
                "2001:db8:1::/64"
            ]
        );
        Ok(())
    });
}

#[test]
fn ensure_neighbor_makes_a_managed_entry_that_resolves_and_keeps_static_ones() {
    let peer = format!("steer-test-nbr-{}", std::process::id());
    let guard = NamedNetns(peer.clone());
    in_netns(move || {
        ip(&format!("netns add {peer}"))?;
        veth("up0", "up0p")?;
        ip("addr add 192.0.2.1/24 dev up0")?;
        ip(&format!("link set up0p netns {peer}"))?;
        ip(&format!("-n {peer} addr add 192.0.2.10/24 dev up0p"))?;
        ip(&format!("-n {peer} link set up0p up"))?;
        let mac = ip_json(&format!("-n {peer} link show up0p"))?[0]["address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::Multipath)?;
        fib.ensure_neighbor(addr("192.0.2.10"))?;
        fib.ensure_neighbor(addr("192.0.2.10"))?;
        let mut entry = serde_json::Value::Null;
        for _ in 0..50 {
            entry = ip_json("neigh show 192.0.2.10 dev up0")?
                .pop()
                .unwrap_or_default();
            if entry["lladdr"] == mac.as_str() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ensure!(
            entry["lladdr"] == mac.as_str(),
            "not resolved to {mac}: {entry}"
        );
        let detail = ip("-d neigh show 192.0.2.10 dev up0")?;
        ensure!(detail.contains("managed"), "not managed: {detail}");
        ip("neigh add 192.0.2.11 lladdr 02:00:00:00:00:11 dev up0 nud permanent")?;
        fib.ensure_neighbor(addr("192.0.2.11"))?;
        let admin = ip("-d neigh show 192.0.2.11 dev up0")?;
        ensure!(
            admin.contains("PERMANENT") && !admin.contains("managed"),
            "an administrator's entry stays: {admin}"
        );
        let refused = fib.ensure_neighbor(addr("192.0.2.1"));
        ensure!(
            matches!(refused, Err(KernelError::NotANeighbor { .. })),
            "a local address is no neighbour: {refused:?}"
        );
        Ok(())
    });
    drop(guard);
}

/// Deletes a named namespace when dropped.
struct NamedNetns(String);

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// The gateway the kernel's input path picks for a UDP flow from the VM
/// side (`ip route get ... iif vm0`, the multipath hash and the resilient
/// group's bucket of a forwarded packet).
fn kernel_gateway(sport: u16) -> Result<String> {
    let out = ip(&format!(
        "route get 198.51.100.7 from 10.1.1.10 iif vm0 ipproto udp sport {sport} dport 9999"
    ))?;
    let via = out.split_whitespace().skip_while(|w| *w != "via").nth(1);
    via.map(String::from)
        .ok_or_else(|| anyhow::anyhow!("no gateway in `{out}`"))
}

/// With the kernel as the dataplane, a route's resilient group is replaced
/// in place when its gateway set changes: 64 running flows keep their
/// gateway when a third one joins, and when one leaves only its flows move
/// (spread over the others). The kernel itself answers, through its input
/// path with the multipath hash the agent configures (policy 3 over the
/// 5-tuple).
#[test]
fn resilient_groups_keep_running_flows_when_a_gateway_joins_or_leaves() {
    in_netns(|| {
        uplink()?;
        veth("vm0", "vm0p")?;
        ip("addr add 10.1.1.1/24 dev vm0")?;
        ip(&format!("rule add iif vm0 lookup {TABLE} pref 1000"))?;
        sysctl("net.ipv4.ip_forward", "1")?;
        sysctl("net.ipv4.fib_multipath_hash_fields", "55")?;
        sysctl("net.ipv4.fib_multipath_hash_policy", "3")?;
        let mut fib = KernelFib::open(TABLE, EcmpStrategy::NexthopObjects)?;
        let set = |fib: &mut KernelFib, gws: &[&str]| -> Result<()> {
            let r = route("198.51.100.0/24", via(gws));
            assert_eq!(fib.apply(&upserts(&[r]))?, clean(1));
            Ok(())
        };
        let nhid = || -> Result<serde_json::Value> {
            Ok(ip_json(&format!("route show table {TABLE} 198.51.100.0/24"))?[0]["nhid"].clone())
        };
        let flows = || -> Result<Vec<String>> { (40000..40064).map(kernel_gateway).collect() };
        set(&mut fib, &["192.0.2.10", "192.0.2.11"])?;
        let group = nhid()?;
        let res = ip_json("nexthop show")?
            .into_iter()
            .find(|n| n["id"] == group)
            .unwrap();
        assert_eq!(
            (
                res["type"].as_str(),
                res["resilient_args"]["idle_timer"].as_u64()
            ),
            (Some("resilient"), Some(300)),
            "{res}"
        );
        let placed = flows()?;
        let mut spread = placed.clone();
        spread.sort();
        spread.dedup();
        assert_eq!(spread.len(), 2, "{placed:?}");

        set(&mut fib, &["192.0.2.10", "192.0.2.11", "192.0.2.12"])?;
        assert_eq!(nhid()?, group, "the group is replaced in place");
        let after_join = flows()?;
        let moved = placed
            .iter()
            .zip(&after_join)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(moved, 0, "a joining gateway takes no running flow");

        set(&mut fib, &["192.0.2.11", "192.0.2.12"])?;
        assert_eq!(nhid()?, group);
        let after_leave = flows()?;
        let on_leaver = placed.iter().filter(|g| *g == "192.0.2.10").count();
        let mut moved_to = std::collections::BTreeMap::new();
        for (before, now) in placed.iter().zip(&after_leave) {
            if before == "192.0.2.10" {
                *moved_to.entry(now.clone()).or_insert(0) += 1;
            } else {
                assert_eq!(before, now, "a flow not on the leaver moved");
            }
        }
        assert!(on_leaver > 0 && !moved_to.contains_key("192.0.2.10"));
        assert_eq!(moved_to.values().sum::<usize>(), on_leaver);
        assert_eq!(moved_to.len(), 2, "the leaver's flows spread: {moved_to:?}");
        Ok(())
    });
}
