//! What a VM really sends and receives, through the default dataplane: a
//! VM namespace behind a veth with its default offloads (checksum offload,
//! TSO: the host gets GSO superpackets and CHECKSUM_PARTIAL skbs) and an
//! appliance learned over BGP exchange iperf3 TCP and UDP, a checked TCP
//! stream and checked UDP datagrams, over IPv4 and over IPv6, in both
//! directions: from the VM to the appliance (the VM interface's TC hook),
//! and from the appliance back to the VM (the return path on the host's
//! uplink). Judged by the kernel's counters, not the agent's: at least 99%
//! of what the host received for the direction (on the VM interface, or on
//! the uplink) bypassed its forwarding path (`ForwDatagrams` /
//! `Ip6OutForwDatagrams`; the other direction goes over a direct link), the
//! receiver's stack saw no checksum error (`InCsumErrors`), and every byte
//! and datagram arrived as sent. The agent's counter of the hook agrees.

use anyhow::Result;
use steer_tests::Netns;
use steer_tests::fastpath::{APPLIANCE_V4, APPLIANCE_V6, FastPathLab, VM_V4, VM_V6, VmNic};
use steer_tests::traffic::{self, Iperf3Server};

const STREAM_BYTES: usize = 32 << 20;
const DATAGRAMS: u64 = 4000;

/// Which way the traffic goes through the host.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// VM -> appliance: the VM interface's TC hook.
    VmOut,
    /// Appliance -> VM: the return path on the uplink.
    Return,
}

fn offloads_stay_on_and_the_fast_path_carries_it_all(v6: bool, dir: Direction) -> Result<()> {
    let lab = FastPathLab::new(VmNic::Veth, "")?;
    if dir == Direction::Return {
        lab.send_returns_through_the_host()?;
    }
    let (sender, receiver, host_if, hook): (&Netns, &Netns, _, _) = match dir {
        Direction::VmOut => (&lab.vm, &lab.appliance, "vm1", "tc"),
        Direction::Return => (&lab.appliance, &lab.vm, "eth0", "return"),
    };
    let dst = match (dir, v6) {
        (Direction::VmOut, false) => APPLIANCE_V4,
        (Direction::VmOut, true) => APPLIANCE_V6,
        (Direction::Return, false) => VM_V4,
        (Direction::Return, true) => VM_V6,
    };
    let (fwd_counter, csum_counters) = if v6 {
        (
            "Ip6OutForwDatagrams",
            &["Tcp:InCsumErrors", "Udp6InCsumErrors"][..],
        )
    } else {
        (
            "Ip:ForwDatagrams",
            &["Tcp:InCsumErrors", "Udp:InCsumErrors"][..],
        )
    };
    let features = sender.exec("ethtool", &["-k", "eth0"])?;
    for on in [
        "tx-checksumming: on",
        "tcp-segmentation-offload: on",
        "generic-segmentation-offload: on",
    ] {
        assert!(
            features.contains(on),
            "the sender's default offloads: {features}"
        );
    }
    let _server = Iperf3Server::start(receiver, dst, lab.lab.dir())?;
    let host0 = traffic::snmp(&lab.host)?;
    let recv0 = traffic::snmp(receiver)?;
    let (rx0, _) = traffic::iface_packets(&lab.host, host_if)?;
    let hook0 = lab.forwarded(hook)?;

    let family = if v6 { "-6" } else { "-4" };
    let tcp = traffic::iperf3(sender, &["-c", dst, family, "-t", "2"])?;
    let udp = traffic::iperf3(
        sender,
        &[
            "-c", dst, family, "-u", "-b", "200M", "-l", "1400", "-t", "2",
        ],
    )?;
    let port = |p: u16| -> std::net::SocketAddr {
        if v6 {
            format!("[{dst}]:{p}").parse().unwrap()
        } else {
            format!("{dst}:{p}").parse().unwrap()
        }
    };
    traffic::tcp_stream(sender, receiver, port(7000), STREAM_BYTES)?;
    let datagrams = traffic::udp_datagrams(sender, receiver, port(7001), DATAGRAMS, 1400)?;

    let host1 = traffic::snmp(&lab.host)?;
    let recv1 = traffic::snmp(receiver)?;
    let (rx1, _) = traffic::iface_packets(&lab.host, host_if)?;
    let hook1 = lab.forwarded(hook)?;
    let arrived = rx1 - rx0;
    let by_kernel = host1[fwd_counter] - host0[fwd_counter];
    let summary = format!(
        "{arrived} packets in on the host's {host_if}, {by_kernel} forwarded by the kernel \
         ({fwd_counter}), {} by the {hook} hook; iperf3 TCP {:.2} Gbit/s, UDP {:.2} Gbit/s",
        hook1 - hook0,
        tcp["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e9,
        udp["end"]["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9,
    );
    println!("{summary}");
    assert!(arrived > 20_000, "real traffic went through: {summary}");
    assert!(
        by_kernel * 100 <= arrived,
        "at least 99% must bypass the kernel's forwarding: {summary}"
    );
    assert!(
        (hook1 - hook0) * 100 >= arrived * 99,
        "the agent's {hook} counter agrees: {summary}"
    );
    for c in csum_counters {
        assert_eq!(recv1[*c] - recv0[*c], 0, "the receiver's {c}: {summary}");
    }
    datagrams.ensure_intact()
}

#[test]
fn ipv4_from_a_veth_with_default_offloads_bypasses_the_kernel_intact() -> Result<()> {
    offloads_stay_on_and_the_fast_path_carries_it_all(false, Direction::VmOut)
}

#[test]
fn ipv6_from_a_veth_with_default_offloads_bypasses_the_kernel_intact() -> Result<()> {
    offloads_stay_on_and_the_fast_path_carries_it_all(true, Direction::VmOut)
}

#[test]
fn ipv4_from_an_appliance_to_a_veth_vm_takes_the_return_path_past_the_kernel_intact() -> Result<()>
{
    offloads_stay_on_and_the_fast_path_carries_it_all(false, Direction::Return)
}

#[test]
fn ipv6_from_an_appliance_to_a_veth_vm_takes_the_return_path_past_the_kernel_intact() -> Result<()>
{
    offloads_stay_on_and_the_fast_path_carries_it_all(true, Direction::Return)
}
