//! The agent's start-up checks on its bpffs pin dir (issue 7): started
//! under `ip netns exec`, whose fresh /sys has no bpffs, it stops at once
//! and names the cause and the fixes, each said once; a second agent
//! configured with a pin dir that a running agent holds is refused and told
//! which process holds it, before it touches the kernel; after `kill -9` the
//! claim is gone, and the next agent says what it adopted from the pins.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use steer_tests::{Lab, Netns, Role, Steer};

fn agent_config(router_id: &str, pin_dir: Option<&std::path::Path>) -> String {
    let pins = pin_dir
        .map(|p| format!("pin_dir = \"{}\"\n", p.display()))
        .unwrap_or_default();
    format!(
        "asn = 65515\nrouter_id = \"{router_id}\"\nroute_servers = [\"10.1.0.4\"]\nvm_interfaces = []\nconnect_retry = 1\n{pins}"
    )
}

/// Runs `cmd` until it exits (killing it after `timeout`, which fails).
fn run_to_exit(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning steer")?;
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: kill(2) of the child we spawned.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let out = waiter.join().expect("waiter thread")?;
            bail!(
                "steer did not exit within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(waiter.join().expect("waiter thread")?)
}

fn write_config(lab: &Lab, name: &str, text: &str) -> Result<std::path::PathBuf> {
    let path = lab.dir().join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

#[test]
fn an_agent_under_ip_netns_exec_stops_naming_the_missing_bpffs_and_the_fixes_once() -> Result<()> {
    let mut lab = Lab::new()?;
    let host: Netns = lab.node("host1")?;
    let config = write_config(&lab, "agent.toml", &agent_config("10.1.0.31", None))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", host.name()])
        .arg(steer_tests::steer::binary()?)
        .args(["agent", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(lab.dir().join("agent.sock"));
    let out = run_to_exit(cmd, Duration::from_secs(20))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the agent must not run: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("steer: "))
        .with_context(|| format!("no error line in: {stderr}"))?;
    assert!(
        line.starts_with(
            "steer: cannot set up the dataplane: /sys/fs/bpf/steer/agent-200: not on a bpf filesystem (/sys/fs/bpf is not bpffs)"
        ),
        "{line}"
    );
    for fix in [
        "ip netns exec",
        "nsenter --net=/run/netns/NAME",
        "mount -t bpf bpf /sys/fs/bpf",
        "`pin_dir`",
    ] {
        assert_eq!(line.matches(fix).count(), 1, "{fix:?} once in: {line}");
    }
    Ok(())
}

#[test]
fn a_second_agent_on_a_held_pin_dir_is_refused_and_a_killed_agents_pins_are_adopted() -> Result<()>
{
    let mut lab = Lab::new()?;
    let h1 = lab.node("host1")?;
    let h2 = lab.node("host2")?;
    let pins = lab.bpf_pin_dir("shared")?;
    let mut first = Steer::start(&h1, Role::Agent, &agent_config("10.1.0.31", Some(&pins)))?;
    let first_pid = first.pid().context("first agent's pid")?;

    let config = write_config(&lab, "second.toml", &agent_config("10.1.0.32", Some(&pins)))?;
    let mut cmd = h2.command(steer_tests::steer::binary()?)?;
    cmd.args(["agent", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(lab.dir().join("second.sock"));
    let out = run_to_exit(cmd, Duration::from_secs(20))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the second agent must not run: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "steer: cannot set up the dataplane: {}: in use by another running steer agent (pid {first_pid}); give each agent its own `pin_dir`",
            pins.display()
        )),
        "{stderr}"
    );
    let rules = h2.ip("rule show")?;
    assert!(
        !rules.contains("lookup 200"),
        "the refused agent touched no rules: {rules}"
    );

    first.kill9();
    first.restart()?;
    let log = first.log();
    assert!(
        log.contains(&format!("eBPF pins in {}: adopted", pins.display())),
        "the restarted agent says what it adopted:\n{}",
        first.log_tail()
    );
    assert!(first.is_running());
    Ok(())
}
