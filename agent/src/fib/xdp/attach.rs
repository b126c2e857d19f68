//! Putting the hooks on the interfaces: each VM interface's kind decides,
//! with the dataplane mode, which hooks it gets ([`super::hooks`]); TC is
//! attached before XDP so that nothing XDP passes ever misses TC; the VM
//! interfaces are written into the return path's map with how it may
//! redirect to each (into a veth's peer, or out of the interface); the
//! return path goes on the uplinks; pinned links of hooks no longer wanted
//! (an interface left the config, the mode changed, an uplink is no longer
//! one) are detached.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::Path;

use aya::programs::{SchedClassifier, Xdp};
use steer_common::{
    Hook, MAP_VM_IFACES, PROGRAM_NAME, TC_PROGRAM_NAME, UPLINK_PROGRAM_NAME, VM_REDIRECT_EGRESS,
    VM_REDIRECT_PEER,
};

use super::hooks::{Hooks, InterfaceKind, XdpMode};
use super::tc_links::{self, TcAttach, TcLink, TcProgram};
use super::{XdpDataplane, XdpError, is_not_found, links, map_err, redirect_targets, sys};

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
    /// The hook: `xdp` or `tc` on a VM interface, `return` on an uplink.
    pub hook: &'static str,
    /// How the hook is attached.
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
    uplinks: BTreeMap<String, (InterfaceKind, TcLink)>,
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
        let tc_prog = classifier_mut(&mut self.ebpf, TC_PROGRAM_NAME)?;
        for (iface, (kind, hooks)) in &plan {
            now.kinds.insert(iface.clone(), *kind);
            if hooks.tc {
                let link = tc_links::attach(tc_prog, TcProgram::Vm, &self.pin_dir, iface, clsact)?;
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
        for (how, iface) in tc_links::recorded(&self.pin_dir, TcProgram::Vm) {
            if now.tc.get(&iface).is_none_or(|l| l.how != how) {
                tc_links::detach(&self.pin_dir, TcProgram::Vm, how, &iface)?;
            }
        }
        self.warn_about_redirect_targets(&now);
        now.uplinks = std::mem::take(&mut self.attached.uplinks);
        self.attached = now;
        self.write_vm_interfaces(&plan)
    }

    /// The return path's map of VM interfaces: every VM interface the mode
    /// returns traffic to ([`super::hooks::DataplaneMode::returns_to`]), by
    /// ifindex, with [`VM_REDIRECT_PEER`] for a veth whose VM end is in
    /// another network namespace (`bpf_redirect_peer` needs that) and
    /// [`VM_REDIRECT_EGRESS`] for the others; entries of interfaces no
    /// longer listed (or recreated under another ifindex) are removed.
    fn write_vm_interfaces(
        &mut self,
        plan: &BTreeMap<String, (InterfaceKind, Hooks)>,
    ) -> Result<(), XdpError> {
        let mut want: BTreeMap<u32, u32> = BTreeMap::new();
        for (iface, (kind, _)) in plan {
            if *kind == InterfaceKind::NotEthernet {
                continue;
            }
            let index = links::ifindex(iface)?;
            let peer = *kind == InterfaceKind::Veth
                && redirect_targets::peer_elsewhere(index).unwrap_or_else(|e| {
                    tracing::warn!(
                        "cannot tell where the peer of veth {iface} is ({e}): the return path \
                         takes it for one in this namespace"
                    );
                    false
                });
            if !self.mode.returns_to(*kind, peer) {
                continue;
            }
            let how = if peer {
                VM_REDIRECT_PEER
            } else {
                VM_REDIRECT_EGRESS
            };
            want.insert(index, how);
        }
        self.return_targets = want.len();
        let have: Vec<u32> = self
            .vm_ifaces
            .keys()
            .collect::<Result<_, _>>()
            .map_err(map_err(MAP_VM_IFACES))?;
        for (index, how) in &want {
            self.vm_ifaces
                .insert(index, how, 0)
                .map_err(map_err(MAP_VM_IFACES))?;
        }
        for index in have.iter().filter(|i| !want.contains_key(i)) {
            match self.vm_ifaces.remove(index) {
                Err(e) if !is_not_found(&e) => return Err(map_err(MAP_VM_IFACES)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Puts the return path on the ingress of each of `uplinks` (swapping
    /// the new program into pinned links atomically) and takes it off the
    /// interfaces no longer listed. Empty: the return path is off.
    pub fn set_uplinks(&mut self, uplinks: &[String]) -> Result<(), XdpError> {
        let clsact = self.force_clsact;
        let prog = classifier_mut(&mut self.ebpf, UPLINK_PROGRAM_NAME)?;
        let mut now = BTreeMap::new();
        for iface in uplinks {
            let kind =
                InterfaceKind::of(iface).map_err(|_| XdpError::NoSuchInterface(iface.clone()))?;
            if kind == InterfaceKind::NotEthernet {
                tracing::warn!(
                    "uplink {iface} is not an Ethernet interface: no return path on it, the \
                     kernel forwards what it brings to the VMs"
                );
                continue;
            }
            let link = tc_links::attach(prog, TcProgram::Uplink, &self.pin_dir, iface, clsact)?;
            now.insert(iface.clone(), (kind, link));
        }
        for (how, iface) in tc_links::recorded(&self.pin_dir, TcProgram::Uplink) {
            if now.get(&iface).is_none_or(|(_, l)| l.how != how) {
                tc_links::detach(&self.pin_dir, TcProgram::Uplink, how, &iface)?;
            }
        }
        self.attached.uplinks = now;
        Ok(())
    }

    /// Whether the return path forwards to any VM interface (else it has
    /// nothing to do on the uplinks).
    pub fn returns_anywhere(&self) -> bool {
        self.return_targets > 0
    }

    /// The uplinks a run using `pin_dir` put the return path on (pinned
    /// links or clsact markers), whether or not they still exist.
    pub fn recorded_uplinks(pin_dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = tc_links::recorded(pin_dir, TcProgram::Uplink)
            .into_iter()
            .map(|(_, iface)| iface)
            .collect();
        names.dedup();
        names
    }

    /// The uplinks whose return path is still on the interface it was
    /// attached to.
    pub fn live_uplinks(&self) -> Vec<String> {
        self.attached
            .uplinks
            .iter()
            .filter(|(iface, (_, l))| links::ifindex(iface).is_ok_and(|i| i == l.ifindex))
            .map(|(iface, _)| iface.clone())
            .collect()
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
    /// show fib` prints them), VM interface by VM interface, XDP before TC,
    /// then the return path on the uplinks.
    pub fn attached(&self) -> Vec<Attachment> {
        let prog_id = |name| {
            self.ebpf
                .program(name)
                .and_then(|p| <&SchedClassifier>::try_from(p).ok())
                .and_then(|p| p.info().ok())
                .map_or(0, |i| i.id())
        };
        let tc_prog = prog_id(TC_PROGRAM_NAME);
        let mut out = Vec::new();
        for (iface, kind) in &self.attached.kinds {
            let current = links::ifindex(iface).unwrap_or(0);
            if let Some(link) = self.attached.xdp.get(iface) {
                let info = sys::xdp_link_info(link.fd.as_fd()).ok();
                out.push(Attachment {
                    interface: iface.clone(),
                    ifindex: info.map_or(0, |i| i.ifindex),
                    kind: *kind,
                    hook: Hook::Xdp.name(),
                    mode: link.mode.into(),
                    link_id: info.map_or(0, |i| i.id),
                    prog_id: info.map_or(0, |i| i.prog_id),
                });
            }
            if let Some(link) = self.attached.tc.get(iface) {
                out.push(tc_attachment(
                    iface,
                    *kind,
                    Hook::Tc,
                    link,
                    current,
                    tc_prog,
                ));
            }
        }
        let uplink_prog = prog_id(UPLINK_PROGRAM_NAME);
        for (iface, (kind, link)) in &self.attached.uplinks {
            let current = links::ifindex(iface).unwrap_or(0);
            out.push(tc_attachment(
                iface,
                *kind,
                Hook::Return,
                link,
                current,
                uplink_prog,
            ));
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

/// The TC program `name` of the loaded object.
fn classifier_mut<'a>(
    ebpf: &'a mut aya::Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, XdpError> {
    Ok(ebpf
        .program_mut(name)
        .ok_or(XdpError::MissingProgram(name))?
        .try_into()?)
}

/// The attachment of a TC program (`hook`) through `link` on `iface`,
/// whose ifindex is `current` now; `prog` is the program this instance
/// loaded (a clsact filter has no link to ask).
fn tc_attachment(
    iface: &str,
    kind: InterfaceKind,
    hook: Hook,
    link: &TcLink,
    current: u32,
    prog: u32,
) -> Attachment {
    let info = link.fd.as_ref().and_then(|f| f.info().ok());
    Attachment {
        interface: iface.to_string(),
        ifindex: if current == link.ifindex { current } else { 0 },
        kind,
        hook: hook.name(),
        mode: link.how.into(),
        link_id: info.as_ref().map_or(0, |i| i.id()),
        prog_id: info.as_ref().map_or(prog, |i| i.program_id()),
    }
}

/// Detaches every hook recorded under `pin_dir`.
pub(super) fn detach_all(pin_dir: &Path) -> Result<(), XdpError> {
    for (_, _, path) in links::pinned(pin_dir) {
        links::detach_pinned(&path)?;
    }
    for which in [TcProgram::Uplink, TcProgram::Vm] {
        for (how, iface) in tc_links::recorded(pin_dir, which) {
            tc_links::detach(pin_dir, which, how, &iface)?;
        }
    }
    links::remove_dirs(pin_dir)
}
