//! The BFD Control packet (RFC 5880 §4.1) as a value, its encoding, and
//! the reception checks of RFC 5880 §6.8.6 that need only the packet:
//! [`Control::decode`] either returns a packet the session may process or
//! says which rule discards it. Authentication (§4.2–4.4) is not
//! implemented, so a packet with the A bit is discarded (§6.8.6: "If the
//! A bit is set and no authentication is in use"). Echo packets (§5) and
//! Demand mode are not used.

use std::fmt;

/// The protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;
/// The mandatory section's length, without authentication.
pub const LEN: usize = 24;
/// The shortest packet with an authentication section (§6.8.6).
pub const LEN_WITH_AUTH: usize = 26;

const POLL: u8 = 0x20;
const FINAL: u8 = 0x10;
const CPI: u8 = 0x08;
const AUTH: u8 = 0x04;
const DEMAND: u8 = 0x02;
const MULTIPOINT: u8 = 0x01;

/// Session states as they travel in the Sta field (RFC 5880 §4.1, §6.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum State {
    /// AdminDown (0): held down administratively.
    AdminDown,
    /// Down (1).
    Down,
    /// Init (2): the remote is heard, the three-way handshake is under way.
    Init,
    /// Up (3).
    Up,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Diagnostic codes (RFC 5880 §4.1; 9–31 are reserved).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0: No Diagnostic.
    None,
    /// 1: Control Detection Time Expired.
    DetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborSignaledDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdminDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9–31: reserved, kept as received.
    Reserved(u8),
}

impl Diag {
    /// The code from the 5-bit Diag field.
    pub fn from_u8(v: u8) -> Diag {
        match v & 0x1f {
            0 => Diag::None,
            1 => Diag::DetectionTimeExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborSignaledDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdminDown,
            8 => Diag::ReverseConcatenatedPathDown,
            r => Diag::Reserved(r),
        }
    }

    /// The value on the wire.
    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::DetectionTimeExpired => 1,
            Diag::EchoFailed => 2,
            Diag::NeighborSignaledDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdminDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(r) => r & 0x1f,
        }
    }

    /// The registry name, for logs and `steer show bfd`.
    pub fn name(self) -> &'static str {
        match self {
            Diag::None => "No Diagnostic",
            Diag::DetectionTimeExpired => "Control Detection Time Expired",
            Diag::EchoFailed => "Echo Function Failed",
            Diag::NeighborSignaledDown => "Neighbor Signaled Session Down",
            Diag::ForwardingPlaneReset => "Forwarding Plane Reset",
            Diag::PathDown => "Path Down",
            Diag::ConcatenatedPathDown => "Concatenated Path Down",
            Diag::AdminDown => "Administratively Down",
            Diag::ReverseConcatenatedPathDown => "Reverse Concatenated Path Down",
            Diag::Reserved(_) => "Reserved",
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

impl serde::Serialize for Diag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One BFD Control packet (RFC 5880 §4.1), intervals in microseconds as
/// on the wire.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// Diag: why the sender's session last left Up.
    pub diag: Diag,
    /// Sta: the sender's session state.
    pub state: State,
    /// P: the sender asks for verification (a Poll Sequence, §6.5).
    pub poll: bool,
    /// F: the sender answers a Poll.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub cpi: bool,
    /// D: the sender wants Demand mode.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator: the sender's.
    pub my_disc: u32,
    /// Your Discriminator: the receiver's, or zero if not yet known.
    pub your_disc: u32,
    /// Desired Min TX Interval (µs).
    pub desired_min_tx: u32,
    /// Required Min RX Interval (µs); zero: send me nothing periodically.
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval (µs); zero: no Echo.
    pub required_min_echo_rx: u32,
}

