//! The TC programs on an interface's ingress, through aya: the VM hook
//! (`steer_tc`) on the VM interfaces and the return path
//! (`steer_tc_uplink`) on the uplinks ([`TcProgram`]). Each is a tcx link
//! (Linux ≥ 6.6) pinned at `<pin_dir>/links/tcx/<ifname>` (the return
//! path's under `links/uplink-tcx/`), whose program a restart swaps
//! atomically (`BPF_LINK_UPDATE`); or, where tcx is missing, a clsact
//! filter at a fixed priority and handle per program, replaced in place by
//! the next agent (`RTM_NEWTFILTER` without `NLM_F_EXCL`) and remembered by
//! an empty directory `<pin_dir>/links/clsact/<ifname>` (`uplink-clsact/`;
//! bpffs holds no plain files). A tcx link whose interface went away is
//! defunct (`ENOLINK` on update) and is replaced by a new one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle};
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
use steer_common::{TC_PROGRAM_NAME, UPLINK_PROGRAM_NAME};

use super::XdpError;
use super::links::{LINKS, ifindex, is_errno, link_err, remove};

/// How the TC program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcAttach {
    /// A tcx bpf_link (pinned).
    Tcx,
    /// A clsact qdisc filter in direct-action mode (netlink).
    Clsact,
}

impl TcAttach {
    /// `tcx` or `clsact`.
    pub fn name(self) -> &'static str {
        match self {
            TcAttach::Tcx => "tcx",
            TcAttach::Clsact => "clsact",
        }
    }
}

/// Which TC program, and so where its attachments are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcProgram {
    /// `steer_tc`, at the VM interfaces' ingress.
    Vm,
    /// `steer_tc_uplink`, the return path, at the uplinks' ingress.
    Uplink,
}

impl TcProgram {
    /// The program's name in the object.
    pub fn name(self) -> &'static str {
        match self {
            TcProgram::Vm => TC_PROGRAM_NAME,
            TcProgram::Uplink => UPLINK_PROGRAM_NAME,
        }
    }

    /// The directory under `<pin_dir>/links` recording its attachments made
    /// `how`.
    pub fn dir(self, how: TcAttach) -> &'static str {
        match (self, how) {
            (TcProgram::Vm, TcAttach::Tcx) => "tcx",
            (TcProgram::Vm, TcAttach::Clsact) => "clsact",
            (TcProgram::Uplink, TcAttach::Tcx) => "uplink-tcx",
            (TcProgram::Uplink, TcAttach::Clsact) => "uplink-clsact",
        }
    }

    /// The clsact filter's priority and handle: fixed, so a restarted agent
    /// finds and replaces its predecessor's filter.
    fn clsact(self) -> (u16, TcHandle) {
        match self {
            TcProgram::Vm => (0x5354, TcHandle::new(0, 0x5354)),
            TcProgram::Uplink => (0x5355, TcHandle::new(0, 0x5355)),
        }
    }
}

/// The TC program on one interface.
#[derive(Debug)]
pub struct TcLink {
    /// How it is attached.
    pub how: TcAttach,
    /// The interface's ifindex at attach time.
    pub ifindex: u32,
    /// The tcx link (the pin keeps it attached without us).
    pub fd: Option<FdLink>,
}

/// Where `which`'s tcx link (or clsact marker) on `iface` lives.
pub fn link_path(pin_dir: &Path, which: TcProgram, how: TcAttach, iface: &str) -> PathBuf {
    pin_dir.join(LINKS).join(which.dir(how)).join(iface)
}

/// Puts `prog` (program `which`) on the ingress of `iface`: swaps it into
/// the pinned tcx link if there is a live one, else attaches and pins a new
/// tcx link; falls back to clsact when the kernel has no tcx, or when
/// `clsact` is asked for.
pub fn attach(
    prog: &mut SchedClassifier,
    which: TcProgram,
    pin_dir: &Path,
    iface: &str,
    clsact: bool,
) -> Result<TcLink, XdpError> {
    let index = ifindex(iface)?;
    if !clsact {
        match attach_tcx(prog, which, pin_dir, iface, index) {
            Err(XdpError::Program(e))
                if is_errno(&e, &[libc::EINVAL, libc::EOPNOTSUPP, libc::ENOTSUP]) =>
            {
                tracing::warn!(
                    "{iface}: no tcx in this kernel ({e}); attaching the TC program to a clsact qdisc"
                );
            }
            other => return other,
        }
    }
    attach_clsact(prog, which, pin_dir, iface, index)
}

