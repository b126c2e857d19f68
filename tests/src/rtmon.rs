//! A route watcher: a netlink socket in a namespace subscribed to IPv4
//! route and nexthop changes, each timestamped ([`crate::stream::now_ns`])
//! the moment it is read. It tells when the kernel's table really changed,
//! whatever the program that changed it says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow, bail};

use crate::netns::Netns;
use crate::sockopt::{set, set_int};
use crate::stream::now_ns;

const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_NEXTHOP: u32 = 32;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEXTHOP: u16 = 104;
const RTM_DELNEXTHOP: u16 = 105;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A route was added or replaced (`true`) or deleted, in `table`, for
    /// a prefix of length `dst_len`.
    Route {
        /// Added or replaced.
        new: bool,
        /// The table.
        table: u8,
        /// The prefix length.
        dst_len: u8,
    },
    /// A nexthop object or group was added, replaced (`true`) or deleted.
    Nexthop {
        /// Added or replaced.
        new: bool,
    },
}

/// One change and when it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// [`now_ns`] when read.
    pub at_ns: u64,
    /// What.
    pub change: Change,
}

/// A running watcher.
pub struct RouteWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Result<Vec<Event>>>>,
}

impl RouteWatch {
    /// Starts watching in `ns`; returns once subscribed.
    pub fn start(ns: &Netns) -> Result<RouteWatch> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = ns.worker(subscribe, move |fd| Ok(watch(&fd, &flag)))?;
        Ok(RouteWatch { stop, thread })
    }

    /// Stops and returns every change seen, in order.
    pub fn finish(self) -> Result<Vec<Event>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .map_err(|_| anyhow!("route watcher panicked"))??
    }
}

fn subscribe() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2), checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        bail!("netlink socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero sockaddr_nl is valid; then bound with its size.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    let rc = unsafe {
        libc::bind(
            raw,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!("netlink bind: {}", std::io::Error::last_os_error());
    }
    for group in [RTNLGRP_IPV4_ROUTE, RTNLGRP_NEXTHOP] {
        set(raw, libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, &group)
            .with_context(|| format!("netlink group {group}"))?;
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    set(raw, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv).context("SO_RCVTIMEO")?;
    set_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20).context("SO_RCVBUFFORCE")?;
    Ok(fd)
}

fn watch(fd: &std::os::fd::OwnedFd, stop: &AtomicBool) -> Vec<Event> {
    use std::os::fd::AsRawFd;
    let mut events = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: reads into our buffer; the receive timeout bounds it.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let at_ns = now_ns();
        if n <= 0 {
            continue;
        }
        events.extend(parse(&buf[..n as usize], at_ns));
    }
    events
}

/// The route and nexthop changes in one netlink datagram.
fn parse(mut b: &[u8], at_ns: u64) -> Vec<Event> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        let body = &b[16..len];
        let change = match kind {
            RTM_NEWROUTE | RTM_DELROUTE if body.len() >= 12 => Some(Change::Route {
                new: kind == RTM_NEWROUTE,
                table: body[4],
                dst_len: body[1],
            }),
            RTM_NEWNEXTHOP | RTM_DELNEXTHOP => Some(Change::Nexthop {
                new: kind == RTM_NEWNEXTHOP,
            }),
            _ => None,
        };
        if let Some(change) = change {
            out.push(Event { at_ns, change });
        }
        b = &b[(len + 3) & !3..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_and_nexthop_messages_are_told_apart() {
        let mut b = Vec::new();
        for (kind, body) in [
            (RTM_NEWROUTE, vec![2u8, 0, 0, 0, 200, 211, 0, 1, 0, 0, 0, 0]),
            (RTM_DELNEXTHOP, vec![2u8, 0, 0, 0, 0, 0, 0, 0]),
        ] {
            let len = 16 + body.len() as u32;
            b.extend_from_slice(&len.to_ne_bytes());
            b.extend_from_slice(&kind.to_ne_bytes());
            b.extend_from_slice(&[0; 10]);
            b.extend_from_slice(&body);
        }
        let e = parse(&b, 7);
        assert_eq!(
            e.iter().map(|e| e.change).collect::<Vec<_>>(),
            vec![
                Change::Route {
                    new: true,
                    table: 200,
                    dst_len: 0
                },
                Change::Nexthop { new: false }
            ]
        );
        assert_eq!(e[0].at_ns, 7);
    }
}
