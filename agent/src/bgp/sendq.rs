//! One connection's send queue: whole BGP messages waiting for the socket,
//! bounded in bytes, with the progress clock of the send-hold timer (RFC
//! 9687). No sockets here: the writer hands [`SendQueue::write_with`] a
//! closure that makes one non-blocking write, and the queue accounts for
//! what went out.
//!
//! The owner (the route server's update groups, the agent) pushes shared
//! encodings, one [`Bytes`] cloned to every member of a group. A receiver
//! that stops reading must neither grow the process nor pin those
//! encodings: the queue refuses a push that would leave more than `limit`
//! bytes unsent, and drops everything it holds at once
//! ([`Push::Overflow`]). A push into an empty queue is always taken, so a
//! single chunk larger than the limit (a full-table dump to a joining
//! member) still goes; anything queued behind it then counts against the
//! limit with it.
//!
//! Send hold (RFC 9687 §3): the timer runs while the queue holds data and
//! the socket takes none of it; every write that makes progress restarts
//! it, and an empty queue stops it. [`SendQueue::stalled_since`] is when it
//! last (re)started.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::warn;

/// Most chunks handed to one vectored write.
const MAX_SLICES: usize = 64;
/// Most bytes offered to one write: more than a socket buffer takes at once.
const MAX_WRITE: usize = 4 << 20;

/// What became of a push.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Push {
    /// Queued; `was_empty` when nothing was waiting before it.
    Queued {
        /// The queue was empty (the writer may be asleep).
        was_empty: bool,
    },
    /// The limit was exceeded: everything queued was dropped and the queue
    /// refuses further pushes until the connection is gone.
    Overflow {
        /// Bytes that would have been unsent.
        unsent: usize,
    },
    /// The connection is closing or gone; nothing was queued.
    Closed,
}

/// What the writer should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing to send: wait for a push.
    Idle,
    /// Data waits: wait until the socket is writable (or send hold expires).
    Write,
    /// Closing and drained: shut the connection down gracefully.
    Drained,
    /// The limit was exceeded; the session must end (Cease/8).
    Overflowed {
        /// Bytes that would have been unsent.
        unsent: usize,
    },
    /// Reset the connection now, after `last_words` if they can go whole.
    Abort {
        /// A NOTIFICATION to try once, without waiting (best effort).
        last_words: Option<Bytes>,
    },
}

/// Queue depth for `steer show peers` and the metrics.
#[derive(Copy, Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct QueueStats {
    /// Bytes not yet taken by the socket.
    pub bytes: u64,
    /// Messages not yet wholly taken by the socket.
    pub messages: u64,
    /// How long the oldest of them has waited (seconds).
    pub oldest_seconds: f64,
    /// How long the peer has taken none of them (seconds): the send-hold
    /// timer's reading.
    pub stalled_seconds: f64,
}

#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    messages: u64,
    queued: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Open,
    Closing,
    Overflowed { unsent: usize },
    Aborting { last_words: Option<Bytes> },
    Done,
}

#[derive(Debug)]
struct Inner {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// Bytes not yet written.
    unsent: usize,
    messages: u64,
    stalled_since: Option<Instant>,
    send_hold: Duration,
    state: State,
    /// Queued data was dropped in the middle of a message: nothing more
    /// may be written on this connection.
    cut: bool,
}

impl Inner {
    fn clear(&mut self) {
        self.cut = self.cut || !self.at_boundary();
        self.chunks.clear();
        self.offset = 0;
        self.unsent = 0;
        self.messages = 0;
        self.stalled_since = None;
    }

    /// True when the bytes written so far end on a message boundary, so a
    /// NOTIFICATION written next is read as a message of its own.
    fn at_boundary(&self) -> bool {
        let Some(front) = self.chunks.front() else {
            return true;
        };
        let b = &front.bytes;
        let mut at = 0;
        while at < self.offset {
            let Some(len) = b.get(at + 16..at + 18) else {
                return false;
            };
            at += usize::from(u16::from_be_bytes([len[0], len[1]])).max(19);
        }
        at == self.offset
    }
}

/// The send queue of one connection, shared by the session driver, its
/// writer and the owner's [`super::peer::Outbound`].
#[derive(Debug)]
pub struct SendQueue {
    inner: Mutex<Inner>,
    limit: usize,
    wake: Notify,
}

