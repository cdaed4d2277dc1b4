//! bind() and listen(): where a server waits, and how long its accept queue is.

use std::net::SocketAddr;
use std::sync::Arc;

use protocol::{ErrorCode, Note, Refusal};

use super::{CallContext, parse_addr, refuse, timed};
use crate::engine::lab::Lab;
use crate::engine::ports::Denied;
use crate::engine::render;
use crate::engine::sys;

/// The seed's backlog.
const DEFAULT_BACKLOG: i32 = 5;
const MAX_BACKLOG: i32 = 4096;

impl Lab {
    pub(in crate::engine) fn bind(
        &mut self,
        call: CallContext,
        addr: Option<String>,
    ) -> Result<(), Refusal> {
        let requested = match addr {
            Some(text) => Some(self.parse_bind_addr(call.id, &text)?),
            None => None,
        };
        self.bind_to(call, requested, None, "")
    }

    /// bind(2) to `requested`, or to a free lab port of the lab's address.
    /// A lab-range port must be free or already this lab's.
    fn bind_to(
        &mut self,
        call: CallContext,
        requested: Option<SocketAddr>,
        note: Option<Note>,
        c_before: &str,
    ) -> Result<(), Refusal> {
        let ports = Arc::clone(&self.settings.ports);
        let (lab, lab_ip) = (self.settings.lab_id, self.settings.lab_ip);
        let Some(socket) = self.sockets.open.get_mut(&call.sock) else {
            return Ok(());
        };
        let ((target, result, skipped), at) = match requested {
            Some(target) => {
                ports
                    .claim(lab, target.port())
                    .map_err(|denied| refuse_port(call.id, target.port(), denied))?;
                let (result, at) = timed(|| socket.socket.bind(&target.into()));
                if result.is_ok() && ports.contains(target.port()) {
                    socket.held_port = Some(target.port());
                } else if ports.contains(target.port()) {
                    ports.release(target.port());
                }
                ((target, result, Vec::new()), at)
            }
            None => {
                // A free port of the lab range. Ports that an outsider holds
                // answer EADDRINUSE and are skipped; the event says which.
                let mut skipped = Vec::new();
                loop {
                    let port = ports
                        .reserve(lab, &skipped)
                        .map_err(|denied| refuse_port(call.id, 0, denied))?;
                    let target = SocketAddr::new(lab_ip, port);
                    let (result, at) = timed(|| socket.socket.bind(&target.into()));
                    match &result {
                        Err(error) if error.raw_os_error() == Some(libc::EADDRINUSE) => {
                            ports.release(port);
                            skipped.push(port);
                        }
                        Ok(()) => {
                            socket.held_port = Some(port);
                            break ((target, result, skipped), at);
                        }
                        Err(_) => {
                            ports.release(port);
                            break ((target, result, skipped), at);
                        }
                    }
                }
            }
        };
        if result.is_ok() {
            socket.refresh_local();
        }
        let local = socket.local;
        let result = result.map(|()| 0);
        let c = format!(
            "{c_before}{}",
            render::with_sockaddr("bind", call.fd, &target, &result)
        );
        let mut event = call.answered(&result, c, at);
        event.local = local.map(|addr| addr.to_string());
        event.note = if note.is_some() {
            note
        } else if !skipped.is_empty() {
            Some(Note::PortsSkipped { ports: skipped })
        } else if target.port() == 0 && result.is_ok() {
            Some(Note::KernelPickedPort)
        } else {
            None
        };
        self.emit(at, event);
        Ok(())
    }

