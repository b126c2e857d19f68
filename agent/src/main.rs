//! The `steer` binary: parses the command line and runs a role.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use steer::cli::{Cli, Command, DaemonArgs, ShowArgs, ShowWhat};
use steer::config::{AgentConfig, ConfigFile, ServerConfig};
use steer::control::{Request, RouteQuery, render, socket};

fn init_logging(filter: &str) {
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn server(a: DaemonArgs) -> anyhow::Result<()> {
    let cfg = ServerConfig::load(&a.config)?;
    steer::server::daemon::prepare_process();
    init_logging(&a.log);
    runtime()?.block_on(steer::server::run(cfg, a.config, a.socket))
}

fn agent(a: DaemonArgs) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(&a.config)?;
    init_logging(&a.log);
    runtime()?.block_on(steer::agent::run(cfg, a.config, a.socket))
}

fn default_socket() -> anyhow::Result<PathBuf> {
    let found: Vec<PathBuf> = ["/run/steer/agent.sock", "/run/steer/server.sock"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!(
            "no daemon socket at /run/steer/{{agent,server}}.sock; pass --socket PATH"
        ),
        _ => anyhow::bail!("both a server and an agent run here; pass --socket PATH"),
    }
}

fn reload(socket: Option<PathBuf>) -> anyhow::Result<()> {
    let path = match socket {
        Some(p) => p,
        None => default_socket()?,
    };
    let v = socket::query(&path, &Request::Reload)?;
    println!("{}", v.as_str().unwrap_or_default());
    Ok(())
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    let path = match a.socket {
        Some(p) => p,
        None => default_socket()?,
    };
    let (req, render_fn): (Request, fn(&serde_json::Value) -> String) = match a.what {
        ShowWhat::Peers => (Request::Peers, render::peers),
        ShowWhat::Routes {
            peer,
            advertised,
            prefix,
        } => {
            let f = if advertised {
                render::advertised
            } else {
                render::routes
            };
            (
                Request::Routes(RouteQuery {
                    peer,
                    advertised,
                    prefix,
                    ..RouteQuery::default()
                }),
                f,
            )
        }
        ShowWhat::Fib => (Request::Fib, render::fib),
        ShowWhat::Bfd => (Request::Bfd, render::bfd),
    };
    let v = socket::query(&path, &req)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render_fn(&v));
    }
    Ok(())
}

fn check(role: &str, config: PathBuf) -> anyhow::Result<()> {
    match role {
        "server" => {
            let c = ServerConfig::load(&config)?;
            println!(
                "{}: valid route server configuration ({} appliances)",
                config.display(),
                c.peers.len()
            );
        }
        _ => {
            let c = AgentConfig::load(&config)?;
            println!(
                "{}: valid agent configuration ({} route servers)",
                config.display(),
                c.route_servers.len()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Command::Server(a) => server(a),
        Command::Agent(a) => agent(a),
        Command::Show(a) => show(a),
        Command::Check { role, config } => check(&role, config),
        Command::Reload { socket } => reload(socket),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("steer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
