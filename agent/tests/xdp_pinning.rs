//! Pinned state across agent restarts: maps and links of both hooks
//! outlive the process (a dropped `XdpDataplane` is a crash: nothing is
//! cleaned up), the next open adopts them and swaps its programs onto the
//! same XDP and tcx links (or the same clsact filter), hooks no longer
//! wanted are detached, and `remove` leaves nothing behind; the same for
//! the return path on the uplinks and its maps. What is on an
//! interface is read from the kernel (`ip -d link`, tcx queries, `tc
//! filter`), not from the agent. Needs root; fails (never skips) without it.

mod xdp_support;

use std::net::IpAddr;

use aya::programs::{SchedClassifier, TcAttachType};
use steer::fib::xdp::{
    AttachMode, DataplaneMode, Hook, XdpConfig, XdpDataplane, XdpError, XdpMode, XdpTarget,
};
use steer::prefix::Prefix;
use xdp_support::netns::{Netns, PinDir, ip, require_root_and};

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn fwd(hops: &[&str]) -> XdpTarget {
    XdpTarget::Forward(hops.iter().map(|h| h.parse::<IpAddr>().unwrap()).collect())
}

fn cfg(pin: &PinDir, interfaces: &[&str], mode: XdpMode) -> XdpConfig {
    XdpConfig::new(pin.0.clone(), interfaces, DataplaneMode::Xdp(mode))
}

fn cfg_tc(pin: &PinDir, interfaces: &[&str]) -> XdpConfig {
    XdpConfig::new(pin.0.clone(), interfaces, DataplaneMode::Tc)
}

/// The programs on `dev`'s tcx ingress, as the kernel lists them.
fn tcx_on(dev: &str) -> Vec<u32> {
    let (_, progs) = SchedClassifier::query_tcx(dev, TcAttachType::Ingress).unwrap();
    progs.iter().map(|p| p.id()).collect()
}

/// The bpf filters on `dev`'s clsact ingress: (name, program id).
fn clsact_on(dev: &str) -> Vec<(String, u32)> {
    let out = xdp_support::netns::cmd("tc", &format!("-j filter show dev {dev} ingress"))
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let o = f.get("options")?;
            Some((
                o.get("bpf_name")?.as_str()?.to_string(),
                o.get("prog")?.get("id")?.as_u64()? as u32,
            ))
        })
        .collect()
}

fn link_ids(dp: &XdpDataplane, hook: Hook) -> Vec<(String, u32)> {
    dp.attached()
        .into_iter()
        .filter(|a| a.hook == hook.name())
        .map(|a| (a.interface, a.link_id))
        .collect()
}

fn veths(names: &[&str]) {
    for n in names {
        ip(&format!("link add {n} type veth peer name {n}p")).unwrap();
        ip(&format!("link set {n} up")).unwrap();
        ip(&format!("link set {n}p up")).unwrap();
    }
}

