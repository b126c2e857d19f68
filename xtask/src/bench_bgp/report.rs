//! Per-run samples and the summary table: median time to the receiver's
//! first route and median, min and max time to its final state, paths per
//! second, the route server's CPU seconds and peak RSS, and each
//! competitor's ratios to Steer (`BIRD/Steer 1.3x` = Steer took 1.3 times
//! less time, or memory; below 1 Steer is behind).

use std::fmt::Write;

use super::daemon::Impl;

/// One run of one implementation.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// t1 - t0: from the first UPDATE written to the receiver holding the
    /// final state.
    pub secs: f64,
    /// From the first UPDATE written to the receiver's first route.
    pub first_secs: f64,
    /// When the appliances had written everything (s after t0).
    pub written_secs: f64,
    /// Route-server CPU seconds between t0 and t1.
    pub cpu_secs: f64,
    /// Route-server peak RSS (bytes).
    pub peak_rss: u64,
    /// CPU seconds the receiver used until it held every path.
    pub receiver_cpu_secs: f64,
}

/// All runs of one implementation at one size.
pub struct Results {
    /// Which.
    pub imp: Impl,
    /// Its runs.
    pub samples: Vec<Sample>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Results {
    fn time(&self) -> f64 {
        median(self.samples.iter().map(|s| s.secs).collect())
    }

    fn first(&self) -> f64 {
        median(self.samples.iter().map(|s| s.first_secs).collect())
    }

    fn rss_mb(&self) -> f64 {
        median(
            self.samples
                .iter()
                .map(|s| s.peak_rss as f64 / 1e6)
                .collect(),
        )
    }
}

/// The table for one size; `paths` is what the receiver had to hold.
pub fn table(title: &str, paths: usize, results: &[Results]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "\n{title}");
    let _ = writeln!(
        t,
        "{:<7} {:>9} {:>10} {:>10} {:>10} {:>11} {:>9} {:>8} {:>8}  vs Steer (first, last, peak RSS)",
        "impl",
        "first ms",
        "median ms",
        "min ms",
        "max ms",
        "paths/s",
        "write ms",
        "cpu s",
        "peak MB",
    );
    let steer = results.iter().find(|r| r.imp == Impl::Steer);
    for r in results.iter().filter(|r| !r.samples.is_empty()) {
        let secs: Vec<f64> = r.samples.iter().map(|s| s.secs).collect();
        let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = secs.iter().copied().fold(0.0, f64::max);
        let med = r.time();
        let written = median(r.samples.iter().map(|s| s.written_secs).collect());
        let cpu = median(r.samples.iter().map(|s| s.cpu_secs).collect());
        let ratio = match steer {
            Some(s) if s.imp != r.imp && !s.samples.is_empty() => format!(
                "{}/Steer {:.2}x, {:.2}x, {:.2}x",
                r.imp.title(),
                r.first() / s.first(),
                med / s.time(),
                r.rss_mb() / s.rss_mb()
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "{:<7} {:>9.1} {:>10.1} {:>10.1} {:>10.1} {:>11.0} {:>9.1} {:>8.2} {:>8.1}  {}",
            r.imp.title(),
            r.first() * 1e3,
            med * 1e3,
            min * 1e3,
            max * 1e3,
            paths as f64 / med,
            written * 1e3,
            cpu,
            r.rss_mb(),
            ratio
        );
    }
    t
}
