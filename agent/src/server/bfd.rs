//! The route server's BFD wiring: one session per appliance with `bfd =
//! true`, single hop when the appliance is on a connected subnet and
//! multihop otherwise (or as `bfd_multihop` says), sourced from the
//! `listen` address of its family; the BFD thread started with them, each
//! session's status attached to its peer, and the BFD metrics.

use super::core::RouteServer;
use crate::bfd::driver::{Bfd, Event, SessionSpec, on_connected_subnet};
use crate::bfd::packet::State;
use crate::bfd::session::Timers;
use crate::control::metrics::Exposition;
use crate::rib::table::SourceKind;
use anyhow::Context;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Start BFD for every appliance that asks for it; `None` when none does.
pub fn start(
    rs: &mut RouteServer,
) -> anyhow::Result<Option<(Bfd, mpsc::UnboundedReceiver<Event>)>> {
    let cfg = rs.config();
    let mut specs = Vec::new();
    for p in &cfg.peers {
        let Some(b) = p.bfd(&cfg.bfd) else { continue };
        let Some(id) = rs.appliance_by_addr(p.address) else {
            continue;
        };
        let multihop = match b.multihop {
            Some(m) => m,
            None => match on_connected_subnet(p.address) {
                Ok(connected) => {
                    info!(
                        "BFD to {} ({}): {} a connected subnet, so {}",
                        p.address,
                        p.name,
                        if connected { "on" } else { "not on" },
                        if connected { "single hop" } else { "multihop" }
                    );
                    !connected
                }
                Err(e) => {
                    warn!(
                        "BFD to {} ({}): cannot read the interface addresses ({e}); using single hop (set bfd_multihop to choose)",
                        p.address, p.name
                    );
                    false
                }
            },
        };
        let interval = Duration::from_millis(u64::from(b.interval_ms));
        specs.push(SessionSpec {
            id,
            name: p.name.clone(),
            remote: p.address,
            local: cfg
                .listen
                .iter()
                .copied()
                .find(|a| !a.is_unspecified() && a.is_ipv4() == p.address.is_ipv4()),
            multihop,
            min_ttl: b.min_ttl,
            timers: Timers {
                desired_min_tx: interval,
                required_min_rx: interval,
                detect_mult: b.multiplier,
            },
        });
    }
    if specs.is_empty() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (bfd, statuses) = Bfd::start(specs, tx).context("cannot start BFD")?;
    for (id, status) in statuses {
        if let Some(p) = rs.peer_mut(id) {
            p.bfd = Some(status);
        }
    }
    Ok(Some((bfd, rx)))
}

/// `steer_bfd_session_up` and `steer_bfd_transitions_total` per appliance.
pub fn metrics(rs: &RouteServer, e: &mut Exposition) {
    let mut peers: Vec<_> = rs
        .peers()
        .filter(|p| p.kind == SourceKind::Appliance)
        .filter_map(|p| p.bfd.as_ref().map(|b| (p.name.as_str(), b.snapshot())))
        .collect();
    peers.sort_by_key(|(name, _)| *name);
    for (name, s) in peers {
        let l = [("peer", name)];
        e.add(
            &crate::control::metrics::BFD_SESSION_UP,
            &l,
            f64::from(u8::from(s.session.state == State::Up)),
        );
        e.add(
            &crate::control::metrics::BFD_TRANSITIONS_TOTAL,
            &l,
            s.session.transitions as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::session::Session;
    use crate::bfd::status::{BfdStatus, Path};
    use crate::config::{ConfigFile, ServerConfig};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn metrics_give_each_bfd_appliance_its_state_and_transitions() {
        let text = r#"
asn = 65515
router_id = "10.1.0.4"

[[peer]]
name = "fw1"
address = "10.1.0.20"
asn = 65020
bfd = true

[[peer]]
name = "fw2"
address = "10.1.0.21"
asn = 65021
"#;
        let cfg = ServerConfig::from_str(std::path::Path::new("t.toml"), text).unwrap();
        let mut rs = RouteServer::new(Arc::new(cfg));
        let id = rs.appliance_by_addr("10.1.0.20".parse().unwrap()).unwrap();
        let timers = Timers {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
        };
        let view = Session::new(1, timers, Instant::now(), 1).view();
        let path = Path {
            remote: "10.1.0.20".parse().unwrap(),
            local: None,
            multihop: false,
            min_ttl: 255,
            source_port: 49152,
        };
        rs.peer_mut(id).unwrap().bfd = Some(Arc::new(BfdStatus::new(view, path)));
        let mut e = Exposition::default();
        metrics(&rs, &mut e);
        let text = e.finish();
        assert!(
            text.contains("steer_bfd_session_up{peer=\"fw1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("steer_bfd_transitions_total{peer=\"fw1\"} 0\n"),
            "{text}"
        );
        assert!(!text.contains("fw2"), "no BFD, no sample: {text}");
    }
}
