//! One pinned XDP bpf_link per VM-facing interface, at
//! `<pin_dir>/links/<native|generic>/<ifname>`. A link that is already
//! pinned and still on the same interface gets the new program atomically
//! (aya's `Xdp::attach_to_link`, a `BPF_LINK_UPDATE`: no packet sees "no
//! program"); a stale one (interface recreated, or the mode changed) is
//! detached and replaced by a new link (aya's `attach_to_if_index`, pinned
//! with `FdLink::pin`).
//!
//! Two things stay in [`super::sys`] because aya 0.14 has no API for them:
//! which interface a link is on (`LinkInfo` leaves out the XDP part of
//! `bpf_link_info`, and `FdLink` lends no fd to read it with), and
//! `BPF_LINK_DETACH`, which takes a link off its interface while the pin
//! or another process still holds it (aya only closes its own fd).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::xdp::XdpLink;
use aya::programs::{ProgramError, Xdp};

use super::sys;
use super::{XdpError, XdpMode};

impl XdpMode {
    fn aya(self) -> aya::programs::XdpMode {
        match self {
            XdpMode::Native => aya::programs::XdpMode::Driver,
            XdpMode::Generic => aya::programs::XdpMode::Skb,
        }
    }

    fn other(self) -> XdpMode {
        match self {
            XdpMode::Native => XdpMode::Generic,
            XdpMode::Generic => XdpMode::Native,
        }
    }
}

/// An interface the program is attached to, through a pinned link.
#[derive(Debug)]
pub struct Link {
    /// The link's fd (the pin keeps it attached without us), opened from
    /// the pin so that its info can be read.
    pub fd: OwnedFd,
    /// The mode it was attached in.
    pub mode: XdpMode,
}

/// The links directory under the pin dir.
pub const LINKS: &str = "links";

/// Where the link of `iface` in `mode` is pinned.
pub fn link_path(pin_dir: &Path, mode: XdpMode, iface: &str) -> PathBuf {
    pin_dir.join(LINKS).join(mode.name()).join(iface)
}

/// The ifindex of `iface` in this network namespace.
pub fn ifindex(iface: &str) -> Result<u32, XdpError> {
    let c = CString::new(iface).map_err(|_| XdpError::NoSuchInterface(iface.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(XdpError::NoSuchInterface(iface.to_string())),
        i => Ok(i),
    }
}

/// The OS error behind an aya error (so the message keeps the errno), or
/// the aya error's own text.
pub(super) fn os_error(e: impl std::error::Error + 'static) -> io::Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return match io.raw_os_error() {
                Some(errno) => io::Error::from_raw_os_error(errno),
                None => io::Error::new(io.kind(), io.to_string()),
            };
        }
        cause = c.source();
    }
    io::Error::other(e.to_string())
}

/// Whether an aya program error is a failed system call with one of `errnos`.
pub(super) fn is_errno(e: &ProgramError, errnos: &[i32]) -> bool {
    let io = match e {
        ProgramError::SyscallError(s) => &s.io_error,
        _ => return false,
    };
    io.raw_os_error().is_some_and(|n| errnos.contains(&n))
}

/// Maps an aya error of `op` on the link at `path` to [`XdpError::Link`].
pub(super) fn link_err<E: std::error::Error + 'static>(
    path: &Path,
    op: &'static str,
) -> impl FnOnce(E) -> XdpError {
    let path = path.to_path_buf();
    move |e| XdpError::Link {
        path,
        op,
        cause: os_error(e),
    }
}

