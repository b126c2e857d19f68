//! The lab: namespaces with a per-run name prefix, a bridged LAN segment,
//! point-to-point links and bpffs pin dirs, all removed on drop.
//!
//! Names are `st<pid>-<n>-<name>` (`n` counts labs in this process), so
//! parallel tests and other runs never collide, namespaces a crashed process
//! with the same pid left are deleted first, and `scripts/lab-cleanup.sh`
//! can tell a live run's leftovers from a dead one's. Interfaces are created
//! directly inside their namespaces, so their names are local (`eth0` in
//! every node is fine); bridge ports are `p<k>` in the LAN's namespace.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::netns::Netns;

/// The prefix of every lab namespace name.
pub const NETNS_PREFIX: &str = "st";
/// The prefix of every bpffs pin dir a lab hands out.
pub const BPF_PIN_PREFIX: &str = "/sys/fs/bpf/steer-test-";

static LABS: AtomicU32 = AtomicU32::new(0);

/// One test's set of namespaces; deletes them (and its pin dirs) on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<Netns>,
    pin_dirs: Vec<PathBuf>,
    dir: TempDir,
}

/// A LAN segment: a bridge `br0` in its own namespace; nodes attach to it.
#[derive(Clone, Debug)]
pub struct Lan {
    ns: Netns,
    ports: Arc<AtomicU32>,
}

/// The two ends of a veth pair from [`Lan::attach`] or [`Lab::link`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The namespace of the first end (the node, for [`Lan::attach`]).
    pub ns: Netns,
    /// The interface name of the first end.
    pub ifname: String,
    /// The namespace of the second end (the LAN's bridge namespace).
    pub peer_ns: Netns,
    /// The interface name of the second end.
    pub peer_ifname: String,
}

fn existing_netns() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn delete_netns(name: &str) {
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", name])
        .stderr(std::process::Stdio::null())
        .status();
}

impl Lab {
    /// A new, empty lab. Fails unless running as root with `ip` available.
    pub fn new() -> Result<Lab> {
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        Lab::named(&format!("{NETNS_PREFIX}{}-{n}", std::process::id()))
    }

    /// A lab whose namespaces are `<prefix>-<name>`: for a lab people poke
    /// at by name (the demo's `sd-*`). Namespaces left under that prefix by
    /// an earlier run of it are deleted first.
    pub fn named(prefix: &str) -> Result<Lab> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("the netns lab needs root (network namespaces, veth, daemons on port 179)");
        }
        let prefix = prefix.to_string();
        for stale in existing_netns() {
            if stale.starts_with(&format!("{prefix}-")) {
                delete_netns(&stale);
            }
        }
        let dir = crate::tmp::dir(&prefix)?;
        Ok(Lab {
            prefix,
            namespaces: Vec::new(),
            pin_dirs: Vec::new(),
            dir,
        })
    }

    /// This lab's name prefix, e.g. `st4242-0`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A temp dir that lives as long as the lab (for the test's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates namespace `<prefix>-<name>` with `lo` up and IPv4 forwarding on.
    pub fn node(&mut self, name: &str) -> Result<Netns> {
        let full = format!("{}-{name}", self.prefix);
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &full])
            .output()
            .context("running `ip netns add` (is iproute2 installed?)")?;
        if !out.status.success() {
            bail!(
                "ip netns add {full}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let ns = Netns::from_name(&full);
        self.namespaces.push(ns.clone());
        ns.ip("link set lo up")?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        Ok(ns)
    }

    /// Creates a LAN segment: namespace `<prefix>-<name>` holding bridge `br0`.
    pub fn lan(&mut self, name: &str) -> Result<Lan> {
        let ns = self.node(name)?;
        ns.ip("link add br0 type bridge")?;
        ns.ip("link set br0 type bridge stp_state 0 forward_delay 0")?;
        ns.ip("link set br0 up")?;
        Ok(Lan {
            ns,
            ports: Arc::new(AtomicU32::new(0)),
        })
    }

    /// A new namespace `name` attached to `lan` at `addr` (CIDR) as `eth0`.
    pub fn on_lan(&mut self, lan: &Lan, name: &str, addr: &str) -> Result<Netns> {
        let ns = self.node(name)?;
        lan.attach(&ns, "eth0", addr)?;
        Ok(ns)
    }

    /// A point-to-point veth between `a` (`a_if`, `a_addr`) and `b` (`b_if`,
    /// `b_addr`); addresses are CIDR strings, or "" for none.
    pub fn link(
        &mut self,
        a: &Netns,
        a_if: &str,
        a_addr: &str,
        b: &Netns,
        b_if: &str,
        b_addr: &str,
    ) -> Result<Port> {
        veth(a, a_if, b, b_if)?;
        configure(a, a_if, a_addr)?;
        configure(b, b_if, b_addr)?;
        Ok(Port {
            ns: a.clone(),
            ifname: a_if.to_string(),
            peer_ns: b.clone(),
            peer_ifname: b_if.to_string(),
        })
    }

    /// A per-instance bpffs directory `/sys/fs/bpf/steer-test-<prefix>-<name>`
    /// (bpffs mounted first if needed), removed with the lab.
    pub fn bpf_pin_dir(&mut self, name: &str) -> Result<PathBuf> {
        ensure_bpffs()?;
        let dir = PathBuf::from(format!("{BPF_PIN_PREFIX}{}-{name}", self.prefix));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.pin_dirs.push(dir.clone());
        Ok(dir)
    }
}

