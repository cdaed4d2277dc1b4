//! A traced program's calls (`relay trace`): the lab makes none itself. It
//! shows each call the program made, stamped when the tracer saw it
//! return, and keeps a copy of each socket the program made, so that the
//! kernel's states and the capture's segments reach the lab as they do for
//! its own sockets.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use protocol::{Call, EventBody, Note, OpName, Phase, Role, SockId};

use crate::engine::TracedInput;
use crate::engine::lab::Lab;
use crate::engine::render;
use crate::engine::sys;
use crate::engine::table::{Ghost, LabSocket};
use crate::trace::report::{Report, TracedCall};

/// Which lab socket each traced process's fd is, and the sockets being
/// closed: asked after as ghosts once their close() has returned.
#[derive(Default)]
pub(in crate::engine) struct ProgramFds {
    fds: HashMap<(u32, RawFd), SockId>,
    closing: HashMap<SockId, Ghost>,
}

impl Lab {
    pub(in crate::engine) fn traced(&mut self, input: TracedInput) {
        let TracedInput {
            report,
            socket,
            handled,
        } = input;
        self.traced = true;
        match report {
            Report::Returned(call) => self.traced_returned(call, socket),
            Report::Sleeps(call) => {
                let sock = self.program_fds.fds.get(&(call.process, call.fd)).copied();
                let mut event = traced_event(&call, sock, Phase::Blocked);
                event.note = Some(Note::ThreadSleeps);
                self.emit(call.at, event);
            }
            Report::Closing { process, fd } => self.let_go(process, fd),
            Report::Forked { parent, child, .. } => {
                let inherited: Vec<(RawFd, SockId)> = self
                    .program_fds
                    .fds
                    .iter()
                    .filter(|((process, _), _)| *process == parent)
                    .map(|((_, fd), sock)| (*fd, *sock))
                    .collect();
                for (fd, sock) in inherited {
                    self.program_fds.fds.insert((child, fd), sock);
                }
            }
            Report::Exited {
                process,
                ending,
                at,
            } => {
                self.program_fds
                    .fds
                    .retain(|(owner, _), _| *owner != process);
                // A close the program died in still closed the fd.
                let closing = std::mem::take(&mut self.program_fds.closing);
                self.sockets.ghosts.extend(closing.into_values());
                self.emit_body(at, EventBody::Exited(ending));
            }
        }
        // The program waits on this answer in its syscall stop.
        if let Some(handled) = handled {
            let _ = handled.send(());
        }
    }

    fn traced_returned(&mut self, call: TracedCall, copy: Option<OwnedFd>) {
        let phase = if call.errno.is_some() {
            Phase::Failed
        } else {
            Phase::Done
        };
        let key = (call.process, call.fd);
        let mut sock = self.program_fds.fds.get(&key).copied();
        let mut made = None;
        match call.op {
            OpName::Socket if phase == Phase::Done => {
                sock = self.keep(call.process, call.fd, call.role, copy, call.at);
            }
            OpName::Accept if phase == Phase::Done => {
                if let Some(new_fd) = call.new_fd {
                    made = self.keep(call.process, new_fd, Role::Conn, copy, call.at);
                }
            }
            _ => {}
        }
        if phase == Phase::Done {
            if let Some(socket) = sock.and_then(|sock| self.sockets.open.get_mut(&sock)) {
                match call.op {
                    OpName::Bind => socket.refresh_local(),
                    OpName::Listen => {
                        socket.listening = true;
                        socket.refresh_local();
                    }
                    OpName::Connect => {
                        socket.refresh_local();
                        socket.peer = call.addr;
                    }
                    _ => {}
                }
            }
        }
        let mut event = traced_event(&call, sock, phase);
        if let Some(new_sock) = made {
            event.new_sock = Some(new_sock);
            event.new_fd = call.new_fd;
            if let Some(socket) = self.sockets.open.get_mut(&new_sock) {
                socket.peer = call.addr;
                socket.refresh_local();
                event.local = socket.local.map(|addr| addr.to_string());
            }
            event.peer = call.addr.map(|addr| addr.to_string());
        } else if let Some(socket) = sock.and_then(|sock| self.sockets.open.get(&sock)) {
            event.local = socket.local.map(|addr| addr.to_string());
            event.peer = socket.peer.map(|addr| addr.to_string());
        }
        if call.op == OpName::Socket {
            event.role = Some(call.role);
        }
        if call.op == OpName::Read && call.ret == 0 && phase == Phase::Done {
            event.note = Some(Note::EndOfFile);
        }
        if call.op == OpName::Close {
            event.note = Some(Note::FdClosed);
            self.program_fds.fds.remove(&key);
            if let Some(ghost) = sock.and_then(|sock| self.program_fds.closing.remove(&sock)) {
                self.sockets.ghosts.push(ghost);
            }
        }
        if let (OpName::Dup, Phase::Done, Some(new_fd)) = (call.op, phase, call.new_fd) {
            event.new_fd = Some(new_fd);
            // dup2 and dup3 close whatever socket the fd held first.
            let copy = (call.process, new_fd);
            let replaced = self.program_fds.fds.remove(&copy);
            if let Some(ghost) = replaced.and_then(|old| self.program_fds.closing.remove(&old)) {
                self.sockets.ghosts.push(ghost);
            }
            if let Some(sock) = sock {
                self.program_fds.fds.insert(copy, sock);
            }
        }
        self.emit(call.at, event);
    }

