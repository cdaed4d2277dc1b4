//! One lab: the loop that takes commands, blocked calls' answers, captured
//! segments and poll ticks, and the dispatch of each command to its op.
//!
//! Each turn of the loop is one step: whatever the step made happen is
//! stamped, the capture is drained up to that moment, the kernel is asked
//! for the states that follow, and the timeline releases it all in kernel
//! time.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use protocol::{
    Call, Command, ErrorCode, ErrorEvent, Event, EventBody, Hello, Op, PROTOCOL_VERSION, Refusal,
};
use tokio::sync::mpsc;

use super::clock::{self, Stamp};
use super::ops::{self, CallContext, refuse};
use super::table::SocketTable;
use super::timeline::Timeline;
use super::wait::{self, Pending};
use super::wire::Wire;
use super::{LabInput, LabSettings};
use crate::capture::{Capture, Observation, RouteKey, WireSegment};

/// How often the lab asks the kernel for its sockets' states while any
/// exist, when only polling can see them. TCP_INFO is one cheap getsockopt
/// per socket, sock_diag one netlink request per closed connection.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// The same, when the kernel's trace reports every change as it happens and
/// every captured segment is followed by a question: the poll is then only a
/// safety net, and a busy relay's many labs need not each wake 40 times a
/// second.
const POLL_INTERVAL_TRACED: Duration = Duration::from_millis(250);
/// How long a traced program's lab holds each event back before it is
/// released: the tracer's report of a call comes over the control socket,
/// a longer road than the capture's, and must not arrive after the
/// segments and states that followed the call.
const PROGRAM_HOLD: Duration = Duration::from_millis(50);

pub(super) struct Lab {
    pub settings: LabSettings,
    pub sockets: SocketTable,
    pub next_sock: protocol::SockId,
    pub pending: Vec<Pending>,
    /// A traced program's fds, by process (`relay trace`).
    pub program_fds: super::ops::ProgramFds,
    timeline: Timeline,
    wire: Wire,
    capture: Option<Arc<Capture>>,
    observations: mpsc::Receiver<Observation>,
    /// When the latest call of this step returned; 0 when it made none.
    latest_call: Stamp,
    /// The fingerprint of the routes last handed to the capture.
    synced_routes: Option<u64>,
    /// The count of followers the lab last reported.
    viewers_reported: u32,
    /// Whether a traced program feeds the lab (`relay trace`).
    pub traced: bool,
}

pub(super) async fn run(
    settings: LabSettings,
    mut inputs: mpsc::Receiver<LabInput>,
    events: mpsc::Sender<Event>,
    overflowed: Arc<AtomicBool>,
) {
    let mut lab = Lab::new(settings, events, overflowed);
    let traced = lab
        .capture
        .as_ref()
        .is_some_and(|capture| capture.transitions().is_ok());
    let mut poll = tokio::time::interval(if traced {
        POLL_INTERVAL_TRACED
    } else {
        POLL_INTERVAL
    });
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let polling = !lab.sockets.open.is_empty() || !lab.sockets.ghosts.is_empty();
        let held_back = lab.held_back_until();
        tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => lab.handle(input).await,
                None => break,
            },
            answer = wait::next_answer(&mut lab.pending) => lab.answered(answer),
            Some(observation) = lab.observations.recv() => lab.observed(observation),
            _ = poll.tick(), if polling => {}
            _ = tokio::time::sleep_until(held_back.unwrap_or_else(tokio::time::Instant::now)),
                if held_back.is_some() => {}
        }
        lab.settle();
    }
    lab.tear_down().await;
}

impl Lab {
    fn new(settings: LabSettings, events: mpsc::Sender<Event>, overflowed: Arc<AtomicBool>) -> Lab {
        let capture = settings.capture.clone().ok();
        let (wire, observations) = Wire::new(capture.clone(), settings.lab_id);
        let started = clock::now();
        let mut lab = Lab {
            timeline: Timeline::new(events, overflowed, started),
            wire,
            capture,
            observations,
            latest_call: 0,
            synced_routes: None,
            viewers_reported: 0,
            traced: false,
            sockets: SocketTable::default(),
            next_sock: 1,
            pending: Vec::new(),
            program_fds: Default::default(),
            settings,
        };
        lab.hello(started);
        lab.timeline.release();
        lab
    }

