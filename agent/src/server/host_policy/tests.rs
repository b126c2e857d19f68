use super::*;
use crate::bgp::attribute::AsSegment;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn policy(allow: Vec<AllowRule>) -> HostPolicy {
    HostPolicy::new(vec![p("10.8.0.0/16"), p("2001:db8:8::/48")], allow)
}

fn c(peer: PeerId) -> Claim {
    Claim { peer, path_id: 0 }
}

fn name(h: PeerId) -> String {
    format!("host{h}")
}

#[test]
fn only_prefixes_strictly_inside_the_vnet_are_admitted() {
    let pol = policy(vec![]);
    let h = a("10.1.0.31");
    assert_eq!(pol.admit(h, &p("10.8.1.0/24")), Ok(()));
    assert_eq!(pol.admit(h, &p("10.8.1.10/32")), Ok(()));
    assert_eq!(pol.admit(h, &p("2001:db8:8:1::/64")), Ok(()));
    assert_eq!(
        pol.admit(h, &p("10.8.0.0/16")),
        Err(Rejection::VnetAuthority(p("10.8.0.0/16")))
    );
    assert_eq!(
        pol.admit(h, &p("10.0.0.0/8")),
        Err(Rejection::VnetAuthority(p("10.8.0.0/16")))
    );
    assert_eq!(
        pol.admit(h, &p("0.0.0.0/0")),
        Err(Rejection::VnetAuthority(p("10.8.0.0/16")))
    );
    assert_eq!(
        pol.admit(h, &p("192.168.0.0/24")),
        Err(Rejection::OutsideVnet)
    );
    assert_eq!(pol.admit(h, &p("10.9.0.0/24")), Err(Rejection::OutsideVnet));
}

#[test]
fn with_an_allow_map_a_host_announces_only_what_its_entries_list() {
    let pol = policy(vec![
        AllowRule {
            range: p("10.1.0.31/32"),
            prefixes: vec![p("10.8.1.0/24")],
        },
        AllowRule {
            range: p("10.1.0.32/31"),
            prefixes: vec![p("10.8.2.0/24"), p("10.8.3.0/24")],
        },
    ]);
    assert_eq!(pol.admit(a("10.1.0.31"), &p("10.8.1.0/24")), Ok(()));
    assert_eq!(pol.admit(a("10.1.0.31"), &p("10.8.1.7/32")), Ok(()));
    assert_eq!(
        pol.admit(a("10.1.0.31"), &p("10.8.2.0/24")),
        Err(Rejection::NotAllowed)
    );
    assert_eq!(pol.admit(a("10.1.0.33"), &p("10.8.3.0/24")), Ok(()));
    assert_eq!(
        pol.admit(a("10.1.0.40"), &p("10.8.1.0/24")),
        Err(Rejection::NotAllowed),
        "a host no entry matches announces nothing"
    );
    assert_eq!(
        pol.admit(a("10.1.0.31"), &p("10.8.0.0/16")),
        Err(Rejection::VnetAuthority(p("10.8.0.0/16"))),
        "the VNet rule comes first"
    );
    assert!(pol.granted(a("10.1.0.32"), &p("10.8.2.9/32")));
    assert!(!pol.granted(a("10.1.0.32"), &p("10.8.1.9/32")));
}

#[test]
fn normalising_forces_the_next_hop_and_takes_away_every_preference() {
    let pol = policy(vec![]);
    let mut attrs = PathAttributes {
        origin: Some(Origin::Incomplete),
        as_path: Some(AsPath {
            segments: vec![AsSegment::Sequence(vec![65001])],
        }),
        next_hop: Some(a("10.8.0.99")),
        med: Some(0),
        local_pref: Some(200),
        communities: vec![1],
        ..Default::default()
    };
    let n = pol.normalise(&attrs, a("10.1.0.33"), false).unwrap();
    assert_eq!(n.next_hop, Some(a("10.1.0.33")));
    assert_eq!(n.local_pref, Some(DEFAULT_LOCAL_PREF));
    assert_eq!(n.med, None);
    assert_eq!(n.as_path, Some(AsPath::default()));
    assert_eq!(n.origin, Some(Origin::Igp));
    assert_eq!(n.communities, vec![1], "other attributes are kept");
    assert_eq!(pol.normalise(&n, a("10.1.0.33"), false), None, "idempotent");

    attrs.next_hop = Some(a("2001:db8:1::31"));
    let v6 = pol.normalise(&attrs, a("10.1.0.33"), true).unwrap();
    assert_eq!(
        v6.next_hop,
        Some(a("2001:db8:1::31")),
        "the other family's next hop cannot be the session address"
    );
    let v6_session = pol.normalise(&attrs, a("2001:db8:1::33"), true).unwrap();
    assert_eq!(v6_session.next_hop, Some(a("2001:db8:1::33")));
}

