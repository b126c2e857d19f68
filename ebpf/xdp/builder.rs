//! How to build the XDP object: one implementation, included with `#[path]`
//! by `agent/build.rs` (which embeds the object) and by `cargo xtask
//! build-ebpf` (which prints where it is). std only, so a build script can
//! use it without build-dependencies.
//!
//! The nested cargo runs the nightly (`rustup run nightly`) for
//! `bpfel-unknown-none` with `-Z build-std=core` and bpf-linker, in its own
//! target dir (`target/ebpf`) so it never waits on the outer build's lock,
//! with the outer cargo's `CARGO_*`/`RUSTC*` environment cleared (as
//! aya-build does) so the stable toolchain's settings cannot leak in.
//!
//! Not aya-build itself (0.2): its `build_ebpf` builds a package of the
//! calling workspace, and ebpf/xdp stays outside ours (its own lock, and a
//! `no_std` crate for the bpf target only); it builds without
//! `--locked` into a fresh target dir under each `OUT_DIR` (core rebuilt
//! per profile); it works only inside a build script, while `cargo xtask
//! build-ebpf` uses this file too; and it would add anyhow, cargo_metadata,
//! rustc_version and which to the agent's build dependencies.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolchain the eBPF crate needs.
pub const TOOLCHAIN: &str = "nightly";
/// The eBPF target triple.
pub const TARGET: &str = "bpfel-unknown-none";
/// The crate's binary name (the object's file name).
pub const OBJECT_NAME: &str = "steer-xdp";
/// Set to a prebuilt object's path to skip the nightly build.
pub const OBJECT_ENV: &str = "STEER_XDP_OBJECT";

const SETUP_HINT: &str =
    "run `sudo scripts/setup.sh` (it installs the nightly's rust-src and bpf-linker)";

/// Why the object could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// `rustup` is not installed or not on PATH.
    NoRustup,
    /// `rustup run nightly` failed: the nightly toolchain is missing.
    NoNightly(String),
    /// `bpf-linker` is not in PATH or `$CARGO_HOME/bin`.
    NoBpfLinker,
    /// The nested cargo ran and failed.
    Cargo(String),
    /// The build succeeded but the object is not where it should be.
    Missing(PathBuf),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoRustup => write!(f, "rustup not found; {SETUP_HINT}"),
            BuildError::NoNightly(e) => {
                write!(
                    f,
                    "the `{TOOLCHAIN}` toolchain is not usable ({e}); {SETUP_HINT}"
                )
            }
            BuildError::NoBpfLinker => write!(f, "bpf-linker not found; {SETUP_HINT}"),
            BuildError::Cargo(e) => write!(
                f,
                "building the XDP program (ebpf/xdp) failed; if the nightly's rust-src or \
                 bpf-linker is missing, {SETUP_HINT}.\n{e}"
            ),
            BuildError::Missing(p) => write!(f, "the build produced no object at {}", p.display()),
        }
    }
}

impl std::error::Error for BuildError {}

/// The workspace root, given the manifest dir of a crate directly below it.
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The files and directories whose change must rebuild the object.
pub fn sources(root: &Path) -> Vec<PathBuf> {
    [
        "ebpf/xdp/src",
        "ebpf/xdp/Cargo.toml",
        "ebpf/xdp/Cargo.lock",
        "ebpf/xdp/builder.rs",
        "ebpf/common/src",
        "ebpf/common/Cargo.toml",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect()
}

/// The nested build's target dir.
pub fn target_dir(root: &Path) -> PathBuf {
    root.join("target").join("ebpf")
}

/// Builds the object (release) and returns its path. Compiler output goes
/// to stderr when `verbose`, else it is kept for the error.
pub fn build(root: &Path, verbose: bool) -> Result<PathBuf, BuildError> {
    let cargo_bin = cargo_home().map(|h| h.join("bin"));
    let path = search_path(cargo_bin.as_deref());
    let rustup = find_in(&path, "rustup").ok_or(BuildError::NoRustup)?;
    find_in(&path, "bpf-linker").ok_or(BuildError::NoBpfLinker)?;

    let probe = clean(Command::new(&rustup), &path)
        .args(["run", TOOLCHAIN, "rustc", "--version"])
        .output()
        .map_err(|e| BuildError::NoNightly(e.to_string()))?;
    if !probe.status.success() {
        return Err(BuildError::NoNightly(
            String::from_utf8_lossy(&probe.stderr).trim().to_string(),
        ));
    }

    let target_dir = target_dir(root);
    let mut cmd = clean(Command::new(&rustup), &path);
    cmd.args(["run", TOOLCHAIN, "cargo", "build", "--release", "--locked"])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--manifest-path")
        .arg(root.join("ebpf/xdp/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "--cfg=bpf_target_arch=\"x86_64\"",
                "-Cdebuginfo=2",
                "-Clink-arg=--btf",
            ]
            .join("\x1f"),
        )
        .current_dir(root.join("ebpf/xdp"));
    if verbose {
        let status = cmd.status().map_err(|e| BuildError::Cargo(e.to_string()))?;
        if !status.success() {
            return Err(BuildError::Cargo(format!("cargo exited with {status}")));
        }
    } else {
        let out = cmd.output().map_err(|e| BuildError::Cargo(e.to_string()))?;
        if !out.status.success() {
            return Err(BuildError::Cargo(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
    }
    let object = target_dir.join(TARGET).join("release").join(OBJECT_NAME);
    if object.is_file() {
        Ok(object)
    } else {
        Err(BuildError::Missing(object))
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

fn search_path(cargo_bin: Option<&Path>) -> OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(bin) = cargo_bin
        && !dirs.iter().any(|d| d == bin)
    {
        dirs.push(bin.to_path_buf());
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

fn find_in(path: &OsString, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A command with the outer cargo's build environment removed.
fn clean(mut cmd: Command, path: &OsString) -> Command {
    const EXACT: [&str; 16] = [
        "CARGO",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTUP_TOOLCHAIN",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if EXACT.contains(&key) || (key.starts_with("CARGO_") && key != "CARGO_HOME") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PATH", path);
    cmd
}
