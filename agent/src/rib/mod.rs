//! The route server's RIB: the table of received paths with the decision
//! process (RFC 4271 §9), export policy, and update groups.

pub mod attrs;
pub mod decision;
pub mod export;
pub mod group;
pub mod table;
