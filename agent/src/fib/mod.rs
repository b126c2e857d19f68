//! The host's forwarding state: the plan (desired vs. installed), the
//! kernel table (rtnetlink) and the eBPF maps and hooks (aya).
pub mod kernel;
pub mod plan;
pub mod xdp;
