//! `cargo xtask bench failover`: silent deaths of the active firewall in
//! the failover lab (tests/src/failover.rs), each with BFD at 300 ms × 3,
//! at 50 ms × 3, and without BFD (BGP hold time 9 s) as the baseline, all
//! with the release `steer`. A VM sends 1,000 datagrams a second; the
//! outage is what the far end's sequence numbers say (the sender's time
//! from the last datagram before the gap to the first after it).
//!
//! Each death is also timed step by step, from the cut (`ip link set eth0
//! down` on fw1), with instruments Steer does not own: the route server's
//! UPDATE to the host as tcpdump saw it on the LAN bridge, the host
//! kernel's route or nexthop change as a netlink listener in the host saw
//! it, and the first datagram through fw2 at the far end. Only the moment
//! of detection comes from the route server's own log (its NOTIFICATION
//! to a dead peer waits behind TCP retransmissions and may never reach
//! the wire). The agent's share is from the UPDATE on the wire to the
//! kernel change.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use steer_tests::capture::bgp_messages_timed;
use steer_tests::failover::{FailoverLab, FailoverSpec, SINK};
use steer_tests::rtmon::{Change, RouteWatch};
use steer_tests::stream::{Sender, Sink, StreamSpec, analyze, now_ns};
use steer_tests::wire::Message;
use steer_tests::{BfdTimers, Capture};

use crate::bench_bgp::{cargo, interrupt};

/// Options of `cargo xtask bench failover`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Silent deaths per configuration.
    #[arg(long, default_value_t = 20)]
    pub deaths: usize,
    /// Configurations, comma-separated: `INTERVALxMULT` for BFD (ms), or
    /// `off` for BGP's hold time alone [default: 300x3,50x3,off].
    #[arg(long, value_delimiter = ',')]
    pub configs: Vec<String>,
    /// BGP hold time (s) everywhere; without BFD it is the detection.
    #[arg(long, default_value_t = 9)]
    pub hold_time: u16,
    /// The steer binary [default: `cargo build --release -p steer`].
    #[arg(long)]
    pub steer_bin: Option<PathBuf>,
}

/// One silent death, every time in ms after the cut.
#[derive(Clone, Copy, Debug)]
struct Death {
    /// The VM's outage (sequence gap at the far end, sender's clock).
    outage: f64,
    /// The route server's log line for fw1 going Down (BFD Down, or the
    /// hold timer): the one time that comes from Steer itself.
    detected: f64,
    /// The route server's UPDATE to the host on the wire.
    update: f64,
    /// The host kernel's route or nexthop change.
    kernel: f64,
    /// The first datagram through fw2 sent.
    resumed: f64,
}

fn parse_config(s: &str) -> Result<Option<BfdTimers>> {
    if s == "off" {
        return Ok(None);
    }
    let (i, m) = s
        .split_once('x')
        .with_context(|| format!("`{s}`: want INTERVALxMULT (e.g. 300x3) or off"))?;
    Ok(Some(BfdTimers {
        interval_ms: i.parse().with_context(|| format!("`{s}`: bad interval"))?,
        multiplier: m
            .parse()
            .with_context(|| format!("`{s}`: bad multiplier"))?,
    }))
}

fn title(b: Option<BfdTimers>, hold: u16) -> String {
    match b {
        Some(b) => format!("BFD {} ms × {}", b.interval_ms, b.multiplier),
        None => format!("BFD off (hold {hold} s)"),
    }
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC (ns): pcap times are real time.
fn realtime_offset() -> i128 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    real - i128::from(now_ns())
}

/// Runs the benchmark and prints the table.
pub fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "bench failover needs root (network namespaces, XDP)"
    );
    ensure!(args.deaths >= 1, "--deaths must be at least 1");
    let configs: Vec<Option<BfdTimers>> = if args.configs.is_empty() {
        vec![parse_config("300x3")?, parse_config("50x3")?, None]
    } else {
        args.configs
            .iter()
            .map(|c| parse_config(c))
            .collect::<Result<_>>()?
    };
    interrupt::install();
    let bin = match &args.steer_bin {
        Some(p) => p.clone(),
        None => cargo::build_steer()?,
    };
    // SAFETY: set before any other thread of this process starts.
    unsafe { std::env::set_var("STEER_BIN", &bin) };
    let mut results = Vec::new();
    for b in configs {
        println!("\n== {} ==", title(b, args.hold_time));
        let deaths = one_config(b, &args)?;
        results.push((b, deaths));
    }
    print!("{}", table(&results, args.hold_time));
    Ok(())
}

fn one_config(bfd: Option<BfdTimers>, args: &Args) -> Result<Vec<Death>> {
    let lab = FailoverLab::start(FailoverSpec {
        bfd,
        hold_time: args.hold_time,
        ..FailoverSpec::default()
    })?;
    let budget = match bfd {
        Some(_) => Duration::from_secs(3),
        None => Duration::from_secs(u64::from(args.hold_time) + 4),
    };
    let mut out = Vec::new();
    for i in 1..=args.deaths {
        interrupt::check()?;
        let d = one_death(&lab, budget)
            .with_context(|| format!("death {i}"))
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}\nroute server log:\n{}\nagent log:\n{}",
                    lab.rs.log_tail(),
                    lab.agent.log_tail()
                )
            })?;
        println!(
            "  death {i:2}/{}: VM outage {:7.1} ms | after the cut: detected {:7.1}, UPDATE at host {:7.1}, kernel changed {:7.1}, traffic via fw2 {:7.1} (agent {:.2} ms)",
            args.deaths,
            d.outage,
            d.detected,
            d.update,
            d.kernel,
            d.resumed,
            d.kernel - d.update
        );
        out.push(d);
        lab.restore_fw1()?;
        lab.wait_fw1_back(Duration::from_secs(60))?;
        lab.wait_ready()?;
    }
    Ok(out)
}

