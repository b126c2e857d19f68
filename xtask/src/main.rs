//! `cargo xtask build-ebpf | test | demo | bench`: developer tasks.
fn main() {}
