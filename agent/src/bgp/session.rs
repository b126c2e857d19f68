//! The tokio driver of one BGP session: owns the TCP connection, the timers
//! and the [`Fsm`]; turns bytes into FSM inputs and FSM outputs into I/O;
//! hands routes to its owner (the server's RIB or the agent) as
//! [`PeerMsg`]s. Connection collisions (RFC 4271 §6.8) are resolved here by
//! running a second FSM on the colliding connection until one side's BGP
//! identifier decides. Timers get the jitter of RFC 4271 §10. Each
//! connection has a bounded [`SendQueue`] and a writer task
//! ([`super::writer`]) that runs the send-hold timer of RFC 9687.

use super::error::Notification;
use super::fsm::{Fsm, FsmConfig, Input, Output, State, Timer};
use super::iana::{CeaseSubcode, ErrorCode, MessageType};
use super::message::{CodecConfig, Message, decode, frame_len};
use super::negotiate::Negotiated;
use super::peer::{
    Backlog, Established, Outbound, PeerId, PeerMsg, SessionCommand, SessionEvent, event_paths,
};
use super::routes::{IngestContext, RouteBatch, ingest};
use super::sendq::SendQueue;
use super::sockopt;
use super::status::PeerStatus;
use super::writer::{self, WriterEnd};
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

/// How to run one session.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    /// Identity for events.
    pub id: PeerId,
    /// Name for logs and `steer show`.
    pub name: String,
    /// The FSM's configuration.
    pub fsm: FsmConfig,
    /// Where to connect (peer address and port).
    pub remote: SocketAddr,
    /// Source address for outgoing connections.
    pub bind: Option<IpAddr>,
    /// Send-hold time and send-queue limit.
    pub send: SendLimits,
    /// TCP-MD5 and GTSM.
    pub security: Security,
    /// The owner's backlog of unapplied paths: reading pauses while it is
    /// over its limit (none: read freely).
    pub backlog: Option<Arc<Backlog>>,
}

/// How a session's connections are protected. Outgoing connections get
/// both before they connect; for incoming ones the listener holds the
/// MD5 keys (the owner installs them), and GTSM is set once accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// TCP-MD5 key (RFC 2385).
    pub password: Option<String>,
    /// GTSM (RFC 5082): TTL 255 out, only TTL 255 in.
    pub ttl_security: bool,
}

/// How long a peer may take none of our data, and how much may wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    /// The send-hold time (RFC 9687); `None`: the RFC's default, the
    /// larger of 8 minutes and twice the negotiated hold time.
    pub send_hold_time: Option<Duration>,
    /// Unsent bytes the send queue may hold.
    pub queue_limit: usize,
}

/// RFC 9687 §3: the suggested SendHoldTime.
const SEND_HOLD_MIN: Duration = Duration::from_secs(480);

impl SendLimits {
    /// The send-hold time for a session that negotiated `hold_time`
    /// seconds (`None` before the OPENs are exchanged).
    pub fn send_hold(&self, hold_time: Option<u16>) -> Duration {
        self.send_hold_time.unwrap_or_else(|| {
            let twice = Duration::from_secs(2 * u64::from(hold_time.unwrap_or(0)));
            twice.max(SEND_HOLD_MIN)
        })
    }
}

/// The owner's handle on a running session.
#[derive(Debug)]
pub struct SessionHandle {
    /// Identity.
    pub id: PeerId,
    /// Commands.
    pub cmd: mpsc::UnboundedSender<SessionCommand>,
    /// Live status.
    pub status: Arc<PeerStatus>,
    /// The task.
    pub task: JoinHandle<()>,
}

