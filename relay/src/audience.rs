//! A lab's audience: the frames its session sent, kept so that a follower
//! can catch up, and passed on live to every follower.
//!
//! The session that drives the lab publishes each frame as it writes it to
//! its own browser, so followers see exactly what it saw: the same frames,
//! the same `seq` and `t_us`. Publishing and joining take the same lock, so
//! a follower's history and its live stream meet with no gap and no repeat.
//! The live stream is a `broadcast` channel: a follower that falls behind
//! its capacity is told (`Lagged`) and starts again from a fresh history,
//! and neither the driver nor the other followers ever wait for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, mpsc};

use crate::engine::LabInput;

/// How many frames a follower may be behind the lab before it is resynced.
pub const LIVE_FRAMES: usize = 1024;
/// The most events a history keeps.
pub const HISTORY_EVENTS: usize = 50_000;
/// How many bytes of frames an ordinary lab's history keeps: about 500
/// events, several times what the whole lesson makes, at a cost every lab
/// pays. Each frame is an allocation of its own, so the memory is about
/// twice this: 200 busy labs hold about 50 MiB of history.
pub const HISTORY_BYTES: usize = 128 << 10;
/// How many a classroom's shared lab keeps: there is one of it.
pub const SHARED_HISTORY_BYTES: usize = 32 << 20;

pub(crate) struct Audience {
    kept: Mutex<Kept>,
    budget_bytes: usize,
    /// How many follow now; the lab reads it when told it changed.
    viewers: Arc<AtomicU32>,
    /// The lab's inputs, weakly: the lab must still end when its session
    /// drops its own sender.
    lab: mpsc::WeakSender<LabInput>,
}

struct Kept {
    /// The lab's first event, which a follower gets with its own role.
    hello: Option<protocol::Event>,
    /// The frames after `hello`, oldest first.
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    /// How many frames were let go from the front.
    let_go: u64,
    /// The live stream, made when the first follower joins: its ring of
    /// [`LIVE_FRAMES`] slots is allocated whole, which a lab nobody
    /// follows should not pay for.
    live: Option<broadcast::Sender<Utf8Bytes>>,
    /// The lab has ended: nobody joins any more.
    ended: bool,
}

/// What a follower starts from.
pub(crate) struct Joined {
    pub hello: Option<protocol::Event>,
    pub frames: Vec<Utf8Bytes>,
    pub let_go: u64,
    pub live: broadcast::Receiver<Utf8Bytes>,
}

impl Audience {
    pub fn new(
        budget_bytes: usize,
        viewers: Arc<AtomicU32>,
        lab: mpsc::WeakSender<LabInput>,
    ) -> Audience {
        Audience {
            kept: Mutex::new(Kept {
                hello: None,
                frames: VecDeque::new(),
                bytes: 0,
                let_go: 0,
                live: None,
                ended: false,
            }),
            budget_bytes,
            viewers,
            lab,
        }
    }

    /// Keeps a frame the session is about to write, and passes it to the
    /// followers.
    pub fn publish(&self, event: &protocol::Event, frame: &Utf8Bytes) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if matches!(event.body, protocol::EventBody::Hello(_)) {
            kept.hello = Some(event.clone());
        } else {
            kept.bytes += frame.as_str().len();
            kept.frames.push_back(frame.clone());
            while kept.frames.len() > HISTORY_EVENTS || kept.bytes > self.budget_bytes {
                let Some(oldest) = kept.frames.pop_front() else {
                    break;
                };
                kept.bytes -= oldest.as_str().len();
                kept.let_go += 1;
            }
        }
        if let Some(live) = &kept.live {
            // No follower, no copy: a send with no receiver keeps nothing.
            let _ = live.send(frame.clone());
        }
    }

    /// The history so far and the live stream from just after it; None once
    /// the lab has ended.
    pub fn join(&self) -> Option<Joined> {
        let mut kept = self.kept.lock().ok()?;
        if kept.ended {
            return None;
        }
        let live = kept
            .live
            .get_or_insert_with(|| broadcast::Sender::new(LIVE_FRAMES))
            .subscribe();
        Some(Joined {
            hello: kept.hello.clone(),
            frames: kept.frames.iter().cloned().collect(),
            let_go: kept.let_go,
            live,
        })
    }

    /// The lab has ended: every follower's live stream ends after what it
    /// already has.
    pub fn close(&self) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.live = None;
            kept.ended = true;
        }
    }

    /// Counts a follower in until the returned seat is dropped.
    pub fn take_seat(self: &Arc<Self>) -> Seat {
        self.viewers.fetch_add(1, Ordering::SeqCst);
        self.tell_lab();
        Seat {
            audience: Arc::clone(self),
        }
    }

    fn tell_lab(&self) {
        if let Some(lab) = self.lab.upgrade() {
            // A full input queue means a busy lab; the count it reports
            // next is read then, so a lost nudge only delays it.
            let _ = lab.try_send(LabInput::Viewers);
        }
    }
}

