//! What two OPENs agree on: hold time and keepalive (RFC 4271 §4.2,
//! §10), address families (RFC 4760 §8), 4-octet AS (RFC 6793), ADD-PATH
//! per direction (RFC 7911 §4), extended messages (RFC 8654), route refresh
//! (RFC 2918) and the peer's graceful-restart capability (RFC 4724).

use super::capability::{AddPathFamily, Capability, GracefulRestart};
use super::message::{CodecConfig, Open};
use super::nlri::Family;

/// The result of a successful OPEN exchange.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Negotiated {
    /// The peer's AS (4-octet capability or My AS).
    pub peer_asn: u32,
    /// The peer's BGP identifier.
    #[serde(serialize_with = "crate::util::ser_display")]
    pub peer_router_id: std::net::Ipv4Addr,
    /// Negotiated hold time in seconds; 0 disables hold and keepalive.
    pub hold_time: u16,
    /// Keepalive interval in seconds (0 when hold time is 0).
    pub keepalive: u16,
    /// Families both sides announced (IPv4 unicast when the peer sent no
    /// multiprotocol capability at all).
    pub families: Vec<Family>,
    /// The peer accepts ROUTE-REFRESH.
    pub route_refresh: bool,
    /// The peer's graceful-restart capability, if sent.
    pub graceful_restart: Option<GracefulRestart>,
    /// How to encode and decode on this session.
    #[serde(skip)]
    pub codec: CodecConfig,
}

impl Negotiated {
    /// True when `family` is in use on this session.
    pub fn has_family(&self, family: Family) -> bool {
        self.families.contains(&family)
    }

    /// True when the peer sent the N bit (RFC 8538): a NOTIFICATION other
    /// than Hard Reset then also starts a graceful restart. We always send it.
    pub fn notification_restart(&self) -> bool {
        self.graceful_restart
            .as_ref()
            .is_some_and(|g| g.notification)
    }

    /// True when the peer asked us to keep its routes of `family` through a
    /// restart (RFC 4724 §4.2: the family is listed in its capability).
    pub fn peer_preserves(&self, family: Family) -> bool {
        self.graceful_restart
            .as_ref()
            .is_some_and(|g| g.families.iter().any(|(f, _)| *f == family))
    }
}

fn multiprotocol(open: &Open) -> Vec<Family> {
    open.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect()
}

