//! `cargo xtask fuzz`: the cargo-fuzz targets of `fuzz/`, two ways.
//!
//! - `--ci` (what scripts/test.sh runs): every target replays its
//!   committed inputs (`fuzz/corpus/<target>`, `fuzz/seeds/<target>`), then
//!   searches from them with a fixed seed for a fixed number of runs,
//!   without address-space randomisation or comparison-guided mutation, so
//!   the step executes the same inputs and gives the same answer on every
//!   run. New inputs go to a
//!   scratch directory, never into the committed corpus.
//! - default: long runs with a random seed, `--time` seconds per target,
//!   growing `fuzz/corpus/<target>`. Findings stay in
//!   `fuzz/artifacts/<target>/` and are printed with the commands that
//!   reproduce and minimise them.
//!
//! cargo-fuzz builds optimised code with debug assertions and overflow
//! checks on, under AddressSanitizer: arithmetic overflow is a finding too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};

/// The fixed libFuzzer seed of the CI search.
const CI_SEED: u32 = 7;
/// Runs of the CI search per target (replayed inputs included), sized for
/// about 30 s each on the 2-core development machine.
const CI_RUNS: &[(&str, u64)] = &[
    ("decode", 120_000),
    ("open", 120_000),
    ("session", 20_000),
    ("config", 120_000),
];
/// libFuzzer flags that make the CI search replay exactly: no rereading of
/// the output directory on a timer, and no comparison-guided mutation
/// (compared values include addresses, which differ between runs even
/// without address-space randomisation).
const CI_DETERMINISTIC: [&str; 2] = ["-reload=0", "-use_cmp=0"];
/// Longest any single input may run before it counts as a hang (seconds).
const INPUT_TIMEOUT: u32 = 30;

/// Options of `cargo xtask fuzz`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Seconds of fuzzing per target (long runs).
    #[arg(long, default_value_t = 3600)]
    pub time: u64,
    /// The CI step: replay the committed corpora, then a fixed-seed search
    /// of a fixed number of runs.
    #[arg(long, conflicts_with = "time")]
    pub ci: bool,
    /// Targets to run [default: all of `cargo fuzz list`].
    pub targets: Vec<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

fn cargo_fuzz(root: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root).args(["+nightly", "fuzz"]);
    c
}