/// One follower, counted while it lasts.
pub(crate) struct Seat {
    audience: Arc<Audience>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.audience.viewers.fetch_sub(1, Ordering::SeqCst);
        self.audience.tell_lab();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Event, EventBody, Gap};

    fn event(seq: u64) -> Event {
        Event {
            seq,
            t_us: seq,
            body: EventBody::Gap(Gap { segments: seq }),
        }
    }

    /// An audience, and its lab's inputs: the sender the lab's session
    /// would hold (the audience holds it weakly), and the lab's end.
    fn audience(budget_bytes: usize) -> (Audience, Lab) {
        let (inputs, received) = mpsc::channel(4);
        let audience = Audience::new(budget_bytes, Arc::default(), inputs.downgrade());
        (
            audience,
            Lab {
                _inputs: inputs,
                received,
            },
        )
    }

    struct Lab {
        _inputs: mpsc::Sender<LabInput>,
        received: mpsc::Receiver<LabInput>,
    }

    fn publish(audience: &Audience, seq: u64) {
        let event = event(seq);
        audience.publish(&event, &Utf8Bytes::from(protocol::encode_event(&event)));
    }

    #[test]
    fn a_late_joiner_gets_the_kept_frames_then_the_live_ones_with_no_gap() {
        let (audience, _lab) = audience(HISTORY_BYTES);
        for seq in 1..=3 {
            publish(&audience, seq);
        }
        let mut joined = audience.join().expect("the lab is open");
        assert_eq!(joined.frames.len(), 3);
        assert_eq!(joined.let_go, 0);
        publish(&audience, 4);
        let live = joined.live.try_recv().expect("the next frame, live");
        assert_eq!(protocol::decode_event(live.as_str()).map(|e| e.seq), Ok(4));
    }

    #[test]
    fn the_history_lets_its_oldest_frames_go_and_counts_them() {
        let frame_bytes = protocol::encode_event(&event(10)).len();
        let (audience, _lab) = audience(frame_bytes * 5);
        for seq in 10..30 {
            publish(&audience, seq);
        }
        let joined = audience.join().expect("open");
        assert_eq!(joined.frames.len(), 5);
        assert_eq!(joined.let_go, 15);
        let first = protocol::decode_event(joined.frames[0].as_str()).expect("a frame");
        assert_eq!(first.seq, 25, "the newest five are kept");
    }

    #[test]
    fn a_follower_that_falls_behind_is_told_and_an_ended_lab_takes_nobody() {
        let (audience, _lab) = audience(HISTORY_BYTES);
        let mut joined = audience.join().expect("open");
        for seq in 0..(LIVE_FRAMES as u64 + 10) {
            publish(&audience, seq + 1);
        }
        assert!(matches!(
            joined.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        audience.close();
        assert!(audience.join().is_none());
    }

    #[test]
    fn seats_count_followers_and_nudge_the_lab() {
        let (audience, mut lab) = audience(HISTORY_BYTES);
        let audience = Arc::new(audience);
        let seat = audience.take_seat();
        assert_eq!(audience.viewers.load(Ordering::SeqCst), 1);
        assert!(matches!(lab.received.try_recv(), Ok(LabInput::Viewers)));
        drop(seat);
        assert_eq!(audience.viewers.load(Ordering::SeqCst), 0);
        assert!(matches!(lab.received.try_recv(), Ok(LabInput::Viewers)));
    }
}
