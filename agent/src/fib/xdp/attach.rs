//! Putting the hooks on the VM interfaces: each interface's kind decides,
//! with the dataplane mode, which hooks it gets ([`super::hooks`]); TC is
//! attached before XDP so that nothing XDP passes ever misses TC; pinned
//! links of hooks no longer wanted (an interface left the config, the mode
//! changed) are detached.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::Path;

use aya::programs::{SchedClassifier, Xdp};
use steer_common::{Hook, PROGRAM_NAME, TC_PROGRAM_NAME};

use super::hooks::{Hooks, InterfaceKind, XdpMode};
use super::tc_links::{self, TcAttach, TcLink};
use super::{XdpDataplane, XdpError, links, redirect_targets, sys};

/// How a hook is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// XDP in the driver.
    Native,
    /// XDP in the generic stack.
    Generic,
    /// TC through a tcx link.
    Tcx,
    /// TC through a clsact filter.
    Clsact,
}

impl AttachMode {
    /// The hook this attaches.
    pub fn hook(self) -> Hook {
        match self {
            AttachMode::Native | AttachMode::Generic => Hook::Xdp,
            AttachMode::Tcx | AttachMode::Clsact => Hook::Tc,
        }
    }

    /// `native`, `generic`, `tcx` or `clsact`.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Tcx => "tcx",
            AttachMode::Clsact => "clsact",
        }
    }
}

impl From<XdpMode> for AttachMode {
    fn from(m: XdpMode) -> Self {
        match m {
            XdpMode::Native => AttachMode::Native,
            XdpMode::Generic => AttachMode::Generic,
        }
    }
}

impl From<TcAttach> for AttachMode {
    fn from(t: TcAttach) -> Self {
        match t {
            TcAttach::Tcx => AttachMode::Tcx,
            TcAttach::Clsact => AttachMode::Clsact,
        }
    }
}

/// One hook on one interface.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    /// Interface name.
    pub interface: String,
    /// Its ifindex now; 0 if the interface has gone (or was recreated).
    pub ifindex: u32,
    /// What the interface is.
    pub kind: InterfaceKind,
    /// How the hook is attached (and so which hook it is).
    pub mode: AttachMode,
    /// The bpf_link id (stable across program replacements); 0 for clsact.
    pub link_id: u32,
    /// The program the hook runs; 0 if unknown.
    pub prog_id: u32,
}

/// The hooks on the interfaces, as attached by this instance.
#[derive(Debug, Default)]
pub struct Attached {
    kinds: BTreeMap<String, InterfaceKind>,
    xdp: BTreeMap<String, links::Link>,
    tc: BTreeMap<String, TcLink>,
}

