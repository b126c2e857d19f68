//! Builds the XDP program (ebpf/xdp) with the nightly and copies the object
//! to `OUT_DIR/steer-xdp.o`, which `fib::xdp` embeds with `include_bytes!`.
//! Set `STEER_XDP_OBJECT` to a prebuilt object to skip the nightly build.

#[path = "../ebpf/xdp/builder.rs"]
mod builder;

use std::path::{Path, PathBuf};

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let root = builder::workspace_root(&manifest);
    println!("cargo:rerun-if-env-changed={}", builder::OBJECT_ENV);
    let object = match std::env::var_os(builder::OBJECT_ENV) {
        Some(prebuilt) => {
            println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
            PathBuf::from(prebuilt)
        }
        None => {
            for src in builder::sources(&root) {
                println!("cargo:rerun-if-changed={}", src.display());
            }
            match builder::build(&root, false) {
                Ok(object) => object,
                Err(e) => {
                    eprintln!("error: {e}");
                    eprintln!(
                        "(or set {}=<path of a prebuilt steer-xdp object> to skip this build)",
                        builder::OBJECT_ENV
                    );
                    std::process::exit(1);
                }
            }
        }
    };
    let dest = out.join("steer-xdp.o");
    if let Err(e) = std::fs::copy(&object, &dest) {
        eprintln!(
            "error: copying {} to {}: {e}",
            object.display(),
            dest.display()
        );
        std::process::exit(1);
    }
}