fn one_death(lab: &FailoverLab, budget: Duration) -> Result<Death> {
    let lead = Duration::from_millis(1500);
    let mut cap = Capture::start(lab.lan.ns(), "br0", "tcp port 179")?;
    let watch = RouteWatch::start(&lab.host)?;
    let sink = Sink::start(&lab.inet, SINK)?;
    let sender = Sender::start(
        &lab.vm,
        StreamSpec {
            dst: SINK,
            flows: 1,
            first_port: 40000,
            rate: 1000,
            duration: lead + budget,
        },
    )?;
    std::thread::sleep(lead);
    let offset = realtime_offset();
    let cut = lab.cut_fw1()?;
    let sent = sender.join()?;
    let arrivals = sink.finish()?;
    let changes = watch.finish()?;
    let msgs = bgp_messages_timed(&cap.stop()?);

    let f = &analyze(&sent, &arrivals)[0];
    let gap = f
        .longest_gap
        .with_context(|| format!("no outage: the stream never failed over: {f:?}"))?;
    if (gap.before_ifindex, gap.after_ifindex) != (lab.in1, lab.in2) {
        bail!("the gap is not the failover from fw1 to fw2: {f:?}");
    }
    let ms = |t: i128| (t - i128::from(cut)) as f64 / 1e6;
    let wire_ms = |t: u64| ms(i128::from(t) - offset);
    let rs = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 4), 179);
    let after_cut = |t: u64| i128::from(t) - offset > i128::from(cut);
    let detected = lab
        .rs
        .log()
        .lines()
        .filter(|l| {
            l.contains("(fw1): Up -> Down")
                || (l.contains("peer{name=fw1") && l.contains("session down"))
        })
        .filter_map(log_time_ns)
        .find(|t| t - offset > i128::from(cut))
        .map(|t| ms(t - offset))
        .context("the route server's log has no Down for fw1 after the cut")?;
    let update = msgs
        .iter()
        .find(|(src, dst, m, t)| {
            *src == rs
                && dst.ip().to_string() == "10.1.0.31"
                && matches!(m, Message::Update { .. })
                && after_cut(*t)
        })
        .map(|x| wire_ms(x.3))
        .context("no UPDATE to the host after the cut")?;
    let kernel = changes
        .iter()
        .find(|e| {
            e.at_ns > cut
                && match e.change {
                    Change::Route { table, dst_len, .. } => table == 200 && dst_len == 0,
                    Change::Nexthop { .. } => true,
                }
        })
        .map(|e| ms(i128::from(e.at_ns)))
        .context("the host kernel's default route never changed after the cut")?;
    Ok(Death {
        outage: gap.outage.as_secs_f64() * 1e3,
        detected,
        update,
        kernel,
        resumed: ms(i128::from(gap.resumed_ns)),
    })
}

/// The time of a log line (`2026-01-02T03:04:05.678901Z ...`, UTC) in ns
/// since the Unix epoch.
fn log_time_ns(line: &str) -> Option<i128> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    let digits = frac.len().min(9);
    let nanos = frac[..digits].parse::<i64>().ok()? * 10i64.pow(9 - digits as u32);
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// The nearest-rank percentile `p` (0–100) of `v`.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

fn table(results: &[(Option<BfdTimers>, Vec<Death>)], hold: u16) -> String {
    let mut out = String::from("\n| | ");
    out.push_str(
        &results
            .iter()
            .map(|(b, _)| title(*b, hold))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" |\n|---|");
    out.push_str(&"---|".repeat(results.len()));
    out.push('\n');
    type Pick = fn(&Death) -> f64;
    let rows: [(&str, Pick); 7] = [
        ("VM outage", |d| d.outage),
        ("detected (route server's log)", |d| d.detected),
        ("route server's UPDATE at the host", |d| d.update),
        (
            "route server's share (detected to UPDATE on the wire)",
            |d| d.update - d.detected,
        ),
        ("host kernel route changed", |d| d.kernel),
        ("agent's share (UPDATE on the wire to kernel change)", |d| {
            d.kernel - d.update
        }),
        ("first datagram through fw2", |d| d.resumed),
    ];
    for (name, pick) in rows {
        out.push_str(&format!("| {name}, p50 / p99 |"));
        for (_, deaths) in results {
            let v: Vec<f64> = deaths.iter().map(pick).collect();
            out.push_str(&format!(
                " {} / {} |",
                fmt_ms(percentile(&v, 50.0)),
                fmt_ms(percentile(&v, 99.0))
            ));
        }
        out.push('\n');
    }
    let n = results.first().map_or(0, |(_, d)| d.len());
    out.push_str(&format!(
        "\n{n} silent deaths each; times after the cut except the outage and the two shares; p99 of {n} is the worst.\n"
    ));
    out
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 99.0), 20.0);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
    }

    #[test]
    fn log_lines_give_their_utc_time() {
        assert_eq!(
            log_time_ns("2026-11-30T09:26:51.513324Z  WARN steer::bfd::driver: x"),
            Some(1_796_030_811_513_324_000)
        );
        assert_eq!(log_time_ns("1970-01-01T00:00:01Z x"), Some(1_000_000_000));
        assert_eq!(log_time_ns("garbage"), None);
    }

    #[test]
    fn configs_parse_as_interval_times_multiplier_or_off() {
        assert_eq!(
            parse_config("50x3").unwrap(),
            Some(BfdTimers {
                interval_ms: 50,
                multiplier: 3
            })
        );
        assert_eq!(parse_config("off").unwrap(), None);
        assert!(parse_config("fast").is_err());
    }
}
