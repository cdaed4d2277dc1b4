//! The wire view: one packet socket for the whole relay, which reads every
//! TCP segment on the labs' interfaces, with the kernel's timestamp of each
//! frame, and hands each to the lab whose connection or listening address it
//! belongs to ([`RouteKey`]): by the full 4-tuple, never by a port number
//! alone. A task reads it whenever frames arrive; a lab also drains it at
//! the end of each step ([`Capture::drain`]), so that every frame up to that
//! moment is in the lab's hands before it releases its events in kernel time.
//!
//! - `packet`: the socket, its filter and timestamps, and parsing a frame.
//! - `routes`: which lab gets what.

mod packet;
mod routes;

use std::io;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::unix::AsyncFd;

pub use packet::{WireSegment, parse};
pub use routes::{LabId, LabRoute, OBSERVATIONS_QUEUE, Observation, RouteKey};

use crate::engine::clock::{self, Stamp};
use crate::transitions::TransitionTrace;
use packet::{BATCH, Batch, loopback_index, open_packet_socket, receive};
use routes::Routes;

/// The relay's capture: the packet socket, the trace of state changes, and
/// the routes that say which lab gets what.
pub struct Capture {
    routes: Mutex<Routes>,
    /// The packet socket and its buffers. Whoever drains holds the lock until
    /// the socket answers EAGAIN and every frame read is routed, so a drain
    /// that returns has delivered every frame queued before it began.
    reader: Mutex<Reader>,
    /// The kernel's trace of state changes, or why there is none.
    transitions: Result<Mutex<TransitionTrace>, String>,
    /// When the latest finished drain began.
    drained_since: AtomicU64,
    /// The reading task found a drain under way, and frames may have come
    /// after it last read.
    wanted: AtomicBool,
}

struct Reader {
    socket: OwnedFd,
    batch: Batch,
    loopback_index: i32,
}

impl std::fmt::Debug for Capture {
    // The routes hold channels; their count says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports = self
            .routes
            .lock()
            .map(|routes| routes.by_key.len())
            .unwrap_or(0);
        write!(f, "Capture({ports} routes)")
    }
}

