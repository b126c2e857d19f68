//! What becomes of XDP redirects. An XDP redirect into a device that does
//! not take XDP frames (a veth whose peer has no NAPI: neither GRO nor an
//! XDP program) fails after the program returned, so the program cannot
//! count it. The kernel drops such a frame and counts it in the ingress
//! device's `rx_dropped` (`/proc/net/dev`); [`refused`] reads that for the
//! interfaces XDP runs on. Before that happens, [`accepts_redirects`] asks
//! the kernel (the `netdev` generic-netlink family, Linux ≥ 6.3) whether a
//! device advertises `ndo_xdp_xmit`, so the agent can warn at attach time.
//!
//! The return path's redirects: `bpf_redirect_peer` hands a packet to the
//! peer of a veth only when that peer is in another network namespace
//! (else the kernel drops it); [`peer_elsewhere`] asks rtnetlink.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::hooks::driver;

/// The interfaces of the caller's network namespace.
pub fn interfaces() -> Vec<String> {
    // SAFETY: if_nameindex returns an array terminated by a zero entry,
    // freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut p = list;
        while (*p).if_index != 0 {
            out.push(
                std::ffi::CStr::from_ptr((*p).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            p = p.add(1);
        }
        libc::if_freenameindex(list);
        out
    }
}

/// The veths that may be XDP redirect targets: all but `ours` (VM-to-VM
/// traffic is VNet space, which the program passes).
pub fn veth_targets(ours: &[String]) -> Vec<String> {
    interfaces()
        .into_iter()
        .filter(|i| !ours.contains(i))
        .filter(|i| driver(i).is_ok_and(|d| d == "veth"))
        .collect()
}

/// `rx_dropped` of every interface, from `/proc/thread-self/net/dev` (the
/// calling thread's network namespace, whatever /sys shows).
fn rx_dropped() -> Vec<(String, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let dropped = rest.split_whitespace().nth(3)?.parse().ok()?;
            Some((name.trim().to_string(), dropped))
        })
        .collect()
}

/// Frames the kernel dropped on receive on the interfaces in `ours` (XDP's
/// failed redirects among them).
pub fn refused(ours: &[String]) -> u64 {
    rx_dropped()
        .into_iter()
        .filter(|(name, _)| ours.contains(name))
        .map(|(_, n)| n)
        .sum()
}

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_XDP_ACT_NDO_XMIT: u64 = 4;
const NLMSG_ERROR: u16 = 2;

const RTM_GETLINK: u16 = 18;
const IFLA_LINK_NETNSID: u16 = 37;

fn netlink_socket(protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// One request of type `ty` with the family header `header` and at most one
/// attribute, one reply: the reply's attributes (after its family header,
/// of the same length).
fn request(
    fd: &OwnedFd,
    ty: u16,
    header: &[u8],
    attr: Option<(u16, &[u8])>,
) -> io::Result<Vec<u8>> {
    let attr_len = attr.map_or(0, |(_, p)| 4 + p.len());
    let body = 16 + header.len();
    let len = body + attr_len.next_multiple_of(4);
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(header);
    if let Some((ty, payload)) = attr {
        msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(payload);
    }
    msg.resize(len, 0);
    // SAFETY: sending a valid buffer on a valid socket (to the kernel).
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32768];
    // SAFETY: receiving into a buffer of the length passed.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    if buf.len() < 20 {
        return Err(io::Error::other("short netlink reply"));
    }
    if u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let errno = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        return Err(io::Error::from_raw_os_error(-errno));
    }
    let total = (u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize).min(buf.len());
    if total < body {
        return Err(io::Error::other("short netlink reply"));
    }
    Ok(buf[body..total].to_vec())
}

/// Whether the peer of veth `ifindex` is in another network namespace
/// (its link carries `IFLA_LINK_NETNSID`), where `bpf_redirect_peer` can
/// hand it packets.
pub fn peer_elsewhere(ifindex: u32) -> io::Result<bool> {
    let fd = netlink_socket(libc::NETLINK_ROUTE)?;
    let mut ifinfomsg = [0u8; 16];
    ifinfomsg[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    let reply = request(&fd, RTM_GETLINK, &ifinfomsg, None)?;
    Ok(find_attr(&reply, IFLA_LINK_NETNSID).is_some())
}

/// The payload of attribute `want` in a run of netlink attributes.
fn find_attr(mut attrs: &[u8], want: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if ty == want {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    None
}

/// Whether the device `ifindex` takes XDP frames redirected into it.
pub fn accepts_redirects(ifindex: u32) -> io::Result<bool> {
    let fd = netlink_socket(libc::NETLINK_GENERIC)?;
    let reply = request(
        &fd,
        GENL_ID_CTRL,
        &[CTRL_CMD_GETFAMILY, 1, 0, 0],
        Some((CTRL_ATTR_FAMILY_NAME, b"netdev\0")),
    )?;
    let family = find_attr(&reply, CTRL_ATTR_FAMILY_ID)
        .and_then(|v| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)))
        .ok_or_else(|| io::Error::other("no netdev generic netlink family"))?;
    let reply = request(
        &fd,
        family,
        &[NETDEV_CMD_DEV_GET, 1, 0, 0],
        Some((NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes())),
    )?;
    let features = find_attr(&reply, NETDEV_A_DEV_XDP_FEATURES)
        .and_then(|v| Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)))
        .ok_or_else(|| io::Error::other("the kernel reports no XDP features"))?;
    Ok(features & NETDEV_XDP_ACT_NDO_XMIT != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_gives_rx_dropped_per_interface() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes\n    \
                    lo:       0       0    0    0    0     0          0         0        0\n \
                    vmtap:    1172      14    0   10    0     0          0         0      468\n";
        assert_eq!(
            parse_net_dev(text),
            [("lo".to_string(), 0), ("vmtap".to_string(), 10)]
        );
    }

    #[test]
    fn attributes_are_found_by_type() {
        let attrs = [6, 0, 1, 0, 0x1c, 0, 0, 0, 8, 0, 3, 0, 7, 0, 0, 0];
        assert_eq!(find_attr(&attrs, 1), Some(&[0x1c, 0][..]));
        assert_eq!(find_attr(&attrs, 3), Some(&[7, 0, 0, 0][..]));
        assert_eq!(find_attr(&attrs, 9), None);
    }

    #[test]
    fn loopback_is_listed_and_the_kernel_answers_for_it() {
        assert!(interfaces().iter().any(|i| i == "lo"));
        assert!(!veth_targets(&[]).contains(&"lo".to_string()));
        assert!(accepts_redirects(1).is_ok());
        assert!(!peer_elsewhere(1).unwrap(), "loopback has no peer");
        assert!(peer_elsewhere(u32::MAX).is_err(), "no such interface");
    }
}
