//! GoBGP as a lab peer: gobgpd with a TOML config in a namespace (a stand-in
//! for a host agent: iBGP with ADD-PATH receive), queried and driven with the
//! `gobgp` CLI (run inside the namespace, since the gRPC API listens on the
//! namespace's own loopback).

mod config;
mod show;

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tempfile::TempDir;

pub use config::GobgpConfig;
pub use show::{parse_rib, parse_state};

use crate::daemon::BgpDaemon;
use crate::netns::Netns;
use crate::process::Process;
use crate::route::{Announce, Route, SessionState, require_tool};
use crate::wait::{default_timeout, wait_for};

/// A running gobgpd; stopped on drop.
pub struct Gobgp {
    process: Process,
    ns: Netns,
    config: GobgpConfig,
    dir: TempDir,
}

impl Gobgp {
    /// Starts gobgpd in `ns` and waits until its API answers.
    pub fn start(ns: &Netns, config: GobgpConfig) -> Result<Gobgp> {
        require_tool("gobgpd", "gobgpd")?;
        require_tool("gobgp", "gobgpd")?;
        if let Some(n) = config.neighbors.iter().find(|n| n.bfd.is_some()) {
            anyhow::bail!(
                "neighbour {}: GoBGP has no BFD; use BIRD or FRR for a BFD peer",
                n.name
            );
        }
        let dir = crate::tmp::dir(&format!("{}-gobgp", ns.name()))?;
        let conf = crate::tmp::write(dir.path(), "gobgpd.toml", &config.render())?;
        let mut cmd = ns.command("gobgpd")?;
        cmd.arg("-f")
            .arg(&conf)
            .arg("-t")
            .arg("toml")
            .arg("--api-hosts")
            .arg(format!("127.0.0.1:{}", config.api_port))
            .arg("--log-level=debug")
            .arg("--log-plain")
            .arg("--pprof-disable");
        let process = ns.spawn("gobgpd", cmd, &dir.path().join("gobgpd.log"))?;
        let mut gobgp = Gobgp {
            process,
            ns: ns.clone(),
            config,
            dir,
        };
        let what = format!("GoBGP in {}: API not answering", gobgp.ns.name());
        wait_for(&what, default_timeout(), || {
            gobgp.process.ensure_running()?;
            Ok(gobgp.cli(&["global"]).ok())
        })
        .map_err(|e| gobgp.with_logs(e))?;
        Ok(gobgp)
    }

    /// The namespace gobgpd runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Runs `gobgp -u 127.0.0.1 -p PORT ARGS` in the namespace.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let port = self.config.api_port.to_string();
        let mut all = vec!["-u", "127.0.0.1", "-p", port.as_str()];
        all.extend_from_slice(args);
        self.ns.exec("gobgp", &all)
    }

    /// Runs `gobgp -j ARGS` and parses the JSON.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let text = self.cli(&all)?;
        serde_json::from_str(&text).with_context(|| format!("gobgp {args:?} is not JSON: {text}"))
    }

    /// Every path in the global RIB (best and not, from every neighbour).
    pub fn rib(&self) -> Result<Vec<Route>> {
        Ok(parse_rib(&self.json(&["global", "rib", "-a", "ipv4"])?))
    }

    /// Every path received from `peer` (Adj-RIB-In, ADD-PATH paths included).
    pub fn adj_in(&self, peer: &str) -> Result<Vec<Route>> {
        Ok(parse_rib(
            &self.json(&["neighbor", peer, "adj-in", "-a", "ipv4"])?,
        ))
    }

    /// Waits until the RIB's paths for `prefix` satisfy `accept`.
    pub fn wait_routes(
        &self,
        prefix: &str,
        accept: impl Fn(&[Route]) -> bool,
    ) -> Result<Vec<Route>> {
        let what = format!(
            "GoBGP in {}: routes for {prefix} not as expected",
            self.ns.name()
        );
        wait_for(&what, default_timeout(), || {
            let paths: Vec<Route> = self
                .rib()?
                .into_iter()
                .filter(|r| r.prefix == prefix)
                .collect();
            if accept(&paths) {
                Ok(Some(paths))
            } else {
                bail!("have {paths:?}")
            }
        })
        .map_err(|e| self.with_logs(e))
    }

    /// Originates `a` (`gobgp global rib add`; IPv4 or IPv6 by the prefix); a prepend becomes an
    /// AS_PATH of that many local ASNs (gobgpd adds its own AS on eBGP).
    pub fn announce(&self, a: &Announce) -> Result<()> {
        let mut args: Vec<String> = ["global", "rib", "add", &a.prefix, "-a", family(&a.prefix)]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(nh) = a.next_hop {
            args.extend(["nexthop".to_string(), nh.to_string()]);
        }
        if a.prepend > 0 {
            let path = vec![self.config.asn.to_string(); usize::from(a.prepend)].join(" ");
            args.extend(["aspath".to_string(), path]);
        }
        if !a.communities.is_empty() {
            let list: Vec<String> = a
                .communities
                .iter()
                .map(|(x, y)| format!("{x}:{y}"))
                .collect();
            args.extend(["community".to_string(), list.join(",")]);
        }
        if !a.large_communities.is_empty() {
            let list: Vec<String> = a
                .large_communities
                .iter()
                .map(|(g, l1, l2)| format!("{g}:{l1}:{l2}"))
                .collect();
            args.extend(["large-community".to_string(), list.join(",")]);
        }
        if let Some(med) = a.med {
            args.extend(["med".to_string(), med.to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&refs).map(drop)
    }

    /// Withdraws a prefix it originated.
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        self.cli(&["global", "rib", "del", prefix, "-a", family(prefix)])
            .map(drop)
    }

    /// This instance's dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops gobgpd.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// The `gobgp -a` family of a prefix.
fn family(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

impl BgpDaemon for Gobgp {
    fn kind(&self) -> &'static str {
        "GoBGP"
    }

    fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The state of the session with `peer` (an address).
    fn session_state(&self, peer: &str) -> Result<SessionState> {
        let json = self.json(&["neighbor", peer])?;
        parse_state(&json).with_context(|| format!("no state for {peer}: {json}"))
    }

    /// Every path received from `peer` (Adj-RIB-In, ADD-PATH paths included).
    fn routes_from(&self, peer: &str) -> Result<Vec<Route>> {
        self.adj_in(peer)
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
