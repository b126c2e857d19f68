//! NOTIFICATION content (RFC 4271 §4.5, §6; RFC 9003 shutdown
//! communication) and the codec's error types. The codes, subcodes and
//! their names are the registries of [`super::iana`].
//!
//! Every decode failure that must end the session carries the exact
//! NOTIFICATION (code, subcode, data) to send; the reason string is for logs.

use super::iana::{
    CeaseSubcode, FsmSubcode, HeaderSubcode, NotificationError, OpenSubcode, RouteRefreshSubcode,
    UpdateSubcode,
};
use std::fmt;

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
    /// A NOTIFICATION with no data, code and subcode as on the wire: what a
    /// peer sent, or what a test expects. Steer's own errors are built
    /// from their registry entry, by [`Notification::error`] or `from`.
    pub fn new(code: u8, subcode: u8) -> Notification {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A NOTIFICATION with data, code and subcode as on the wire.
    pub fn with_data(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// The NOTIFICATION of `error` with `data`.
    pub fn error(error: impl Into<NotificationError>, data: Vec<u8>) -> Notification {
        let error = error.into();
        Notification::with_data(error.code().into(), error.subcode(), data)
    }

    /// True when this NOTIFICATION is `error`, whatever its data.
    pub fn is(&self, error: impl Into<NotificationError>) -> bool {
        let error = error.into();
        (self.code, self.subcode) == (error.code().into(), error.subcode())
    }

    /// Cease with a shutdown communication (RFC 9003): a length octet and
    /// up to 255 octets of UTF-8.
    pub fn cease_with_message(subcode: CeaseSubcode, message: &str) -> Notification {
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
        Notification::error(subcode, data)
    }

    /// The shutdown communication of a Cease/2 or Cease/4, if any.
    pub fn shutdown_message(&self) -> Option<String> {
        if !self.is(CeaseSubcode::AdminShutdown) && !self.is(CeaseSubcode::AdminReset) {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok().map(str::to_string)
    }

    /// Human name of the code and subcode, e.g. "Cease / Maximum Number of
    /// Prefixes Reached".
    pub fn describe(&self) -> String {
        let (c, s) = NotificationError::names(self.code, self.subcode);
        format!("{c} / {s}")
    }
}

/// `Notification::from(CeaseSubcode::HardReset)`: an error of the
/// registry, with no data.
macro_rules! notification_from {
    ($($error:ty),* $(,)?) => {
        $(
            impl From<$error> for Notification {
                fn from(error: $error) -> Notification {
                    Notification::error(error, Vec::new())
                }
            }
        )*
    };
}

notification_from!(
    NotificationError,
    HeaderSubcode,
    OpenSubcode,
    UpdateSubcode,
    FsmSubcode,
    CeaseSubcode,
    RouteRefreshSubcode,
);

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
    /// An error that ends the session with `error` and `data`.
    pub fn new(
        error: impl Into<NotificationError>,
        data: Vec<u8>,
        reason: impl Into<String>,
    ) -> DecodeError {
        DecodeError {
            notification: Notification::error(error, data),
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
        let n = Notification::cease_with_message(CeaseSubcode::AdminShutdown, "steer stopping");
        assert_eq!(n.data[0], 14);
        assert_eq!(n.shutdown_message().as_deref(), Some("steer stopping"));
        assert_eq!(
            n.to_string(),
            "Cease / Administrative Shutdown (6/2): \"steer stopping\""
        );
        let long = "é".repeat(200);
        let n = Notification::cease_with_message(CeaseSubcode::AdminShutdown, &long);
        assert_eq!(n.data[0], 254);
        assert!(n.shutdown_message().is_some());
    }

    #[test]
    fn describe_names_code_and_subcode() {
        let n = Notification::error(CeaseSubcode::MaxPrefixes, vec![0, 1, 1, 0, 0, 3, 0xe8]);
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
