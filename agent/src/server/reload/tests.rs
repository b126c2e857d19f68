use super::*;
use crate::config::ConfigFile;

const BASE: &str = r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
vnet_prefixes = ["10.1.0.0/16"]

[[peer]]
name = "sdwan"
address = "10.1.0.10"
asn = 65010

[[peer]]
name = "fw1"
address = "10.1.0.20"
asn = 65020

[hosts]
ranges = ["10.1.0.0/24"]
"#;

fn cfg(text: &str) -> ServerConfig {
    ServerConfig::from_str(std::path::Path::new("rs.toml"), text).unwrap()
}

fn plan_for(new: &str) -> Result<Plan, ReloadError> {
    plan(&cfg(BASE), &cfg(new))
}

#[test]
fn the_same_configuration_changes_nothing() {
    let p = plan_for(BASE).unwrap();
    assert!(p.is_empty());
    assert_eq!(p.summary(), "no change");
}

#[test]
fn appliances_added_and_removed_are_listed_by_name() {
    let new = BASE.replace("name = \"fw1\"", "name = \"fw2\"");
    let p = plan_for(&new).unwrap();
    assert_eq!(p.removed, ["fw1"]);
    assert_eq!(p.added, ["fw2"]);
    assert!(p.reset.is_empty() && p.in_place.is_empty());
    assert_eq!(p.summary(), "added fw2; removed fw1 (Cease/3)");
}

#[test]
fn session_terms_reset_a_peer_and_limits_apply_in_place() {
    let new = BASE.replace(
        "asn = 65020\n",
        "asn = 65021\nmax_prefixes = 5\npassword = \"s3cret\"\n",
    );
    let p = plan_for(&new).unwrap();
    assert_eq!(p.reset, [("fw1".to_string(), vec!["asn", "password"])]);
    assert!(p.in_place.is_empty(), "a reset carries the limit with it");

    let new = BASE.replace(
        "asn = 65020\n",
        "asn = 65020\nmax_prefixes = 5\ngraceful_restart = true\n",
    );
    let p = plan_for(&new).unwrap();
    assert!(p.reset.is_empty());
    assert_eq!(
        p.in_place,
        [("fw1".to_string(), vec!["max_prefixes", "graceful_restart"])]
    );
}

#[test]
fn a_global_timer_resets_only_the_peers_that_use_it() {
    let new = BASE
        .replace("asn = 65020\n", "asn = 65020\nhold_time = 180\n")
        .replace("vnet_prefixes", "hold_time = 90\nvnet_prefixes");
    let p = plan_for(&new).unwrap();
    assert_eq!(p.reset, [("sdwan".to_string(), vec!["hold_time"])]);
    assert_eq!(p.global, ["hold_time"]);
}

#[test]
fn vnet_prefixes_and_host_keys_change_in_place() {
    let new = BASE
        .replace("[\"10.1.0.0/16\"]", "[\"10.1.0.0/16\", \"10.2.0.0/16\"]")
        .replace(
            "ranges = [\"10.1.0.0/24\"]",
            "ranges = [\"10.1.0.0/25\"]\nmax_prefixes = 8",
        );
    let p = plan_for(&new).unwrap();
    assert_eq!(p.vnet_added, ["10.2.0.0/16".parse::<Prefix>().unwrap()]);
    assert!(p.vnet_removed.is_empty());
    assert_eq!(p.hosts, ["ranges", "max_prefixes"]);
    assert!(p.added.is_empty() && p.removed.is_empty() && p.reset.is_empty());
}

#[test]
fn keys_the_listeners_or_every_open_depend_on_refuse_the_whole_reload() {
    let new = BASE
        .replace("asn = 65515", "asn = 65516")
        .replace("listen = [\"10.1.0.4\"]", "listen = [\"10.1.0.5\"]")
        .replace("name = \"fw1\"", "name = \"fw9\"");
    assert_eq!(
        plan_for(&new),
        Err(ReloadError::NeedsRestart {
            role: "server",
            keys: vec!["asn", "listen"]
        })
    );
    assert_eq!(
        plan_for(&new).unwrap_err().to_string(),
        "asn, listen changed: restart steer server to apply (nothing was changed)"
    );
}

#[test]
fn any_change_to_the_bfd_sessions_needs_a_restart() {
    let with_bfd = BASE.replace("asn = 65020\n", "asn = 65020\nbfd = true\n");
    let plan_from = |old: &str, new: &str| plan(&cfg(old), &cfg(new));
    assert!(plan_from(BASE, &with_bfd).is_err(), "BFD turned on");
    assert!(plan_from(&with_bfd, BASE).is_err(), "BFD turned off");
    assert!(
        plan_from(
            &with_bfd,
            &format!("{with_bfd}\n[bfd]\ninterval_ms = 100\n")
        )
        .is_err(),
        "[bfd] timers"
    );
    assert!(
        plan_from(&with_bfd, &with_bfd.replace("asn = 65020", "asn = 65021")).is_err(),
        "a reset of an appliance with BFD"
    );
    let p = plan_from(
        &with_bfd,
        &with_bfd.replace("bfd = true\n", "bfd = true\nmax_prefixes = 9\n"),
    )
    .unwrap();
    assert_eq!(p.in_place, [("fw1".to_string(), vec!["max_prefixes"])]);
    assert_eq!(
        plan_from(BASE, &with_bfd).unwrap_err().to_string(),
        "peer BFD sessions changed: restart steer server to apply (nothing was changed)"
    );
}
