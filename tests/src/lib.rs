//! The test lab: network namespaces, veth links and real BGP peers.
//!
//! A test builds a [`Lab`], adds namespaces and a shared LAN to it, starts
//! real daemons inside those namespaces ([`Bird`], [`Frr`], [`Openbgpd`],
//! [`Gobgp`], [`Exabgp`], [`Steer`]) or talks raw BGP with a [`RawPeer`], and
//! asserts on what the daemons report. Everything a test creates (namespaces, daemons,
//! temp dirs, bpffs pins) is removed when its owner is dropped, also on panic.
//! `scripts/lab-cleanup.sh` removes what a killed test process left behind.
//! Most route-server tests start from [`scenario::RouteServerLab`], which
//! builds the usual LAN (server, appliances, hosts) and waits for every
//! session.
//!
//! ```no_run
//! use steer_tests::{AddPaths, Announce, BgpDaemon, Bird, BirdConfig, Gobgp, GobgpConfig, Lab, Neighbor};
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut lab = Lab::new()?;
//! let lan = lab.lan("vnet")?;
//! let sdwan = lab.node("sdwan")?;
//! let host = lab.node("host1")?;
//! lan.attach(&sdwan, "eth0", "10.1.0.10/24")?;
//! lan.attach(&host, "eth0", "10.1.0.31/24")?;
//! let bird = Bird::start(
//!     &sdwan,
//!     BirdConfig::new("10.1.0.10", 65010)
//!         .neighbor(Neighbor::new("host1", "10.1.0.31", 65515))
//!         .announce(Announce::new("10.250.0.0/16").prepend(1)),
//! )?;
//! let gobgp = Gobgp::start(
//!     &host,
//!     GobgpConfig::new("10.1.0.31", 65515)
//!         .neighbor(Neighbor::new("sdwan", "10.1.0.10", 65010).add_paths(AddPaths::Rx)),
//! )?;
//! bird.wait_established("host1")?;
//! let paths = gobgp.wait_routes("10.250.0.0/16", |p| p.len() == 1)?;
//! assert_eq!(paths[0].as_path, vec![65010, 65010]);
//! # Ok(())
//! # }
//! ```

pub mod bird;
pub mod capture;
pub mod churn;
pub mod daemon;
pub mod exabgp;
pub mod failover;
pub mod fanout;
pub mod fastpath;
pub mod feed;
pub mod frr;
pub mod gobgp;
pub mod hooks;
pub mod hostsim;
pub mod lab;
pub mod netns;
pub mod openbgpd;
pub mod process;
pub mod rawpeer;
pub mod route;
pub mod rtmon;
pub mod scenario;
pub mod seed;
pub mod shape;
pub mod sockopt;
pub mod steer;
pub mod stream;
pub mod tmp;
pub mod traffic;
pub mod vmm;
pub mod wait;
pub mod wire;

pub use bird::{Bird, BirdConfig};
pub use capture::Capture;
pub use daemon::BgpDaemon;
pub use exabgp::{Exabgp, ExabgpConfig, RawAttribute};
pub use frr::{Frr, FrrConfig};
pub use gobgp::{Gobgp, GobgpConfig};
pub use lab::{Lab, Lan, Port};
pub use netns::Netns;
pub use openbgpd::{Openbgpd, OpenbgpdConfig};
pub use process::Process;
pub use rawpeer::RawPeer;
pub use route::{AddPaths, Announce, BfdTimers, Neighbor, Route, SessionState};
pub use seed::{Seed, SeedHost, SeedOptions};
pub use steer::{Role, Steer};
pub use vmm::{Vmm, VmmStats};
pub use wait::{default_timeout, wait_for};
pub use wire::Notification;
