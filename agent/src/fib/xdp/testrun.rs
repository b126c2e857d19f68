//! Running the programs on packets without attaching them
//! (`BPF_PROG_TEST_RUN`), for the fixtures and the benchmark (cargo feature
//! `testing`): the XDP program on a frame with the rewritten frame back, the
//! TC programs (the VM hook and the return path) on an skb built from a
//! frame and the `__sk_buff` fields a test may set (ingress ifindex, GSO
//! size and segments), all through aya's `TestRun`. Also a two-instruction XDP program that just returns an
//! action, the benchmark's baseline: aya loads programs only from an ELF
//! object, so that one is loaded and run with [`super::sys::bpf`].

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use aya::programs::{TestRun, TestRunOptions, TestRunResult};

use super::links::os_error;
use super::{XdpDataplane, XdpError, sys};

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

/// The `struct xdp_md` a test run of an XDP program starts from: the frame
/// as received on `ingress_ifindex`.
fn xdp_md(frame_len: usize, ingress_ifindex: u32) -> [u8; 24] {
    let mut md = [0u8; 24];
    for (off, v) in [(4, frame_len as u32), (12, ingress_ifindex)] {
        md[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    md
}

/// Runs `prog` `repeat` times on `frame` as if received on `ingress_ifindex`
/// (which must exist in the caller's network namespace), for a program aya
/// did not load ([`load_constant_program`]).
pub fn run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ingress_ifindex: u32,
    repeat: u32,
) -> io::Result<TestRunOutput> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut out = vec![0u8; frame.len() + 256];
    let ctx = xdp_md(frame.len(), ingress_ifindex);
    let mut attr = Attr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        duration: 0,
        ctx_size_in: ctx.len() as u32,
        ctx_size_out: 0,
        ctx_in: ctx.as_ptr() as u64,
        ctx_out: 0,
    };
    sys::bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    out.truncate(attr.data_size_out as usize);
    Ok(TestRunOutput {
        action: XdpAction::from_raw(attr.retval),
        frame: out,
        duration_ns: attr.duration,
    })
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
    sys::bpf(BPF_PROG_LOAD, &mut attr).map(sys::fd_from)
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
        let ctx = xdp_md(frame.len(), ingress_ifindex);
        let (r, frame) = run_aya(self.program()?, frame, &ctx, repeat)?;
        Ok(TestRunOutput {
            action: XdpAction::from_raw(r.return_value),
            frame,
            duration_ns: r.duration.as_nanos() as u32,
        })
    }
}

/// Runs `prog` `repeat` times on `frame` with the context `ctx`; returns
/// what the kernel said and the packet after the program.
fn run_aya<P>(
    prog: &P,
    frame: &[u8],
    ctx: &[u8],
    repeat: u32,
) -> Result<(TestRunResult, Vec<u8>), XdpError>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + 256];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(ctx),
            repeat,
            ..TestRunOptions::default()
        })
        .map_err(|e| XdpError::TestRun(os_error(e)))?;
    out.truncate(r.data_size_out as usize);
    Ok((r, out))
}

/// A TC action as a program returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcAction {
    /// `TC_ACT_UNSPEC` (tcx's `TCX_NEXT`): on to the next program, then
    /// the kernel.
    Next,
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
            -1 => TcAction::Next,
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
        tc_run(self.tc_program()?, frame, meta)
    }

    /// [`XdpDataplane::tc_test_run`] for the return path's program (the
    /// device in `meta` plays the uplink).
    pub fn uplink_test_run(
        &self,
        frame: &[u8],
        meta: SkbMeta,
    ) -> Result<TcTestRunOutput, XdpError> {
        tc_run(self.uplink_program()?, frame, meta)
    }
}

fn tc_run(
    prog: &aya::programs::SchedClassifier,
    frame: &[u8],
    meta: SkbMeta,
) -> Result<TcTestRunOutput, XdpError> {
    let (r, frame) = run_aya(prog, frame, &meta.bytes(), 1)?;
    Ok(TcTestRunOutput {
        action: TcAction::from_raw(r.return_value),
        frame,
    })
}