fn list_targets(root: &Path) -> Result<Vec<String>> {
    let out = cargo_fuzz(root)
        .arg("list")
        .output()
        .context("run `cargo +nightly fuzz list` (is cargo-fuzz installed?)")?;
    ensure!(
        out.status.success(),
        "cargo +nightly fuzz list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// What libFuzzer reported at the end of one run.
#[derive(Debug, Default)]
struct Outcome {
    success: bool,
    /// `stat::number_of_executed_units`.
    execs: Option<u64>,
    /// The `DONE` line's coverage, features and corpus size.
    coverage: Option<String>,
    /// The random seed libFuzzer chose.
    seed: Option<String>,
    wall: Duration,
    cpu: Duration,
}

/// Turn off address-space randomisation for this process and the fuzzers
/// it starts. With it on, coverage and libFuzzer's comparison dictionary
/// see different addresses every run (pointer-keyed tables, compared
/// pointers), so a fixed seed would not replay the same search.
fn no_aslr() -> Result<()> {
    const ADDR_NO_RANDOMIZE: libc::c_ulong = 0x0040000;
    const QUERY: libc::c_ulong = 0xffff_ffff;
    // SAFETY: personality(2) only reads its argument.
    let current = unsafe { libc::personality(QUERY) };
    ensure!(
        current >= 0,
        "personality(2): {}",
        std::io::Error::last_os_error()
    );
    let r = unsafe { libc::personality(current as libc::c_ulong | ADDR_NO_RANDOMIZE) };
    ensure!(
        r >= 0,
        "personality(ADDR_NO_RANDOMIZE): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Run `cargo fuzz run` for `target` over `dirs` with libFuzzer `flags`,
/// passing its output through and reading libFuzzer's statistics from it.
fn run(root: &Path, target: &str, dirs: &[PathBuf], flags: &[String]) -> Result<Outcome> {
    let (t0, cpu0) = (Instant::now(), children_cpu());
    let mut child = cargo_fuzz(root)
        .args(["run", target])
        .args(dirs)
        .arg("--")
        .args(flags)
        .args(["-print_final_stats=1", &format!("-timeout={INPUT_TIMEOUT}")])
        .stderr(Stdio::piped())
        .spawn()
        .context("run cargo +nightly fuzz run")?;
    let mut o = Outcome::default();
    let stderr = child.stderr.take().expect("piped");
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        eprintln!("{line}");
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            o.execs = v.trim().parse().ok();
        } else if let Some(i) = line.find("DONE ") {
            let stats: Vec<&str> = line[i + 5..].split_whitespace().collect();
            let keep: Vec<String> = stats
                .chunks(2)
                .filter(|kv| matches!(kv[0], "cov:" | "ft:" | "corp:"))
                .map(|kv| kv.join(" "))
                .collect();
            o.coverage = Some(keep.join(" "));
        } else if let Some(v) = line.strip_prefix("INFO: Seed: ") {
            o.seed = Some(v.trim().to_string());
        }
    }
    o.success = child.wait()?.success();
    o.wall = t0.elapsed();
    o.cpu = children_cpu().saturating_sub(cpu0);
    Ok(o)
}

/// Files in `dir` modified at or after `since`.
fn new_files(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn existing(dirs: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

struct Report {
    target: String,
    phase: &'static str,
    outcome: Outcome,
    findings: Vec<PathBuf>,
}

/// Runs the fuzz targets as `args` asks and prints a summary; fails when
/// any target failed or found something.
pub fn run_all(args: Args) -> Result<()> {
    let root = root();
    let all = list_targets(&root)?;
    let targets = if args.targets.is_empty() {
        all.clone()
    } else {
        args.targets.clone()
    };
    for t in &targets {
        ensure!(
            all.contains(t),
            "no fuzz target `{t}` (have: {})",
            all.join(", ")
        );
    }
    if args.ci {
        for t in &all {
            ensure!(
                CI_RUNS.iter().any(|(n, _)| n == t),
                "fuzz target `{t}` has no CI run count in xtask/src/fuzz.rs CI_RUNS"
            );
        }
    }
    if args.ci {
        no_aslr()?;
        let status = Command::new("cargo")
            .current_dir(&root)
            .args(["+nightly", "metadata", "--locked", "--format-version=1"])
            .args(["--manifest-path", "fuzz/Cargo.toml"])
            .stdout(Stdio::null())
            .status()
            .context("run cargo metadata")?;
        ensure!(
            status.success(),
            "fuzz/Cargo.lock is not up to date: run `cargo +nightly fuzz build` and commit it"
        );
    }
    let status = cargo_fuzz(&root)
        .arg("build")
        .status()
        .context("run cargo +nightly fuzz build")?;
    ensure!(status.success(), "cargo +nightly fuzz build failed");

    let mut reports = Vec::new();
    for t in &targets {
        let corpus = root.join("fuzz/corpus").join(t);
        let seeds = root.join("fuzz/seeds").join(t);
        let artifacts = root.join("fuzz/artifacts").join(t);
        let since = SystemTime::now();
        let mut phases: Vec<(&'static str, Vec<PathBuf>, Vec<String>)> = Vec::new();
        if args.ci {
            let committed = existing([corpus.clone(), seeds.clone()]);
            ensure!(
                !committed.is_empty(),
                "fuzz target `{t}` has no committed corpus in {}",
                corpus.display()
            );
            let scratch = std::env::temp_dir().join(format!("steer-fuzz-ci-{t}"));
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch)?;
            let runs = CI_RUNS.iter().find(|(n, _)| n == t).map_or(0, |r| r.1);
            phases.push((
                "replay",
                committed.clone(),
                vec![format!("-seed={CI_SEED}"), "-runs=0".into()],
            ));
            let mut dirs = vec![scratch];
            dirs.extend(committed);
            phases.push((
                "search",
                dirs,
                [format!("-seed={CI_SEED}"), format!("-runs={runs}")]
                    .into_iter()
                    .chain(CI_DETERMINISTIC.map(String::from))
                    .collect(),
            ));
        } else {
            std::fs::create_dir_all(&corpus)?;
            phases.push((
                "random",
                existing([corpus, seeds]),
                vec![format!("-max_total_time={}", args.time)],
            ));
        }
        for (phase, dirs, flags) in phases {
            eprintln!("\n=== fuzz {t}: {phase}");
            let outcome = run(&root, t, &dirs, &flags)?;
            let failed = !outcome.success;
            reports.push(Report {
                target: t.clone(),
                phase,
                outcome,
                findings: new_files(&artifacts, since),
            });
            if failed {
                break;
            }
        }
    }
    summary(&reports)
}

fn summary(reports: &[Report]) -> Result<()> {
    println!(
        "\n{:<9} {:<7} {:>10} {:>8} {:>8}  result",
        "target", "phase", "execs", "wall s", "cpu s"
    );
    for r in reports {
        let o = &r.outcome;
        println!(
            "{:<9} {:<7} {:>10} {:>8.1} {:>8.1}  {}{}{}",
            r.target,
            r.phase,
            o.execs.map_or("?".into(), |n| n.to_string()),
            o.wall.as_secs_f64(),
            o.cpu.as_secs_f64(),
            if o.success { "ok" } else { "FAILED" },
            o.coverage
                .as_ref()
                .map_or(String::new(), |c| format!(", {c}")),
            o.seed
                .as_ref()
                .map_or(String::new(), |s| format!(", seed {s}")),
        );
    }
    let mut failed = false;
    for r in reports
        .iter()
        .filter(|r| !r.outcome.success || !r.findings.is_empty())
    {
        failed = true;
        println!("\n{} ({}) found:", r.target, r.phase);
        for f in &r.findings {
            let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
            println!("  {rel}");
            println!("    reproduce: cargo +nightly fuzz run {} {rel}", r.target);
            println!("    minimise:  cargo +nightly fuzz tmin {} {rel}", r.target);
        }
        if r.findings.is_empty() {
            println!("  (no artifact written; see the output above)");
        }
    }
    if failed {
        println!(
            "\nEvery finding becomes a regression case: fix the module that was wrong with a unit \
             test named for the behaviour, and commit the input as fuzz/seeds/<target>/regress-<what>.bin."
        );
        bail!("fuzzing found failures");
    }
    Ok(())
}