/// Puts `prog` on `iface` in `mode`: replaces the program of the pinned link
/// if there is a live one, else attaches and pins a new link.
pub fn attach(
    prog: &mut Xdp,
    pin_dir: &Path,
    iface: &str,
    mode: XdpMode,
) -> Result<Link, XdpError> {
    let index = ifindex(iface)?;
    let other = link_path(pin_dir, mode.other(), iface);
    if other.exists() {
        detach_pinned(&other)?;
    }
    let path = link_path(pin_dir, mode, iface);
    if path.exists() {
        if let Some(fd) = live_link(&path, index) {
            let link = PinnedLink::from_pin(&path)
                .map(FdLink::from)
                .and_then(XdpLink::try_from)
                .map_err(link_err(&path, "BPF_OBJ_GET"))?;
            match prog.attach_to_link(link) {
                Ok(id) => {
                    // Dropping aya's handle only closes its fd: the pin
                    // keeps the link, and `fd` is ours to read it with.
                    drop(prog.take_link(id)?);
                    return Ok(Link { fd, mode });
                }
                Err(e) if is_errno(&e, &[libc::ENOLINK]) => {}
                Err(e) => return Err(link_err(&path, "BPF_LINK_UPDATE")(e)),
            }
        }
        detach_pinned(&path)?;
    }
    let hook = match mode {
        XdpMode::Native => "xdp (native)",
        XdpMode::Generic => "xdp (generic)",
    };
    let attach_err = |cause| XdpError::Attach {
        interface: iface.to_string(),
        hook,
        cause,
    };
    let id = prog
        .attach_to_if_index(index, mode.aya())
        .map_err(|e| attach_err(os_error(e)))?;
    // aya falls back to a netlink attach when the kernel refuses a bpf_link
    // with EINVAL. The kernels we support (>= 5.16) all have XDP links, so
    // that happens only when the driver refuses XDP, and netlink then fails
    // the same way; an attachment made that way could not be pinned.
    let link = FdLink::try_from(prog.take_link(id)?).map_err(|e: LinkError| {
        attach_err(io::Error::other(format!(
            "the kernel attached it without a bpf_link ({e}), which cannot be pinned"
        )))
    })?;
    let dir = path.parent().unwrap_or(pin_dir);
    fs::create_dir_all(dir).map_err(|cause| XdpError::Io {
        path: dir.to_path_buf(),
        cause,
    })?;
    link.pin(&path).map_err(link_err(&path, "BPF_OBJ_PIN"))?;
    let fd = sys::obj_get(&path).map_err(|cause| XdpError::Link {
        path: path.clone(),
        op: "BPF_OBJ_GET",
        cause,
    })?;
    Ok(Link { fd, mode })
}

/// The pinned link at `path` (opened with our own fd, as aya's `FdLink`
/// lends none to read the ifindex with) if it is an XDP link still on
/// `ifindex`.
fn live_link(path: &Path, ifindex: u32) -> Option<OwnedFd> {
    let fd = sys::obj_get(path).ok()?;
    let info = sys::xdp_link_info(fd.as_fd()).ok()?;
    (info.ifindex == ifindex).then_some(fd)
}

/// Detaches the link pinned at `path` (whoever else holds it) and unpins it.
pub fn detach_pinned(path: &Path) -> Result<(), XdpError> {
    if let Ok(fd) = sys::obj_get(path) {
        match sys::link_detach(fd.as_fd()) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOLINK | libc::EINVAL)) => {}
            Err(cause) => {
                return Err(XdpError::Link {
                    path: path.to_path_buf(),
                    op: "BPF_LINK_DETACH",
                    cause,
                });
            }
        }
    }
    remove(path)
}

/// Removes a pin (or an empty marker); a missing one is fine.
pub fn remove(path: &Path) -> Result<(), XdpError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(XdpError::Io {
            path: path.to_path_buf(),
            cause: e,
        }),
        _ => Ok(()),
    }
}

/// Every pinned XDP link under `pin_dir`: (mode, interface name, path).
pub fn pinned(pin_dir: &Path) -> Vec<(XdpMode, String, PathBuf)> {
    let mut found = Vec::new();
    for mode in [XdpMode::Native, XdpMode::Generic] {
        let dir = pin_dir.join(LINKS).join(mode.name());
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str() {
                found.push((mode, name.to_string(), entry.path()));
            }
        }
    }
    found.sort();
    found
}

/// Removes the (emptied) link directories of every hook.
pub fn remove_dirs(pin_dir: &Path) -> Result<(), XdpError> {
    for dir in [
        pin_dir.join(LINKS).join(XdpMode::Native.name()),
        pin_dir.join(LINKS).join(XdpMode::Generic.name()),
        pin_dir.join(LINKS).join("tcx"),
        pin_dir.join(LINKS).join("clsact"),
        pin_dir.join(LINKS).join("uplink-tcx"),
        pin_dir.join(LINKS).join("uplink-clsact"),
        pin_dir.join(LINKS),
    ] {
        match fs::remove_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(XdpError::Io {
                    path: dir,
                    cause: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}
