//! Turns FRR's `show bgp ... json` output into [`Route`]s.

use serde_json::Value;

use crate::route::Route;

/// Parses the `routes` object of `show bgp ipv4 unicast [neighbors X
/// routes] json`: prefix -> array of paths.
pub fn parse_paths(json: &Value) -> Vec<Route> {
    let mut out = Vec::new();
    let Some(routes) = json.get("routes").and_then(Value::as_object) else {
        return out;
    };
    for (prefix, paths) in routes {
        for p in paths.as_array().into_iter().flatten() {
            out.push(path(prefix, p));
        }
    }
    out
}

fn path(prefix: &str, p: &Value) -> Route {
    let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
    let as_path_text = p
        .get("aspath")
        .and_then(|a| a.get("string"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| text("path"));
    Route {
        prefix: prefix.to_string(),
        source: match text("peerId") {
            "(unspec)" => String::new(),
            other => other.to_string(),
        },
        next_hops: p
            .get("nexthops")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|n| n.get("ip")?.as_str()?.parse().ok())
            .collect(),
        as_path: as_numbers(as_path_text),
        origin: p
            .get("origin")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
        local_pref: p.get("locPrf").and_then(Value::as_u64).map(|v| v as u32),
        med: p.get("metric").and_then(Value::as_u64).map(|v| v as u32),
        communities: community_string(p, "community")
            .split_whitespace()
            .filter_map(|c| {
                let (a, b) = c.split_once(':')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect(),
        large_communities: community_string(p, "largeCommunity")
            .split_whitespace()
            .filter_map(|c| {
                let mut it = c.split(':').map(|x| x.parse().ok());
                Some((it.next()??, it.next()??, it.next()??))
            })
            .collect(),
        unknown: Vec::new(),
        best: p.get("bestpath").and_then(Value::as_bool).unwrap_or(false),
    }
}

fn community_string<'a>(p: &'a Value, key: &str) -> &'a str {
    p.get(key)
        .and_then(|c| c.get("string"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn as_numbers(text: &str) -> Vec<u32> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | ','))
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Parses `advertisedRoutes` of `show bgp ipv4 unicast neighbors X
/// advertised-routes json` (one entry per prefix; `path` before the local
/// AS is prepended on the wire).
pub fn parse_advertised(json: &Value) -> Vec<Route> {
    let Some(routes) = json.get("advertisedRoutes").and_then(Value::as_object) else {
        return Vec::new();
    };
    routes
        .iter()
        .map(|(prefix, r)| Route {
            prefix: prefix.clone(),
            next_hops: r
                .get("nextHop")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .into_iter()
                .collect(),
            as_path: as_numbers(r.get("path").and_then(Value::as_str).unwrap_or_default()),
            med: r.get("metric").and_then(Value::as_u64).map(|v| v as u32),
            best: true,
            ..Route::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_peer_next_hop_as_path_and_communities() {
        let json: Value = serde_json::from_str(
            r#"{"routes": {"10.1.0.0/16": [{"valid":true,"bestpath":true,"peerId":"10.1.0.30",
            "path":"65515 65010","origin":"incomplete","locPrf":100,
            "community":{"string":"65515:7 65515:8"},"largeCommunity":{"string":"65515:1:2"},
            "nexthops":[{"ip":"10.1.0.30","afi":"ipv4","used":true}]}]}}"#,
        )
        .unwrap();
        let routes = parse_paths(&json);
        assert_eq!(routes.len(), 1);
        let r = &routes[0];
        assert_eq!(r.prefix, "10.1.0.0/16");
        assert_eq!(r.source, "10.1.0.30");
        assert_eq!(r.next_hop_strings(), vec!["10.1.0.30"]);
        assert_eq!(r.as_path, vec![65515, 65010]);
        assert_eq!(r.communities, vec![(65515, 7), (65515, 8)]);
        assert_eq!(r.large_communities, vec![(65515, 1, 2)]);
        assert_eq!(r.origin.as_deref(), Some("incomplete"));
        assert!(r.best);
    }
}
