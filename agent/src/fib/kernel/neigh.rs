//! Managed neighbour entries (RTM_NEWNEIGH with NTF_EXT_MANAGED, struct
//! ndmsg in linux/neighbour.h, kernel >= 5.16): the kernel resolves such an
//! entry by itself and keeps it fresh without traffic, so the XDP path's
//! bpf_fib_lookup finds the next hop's MAC instead of falling back.

use std::net::IpAddr;

use super::abi::*;
use super::batch::Batch;
use super::wire::{self, Msg, family_of};

/// A neighbour entry as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeighInfo {
    pub ifindex: u32,
    pub dst: IpAddr,
    pub state: u16,
    pub managed: bool,
    pub lladdr: Option<Vec<u8>>,
}

fn ndmsg(family: u8, ifindex: u32, state: u16) -> [u8; NDMSG_LEN] {
    let i = ifindex.to_ne_bytes();
    let s = state.to_ne_bytes();
    [family, 0, 0, 0, i[0], i[1], i[2], i[3], s[0], s[1], 0, 0]
}

/// Creates or converts the entry for `dst` on `ifindex` into a managed one.
pub(crate) fn push_managed(batch: &mut Batch, ifindex: u32, dst: IpAddr) {
    batch.push(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, |e| {
        e.header(&ndmsg(family_of(dst), ifindex, NUD_NONE));
        e.attr_addr(NDA_DST, dst);
        e.attr_u32(NDA_FLAGS_EXT, NTF_EXT_MANAGED);
    });
}

/// Asks for the entry of `dst` on `ifindex`.
pub(crate) fn push_get(batch: &mut Batch, ifindex: u32, dst: IpAddr) {
    batch.push(RTM_GETNEIGH, 0, |e| {
        e.header(&ndmsg(family_of(dst), ifindex, 0));
        e.attr_addr(NDA_DST, dst);
    });
}

/// Decodes an RTM_NEWNEIGH.
pub(crate) fn parse(msg: &Msg) -> Option<NeighInfo> {
    let p = msg.payload;
    if msg.ty != RTM_NEWNEIGH || p.len() < NDMSG_LEN {
        return None;
    }
    let family = p[0];
    let mut n = NeighInfo {
        ifindex: wire::u32_at(p, 4),
        dst: IpAddr::from([0u8; 4]),
        state: wire::u16_at(p, 8),
        managed: false,
        lladdr: None,
    };
    let mut dst = None;
    for (ty, v) in wire::attrs(&p[NDMSG_LEN..]) {
        match ty {
            NDA_DST => dst = wire::as_addr(family, v),
            NDA_LLADDR => n.lladdr = Some(v.to_vec()),
            NDA_FLAGS_EXT => n.managed = wire::as_u32(v)? & NTF_EXT_MANAGED != 0,
            _ => {}
        }
    }
    n.dst = dst?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_request_decodes_as_a_managed_entry() {
        let mut b = Batch::default();
        push_managed(&mut b, 3, "192.0.2.9".parse().unwrap());
        let bytes = b.bytes().to_vec();
        let msg = wire::messages(&bytes).next().unwrap().unwrap();
        assert_eq!(
            parse(&msg),
            Some(NeighInfo {
                ifindex: 3,
                dst: "192.0.2.9".parse().unwrap(),
                state: NUD_NONE,
                managed: true,
                lladdr: None,
            })
        );
    }
}
