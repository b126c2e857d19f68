//! Steer: a route server and host agent with an eBPF dataplane.
//!
//! `steer server` peers with network virtual appliances over eBGP and
//! reflects their routes to host agents over iBGP with ADD-PATH; `steer
//! agent` programs each hypervisor's kernel table and XDP fast path.

pub mod agent;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod control;
pub mod fib;
pub mod prefix;
pub mod rib;
pub mod server;
pub mod util;
