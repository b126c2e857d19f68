//! The four route servers' configurations for P appliances, written so
//! each does the same work: accept every appliance's routes (eBGP, passive:
//! the appliances connect), send nothing back to the appliances, and send
//! every path of every prefix to the host (iBGP, passive, ADD-PATH send,
//! next hop unchanged). Logging at info level, no kernel table, nothing
//! else.
//!
//! - Steer: `[[peer]]` per appliance (`passive`, `max_prefixes` = N +
//!   1000), hosts from 10.1.0.0/24 (or the range `bench fanout` gives);
//!   no VNet prefixes, no branch-to-branch.
//! - BIRD 2: one `protocol bgp` per appliance from a template with
//!   `import all; export none;`, and `protocol bgp host` (iBGP, `direct`)
//!   with `import none; export all; add paths tx; next hop keep;`. BIRD
//!   with `add paths tx` exports every path of the table, not only the best.
//!   For `bench fanout` the host protocol takes dynamic neighbours from a
//!   range instead (`neighbor range R internal`, one spawned protocol per
//!   host, multihop as iBGP is by default: the hosts are routed).
//! - GoBGP: a neighbour per appliance, the host with `add-paths send-max =
//!   P`, and a global export policy rejecting everything towards the
//!   appliances' neighbour-set (GoBGP would otherwise send each appliance
//!   the others' best paths, work the other two do not do).

use std::fmt::Write;

use super::topology::{HOST_ADDR, RS_ADDR, RS_ASN, appliance};

/// `steer server` configuration; hosts connect from `hosts` (a prefix).
pub fn steer(appliances: usize, max_prefixes: usize, hosts: &str) -> String {
    let mut c = format!("asn = {RS_ASN}\nrouter_id = \"{RS_ADDR}\"\nlisten = [\"{RS_ADDR}\"]\n");
    for i in 0..appliances {
        let (addr, asn) = appliance(i);
        let _ = write!(
            c,
            "\n[[peer]]\nname = \"nva{}\"\naddress = \"{addr}\"\nasn = {asn}\nmax_prefixes = {max_prefixes}\npassive = true\n",
            i + 1
        );
    }
    let _ = write!(c, "\n[hosts]\nranges = [\"{hosts}\"]\n");
    c
}

/// BIRD 2 configuration; `log` is the log file. The host leg is the one
/// receiver at HOST_ADDR, or with `hosts_range` dynamic neighbours from it.
pub fn bird(appliances: usize, log: &str, hosts_range: Option<&str>) -> String {
    let mut c = format!(
        "log \"{log}\" {{ info, remote, warning, error, auth, fatal, bug }};
router id {RS_ADDR};
protocol device {{ }}

template bgp nva {{
  local {RS_ADDR} as {RS_ASN};
  passive on;
  ipv4 {{ import all; export none; }};
}}
"
    );
    for i in 0..appliances {
        let (addr, asn) = appliance(i);
        let _ = writeln!(
            c,
            "protocol bgp nva{} from nva {{ neighbor {addr} as {asn}; }}",
            i + 1
        );
    }
    let neighbor = match hosts_range {
        None => format!("neighbor {HOST_ADDR} as {RS_ASN};\n  direct;"),
        Some(r) => format!("neighbor range {r} internal;\n  dynamic name \"host\";"),
    };
    let _ = write!(
        c,
        "
protocol bgp host {{
  local {RS_ADDR} as {RS_ASN};
  {neighbor}
  passive on;
  ipv4 {{ import none; export all; add paths tx; next hop keep; }};
}}
"
    );
    c
}

/// gobgpd TOML configuration.
pub fn gobgp(appliances: usize) -> String {
    let nvas: Vec<String> = (0..appliances)
        .map(|i| format!("\"{}\"", appliance(i).0))
        .collect();
    let mut c = format!(
        "[global.config]
  as = {RS_ASN}
  router-id = \"{RS_ADDR}\"
  port = 179
  local-address-list = [\"{RS_ADDR}\"]
[global.apply-policy.config]
  export-policy-list = [\"hosts-only\"]
  default-export-policy = \"accept-route\"

[[defined-sets.neighbor-sets]]
  neighbor-set-name = \"nvas\"
  neighbor-info-list = [{}]

[[policy-definitions]]
  name = \"hosts-only\"
  [[policy-definitions.statements]]
    name = \"nothing-to-nvas\"
    [policy-definitions.statements.conditions.match-neighbor-set]
      neighbor-set = \"nvas\"
      match-set-options = \"any\"
    [policy-definitions.statements.actions]
      route-disposition = \"reject-route\"
",
        nvas.join(", ")
    );
    let mut neighbor = |addr: String, asn: u32, add_paths: Option<usize>| {
        let _ = write!(
            c,
            "
[[neighbors]]
  [neighbors.config]
    neighbor-address = \"{addr}\"
    peer-as = {asn}
  [neighbors.transport.config]
    passive-mode = true
    local-address = \"{RS_ADDR}\"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = \"ipv4-unicast\"
"
        );
        if let Some(n) = add_paths {
            let _ = write!(
                c,
                "    [neighbors.afi-safis.add-paths.config]\n      send-max = {n}\n"
            );
        }
    };
    for i in 0..appliances {
        let (addr, asn) = appliance(i);
        neighbor(addr.to_string(), asn, None);
    }
    neighbor(HOST_ADDR.to_string(), RS_ASN, Some(appliances));
    c
}

/// FRR bgpd configuration; `log` is the log file.
pub fn frr(appliances: usize, log: &str) -> String {
    let mut c = format!(
        "frr defaults traditional
hostname rs
log file {log} informational
!
route-map NOTHING deny 10
!
router bgp {RS_ASN}
 bgp router-id {RS_ADDR}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {HOST_ADDR} remote-as {RS_ASN}
 neighbor {HOST_ADDR} passive
"
    );
    for i in 0..appliances {
        let (addr, asn) = appliance(i);
        let _ = writeln!(
            c,
            " neighbor {addr} remote-as {asn}\n neighbor {addr} passive"
        );
    }
    let _ = writeln!(c, " address-family ipv4 unicast");
    for i in 0..appliances {
        let (addr, _) = appliance(i);
        let _ = writeln!(
            c,
            "  neighbor {addr} activate\n  neighbor {addr} route-server-client\n  neighbor {addr} route-map NOTHING out"
        );
    }
    let _ = write!(
        c,
        "  neighbor {HOST_ADDR} activate\n  neighbor {HOST_ADDR} addpath-tx-all-paths\n exit-address-family\n!\n"
    );
    c
}
