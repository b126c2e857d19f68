//! The writing side of one session connection: a task that moves the
//! [`SendQueue`] into the socket with non-blocking vectored writes, runs
//! the send-hold timer (RFC 9687), and resets the connection when the
//! timer expires or the queue overflows.
//!
//! Progress is what the peer takes: a write the socket accepts, or, while
//! the socket's buffer is full, acknowledgements advancing (TCP_INFO's
//! bytes acked). A full socket buffer drains slowly before the kernel
//! reports it writable again, so without the second measure a peer that
//! reads slowly would look stuck.
//!
//! A stuck peer is dropped here, not by the session driver: the writer
//! tries the NOTIFICATION once without waiting (Send Hold Timer Expired,
//! or Cease/8 "Out of Resources"), only when the bytes written so far end
//! on a message boundary, then closes with SO_LINGER 0 so the kernel sends
//! a RST and frees the socket's buffers at once instead of holding them
//! for a FIN that can never be sent. It then tells the driver, whose FSM
//! ends the session as an aborted one.

use super::error::Notification;
use super::iana::{CeaseSubcode, NotificationError};
use super::sendq::{Next, QueueStats, SendQueue};
use super::sockopt;
use bytes::Bytes;
use socket2::SockRef;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Why the writer stopped before the session asked it to.
#[derive(Debug)]
pub enum WriterEnd {
    /// A write failed.
    Failed(io::Error),
    /// Nothing was taken for the send-hold time; the connection was reset.
    SendHoldExpired {
        /// How long nothing was taken.
        stalled: Duration,
        /// What was waiting.
        queued: QueueStats,
    },
    /// The queue exceeded its limit; the connection was reset.
    Overflow {
        /// Bytes that would have been unsent.
        unsent: usize,
        /// The limit.
        limit: usize,
    },
}

/// Start the writer of `stream`, draining `queue`; `ended` hears why it
/// stopped on its own.
pub fn spawn(
    stream: Arc<TcpStream>,
    queue: Arc<SendQueue>,
    ended: oneshot::Sender<WriterEnd>,
) -> JoinHandle<()> {
    tokio::spawn(run(stream, queue, ended))
}

/// A NOTIFICATION with no data, as 21 octets (the same on every session).
fn last_words(error: NotificationError) -> Bytes {
    let n = Notification::from(error);
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&21u16.to_be_bytes());
    m.extend_from_slice(&[3, n.code, n.subcode]);
    Bytes::from(m)
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

async fn run(stream: Arc<TcpStream>, queue: Arc<SendQueue>, ended: oneshot::Sender<WriterEnd>) {
    let mut ended = Some(ended);
    let mut acked_at_stall = None;
    let mut report = |e: WriterEnd| {
        if let Some(tx) = ended.take() {
            let _ = tx.send(e);
        }
    };
    loop {
        match queue.next() {
            Next::Idle => queue.changed().await,
            Next::Write => {
                let deadline = queue.send_hold_deadline();
                tokio::select! {
                    r = stream.writable() => {
                        if let Err(e) = r {
                            queue.finish();
                            report(WriterEnd::Failed(e));
                            return;
                        }
                    }
                    () = sleep_until(deadline) => {
                        let now = std::time::Instant::now();
                        let acked = sockopt::bytes_acked(&*stream).ok();
                        if acked > acked_at_stall {
                            acked_at_stall = acked;
                            queue.progressed(now);
                        } else if let Some(since) = queue
                            .stalled_since()
                            .filter(|&t| t + queue.send_hold() <= now)
                        {
                            let queued = queue.stats(now);
                            queue.abort(Some(last_words(NotificationError::SendHoldTimerExpired)));
                            report(WriterEnd::SendHoldExpired {
                                stalled: now - since,
                                queued,
                            });
                        }
                        continue;
                    }
                    () = queue.changed() => continue,
                }
                let r =
                    queue.write_with(std::time::Instant::now(), |s| stream.try_write_vectored(s));
                match r {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        acked_at_stall = sockopt::bytes_acked(&*stream).ok();
                    }
                    Err(e) => {
                        queue.finish();
                        report(WriterEnd::Failed(e));
                        return;
                    }
                }
            }
            Next::Overflowed { unsent } => {
                queue.abort(Some(last_words(CeaseSubcode::OutOfResources.into())));
                report(WriterEnd::Overflow {
                    unsent,
                    limit: queue.limit(),
                });
            }
            Next::Drained => {
                queue.finish();
                let _ = SockRef::from(&*stream).shutdown(std::net::Shutdown::Write);
                return;
            }
            Next::Abort { last_words } => {
                queue.finish();
                if let Some(b) = last_words {
                    let _ = stream.try_write(&b);
                }
                let _ = SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_words_are_a_whole_notification() {
        let b = last_words(NotificationError::SendHoldTimerExpired);
        assert_eq!(b.len(), 21);
        assert_eq!(&b[16..], &[0, 21, 3, 8, 0]);
        let b = last_words(CeaseSubcode::OutOfResources.into());
        assert_eq!(&b[18..], &[3, 6, 8]);
    }
}
