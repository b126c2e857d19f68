//! Turns `gobgp -j` output into [`Route`]s and session states.

use serde_json::Value;

use crate::route::{Route, SessionState};

/// Parses `gobgp -j global rib` / `gobgp -j neighbor X adj-in`: an object
/// prefix -> array of paths, every path kept (ADD-PATH ones included).
pub fn parse_rib(json: &Value) -> Vec<Route> {
    let mut out = Vec::new();
    for (prefix, paths) in json.as_object().into_iter().flatten() {
        for p in paths.as_array().into_iter().flatten() {
            out.push(path(prefix, p));
        }
    }
    out
}

fn path(prefix: &str, p: &Value) -> Route {
    let mut r = Route {
        prefix: prefix.to_string(),
        source: p
            .get("neighbor-ip")
            .and_then(Value::as_str)
            .filter(|s| *s != "<nil>" && *s != "0.0.0.0")
            .unwrap_or_default()
            .to_string(),
        best: p.get("best").and_then(Value::as_bool).unwrap_or(false),
        ..Route::default()
    };
    for a in p
        .get("attrs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        attribute(a, &mut r);
    }
    r
}

fn attribute(a: &Value, r: &mut Route) {
    let num = |k: &str| a.get(k).and_then(Value::as_u64);
    match num("type").unwrap_or(0) {
        1 => {
            r.origin = num("value").map(|v| match v {
                0 => "igp".to_string(),
                1 => "egp".to_string(),
                _ => "incomplete".to_string(),
            })
        }
        2 => {
            r.as_path = a
                .get("as_paths")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|seg| {
                    seg.get("asns")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|n| n.as_u64().map(|n| n as u32))
                .collect()
        }
        3 => {
            if let Some(ip) = a
                .get("nexthop")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                r.next_hops = vec![ip];
            }
        }
        4 => r.med = num("metric").map(|v| v as u32),
        5 => r.local_pref = num("value").map(|v| v as u32),
        8 => {
            r.communities = a
                .get("communities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|c| ((c >> 16) as u16, (c & 0xffff) as u16))
                .collect()
        }
        14 => {
            if let Some(ip) = a
                .get("nexthop")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                r.next_hops = vec![ip];
            }
        }
        32 => {
            r.large_communities = a
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    Some((
                        c.get("ASN")?.as_u64()? as u32,
                        c.get("LocalData1")?.as_u64()? as u32,
                        c.get("LocalData2")?.as_u64()? as u32,
                    ))
                })
                .collect()
        }
        _ => {}
    }
}

/// The session state of `gobgp -j neighbor X` (`state.session_state`:
/// 1 idle ... 6 established).
pub fn parse_state(json: &Value) -> Option<SessionState> {
    let peer = if json.is_array() { json.get(0)? } else { json };
    let state = peer.get("state")?.get("session_state");
    Some(match state.and_then(Value::as_u64) {
        Some(1) | None => SessionState::Idle,
        Some(2) => SessionState::Connect,
        Some(3) => SessionState::Active,
        Some(4) => SessionState::OpenSent,
        Some(5) => SessionState::OpenConfirm,
        Some(6) => SessionState::Established,
        Some(n) => SessionState::Other(format!("gobgp state {n}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_with_attributes_is_parsed() {
        let json: Value = serde_json::from_str(
            r#"{"10.250.0.0/16":[
              {"nlri":{"prefix":"10.250.0.0/16"},"best":true,"attrs":[{"type":1,"value":0},
               {"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[65010,65010]}]},
               {"type":3,"nexthop":"10.1.0.10"},{"type":8,"communities":[4260495460]},
               {"type":32,"value":[{"ASN":65010,"LocalData1":1,"LocalData2":2}]}],
               "neighbor-ip":"10.1.0.10"},
              {"nlri":{"prefix":"10.250.0.0/16"},"best":false,"attrs":[{"type":3,"nexthop":"10.1.0.20"},
               {"type":5,"value":100}],"neighbor-ip":"10.1.0.4"}]}"#,
        )
        .unwrap();
        let routes = parse_rib(&json);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].as_path, vec![65010, 65010]);
        assert_eq!(routes[0].next_hop_strings(), vec!["10.1.0.10"]);
        assert_eq!(routes[0].communities, vec![(65010, 100)]);
        assert_eq!(routes[0].large_communities, vec![(65010, 1, 2)]);
        assert_eq!(routes[0].origin.as_deref(), Some("igp"));
        assert!(routes[0].best);
        assert_eq!(routes[1].source, "10.1.0.4");
        assert_eq!(routes[1].local_pref, Some(100));
        assert!(!routes[1].best);
    }

    #[test]
    fn session_state_six_is_established() {
        let json: Value = serde_json::from_str(r#"[{"state":{"session_state":6}}]"#).unwrap();
        assert_eq!(parse_state(&json), Some(SessionState::Established));
    }
}
