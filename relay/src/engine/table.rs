//! A lab's sockets: the open ones, the closed ones whose connection the
//! kernel still holds, and the ones closed a moment ago, so that every
//! captured segment can be given the lab socket at each of its ends.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{Role, SockId, TcpState};
use socket2::Socket;
use tokio::io::unix::AsyncFd;

use super::clock::Stamp;
use super::wait::SharedSocket;
use crate::capture::RouteKey;
use crate::transitions::Transition;

/// How many traced changes the lab keeps while it does not yet know whose
/// they are, and for how long.
const UNRESOLVED_MAX: usize = 64;
const UNRESOLVED_KEEP: Duration = Duration::from_secs(2);
/// How many kernel socket addresses (`skaddr`) the lab remembers.
const SKADDRS_MAX: usize = 64;

/// How long a closed socket's addresses still name it on the wire.
/// As long as the capture keeps routing a closed socket's connection.
const RECENTLY_CLOSED_KEEP: Duration = Duration::from_secs(2);

/// One of the lab's sockets, open in the relay.
pub(super) struct LabSocket {
    pub role: Role,
    pub socket: Arc<Socket>,
    /// The socket's registration with tokio's reactor (epoll), made at its
    /// first wait rather than at socket(): a socket that has never connected
    /// reports EPOLLHUP, which tokio keeps as a permanent "closed" readiness,
    /// and every wait would spin.
    pub registration: Option<Arc<AsyncFd<SharedSocket>>>,
    pub fd: RawFd,
    /// For a traced program's socket (`relay trace`), the fd the program
    /// knows it by; `fd` is then the lab's own copy.
    pub program_fd: Option<RawFd>,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub listening: bool,
    /// The lab port this socket holds in the relay's pool, freed on close.
    pub held_port: Option<u16>,
    /// The last state reported, so that only changes are sent.
    pub reported: Option<Observed>,
    /// When the call that made it returned: the kernel's changes before
    /// that belong to no lab socket yet (a connection still in the queue).
    pub since: Stamp,
}

impl LabSocket {
    pub fn new(role: Role, socket: Socket, fd: RawFd, since: Stamp) -> LabSocket {
        LabSocket {
            role,
            socket: Arc::new(socket),
            registration: None,
            fd,
            program_fd: None,
            local: None,
            peer: None,
            listening: false,
            held_port: None,
            reported: None,
            since,
        }
    }

    /// Asks the kernel for the address the socket is bound to now.
    pub fn refresh_local(&mut self) {
        self.local = self
            .socket
            .local_addr()
            .ok()
            .and_then(|addr| addr.as_socket());
    }
}

/// What the lab last reported of an open socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Observed {
    pub tcp: TcpState,
    pub queue: Option<u32>,
    pub backlog: Option<u32>,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
}

/// A closed socket whose connection the kernel may still hold (TIME_WAIT…),
/// asked after on every step until the kernel has forgotten it.
pub(super) struct Ghost {
    pub sock: SockId,
    pub role: Role,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    /// The last state reported since the fd closed; None until the first.
    pub reported: Option<TcpState>,
    /// When the socket was made (see [`LabSocket::since`]).
    pub since: Stamp,
    /// When to ask the kernel about it next; None: at every step.
    pub next_ask: Option<Instant>,
}

impl Ghost {
    /// What the lab keeps of `socket` once its fd is gone.
    pub fn of(sock: SockId, socket: &LabSocket) -> Ghost {
        Ghost {
            sock,
            role: socket.role,
            local: socket.local,
            peer: socket.peer,
            reported: None,
            since: socket.since,
            next_ask: None,
        }
    }
}

/// A socket closed a moment ago: the segments of its close still name it.
struct RecentlyClosed {
    sock: SockId,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    since: Stamp,
    at: Instant,
}

