//! One benchmark size's input: which prefixes each appliance announces
//! and its UPDATEs, encoded once before any clock starts; and the check
//! that the receiver ended up with exactly that.

use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::{Result, ensure};

use super::recv::Summary;
use super::topology::appliance;
use super::{prefixes, wire};

/// One size's input, encoded before any clock starts.
pub struct Input {
    /// Appliances.
    pub peers: usize,
    /// Prefixes per appliance.
    pub prefixes: usize,
    /// Each appliance has its own prefixes.
    pub distinct: bool,
    /// Appliance i's UPDATEs, concatenated.
    pub updates: Arc<Vec<Vec<u8>>>,
}

impl Input {
    /// Generates and encodes the input.
    pub fn new(peers: usize, prefixes: usize, distinct: bool) -> Input {
        let shared = prefixes::generate(0, prefixes);
        let updates = (0..peers)
            .map(|i| {
                let (addr, asn) = appliance(i);
                if distinct {
                    wire::updates(asn, addr, &prefixes::generate(i * prefixes, prefixes))
                } else {
                    wire::updates(asn, addr, &shared)
                }
            })
            .collect();
        Input {
            peers,
            prefixes,
            distinct,
            updates: Arc::new(updates),
        }
    }

    /// Paths the receiver must end up holding.
    pub fn paths(&self) -> usize {
        self.peers * self.prefixes
    }

    /// A one-line description.
    pub fn title(&self) -> String {
        let kind = if self.distinct {
            "distinct prefixes, 1 path each"
        } else {
            "same prefixes, one path per appliance each"
        };
        format!(
            "{} appliances x {} prefixes ({kind}): receiver holds {} paths; {} kB of UPDATEs",
            self.peers,
            self.prefixes,
            self.paths(),
            self.updates
                .iter()
                .map(Vec::len)
                .sum::<usize>()
                .div_ceil(1000)
        )
    }

    /// Fails unless the receiver holds exactly the expected paths, each
    /// appliance's next hop on N of them.
    pub fn verify(&self, s: &Summary) -> Result<()> {
        let prefixes = if self.distinct {
            self.paths()
        } else {
            self.prefixes
        };
        ensure!(
            s.paths == self.paths() && s.prefixes == prefixes,
            "receiver holds {} paths for {} prefixes, expected {} for {prefixes}",
            s.paths,
            s.prefixes,
            self.paths()
        );
        let expected: Vec<(Ipv4Addr, usize)> = (0..self.peers)
            .map(|i| (appliance(i).0, self.prefixes))
            .collect();
        let got: Vec<(Ipv4Addr, usize)> = s.next_hops.iter().map(|(a, n)| (*a, *n)).collect();
        ensure!(
            got == expected,
            "next hops at the receiver: {got:?}, expected {expected:?}"
        );
        Ok(())
    }
}
