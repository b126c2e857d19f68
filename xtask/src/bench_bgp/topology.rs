//! The benchmark's namespaces, built fresh for every run with the test
//! lab (`steer_tests::Lab`, removed on drop): one LAN bridge, the route
//! server at 10.1.0.4, the host (the iBGP receiver) at 10.1.0.31, and one
//! namespace holding every appliance address 10.1.0.101, .102, ….
//! Also opens TCP connections from a given source address inside a
//! namespace.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};
use steer_tests::{Lab, Netns};

/// The route server's address.
pub const RS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 4);
/// The route server's (and the receiver's) AS.
pub const RS_ASN: u32 = 65515;
/// The receiver's (host's) address.
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 31);
/// The LAN prefix the route server accepts hosts from.
pub const LAN: &str = "10.1.0.0/24";
/// Most appliances the address plan holds (10.1.0.101 ..= 10.1.0.250).
pub const MAX_APPLIANCES: usize = 150;

/// Appliance `i` (0-based): its address and AS.
pub fn appliance(i: usize) -> (Ipv4Addr, u32) {
    (Ipv4Addr::new(10, 1, 0, 101 + i as u8), 65001 + i as u32)
}

/// One run's namespaces; all removed when dropped.
pub struct Topology {
    /// The route server's namespace.
    pub rs: Netns,
    /// The host's namespace (the receiver).
    pub host: Netns,
    /// The appliances' namespace.
    pub nva: Netns,
    /// Declared last: dropped after everything above is stopped.
    pub lab: Lab,
}

impl Topology {
    /// Builds the LAN with `appliances` appliance addresses.
    pub fn build(appliances: usize) -> Result<Topology> {
        let mut lab = Lab::new()?;
        let lan = lab.lan("lan")?;
        let rs = lab.node("rs")?;
        let host = lab.node("host")?;
        let nva = lab.node("nva")?;
        lan.attach(&rs, "eth0", &format!("{RS_ADDR}/24"))?;
        lan.attach(&host, "eth0", &format!("{HOST_ADDR}/24"))?;
        lan.attach(&nva, "eth0", &format!("{}/24", appliance(0).0))?;
        for i in 1..appliances {
            nva.ip(&format!("addr add {}/24 dev eth0", appliance(i).0))?;
        }
        Ok(Topology { rs, host, nva, lab })
    }
}

fn connect_once(from: Ipv4Addr, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())?;
    s.connect_timeout(&SocketAddr::V4(to).into(), Duration::from_secs(2))?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    Ok(s)
}

/// One TCP connection from `from` to `to`, opened inside `ns` (the socket
/// stays in that namespace for its whole life).
pub fn connect(ns: &Netns, from: Ipv4Addr, to: SocketAddrV4) -> Result<TcpStream> {
    ns.enter(move || connect_once(from, to))?
        .with_context(|| format!("connecting {from} -> {to}"))
}