#[derive(Default)]
pub(super) struct SocketTable {
    pub open: BTreeMap<SockId, LabSocket>,
    pub ghosts: Vec<Ghost>,
    recent_closed: Vec<RecentlyClosed>,
    /// The kernel's address of each lab socket seen in a traced change.
    skaddrs: VecDeque<(u64, SockId)>,
    /// Traced changes of sockets not yet known by address (a connect's
    /// SYN_SENT comes before the kernel gives the socket its port).
    unresolved: VecDeque<(Instant, Transition)>,
    /// How many sockets were closed, ever: with the lengths of `ghosts` and
    /// `recent_closed`, it says whether either changed.
    closings: u64,
}

impl SocketTable {
    /// Remembers a socket that was just closed, for the segments of its close.
    pub fn closed(&mut self, ghost: &Ghost) {
        self.closings += 1;
        self.recent_closed.push(RecentlyClosed {
            sock: ghost.sock,
            local: ghost.local,
            peer: ghost.peer,
            since: ghost.since,
            at: Instant::now(),
        });
    }

    /// Asks the kernel for the addresses of the open sockets that have none
    /// yet; whether it gave any.
    pub fn learn_addresses(&mut self) -> bool {
        let mut learned = false;
        for socket in self.open.values_mut() {
            if socket.local.is_none_or(|addr| addr.port() == 0) {
                socket.refresh_local();
                learned |= socket.local.is_some_and(|addr| addr.port() != 0);
            }
            if socket.peer.is_none() && !socket.listening {
                socket.peer = socket
                    .socket
                    .peer_addr()
                    .ok()
                    .and_then(|addr| addr.as_socket());
                learned |= socket.peer.is_some();
            }
        }
        learned
    }

    pub fn forget_old(&mut self) {
        let now = Instant::now();
        self.recent_closed
            .retain(|closed| now.duration_since(closed.at) < RECENTLY_CLOSED_KEEP);
        self.unresolved
            .retain(|(seen, _)| now.duration_since(*seen) < UNRESOLVED_KEEP);
    }

    /// The lab socket a traced change belongs to: by its exact addresses, or
    /// by the kernel's address of a socket seen before. Changes of sockets
    /// not known yet are kept, and handed back once a later change names them.
    pub fn resolve(&mut self, change: Transition) -> Vec<(SockId, Transition)> {
        let sock = self.exact(change.local, change.peer).or_else(|| {
            self.skaddrs
                .iter()
                .find(|(skaddr, _)| *skaddr == change.skaddr)
                .map(|(_, sock)| *sock)
        });
        let Some(sock) = sock else {
            if self.unresolved.len() >= UNRESOLVED_MAX {
                self.unresolved.pop_front();
            }
            self.unresolved.push_back((Instant::now(), change));
            return Vec::new();
        };
        if !self
            .skaddrs
            .iter()
            .any(|(skaddr, _)| *skaddr == change.skaddr)
        {
            if self.skaddrs.len() >= SKADDRS_MAX {
                self.skaddrs.pop_front();
            }
            self.skaddrs.push_back((change.skaddr, sock));
        }
        let skaddr = change.skaddr;
        let mut resolved: Vec<(SockId, Transition)> = Vec::new();
        self.unresolved.retain(|(_, earlier)| {
            let mine = earlier.skaddr == skaddr;
            if mine {
                resolved.push((sock, earlier.clone()));
            }
            !mine
        });
        // A socket whose full form is gone (CLOSE) frees its kernel address
        // for a new socket: the name must not follow it there.
        if change.new == TcpState::Close {
            self.skaddrs.retain(|(skaddr, _)| *skaddr != change.skaddr);
        }
        resolved.push((sock, change));
        resolved
    }

    /// The open or closed lab socket with exactly these addresses; a peer of
    /// 0.0.0.0:0 is a socket with no peer.
    fn exact(&self, local: SocketAddrV4, peer: SocketAddrV4) -> Option<SockId> {
        let local = Some(SocketAddr::V4(local));
        let peer = (peer.port() != 0).then_some(SocketAddr::V4(peer));
        self.open
            .iter()
            .find(|(_, socket)| socket.local == local && socket.peer == peer)
            .map(|(sock, _)| *sock)
            .or_else(|| {
                self.ghosts
                    .iter()
                    .find(|ghost| ghost.local == local && ghost.peer == peer)
                    .map(|ghost| ghost.sock)
            })
    }

