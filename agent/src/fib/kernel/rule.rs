//! Policy rules (RTM_*RULE, struct fib_rule_hdr in linux/fib_rules.h) that
//! send traffic arriving from VM interfaces to Steer's table, never the
//! host's own traffic. Per VM interface and family, at priority P:
//!
//! - P:   `iif VM lookup main suppress_prefixlength 0`: connected and other
//!   main-table routes more specific than a default beat learned routes;
//! - P+1: `iif VM lookup TABLE`: the learned routes;
//! - P+2: `iif VM unreachable`: no learned route must not fall through to
//!   the host's own default route.
//!
//! Every rule carries FRA_PROTOCOL = RTPROT_STEER so a restart finds it.

use super::RTPROT_STEER;
use super::abi::*;
use super::batch::Batch;
use super::wire::{self, Msg};

/// One rule as Steer writes it and compares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RuleSpec {
    pub family: u8,
    pub priority: u32,
    pub iif: String,
    pub action: u8,
    pub table: u32,
    pub suppress_prefixlen: Option<u32>,
}

/// The three rules per interface and family, for `table` at `priority`.
pub(crate) fn desired(interfaces: &[String], table: u32, priority: u32) -> Vec<RuleSpec> {
    let mut out = Vec::with_capacity(interfaces.len() * 6);
    for iif in interfaces {
        for family in [AF_INET, AF_INET6] {
            let rule = |offset: u32, action: u8, table: u32, suppress| RuleSpec {
                family,
                priority: priority + offset,
                iif: iif.clone(),
                action,
                table,
                suppress_prefixlen: suppress,
            };
            out.push(rule(0, FR_ACT_TO_TBL, RT_TABLE_MAIN, Some(0)));
            out.push(rule(1, FR_ACT_TO_TBL, table, None));
            out.push(rule(2, FR_ACT_UNREACHABLE, RT_TABLE_UNSPEC, None));
        }
    }
    out
}

fn header(r: &RuleSpec) -> [u8; FIB_RULE_HDR_LEN] {
    let table8 = if r.table < 256 {
        r.table as u8
    } else {
        RT_TABLE_UNSPEC as u8
    };
    [r.family, 0, 0, 0, table8, 0, 0, r.action, 0, 0, 0, 0]
}

fn push(batch: &mut Batch, ty: u16, flags: u16, r: &RuleSpec) {
    batch.push(ty, flags, |e| {
        e.header(&header(r));
        e.attr_u32(FRA_PRIORITY, r.priority);
        e.attr_str(FRA_IIFNAME, &r.iif);
        if r.table != RT_TABLE_UNSPEC {
            e.attr_u32(FRA_TABLE, r.table);
        }
        if let Some(len) = r.suppress_prefixlen {
            e.attr_u32(FRA_SUPPRESS_PREFIXLEN, len);
        }
        e.attr_u8(FRA_PROTOCOL, RTPROT_STEER);
    });
}

pub(crate) fn push_add(batch: &mut Batch, r: &RuleSpec) {
    push(batch, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, r);
}

pub(crate) fn push_delete(batch: &mut Batch, r: &RuleSpec) {
    push(batch, RTM_DELRULE, 0, r);
}

pub(crate) fn dump_header(family: u8) -> [u8; FIB_RULE_HDR_LEN] {
    [family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// Decodes a rule of ours from a dump; `None` for anyone else's.
pub(crate) fn parse_ours(msg: &Msg) -> Option<RuleSpec> {
    let p = msg.payload;
    if msg.ty != RTM_NEWRULE || p.len() < FIB_RULE_HDR_LEN {
        return None;
    }
    let mut r = RuleSpec {
        family: p[0],
        priority: 0,
        iif: String::new(),
        action: p[7],
        table: u32::from(p[4]),
        suppress_prefixlen: None,
    };
    let mut protocol = 0;
    for (ty, v) in wire::attrs(&p[FIB_RULE_HDR_LEN..]) {
        match ty {
            FRA_PRIORITY => r.priority = wire::as_u32(v)?,
            FRA_IIFNAME => {
                let name = v.split(|&b| b == 0).next().unwrap_or(&[]);
                r.iif = String::from_utf8_lossy(name).into_owned();
            }
            FRA_TABLE => r.table = wire::as_u32(v)?,
            FRA_SUPPRESS_PREFIXLEN => {
                r.suppress_prefixlen = wire::as_u32(v).filter(|&l| l != u32::MAX)
            }
            FRA_PROTOCOL => protocol = *v.first()?,
            _ => {}
        }
    }
    (protocol == RTPROT_STEER).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_rules_per_interface_and_family_in_priority_order() {
        let rules = desired(&["vm0".to_string()], 1000, 100);
        let v4: Vec<_> = rules
            .iter()
            .filter(|r| r.family == AF_INET)
            .map(|r| (r.priority, r.action, r.table, r.suppress_prefixlen))
            .collect();
        assert_eq!(
            v4,
            vec![
                (100, FR_ACT_TO_TBL, RT_TABLE_MAIN, Some(0)),
                (101, FR_ACT_TO_TBL, 1000, None),
                (102, FR_ACT_UNREACHABLE, RT_TABLE_UNSPEC, None),
            ]
        );
        assert_eq!(rules.len(), 6);
    }

    #[test]
    fn encoded_rule_parses_back_as_ours() {
        let r = desired(&["vm7".to_string()], 4242, 9).remove(1);
        let mut b = Batch::default();
        push_add(&mut b, &r);
        let bytes = b.bytes().to_vec();
        let msg = wire::messages(&bytes).next().unwrap().unwrap();
        assert_eq!(parse_ours(&msg), Some(r));
    }
}
