//! Human tables for `steer show`, built from the same JSON that `--json`
//! prints, so the two views never disagree.

use serde_json::Value;

/// A text table with aligned columns; the last column is not padded.
#[derive(Debug, Default)]
pub struct TextTable {
    rows: Vec<Vec<String>>,
}

impl TextTable {
    /// A table with a header row.
    pub fn new(header: &[&str]) -> TextTable {
        TextTable {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }

    /// Add a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Render with two spaces between columns.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut width = vec![0; cols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 < r.len() {
                    line.push_str(&format!("{c:<w$}  ", w = width[i]));
                } else {
                    line.push_str(c);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(x)) => x.clone(),
        Some(x) => x.to_string(),
    }
}

fn list(v: &Value, k: &str) -> String {
    match v.get(k).and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// `steer show peers`.
pub fn peers(v: &Value) -> String {
    let mut t = TextTable::new(&[
        "NAME",
        "KIND",
        "ADDRESS",
        "ASN",
        "STATE",
        "FOR",
        "BFD",
        "RCVD",
        "ACCEPTED",
        "ADVERTISED",
        "SENDQ",
        "LAST ERROR",
    ]);
    for p in v.as_array().into_iter().flatten() {
        let st = &p["status"];
        let state = s(st, "state");
        let mut state_text = state.clone();
        if p.get("stale").and_then(Value::as_bool) == Some(true) {
            state_text.push_str(" (stale routes kept)");
        }
        t.row(vec![
            s(p, "name"),
            s(p, "kind"),
            s(p, "address"),
            s(p, "asn"),
            state_text,
            crate::util::human_duration(st["state_seconds"].as_u64().unwrap_or(0)),
            p["bfd"]["summary"].as_str().unwrap_or("-").to_string(),
            s(p, "received"),
            s(p, "accepted"),
            s(p, "advertised"),
            send_queue(&st["send_queue"]),
            if state == "Established" {
                String::new()
            } else {
                s(st, "last_error").replace('-', "")
            },
        ]);
    }
    t.render()
}

/// "12.3K/4 2s": bytes and messages waiting, and the oldest one's age;
/// empty when nothing waits.
fn send_queue(q: &Value) -> String {
    let bytes = q["bytes"].as_u64().unwrap_or(0);
    if bytes == 0 {
        return String::new();
    }
    let size = match bytes {
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1}K", b as f64 / 1024.0),
        b => b.to_string(),
    };
    format!(
        "{size}/{} {:.0}s",
        q["messages"].as_u64().unwrap_or(0),
        q["oldest_seconds"].as_f64().unwrap_or(0.0)
    )
}

fn ms(v: &Value, k: &str) -> String {
    match v[k].as_u64() {
        Some(us) if us % 1000 == 0 => format!("{}ms", us / 1000),
        Some(us) => format!("{:.1}ms", us as f64 / 1000.0),
        None => "-".into(),
    }
}

/// `steer show bfd`: every BFD session, its timers as negotiated and why
/// it last went down.
pub fn bfd(v: &Value) -> String {
    let mut t = TextTable::new(&[
        "PEER",
        "ADDRESS",
        "HOP",
        "STATE",
        "REMOTE",
        "FOR",
        "TX",
        "RX",
        "MULT",
        "DETECT",
        "DISCR L/R",
        "TRANSITIONS",
        "LAST DOWN",
        "BGP",
    ]);
    for b in v.as_array().into_iter().flatten() {
        t.row(vec![
            s(b, "peer"),
            s(b, "remote"),
            if b["multihop"].as_bool() == Some(true) {
                format!("multi (ttl>={})", s(b, "min_ttl"))
            } else {
                "single".into()
            },
            s(b, "state"),
            s(b, "remote_state"),
            crate::util::human_duration(b["state_seconds"].as_u64().unwrap_or(0)),
            ms(b, "tx_interval_us"),
            ms(b, "rx_interval_us"),
            format!("{}/{}", s(b, "detect_mult"), s(b, "remote_detect_mult")),
            ms(b, "detection_time_us"),
            format!(
                "{:#x}/{:#x}",
                b["local_disc"].as_u64().unwrap_or(0),
                b["remote_disc"].as_u64().unwrap_or(0)
            ),
            s(b, "transitions"),
            b["last_down_diag"].as_str().unwrap_or("-").to_string(),
            if b["bgp_held"].as_bool() == Some(true) {
                "held down".into()
            } else {
                "free".into()
            },
        ]);
    }
    format!(
        "{}TX/RX: negotiated intervals; MULT: ours/theirs; DETECT: their Detect Mult x the agreed RX interval\n",
        t.render()
    )
}

