//! Per-run results of `bench fanout` and the summary table: per host
//! count and implementation, the storm (the slowest host's time to
//! Established and to the whole table, medians over runs), the change's
//! latency over every host of every change of every run (median, p99,
//! max), the route server's RSS after the dump and per host session, and
//! its CPU time per joining host; BIRD's cells carry its ratio to Steer's.

use std::fmt::Write;

use steer_tests::fanout::ListenDrops;

use crate::bench_bgp::daemon::Impl;

/// One storm: hosts connecting at once.
#[derive(Clone, Debug, Default)]
pub struct Storm {
    /// Hosts that connected.
    pub hosts: usize,
    /// When the last of them was Established (s after the start).
    pub established: Option<f64>,
    /// When the last of them held the whole table.
    pub dumped: Option<f64>,
    /// When half of them held the whole table.
    pub dumped_median: Option<f64>,
    /// Given up: what was missing.
    pub unfinished: Option<String>,
    /// Listen-queue drops in the route server's namespace meanwhile.
    pub listen: ListenDrops,
    /// Route-server CPU seconds until the last host held the table.
    pub cpu: f64,
    /// Simulator CPU seconds meanwhile.
    pub sim_cpu: f64,
}

impl Storm {
    /// Route-server CPU per joining host, in ms.
    pub fn cpu_per_host_ms(&self) -> f64 {
        self.cpu * 1e3 / self.hosts.max(1) as f64
    }

    fn line(&self) -> String {
        match (&self.unfinished, self.established, self.dumped) {
            (None, Some(e), Some(d)) => format!(
                "all Established {e:.2} s, all dumped {d:.2} s (half {:.2} s); listen overflows {}, drops {}; CPU {:.3} ms/host; simulator CPU {:.2} s",
                self.dumped_median.unwrap_or(d),
                self.listen.overflows,
                self.listen.drops,
                self.cpu_per_host_ms(),
                self.sim_cpu
            ),
            (Some(why), _, _) => format!(
                "NOT DONE: {why}; listen overflows {}, drops {}",
                self.listen.overflows, self.listen.drops
            ),
            _ => "no result".to_string(),
        }
    }
}

/// One run of one implementation at one host count.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Every host joining at once.
    pub storm: Storm,
    /// Every host dropping its session and connecting again at once.
    pub reconnect: Option<Storm>,
    /// Change latency of every host in every change (ms).
    pub changes_ms: Vec<f64>,
    /// Changes timed.
    pub changes: usize,
    /// A change given up: what was missing.
    pub change_unfinished: Option<String>,
    /// Route-server RSS with the table loaded, before the storm (bytes).
    pub rss_before: u64,
    /// Route-server RSS after the storm's dump.
    pub rss_after: u64,
    /// Simulator CPU seconds over the changes.
    pub sim_cpu_changes: f64,
    /// Route-server CPU seconds from the first change's start until the
    /// last change reached every host.
    pub cpu_changes: f64,
    /// Sessions the simulator saw lost after Established.
    pub downs: u64,
}

impl Sample {
    /// RSS per host session (bytes).
    pub fn rss_per_host(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.storm.hosts.max(1) as f64
    }

    /// A line for this run.
    pub fn line(&self) -> String {
        let mut l = format!("storm: {}", self.storm.line());
        if self.storm.unfinished.is_none() {
            let _ = write!(
                l,
                "\n      RSS {:.1} -> {:.1} MB ({:.1} KB per host)",
                self.rss_before as f64 / 1e6,
                self.rss_after as f64 / 1e6,
                self.rss_per_host() / 1e3
            );
        }
        if !self.changes_ms.is_empty() {
            let _ = write!(
                l,
                "\n      {} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} host arrivals; route server CPU {:.1} µs per host per change; simulator CPU {:.2} s",
                self.changes,
                percentile(&self.changes_ms, 0.5),
                percentile(&self.changes_ms, 0.99),
                percentile(&self.changes_ms, 1.0),
                self.changes_ms.len(),
                self.cpu_changes * 1e6 / (self.changes.max(1) * self.storm.hosts.max(1)) as f64,
                self.sim_cpu_changes
            );
        }
        if let Some(why) = &self.change_unfinished {
            let _ = write!(l, "\n      change NOT DONE: {why}");
        }
        if let Some(r) = &self.reconnect {
            let _ = write!(l, "\n      reconnect: {}", r.line());
        }
        if self.downs > 0 {
            let _ = write!(l, "\n      {} sessions lost after Established", self.downs);
        }
        l
    }
}

