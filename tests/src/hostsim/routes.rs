//! What the simulated hosts hold, kept small enough for 50,000 of them:
//! every distinct path (prefix, path id) the route server sends gets a
//! slot number shared by all hosts, and each host keeps two bitsets over
//! the slots (held, and held with the attributes the run marks as
//! changed) and their counts. Decoding is Steer's own codec
//! (`steer_lib::bgp::message::decode`), once per distinct message: every
//! host of one update group receives byte-identical UPDATEs, so the
//! decoded effect (slots announced and withdrawn) is cached by the
//! message's bytes and replayed on each host.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use steer_lib::bgp::attribute::PathAttributes;
use steer_lib::bgp::message::{CodecConfig, Message, decode};
use steer_lib::prefix::Prefix;

/// Tells a path with the run's changed attributes from one without.
pub type Marker = Arc<dyn Fn(&PathAttributes) -> bool + Send + Sync>;

/// What one UPDATE does to a host's table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Slots announced, each with whether its attributes are marked.
    pub announce: Vec<(u32, bool)>,
    /// Slots withdrawn (treat-as-withdraw included).
    pub withdraw: Vec<u32>,
    /// The UPDATE was an End-of-RIB marker.
    pub end_of_rib: bool,
}

/// Most cached messages before the cache starts over (a run's distinct
/// UPDATEs are a few thousand).
const CACHE_MAX: usize = 200_000;

/// The slot numbers and the decode cache, shared by every host.
pub struct Routes {
    slots: FxHashMap<(Prefix, u32), u32>,
    cache: FxHashMap<Box<[u8]>, Arc<Effect>>,
    codec: Option<CodecConfig>,
    marker: Marker,
    /// Distinct messages decoded.
    pub decoded: u64,
}

impl Routes {
    /// Empty, with `marker` classifying announced attributes.
    pub fn new(marker: Marker) -> Routes {
        Routes {
            slots: FxHashMap::default(),
            cache: FxHashMap::default(),
            codec: None,
            marker,
            decoded: 0,
        }
    }

    /// Distinct paths seen so far.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    fn slot(&mut self, prefix: Prefix, path_id: u32) -> u32 {
        let next = self.slots.len() as u32;
        *self.slots.entry((prefix, path_id)).or_insert(next)
    }

    /// The effect of one whole UPDATE message (header included) decoded
    /// with `codec`; an error is the decoder's NOTIFICATION text.
    pub fn effect(&mut self, msg: &[u8], codec: &CodecConfig) -> Result<Arc<Effect>, String> {
        let cached = self.codec.get_or_insert_with(|| codec.clone()) == codec;
        if cached && let Some(e) = self.cache.get(msg) {
            return Ok(e.clone());
        }
        let effect = Arc::new(self.decode(msg, codec)?);
        if cached {
            if self.cache.len() >= CACHE_MAX {
                self.cache.clear();
            }
            self.cache.insert(msg.into(), effect.clone());
        }
        Ok(effect)
    }

    fn decode(&mut self, msg: &[u8], codec: &CodecConfig) -> Result<Effect, String> {
        self.decoded += 1;
        let u = match decode(msg, codec) {
            Ok(Message::Update(u)) => u,
            Ok(other) => return Err(format!("not an UPDATE: {other:?}")),
            Err(e) => return Err(e.to_string()),
        };
        let mut e = Effect {
            end_of_rib: u.end_of_rib().is_some(),
            ..Effect::default()
        };
        let withdraw_all = !u.treat_as_withdraw.is_empty();
        let marked = (self.marker)(&u.attributes);
        for n in u.announced() {
            let s = self.slot(n.prefix, n.path_id);
            if withdraw_all {
                e.withdraw.push(s);
            } else {
                e.announce.push((s, marked));
            }
        }
        for n in u.withdrawals() {
            e.withdraw.push(self.slot(n.prefix, n.path_id));
        }
        Ok(e)
    }
}

/// A growable bitset over slots.
#[derive(Debug, Default, Clone)]
pub struct Bits(Vec<u64>);

impl Bits {
    /// Sets `i`; true when it was clear.
    pub fn set(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        let was = self.0[w] & (1 << b) != 0;
        self.0[w] |= 1 << b;
        !was
    }

    /// Clears `i`; true when it was set.
    pub fn clear(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        match self.0.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                true
            }
            _ => false,
        }
    }

    /// Clears every bit and frees the storage.
    pub fn reset(&mut self) {
        self.0 = Vec::new();
    }

    /// Bytes of storage.
    pub fn bytes(&self) -> usize {
        self.0.capacity() * 8
    }
}

/// One host's table: paths held and, of those, paths with marked
/// attributes, with their counts.
#[derive(Debug, Default, Clone)]
pub struct Held {
    paths: Bits,
    marked: Bits,
    /// Paths held.
    pub count: u32,
    /// Of those, with marked attributes.
    pub marked_count: u32,
    /// Announcements received (NLRI), replacements included.
    pub announced: u32,
    /// Withdrawals received (NLRI).
    pub withdrawn: u32,
}