/// Start a session task reporting into `status`. With `incoming`, the
/// session begins on that accepted connection (dynamic neighbours);
/// otherwise it starts per its configuration (connecting, or waiting when
/// passive).
pub fn spawn(
    spec: SessionSpec,
    events: mpsc::UnboundedSender<PeerMsg>,
    incoming: Option<TcpStream>,
    status: Arc<PeerStatus>,
) -> SessionHandle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let span = tracing::info_span!("peer", name = %spec.name, addr = %spec.remote.ip());
    let id = spec.id;
    let driver = Driver::new(spec, events, cmd_rx, status.clone());
    let task = tokio::spawn(driver.run(incoming).instrument(span));
    SessionHandle {
        id,
        cmd: cmd_tx,
        status,
        task,
    }
}

struct Conn {
    stream: Arc<TcpStream>,
    buf: BytesMut,
    room: ReadRoom,
    queue: Arc<SendQueue>,
    ended: oneshot::Receiver<WriterEnd>,
    writer: Option<JoinHandle<()>>,
    codec: CodecConfig,
    local: SocketAddr,
    remote: SocketAddr,
    outgoing: bool,
}

impl Conn {
    fn new(stream: TcpStream, outgoing: bool, spec: &SessionSpec) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        if spec.security.ttl_security {
            sockopt::set_gtsm(&stream)?;
        }
        let limits = &spec.send;
        let local = stream.local_addr()?;
        let remote = stream.peer_addr()?;
        let stream = Arc::new(stream);
        let queue = Arc::new(SendQueue::new(limits.queue_limit, limits.send_hold(None)));
        let (ended_tx, ended) = oneshot::channel();
        let writer = writer::spawn(stream.clone(), queue.clone(), ended_tx);
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
            room: ReadRoom::default(),
            queue,
            ended,
            writer: Some(writer),
            codec: CodecConfig::default(),
            local,
            remote,
            outgoing,
        })
    }

    fn push(&self, bytes: Bytes) {
        self.queue.push(bytes, 1, std::time::Instant::now());
    }
}

impl Drop for Conn {
    /// The writer drains what is queued and closes the connection.
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// One FSM and its connection and timers.
struct Slot {
    fsm: Fsm,
    conn: Option<Conn>,
    timers: [Option<Instant>; 4],
}

fn timer_index(t: Timer) -> usize {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
        Timer::IdleHold => 3,
    }
}

const TIMERS: [Timer; 4] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::IdleHold,
];

impl Slot {
    fn new(cfg: FsmConfig) -> Slot {
        Slot {
            fsm: Fsm::new(cfg),
            conn: None,
            timers: [None; 4],
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Which {
    Primary,
    Collision,
}

struct Driver {
    spec: SessionSpec,
    events: mpsc::UnboundedSender<PeerMsg>,
    cmds: mpsc::UnboundedReceiver<SessionCommand>,
    status: Arc<PeerStatus>,
    primary: Slot,
    collision: Option<Slot>,
    connecting: Option<Connecting>,
    epoch: u64,
    established: Option<(Negotiated, SocketAddr)>,
    refuse_until: Option<Instant>,
    held: bool,
    stopping: bool,
    closing: Vec<JoinHandle<()>>,
    pending: Vec<RouteBatch>,
    rng: u64,
}

/// Something happened on a connection.
enum ConnEvent {
    /// Bytes arrived (count), end of stream (0) or a read error.
    Read(io::Result<usize>),
    /// The writer stopped on its own.
    Writer(WriterEnd),
}

/// Least room a read is given.
const READ_ROOM_MIN: usize = 1024;
/// Most room a read is given.
const READ_ROOM_MAX: usize = 64 * 1024;

/// How much room the next read of a connection gets: little at first
/// (most sessions are hosts, which send a few hundred bytes after their
/// OPEN, and thousands of them must stay small), twice as much each time
/// a read fills what it was given (an appliance sending its table), up to
/// [`READ_ROOM_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReadRoom(usize);

impl Default for ReadRoom {
    fn default() -> ReadRoom {
        ReadRoom(READ_ROOM_MIN)
    }
}

impl ReadRoom {
    /// Makes room in `buf` for the next read; returns the room offered.
    fn prepare(&self, buf: &mut BytesMut) -> usize {
        if buf.capacity() - buf.len() < self.0 / 2 {
            buf.reserve(self.0);
        }
        buf.capacity() - buf.len()
    }

    /// A read took `got` bytes of the `offered` room.
    fn took(&mut self, got: usize, offered: usize) {
        if got >= offered {
            self.0 = (self.0 * 2).min(READ_ROOM_MAX);
        }
    }
}

async fn read_some(
    stream: &TcpStream,
    buf: &mut BytesMut,
    room: &mut ReadRoom,
) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        let offered = room.prepare(buf);
        match stream.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(n) => {
                room.took(n, offered);
                return Ok(n);
            }
            r => return r,
        }
    }
}

