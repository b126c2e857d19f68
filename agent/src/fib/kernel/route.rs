//! Route messages (RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE; struct rtmsg
//! in linux/rtnetlink.h) for IPv4 and IPv6: encoding Steer's requests and
//! decoding the kernel's routes from dumps and lookups.

use std::net::IpAddr;

use super::RTPROT_STEER;
use super::abi::*;
use super::batch::Batch;
use super::wire::{self, Encoder, Msg, family_of};
use crate::prefix::{Afi, Prefix};

/// How a route forwards.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via<'a> {
    /// No next hop: blackhole, unreachable, throw.
    Nothing,
    /// One gateway; the kernel finds the interface.
    Gateway(IpAddr),
    /// RTA_MULTIPATH with one `rtnexthop` per gateway.
    Multipath(&'a [IpAddr]),
    /// A nexthop object or group (RTA_NH_ID).
    Object(u32),
}

/// A route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteInfo {
    pub prefix: Prefix,
    pub table: u32,
    pub protocol: u8,
    pub scope: u8,
    pub kind: u8,
    pub gateways: Vec<IpAddr>,
    pub nh_id: Option<u32>,
    pub oif: Option<u32>,
    /// A cache entry or a lookup answer (RTM_F_CLONED), not a table route.
    pub cloned: bool,
}

pub(crate) fn family(afi: Afi) -> u8 {
    match afi {
        Afi::Ipv4 => AF_INET,
        Afi::Ipv6 => AF_INET6,
    }
}

fn rtmsg(
    family: u8,
    dst_len: u8,
    table: u32,
    protocol: u8,
    scope: u8,
    kind: u8,
) -> [u8; RTMSG_LEN] {
    let table8 = if table < 256 {
        table as u8
    } else {
        RT_TABLE_COMPAT as u8
    };
    [
        family, dst_len, 0, 0, table8, protocol, scope, kind, 0, 0, 0, 0,
    ]
}

/// Adds or replaces (NLM_F_CREATE | NLM_F_REPLACE) a route of ours.
pub(crate) fn push_upsert(batch: &mut Batch, table: u32, prefix: Prefix, kind: u8, via: Via) {
    let fam = family(prefix.afi());
    batch.push(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, |e| {
        e.header(&rtmsg(
            fam,
            prefix.len(),
            table,
            RTPROT_STEER,
            RT_SCOPE_UNIVERSE,
            kind,
        ));
        e.attr_u32(RTA_TABLE, table);
        e.attr_addr(RTA_DST, prefix.addr());
        match via {
            Via::Nothing => {}
            Via::Gateway(gw) => gateway_attr(e, fam, gw),
            Via::Multipath(gws) => {
                let nest = e.begin_nest(RTA_MULTIPATH);
                for &gw in gws {
                    let at = e.raw(&[0; RTNH_LEN]);
                    gateway_attr(e, fam, gw);
                    let len = (e.len() - at) as u16;
                    e.patch_u16(at, len);
                }
                e.end_nest(nest);
            }
            Via::Object(id) => e.attr_u32(RTA_NH_ID, id),
        }
    });
}

fn gateway_attr(e: &mut Encoder, route_family: u8, gw: IpAddr) {
    if family_of(gw) == route_family {
        e.attr_addr(RTA_GATEWAY, gw);
    } else {
        e.attr_via(RTA_VIA, gw);
    }
}

/// Deletes our route for `prefix` (only ours: the protocol must match).
pub(crate) fn push_remove(batch: &mut Batch, table: u32, prefix: Prefix) {
    let fam = family(prefix.afi());
    batch.push(RTM_DELROUTE, 0, |e| {
        e.header(&rtmsg(
            fam,
            prefix.len(),
            table,
            RTPROT_STEER,
            RT_SCOPE_NOWHERE,
            0,
        ));
        e.attr_u32(RTA_TABLE, table);
        e.attr_addr(RTA_DST, prefix.addr());
    });
}

/// Asks which route the host itself would use to reach `addr`.
pub(crate) fn push_lookup(batch: &mut Batch, addr: IpAddr) {
    let fam = family_of(addr);
    let len = if addr.is_ipv4() { 32 } else { 128 };
    batch.push(RTM_GETROUTE, 0, |e| {
        e.header(&rtmsg(fam, len, 0, 0, 0, 0));
        e.attr_addr(RTA_DST, addr);
    });
}

/// The header of a dump of `table` in one family, filtered by protocol
/// (0 = any) in the kernel.
pub(crate) fn dump_header(afi: Afi, table: u32, protocol: u8) -> [u8; RTMSG_LEN] {
    rtmsg(family(afi), 0, table, protocol, 0, 0)
}

