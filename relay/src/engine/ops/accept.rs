//! accept(): take one finished connection off a listener's queue, as a new fd.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use protocol::{ErrorCode, Note, Refusal, Role};
use socket2::Socket;

use super::{CallContext, is_would_block, refuse, timed};
use crate::engine::clock::Stamp;
use crate::engine::lab::Lab;
use crate::engine::render;
use crate::engine::sys;
use crate::engine::table::LabSocket;
use crate::engine::wait::{Blocked, Direction};

impl Lab {
    pub(in crate::engine) fn accept(&mut self, call: CallContext) -> Result<(), Refusal> {
        let Some(socket) = self.sockets.open.get(&call.sock) else {
            return Ok(());
        };
        if !socket.listening {
            return Err(refuse(
                call.id,
                ErrorCode::BadState,
                format!(
                    "Socket {} is not listening, so it has no accept queue: call listen() first \
                     (the kernel would answer accept() with EINVAL).",
                    call.sock
                ),
            ));
        }
        self.check_not_waiting(&call, Direction::Inbound)?;
        self.check_socket_limit(call.id)?;
        match timed(|| sys::accept4(call.fd)) {
            (Err(error), at) if is_would_block(&error) => {
                let blocked = Blocked {
                    c: format!(
                        "accept4({}, {{AF_INET, …}}, [16], SOCK_NONBLOCK|SOCK_CLOEXEC){}",
                        call.fd,
                        render::result(&Err(error))
                    ),
                    errno: libc::EAGAIN,
                    note: Note::AcceptQueueEmpty,
                    direction: Direction::Inbound,
                    peer: None,
                };
                self.block(call, at, blocked, sys::accept4, |lab, call, result, at| {
                    lab.finish_accept(call, result, at)
                });
            }
            (result, at) => self.finish_accept(call, result, at),
        }
        Ok(())
    }

    fn finish_accept(
        &mut self,
        call: CallContext,
        result: io::Result<(OwnedFd, SocketAddr)>,
        at: Stamp,
    ) {
        match result {
            Ok((fd, peer)) => {
                let socket = Socket::from(fd);
                let new_fd = socket.as_raw_fd();
                let new_sock = self.next_sock;
                self.next_sock += 1;
                let mut conn = LabSocket::new(Role::Conn, socket, new_fd, at);
                conn.refresh_local();
                conn.peer = Some(peer);
                let local = conn.local;
                self.sockets.open.insert(new_sock, conn);
                let mut event = call.answered(
                    &Ok(new_fd as i64),
                    format!(
                        "accept4({}, {}, [16], SOCK_NONBLOCK|SOCK_CLOEXEC) = {new_fd}",
                        call.fd,
                        render::sockaddr(&peer)
                    ),
                    at,
                );
                event.new_sock = Some(new_sock);
                event.new_fd = Some(new_fd);
                event.role = Some(Role::Conn);
                event.peer = Some(peer.to_string());
                event.local = local.map(|addr| addr.to_string());
                event.note = Some(Note::AcceptTookConnection);
                self.emit(at, event);
            }
            Err(error) => {
                let result = Err(error);
                let event = call.answered(
                    &result,
                    format!(
                        "accept4({}, {{AF_INET, …}}, [16], SOCK_NONBLOCK|SOCK_CLOEXEC){}",
                        call.fd,
                        render::result(&result)
                    ),
                    at,
                );
                self.emit(at, event);
            }
        }
    }

    /// A socket may wait in one call per direction at a time.
    pub(super) fn check_not_waiting(
        &self,
        call: &CallContext,
        direction: Direction,
    ) -> Result<(), Refusal> {
        if let Some(waiting) = self.waiting(call.sock, direction) {
            return Err(refuse(
                call.id,
                ErrorCode::BadState,
                format!(
                    "Socket {} already waits in {}() (command {}). Let it finish, or close the socket.",
                    call.sock,
                    waiting.op.as_str(),
                    waiting.id
                ),
            ));
        }
        Ok(())
    }
}
