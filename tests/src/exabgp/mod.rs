//! ExaBGP 4.2 as a scripted eBGP peer for malformed-input tests.
//!
//! ExaBGP runs in a namespace with an API process that is `tail -F` of a
//! commands file: [`Exabgp::send`] appends a line (e.g. `announce route ...
//! attribute [ 0x01 0x40 0x05 ]`) and ExaBGP acts on it at once. What it
//! received (NOTIFICATIONs) and sent (UPDATE bytes) is read from its packet
//! log.
//!
//! Raw attributes (`attribute [ code flags value ]`) go on the wire exactly
//! as given (checked with tcpdump) with these limits:
//! - one attribute per type code: ExaBGP keeps the first of a code, so a
//!   duplicate attribute cannot be sent, and a raw ORIGIN/AS_PATH/... only
//!   replaces the default when the route has no keyword for it;
//! - a raw NEXT_HOP (code 3) is silently dropped: the route's `next-hop`
//!   wins;
//! - the length field is always computed from the value (one byte, or two
//!   when the flags have 0x10 or the value is over 255 bytes), so length
//!   mismatches, truncated attributes and framing errors are impossible;
//! - after a NOTIFICATION ExaBGP reconnects and re-sends every announced
//!   route, the bad one too, until it is withdrawn.
//!
//! Anything those rule out is the [`crate::RawPeer`]'s job.

mod log;

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

pub use log::{notifications_received, session_state, updates_sent};

use crate::netns::Netns;
use crate::process::Process;
use crate::route::{SessionState, require_tool};
use crate::wait::{TAIL_LINES, default_timeout, tail, wait_for};
use crate::wire::{Notification, hex};

/// One session's worth of ExaBGP configuration.
#[derive(Clone, Debug)]
pub struct ExabgpConfig {
    /// Router id and source address.
    pub local_address: Ipv4Addr,
    /// Local AS.
    pub local_as: u32,
    /// The peer to connect to.
    pub peer_address: Ipv4Addr,
    /// The peer's AS.
    pub peer_as: u32,
    /// Hold time offered.
    pub hold_time: u16,
}

impl ExabgpConfig {
    /// An eBGP session from `local_address`/`local_as` to `peer_address`/`peer_as`.
    pub fn new(
        local_address: &str,
        local_as: u32,
        peer_address: &str,
        peer_as: u32,
    ) -> ExabgpConfig {
        ExabgpConfig {
            local_address: local_address.parse().expect("bad local address"),
            local_as,
            peer_address: peer_address.parse().expect("bad peer address"),
            peer_as,
            hold_time: 9,
        }
    }

    fn render(&self, api_script: &Path) -> String {
        format!(
            "process cmds {{\n  run {script};\n  encoder text;\n}}\n\
             neighbor {peer} {{\n  router-id {local};\n  local-address {local};\n  local-as {las};\n  \
             peer-as {pas};\n  hold-time {hold};\n  family {{ ipv4 unicast; }}\n  \
             api {{ processes [ cmds ]; }}\n}}\n",
            script = api_script.display(),
            peer = self.peer_address,
            local = self.local_address,
            las = self.local_as,
            pas = self.peer_as,
            hold = self.hold_time,
        )
    }
}

/// A path attribute given as raw bytes: `attribute [ code flags value ]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttribute {
    /// Attribute flags (0x80 optional, 0x40 transitive, 0x20 partial, 0x10 extended length).
    pub flags: u8,
    /// Type code.
    pub code: u8,
    /// Value bytes.
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// A raw attribute.
    pub fn new(flags: u8, code: u8, value: &[u8]) -> RawAttribute {
        RawAttribute {
            flags,
            code,
            value: value.to_vec(),
        }
    }

    /// The ExaBGP syntax for it.
    pub fn to_exabgp(&self) -> String {
        format!(
            "attribute [ 0x{:02x} 0x{:02x} 0x{} ]",
            self.code,
            self.flags,
            hex(&self.value)
        )
    }
}