    /// Binds an unbound socket before listen() or connect(), so that the
    /// kernel never binds it to 0.0.0.0 on its own: a listener to a free
    /// lab port, a client to the lab's address with a port the kernel picks.
    pub(super) fn bind_first(
        &mut self,
        call: CallContext,
        for_listen: bool,
    ) -> Result<(), Refusal> {
        let unbound = self
            .sockets
            .open
            .get(&call.sock)
            .is_some_and(|socket| socket.local.is_none_or(|addr| addr.port() == 0));
        let lab_ip = self.settings.lab_ip;
        if !unbound || (!for_listen && lab_ip.is_unspecified()) {
            return Ok(());
        }
        let bind_call = CallContext {
            op: protocol::OpName::Bind,
            ..call
        };
        if for_listen {
            self.bind_to(bind_call, None, Some(Note::BoundBeforeListen), "")
        } else {
            // The port is left to connect(): see set_bind_address_no_port.
            let c_before = match sys::set_bind_address_no_port(call.fd) {
                Ok(()) => format!(
                    "setsockopt({}, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, [1], 4) = 0; ",
                    call.fd
                ),
                Err(_) => String::new(),
            };
            let target = SocketAddr::new(lab_ip, 0);
            self.bind_to(
                bind_call,
                Some(target),
                Some(Note::BoundBeforeConnect),
                &c_before,
            )
        }
    }

    fn parse_bind_addr(&self, id: u64, text: &str) -> Result<SocketAddr, Refusal> {
        let target = parse_addr(id, text)?;
        let ip = target.ip();
        let lab_ip = self.settings.lab_ip;
        let allowed_ip =
            ip.is_ipv4() && (ip.is_loopback() || ip == lab_ip || lab_ip.is_unspecified());
        if !allowed_ip {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!(
                    "Labs bind to loopback addresses{}. Binding {ip} needs the teacher to start the relay with --lab-ip.",
                    if lab_ip.is_loopback() {
                        String::new()
                    } else {
                        format!(" or {lab_ip}")
                    }
                ),
            ));
        }
        let range = &self.settings.limits.port_range;
        if target.port() != 0 && !(range[0]..=range[1]).contains(&target.port()) {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!(
                    "Labs bind ports {} to {} (or 0, to let the kernel pick). Port {} is outside that range.",
                    range[0],
                    range[1],
                    target.port()
                ),
            ));
        }
        Ok(target)
    }

    pub(in crate::engine) fn listen(
        &mut self,
        call: CallContext,
        backlog: Option<i32>,
    ) -> Result<(), Refusal> {
        let backlog = backlog.unwrap_or(DEFAULT_BACKLOG);
        if !(0..=MAX_BACKLOG).contains(&backlog) {
            return Err(refuse(
                call.id,
                ErrorCode::BadArgs,
                format!("The backlog must be between 0 and {MAX_BACKLOG}; the seed uses 5."),
            ));
        }
        self.bind_first(call, true)?;
        let Some(socket) = self.sockets.open.get_mut(&call.sock) else {
            return Ok(());
        };
        let (result, at) = timed(|| socket.socket.listen(backlog));
        if result.is_ok() {
            socket.listening = true;
            socket.refresh_local();
        }
        let local = socket.local;
        let result = result.map(|()| 0);
        let mut event = call.answered(
            &result,
            format!("listen({}, {backlog}){}", call.fd, render::result(&result)),
            at,
        );
        event.local = local.map(|addr| addr.to_string());
        if result.is_ok() {
            event.note = Some(Note::AcceptQueueLength { backlog });
        }
        self.emit(at, event);
        Ok(())
    }
}

/// The refusal for a lab port the lab may not have.
fn refuse_port(id: u64, port: u16, denied: Denied) -> Refusal {
    let message = match denied {
        Denied::OtherLab => format!(
            "Port {port} belongs to another lab on this relay. A lab port is one lab's on every \
             address, so that no lab sees another's traffic. Pick another port, or leave the \
             address empty to get a free one."
        ),
        Denied::LabFull(most) => {
            format!("A lab may hold {most} lab ports at once. Close a server socket first.")
        }
        Denied::RangeFull => {
            "Every port of this relay's lab range is in use. Close a server, or name a port."
                .to_string()
        }
    };
    refuse(id, ErrorCode::Limit, message)
}
