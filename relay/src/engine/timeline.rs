//! Stamps a lab's events with `seq` and `t_us` and sends them on, in the
//! order in which things happened in the kernel.
//!
//! Calls and states are stamped by the lab when the kernel answered; segments
//! by the kernel itself when the frame crossed the interface. They reach the
//! lab by different roads (a syscall's return, the capture's queue), so the
//! lab holds what one step produced, lets the capture catch up to that moment
//! (`Capture::drain`), and only then releases everything sorted by stamp.
//! **`seq` order is `t_us` order.**
//!
//! The queue to the browser is bounded. When the page falls behind, a step's
//! events are made fewer before they are numbered (so `seq` stays gapless):
//! consecutive data and ACK segments of one flow become one summarised
//! segment, and of several states of one socket only the newest is kept.
//! Calls and errors are never dropped: if the queue is still full, the lab
//! stops sending and the session closes the WebSocket with 1008.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use protocol::{Event, EventBody, Segment};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::clock::{self, Stamp};

/// Events queued for one browser at most.
pub const EVENT_QUEUE: usize = 4096;
/// Below this many free places, the queue counts as congested.
const CONGESTED_BELOW: usize = EVENT_QUEUE / 4;

/// How many hold samples a lab keeps for its closing log line.
const HOLD_SAMPLES_MAX: usize = 4096;

pub(super) struct Timeline {
    sender: mpsc::Sender<Event>,
    /// Set when the queue overflowed even after coalescing; the session
    /// then closes the WebSocket with 1008.
    overflowed: Arc<AtomicBool>,
    next_seq: u64,
    /// The session's zero: `t_us` counts from here.
    started: Stamp,
    last_t_us: u64,
    /// Events of the current step, not yet released.
    held: Vec<Held>,
    /// How many events were ever pushed: the tie-break of equal stamps.
    pushed: usize,
    /// For each call event released, how long it was held after its stamp.
    hold_ns: Vec<u64>,
    /// Events whose stamp was earlier than one already sent (a frame that
    /// the kernel stamped but delivered late); they are sent at the newest
    /// time sent, never before it.
    late: u64,
}

struct Held {
    at: Stamp,
    /// Tie-break: the order in which the lab produced events of one stamp.
    order: usize,
    body: EventBody,
}

impl Timeline {
    pub fn new(
        sender: mpsc::Sender<Event>,
        overflowed: Arc<AtomicBool>,
        started: Stamp,
    ) -> Timeline {
        Timeline {
            sender,
            overflowed,
            next_seq: 1,
            started,
            last_t_us: 0,
            held: Vec::new(),
            pushed: 0,
            hold_ns: Vec::new(),
            late: 0,
        }
    }

    /// Holds an event that happened at `at` until the step's release.
    pub fn push(&mut self, at: Stamp, body: EventBody) {
        let order = self.pushed;
        self.pushed += 1;
        self.held.push(Held { at, order, body });
    }

    /// Sends every held event, oldest first.
    pub fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.send(held);
    }

    /// Sends the held events stamped up to `cutoff`, oldest first, and keeps
    /// the rest: a traced program's calls reach the lab by a longer road
    /// than the capture's segments, and are given time to arrive.
    pub fn release_until(&mut self, cutoff: Stamp) {
        let (due, kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|event| event.at <= cutoff);
        self.held = kept;
        self.send(due);
    }

    /// The stamp of the oldest event held back.
    pub fn oldest_held(&self) -> Option<Stamp> {
        self.held.iter().map(|event| event.at).min()
    }

    fn send(&mut self, mut held: Vec<Held>) {
        if held.is_empty() || self.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let released = clock::now();
        held.sort_by_key(|event| (event.at, event.order));
        if self.sender.capacity() < CONGESTED_BELOW {
            held = coalesce(held);
        }
        for event in held {
            let t_us = event.at.saturating_sub(self.started) / 1000;
            if t_us < self.last_t_us {
                self.late += 1;
            }
            self.last_t_us = self.last_t_us.max(t_us);
            if matches!(event.body, EventBody::Call(_)) && self.hold_ns.len() < HOLD_SAMPLES_MAX {
                self.hold_ns.push(released.saturating_sub(event.at));
            }
            let event = Event {
                seq: self.next_seq,
                t_us: self.last_t_us,
                body: event.body,
            };
            self.next_seq += 1;
            match self.sender.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::info!("a browser fell too far behind its lab's events; closing it");
                    self.overflowed.store(true, Ordering::Relaxed);
                    return;
                }
                // The session has gone; the lab ends at its next input.
                Err(TrySendError::Closed(_)) => return,
            }
        }
    }

    /// The hold that merging added to this lab's call events, p50 and p99 in
    /// microseconds, and how many events came late.
    pub fn hold_summary(&self) -> Option<(f64, f64, u64)> {
        let mut sorted = self.hold_ns.clone();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable();
        let at = |fraction: f64| {
            let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
            sorted[index] as f64 / 1000.0
        };
        Some((at(0.5), at(0.99), self.late))
    }
}