/// A running ExaBGP; stopped on drop.
pub struct Exabgp {
    process: Process,
    ns: Netns,
    commands: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl Exabgp {
    /// Starts ExaBGP in `ns`; it connects to the peer on its own.
    pub fn start(ns: &Netns, config: ExabgpConfig) -> Result<Exabgp> {
        require_tool("exabgp", "exabgp")?;
        let dir = crate::tmp::dir(&format!("{}-exabgp", ns.name()))?;
        let d = dir.path();
        let commands = crate::tmp::write(d, "commands", "")?;
        let script = crate::tmp::write(
            d,
            "api.sh",
            &format!("#!/bin/sh\nexec tail -n +1 -F {}\n", commands.display()),
        )?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        let conf = crate::tmp::write(d, "exabgp.conf", &config.render(&script))?;
        let log = d.join("exabgp.log");
        let mut cmd = ns.command("exabgp")?;
        cmd.arg(&conf)
            .env("exabgp_daemon_user", "root")
            .env("exabgp_daemon_drop", "false")
            .env("exabgp_daemon_daemonize", "false")
            .env("exabgp_log_destination", &log)
            .env("exabgp_log_level", "DEBUG")
            .env("exabgp_log_packets", "true")
            .env("exabgp_api_ack", "false")
            .env("exabgp_api_cli", "false")
            .env("exabgp_api_respawn", "false")
            .env("exabgp_tcp_bind", "");
        let process = ns.spawn("exabgp", cmd, &d.join("stdout.log"))?;
        Ok(Exabgp {
            process,
            ns: ns.clone(),
            commands,
            log,
            dir,
        })
    }

    /// The namespace ExaBGP runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Sends one API command line, e.g. `withdraw route 192.0.2.0/24 next-hop self`.
    pub fn send(&self, command: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.commands)
            .context("opening ExaBGP commands file")?;
        writeln!(f, "{command}").context("writing ExaBGP command")
    }

    /// Announces `prefix` with next-hop self plus `extra` (ExaBGP route syntax).
    pub fn announce(&self, prefix: &str, extra: &str) -> Result<()> {
        self.send(&format!("announce route {prefix} next-hop self {extra}"))
    }

    /// Announces `prefix` with next-hop self and the given raw attributes.
    pub fn announce_raw(&self, prefix: &str, attributes: &[RawAttribute]) -> Result<()> {
        let attrs: Vec<String> = attributes.iter().map(RawAttribute::to_exabgp).collect();
        self.announce(prefix, &attrs.join(" "))
    }

    /// Withdraws `prefix`.
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        self.send(&format!("withdraw route {prefix} next-hop self"))
    }

    fn read_log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The session state as the log tells it.
    pub fn session_state(&self) -> SessionState {
        session_state(&self.read_log())
    }

    /// Waits until the session is up.
    pub fn wait_established(&mut self) -> Result<()> {
        let what = format!("ExaBGP in {}: session not Established", self.ns.name());
        let result = wait_for(&what, default_timeout(), || {
            self.process.ensure_running()?;
            Ok((self.session_state() == SessionState::Established).then_some(()))
        });
        result.map_err(|e| self.with_logs(e))
    }

    /// Every NOTIFICATION received so far.
    pub fn notifications(&self) -> Vec<Notification> {
        notifications_received(&self.read_log())
    }

    /// Waits for the first NOTIFICATION received (at most `timeout`).
    pub fn wait_notification(&self, timeout: Duration) -> Result<Notification> {
        let what = format!("ExaBGP in {}: no NOTIFICATION received", self.ns.name());
        wait_for(&what, timeout, || {
            Ok(self.notifications().into_iter().next())
        })
        .map_err(|e| self.with_logs(e))
    }

    /// Every UPDATE sent so far (whole messages, End-of-RIB included).
    pub fn updates_sent(&self) -> Vec<Vec<u8>> {
        updates_sent(&self.read_log())
    }

    /// Waits until an UPDATE containing `needle` (e.g. a raw attribute's
    /// encoding) has been sent; returns that message.
    pub fn wait_update_sent(&self, needle: &[u8]) -> Result<Vec<u8>> {
        let what = format!(
            "ExaBGP in {}: no UPDATE containing {} sent",
            self.ns.name(),
            hex(needle)
        );
        wait_for(&what, default_timeout(), || {
            Ok(self
                .updates_sent()
                .into_iter()
                .find(|u| u.windows(needle.len()).any(|w| w == needle)))
        })
        .map_err(|e| self.with_logs(e))
    }

    /// The last lines of ExaBGP's log.
    pub fn log_tail(&self) -> String {
        format!(
            "{}\n{}",
            tail(&self.log, TAIL_LINES),
            self.process.log_tail()
        )
    }

    /// This instance's dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops ExaBGP and its API process.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!("{e:#}; last log lines:\n{}", self.log_tail())
    }
}
