//! One benchmark size's input: which prefixes each appliance announces in
//! which shape, its UPDATEs phase by phase (encoded once, before any clock
//! starts, by `steer_tests::shape`), what the receiver holds after each
//! phase, and the check that it ended up with exactly that.

use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::{Result, ensure};
use steer_tests::shape::{Appliance, CHURNED, Plan, Shape, prefixes};

use super::recv::Summary;
use super::topology::appliance;

/// What the receiver holds once a phase has gone through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Distinct (prefix, path id).
    pub paths: usize,
    /// Of those, paths whose MED carries the churn mark.
    pub churned: usize,
    /// Distinct prefixes.
    pub prefixes: usize,
    /// Sum of the paths' MEDs (0 for none): catches a stale attribute set.
    pub med_sum: u64,
}

/// One size's input, encoded before any clock starts.
pub struct Input {
    /// Appliances.
    pub peers: usize,
    /// Prefixes per appliance.
    pub prefixes: usize,
    /// Each appliance has its own prefixes.
    pub distinct: bool,
    /// The shape.
    pub shape: Shape,
    /// `phases[p][i]`: appliance i's UPDATEs of phase p, concatenated. The
    /// last phase is the timed one; those before it load the table.
    pub phases: Vec<Arc<Vec<Vec<u8>>>>,
    /// The receiver's state after each phase.
    pub targets: Vec<Target>,
    /// Paths per appliance at the end.
    per_appliance: usize,
}

impl Input {
    /// Generates and encodes the input.
    pub fn new(shape: Shape, peers: usize, prefixes: usize, distinct: bool) -> Input {
        let plan = Plan::new(shape, prefixes);
        let shared = prefixes::generate(0, prefixes);
        let mut phases: Vec<Vec<Vec<u8>>> = vec![Vec::new(); plan.phase_count()];
        let mut med_sums = vec![0u64; plan.phase_count()];
        for i in 0..peers {
            let own;
            let ps = if distinct {
                own = prefixes::generate(i * prefixes, prefixes);
                &own
            } else {
                &shared
            };
            let (addr, asn) = appliance(i);
            let a = Appliance { addr, asn };
            for (p, bytes) in plan.phases(a, ps).into_iter().enumerate() {
                phases[p].push(bytes);
                med_sums[p] += plan
                    .paths_after(p, a, ps)
                    .map(|(_, x)| u64::from(x.med.unwrap_or(0)))
                    .sum::<u64>();
            }
        }
        let targets = (0..plan.phase_count())
            .map(|p| {
                let n = plan.prefixes_after(p);
                let churn = shape == Shape::Churn && p > 0;
                Target {
                    paths: peers * n,
                    churned: if churn { peers * n } else { 0 },
                    prefixes: if distinct { n * peers } else { n },
                    med_sum: med_sums[p],
                }
            })
            .collect();
        Input {
            peers,
            prefixes,
            distinct,
            shape,
            phases: phases.into_iter().map(Arc::new).collect(),
            targets,
            per_appliance: plan.prefixes_after(plan.phase_count() - 1),
        }
    }

    /// The timed phase's target.
    pub fn target(&self) -> Target {
        *self.targets.last().expect("at least one phase")
    }

    /// A one-line description.
    pub fn title(&self) -> String {
        let kind = if self.distinct {
            "distinct prefixes, 1 path each"
        } else {
            "same prefixes, one path per appliance each"
        };
        let kb = |p: &Arc<Vec<Vec<u8>>>| p.iter().map(Vec::len).sum::<usize>().div_ceil(1000);
        let bytes: Vec<String> = self
            .phases
            .iter()
            .map(|p| format!("{} kB", kb(p)))
            .collect();
        let what = match self.shape {
            Shape::Packed => "one attribute set per appliance, full UPDATEs".to_string(),
            Shape::Table => "an attribute set per UPDATE of 1-10 prefixes".to_string(),
            Shape::Churn => format!(
                "table loaded, then timed: all re-announced with new attributes, {} of {} per appliance withdrawn",
                self.prefixes - self.per_appliance,
                self.prefixes
            ),
        };
        format!(
            "{}: {} appliances x {} prefixes ({kind}; {what}): receiver ends with {} paths; UPDATEs {}",
            self.shape.name(),
            self.peers,
            self.prefixes,
            self.target().paths,
            bytes.join(" + ")
        )
    }

    /// Fails unless the receiver holds exactly the expected paths: the
    /// count, the prefixes, each appliance's next hop on its share, the
    /// churn marks and the MEDs.
    pub fn verify(&self, s: &Summary) -> Result<()> {
        let t = self.target();
        ensure!(
            s.paths == t.paths && s.prefixes == t.prefixes,
            "receiver holds {} paths for {} prefixes, expected {} for {}",
            s.paths,
            s.prefixes,
            t.paths,
            t.prefixes
        );
        ensure!(
            s.churned == t.churned && s.med_sum == t.med_sum,
            "receiver's paths carry the wrong attributes: {} churned (expected {}), MED sum {} (expected {})",
            s.churned,
            t.churned,
            s.med_sum,
            t.med_sum
        );
        let expected: Vec<(Ipv4Addr, usize)> = (0..self.peers)
            .map(|i| (appliance(i).0, self.per_appliance))
            .collect();
        let got: Vec<(Ipv4Addr, usize)> = s.next_hops.iter().map(|(a, n)| (*a, *n)).collect();
        ensure!(
            got == expected,
            "next hops at the receiver: {got:?}, expected {expected:?}"
        );
        Ok(())
    }
}

/// True when a MED carries the churn mark.
pub fn churned(med: u32) -> bool {
    med & CHURNED != 0
}