/// The XDP program id and mode ("native"/"generic") on `dev`, from
/// `ip -d -j link show`.
fn xdp_on(dev: &str) -> Option<(u32, &'static str)> {
    let out = ip(&format!("-d -j link show dev {dev}")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let xdp = v.get(0)?.get("xdp")?;
    let id = xdp
        .get("prog")
        .and_then(|p| p.get("id"))
        .or_else(|| xdp.get("attached")?.get(0)?.get("prog")?.get("id"))?
        .as_u64()? as u32;
    let mode = match xdp.get("mode").and_then(|m| m.as_u64()) {
        Some(1) => "native",
        Some(2) => "generic",
        other => panic!("unexpected XDP mode {other:?} on {dev}"),
    };
    Some((id, mode))
}

fn table() -> Vec<(Prefix, Option<XdpTarget>)> {
    vec![
        (pfx("0.0.0.0/0"), Some(fwd(&["192.0.2.10", "192.0.2.11"]))),
        (pfx("10.250.0.0/16"), Some(fwd(&["192.0.2.20"]))),
        (pfx("10.1.0.0/16"), Some(XdpTarget::Pass)),
        (pfx("2001:db8:aaaa::/48"), Some(fwd(&["2001:db8:ff::10"]))),
        (pfx("::/0"), Some(fwd(&["192.0.2.11", "192.0.2.10"]))),
    ]
}

fn expected_entries() -> Vec<(Prefix, XdpTarget)> {
    let mut e: Vec<(Prefix, XdpTarget)> = table()
        .into_iter()
        .map(|(p, t)| match t.unwrap() {
            XdpTarget::Forward(mut h) => {
                h.sort();
                (p, XdpTarget::Forward(h))
            }
            t => (p, t),
        })
        .collect();
    e.sort_by_key(|a| a.0);
    e
}

#[test]
fn state_and_links_survive_a_crash_and_new_programs_replace_the_old_on_the_same_links() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("crash");
    ns.run(|| {
        veths(&["h0", "h1"]);
        let mut dp = XdpDataplane::open(&cfg(&pin, &["h0", "h1"], XdpMode::Native)).unwrap();
        dp.apply(&table()).unwrap();
        let (xdp1, tc1) = (dp.program_id().unwrap(), dp.tc_program_id().unwrap());
        let attached = dp.attached();
        assert_eq!(
            attached
                .iter()
                .map(|a| (a.interface.as_str(), a.mode))
                .collect::<Vec<_>>(),
            [
                ("h0", AttachMode::Native),
                ("h0", AttachMode::Tcx),
                ("h1", AttachMode::Native),
                ("h1", AttachMode::Tcx)
            ],
            "XDP with TC behind it on every interface"
        );
        let (xdp_links, tc_links) = (link_ids(&dp, Hook::Xdp), link_ids(&dp, Hook::Tc));
        assert_eq!(xdp_on("h0"), Some((xdp1, "native")));
        assert_eq!(tcx_on("h0"), [tc1]);
        drop(dp);

        for dev in ["h0", "h1"] {
            assert_eq!(xdp_on(dev), Some((xdp1, "native")), "{dev}: XDP stays");
            assert_eq!(tcx_on(dev), [tc1], "{dev}: TC stays");
        }

        let dp = XdpDataplane::open(&cfg(&pin, &["h0", "h1"], XdpMode::Native)).unwrap();
        assert_eq!(
            dp.entries(),
            expected_entries(),
            "routes adopted from the pinned maps"
        );
        assert_eq!(
            dp.nexthop_sets(),
            3,
            "sets adopted with their sharing intact"
        );
        let (xdp2, tc2) = (dp.program_id().unwrap(), dp.tc_program_id().unwrap());
        assert_ne!(xdp1, xdp2);
        assert_ne!(tc1, tc2);
        assert_eq!(link_ids(&dp, Hook::Xdp), xdp_links, "the same XDP links");
        assert_eq!(link_ids(&dp, Hook::Tc), tc_links, "the same tcx links");
        for dev in ["h0", "h1"] {
            assert_eq!(xdp_on(dev), Some((xdp2, "native")), "{dev}");
            assert_eq!(tcx_on(dev), [tc2], "{dev}: swapped, not added");
        }
    });
}

/// `cfg_tc` with the return path on `uplinks` for the VM prefix
/// 10.1.1.0/24.
fn cfg_return(pin: &PinDir, interfaces: &[&str], uplinks: &[&str]) -> XdpConfig {
    let mut c = cfg_tc(pin, interfaces);
    c.vm_prefixes = vec![pfx("10.1.1.0/24")];
    c.uplinks = uplinks.iter().map(|u| u.to_string()).collect();
    c
}

