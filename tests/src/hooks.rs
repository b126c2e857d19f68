//! What eBPF programs the kernel has on an interface, asked of the kernel
//! itself (not of the agent): the XDP program from `ip -d -j link`, the
//! tcx ingress programs from a tcx query; and what a pinned IPv4 LPM map
//! holds, from `bpftool`.

use std::path::Path;

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

/// The prefixes in the pinned IPv4 LPM trie `map` (`STEER_LPM4`,
/// `STEER_VM4`) as `bpftool map dump` reads them from `ns` (raw keys: the
/// prefix length, then the address), `a.b.c.d/len` each.
pub fn pinned_lpm4(ns: &Netns, map: &Path) -> Result<Vec<String>> {
    let dump = ns.exec(
        "bpftool",
        &["-j", "map", "dump", "pinned", &map.display().to_string()],
    )?;
    let v: serde_json::Value = serde_json::from_str(&dump).context("bpftool -j map dump")?;
    let mut out = Vec::new();
    for e in v.as_array().into_iter().flatten() {
        let key: Vec<u8> = e["key"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                b.as_str()
                    .and_then(|s| u8::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            })
            .collect();
        if key.len() == 8 {
            out.push(format!(
                "{}.{}.{}.{}/{}",
                key[4], key[5], key[6], key[7], key[0]
            ));
        }
    }
    Ok(out)
}
