//! Reads ExaBGP 4.2's log (written with `exabgp.log.packets=true`): the
//! NOTIFICATIONs it received, the UPDATEs it sent, and whether its session
//! is up.

use crate::route::SessionState;
use crate::wire::{self, Message, Notification, unhex};

fn payload(line: &str, marker: &str) -> Option<Vec<u8>> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let hex = &rest[rest.find(')')? + 1..];
    unhex(hex).ok()
}

/// Every NOTIFICATION ExaBGP received, in order, with its data.
pub fn notifications_received(log: &str) -> Vec<Notification> {
    let mut out = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    let mut from_packets = false;
    for line in log.lines() {
        if let Some(bytes) = payload(line, "received complete TCP payload") {
            if bytes.starts_with(&wire::MARKER) && bytes.len() > wire::HEADER_LEN {
                last = bytes[wire::HEADER_LEN..].to_vec();
            } else if !bytes.starts_with(&wire::MARKER) {
                last = bytes;
            }
        } else if line.contains("<< message of type NOTIFICATION") {
            if let Ok(n) = Notification::from_body(&last) {
                out.push(n);
                from_packets = true;
            }
        } else if let Some(n) = reset_line(line) {
            if !from_packets {
                out.push(n);
            }
            from_packets = false;
        }
    }
    out
}

/// "peer reset, message [notification received (3,9)] ..." (without data),
/// used only when packet logging missed the body.
fn reset_line(line: &str) -> Option<Notification> {
    let rest = &line[line.find("notification received (")? + "notification received (".len()..];
    let inner = &rest[..rest.find(')')?];
    let (code, subcode) = inner.split_once(',')?;
    Some(Notification {
        code: code.trim().parse().ok()?,
        subcode: subcode.trim().parse().ok()?,
        data: Vec::new(),
    })
}

/// Every UPDATE ExaBGP sent (complete messages, End-of-RIB markers included).
pub fn updates_sent(log: &str) -> Vec<Vec<u8>> {
    log.lines()
        .filter_map(|l| payload(l, "sending TCP payload"))
        .filter(|bytes| matches!(wire::split(bytes).first(), Some(Message::Update(_))))
        .collect()
}

/// Established after the last "connected to" line, Idle after a reset or a
/// closed connection, Connect before either.
pub fn session_state(log: &str) -> SessionState {
    let mut state = SessionState::Connect;
    for line in log.lines() {
        if line.contains("connected to peer") {
            state = SessionState::Established;
        } else if line.contains("peer reset")
            || line.contains("lost TCP session")
            || line.contains("closing connection")
        {
            state = SessionState::Idle;
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
Thu, 26 Nov 2026 06:24:38 8182   reactor       connected to peer-1 with outgoing-3 10.1.0.40-10.1.0.10
Thu, 26 Nov 2026 06:24:38 8182   outgoing-3    sending TCP payload (  53) FFFF FFFF FFFF FFFF FFFF FFFF FFFF FFFF 0035 0200 0000 1940 0101 0040 0206 0201 0000 FE10 4003 040A 0100 2880 0E02 0001 19CB 0071 00
Thu, 26 Nov 2026 06:24:38 8182   outgoing-3    sending TCP payload (  19) FFFF FFFF FFFF FFFF FFFF FFFF FFFF FFFF 0013 04
Thu, 26 Nov 2026 06:24:38 8182   outgoing-3    received complete TCP payload (  19) FFFF FFFF FFFF FFFF FFFF FFFF FFFF FFFF 0017 03
Thu, 26 Nov 2026 06:24:38 8182   outgoing-3    received complete TCP payload (   4) 0309 ABCD
Thu, 26 Nov 2026 06:24:38 8182   outgoing-3    << message of type NOTIFICATION
Thu, 26 Nov 2026 06:24:38 8182   outgoing-3    peer reset, message [notification received (3,9)] error[UPDATE message error / Optional Attribute Error]
";

    #[test]
    fn notification_code_subcode_and_data_come_from_packet_log() {
        assert_eq!(
            notifications_received(LOG),
            vec![Notification {
                code: 3,
                subcode: 9,
                data: vec![0xab, 0xcd]
            }]
        );
    }

    #[test]
    fn only_updates_count_as_sent_updates() {
        let sent = updates_sent(LOG);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].len(), 53);
    }

    #[test]
    fn a_reset_after_connect_means_idle() {
        assert_eq!(session_state(LOG), SessionState::Idle);
        let up = LOG.lines().next().unwrap();
        assert_eq!(session_state(up), SessionState::Established);
    }
}