#[test]
fn the_same_prefix_from_two_hosts_goes_to_the_older_until_it_withdraws() {
    let mut cl = Claims::default();
    let q = p("10.8.1.0/24");
    assert_eq!(cl.claim(q, c(1), false, name), Ok(()));
    assert_eq!(
        cl.claim(q, c(2), false, name),
        Err(Rejection::HeldByHost {
            holder: "host1".into()
        })
    );
    assert_eq!(
        cl.claim(q, c(1), false, name),
        Ok(()),
        "re-announcing keeps its place"
    );
    assert_eq!(
        cl.claim(q, c(2), false, name),
        Err(Rejection::HeldByHost {
            holder: "host1".into()
        }),
        "so does the waiting one"
    );
    assert_eq!(cl.holder(&q), Some(1));
    let r = cl.release(&q, c(1));
    assert_eq!(r.promoted, vec![(q, c(2))]);
    assert_eq!(cl.holder(&q), Some(2));
    assert_eq!(cl.release(&q, c(2)), Released::default());
    assert_eq!(cl.holder(&q), None);
    assert!(cl.of_peer(1).is_empty() && cl.of_peer(2).is_empty());
}

#[test]
fn a_second_path_of_the_holder_is_not_a_conflict_and_keeps_it_holding() {
    let mut cl = Claims::default();
    let q = p("10.8.1.0/24");
    cl.claim(q, c(1), false, name).unwrap();
    cl.claim(
        q,
        Claim {
            peer: 1,
            path_id: 7,
        },
        false,
        name,
    )
    .unwrap();
    assert!(cl.claim(q, c(2), false, name).is_err());
    assert_eq!(
        cl.release(&q, c(1)),
        Released::default(),
        "still held by path 7"
    );
    assert_eq!(cl.holder(&q), Some(1));
}

#[test]
fn a_more_specific_inside_another_hosts_prefix_waits_unless_granted() {
    let mut cl = Claims::default();
    let q = p("10.8.1.0/24");
    let vm = p("10.8.1.10/32");
    cl.claim(q, c(1), false, name).unwrap();
    assert_eq!(
        cl.claim(vm, c(2), false, name),
        Err(Rejection::InsideHostPrefix {
            prefix: q,
            holder: "host1".into()
        })
    );
    assert_eq!(
        cl.claim(p("10.8.1.11/32"), c(1), false, name),
        Ok(()),
        "its own"
    );
    assert_eq!(
        cl.claim(p("10.8.1.12/32"), c(3), true, name),
        Ok(()),
        "granted"
    );
    assert_eq!(cl.covering_holder(&vm, 2), Some((q, 1)));
    let r = cl.release(&q, c(1));
    assert_eq!(r.unblocked, vec![(vm, c(2))]);
    assert!(r.promoted.is_empty());
    assert_eq!(cl.claim(vm, c(2), false, name), Ok(()));
    assert_eq!(
        cl.claim(q, c(1), false, name),
        Ok(()),
        "a shorter prefix over an older more-specific is fine"
    );
}

#[test]
fn a_withdrawn_waiting_path_is_forgotten_everywhere() {
    let mut cl = Claims::default();
    let q = p("10.8.1.0/24");
    let vm = p("10.8.1.10/32");
    cl.claim(q, c(1), false, name).unwrap();
    assert!(cl.claim(vm, c(2), false, name).is_err());
    assert_eq!(cl.of_peer(2), vec![(vm, 0)]);
    cl.release(&vm, c(2));
    assert!(cl.of_peer(2).is_empty());
    assert!(cl.release(&q, c(1)).unblocked.is_empty());
}
