//! `cargo xtask bench bgp-core`: the same input as `bench bgp`, fed to
//! Steer's route-server core in this process, no sockets and no daemon, to
//! see where time and memory go per UPDATE and per attribute set. Two
//! stages, timed apart as the daemon runs them on different threads:
//!
//! - decode: each appliance's bytes framed, decoded and turned into route
//!   batches (`decode`, `ingest`), in reads of 64 KiB as a session does;
//! - RIB: the batches handed to `RouteServer::handle` round-robin over the
//!   appliances, a flush after every `--flush-every` reads (the daemon's
//!   batch), the receiver's queue drained after each flush.
//!
//! The counting allocator gives allocations and bytes per stage and the
//! live heap the table keeps. For a profile, run it under `perf record -e
//! cpu-clock -g` or `valgrind --tool=callgrind`; it is one thread.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use steer::bgp::message::{CodecConfig, Message, decode, frame_len};
use steer::bgp::negotiate::Negotiated;
use steer::bgp::nlri::Family;
use steer::bgp::peer::{Established, Outbound, PeerMsg, SessionEvent};
use steer::bgp::routes::{IngestContext, ingest};
use steer::bgp::status::PeerStatus;
use steer::config::{ConfigFile, ServerConfig};
use steer::server::core::RouteServer;
use tokio::sync::mpsc;

use super::ShapeArg;
use super::configs;
use super::input::Input;
use super::topology::{HOST_ADDR, RS_ADDR, RS_ASN, appliance};
use crate::alloc_count;

/// Bytes a session reads at once.
const READ: usize = 64 * 1024;

/// Options of `cargo xtask bench bgp-core`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Input shape.
    #[arg(long, value_enum, default_value_t = ShapeArg::Table)]
    pub shape: ShapeArg,
    /// Appliances.
    #[arg(long, default_value_t = 8)]
    pub peers: usize,
    /// Prefixes per appliance.
    #[arg(long, default_value_t = 100_000)]
    pub prefixes: usize,
    /// Each appliance announces its own prefixes.
    #[arg(long)]
    pub distinct: bool,
    /// Runs; each is printed.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Reads (of 64 KiB) handled between flushes.
    #[arg(long, default_value_t = 8)]
    pub flush_every: usize,
    /// Hand the reads over appliance by appliance (each session's whole
    /// table, then the next, as a daemon's session tasks tend to deliver
    /// them) instead of round-robin.
    #[arg(long)]
    pub sequential: bool,
}

fn negotiated(asn: u32, id: std::net::Ipv4Addr, ebgp: bool) -> Negotiated {
    Negotiated {
        peer_asn: asn,
        peer_router_id: id,
        hold_time: 180,
        keepalive: 60,
        families: vec![Family::IPV4_UNICAST],
        route_refresh: true,
        graceful_restart: None,
        codec: CodecConfig {
            four_octet_as: true,
            add_path_send: [!ebgp, false],
            ebgp,
            ..CodecConfig::default()
        },
    }
}

/// What one stage cost.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    secs: f64,
    cpu: f64,
    allocs: u64,
    bytes: u64,
}

/// CPU seconds this thread has used (the machine is shared: wall time
/// includes other people's work).
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

struct Start(Instant, f64, alloc_count::Snapshot);

fn start() -> Start {
    Start(Instant::now(), thread_cpu(), alloc_count::snapshot())
}

impl Cost {
    fn add(&mut self, c: Cost) {
        self.secs += c.secs;
        self.cpu += c.cpu;
        self.allocs += c.allocs;
        self.bytes += c.bytes;
    }
}

fn cost(s: &Start) -> Cost {
    let a1 = alloc_count::snapshot();
    Cost {
        secs: s.0.elapsed().as_secs_f64(),
        cpu: thread_cpu() - s.1,
        allocs: a1.allocs - s.2.allocs,
        bytes: a1.bytes - s.2.bytes,
    }
}

/// One appliance's phase, read by read as its session would: 64 KiB at a
/// time, each read's whole messages decoded into one `Routes` event.
struct Reads<'a> {
    bytes: &'a [u8],
    at: usize,
    negotiated: Negotiated,
    peer: u32,
}

impl Reads<'_> {
    fn next(&mut self) -> Result<Option<PeerMsg>> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let n = &self.negotiated;
        let ctx = IngestContext {
            negotiated: n,
            local_addr: IpAddr::V4(RS_ADDR),
            ebgp: n.codec.ebgp,
        };
        let end = (self.at + READ).min(self.bytes.len());
        let mut batches = Vec::new();
        while let Some(len) = frame_len(&self.bytes[self.at..], &n.codec)? {
            if self.at + len > end && !batches.is_empty() {
                break;
            }
            match decode(&self.bytes[self.at..self.at + len], &n.codec)? {
                Message::Update(u) => batches.extend(ingest(u, &ctx).batches),
                other => bail!("not an UPDATE: {other:?}"),
            }
            self.at += len;
            if self.at >= self.bytes.len() {
                break;
            }
        }
        Ok(Some(PeerMsg {
            peer: self.peer,
            epoch: 1,
            event: SessionEvent::Routes(batches),
        }))
    }
}

struct Receiver {
    rx: mpsc::UnboundedReceiver<bytes::Bytes>,
    bytes: usize,
    first: Option<Instant>,
}

impl Receiver {
    fn drain(&mut self) {
        while let Ok(b) = self.rx.try_recv() {
            if self.first.is_none() {
                self.first = Some(Instant::now());
            }
            self.bytes += b.len();
        }
    }
}

