//! Fuzz the configuration loader of both roles (`ServerConfig` and
//! `AgentConfig` through `ConfigFile::from_str`), on TOML documents built
//! from the role's real keys with values of every type and on raw text.
//!
//! Input: a first octet 0 (server) or 1 (agent) followed by raw text;
//! anything else is read as a structured document (`Doc`, via `arbitrary`).
//!
//! Properties beyond "no panic":
//! - every error names the file it was given, first;
//! - a validation error names a key path that starts with one of the
//!   role's keys (`peer[1].asn`, `hosts.max_prefixes`, `route_servers[0]`),
//!   and says what is wrong;
//! - a parse error shows where (line and column) or names the key (a
//!   missing or unknown field);
//! - a configuration that loads obeys what validation promises (hold time
//!   0 or at least 3, a keepalive with a hold time, at least one route
//!   server or listen address, appliances in other ASes with unique names
//!   and addresses).

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use steer::config::{AgentConfig, ConfigError, ConfigFile, ServerConfig};

const FILE: &str = "fuzz.toml";

const SERVER_KEYS: &[&str] = &[
    "asn",
    "router_id",
    "listen",
    "port",
    "vnet_prefixes",
    "branch_to_branch",
    "ipv6_next_hop",
    "hold_time",
    "keepalive",
    "connect_retry",
    "connect_retry_max",
    "max_prefix_restart",
    "graceful_restart_time",
    "socket",
    "metrics_listen",
];
const PEER_KEYS: &[&str] = &[
    "name",
    "address",
    "asn",
    "max_prefixes",
    "passive",
    "hold_time",
    "keepalive",
    "graceful_restart",
];
const HOSTS_KEYS: &[&str] = &[
    "ranges",
    "max_prefixes",
    "hold_time",
    "keepalive",
    "graceful_restart",
];
const AGENT_KEYS: &[&str] = &[
    "asn",
    "router_id",
    "route_servers",
    "port",
    "table",
    "vm_interfaces",
    "vm_prefixes",
    "ipv6_next_hop",
    "vnet_prefixes",
    "xdp",
    "xdp_debug",
    "pin_dir",
    "ecmp",
    "rule_priority",
    "flush_on_exit",
    "manage_neighbors",
    "stale_timeout",
    "graceful_restart_time",
    "reconcile_interval",
    "hold_time",
    "keepalive",
    "connect_retry",
    "connect_retry_max",
    "socket",
    "metrics_listen",
];

const INTS: &[i64] = &[
    0,
    1,
    2,
    3,
    60,
    179,
    180,
    200,
    253,
    254,
    1000,
    23456,
    32000,
    32001,
    65010,
    65515,
    65535,
    65536,
    4_294_967_295,
    4_294_967_296,
    -1,
    i64::MAX,
];
const STRINGS: &[&str] = &[
    "10.1.0.4",
    "10.1.0.10",
    "0.0.0.0",
    "::",
    "2001:db8::1",
    "10.1.0.0/16",
    "10.1.0.4/16",
    "10.1.0.0/24",
    "0.0.0.0/0",
    "2001:db8:a000::/36",
    "10.1.0.0/33",
    "10.1.0.4:9179",
    "[::1]:9179",
    "native",
    "generic",
    "off",
    "auto",
    "nexthop",
    "multipath",
    "vm1",
    "sdwan",
    "fw 1",
    "",
    "/run/steer/x.sock",
    "a-very-long-interface-name",
];

