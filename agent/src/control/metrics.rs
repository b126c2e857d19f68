//! Prometheus text exposition over plain HTTP (`metrics_listen`): each
//! scrape asks the daemon's main task for its current metrics text.

use crate::bgp::status::StatusSnapshot;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// A scrape waiting for the metrics text.
pub type Scrape = oneshot::Sender<String>;

/// Serve `GET /metrics` on `addr`.
pub async fn serve(addr: SocketAddr, tx: mpsc::Sender<Scrape>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!("metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await;
                let (otx, orx) = oneshot::channel();
                let body = if tx.send(otx).await.is_ok() {
                    orx.await.unwrap_or_default()
                } else {
                    String::new()
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = s.write_all(resp.as_bytes()).await {
                    warn!("metrics write failed: {e}");
                }
            });
        }
    });
    Ok(())
}

/// A metric's kind (the exposition's TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A count that only grows.
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One metric, declared once: its name, kind and help.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The exposition name (`steer_...`).
    pub name: &'static str,
    /// Gauge or counter.
    pub kind: Kind,
    /// The HELP text.
    pub help: &'static str,
}

/// `steer_agent_wanted_prefixes`.
pub const AGENT_WANTED_PREFIXES: Metric = Metric {
    name: "steer_agent_wanted_prefixes",
    kind: Kind::Gauge,
    help: "Prefixes the agent wants installed.",
};
/// `steer_bfd_session_up`.
pub const BFD_SESSION_UP: Metric = Metric {
    name: "steer_bfd_session_up",
    kind: Kind::Gauge,
    help: "1 when the BFD session with the appliance is Up.",
};
/// `steer_bfd_transitions_total`.
pub const BFD_TRANSITIONS_TOTAL: Metric = Metric {
    name: "steer_bfd_transitions_total",
    kind: Kind::Counter,
    help: "BFD session state changes.",
};
/// `steer_bgp_established_total`.
pub const BGP_ESTABLISHED_TOTAL: Metric = Metric {
    name: "steer_bgp_established_total",
    kind: Kind::Counter,
    help: "Times the session reached Established.",
};
/// `steer_bgp_max_prefix_trips_total`.
pub const BGP_MAX_PREFIX_TRIPS_TOTAL: Metric = Metric {
    name: "steer_bgp_max_prefix_trips_total",
    kind: Kind::Counter,
    help: "Sessions ended by max_prefixes.",
};
/// `steer_bgp_prefixes_accepted`.
pub const BGP_PREFIXES_ACCEPTED: Metric = Metric {
    name: "steer_bgp_prefixes_accepted",
    kind: Kind::Gauge,
    help: "Paths accepted from the peer.",
};
/// `steer_bgp_prefixes_advertised`.
pub const BGP_PREFIXES_ADVERTISED: Metric = Metric {
    name: "steer_bgp_prefixes_advertised",
    kind: Kind::Gauge,
    help: "Paths advertised to the peer.",
};
/// `steer_bgp_prefixes_received`.
pub const BGP_PREFIXES_RECEIVED: Metric = Metric {
    name: "steer_bgp_prefixes_received",
    kind: Kind::Gauge,
    help: "Paths received from the peer.",
};
/// `steer_bgp_send_hold_expiries_total`.
pub const BGP_SEND_HOLD_EXPIRIES_TOTAL: Metric = Metric {
    name: "steer_bgp_send_hold_expiries_total",
    kind: Kind::Counter,
    help: "Sessions reset because the peer took none of our data for the send-hold time (RFC 9687).",
};
/// `steer_bgp_send_queue_bytes`.
pub const BGP_SEND_QUEUE_BYTES: Metric = Metric {
    name: "steer_bgp_send_queue_bytes",
    kind: Kind::Gauge,
    help: "Bytes waiting in the session's send queue.",
};
/// `steer_bgp_send_queue_messages`.
pub const BGP_SEND_QUEUE_MESSAGES: Metric = Metric {
    name: "steer_bgp_send_queue_messages",
    kind: Kind::Gauge,
    help: "Messages waiting in the session's send queue.",
};
/// `steer_bgp_send_queue_oldest_seconds`.
pub const BGP_SEND_QUEUE_OLDEST_SECONDS: Metric = Metric {
    name: "steer_bgp_send_queue_oldest_seconds",
    kind: Kind::Gauge,
    help: "How long the oldest unsent message has waited.",
};
/// `steer_bgp_send_queue_overflows_total`.
pub const BGP_SEND_QUEUE_OVERFLOWS_TOTAL: Metric = Metric {
    name: "steer_bgp_send_queue_overflows_total",
    kind: Kind::Counter,
    help: "Sessions reset with Cease/8 because the send queue exceeded its limit.",
};
/// `steer_bgp_session_up`.
pub const BGP_SESSION_UP: Metric = Metric {
    name: "steer_bgp_session_up",
    kind: Kind::Gauge,
    help: "1 when the BGP session is Established.",
};
/// `steer_bgp_updates_received_total`.
pub const BGP_UPDATES_RECEIVED_TOTAL: Metric = Metric {
    name: "steer_bgp_updates_received_total",
    kind: Kind::Counter,
    help: "UPDATE messages received.",
};
/// `steer_bgp_updates_sent_total`.
pub const BGP_UPDATES_SENT_TOTAL: Metric = Metric {
    name: "steer_bgp_updates_sent_total",
    kind: Kind::Counter,
    help: "UPDATE messages sent.",
};
/// `steer_dataplane_bytes_total`.
pub const DATAPLANE_BYTES_TOTAL: Metric = Metric {
    name: "steer_dataplane_bytes_total",
    kind: Kind::Counter,
    help: "Bytes seen by the eBPF hooks, by hook (xdp, tc) and outcome.",
};
/// `steer_dataplane_packets_total`.
pub const DATAPLANE_PACKETS_TOTAL: Metric = Metric {
    name: "steer_dataplane_packets_total",
    kind: Kind::Counter,
    help: "Packets seen by the eBPF hooks, by hook (xdp, tc) and outcome.",
};
/// `steer_fib_failures`.
pub const FIB_FAILURES: Metric = Metric {
    name: "steer_fib_failures",
    kind: Kind::Gauge,
    help: "Changes refused and not yet repaired.",
};
/// `steer_fib_kernel_routes`.
pub const FIB_KERNEL_ROUTES: Metric = Metric {
    name: "steer_fib_kernel_routes",
    kind: Kind::Gauge,
    help: "Routes in Steer's kernel table.",
};
/// `steer_fib_mismatched_prefixes`.
pub const FIB_MISMATCHED_PREFIXES: Metric = Metric {
    name: "steer_fib_mismatched_prefixes",
    kind: Kind::Gauge,
    help: "Prefixes where kernel, eBPF map and intent disagree.",
};
/// `steer_flow_events_total`.
pub const FLOW_EVENTS_TOTAL: Metric = Metric {
    name: "steer_flow_events_total",
    kind: Kind::Counter,
    help: "Flow-table outcomes: hit, new, stale_member, idle, insert_failed.",
};
/// `steer_flow_table_active`.
pub const FLOW_TABLE_ACTIVE: Metric = Metric {
    name: "steer_flow_table_active",
    kind: Kind::Gauge,
    help: "Flows in the eBPF flow table that sent within the idle timeout.",
};
/// `steer_flow_table_active_flows`.
pub const FLOW_TABLE_ACTIVE_FLOWS: Metric = Metric {
    name: "steer_flow_table_active_flows",
    kind: Kind::Gauge,
    help: "Active flows per next hop.",
};
/// `steer_flow_table_capacity`.
pub const FLOW_TABLE_CAPACITY: Metric = Metric {
    name: "steer_flow_table_capacity",
    kind: Kind::Gauge,
    help: "Entries the eBPF flow table holds before the least recently used makes room.",
};
/// `steer_flow_table_entries`.
pub const FLOW_TABLE_ENTRIES: Metric = Metric {
    name: "steer_flow_table_entries",
    kind: Kind::Gauge,
    help: "Entries in the eBPF flow table.",
};
/// `steer_rib_prefixes`.
pub const RIB_PREFIXES: Metric = Metric {
    name: "steer_rib_prefixes",
    kind: Kind::Gauge,
    help: "Prefixes in the route server's table.",
};
/// `steer_up`.
pub const UP: Metric = Metric {
    name: "steer_up",
    kind: Kind::Gauge,
    help: "Up.",
};
/// `steer_xdp_bytes_total`.
pub const XDP_BYTES_TOTAL: Metric = Metric {
    name: "steer_xdp_bytes_total",
    kind: Kind::Counter,
    help: "Deprecated: steer_dataplane_bytes_total{hook=\"xdp\"}.",
};
/// `steer_xdp_packets_total`.
pub const XDP_PACKETS_TOTAL: Metric = Metric {
    name: "steer_xdp_packets_total",
    kind: Kind::Counter,
    help: "Deprecated: steer_dataplane_packets_total{hook=\"xdp\"}.",
};

