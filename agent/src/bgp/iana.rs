//! The IANA registries of BGP-4 that Steer speaks, as typed enums: message
//! types (RFC 4271 §4.1, RFC 2918), NOTIFICATION error codes and their
//! subcodes (RFC 4271 §4.5, §6; RFC 4486, RFC 6608, RFC 7313, RFC 8538,
//! RFC 9687, RFC 9384),
//! path attribute type codes, capability codes (RFC 5492) and AS_TRANS
//! (RFC 6793). As holo-bgp's `packet/iana.rs`: one row per registry entry,
//! with the value on the wire and the name logs and `steer show` print.
//!
//! Each enum lists what Steer knows, not the whole IANA registry: a value
//! outside it is "unknown" to the codec (an unknown attribute is kept or
//! dropped by its flags, an unknown capability kept verbatim), and
//! [`from_u8`](ErrorCode::from_u8) returns `None` for it.

use std::fmt;

/// AS_TRANS (RFC 6793 §9): the 2-octet stand-in for a 4-octet AS.
pub const AS_TRANS: u16 = 23456;

/// Declares one registry: a `#[repr(u8)]` enum with each entry's wire
/// value and name (which is also its doc; more doc lines may follow),
/// `from_u8`, `name`, `u8::from` and `Display`.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $label:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name {
            $( #[doc = $label] $(#[$vmeta])* $variant = $value, )*
        }

        impl $name {
            /// Every entry, in registry order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The entry with this wire value, `None` when Steer does not
            /// know it.
            pub const fn from_u8(value: u8) -> Option<$name> {
                match value {
                    $( $value => Some($name::$variant), )*
                    _ => None,
                }
            }

            /// The entry's name, for logs and `steer show`.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )*
                }
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v as u8
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

registry! {
    /// BGP message types (RFC 4271 §4.1, RFC 2918 §3).
    pub enum MessageType {
        Open = 1 => "OPEN",
        Update = 2 => "UPDATE",
        Notification = 3 => "NOTIFICATION",
        Keepalive = 4 => "KEEPALIVE",
        RouteRefresh = 5 => "ROUTE-REFRESH",
    }
}

registry! {
    /// Path attribute type codes (RFC 4271 §5, RFC 1997, RFC 4360, RFC
    /// 4456, RFC 4760, RFC 6793, RFC 8092): the attributes Steer knows.
    pub enum AttrType {
        Origin = 1 => "ORIGIN",
        AsPath = 2 => "AS_PATH",
        NextHop = 3 => "NEXT_HOP",
        MultiExitDisc = 4 => "MULTI_EXIT_DISC",
        LocalPref = 5 => "LOCAL_PREF",
        AtomicAggregate = 6 => "ATOMIC_AGGREGATE",
        Aggregator = 7 => "AGGREGATOR",
        Communities = 8 => "COMMUNITIES",
        OriginatorId = 9 => "ORIGINATOR_ID",
        ClusterList = 10 => "CLUSTER_LIST",
        MpReachNlri = 14 => "MP_REACH_NLRI",
        MpUnreachNlri = 15 => "MP_UNREACH_NLRI",
        ExtendedCommunities = 16 => "EXTENDED_COMMUNITIES",
        As4Path = 17 => "AS4_PATH",
        As4Aggregator = 18 => "AS4_AGGREGATOR",
        LargeCommunity = 32 => "LARGE_COMMUNITY",
    }
}

impl AttrType {
    /// The name of the attribute with this type code, "unknown" for a code
    /// Steer does not know.
    pub fn name_of(type_code: u8) -> &'static str {
        AttrType::from_u8(type_code).map_or("unknown", AttrType::name)
    }
}

