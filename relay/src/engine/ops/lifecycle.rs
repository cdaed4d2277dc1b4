//! socket(), close() and reset: the calls that make and end a lab's sockets.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::Arc;

use protocol::{AbandonReason, ErrorCode, Note, OpName, Role, SockId};
use socket2::{Domain, Socket, Type};

use super::{CallContext, refuse, timed};
use crate::engine::clock::{self, Stamp};
use crate::engine::lab::Lab;
use crate::engine::render;
use crate::engine::table::{Ghost, LabSocket};

impl Lab {
    /// The lab's sockets, counting accepts that wait: each will make one.
    pub(super) fn check_socket_limit(&self, id: u64) -> Result<(), protocol::Refusal> {
        let waiting_accepts = self
            .pending
            .iter()
            .filter(|pending| pending.call.op == OpName::Accept)
            .count();
        let limit = self.settings.limits.sockets_per_lab as usize;
        if self.sockets.open.len() + waiting_accepts >= limit {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!("A lab may hold {limit} sockets at once. Close one, or reset the lab."),
            ));
        }
        Ok(())
    }

    pub(in crate::engine) fn socket(
        &mut self,
        id: u64,
        role: Role,
        started: Stamp,
    ) -> Result<(), protocol::Refusal> {
        if role == Role::Conn {
            return Err(refuse(
                id,
                ErrorCode::BadArgs,
                "Only accept() makes a connection socket; ask for role \"server\" or \"client\".",
            ));
        }
        self.check_socket_limit(id)?;
        let sock = self.next_sock;
        let c_call = "socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0)";
        let (result, at) = timed(|| Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None));
        let call = CallContext {
            id,
            op: OpName::Socket,
            sock,
            fd: -1,
            started,
        };
        match result {
            Ok(socket) => {
                let fd = socket.as_raw_fd();
                self.next_sock += 1;
                self.sockets
                    .open
                    .insert(sock, LabSocket::new(role, socket, fd, at));
                let mut event = CallContext { fd, ..call }.answered(
                    &Ok(fd as i64),
                    format!("{c_call} = {fd}"),
                    at,
                );
                event.role = Some(role);
                event.note = Some(Note::NonBlockingSocket);
                self.emit(at, event);
            }
            Err(error) => {
                let result = Err(error);
                let mut event =
                    call.answered(&result, format!("{c_call}{}", render::result(&result)), at);
                event.sock = None;
                event.fd = None;
                self.emit(at, event);
            }
        }
        Ok(())
    }

    pub(in crate::engine) async fn close(&mut self, call: CallContext) {
        self.close_because(call, AbandonReason::SocketClosed).await;
    }

    async fn close_because(&mut self, call: CallContext, because: AbandonReason) {
        self.cancel_pending(call.sock, because);
        let Some(socket) = self.sockets.open.remove(&call.sock) else {
            return;
        };
        if let Some(port) = socket.held_port {
            self.settings.ports.release(port);
        }
        let ghost = Ghost::of(call.sock, &socket);
        self.sockets.closed(&ghost);
        let (result, at) = timed(|| close_socket(socket));
        let mut event = call.answered(
            &result,
            format!("close({}){}", call.fd, render::result(&result)),
            at,
        );
        event.note = Some(Note::FdClosed);
        self.emit(at, event);
        // What the kernel still keeps of the connection is asked for at the
        // end of this step, after the changes it traced during close().
        self.sockets.ghosts.push(ghost);
    }

    /// reset: close every socket of the lab, each with its real close(2).
    pub(in crate::engine) async fn reset(&mut self, id: u64) {
        let socks: Vec<(SockId, i32)> = self
            .sockets
            .open
            .iter()
            .map(|(sock, socket)| (*sock, socket.fd))
            .collect();
        for &(sock, fd) in &socks {
            let call = CallContext {
                id,
                op: OpName::Close,
                sock,
                fd,
                started: clock::now(),
            };
            self.close_because(call, AbandonReason::LabReset).await;
        }
        let done = protocol::ResetDone {
            id,
            closed: socks.len() as u32,
        };
        self.emit_body(clock::now(), protocol::EventBody::Reset(done));
    }

    /// Closes every socket without a word: the browser that would read the
    /// events has gone.
    pub(in crate::engine) fn close_all_silently(&mut self) {
        for (_, socket) in std::mem::take(&mut self.sockets.open) {
            if let Some(port) = socket.held_port {
                self.settings.ports.release(port);
            }
            let _ = close_socket(socket);
        }
    }
}

/// close(2) on the socket's fd, with its real return value. Every task that
/// shared the socket has ended by now, so the lab is its only owner.
fn close_socket(socket: LabSocket) -> io::Result<i64> {
    // Leave epoll first: the reactor must never watch a closed fd.
    drop(socket.registration);
    let socket =
        Arc::try_unwrap(socket.socket).map_err(|_| io::Error::other("socket still shared"))?;
    let fd = socket.into_raw_fd();
    // SAFETY: the fd came out of its only owner just above.
    let status = unsafe { libc::close(fd) };
    if status < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(0)
}
