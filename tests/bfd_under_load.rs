//! No false Down: BFD at 300 ms × 3 with two firewalls stays Up for (at
//! least) 60 s while eight raw speakers churn 100,000 prefixes each into
//! the route server (all announce, the agent programs the 100,000 routes
//! into its kernel table and XDP maps, all withdraw, the agent removes
//! them, again). Zero transitions, as the route server counts them and as
//! BIRD and FRR see their own sessions.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;
use steer_tests::failover::{FailoverLab, FailoverSpec, feed};
use steer_tests::feed::Feeders;
use steer_tests::wait_for;

const PREFIXES: usize = 100_000;
const SPEAKERS: usize = 8;
const LOAD: Duration = Duration::from_secs(60);

fn transitions(lab: &FailoverLab) -> Result<Vec<(String, u64, u64)>> {
    let v = lab.rs.show(&["bfd"])?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["peer"].as_str().unwrap_or("").to_string(),
                b["transitions"].as_u64().unwrap_or(0),
                b["downs"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

/// Each firewall's BGP session count at the route server.
fn established(lab: &FailoverLab) -> Result<Vec<(String, u64)>> {
    let v = lab.rs.show(&["peers"])?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("fw")))
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["status"]["established_count"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

/// Routes in the agent's table (a multipath route's `nexthop` lines are
/// part of its route).
fn kernel_routes(lab: &FailoverLab) -> Result<usize> {
    Ok(lab
        .host
        .ip("-4 route show table 200")?
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .count())
}

/// Waits until the agent's kernel table holds a number of routes that
/// `done` accepts; returns it.
fn wait_table(lab: &FailoverLab, what: &str, done: impl Fn(usize) -> bool) -> Result<usize> {
    wait_for(what, Duration::from_secs(600), || {
        let n = kernel_routes(lab)?;
        if done(n) {
            Ok(Some(n))
        } else {
            bail!("{n} routes")
        }
    })
}

#[test]
fn bfd_stays_up_while_the_route_server_ingests_8_x_100000_routes_and_the_agent_programs_them()
-> Result<()> {
    let lab = FailoverLab::start(FailoverSpec {
        feeds: SPEAKERS,
        ..FailoverSpec::default()
    })?;
    // Counted from here: FRR may have reset its first session once while
    // the lab settled (`Frr::wait_bfd_settled`).
    let before = transitions(&lab)?;
    let sessions_before = established(&lab)?;
    let bird_before = lab.fw1.bfd_sessions()?;
    let frr_before: Value = lab.fw2.bfd_counters("10.1.0.4")?;
    let base = kernel_routes(&lab)?;
    let feeds: Vec<_> = (0..SPEAKERS).map(feed).collect();
    let mut feeders = Feeders::connect(
        lab.feeds.as_ref().unwrap(),
        &feeds,
        "10.1.0.4".parse()?,
        PREFIXES,
    )?;
    // Rounds of: all eight announce 100,000 prefixes, the agent programs
    // them, all withdraw, the agent removes them; for at least 60 s.
    let start = Instant::now();
    let mut rounds = Vec::new();
    while start.elapsed() < LOAD || rounds.is_empty() {
        let t = Instant::now();
        feeders.announce()?;
        let peak = wait_table(&lab, "the agent to program the announcements", |n| {
            n >= base + PREFIXES
        })?;
        let programmed = t.elapsed();
        feeders.withdraw()?;
        wait_table(&lab, "the agent to remove the withdrawals", |n| n <= base)?;
        rounds.push((peak, programmed, t.elapsed()));
    }
    let after = transitions(&lab)?;
    let bfd = lab.rs.show(&["bfd"])?;
    eprintln!(
        "{:?} of load, {} rounds (peak routes, programmed after, round time): {rounds:?}",
        start.elapsed(),
        rounds.len()
    );
    for b in bfd.as_array().into_iter().flatten() {
        eprintln!(
            "{}: longest gap between packets {} µs, latest timer {} µs",
            b["peer"], b["rx_gap_max_us"], b["timer_late_max_us"]
        );
    }
    assert_eq!(after, before, "no BFD transition at the route server");
    let bird_after = lab.fw1.bfd_sessions()?;
    assert_eq!(bird_after[0].state, "Up");
    assert_eq!(
        bird_after[0].since, bird_before[0].since,
        "BIRD saw no change"
    );
    let frr_after: Value = lab.fw2.bfd_counters("10.1.0.4")?;
    assert_eq!(
        frr_after["session-down"], frr_before["session-down"],
        "FRR saw no Down: {frr_after:#}"
    );
    let sessions_after = established(&lab)?;
    assert_eq!(sessions_before.len(), 2, "{sessions_before:?}");
    assert_eq!(
        sessions_after, sessions_before,
        "both BGP sessions stayed up"
    );
    Ok(())
}
