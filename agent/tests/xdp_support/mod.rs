//! Shared support for the XDP tests (`tests/xdp_*.rs`): namespaces, pin
//! dirs and frames. Also included by `cargo xtask bench fib` with `#[path]`.
#![allow(dead_code)]

pub mod netns;
pub mod packet;
