//! What the appliances send in a fan-out run and what every host must end
//! up holding: each appliance announces the same N prefixes in the chosen
//! shape (`steer_tests::shape`; `table` by default: an attribute set per
//! UPDATE of 1–10 prefixes), so a host holds 2 × N paths; a change is the
//! first appliance announcing its N prefixes again with the churn mark in
//! every MED (and the next change without it): only the MED differs, so
//! both paths of every prefix stay in the multipath set and a host's
//! table changes in exactly N paths.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail, ensure};
use steer_tests::hostsim::{Marker, Target, Witness};
use steer_tests::shape::{Appliance, Attrs, CHURNED, Plan, Prefix, Shape, prefixes};

use crate::bench_bgp::topology::appliance;

/// One write per appliance.
pub type Phase = Arc<Vec<Vec<u8>>>;

/// A run's input, encoded before any clock starts.
pub struct Input {
    /// Appliances.
    pub appliances: usize,
    /// Prefixes per appliance.
    pub prefixes: usize,
    /// The shape.
    pub shape: Shape,
    /// The table: every appliance's announcements.
    pub load: Phase,
    /// The change to marked MEDs (first appliance only) and back.
    changes: [Phase; 2],
    /// Per prefix, the attributes of its paths, sorted: unmarked, marked.
    expected: [BTreeMap<Prefix, Vec<Attrs>>; 2],
}

impl Input {
    /// Generates and encodes the input.
    pub fn new(shape: Shape, appliances: usize, n: usize) -> Input {
        let plan = Plan::new(shape, n);
        let ps = prefixes::generate(0, n);
        let mut load = Vec::new();
        let mut changes: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        let mut expected: [BTreeMap<Prefix, Vec<Attrs>>; 2] = Default::default();
        for i in 0..appliances {
            let (addr, asn) = appliance(i);
            let a = Appliance { addr, asn };
            load.push(plan.phases(a, &ps).swap_remove(0));
            for (k, marked) in [(0, false), (1, true)] {
                let (bytes, paths) = plan.remarked(a, &ps, marked && i == 0);
                changes[k].push(if i == 0 { bytes } else { Vec::new() });
                for (p, attrs) in paths {
                    expected[k].entry(p).or_default().push(attrs);
                }
            }
        }
        for e in &mut expected {
            e.values_mut().for_each(|v| v.sort());
        }
        let [unmarked, marked] = changes;
        Input {
            appliances,
            prefixes: n,
            shape,
            load: Arc::new(load),
            changes: [Arc::new(unmarked), Arc::new(marked)],
            expected,
        }
    }

    /// True when change `c` (0, 1, 2, …) sets the mark: changes 0, 2, …
    /// set it, 1, 3, … clear it again.
    pub fn marks(c: usize) -> bool {
        c.is_multiple_of(2)
    }

    /// What change `c` sends.
    pub fn change(&self, c: usize) -> &Phase {
        &self.changes[usize::from(Input::marks(c))]
    }

    /// What every host holds with the first appliance's paths marked or not.
    pub fn target(&self, marked: bool) -> Target {
        Target {
            paths: (self.appliances * self.prefixes) as u32,
            marked: if marked { self.prefixes as u32 } else { 0 },
        }
    }

    /// The marker the simulator counts changed paths with.
    pub fn marker() -> Marker {
        Arc::new(|a| a.med.is_some_and(|m| m & CHURNED != 0))
    }

    /// Fails unless the witness holds exactly the paths expected (each
    /// prefix's attributes, path for path, as the independent parser read
    /// them).
    pub fn verify(&self, w: &Witness, marked: bool) -> Result<()> {
        if let Some(e) = &w.error {
            bail!("the witness host could not parse an UPDATE: {e}");
        }
        let mut got: BTreeMap<Prefix, Vec<Attrs>> = BTreeMap::new();
        for ((p, _), a) in &w.table {
            got.entry(*p).or_default().push(a.clone());
        }
        got.values_mut().for_each(|v| v.sort());
        let want = &self.expected[usize::from(marked)];
        if got == *want {
            return Ok(());
        }
        ensure!(
            got.len() == want.len(),
            "the witness host holds {} prefixes, expected {}",
            got.len(),
            want.len()
        );
        let (p, w_attrs) = want
            .iter()
            .find(|(p, a)| got.get(*p) != Some(*a))
            .expect("the maps differ");
        bail!(
            "the witness host holds for {p}: {:?}, expected {w_attrs:?}",
            got.get(p)
        )
    }

    /// One line saying what the input is.
    pub fn title(&self) -> String {
        let kb = |p: &Phase| p.iter().map(Vec::len).sum::<usize>().div_ceil(1000);
        format!(
            "{} appliances x {} prefixes ({} shape, {} kB of UPDATEs): every host holds {} paths; a change re-announces {} of them with another MED ({} kB)",
            self.appliances,
            self.prefixes,
            self.shape.name(),
            kb(&self.load),
            self.appliances * self.prefixes,
            self.prefixes,
            kb(&self.changes[1])
        )
    }
}