/// Why a received packet is discarded: the rule of RFC 5880 §6.8.6 (or the
/// encapsulation's, RFC 5881 §5 / RFC 5883 §5) it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    /// Fewer bytes than the mandatory section.
    #[error("{0} bytes is shorter than a Control packet (24)")]
    Truncated(usize),
    /// Vers is not 1.
    #[error("version {0} is not 1 (RFC 5880 §6.8.6)")]
    Version(u8),
    /// Length below 24 (26 with the A bit).
    #[error("Length {0} is below the minimum (RFC 5880 §6.8.6)")]
    LengthTooSmall(u8),
    /// Length beyond the UDP payload.
    #[error("Length {length} exceeds the {payload}-byte payload (RFC 5880 §6.8.6)")]
    LengthBeyondPayload {
        /// The Length field.
        length: u8,
        /// The UDP payload size.
        payload: usize,
    },
    /// Detect Mult zero.
    #[error("Detect Mult is zero (RFC 5880 §6.8.6)")]
    DetectMultZero,
    /// The Multipoint bit.
    #[error("the Multipoint bit is set (RFC 5880 §6.8.6)")]
    Multipoint,
    /// Poll and Final together.
    #[error(
        "Poll and Final are both set: a Final answers a Poll and never carries one (RFC 5880 §6.5)"
    )]
    PollAndFinal,
    /// My Discriminator zero.
    #[error("My Discriminator is zero (RFC 5880 §6.8.6)")]
    MyDiscriminatorZero,
    /// Your Discriminator zero in a state that must know it.
    #[error("Your Discriminator is zero in state {0} (RFC 5880 §6.8.6)")]
    YourDiscriminatorZero(State),
    /// The A bit, and no authentication is configured.
    #[error("the A bit is set and no authentication is in use (RFC 5880 §6.8.6)")]
    Authentication,
    /// Your Discriminator names no session of ours.
    #[error("Your Discriminator {0:#x} names no session (RFC 5880 §6.8.6)")]
    UnknownDiscriminator(u32),
    /// No session for the source (and destination) address.
    #[error("no session for this source address (RFC 5881 §3, RFC 5883 §4)")]
    NoSession,
    /// Single-hop packet not sent with TTL / Hop Limit 255.
    #[error("TTL {0} is not 255 on a single-hop session (RFC 5881 §5)")]
    TtlNot255(u8),
    /// Multihop packet below the configured minimum TTL.
    #[error("TTL {ttl} is below the multihop minimum {min} (RFC 5883 §5)")]
    TtlBelowMinimum {
        /// Received TTL.
        ttl: u8,
        /// Configured minimum.
        min: u8,
    },
    /// The kernel did not report the TTL of the datagram.
    #[error("the datagram came without its TTL (IP_RECVTTL/IPV6_RECVHOPLIMIT)")]
    NoTtl,
}

impl Control {
    /// The 24-byte mandatory section (no authentication).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (VERSION << 5) | self.diag.code();
        let mut flags = self.state.bits() << 6;
        for (set, bit) in [
            (self.poll, POLL),
            (self.final_, FINAL),
            (self.cpi, CPI),
            (self.demand, DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        b[1] = flags;
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_disc.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_disc.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        b
    }

    /// Decode a UDP payload, applying the checks of RFC 5880 §6.8.6 that
    /// need nothing but the packet, in the RFC's order. Selecting the
    /// session (by Your Discriminator or by address) is the receiver's.
    pub fn decode(payload: &[u8]) -> Result<Control, Discard> {
        if payload.len() < LEN {
            return Err(Discard::Truncated(payload.len()));
        }
        let version = payload[0] >> 5;
        if version != VERSION {
            return Err(Discard::Version(version));
        }
        let flags = payload[1];
        let length = payload[3];
        let auth = flags & AUTH != 0;
        let min = if auth { LEN_WITH_AUTH } else { LEN };
        if usize::from(length) < min {
            return Err(Discard::LengthTooSmall(length));
        }
        if usize::from(length) > payload.len() {
            return Err(Discard::LengthBeyondPayload {
                length,
                payload: payload.len(),
            });
        }
        let detect_mult = payload[2];
        if detect_mult == 0 {
            return Err(Discard::DetectMultZero);
        }
        if flags & MULTIPOINT != 0 {
            return Err(Discard::Multipoint);
        }
        if flags & POLL != 0 && flags & FINAL != 0 {
            return Err(Discard::PollAndFinal);
        }
        let word = |at: usize| u32::from_be_bytes([0, 1, 2, 3].map(|i| payload[at + i]));
        let my_disc = word(4);
        if my_disc == 0 {
            return Err(Discard::MyDiscriminatorZero);
        }
        let your_disc = word(8);
        let state = State::from_bits(flags >> 6);
        if your_disc == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(Discard::YourDiscriminatorZero(state));
        }
        if auth {
            return Err(Discard::Authentication);
        }
        Ok(Control {
            diag: Diag::from_u8(payload[0]),
            state,
            poll: flags & POLL != 0,
            final_: flags & FINAL != 0,
            cpi: flags & CPI != 0,
            demand: flags & DEMAND != 0,
            detect_mult,
            my_disc,
            your_disc,
            desired_min_tx: word(12),
            required_min_rx: word(16),
            required_min_echo_rx: word(20),
        })
    }
}

