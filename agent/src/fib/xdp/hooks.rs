//! Which eBPF hooks run on a VM interface: the configured dataplane mode,
//! the interface's kind (read from the driver, `ETHTOOL_GDRVINFO`, in the
//! caller's network namespace), and the rule `auto` applies per kind. Pure
//! except for [`InterfaceKind::of`].
//!
//! The `auto` rule comes from `cargo xtask bench forward` (README,
//! "Benchmarks"): on a veth, native XDP turns TSO/GSO off at the peer (the
//! VM's side), so TCP fell to a quarter of the kernel's, and it cannot
//! finish checksums left to offload, so it hands nearly everything to TC
//! after paying for itself; on a tap fed with virtio-net headers (guests
//! that leave checksums to offload and send GSO superpackets) it was no
//! better than TC, and cannot be: it hands every such frame to TC. TC alone was at the kernel's TCP throughput, within the
//! machine's noise, and cheaper per small packet on the veth. Kinds not
//! measured get TC alone too: it keeps every offload and needs nothing of
//! the driver. Which VM interfaces the return path forwards to is the
//! same kind of rule ([`DataplaneMode::returns_to`]).

use std::ffi::CString;
use std::fmt;
use std::io;

/// `xdp = native|generic` of old configs, and the attach mode of the XDP
/// hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (veth, tap, most NICs): before an skb exists.
    Native,
    /// In the generic network stack (`XDP_FLAGS_SKB_MODE`): works anywhere.
    Generic,
}

impl XdpMode {
    /// `native` or `generic`.
    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the fast path is set up on the VM interfaces (the `dataplane` key,
/// less `kernel`, which runs no program at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataplaneMode {
    /// Per interface kind, what measured fastest ([`DataplaneMode::hooks`]).
    Auto,
    /// The TC hook alone.
    Tc,
    /// XDP in this mode, with TC behind it for what XDP passes.
    Xdp(XdpMode),
}

impl fmt::Display for DataplaneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataplaneMode::Auto => f.write_str("auto"),
            DataplaneMode::Tc => f.write_str("tc"),
            DataplaneMode::Xdp(XdpMode::Native) => f.write_str("xdp"),
            DataplaneMode::Xdp(XdpMode::Generic) => f.write_str("xdp (generic)"),
        }
    }
}

/// What an interface is, as far as the choice of hooks goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceKind {
    /// A veth (containers, network namespaces).
    Veth,
    /// A tap (`tun` driver in TAP mode): a VM's NIC on the host.
    Tap,
    /// An Ethernet device of another driver (not measured).
    Other,
    /// Not Ethernet (an L3 `tun`, ...): the programs parse Ethernet, so no
    /// hook is attached and the kernel forwards.
    #[serde(rename = "not-ethernet")]
    NotEthernet,
}

/// The hooks that run on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Hooks {
    /// XDP, in this mode.
    pub xdp: Option<XdpMode>,
    /// TC ingress.
    pub tc: bool,
}

impl Hooks {
    /// No hook: the kernel forwards.
    pub const NONE: Hooks = Hooks {
        xdp: None,
        tc: false,
    };
    /// TC alone.
    pub const TC: Hooks = Hooks {
        xdp: None,
        tc: true,
    };
}

impl DataplaneMode {
    /// Whether the return path forwards traffic to a VM interface of `kind`
    /// (`peer`: a veth whose VM end is in another network namespace, which
    /// `bpf_redirect_peer` can hand packets to directly). `auto` does only
    /// that: into a veth's peer it delivered 1.4-2x the kernel's rate of
    /// 64-byte datagrams at 0.4-0.7x its CPU per packet (TCP the same within
    /// the noise), while out of a tap it saved nothing measurable (the
    /// VMM's copy into the guest is the limit) — see the README's
    /// "Benchmarks". `tc` and `xdp` forward to every Ethernet VM interface.
    pub fn returns_to(self, kind: InterfaceKind, peer: bool) -> bool {
        match (self, kind) {
            (_, InterfaceKind::NotEthernet) => false,
            (DataplaneMode::Auto, kind) => kind == InterfaceKind::Veth && peer,
            (DataplaneMode::Tc | DataplaneMode::Xdp(_), _) => true,
        }
    }

    /// The hooks for an interface of `kind`.
    pub fn hooks(self, kind: InterfaceKind) -> Hooks {
        match (self, kind) {
            (_, InterfaceKind::NotEthernet) => Hooks::NONE,
            (DataplaneMode::Tc | DataplaneMode::Auto, _) => Hooks::TC,
            (DataplaneMode::Xdp(mode), _) => Hooks {
                xdp: Some(mode),
                tc: true,
            },
        }
    }
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const SIOCGIFHWADDR: libc::c_ulong = 0x8927;
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
const ARPHRD_ETHER: u16 = 1;

#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: IfReqData,
}

#[repr(C)]
union IfReqData {
    ptr: *mut libc::c_void,
    hwaddr: libc::sockaddr,
    pad: [u8; 24],
}

