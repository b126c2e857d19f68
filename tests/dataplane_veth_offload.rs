//! What a VM really sends, through the default dataplane: a VM namespace
//! behind a veth with its default offloads (checksum offload, TSO: the host
//! gets GSO superpackets and CHECKSUM_PARTIAL skbs) sends iperf3 TCP and
//! UDP, a checked TCP stream and checked UDP datagrams to an appliance
//! learned over BGP, over IPv4 and over IPv6. Judged by the kernel's
//! counters, not the agent's: at least 99% of what the host received from
//! the VM bypassed its forwarding path (`ForwDatagrams` /
//! `Ip6OutForwDatagrams` against the VM interface's received packets), the
//! appliance's stack saw no checksum error (`InCsumErrors`), and every byte
//! and datagram arrived as sent. The agent's TC counter agrees.

use anyhow::Result;
use steer_tests::fastpath::{APPLIANCE_V4, APPLIANCE_V6, FastPathLab, VmNic};
use steer_tests::traffic::{self, Iperf3Server};

const STREAM_BYTES: usize = 32 << 20;
const DATAGRAMS: u64 = 4000;

fn offloads_stay_on_and_the_fast_path_carries_it_all(v6: bool) -> Result<()> {
    let lab = FastPathLab::new(VmNic::Veth, "")?;
    let (dst, fwd_counter, csum_counters) = if v6 {
        (
            APPLIANCE_V6,
            "Ip6OutForwDatagrams",
            &["Tcp:InCsumErrors", "Udp6InCsumErrors"][..],
        )
    } else {
        (
            APPLIANCE_V4,
            "Ip:ForwDatagrams",
            &["Tcp:InCsumErrors", "Udp:InCsumErrors"][..],
        )
    };
    let features = lab.vm.exec("ethtool", &["-k", "eth0"])?;
    for on in [
        "tx-checksumming: on",
        "tcp-segmentation-offload: on",
        "generic-segmentation-offload: on",
    ] {
        assert!(
            features.contains(on),
            "the VM's default offloads: {features}"
        );
    }
    let _server = Iperf3Server::start(&lab.appliance, dst, lab.lab.dir())?;
    let host0 = traffic::snmp(&lab.host)?;
    let app0 = traffic::snmp(&lab.appliance)?;
    let (rx0, _) = traffic::iface_packets(&lab.host, "vm1")?;
    let tc0 = lab.forwarded("tc")?;

    let family = if v6 { "-6" } else { "-4" };
    let tcp = traffic::iperf3(&lab.vm, &["-c", dst, family, "-t", "2"])?;
    let udp = traffic::iperf3(
        &lab.vm,
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
    traffic::tcp_stream(&lab.vm, &lab.appliance, port(7000), STREAM_BYTES)?;
    let datagrams = traffic::udp_datagrams(&lab.vm, &lab.appliance, port(7001), DATAGRAMS, 1400)?;

    let host1 = traffic::snmp(&lab.host)?;
    let app1 = traffic::snmp(&lab.appliance)?;
    let (rx1, _) = traffic::iface_packets(&lab.host, "vm1")?;
    let tc1 = lab.forwarded("tc")?;
    let from_vm = rx1 - rx0;
    let by_kernel = host1[fwd_counter] - host0[fwd_counter];
    let summary = format!(
        "{from_vm} packets from the VM, {by_kernel} forwarded by the kernel ({fwd_counter}), \
         {} by TC; iperf3 TCP {:.2} Gbit/s, UDP {:.2} Gbit/s",
        tc1 - tc0,
        tcp["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e9,
        udp["end"]["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9,
    );
    println!("{summary}");
    assert!(from_vm > 20_000, "real traffic went through: {summary}");
    assert!(
        by_kernel * 100 <= from_vm,
        "at least 99% must bypass the kernel's forwarding: {summary}"
    );
    assert!(
        (tc1 - tc0) * 100 >= from_vm * 99,
        "the agent's TC counter agrees: {summary}"
    );
    for c in csum_counters {
        assert_eq!(app1[*c] - app0[*c], 0, "the appliance's {c}: {summary}");
    }
    assert_eq!(datagrams.corrupted, 0, "{datagrams:?}");
    assert!(
        datagrams.intact * 100 >= datagrams.sent * 95,
        "datagrams lost: {datagrams:?}"
    );
    Ok(())
}

#[test]
fn ipv4_from_a_veth_with_default_offloads_bypasses_the_kernel_intact() -> Result<()> {
    offloads_stay_on_and_the_fast_path_carries_it_all(false)
}

#[test]
fn ipv6_from_a_veth_with_default_offloads_bypasses_the_kernel_intact() -> Result<()> {
    offloads_stay_on_and_the_fast_path_carries_it_all(true)
}
