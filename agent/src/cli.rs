//! The `steer` command line: `server`, `agent`, `show` and `check`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Steer: a route server and host agent with an eBPF dataplane.
#[derive(Debug, Parser)]
#[command(name = "steer", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub cmd: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the route server.
    Server(DaemonArgs),
    /// Run the host agent.
    Agent(DaemonArgs),
    /// Read-only views of a running daemon.
    Show(ShowArgs),
    /// Make a running route server read its configuration file again and
    /// apply what changed (as SIGHUP does); prints what changed.
    Reload {
        /// Control socket of the daemon (default as for `show`).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Validate a configuration file and exit.
    Check {
        /// `server` or `agent`.
        #[arg(value_parser = ["server", "agent"])]
        role: String,
        /// The TOML file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Arguments of `steer server` and `steer agent`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The TOML configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Control socket (overrides the config's `socket`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Log filter (tracing syntax, e.g. `info,steer::bgp=debug`); RUST_LOG wins.
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// Arguments of `steer show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Control socket of the daemon (default: the only one of
    /// /run/steer/server.sock and /run/steer/agent.sock that exists).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Which view.
    #[command(subcommand)]
    pub what: ShowWhat,
}

/// `steer show` views.
#[derive(Debug, Subcommand)]
pub enum ShowWhat {
    /// BGP sessions: state, uptime, prefix counts, BFD, last error.
    Peers,
    /// Routes with every candidate path and why losers lost.
    Routes {
        /// Only paths from this peer (or sent to it, with --advertised).
        #[arg(long)]
        peer: Option<String>,
        /// What was advertised to --peer instead of what was received.
        #[arg(long)]
        advertised: bool,
        /// A prefix, or an address for a longest-prefix match.
        prefix: Option<String>,
    },
    /// Agent only: the kernel table and XDP map side by side.
    Fib,
    /// Route server only: BFD sessions, state, negotiated timers, last
    /// diagnostic, transitions.
    Bfd,
}
