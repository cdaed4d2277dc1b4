//! The socket engine: labs of real sockets, one per browser.
//!
//! A lab takes commands from a channel, makes the system call each one names
//! on a real non-blocking socket, and emits protocol events into another
//! channel. It knows nothing of WebSocket or JSON: tests drive it through
//! [`new_lab`] and read its events directly.
//!
//! Blocking is real but not literal: under tokio every socket is non-blocking,
//! so a call that would block returns EAGAIN or EINPROGRESS from the kernel.
//! The lab reports that as phase `blocked`, waits for epoll to say the socket
//! is ready, and calls again; the second call's answer is phase `done` or
//! `failed`. No thread ever sleeps inside accept().
//!
//! # Layout
//! - `lab`: the loop and the dispatch of commands to ops.
//! - `ops/`: one file per family of calls (lifecycle, bind and listen,
//!   accept, connect, transfer, options).
//! - `wait`: the one way a blocked call waits for readiness and comes back.
//! - `observe`: asking the kernel for the states of open and closed sockets.
//! - `table`: the lab's sockets, open and closed, and which one a captured
//!   segment belongs to.
//! - `timeline`: stamps events with `seq` and `t_us`, merged in kernel time.
//! - `clock`: the one clock of calls, states and captured frames.
//! - `ports`: the lab ports in use across the relay.
//! - `wire`: captured segments as `segment` events.
//! - `ring`: the frames each lab keeps for Wireshark.
//! - `sys`, `render`: raw calls, and calls written as C.

pub mod clock;
mod lab;
mod observe;
mod ops;
mod ports;
pub(crate) mod render;
mod ring;
pub(crate) mod sys;
mod table;
mod timeline;
mod wait;
mod wire;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use protocol::{Command, ErrorEvent, Event, EventBody, Limits, Refusal};
use tokio::sync::mpsc;

pub use ports::PortPool;
pub use ring::{CaptureRing, CapturedFrame, RING_FRAMES, SharedRing};

use crate::capture::{Capture, LabId};
use crate::config::Config;

/// What a lab is told to do.
#[derive(Debug)]
pub enum LabInput {
    Command(Command),
    /// A frame that never became a command; the lab reports it in order.
    Refused(Refusal),
    /// The number of screens following the lab ([`LabSettings::viewers`])
    /// changed; the lab reports it in order, as a `viewers` event its owner
    /// and followers all get.
    Viewers,
    /// What a traced program did (`relay trace`); a traced lab takes no
    /// commands, only these.
    Traced(TracedInput),
}

/// A traced program's report, with what travels beside it.
#[derive(Debug)]
pub struct TracedInput {
    pub report: crate::trace::report::Report,
    /// The lab's copy of the socket a `socket()` or `accept()` made.
    pub socket: Option<std::os::fd::OwnedFd>,
    /// For a report the program is held on (a `Closing`, or a `Returned`
    /// with a socket): told once the lab has handled it.
    pub handled: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What a lab needs to know of the relay.
#[derive(Clone, Debug)]
pub struct LabSettings {
    pub lab_ip: IpAddr,
    pub limits: Limits,
    pub allowed_connect_targets: Vec<SocketAddr>,
    pub ports: Arc<PortPool>,
    /// The relay's packet capture, or why there is none.
    pub capture: Result<Arc<Capture>, String>,
    /// This lab's name in the capture's routes.
    pub lab_id: LabId,
    /// This host's addresses, read at start: connect targets must be one of
    /// them, or allowed with --allow-connect.
    pub host_addresses: Arc<Vec<IpAddr>>,
    /// The lab's unguessable name: 128 random bits, in hex. Whoever has it
    /// may save the lab's capture.
    pub code: String,
    /// The frames the lab's capture saw, for Wireshark.
    pub ring: SharedRing,
    /// Whether the lab is its browser's own or the classroom's shared one.
    pub seat: protocol::Seat,
    /// How many screens follow the lab now.
    pub viewers: Arc<std::sync::atomic::AtomicU32>,
    /// In classroom mode, the URL students open.
    pub student_url: Option<String>,
}

impl LabSettings {
    pub fn from_config(
        config: &Config,
        ports: Arc<PortPool>,
        capture: Result<Arc<Capture>, String>,
    ) -> LabSettings {
        static NEXT_LAB: AtomicU64 = AtomicU64::new(1);
        LabSettings {
            lab_ip: config.lab_ip,
            limits: config.limits(),
            allowed_connect_targets: config.allowed_connect_targets.clone(),
            ports,
            capture,
            lab_id: NEXT_LAB.fetch_add(1, Ordering::Relaxed),
            host_addresses: Arc::clone(&config.host_addresses),
            code: new_code(),
            ring: SharedRing::default(),
            seat: protocol::Seat::Owner,
            viewers: Arc::default(),
            student_url: config
                .classroom
                .as_ref()
                .map(|classroom| classroom.student_url.clone()),
        }
    }
}

/// 128 bits from the kernel's random source, in hex.
pub fn new_code() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the rest of `bytes`.
        let count = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        // getrandom(2) only fails if interrupted, before the pool is ready.
        if count > 0 {
            filled += count as usize;
        }
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A lab: send it inputs, read its events, while its [`LabRun`] is driven.
/// Dropping `inputs` ends it; the run finishes once every socket of the lab
/// is closed.
pub struct LabHandle {
    pub inputs: mpsc::Sender<LabInput>,
    /// Bounded ([`EVENT_QUEUE`]); see `timeline` for what gives way.
    pub events: mpsc::Receiver<Event>,
    /// Set when the browser fell so far behind that the queue overflowed;
    /// the lab then sends nothing more, and the session should close.
    pub overflowed: Arc<AtomicBool>,
}

/// The lab's loop. A session drives it in its own task, next to its
/// WebSocket, rather than spawning it: a command and its events then pass
/// between the two without waking another thread, which is most of a round
/// trip's cost. Tests and the fuzzer may spawn it instead.
pub type LabRun = Pin<Box<dyn Future<Output = ()> + Send>>;

pub use timeline::EVENT_QUEUE;

/// Makes a lab. Its first event, once its run is driven, is `hello`.
pub fn new_lab(settings: LabSettings) -> (LabHandle, LabRun) {
    // A browser sends one command at a time and waits for its answer; 64
    // covers a page that queues a scenario's clicks.
    let (inputs, input_rx) = mpsc::channel(64);
    let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
    let overflowed = Arc::new(AtomicBool::new(false));
    let run = Box::pin(lab::run(
        settings,
        input_rx,
        event_tx,
        Arc::clone(&overflowed),
    ));
    let handle = LabHandle {
        inputs,
        events,
        overflowed,
    };
    (handle, run)
}

/// Makes a lab and runs it in a task of its own, whose end (or panic) the
/// caller can await: for tests and the fuzzer.
pub fn spawn_lab(settings: LabSettings) -> (LabHandle, tokio::task::JoinHandle<()>) {
    let (handle, run) = new_lab(settings);
    (handle, tokio::spawn(run))
}

/// The `error` event for a refusal that happened outside any lab.
pub fn refusal_event(refusal: Refusal) -> Event {
    Event {
        seq: 1,
        t_us: 0,
        body: EventBody::Error(ErrorEvent {
            id: refusal.id,
            code: refusal.code,
            message: refusal.message,
        }),
    }
}
