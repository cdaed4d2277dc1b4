//! Events: what the relay saw the kernel do, in the order it saw it.

use serde::{Deserialize, Serialize};

use crate::{Note, OpName, Role, SockId};

/// One frame from the relay. `seq` counts 1, 2, 3, … per lab with no gaps
/// (0 marks a follower's own session speaking, not the lab: `history`, and
/// the `read_only` refusal);
/// `t_us` is microseconds since the session began, when the thing happened in
/// the kernel, and never goes backwards: `seq` order is `t_us` order.
///
/// It is written with serde; [`crate::decode_event`] reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub seq: u64,
    pub t_us: u64,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The kinds of event, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Hello(Hello),
    Call(Call),
    State(SockState),
    Segment(Segment),
    Error(ErrorEvent),
    /// A `reset` command has finished: every socket it closed has its
    /// `call` event before this one. Sent even when there was nothing to
    /// close, so a reset always has an answer.
    Reset(ResetDone),
    /// Segments of this lab that the relay captured but could not keep, so
    /// the page knows its wire view has a hole there.
    Gap(Gap),
    /// How many screens follow this lab now; sent to its owner and to every
    /// follower whenever the count changes.
    Viewers(Viewers),
    /// A traced program ended (`relay trace`): its exit status, or the
    /// signal that killed it. Its lane stays on the stage.
    Exited(Exited),
    /// To a follower only, with `seq` 0 (it is not one of the lab's events):
    /// the lab's history follows, from its `hello` on, and then its live
    /// events. With `resync`, the follower fell behind and gets the history
    /// afresh: it should draw the lab again from it.
    History(History),
}

/// How a traced program ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// The program and its pid, as its calls' `lane` names it.
    pub lane: String,
    /// The status it passed to exit(), when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// The signal that ended it (`SIGSEGV`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// How many screens follow a lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewers {
    pub count: u32,
}

/// The start of a lab's history, as a follower receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The follower fell too far behind and gets the history again.
    pub resync: bool,
    /// How many of the lab's oldest events (after its `hello`) the relay no
    /// longer keeps, so the history starts later than the lesson did.
    pub let_go: u64,
}

/// Who a session is to its lab, reported in `hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seat {
    /// The lab is this browser's own.
    Owner,
    /// The classroom's shared lab, driven by the teacher.
    Presenter,
    /// Following another's lab: every event, no commands (`read_only`).
    Viewer,
}

/// Captured segments the relay let go of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// How many segments are missing from the wire view since the last event.
    pub segments: u64,
}

/// The end of a reset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetDone {
    /// The reset command's id.
    pub id: u64,
    /// How many sockets it closed.
    pub closed: u32,
}

/// The first frame of every session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The relay's name and version, for bug reports.
    pub relay: String,
    /// The IP a `bind` without `addr` uses.
    pub default_addr: String,
    /// The limits this relay enforces; a command past one gets `error` `limit`.
    pub limits: Limits,
    /// Whether the relay captures this lab's segments on the wire.
    pub capture: bool,
    /// When `capture` is false, why, and how to turn it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_reason: Option<String>,
    /// Whether every change of TCP state is seen as the kernel makes it (its
    /// `inet_sock_set_state` trace), or only what each poll finds: a state
    /// that lasts less than a poll (FIN_WAIT1, LAST_ACK on loopback) is then
    /// never reported.
    #[serde(default)]
    pub states_traced: bool,
    /// When `states_traced` is false, why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states_reason: Option<String>,
    /// The lab's unguessable name (128 random bits, in hex): whoever has it
    /// may fetch `/labs/CODE/capture.pcapng`, and follow the lab
    /// (`/ws?follow=CODE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Who this session is to the lab; absent from older relays, whose
    /// every session owned its lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Seat>,
    /// In classroom mode, the URL students open to follow the teacher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classroom: Option<String>,
}

/// The limits a relay enforces, reported in `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub sockets_per_lab: u32,
    pub labs_per_relay: u32,
    pub send_bytes: u32,
    pub read_bytes: u32,
    pub frame_bytes: u32,
    /// The first and last port a lab may bind, both included.
    pub port_range: [u16; 2],
    /// How many ports of the range one lab may hold at once; a port held
    /// by one lab may not be bound by another, on any address.
    #[serde(default)]
    pub ports_per_lab: u32,
}

