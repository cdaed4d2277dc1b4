//! Recordings: a lab's events kept as JSON Lines, to replay without a relay.
//!
//! The first line is a [`RecordingHeader`]; every line after it is one event
//! frame, exactly as the relay sent it. `docs/recording.md` specifies the
//! format for people.

use serde::{Deserialize, Serialize};

use crate::Event;

/// What the first line of a recording says.
pub const RECORDING_FORMAT: &str = "socket-flow-recording";
/// The version this crate writes, and the newest it reads.
pub const RECORDING_VERSION: u32 = 1;

/// The first line of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingHeader {
    /// Always [`RECORDING_FORMAT`].
    pub format: String,
    pub version: u32,
    /// The relay that ran the lab, as its `hello` named itself.
    pub relay: String,
    /// When the recording was saved, in RFC 3339.
    pub recorded_at: String,
    /// Whether the relay captured the lab's segments.
    pub capture: bool,
}

impl RecordingHeader {
    pub fn new(relay: &str, recorded_at: &str, capture: bool) -> RecordingHeader {
        RecordingHeader {
            format: RECORDING_FORMAT.to_string(),
            version: RECORDING_VERSION,
            relay: relay.to_string(),
            recorded_at: recorded_at.to_string(),
            capture,
        }
    }
}

/// A recording as read: its header, its events with their frames, and the
/// line that stopped the reading, if one did.
#[derive(Clone, Debug)]
pub struct Recording {
    pub header: RecordingHeader,
    /// Each event, with the frame it was read from.
    pub events: Vec<(Event, String)>,
    /// A damaged line ends the reading there; the events before it replay.
    pub damaged: Option<RecordingDamage>,
}

/// Where a recording is damaged, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingDamage {
    /// 1-based, as an editor numbers lines.
    pub line: usize,
    pub reason: String,
}

/// Why a file is no recording this crate can read at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordingError {
    /// The first line is not a socket-flow recording's header.
    NotARecording(String),
    /// A newer version than [`RECORDING_VERSION`].
    Newer(u32),
}

impl std::fmt::Display for RecordingError {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordingError::NotARecording(reason) => {
                write!(out, "this is not a socket-flow recording: {reason}")
            }
            RecordingError::Newer(version) => write!(
                out,
                "this recording is version {version}; this page reads up to version \
                 {RECORDING_VERSION}: open it with a newer socket-flow"
            ),
        }
    }
}

/// Writes a recording: the header, then each frame on a line of its own.
pub fn write_recording<'a>(
    header: &RecordingHeader,
    frames: impl Iterator<Item = &'a str>,
) -> String {
    let mut out = serde_json::to_string(header).unwrap_or_default();
    out.push('\n');
    for frame in frames {
        out.push_str(frame);
        out.push('\n');
    }
    out
}

/// Reads a recording. A wrong header or a newer version is an error; a
/// damaged line ends the events there and is named in
/// [`Recording::damaged`].
pub fn read_recording(text: &str) -> Result<Recording, RecordingError> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let header: RecordingHeader = serde_json::from_str(first)
        .map_err(|error| RecordingError::NotARecording(format!("line 1: {error}")))?;
    if header.format != RECORDING_FORMAT {
        return Err(RecordingError::NotARecording(format!(
            "line 1 says its format is {:?}",
            header.format
        )));
    }
    if header.version > RECORDING_VERSION {
        return Err(RecordingError::Newer(header.version));
    }
    let mut events = Vec::new();
    let mut damaged = None;
    for (index, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match crate::decode_event(line) {
            Ok(event) => events.push((event, line.to_string())),
            Err(reason) => {
                damaged = Some(RecordingDamage {
                    line: index + 2,
                    reason,
                });
                break;
            }
        }
    }
    Ok(Recording {
        header,
        events,
        damaged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMES: [&str; 2] = [
        r#"{"seq":1,"t_us":0,"kind":"error","code":"bad_json","message":"x"}"#,
        r#"{"seq":2,"t_us":5,"kind":"error","code":"bad_json","message":"y"}"#,
    ];

    fn header() -> RecordingHeader {
        RecordingHeader::new("socket-flow relay 0.1.0", "2026-11-30T16:00:00Z", true)
    }

    #[test]
    fn a_recording_reads_back_as_written() {
        let text = write_recording(&header(), FRAMES.into_iter());
        assert!(text.starts_with(r#"{"format":"socket-flow-recording","version":1,"#));
        let recording = read_recording(&text).expect("a recording");
        assert_eq!(recording.header, header());
        let frames: Vec<&str> = recording.events.iter().map(|(_, f)| f.as_str()).collect();
        assert_eq!(frames, FRAMES);
        assert_eq!(recording.events[1].0.seq, 2);
        assert_eq!(recording.damaged, None);
    }

    #[test]
    fn a_damaged_line_is_named_and_the_lines_before_it_replay() {
        let text = write_recording(&header(), FRAMES.into_iter()) + "{\"seq\":3,\"t_us\n";
        let recording = read_recording(&text).expect("a recording");
        assert_eq!(recording.events.len(), 2);
        assert_eq!(recording.damaged.expect("damage").line, 4);
    }

    #[test]
    fn a_wrong_header_or_a_newer_version_is_refused() {
        assert!(matches!(
            read_recording(FRAMES[0]),
            Err(RecordingError::NotARecording(_))
        ));
        assert!(matches!(
            read_recording("[\n]"),
            Err(RecordingError::NotARecording(_))
        ));
        let mut newer = header();
        newer.version = 2;
        let text = write_recording(&newer, FRAMES.into_iter());
        assert_eq!(read_recording(&text).unwrap_err(), RecordingError::Newer(2));
        let mut other = header();
        other.format = "something-else".into();
        let text = write_recording(&other, FRAMES.into_iter());
        assert!(matches!(
            read_recording(&text),
            Err(RecordingError::NotARecording(_))
        ));
    }
}
