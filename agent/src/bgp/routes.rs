//! From a decoded UPDATE to per-family route batches for a RIB: applies
//! the RFC 7606 outcome (treat-as-withdraw turns announcements into
//! withdrawals), moves MP_REACH next hops into the route's attributes
//! (RFC 4760), drops families the session did not negotiate, and makes the
//! semantic checks of RFC 4271 §6.3 that need session context (next hop
//! usable, and on eBGP not our own address and the first AS the peer's,
//! handled as treat-as-withdraw per RFC 7606 §7.2, §7.3). Over iBGP a
//! reflected route may carry our own address as next hop (RFC 4456): the
//! receiver ignores it rather than calling it malformed.

use super::attribute::{AttributeIssue, PathAttributes};
use super::iana::AttrType;
use super::message::Update;
use super::negotiate::Negotiated;
use super::nlri::{Family, Nlri};
use std::net::IpAddr;
use std::sync::Arc;

/// Routes of one family from one UPDATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteBatch {
    /// The family.
    pub family: Family,
    /// The attributes of `announce` (with the route's next hop).
    pub attrs: Option<Arc<PathAttributes>>,
    /// Reachable NLRI.
    pub announce: Vec<Nlri>,
    /// Withdrawn NLRI.
    pub withdraw: Vec<Nlri>,
}

/// What an UPDATE means for the RIB, and what to log about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingest {
    /// Route batches, at most one per family and kind.
    pub batches: Vec<RouteBatch>,
    /// End-of-RIB marker for this family (RFC 4724 §2).
    pub end_of_rib: Option<Family>,
    /// Why announcements were withdrawn instead (RFC 7606 treat-as-withdraw).
    pub withdrawn_because: Vec<AttributeIssue>,
    /// Attributes dropped (RFC 7606 attribute discard).
    pub discarded: Vec<AttributeIssue>,
    /// Families present in the UPDATE but not negotiated (ignored).
    pub ignored_families: Vec<Family>,
}

/// Session facts the checks need.
#[derive(Clone, Debug)]
pub struct IngestContext<'a> {
    /// What the OPENs negotiated.
    pub negotiated: &'a Negotiated,
    /// Our address on this session (a next hop equal to it is refused).
    pub local_addr: IpAddr,
    /// The session is eBGP.
    pub ebgp: bool,
}

fn next_hop_usable(nh: IpAddr, local: IpAddr, ebgp: bool) -> Result<(), String> {
    if nh == local && ebgp {
        return Err(format!("next hop {nh} is our own address"));
    }
    let bad = match nh {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback()
        }
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.is_loopback(),
    };
    if bad {
        return Err(format!("next hop {nh} is not a unicast address"));
    }
    Ok(())
}

