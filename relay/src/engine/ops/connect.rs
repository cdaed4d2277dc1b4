//! connect(): the client's SYN, and the handshake it waits for.

use std::io;
use std::net::SocketAddr;

use protocol::{ErrorCode, Note, Refusal, Role};

use super::{CallContext, parse_addr, refuse, timed};
use crate::engine::clock::Stamp;
use crate::engine::lab::Lab;
use crate::engine::render;
use crate::engine::sys;
use crate::engine::wait::{Blocked, Direction};

impl Lab {
    fn resolve_connect_target(&self, id: u64, addr: Option<String>) -> Result<SocketAddr, Refusal> {
        let Some(text) = addr else {
            // This lab's listening server, or failing that a bound one: a
            // connect to a server that never listened is a lesson too.
            let server = self
                .sockets
                .open
                .values()
                .filter(|socket| socket.role == Role::Server && socket.local.is_some())
                .max_by_key(|socket| socket.listening)
                .and_then(|socket| socket.local);
            return server.ok_or_else(|| {
                refuse(
                    id,
                    ErrorCode::BadState,
                    "This lab has no bound server to connect to. Bind a server first, or give \"addr\".",
                )
            });
        };
        let target = parse_addr(id, &text)?;
        if !target.is_ipv4() {
            return Err(refuse(
                id,
                ErrorCode::BadArgs,
                "Labs use IPv4 (AF_INET) sockets; give an IPv4 address.",
            ));
        }
        let own = crate::host::is_own(target.ip(), &self.settings.host_addresses);
        if !own && !self.settings.allowed_connect_targets.contains(&target) {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!(
                    "Labs connect only to addresses on this host. The teacher can allow {target} with --allow-connect {target}."
                ),
            ));
        }
        Ok(target)
    }

    pub(in crate::engine) fn connect(
        &mut self,
        call: CallContext,
        addr: Option<String>,
    ) -> Result<(), Refusal> {
        let target = self.resolve_connect_target(call.id, addr)?;
        self.check_not_waiting(&call, Direction::Outbound)?;
        self.bind_first(call, false)?;
        let Some(socket) = self.sockets.open.get_mut(&call.sock) else {
            return Ok(());
        };
        let (result, at) = timed(|| socket.socket.connect(&target.into()));
        // The kernel bound the socket to an ephemeral port inside connect():
        // learn it now, so the SYN is known as this socket's.
        socket.refresh_local();
        match (result, at) {
            (Err(error), at) if error.raw_os_error() == Some(libc::EINPROGRESS) => {
                socket.peer = Some(target);
                let blocked = Blocked {
                    c: render::with_sockaddr("connect", call.fd, &target, &Err(error)),
                    errno: libc::EINPROGRESS,
                    note: Note::HandshakeInProgress,
                    direction: Direction::Outbound,
                    peer: Some(target),
                };
                self.block(
                    call,
                    at,
                    blocked,
                    sys::connect_outcome,
                    move |lab, call, result, at| lab.finish_connect(call, target, result, at),
                );
            }
            (result, at) => self.finish_connect(call, target, result, at),
        }
        Ok(())
    }

    fn finish_connect(
        &mut self,
        call: CallContext,
        target: SocketAddr,
        result: io::Result<()>,
        at: Stamp,
    ) {
        let local = self.sockets.open.get_mut(&call.sock).and_then(|socket| {
            if result.is_ok() {
                socket.peer = Some(target);
                socket.refresh_local();
            }
            socket.local
        });
        let result = result.map(|()| 0);
        let c = render::with_sockaddr("connect", call.fd, &target, &result);
        let mut event = call.answered(&result, c, at);
        event.peer = Some(target.to_string());
        event.local = local.map(|addr| addr.to_string());
        if result.is_ok() {
            event.note = Some(Note::HandshakeComplete);
        }
        self.emit(at, event);
    }
}
