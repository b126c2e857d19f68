//! Running the programs on packets without attaching them
//! (`BPF_PROG_TEST_RUN`), for the fixtures and the benchmark: the XDP
//! program once with the rewritten frame back, or on live frames (redirects
//! and passes really happen) for a cost per packet; the TC program (through
//! aya) on an skb built from a frame and the `__sk_buff` fields a test may
//! set (ingress ifindex, GSO size and segments). Also a two-instruction XDP
//! program that just returns an action, as the baseline and as a
//! NAPI-giving sink on veths.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use aya::programs::{TestRun, TestRunOptions};

use super::sys::{self, BPF_F_TEST_XDP_LIVE_FRAMES, TestRunArgs};
use super::{XdpDataplane, XdpError, XdpMode};

/// An XDP action as a program returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAction {
    /// `XDP_ABORTED`.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`.
    Pass,
    /// `XDP_TX`.
    Tx,
    /// `XDP_REDIRECT`.
    Redirect,
    /// Anything else.
    Other(u32),
}

impl XdpAction {
    /// From the program's return value.
    pub fn from_raw(v: u32) -> XdpAction {
        match v {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            v => XdpAction::Other(v),
        }
    }

    /// The program's return value.
    pub fn raw(self) -> u32 {
        match self {
            XdpAction::Aborted => 0,
            XdpAction::Drop => 1,
            XdpAction::Pass => 2,
            XdpAction::Tx => 3,
            XdpAction::Redirect => 4,
            XdpAction::Other(v) => v,
        }
    }
}

/// What one test run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The action returned.
    pub action: XdpAction,
    /// The frame after the program (rewritten when forwarded).
    pub frame: Vec<u8>,
    /// Mean nanoseconds per run, as the kernel measured it.
    pub duration_ns: u32,
}

/// Runs `prog` `repeat` times on `frame` as if received on `ingress_ifindex`
/// (which must exist in the caller's network namespace).
pub fn run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ingress_ifindex: u32,
    repeat: u32,
) -> io::Result<TestRunOutput> {
    let mut out = vec![0u8; frame.len() + 256];
    let r = sys::prog_test_run(
        prog,
        TestRunArgs {
            data: frame,
            out: Some(&mut out),
            ingress_ifindex,
            repeat,
            flags: 0,
            batch_size: 0,
        },
    )?;
    out.truncate(r.data_size_out as usize);
    Ok(TestRunOutput {
        action: XdpAction::from_raw(r.retval),
        frame: out,
        duration_ns: r.duration_ns,
    })
}

/// Runs `prog` on `repeat` live copies of `frame` received on
/// `ingress_ifindex`: redirected frames are transmitted, passed frames go up
/// the kernel stack. Returns the mean nanoseconds per frame, end to end.
pub fn run_live(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ingress_ifindex: u32,
    repeat: u32,
) -> io::Result<u32> {
    let r = sys::prog_test_run(
        prog,
        TestRunArgs {
            data: frame,
            out: None,
            ingress_ifindex,
            repeat,
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            batch_size: 0,
        },
    )?;
    Ok(r.duration_ns)
}

/// Loads a program that only returns `action` (`r0 = action; exit`).
pub fn load_constant_program(action: XdpAction) -> io::Result<OwnedFd> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    #[repr(C)]
    struct Attr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }
    // BPF_MOV64_IMM(R0, action); BPF_EXIT_INSN()
    let insns: [u64; 2] = [0xb7 | ((action.raw() as u64) << 32), 0x95];
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"steer_cnst");
    let mut attr = Attr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: 37,
    };
    // SAFETY: a valid BPF_PROG_LOAD attribute of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut attr as *mut Attr,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Attaches `prog` to `ifindex` through an unpinned link: it stays only
/// while the returned fd is open.
pub fn attach_unpinned(prog: BorrowedFd<'_>, ifindex: u32, mode: XdpMode) -> io::Result<OwnedFd> {
    sys::xdp_link_create(prog, ifindex, mode.flags())
}

impl XdpDataplane {
    /// Runs the loaded program once on `frame` received on `ingress_ifindex`
    /// (in the caller's netns) and returns its action and output frame.
    pub fn test_run(&self, frame: &[u8], ingress_ifindex: u32) -> Result<TestRunOutput, XdpError> {
        self.test_run_repeat(frame, ingress_ifindex, 1)
    }

    /// [`XdpDataplane::test_run`] `repeat` times (for a mean duration).
    pub fn test_run_repeat(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<TestRunOutput, XdpError> {
        let prog = self.program()?.fd()?;
        run(prog.as_fd(), frame, ingress_ifindex, repeat).map_err(XdpError::TestRun)
    }

    /// [`run_live`] with the loaded program.
    pub fn test_run_live(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<u32, XdpError> {
        let prog = self.program()?.fd()?;
        run_live(prog.as_fd(), frame, ingress_ifindex, repeat).map_err(XdpError::TestRun)
    }
}

/// A TC action as a program returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcAction {
    /// `TC_ACT_OK`: on to the kernel.
    Ok,
    /// `TC_ACT_SHOT`: dropped.
    Shot,
    /// `TC_ACT_REDIRECT`.
    Redirect,
    /// Anything else.
    Other(i32),
}

impl TcAction {
    /// From the program's return value.
    pub fn from_raw(v: u32) -> TcAction {
        match v as i32 {
            0 => TcAction::Ok,
            2 => TcAction::Shot,
            7 => TcAction::Redirect,
            v => TcAction::Other(v),
        }
    }
}

/// The `__sk_buff` fields a TC test run sets; the rest are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbMeta {
    /// The device the skb arrives on (`ifindex` and `ingress_ifindex`); it
    /// must exist in the caller's network namespace.
    pub ifindex: u32,
    /// `gso_size`: non-zero makes the skb a GSO superpacket.
    pub gso_size: u32,
    /// `gso_segs`.
    pub gso_segs: u32,
}

/// `sizeof(struct __sk_buff)` and the offsets of the fields set.
const SKB_SIZE: usize = 192;
const SKB_INGRESS_IFINDEX: usize = 36;
const SKB_IFINDEX: usize = 40;
const SKB_GSO_SEGS: usize = 164;
const SKB_GSO_SIZE: usize = 176;

impl SkbMeta {
    fn bytes(&self) -> [u8; SKB_SIZE] {
        let mut b = [0u8; SKB_SIZE];
        for (off, v) in [
            (SKB_INGRESS_IFINDEX, self.ifindex),
            (SKB_IFINDEX, self.ifindex),
            (SKB_GSO_SEGS, self.gso_segs),
            (SKB_GSO_SIZE, self.gso_size),
        ] {
            b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// What one TC test run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcTestRunOutput {
    /// The action returned.
    pub action: TcAction,
    /// The packet after the program (rewritten when forwarded).
    pub frame: Vec<u8>,
}

impl XdpDataplane {
    /// Runs the loaded TC program once on an skb holding `frame` (its
    /// Ethernet header makes it `PACKET_HOST` or not for the device in
    /// `meta`) and returns its action and the packet out.
    pub fn tc_test_run(&self, frame: &[u8], meta: SkbMeta) -> Result<TcTestRunOutput, XdpError> {
        let mut out = vec![0u8; frame.len() + 256];
        let ctx = meta.bytes();
        let r = self
            .tc_program()?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::default()
            })
            .map_err(|e| XdpError::TestRun(io::Error::other(e.to_string())))?;
        out.truncate(r.data_size_out as usize);
        Ok(TcTestRunOutput {
            action: TcAction::from_raw(r.return_value),
            frame: out,
        })
    }
}