#[test]
fn the_return_path_survives_a_crash_on_its_link_and_leaves_with_its_uplink_and_remove() {
    require_root_and(&["ip", "tc"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("return");
    ns.run(|| {
        veths(&["h0", "u0", "u1"]);
        let dp = XdpDataplane::open(&cfg_return(&pin, &["h0"], &["u0", "u1"])).unwrap();
        let first = dp.uplink_program_id().unwrap();
        let links = link_ids(&dp, Hook::Return);
        assert_eq!(
            links.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(),
            ["u0", "u1"]
        );
        for dev in ["u0", "u1"] {
            assert_eq!(tcx_on(dev), [first], "{dev}");
        }
        assert_eq!(tcx_on("h0"), [dp.tc_program_id().unwrap()]);
        drop(dp);
        assert_eq!(tcx_on("u0"), [first], "kept while no agent runs");

        let dp = XdpDataplane::open(&cfg_return(&pin, &["h0"], &["u0"])).unwrap();
        let second = dp.uplink_program_id().unwrap();
        assert_ne!(first, second);
        assert_eq!(link_ids(&dp, Hook::Return), links[..1], "the same link");
        assert_eq!(tcx_on("u0"), [second], "swapped, not added");
        assert!(tcx_on("u1").is_empty(), "no longer an uplink: detached");
        assert!(!pin.0.join("links/uplink-tcx/u1").exists());
        assert_eq!(dp.vm_prefixes().unwrap(), [pfx("10.1.1.0/24")]);
        drop(dp);

        let mut c = cfg_return(&pin, &["h0"], &["u0"]);
        c.force_clsact = true;
        let dp = XdpDataplane::open(&c).unwrap();
        let third = dp.uplink_program_id().unwrap();
        assert_eq!(clsact_on("u0"), [("steer_tc_uplink".to_string(), third)]);
        assert!(tcx_on("u0").is_empty(), "moved to clsact");
        drop(dp);
        let dp = XdpDataplane::open(&c).unwrap();
        assert_eq!(
            clsact_on("u0"),
            [(
                "steer_tc_uplink".to_string(),
                dp.uplink_program_id().unwrap()
            )],
            "replaced in place, not added"
        );
        XdpDataplane::remove(&pin.0).unwrap();
        assert!(clsact_on("u0").is_empty());
        assert!(clsact_on("h0").is_empty());
        assert!(tcx_on("u0").is_empty() && tcx_on("h0").is_empty());
        assert!(!pin.0.exists(), "no pin left");
        drop(dp);
    });
}

#[test]
fn the_return_path_is_off_without_uplinks_and_a_reopen_without_them_detaches_it() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("return-off");
    ns.run(|| {
        veths(&["h0", "u0"]);
        drop(XdpDataplane::open(&cfg_return(&pin, &["h0"], &["u0"])).unwrap());
        assert_eq!(tcx_on("u0").len(), 1);
        assert_eq!(
            XdpDataplane::recorded_uplinks(&pin.0),
            ["u0"],
            "what a restarted agent adopts"
        );
        let dp = XdpDataplane::open(&cfg_tc(&pin, &["h0"])).unwrap();
        assert!(tcx_on("u0").is_empty());
        assert!(XdpDataplane::recorded_uplinks(&pin.0).is_empty());
        assert!(link_ids(&dp, Hook::Return).is_empty());
        assert_eq!(dp.vm_prefixes().unwrap(), [], "and its VM prefixes emptied");
    });
}

#[test]
fn tc_mode_attaches_tc_alone_and_switching_from_xdp_detaches_xdp() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("tcmode");
    ns.run(|| {
        veths(&["h0"]);
        drop(XdpDataplane::open(&cfg(&pin, &["h0"], XdpMode::Native)).unwrap());
        assert!(xdp_on("h0").is_some());
        let tc_link = {
            let dp = XdpDataplane::open(&cfg_tc(&pin, &["h0"])).unwrap();
            assert_eq!(xdp_on("h0"), None, "XDP detached");
            assert_eq!(tcx_on("h0"), [dp.tc_program_id().unwrap()]);
            assert!(!pin.0.join("links/native/h0").exists());
            link_ids(&dp, Hook::Tc)
        };
        let dp = XdpDataplane::open(&cfg_tc(&pin, &["h0"])).unwrap();
        assert_eq!(link_ids(&dp, Hook::Tc), tc_link, "the tcx link survives");
        assert_eq!(tcx_on("h0"), [dp.tc_program_id().unwrap()]);
    });
}

