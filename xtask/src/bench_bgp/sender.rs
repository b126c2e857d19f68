//! The appliances: P eBGP speakers (AS 65001.., 10.1.0.101..) in one
//! namespace. Each brings its session up first and gets a writer thread
//! that sends KEEPALIVEs; [`Appliances::go`] then hands every writer its
//! pre-encoded UPDATEs of one phase at once, and each writes them as fast
//! as the route server's socket takes them. A reader per session discards
//! what the route server sends and reports NOTIFICATIONs or a closed
//! session.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use steer_tests::Netns;

use super::session::{self, HOLD_TIME};
use super::topology::appliance;
use super::wire::{self, MsgReader, NOTIFICATION};

type Failure = Arc<Mutex<Option<String>>>;

/// One phase's UPDATEs for every appliance.
type Phase = Arc<Vec<Vec<u8>>>;

/// The established appliance sessions of one run.
pub struct Appliances {
    stop: Arc<AtomicBool>,
    failure: Failure,
    writers: Vec<Sender<Phase>>,
    sockets: Vec<TcpStream>,
    threads: Vec<JoinHandle<()>>,
    done: Arc<Mutex<Vec<Instant>>>,
}

impl Appliances {
    /// Establishes `count` appliance sessions from `ns` to the route server.
    pub fn connect(ns: &Netns, count: usize, timeout: Duration) -> Result<Appliances> {
        let mut apps = Appliances {
            stop: Arc::new(AtomicBool::new(false)),
            failure: Arc::new(Mutex::new(None)),
            writers: Vec::new(),
            sockets: Vec::new(),
            threads: Vec::new(),
            done: Arc::new(Mutex::new(Vec::new())),
        };
        for i in 0..count {
            let (addr, asn) = appliance(i);
            let open = wire::open(asn, HOLD_TIME, addr, false);
            let e = session::establish(ns, addr, &open, timeout)?;
            session::require(&e.open, false)?;
            apps.sockets.push(e.writer.try_clone()?);
            let (stop, failure) = (apps.stop.clone(), apps.failure.clone());
            let name = format!("appliance {addr} (AS {asn})");
            apps.threads.push(std::thread::spawn(move || {
                discard(e.reader, &name, &stop, &failure)
            }));
            let (tx, rx) = channel::<Phase>();
            apps.writers.push(tx);
            let (stop, failure, done) =
                (apps.stop.clone(), apps.failure.clone(), apps.done.clone());
            let (mut stream, hold) = (e.writer, e.open.hold_time.min(HOLD_TIME));
            apps.threads.push(std::thread::spawn(move || {
                let every = Duration::from_secs(u64::from(hold / 3).max(1));
                let keepalive = wire::keepalive();
                while !stop.load(Ordering::SeqCst) {
                    let bytes = match rx.recv_timeout(every) {
                        Ok(phase) => {
                            let r = stream.write_all(&phase[i]);
                            done.lock().expect("not poisoned").push(Instant::now());
                            r
                        }
                        Err(RecvTimeoutError::Timeout) if hold > 0 => stream.write_all(&keepalive),
                        Err(RecvTimeoutError::Timeout) => Ok(()),
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    if let Err(e) = bytes {
                        if !stop.load(Ordering::SeqCst) {
                            fail(&failure, format!("appliance {addr}: writing: {e}"));
                        }
                        return;
                    }
                }
            }));
        }
        Ok(apps)
    }

    /// Starts a phase: appliance `i` writes `phase[i]`. Returns t0, taken
    /// just before the writers are woken.
    pub fn go(&mut self, phase: &Phase) -> Instant {
        self.done.lock().expect("not poisoned").clear();
        let t0 = Instant::now();
        for w in &self.writers {
            let _ = w.send(phase.clone());
        }
        t0
    }

    /// When the last appliance finished writing, if all have.
    pub fn written(&self) -> Option<Instant> {
        let done = self.done.lock().expect("not poisoned");
        (done.len() == self.sockets.len())
            .then(|| done.iter().copied().max())
            .flatten()
    }

    /// Fails if a session ended or got a NOTIFICATION.
    pub fn check(&self) -> Result<()> {
        if let Some(f) = self.failure.lock().expect("not poisoned").as_ref() {
            bail!("{f}");
        }
        Ok(())
    }
}

impl Drop for Appliances {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.writers.clear();
        for s in &self.sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn fail(failure: &Failure, message: String) {
    failure.lock().expect("not poisoned").get_or_insert(message);
}

fn discard(mut reader: MsgReader, name: &str, stop: &AtomicBool, failure: &Failure) {
    loop {
        let message = match reader.next() {
            Ok(Some((NOTIFICATION, body))) => {
                format!("{name}: route server sent {}", wire::notification(body))
            }
            Ok(Some(_)) => continue,
            Ok(None) => format!("{name}: route server closed the session"),
            Err(e) => format!("{name}: {e}"),
        };
        if !stop.load(Ordering::SeqCst) {
            fail(failure, message);
        }
        return;
    }
}
