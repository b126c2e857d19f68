//! The BGP-4 engine (RFC 4271): a codec free of I/O, the session FSM as
//! pure code, and the tokio driver that owns sockets and timers.

pub mod attribute;
pub mod capability;
pub mod codec_config;
pub mod error;
pub mod fsm;
pub mod iana;
pub mod message;
pub mod negotiate;
pub mod nlri;
pub mod peer;
pub mod routes;
pub mod sendq;
pub mod session;
pub mod sockopt;
pub mod status;
pub mod writer;
