//! How one session encodes and decodes, from what its OPENs negotiated:
//! 2- or 4-octet AS numbers (RFC 6793), the message size limit (RFC 8654),
//! ADD-PATH per family (RFC 7911), and whether the peer is external. The
//! attribute and message codecs both read it; [`super::message`]
//! re-exports it as part of its API.

/// Maximum message size without RFC 8654.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Maximum message size with RFC 8654 extended messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// How one session encodes and decodes, from what its OPENs negotiated.
/// The default (nothing negotiated) is right for the OPEN exchange itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecConfig {
    /// Both sides sent the 4-octet AS capability.
    pub four_octet_as: bool,
    /// Both sides sent the extended message capability.
    pub extended_message: bool,
    /// Per family index ([`Family::index`](super::nlri::Family::index)): NLRI
    /// we receive carry path ids.
    pub add_path_receive: [bool; 2],
    /// Per family index: NLRI we send carry path ids.
    pub add_path_send: [bool; 2],
    /// The peer is external: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST
    /// from it are discarded (RFC 7606 §7.5, RFC 4456 §8).
    pub ebgp: bool,
}

impl CodecConfig {
    /// The largest UPDATE/NOTIFICATION/ROUTE-REFRESH this session carries.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}
