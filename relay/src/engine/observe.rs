//! Asking the kernel for the TCP state of the lab's sockets: TCP_INFO for
//! the open ones, sock_diag by the exact connection for the closed ones whose
//! connection the kernel still holds. Only changes become `state` events,
//! stamped when the kernel was asked.

use std::net::SocketAddr;

use protocol::{EventBody, Role, SockId, SockState, TcpState};

use super::clock;
use super::lab::Lab;
use super::sys;
use super::table::{Ghost, Observed};

impl Lab {
    /// Asks the kernel for every socket's state and reports what changed.
    pub(super) fn observe(&mut self) {
        let mut changes = Vec::new();
        for (&sock, socket) in self.sockets.open.iter_mut() {
            let Ok(info) = sys::tcp_info(socket.fd) else {
                continue;
            };
            let at = clock::now();
            if socket.local.is_none_or(|addr| addr.port() == 0) {
                socket.refresh_local();
            }
            if socket.peer.is_none() && !matches!(info.state, TcpState::Listen | TcpState::Close) {
                socket.peer = socket
                    .socket
                    .peer_addr()
                    .ok()
                    .and_then(|addr| addr.as_socket());
            }
            let listening = info.state == TcpState::Listen;
            let observed = Observed {
                tcp: info.state,
                queue: listening.then_some(info.queue),
                backlog: listening.then_some(info.backlog),
                local: socket.local,
                peer: socket.peer,
            };
            if socket.reported != Some(observed) {
                socket.reported = Some(observed);
                let state = SockState {
                    sock,
                    fd: Some(socket.fd),
                    role: socket.role,
                    tcp: observed.tcp,
                    fd_open: true,
                    local: observed.local.map(|addr| addr.to_string()),
                    peer: observed.peer.map(|addr| addr.to_string()),
                    queue: observed.queue,
                    backlog: observed.backlog,
                };
                changes.push((at, state));
            }
        }
        self.sockets.ghosts.retain_mut(|ghost| {
            let now = sys::kernel_state(ghost.local, ghost.peer).unwrap_or(TcpState::Close);
            let at = clock::now();
            if now != ghost.reported {
                ghost.reported = now;
                changes.push((
                    at,
                    closed_state(ghost.sock, ghost.role, ghost.local, ghost.peer, now),
                ));
            }
            // A connection the kernel has forgotten is reported once as
            // CLOSE, and never asked for again.
            now != TcpState::Close
        });
        for (at, state) in changes {
            self.emit_body(at, EventBody::State(state));
        }
    }

    /// The state right after close: what the kernel still keeps of the
    /// connection, if anything, followed on every step until it is gone.
    pub(super) fn report_closed(
        &mut self,
        sock: SockId,
        role: Role,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) {
        let kernel_state = match (local, peer) {
            (Some(local), Some(peer)) => sys::kernel_state(local, peer),
            _ => None,
        };
        let at = clock::now();
        let tcp = kernel_state.unwrap_or(TcpState::Close);
        let mut state = SockState {
            sock,
            fd: None,
            role,
            tcp,
            fd_open: false,
            local: local.map(|addr| addr.to_string()),
            peer: peer.map(|addr| addr.to_string()),
            queue: None,
            backlog: None,
        };
        if let (Some(local), Some(peer), Some(reported)) = (local, peer, kernel_state) {
            state = closed_state(sock, role, local, peer, reported);
            self.sockets.ghosts.push(Ghost {
                sock,
                role,
                local,
                peer,
                reported,
            });
        }
        self.emit_body(at, EventBody::State(state));
    }
}

fn closed_state(
    sock: SockId,
    role: Role,
    local: SocketAddr,
    peer: SocketAddr,
    tcp: TcpState,
) -> SockState {
    SockState {
        sock,
        fd: None,
        role,
        tcp,
        fd_open: false,
        local: Some(local.to_string()),
        peer: Some(peer.to_string()),
        queue: None,
        backlog: None,
    }
}