/// The TTL check of the encapsulation: single hop requires 255 (RFC 5881
/// §5, no authentication in use), multihop at least `min_ttl` (RFC 5883
/// §5).
pub fn check_ttl(ttl: Option<u8>, multihop: bool, min_ttl: u8) -> Result<(), Discard> {
    let ttl = ttl.ok_or(Discard::NoTtl)?;
    match (multihop, ttl) {
        (false, 255) => Ok(()),
        (false, t) => Err(Discard::TtlNot255(t)),
        (true, t) if t >= min_ttl => Ok(()),
        (true, t) => Err(Discard::TtlBelowMinimum {
            ttl: t,
            min: min_ttl,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Control {
        Control {
            diag: Diag::None,
            state: State::Up,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_disc: 0x0102_0304,
            your_disc: 0x0a0b_0c0d,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }
    }

    /// A packet FRR 8.4's bfdd sent to `steer server` once Up at 300 ms ×
    /// 3, the UDP payload as tcpdump captured it in the lab (tcpdump's own
    /// decoding: Up, no flags, My Discriminator 0x77959dd4, Your
    /// Discriminator 0x175ab183, 300/300 ms, Echo 50 ms).
    const FRR_UP: [u8; 24] = [
        0x20, 0xc0, 0x03, 0x18, 0x77, 0x95, 0x9d, 0xd4, 0x17, 0x5a, 0xb1, 0x83, 0x00, 0x04, 0x93,
        0xe0, 0x00, 0x04, 0x93, 0xe0, 0x00, 0x00, 0xc3, 0x50,
    ];

    #[test]
    fn frr_up_packet_decodes_field_by_field_and_encodes_back() {
        let c = Control::decode(&FRR_UP).unwrap();
        assert_eq!(c.state, State::Up);
        assert_eq!(c.diag, Diag::None);
        assert_eq!(c.detect_mult, 3);
        assert_eq!(c.my_disc, 0x7795_9dd4);
        assert_eq!(c.your_disc, 0x175a_b183);
        assert_eq!(c.desired_min_tx, 300_000);
        assert_eq!(c.required_min_rx, 300_000);
        assert_eq!(c.required_min_echo_rx, 50_000);
        assert!(!c.poll && !c.final_ && !c.cpi && !c.demand);
        assert_eq!(c.encode(), FRR_UP);
    }

    #[test]
    fn every_field_and_flag_round_trips() {
        for state in [State::AdminDown, State::Down, State::Init, State::Up] {
            for (poll, final_) in [(false, false), (true, false), (false, true)] {
                let c = Control {
                    state,
                    poll,
                    final_,
                    cpi: true,
                    demand: true,
                    diag: Diag::ReverseConcatenatedPathDown,
                    your_disc: if matches!(state, State::Down | State::AdminDown) {
                        0
                    } else {
                        7
                    },
                    ..up()
                };
                assert_eq!(Control::decode(&c.encode()), Ok(c));
            }
        }
    }

    #[test]
    fn encoding_puts_version_diag_state_and_flags_where_rfc_5880_4_1_says() {
        let c = Control {
            diag: Diag::DetectionTimeExpired,
            state: State::Init,
            poll: true,
            ..up()
        };
        let b = c.encode();
        assert_eq!(b[0], 0b001_00001, "version 1, diag 1");
        assert_eq!(b[1], 0b10_100000, "state Init, P");
        assert_eq!(b[3], 24);
        let f = Control {
            final_: true,
            state: State::Down,
            ..up()
        }
        .encode();
        assert_eq!(f[1], 0b01_010000, "state Down, F");
    }

    #[test]
    fn diag_codes_have_their_registry_values_and_names() {
        for v in 0..32u8 {
            assert_eq!(Diag::from_u8(v).code(), v);
        }
        assert_eq!(Diag::from_u8(1), Diag::DetectionTimeExpired);
        assert_eq!(
            Diag::NeighborSignaledDown.to_string(),
            "3 (Neighbor Signaled Session Down)"
        );
        assert_eq!(Diag::from_u8(9).name(), "Reserved");
    }

    fn with(f: impl FnOnce(&mut [u8; 24])) -> [u8; 24] {
        let mut b = up().encode();
        f(&mut b);
        b
    }

    #[test]
    fn every_reception_check_of_rfc_5880_6_8_6_discards() {
        assert_eq!(
            Control::decode(&up().encode()[..23]),
            Err(Discard::Truncated(23))
        );
        assert_eq!(
            Control::decode(&with(|b| b[0] = 0x00)),
            Err(Discard::Version(0))
        );
        assert_eq!(
            Control::decode(&with(|b| b[0] = 0x40)),
            Err(Discard::Version(2))
        );
        assert_eq!(
            Control::decode(&with(|b| b[3] = 23)),
            Err(Discard::LengthTooSmall(23))
        );
        assert_eq!(
            Control::decode(&with(|b| {
                b[1] |= AUTH;
                b[3] = 25;
            })),
            Err(Discard::LengthTooSmall(25)),
            "with the A bit the minimum is 26"
        );
        assert_eq!(
            Control::decode(&with(|b| b[3] = 28)),
            Err(Discard::LengthBeyondPayload {
                length: 28,
                payload: 24
            })
        );
        assert_eq!(
            Control::decode(&with(|b| b[2] = 0)),
            Err(Discard::DetectMultZero)
        );
        assert_eq!(
            Control::decode(&with(|b| b[1] |= MULTIPOINT)),
            Err(Discard::Multipoint)
        );
        assert_eq!(
            Control::decode(&with(|b| b[1] |= POLL | FINAL)),
            Err(Discard::PollAndFinal)
        );
        assert_eq!(
            Control::decode(&with(|b| b[4..8].copy_from_slice(&[0; 4]))),
            Err(Discard::MyDiscriminatorZero)
        );
        assert_eq!(
            Control::decode(&with(|b| b[8..12].copy_from_slice(&[0; 4]))),
            Err(Discard::YourDiscriminatorZero(State::Up))
        );
        let init_zero = Control {
            state: State::Init,
            your_disc: 0,
            ..up()
        };
        assert_eq!(
            Control::decode(&init_zero.encode()),
            Err(Discard::YourDiscriminatorZero(State::Init))
        );
        let mut authed = up().encode().to_vec();
        authed[1] |= AUTH;
        authed[3] = 26;
        authed.extend_from_slice(&[1, 2]);
        assert_eq!(Control::decode(&authed), Err(Discard::Authentication));
    }

    #[test]
    fn down_and_admin_down_may_come_without_your_discriminator() {
        for state in [State::Down, State::AdminDown] {
            let c = Control {
                state,
                your_disc: 0,
                ..up()
            };
            assert_eq!(Control::decode(&c.encode()), Ok(c));
        }
    }

    #[test]
    fn length_below_the_payload_is_accepted_and_trailing_bytes_ignored() {
        let mut b = up().encode().to_vec();
        b.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(Control::decode(&b), Ok(up()));
    }

    #[test]
    fn reserved_diag_is_kept_as_received() {
        let b = with(|b| b[0] = 0x20 | 17);
        assert_eq!(Control::decode(&b).unwrap().diag, Diag::Reserved(17));
    }

    #[test]
    fn single_hop_requires_ttl_255_and_multihop_the_configured_minimum() {
        assert_eq!(check_ttl(Some(255), false, 254), Ok(()));
        assert_eq!(
            check_ttl(Some(254), false, 254),
            Err(Discard::TtlNot255(254))
        );
        assert_eq!(check_ttl(Some(64), false, 0), Err(Discard::TtlNot255(64)));
        assert_eq!(check_ttl(Some(254), true, 254), Ok(()));
        assert_eq!(check_ttl(Some(255), true, 254), Ok(()));
        assert_eq!(
            check_ttl(Some(253), true, 254),
            Err(Discard::TtlBelowMinimum { ttl: 253, min: 254 })
        );
        assert_eq!(check_ttl(None, false, 254), Err(Discard::NoTtl));
    }
}