/// How far a system call got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The kernel answered EAGAIN or EINPROGRESS; the relay waits for readiness.
    Blocked,
    Done,
    Failed,
    /// The relay stopped waiting for a blocked call, because its socket was
    /// closed or the lab was reset. No further system call was made for it.
    Cancelled,
}

/// One phase of one system call.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Call {
    /// The command's id; null for calls the relay made on its own, such as the
    /// closes when a lab is torn down.
    pub id: Option<u64>,
    pub op: Option<OpName>,
    pub sock: Option<SockId>,
    pub fd: Option<i32>,
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// The errno's symbolic name, such as `ECONNREFUSED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// strerror(errno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The call as C would write it, with its real arguments and result.
    pub c: String,
    /// What happened underneath, as a key the page words in its language:
    /// for example, that a blocked accept is a real EAGAIN followed by a wait
    /// for readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    /// The role of a socket that `socket` or `accept` created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sock: Option<SockId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_fd: Option<i32>,
    /// The bytes sent or read, when they are UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The bytes sent or read, in hex, when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// From the command's arrival to this phase, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_us: Option<u64>,
    /// In a traced lab (`relay trace`), the process that made the call: its
    /// program and pid, as `server[4242]`. Each is a lane of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
}

/// The kernel's TCP states, named as Linux names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    BoundInactive,
}

impl TcpState {
    /// Maps `tcpi_state` (include/net/tcp_states.h) to its name.
    pub fn from_linux(value: u8) -> Option<TcpState> {
        Some(match value {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            12 => TcpState::NewSynRecv,
            13 => TcpState::BoundInactive,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
            TcpState::BoundInactive => "BOUND_INACTIVE",
        }
    }

    /// States the kernel leaves on its own, which the relay therefore polls.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            TcpState::SynSent
                | TcpState::SynRecv
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::TimeWait
                | TcpState::Closing
                | TcpState::LastAck
                | TcpState::NewSynRecv
        )
    }
}

/// The kernel's view of one socket, sent whenever it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SockState {
    pub sock: SockId,
    /// The fd while the process holds it; null once closed.
    pub fd: Option<i32>,
    pub role: Role,
    /// getsockopt(TCP_INFO)'s `tcpi_state`, or the kernel's traced change,
    /// while the fd is open; after close, what the kernel still holds of
    /// that exact connection (sock_diag: TIME_WAIT, say), or CLOSE, once,
    /// when it has forgotten it.
    pub tcp: TcpState,
    /// False once close(2) has returned. A TIME_WAIT with `fd_open` false
    /// belongs to the kernel alone.
    pub fd_open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// For LISTEN: connections waiting in the accept queue (`tcpi_unacked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// For LISTEN: the accept queue's capacity (`tcpi_sacked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
}

/// Who made a segment go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A call of the lab, named by `id`.
    Call,
    /// The kernel on its own: a SYN-ACK, a pure ACK, a retransmission.
    Kernel,
}

/// One TCP segment captured on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub src: String,
    pub dst: String,
    pub flags: Vec<String>,
    /// The sequence number as on the wire. Named `tcp_seq` because `seq` is
    /// the event's own counter.
    pub tcp_seq: u32,
    /// The acknowledgement number as on the wire.
    pub tcp_ack: u32,
    pub rel_seq: u32,
    pub rel_ack: u32,
    pub len: u32,
    pub win: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_sock: Option<SockId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_sock: Option<SockId>,
    pub cause: Cause,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// When the page falls behind, consecutive segments of one flow (data
    /// and pure ACKs, never SYN, FIN or RST) are sent as one event: this many,
    /// with `len` their payload in all and the numbers of the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesced: Option<u32>,
}

impl Segment {
    /// Whether the segment carries this TCP flag (`"ACK"`, `"FIN"`, …).
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|set| set == flag)
    }
}

/// Why a command was refused before any system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    UnknownOp,
    BadArgs,
    BadState,
    Limit,
    /// The session follows a lab it may not drive.
    ReadOnly,
}