#[test]
fn the_clsact_fallback_replaces_its_filter_in_place_and_remove_takes_it_away() {
    require_root_and(&["ip", "tc"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("clsact");
    ns.run(|| {
        veths(&["h0"]);
        let mut c = cfg_tc(&pin, &["h0"]);
        c.force_clsact = true;
        let dp = XdpDataplane::open(&c).unwrap();
        let first = dp.tc_program_id().unwrap();
        assert_eq!(clsact_on("h0"), [("steer_tc".to_string(), first)]);
        assert!(tcx_on("h0").is_empty());
        assert_eq!(dp.attached()[0].mode, AttachMode::Clsact);
        drop(dp);
        assert_eq!(clsact_on("h0"), [("steer_tc".to_string(), first)], "kept");

        let dp = XdpDataplane::open(&c).unwrap();
        let second = dp.tc_program_id().unwrap();
        assert_ne!(first, second);
        assert_eq!(
            clsact_on("h0"),
            [("steer_tc".to_string(), second)],
            "replaced in place, not added"
        );
        drop(dp);

        let dp = XdpDataplane::open(&cfg_tc(&pin, &["h0"])).unwrap();
        assert_eq!(tcx_on("h0"), [dp.tc_program_id().unwrap()], "moved to tcx");
        assert!(clsact_on("h0").is_empty(), "and off clsact");
        drop(dp);

        let dp = XdpDataplane::open(&c).unwrap();
        assert_eq!(clsact_on("h0").len(), 1);
        assert!(tcx_on("h0").is_empty());
        XdpDataplane::remove(&pin.0).unwrap();
        assert!(clsact_on("h0").is_empty());
        assert!(!pin.0.exists());
        drop(dp);
    });
}

#[test]
fn interfaces_dropped_from_the_config_are_detached_on_reopen() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("ifaces");
    ns.run(|| {
        veths(&["h0", "h1"]);
        drop(XdpDataplane::open(&cfg(&pin, &["h0", "h1"], XdpMode::Native)).unwrap());
        let dp = XdpDataplane::open(&cfg(&pin, &["h0"], XdpMode::Native)).unwrap();
        let prog = dp.program_id().unwrap();
        assert_eq!(xdp_on("h0"), Some((prog, "native")));
        assert_eq!(xdp_on("h1"), None);
        assert!(tcx_on("h1").is_empty());
        assert!(!pin.0.join("links/native/h1").exists());
        assert!(!pin.0.join("links/tcx/h1").exists());
        assert_eq!(
            dp.attached()
                .iter()
                .map(|a| a.interface.as_str())
                .collect::<Vec<_>>(),
            ["h0", "h0"]
        );
    });
}

#[test]
fn changing_the_mode_reattaches_in_the_new_mode() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("mode");
    ns.run(|| {
        veths(&["h0"]);
        drop(XdpDataplane::open(&cfg(&pin, &["h0"], XdpMode::Native)).unwrap());
        let dp = XdpDataplane::open(&cfg(&pin, &["h0"], XdpMode::Generic)).unwrap();
        assert_eq!(xdp_on("h0"), Some((dp.program_id().unwrap(), "generic")));
        assert!(pin.0.join("links/generic/h0").exists());
        assert!(!pin.0.join("links/native/h0").exists());
    });
}

