//! A lab's side of the wire view: which of its connections and listeners
//! the capture should route to it, and how a captured segment becomes a `segment` event, with
//! Wireshark's relative numbers and the call that caused it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use protocol::{Cause, OpName, Segment, SockId};
use tokio::sync::mpsc;

use super::clock::Stamp;
use super::render;
use crate::capture::{
    Capture, LabId, LabRoute, OBSERVATIONS_QUEUE, Observation, RouteKey, WireSegment,
};

/// A route stays this long after the lab stops using it, so that the
/// last segments of a close (in flight in the capture) still arrive.
const UNREGISTER_AFTER: Duration = Duration::from_secs(2);
/// Enough data segments to recognise retransmissions in a lesson; the set is
/// cleared past this.
const DATA_SEEN_MAX: usize = 4096;
/// How many calls' C text are kept, to name the call that sent a segment.
const CALL_TEXTS: usize = 512;

pub(super) struct Wire {
    capture: Option<Arc<Capture>>,
    lab: LabId,
    route: LabRoute,
    registered: BTreeSet<RouteKey>,
    unwanted_since: HashMap<RouteKey, Instant>,
    /// Each direction's initial sequence number, from its SYN.
    isn: HashMap<(SocketAddrV4, SocketAddrV4), u32>,
    /// (source, seq) of data segments seen, to tell retransmissions.
    data_seen: HashSet<(SocketAddrV4, u32)>,
    /// The calls made on each socket, newest last.
    calls: HashMap<SockId, Vec<(OpName, u64)>>,
    /// The newest calls as C writes them, by id.
    call_texts: std::collections::VecDeque<(u64, Arc<str>)>,
}

impl Wire {
    pub fn new(capture: Option<Arc<Capture>>, lab: LabId) -> (Wire, mpsc::Receiver<Observation>) {
        let (sender, receiver) = mpsc::channel(OBSERVATIONS_QUEUE);
        let route = LabRoute {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let wire = Wire {
            capture,
            lab,
            route,
            registered: BTreeSet::new(),
            unwanted_since: HashMap::new(),
            isn: HashMap::new(),
            data_seen: HashSet::new(),
            calls: HashMap::new(),
            call_texts: std::collections::VecDeque::new(),
        };
        (wire, receiver)
    }

    /// Routes the lab's current connections and listeners to it, and stops
    /// routing those it has not had for a while.
    pub fn sync_routes(&mut self, wanted: &BTreeMap<RouteKey, Stamp>) {
        let Some(capture) = &self.capture else { return };
        for (key, since) in wanted {
            self.unwanted_since.remove(key);
            if self.registered.insert(*key) {
                capture.register(self.lab, *key, *since, &self.route);
            }
        }
        let now = Instant::now();
        let mut released = Vec::new();
        for key in self
            .registered
            .iter()
            .filter(|key| !wanted.contains_key(key))
        {
            let since = *self.unwanted_since.entry(*key).or_insert(now);
            if now.duration_since(since) > UNREGISTER_AFTER {
                released.push(*key);
            }
        }
        for key in released {
            capture.unregister(self.lab, key);
            self.registered.remove(&key);
            self.unwanted_since.remove(&key);
        }
    }

    /// Whether a route that is no longer wanted is due to be released, so
    /// that a step that changed no socket must still sync.
    pub fn release_due(&self) -> bool {
        let now = Instant::now();
        self.unwanted_since
            .values()
            .any(|since| now.duration_since(*since) > UNREGISTER_AFTER)
    }

    pub fn record_call(&mut self, sock: SockId, op: OpName, id: u64, c: &str) {
        let calls = self.calls.entry(sock).or_default();
        calls.retain(|(old_op, _)| *old_op != op);
        calls.push((op, id));
        // A call's phases share its id; the newest text (its answer) is
        // found first.
        if self.call_texts.len() >= CALL_TEXTS {
            self.call_texts.pop_front();
        }
        self.call_texts.push_back((id, Arc::from(c)));
    }

    /// The call with this id, as C writes it, if it is recent.
    pub fn call_text(&self, id: u64) -> Option<Arc<str>> {
        self.call_texts
            .iter()
            .rev()
            .find(|(call, _)| *call == id)
            .map(|(_, text)| Arc::clone(text))
    }

    fn last_call(&self, sock: Option<SockId>, ops: &[OpName]) -> Option<u64> {
        self.calls
            .get(&sock?)?
            .iter()
            .rev()
            .find(|(op, _)| ops.contains(op))
            .map(|(_, id)| *id)
    }

    /// The `segment` event for a captured segment.
    pub fn event(
        &mut self,
        segment: &WireSegment,
        src_sock: Option<SockId>,
        dst_sock: Option<SockId>,
    ) -> Segment {
        let forward = (segment.src, segment.dst);
        let backward = (segment.dst, segment.src);
        if segment.has("SYN") {
            self.isn.insert(forward, segment.seq);
        }
        // Without the SYN (a capture that began mid-connection), the first
        // number seen is the base, as Wireshark does.
        let seq_base = *self.isn.entry(forward).or_insert(segment.seq);
        let rel_seq = segment.seq.wrapping_sub(seq_base);
        let rel_ack = if segment.has("ACK") {
            let ack_base = *self
                .isn
                .entry(backward)
                .or_insert(segment.ack.wrapping_sub(1));
            segment.ack.wrapping_sub(ack_base)
        } else {
            0
        };
        let retransmission = segment.len > 0 && !self.data_seen.insert((segment.src, segment.seq));
        if self.data_seen.len() > DATA_SEEN_MAX {
            self.data_seen.clear();
        }
        let id = if retransmission {
            None
        } else if segment.has("RST") {
            // close() with SO_LINGER 0, or the kernel refusing a connect:
            // then the call is the connect of the socket it answers.
            self.last_call(src_sock, &[OpName::Close])
                .or_else(|| self.last_call(dst_sock, &[OpName::Connect]))
        } else if segment.has("SYN") && !segment.has("ACK") {
            self.last_call(src_sock, &[OpName::Connect])
        } else if segment.has("FIN") {
            self.last_call(src_sock, &[OpName::Close, OpName::Shutdown])
        } else if segment.len > 0 {
            self.last_call(src_sock, &[OpName::Send])
        } else {
            None
        };
        let (payload, payload_hex) = if segment.payload.is_empty() {
            (None, None)
        } else {
            render::payload(&segment.payload)
        };
        Segment {
            src: segment.src.to_string(),
            dst: segment.dst.to_string(),
            flags: segment.flags.iter().map(|flag| flag.to_string()).collect(),
            tcp_seq: segment.seq,
            tcp_ack: segment.ack,
            rel_seq,
            rel_ack,
            len: segment.len,
            win: segment.win,
            payload,
            payload_hex,
            src_sock,
            dst_sock,
            cause: if id.is_some() {
                Cause::Call
            } else {
                Cause::Kernel
            },
            id,
            coalesced: None,
        }
    }

    /// How many observations the capture dropped for this lab since the last
    /// call, because its queue was full.
    pub fn take_dropped(&self) -> u64 {
        self.route.dropped.swap(0, Ordering::Relaxed)
    }

    pub fn shut_down(&self) {
        if let Some(capture) = &self.capture {
            capture.unregister_lab(self.lab);
        }
    }
}
