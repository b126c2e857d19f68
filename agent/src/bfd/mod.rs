//! Bidirectional Forwarding Detection with the appliances: RFC 5880 in
//! Asynchronous mode, over UDP for single-hop (RFC 5881) and multihop
//! (RFC 5883) paths, IPv4 and IPv6, for BGP as its client (RFC 5882).
//!
//! As the BGP engine: the packet codec ([`packet`]) and the session state
//! machine ([`session`]) are pure and unit-tested; the driver
//! ([`driver`]) is one OS thread of its own that owns the UDP sockets and
//! the timers, so no amount of RIB work delays a packet or a detection,
//! and tells its owner about sessions coming Up and going Down through
//! [`status`] and events.

pub mod driver;
pub mod packet;
pub mod session;
pub mod status;
