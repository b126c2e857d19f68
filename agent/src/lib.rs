//! Steer: a route server and host agent with an eBPF dataplane.
//!
//! `steer server` peers with network virtual appliances over eBGP and
//! reflects their routes to host agents over iBGP with ADD-PATH; `steer
//! agent` programs each hypervisor's kernel table and XDP fast path.
//!
//! # Layers
//!
//! The modules are layered, bottom to top. A module imports only from its
//! own layer and those below (a module nested in a listed one is in its
//! layer); the two roles, `server` and `agent`, never import each other;
//! and no two modules import each other in a cycle, tests aside.
//! `tests/layers.rs` reads this list and every `crate::`/`super::` path in
//! `src/`, and fails on a breach.
//!
//! 1. foundation: `prefix`, `util`
//! 2. the BGP codec, bytes in and values out: `bgp`, `bgp::iana`,
//!    `bgp::error`, `bgp::nlri`, `bgp::capability`, `bgp::codec_config`,
//!    `bgp::attribute`, `bgp::message`
//! 3. BGP sessions as pure logic, and what a session and its owner say to
//!    each other: `bgp::fsm`, `bgp::negotiate`, `bgp::routes`,
//!    `bgp::status`, `bgp::sendq`, `bgp::peer`; BFD's codec, session state
//!    machine and status, as pure: `bfd`
//! 4. the route server's RIB: `rib`
//! 5. the host's forwarding state (plan, kernel, XDP): `fib`
//! 6. operating a daemon (control socket, rendering, metrics): `control`
//! 7. the configuration file: `config`
//! 8. the roles' logic: `server::core`, `server::host_policy`,
//!    `server::reload`, `server::view`, `agent::rib`, `agent::reload`
//! 9. the daemons, which own sockets, tasks and threads: `server`,
//!    `server::daemon`, `agent`, `agent::daemon`, `agent::fib_task`,
//!    `bgp::session`, `bgp::writer`, `bgp::sockopt`, `bfd::driver`
//! 10. the command line: `cli`, `main`

pub mod agent;
pub mod bfd;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod control;
pub mod fib;
pub mod prefix;
pub mod rib;
pub mod server;
pub mod util;
