//! Silent death of an appliance with BFD at 300 ms × 3, in the seed
//! topology with real packets: a VM sends 1,000 UDP datagrams a second
//! through its host's agent (XDP) and the firewalls to a sink, which counts
//! sequence numbers. The active firewall's link goes down on its side (no
//! FIN, no NOTIFICATION). The route server and the agent run at real-time
//! priority, as the appliances do, each standing for a machine of its own:
//! - active/passive: the passive firewall carries the stream after less
//!   than a second of loss;
//! - active/active: only the flows the dead member carried lose packets;
//! - recovery: the link comes back, BFD comes Up, BGP Established, and the
//!   stream returns to the active firewall;
//! - visibility: the transition's log line with its diagnostic, and
//!   `steer_bfd_session_up` / `steer_bfd_transitions_total` in the metrics.

use std::time::Duration;

use anyhow::Result;
use steer_tests::failover::{FW1, FailoverLab, FailoverSpec, SINK};
use steer_tests::stream::{FlowReport, Sender, Sink, StreamSpec, analyze, now_ns};
use steer_tests::wait_for;

fn stream(flows: u16, secs: u64) -> StreamSpec {
    StreamSpec {
        dst: SINK,
        flows,
        first_port: 40000,
        rate: 1000,
        duration: Duration::from_secs(secs),
    }
}

/// Sends `spec` while `during` runs (after `lead` of steady traffic);
/// returns each flow's report.
fn measure(
    lab: &FailoverLab,
    spec: StreamSpec,
    lead: Duration,
    during: impl FnOnce() -> Result<()>,
) -> Result<Vec<FlowReport>> {
    let sink = Sink::start(&lab.inet, SINK)?;
    let sender = Sender::start(&lab.vm, spec)?;
    std::thread::sleep(lead);
    let r = during();
    let sent = sender.join()?;
    let arrivals = sink.finish()?;
    r?;
    assert_eq!(sent.refused, 0, "the VM could always send");
    Ok(analyze(&sent, &arrivals))
}

#[test]
fn silent_death_of_the_active_firewall_fails_over_in_under_a_second_and_recovers() -> Result<()> {
    let lab = FailoverLab::start(FailoverSpec {
        dedicated_cpu: true,
        ..FailoverSpec::default()
    })?;
    let mut cut_at = 0;
    let r = measure(&lab, stream(1, 8), Duration::from_secs(3), || {
        cut_at = lab.cut_fw1()?;
        Ok(())
    })?;
    let f = &r[0];
    let gap = f.longest_gap.expect("the cut must cost something");
    assert_eq!(
        (gap.before_ifindex, gap.after_ifindex),
        (lab.in1, lab.in2),
        "through fw1 before, fw2 after: {f:?}"
    );
    assert!(
        gap.outage < Duration::from_secs(1),
        "the VM lost {:?} of traffic ({} datagrams); {f:?}\nrs log:\n{}",
        gap.outage,
        gap.lost,
        lab.rs.log_tail()
    );
    assert_eq!(f.lost, gap.lost, "nothing lost but the failover: {f:?}");
    assert_eq!(f.last_ifindex, Some(lab.in2));
    let resumed_after = Duration::from_nanos(gap.resumed_ns.saturating_sub(cut_at));
    assert!(
        resumed_after < Duration::from_secs(1),
        "{resumed_after:?} after the cut"
    );
    eprintln!(
        "active/passive failover: {} datagrams lost, outage {:?}, traffic through fw2 {:?} after the cut",
        gap.lost, gap.outage, resumed_after
    );

    let bfd = lab.rs.show(&["bfd"])?;
    let fw1 = bfd
        .as_array()
        .and_then(|a| a.iter().find(|b| b["peer"] == "fw1"))
        .unwrap();
    assert_eq!(fw1["last_down_diag"], "1 (Control Detection Time Expired)");
    assert_eq!(fw1["bgp_held"], true, "held while BFD is Down: {fw1}");
    let log = lab.rs.log();
    assert!(
        log.contains("sending NOTIFICATION Cease / BFD Down (6/10)"),
        "Cease/10 attempted on the dead path"
    );
    assert!(
        log.contains(&format!(
            "BFD session to {FW1} (fw1): Up -> Down, diagnostic 1 (Control Detection Time Expired) (remote 0x0 says Down"
        )),
        "the transition's log line with its diagnostic:\n{}",
        lab.rs.log_tail()
    );
    let metrics = lab.rs_metrics()?;
    for line in [
        "steer_bfd_session_up{peer=\"fw1\"} 0".to_string(),
        "steer_bfd_session_up{peer=\"fw2\"} 1".to_string(),
        format!(
            "steer_bfd_transitions_total{{peer=\"fw1\"}} {}",
            fw1["transitions"]
        ),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // Recovery: link up, BFD Up, BGP Established, the stream back on fw1.
    let r = measure(&lab, stream(1, 25), Duration::from_secs(1), || {
        lab.restore_fw1()?;
        lab.wait_fw1_back(Duration::from_secs(20))?;
        wait_for("the agent back on fw1", Duration::from_secs(10), || {
            Ok((lab.default_route()? == [FW1]).then_some(()))
        })
    })?;
    let f = &r[0];
    assert_eq!(f.last_ifindex, Some(lab.in1), "back through fw1: {f:?}");
    let metrics = lab.rs_metrics()?;
    assert!(
        metrics
            .lines()
            .any(|l| l == "steer_bfd_session_up{peer=\"fw1\"} 1"),
        "{metrics}"
    );
    eprintln!(
        "recovery: {} datagrams lost while the stream moved back to fw1",
        f.lost
    );
    Ok(())
}

#[test]
fn silent_death_in_active_active_loses_only_the_dead_members_flows() -> Result<()> {
    let lab = FailoverLab::start(FailoverSpec {
        active_active: true,
        dedicated_cpu: true,
        ..FailoverSpec::default()
    })?;
    let mut cut_at = 0;
    let r = measure(&lab, stream(16, 8), Duration::from_secs(3), || {
        cut_at = lab.cut_fw1()?;
        Ok(())
    })?;
    let first_path = |f: &FlowReport| f.by_interface.first().map(|(i, _)| *i);
    let on_fw1: Vec<&FlowReport> = r
        .iter()
        .filter(|f| first_path(f) == Some(lab.in1))
        .collect();
    let on_fw2: Vec<&FlowReport> = r
        .iter()
        .filter(|f| first_path(f) == Some(lab.in2))
        .collect();
    assert!(
        !on_fw1.is_empty() && !on_fw2.is_empty(),
        "ECMP spread the 16 flows over both: {r:#?}"
    );
    assert_eq!(on_fw1.len() + on_fw2.len(), r.len());
    for f in &on_fw2 {
        assert_eq!(
            f.lost, 0,
            "a flow through the live member lost nothing: {f:?}"
        );
        assert_eq!(f.by_interface.len(), 1, "and never moved: {f:?}");
    }
    let mut worst = Duration::ZERO;
    for f in &on_fw1 {
        let gap = f.longest_gap.expect("the dead member's flows lose packets");
        assert_eq!(f.lost, gap.lost, "{f:?}");
        assert_eq!(gap.after_ifindex, lab.in2, "{f:?}");
        assert!(gap.outage < Duration::from_secs(1), "{f:?}");
        worst = worst.max(gap.outage);
    }
    eprintln!(
        "active/active: {} flows on fw1 lost at most {worst:?}, {} flows on fw2 lost nothing ({:?} after the cut)",
        on_fw1.len(),
        on_fw2.len(),
        Duration::from_nanos(now_ns() - cut_at)
    );
    Ok(())
}
