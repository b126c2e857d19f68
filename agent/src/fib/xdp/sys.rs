//! The few `bpf(2)` commands aya 0.14 has no API for: opening a pinned
//! link with an fd of our own and reading its `bpf_link_info` including the
//! XDP part (aya's `LinkInfo` has only the id and program id, and its
//! `FdLink` lends no fd), `BPF_LINK_DETACH` (aya only closes its fd, which
//! leaves a pinned link attached), and `BPF_MAP_LOOKUP_BATCH` (aya's maps
//! iterate with two calls per entry; a batch reads a large hash map in a
//! few calls). Linking, pinning, replacing and test runs go through aya.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_LINK_TYPE_XDP: u32 = 6;

/// `bpf(cmd, attr, sizeof attr)`.
pub(super) fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised attribute struct of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The new fd a `bpf(2)` command returned.
pub(super) fn fd_from(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new file descriptor that we now own.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Detaches `link` from its interface now, whoever else holds it open.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
    }
    let mut attr = Attr {
        link_fd: link.as_raw_fd() as u32,
    };
    bpf(BPF_LINK_DETACH, &mut attr).map(drop)
}

/// Reads every entry of the hash map `map` (keys of `key_size`, values of
/// `value_size` bytes) in batches of up to `batch` entries, calling
/// `each(key, value)` for each. Entries added or removed meanwhile may be
/// seen or not, as with any walk of a live map.
pub fn map_lookup_batch(
    map: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
    batch: u32,
    mut each: impl FnMut(&[u8], &[u8]),
) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    let mut batch = batch.max(1);
    let mut keys = vec![0u8; key_size * batch as usize];
    let mut values = vec![0u8; value_size * batch as usize];
    let (mut token_in, mut token_out) = (0u32, 0u32);
    let mut first = true;
    loop {
        let mut attr = Attr {
            in_batch: if first {
                0
            } else {
                &mut token_in as *mut u32 as u64
            },
            out_batch: &mut token_out as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: batch,
            map_fd: map.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        let rc = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let done = match &rc {
            Ok(_) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && attr.count == 0 => {
                batch *= 2;
                keys.resize(key_size * batch as usize, 0);
                values.resize(value_size * batch as usize, 0);
                continue;
            }
            Err(_) => return rc.map(drop),
        };
        for i in 0..attr.count as usize {
            each(
                &keys[i * key_size..(i + 1) * key_size],
                &values[i * value_size..(i + 1) * value_size],
            );
        }
        if done {
            return Ok(());
        }
        first = false;
        token_in = token_out;
    }
}

#[repr(C)]
struct PinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    pad: u32,
}

/// Opens the BPF object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let mut attr = PinAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        path_fd: 0,
        pad: 0,
    };
    bpf(BPF_OBJ_GET, &mut attr).map(fd_from)
}

/// What the kernel says about an XDP link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpLinkInfo {
    /// The link id.
    pub id: u32,
    /// The attached program's id.
    pub prog_id: u32,
    /// The interface; 0 once the interface is gone.
    pub ifindex: u32,
}

/// Reads an XDP link's info; `InvalidData` if `fd` is another link type.
pub fn xdp_link_info(fd: BorrowedFd<'_>) -> io::Result<XdpLinkInfo> {
    #[repr(C, align(8))]
    struct Info {
        link_type: u32,
        id: u32,
        prog_id: u32,
        pad: u32,
        ifindex: u32,
        rest: [u32; 27],
    }
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = Info {
        link_type: 0,
        id: 0,
        prog_id: 0,
        pad: 0,
        ifindex: 0,
        rest: [0; 27],
    };
    let mut attr = Attr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<Info>() as u32,
        info: &mut info as *mut Info as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    if info.link_type != BPF_LINK_TYPE_XDP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("link type {} is not XDP", info.link_type),
        ));
    }
    Ok(XdpLinkInfo {
        id: info.id,
        prog_id: info.prog_id,
        ifindex: info.ifindex,
    })
}
