//! A raw BGP speaker: a TCP connection opened from inside a namespace that
//! sends whatever bytes a test builds (with [`crate::wire`]) and reads back
//! the other side's messages, NOTIFICATION code/subcode/data included.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use socket2::{Domain, Socket, Type};

use crate::netns::Netns;
use crate::wire::{self, Message, Notification};

/// One TCP connection speaking raw BGP.
pub struct RawPeer {
    stream: TcpStream,
    buf: Vec<u8>,
    seen: Vec<Message>,
    label: String,
}

impl RawPeer {
    /// Connects from `ns` (bound to `local` if given) to `remote` (port 179
    /// unless `remote` says otherwise), retrying until `timeout`, since the
    /// daemon may still be starting.
    pub fn connect(
        ns: &Netns,
        local: Option<IpAddr>,
        remote: SocketAddr,
        timeout: Duration,
    ) -> Result<RawPeer> {
        let start = Instant::now();
        let label = format!("raw peer {} -> {remote}", ns.name());
        loop {
            let attempt = ns.enter(move || connect_once(local, remote))?;
            match attempt {
                Ok(stream) => {
                    return Ok(RawPeer {
                        stream,
                        buf: Vec::new(),
                        seen: Vec::new(),
                        label,
                    });
                }
                Err(_) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.context(format!("{label}: connect"))),
            }
        }
    }

    /// Connects to `remote_ip:179` (see [`RawPeer::connect`]).
    pub fn connect_bgp(ns: &Netns, remote_ip: &str, timeout: Duration) -> Result<RawPeer> {
        let ip: IpAddr = remote_ip.parse().context("bad remote address")?;
        RawPeer::connect(ns, None, SocketAddr::new(ip, 179), timeout)
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .with_context(|| format!("{}: sending {} bytes", self.label, bytes.len()))
    }

    /// Reads the next complete message; `Ok(None)` when the other side closed
    /// the connection (or reset it) first. Fails after `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((msg, used)) = wire::parse(&self.buf)
                .with_context(|| format!("{}: parsing received bytes", self.label))?
            {
                self.buf.drain(..used);
                self.seen.push(msg.clone());
                return Ok(Some(msg));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{}: no complete message within {:.0}s (have {} bytes)",
                    self.label,
                    timeout.as_secs_f64(),
                    self.buf.len()
                );
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(anyhow!(e).context(format!("{}: read", self.label))),
            }
        }
    }

    /// Reads messages until a NOTIFICATION (skipping OPEN, KEEPALIVE and the
    /// rest); fails if the connection closes first or `timeout` passes.
    pub fn expect_notification(&mut self, timeout: Duration) -> Result<Notification> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Some(Message::Notification(n)) => return Ok(n),
                Some(_) => {}
                None => bail!(
                    "{}: connection closed without a NOTIFICATION; received: {:?}",
                    self.label,
                    self.seen
                ),
            }
        }
    }

    /// Sends `open`, then expects the peer's OPEN and KEEPALIVE and answers
    /// with a KEEPALIVE: the session is Established when this returns.
    pub fn establish(&mut self, open: &[u8], timeout: Duration) -> Result<Message> {
        self.send(open)?;
        let deadline = Instant::now() + timeout;
        let mut their_open = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Some(m @ Message::Open { .. }) => their_open = Some(m),
                Some(Message::Keepalive) if their_open.is_some() => break,
                Some(Message::Notification(n)) => bail!("{}: peer refused OPEN: {n}", self.label),
                Some(_) => {}
                None => bail!("{}: closed during OPEN exchange", self.label),
            }
        }
        self.send(&wire::keepalive())?;
        Ok(their_open.expect("OPEN seen before KEEPALIVE"))
    }

    /// Convenience for [`RawPeer::establish`] with [`wire::simple_open`].
    pub fn establish_simple(
        &mut self,
        asn: u32,
        hold: u16,
        router_id: Ipv4Addr,
    ) -> Result<Message> {
        let open = wire::simple_open(asn, hold, router_id);
        self.establish(&open, crate::wait::default_timeout())
    }

    /// The connection itself, for a test that writes in bulk (bytes
    /// received but not yet parsed are dropped).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> &[Message] {
        &self.seen
    }

    /// The connection and the bytes read past the last message returned,
    /// for a test that takes over the socket (a reader thread, or a peer
    /// that stops reading).
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// True once the other side has closed the connection (reads EOF).
    pub fn is_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.recv(left) {
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

fn connect_once(local: Option<IpAddr>, remote: SocketAddr) -> Result<TcpStream> {
    let domain = if remote.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, None)?;
    if let Some(ip) = local {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&remote.into(), Duration::from_secs(3))?;
    socket.set_tcp_nodelay(true)?;
    Ok(socket.into())
}