fn add_path(open: &Open) -> Vec<AddPathFamily> {
    open.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::AddPath(v) => Some(v.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn has(open: &Open, pred: impl Fn(&Capability) -> bool) -> bool {
    open.capabilities.iter().any(pred)
}

/// Negotiate from our OPEN and the peer's. `ebgp` tells the codec how to
/// classify LOCAL_PREF and reflection attributes.
pub fn negotiate(ours: &Open, theirs: &Open, ebgp: bool) -> Negotiated {
    let hold_time = ours.hold_time.min(theirs.hold_time);
    let keepalive = hold_time / 3;

    let our_families = {
        let v = multiprotocol(ours);
        if v.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            v
        }
    };
    let their_families = {
        let v = multiprotocol(theirs);
        if v.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            v
        }
    };
    let mut families: Vec<Family> = our_families
        .iter()
        .copied()
        .filter(|f| their_families.contains(f) && f.afi().is_some())
        .collect();
    families.sort();
    families.dedup();

    let four_octet_as = has(ours, |c| matches!(c, Capability::FourOctetAs(_)))
        && has(theirs, |c| matches!(c, Capability::FourOctetAs(_)));
    let extended_message = has(ours, |c| *c == Capability::ExtendedMessage)
        && has(theirs, |c| *c == Capability::ExtendedMessage);

    let our_ap = add_path(ours);
    let their_ap = add_path(theirs);
    let mut add_path_receive = [false; 2];
    let mut add_path_send = [false; 2];
    for f in &families {
        let Some(i) = f.index() else { continue };
        let o = our_ap.iter().find(|a| a.family == *f);
        let t = their_ap.iter().find(|a| a.family == *f);
        if let (Some(o), Some(t)) = (o, t) {
            add_path_receive[i] = o.receive && t.send;
            add_path_send[i] = o.send && t.receive;
        }
    }

    let graceful_restart = theirs.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.clone()),
        _ => None,
    });

    Negotiated {
        peer_asn: theirs.asn(),
        peer_router_id: theirs.router_id,
        hold_time,
        keepalive,
        families,
        route_refresh: has(theirs, |c| {
            matches!(
                c,
                Capability::RouteRefresh | Capability::EnhancedRouteRefresh
            )
        }),
        graceful_restart,
        codec: CodecConfig {
            four_octet_as,
            extended_message,
            add_path_receive,
            add_path_send,
            ebgp,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn open(asn: u32, hold: u16, caps: Vec<Capability>) -> Open {
        Open::new(asn, hold, Ipv4Addr::new(10, 0, 0, 1), caps)
    }

    #[test]
    fn hold_time_is_the_minimum_and_keepalive_a_third() {
        let n = negotiate(&open(65515, 180, vec![]), &open(65010, 90, vec![]), true);
        assert_eq!((n.hold_time, n.keepalive), (90, 30));
        let n = negotiate(&open(65515, 180, vec![]), &open(65010, 0, vec![]), true);
        assert_eq!((n.hold_time, n.keepalive), (0, 0));
    }

    #[test]
    fn no_multiprotocol_capability_means_ipv4_unicast_only() {
        let ours = open(
            65515,
            180,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
            ],
        );
        let n = negotiate(&ours, &open(65010, 180, vec![]), true);
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
    }

    #[test]
    fn families_are_the_intersection_and_unknown_ones_are_dropped() {
        let ours = open(
            65515,
            180,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
            ],
        );
        let theirs = open(
            65010,
            180,
            vec![
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::Multiprotocol(Family { afi: 1, safi: 128 }),
            ],
        );
        assert_eq!(
            negotiate(&ours, &theirs, true).families,
            vec![Family::IPV6_UNICAST]
        );
    }

    #[test]
    fn add_path_directions_pair_send_with_receive() {
        let ap = |receive, send| {
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                receive,
                send,
            }])
        };
        let server = open(65515, 180, vec![ap(true, true)]);
        let agent = open(65515, 180, vec![ap(true, false)]);
        let n = negotiate(&server, &agent, false);
        assert_eq!(n.codec.add_path_send, [true, false]);
        assert_eq!(n.codec.add_path_receive, [false, false]);
        let n = negotiate(&agent, &server, false);
        assert_eq!(n.codec.add_path_receive, [true, false]);
        assert_eq!(n.codec.add_path_send, [false, false]);
    }

    #[test]
    fn four_octet_as_and_extended_messages_need_both_sides() {
        let ours = open(
            65515,
            180,
            vec![Capability::FourOctetAs(65515), Capability::ExtendedMessage],
        );
        let n = negotiate(
            &ours,
            &open(65010, 180, vec![Capability::FourOctetAs(65010)]),
            true,
        );
        assert!(n.codec.four_octet_as);
        assert!(!n.codec.extended_message);
        let n = negotiate(
            &ours,
            &open(65010, 180, vec![Capability::ExtendedMessage]),
            true,
        );
        assert!(!n.codec.four_octet_as);
        assert!(n.codec.extended_message);
    }

    #[test]
    fn peer_asn_comes_from_the_four_octet_capability() {
        let theirs = open(
            4_200_000_000,
            180,
            vec![Capability::FourOctetAs(4_200_000_000)],
        );
        assert_eq!(theirs.my_as, 23456);
        assert_eq!(
            negotiate(&open(65515, 180, vec![]), &theirs, true).peer_asn,
            4_200_000_000
        );
    }

    #[test]
    fn graceful_restart_families_are_what_the_peer_preserves() {
        let gr = GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 120,
            families: vec![(Family::IPV4_UNICAST, true)],
        };
        let theirs = open(65515, 180, vec![Capability::GracefulRestart(gr)]);
        let n = negotiate(&open(65515, 180, vec![]), &theirs, false);
        assert!(n.peer_preserves(Family::IPV4_UNICAST));
        assert!(!n.peer_preserves(Family::IPV6_UNICAST));
    }
}
