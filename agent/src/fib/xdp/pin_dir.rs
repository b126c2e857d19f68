//! The agent's claim on its bpffs pin directory.
//!
//! Pinned maps and links are what keep forwarding alive across an agent
//! restart, so the pin dir must be on a bpf filesystem that outlives the
//! process, and only one running agent may use it: two agents sharing one
//! dir would overwrite each other's routes and counters. The claim is an
//! exclusive `flock` on the directory itself (bpffs holds no regular files),
//! which the kernel drops when the process dies, `kill -9` included, so a
//! crashed agent never leaves a stale lock behind.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::XdpError;

const BPF_FS_MAGIC: libc::c_long = 0xcafe_4a11;

/// How long a claim waits for a lock that is being released. A `flock`
/// belongs to the open file, which a child forked by any thread of the
/// holder shares until it execs, so a claim right after the previous holder
/// closed the directory (a restart under systemd, a test reopening) can
/// still see it held for a moment.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// An exclusively claimed pin directory on a bpffs; the claim lasts as long
/// as this value (or the process).
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
    _lock: File,
}

impl PinDir {
    /// Checks that `path` is (or can be created) on a bpffs, creates it, and
    /// claims it for this process.
    pub fn claim(path: &Path) -> Result<PinDir, XdpError> {
        require_bpffs(path)?;
        std::fs::create_dir_all(path).map_err(|cause| XdpError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        require_bpffs(path)?;
        let dir = File::open(path).map_err(|cause| XdpError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        let deadline = Instant::now() + RELEASE_GRACE;
        // SAFETY: flock on an open descriptor has no memory preconditions.
        while unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let cause = io::Error::last_os_error();
            if cause.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(XdpError::Io {
                    path: path.to_path_buf(),
                    cause,
                });
            }
            if Instant::now() >= deadline {
                let holder = dir.metadata().ok().and_then(|m| lock_holder(m.ino()));
                return Err(XdpError::PinDirBusy {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(PinDir {
            path: path.to_path_buf(),
            _lock: dir,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `path`, or the nearest ancestor that exists, must be on a bpffs. Under
/// `ip netns exec` /sys is a fresh sysfs whose `fs/bpf` is an empty sysfs
/// directory, so the pin dir cannot even be created there.
fn require_bpffs(path: &Path) -> Result<(), XdpError> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).map_err(|_| {
        XdpError::NoBpffs {
            pin_dir: path.to_path_buf(),
            found: existing.to_path_buf(),
        }
    })?;
    // SAFETY: statfs fills a zeroed struct for a valid C path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(XdpError::Io {
            path: existing.to_path_buf(),
            cause: io::Error::last_os_error(),
        });
    }
    if st.f_type as libc::c_long != BPF_FS_MAGIC {
        return Err(XdpError::NoBpffs {
            pin_dir: path.to_path_buf(),
            found: existing.to_path_buf(),
        });
    }
    Ok(())
}

/// The pid holding a `flock` on inode `ino`, from `/proc/locks`.
fn lock_holder(ino: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, ino)
}

/// Parses `/proc/locks` lines such as
/// `1: FLOCK  ADVISORY  WRITE 4242 00:1f:12345 0 EOF`.
fn holder_in(locks: &str, ino: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, dev_ino) = (f.get(1)?, f.get(4)?, f.get(5)?);
        let found: u64 = dev_ino.rsplit(':').next()?.parse().ok()?;
        (*kind == "FLOCK" && found == ino)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holder_is_read_from_proc_locks_by_inode() {
        let locks = "1: POSIX  ADVISORY  WRITE 11 00:1f:777 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 00:1f:12345 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 99 00:20:555 0 EOF\n";
        assert_eq!(holder_in(locks, 12345), Some(4242));
        assert_eq!(holder_in(locks, 777), None);
        assert_eq!(holder_in(locks, 1), None);
    }

    #[test]
    fn a_pin_dir_off_bpffs_is_refused_naming_the_cause_and_the_fixes() {
        let tmp = std::env::temp_dir().join(format!("steer-pin-{}", std::process::id()));
        let e = PinDir::claim(&tmp.join("agent-200")).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, XdpError::NoBpffs { .. }), "{e:?}");
        for needle in ["ip netns exec", "nsenter --net=", "mount -t bpf", "pin_dir"] {
            assert!(text.contains(needle), "{needle:?} missing from: {text}");
        }
        assert!(!tmp.exists(), "nothing is created off bpffs");
    }
}
