//! Parses `birdc` output: `show route all` into [`Route`]s (every path,
//! ADD-PATH ones included) and `show protocols all` into session facts.

use std::net::IpAddr;

use crate::route::{Route, SessionState};
use crate::wire::unhex;

/// Parses `birdc show route all ...` text.
///
/// `next_hops` is the `BGP.next_hop` attribute when present (what the peer
/// sent), else the `via` gateways; `source` is the protocol name.
pub fn parse_routes(text: &str) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut prefix = String::new();
    let mut current: Option<Route> = None;
    let mut vias: Vec<IpAddr> = Vec::new();
    let mut bgp_next_hop: Vec<IpAddr> = Vec::new();
    let finish =
        |r: Option<Route>, vias: &mut Vec<IpAddr>, nh: &mut Vec<IpAddr>, out: &mut Vec<Route>| {
            if let Some(mut r) = r {
                r.next_hops = if nh.is_empty() {
                    vias.clone()
                } else {
                    nh.clone()
                };
                out.push(r);
            }
            vias.clear();
            nh.clear();
        };
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            let Some(r) = current.as_mut() else { continue };
            attribute_line(line.trim(), r, &mut vias, &mut bgp_next_hop);
            continue;
        }
        if !line.contains('[') {
            continue;
        }
        finish(current.take(), &mut vias, &mut bgp_next_hop, &mut routes);
        if !line.starts_with(' ') {
            prefix = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
        current = Some(header(&prefix, line));
    }
    finish(current.take(), &mut vias, &mut bgp_next_hop, &mut routes);
    routes
}

fn header(prefix: &str, line: &str) -> Route {
    let open = line.find('[').unwrap_or(0);
    let close = line[open..].find(']').map_or(line.len(), |i| open + i);
    let source = line[open + 1..close]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let best = line[close..].split_whitespace().nth(1) == Some("*");
    Route {
        prefix: prefix.to_string(),
        source,
        best,
        ..Route::default()
    }
}

fn attribute_line(line: &str, r: &mut Route, vias: &mut Vec<IpAddr>, nh: &mut Vec<IpAddr>) {
    if let Some(rest) = line.strip_prefix("via ") {
        if let Some(ip) = rest.split_whitespace().next().and_then(|w| w.parse().ok()) {
            vias.push(ip);
        }
        return;
    }
    let Some(rest) = line.strip_prefix("BGP.") else {
        return;
    };
    let Some((name, value)) = rest.split_once(':') else {
        return;
    };
    let value = value.trim();
    match name {
        "origin" => r.origin = Some(value.to_ascii_lowercase()),
        "as_path" => {
            r.as_path = value
                .split(|c: char| c.is_whitespace() || c == '{' || c == '}')
                .filter_map(|w| w.parse().ok())
                .collect()
        }
        "next_hop" => {
            *nh = value
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        }
        "local_pref" => r.local_pref = value.parse().ok(),
        "med" => r.med = value.parse().ok(),
        "community" => {
            r.communities = tuples(value)
                .into_iter()
                .filter_map(|t| Some((t.first()?.parse().ok()?, t.get(1)?.parse().ok()?)))
                .collect()
        }
        "large_community" => {
            r.large_communities = tuples(value)
                .into_iter()
                .filter_map(|t| {
                    Some((
                        t.first()?.parse().ok()?,
                        t.get(1)?.parse().ok()?,
                        t.get(2)?.parse().ok()?,
                    ))
                })
                .collect()
        }
        other => {
            let code = other.split_whitespace().next().unwrap_or_default();
            if let (Ok(code), Ok(bytes)) = (u8::from_str_radix(code, 16), unhex(value)) {
                r.unknown.push((code, bytes));
            }
        }
    }
}

/// Splits "(a,b) (c, d, e)" into [["a","b"],["c","d","e"]].
fn tuples(value: &str) -> Vec<Vec<String>> {
    value
        .split('(')
        .filter_map(|chunk| chunk.split_once(')').map(|(inner, _)| inner))
        .map(|inner| inner.split(',').map(|s| s.trim().to_string()).collect())
        .collect()
}

/// The `BGP state:` of `birdc show protocols all NAME`, or the protocol's
/// state column (e.g. "down") when it has none.
pub fn parse_state(text: &str) -> Option<SessionState> {
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("BGP state:") {
            return Some(SessionState::parse(rest));
        }
    }
    text.lines()
        .find(|l| !l.starts_with("BIRD ") && !l.starts_with("Name ") && !l.starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(3))
        .map(SessionState::parse)
}

