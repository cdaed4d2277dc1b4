//! A lab's sockets: the open ones, the closed ones whose connection the
//! kernel still holds, and the ones closed a moment ago, so that every
//! captured segment can be given the lab socket at each of its ends.

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{Role, SockId, TcpState};
use socket2::Socket;
use tokio::io::unix::AsyncFd;

use super::wait::SharedSocket;

/// How long a closed socket's addresses still name it on the wire.
const RECENTLY_CLOSED_KEEP: Duration = Duration::from_secs(10);

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
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub listening: bool,
    /// The lab port this socket holds in the relay's pool, freed on close.
    pub held_port: Option<u16>,
    /// The last state reported, so that only changes are sent.
    pub reported: Option<Observed>,
}

impl LabSocket {
    pub fn new(role: Role, socket: Socket, fd: RawFd) -> LabSocket {
        LabSocket {
            role,
            socket: Arc::new(socket),
            registration: None,
            fd,
            local: None,
            peer: None,
            listening: false,
            held_port: None,
            reported: None,
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

/// A closed socket whose connection the kernel still holds (TIME_WAIT…).
pub(super) struct Ghost {
    pub sock: SockId,
    pub role: Role,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub reported: TcpState,
}

/// A socket closed a moment ago: the segments of its close still name it.
struct RecentlyClosed {
    sock: SockId,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    at: Instant,
}

#[derive(Default)]
pub(super) struct SocketTable {
    pub open: BTreeMap<SockId, LabSocket>,
    pub ghosts: Vec<Ghost>,
    recent_closed: Vec<RecentlyClosed>,
}

impl SocketTable {
    /// Remembers a socket that was just closed, for the segments of its close.
    pub fn closed(&mut self, sock: SockId, local: Option<SocketAddr>, peer: Option<SocketAddr>) {
        self.recent_closed.push(RecentlyClosed {
            sock,
            local,
            peer,
            at: Instant::now(),
        });
    }

    pub fn forget_old(&mut self) {
        self.recent_closed
            .retain(|closed| closed.at.elapsed() < RECENTLY_CLOSED_KEEP);
    }

    /// Whether `sock` was ever this lab's and is closed now.
    pub fn was_closed(&self, sock: SockId) -> bool {
        self.ghosts.iter().any(|ghost| ghost.sock == sock)
            || self.recent_closed.iter().any(|closed| closed.sock == sock)
    }

    /// The lab's ports: those the capture should route to it.
    pub fn ports(&self) -> std::collections::BTreeSet<u16> {
        self.open
            .values()
            .filter_map(|socket| socket.local)
            .chain(self.ghosts.iter().map(|ghost| ghost.local))
            .chain(self.recent_closed.iter().filter_map(|closed| closed.local))
            .map(|addr| addr.port())
            .filter(|port| *port != 0)
            .collect()
    }

    /// The lab socket whose end of a connection is `local`, talking to `peer`:
    /// an open socket, a closed one the kernel still holds or that closed a
    /// moment ago, or else the listening socket a handshake is for.
    pub fn sock_at(&self, local: SocketAddrV4, peer: SocketAddrV4) -> Option<SockId> {
        let (local, peer) = (SocketAddr::V4(local), SocketAddr::V4(peer));
        self.open
            .iter()
            .find(|(_, socket)| socket.local == Some(local) && socket.peer == Some(peer))
            .map(|(sock, _)| *sock)
            .or_else(|| {
                self.ghosts
                    .iter()
                    .find(|ghost| ghost.local == local && ghost.peer == peer)
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