async fn conn_event(conn: Option<&mut Option<Conn>>) -> ConnEvent {
    let Some(Some(c)) = conn else {
        return std::future::pending().await;
    };
    let writer_ended = async {
        match (&mut c.ended).await {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        r = read_some(&c.stream, &mut c.buf, &mut c.room) => ConnEvent::Read(r),
        e = writer_ended => ConnEvent::Writer(e),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn connected(c: &mut Option<Connecting>) -> io::Result<TcpStream> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn new(
        spec: SessionSpec,
        events: mpsc::UnboundedSender<PeerMsg>,
        cmds: mpsc::UnboundedReceiver<SessionCommand>,
        status: Arc<PeerStatus>,
    ) -> Driver {
        let seed = u64::from(spec.id).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
        Driver {
            primary: Slot::new(spec.fsm.clone()),
            spec,
            events,
            cmds,
            status,
            collision: None,
            connecting: None,
            epoch: 0,
            established: None,
            refuse_until: None,
            held: false,
            stopping: false,
            closing: Vec::new(),
            pending: Vec::new(),
            rng: seed | 1,
        }
    }

    /// RFC 4271 §10: timers other than hold/keepalive's first arming are
    /// jittered by a random factor between 0.75 and 1.0.
    fn jitter(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let f = 0.75 + (self.rng % 1000) as f64 / 4000.0;
        d.mul_f64(f)
    }

    async fn run(mut self, incoming: Option<TcpStream>) {
        match incoming {
            Some(s) => self.accept(s),
            None => {
                let outs = self.primary.fsm.process(Input::Start);
                self.apply(Which::Primary, outs);
            }
        }
        loop {
            if self.finished() {
                break;
            }
            let deadline = [
                self.primary.next_deadline(),
                self.collision.as_ref().and_then(Slot::next_deadline),
            ]
            .into_iter()
            .flatten()
            .min();
            let collision_conn = self.collision.as_mut().map(|s| &mut s.conn);
            let backlog = self.spec.backlog.clone();
            let paused = backlog.as_ref().is_some_and(|b| b.over());
            tokio::select! {
                cmd = self.cmds.recv() => {
                    match cmd {
                        Some(c) => self.command(c),
                        None => self.command(SessionCommand::Stop(CeaseSubcode::PeerDeconfigured.into())),
                    }
                }
                r = connected(&mut self.connecting) => {
                    self.connecting = None;
                    self.on_connect(r);
                }
                ev = conn_event(Some(&mut self.primary.conn)), if !paused => {
                    self.on_conn_event(Which::Primary, ev)
                }
                () = async { if let Some(b) = &backlog { b.wait().await } }, if paused => {}
                ev = conn_event(collision_conn) => self.on_conn_event(Which::Collision, ev),
                () = sleep_until(deadline) => self.fire_timers(),
            }
            self.flush_routes();
        }
        self.flush_routes();
        self.primary.conn = None;
        self.collision = None;
        for w in self.closing.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
        }
        debug!("session task ended");
    }

    fn finished(&self) -> bool {
        if self.stopping {
            return self.primary.conn.is_none() && self.connecting.is_none();
        }
        self.primary.fsm.state() == State::Idle
            && !self.primary.fsm.config().restart
            && !self.held
            && self.primary.timers.iter().all(Option::is_none)
            && self.primary.conn.is_none()
    }

    fn command(&mut self, c: SessionCommand) {
        match c {
            SessionCommand::Stop(n) => {
                self.stopping = true;
                self.stop_both(n);
            }
            SessionCommand::StopFor(n, d) => {
                self.refuse_until = Some(Instant::now() + d);
                self.collision = None;
                let text = n.to_string();
                self.input(Which::Primary, Input::StopFor(n, d));
                self.status
                    .set_error(format!("sent {text}; peer held down for {}s", d.as_secs()));
            }
            SessionCommand::Incoming(s) => self.accept(s),
            SessionCommand::Hold(n) => {
                if self.held || self.stopping {
                    return;
                }
                self.held = true;
                let text = n.to_string();
                self.stop_both(n);
                self.status
                    .set_error(format!("sent {text}; held down until BFD is Up again"));
            }
            SessionCommand::Release => {
                if self.held && !self.stopping {
                    self.held = false;
                    info!("BFD is Up: starting again");
                    self.input(Which::Primary, Input::Start);
                }
            }
        }
    }

    /// Send `n` on both connections (if any), close them, and go Idle
    /// without a restart of our own.
    fn stop_both(&mut self, n: Notification) {
        self.connecting = None;
        if let Some(mut s) = self.collision.take() {
            let outs = s.fsm.process(Input::Stop(n.clone()));
            self.collision = Some(s);
            self.apply(Which::Collision, outs);
            self.collision = None;
        }
        self.input(Which::Primary, Input::Stop(n));
    }

    fn accept(&mut self, stream: TcpStream) {
        if self.held {
            info!("refusing connection: BFD to this peer is Down");
            return;
        }
        if self.stopping || self.refuse_until.is_some_and(|t| Instant::now() < t) {
            info!("refusing connection: peer is held down");
            return;
        }
        let conn = match Conn::new(stream, false, &self.spec) {
            Ok(c) => c,
            Err(e) => {
                warn!("accepted connection unusable: {e}");
                return;
            }
        };
        match self.primary.fsm.state() {
            State::Idle | State::Connect | State::Active => {
                self.connecting = None;
                self.replace_conn(Which::Primary, Some(conn));
                self.input(Which::Primary, Input::TcpConnected);
            }
            State::Established if !self.restart_capable() => {
                info!("refusing second connection: session already established (RFC 4271 §6.8)");
                let mut out = Vec::new();
                let n = Notification::from(CeaseSubcode::CollisionResolution);
                if Message::Notification(n)
                    .encode(&conn.codec, &mut out)
                    .is_ok()
                {
                    conn.push(Bytes::from(out));
                }
                self.retire(Some(conn));
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                if self.primary.fsm.state() == State::Established {
                    info!(
                        "new connection while established with graceful restart: the session stays until it sends a valid OPEN (RFC 4724)"
                    );
                } else {
                    info!("connection collision: running the incoming connection until its OPEN");
                }
                let mut slot = Slot::new(self.spec.fsm.clone());
                slot.conn = Some(conn);
                let outs = slot.fsm.process(Input::TcpConnected);
                if let Some(old) = self.collision.replace(slot) {
                    self.retire(old.conn);
                }
                self.apply(Which::Collision, outs);
            }
        }
    }

    /// The established session negotiated graceful restart, so a new
    /// connection may be the peer restarting (RFC 4724 §4.2).
    fn restart_capable(&self) -> bool {
        self.established
            .as_ref()
            .is_some_and(|(n, _)| n.graceful_restart.is_some())
    }

    fn slot(&mut self, w: Which) -> Option<&mut Slot> {
        match w {
            Which::Primary => Some(&mut self.primary),
            Which::Collision => self.collision.as_mut(),
        }
    }

    fn retire(&mut self, conn: Option<Conn>) {
        if let Some(w) = conn.and_then(|mut c| c.writer.take()) {
            self.closing.retain(|h| !h.is_finished());
            self.closing.push(w);
        }
    }

    fn replace_conn(&mut self, w: Which, conn: Option<Conn>) {
        let old = match self.slot(w) {
            Some(s) => std::mem::replace(&mut s.conn, conn),
            None => None,
        };
        self.retire(old);
    }

    fn start_connect(&mut self) {
        let remote = self.spec.remote;
        let bind = self.spec.bind;
        let security = self.spec.security.clone();
        self.connecting = Some(Box::pin(async move {
            let sock = if remote.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(key) = &security.password {
                let ip = remote.ip();
                sockopt::set_md5_key(&sock, ip, sockopt::host_prefix_len(ip), key.as_bytes())?;
            }
            if security.ttl_security {
                sockopt::set_gtsm(&sock)?;
            }
            if let Some(b) = bind {
                sock.bind(SocketAddr::new(b, 0))?;
            }
            match tokio::time::timeout(Duration::from_secs(10), sock.connect(remote)).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            }
        }));
    }

    fn on_connect(&mut self, r: io::Result<TcpStream>) {
        match r.and_then(|s| Conn::new(s, true, &self.spec)) {
            Ok(c) => {
                debug!("connected to {}", c.remote);
                self.replace_conn(Which::Primary, Some(c));
                self.input(Which::Primary, Input::TcpConnected);
            }
            Err(e) => {
                debug!("connect failed: {e}");
                self.status.set_error(format!("connect: {e}"));
                self.input(Which::Primary, Input::TcpFailed(e.to_string()));
            }
        }
    }

    fn on_conn_event(&mut self, w: Which, ev: ConnEvent) {
        match ev {
            ConnEvent::Read(Ok(0)) => {
                self.input(w, Input::TcpFailed("connection closed by peer".into()))
            }
            ConnEvent::Read(Ok(_)) => self.drain_frames(w),
            ConnEvent::Read(Err(e)) => self.input(w, Input::TcpFailed(format!("read failed: {e}"))),
            ConnEvent::Writer(WriterEnd::Failed(e)) => {
                self.input(w, Input::TcpFailed(format!("write failed: {e}")))
            }
            ConnEvent::Writer(WriterEnd::SendHoldExpired { stalled, queued }) => {
                warn!(
                    "send hold timer expired: the peer took none of our data for {:.0}s with {} bytes in {} messages waiting (oldest {:.0}s); connection reset (RFC 9687)",
                    stalled.as_secs_f64(),
                    queued.bytes,
                    queued.messages,
                    queued.oldest_seconds
                );
                self.status
                    .send_hold_expiries
                    .fetch_add(1, Ordering::Relaxed);
                self.input(w, Input::SendHoldTimerExpired);
            }
            ConnEvent::Writer(WriterEnd::Overflow { unsent, limit }) => {
                warn!(
                    "send queue over its limit: {unsent} bytes would be unsent (limit {limit}); its data dropped and the connection reset with Cease/8"
                );
                self.status.queue_overflows.fetch_add(1, Ordering::Relaxed);
                self.input(w, Input::SendQueueOverflow);
            }
        }
    }

    fn drain_frames(&mut self, w: Which) {
        let status = self.status.clone();
        loop {
            let Some(slot) = self.slot(w) else { return };
            let Some(conn) = slot.conn.as_mut() else {
                return;
            };
            let input = match frame_len(&conn.buf, &conn.codec) {
                Ok(Some(n)) if conn.buf.len() >= n => {
                    let msg = conn.buf.split_to(n);
                    status.msgs_in.fetch_add(1, Ordering::Relaxed);
                    if msg[18] == u8::from(MessageType::Update) {
                        status.updates_in.fetch_add(1, Ordering::Relaxed);
                    }
                    match decode(&msg, &conn.codec) {
                        Ok(m) => Input::Message(m),
                        Err(e) => {
                            warn!("{e}");
                            Input::DecodeError(e)
                        }
                    }
                }
                Ok(_) => return,
                Err(e) => {
                    warn!("{e}");
                    Input::DecodeError(e)
                }
            };
            let fatal = matches!(input, Input::DecodeError(_));
            self.input(w, input);
            if fatal {
                return;
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let not_reading = self.spec.backlog.as_ref().is_some_and(|b| b.over());
        for w in [Which::Primary, Which::Collision] {
            for t in TIMERS {
                let due = self
                    .slot(w)
                    .and_then(|s| s.timers[timer_index(t)])
                    .is_some_and(|at| at <= now);
                if due
                    && t == Timer::Hold
                    && w == Which::Primary
                    && not_reading
                    && self.defer_hold(now)
                {
                    continue;
                }
                if due {
                    if let Some(s) = self.slot(w) {
                        s.timers[timer_index(t)] = None;
                    }
                    if t == Timer::IdleHold {
                        self.refuse_until = None;
                    }
                    self.input(w, Input::TimerExpired(t));
                }
            }
        }
    }

    /// The hold timer ran out while this session was not reading its
    /// socket because the route server's backlog is full: the peer's
    /// KEEPALIVEs may be waiting there unread, so the silence is ours, not
    /// the peer's. The timer starts again for one hold time (a peer that
    /// really went silent is found at most one hold time late). Only once
    /// a hold time is negotiated; false otherwise.
    fn defer_hold(&mut self, now: Instant) -> bool {
        let Some(hold) = self.primary.fsm.negotiated().map(|n| n.hold_time) else {
            return false;
        };
        debug!("hold timer ran out while not reading (backlog full): deferred");
        self.primary.timers[timer_index(Timer::Hold)] =
            Some(now + Duration::from_secs(hold.into()));
        true
    }

    fn input(&mut self, w: Which, input: Input) {
        let Some(slot) = self.slot(w) else { return };
        let outs = slot.fsm.process(input);
        match self.collision_loser() {
            // The connection that just got its OPEN loses: it answers with
            // Cease/7 only, never a KEEPALIVE first.
            Some(loser) if loser == w => self.end_loser(loser),
            Some(loser) => {
                self.apply(w, outs);
                self.end_loser(loser);
            }
            None => self.apply(w, outs),
        }
        if w == Which::Primary || self.collision.is_none() {
            self.status.set_state(self.primary.fsm.state());
        }
        if self
            .collision
            .as_ref()
            .is_some_and(|c| c.fsm.state() == State::Idle)
        {
            let s = self.collision.take();
            self.retire(s.and_then(|s| s.conn));
        }
    }

    fn apply(&mut self, w: Which, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Connect => {
                    if w == Which::Primary {
                        self.start_connect();
                    }
                }
                Output::Disconnect | Output::Abort(_) => {
                    if let Output::Abort(n) = &o
                        && let Some(c) = self.slot(w).and_then(|s| s.conn.as_ref())
                    {
                        let mut out = Vec::with_capacity(64);
                        let last = Message::Notification(n.clone())
                            .encode(&c.codec, &mut out)
                            .ok()
                            .map(|()| Bytes::from(out));
                        c.queue.abort(last);
                        warn!("NOTIFICATION {n} (best effort) and connection reset");
                    }
                    if w == Which::Primary {
                        self.connecting = None;
                    }
                    self.replace_conn(w, None);
                    if w == Which::Collision {
                        self.collision = None;
                        return;
                    }
                }
                Output::Send(m) => self.send(w, &m),
                Output::StartTimer(t, d) => {
                    let d = match t {
                        Timer::ConnectRetry | Timer::IdleHold | Timer::Keepalive => self.jitter(d),
                        Timer::Hold => d,
                    };
                    if let Some(s) = self.slot(w) {
                        s.timers[timer_index(t)] = Some(Instant::now() + d);
                    }
                }
                Output::StopTimer(t) => {
                    if let Some(s) = self.slot(w) {
                        s.timers[timer_index(t)] = None;
                    }
                }
                Output::Established(n) => {
                    if w == Which::Collision {
                        self.promote_collision();
                    }
                    self.on_established(*n);
                }
                Output::Update(u) => self.on_update(u),
                Output::RouteRefresh(r) => {
                    self.flush_routes();
                    self.emit(SessionEvent::RouteRefresh(r.family));
                }
                Output::Down {
                    reason,
                    was_established,
                } => {
                    if w == Which::Primary {
                        self.status.set_error(reason.to_string());
                        if was_established {
                            info!("session down: {reason}");
                            self.flush_routes();
                            self.established = None;
                            self.emit(SessionEvent::Down { reason });
                        } else {
                            info!("session setup failed: {reason}");
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, w: Which, m: &Message) {
        let Some(conn) = self.slot(w).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        let mut buf = Vec::with_capacity(64);
        match m.encode(&conn.codec, &mut buf) {
            Ok(()) => {
                conn.push(Bytes::from(buf));
                self.status.sent(1, 0);
                if let Message::Notification(n) = m {
                    if n.code == u8::from(ErrorCode::Cease) {
                        info!("sending NOTIFICATION {n}");
                    } else {
                        warn!("sending NOTIFICATION {n}");
                    }
                }
            }
            Err(e) => warn!("cannot encode {m:?}: {e}"),
        }
    }

    fn on_established(&mut self, n: Negotiated) {
        let Some(conn) = self.primary.conn.as_mut() else {
            return;
        };
        conn.codec = n.codec.clone();
        conn.queue
            .set_send_hold(self.spec.send.send_hold(Some(n.hold_time)));
        self.epoch += 1;
        let (local, remote) = (conn.local, conn.remote);
        info!(
            "established: AS {} id {} hold {}s send hold {}s families {:?}",
            n.peer_asn,
            n.peer_router_id,
            n.hold_time,
            conn.queue.send_hold().as_secs(),
            n.families
        );
        self.status.set_state(State::Established);
        let queue = conn.queue.clone();
        self.status
            .set_established(n.clone(), local, remote, Some(queue.clone()));
        let out = Outbound::queue(queue, self.status.clone());
        self.established = Some((n.clone(), local));
        self.emit(SessionEvent::Established(Box::new(Established {
            negotiated: n,
            local,
            remote,
            out,
        })));
    }

    fn on_update(&mut self, u: super::message::Update) {
        let Some((n, local)) = &self.established else {
            return;
        };
        let ctx = IngestContext {
            negotiated: n,
            local_addr: local.ip(),
            ebgp: n.codec.ebgp,
        };
        let i = ingest(u, &ctx);
        for d in &i.discarded {
            warn!("attribute {} discarded: {}", d.type_code, d.reason);
        }
        if !i.withdrawn_because.is_empty() {
            let n: usize = i.batches.iter().map(|b| b.withdraw.len()).sum();
            for d in &i.withdrawn_because {
                warn!(
                    "treat-as-withdraw for {n} prefixes: attribute {}: {}",
                    d.type_code, d.reason
                );
            }
        }
        for f in &i.ignored_families {
            warn!("ignoring {f} routes: family not negotiated");
        }
        self.pending.extend(i.batches);
        if let Some(f) = i.end_of_rib {
            self.flush_routes();
            self.emit(SessionEvent::EndOfRib(f));
        }
    }

    fn flush_routes(&mut self) {
        if !self.pending.is_empty() {
            let b = std::mem::take(&mut self.pending);
            self.emit(SessionEvent::Routes(b));
        }
    }

    fn emit(&mut self, event: SessionEvent) {
        if let Some(b) = &self.spec.backlog {
            b.add(event_paths(&event));
        }
        let _ = self.events.send(PeerMsg {
            peer: self.spec.id,
            epoch: self.epoch,
            event,
        });
    }

    /// RFC 4271 §6.8: once both connections have the peer's OPEN, the one
    /// opened by the speaker with the higher BGP identifier survives; an
    /// established session wins, unless it negotiated graceful restart and
    /// the new connection's OPEN is valid and carries the same BGP
    /// identifier: then the peer has restarted (RFC 4724 §4.2) and the new
    /// connection replaces it; a primary that has no connection
    /// left gives way to the colliding one. `None` while undecided.
    fn collision_loser(&self) -> Option<Which> {
        let c = self.collision.as_ref()?;
        if c.fsm.state() != State::OpenConfirm {
            return None;
        }
        match self.primary.fsm.state() {
            State::Established => {
                let same_speaker = self
                    .established
                    .as_ref()
                    .zip(c.fsm.negotiated())
                    .is_some_and(|((old, _), new)| old.peer_router_id == new.peer_router_id);
                if self.restart_capable() && same_speaker {
                    Some(Which::Primary)
                } else {
                    Some(Which::Collision)
                }
            }
            State::OpenConfirm => {
                let primary_outgoing = self.primary.conn.as_ref().is_some_and(|c| c.outgoing);
                let remote_id = self
                    .primary
                    .fsm
                    .negotiated()
                    .map(|n| n.peer_router_id)
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                if primary_outgoing && self.spec.fsm.router_id > remote_id {
                    Some(Which::Collision)
                } else {
                    Some(Which::Primary)
                }
            }
            State::OpenSent => None,
            State::Idle | State::Connect | State::Active => Some(Which::Primary),
        }
    }

    /// Close the losing connection with Cease/7; when it was the primary,
    /// the colliding connection takes its place.
    fn end_loser(&mut self, loser: Which) {
        let n = Notification::from(CeaseSubcode::CollisionResolution);
        match loser {
            Which::Collision => {
                info!("collision resolved: keeping the existing connection");
                if let Some(mut s) = self.collision.take() {
                    let outs = s.fsm.process(Input::Stop(n));
                    self.collision = Some(s);
                    self.apply(Which::Collision, outs);
                    let s = self.collision.take();
                    self.retire(s.and_then(|s| s.conn));
                }
            }
            Which::Primary if self.primary.fsm.state() == State::Established => {
                info!("the peer restarted: a new connection sent a valid OPEN (RFC 4724)");
                let outs = self.primary.fsm.process(Input::TcpFailed(
                    "peer restarted: a new connection sent a valid OPEN".into(),
                ));
                self.apply(Which::Primary, outs);
                self.promote_collision();
            }
            Which::Primary => {
                info!("collision resolved: keeping the peer's connection");
                if matches!(
                    self.primary.fsm.state(),
                    State::OpenSent | State::OpenConfirm
                ) {
                    let outs = self.primary.fsm.process(Input::Stop(n));
                    self.apply_quiet(outs);
                }
                self.promote_collision();
            }
        }
    }

    /// Apply a superseded primary's outputs: send and disconnect only.
    fn apply_quiet(&mut self, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Send(m) => self.send(Which::Primary, &m),
                Output::Disconnect => self.replace_conn(Which::Primary, None),
                _ => {}
            }
        }
    }

    fn promote_collision(&mut self) {
        if let Some(c) = self.collision.take() {
            let old = std::mem::replace(&mut self.primary, c);
            self.retire(old.conn);
            self.connecting = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_room_starts_small_and_doubles_only_when_reads_fill_it() {
        let mut buf = BytesMut::new();
        let mut room = ReadRoom::default();
        let offered = room.prepare(&mut buf);
        assert!((READ_ROOM_MIN..2 * READ_ROOM_MIN).contains(&offered));
        room.took(100, offered);
        assert_eq!(room, ReadRoom(READ_ROOM_MIN), "a short read: no growth");
        let mut sizes = Vec::new();
        for _ in 0..10 {
            let offered = room.prepare(&mut buf);
            buf.extend(std::iter::repeat_n(0u8, offered));
            room.took(offered, offered);
            sizes.push(room.0);
            let _ = buf.split();
        }
        assert_eq!(&sizes[..6], &[2048, 4096, 8192, 16384, 32768, 65536]);
        assert!(sizes.iter().all(|&s| s <= READ_ROOM_MAX));
        assert!(room.prepare(&mut buf) >= READ_ROOM_MAX / 2);
    }
}
