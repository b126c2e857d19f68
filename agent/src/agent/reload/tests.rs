use super::*;
use crate::config::ConfigFile;

const BASE: &str = r#"
asn = 65515
router_id = "10.1.0.31"
route_servers = ["10.1.0.4", "10.1.0.5"]
vm_interfaces = ["vm1"]
vm_prefixes = ["10.1.1.0/24"]
"#;

fn cfg(text: &str) -> AgentConfig {
    AgentConfig::from_str(std::path::Path::new("agent.toml"), text).unwrap()
}

#[test]
fn the_same_configuration_changes_nothing() {
    let p = plan(&cfg(BASE), &cfg(BASE)).unwrap();
    assert_eq!(p, AgentPlan::default());
    assert_eq!(p.summary(), "no change");
}

#[test]
fn route_servers_prefixes_and_interfaces_change_live() {
    let new = BASE
        .replace("\"10.1.0.5\"", "\"10.1.0.6\"")
        .replace("[\"10.1.1.0/24\"]", "[\"10.1.1.0/24\", \"10.1.9.0/24\"]")
        .replace("[\"vm1\"]", "[\"vm1\", \"vm2\"]");
    let p = plan(&cfg(BASE), &cfg(&new)).unwrap();
    assert_eq!(p.servers_added, ["10.1.0.6".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.servers_removed, ["10.1.0.5".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.prefixes_added, ["10.1.9.0/24".parse::<Prefix>().unwrap()]);
    assert!(p.prefixes_removed.is_empty());
    assert_eq!(
        p.interfaces,
        Some(vec!["vm1".to_string(), "vm2".to_string()])
    );
    assert_eq!(
        p.summary(),
        "route servers added 10.1.0.6; route servers removed 10.1.0.5 (Cease/3); \
         vm_prefixes +[10.1.9.0/24] -[]; vm_interfaces now [vm1 vm2]"
    );
}

#[test]
fn other_keys_need_a_restart_and_change_nothing() {
    let new = format!("table = 201\nhold_time = 90\n{BASE}");
    assert_eq!(
        plan(&cfg(BASE), &cfg(&new)).unwrap_err().to_string(),
        "table, hold_time changed: restart steer agent to apply (nothing was changed)"
    );
}