/// The `Last error:` of `birdc show protocols all NAME`, if any.
pub fn parse_last_error(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Last error:"))
        .map(|s| s.trim().to_string())
}

/// One row of `birdc show bfd sessions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdSession {
    /// The neighbour's address.
    pub address: IpAddr,
    /// The interface, `---` for multihop.
    pub interface: String,
    /// `Up`, `Down`, `Init` or `AdminDown`.
    pub state: String,
    /// When the state was entered (BIRD's clock, as printed).
    pub since: String,
    /// The negotiated transmit interval, seconds as printed.
    pub interval: String,
    /// The detection time, seconds as printed.
    pub timeout: String,
}

/// Parses `birdc show bfd sessions`.
pub fn parse_bfd_sessions(text: &str) -> Vec<BfdSession> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let address = w.first()?.parse().ok()?;
            match w[1..] {
                [interface, state, since, interval, timeout] => Some(BfdSession {
                    address,
                    interface: interface.to_string(),
                    state: state.to_string(),
                    since: since.to_string(),
                    interval: interval.to_string(),
                    timeout: timeout.to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_sessions_are_parsed_row_by_row() {
        let text = "BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
10.1.0.4                  eth0       Up         08:43:16.014    0.300    0.900
fd00::4                   ---        Down       08:43:15.001    1.000    0.000
";
        let s = parse_bfd_sessions(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].address.to_string(), "10.1.0.4");
        assert_eq!(
            (
                s[0].state.as_str(),
                s[0].interval.as_str(),
                s[0].timeout.as_str()
            ),
            ("Up", "0.300", "0.900")
        );
        assert_eq!(s[1].interface, "---");
    }

    const SHOW: &str = "BIRD 2.0.12 ready.
Table master4:
10.250.0.0/16        unicast [gobgp 06:23:27.761] * (100) [AS65020i]
\tvia 10.1.0.30 on lan0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65515 65020 {65001 65002}
\tBGP.next_hop: 10.1.0.20
\tBGP.local_pref: 100
\tBGP.community: (65010,100) (65010,200)
\tBGP.large_community: (65010, 1, 2)
\tBGP.f0 [t]: de ad be ef
                     unicast [gobgp 06:23:28.000 from 10.1.0.30] (100) [AS65020i]
\tvia 10.1.0.40 on lan0
\tType: BGP univ
\tBGP.origin: Incomplete
\tBGP.as_path: 65515
\tBGP.next_hop: 10.1.0.40
192.0.2.0/24         blackhole [announce 06:23:24.472] * (200)
\tType: static univ
";

    #[test]
    fn every_path_of_a_prefix_is_a_route() {
        let routes = parse_routes(SHOW);
        assert_eq!(routes.len(), 3);
        let first = &routes[0];
        assert_eq!(first.prefix, "10.250.0.0/16");
        assert_eq!(first.source, "gobgp");
        assert!(first.best);
        assert_eq!(first.next_hop_strings(), vec!["10.1.0.20"]);
        assert_eq!(first.as_path, vec![65515, 65020, 65001, 65002]);
        assert_eq!(first.origin.as_deref(), Some("igp"));
        assert_eq!(first.local_pref, Some(100));
        assert_eq!(first.communities, vec![(65010, 100), (65010, 200)]);
        assert_eq!(first.large_communities, vec![(65010, 1, 2)]);
        assert_eq!(first.unknown, vec![(0xf0, vec![0xde, 0xad, 0xbe, 0xef])]);
        let second = &routes[1];
        assert_eq!(second.prefix, "10.250.0.0/16");
        assert!(!second.best);
        assert_eq!(second.next_hop_strings(), vec!["10.1.0.40"]);
        assert_eq!(routes[2].prefix, "192.0.2.0/24");
        assert_eq!(routes[2].source, "announce");
        assert!(routes[2].next_hops.is_empty());
    }

    #[test]
    fn state_and_last_error_come_from_show_protocols_all() {
        let text = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
exa        BGP        ---        start  06:24:38.940  Idle          Received: Optional attribute error
  BGP state:          Idle
    Neighbor address: 10.1.0.40
    Last error:       Received: Optional attribute error
";
        assert_eq!(parse_state(text), Some(SessionState::Idle));
        assert_eq!(
            parse_last_error(text).as_deref(),
            Some("Received: Optional attribute error")
        );
    }
}