/// What a lab named `prefix` (see [`Lab::named`]) left behind after its
/// process went away without dropping it (a kept demo, a `kill -9`): the
/// processes inside its namespaces are killed, the namespaces deleted, its
/// bpffs pin dirs and temp dirs removed. Returns the namespaces deleted.
pub fn remove_named(prefix: &str) -> Vec<String> {
    let mine = |n: &str| n.starts_with(&format!("{prefix}-"));
    let namespaces: Vec<String> = existing_netns().into_iter().filter(|n| mine(n)).collect();
    for ns in &namespaces {
        kill_remaining(ns);
    }
    for ns in &namespaces {
        delete_netns(ns);
    }
    let remove_matching = |dir: &str, start: &str| {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(start) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    };
    let pins = Path::new(BPF_PIN_PREFIX);
    if let (Some(dir), Some(name)) = (pins.parent(), pins.file_name()) {
        remove_matching(
            &dir.to_string_lossy(),
            &format!("{}{prefix}-", name.to_string_lossy()),
        );
    }
    remove_matching("/tmp", &format!("{}{prefix}-", crate::tmp::PREFIX));
    namespaces
}

impl Drop for Lab {
    /// Kills what still runs in the lab's namespaces (drivers stop their
    /// daemons first; this catches anything spawned by hand), then deletes
    /// the namespaces and pin dirs.
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_remaining(ns.name());
        }
        for dir in self.pin_dirs.drain(..).rev() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        for ns in self.namespaces.drain(..).rev() {
            delete_netns(ns.name());
        }
    }
}

fn kill_remaining(ns: &str) {
    let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
    else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<libc::pid_t>().ok())
    {
        // SAFETY: plain kill(2) of a process inside this lab's namespace.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

impl Lan {
    /// The namespace holding the bridge (for tcpdump on `br0`, say).
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Plugs `node` into the LAN: veth `ifname` in the node with `addr`
    /// (CIDR, or "" for none), its peer `p<k>` enslaved to `br0`.
    pub fn attach(&self, node: &Netns, ifname: &str, addr: &str) -> Result<Port> {
        let k = self.ports.fetch_add(1, Ordering::SeqCst);
        let port = format!("p{k}");
        veth(node, ifname, &self.ns, &port)?;
        self.ns.ip(&format!("link set {port} master br0"))?;
        configure(&self.ns, &port, "")?;
        configure(node, ifname, addr)?;
        Ok(Port {
            ns: node.clone(),
            ifname: ifname.to_string(),
            peer_ns: self.ns.clone(),
            peer_ifname: port,
        })
    }
}

fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    a.ip(&format!(
        "link add {a_if} type veth peer name {b_if} netns {}",
        b.name()
    ))
    .map(drop)
}

/// Address (if any), GRO on (so XDP_REDIRECT into this veth is not dropped:
/// the receiving end needs NAPI), link up.
fn configure(ns: &Netns, ifname: &str, addr: &str) -> Result<()> {
    if !addr.is_empty() {
        ns.ip(&format!("addr add {addr} dev {ifname}"))?;
    }
    ns.exec("ethtool", &["-K", ifname, "gro", "on"])?;
    ns.ip(&format!("link set {ifname} up"))?;
    Ok(())
}

fn ensure_bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .context("mounting bpffs")?;
    if !status.success() {
        bail!("mount -t bpf bpf /sys/fs/bpf failed");
    }
    Ok(())
}
