//! Protocol v1 of socket-flow: the commands a page sends and the events the relay streams back.
//!
//! Each WebSocket text frame holds one JSON object. A command is
//! `{"id": 7, "op": "bind", "sock": 1, "addr": "127.0.0.1:7001"}`; an event is
//! `{"seq": 4, "t_us": 1520, "kind": "call", ...}`. `docs/protocol.md` is the
//! reference for people; this crate is the reference for code, and it is the
//! only crate that knows the JSON shape: the relay and the page call
//! [`decode_command`], [`encode_event`], [`decode_event`] and [`encode_command`].

use serde::{Deserialize, Serialize};

mod command;
mod event;
mod note;

pub use command::*;
pub use event::*;
pub use note::*;

/// The version carried in `hello`. Bumped on any change a v1 page could not read.
pub const PROTOCOL_VERSION: u32 = 1;

/// A socket's handle within one lab. Stable for the socket's life, unlike its fd,
/// which the kernel may hand out again after close.
pub type SockId = u32;

/// The label the page gives a socket. The kernel knows no roles: a listening
/// socket, a client and an accepted connection are all the same API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Server,
    Client,
    /// A connection returned by accept.
    Conn,
}

/// Parses one command frame. The error says which [`ErrorCode`] applies and
/// carries a sentence a student can act on.
pub fn decode_command(text: &str) -> Result<Command, Refusal> {
    command::decode(text)
}

/// Writes one command frame, as the page sends it.
pub fn encode_command(command: &Command) -> String {
    // Serialising these plain types cannot fail: no maps with non-string keys.
    serde_json::to_string(command).unwrap_or_default()
}

/// Writes one event frame, as the relay sends it.
pub fn encode_event(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// Reads one event frame. Unknown kinds and malformed frames are errors, which
/// a page should log and skip rather than trust.
pub fn decode_event(text: &str) -> Result<Event, String> {
    serde_json::from_str(text).map_err(|error| error.to_string())
}

/// Turns any event into a pretty JSON string for the page's event inspector.
pub fn pretty_event(event: &Event) -> String {
    serde_json::to_string_pretty(event).unwrap_or_default()
}