/// Decodes an RTM_NEWROUTE; `None` for families other than IPv4 and IPv6.
pub(crate) fn parse(msg: &Msg) -> Option<RouteInfo> {
    let p = msg.payload;
    if msg.ty != RTM_NEWROUTE || p.len() < RTMSG_LEN {
        return None;
    }
    let fam = p[0];
    if fam != AF_INET && fam != AF_INET6 {
        return None;
    }
    let mut r = RouteInfo {
        prefix: Prefix::default_route(if fam == AF_INET { Afi::Ipv4 } else { Afi::Ipv6 }),
        table: u32::from(p[4]),
        protocol: p[5],
        scope: p[6],
        kind: p[7],
        gateways: Vec::new(),
        nh_id: None,
        oif: None,
        cloned: wire::u32_at(p, 8) & RTM_F_CLONED != 0,
    };
    let dst_len = p[1];
    for (ty, v) in wire::attrs(&p[RTMSG_LEN..]) {
        match ty {
            RTA_DST => r.prefix = Prefix::new(wire::as_addr(fam, v)?, dst_len),
            RTA_TABLE => r.table = wire::as_u32(v)?,
            RTA_OIF => r.oif = wire::as_u32(v),
            RTA_GATEWAY => r.gateways.extend(wire::as_addr(fam, v)),
            RTA_VIA => r.gateways.extend(wire::as_via(v)),
            RTA_NH_ID => r.nh_id = wire::as_u32(v),
            RTA_MULTIPATH => multipath(fam, v, &mut r.gateways),
            _ => {}
        }
    }
    Some(r)
}

fn multipath(fam: u8, mut v: &[u8], out: &mut Vec<IpAddr>) {
    while v.len() >= RTNH_LEN {
        let len = usize::from(wire::u16_at(v, 0));
        if len < RTNH_LEN || len > v.len() {
            return;
        }
        for (ty, a) in wire::attrs(&v[RTNH_LEN..len]) {
            match ty {
                RTA_GATEWAY => out.extend(wire::as_addr(fam, a)),
                RTA_VIA => out.extend(wire::as_via(a)),
                _ => {}
            }
        }
        v = &v[wire::align4(len).min(v.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(batch: Batch) -> Vec<u8> {
        batch.bytes().to_vec()
    }

    #[test]
    fn multipath_upsert_decodes_back_to_its_gateways() {
        let gws: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()];
        let prefix: Prefix = "203.0.113.0/24".parse().unwrap();
        let mut b = Batch::default();
        push_upsert(&mut b, 1000, prefix, RTN_UNICAST, Via::Multipath(&gws));
        let bytes = reply(b);
        let mut msgs = wire::messages(&bytes);
        let msg = msgs.next().unwrap().unwrap();
        assert_eq!(msg.flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
        assert_eq!(
            parse(&msg).unwrap(),
            RouteInfo {
                prefix,
                table: 1000,
                protocol: RTPROT_STEER,
                scope: RT_SCOPE_UNIVERSE,
                kind: RTN_UNICAST,
                gateways: gws,
                nh_id: None,
                oif: None,
                cloned: false,
            }
        );
    }

    #[test]
    fn ipv4_route_via_ipv6_gateway_uses_rta_via() {
        let gw: IpAddr = "2001:db8::1".parse().unwrap();
        let mut b = Batch::default();
        push_upsert(
            &mut b,
            7,
            "10.0.0.0/8".parse().unwrap(),
            RTN_UNICAST,
            Via::Gateway(gw),
        );
        let bytes = reply(b);
        let msg = wire::messages(&bytes).next().unwrap().unwrap();
        let attrs: Vec<u16> = wire::attrs(&msg.payload[RTMSG_LEN..])
            .map(|(t, _)| t)
            .collect();
        assert_eq!(attrs, vec![RTA_TABLE, RTA_DST, RTA_VIA]);
        assert_eq!(parse(&msg).unwrap().gateways, vec![gw]);
    }

    #[test]
    fn remove_matches_only_our_protocol_at_any_scope() {
        let mut b = Batch::default();
        push_remove(&mut b, 300, "2001:db8::/32".parse().unwrap());
        let bytes = reply(b);
        let msg = wire::messages(&bytes).next().unwrap().unwrap();
        assert_eq!(msg.ty, RTM_DELROUTE);
        assert_eq!(
            &msg.payload[..8],
            &[
                AF_INET6,
                32,
                0,
                0,
                RT_TABLE_COMPAT as u8,
                RTPROT_STEER,
                RT_SCOPE_NOWHERE,
                0
            ]
        );
    }
}
