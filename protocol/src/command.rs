//! Commands: what a page asks the relay to do, one real system call each.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ErrorCode, Role, SockId};

/// One frame from the page: the sender's `id`, echoed on every event the
/// command causes, and the operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

/// The operations of protocol v1. Each maps to one system call; `reset` closes
/// every socket of the lab.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// socket(AF_INET, SOCK_STREAM, 0).
    Socket { role: Role },
    /// bind(2). No `addr`: the lab's default address and a free port of the
    /// relay's range. Port 0: the kernel picks.
    Bind {
        sock: SockId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<String>,
    },
    /// listen(2), with the seed's backlog of 5 unless given.
    Listen {
        sock: SockId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backlog: Option<i32>,
    },
    /// accept(2).
    Accept { sock: SockId },
    /// connect(2). No `addr`: this lab's listening server.
    Connect {
        sock: SockId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<String>,
    },
    /// send(2) of `data` (text) or `hex` (bytes), exactly one of the two.
    Send {
        sock: SockId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
    },
    /// read(2) of at most `max` bytes, 1024 unless given, as in the seed.
    Read {
        sock: SockId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u32>,
    },
    /// shutdown(2).
    Shutdown { sock: SockId, how: ShutdownHow },
    /// close(2).
    Close { sock: SockId },
    /// setsockopt(2).
    Setsockopt {
        sock: SockId,
        name: SockOptName,
        value: SockOptValue,
    },
    /// Closes every socket of the lab.
    Reset,
}

/// The names of the operations, as they appear in `op` of commands and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpName {
    Socket,
    Bind,
    Listen,
    Accept,
    Connect,
    Send,
    Read,
    Shutdown,
    Close,
    Setsockopt,
    Reset,
    /// dup(2), dup2(2) or dup3(2) in a traced program: another fd for the
    /// same socket. A page cannot ask for it, so it is not in [`OpName::ALL`].
    Dup,
    /// fcntl(2) F_SETFL in a traced program: the socket's file status flags,
    /// O_NONBLOCK among them, which decide whether its calls wait. A page
    /// cannot ask for it, so it is not in [`OpName::ALL`].
    Fcntl,
}

impl OpName {
    pub const ALL: [OpName; 11] = [
        OpName::Socket,
        OpName::Bind,
        OpName::Listen,
        OpName::Accept,
        OpName::Connect,
        OpName::Send,
        OpName::Read,
        OpName::Shutdown,
        OpName::Close,
        OpName::Setsockopt,
        OpName::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpName::Socket => "socket",
            OpName::Bind => "bind",
            OpName::Listen => "listen",
            OpName::Accept => "accept",
            OpName::Connect => "connect",
            OpName::Send => "send",
            OpName::Read => "read",
            OpName::Shutdown => "shutdown",
            OpName::Close => "close",
            OpName::Setsockopt => "setsockopt",
            OpName::Reset => "reset",
            OpName::Dup => "dup",
            OpName::Fcntl => "fcntl",
        }
    }
}

impl Op {
    pub fn name(&self) -> OpName {
        match self {
            Op::Socket { .. } => OpName::Socket,
            Op::Bind { .. } => OpName::Bind,
            Op::Listen { .. } => OpName::Listen,
            Op::Accept { .. } => OpName::Accept,
            Op::Connect { .. } => OpName::Connect,
            Op::Send { .. } => OpName::Send,
            Op::Read { .. } => OpName::Read,
            Op::Shutdown { .. } => OpName::Shutdown,
            Op::Close { .. } => OpName::Close,
            Op::Setsockopt { .. } => OpName::Setsockopt,
            Op::Reset => OpName::Reset,
        }
    }

    /// The socket the operation acts on, if it acts on one that exists.
    pub fn sock(&self) -> Option<SockId> {
        match self {
            Op::Socket { .. } | Op::Reset => None,
            Op::Bind { sock, .. }
            | Op::Listen { sock, .. }
            | Op::Accept { sock }
            | Op::Connect { sock, .. }
            | Op::Send { sock, .. }
            | Op::Read { sock, .. }
            | Op::Shutdown { sock, .. }
            | Op::Close { sock }
            | Op::Setsockopt { sock, .. } => Some(*sock),
        }
    }
}

/// shutdown(2)'s `how`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownHow {
    Read,
    Write,
    Both,
}

