//! One pinned XDP bpf_link per VM-facing interface, at
//! `<pin_dir>/links/<native|generic>/<ifname>`. A link that is already
//! pinned and still on the same interface gets the new program atomically
//! (`BPF_LINK_UPDATE`: no packet sees "no program"); a stale one (interface
//! recreated, or the mode changed) is detached and replaced.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::sys;
use super::{XdpError, XdpMode};

impl XdpMode {
    /// The `XDP_FLAGS_*_MODE` of this mode.
    pub(super) fn flags(self) -> u32 {
        match self {
            XdpMode::Native => sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => sys::XDP_FLAGS_SKB_MODE,
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
    /// The link's fd (the pin keeps it attached without us).
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

/// Puts `prog` on `iface` in `mode`: replaces the program of the pinned link
/// if there is a live one, else attaches and pins a new link.
pub fn attach(
    prog: BorrowedFd<'_>,
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
            match sys::link_update(fd.as_fd(), prog) {
                Ok(()) => return Ok(Link { fd, mode }),
                Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => {}
                Err(cause) => {
                    return Err(XdpError::Link {
                        path,
                        op: "BPF_LINK_UPDATE",
                        cause,
                    });
                }
            }
        }
        detach_pinned(&path)?;
    }
    let fd = sys::xdp_link_create(prog, index, mode.flags()).map_err(|cause| XdpError::Attach {
        interface: iface.to_string(),
        hook: match mode {
            XdpMode::Native => "xdp (native)",
            XdpMode::Generic => "xdp (generic)",
        },
        cause,
    })?;
    let dir = path.parent().unwrap_or(pin_dir);
    fs::create_dir_all(dir).map_err(|cause| XdpError::Io {
        path: dir.to_path_buf(),
        cause,
    })?;
    sys::obj_pin(fd.as_fd(), &path).map_err(|cause| XdpError::Link {
        path: path.clone(),
        op: "BPF_OBJ_PIN",
        cause,
    })?;
    Ok(Link { fd, mode })
}

/// The pinned link at `path` if it is an XDP link still on `ifindex`.
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

/// Removes the (emptied) link directories of both hooks.
pub fn remove_dirs(pin_dir: &Path) -> Result<(), XdpError> {
    for dir in [
        pin_dir.join(LINKS).join(XdpMode::Native.name()),
        pin_dir.join(LINKS).join(XdpMode::Generic.name()),
        pin_dir.join(LINKS).join("tcx"),
        pin_dir.join(LINKS).join("clsact"),
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