fn flags(p: &Value) -> String {
    let mut f = String::new();
    if p["best"].as_bool() == Some(true) {
        f.push('*');
    }
    if p["multipath"].as_bool() == Some(true) {
        f.push('=');
    }
    if p["stale"].as_bool() == Some(true) {
        f.push('S');
    }
    if p["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("refused"))
    {
        f.push('R');
    }
    f
}

/// `steer show routes`: every path, best first, with why losers lost.
pub fn routes(v: &Value) -> String {
    let mut t = TextTable::new(&[
        "PREFIX",
        "FLAGS",
        "PEER",
        "NEXT HOP",
        "AS PATH",
        "LP",
        "MED",
        "COMMUNITIES",
        "WHY NOT USED",
    ]);
    let mut n = 0;
    for r in v.as_array().into_iter().flatten() {
        for (i, p) in r["paths"].as_array().into_iter().flatten().enumerate() {
            n += 1;
            let mut comms = list(p, "communities");
            let large = list(p, "large_communities");
            if !large.is_empty() {
                if !comms.is_empty() {
                    comms.push(' ');
                }
                comms.push_str(&large);
            }
            t.row(vec![
                if i == 0 {
                    s(r, "prefix")
                } else {
                    String::new()
                },
                flags(p),
                s(p, "peer"),
                s(p, "next_hop"),
                s(p, "as_path"),
                s(p, "local_pref"),
                s(p, "med"),
                comms,
                p["reason"].as_str().unwrap_or("").to_string(),
            ]);
        }
    }
    format!(
        "{}{n} paths. Flags: * best, = multipath (ECMP) member, S stale (graceful restart), R refused by import policy\n",
        t.render()
    )
}

/// `steer show routes --peer NAME --advertised`.
pub fn advertised(v: &Value) -> String {
    let mut t = TextTable::new(&["PREFIX", "PATH ID", "NEXT HOP", "AS PATH", "COMMUNITIES"]);
    let mut n = 0;
    for a in v.as_array().into_iter().flatten() {
        n += 1;
        let mut comms = list(a, "communities");
        let large = list(a, "large_communities");
        if !large.is_empty() {
            if !comms.is_empty() {
                comms.push(' ');
            }
            comms.push_str(&large);
        }
        t.row(vec![
            s(a, "prefix"),
            s(a, "path_id"),
            s(a, "next_hop"),
            s(a, "as_path"),
            comms,
        ]);
    }
    format!("{}{n} paths advertised\n", t.render())
}

fn want_text(w: &Value) -> String {
    match w {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) => match m.get("forward").and_then(Value::as_array) {
            Some(h) => format!(
                "forward {}",
                h.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => w.to_string(),
        },
        other => other.to_string(),
    }
}

/// `steer show fib` (agent): intent, kernel table and the eBPF LPM map
/// side by side; `!` marks a prefix where they disagree; then the hooks on
/// the VM interfaces and their counters.
pub fn fib(v: &Value) -> String {
    let table = s(v, "table");
    let kernel_head = format!("KERNEL (table {table})");
    let mut t = TextTable::new(&["PREFIX", "INTENT", &kernel_head, "EBPF", ""]);
    let mut mismatches = 0;
    for e in v["entries"].as_array().into_iter().flatten() {
        let bad = e["mismatch"].as_bool() == Some(true);
        mismatches += usize::from(bad);
        t.row(vec![
            s(e, "prefix"),
            want_text(&e["want"]),
            s(e, "kernel"),
            s(e, "xdp"),
            if bad {
                "! mismatch".into()
            } else {
                String::new()
            },
        ]);
    }
    let mut out = t.render();
    out.push_str(&format!("ECMP: {}", s(v, "ecmp")));
    if v["awaiting_sync"].as_bool() == Some(true) {
        out.push_str("; keeping adopted state until every route server has re-sent its routes");
    }
    out.push('\n');
    if mismatches > 0 {
        out.push_str(&format!(
            "{mismatches} prefixes where intent, kernel and eBPF map disagree\n"
        ));
    }
    out.push_str(&format!("Dataplane: {}\n", s(v, "dataplane")));
    let attached = v["attached"].as_array().cloned().unwrap_or_default();
    if attached.is_empty() {
        out.push_str("eBPF hooks: none (the kernel forwards)\n");
        return failures(v, out);
    }
    let mut h = TextTable::new(&["INTERFACE", "KIND", "HOOK", "ATTACH", "LINK", "PROG"]);
    for a in &attached {
        let mode = s(a, "mode");
        h.row(vec![
            s(a, "interface"),
            s(a, "kind"),
            s(a, "hook"),
            if a["ifindex"].as_u64() == Some(0) {
                format!("{mode} (interface gone)")
            } else {
                mode
            },
            s(a, "link_id"),
            s(a, "prog_id"),
        ]);
    }
    out.push_str(&h.render());
    let hooks: Vec<&str> = attached
        .iter()
        .map(|a| a["hook"].as_str().unwrap_or(""))
        .collect();
    let mut c = TextTable::new(&["HOOK", "COUNTER", "PACKETS", "BYTES"]);
    if let Some(m) = v["counters"].as_object() {
        for (hook, reasons) in m {
            for (name, pb) in reasons.as_object().into_iter().flatten() {
                let p = pb[0].as_u64().unwrap_or(0);
                let shown = p > 0 || (name == "forwarded" && hooks.contains(&hook.as_str()));
                if !shown {
                    continue;
                }
                c.row(vec![
                    hook.clone(),
                    name.clone(),
                    p.to_string(),
                    pb[1].as_u64().unwrap_or(0).to_string(),
                ]);
            }
        }
    }
    out.push_str(&c.render());
    out.push_str(&flow_table(&v["flows"]));
    failures(v, out)
}

/// The flow table's lines of `steer show fib`: size, active flows per next
/// hop, and the events that moved.
fn flow_table(f: &Value) -> String {
    if f.is_null() {
        return String::new();
    }
    let n = |k: &str| f[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "Flow table: {} entries of {} ({} active within the idle timeout of {} s)\n",
        n("entries"),
        n("capacity"),
        n("active"),
        n("idle_timeout")
    );
    if let Some(hops) = f["by_next_hop"].as_object()
        && !hops.is_empty()
    {
        let list: Vec<String> = hops
            .iter()
            .map(|(hop, c)| format!("{hop} {}", c.as_u64().unwrap_or(0)))
            .collect();
        out.push_str(&format!(
            "  active flows by next hop: {}\n",
            list.join(", ")
        ));
    }
    if let Some(events) = f["events"].as_object() {
        let list: Vec<String> = events
            .iter()
            .filter(|(_, c)| c.as_u64().unwrap_or(0) > 0)
            .map(|(name, c)| format!("{name} {}", c.as_u64().unwrap_or(0)))
            .collect();
        if !list.is_empty() {
            out.push_str(&format!("  events: {}\n", list.join(", ")));
        }
    }
    out
}

fn failures(v: &Value, mut out: String) -> String {
    for f in v["failures"].as_array().into_iter().flatten() {
        out.push_str(&format!("refused: {}\n", f.as_str().unwrap_or("")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_leaves_the_last_unpadded() {
        let mut t = TextTable::new(&["A", "BB", "C"]);
        t.row(vec!["xxx".into(), "y".into(), "z".into()]);
        assert_eq!(t.render(), "A    BB  C\nxxx  y   z\n");
    }

    #[test]
    fn fib_flags_mismatches_and_lists_hooks_and_counters() {
        let v = serde_json::json!({
            "table": 200, "ecmp": "NexthopObjects", "awaiting_sync": false,
            "dataplane": "auto",
            "attached": [
                {"interface": "vm1", "ifindex": 4, "kind": "veth", "hook": "tc", "mode": "tcx", "link_id": 3, "prog_id": 9},
                {"interface": "tap1", "ifindex": 0, "kind": "tap", "hook": "xdp", "mode": "native", "link_id": 5, "prog_id": 8},
                {"interface": "eth0", "ifindex": 2, "kind": "veth", "hook": "return", "mode": "tcx", "link_id": 6, "prog_id": 10}
            ],
            "counters": {
                "tc": {"forwarded": [5, 500], "pass_no_route": [0, 0], "pass_entry": [2, 120]},
                "xdp": {"forwarded": [0, 0], "pass_csum_partial": [0, 0]},
                "return": {"forwarded": [7, 700], "pass_no_route": [3, 180], "pass_egress_not_vm": [0, 0]}
            },
            "failures": [],
            "entries": [
                {"prefix": "0.0.0.0/0", "want": {"forward": ["10.1.0.20"]}, "kernel": "via 10.1.0.20", "xdp": "forward 10.1.0.20", "mismatch": false},
                {"prefix": "10.1.0.0/16", "want": "vnet", "kernel": null, "xdp": "pass", "mismatch": true}
            ]
        });
        let out = fib(&v);
        assert!(
            out.contains("0.0.0.0/0    forward 10.1.0.20  via 10.1.0.20       forward 10.1.0.20\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "10.1.0.0/16  vnet               -                   pass               ! mismatch"
            ),
            "{out}"
        );
        assert!(
            out.contains("1 prefixes where intent, kernel and eBPF map disagree"),
            "{out}"
        );
        assert!(out.contains("Dataplane: auto\n"), "{out}");
        assert!(
            out.contains("vm1        veth  tc      tcx                      3     9\n"),
            "{out}"
        );
        assert!(
            out.contains("tap1       tap   xdp     native (interface gone)  5     8\n"),
            "{out}"
        );
        assert!(
            out.contains("eth0       veth  return  tcx                      6     10\n"),
            "{out}"
        );
        assert!(
            out.contains("tc      forwarded      5        500\n"),
            "{out}"
        );
        assert!(
            out.contains("tc      pass_entry     2        120\n"),
            "{out}"
        );
        assert!(out.contains("xdp     forwarded      0        0\n"), "{out}");
        assert!(
            out.contains("return  forwarded      7        700\n"),
            "{out}"
        );
        assert!(
            out.contains("return  pass_no_route  3        180\n"),
            "{out}"
        );
        assert!(!out.contains("tc      pass_no_route"), "{out}");
        assert!(!out.contains("pass_csum_partial"), "{out}");
        assert!(!out.contains("pass_egress_not_vm"), "{out}");
        assert!(!out.contains("Flow table"), "{out}");
    }

    #[test]
    fn fib_shows_the_flow_table_its_members_and_the_events_that_moved() {
        let v = serde_json::json!({
            "table": 200, "ecmp": "NexthopObjects", "awaiting_sync": false,
            "dataplane": "auto",
            "attached": [{"interface": "vm1", "ifindex": 4, "kind": "veth", "hook": "tc", "mode": "tcx", "link_id": 3, "prog_id": 9}],
            "counters": {"tc": {"forwarded": [5, 500]}},
            "flows": {
                "capacity": 262144, "entries": 70, "active": 64, "idle_timeout": 300,
                "by_next_hop": {"10.1.0.20": 30, "10.1.0.21": 34},
                "events": {"hit": 900, "new": 70, "stale_member": 0, "idle": 6}
            },
            "failures": [], "entries": []
        });
        let out = fib(&v);
        assert!(
            out.contains(
                "Flow table: 70 entries of 262144 (64 active within the idle timeout of 300 s)\n  \
                 active flows by next hop: 10.1.0.20 30, 10.1.0.21 34\n  \
                 events: hit 900, idle 6, new 70\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn fib_without_hooks_says_the_kernel_forwards() {
        let v = serde_json::json!({
            "table": 200, "ecmp": "NexthopObjects", "awaiting_sync": false,
            "dataplane": "kernel", "attached": [], "counters": {},
            "failures": ["10.0.0.0/8: kernel: refused"], "entries": []
        });
        let out = fib(&v);
        assert!(
            out.ends_with(
                "Dataplane: kernel\neBPF hooks: none (the kernel forwards)\nrefused: 10.0.0.0/8: kernel: refused\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn peers_show_what_waits_in_the_send_queue() {
        let peer = |name: &str, bytes: u64| {
            serde_json::json!({
                "name": name, "kind": "Host", "address": "10.1.0.31", "asn": 65515,
                "received": 1, "accepted": 1, "advertised": 2000, "stale": false,
                "status": {"state": "Established", "state_seconds": 90, "last_error": null,
                           "send_queue": {"bytes": bytes, "messages": 41, "oldest_seconds": 12.4}}
            })
        };
        let out = peers(&serde_json::json!([
            peer("stuck", 3_250_000),
            peer("ok", 0)
        ]));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("ADVERTISED  SENDQ"), "{out}");
        assert!(lines[1].ends_with("2000        3.1M/41 12s"), "{out}");
        assert!(lines[2].ends_with("2000"), "{out}");
    }

    #[test]
    fn peers_show_the_bfd_summary_and_a_dash_without_bfd() {
        let v = serde_json::json!([
            {"name": "fw1", "kind": "Appliance", "address": "10.1.0.20", "asn": 65020,
             "status": {"state": "Established", "state_seconds": 5, "last_error": null},
             "received": 1, "accepted": 1, "advertised": 2,
             "bfd": {"state": "Down", "running": false, "holds_bgp": false, "summary": "not running (BGP not blocked)"}},
            {"name": "fw2", "kind": "Appliance", "address": "10.1.0.21", "asn": 65021,
             "status": {"state": "Established", "state_seconds": 5, "last_error": null},
             "received": 1, "accepted": 1, "advertised": 2, "bfd": null}
        ]);
        let out = peers(&v);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("FOR  BFD"), "{out}");
        assert!(
            lines[1].contains("5s   not running (BGP not blocked)  1"),
            "{out}"
        );
        assert!(
            lines[2].contains("5s   -                              1"),
            "{out}"
        );
    }

    #[test]
    fn bfd_shows_negotiated_timers_discriminators_and_the_last_diagnostic() {
        let v = serde_json::json!([{
            "peer": "fw1", "remote": "10.1.0.20", "multihop": false, "min_ttl": 255,
            "state": "Up", "remote_state": "Up", "state_seconds": 65,
            "tx_interval_us": 300000, "rx_interval_us": 300000, "detection_time_us": 900000,
            "detect_mult": 3, "remote_detect_mult": 3, "local_disc": 16, "remote_disc": 255,
            "transitions": 3, "last_down_diag": "1 (Control Detection Time Expired)", "bgp_held": false
        }]);
        let out = bfd(&v);
        let row = out.lines().nth(1).unwrap();
        assert_eq!(
            row,
            "fw1   10.1.0.20  single  Up     Up      1m5s  300ms  300ms  3/3   900ms   0x10/0xff  3            1 (Control Detection Time Expired)  free"
        );
    }

    #[test]
    fn routes_marks_best_multipath_and_reason() {
        let v = serde_json::json!([{
            "prefix": "0.0.0.0/0",
            "paths": [
                {"peer": "fw1", "next_hop": "10.1.0.20", "as_path": "65020", "local_pref": 100, "med": null,
                 "communities": [], "large_communities": [], "best": true, "multipath": true, "stale": false, "reason": null},
                {"peer": "fw2", "next_hop": "10.1.0.21", "as_path": "65021 65021", "local_pref": 100, "med": null,
                 "communities": ["no-export"], "large_communities": [], "best": false, "multipath": false, "stale": false,
                 "reason": "shorter AS_PATH wins (RFC 4271 9.1.2.2 a)"}
            ]
        }]);
        let out = routes(&v);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].starts_with("0.0.0.0/0  *=     fw1"), "{out}");
        assert!(
            lines[2].contains("no-export    shorter AS_PATH wins"),
            "{out}"
        );
        assert!(lines[3].starts_with("2 paths."), "{out}");
    }
}
