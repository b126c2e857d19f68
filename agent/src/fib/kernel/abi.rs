//! Kernel ABI numbers for the rtnetlink messages Steer speaks, typed as the
//! wire carries them. Names follow the uapi headers they come from:
//! linux/netlink.h, rtnetlink.h, nexthop.h, fib_rules.h, neighbour.h.

// netlink.h
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_CAPPED: u16 = 0x100;
pub const NLM_F_ACK_TLVS: u16 = 0x200;
pub const NLMSGERR_ATTR_MSG: u16 = 1;
pub const NLA_TYPE_MASK: u16 = 0x3fff;

// rtnetlink.h: message types
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWNEIGH: u16 = 28;
pub const RTM_GETNEIGH: u16 = 30;
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;
pub const RTM_GETRULE: u16 = 34;
pub const RTM_NEWNEXTHOP: u16 = 104;
pub const RTM_DELNEXTHOP: u16 = 105;
pub const RTM_GETNEXTHOP: u16 = 106;

// rtnetlink.h: struct rtmsg and its attributes
pub const RTMSG_LEN: usize = 12;
pub const RTA_DST: u16 = 1;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_MULTIPATH: u16 = 9;
pub const RTA_TABLE: u16 = 15;
pub const RTA_VIA: u16 = 18;
pub const RTA_NH_ID: u16 = 30;
pub const RTNH_LEN: usize = 8;
pub const RTM_F_CLONED: u32 = 0x200;

pub const RTN_UNICAST: u8 = 1;
pub const RTN_LOCAL: u8 = 2;
pub const RTN_BLACKHOLE: u8 = 6;
pub const RTN_UNREACHABLE: u8 = 7;
pub const RTN_THROW: u8 = 9;

pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_NOWHERE: u8 = 255;

pub const RTPROT_KERNEL: u8 = 2;

pub const RT_TABLE_UNSPEC: u32 = 0;
pub const RT_TABLE_COMPAT: u32 = 252;
pub const RT_TABLE_DEFAULT: u32 = 253;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;

// nexthop.h: struct nhmsg and its attributes
pub const NHMSG_LEN: usize = 8;
pub const NHA_ID: u16 = 1;
pub const NHA_GROUP: u16 = 2;
pub const NHA_GROUP_TYPE: u16 = 3;
pub const NHA_OIF: u16 = 5;
pub const NHA_GATEWAY: u16 = 6;
pub const NHA_RES_GROUP: u16 = 12;
/// Marks a nested attribute (strictly validated families need it).
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NHA_RES_GROUP_BUCKETS: u16 = 1;
pub const NHA_RES_GROUP_IDLE_TIMER: u16 = 2;
pub const NHA_RES_GROUP_UNBALANCED_TIMER: u16 = 3;
pub const NEXTHOP_GRP_TYPE_MPATH: u16 = 0;
pub const NEXTHOP_GRP_TYPE_RES: u16 = 1;
pub const NEXTHOP_GRP_LEN: usize = 8;
/// clock_t ticks per second in netlink (USER_HZ).
pub const USER_HZ: u32 = 100;

// fib_rules.h: struct fib_rule_hdr and its attributes
pub const FIB_RULE_HDR_LEN: usize = 12;
pub const FRA_IIFNAME: u16 = 3;
pub const FRA_PRIORITY: u16 = 6;
pub const FRA_SUPPRESS_PREFIXLEN: u16 = 14;
pub const FRA_TABLE: u16 = 15;
pub const FRA_PROTOCOL: u16 = 21;
pub const FR_ACT_TO_TBL: u8 = 1;
pub const FR_ACT_UNREACHABLE: u8 = 7;

// neighbour.h: struct ndmsg and its attributes
pub const NDMSG_LEN: usize = 12;
pub const NDA_DST: u16 = 1;
pub const NDA_LLADDR: u16 = 2;
pub const NDA_FLAGS_EXT: u16 = 15;
pub const NTF_EXT_MANAGED: u32 = 1;
pub const NUD_NONE: u16 = 0;
pub const NUD_NOARP: u16 = 0x40;
pub const NUD_PERMANENT: u16 = 0x80;

// socket.h / if_ether.h
pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