/// Every run of one implementation at one host count.
#[derive(Clone, Debug)]
pub struct Results {
    /// Which.
    pub imp: Impl,
    /// Hosts.
    pub hosts: usize,
    /// Its runs.
    pub samples: Vec<Sample>,
}

/// The `q` quantile (0..=1) of `v`, nearest rank.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn median(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.collect();
    (!v.is_empty()).then(|| percentile(&v, 0.5))
}

struct Row {
    established: Option<f64>,
    dumped: Option<f64>,
    change: Option<[f64; 3]>,
    rss_mb: Option<f64>,
    per_host_kb: Option<f64>,
    cpu_ms: Option<f64>,
    reconnect: Option<f64>,
    overflows: Option<f64>,
    note: Option<String>,
}

impl Results {
    fn row(&self) -> Row {
        let done: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.storm.unfinished.is_none())
            .collect();
        let changes: Vec<f64> = done
            .iter()
            .flat_map(|s| s.changes_ms.iter().copied())
            .collect();
        let note = self
            .samples
            .iter()
            .find_map(|s| s.storm.unfinished.clone().or(s.change_unfinished.clone()));
        Row {
            established: median(done.iter().filter_map(|s| s.storm.established)),
            dumped: median(done.iter().filter_map(|s| s.storm.dumped)),
            change: (!changes.is_empty())
                .then(|| [0.5, 0.99, 1.0].map(|q| percentile(&changes, q))),
            rss_mb: median(done.iter().map(|s| s.rss_after as f64 / 1e6)),
            per_host_kb: median(done.iter().map(|s| s.rss_per_host() / 1e3)),
            cpu_ms: median(done.iter().map(|s| s.storm.cpu_per_host_ms())),
            reconnect: median(
                done.iter()
                    .filter_map(|s| s.reconnect.as_ref().and_then(|r| r.dumped)),
            ),
            overflows: median(done.iter().map(|s| s.storm.listen.overflows as f64)),
            note,
        }
    }
}

fn cell(v: Option<f64>, unit: &str, digits: usize, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{v:.digits$}{unit} ({:.1}×)", v / b),
        (Some(v), _) => format!("{v:.digits$}{unit}"),
        (None, _) => "—".to_string(),
    }
}

/// The summary over every host count, one row per implementation; BIRD's
/// cells show BIRD/Steer in parentheses.
pub fn table(results: &[Results]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| hosts | | all Established | all dumped | change p50 / p99 / max | RSS after dump | RSS per host | CPU per joining host | reconnect: all dumped | listen overflows |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let row = r.row();
        let steer = results
            .iter()
            .find(|s| s.hosts == r.hosts && s.imp == Impl::Steer && s.imp != r.imp)
            .map(Results::row);
        let base = |f: fn(&Row) -> Option<f64>| steer.as_ref().and_then(f);
        let change = match (row.change, steer.as_ref().and_then(|s| s.change)) {
            (Some(c), Some(b)) => format!(
                "{:.0} / {:.0} / {:.0} ms ({:.1}×)",
                c[0],
                c[1],
                c[2],
                c[0] / b[0]
            ),
            (Some(c), None) => format!("{:.0} / {:.0} / {:.0} ms", c[0], c[1], c[2]),
            (None, _) => "—".to_string(),
        };
        let mut dumped = cell(row.dumped, " s", 2, base(|r| r.dumped));
        if row.dumped.is_none()
            && let Some(n) = &row.note
        {
            dumped = format!("not done: {n}");
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.hosts,
            r.imp.title(),
            cell(row.established, " s", 2, base(|r| r.established)),
            dumped,
            change,
            cell(row.rss_mb, " MB", 0, base(|r| r.rss_mb)),
            cell(row.per_host_kb, " KB", 1, base(|r| r.per_host_kb)),
            cell(row.cpu_ms, " ms", 3, base(|r| r.cpu_ms)),
            cell(row.reconnect, " s", 2, base(|r| r.reconnect)),
            cell(row.overflows, "", 0, None),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }
}