#[derive(Arbitrary, Debug)]
enum Val {
    Int(u8),
    AnyInt(i64),
    Bool(bool),
    Str(u8),
    AnyStr(String),
    Float(f64),
    Arr(Vec<Val>),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Doc {
    agent: bool,
    top: Vec<(Key, Val)>,
    peers: Vec<Vec<(Key, Val)>>,
    hosts: Option<Vec<(Key, Val)>>,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn value(v: &Val, out: &mut String, depth: usize) {
    match v {
        Val::Int(i) => out.push_str(&INTS[usize::from(*i) % INTS.len()].to_string()),
        Val::AnyInt(i) => out.push_str(&i.to_string()),
        Val::Bool(b) => out.push_str(&b.to_string()),
        Val::Str(i) => out.push_str(&quote(STRINGS[usize::from(*i) % STRINGS.len()])),
        Val::AnyStr(s) => out.push_str(&quote(s)),
        Val::Float(f) => out.push_str(&toml::Value::Float(*f).to_string()),
        Val::Arr(items) => {
            out.push('[');
            for (i, x) in items.iter().take(8).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if depth < 2 {
                    value(x, out, depth + 1);
                } else {
                    out.push('1');
                }
            }
            out.push(']');
        }
    }
}

fn pairs(keys: &[&str], kv: &[(Key, Val)], out: &mut String) {
    for (k, v) in kv.iter().take(24) {
        match k {
            Key::Known(i) => out.push_str(keys[usize::from(*i) % keys.len()]),
            Key::Other(s) => out.push_str(&quote(s)),
        }
        out.push_str(" = ");
        value(v, out, 0);
        out.push('\n');
    }
}

fn render(d: &Doc) -> String {
    let mut s = String::new();
    pairs(
        if d.agent { AGENT_KEYS } else { SERVER_KEYS },
        &d.top,
        &mut s,
    );
    for p in d.peers.iter().take(4) {
        s.push_str("\n[[peer]]\n");
        pairs(PEER_KEYS, p, &mut s);
    }
    if let Some(h) = &d.hosts {
        s.push_str("\n[hosts]\n");
        pairs(HOSTS_KEYS, h, &mut s);
    }
    s
}

fn check_error(e: &ConfigError, keys: &[&str]) {
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{FILE}: ")), "{msg}");
    match e {
        ConfigError::Read { .. } => panic!("nothing is read from disk: {msg}"),
        ConfigError::Parse { message, .. } => {
            assert!(!message.trim().is_empty(), "{msg}");
            assert!(
                message.contains("line ") || message.contains('`'),
                "a parse error with neither a location nor a key: {msg}"
            );
            if let Some(rest) = message.split("unknown field `").nth(1) {
                assert!(rest.contains('`'), "unknown field without its name: {msg}");
            }
        }
        ConfigError::Invalid { key, message, .. } => {
            assert!(!message.trim().is_empty(), "{msg}");
            let head = key.split(['.', '[']).next().unwrap_or("");
            let known = keys.contains(&head) || head == "peer" || head == "hosts";
            assert!(known, "error names no key of this role: {msg}");
            assert!(msg.contains(&format!("key `{key}`")), "{msg}");
        }
    }
}

fn check_timers(hold: u16, keepalive: u16) {
    assert!(hold == 0 || hold >= 3, "hold time {hold} accepted");
    assert!(
        hold == 0 || keepalive > 0,
        "keepalive 0 with hold {hold} accepted"
    );
}

fn load(agent: bool, text: &str) {
    let file = Path::new(FILE);
    if agent {
        match AgentConfig::from_str(file, text) {
            Ok(c) => {
                check_timers(c.hold_time, c.keepalive);
                assert!(!c.route_servers.is_empty());
                assert!(!matches!(c.table, 0 | 253..=255));
                assert!(c.connect_retry >= 1 && c.connect_retry_max >= c.connect_retry);
            }
            Err(e) => check_error(&e, AGENT_KEYS),
        }
    } else {
        match ServerConfig::from_str(file, text) {
            Ok(c) => {
                check_timers(c.hold_time, c.keepalive);
                assert!(!c.listen.is_empty() && c.port != 0);
                assert!(c.connect_retry >= 1 && c.connect_retry_max >= c.connect_retry);
                for (i, p) in c.peers.iter().enumerate() {
                    assert_ne!(p.asn, c.asn);
                    assert!(p.max_prefixes >= 1);
                    check_timers(
                        p.hold_time.unwrap_or(c.hold_time),
                        p.keepalive.unwrap_or(c.keepalive),
                    );
                    for q in &c.peers[..i] {
                        assert_ne!(p.name, q.name);
                        assert_ne!(p.address, q.address);
                    }
                }
                check_timers(
                    c.hosts.hold_time.unwrap_or(c.hold_time),
                    c.hosts.keepalive.unwrap_or(c.keepalive),
                );
            }
            Err(e) => check_error(&e, SERVER_KEYS),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, text)) => load(false, &String::from_utf8_lossy(text)),
        Some((1, text)) => load(true, &String::from_utf8_lossy(text)),
        _ => {
            let mut u = arbitrary::Unstructured::new(data);
            if let Ok(d) = Doc::arbitrary(&mut u) {
                load(d.agent, &render(&d));
            }
        }
    }
});
