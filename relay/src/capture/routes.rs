//! Which lab gets what the kernel showed: each lab's connections by their
//! 4-tuple, its listening addresses, its connects in flight; never a port
//! number alone. What nobody has asked for yet is kept a moment, for a lab
//! that learns its own port just after the SYN left.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::WireSegment;
use crate::engine::clock::Stamp;
use crate::transitions::Transition;

/// Segments that matched no lab are kept this long, so that a port a lab
/// registers right after its SYN went out (connect's ephemeral port) still
/// gets that SYN.
const UNMATCHED_KEEP: Duration = Duration::from_secs(2);
const UNMATCHED_MAX: usize = 512;

pub type LabId = u64;

/// What the kernel showed of a lab: a segment on the wire, or a socket's
/// change of TCP state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Segment(WireSegment),
    Transition(Transition),
}

/// What a lab is routed: its connections, its listening addresses, and
/// the targets of its connects in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKey {
    /// A connection, from this end's address to the peer's.
    Connection(SocketAddrV4, SocketAddrV4),
    /// A listening socket's address (0.0.0.0 for every address): the
    /// segments of handshakes to it, before accept() names the connection.
    Listener(SocketAddrV4),
    /// A connect() in flight to this address: the kernel traces the
    /// socket's SYN_SENT before it has a port of its own.
    Connecting(SocketAddrV4),
}

impl Observation {
    /// Every key under which a lab may have asked for it. An array, not a
    /// Vec: the capture asks this of every frame.
    pub(super) fn keys(&self) -> [Option<RouteKey>; 7] {
        let (a, b) = self.ends();
        let any = |end: SocketAddrV4| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, end.port());
        let connecting = matches!(self, Observation::Transition(_)) && a.port() == 0;
        [
            Some(RouteKey::Connection(a, b)),
            Some(RouteKey::Connection(b, a)),
            Some(RouteKey::Listener(a)),
            Some(RouteKey::Listener(b)),
            Some(RouteKey::Listener(any(a))),
            Some(RouteKey::Listener(any(b))),
            connecting.then_some(RouteKey::Connecting(b)),
        ]
    }

    /// The two ends it names: a segment's source and destination, a state
    /// change's socket and its peer.
    fn ends(&self) -> (SocketAddrV4, SocketAddrV4) {
        match self {
            Observation::Segment(segment) => (segment.src, segment.dst),
            Observation::Transition(change) => (change.local, change.peer),
        }
    }

    /// When the kernel stamped it.
    pub(super) fn at(&self) -> Stamp {
        match self {
            Observation::Segment(segment) => segment.at,
            Observation::Transition(change) => change.at,
        }
    }
}

/// Where a lab takes its observations, and how many it had to let go.
#[derive(Clone)]
pub struct LabRoute {
    /// Bounded ([`OBSERVATIONS_QUEUE`]): the capture never waits for a lab.
    pub sender: mpsc::Sender<Observation>,
    /// Observations dropped because the lab's queue was full.
    pub dropped: Arc<AtomicU64>,
}

