//! Turns `bgpctl -j` output (OpenBGPD 7) into [`Route`]s and session
//! states.

use serde_json::Value;

use crate::route::{Route, SessionState};

/// The neighbour entry of `bgpctl -j show neighbor` whose `remote_addr` or
/// `description` is `peer`.
pub fn neighbor<'a>(json: &'a Value, peer: &str) -> Option<&'a Value> {
    json.get("neighbors")?.as_array()?.iter().find(|n| {
        n.get("remote_addr").and_then(Value::as_str) == Some(peer)
            || n.get("description").and_then(Value::as_str) == Some(peer)
    })
}

/// The state of neighbour `peer` in `bgpctl -j show neighbor`.
pub fn parse_state(json: &Value, peer: &str) -> Option<SessionState> {
    let state = neighbor(json, peer)?.get("state")?.as_str()?;
    Some(SessionState::parse(state))
}

/// Parses `bgpctl -j show rib detail`: one [`Route`] per entry, `source`
/// the neighbour's address (empty for the daemon's own networks).
pub fn parse_rib(json: &Value) -> Vec<Route> {
    json.get("rib")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(entry)
        .collect()
}

fn entry(e: &Value) -> Route {
    let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
    let num = |k: &str| {
        e.get(k)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let strings = |k: &str| -> Vec<String> {
        e.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let local = text("source") == "internal" && e.get("announced").is_some();
    Route {
        prefix: text("prefix").to_string(),
        source: if local {
            String::new()
        } else {
            e.pointer("/neighbor/remote_addr")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        },
        next_hops: text("exit_nexthop")
            .parse()
            .ok()
            .filter(|ip: &std::net::IpAddr| !ip.is_unspecified())
            .into_iter()
            .collect(),
        as_path: text("aspath")
            .split_whitespace()
            .filter_map(|a| a.parse().ok())
            .collect(),
        origin: Some(text("origin").to_ascii_lowercase()).filter(|o| !o.is_empty()),
        local_pref: num("localpref"),
        med: num("metric"),
        communities: strings("communities")
            .iter()
            .filter_map(|c| {
                let (a, v) = c.split_once(':')?;
                Some((a.parse().ok()?, v.parse().ok()?))
            })
            .collect(),
        large_communities: strings("large_communities")
            .iter()
            .filter_map(|c| {
                let mut f = c.split(':').map(|x| x.parse().ok());
                Some((f.next()??, f.next()??, f.next()??))
            })
            .collect(),
        unknown: Vec::new(),
        best: e.get("best").and_then(Value::as_bool).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RIB: &str = r#"{"rib": [
      {"prefix": "10.252.0.0/16", "aspath": "65030", "exit_nexthop": "10.9.8.1",
       "true_nexthop": "10.9.8.2",
       "neighbor": {"description": "a", "remote_addr": "10.9.8.1", "bgp_id": "10.9.8.1"},
       "valid": true, "best": true, "source": "external", "origin": "IGP", "metric": 50,
       "localpref": 100, "communities": ["65030:7"], "large_communities": ["65030:1:1"]},
      {"prefix": "10.253.0.0/16", "aspath": "", "exit_nexthop": "0.0.0.0",
       "neighbor": {"description": "LOCAL", "remote_addr": "???", "bgp_id": "10.9.8.2"},
       "valid": true, "best": true, "source": "internal", "announced": true,
       "origin": "IGP", "metric": 0, "localpref": 100}
    ]}"#;

    #[test]
    fn a_learned_path_keeps_its_attributes_and_a_local_network_has_no_source() {
        let routes = parse_rib(&serde_json::from_str(RIB).unwrap());
        assert_eq!(
            routes[0],
            Route {
                prefix: "10.252.0.0/16".into(),
                source: "10.9.8.1".into(),
                next_hops: vec!["10.9.8.1".parse().unwrap()],
                as_path: vec![65030],
                origin: Some("igp".into()),
                local_pref: Some(100),
                med: Some(50),
                communities: vec![(65030, 7)],
                large_communities: vec![(65030, 1, 1)],
                unknown: Vec::new(),
                best: true,
            }
        );
        assert_eq!(routes[1].source, "");
        assert!(routes[1].next_hops.is_empty());
    }

    #[test]
    fn the_state_is_found_by_address_or_description() {
        let json: Value = serde_json::from_str(
            r#"{"neighbors": [{"remote_addr": "10.1.0.4", "description": "rs", "state": "Established"}]}"#,
        )
        .unwrap();
        assert_eq!(parse_state(&json, "rs"), Some(SessionState::Established));
        assert_eq!(
            parse_state(&json, "10.1.0.4"),
            Some(SessionState::Established)
        );
        assert_eq!(parse_state(&json, "10.1.0.5"), None);
    }
}
