//! `steer agent`: the host role.

pub mod daemon;
pub mod fib_task;
pub mod reload;
pub mod rib;

pub use daemon::run;
