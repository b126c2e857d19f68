//! The host import policy through the route server: each hijack a host in
//! `[hosts] ranges` could try, and what the appliances and the other hosts
//! hold afterwards.

use super::tests::*;
use super::*;
use crate::bgp::attribute::AsPath;
use crate::bgp::nlri::Nlri;
use crate::control::RouteQuery;

fn hijack(lp: u32, nh: &str) -> Arc<PathAttributes> {
    let mut a = (*attrs(&[], nh)).clone();
    a.local_pref = Some(lp);
    a.med = Some(0);
    Arc::new(a)
}

fn withdraw(rs: &mut RouteServer, p: &Peer, prefixes: &[&str]) {
    let batch = RouteBatch {
        family: Family::IPV4_UNICAST,
        attrs: None,
        announce: vec![],
        withdraw: prefixes
            .iter()
            .map(|s| Nlri::new(s.parse().unwrap()))
            .collect(),
    };
    event(rs, p, SessionEvent::Routes(vec![batch]), Instant::now());
}

/// (path id, next hop) of every path the peer holds for `prefix`.
fn paths(
    h: &std::collections::BTreeMap<(String, u32), PathAttributes>,
    prefix: &str,
) -> Vec<(u32, String)> {
    h.iter()
        .filter(|(k, _)| k.0 == prefix)
        .map(|(k, a)| (k.1, a.next_hop.unwrap().to_string()))
        .collect()
}

fn reasons(rs: &RouteServer, prefix: &str) -> Vec<(String, Option<String>)> {
    rs.show_routes(&RouteQuery {
        prefix: Some(prefix.into()),
        ..RouteQuery::default()
    })
    .unwrap()
    .iter()
    .filter(|r| r.prefix.to_string() == prefix)
    .flat_map(|r| r.paths.iter().map(|p| (p.peer.clone(), p.reason.clone())))
    .collect()
}

#[test]
fn a_second_host_announcing_a_vm_prefix_even_with_local_pref_200_gets_nothing_until_the_first_withdraws()
 {
    let mut rs = server("");
    let victim = host(&mut rs, "10.1.0.31", false);
    let mut other = host(&mut rs, "10.1.0.32", false);
    let attacker = host(&mut rs, "10.1.0.33", false);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &victim, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    announce(
        &mut rs,
        &attacker,
        &["10.1.1.0/24"],
        hijack(200, "10.1.0.33"),
    );
    let mut at_sd = Default::default();
    let mut at_other = Default::default();
    drain(&mut sd, &mut at_sd);
    drain(&mut other, &mut at_other);
    assert_eq!(paths(&at_sd, "10.1.1.0/24"), vec![(0, "10.1.0.31".into())]);
    assert_eq!(
        paths(&at_other, "10.1.1.0/24"),
        vec![(victim.id, "10.1.0.31".into())]
    );
    assert_eq!(
        reasons(&rs, "10.1.1.0/24"),
        vec![
            ("host-10.1.0.31".into(), None),
            (
                "host-10.1.0.33".into(),
                Some("refused: conflict: announced first by host-10.1.0.31".into())
            )
        ]
    );

    withdraw(&mut rs, &victim, &["10.1.1.0/24"]);
    drain(&mut sd, &mut at_sd);
    drain(&mut other, &mut at_other);
    assert_eq!(paths(&at_sd, "10.1.1.0/24"), vec![(0, "10.1.0.33".into())]);
    let a = &at_other[&("10.1.1.0/24".to_string(), attacker.id)];
    assert_eq!(a.local_pref, Some(DEFAULT_LOCAL_PREF), "normalised");
    assert_eq!(a.med, None);
}

#[test]
fn the_holders_session_loss_hands_the_prefix_to_the_waiting_host() {
    let mut rs = server("");
    let first = host(&mut rs, "10.1.0.31", false);
    let second = host(&mut rs, "10.1.0.32", false);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &first, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    announce(&mut rs, &second, &["10.1.1.0/24"], attrs(&[], "10.1.0.32"));
    event(
        &mut rs,
        &first,
        SessionEvent::Down {
            reason: DownReason::TcpFailed("reset".into()),
        },
        Instant::now(),
    );
    assert_eq!(
        paths(&held(&mut sd), "10.1.1.0/24"),
        vec![(0, "10.1.0.32".into())]
    );
}

#[test]
fn a_more_specific_inside_another_hosts_prefix_is_refused_and_used_once_that_prefix_goes() {
    let mut rs = server("");
    let victim = host(&mut rs, "10.1.0.31", false);
    let mut other = host(&mut rs, "10.1.0.32", false);
    let attacker = host(&mut rs, "10.1.0.33", false);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &victim, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    announce(
        &mut rs,
        &attacker,
        &["10.1.1.10/32"],
        attrs(&[], "10.1.0.33"),
    );
    let mut at_sd = Default::default();
    drain(&mut sd, &mut at_sd);
    assert!(paths(&at_sd, "10.1.1.10/32").is_empty());
    assert!(paths(&held(&mut other), "10.1.1.10/32").is_empty());
    assert_eq!(
        reasons(&rs, "10.1.1.10/32"),
        vec![(
            "host-10.1.0.33".into(),
            Some("refused: inside 10.1.1.0/24, announced first by host-10.1.0.31".into())
        )]
    );
    withdraw(&mut rs, &victim, &["10.1.1.0/24"]);
    drain(&mut sd, &mut at_sd);
    assert_eq!(paths(&at_sd, "10.1.1.10/32"), vec![(0, "10.1.0.33".into())]);
}

