//! The frames a lab's capture handed it, kept for Wireshark: the newest
//! [`RING_FRAMES`], with the kernel's timestamps, the bytes the capture
//! kept, and the call that caused each.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::clock::Stamp;

/// How many frames a lab keeps; the oldest give way.
pub const RING_FRAMES: usize = 10_000;

/// One captured frame, as Wireshark will read it.
#[derive(Clone, Debug)]
pub struct CapturedFrame {
    pub at: Stamp,
    /// The frame's first bytes, as the capture kept them (headers and a
    /// preview of the payload): a few hundred bytes, with no slack, since a
    /// busy lab keeps thousands.
    pub bytes: Box<[u8]>,
    /// Its length on the wire.
    pub original_len: u32,
    /// The call that sent it, as C writes it (shared by every frame that
    /// call sent), or None when the kernel sent it on its own.
    pub call: Option<Arc<str>>,
}

/// A lab's frames, shared with whoever saves them.
#[derive(Default, Debug)]
pub struct CaptureRing {
    frames: VecDeque<CapturedFrame>,
}

pub type SharedRing = Arc<Mutex<CaptureRing>>;

impl CaptureRing {
    pub fn push(&mut self, frame: CapturedFrame) {
        if self.frames.len() >= RING_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back(frame);
    }

    pub fn frames(&self) -> impl Iterator<Item = &CapturedFrame> {
        self.frames.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest() {
        let mut ring = CaptureRing::default();
        for at in 0..(RING_FRAMES as u64 + 5) {
            ring.push(CapturedFrame {
                at,
                bytes: Box::default(),
                original_len: 0,
                call: None,
            });
        }
        assert_eq!(ring.frames().count(), RING_FRAMES);
        assert_eq!(ring.frames().next().map(|frame| frame.at), Some(5));
    }
}