    /// Names a socket the program made, and keeps the lab's copy of it while
    /// the lab has room; a socket past the lab's limit is shown without
    /// states.
    fn keep(
        &mut self,
        process: u32,
        fd: RawFd,
        role: Role,
        copy: Option<OwnedFd>,
        at: crate::engine::clock::Stamp,
    ) -> Option<SockId> {
        let sock = self.next_sock;
        self.next_sock += 1;
        self.program_fds.fds.insert((process, fd), sock);
        let room = self.sockets.open.len() < self.settings.limits.sockets_per_lab as usize;
        if let (Some(copy), true) = (copy, room) {
            let own_fd = copy.as_raw_fd();
            let mut socket = LabSocket::new(role, socket2::Socket::from(copy), own_fd, at);
            socket.program_fd = Some(fd);
            self.sockets.open.insert(sock, socket);
        }
        Some(sock)
    }

    /// The program is about to close `fd`: once no process of it holds the
    /// socket any more, the lab drops its copy, so that the program's
    /// close() is the one that ends the connection. Once that returns, the
    /// socket lives on as a ghost, asked after by its addresses.
    fn let_go(&mut self, process: u32, fd: RawFd) {
        let Some(&sock) = self.program_fds.fds.get(&(process, fd)) else {
            return;
        };
        let shared = self
            .program_fds
            .fds
            .iter()
            .any(|(key, other)| *other == sock && *key != (process, fd));
        if shared {
            return;
        }
        let Some(socket) = self.sockets.open.remove(&sock) else {
            return;
        };
        let ghost = Ghost::of(sock, &socket);
        self.sockets.closed(&ghost);
        self.program_fds.closing.insert(sock, ghost);
        drop(socket);
    }
}

/// The `call` event of a traced call.
fn traced_event(call: &TracedCall, sock: Option<SockId>, phase: Phase) -> Call {
    let mut event = Call {
        id: None,
        op: Some(call.op),
        sock,
        fd: Some(call.fd),
        phase: Some(phase),
        c: call.c.clone(),
        elapsed_us: Some(call.at.saturating_sub(call.entered) / 1000),
        lane: Some(call.lane.clone()),
        ..Call::default()
    };
    if phase != Phase::Blocked {
        event.ret = Some(call.ret);
    }
    if let Some(errno) = call.errno {
        event.errno = Some(sys::errno_name(errno));
        event.message = Some(sys::strerror(errno));
    }
    if let Some(bytes) = &call.data {
        let (data, hex) = render::payload(bytes);
        event.data = data;
        event.hex = hex;
    }
    event
}