#[test]
fn a_recreated_interface_gets_a_fresh_link() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("recreate");
    ns.run(|| {
        veths(&["h0"]);
        let dp = XdpDataplane::open(&cfg(&pin, &["h0"], XdpMode::Native)).unwrap();
        let old = dp.attached();
        ip("link del h0").unwrap();
        veths(&["h0"]);
        assert!(
            dp.attached().iter().all(|a| a.ifindex == 0),
            "both hooks report their interface gone"
        );
        assert!(dp.live_interfaces().is_empty());
        drop(dp);
        let dp = XdpDataplane::open(&cfg(&pin, &["h0"], XdpMode::Native)).unwrap();
        let new = dp.attached();
        assert_eq!(new.len(), 2);
        for (o, n) in old.iter().zip(&new) {
            assert_eq!(o.mode, n.mode);
            assert_ne!(n.ifindex, o.ifindex);
            assert_ne!(n.link_id, o.link_id, "{:?}: a fresh link", n.mode);
        }
        assert_eq!(xdp_on("h0"), Some((dp.program_id().unwrap(), "native")));
        assert_eq!(tcx_on("h0"), [dp.tc_program_id().unwrap()]);
        assert_eq!(dp.live_interfaces(), ["h0"]);
    });
}

#[test]
fn remove_detaches_everything_and_leaves_no_pins() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("remove");
    ns.run(|| {
        veths(&["h0", "h1"]);
        let mut dp = XdpDataplane::open(&cfg(&pin, &["h0", "h1"], XdpMode::Native)).unwrap();
        dp.apply(&table()).unwrap();
        XdpDataplane::remove(&pin.0).unwrap();
        assert!(!pin.0.exists(), "pin dir removed");
        assert_eq!(
            xdp_on("h0"),
            None,
            "detached although this process still holds the link"
        );
        assert_eq!(xdp_on("h1"), None);
        assert!(tcx_on("h0").is_empty() && tcx_on("h1").is_empty());
        drop(dp);
        XdpDataplane::remove(&pin.0).unwrap();
    });
}

#[test]
fn prefixes_with_the_same_next_hops_share_one_refcounted_set() {
    require_root_and(&[]);
    let pin = PinDir::new("sharing");
    let mut dp = XdpDataplane::open(&cfg(&pin, &[], XdpMode::Native)).unwrap();
    let a = fwd(&["192.0.2.1", "192.0.2.2"]);
    let b = fwd(&["192.0.2.2", "192.0.2.1", "192.0.2.2"]);
    dp.apply(&[
        (pfx("198.51.100.0/24"), Some(a.clone())),
        (pfx("203.0.113.0/24"), Some(b)),
    ])
    .unwrap();
    assert_eq!(dp.nexthop_sets(), 1);
    assert_eq!(
        dp.entries()[1],
        (pfx("203.0.113.0/24"), a.clone()),
        "normalized"
    );
    dp.apply(&[(pfx("198.51.100.0/24"), None)]).unwrap();
    assert_eq!(dp.nexthop_sets(), 1);
    dp.apply(&[(pfx("203.0.113.0/24"), Some(fwd(&["192.0.2.3"])))])
        .unwrap();
    assert_eq!(
        dp.nexthop_sets(),
        1,
        "the old set went with its last prefix"
    );
    dp.apply(&[
        (pfx("203.0.113.0/24"), None),
        (pfx("203.0.113.0/24"), Some(XdpTarget::Pass)),
    ])
    .unwrap();
    assert_eq!(dp.nexthop_sets(), 0);
    assert_eq!(
        dp.entries(),
        vec![(pfx("203.0.113.0/24"), XdpTarget::Pass)],
        "last change wins"
    );
    dp.apply(&[(pfx("203.0.113.0/24"), None), (pfx("192.0.2.0/24"), None)])
        .unwrap();
    assert!(dp.is_empty());
    drop(dp);

    let reopened = XdpDataplane::open(&cfg(&pin, &[], XdpMode::Native)).unwrap();
    assert!(reopened.is_empty());
    assert_eq!(reopened.nexthop_sets(), 0);
}

