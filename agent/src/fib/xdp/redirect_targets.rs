//! What becomes of XDP redirects. An XDP redirect into a device that does
//! not take XDP frames (a veth whose peer has no NAPI: neither GRO nor an
//! XDP program) fails after the program returned, so the program cannot
//! count it. The kernel drops such a frame and counts it in the ingress
//! device's `rx_dropped` (`/proc/net/dev`); [`refused`] reads that for the
//! interfaces XDP runs on. Before that happens, [`accepts_redirects`] asks
//! the kernel (the `netdev` generic-netlink family, Linux ≥ 6.3) whether a
//! device advertises `ndo_xdp_xmit`, so the agent can warn at attach time.

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

fn genl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_GENERIC,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// One request, one reply: the reply's attributes (after the genl header).
fn genl_request(fd: &OwnedFd, family: u16, cmd: u8, attr: (u16, &[u8])) -> io::Result<Vec<u8>> {
    let (ty, payload) = attr;
    let attr_len = 4 + payload.len();
    let len = 16 + 4 + attr_len.next_multiple_of(4);
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&family.to_ne_bytes());
    msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[cmd, 1, 0, 0]);
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(payload);
    msg.resize(len, 0);
    // SAFETY: sending a valid buffer on a valid socket (to the kernel).
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 8192];
    // SAFETY: receiving into a buffer of the length passed.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    if buf.len() < 20 {
        return Err(io::Error::other("short generic netlink reply"));
    }
    if u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let errno = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        return Err(io::Error::from_raw_os_error(-errno));
    }
    let total = (u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize).min(buf.len());
    Ok(buf[20..total].to_vec())
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
    let fd = genl_socket()?;
    let reply = genl_request(
        &fd,
        GENL_ID_CTRL,
        CTRL_CMD_GETFAMILY,
        (CTRL_ATTR_FAMILY_NAME, b"netdev\0"),
    )?;
    let family = find_attr(&reply, CTRL_ATTR_FAMILY_ID)
        .and_then(|v| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)))
        .ok_or_else(|| io::Error::other("no netdev generic netlink family"))?;
    let reply = genl_request(
        &fd,
        family,
        NETDEV_CMD_DEV_GET,
        (NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes()),
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
    }
}
