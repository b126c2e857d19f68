//! What the fuzz targets share: the sessions Steer runs, each with the FSM
//! configuration and OPEN its daemon builds (the same capability lists),
//! and the framing of a message body.

use std::net::Ipv4Addr;
use std::time::Duration;

use steer::bgp::capability::Capability;
use steer::bgp::fsm::{Backoff, FsmConfig};
use steer::config::{AgentConfig, ConfigFile};

/// The route server's AS and identifier in every role below.
pub const SERVER_ASN: u32 = 65515;
/// The route server's BGP identifier.
pub const SERVER_ID: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 4);
/// The appliance AS the route server expects.
pub const APPLIANCE_ASN: u32 = 65010;
/// The agent's BGP identifier.
pub const AGENT_ID: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 31);

/// One side of a session Steer runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// `steer server` towards an appliance (eBGP).
    ServerToAppliance,
    /// `steer server` towards a host agent (iBGP, ADD-PATH send).
    ServerToHost,
    /// `steer agent` towards a route server (iBGP, ADD-PATH receive).
    AgentToServer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [
        Role::ServerToAppliance,
        Role::ServerToHost,
        Role::AgentToServer,
    ];

    /// The capabilities this role's daemon sends.
    pub fn capabilities(self, gr_time: u16) -> Vec<Capability> {
        match self {
            Role::ServerToAppliance => {
                steer::server::daemon::capabilities(SERVER_ASN, gr_time, false)
            }
            Role::ServerToHost => steer::server::daemon::capabilities(SERVER_ASN, gr_time, true),
            Role::AgentToServer => {
                let text = format!(
                    "asn = {SERVER_ASN}\nrouter_id = \"{AGENT_ID}\"\nroute_servers = [\"{SERVER_ID}\"]\ngraceful_restart_time = {gr_time}\n"
                );
                let cfg = AgentConfig::from_str(std::path::Path::new("fuzz.toml"), &text)
                    .expect("the fuzz agent configuration is valid");
                steer::agent::daemon::capabilities(&cfg, false)
            }
        }
    }

    /// The FSM configuration this role's daemon builds, expecting
    /// `peer_asn` and proposing `hold_time`.
    pub fn fsm_config(self, peer_asn: u32, hold_time: u16, gr_time: u16) -> FsmConfig {
        FsmConfig {
            local_asn: SERVER_ASN,
            router_id: if self == Role::AgentToServer {
                AGENT_ID
            } else {
                SERVER_ID
            },
            peer_asn,
            hold_time,
            keepalive: Some(60),
            capabilities: self.capabilities(gr_time),
            passive: self == Role::ServerToHost,
            restart: self != Role::ServerToHost,
            backoff: Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(120),
            },
        }
    }

    /// The AS the role's configuration expects from the peer.
    pub fn configured_peer_asn(self) -> u32 {
        match self {
            Role::ServerToAppliance => APPLIANCE_ASN,
            Role::ServerToHost | Role::AgentToServer => SERVER_ASN,
        }
    }

    /// True for eBGP sessions.
    pub fn ebgp(self) -> bool {
        self == Role::ServerToAppliance
    }
}

/// A whole message: marker, length and `kind` in front of `body`. `None`
/// when the body is too long for a length field.
pub fn frame(kind: u8, body: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(body.len() + 19).ok()?;
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&len.to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    Some(m)
}