#[test]
fn an_allow_entry_lets_a_migrated_vms_new_host_announce_its_32() {
    let mut rs = server_from(&format!(
        "{CONFIG}\n[[hosts.allow]]\nrange = \"10.1.0.32/32\"\nprefixes = [\"10.1.0.0/17\"]\n\
         [[hosts.allow]]\nrange = \"10.1.0.31/32\"\nprefixes = [\"10.1.1.0/24\"]\n"
    ));
    let old = host(&mut rs, "10.1.0.31", false);
    let new = host(&mut rs, "10.1.0.32", false);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(
        &mut rs,
        &old,
        &["10.1.1.0/24", "10.1.2.0/24"],
        attrs(&[], "10.1.0.31"),
    );
    announce(&mut rs, &new, &["10.1.1.10/32"], attrs(&[], "10.1.0.32"));
    let at_sd = held(&mut sd);
    assert_eq!(paths(&at_sd, "10.1.1.0/24"), vec![(0, "10.1.0.31".into())]);
    assert!(paths(&at_sd, "10.1.2.0/24").is_empty(), "not in its entry");
    assert_eq!(paths(&at_sd, "10.1.1.10/32"), vec![(0, "10.1.0.32".into())]);
}

#[test]
fn a_host_announcing_the_vnet_prefix_cannot_displace_the_route_servers_own_route() {
    let mut rs = server("");
    let attacker = host(&mut rs, "10.1.0.33", false);
    let mut other = host(&mut rs, "10.1.0.32", false);
    let mut sd = appliance(&mut rs, "sdwan");
    let mut at_sd = Default::default();
    let mut at_other = Default::default();
    drain(&mut sd, &mut at_sd);
    drain(&mut other, &mut at_other);
    for prefix in ["10.1.0.0/16", "10.0.0.0/8", "0.0.0.0/0"] {
        announce(&mut rs, &attacker, &[prefix], hijack(200, "10.1.0.99"));
    }
    drain(&mut sd, &mut at_sd);
    drain(&mut other, &mut at_other);
    assert_eq!(paths(&at_sd, "10.1.0.0/16"), vec![(0, "10.1.0.4".into())]);
    assert_eq!(
        at_sd[&("10.1.0.0/16".to_string(), 0)].as_path,
        Some(AsPath::sequence([65515]))
    );
    assert_eq!(
        paths(&at_other, "10.1.0.0/16"),
        vec![(0, "10.1.0.4".into())]
    );
    assert!(paths(&at_sd, "10.0.0.0/8").is_empty() && paths(&at_sd, "0.0.0.0/0").is_empty());
    assert_eq!(
        reasons(&rs, "10.1.0.0/16")[1],
        (
            "host-10.1.0.33".into(),
            Some("refused: host route is or covers the VNet prefix 10.1.0.0/16".into())
        )
    );
}

#[test]
fn a_host_next_hop_is_forced_to_its_session_address() {
    let mut rs = server("");
    let h = host(&mut rs, "10.1.0.31", false);
    let mut sd = appliance(&mut rs, "sdwan");
    announce(&mut rs, &h, &["10.1.1.0/24"], attrs(&[], "10.1.0.99"));
    assert_eq!(
        paths(&held(&mut sd), "10.1.1.0/24"),
        vec![(0, "10.1.0.31".into())]
    );
}

#[test]
fn a_host_update_over_its_limit_is_refused_whole_before_any_of_it_is_exported() {
    let mut rs = server("max_prefix_restart = 30");
    let mut h = host(&mut rs, "10.1.0.31", false);
    let mut other = host(&mut rs, "10.1.0.32", false);
    let mut sd = appliance(&mut rs, "sdwan");
    let mut at_sd = Default::default();
    let mut at_other = Default::default();
    drain(&mut sd, &mut at_sd);
    drain(&mut other, &mut at_other);
    announce(&mut rs, &h, &["10.1.1.0/24"], attrs(&[], "10.1.0.31"));
    let flood: Vec<String> = (0..64).map(|i| format!("10.1.200.{i}/32")).collect();
    let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
    announce(&mut rs, &h, &flood, attrs(&[], "10.1.0.31"));
    match h.cmd.try_recv().unwrap() {
        SessionCommand::StopFor(n, _) => {
            assert_eq!((n.code, n.subcode), (6, 1));
            assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 64]);
        }
        c => panic!("expected StopFor, got {c:?}"),
    }
    drain(&mut sd, &mut at_sd);
    drain(&mut other, &mut at_other);
    assert!(at_sd.keys().all(|k| !k.0.starts_with("10.1.200.")));
    assert!(at_other.keys().all(|k| !k.0.starts_with("10.1.200.")));
    assert!(
        paths(&at_sd, "10.1.1.0/24").is_empty(),
        "the session's routes went with it"
    );
    let _ = held(&mut h);
}