impl LabRoute {
    fn deliver(&self, observation: Observation) {
        if self.sender.try_send(observation).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Observations queued for one lab at most. A lab drains its queue at every
/// step, so only a lab starved of CPU fills it; what does not fit is counted
/// and reported to the page as a gap.
pub const OBSERVATIONS_QUEUE: usize = 4096;

/// Handshakes followed at most: a listening lab's connections before
/// accept() names them; the oldest gives way.
const HANDSHAKES_MAX: usize = 4096;

/// Every lab's routes, and what matched none yet.
#[derive(Default)]
pub(super) struct Routes {
    pub(super) by_key: HashMap<RouteKey, Vec<(LabId, LabRoute)>>,
    unmatched: VecDeque<(Instant, Observation)>,
    handshakes: Handshakes,
}

/// The connections a listening lab has seen begin, by (client end,
/// listening end), and the lab: a listener is routed the handshakes to it,
/// from their SYN on, and never an older connection's segments that reach
/// the same address (an orphan's FIN, say, from a process that had the
/// port before).
#[derive(Default)]
struct Handshakes {
    owners: HashMap<(SocketAddrV4, SocketAddrV4), LabId>,
    order: VecDeque<(SocketAddrV4, SocketAddrV4)>,
}

impl Handshakes {
    /// Whether `lab`, which asked for `key`, gets this observation: always
    /// for its connections and connects; for a listening address, only the
    /// handshakes that began there since it listened.
    fn admit(&mut self, key: RouteKey, lab: LabId, observation: &Observation) -> bool {
        let RouteKey::Listener(listener) = key else {
            return true;
        };
        let ends = ends_for(listener, observation);
        if opens_handshake(listener, observation) {
            if self.owners.insert(ends, lab).is_none() {
                self.order.push_back(ends);
                while self.order.len() > HANDSHAKES_MAX {
                    if let Some(oldest) = self.order.pop_front() {
                        self.owners.remove(&oldest);
                    }
                }
            }
            return true;
        }
        self.owners.get(&ends) == Some(&lab)
    }

    fn forget_lab(&mut self, lab: LabId) {
        self.owners.retain(|_, owner| *owner != lab);
        let owners = &self.owners;
        self.order.retain(|ends| owners.contains_key(ends));
    }
}

/// The ends of a connection to a listening address, client first.
fn ends_for(listener: SocketAddrV4, observation: &Observation) -> (SocketAddrV4, SocketAddrV4) {
    let (a, b) = observation.ends();
    let at = |end: SocketAddrV4| {
        end == listener || (listener.ip().is_unspecified() && end.port() == listener.port())
    };
    if at(b) { (a, b) } else { (b, a) }
}

/// Whether an observation opens a handshake to `listener`: a SYN to it, or
/// the kernel's first state of the connection it makes for one.
fn opens_handshake(listener: SocketAddrV4, observation: &Observation) -> bool {
    use protocol::TcpState;
    match observation {
        Observation::Segment(segment) => {
            segment.flags.contains(&"SYN")
                && !segment.flags.contains(&"ACK")
                && ends_for(listener, observation).1 == segment.dst
        }
        Observation::Transition(change) => {
            matches!(change.new, TcpState::SynRecv | TcpState::NewSynRecv)
        }
    }
}

impl Routes {
    /// Sends what belongs under `key` to this lab, including what arrived in
    /// the last moments before the lab asked, but nothing from before
    /// `since`, when the lab's socket was made.
    pub fn register(&mut self, lab: LabId, key: RouteKey, since: Stamp, route: &LabRoute) {
        let owners = self.by_key.entry(key).or_default();
        if owners.iter().any(|(owner, _)| *owner == lab) {
            return;
        }
        if let RouteKey::Listener(_) = key {
            // A lab port is one lab's at a time: a lab that listens on an
            // address takes it over from one whose listener there has
            // closed and whose route still lingers for its last segments.
            // New handshakes to the address are the new lab's alone.
            owners.clear();
        }
        owners.push((lab, route.clone()));
        let now = Instant::now();
        let mut kept = VecDeque::with_capacity(self.unmatched.len());
        for (seen, observation) in std::mem::take(&mut self.unmatched) {
            let mine = observation.at() >= since
                && observation.keys().contains(&Some(key))
                && self.handshakes.admit(key, lab, &observation);
            if mine && now.duration_since(seen) < UNMATCHED_KEEP {
                route.deliver(observation.clone());
            }
            if !mine {
                kept.push_back((seen, observation));
            }
        }
        self.unmatched = kept;
    }

    pub fn unregister(&mut self, lab: LabId, key: RouteKey) {
        if let Some(owners) = self.by_key.get_mut(&key) {
            owners.retain(|(owner, _)| *owner != lab);
            if owners.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    pub fn unregister_lab(&mut self, lab: LabId) {
        self.by_key.retain(|_, owners| {
            owners.retain(|(owner, _)| *owner != lab);
            !owners.is_empty()
        });
        self.handshakes.forget_lab(lab);
    }

    /// Hands an observation to every lab that asked for it, or keeps it a
    /// moment for a lab that is about to.
    pub fn route(&mut self, observation: Observation) {
        let mut delivered: Vec<LabId> = Vec::new();
        let mut matched = false;
        for key in observation.keys().into_iter().flatten() {
            let Some(owners) = self.by_key.get(&key) else {
                continue;
            };
            matched = true;
            for (lab, route) in owners {
                // A segment between two sockets of one lab goes to it once.
                if !delivered.contains(lab) && self.handshakes.admit(key, *lab, &observation) {
                    delivered.push(*lab);
                    route.deliver(observation.clone());
                }
            }
        }
        // Kept for a lab about to ask; an orphan's segment to an address a
        // lab listens on is nobody's, and is not kept either.
        if delivered.is_empty() && !matched {
            let now = Instant::now();
            while self.unmatched.len() >= UNMATCHED_MAX
                || self
                    .unmatched
                    .front()
                    .is_some_and(|(seen, _)| now.duration_since(*seen) > UNMATCHED_KEEP)
            {
                self.unmatched.pop_front();
            }
            self.unmatched.push_back((now, observation));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_connection_never_by_port_alone() {
        let mut capture = Routes::default();
        let route = |capacity: usize| {
            let (sender, receiver) = mpsc::channel(capacity);
            let dropped = Arc::new(AtomicU64::new(0));
            (LabRoute { sender, dropped }, receiver)
        };
        let addr = |text: &str| -> SocketAddrV4 { text.parse().expect("addr") };
        let flagged = |src: &str, dst: &str, flags: Vec<&'static str>| {
            Observation::Segment(WireSegment {
                at: 0,
                src: addr(src),
                dst: addr(dst),
                flags,
                seq: 1,
                ack: 0,
                win: 0,
                len: 0,
                payload: Vec::new(),
                frame: Vec::new(),
                original_len: 0,
            })
        };
        let segment = |src: &str, dst: &str| flagged(src, dst, vec!["ACK"]);
        let syn = |src: &str, dst: &str| flagged(src, dst, vec!["SYN"]);
        let (lab_a, mut from_a) = route(16);
        let (lab_b, mut from_b) = route(16);
        // Lab A listens on 127.0.0.1:7002; lab B has 127.0.0.2:7002 bound.
        capture.register(1, RouteKey::Listener(addr("127.0.0.1:7002")), 0, &lab_a);
        capture.register(2, RouteKey::Listener(addr("127.0.0.2:7002")), 0, &lab_b);
        capture.route(syn("127.0.0.1:50000", "127.0.0.1:7002"));
        assert!(from_a.try_recv().is_ok());
        assert!(
            from_b.try_recv().is_err(),
            "the same port elsewhere is not B's"
        );
        // The rest of that handshake is A's too, both ways…
        capture.route(segment("127.0.0.1:7002", "127.0.0.1:50000"));
        capture.route(segment("127.0.0.1:50000", "127.0.0.1:7002"));
        assert!(from_a.try_recv().is_ok() && from_a.try_recv().is_ok());
        // …but an older connection's FIN to the same address is not: it
        // began before A listened, and is nobody's.
        capture.route(flagged(
            "127.0.0.1:49999",
            "127.0.0.1:7002",
            vec!["ACK", "FIN"],
        ));
        assert!(from_a.try_recv().is_err(), "an orphan's segment is not A's");
        // A connection of lab B, both ways.
        capture.register(
            2,
            RouteKey::Connection(addr("127.0.0.1:50001"), addr("127.0.0.1:9000")),
            0,
            &lab_b,
        );
        capture.route(segment("127.0.0.1:9000", "127.0.0.1:50001"));
        assert!(from_b.try_recv().is_ok());
        assert!(from_a.try_recv().is_err());
        // Something that was nobody's is handed over once it becomes A's,
        // but nothing from before its socket was made.
        capture.route(segment("127.0.0.1:50002", "127.0.0.1:9001"));
        let key = RouteKey::Connection(addr("127.0.0.1:50002"), addr("127.0.0.1:9001"));
        capture.register(1, key, 1, &lab_a);
        assert!(from_a.try_recv().is_err());
        capture.route(segment("127.0.0.1:50003", "127.0.0.1:9001"));
        let key = RouteKey::Connection(addr("127.0.0.1:50003"), addr("127.0.0.1:9001"));
        capture.register(1, key, 0, &lab_a);
        assert!(from_a.try_recv().is_ok());
        capture.unregister_lab(1);
        capture.route(syn("127.0.0.1:50000", "127.0.0.1:7002"));
        assert!(from_a.try_recv().is_err());
        // A lab that listens where another's listener has closed takes
        // the address over, though the other's route still lingers.
        let (lab_d, mut from_d) = route(16);
        let (lab_e, mut from_e) = route(16);
        capture.register(4, RouteKey::Listener(addr("127.0.0.1:7004")), 0, &lab_d);
        capture.register(5, RouteKey::Listener(addr("127.0.0.1:7004")), 0, &lab_e);
        capture.route(syn("127.0.0.1:50005", "127.0.0.1:7004"));
        assert!(from_e.try_recv().is_ok());
        assert!(from_d.try_recv().is_err(), "the new handshake is not D's");
        // A full lab queue drops and counts; the capture never waits.
        let (lab_c, _from_c) = route(1);
        capture.register(3, RouteKey::Listener(addr("0.0.0.0:7003")), 0, &lab_c);
        for _ in 0..3 {
            capture.route(syn("127.0.0.1:50004", "127.0.0.9:7003"));
        }
        assert_eq!(lab_c.dropped.load(Ordering::Relaxed), 2);
    }
}
