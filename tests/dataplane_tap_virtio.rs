//! A VM as a hypervisor runs it: its NIC is a tap, and a VMM process moves
//! its frames with virtio-net headers (`IFF_VNET_HDR`) into the host's tap,
//! as QEMU/vhost-net do. The guest's kernel leaves checksums to offload
//! (`VIRTIO_NET_HDR_F_NEEDS_CSUM`) and sends TCPv4 superpackets
//! (`VIRTIO_NET_HDR_GSO_TCPV4`), which the VMM counts. The host's uplink
//! here does neither TSO nor checksum offload, and nothing after it merges
//! segments (GRO) or trusts checksums (rx checksumming), as on a wire: a
//! superpacket must leave the host segmented, with every segment's checksum
//! computed, and the appliance's stack checks each one. Judged by
//! counters the agent does not own where they exist: the fast path
//! (the agent's TC — and XDP — counters) carried at least 99% of what the
//! tap received and the kernel's `ForwDatagrams` at most 1%, the
//! appliance received more segments than the VMM wrote superpackets, its
//! stack counted no checksum error, and every byte arrived as sent.
//!
//! The other way, from the appliance to the VM behind its tap: `auto` runs
//! no return path for a tap (it measured no gain there), `tc` does, out of
//! the tap with the skb's offload state for the VMM to hand the guest, and
//! the guest's stack gets every byte intact.

use anyhow::Result;
use steer_tests::fastpath::{APPLIANCE_V4, FastPathLab, VM_V4, VmNic};
use steer_tests::traffic;

const STREAM_BYTES: usize = 16 << 20;
const DATAGRAMS: u64 = 2000;

fn virtio_frames_are_forwarded_on_the_fast_path(dataplane: &str) -> Result<()> {
    let lab = FastPathLab::new(VmNic::Tap, dataplane)?;
    lab.host
        .exec("ethtool", &["-K", "eth0", "tso", "off", "tx", "off"])?;
    let (lan, host_port, appliance_port) = &lab.lan_ports;
    for port in [host_port, appliance_port] {
        lan.exec("ethtool", &["-K", port, "gro", "off", "rx", "off"])?;
    }
    lab.appliance
        .exec("ethtool", &["-K", "eth0", "gro", "off", "rx", "off"])?;
    let vmm = lab.vmm.as_ref().expect("a tap lab has a VMM");
    let fib = lab.agent.show(&["fib"])?;
    assert_eq!(
        fib["attached"].to_string().contains("\"return\""),
        dataplane.contains("xdp"),
        "a return path for a tap VM with xdp, none with auto: {}",
        fib["attached"]
    );
    let host0 = traffic::snmp(&lab.host)?;
    let app0 = traffic::snmp(&lab.appliance)?;
    let (rx0, _) = traffic::iface_packets(&lab.host, "vm1")?;
    let (app_rx0, _) = traffic::iface_packets(&lab.appliance, "eth0")?;
    let (tc0, xdp0) = (lab.forwarded("tc")?, lab.forwarded("xdp")?);
    let passed0 = lab.counter("xdp", "pass_csum_partial")?;
    let vmm0 = vmm.stats();

    let addr = |p: u16| -> std::net::SocketAddr { format!("{APPLIANCE_V4}:{p}").parse().unwrap() };
    traffic::tcp_stream(&lab.vm, &lab.appliance, addr(7000), STREAM_BYTES)?;
    let datagrams = traffic::udp_datagrams(&lab.vm, &lab.appliance, addr(7001), DATAGRAMS, 1400)?;

    let vmm1 = vmm.stats();
    let host1 = traffic::snmp(&lab.host)?;
    let app1 = traffic::snmp(&lab.appliance)?;
    let (rx1, _) = traffic::iface_packets(&lab.host, "vm1")?;
    let (app_rx1, _) = traffic::iface_packets(&lab.appliance, "eth0")?;
    let fast = lab.forwarded("tc")? - tc0 + lab.forwarded("xdp")? - xdp0;
    let from_vm = rx1 - rx0;
    let by_kernel = host1["Ip:ForwDatagrams"] - host0["Ip:ForwDatagrams"];
    let superpackets = vmm1.gso_tcpv4 - vmm0.gso_tcpv4;
    let summary = format!(
        "VMM wrote {} frames ({} NEEDS_CSUM, {superpackets} GSO TCPv4); the tap received \
         {from_vm}; fast path {fast}, kernel {by_kernel}; the appliance received {} packets",
        vmm1.frames - vmm0.frames,
        vmm1.needs_csum - vmm0.needs_csum,
        app_rx1 - app_rx0
    );
    println!("{summary}");

    assert!(
        superpackets > 0,
        "the guest sent TCPv4 superpackets: {summary}"
    );
    assert!(
        vmm1.needs_csum - vmm0.needs_csum >= DATAGRAMS,
        "checksums left to offload: {summary}"
    );
    assert_eq!(vmm1.write_errors, 0, "{summary}");
    if dataplane.contains("xdp") {
        let passed = lab.counter("xdp", "pass_csum_partial")? - passed0;
        assert!(
            passed >= vmm1.needs_csum - vmm0.needs_csum,
            "XDP hands every NEEDS_CSUM frame on to TC ({passed}): {summary}"
        );
    }
    assert!(
        fast * 100 >= from_vm * 99,
        "the fast path forwarded it: {summary}"
    );
    assert!(by_kernel * 100 <= from_vm, "not the kernel: {summary}");
    assert!(
        app_rx1 - app_rx0 >= (STREAM_BYTES / 1500) as u64,
        "superpackets leave the host as MTU-sized segments: {summary}"
    );
    for c in ["Tcp:InCsumErrors", "Udp:InCsumErrors"] {
        assert_eq!(app1[c] - app0[c], 0, "the appliance's {c}: {summary}");
    }
    datagrams.ensure_intact()
}

