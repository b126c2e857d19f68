//! Throwaway network namespaces for the XDP tests and benchmark: each one
//! is created by a thread that `unshare(CLONE_NEWNET)`s and is held only by
//! an fd, so it (and every interface in it) disappears when dropped, even
//! if the test panics. Work inside one runs on a thread that `setns`es into
//! it; commands spawned from there (`ip`, `ethtool`) inherit it.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A network namespace that lives as long as this value.
pub struct Netns {
    fd: OwnedFd,
}

impl Netns {
    /// A new, empty namespace with `lo` up.
    pub fn new() -> Result<Netns> {
        let fd = std::thread::spawn(|| -> Result<OwnedFd> {
            // SAFETY: affects only this thread, which exits right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                bail!(
                    "unshare(CLONE_NEWNET): {} (the XDP tests must run as root)",
                    std::io::Error::last_os_error()
                );
            }
            Ok(File::open("/proc/thread-self/ns/net")?.into())
        })
        .join()
        .expect("netns thread panicked")?;
        let ns = Netns { fd };
        ns.run(|| ip("link set lo up"))?;
        Ok(ns)
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let fd = self.fd.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: `fd` is a valid netns fd owned by `self` for the scope.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    panic!("setns: {}", std::io::Error::last_os_error());
                }
                f()
            })
            .join()
            .expect("thread in netns panicked")
        })
    }

    /// A path naming this namespace for `ip ... netns PATH`.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }
}

/// Runs `program args...` (whitespace-split) in the calling thread's netns;
/// its stdout, or an error with its stderr.
pub fn cmd(program: &str, args: &str) -> Result<String> {
    let out = Command::new(program)
        .args(args.split_whitespace())
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip args...` in the calling thread's netns.
pub fn ip(args: &str) -> Result<String> {
    cmd("ip", args)
}

/// Writes a sysctl of the calling thread's netns (`net/ipv4/ip_forward`).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    std::fs::write(format!("/proc/sys/{key}"), value).with_context(|| format!("sysctl {key}"))
}

/// Fails loudly unless running as root with the tools the tests use.
pub fn require_root_and(tools: &[&str]) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the XDP tests need root (network namespaces, BPF, XDP): run them as root"
    );
    for tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "the XDP tests need `{tool}` on PATH (sudo scripts/setup.sh)"
        );
    }
    let magic = {
        // SAFETY: statfs fills a zeroed struct for a valid C path.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statfs(c"/sys/fs/bpf".as_ptr(), &mut st) };
        if rc == 0 { st.f_type as i64 } else { 0 }
    };
    assert_eq!(
        magic, 0xcafe_4a11,
        "/sys/fs/bpf is not a bpffs (sudo scripts/setup.sh mounts it)"
    );
}

/// A unique pin dir under /sys/fs/bpf for one test, removed (with whatever
/// is pinned in it) when dropped.
pub struct PinDir(pub std::path::PathBuf);

impl PinDir {
    /// `/sys/fs/bpf/steer-test-<pid>-<seq>-<name>`, unique per call.
    pub fn new(name: &str) -> PinDir {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PinDir(format!("/sys/fs/bpf/steer-test-{}-{seq}-{name}", std::process::id()).into())
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = steer::fib::xdp::XdpDataplane::remove(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
