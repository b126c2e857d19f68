//! `steer server`: the route-server role.

pub mod bfd;
pub mod core;
pub mod daemon;
pub mod host_policy;
pub mod nofile;
pub mod reload;
pub mod view;

pub use daemon::run;
