//! Stamps a lab's events with `seq` and `t_us` and sends them on, in the
//! order in which things happened in the kernel.
//!
//! Calls and states are stamped by the lab when the kernel answered; segments
//! by the kernel itself when the frame crossed the interface. They reach the
//! lab by different roads (a syscall's return, the capture's queue), so the
//! lab holds what one step produced, lets the capture catch up to that moment
//! (`Capture::drain`), and only then releases everything sorted by stamp.
//! **`seq` order is `t_us` order.**

use protocol::{Event, EventBody};
use tokio::sync::mpsc;

use super::clock::{self, Stamp};

/// How many hold samples a lab keeps for its closing log line.
const HOLD_SAMPLES_MAX: usize = 4096;

pub(super) struct Timeline {
    sender: mpsc::UnboundedSender<Event>,
    next_seq: u64,
    /// The session's zero: `t_us` counts from here.
    started: Stamp,
    last_t_us: u64,
    /// Events of the current step, not yet released.
    held: Vec<Held>,
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
    pub fn new(sender: mpsc::UnboundedSender<Event>, started: Stamp) -> Timeline {
        Timeline {
            sender,
            next_seq: 1,
            started,
            last_t_us: 0,
            held: Vec::new(),
            hold_ns: Vec::new(),
            late: 0,
        }
    }

    /// Holds an event that happened at `at` until the step's release.
    pub fn push(&mut self, at: Stamp, body: EventBody) {
        let order = self.held.len();
        self.held.push(Held { at, order, body });
    }

    /// Sends every held event, oldest first.
    pub fn release(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let released = clock::now();
        let mut held = std::mem::take(&mut self.held);
        held.sort_by_key(|event| (event.at, event.order));
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
            // The session may have gone; the lab then ends at its next input.
            let _ = self.sender.send(event);
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

    #[test]
    fn a_step_leaves_in_stamp_order_and_never_goes_back() {
        let (sender, mut events) = mpsc::unbounded_channel();
        let mut timeline = Timeline::new(sender, 1_000_000);
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
