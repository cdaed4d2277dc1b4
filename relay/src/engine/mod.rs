//! The socket engine: labs of real sockets, one per browser.
//!
//! A lab takes commands from a channel, makes the system call each one names
//! on a real non-blocking socket, and emits protocol events into another
//! channel. It knows nothing of WebSocket or JSON: tests drive it through
//! [`spawn_lab`] and read its events directly.
//!
//! Blocking is real but not literal: under tokio every socket is non-blocking,
//! so a call that would block returns EAGAIN or EINPROGRESS from the kernel.
//! The lab reports that as phase `blocked`, waits for epoll to say the socket
//! is ready, and calls again; the second call's answer is phase `done` or
//! `failed`. No thread ever sleeps inside accept().

mod lab;
mod render;
mod sys;
mod wire;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use protocol::{Command, ErrorEvent, Event, EventBody, Limits, Refusal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::capture::{Capture, LabId};
use crate::config::Config;

/// What a lab is told to do.
#[derive(Debug)]
pub enum LabInput {
    Command(Command),
    /// A frame that never became a command; the lab reports it in order.
    Refused(Refusal),
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
        }
    }
}

/// A running lab: send it inputs, read its events. Dropping `inputs` ends
/// it; `task` finishes once every socket of the lab is closed.
pub struct LabHandle {
    pub inputs: mpsc::Sender<LabInput>,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub task: JoinHandle<()>,
}

/// Starts a lab. Its first event is `hello`.
pub fn spawn_lab(settings: LabSettings) -> LabHandle {
    let (inputs, input_rx) = mpsc::channel(64);
    let (event_tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(lab::run(settings, input_rx, EventSink::new(event_tx)));
    LabHandle {
        inputs,
        events,
        task,
    }
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

/// Stamps events with the session's `seq` and `t_us` and sends them on.
/// Only the lab's own task holds it, so the order it stamps is the order the
/// lab saw things happen.
pub(crate) struct EventSink {
    sender: mpsc::UnboundedSender<Event>,
    next_seq: u64,
    started: Instant,
}

impl EventSink {
    fn new(sender: mpsc::UnboundedSender<Event>) -> EventSink {
        EventSink {
            sender,
            next_seq: 1,
            started: Instant::now(),
        }
    }

    fn emit(&mut self, body: EventBody) {
        let event = Event {
            seq: self.next_seq,
            t_us: self.started.elapsed().as_micros() as u64,
            body,
        };
        self.next_seq += 1;
        // The session may have gone; the lab then ends at its next input.
        let _ = self.sender.send(event);
    }
}

/// The lab ports in use across the relay, so that a `bind` without an
/// address gets a port no other lab holds.
#[derive(Debug)]
pub struct PortPool {
    range: RangeInclusive<u16>,
    taken: Mutex<BTreeSet<u16>>,
}

impl PortPool {
    pub fn new(range: RangeInclusive<u16>) -> PortPool {
        PortPool {
            range,
            taken: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.range.contains(&port)
    }

    /// Reserves the lowest free port of the range that is not in `skip`.
    fn reserve(&self, skip: &[u16]) -> Option<u16> {
        let mut taken = self.taken.lock().ok()?;
        let port = self
            .range
            .clone()
            .find(|port| !taken.contains(port) && !skip.contains(port))?;
        taken.insert(port);
        Some(port)
    }

    /// Marks a port as held, for binds that named their port.
    fn hold(&self, port: u16) {
        if let Ok(mut taken) = self.taken.lock() {
            taken.insert(port);
        }
    }

    fn release(&self, port: u16) {
        if let Ok(mut taken) = self.taken.lock() {
            taken.remove(&port);
        }
    }
}
