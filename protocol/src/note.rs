//! What happened underneath a call, as a stable key. The relay names the
//! case; the page owns the words, in every language it speaks, so a sentence
//! is never written twice or paired with another by hand.

use serde::{Deserialize, Deserializer, Serialize};

/// The case a `call` event is an instance of, beyond its return value and
/// errno. Tagged by `key`; a few carry the numbers their sentence needs.
///
/// Written by serde's derive; read by the `Deserialize` below, which reads
/// the same shape without serde's buffering of internally tagged enums (a
/// few KB of the page's wasm).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    /// A traced program's call has been in the kernel for a while: its
    /// thread really sleeps there (a blocking socket), until the kernel
    /// wakes it.
    ThreadSleeps,
}

/// Every note's key, as serde writes it.
const NOTE_KEYS: &[&str] = &[
    "non_blocking_socket",
    "ports_skipped",
    "kernel_picked_port",
    "bound_before_listen",
    "bound_before_connect",
    "accept_queue_length",
    "accept_queue_empty",
    "accept_took_connection",
    "handshake_in_progress",
    "handshake_complete",
    "send_buffer_full",
    "bytes_queued",
    "nothing_to_read",
    "end_of_file",
    "read_needs_connection",
    "abortive_close",
    "fin_wait2_timeout",
    "reuse_address",
    "fd_closed",
    "wait_abandoned",
    "thread_sleeps",
];

impl<'de> Deserialize<'de> for Note {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Note, D::Error> {
        use serde::de::Error;
        /// Every field any note carries, beside its key.
        #[derive(Deserialize)]
        struct Flat {
            key: String,
            #[serde(default)]
            ports: Vec<u16>,
            backlog: Option<i32>,
            seconds: Option<i32>,
            because: Option<AbandonReason>,
        }
        let flat = Flat::deserialize(deserializer)?;
        let missing = |field| D::Error::missing_field(field);
        Ok(match flat.key.as_str() {
            "non_blocking_socket" => Note::NonBlockingSocket,
            "ports_skipped" => Note::PortsSkipped { ports: flat.ports },
            "kernel_picked_port" => Note::KernelPickedPort,
            "bound_before_listen" => Note::BoundBeforeListen,
            "bound_before_connect" => Note::BoundBeforeConnect,
            "accept_queue_length" => Note::AcceptQueueLength {
                backlog: flat.backlog.ok_or_else(|| missing("backlog"))?,
            },
            "accept_queue_empty" => Note::AcceptQueueEmpty,
            "accept_took_connection" => Note::AcceptTookConnection,
            "handshake_in_progress" => Note::HandshakeInProgress,
            "handshake_complete" => Note::HandshakeComplete,
            "send_buffer_full" => Note::SendBufferFull,
            "bytes_queued" => Note::BytesQueued,
            "nothing_to_read" => Note::NothingToRead,
            "end_of_file" => Note::EndOfFile,
            "read_needs_connection" => Note::ReadNeedsConnection,
            "abortive_close" => Note::AbortiveClose,
            "fin_wait2_timeout" => Note::FinWait2Timeout {
                seconds: flat.seconds.ok_or_else(|| missing("seconds"))?,
            },
            "reuse_address" => Note::ReuseAddress,
            "fd_closed" => Note::FdClosed,
            "wait_abandoned" => Note::WaitAbandoned {
                because: flat.because.ok_or_else(|| missing("because"))?,
            },
            "thread_sleeps" => Note::ThreadSleeps,
            other => return Err(D::Error::unknown_variant(other, NOTE_KEYS)),
        })
    }
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
    fn every_note_reads_back_as_serde_writes_it() {
        let notes = [
            Note::NonBlockingSocket,
            Note::PortsSkipped { ports: vec![7001] },
            Note::PortsSkipped { ports: vec![] },
            Note::KernelPickedPort,
            Note::BoundBeforeListen,
            Note::BoundBeforeConnect,
            Note::AcceptQueueLength { backlog: 5 },
            Note::AcceptQueueEmpty,
            Note::AcceptTookConnection,
            Note::HandshakeInProgress,
            Note::HandshakeComplete,
            Note::SendBufferFull,
            Note::BytesQueued,
            Note::NothingToRead,
            Note::EndOfFile,
            Note::ReadNeedsConnection,
            Note::AbortiveClose,
            Note::FinWait2Timeout { seconds: 30 },
            Note::ReuseAddress,
            Note::FdClosed,
            Note::WaitAbandoned {
                because: AbandonReason::LabReset,
            },
            Note::ThreadSleeps,
        ];
        let mut keys = Vec::new();
        for note in notes {
            let json = serde_json::to_string(&note).expect("serialise");
            assert_eq!(serde_json::from_str::<Note>(&json).expect(&json), note);
            let value: serde_json::Value = serde_json::from_str(&json).expect("json");
            keys.push(value["key"].as_str().expect("a key").to_string());
        }
        keys.dedup();
        assert_eq!(keys, NOTE_KEYS, "every key, in order, once");
        assert!(serde_json::from_str::<Note>(r#"{"key":"nonsense"}"#).is_err());
        assert!(serde_json::from_str::<Note>(r#"{"key":"accept_queue_length"}"#).is_err());
    }

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
