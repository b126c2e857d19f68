//! Many requests, few round trips. A batch of netlink requests goes out in
//! large sendmsg chunks; only the last request of a chunk asks for an ack,
//! which serves as a barrier. The kernel answers a successful request
//! without NLM_F_ACK with nothing and a failed one with an error carrying
//! its sequence number, so every error maps back to its index in the batch.
//! Dumps (one request, a multi-part answer) live here too.

use super::KernelError;
use super::abi::*;
use super::socket::NlSocket;
use super::wire::{self, Encoder, ErrorMsg, Msg};

/// Upper bound on one sendmsg.
const CHUNK_BYTES: usize = 256 << 10;
/// Receive-buffer bytes to budget per possible error reply (skb truesize).
const REPLY_BUDGET: usize = 2048;
/// How often a dump that the kernel flags as interrupted is restarted.
const DUMP_ATTEMPTS: usize = 5;

/// Requests encoded back to back; sequence numbers are assigned on send.
#[derive(Default)]
pub(crate) struct Batch {
    enc: Encoder,
    starts: Vec<usize>,
}

impl Batch {
    pub fn with_capacity(requests: usize) -> Batch {
        Batch {
            enc: Encoder::with_capacity(requests * 64),
            starts: Vec::with_capacity(requests),
        }
    }

    /// Appends one request; `body` writes its family header and attributes.
    pub fn push(&mut self, ty: u16, flags: u16, body: impl FnOnce(&mut Encoder)) {
        self.starts.push(self.enc.len());
        self.enc.begin(ty, flags | NLM_F_REQUEST, 0);
        body(&mut self.enc);
        self.enc.finish();
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// The encoded requests, for tests that decode what was built.
    #[cfg(test)]
    pub fn bytes(&self) -> &[u8] {
        self.enc.bytes()
    }

    fn end_of(&self, i: usize) -> usize {
        self.starts.get(i + 1).copied().unwrap_or(self.enc.len())
    }
}

/// Sends every request of `batch` and returns each one's fate, by index:
/// `None` done, `Some(error)` refused. Replies other than errors and acks
/// (e.g. the answer to RTM_GETROUTE) go to `on_reply` with their index.
pub(crate) fn execute(
    sock: &mut NlSocket,
    mut batch: Batch,
    mut on_reply: impl FnMut(usize, &Msg),
) -> Result<Vec<Option<ErrorMsg>>, KernelError> {
    let n = batch.len();
    let mut fates: Vec<Option<ErrorMsg>> = vec![None; n];
    if n == 0 {
        return Ok(fates);
    }
    let base = sock.reserve_seqs(n);
    for (i, &at) in batch.starts.iter().enumerate() {
        let seq = base.wrapping_add(i as u32);
        batch.enc.bytes_mut()[at + 8..at + 12].copy_from_slice(&seq.to_ne_bytes());
    }
    let max_bytes = CHUNK_BYTES.min(sock.sndbuf() / 2);
    let max_msgs = (sock.rcvbuf() / REPLY_BUDGET).max(1);
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n
            && end - start < max_msgs
            && batch.end_of(end) - batch.starts[start] <= max_bytes
        {
            end += 1;
        }
        let last = batch.starts[end - 1];
        let flags = wire::u16_at(batch.enc.bytes(), last + 6) | NLM_F_ACK;
        batch.enc.bytes_mut()[last + 6..last + 8].copy_from_slice(&flags.to_ne_bytes());
        let bytes = &batch.enc.bytes()[batch.starts[start]..batch.end_of(end - 1)];
        sock.send(bytes)
            .map_err(|e| KernelError::io("send batch", e))?;
        let chunk = Chunk { base, start, end };
        let overflowed = chunk.collect(sock, &mut fates, &mut on_reply)?;
        if overflowed {
            for fate in &mut fates[start..end] {
                fate.get_or_insert_with(|| ErrorMsg {
                    errno: libc::ENOBUFS,
                    message: Some("reply lost to a receive-buffer overflow; state unknown".into()),
                });
            }
        }
        start = end;
    }
    Ok(fates)
}

struct Chunk {
    base: u32,
    start: usize,
    end: usize,
}

impl Chunk {
    /// Reads replies until the chunk's barrier ack; true when the socket
    /// overflowed and some replies of the chunk may be lost.
    fn collect(
        &self,
        sock: &mut NlSocket,
        fates: &mut [Option<ErrorMsg>],
        on_reply: &mut impl FnMut(usize, &Msg),
    ) -> Result<bool, KernelError> {
        loop {
            let data = match sock.recv(true) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => break,
                Err(e) => return Err(KernelError::io("receive replies", e)),
            };
            if self.take(data, fates, on_reply)? {
                return Ok(false);
            }
        }
        // Processing is synchronous in sendmsg, so whatever survived the
        // overflow is queued by now.
        loop {
            match sock.recv(false) {
                Ok(Some(data)) => {
                    self.take(data, fates, on_reply)?;
                }
                Ok(None) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(KernelError::io("drain replies", e)),
            }
        }
    }

    /// Records one datagram's replies; true once the barrier is seen.
    fn take(
        &self,
        data: &[u8],
        fates: &mut [Option<ErrorMsg>],
        on_reply: &mut impl FnMut(usize, &Msg),
    ) -> Result<bool, KernelError> {
        let mut barrier = false;
        for msg in wire::messages(data) {
            let msg = msg?;
            let i = msg.seq.wrapping_sub(self.base) as usize;
            if i < self.start || i >= self.end {
                continue;
            }
            match msg.ty {
                NLMSG_ERROR => {
                    let e = wire::parse_error(&msg)?;
                    if e.errno != 0 {
                        fates[i] = Some(e);
                    }
                    barrier |= i == self.end - 1;
                }
                NLMSG_DONE | NLMSG_NOOP | NLMSG_OVERRUN => {}
                _ => on_reply(i, &msg),
            }
        }
        Ok(barrier)
    }
}

/// Runs one dump request and parses every answer with `parse`, restarting
/// when the kernel flags the dump as interrupted by concurrent changes.
/// `header` is the family header (rtmsg, ...) with the filter fields set;
/// `attrs` adds filter attributes.
pub(crate) fn dump<T>(
    sock: &mut NlSocket,
    what: &'static str,
    (ty, header): (u16, &[u8]),
    attrs: impl Fn(&mut Encoder),
    mut parse: impl FnMut(&Msg) -> Option<T>,
) -> Result<Vec<T>, KernelError> {
    for _ in 0..DUMP_ATTEMPTS {
        let seq = sock.reserve_seqs(1);
        let mut enc = Encoder::default();
        enc.begin(ty, NLM_F_REQUEST | NLM_F_DUMP, seq);
        enc.header(header);
        attrs(&mut enc);
        enc.finish();
        sock.send(enc.bytes())
            .map_err(|e| KernelError::io("send dump request", e))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        'recv: loop {
            let data = match sock.recv(true) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => return Err(KernelError::io("receive dump", e)),
            };
            for msg in wire::messages(data) {
                let msg = msg?;
                if msg.seq != seq {
                    continue;
                }
                interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
                match msg.ty {
                    NLMSG_DONE => break 'recv,
                    NLMSG_ERROR => {
                        let e = wire::parse_error(&msg)?;
                        if e.errno == 0 {
                            break 'recv;
                        }
                        return Err(KernelError::request(format!("dump {what}"), e));
                    }
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    _ => out.extend(parse(&msg)),
                }
            }
        }
        if !interrupted {
            return Ok(out);
        }
    }
    Err(KernelError::DumpInterrupted(what))
}