registry! {
    /// Capability codes (RFC 5492 §4): the capabilities Steer knows.
    pub enum CapabilityCode {
        /// (Multiprotocol Extensions, RFC 4760)
        Multiprotocol = 1 => "Multiprotocol",
        /// (RFC 2918)
        RouteRefresh = 2 => "Route Refresh",
        /// (RFC 8654)
        ExtendedMessage = 6 => "Extended Message",
        /// (RFC 4724)
        GracefulRestart = 64 => "Graceful Restart",
        /// (Support for 4-octet AS number, RFC 6793)
        FourOctetAs = 65 => "4-octet AS",
        /// (RFC 7911)
        AddPath = 69 => "ADD-PATH",
        /// (RFC 7313)
        EnhancedRouteRefresh = 70 => "Enhanced Route Refresh",
    }
}

registry! {
    /// OPEN optional parameter types (RFC 5492 §4, RFC 9072 §2).
    pub enum ParameterType {
        Capabilities = 2 => "Capabilities",
        /// (in Non-Ext OP Len and Non-Ext OP Type, the marker of the
        /// extended optional parameters format of RFC 9072)
        ExtendedLength = 255 => "Extended Length",
    }
}

registry! {
    /// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5, RFC 9687 §3).
    pub enum ErrorCode {
        MessageHeader = 1 => "Message Header Error",
        OpenMessage = 2 => "OPEN Message Error",
        UpdateMessage = 3 => "UPDATE Message Error",
        HoldTimerExpired = 4 => "Hold Timer Expired",
        Fsm = 5 => "Finite State Machine Error",
        Cease = 6 => "Cease",
        /// (RFC 7313)
        RouteRefresh = 7 => "ROUTE-REFRESH Message Error",
        /// (RFC 9687: the peer stopped taking our messages)
        SendHoldTimerExpired = 8 => "Send Hold Timer Expired",
    }
}

registry! {
    /// Message Header Error subcodes (RFC 4271 §6.1).
    pub enum HeaderSubcode {
        /// (the marker is not all ones)
        NotSynchronized = 1 => "Connection Not Synchronized",
        /// (data: the 2-octet length field)
        BadLength = 2 => "Bad Message Length",
        /// (data: the type octet)
        BadType = 3 => "Bad Message Type",
    }
}

registry! {
    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
    pub enum OpenSubcode {
        /// (for a malformed capability or parameter)
        Unspecific = 0 => "Unspecific",
        /// (data: the largest supported version, 2 octets)
        UnsupportedVersion = 1 => "Unsupported Version Number",
        BadPeerAs = 2 => "Bad Peer AS",
        BadBgpId = 3 => "Bad BGP Identifier",
        UnsupportedOptionalParameter = 4 => "Unsupported Optional Parameter",
        UnacceptableHoldTime = 6 => "Unacceptable Hold Time",
        /// (RFC 5492; data: the capabilities)
        UnsupportedCapability = 7 => "Unsupported Capability",
    }
}

registry! {
    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    pub enum UpdateSubcode {
        MalformedAttributeList = 1 => "Malformed Attribute List",
        /// (data: the attribute)
        UnrecognizedWellKnown = 2 => "Unrecognized Well-known Attribute",
        /// (data: the type code)
        MissingWellKnown = 3 => "Missing Well-known Attribute",
        /// (data: the attribute)
        AttributeFlags = 4 => "Attribute Flags Error",
        /// (data: the attribute)
        AttributeLength = 5 => "Attribute Length Error",
        InvalidOrigin = 6 => "Invalid ORIGIN Attribute",
        InvalidNextHop = 8 => "Invalid NEXT_HOP Attribute",
        OptionalAttribute = 9 => "Optional Attribute Error",
        InvalidNetworkField = 10 => "Invalid Network Field",
        MalformedAsPath = 11 => "Malformed AS_PATH",
    }
}