impl Held {
    /// Applies one UPDATE's effect.
    pub fn apply(&mut self, e: &Effect) {
        for &(s, marked) in &e.announce {
            self.count += u32::from(self.paths.set(s));
            if marked {
                self.marked_count += u32::from(self.marked.set(s));
            } else {
                self.marked_count -= u32::from(self.marked.clear(s));
            }
        }
        for &s in &e.withdraw {
            self.count -= u32::from(self.paths.clear(s));
            self.marked_count -= u32::from(self.marked.clear(s));
        }
        self.announced += e.announce.len() as u32;
        self.withdrawn += e.withdraw.len() as u32;
    }

    /// Forgets everything (a new session starts from nothing).
    pub fn reset(&mut self) {
        *self = Held::default();
    }

    /// Heap bytes.
    pub fn bytes(&self) -> usize {
        self.paths.bytes() + self.marked.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steer_lib::bgp::attribute::Origin;
    use steer_lib::bgp::message::encode_announce;
    use steer_lib::bgp::message::encode_withdraw;
    use steer_lib::bgp::nlri::Nlri;

    fn codec() -> CodecConfig {
        CodecConfig {
            four_octet_as: true,
            add_path_receive: [true, true],
            ..CodecConfig::default()
        }
    }

    /// The NLRI of `prefixes` and the codec of the route server's side.
    fn sent(prefixes: &[(&str, u32)]) -> (Vec<Nlri>, CodecConfig) {
        let nlri = prefixes
            .iter()
            .map(|(p, id)| Nlri {
                prefix: p.parse().unwrap(),
                path_id: *id,
            })
            .collect();
        let mut send = codec();
        send.add_path_send = [true, true];
        (nlri, send)
    }

    fn announce(prefixes: &[(&str, u32)], med: u32) -> Vec<u8> {
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            next_hop: Some("10.1.0.101".parse().unwrap()),
            med: Some(med),
            ..PathAttributes::default()
        };
        let (nlri, send) = sent(prefixes);
        let mut out = Vec::new();
        encode_announce(&send, &attrs, &nlri, &mut out).unwrap();
        out
    }

    fn withdraw(prefixes: &[(&str, u32)]) -> Vec<u8> {
        let (nlri, send) = sent(prefixes);
        let mut out = Vec::new();
        encode_withdraw(&send, &nlri, &mut out).unwrap();
        out
    }

    fn routes() -> Routes {
        Routes::new(Arc::new(|a: &PathAttributes| a.med == Some(7)))
    }

    #[test]
    fn paths_count_once_per_prefix_and_path_id_and_replacements_move_the_mark() {
        let mut r = routes();
        let mut h = Held::default();
        let two = announce(&[("100.64.0.0/24", 1), ("100.64.0.0/24", 2)], 0);
        h.apply(&r.effect(&two, &codec()).unwrap());
        h.apply(&r.effect(&two, &codec()).unwrap());
        assert_eq!((h.count, h.marked_count, h.announced), (2, 0, 4));
        let marked = announce(&[("100.64.0.0/24", 2)], 7);
        h.apply(&r.effect(&marked, &codec()).unwrap());
        assert_eq!((h.count, h.marked_count), (2, 1));
        h.apply(
            &r.effect(&withdraw(&[("100.64.0.0/24", 2)]), &codec())
                .unwrap(),
        );
        assert_eq!((h.count, h.marked_count, h.withdrawn), (1, 0, 1));
        h.apply(
            &r.effect(&withdraw(&[("100.64.0.0/24", 9)]), &codec())
                .unwrap(),
        );
        assert_eq!(h.count, 1);
        assert_eq!(r.slot_count(), 3);
    }

    #[test]
    fn equal_messages_are_decoded_once_and_other_codecs_are_not_cached() {
        let mut r = routes();
        let m = announce(&[("100.64.1.0/24", 1)], 7);
        let a = r.effect(&m, &codec()).unwrap();
        let b = r.effect(&m, &codec()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(r.decoded, 1);
        assert_eq!(a.announce, vec![(0, true)]);
        let other = CodecConfig {
            extended_message: true,
            ..codec()
        };
        r.effect(&m, &other).unwrap();
        r.effect(&m, &other).unwrap();
        assert_eq!(r.decoded, 3);
    }

    #[test]
    fn end_of_rib_and_bad_messages() {
        let mut r = routes();
        let mut eor = Vec::new();
        steer_lib::bgp::message::encode_end_of_rib(
            steer_lib::bgp::nlri::Family::IPV4_UNICAST,
            &mut eor,
        );
        assert!(r.effect(&eor, &codec()).unwrap().end_of_rib);
        let mut bad = announce(&[("100.64.1.0/24", 1)], 7);
        bad[0] = 0;
        assert!(r.effect(&bad, &codec()).unwrap_err().contains("marker"));
    }
}
