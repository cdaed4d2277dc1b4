//! What a tracer tells the relay of the program it traces, and what the
//! relay answers: the messages of `relay trace`'s control socket.
//!
//! A tracer runs in the `relay trace` process (the tracee's parent, which
//! is what ptrace permits); the lab that shows the program runs in the
//! relay. Both ends are this binary, so the messages are plain serde types.

use std::net::SocketAddr;

use protocol::{OpName, Role};
use serde::{Deserialize, Serialize};

use crate::engine::clock::Stamp;

/// From `relay trace` to the relay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Message {
    /// A new lab for this program; the relay answers [`Reply::Opened`].
    Open { program: String },
    /// Put this program's lanes in the lab with this code, beside the
    /// program already traced there; [`Reply::Opened`] again.
    Join { code: String, program: String },
    /// Something the traced program did.
    Report(Report),
}

/// From the relay to `relay trace`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    /// The lab that shows the program, by its code.
    Opened { code: String },
    /// Why there is no lab for it.
    Refused { reason: String },
    /// The lab has handled a report the program waits on: it has let go of
    /// its own copy of a socket the program is about to close (see
    /// [`Report::Closing`]), or taken in the socket a call made (see
    /// [`Report::Returned`]).
    Handled,
}

/// One thing a traced program did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Report {
    /// A socket call returned. A `socket()` or `accept()` that made a
    /// socket carries a copy of it (`pidfd_getfd`) beside the message, so
    /// that the lab can ask the kernel for its state; the tracer then holds
    /// the program until the relay answers [`Reply::Handled`]. The lab so
    /// knows the socket before the program can use it, and names it on the
    /// wire from its first segment: a connect's SYN leaves the client's lane,
    /// not "outside".
    Returned(TracedCall),
    /// A call has been in the kernel for [`SLEEPS_AFTER_US`]: the thread
    /// sleeps there.
    Sleeps(TracedCall),
    /// The program is about to close a socket fd. The tracer holds it at
    /// the entry of close() until the relay answers [`Reply::Handled`]: the
    /// lab's copy must not keep the connection open past the program's own
    /// close, or the FIN would leave later than the program asked.
    Closing { process: u32, fd: i32 },
    /// A process forked: the child holds copies of the parent's fds.
    Forked {
        parent: u32,
        child: u32,
        lane: String,
    },
    /// A process ended, as the lab's `exited` event will say.
    Exited {
        process: u32,
        ending: protocol::Exited,
        at: Stamp,
    },
}

/// How long a call must have been in the kernel to count as sleeping there:
/// longer than any call that does not wait takes, even traced.
pub const SLEEPS_AFTER_US: u64 = 2_000;

/// One socket call, as the program made it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TracedCall {
    /// The process (thread group) whose fd table the fd is in.
    pub process: u32,
    /// The program and pid, as `server[4242]`.
    pub lane: String,
    /// The side of the lesson the program plays.
    pub role: Role,
    pub op: OpName,
    pub fd: i32,
    /// The call as C writes it, with the program's own arguments; without
    /// its result while it sleeps.
    pub c: String,
    /// The return value, and the errno name when it failed.
    pub ret: i64,
    pub errno: Option<i32>,
    /// When the call entered the kernel, and when it returned (or, for
    /// [`Report::Sleeps`], when it was seen still there).
    pub entered: Stamp,
    pub at: Stamp,
    /// The addresses the call named or returned (bind's, connect's,
    /// accept's peer).
    pub addr: Option<SocketAddr>,
    /// The bytes sent or read, up to [`DATA_BYTES`].
    pub data: Option<Vec<u8>>,
    /// The fd `accept` returned.
    pub new_fd: Option<i32>,
}

/// The most bytes of one send or read a traced call shows.
pub const DATA_BYTES: usize = 16 * 1024;
