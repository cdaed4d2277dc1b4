//! What the kernel says of the lab's sockets' TCP states: TCP_INFO for the
//! open ones, sock_diag by the exact connection for the closed ones, and the
//! kernel's trace of each change in between. Only changes become `state`
//! events, each stamped when the kernel made or reported it.

use protocol::{EventBody, SockId, SockState, TcpState};

use super::clock;
use super::lab::Lab;
use super::sys;
use super::table::Observed;

/// How long after entering TIME_WAIT a connection is first asked after
/// again (Linux holds TIME_WAIT for TCP_TIMEWAIT_LEN, 60 s).
const TIME_WAIT_QUIET: std::time::Duration = std::time::Duration::from_secs(59);
/// How often, from then on.
const TIME_WAIT_ASK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
use crate::transitions::Transition;

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
                changes.push((at, open_state(sock, socket, observed)));
            }
        }
        let now_instant = std::time::Instant::now();
        self.sockets.ghosts.retain_mut(|ghost| {
            if ghost.next_ask.is_some_and(|next| now_instant < next) {
                return true;
            }
            let now = match (ghost.local, ghost.peer) {
                (Some(local), Some(peer)) => {
                    sys::kernel_state(local, peer).unwrap_or(TcpState::Close)
                }
                // Never connected: the kernel forgets it at close.
                _ => TcpState::Close,
            };
            let at = clock::now();
            // TIME_WAIT only ends, and only after Linux's fixed 60 s: ask
            // again near its end, then every second. A busy lab's many
            // TIME_WAITs then cost a few questions each, not one a tick.
            ghost.next_ask = match (ghost.reported, now) {
                (Some(TcpState::TimeWait), TcpState::TimeWait) => {
                    Some(now_instant + TIME_WAIT_ASK_EVERY)
                }
                (_, TcpState::TimeWait) => Some(now_instant + TIME_WAIT_QUIET),
                _ => None,
            };
            if ghost.reported != Some(now) {
                ghost.reported = Some(now);
                changes.push((at, closed_state(ghost, now)));
            }
            // A connection the kernel has forgotten is reported once as
            // CLOSE, and never asked for again.
            now != TcpState::Close
        });
        for (at, state) in changes {
            self.emit_body(at, EventBody::State(state));
        }
    }

    /// A change of state the kernel traced, reported at the moment it
    /// happened if it belongs to one of the lab's sockets.
    pub(super) fn transition(&mut self, change: Transition) {
        if self.traced {
            // As for a segment: a traced program's sockets get their ports
            // inside calls the lab has not heard of yet.
            self.sockets.learn_addresses();
        }
        for (sock, change) in self.sockets.resolve(change) {
            self.apply_transition(sock, change);
        }
    }

    fn apply_transition(&mut self, sock: SockId, change: Transition) {
        // LISTEN and CLOSE come from asking the kernel instead: LISTEN with
        // its queue, and CLOSE only once sock_diag no longer knows the
        // connection (the trace says CLOSE when a closed socket hands over
        // to its FIN_WAIT2 or TIME_WAIT remnant, which the kernel keeps).
        if matches!(change.new, TcpState::Listen | TcpState::Close) {
            return;
        }
        let state = if let Some(socket) = self.sockets.open.get_mut(&sock) {
            // Before accept() returned it, a connection was the kernel's
            // alone, waiting in the queue; the lab reports it from then on.
            if change.at < socket.since {
                return;
            }
            let observed = Observed {
                tcp: change.new,
                queue: None,
                backlog: None,
                local: socket.local,
                peer: socket.peer,
            };
            socket.reported = Some(observed);
            open_state(sock, socket, observed)
        } else if let Some(ghost) = self.sockets.ghosts.iter_mut().find(|g| g.sock == sock) {
            if change.at < ghost.since {
                return;
            }
            ghost.reported = Some(change.new);
            closed_state(ghost, change.new)
        } else {
            return;
        };
        self.emit_body(change.at, EventBody::State(state));
    }
}

fn open_state(sock: SockId, socket: &super::table::LabSocket, observed: Observed) -> SockState {
    SockState {
        sock,
        fd: Some(socket.program_fd.unwrap_or(socket.fd)),
        role: socket.role,
        tcp: observed.tcp,
        fd_open: true,
        local: observed.local.map(|addr| addr.to_string()),
        peer: observed.peer.map(|addr| addr.to_string()),
        queue: observed.queue,
        backlog: observed.backlog,
    }
}

fn closed_state(ghost: &super::table::Ghost, tcp: TcpState) -> SockState {
    SockState {
        sock: ghost.sock,
        fd: None,
        role: ghost.role,
        tcp,
        fd_open: false,
        local: ghost.local.map(|addr| addr.to_string()),
        peer: ghost.peer.map(|addr| addr.to_string()),
        queue: None,
        backlog: None,
    }
}
