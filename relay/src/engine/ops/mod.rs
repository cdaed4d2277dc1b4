//! The lab's operations, one file per family of system calls. Each op checks
//! what a student may ask, makes the one real call, and reports the kernel's
//! answer as a `call` event stamped when the call returned.

mod accept;
mod bind_listen;
mod connect;
mod lifecycle;
mod options;
mod traced;
mod transfer;

pub(super) use traced::ProgramFds;

use std::io;
use std::os::fd::RawFd;

use protocol::{Call, ErrorCode, OpName, Phase, Refusal, SockId};

use super::clock::{self, Stamp};
use super::sys;

/// What every event of one call repeats.
#[derive(Clone, Copy, Debug)]
pub(super) struct CallContext {
    pub id: u64,
    pub op: OpName,
    pub sock: SockId,
    pub fd: RawFd,
    /// When the command arrived, for the call's `elapsed_us`.
    pub started: Stamp,
}

impl CallContext {
    /// A call event of this call, in `phase` at `at`, written as `c`.
    pub fn event(&self, phase: Phase, c: String, at: Stamp) -> Call {
        Call {
            id: Some(self.id),
            op: Some(self.op),
            sock: Some(self.sock),
            fd: Some(self.fd),
            phase: Some(phase),
            c,
            elapsed_us: Some(at.saturating_sub(self.started) / 1000),
            ..Call::default()
        }
    }

    /// A call event carrying the kernel's answer: `done` with `ret`, or
    /// `failed` with -1, the errno and strerror.
    pub fn answered(&self, result: &io::Result<i64>, c: String, at: Stamp) -> Call {
        let mut call = self.event(Phase::Done, c, at);
        match result {
            Ok(value) => call.ret = Some(*value),
            Err(error) => {
                let errno = error.raw_os_error().unwrap_or(0);
                call.phase = Some(Phase::Failed);
                call.ret = Some(-1);
                call.errno = Some(sys::errno_name(errno));
                call.message = Some(sys::strerror(errno));
            }
        }
        call
    }
}

pub(super) fn refuse(id: u64, code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal::new(Some(id), code, message)
}

/// An `addr` field of a command, as bind and connect take it.
fn parse_addr(id: u64, text: &str) -> Result<std::net::SocketAddr, Refusal> {
    text.parse().map_err(|_| {
        refuse(
            id,
            ErrorCode::BadArgs,
            format!("\"{text}\" is not an IPv4 address and port such as 127.0.0.1:7001."),
        )
    })
}

/// Makes a system call and stamps the moment it returned.
fn timed<T>(call: impl FnOnce() -> T) -> (T, Stamp) {
    let result = call();
    (result, clock::now())
}

fn is_would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

fn clone_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}
