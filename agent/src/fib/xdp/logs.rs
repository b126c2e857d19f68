//! Carries the program's aya-log debug events to the `log` facade (and so
//! to `tracing` through its log bridge) on a background thread. Started the
//! first time debug is switched on; the program only emits while the
//! config map's debug flag is set, so the thread idles otherwise.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use aya::Ebpf;

use super::XdpError;

/// The running log bridge; stops when dropped.
pub struct LogPump {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LogPump {
    /// Takes the program's log ring buffer out of `ebpf` and starts reading it.
    pub fn start(ebpf: &mut Ebpf) -> Result<LogPump, XdpError> {
        let mut logger = aya_log::EbpfLogger::init(ebpf)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("steer-xdp-log".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let mut pfd = libc::pollfd {
                        fd: logger.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, 200) };
                    logger.flush();
                }
            })
            .map_err(|cause| XdpError::Io {
                path: "steer-xdp-log thread".into(),
                cause,
            })?;
        Ok(LogPump {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LogPump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
