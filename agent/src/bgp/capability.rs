//! OPEN optional parameters and capabilities (RFC 5492), with the ones
//! Steer speaks: multiprotocol (RFC 4760), route refresh (RFC 2918),
//! extended messages (RFC 8654), graceful restart (RFC 4724, with the
//! N bit of RFC 8538), 4-octet AS (RFC 6793), ADD-PATH (RFC 7911) and
//! enhanced route refresh (RFC 7313, recognised only). Unknown
//! capabilities are kept verbatim.

use super::nlri::Family;

/// Capability codes (IANA).
pub mod code {
    /// Multiprotocol Extensions.
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route Refresh.
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended Message.
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// Graceful Restart.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Support for 4-octet AS number.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// ADD-PATH.
    pub const ADD_PATH: u8 = 69;
    /// Enhanced Route Refresh.
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// One capability from an OPEN.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Capability {
    /// Multiprotocol Extensions for one AFI/SAFI (code 1).
    Multiprotocol(Family),
    /// Route Refresh (code 2).
    RouteRefresh,
    /// Extended Message (code 6).
    ExtendedMessage,
    /// Graceful Restart (code 64).
    GracefulRestart(GracefulRestart),
    /// 4-octet AS number (code 65).
    FourOctetAs(u32),
    /// ADD-PATH (code 69): per family, whether the sender can send and/or
    /// receive multiple paths.
    AddPath(Vec<AddPathFamily>),
    /// Enhanced Route Refresh (code 70).
    EnhancedRouteRefresh,
    /// Anything else, verbatim.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        data: Vec<u8>,
    },
}

/// The Graceful Restart capability (RFC 4724 §3, RFC 8538 §2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restarting: bool,
    /// N bit: graceful restart also for NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Restart Time in seconds (12 bits).
    pub restart_time: u16,
    /// Families for which the sender preserves state, with the F bit
    /// (forwarding state preserved across this restart).
    pub families: Vec<(Family, bool)>,
}

/// One family of the ADD-PATH capability (RFC 7911 §4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AddPathFamily {
    /// The family.
    pub family: Family,
    /// The sender can receive multiple paths.
    pub receive: bool,
    /// The sender can send multiple paths.
    pub send: bool,
}