fn attach_tcx(
    prog: &mut SchedClassifier,
    which: TcProgram,
    pin_dir: &Path,
    iface: &str,
    index: u32,
) -> Result<TcLink, XdpError> {
    let path = link_path(pin_dir, which, TcAttach::Tcx, iface);
    let mut id = None;
    match PinnedLink::from_pin(&path) {
        Ok(pinned) => {
            let link = SchedClassifierLink::try_from(FdLink::from(pinned))
                .map_err(link_err(&path, "BPF_OBJ_GET"))?;
            match prog.attach_to_link(link) {
                Ok(got) => id = Some(got),
                Err(e) if is_errno(&e, &[libc::ENOLINK]) => remove(&path)?,
                Err(e) => return Err(link_err(&path, "BPF_LINK_UPDATE")(e)),
            }
        }
        Err(LinkError::SyscallError(s)) if s.io_error.kind() == io::ErrorKind::NotFound => {}
        Err(_) => remove(&path)?,
    }
    let created = id.is_none();
    let id = match id {
        Some(id) => id,
        None => prog.attach_with_options(
            iface,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )?,
    };
    let link: FdLink = prog
        .take_link(id)?
        .try_into()
        .map_err(link_err::<LinkError>(&path, "take link"))?;
    let fd = if created {
        let dir = path.parent().unwrap_or(pin_dir);
        fs::create_dir_all(dir).map_err(|cause| XdpError::Io {
            path: dir.to_path_buf(),
            cause,
        })?;
        let pinned = link.pin(&path).map_err(link_err(&path, "BPF_OBJ_PIN"))?;
        FdLink::from(pinned)
    } else {
        link
    };
    detach_clsact(pin_dir, which, iface)?;
    Ok(TcLink {
        how: TcAttach::Tcx,
        ifindex: index,
        fd: Some(fd),
    })
}

fn attach_clsact(
    prog: &mut SchedClassifier,
    which: TcProgram,
    pin_dir: &Path,
    iface: &str,
    index: u32,
) -> Result<TcLink, XdpError> {
    let marker = link_path(pin_dir, which, TcAttach::Clsact, iface);
    let (priority, handle) = which.clsact();
    // Fails when the qdisc is there already, which is fine; a real failure
    // shows when the filter cannot be attached.
    let qdisc = tc::qdisc_add_clsact(iface).err();
    let existing =
        SchedClassifierLink::attached(iface, TcAttachType::Ingress, priority, handle, None)
            .map_err(|_| XdpError::NoSuchInterface(iface.to_string()))?;
    let id = match prog.attach_to_link(existing) {
        Ok(id) => id,
        Err(_) => prog
            .attach_with_options(
                iface,
                TcAttachType::Ingress,
                TcAttachOptions::Netlink(NlOptions {
                    priority,
                    handle,
                    classid: None,
                }),
            )
            .map_err(|e| XdpError::Attach {
                interface: iface.to_string(),
                hook: match which {
                    TcProgram::Vm => "tc (clsact)",
                    TcProgram::Uplink => "return path (clsact)",
                },
                cause: io::Error::other(match &qdisc {
                    Some(q) => format!("{e} (adding the clsact qdisc: {q})"),
                    None => e.to_string(),
                }),
            })?,
    };
    // The filter must outlive this process: dropping aya's link would
    // detach it.
    std::mem::forget(prog.take_link(id)?);
    fs::create_dir_all(&marker).map_err(|cause| XdpError::Io {
        path: marker.clone(),
        cause,
    })?;
    let tcx = link_path(pin_dir, which, TcAttach::Tcx, iface);
    if tcx.exists() {
        detach_tcx(&tcx)?;
    }
    Ok(TcLink {
        how: TcAttach::Clsact,
        ifindex: index,
        fd: None,
    })
}

/// Detaches program `which` from `iface` as recorded under `pin_dir`,
/// however it is attached. An interface that is gone has nothing left to
/// detach.
pub fn detach(
    pin_dir: &Path,
    which: TcProgram,
    how: TcAttach,
    iface: &str,
) -> Result<(), XdpError> {
    match how {
        TcAttach::Tcx => detach_tcx(&link_path(pin_dir, which, how, iface)),
        TcAttach::Clsact => detach_clsact(pin_dir, which, iface),
    }
}

fn detach_tcx(path: &Path) -> Result<(), XdpError> {
    super::links::detach_pinned(path)
}

fn detach_clsact(pin_dir: &Path, which: TcProgram, iface: &str) -> Result<(), XdpError> {
    let marker = link_path(pin_dir, which, TcAttach::Clsact, iface);
    if !marker.exists() {
        return Ok(());
    }
    if ifindex(iface).is_ok() {
        match tc::qdisc_detach_program(iface, TcAttachType::Ingress, which.name()) {
            Ok(()) => {}
            Err(tc::TcError::IoError(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(XdpError::Link {
                    path: marker,
                    op: "RTM_DELTFILTER",
                    cause: io::Error::other(e.to_string()),
                });
            }
        }
    }
    fs::remove_dir(&marker).map_err(|cause| XdpError::Io {
        path: marker,
        cause,
    })
}

/// Every attachment of program `which` recorded under `pin_dir`: (how,
/// interface name).
pub fn recorded(pin_dir: &Path, which: TcProgram) -> Vec<(TcAttach, String)> {
    let mut found = Vec::new();
    for how in [TcAttach::Tcx, TcAttach::Clsact] {
        let Ok(entries) = fs::read_dir(pin_dir.join(LINKS).join(which.dir(how))) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str() {
                found.push((how, name.to_string()));
            }
        }
    }
    found.sort();
    found
}
