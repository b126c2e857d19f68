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
    /// Add one sample; HELP/TYPE lines are written once per metric.
    pub fn sample(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
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
        self.sample(
            "steer_bgp_send_queue_bytes",
            "gauge",
            "Bytes waiting in the session's send queue.",
            labels,
            q.bytes as f64,
        );
        self.sample(
            "steer_bgp_send_queue_messages",
            "gauge",
            "Messages waiting in the session's send queue.",
            labels,
            q.messages as f64,
        );
        self.sample(
            "steer_bgp_send_queue_oldest_seconds",
            "gauge",
            "How long the oldest unsent message has waited.",
            labels,
            q.oldest_seconds,
        );
        self.sample(
            "steer_bgp_send_hold_expiries_total",
            "counter",
            "Sessions reset because the peer took none of our data for the send-hold time (RFC 9687).",
            labels,
            s.send_hold_expiries as f64,
        );
        self.sample(
            "steer_bgp_send_queue_overflows_total",
            "counter",
            "Sessions reset with Cease/8 because the send queue exceeded its limit.",
            labels,
            s.queue_overflows as f64,
        );
    }
}

/// The flow table's metrics: `steer_flow_table_{entries,active,capacity}`,
/// `steer_flow_table_active_flows{next_hop}` and
/// `steer_flow_events_total{event}`.
pub fn flow_table(e: &mut Exposition, f: &crate::fib::xdp::FlowTableView) {
    e.sample(
        "steer_flow_table_entries",
        "gauge",
        "Entries in the eBPF flow table.",
        &[],
        f.entries as f64,
    );
    e.sample(
        "steer_flow_table_active",
        "gauge",
        "Flows in the eBPF flow table that sent within the idle timeout.",
        &[],
        f.active as f64,
    );
    e.sample(
        "steer_flow_table_capacity",
        "gauge",
        "Entries the eBPF flow table holds before the least recently used makes room.",
        &[],
        f64::from(f.capacity),
    );
    for (hop, n) in &f.by_next_hop {
        e.sample(
            "steer_flow_table_active_flows",
            "gauge",
            "Active flows per next hop.",
            &[("next_hop", &hop.to_string())],
            *n as f64,
        );
    }
    for (event, n) in &f.events {
        e.sample(
            "steer_flow_events_total",
            "counter",
            "Flow-table outcomes: hit, new, stale_member, idle, insert_failed.",
            &[("event", event)],
            *n as f64,
        );
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
        e.sample("steer_up", "gauge", "Up.", &[("peer", "a\"b")], 1.0);
        e.sample("steer_up", "gauge", "Up.", &[("peer", "c")], 0.0);
        assert_eq!(
            e.finish(),
            "# HELP steer_up Up.\n# TYPE steer_up gauge\nsteer_up{peer=\"a\\\"b\"} 1\nsteer_up{peer=\"c\"} 0\n"
        );
    }
}