#[test]
fn virtio_net_frames_from_a_tap_are_forwarded_by_tc_segmented_and_checksummed() -> Result<()> {
    virtio_frames_are_forwarded_on_the_fast_path("")
}

/// With XDP in front, frames whose checksum is left to offload go on to TC
/// (`pass_csum_partial`), which forwards them.
#[test]
fn virtio_net_frames_pass_xdp_to_tc_which_forwards_them() -> Result<()> {
    virtio_frames_are_forwarded_on_the_fast_path("dataplane = \"xdp\"")
}

/// `dataplane = "tc"` returns to a tap too: what the appliance sends the VM
/// leaves the host's uplink for the tap on the return path, not through the
/// kernel's forwarding, and the guest gets it intact.
#[test]
fn appliance_traffic_to_a_tap_vm_takes_the_return_path_with_dataplane_tc_intact() -> Result<()> {
    let lab = FastPathLab::new(VmNic::Tap, "dataplane = \"tc\"")?;
    lab.send_returns_through_the_host()?;
    let host0 = traffic::snmp(&lab.host)?;
    let vm0 = traffic::snmp(&lab.vm)?;
    let (rx0, _) = traffic::iface_packets(&lab.host, "eth0")?;
    let fast0 = lab.forwarded("return")?;
    let addr = |p: u16| -> std::net::SocketAddr { format!("{VM_V4}:{p}").parse().unwrap() };
    traffic::tcp_stream(&lab.appliance, &lab.vm, addr(7000), STREAM_BYTES)?;
    let datagrams = traffic::udp_datagrams(&lab.appliance, &lab.vm, addr(7001), DATAGRAMS, 1400)?;
    let host1 = traffic::snmp(&lab.host)?;
    let vm1 = traffic::snmp(&lab.vm)?;
    let (rx1, _) = traffic::iface_packets(&lab.host, "eth0")?;
    let arrived = rx1 - rx0;
    let fast = lab.forwarded("return")? - fast0;
    let by_kernel = host1["Ip:ForwDatagrams"] - host0["Ip:ForwDatagrams"];
    let summary =
        format!("{arrived} packets in on the uplink; return path {fast}, kernel {by_kernel}");
    println!("{summary}");
    assert!(arrived > 2_000, "real traffic went through: {summary}");
    assert!(
        fast * 100 >= arrived * 99,
        "the return path carried it: {summary}"
    );
    assert!(by_kernel * 100 <= arrived, "not the kernel: {summary}");
    for c in ["Tcp:InCsumErrors", "Udp:InCsumErrors"] {
        assert_eq!(vm1[c] - vm0[c], 0, "the guest's {c}: {summary}");
    }
    datagrams.ensure_intact()
}