impl ErrorCode {
    /// The code as the protocol writes it (`bad_state`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadArgs => "bad_args",
            ErrorCode::BadState => "bad_state",
            ErrorCode::Limit => "limit",
            ErrorCode::ReadOnly => "read_only",
        }
    }
}

/// A refused command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PROTOCOL_VERSION, decode_event, encode_event};

    #[test]
    fn error_codes_are_named_as_serde_writes_them() {
        use ErrorCode::*;
        for code in [BadJson, UnknownOp, BadArgs, BadState, Limit] {
            let json = serde_json::to_string(&code).expect("serialise");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    fn hello() -> Event {
        Event {
            seq: 1,
            t_us: 0,
            body: EventBody::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                relay: "socket-flow 0.1.0".into(),
                default_addr: "127.0.0.1".into(),
                limits: Limits {
                    sockets_per_lab: 16,
                    labs_per_relay: 64,
                    send_bytes: 16384,
                    read_bytes: 65536,
                    frame_bytes: 65536,
                    port_range: [7001, 7999],
                    ports_per_lab: 8,
                },
                capture: false,
                capture_reason: Some("not root".into()),
                states_traced: false,
                states_reason: Some("not root".into()),
                code: Some("00112233445566778899aabbccddeeff".into()),
                role: Some(Seat::Owner),
                classroom: None,
            }),
        }
    }

    #[test]
    fn hello_starts_with_seq_and_kind() {
        let text = encode_event(&hello());
        assert!(
            text.starts_with(r#"{"seq":1,"t_us":0,"kind":"hello","protocol":1,"#),
            "{text}"
        );
        assert_eq!(decode_event(&text), Ok(hello()));
    }

    #[test]
    fn every_kind_round_trips() {
        let bodies = vec![
            EventBody::Call(Call {
                id: Some(3),
                op: Some(OpName::Bind),
                sock: Some(1),
                fd: Some(5),
                phase: Some(Phase::Failed),
                ret: Some(-1),
                errno: Some("EADDRINUSE".into()),
                message: Some("Address already in use".into()),
                c: "bind(5, {AF_INET, 127.0.0.1:7001}, 16) = -1 EADDRINUSE".into(),
                ..Call::default()
            }),
            EventBody::State(SockState {
                sock: 1,
                fd: Some(5),
                role: Role::Server,
                tcp: TcpState::Listen,
                fd_open: true,
                local: Some("127.0.0.1:7001".into()),
                peer: None,
                queue: Some(0),
                backlog: Some(5),
            }),
            EventBody::Segment(Segment {
                src: "127.0.0.1:50000".into(),
                dst: "127.0.0.1:7001".into(),
                flags: vec!["SYN".into()],
                tcp_seq: 1234,
                tcp_ack: 0,
                rel_seq: 0,
                rel_ack: 0,
                len: 0,
                win: 65495,
                payload: None,
                payload_hex: None,
                src_sock: Some(2),
                dst_sock: Some(1),
                cause: Cause::Call,
                id: Some(9),
                coalesced: None,
            }),
            EventBody::Error(ErrorEvent {
                id: None,
                code: ErrorCode::BadJson,
                message: "no".into(),
            }),
            EventBody::Reset(ResetDone { id: 4, closed: 2 }),
            EventBody::Gap(Gap { segments: 12 }),
            EventBody::Viewers(Viewers { count: 3 }),
            EventBody::History(History {
                resync: true,
                let_go: 40,
            }),
        ];
        for (seq, body) in bodies.into_iter().enumerate() {
            let event = Event {
                seq: seq as u64 + 2,
                t_us: 10,
                body,
            };
            assert_eq!(decode_event(&encode_event(&event)), Ok(event));
        }
    }

    #[test]
    fn tcp_states_use_linux_names() {
        for value in 1..=13 {
            let state = TcpState::from_linux(value).expect("known state");
            let json = serde_json::to_string(&state).expect("serialise");
            assert_eq!(json, format!("\"{}\"", state.name()));
        }
        assert_eq!(TcpState::from_linux(0), None);
    }

    #[test]
    fn unknown_kinds_are_errors_not_panics() {
        assert!(decode_event(r#"{"seq":1,"t_us":0,"kind":"martian"}"#).is_err());
        assert!(decode_event("garbage").is_err());
    }
}