/// The socket options a page may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SockOptName {
    /// Lets bind reuse a port whose old connection sits in TIME_WAIT.
    #[serde(rename = "SO_REUSEADDR")]
    ReuseAddr,
    /// With a linger time of 0, close sends RST instead of FIN.
    #[serde(rename = "SO_LINGER")]
    Linger,
    /// Turns off Nagle's algorithm.
    #[serde(rename = "TCP_NODELAY")]
    NoDelay,
    /// How long, in seconds, an orphaned connection (its fd closed) may wait
    /// in FIN_WAIT2 for the peer's FIN before the kernel drops it.
    #[serde(rename = "TCP_LINGER2")]
    Linger2,
}

/// A socket option's value: a flag (`true`, `false`, `1`, `0`), or for
/// SO_LINGER the linger time in seconds, with `false` turning lingering off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SockOptValue {
    Flag(bool),
    Number(i32),
}

/// Why a command was refused before any system call was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The command's id, when the frame was readable enough to have one.
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            id,
            code,
            message: message.into(),
        }
    }
}

pub(crate) fn decode(text: &str) -> Result<Command, Refusal> {
    // A well-formed command, by far the most common frame, in one pass
    // (half the time of the checks below). Anything it does not take goes
    // the long way, which names what is wrong; so does `reset`, whose
    // unknown fields serde's deny_unknown_fields does not reach.
    match serde_json::from_str::<Command>(text) {
        Ok(command) if command.op != Op::Reset => Ok(command),
        _ => decode_checked(text),
    }
}