    /// Whether `sock` was ever this lab's and is closed now.
    pub fn was_closed(&self, sock: SockId) -> bool {
        self.ghosts.iter().any(|ghost| ghost.sock == sock)
            || self.recent_closed.iter().any(|closed| closed.sock == sock)
    }

    /// The lab's ports: those the capture should route to it.
    /// What the capture should route to the lab: each connection by its
    /// 4-tuple and each listener by its address, with when its socket was
    /// made: nothing from before that is the lab's.
    /// Changes whenever [`Self::routes`] may: a summary of what it reads,
    /// cheap next to building it. A busy lab holds hundreds of TIME_WAIT
    /// connections, and most steps change none of them.
    pub fn routes_fingerprint(&self, hasher: &mut impl Hasher) {
        for (sock, socket) in &self.open {
            (
                sock,
                socket.local,
                socket.peer,
                socket.listening,
                socket.since,
            )
                .hash(hasher);
        }
        (self.ghosts.len(), self.recent_closed.len(), self.closings).hash(hasher);
    }

    pub fn routes(&self) -> BTreeMap<RouteKey, Stamp> {
        let mut routes: BTreeMap<RouteKey, Stamp> = BTreeMap::new();
        let mut add = |key: RouteKey, since: Stamp| {
            let oldest = routes.entry(key).or_insert(since);
            *oldest = (*oldest).min(since);
        };
        let connection = |local: Option<SocketAddr>, peer: Option<SocketAddr>| match (local, peer) {
            (Some(SocketAddr::V4(local)), Some(SocketAddr::V4(peer))) if local.port() != 0 => {
                Some(RouteKey::Connection(local, peer))
            }
            _ => None,
        };
        for socket in self.open.values() {
            if let Some(key) = connection(socket.local, socket.peer) {
                add(key, socket.since);
            }
            if let (true, Some(SocketAddr::V4(local))) = (socket.listening, socket.local) {
                add(RouteKey::Listener(local), socket.since);
            }
        }
        for ghost in &self.ghosts {
            if let Some(key) = connection(ghost.local, ghost.peer) {
                add(key, ghost.since);
            }
        }
        for closed in &self.recent_closed {
            if let Some(key) = connection(closed.local, closed.peer) {
                add(key, closed.since);
            }
        }
        routes
    }

    /// The lab socket whose end of a connection is `local`, talking to `peer`,
    /// at `at`: an open socket made by then, a closed one the kernel still
    /// holds or that closed a moment ago, or else the listening socket a
    /// handshake is for (before accept() made the connection's own socket).
    pub fn sock_at(&self, local: SocketAddrV4, peer: SocketAddrV4, at: Stamp) -> Option<SockId> {
        let (local, peer) = (SocketAddr::V4(local), SocketAddr::V4(peer));
        self.open
            .iter()
            .find(|(_, socket)| {
                socket.local == Some(local) && socket.peer == Some(peer) && socket.since <= at
            })
            .map(|(sock, _)| *sock)
            .or_else(|| {
                self.ghosts
                    .iter()
                    .find(|ghost| ghost.local == Some(local) && ghost.peer == Some(peer))
                    .map(|ghost| ghost.sock)
            })
            .or_else(|| {
                self.recent_closed
                    .iter()
                    .rev()
                    .find(|closed| closed.local == Some(local) && closed.peer == Some(peer))
                    .map(|closed| closed.sock)
            })
            .or_else(|| {
                self.open
                    .iter()
                    .find(|(_, socket)| {
                        socket.listening
                            && socket.local.is_some_and(|bound| {
                                bound.port() == local.port()
                                    && (bound.ip() == local.ip() || bound.ip().is_unspecified())
                            })
                    })
                    .map(|(sock, _)| *sock)
            })
    }
}