registry! {
    /// Finite State Machine Error subcodes (RFC 6608).
    pub enum FsmSubcode {
        /// (RFC 6608: Unspecified Error)
        Unspecified = 0 => "Unspecific",
        /// (RFC 6608: Receive Unexpected Message in OpenSent State)
        UnexpectedInOpenSent = 1 => "Unexpected Message in OpenSent",
        /// (RFC 6608: Receive Unexpected Message in OpenConfirm State)
        UnexpectedInOpenConfirm = 2 => "Unexpected Message in OpenConfirm",
        /// (RFC 6608: Receive Unexpected Message in Established State)
        UnexpectedInEstablished = 3 => "Unexpected Message in Established",
    }
}

registry! {
    /// Cease subcodes (RFC 4486, RFC 8203/9003, RFC 8538, RFC 9384).
    pub enum CeaseSubcode {
        /// (data: AFI(2) SAFI(1) limit(4))
        MaxPrefixes = 1 => "Maximum Number of Prefixes Reached",
        /// (data: an optional shutdown communication, RFC 9003)
        AdminShutdown = 2 => "Administrative Shutdown",
        PeerDeconfigured = 3 => "Peer De-configured",
        /// (data: an optional shutdown communication, RFC 9003)
        AdminReset = 4 => "Administrative Reset",
        ConnectionRejected = 5 => "Connection Rejected",
        OtherConfigChange = 6 => "Other Configuration Change",
        CollisionResolution = 7 => "Connection Collision Resolution",
        OutOfResources = 8 => "Out of Resources",
        /// (RFC 8538)
        HardReset = 9 => "Hard Reset",
        /// (RFC 9384: the BFD session with the peer went down)
        BfdDown = 10 => "BFD Down",
    }
}

registry! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
    pub enum RouteRefreshSubcode {
        InvalidMessageLength = 1 => "Invalid Message Length",
    }
}

/// One error of the NOTIFICATION registries: a code with one of its
/// subcodes, so that no code goes out with another code's subcode.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum NotificationError {
    /// Message Header Error.
    MessageHeader(HeaderSubcode),
    /// OPEN Message Error.
    OpenMessage(OpenSubcode),
    /// UPDATE Message Error.
    UpdateMessage(UpdateSubcode),
    /// Hold Timer Expired (subcode 0).
    HoldTimerExpired,
    /// Finite State Machine Error.
    Fsm(FsmSubcode),
    /// Cease.
    Cease(CeaseSubcode),
    /// ROUTE-REFRESH Message Error.
    RouteRefresh(RouteRefreshSubcode),
    /// Send Hold Timer Expired (RFC 9687, subcode 0).
    SendHoldTimerExpired,
}

impl NotificationError {
    /// The error code.
    pub const fn code(self) -> ErrorCode {
        match self {
            NotificationError::MessageHeader(_) => ErrorCode::MessageHeader,
            NotificationError::OpenMessage(_) => ErrorCode::OpenMessage,
            NotificationError::UpdateMessage(_) => ErrorCode::UpdateMessage,
            NotificationError::HoldTimerExpired => ErrorCode::HoldTimerExpired,
            NotificationError::Fsm(_) => ErrorCode::Fsm,
            NotificationError::Cease(_) => ErrorCode::Cease,
            NotificationError::RouteRefresh(_) => ErrorCode::RouteRefresh,
            NotificationError::SendHoldTimerExpired => ErrorCode::SendHoldTimerExpired,
        }
    }

    /// The subcode as on the wire.
    pub const fn subcode(self) -> u8 {
        match self {
            NotificationError::MessageHeader(s) => s as u8,
            NotificationError::OpenMessage(s) => s as u8,
            NotificationError::UpdateMessage(s) => s as u8,
            NotificationError::HoldTimerExpired => 0,
            NotificationError::Fsm(s) => s as u8,
            NotificationError::Cease(s) => s as u8,
            NotificationError::RouteRefresh(s) => s as u8,
            NotificationError::SendHoldTimerExpired => 0,
        }
    }

