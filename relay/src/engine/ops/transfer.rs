//! send(), read() and shutdown(): the bytes of a connection, and its half-close.

use std::io;

use protocol::{ErrorCode, Note, Refusal, ShutdownHow};

use super::{CallContext, clone_error, is_would_block, refuse, timed};
use crate::engine::clock::Stamp;
use crate::engine::lab::Lab;
use crate::engine::render;
use crate::engine::sys;
use crate::engine::wait::{Blocked, Direction};

/// The seed's read size.
const DEFAULT_READ_BYTES: u32 = 1024;

impl Lab {
    pub(in crate::engine) fn send(
        &mut self,
        call: CallContext,
        data: Option<String>,
        hex: Option<String>,
    ) -> Result<(), Refusal> {
        let bytes = match (data, hex) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(hex)) => render::parse_hex(&hex).ok_or_else(|| {
                refuse(
                    call.id,
                    ErrorCode::BadArgs,
                    "\"hex\" must be pairs of hex digits, such as \"68 69\".",
                )
            })?,
            _ => {
                return Err(refuse(
                    call.id,
                    ErrorCode::BadArgs,
                    "send needs exactly one of \"data\" (text) or \"hex\" (bytes).",
                ));
            }
        };
        let limit = self.settings.limits.send_bytes as usize;
        if bytes.len() > limit {
            return Err(refuse(
                call.id,
                ErrorCode::Limit,
                format!(
                    "A send may carry at most {limit} bytes; this one has {}.",
                    bytes.len()
                ),
            ));
        }
        self.check_not_waiting(&call, Direction::Outbound)?;
        match timed(|| sys::send(call.fd, &bytes)) {
            (Err(error), at) if is_would_block(&error) => {
                let blocked = Blocked {
                    c: send_c(&call, &bytes, &Err(error)),
                    errno: libc::EAGAIN,
                    note: Note::SendBufferFull,
                    direction: Direction::Outbound,
                    peer: None,
                };
                let retry = bytes.clone();
                self.block(
                    call,
                    at,
                    blocked,
                    move |fd| sys::send(fd, &retry),
                    move |lab, call, result, at| lab.finish_send(call, &bytes, result, at),
                );
            }
            (result, at) => self.finish_send(call, &bytes, result, at),
        }
        Ok(())
    }

    fn finish_send(
        &mut self,
        call: CallContext,
        bytes: &[u8],
        result: io::Result<usize>,
        at: Stamp,
    ) {
        let result = result.map(|count| count as i64);
        let mut event = call.answered(&result, send_c(&call, bytes, &result), at);
        if let Ok(count) = result {
            let (data, hex) = render::payload(&bytes[..count as usize]);
            event.data = data;
            event.hex = hex;
            event.note = Some(Note::BytesQueued);
        }
        self.emit(at, event);
    }

    pub(in crate::engine) fn read(
        &mut self,
        call: CallContext,
        max: Option<u32>,
    ) -> Result<(), Refusal> {
        let max = max.unwrap_or(DEFAULT_READ_BYTES);
        let limit = self.settings.limits.read_bytes;
        if max == 0 || max > limit {
            return Err(refuse(
                call.id,
                ErrorCode::BadArgs,
                format!("\"max\" must be between 1 and {limit} bytes; the seed reads 1024."),
            ));
        }
        self.check_not_waiting(&call, Direction::Inbound)?;
        let max = max as usize;
        match timed(|| sys::read(call.fd, max)) {
            (Err(error), at) if is_would_block(&error) => {
                let blocked = Blocked {
                    c: format!(
                        "read({}, buffer, {max}){}",
                        call.fd,
                        render::result(&Err(error))
                    ),
                    errno: libc::EAGAIN,
                    note: Note::NothingToRead,
                    direction: Direction::Inbound,
                    peer: None,
                };
                self.block(
                    call,
                    at,
                    blocked,
                    move |fd| sys::read(fd, max),
                    move |lab, call, result, at| lab.finish_read(call, max, result, at),
                );
            }
            (result, at) => self.finish_read(call, max, result, at),
        }
        Ok(())
    }

    fn finish_read(
        &mut self,
        call: CallContext,
        max: usize,
        result: io::Result<Vec<u8>>,
        at: Stamp,
    ) {
        let ret = result
            .as_ref()
            .map(|bytes| bytes.len() as i64)
            .map_err(clone_error);
        let shown = match &result {
            Ok(bytes) => render::c_string(bytes),
            Err(_) => "buffer".to_string(),
        };
        let mut event = call.answered(
            &ret,
            format!("read({}, {shown}, {max}){}", call.fd, render::result(&ret)),
            at,
        );
        match &result {
            Ok(bytes) if bytes.is_empty() => event.note = Some(Note::EndOfFile),
            Ok(bytes) => {
                let (data, hex) = render::payload(bytes);
                event.data = data;
                event.hex = hex;
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOTCONN) => {
                event.note = Some(Note::ReadNeedsConnection);
            }
            Err(_) => {}
        }
        self.emit(at, event);
    }

    pub(in crate::engine) fn shutdown(
        &mut self,
        call: CallContext,
        how: ShutdownHow,
    ) -> Result<(), Refusal> {
        let Some(socket) = self.sockets.open.get(&call.sock) else {
            return Ok(());
        };
        let (std_how, name) = match how {
            ShutdownHow::Read => (std::net::Shutdown::Read, "SHUT_RD"),
            ShutdownHow::Write => (std::net::Shutdown::Write, "SHUT_WR"),
            ShutdownHow::Both => (std::net::Shutdown::Both, "SHUT_RDWR"),
        };
        let (result, at) = timed(|| socket.socket.shutdown(std_how).map(|()| 0));
        let event = call.answered(
            &result,
            format!("shutdown({}, {name}){}", call.fd, render::result(&result)),
            at,
        );
        self.emit(at, event);
        Ok(())
    }
}

/// The send as C writes it, with its result.
fn send_c(call: &CallContext, bytes: &[u8], result: &io::Result<i64>) -> String {
    format!(
        "send({}, {}, {}, MSG_NOSIGNAL){}",
        call.fd,
        render::c_string(bytes),
        bytes.len(),
        render::result(result)
    )
}