impl SendQueue {
    /// An empty queue holding at most `limit` unsent bytes (see the
    /// module's note on a first chunk larger than that), with `send_hold`
    /// as its send-hold time.
    pub fn new(limit: usize, send_hold: Duration) -> SendQueue {
        SendQueue {
            inner: Mutex::new(Inner {
                chunks: VecDeque::new(),
                offset: 0,
                unsent: 0,
                messages: 0,
                stalled_since: None,
                send_hold,
                state: State::Open,
                cut: false,
            }),
            limit,
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The byte limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Queue `bytes` (whole messages, `messages` of them) at `now`.
    pub fn push(&self, bytes: Bytes, messages: u64, now: Instant) -> Push {
        if bytes.is_empty() {
            return Push::Queued { was_empty: false };
        }
        let mut q = self.lock();
        if q.state != State::Open {
            return Push::Closed;
        }
        let was_empty = q.chunks.is_empty();
        let unsent = q.unsent + bytes.len();
        if was_empty {
            q.stalled_since = Some(now);
            if bytes.len() > self.limit {
                warn!(
                    "a chunk of {} bytes exceeds the send queue limit ({} bytes): anything queued while it goes out ends the session; raise send_queue_limit above the size of a full-table dump",
                    bytes.len(),
                    self.limit
                );
            }
        } else if unsent > self.limit {
            q.clear();
            q.state = State::Overflowed { unsent };
            drop(q);
            self.wake.notify_one();
            return Push::Overflow { unsent };
        }
        q.unsent = unsent;
        q.messages += messages;
        q.chunks.push_back(Chunk {
            bytes,
            messages,
            queued: now,
        });
        drop(q);
        if was_empty {
            self.wake.notify_one();
        }
        Push::Queued { was_empty }
    }

    /// Offer the unsent bytes to `write` (one non-blocking write of up to
    /// 64 chunks) and account for what it took. `Ok(0)` when nothing was
    /// queued. A write that takes bytes restarts the send-hold clock.
    pub fn write_with(
        &self,
        now: Instant,
        write: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut q = self.lock();
        if q.chunks.is_empty() || !matches!(q.state, State::Open | State::Closing) {
            return Ok(0);
        }
        let mut slices = Vec::with_capacity(MAX_SLICES.min(q.chunks.len()));
        let mut offered = 0;
        for (i, c) in q.chunks.iter().enumerate().take(MAX_SLICES) {
            let b = if i == 0 {
                &c.bytes[q.offset..]
            } else {
                &c.bytes[..]
            };
            if i > 0 && offered + b.len() > MAX_WRITE {
                break;
            }
            offered += b.len();
            slices.push(IoSlice::new(b));
        }
        let n = write(&slices)?;
        drop(slices);
        if n > 0 {
            Self::advance(&mut q, n, now);
        }
        Ok(n)
    }

    fn advance(q: &mut Inner, mut n: usize, now: Instant) {
        q.unsent -= n;
        while n > 0 {
            let Some(front) = q.chunks.front() else { break };
            let left = front.bytes.len() - q.offset;
            if n < left {
                q.offset += n;
                break;
            }
            n -= left;
            q.messages -= front.messages;
            q.chunks.pop_front();
            q.offset = 0;
        }
        q.stalled_since = (!q.chunks.is_empty()).then_some(now);
    }

    /// What the writer should do now.
    pub fn next(&self) -> Next {
        let q = self.lock();
        match &q.state {
            State::Overflowed { unsent } => Next::Overflowed { unsent: *unsent },
            State::Aborting { last_words } => Next::Abort {
                last_words: last_words.clone(),
            },
            State::Done => Next::Abort { last_words: None },
            State::Closing if q.chunks.is_empty() => Next::Drained,
            _ if q.chunks.is_empty() => Next::Idle,
            _ => Next::Write,
        }
    }

    /// Resolves after a push into an empty queue, or a change of state.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Set the send-hold time (once the hold time is negotiated).
    pub fn set_send_hold(&self, d: Duration) {
        self.lock().send_hold = d;
    }

    /// The send-hold time.
    pub fn send_hold(&self) -> Duration {
        self.lock().send_hold
    }

    /// When the send-hold timer last started: data waiting and none taken
    /// since. `None` while the queue is empty.
    pub fn stalled_since(&self) -> Option<Instant> {
        self.lock().stalled_since
    }

    /// The peer took data the socket had buffered (its acknowledgements
    /// advanced) although the socket took none from the queue: restart the
    /// send-hold clock, if it runs.
    pub fn progressed(&self, now: Instant) {
        let mut q = self.lock();
        if q.stalled_since.is_some() {
            q.stalled_since = Some(now);
        }
    }

    /// When the send-hold timer expires, if it runs.
    pub fn send_hold_deadline(&self) -> Option<Instant> {
        let q = self.lock();
        q.stalled_since.map(|t| t + q.send_hold)
    }

    /// Refuse further pushes; the writer drains what is queued, then shuts
    /// the connection down (an overflowed queue has nothing left to drain:
    /// its connection is reset).
    pub fn close(&self) {
        let mut q = self.lock();
        match q.state {
            State::Open => q.state = State::Closing,
            State::Overflowed { .. } => q.state = State::Aborting { last_words: None },
            _ => {}
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Drop everything and have the writer reset the connection, trying
    /// `last_words` (a NOTIFICATION) first when it can be read as a message
    /// of its own: only at a message boundary, and only if the socket
    /// takes it at once.
    pub fn abort(&self, last_words: Option<Bytes>) {
        let mut q = self.lock();
        if matches!(q.state, State::Aborting { .. } | State::Done) {
            return;
        }
        q.clear();
        let last_words = last_words.filter(|_| !q.cut);
        q.state = State::Aborting { last_words };
        drop(q);
        self.wake.notify_one();
    }

    /// The writer has finished with the connection: refuse everything and
    /// release what is queued.
    pub fn finish(&self) {
        let mut q = self.lock();
        q.clear();
        q.state = State::Done;
    }

    /// Depth and age of what waits.
    pub fn stats(&self, now: Instant) -> QueueStats {
        let q = self.lock();
        QueueStats {
            bytes: q.unsent as u64,
            messages: q.messages,
            oldest_seconds: q.chunks.front().map_or(0.0, |c| {
                now.saturating_duration_since(c.queued).as_secs_f64()
            }),
            stalled_seconds: q
                .stalled_since
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: usize) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.push(2);
        m.resize(len, 0);
        m
    }

    fn chunk(lens: &[usize]) -> Bytes {
        Bytes::from(lens.iter().flat_map(|&l| msg(l)).collect::<Vec<u8>>())
    }

    fn take(q: &SendQueue, n: usize, now: Instant) -> Vec<u8> {
        let mut got = Vec::new();
        q.write_with(now, |s| {
            for sl in s {
                got.extend_from_slice(sl);
            }
            Ok(n.min(got.len()))
        })
        .unwrap();
        got.truncate(n);
        got
    }

    #[test]
    fn bytes_go_out_in_order_and_the_depth_follows() {
        let t0 = Instant::now();
        let q = SendQueue::new(1000, Duration::from_secs(20));
        let a = chunk(&[19, 23]);
        let b = chunk(&[30]);
        assert_eq!(q.push(a.clone(), 2, t0), Push::Queued { was_empty: true });
        assert_eq!(q.push(b.clone(), 1, t0), Push::Queued { was_empty: false });
        let s = q.stats(t0 + Duration::from_secs(3));
        assert_eq!((s.bytes, s.messages, s.oldest_seconds), (72, 3, 3.0));
        assert_eq!(s.stalled_seconds, 3.0);
        let first = take(&q, 19, t0);
        assert_eq!(first, a[..19]);
        assert_eq!(q.stats(t0).bytes, 53);
        assert_eq!(q.stats(t0).messages, 3, "a chunk counts until wholly sent");
        let rest = take(&q, 1000, t0);
        assert_eq!(rest, [&a[19..], &b[..]].concat());
        assert_eq!(q.stats(t0), QueueStats::default());
        assert_eq!(q.next(), Next::Idle);
    }

    #[test]
    fn the_limit_counts_every_unsent_byte() {
        let t0 = Instant::now();
        let q = SendQueue::new(100, Duration::from_secs(20));
        assert!(matches!(q.push(chunk(&[60]), 1, t0), Push::Queued { .. }));
        assert!(matches!(q.push(chunk(&[40]), 1, t0), Push::Queued { .. }));
        take(&q, 30, t0);
        assert!(matches!(q.push(chunk(&[30]), 1, t0), Push::Queued { .. }));
        assert_eq!(q.push(chunk(&[19]), 1, t0), Push::Overflow { unsent: 119 });
        assert_eq!(
            q.stats(t0),
            QueueStats::default(),
            "everything queued is released at once"
        );
        assert_eq!(q.next(), Next::Overflowed { unsent: 119 });
        assert_eq!(q.push(chunk(&[19]), 1, t0), Push::Closed);
    }

    #[test]
    fn a_first_chunk_over_the_limit_goes_and_anything_behind_it_trips() {
        let t0 = Instant::now();
        let q = SendQueue::new(100, Duration::from_secs(20));
        assert_eq!(
            q.push(chunk(&[500]), 1, t0),
            Push::Queued { was_empty: true }
        );
        take(&q, 450, t0);
        assert!(matches!(q.push(chunk(&[19]), 1, t0), Push::Queued { .. }));
        assert_eq!(q.push(chunk(&[40]), 1, t0), Push::Overflow { unsent: 109 });
    }

    #[test]
    fn a_shared_encoding_is_released_when_the_queue_overflows() {
        let t0 = Instant::now();
        let shared = chunk(&[50]);
        let q = SendQueue::new(60, Duration::from_secs(20));
        q.push(shared.clone(), 1, t0);
        assert!(!shared.is_unique());
        assert!(matches!(
            q.push(shared.clone(), 1, t0),
            Push::Overflow { .. }
        ));
        assert!(shared.is_unique(), "the queue keeps no reference");
    }

    #[test]
    fn the_send_hold_clock_runs_only_while_data_waits_without_progress() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let q = SendQueue::new(1000, Duration::from_secs(20));
        assert_eq!(q.send_hold_deadline(), None);
        q.push(chunk(&[100]), 1, s(1));
        assert_eq!(q.send_hold_deadline(), Some(s(21)));
        q.push(chunk(&[100]), 1, s(5));
        assert_eq!(q.stalled_since(), Some(s(1)), "a push is not progress");
        q.write_with(s(7), |_| Err(io::ErrorKind::WouldBlock.into()))
            .unwrap_err();
        assert_eq!(q.stalled_since(), Some(s(1)));
        take(&q, 10, s(8));
        assert_eq!(q.send_hold_deadline(), Some(s(28)), "progress restarts it");
        q.progressed(s(10));
        assert_eq!(
            q.send_hold_deadline(),
            Some(s(30)),
            "so do acknowledgements"
        );
        take(&q, 190, s(11));
        assert_eq!(q.send_hold_deadline(), None, "an empty queue stops it");
        q.progressed(s(12));
        assert_eq!(q.send_hold_deadline(), None);
    }

    #[test]
    fn last_words_go_only_at_a_message_boundary() {
        let t0 = Instant::now();
        let note = Bytes::from(msg(21));
        let q = SendQueue::new(1000, Duration::from_secs(20));
        q.push(chunk(&[19, 30]), 2, t0);
        take(&q, 19, t0);
        q.abort(Some(note.clone()));
        assert_eq!(
            q.next(),
            Next::Abort {
                last_words: Some(note.clone())
            }
        );
        let q = SendQueue::new(1000, Duration::from_secs(20));
        q.push(chunk(&[19, 30]), 2, t0);
        take(&q, 25, t0);
        q.abort(Some(note));
        assert_eq!(q.next(), Next::Abort { last_words: None });
        assert_eq!(q.stats(t0), QueueStats::default());
    }

    #[test]
    fn no_last_words_after_an_overflow_cut_a_message() {
        let t0 = Instant::now();
        let q = SendQueue::new(10, Duration::from_secs(20));
        q.push(chunk(&[19, 30]), 2, t0);
        take(&q, 5, t0);
        assert!(matches!(q.push(chunk(&[19]), 1, t0), Push::Overflow { .. }));
        q.abort(Some(Bytes::from(msg(21))));
        assert_eq!(q.next(), Next::Abort { last_words: None });
    }

    #[test]
    fn closing_drains_then_says_so() {
        let t0 = Instant::now();
        let q = SendQueue::new(1000, Duration::from_secs(20));
        q.push(chunk(&[19]), 1, t0);
        q.close();
        assert_eq!(q.push(chunk(&[19]), 1, t0), Push::Closed);
        assert_eq!(q.next(), Next::Write);
        take(&q, 19, t0);
        assert_eq!(q.next(), Next::Drained);
    }

    #[test]
    fn one_write_offers_at_most_sixty_four_chunks() {
        let t0 = Instant::now();
        let q = SendQueue::new(1 << 20, Duration::from_secs(20));
        for _ in 0..100 {
            q.push(chunk(&[19]), 1, t0);
        }
        let mut offered = 0;
        q.write_with(t0, |s| {
            offered = s.len();
            Ok(0)
        })
        .unwrap();
        assert_eq!(offered, 64);
    }
}