    /// The names of a code and subcode as on the wire, e.g. ("Cease",
    /// "Maximum Number of Prefixes Reached"); "Unknown error" and
    /// "Unspecific" for values outside the registries.
    pub fn names(code: u8, subcode: u8) -> (&'static str, &'static str) {
        let sub = match ErrorCode::from_u8(code) {
            Some(ErrorCode::MessageHeader) => {
                HeaderSubcode::from_u8(subcode).map(HeaderSubcode::name)
            }
            Some(ErrorCode::OpenMessage) => OpenSubcode::from_u8(subcode).map(OpenSubcode::name),
            Some(ErrorCode::UpdateMessage) => {
                UpdateSubcode::from_u8(subcode).map(UpdateSubcode::name)
            }
            Some(ErrorCode::HoldTimerExpired | ErrorCode::SendHoldTimerExpired) | None => None,
            Some(ErrorCode::Fsm) => FsmSubcode::from_u8(subcode).map(FsmSubcode::name),
            Some(ErrorCode::Cease) => CeaseSubcode::from_u8(subcode).map(CeaseSubcode::name),
            Some(ErrorCode::RouteRefresh) => {
                RouteRefreshSubcode::from_u8(subcode).map(RouteRefreshSubcode::name)
            }
        };
        (
            ErrorCode::from_u8(code).map_or("Unknown error", ErrorCode::name),
            sub.unwrap_or("Unspecific"),
        )
    }
}

macro_rules! subcode_of {
    ($($subcode:ident => $variant:ident),* $(,)?) => {
        $(
            impl From<$subcode> for NotificationError {
                fn from(s: $subcode) -> NotificationError {
                    NotificationError::$variant(s)
                }
            }
        )*
    };
}

subcode_of! {
    HeaderSubcode => MessageHeader,
    OpenSubcode => OpenMessage,
    UpdateSubcode => UpdateMessage,
    FsmSubcode => Fsm,
    CeaseSubcode => Cease,
    RouteRefreshSubcode => RouteRefresh,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_entry_round_trips_through_its_wire_value() {
        fn check<T: Copy + PartialEq + fmt::Debug + Into<u8>>(
            all: &[T],
            from: fn(u8) -> Option<T>,
        ) {
            for &e in all {
                assert_eq!(from(e.into()), Some(e));
            }
        }
        check(MessageType::ALL, MessageType::from_u8);
        check(AttrType::ALL, AttrType::from_u8);
        check(CapabilityCode::ALL, CapabilityCode::from_u8);
        check(ParameterType::ALL, ParameterType::from_u8);
        check(ErrorCode::ALL, ErrorCode::from_u8);
        check(HeaderSubcode::ALL, HeaderSubcode::from_u8);
        check(OpenSubcode::ALL, OpenSubcode::from_u8);
        check(UpdateSubcode::ALL, UpdateSubcode::from_u8);
        check(FsmSubcode::ALL, FsmSubcode::from_u8);
        check(CeaseSubcode::ALL, CeaseSubcode::from_u8);
        check(RouteRefreshSubcode::ALL, RouteRefreshSubcode::from_u8);
    }

    #[test]
    fn a_notification_error_is_its_code_with_its_subcode() {
        let e = NotificationError::from(CeaseSubcode::HardReset);
        assert_eq!((u8::from(e.code()), e.subcode()), (6, 9));
        assert_eq!(NotificationError::HoldTimerExpired.subcode(), 0);
        let e = NotificationError::SendHoldTimerExpired;
        assert_eq!((u8::from(e.code()), e.subcode()), (8, 0));
        assert_eq!(
            NotificationError::names(8, 0),
            ("Send Hold Timer Expired", "Unspecific")
        );
        assert_eq!(NotificationError::names(6, 9), ("Cease", "Hard Reset"));
        assert_eq!(NotificationError::names(6, 10), ("Cease", "BFD Down"));
        assert_eq!(
            NotificationError::names(9, 1),
            ("Unknown error", "Unspecific")
        );
        assert_eq!(AttrType::name_of(26), "unknown");
    }
}
