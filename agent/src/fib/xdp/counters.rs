//! The programs' counters, by hook (`xdp`, `tc`, the return path's
//! `return`) and reason: summed over CPUs from the pinned per-CPU map (so
//! they count across agent restarts), with the XDP redirects the kernel
//! dropped ([`super::redirect_targets`]) taken out of `xdp forwarded` and
//! shown as `xdp redirect_failed`.

use std::fmt;

use aya::maps::{MapData, PerCpuArray};
use steer_common::{Counter, HOOKS, Hook, MAP_COUNTERS, REASONS, Reason};

use super::{XdpError, map_err};

/// One counter, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CounterValue {
    /// Its hook (`xdp` or `tc`).
    pub hook: &'static str,
    /// Its reason's name (`forwarded`, `pass_no_route`, ...).
    pub name: &'static str,
    /// Packets (at TC: skbs, so a GSO superpacket counts once).
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// All counters, hook by hook, each in [`Reason`] order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DataplaneCounters {
    /// One per hook and reason.
    pub values: Vec<CounterValue>,
}

impl DataplaneCounters {
    /// The counter of `reason` at `hook`.
    pub fn get(&self, hook: Hook, reason: Reason) -> CounterValue {
        self.values[hook.counter(reason) as usize]
    }

    /// Packets counted under `reason` at `hook`.
    pub fn packets(&self, hook: Hook, reason: Reason) -> u64 {
        self.get(hook, reason).packets
    }

    /// Packets under every reason at `hook` (everything it saw).
    pub fn total_packets(&self, hook: Hook) -> u64 {
        self.values
            .iter()
            .filter(|v| v.hook == hook.name())
            .map(|v| v.packets)
            .sum()
    }

    /// Packets forwarded by all hooks together.
    pub fn forwarded(&self) -> u64 {
        HOOKS
            .iter()
            .map(|h| self.packets(*h, Reason::Forwarded))
            .sum()
    }

    /// Reads the map; `xdp_refused` frames XDP redirected were dropped by
    /// the kernel.
    pub(super) fn read(
        map: &PerCpuArray<MapData, Counter>,
        xdp_refused: u64,
    ) -> Result<DataplaneCounters, XdpError> {
        let mut values = Vec::with_capacity(HOOKS.len() * REASONS.len());
        for hook in HOOKS {
            for reason in REASONS {
                let per_cpu = map
                    .get(&hook.counter(reason), 0)
                    .map_err(map_err(MAP_COUNTERS))?;
                let (packets, bytes) = per_cpu
                    .iter()
                    .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes));
                values.push(CounterValue {
                    hook: hook.name(),
                    name: reason.name(),
                    packets,
                    bytes,
                });
            }
        }
        let mut c = DataplaneCounters { values };
        c.take_refused(xdp_refused);
        Ok(c)
    }

    /// Moves `refused` XDP redirects from `forwarded` to `redirect_failed`
    /// (bytes in proportion: the kernel counts frames only).
    fn take_refused(&mut self, refused: u64) {
        let fwd = Hook::Xdp.counter(Reason::Forwarded) as usize;
        let failed = Hook::Xdp.counter(Reason::RedirectFailed) as usize;
        let refused = refused.min(self.values[fwd].packets);
        if refused == 0 {
            return;
        }
        let bytes = (self.values[fwd].bytes as u128 * refused as u128
            / self.values[fwd].packets as u128) as u64;
        self.values[fwd].packets -= refused;
        self.values[fwd].bytes -= bytes;
        self.values[failed].packets += refused;
        self.values[failed].bytes += bytes;
    }
}

impl fmt::Display for DataplaneCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<5} {:<22} {:>14} {:>16}",
            "hook", "reason", "packets", "bytes"
        )?;
        for v in &self.values {
            writeln!(
                f,
                "{:<5} {:<22} {:>14} {:>16}",
                v.hook, v.name, v.packets, v.bytes
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DataplaneCounters {
        DataplaneCounters {
            values: HOOKS
                .iter()
                .flat_map(|h| {
                    REASONS.iter().map(move |r| CounterValue {
                        hook: h.name(),
                        name: r.name(),
                        packets: u64::from(r.index()) + 100 * *h as u64,
                        bytes: 100,
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn counters_are_found_by_hook_and_reason_and_print_one_line_each() {
        let c = sample();
        assert_eq!(c.packets(Hook::Xdp, Reason::NoNeigh), 3);
        assert_eq!(c.packets(Hook::Tc, Reason::NoNeigh), 103);
        assert_eq!(c.forwarded(), 100 + 200, "tc's and the return path's");
        assert_eq!(
            c.total_packets(Hook::Xdp),
            (0..REASONS.len() as u64).sum::<u64>()
        );
        let text = c.to_string();
        assert_eq!(text.lines().count(), 1 + HOOKS.len() * REASONS.len());
        assert_eq!(
            text.lines()
                .nth(1 + REASONS.len() + 3)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["tc", "pass_no_neigh", "103", "100"]
        );
    }

    #[test]
    fn refused_redirects_move_from_forwarded_to_redirect_failed() {
        let mut c = sample();
        let fwd = Hook::Xdp.counter(Reason::Forwarded) as usize;
        c.values[fwd].packets = 10;
        c.values[fwd].bytes = 1000;
        c.take_refused(4);
        assert_eq!(c.get(Hook::Xdp, Reason::Forwarded).packets, 6);
        assert_eq!(c.get(Hook::Xdp, Reason::Forwarded).bytes, 600);
        assert_eq!(c.get(Hook::Xdp, Reason::RedirectFailed).packets, 15 + 4);
        assert_eq!(c.get(Hook::Xdp, Reason::RedirectFailed).bytes, 100 + 400);
        c.take_refused(1000);
        assert_eq!(c.get(Hook::Xdp, Reason::Forwarded).packets, 0);
        assert_eq!(c.get(Hook::Tc, Reason::Forwarded).packets, 100);
    }
}