/// Reads a command field by field, refusing with the reason for a frame
/// that is not a command.
fn decode_checked(text: &str) -> Result<Command, Refusal> {
    let value: Value = serde_json::from_str(text).map_err(|error| {
        Refusal::new(
            None,
            ErrorCode::BadJson,
            format!("This frame is not valid JSON ({error}). Send one JSON object per frame."),
        )
    })?;
    let Value::Object(mut fields) = value else {
        return Err(Refusal::new(
            None,
            ErrorCode::BadJson,
            "A command must be a JSON object, such as {\"id\": 1, \"op\": \"socket\", \"role\": \"server\"}.",
        ));
    };
    let id = match fields.remove("id") {
        Some(Value::Number(number)) if number.as_u64().is_some() => number.as_u64(),
        Some(_) => {
            return Err(Refusal::new(
                None,
                ErrorCode::BadArgs,
                "\"id\" must be a whole number of 0 or more.",
            ));
        }
        None => {
            return Err(Refusal::new(
                None,
                ErrorCode::BadArgs,
                "Every command needs an \"id\", a number the events it causes will carry.",
            ));
        }
    };
    let op_name = match fields.get("op") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return Err(Refusal::new(
                id,
                ErrorCode::BadArgs,
                "Every command needs an \"op\" string, such as \"socket\" or \"bind\".",
            ));
        }
    };
    if !OpName::ALL.iter().any(|known| known.as_str() == op_name) {
        let known: Vec<&str> = OpName::ALL.iter().map(|op| op.as_str()).collect();
        return Err(Refusal::new(
            id,
            ErrorCode::UnknownOp,
            format!(
                "There is no operation \"{op_name}\". Known operations: {}.",
                known.join(", ")
            ),
        ));
    }
    // serde's deny_unknown_fields does not reach a unit variant: `reset`
    // checks its own, so that every op refuses what it does not know.
    if op_name == OpName::Reset.as_str() {
        if let Some(unknown) = fields.keys().find(|key| *key != "op") {
            return Err(Refusal::new(
                id,
                ErrorCode::BadArgs,
                format!("The fields of \"reset\" are wrong: reset takes none, not `{unknown}`."),
            ));
        }
    }
    let op: Op = serde_json::from_value(Value::Object(fields)).map_err(|error| {
        Refusal::new(
            id,
            ErrorCode::BadArgs,
            format!("The fields of \"{op_name}\" are wrong: {error}."),
        )
    })?;
    Ok(Command {
        id: id.unwrap_or_default(),
        op,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_command;

    #[test]
    fn reset_refuses_unknown_fields_like_every_op() {
        let refused =
            decode(r#"{"id": 3, "op": "reset", "everything": true}"#).expect_err("refused");
        assert_eq!((refused.id, refused.code), (Some(3), ErrorCode::BadArgs));
        assert!(
            refused.message.contains("everything"),
            "{}",
            refused.message
        );
        assert_eq!(
            decode(r#"{"id": 3, "op": "reset"}"#).map(|command| command.op),
            Ok(Op::Reset)
        );
    }

    #[test]
    fn every_op_round_trips() {
        let ops = vec![
            Op::Socket { role: Role::Server },
            Op::Bind {
                sock: 1,
                addr: Some("127.0.0.1:7001".into()),
            },
            Op::Bind {
                sock: 1,
                addr: None,
            },
            Op::Listen {
                sock: 1,
                backlog: Some(5),
            },
            Op::Accept { sock: 1 },
            Op::Connect {
                sock: 2,
                addr: None,
            },
            Op::Send {
                sock: 2,
                data: Some("hello".into()),
                hex: None,
            },
            Op::Read {
                sock: 3,
                max: Some(1024),
            },
            Op::Shutdown {
                sock: 3,
                how: ShutdownHow::Write,
            },
            Op::Close { sock: 3 },
            Op::Setsockopt {
                sock: 1,
                name: SockOptName::Linger,
                value: SockOptValue::Number(0),
            },
            Op::Setsockopt {
                sock: 1,
                name: SockOptName::ReuseAddr,
                value: SockOptValue::Flag(true),
            },
            Op::Reset,
        ];
        for (id, op) in ops.into_iter().enumerate() {
            let command = Command { id: id as u64, op };
            let text = encode_command(&command);
            assert_eq!(decode(&text), Ok(command), "{text}");
        }
    }

    /// The one-pass read takes only what the field-by-field read takes, and
    /// reads it the same.
    #[test]
    fn both_reads_agree() {
        let frames = [
            r#"{"id":1,"op":"send","sock":2,"data":"ping"}"#,
            r#"{"op":"send","sock":2,"id":1,"hex":"00ff"}"#,
            r#" { "id" : 1 , "op" : "read" , "sock" : 3 , "max" : 16 } "#,
            r#"{"id":1,"op":"read","sock":3,"max":16,"max":17}"#,
            r#"{"id":1,"id":2,"op":"close","sock":3}"#,
            r#"{"id":1,"op":"close","op":"close","sock":3}"#,
            r#"{"id":1,"op":"close","sock":3,"extra":null}"#,
            r#"{"id":1,"op":"socket","role":"server","sock":4}"#,
            r#"{"id":1,"op":"reset","sock":4}"#,
            r#"{"id":1,"op":"reset"}"#,
            r#"{"id":1.0,"op":"close","sock":3}"#,
            r#"{"id":1,"op":"clo\u0073e","sock":3}"#,
            r#"{"id":1,"op":"setsockopt","sock":1,"name":"SO_LINGER","value":false}"#,
            r#"{"id":1,"op":"bind","sock":1,"addr":null}"#,
            r#"{"id":1,"op":"bind","sock":1}trailing"#,
        ];
        for text in frames {
            assert_eq!(decode(text), decode_checked(text), "{text}");
        }
    }

    #[test]
    fn the_wire_shape_is_flat() {
        let text = encode_command(&Command {
            id: 7,
            op: Op::Bind {
                sock: 1,
                addr: Some("127.0.0.1:7001".into()),
            },
        });
        assert_eq!(
            text,
            r#"{"id":7,"op":"bind","sock":1,"addr":"127.0.0.1:7001"}"#
        );
    }

    #[test]
    fn refusals_carry_the_right_code() {
        let cases: &[(&str, ErrorCode, Option<u64>)] = &[
            ("{not json", ErrorCode::BadJson, None),
            ("[1,2]", ErrorCode::BadJson, None),
            (
                r#"{"op":"socket","role":"server"}"#,
                ErrorCode::BadArgs,
                None,
            ),
            (r#"{"id":-1,"op":"socket"}"#, ErrorCode::BadArgs, None),
            (r#"{"id":3,"op":"fly"}"#, ErrorCode::UnknownOp, Some(3)),
            (r#"{"id":4}"#, ErrorCode::BadArgs, Some(4)),
            (r#"{"id":5,"op":"bind"}"#, ErrorCode::BadArgs, Some(5)),
            (
                r#"{"id":6,"op":"bind","sock":"one"}"#,
                ErrorCode::BadArgs,
                Some(6),
            ),
            (
                r#"{"id":7,"op":"socket","role":"boss"}"#,
                ErrorCode::BadArgs,
                Some(7),
            ),
            (
                r#"{"id":8,"op":"read","sock":1,"port":9}"#,
                ErrorCode::BadArgs,
                Some(8),
            ),
        ];
        for (text, code, id) in cases {
            let refusal = decode(text).expect_err(text);
            assert_eq!((&refusal.code, &refusal.id), (code, id), "{text}");
            assert!(!refusal.message.is_empty());
        }
    }
}
