//! RFC 6793 transition towards a 2-octet-AS peer, checked on the wire
//! against BIRD in the same lab: a route whose AS path holds a 4-octet AS
//! and whose AGGREGATOR's AS fits in two octets is passed from a 4-octet
//! peer to a 2-octet one. The receiver rebuilds the path from AS4_PATH only
//! if AGGREGATOR carries AS_TRANS (§4.2.3), so Steer sends AS_TRANS with
//! AS4_AGGREGATOR; BIRD 2.0.12 sends the narrow AS, and the 4-octet AS is
//! lost for every RFC-abiding receiver (issue 7: the fuzzer's finding).

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use steer_tests::wire::{self, Message, PathAttribute};
use steer_tests::{BgpDaemon, Bird, BirdConfig, Lab, Neighbor, Netns, RawPeer, Role, Steer};

const AGGREGATOR: u8 = 7;
const AS_PATH: u8 = 2;
const AS4_PATH: u8 = 17;
const AS4_AGGREGATOR: u8 = 18;

/// ORIGIN IGP, 4-octet AS_PATH [65010, 4200000001], NEXT_HOP, 4-octet
/// AGGREGATOR 65001 192.0.2.99, for 198.51.100.0/24.
fn wide_path_update(next_hop: Ipv4Addr) -> Vec<u8> {
    let mut path = vec![2, 2];
    path.extend_from_slice(&65010u32.to_be_bytes());
    path.extend_from_slice(&4_200_000_001u32.to_be_bytes());
    let mut aggregator = 65001u32.to_be_bytes().to_vec();
    aggregator.extend_from_slice(&[192, 0, 2, 99]);
    let attrs = [
        wire::attribute(0x40, 1, &[0]),
        wire::attribute(0x40, AS_PATH, &path),
        wire::attribute(0x40, 3, &next_hop.octets()),
        wire::attribute(0xc0, AGGREGATOR, &aggregator),
    ]
    .concat();
    wire::update(&[], &attrs, &wire::nlri(Ipv4Addr::new(198, 51, 100, 0), 24))
}

/// What the 2-octet receiver saw, and what it rebuilds by RFC 6793 §4.2.3.
struct Received {
    aggregator_as: u16,
    as4_aggregator_as: Option<u32>,
    as4_path: Option<Vec<u32>>,
    rebuilt_path: Vec<u32>,
}

fn first_update(old: &mut RawPeer) -> Result<Vec<PathAttribute>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match old.recv(left)? {
            Some(Message::Update(body)) => {
                let attrs = wire::update_attributes(&body)?;
                if !attrs.is_empty() {
                    return Ok(attrs);
                }
            }
            Some(Message::Notification(n)) => bail!("2-octet peer got {n}"),
            Some(_) => {}
            None => bail!("2-octet peer's session closed"),
        }
    }
}

fn receive(old: &mut RawPeer) -> Result<Received> {
    let attrs = first_update(old)?;
    let find = |code: u8| attrs.iter().find(|a| a.code == code).map(|a| &a.value);
    let as_path = wire::as_path_asns(find(AS_PATH).context("no AS_PATH")?, 2)?;
    let aggregator = find(AGGREGATOR).context("no AGGREGATOR")?;
    anyhow::ensure!(
        aggregator.len() == 6,
        "2-octet AGGREGATOR: {aggregator:02x?}"
    );
    let aggregator_as = u16::from_be_bytes([aggregator[0], aggregator[1]]);
    let as4_aggregator_as =
        find(AS4_AGGREGATOR).map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
    let as4_path = find(AS4_PATH)
        .map(|v| wire::as_path_asns(v, 4))
        .transpose()?;
    let rebuilt_path = match (&as4_path, aggregator_as == wire::AS_TRANS) {
        (Some(p), true) if p.len() <= as_path.len() => {
            let mut full: Vec<u32> = as_path[..as_path.len() - p.len()].to_vec();
            full.extend(p);
            full
        }
        _ => as_path,
    };
    Ok(Received {
        aggregator_as,
        as4_aggregator_as,
        as4_path,
        rebuilt_path,
    })
}

