//! Per-run temporary directories for daemon configs, sockets and logs.
//!
//! Every directory is `/tmp/steer-test-<label>-XXXXXX`, so
//! `scripts/lab-cleanup.sh` can find what a crashed run left. Set
//! `STEER_TEST_KEEP=1` to keep them after the test for post-mortems.

use std::path::Path;

use anyhow::{Context, Result};
use tempfile::TempDir;

/// The name prefix shared by every lab temp dir.
pub const PREFIX: &str = "steer-test-";

/// Creates a fresh temp dir labelled with `label` (a namespace or daemon name).
pub fn dir(label: &str) -> Result<TempDir> {
    let keep = std::env::var_os("STEER_TEST_KEEP").is_some_and(|v| v != "0");
    let mut builder = tempfile::Builder::new();
    let prefix = format!("{PREFIX}{label}-");
    builder.prefix(&prefix);
    builder.disable_cleanup(keep);
    builder
        .tempdir_in("/tmp")
        .with_context(|| format!("creating temp dir for {label}"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