/// An `AF_INET` datagram socket for interface ioctls in the caller's
/// network namespace.
fn ioctl_socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// The NUL-padded name of `iface` for `struct ifreq`.
fn ifreq(iface: &str) -> io::Result<IfReqName> {
    let c = CString::new(iface).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let bytes = c.as_bytes_with_nul();
    if bytes.len() > 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name `{iface}` is longer than 15 bytes"),
        ));
    }
    let mut name = [0u8; 16];
    name[..bytes.len()].copy_from_slice(bytes);
    Ok(IfReqName(name))
}

/// A NUL-padded interface name for `struct ifreq`.
struct IfReqName([u8; 16]);

/// `SIOCETHTOOL` on `iface` with the command struct at `cmd`.
///
/// # Safety
/// `cmd` must point to a valid, writable ethtool command struct whose
/// layout matches its `cmd` field.
unsafe fn ethtool(iface: &str, cmd: *mut libc::c_void) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = IfReq {
        name: ifreq(iface)?.0,
        data: IfReqData { ptr: cmd },
    };
    // SAFETY: `req` is a valid ifreq whose data points at the caller's struct.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel driver's name of `iface` (`veth`, `tun`, `virtio_net`, ...).
pub fn driver(iface: &str) -> io::Result<String> {
    // SAFETY: DrvInfo is plain data.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: `info` is a valid ethtool_drvinfo with its command set.
    unsafe { ethtool(iface, (&mut info as *mut DrvInfo).cast())? };
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

fn is_ethernet(iface: &str) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = IfReq {
        name: ifreq(iface)?.0,
        data: IfReqData { pad: [0; 24] },
    };
    // SAFETY: a valid ifreq for SIOCGIFHWADDR.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the sockaddr member.
    Ok(unsafe { req.data.hwaddr.sa_family } == ARPHRD_ETHER)
}

impl InterfaceKind {
    /// The kind of `iface` in the caller's network namespace.
    pub fn of(iface: &str) -> io::Result<InterfaceKind> {
        if !is_ethernet(iface)? {
            return Ok(InterfaceKind::NotEthernet);
        }
        Ok(InterfaceKind::from_driver(&driver(iface)?))
    }

    /// The kind of an Ethernet interface driven by `driver`.
    pub fn from_driver(driver: &str) -> InterfaceKind {
        match driver {
            "veth" => InterfaceKind::Veth,
            "tun" => InterfaceKind::Tap,
            _ => InterfaceKind::Other,
        }
    }

    /// `veth`, `tap`, `other` or `not-ethernet`.
    pub fn name(self) -> &'static str {
        match self {
            InterfaceKind::Veth => "veth",
            InterfaceKind::Tap => "tap",
            InterfaceKind::Other => "other",
            InterfaceKind::NotEthernet => "not-ethernet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_tc_run_tc_alone_and_xdp_mode_puts_tc_behind_xdp() {
        for kind in [
            InterfaceKind::Veth,
            InterfaceKind::Tap,
            InterfaceKind::Other,
        ] {
            assert_eq!(DataplaneMode::Auto.hooks(kind), Hooks::TC, "{kind:?}");
            assert_eq!(DataplaneMode::Tc.hooks(kind), Hooks::TC, "{kind:?}");
            assert_eq!(
                DataplaneMode::Xdp(XdpMode::Native).hooks(kind),
                Hooks {
                    xdp: Some(XdpMode::Native),
                    tc: true
                },
                "{kind:?}"
            );
        }
    }

    #[test]
    fn auto_returns_into_a_veths_peer_only_and_tc_and_xdp_to_every_ethernet_interface() {
        let kinds = [
            InterfaceKind::Veth,
            InterfaceKind::Tap,
            InterfaceKind::Other,
            InterfaceKind::NotEthernet,
        ];
        for kind in kinds {
            for peer in [false, true] {
                let want = kind == InterfaceKind::Veth && peer;
                assert_eq!(
                    DataplaneMode::Auto.returns_to(kind, peer),
                    want,
                    "auto {kind:?} {peer}"
                );
                for mode in [DataplaneMode::Tc, DataplaneMode::Xdp(XdpMode::Native)] {
                    assert_eq!(
                        mode.returns_to(kind, peer),
                        kind != InterfaceKind::NotEthernet,
                        "{mode} {kind:?} {peer}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_interface_without_ethernet_gets_no_hook_in_any_mode() {
        for mode in [
            DataplaneMode::Auto,
            DataplaneMode::Tc,
            DataplaneMode::Xdp(XdpMode::Native),
            DataplaneMode::Xdp(XdpMode::Generic),
        ] {
            assert_eq!(mode.hooks(InterfaceKind::NotEthernet), Hooks::NONE);
        }
    }

    #[test]
    fn drivers_map_onto_kinds() {
        assert_eq!(InterfaceKind::from_driver("veth"), InterfaceKind::Veth);
        assert_eq!(InterfaceKind::from_driver("tun"), InterfaceKind::Tap);
        assert_eq!(
            InterfaceKind::from_driver("virtio_net"),
            InterfaceKind::Other
        );
    }

    #[test]
    fn loopback_is_not_ethernet_and_a_missing_interface_is_an_error() {
        assert_eq!(InterfaceKind::of("lo").unwrap(), InterfaceKind::NotEthernet);
        assert!(InterfaceKind::of("steer-nope0").is_err());
        assert!(InterfaceKind::of("a-name-longer-than-15").is_err());
    }
}