/// Decodes the appliances' reads round-robin and hands each to the core
/// as it is decoded, flushing every `flush_every` reads; returns the cost
/// of decoding and of the core apart.
fn run_phase(
    rs: &mut RouteServer,
    mut reads: Vec<Reads<'_>>,
    args: &Args,
    receiver: &mut Receiver,
) -> Result<(Cost, Cost)> {
    let (mut dec, mut rib) = (Cost::default(), Cost::default());
    let mut handled = 0;
    let flush_every = args.flush_every;
    let mut from = 0;
    loop {
        let mut any = false;
        let take = if args.sequential { 1 } else { reads.len() };
        for r in reads.iter_mut().skip(from).take(take) {
            let s = start();
            let m = r.next()?;
            dec.add(cost(&s));
            let Some(m) = m else { continue };
            any = true;
            let s = start();
            rs.handle(m, Instant::now());
            handled += 1;
            if handled % flush_every == 0 {
                rs.flush();
                receiver.drain();
            }
            rib.add(cost(&s));
        }
        if !any {
            if args.sequential && from + 1 < reads.len() {
                from += 1;
                continue;
            }
            break;
        }
    }
    let s = start();
    rs.flush();
    receiver.drain();
    rib.add(cost(&s));
    Ok((dec, rib))
}

/// Runs the in-process benchmark.
pub fn run(args: Args) -> Result<()> {
    let input = Input::new(args.shape.shape(), args.peers, args.prefixes, args.distinct);
    println!("{}", input.title());
    println!(
        "stage   phase {:>9} {:>9} {:>12} {:>12} {:>14} {:>10}",
        "cpu ms", "wall ms", "allocs", "MB alloc'd", "allocs/UPDATE", "first ms"
    );
    for run in 1..=args.runs {
        one_run(&input, &args).with_context(|| format!("run {run}"))?;
    }
    Ok(())
}

fn one_run(input: &Input, args: &Args) -> Result<()> {
    let text = configs::steer(input.peers, input.prefixes + 1000, super::topology::LAN);
    let cfg = ServerConfig::from_str(Path::new("bench.toml"), &text)?;
    let base = alloc_count::snapshot().live;
    let mut rs = RouteServer::new(Arc::new(cfg));
    let (tx, rx) = mpsc::unbounded_channel();
    let mut receiver = Receiver {
        rx,
        bytes: 0,
        first: None,
    };
    let host = rs.host_for(IpAddr::V4(HOST_ADDR)).context("host range")?;
    let rs_sock = SocketAddr::new(IpAddr::V4(RS_ADDR), 179);
    let status = Arc::new(PeerStatus::default());
    rs.handle(
        PeerMsg {
            peer: host,
            epoch: 1,
            event: SessionEvent::Established(Box::new(Established {
                negotiated: negotiated(RS_ASN, HOST_ADDR, false),
                local: rs_sock,
                remote: SocketAddr::new(IpAddr::V4(HOST_ADDR), 40000),
                out: Outbound::new(tx, status),
            })),
        },
        Instant::now(),
    );
    let mut sessions = Vec::new();
    for i in 0..input.peers {
        let (addr, asn) = appliance(i);
        let id = rs
            .appliance_by_addr(IpAddr::V4(addr))
            .context("appliance configured")?;
        let n = negotiated(asn, addr, true);
        let (otx, _orx) = mpsc::unbounded_channel();
        rs.handle(
            PeerMsg {
                peer: id,
                epoch: 1,
                event: SessionEvent::Established(Box::new(Established {
                    negotiated: n.clone(),
                    local: rs_sock,
                    remote: SocketAddr::new(IpAddr::V4(addr), 40000),
                    out: Outbound::new(otx, Arc::new(PeerStatus::default())),
                })),
            },
            Instant::now(),
        );
        sessions.push((id, n, _orx));
    }
    receiver.drain();
    for (p, phase) in input.phases.iter().enumerate() {
        let updates: usize = phase
            .iter()
            .map(|b| steer_tests::wire::split(b).len())
            .sum();
        let reads = sessions
            .iter()
            .enumerate()
            .map(|(i, (id, n, _))| Reads {
                bytes: &phase[i],
                at: 0,
                negotiated: n.clone(),
                peer: *id,
            })
            .collect();
        alloc_count::reset_peak();
        receiver.first = None;
        let t0 = Instant::now();
        let (dec, rib) = run_phase(&mut rs, reads, args, &mut receiver)?;
        let first = receiver
            .first
            .map_or(f64::NAN, |f| f.duration_since(t0).as_secs_f64());
        for (stage, c, first) in [("decode", dec, f64::NAN), ("rib", rib, first)] {
            println!(
                "{stage:<7} {p:>5} {:>9.1} {:>9.1} {:>12} {:>12.1} {:>14.2} {:>10.1}",
                c.cpu * 1e3,
                c.secs * 1e3,
                c.allocs,
                c.bytes as f64 / 1e6,
                c.allocs as f64 / updates as f64,
                first * 1e3
            );
        }
    }
    let live = alloc_count::snapshot().live - base;
    println!(
        "after: {:.1} MB live in the route server (peak {:.1} MB), receiver got {:.1} MB, {} paths in the table's {} prefixes, {} attribute sets",
        live as f64 / 1e6,
        (alloc_count::peak() - base) as f64 / 1e6,
        receiver.bytes as f64 / 1e6,
        rs.table().iter().map(|(_, d)| d.paths.len()).sum::<usize>(),
        rs.table().len(),
        rs.table().attr_sets()
    );
    // Teardown is not part of what is measured; leave it out of profiles.
    std::mem::forget(rs);
    Ok(())
}