/// Turn one UPDATE into route batches.
pub fn ingest(update: Update, ctx: &IngestContext<'_>) -> Ingest {
    let mut out = Ingest {
        end_of_rib: update.end_of_rib(),
        discarded: update.discarded,
        withdrawn_because: update.treat_as_withdraw,
        ..Ingest::default()
    };
    if out.end_of_rib.is_some() {
        return out;
    }
    let Update {
        withdrawn,
        attributes,
        nlri,
        mp_reach,
        mp_unreach,
        ..
    } = update;

    let announces = !nlri.is_empty() || mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty());
    if announces && out.withdrawn_because.is_empty() && ctx.ebgp {
        let first = attributes.as_path.as_ref().and_then(|p| p.first_asn());
        if first != Some(ctx.negotiated.peer_asn) {
            out.withdrawn_because.push(AttributeIssue {
                type_code: AttrType::AsPath.into(),
                reason: format!(
                    "first AS {} is not the peer's AS {} (RFC 4271 §6.3, RFC 7606 §7.2)",
                    first.map_or("(none)".to_string(), |a| a.to_string()),
                    ctx.negotiated.peer_asn
                ),
            });
        }
    }

    let mut v4 = RouteBatch {
        family: Family::IPV4_UNICAST,
        attrs: None,
        announce: Vec::new(),
        withdraw: withdrawn,
    };
    let mut mp_batch = None;
    if !nlri.is_empty() {
        if let Some(nh) = attributes.next_hop
            && out.withdrawn_because.is_empty()
            && let Err(e) = next_hop_usable(nh, ctx.local_addr, ctx.ebgp)
        {
            out.withdrawn_because.push(AttributeIssue {
                type_code: AttrType::NextHop.into(),
                reason: format!("{e} (RFC 4271 §6.3, RFC 7606 §7.3)"),
            });
        }
        v4.announce = nlri;
    }
    if let Some(mp) = mp_reach {
        let mut attrs = attributes.clone();
        attrs.next_hop = Some(mp.next_hop);
        attrs.link_local_next_hop = mp.link_local;
        if out.withdrawn_because.is_empty()
            && let Err(e) = next_hop_usable(mp.next_hop, ctx.local_addr, ctx.ebgp)
        {
            out.withdrawn_because.push(AttributeIssue {
                type_code: AttrType::MpReachNlri.into(),
                reason: format!("{e} (RFC 4760 §3, RFC 7606 §7.11)"),
            });
        }
        mp_batch = Some(RouteBatch {
            family: mp.family,
            attrs: Some(Arc::new(attrs)),
            announce: mp.nlri,
            withdraw: Vec::new(),
        });
    }
    if !v4.announce.is_empty() {
        v4.attrs = Some(Arc::new(attributes));
    }

    let mut batches = vec![v4];
    batches.extend(mp_batch);
    if let Some(u) = mp_unreach {
        batches.push(RouteBatch {
            family: u.family,
            attrs: None,
            announce: Vec::new(),
            withdraw: u.withdrawn,
        });
    }
    for mut b in batches {
        if b.announce.is_empty() && b.withdraw.is_empty() {
            continue;
        }
        if !ctx.negotiated.has_family(b.family) {
            if !out.ignored_families.contains(&b.family) {
                out.ignored_families.push(b.family);
            }
            continue;
        }
        if !out.withdrawn_because.is_empty() && !b.announce.is_empty() {
            let a = std::mem::take(&mut b.announce);
            b.withdraw.extend(a);
            b.attrs = None;
        }
        out.batches.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::attribute::{AsPath, Origin};
    use crate::bgp::message::{CodecConfig, MpReach, MpUnreach};
    use crate::prefix::Prefix;
    use std::net::Ipv4Addr;

    fn negotiated(families: Vec<Family>) -> Negotiated {
        Negotiated {
            peer_asn: 65010,
            peer_router_id: Ipv4Addr::new(10, 1, 0, 10),
            hold_time: 90,
            keepalive: 30,
            families,
            route_refresh: true,
            graceful_restart: None,
            codec: CodecConfig::default(),
        }
    }

    fn nlri(s: &str) -> Nlri {
        Nlri::new(s.parse::<Prefix>().unwrap())
    }

    fn attrs(path: &[u32], nh: &str) -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(path.iter().copied())),
            next_hop: Some(nh.parse().unwrap()),
            ..PathAttributes::default()
        }
    }

    fn ctx(n: &Negotiated) -> IngestContext<'_> {
        IngestContext {
            negotiated: n,
            local_addr: "10.1.0.4".parse().unwrap(),
            ebgp: true,
        }
    }

    #[test]
    fn ipv4_announce_and_withdraw_become_one_batch() {
        let n = negotiated(vec![Family::IPV4_UNICAST]);
        let u = Update {
            withdrawn: vec![nlri("10.9.0.0/16")],
            attributes: attrs(&[65010], "10.1.0.10"),
            nlri: vec![nlri("10.250.0.0/16")],
            ..Update::default()
        };
        let i = ingest(u, &ctx(&n));
        assert_eq!(i.batches.len(), 1);
        let b = &i.batches[0];
        assert_eq!(b.announce, vec![nlri("10.250.0.0/16")]);
        assert_eq!(b.withdraw, vec![nlri("10.9.0.0/16")]);
        assert_eq!(
            b.attrs.as_ref().unwrap().next_hop,
            Some("10.1.0.10".parse().unwrap())
        );
        assert!(i.withdrawn_because.is_empty());
    }

    #[test]
    fn treat_as_withdraw_turns_every_announcement_into_a_withdrawal() {
        let n = negotiated(vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        let u = Update {
            attributes: attrs(&[65010], "10.1.0.10"),
            nlri: vec![nlri("10.250.0.0/16")],
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: "2001:db8::10".parse().unwrap(),
                link_local: None,
                nlri: vec![nlri("2001:db8:250::/48")],
            }),
            treat_as_withdraw: vec![AttributeIssue {
                type_code: 1,
                reason: "bad origin".into(),
            }],
            ..Update::default()
        };
        let i = ingest(u, &ctx(&n));
        assert_eq!(i.batches.len(), 2);
        for b in &i.batches {
            assert!(b.announce.is_empty());
            assert!(b.attrs.is_none());
            assert_eq!(b.withdraw.len(), 1);
        }
    }

    #[test]
    fn mp_reach_next_hop_moves_into_the_attributes() {
        let n = negotiated(vec![Family::IPV6_UNICAST]);
        let u = Update {
            attributes: PathAttributes {
                next_hop: None,
                ..attrs(&[65010], "0.0.0.1")
            },
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: "2001:db8::10".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
                nlri: vec![nlri("2001:db8:250::/48")],
            }),
            ..Update::default()
        };
        let i = ingest(u, &ctx(&n));
        let a = i.batches[0].attrs.as_ref().unwrap();
        assert_eq!(a.next_hop, Some("2001:db8::10".parse().unwrap()));
        assert_eq!(a.link_local_next_hop, Some("fe80::1".parse().unwrap()));
    }

    #[test]
    fn families_not_negotiated_are_ignored_and_reported() {
        let n = negotiated(vec![Family::IPV4_UNICAST]);
        let u = Update {
            mp_unreach: Some(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![nlri("2001:db8::/32")],
            }),
            ..Update::default()
        };
        let i = ingest(u, &ctx(&n));
        assert!(i.batches.is_empty());
        assert_eq!(i.ignored_families, vec![Family::IPV6_UNICAST]);
    }

    #[test]
    fn ebgp_path_not_starting_with_the_peer_as_is_withdrawn() {
        let n = negotiated(vec![Family::IPV4_UNICAST]);
        let u = Update {
            attributes: attrs(&[65099, 65010], "10.1.0.10"),
            nlri: vec![nlri("10.250.0.0/16")],
            ..Update::default()
        };
        let i = ingest(u, &ctx(&n));
        assert!(i.batches[0].announce.is_empty());
        assert_eq!(i.batches[0].withdraw, vec![nlri("10.250.0.0/16")]);
        assert!(i.withdrawn_because[0].reason.contains("first AS 65099"));
    }

    #[test]
    fn ibgp_skips_the_first_as_check() {
        let n = negotiated(vec![Family::IPV4_UNICAST]);
        let u = Update {
            attributes: attrs(&[], "10.1.0.31"),
            nlri: vec![nlri("10.1.1.0/24")],
            ..Update::default()
        };
        let mut c = ctx(&n);
        c.ebgp = false;
        let i = ingest(u, &c);
        assert_eq!(i.batches[0].announce.len(), 1);
    }

    #[test]
    fn next_hop_equal_to_our_address_is_withdrawn() {
        let n = negotiated(vec![Family::IPV4_UNICAST]);
        let u = Update {
            attributes: attrs(&[65010], "10.1.0.4"),
            nlri: vec![nlri("10.250.0.0/16")],
            ..Update::default()
        };
        let i = ingest(u, &ctx(&n));
        assert!(i.batches[0].announce.is_empty());
        assert!(i.withdrawn_because[0].reason.contains("our own address"));
    }

    #[test]
    fn reflected_route_with_our_own_next_hop_is_not_malformed_over_ibgp() {
        let n = negotiated(vec![Family::IPV4_UNICAST]);
        let u = Update {
            attributes: attrs(&[], "10.1.0.4"),
            nlri: vec![nlri("10.1.1.0/24")],
            ..Update::default()
        };
        let mut c = ctx(&n);
        c.ebgp = false;
        let i = ingest(u, &c);
        assert_eq!(i.batches[0].announce.len(), 1);
        assert!(i.withdrawn_because.is_empty());
    }

    #[test]
    fn end_of_rib_is_recognised_for_both_families() {
        let n = negotiated(vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        assert_eq!(
            ingest(Update::default(), &ctx(&n)).end_of_rib,
            Some(Family::IPV4_UNICAST)
        );
        let u = Update {
            mp_unreach: Some(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![],
            }),
            ..Update::default()
        };
        assert_eq!(ingest(u, &ctx(&n)).end_of_rib, Some(Family::IPV6_UNICAST));
    }
}
