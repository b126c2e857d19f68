//! `steer server`: the route-server role.

pub mod bfd;
pub mod core;
pub mod daemon;
pub mod view;

pub use daemon::run;
