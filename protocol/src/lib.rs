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
mod recording;

pub use command::*;
pub use event::*;
pub use note::*;
pub use recording::*;

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
///
/// It reads the frame twice, its head (`seq`, `t_us`, `kind`) and then its
/// body as the struct `kind` names, rather than through serde's internally
/// tagged enum: that buffers every frame into a tree first, and its code for
/// each event type was a sixth of the page's wasm.
pub fn decode_event(text: &str) -> Result<Event, String> {
    #[derive(Deserialize)]
    struct Head {
        seq: u64,
        t_us: u64,
        kind: String,
    }
    fn body<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
        let mut json = serde_json::Deserializer::from_str(text);
        T::deserialize(Objects(&mut json))
            .and_then(|value| json.end().map(|()| value))
            .map_err(|error| error.to_string())
    }
    let head: Head = body(text)?;
    let body = match head.kind.as_str() {
        "hello" => EventBody::Hello(body(text)?),
        "call" => EventBody::Call(body(text)?),
        "state" => EventBody::State(body(text)?),
        "segment" => EventBody::Segment(body(text)?),
        "error" => EventBody::Error(body(text)?),
        "reset" => EventBody::Reset(body(text)?),
        "gap" => EventBody::Gap(body(text)?),
        "viewers" => EventBody::Viewers(body(text)?),
        "history" => EventBody::History(body(text)?),
        "exited" => EventBody::Exited(body(text)?),
        other => {
            return Err(format!(
                "unknown kind `{other}`, expected one of `hello`, `call`, `state`, `segment`, \
                 `error`, `reset`, `gap`, `viewers`, `history`, `exited`"
            ));
        }
    };
    Ok(Event {
        seq: head.seq,
        t_us: head.t_us,
        body,
    })
}

/// serde_json's deserializer, for an event's head and body, which are JSON
/// objects and nothing else: it reads a struct as a map. serde_json would
/// also read a struct from an array, and the code for that, one reader per
/// event type, was kilobytes of the page's wasm that no frame ever used.
struct Objects<'a, 'de>(&'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>);

impl<'de> serde::Deserializer<'de> for Objects<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(visitor)
    }

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Turns any event into a pretty JSON string.
pub fn pretty_event(event: &Event) -> String {
    pretty_frame(&encode_event(event))
}

/// Indents a compact JSON frame two spaces a level, one member or element a
/// line, as serde_json's pretty printer does; text inside strings is left
/// alone. The page shows the frames it received this way, so that it needs
/// no code to serialise events at all (a copy of serde's serialising code
/// for every event type).
pub fn pretty_frame(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = compact.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on its line.
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_events_read_as_serde_json_writes_them() {
        // Keys in sorted order, as serde_json's Value keeps them.
        let frame = r#"{"c":"write(3, \"a,{b}:\\\"\", 7)","empty":{},"flags":["SYN","ACK"],"none":[],"seq":3,"t":{"us":5}}"#;
        let value: serde_json::Value = serde_json::from_str(frame).expect("valid");
        assert_eq!(
            pretty_frame(frame),
            serde_json::to_string_pretty(&value).expect("pretty")
        );
    }
}