impl XdpDataplane {
    /// Puts the hooks each interface in `interfaces` needs on it (replacing
    /// the program of existing pinned links atomically) and detaches the
    /// hooks no interface needs any more.
    pub fn set_interfaces(&mut self, interfaces: &[String]) -> Result<(), XdpError> {
        let mut plan: BTreeMap<String, (InterfaceKind, Hooks)> = BTreeMap::new();
        for iface in interfaces {
            let kind =
                InterfaceKind::of(iface).map_err(|_| XdpError::NoSuchInterface(iface.clone()))?;
            let hooks = self.mode.hooks(kind);
            if hooks == Hooks::NONE {
                tracing::warn!(
                    "{iface} is not an Ethernet interface: no eBPF hook, the kernel forwards its traffic"
                );
            }
            plan.insert(iface.clone(), (kind, hooks));
        }
        let mut now = Attached::default();
        let clsact = self.force_clsact;
        let tc_prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_PROGRAM_NAME)
            .ok_or(XdpError::MissingProgram(TC_PROGRAM_NAME))?
            .try_into()?;
        for (iface, (kind, hooks)) in &plan {
            now.kinds.insert(iface.clone(), *kind);
            if hooks.tc {
                let link = tc_links::attach(tc_prog, &self.pin_dir, iface, clsact)?;
                now.tc.insert(iface.clone(), link);
            }
        }
        let xdp_prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(XdpError::MissingProgram(PROGRAM_NAME))?
            .try_into()?;
        for (iface, (_, hooks)) in &plan {
            if let Some(mode) = hooks.xdp {
                let link = links::attach(xdp_prog, &self.pin_dir, iface, mode)?;
                now.xdp.insert(iface.clone(), link);
            }
        }
        for (mode, iface, path) in links::pinned(&self.pin_dir) {
            if now.xdp.get(&iface).is_none_or(|l| l.mode != mode) {
                links::detach_pinned(&path)?;
            }
        }
        for (how, iface) in tc_links::recorded(&self.pin_dir) {
            if now.tc.get(&iface).is_none_or(|l| l.how != how) {
                tc_links::detach(&self.pin_dir, how, &iface)?;
            }
        }
        self.warn_about_redirect_targets(&now);
        self.attached = now;
        Ok(())
    }

    /// XDP redirects into a veth are dropped unless its peer has NAPI; the
    /// program cannot tell, so check the veths that may be targets when XDP
    /// goes on, and say which will refuse.
    fn warn_about_redirect_targets(&self, now: &Attached) {
        if now.xdp.is_empty() || !self.attached.xdp.is_empty() {
            return;
        }
        let ours: Vec<String> = now.xdp.keys().cloned().collect();
        for target in redirect_targets::veth_targets(&ours) {
            let index = links::ifindex(&target).unwrap_or(0);
            match redirect_targets::accepts_redirects(index) {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "XDP redirects into veth {target} will be dropped: its peer has neither GRO \
                     nor an XDP program (turn GRO on at the peer, `ethtool -K <peer> gro on`, \
                     or use dataplane = \"tc\"); such drops are counted as xdp redirect_failed"
                ),
                Err(e) => tracing::warn!(
                    "cannot tell whether veth {target} takes XDP redirects ({e}): unless its \
                     peer has GRO or an XDP program, the kernel drops them (counted as xdp \
                     redirect_failed)"
                ),
            }
        }
    }

    /// Frames the XDP interfaces dropped on receive: XDP's failed redirects.
    pub(super) fn xdp_refused(&self) -> u64 {
        if self.attached.xdp.is_empty() {
            return 0;
        }
        let ours: Vec<String> = self.attached.xdp.keys().cloned().collect();
        redirect_targets::refused(&ours)
    }

    /// The hooks on the interfaces, with link and program ids (as `steer
    /// show fib` prints them), interface by interface, XDP before TC.
    pub fn attached(&self) -> Vec<Attachment> {
        let tc_prog = self
            .ebpf
            .program(TC_PROGRAM_NAME)
            .and_then(|p| <&SchedClassifier>::try_from(p).ok())
            .and_then(|p| p.info().ok())
            .map_or(0, |i| i.id());
        let mut out = Vec::new();
        for (iface, kind) in &self.attached.kinds {
            let current = links::ifindex(iface).unwrap_or(0);
            if let Some(link) = self.attached.xdp.get(iface) {
                let info = sys::xdp_link_info(link.fd.as_fd()).ok();
                out.push(Attachment {
                    interface: iface.clone(),
                    ifindex: info.map_or(0, |i| i.ifindex),
                    kind: *kind,
                    mode: link.mode.into(),
                    link_id: info.map_or(0, |i| i.id),
                    prog_id: info.map_or(0, |i| i.prog_id),
                });
            }
            if let Some(link) = self.attached.tc.get(iface) {
                let info = link.fd.as_ref().and_then(|f| f.info().ok());
                out.push(Attachment {
                    interface: iface.clone(),
                    ifindex: if current == link.ifindex { current } else { 0 },
                    kind: *kind,
                    mode: link.how.into(),
                    link_id: info.as_ref().map_or(0, |i| i.id()),
                    prog_id: info.as_ref().map_or(tc_prog, |i| i.program_id()),
                });
            }
        }
        out
    }

    /// The interfaces whose hooks are all still on the interface they were
    /// attached to.
    pub fn live_interfaces(&self) -> Vec<String> {
        let all = self.attached();
        self.attached
            .kinds
            .keys()
            .filter(|i| {
                all.iter()
                    .filter(|a| &a.interface == *i)
                    .all(|a| a.ifindex != 0)
            })
            .cloned()
            .collect()
    }
}

/// Detaches every hook recorded under `pin_dir`.
pub(super) fn detach_all(pin_dir: &Path) -> Result<(), XdpError> {
    for (_, _, path) in links::pinned(pin_dir) {
        links::detach_pinned(&path)?;
    }
    for (how, iface) in tc_links::recorded(pin_dir) {
        tc_links::detach(pin_dir, how, &iface)?;
    }
    links::remove_dirs(pin_dir)
}
