//! Frames for the XDP fixtures and benchmark: Ethernet + IPv4/IPv6 + UDP
//! (or another protocol), with a correct IPv4 header checksum computed from
//! scratch, so an incrementally updated one can be compared against it.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A MAC address.
pub type Mac = [u8; 6];

/// The RFC 1071 checksum of an IPv4 header (checksum field included as is).
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet in an Ethernet frame.
#[derive(Clone, Debug)]
pub struct V4 {
    /// Destination MAC.
    pub dst_mac: Mac,
    /// Source MAC.
    pub src_mac: Mac,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// L4 protocol (17 = UDP).
    pub proto: u8,
    /// L4 ports (written for TCP/UDP).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Flags and fragment offset, host order.
    pub frag: u16,
    /// IP options (multiple of 4 bytes).
    pub options: Vec<u8>,
    /// L4 payload bytes after the 8-byte UDP header.
    pub payload: usize,
}

impl V4 {
    /// A UDP datagram with 32 bytes of payload and TTL 64.
    pub fn udp(src_mac: Mac, dst_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr) -> V4 {
        V4 {
            dst_mac,
            src_mac,
            src,
            dst,
            ttl: 64,
            proto: 17,
            sport: 40000,
            dport: 9999,
            frag: 0,
            options: Vec::new(),
            payload: 32,
        }
    }

    /// The frame bytes.
    pub fn frame(&self) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let l4 = 8 + self.payload;
        let mut f = Vec::with_capacity(14 + hlen + l4);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let ip_start = f.len();
        f.push(0x40 | (hlen / 4) as u8);
        f.push(0);
        f.extend_from_slice(&((hlen + l4) as u16).to_be_bytes());
        f.extend_from_slice(&0x1234u16.to_be_bytes());
        f.extend_from_slice(&self.frag.to_be_bytes());
        f.push(self.ttl);
        f.push(self.proto);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend_from_slice(&self.options);
        let check = ipv4_checksum(&f[ip_start..ip_start + hlen]);
        f[ip_start + 10..ip_start + 12].copy_from_slice(&check.to_be_bytes());
        l4_header(&mut f, self.sport, self.dport, l4);
        f.extend((0..self.payload).map(|i| i as u8));
        f
    }
}

/// An IPv6 packet in an Ethernet frame.
#[derive(Clone, Debug)]
pub struct V6 {
    /// Destination MAC.
    pub dst_mac: Mac,
    /// Source MAC.
    pub src_mac: Mac,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Next header (17 = UDP, 0 = hop-by-hop options).
    pub next_header: u8,
    /// L4 ports.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Payload bytes after the 8-byte UDP (or extension) header.
    pub payload: usize,
}

impl V6 {
    /// A UDP datagram with 32 bytes of payload and hop limit 64.
    pub fn udp(src_mac: Mac, dst_mac: Mac, src: Ipv6Addr, dst: Ipv6Addr) -> V6 {
        V6 {
            dst_mac,
            src_mac,
            src,
            dst,
            hop_limit: 64,
            next_header: 17,
            sport: 40000,
            dport: 9999,
            payload: 32,
        }
    }

    /// The frame bytes.
    pub fn frame(&self) -> Vec<u8> {
        let l4 = 8 + self.payload;
        let mut f = Vec::with_capacity(14 + 40 + l4);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&0x6000_0000u32.to_be_bytes());
        f.extend_from_slice(&(l4 as u16).to_be_bytes());
        f.push(self.next_header);
        f.push(self.hop_limit);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        l4_header(&mut f, self.sport, self.dport, l4);
        f.extend((0..self.payload).map(|i| i as u8));
        f
    }
}

fn l4_header(f: &mut Vec<u8>, sport: u16, dport: u16, len: usize) {
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
}

/// The sum a sender leaves in a TCP/UDP checksum for offload to finish: the
/// pseudo-header's one's-complement sum, not inverted (`~csum_tcpudp_magic`).
pub fn partial_csum(src: &[u8], dst: &[u8], proto: u8, l4_len: u16) -> u16 {
    let mut sum: u32 = src
        .chunks(2)
        .chain(dst.chunks(2))
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    sum += u32::from(proto) + u32::from(l4_len);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
