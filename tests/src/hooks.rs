//! What eBPF programs the kernel has on an interface, asked of the kernel
//! itself (not of the agent): the XDP program from `ip -d -j link`, the
//! tcx ingress programs from a tcx query.

use anyhow::{Context, Result};
use aya::programs::{SchedClassifier, TcAttachType};

use crate::netns::Netns;

/// The XDP program id on `iface` in `ns`, if any.
pub fn xdp_program(ns: &Netns, iface: &str) -> Result<Option<u32>> {
    let out = ns.ip(&format!("-d -j link show dev {iface}"))?;
    let v: serde_json::Value = serde_json::from_str(&out).context("ip -j link")?;
    let xdp = &v[0]["xdp"];
    Ok(xdp["prog"]["id"]
        .as_u64()
        .or_else(|| xdp["attached"][0]["prog"]["id"].as_u64())
        .map(|id| id as u32))
}

/// The program ids on `iface`'s tcx ingress in `ns`.
pub fn tcx_programs(ns: &Netns, iface: &str) -> Result<Vec<u32>> {
    let iface = iface.to_string();
    ns.enter(move || -> Result<Vec<u32>> {
        let (_, progs) = SchedClassifier::query_tcx(&iface, TcAttachType::Ingress)
            .with_context(|| format!("querying tcx on {iface}"))?;
        Ok(progs.iter().map(|p| p.id()).collect())
    })?
}