fn two_octet_peer(ns: &Netns, remote: &str, asn: u16, id: Ipv4Addr) -> Result<RawPeer> {
    let mut old = RawPeer::connect_bgp(ns, remote, Duration::from_secs(20))?;
    old.establish(
        &wire::open(asn.into(), 90, id, &[wire::cap_ipv4_unicast()]),
        Duration::from_secs(20),
    )?;
    Ok(old)
}

fn four_octet_peer(ns: &Netns, remote: &str, id: Ipv4Addr) -> Result<RawPeer> {
    let mut src = RawPeer::connect_bgp(ns, remote, Duration::from_secs(20))?;
    src.establish_simple(65010, 90, id)?;
    Ok(src)
}

#[test]
fn a_narrow_aggregator_beside_a_four_octet_path_reaches_a_two_octet_peer_as_as_trans() -> Result<()>
{
    let mut lab = Lab::new()?;
    let lan = lab.lan("vnet")?;
    let bird_ns = lab.on_lan(&lan, "bird", "10.1.0.50/24")?;
    let rs_ns = lab.on_lan(&lan, "rs", "10.1.0.4/24")?;
    let src_ns = lab.on_lan(&lan, "src", "10.1.0.51/24")?;
    let old_ns = lab.on_lan(&lan, "old", "10.1.0.52/24")?;

    let mut bird_config = BirdConfig::new("10.1.0.50", 65100)
        .neighbor(Neighbor::new("src", "10.1.0.51", 65010).passive())
        .neighbor(Neighbor::new("old", "10.1.0.52", 65052).passive());
    bird_config.export_learned = true;
    bird_config.kernel_export = false;
    let bird = Bird::start(&bird_ns, bird_config)?;
    let rs = Steer::start(
        &rs_ns,
        Role::Server,
        r#"
asn = 65515
router_id = "10.1.0.4"
listen = ["10.1.0.4"]
branch_to_branch = true

[[peer]]
name = "src"
address = "10.1.0.51"
asn = 65010
passive = true

[[peer]]
name = "old"
address = "10.1.0.52"
asn = 65052
passive = true
"#,
    )?;

    let mut src = four_octet_peer(&src_ns, "10.1.0.50", Ipv4Addr::new(10, 1, 0, 51))?;
    let mut old = two_octet_peer(&old_ns, "10.1.0.50", 65052, Ipv4Addr::new(10, 1, 0, 52))?;
    bird.wait_established("src")?;
    src.send(&wide_path_update(Ipv4Addr::new(10, 1, 0, 51)))?;
    let from_bird = receive(&mut old)?;

    let mut src = four_octet_peer(&src_ns, "10.1.0.4", Ipv4Addr::new(10, 1, 0, 51))?;
    let mut old = two_octet_peer(&old_ns, "10.1.0.4", 65052, Ipv4Addr::new(10, 1, 0, 52))?;
    src.send(&wide_path_update(Ipv4Addr::new(10, 1, 0, 51)))?;
    let from_steer = receive(&mut old)?;
    drop(rs);

    assert_eq!(from_steer.aggregator_as, wire::AS_TRANS);
    assert_eq!(from_steer.as4_aggregator_as, Some(65001));
    assert_eq!(
        from_steer.rebuilt_path.last(),
        Some(&4_200_000_001),
        "Steer's path as a 2-octet receiver rebuilds it: {:?}",
        from_steer.rebuilt_path
    );

    // BIRD, same input: AS4_PATH beside a narrow AGGREGATOR, which RFC 6793
    // §4.2.3 makes every receiver ignore.
    assert_eq!(from_bird.aggregator_as, 65001);
    assert_eq!(from_bird.as4_aggregator_as, None);
    assert_eq!(
        from_bird.as4_path.as_deref().and_then(|p| p.last()),
        Some(&4_200_000_001)
    );
    assert_eq!(
        from_bird.rebuilt_path.last(),
        Some(&u32::from(wire::AS_TRANS))
    );
    Ok(())
}