impl Capture {
    /// Opens the packet socket and starts reading. `lab_ip` decides the
    /// interfaces: loopback alone, or every interface when lab servers are
    /// reachable from outside. Fails with the reason when the relay lacks
    /// CAP_NET_RAW.
    pub fn start(lab_ip: IpAddr, lab_ports: &RangeInclusive<u16>) -> Result<Arc<Capture>, String> {
        let everywhere = !lab_ip.is_loopback();
        let socket = open_packet_socket(everywhere, lab_ports).map_err(|error| {
            if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                "The relay may not capture packets (it lacks CAP_NET_RAW). Run it as root, or \
                 grant it with `sudo setcap cap_net_raw+ep target/release/relay`."
                    .to_string()
            } else {
                format!("The relay could not open a packet socket: {error}.")
            }
        })?;
        // SAFETY: the capture owns the fd and lives as long as the relay, so
        // the fd stays open, and the same, for the registration's whole life.
        let io = unsafe { AsyncFd::register(PacketFd(socket.as_raw_fd())) }
            .map_err(|error| format!("The relay could not watch its packet socket: {error}."))?;
        let transitions = TransitionTrace::open(lab_ports);
        match &transitions {
            Ok(_) => tracing::info!("tracing the kernel's TCP state changes"),
            Err(reason) => tracing::warn!("state changes are polled only: {reason}"),
        }
        // SAFETY: the capture owns the trace and its fd for the relay's life.
        let transition_io = transitions
            .as_ref()
            .ok()
            .and_then(|trace| unsafe { AsyncFd::register(PacketFd(trace.fd())) }.ok());
        let capture = Arc::new(Capture {
            routes: Mutex::new(Routes::default()),
            reader: Mutex::new(Reader {
                socket,
                batch: Batch::new(),
                loopback_index: loopback_index(),
            }),
            transitions: transitions.map(Mutex::new),
            drained_since: AtomicU64::new(0),
            wanted: AtomicBool::new(false),
        });
        tokio::spawn(read_loop(io, Arc::clone(&capture)));
        if let Some(io) = transition_io {
            tokio::spawn(read_loop(io, Arc::clone(&capture)));
        }
        Ok(capture)
    }

    /// Whether the kernel's state changes are traced, or why they are only polled.
    pub fn transitions(&self) -> Result<(), String> {
        self.transitions.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    /// Reads every frame and every state change the kernel holds for the
    /// relay and routes each, returning once nothing more is queued.
    pub fn drain(&self) {
        self.drain_after(Stamp::MAX);
    }

    /// Drains unless a drain that began after `since` has already finished:
    /// that one read every frame and change queued before it began, which
    /// includes everything a system call that returned at `since` caused.
    /// Many labs, and the reading task, then share one drain instead of each
    /// making its own.
    pub fn drain_after(&self, since: Stamp) {
        if self.drained_since.load(Ordering::Acquire) >= since {
            return;
        }
        let Ok(reader) = self.reader.lock() else {
            return;
        };
        // The drain this one waited for may have done the work.
        if self.drained_since.load(Ordering::Acquire) >= since {
            return;
        }
        self.drain_holding(reader);
    }

    /// What the reading task does when frames arrive: drains, unless a
    /// drain is under way. That one reads until the socket is empty, and
    /// looks at `wanted` once it lets go, so a frame that came too late for
    /// it is still read at once.
    fn drain_unless_busy(&self) {
        self.wanted.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Ok(reader) = self.reader.try_lock() {
            self.drain_holding(reader);
        }
    }

    /// Reads the packet socket until EAGAIN, then the trace, routing
    /// everything; then lets go of the reader, and drains again if the
    /// reading task asked meanwhile.
    fn drain_holding<'a>(&'a self, mut reader: MutexGuard<'a, Reader>) {
        loop {
            self.wanted.store(false, Ordering::SeqCst);
            let began = clock::now();
            self.drain_frames(&mut reader);
            if let Ok(Ok(mut trace)) = self.transitions.as_ref().map(|trace| trace.lock()) {
                trace.drain(|transition| self.route(Observation::Transition(transition)));
            }
            self.drained_since.fetch_max(began, Ordering::Release);
            drop(reader);
            // Pairs with the fence in drain_unless_busy: either the task saw
            // the reader locked after its mark, and the mark is seen here,
            // or it took the reader itself.
            fence(Ordering::SeqCst);
            if !self.wanted.swap(false, Ordering::SeqCst) {
                return;
            }
            reader = match self.reader.try_lock() {
                Ok(reader) => reader,
                // Whoever holds it reads until EAGAIN, after the frame came.
                Err(_) => return,
            };
        }
    }

    fn drain_frames(&self, reader: &mut Reader) {
        let Reader {
            socket,
            batch,
            loopback_index,
        } = reader;
        loop {
            let frames = match receive(socket.as_raw_fd(), batch) {
                Ok(frames) => frames,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    tracing::debug!(%error, "packet socket read failed");
                    return;
                }
            };
            for (index, frame) in frames.iter().enumerate() {
                // On lo every segment is seen twice, leaving and arriving.
                // Keep the leaving copy: the kernel hands it to this socket
                // inside the sending system call, so it is here before that
                // call returns. The arriving copy waits for the receive
                // softirq, which the kernel may defer to ksoftirqd, and would
                // then come after calls that happened later.
                if frame.ifindex == *loopback_index && frame.packet_type == libc::PACKET_HOST {
                    continue;
                }
                if let Some(segment) = parse(batch.bytes(index, frame), frame.at) {
                    self.route(Observation::Segment(segment));
                }
            }
            // A short batch emptied the queue: no read for EAGAIN.
            if frames.len() < BATCH {
                return;
            }
        }
    }
    /// Sends what belongs under `key` to this lab, including what arrived in
    /// the last moments before the lab asked, but nothing from before
    /// `since`, when the lab's socket was made.
    pub fn register(&self, lab: LabId, key: RouteKey, since: Stamp, route: &LabRoute) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.register(lab, key, since, route);
        }
    }

    pub fn unregister(&self, lab: LabId, key: RouteKey) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.unregister(lab, key);
        }
    }

    pub fn unregister_lab(&self, lab: LabId) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.unregister_lab(lab);
        }
    }

    fn route(&self, observation: Observation) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.route(observation);
        }
    }
}

/// The packet socket's fd as the reactor sees it; [`Capture`] owns it.
struct PacketFd(RawFd);

impl AsRawFd for PacketFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Drains the packet socket whenever epoll says frames are waiting.
async fn read_loop(io: AsyncFd<PacketFd>, capture: Arc<Capture>) {
    loop {
        let Ok(mut guard) = io.readable().await else {
            tracing::warn!("the packet socket failed; the wire view stops");
            return;
        };
        // Clear first: a frame that lands during the drain sets readiness
        // again, so none is left waiting for the next one.
        guard.clear_ready();
        capture.drain_unless_busy();
    }
}
