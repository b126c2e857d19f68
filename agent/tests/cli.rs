//! The `steer` command line on bad input: a bad configuration names the
//! file, the key and what is wrong, and exits non-zero; `show` without a
//! daemon says how to point it at one.

use std::process::Command;

fn steer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(args)
        .output()
        .expect("run steer");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("steer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SERVER: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010
"#;

#[test]
fn check_accepts_a_valid_server_config() {
    let p = write("ok.toml", SERVER);
    let (ok, out, err) = steer(&["check", "server", "--config", p.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("valid route server configuration (1 appliances)"),
        "{out}"
    );
}

#[test]
fn server_with_a_bad_key_value_names_file_key_and_problem_and_exits_non_zero() {
    let p = write("bad.toml", &SERVER.replace("asn = 65010", "asn = 65515"));
    let (ok, _, err) = steer(&[
        "server",
        "--config",
        p.to_str().unwrap(),
        "--socket",
        "/tmp/never.sock",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "steer: {}: key `peer[0].asn`: 65515 is the route server's own AS; appliances are eBGP peers (hosts connect through [hosts])",
            p.display()
        )
    );
}

#[test]
fn misspelled_key_is_reported_with_its_line() {
    let p = write("typo.toml", &format!("{SERVER}\nmax_prefix = 5\n"));
    let (ok, _, err) = steer(&["check", "server", "--config", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("unknown field `max_prefix`"), "{err}");
    assert!(err.contains(&p.display().to_string()), "{err}");
}

#[test]
fn agent_config_with_a_reserved_table_is_refused() {
    let p = write(
        "agent.toml",
        r#"
asn = 65515
router_id = "10.1.0.31"
route_servers = ["10.1.0.4"]
table = 255
"#,
    );
    let (ok, _, err) = steer(&["check", "agent", "--config", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("key `table`: 255 is a reserved kernel table"),
        "{err}"
    );
}

#[test]
fn show_without_a_daemon_explains_how_to_reach_one() {
    let (ok, _, err) = steer(&["show", "peers", "--socket", "/nonexistent/steer.sock"]);
    assert!(!ok);
    assert!(
        err.contains(
            "/nonexistent/steer.sock: cannot connect (is the daemon running? pass --socket PATH)"
        ),
        "{err}"
    );
}
