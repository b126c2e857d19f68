//! Cargo from inside the benchmarks: re-running `bench bgp` (or `bench
//! fanout`) from a release build of xtask (the in-process generators and
//! receivers must be optimized), and building the release `steer` binary
//! under test.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use super::interrupt;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo() -> std::process::Command {
    let mut c =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace());
    c
}

/// Re-runs this very command from a release build of xtask.
pub fn rerun_release() -> Result<()> {
    println!(
        "bench: re-running as a release build (the generators and receivers must not be the bottleneck)"
    );
    interrupt::install();
    let status = cargo()
        .args(["run", "--quiet", "--release", "-p", "xtask", "--"])
        .args(std::env::args_os().skip(1))
        .status()
        .context("running cargo run --release -p xtask")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// `cargo build --release -p steer --bin steer`; the binary sits beside
/// this release build of xtask.
pub fn build_steer() -> Result<PathBuf> {
    let status = cargo()
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "steer",
            "--bin",
            "steer",
        ])
        .status()
        .context("running cargo build --release -p steer")?;
    ensure!(
        status.success(),
        "cargo build --release -p steer failed: {status}"
    );
    let exe = std::env::current_exe().context("locating xtask")?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .context("xtask is not in a cargo target dir")?
        .join("release")
        .join("steer");
    ensure!(bin.is_file(), "{} missing after the build", bin.display());
    Ok(bin)
}
