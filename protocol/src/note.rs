//! What happened underneath a call, as a stable key. The relay names the
//! case; the page owns the words, in every language it speaks, so a sentence
//! is never written twice or paired with another by hand.

use serde::{Deserialize, Serialize};

/// The case a `call` event is an instance of, beyond its return value and
/// errno. Tagged by `key`; a few carry the numbers their sentence needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "key", rename_all = "snake_case")]
pub enum Note {
    /// socket(): the relay asks for SOCK_NONBLOCK because it runs under tokio.
    NonBlockingSocket,
    /// bind() without a port: these lab ports answered EADDRINUSE (an
    /// outsider, or an old connection in TIME_WAIT, holds them), so the relay
    /// took the next free one.
    PortsSkipped { ports: Vec<u16> },
    /// bind() to port 0: the kernel picked the port.
    KernelPickedPort,
    /// A bind the relay made before listen() on an unbound socket, so that
    /// the kernel does not bind it to 0.0.0.0 (every interface).
    BoundBeforeListen,
    /// A bind the relay made before connect() on an unbound socket, so that
    /// the connection leaves from the lab's address.
    BoundBeforeConnect,
    /// listen(): the backlog is the length of the accept queue.
    AcceptQueueLength { backlog: i32 },
    /// accept() answered EAGAIN: the queue is empty; the relay waits for epoll.
    AcceptQueueEmpty,
    /// accept() took a finished connection off the queue as a new fd.
    AcceptTookConnection,
    /// connect() answered EINPROGRESS: the SYN is out; the relay waits for
    /// writability and reads SO_ERROR.
    HandshakeInProgress,
    /// connect() returned 0: the three-way handshake is complete.
    HandshakeComplete,
    /// send() answered EAGAIN: the send buffer is full.
    SendBufferFull,
    /// send() returned: the bytes are in the kernel's send buffer.
    BytesQueued,
    /// read() answered EAGAIN: nothing has arrived yet.
    NothingToRead,
    /// read() returned 0: end of file, the peer's FIN arrived.
    EndOfFile,
    /// read() on a socket that is not connected (a listener, say).
    ReadNeedsConnection,
    /// setsockopt(SO_LINGER) with l_linger 0: close() will send RST.
    AbortiveClose,
    /// setsockopt(TCP_LINGER2): how long an orphaned FIN_WAIT2 may last.
    FinWait2Timeout { seconds: i32 },
    /// setsockopt(SO_REUSEADDR, 1): bind may take a port in TIME_WAIT.
    ReuseAddress,
    /// close(): the fd is gone; the kernel finishes the connection alone.
    FdClosed,
    /// The relay stopped waiting for a blocked call; no further system call
    /// was made for it.
    WaitAbandoned { because: AbandonReason },
}

/// Why a blocked call was abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbandonReason {
    /// close() was called on its socket.
    SocketClosed,
    /// The lab was reset.
    LabReset,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_tagged_by_key_with_their_numbers() {
        let note = Note::PortsSkipped {
            ports: vec![7001, 7002],
        };
        let json = serde_json::to_string(&note).expect("serialise");
        assert_eq!(json, r#"{"key":"ports_skipped","ports":[7001,7002]}"#);
        assert_eq!(serde_json::from_str::<Note>(&json).expect("parse"), note);
        let json = serde_json::to_string(&Note::EndOfFile).expect("serialise");
        assert_eq!(json, r#"{"key":"end_of_file"}"#);
    }
}