/// A congested step, made fewer: runs of data and ACK segments of one flow
/// become one, and each socket keeps only its newest state.
fn coalesce(held: Vec<Held>) -> Vec<Held> {
    let mut newest_state: HashSet<u32> = HashSet::new();
    let mut kept_rev: Vec<Held> = Vec::with_capacity(held.len());
    for event in held.into_iter().rev() {
        if let EventBody::State(state) = &event.body {
            if !newest_state.insert(state.sock) {
                continue;
            }
        }
        kept_rev.push(event);
    }
    let mut kept: Vec<Held> = Vec::with_capacity(kept_rev.len());
    for event in kept_rev.into_iter().rev() {
        if let (Some(last), EventBody::Segment(next)) = (kept.last_mut(), &event.body) {
            if let EventBody::Segment(summary) = &mut last.body {
                if plain(summary)
                    && plain(next)
                    && summary.src == next.src
                    && summary.dst == next.dst
                {
                    merge(summary, next);
                    last.at = event.at;
                    continue;
                }
            }
        }
        kept.push(event);
    }
    kept
}

/// A segment that may be summarised: no SYN, FIN or RST, which the lesson
/// is about.
fn plain(segment: &Segment) -> bool {
    !segment
        .flags
        .iter()
        .any(|flag| matches!(flag.as_str(), "SYN" | "FIN" | "RST"))
}

fn merge(summary: &mut Segment, next: &Segment) {
    summary.coalesced = Some(summary.coalesced.unwrap_or(1) + next.coalesced.unwrap_or(1));
    summary.len += next.len;
    summary.tcp_seq = next.tcp_seq;
    summary.tcp_ack = next.tcp_ack;
    summary.rel_seq = next.rel_seq;
    summary.rel_ack = next.rel_ack;
    summary.win = next.win;
    summary.payload = None;
    summary.payload_hex = None;
    summary.id = None;
    summary.cause = protocol::Cause::Kernel;
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{ErrorCode, ErrorEvent};

    fn error(message: &str) -> EventBody {
        EventBody::Error(ErrorEvent {
            id: None,
            code: ErrorCode::BadArgs,
            message: message.into(),
        })
    }

    fn message(event: &Event) -> &str {
        match &event.body {
            EventBody::Error(error) => &error.message,
            _ => "",
        }
    }

    fn new_timeline(capacity: usize) -> (Timeline, mpsc::Receiver<Event>) {
        let (sender, events) = mpsc::channel(capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        (Timeline::new(sender, overflowed, 1_000_000), events)
    }

    fn data(at: Stamp, len: u32) -> (Stamp, EventBody) {
        let segment = Segment {
            src: "127.0.0.1:1".into(),
            dst: "127.0.0.1:2".into(),
            flags: vec!["ACK".into(), "PSH".into()],
            tcp_seq: at as u32,
            tcp_ack: 0,
            rel_seq: 0,
            rel_ack: 0,
            len,
            win: 0,
            payload: None,
            payload_hex: None,
            src_sock: None,
            dst_sock: None,
            cause: protocol::Cause::Kernel,
            id: None,
            coalesced: None,
        };
        (at, EventBody::Segment(segment))
    }

    #[test]
    fn a_congested_step_is_summarised_and_an_overflow_stops_the_lab() {
        let (mut timeline, mut events) = new_timeline(EVENT_QUEUE);
        // Fill the queue until it is congested.
        for at in 0..(EVENT_QUEUE - CONGESTED_BELOW + 1) as u64 {
            timeline.push(2_000_000 + at, error("filler"));
        }
        timeline.release();
        for at in 0..100 {
            let (at, body) = data(3_000_000 + at, 10);
            timeline.push(at, body);
        }
        timeline.push(4_000_000, error("a call is never dropped"));
        timeline.release();
        let sent: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        let tail = &sent[sent.len() - 2..];
        match &tail[0].body {
            EventBody::Segment(segment) => {
                assert_eq!(segment.coalesced, Some(100));
                assert_eq!(segment.len, 1000);
            }
            other => panic!("not a summary: {other:?}"),
        }
        assert_eq!(message(&tail[1]), "a call is never dropped");
        assert!(
            sent.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1),
            "no gap in seq"
        );
        // A queue that stays full overflows, and the lab stops sending.
        let (mut timeline, _events) = new_timeline(2);
        for at in 0..5 {
            timeline.push(at, error("more than fits"));
        }
        timeline.release();
        assert!(timeline.overflowed.load(Ordering::Relaxed));
    }

    #[test]
    fn a_step_leaves_in_stamp_order_and_never_goes_back() {
        let (mut timeline, mut events) = new_timeline(16);
        timeline.push(5_000_000, error("call"));
        timeline.push(3_000_000, error("segment"));
        timeline.push(5_000_000, error("state"));
        timeline.release();
        let sent: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        let order: Vec<&str> = sent.iter().map(message).collect();
        assert_eq!(order, ["segment", "call", "state"]);
        assert_eq!(
            sent.iter().map(|e| (e.seq, e.t_us)).collect::<Vec<_>>(),
            [(1, 2000), (2, 4000), (3, 4000)]
        );
        // A frame stamped before what was already sent comes after it, at
        // the newest time sent.
        timeline.push(2_000_000, error("late"));
        timeline.release();
        let late = events.try_recv().expect("sent");
        assert_eq!((late.seq, late.t_us), (4, 4000));
        assert_eq!(timeline.late, 1);
    }
}