#[test]
fn apply_rejects_bad_targets_before_writing_anything() {
    require_root_and(&[]);
    let pin = PinDir::new("reject");
    let mut dp = XdpDataplane::open(&cfg(&pin, &[], XdpMode::Native)).unwrap();
    let seventeen: Vec<String> = (1..=17).map(|i| format!("192.0.2.{i}")).collect();
    let seventeen: Vec<&str> = seventeen.iter().map(String::as_str).collect();
    let err = dp
        .apply(&[
            (pfx("198.51.100.0/24"), Some(fwd(&["192.0.2.1"]))),
            (pfx("203.0.113.0/24"), Some(fwd(&seventeen))),
        ])
        .unwrap_err();
    assert!(
        matches!(err, XdpError::BadTarget { count: 17, .. }),
        "{err}"
    );
    let err = dp
        .apply(&[(pfx("203.0.113.0/24"), Some(fwd(&[])))])
        .unwrap_err();
    assert!(matches!(err, XdpError::BadTarget { count: 0, .. }), "{err}");
    assert!(dp.is_empty());
    assert_eq!(dp.nexthop_sets(), 0);
}

#[test]
fn open_fails_on_a_missing_interface_and_outside_bpffs() {
    require_root_and(&["ip"]);
    let ns = Netns::new().unwrap();
    let pin = PinDir::new("missing");
    ns.run(|| {
        let err = XdpDataplane::open(&cfg(&pin, &["nope0"], XdpMode::Native))
            .err()
            .unwrap();
        assert!(
            matches!(&err, XdpError::NoSuchInterface(n) if n == "nope0"),
            "{err}"
        );
    });
    let tmp = std::env::temp_dir().join(format!("steer-not-bpffs-{}", std::process::id()));
    let err = XdpDataplane::open(&XdpConfig::new(
        tmp.clone(),
        &[],
        DataplaneMode::Xdp(XdpMode::Native),
    ))
    .err()
    .unwrap();
    let _ = std::fs::remove_dir(&tmp);
    assert!(matches!(err, XdpError::NoBpffs { .. }), "{err}");
    assert!(!tmp.exists(), "nothing is created off bpffs");
}

#[test]
fn reopen_drops_routes_whose_set_vanished_and_sets_no_route_uses() {
    require_root_and(&["bpftool"]);
    let pin = PinDir::new("repair");
    let mut dp = XdpDataplane::open(&cfg(&pin, &[], XdpMode::Native)).unwrap();
    dp.apply(&[
        (pfx("198.51.100.0/24"), Some(fwd(&["192.0.2.1"]))),
        (pfx("203.0.113.0/24"), Some(fwd(&["192.0.2.2"]))),
        (pfx("10.1.0.0/16"), Some(XdpTarget::Pass)),
    ])
    .unwrap();
    drop(dp);
    let sets = pin.0.join("STEER_NHSETS");
    let lpm = pin.0.join("STEER_LPM4");
    let bpftool = |args: String| xdp_support::netns::cmd("bpftool", &args).unwrap();
    bpftool(format!("map delete pinned {} key 1 0 0 0", sets.display()));
    bpftool(format!(
        "map delete pinned {} key 24 0 0 0 203 0 113 0",
        lpm.display()
    ));

    let dp = XdpDataplane::open(&cfg(&pin, &[], XdpMode::Native)).unwrap();
    assert_eq!(
        dp.entries(),
        vec![(pfx("10.1.0.0/16"), XdpTarget::Pass)],
        "198.51.100.0/24 lost its set; 203.0.113.0/24 was deleted by hand"
    );
    assert_eq!(dp.nexthop_sets(), 0, "set 2 has no route left");
    let left = bpftool(format!("map dump pinned {}", sets.display()));
    assert!(left.contains("Found 0 elements"), "{left}");
}