/// Builds exposition text.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    described: Vec<String>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    /// Add one sample of a declared metric.
    pub fn add(&mut self, m: &Metric, labels: &[(&str, &str)], value: f64) {
        self.sample(m.name, m.kind.as_str(), m.help, labels, value);
    }

    /// Add one sample; HELP/TYPE lines are written once per metric.
    fn sample(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        if !self.described.iter().any(|d| d == name) {
            self.text
                .push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            self.described.push(name.to_string());
        }
        self.text.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            self.text.push_str(&format!("{{{}}}", l.join(",")));
        }
        self.text.push_str(&format!(" {value}\n"));
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }

    /// One session's send queue and the sessions it ended (both roles).
    pub fn send_queue(&mut self, labels: &[(&str, &str)], s: &StatusSnapshot) {
        let q = &s.send_queue;
        self.add(&BGP_SEND_QUEUE_BYTES, labels, q.bytes as f64);
        self.add(&BGP_SEND_QUEUE_MESSAGES, labels, q.messages as f64);
        self.add(&BGP_SEND_QUEUE_OLDEST_SECONDS, labels, q.oldest_seconds);
        self.add(
            &BGP_SEND_HOLD_EXPIRIES_TOTAL,
            labels,
            s.send_hold_expiries as f64,
        );
        self.add(
            &BGP_SEND_QUEUE_OVERFLOWS_TOTAL,
            labels,
            s.queue_overflows as f64,
        );
    }
}