    fn hello(&mut self, at: Stamp) {
        let states = match &self.settings.capture {
            Ok(capture) => capture.transitions(),
            Err(_) => {
                Err("tracing state changes needs the same privilege as the wire view".to_string())
            }
        };
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            relay: format!("socket-flow relay {}", env!("CARGO_PKG_VERSION")),
            default_addr: self.settings.lab_ip.to_string(),
            limits: self.settings.limits.clone(),
            capture: self.settings.capture.is_ok(),
            capture_reason: self.settings.capture.as_ref().err().cloned(),
            states_traced: states.is_ok(),
            states_reason: states.err(),
            code: Some(self.settings.code.clone()),
            role: Some(self.settings.seat),
            classroom: self.settings.student_url.clone(),
        };
        self.timeline.push(at, EventBody::Hello(hello));
    }

    /// Holds a call event for this step's release, and remembers it as the
    /// cause of the segments it will send.
    pub(super) fn emit(&mut self, at: Stamp, call: Call) {
        if let (Some(sock), Some(op), Some(id)) = (call.sock, call.op, call.id) {
            self.wire.record_call(sock, op, id, &call.c);
        }
        self.latest_call = self.latest_call.max(at);
        self.timeline.push(at, EventBody::Call(call));
    }

    pub(super) fn emit_body(&mut self, at: Stamp, body: EventBody) {
        self.timeline.push(at, body);
    }

    async fn handle(&mut self, input: LabInput) {
        let outcome = match input {
            LabInput::Refused(refusal) => Err(refusal),
            LabInput::Command(command) => self.execute(command).await,
            // Reported at the end of the step, like any count that changed.
            LabInput::Viewers => Ok(()),
            LabInput::Traced(input) => {
                self.traced(input);
                Ok(())
            }
        };
        if let Err(refusal) = outcome {
            let error = ErrorEvent {
                id: refusal.id,
                code: refusal.code,
                message: refusal.message,
            };
            self.timeline.push(clock::now(), EventBody::Error(error));
        }
        // The command may have made one of the lab's blocked calls
        // answerable (a send, the peer's read); answer it in this step.
        self.retry_pending();
    }

    fn observed(&mut self, observation: Observation) {
        match observation {
            Observation::Segment(segment) => self.segment(segment),
            Observation::Transition(transition) => self.transition(transition),
        }
    }

    /// A captured segment of this lab, named by the lab socket at each end,
    /// and kept for Wireshark with the call that sent it.
    fn segment(&mut self, mut segment: WireSegment) {
        let mut src_sock = self.sockets.sock_at(segment.src, segment.dst, segment.at);
        let mut dst_sock = self.sockets.sock_at(segment.dst, segment.src, segment.at);
        // A traced program's connect() is still in the kernel while its
        // handshake is on the wire: only the kernel knows its port yet.
        if self.traced
            && (src_sock.is_none() || dst_sock.is_none())
            && self.sockets.learn_addresses()
        {
            src_sock = self.sockets.sock_at(segment.src, segment.dst, segment.at);
            dst_sock = self.sockets.sock_at(segment.dst, segment.src, segment.at);
        }
        let event = self.wire.event(&segment, src_sock, dst_sock);
        if let Ok(mut ring) = self.settings.ring.lock() {
            ring.push(crate::engine::CapturedFrame {
                at: segment.at,
                bytes: std::mem::take(&mut segment.frame).into_boxed_slice(),
                original_len: segment.original_len,
                call: event.id.map(|id| {
                    self.wire.call_text(id).unwrap_or_else(|| {
                        format!("call #{id} of the lab (its C text is no longer kept)").into()
                    })
                }),
            });
        }
        self.timeline.push(segment.at, EventBody::Segment(event));
    }

    /// Ends a step: takes the segments that are already in, drains the
    /// capture up to now, asks the kernel for the states that follow, and
    /// releases everything in kernel time.
    fn settle(&mut self) {
        self.sockets.forget_old();
        // Route what this step gave the lab (a connect's connection) before
        // draining, so that its first segments are in this step. Without a
        // capture there is nothing to route.
        if self.capture.is_some() {
            let fingerprint = self.routes_fingerprint();
            if self.synced_routes != Some(fingerprint) || self.wire.release_due() {
                let wanted = self.routes();
                self.wire.sync_routes(&wanted);
                self.synced_routes = Some(fingerprint);
            }
        }
        // Only this step's own calls can have queued frames the lab has not
        // been handed yet; a step woken by the capture or a tick has none.
        if let Some(capture) = &self.capture {
            if self.latest_call > 0 {
                capture.drain_after(self.latest_call);
            }
        }
        self.latest_call = 0;
        while let Ok(observation) = self.observations.try_recv() {
            self.observed(observation);
        }
        let dropped = self.wire.take_dropped();
        if dropped > 0 {
            let gap = protocol::Gap { segments: dropped };
            self.timeline.push(clock::now(), EventBody::Gap(gap));
        }
        self.observe();
        let viewers = self
            .settings
            .viewers
            .load(std::sync::atomic::Ordering::SeqCst);
        if viewers != self.viewers_reported {
            self.viewers_reported = viewers;
            let count = protocol::Viewers { count: viewers };
            self.timeline.push(clock::now(), EventBody::Viewers(count));
        }
        if self.traced {
            let hold = PROGRAM_HOLD.as_nanos() as u64;
            self.timeline
                .release_until(clock::now().saturating_sub(hold));
        } else {
            self.timeline.release();
        }
    }

    /// When the oldest event a traced lab holds back is due.
    fn held_back_until(&self) -> Option<tokio::time::Instant> {
        let oldest = self.timeline.oldest_held()?;
        let due = oldest + PROGRAM_HOLD.as_nanos() as u64;
        let wait = Duration::from_nanos(due.saturating_sub(clock::now()));
        Some(tokio::time::Instant::now() + wait)
    }

    /// Changes whenever [`Self::routes`] may.
    fn routes_fingerprint(&self) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        self.sockets.routes_fingerprint(&mut hasher);
        for pending in &self.pending {
            std::hash::Hash::hash(&(pending.call.sock, pending.call.id), &mut hasher);
        }
        std::hash::Hasher::finish(&hasher)
    }

    /// What the capture should route to the lab: its sockets' routes, and
    /// the target of each connect in flight.
    fn routes(&self) -> std::collections::BTreeMap<RouteKey, Stamp> {
        let mut wanted = self.sockets.routes();
        for pending in &self.pending {
            let connecting = self
                .sockets
                .open
                .get(&pending.call.sock)
                .filter(|_| pending.call.op == protocol::OpName::Connect);
            if let Some(socket) = connecting {
                if let Some(std::net::SocketAddr::V4(peer)) = socket.peer {
                    wanted.insert(RouteKey::Connecting(peer), socket.since);
                }
            }
        }
        wanted
    }

    async fn execute(&mut self, command: Command) -> Result<(), Refusal> {
        let id = command.id;
        let op = command.op.name();
        let started = clock::now();
        // Every op but socket and reset names an existing socket.
        let context = match command.op.sock() {
            Some(sock) => {
                let socket = self.sockets.open.get(&sock).ok_or_else(|| {
                    let closed = self.sockets.was_closed(sock) || sock < self.next_sock;
                    if closed {
                        refuse(
                            id,
                            ErrorCode::BadState,
                            format!(
                                "Socket {sock} is closed; its fd is gone, so {} is impossible.",
                                op.as_str()
                            ),
                        )
                    } else {
                        refuse(
                            id,
                            ErrorCode::BadArgs,
                            format!(
                                "This lab has no socket {sock}. Create one with the socket step first."
                            ),
                        )
                    }
                })?;
                Some(CallContext {
                    id,
                    op,
                    sock,
                    fd: socket.fd,
                    started,
                })
            }
            None => None,
        };
        match (command.op, context) {
            (Op::Socket { role }, _) => self.socket(id, role, started),
            (Op::Reset, _) => {
                self.reset(id).await;
                Ok(())
            }
            (Op::Bind { addr, .. }, Some(call)) => self.bind(call, addr),
            (Op::Listen { backlog, .. }, Some(call)) => self.listen(call, backlog),
            (Op::Accept { .. }, Some(call)) => self.accept(call),
            (Op::Connect { addr, .. }, Some(call)) => self.connect(call, addr),
            (Op::Send { data, hex, .. }, Some(call)) => self.send(call, data, hex),
            (Op::Read { max, .. }, Some(call)) => self.read(call, max),
            (Op::Shutdown { how, .. }, Some(call)) => self.shutdown(call, how),
            (Op::Close { .. }, Some(call)) => {
                self.close(call).await;
                Ok(())
            }
            (Op::Setsockopt { name, value, .. }, Some(call)) => self.setsockopt(call, name, value),
            // Op::sock() returned a socket for every other op.
            (_, None) => Err(ops::refuse(
                id,
                ErrorCode::BadArgs,
                "This operation needs a \"sock\".",
            )),
        }
    }

    /// When the browser has gone: stop every wait, close every socket.
    async fn tear_down(&mut self) {
        self.wire.shut_down();
        self.abandon_all();
        self.close_all_silently();
        if let Some((p50, p99, late)) = self.timeline.hold_summary() {
            tracing::debug!(
                hold_p50_us = p50,
                hold_p99_us = p99,
                late,
                "lab ended; merging held its call events this long"
            );
        }
    }
}
