//! `cargo xtask build-ebpf`: builds the XDP object exactly as
//! `agent/build.rs` does (the same builder, included with `#[path]`), with
//! the compiler's output shown, and prints where the object is.

#[path = "../../ebpf/xdp/builder.rs"]
#[allow(dead_code, reason = "shared with agent/build.rs, which uses the rest")]
mod builder;

use std::path::Path;

use anyhow::Result;

/// Builds the object and prints its path (and how to inspect it).
pub fn build() -> Result<()> {
    let root = builder::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")));
    let object = builder::build(&root, true)?;
    println!("{}", object.display());
    eprintln!(
        "inspect it with `bpftool btf dump file {0}` or `llvm-objdump -S {0}`; load it through \
         the agent (aya): aya-log's legacy `maps` section is refused by libbpf 1.x, so \
         `bpftool prog load` cannot open it",
        object.display()
    );
    Ok(())
}