/// The flow table's metrics: `steer_flow_table_{entries,active,capacity}`,
/// `steer_flow_table_active_flows{next_hop}` and
/// `steer_flow_events_total{event}`.
pub fn flow_table(e: &mut Exposition, f: &crate::fib::xdp::FlowTableView) {
    e.add(&FLOW_TABLE_ENTRIES, &[], f.entries as f64);
    e.add(&FLOW_TABLE_ACTIVE, &[], f.active as f64);
    e.add(&FLOW_TABLE_CAPACITY, &[], f64::from(f.capacity));
    for (hop, n) in &f.by_next_hop {
        e.add(
            &FLOW_TABLE_ACTIVE_FLOWS,
            &[("next_hop", &hop.to_string())],
            *n as f64,
        );
    }
    for (event, n) in &f.events {
        e.add(&FLOW_EVENTS_TOTAL, &[("event", event)], *n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_table_metrics_name_their_next_hops_and_events() {
        let mut e = Exposition::default();
        let f = crate::fib::xdp::FlowTableView {
            capacity: 8,
            entries: 3,
            active: 2,
            idle_timeout: 300,
            by_next_hop: [("10.1.0.20".parse().unwrap(), 2)].into(),
            events: [("hit", 10), ("new", 3)].into(),
        };
        flow_table(&mut e, &f);
        let text = e.finish();
        for line in [
            "steer_flow_table_entries 3\n",
            "steer_flow_table_active 2\n",
            "steer_flow_table_capacity 8\n",
            "steer_flow_table_active_flows{next_hop=\"10.1.0.20\"} 2\n",
            "steer_flow_events_total{event=\"hit\"} 10\n",
            "steer_flow_events_total{event=\"new\"} 3\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn exposition_describes_each_metric_once() {
        let mut e = Exposition::default();
        e.add(&UP, &[("peer", "a\"b")], 1.0);
        e.add(&UP, &[("peer", "c")], 0.0);
        assert_eq!(
            e.finish(),
            "# HELP steer_up Up.\n# TYPE steer_up gauge\nsteer_up{peer=\"a\\\"b\"} 1\nsteer_up{peer=\"c\"} 0\n"
        );
    }
}
