//! BGP error codes (RFC 4271 §4.5, §6; RFC 4486 Cease subcodes; RFC 7313;
//! RFC 9003 shutdown communication) and the codec's error type.
//!
//! Every decode failure that must end the session carries the exact
//! NOTIFICATION (code, subcode, data) to send; the reason string is for logs.

use std::fmt;

/// NOTIFICATION error codes (RFC 4271 §4.5).
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    /// Connection Not Synchronized (bad marker).
    pub const NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length; data: the 2-octet length field.
    pub const BAD_LENGTH: u8 = 2;
    /// Bad Message Type; data: the type octet.
    pub const BAD_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open {
    /// Unspecific (used for malformed capabilities).
    pub const UNSPECIFIC: u8 = 0;
    /// Unsupported Version Number; data: 2-octet largest supported version.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_ID: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492); data: the capabilities.
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute; data: the attribute.
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    /// Missing Well-known Attribute; data: the type code.
    pub const MISSING_WELL_KNOWN: u8 = 3;
    /// Attribute Flags Error; data: the attribute.
    pub const ATTRIBUTE_FLAGS: u8 = 4;
    /// Attribute Length Error; data: the attribute.
    pub const ATTRIBUTE_LENGTH: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Cease subcodes (RFC 4486, RFC 8203/9003).
pub mod cease {
    /// Maximum Number of Prefixes Reached; data: AFI(2) SAFI(1) limit(4).
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown; data: optional shutdown communication.
    pub const ADMIN_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset; data: optional shutdown communication.
    pub const ADMIN_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIG_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
}

/// FSM Error subcodes (RFC 6608).
pub mod fsm {
    /// Unspecified Error.
    pub const UNSPECIFIED: u8 = 0;
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// A NOTIFICATION's content: what to send, or what was received.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data field.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with no data.
    pub fn new(code: u8, subcode: u8) -> Notification {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A NOTIFICATION with data.
    pub fn with_data(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease with a shutdown communication (RFC 9003): a length octet and
    /// up to 255 octets of UTF-8.
    pub fn cease_with_message(subcode: u8, message: &str) -> Notification {
        let mut text = message.as_bytes();
        if text.len() > 255 {
            let mut end = 255;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            text = &text[..end];
        }
        let mut data = Vec::with_capacity(text.len() + 1);
        data.push(text.len() as u8);
        data.extend_from_slice(text);
        Notification::with_data(code::CEASE, subcode, data)
    }

    /// The shutdown communication of a Cease/2 or Cease/4, if any.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != code::CEASE
            || !matches!(self.subcode, cease::ADMIN_SHUTDOWN | cease::ADMIN_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok().map(str::to_string)
    }

    /// Human name of the code and subcode, e.g. "Cease / Maximum Number of
    /// Prefixes Reached".
    pub fn describe(&self) -> String {
        let (c, s) = names(self.code, self.subcode);
        format!("{c} / {s}")
    }
}

fn names(c: u8, s: u8) -> (&'static str, &'static str) {
    let code_name = match c {
        code::MESSAGE_HEADER => "Message Header Error",
        code::OPEN_MESSAGE => "OPEN Message Error",
        code::UPDATE_MESSAGE => "UPDATE Message Error",
        code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
        code::FSM => "Finite State Machine Error",
        code::CEASE => "Cease",
        code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
        _ => "Unknown error",
    };
    let sub = match (c, s) {
        (code::MESSAGE_HEADER, header::NOT_SYNCHRONIZED) => "Connection Not Synchronized",
        (code::MESSAGE_HEADER, header::BAD_LENGTH) => "Bad Message Length",
        (code::MESSAGE_HEADER, header::BAD_TYPE) => "Bad Message Type",
        (code::OPEN_MESSAGE, open::UNSUPPORTED_VERSION) => "Unsupported Version Number",
        (code::OPEN_MESSAGE, open::BAD_PEER_AS) => "Bad Peer AS",
        (code::OPEN_MESSAGE, open::BAD_BGP_ID) => "Bad BGP Identifier",
        (code::OPEN_MESSAGE, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
            "Unsupported Optional Parameter"
        }
        (code::OPEN_MESSAGE, open::UNACCEPTABLE_HOLD_TIME) => "Unacceptable Hold Time",
        (code::OPEN_MESSAGE, open::UNSUPPORTED_CAPABILITY) => "Unsupported Capability",
        (code::UPDATE_MESSAGE, update::MALFORMED_ATTRIBUTE_LIST) => "Malformed Attribute List",
        (code::UPDATE_MESSAGE, update::UNRECOGNIZED_WELL_KNOWN) => {
            "Unrecognized Well-known Attribute"
        }
        (code::UPDATE_MESSAGE, update::MISSING_WELL_KNOWN) => "Missing Well-known Attribute",
        (code::UPDATE_MESSAGE, update::ATTRIBUTE_FLAGS) => "Attribute Flags Error",
        (code::UPDATE_MESSAGE, update::ATTRIBUTE_LENGTH) => "Attribute Length Error",
        (code::UPDATE_MESSAGE, update::INVALID_ORIGIN) => "Invalid ORIGIN Attribute",
        (code::UPDATE_MESSAGE, update::INVALID_NEXT_HOP) => "Invalid NEXT_HOP Attribute",
        (code::UPDATE_MESSAGE, update::OPTIONAL_ATTRIBUTE) => "Optional Attribute Error",
        (code::UPDATE_MESSAGE, update::INVALID_NETWORK_FIELD) => "Invalid Network Field",
        (code::UPDATE_MESSAGE, update::MALFORMED_AS_PATH) => "Malformed AS_PATH",
        (code::CEASE, cease::MAX_PREFIXES) => "Maximum Number of Prefixes Reached",
        (code::CEASE, cease::ADMIN_SHUTDOWN) => "Administrative Shutdown",
        (code::CEASE, cease::PEER_DECONFIGURED) => "Peer De-configured",
        (code::CEASE, cease::ADMIN_RESET) => "Administrative Reset",
        (code::CEASE, cease::CONNECTION_REJECTED) => "Connection Rejected",
        (code::CEASE, cease::OTHER_CONFIG_CHANGE) => "Other Configuration Change",
        (code::CEASE, cease::COLLISION_RESOLUTION) => "Connection Collision Resolution",
        (code::CEASE, cease::OUT_OF_RESOURCES) => "Out of Resources",
        (code::CEASE, cease::HARD_RESET) => "Hard Reset",
        (code::FSM, fsm::UNEXPECTED_IN_OPENSENT) => "Unexpected Message in OpenSent",
        (code::FSM, fsm::UNEXPECTED_IN_OPENCONFIRM) => "Unexpected Message in OpenConfirm",
        (code::FSM, fsm::UNEXPECTED_IN_ESTABLISHED) => "Unexpected Message in Established",
        (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
        _ => "Unspecific",
    };
    (code_name, sub)
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.describe(), self.code, self.subcode)?;
        if let Some(m) = self.shutdown_message() {
            write!(f, ": \"{m}\"")?;
        } else if !self.data.is_empty() {
            write!(f, " data ")?;
            for b in self.data.iter().take(32) {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A message that cannot be accepted: the session ends with `notification`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: sending {notification}")]
pub struct DecodeError {
    /// The NOTIFICATION the RFC names for this error.
    pub notification: Notification,
    /// What was wrong, for logs.
    pub reason: String,
}

impl DecodeError {
    /// An error that ends the session with `code`/`subcode` and `data`.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            notification: Notification::with_data(code, subcode, data),
            reason: reason.into(),
        }
    }
}

/// A message that cannot be encoded as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// One item alone exceeds the message size limit.
    #[error("{what} does not fit in a {limit}-octet message")]
    TooLarge { what: &'static str, limit: usize },
    /// The next hop's family cannot carry this NLRI family.
    #[error("next hop {next_hop} cannot be sent for {family} NLRI")]
    NextHopFamily {
        next_hop: std::net::IpAddr,
        family: &'static str,
    },
    /// A required attribute is absent.
    #[error("missing {0} attribute")]
    Missing(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trips_and_truncates_on_char_boundary() {
        let n = Notification::cease_with_message(cease::ADMIN_SHUTDOWN, "steer stopping");
        assert_eq!(n.data[0], 14);
        assert_eq!(n.shutdown_message().as_deref(), Some("steer stopping"));
        assert_eq!(
            n.to_string(),
            "Cease / Administrative Shutdown (6/2): \"steer stopping\""
        );
        let long = "é".repeat(200);
        let n = Notification::cease_with_message(cease::ADMIN_SHUTDOWN, &long);
        assert_eq!(n.data[0], 254);
        assert!(n.shutdown_message().is_some());
    }

    #[test]
    fn describe_names_code_and_subcode() {
        let n = Notification::with_data(
            code::CEASE,
            cease::MAX_PREFIXES,
            vec![0, 1, 1, 0, 0, 3, 0xe8],
        );
        assert_eq!(
            n.to_string(),
            "Cease / Maximum Number of Prefixes Reached (6/1) data 000101000003e8"
        );
        assert_eq!(
            Notification::new(1, 1).describe(),
            "Message Header Error / Connection Not Synchronized"
        );
    }
}
