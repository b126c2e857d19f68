//! Header layouts and bounds-checked access to the packet, in the shape the
//! verifier accepts (every access proven below `data_end`), for both hooks:
//! an XDP frame and the linear part of a TC skb are both a [`Frame`].

use aya_ebpf::programs::{TcContext, XdpContext};

/// A packet the program can read directly: `start..end` is the directly
/// accessible part, `len` the whole packet (an skb may hold more than its
/// linear part, e.g. a GSO superpacket's payload in page fragments).
pub trait Frame {
    /// First byte (`data`).
    fn start(&self) -> usize;
    /// One past the last directly accessible byte (`data_end`).
    fn end(&self) -> usize;
    /// Bytes of the whole packet, Ethernet header included.
    fn len(&self) -> usize;
}

impl Frame for XdpContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.data_end() - self.data()
    }
}

impl Frame for TcContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn len(&self) -> usize {
        TcContext::len(self) as usize
    }
}

/// Ethernet header length (no VLAN tag: tagged frames are not IP here).
pub const ETH_HLEN: usize = 14;
/// EtherType of IPv4, in host order.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6, in host order.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// IP protocol numbers that carry ports at offset 0 of the L4 header.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;

/// An Ethernet header.
#[repr(C)]
pub struct EthHdr {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// EtherType, network order.
    pub proto: [u8; 2],
}

/// An IPv4 header without options.
#[repr(C)]
pub struct Ipv4Hdr {
    /// Version (high nibble) and IHL (low nibble).
    pub version_ihl: u8,
    /// DSCP/ECN.
    pub tos: u8,
    /// Total length, network order.
    pub tot_len: u16,
    /// Identification.
    pub id: u16,
    /// Flags and fragment offset, network order.
    pub frag_off: u16,
    /// Time to live.
    pub ttl: u8,
    /// L4 protocol.
    pub protocol: u8,
    /// Header checksum, network order as raw memory.
    pub check: u16,
    /// Source address, network order as raw memory.
    pub saddr: u32,
    /// Destination address, network order as raw memory.
    pub daddr: u32,
}

/// An IPv6 fixed header.
#[repr(C)]
pub struct Ipv6Hdr {
    /// Version, traffic class and flow label, network order.
    pub vtc_flow: u32,
    /// Payload length, network order.
    pub payload_len: u16,
    /// Next header.
    pub nexthdr: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address as raw memory.
    pub saddr: [u32; 4],
    /// Destination address as raw memory.
    pub daddr: [u32; 4],
}

/// A pointer to a `T` at `offset` into the frame, if the directly
/// accessible part holds it.
#[inline(always)]
pub fn at<T, F: Frame>(f: &F, offset: usize) -> Option<*mut T> {
    let start = f.start();
    if start + offset + core::mem::size_of::<T>() > f.end() {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// The L4 fields the program uses, raw (network order as memory).
pub struct L4 {
    /// Source port (0 unless TCP/UDP).
    pub sport: u16,
    /// Destination port (0 unless TCP/UDP).
    pub dport: u16,
    /// The TCP/UDP checksum field, if the protocol has one.
    pub check: Option<u16>,
}

/// Reads the L4 header at `offset`: ports and checksum for TCP and UDP,
/// nothing for other protocols. `None` if the frame is too short.
#[inline(always)]
pub fn l4<F: Frame>(f: &F, offset: usize, protocol: u8) -> Option<L4> {
    match protocol {
        IPPROTO_UDP => {
            let h: *const [u16; 4] = at(f, offset)?;
            // SAFETY: `at` proved the eight bytes are inside the frame.
            let h = unsafe { *h };
            Some(L4 {
                sport: h[0],
                dport: h[1],
                check: Some(h[3]),
            })
        }
        IPPROTO_TCP => {
            let h: *const [u16; 9] = at(f, offset)?;
            // SAFETY: `at` proved the eighteen bytes are inside the frame.
            let h = unsafe { *h };
            Some(L4 {
                sport: h[0],
                dport: h[1],
                check: Some(h[8]),
            })
        }
        _ => Some(L4 {
            sport: 0,
            dport: 0,
            check: None,
        }),
    }
}

/// Folds a sum of raw 16-bit words into a one's-complement 16-bit sum.
/// Byte order does not matter as long as every word is read the same way.
#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The sum of both 16-bit halves of a raw 32-bit word.
#[inline(always)]
pub fn halves(w: u32) -> u64 {
    (w & 0xffff) as u64 + (w >> 16) as u64
}

/// True for IPv6 next headers the program does not walk: hop-by-hop,
/// routing, fragment, destination options, AH, mobility, HIP, shim6.
#[inline(always)]
pub fn is_ipv6_ext_header(nexthdr: u8) -> bool {
    matches!(nexthdr, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140)
}
