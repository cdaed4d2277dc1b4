//! What a control on the page does, as a type: the view writes each control's
//! action with [`UiAction`]'s `Display` (its `data-*` attributes), and the
//! controller reads it back with [`UiAction::read`]. No action is ever
//! spelled by hand on either side.

use std::fmt;

use crate::model::{Side, Step};
use crate::script::Scenario;

/// Everything a button, a box or a picker on the page can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UiAction {
    /// A lane's step button: make that call.
    Step {
        lane: usize,
        step: Step,
    },
    /// A connection's message box (Enter sends its text).
    Message {
        lane: usize,
        sock: u32,
    },
    /// The send() button beside a message box.
    SendMessage {
        lane: usize,
        sock: u32,
    },
    /// The read() button beside a message box.
    ReadOn {
        lane: usize,
        sock: u32,
    },
    /// The lane's address box for bind or connect.
    Address {
        lane: usize,
    },
    /// The radio that picks which accepted connection the server lane uses.
    SelectConn {
        sock: u32,
    },
    Run(Scenario),
    /// The scenario picker's button: run whichever is chosen.
    RunChosen,
    Pause,
    Speed,
    SkipAnimation,
    Reset,
    AddClient,
    Lang,
    Theme,
    Projector,
    Help,
    Drawer,
    HistoryBack,
    HistoryForward,
    Live,
    Scrub,
    CodeLang {
        rust: bool,
    },
    CodeSide(Side),
    LogKind,
    LogSock,
    Inspect {
        seq: u64,
    },
    /// Download the lab's events so far as a recording.
    SaveRecording,
    /// The file picker that opens a recording.
    OpenRecording,
    /// Play or pause the open recording.
    ReplayPlay,
    /// Close the recording and go back to a live lab.
    LeaveRecording,
    /// Open the built-in recording of the whole lesson.
    WatchDemo,
    /// Download the sequence diagram as a standalone SVG.
    SaveDiagram,
    /// Download the sequence diagram as a PNG at twice its size.
    SaveDiagramPng,
}

impl UiAction {
    fn name(self) -> &'static str {
        match self {
            UiAction::Step { .. } => "step",
            UiAction::Message { .. } => "message",
            UiAction::SendMessage { .. } => "send-message",
            UiAction::ReadOn { .. } => "read-on",
            UiAction::Address { .. } => "address",
            UiAction::SelectConn { .. } => "select-conn",
            UiAction::Run(_) => "run",
            UiAction::RunChosen => "run-scenario",
            UiAction::Pause => "pause",
            UiAction::Speed => "speed",
            UiAction::SkipAnimation => "skip",
            UiAction::Reset => "reset",
            UiAction::AddClient => "add-client",
            UiAction::Lang => "lang",
            UiAction::Theme => "theme",
            UiAction::Projector => "projector",
            UiAction::Help => "help",
            UiAction::Drawer => "drawer",
            UiAction::HistoryBack => "history-back",
            UiAction::HistoryForward => "history-forward",
            UiAction::Live => "live",
            UiAction::Scrub => "scrub",
            UiAction::CodeLang { .. } => "code-lang",
            UiAction::CodeSide(_) => "code-side",
            UiAction::LogKind => "log-kind",
            UiAction::LogSock => "log-sock",
            UiAction::Inspect { .. } => "inspect",
            UiAction::SaveRecording => "save-recording",
            UiAction::OpenRecording => "open-recording",
            UiAction::ReplayPlay => "replay-play",
            UiAction::LeaveRecording => "leave-recording",
            UiAction::WatchDemo => "watch-demo",
            UiAction::SaveDiagram => "save-diagram",
            UiAction::SaveDiagramPng => "save-diagram-png",
        }
    }

    /// The action an element carries, from its `data-*` attributes (`get`
    /// is given the name after `data-`). None for anything else.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Option<UiAction> {
        let number = |name: &str| get(name)?.parse::<u64>().ok();
        let lane = || Some(number("lane")? as usize);
        let sock = || Some(number("sock")? as u32);
        let action = match get("action")?.as_str() {
            "step" => UiAction::Step {
                lane: lane()?,
                step: Step::from_key(&get("step")?)?,
            },
            "message" => UiAction::Message {
                lane: lane()?,
                sock: sock()?,
            },
            "send-message" => UiAction::SendMessage {
                lane: lane()?,
                sock: sock()?,
            },
            "read-on" => UiAction::ReadOn {
                lane: lane()?,
                sock: sock()?,
            },
            "address" => UiAction::Address { lane: lane()? },
            "select-conn" => UiAction::SelectConn { sock: sock()? },
            "run" => UiAction::Run(Scenario::from_key(&get("scenario")?)?),
            "run-scenario" => UiAction::RunChosen,
            "pause" => UiAction::Pause,
            "speed" => UiAction::Speed,
            "skip" => UiAction::SkipAnimation,
            "reset" => UiAction::Reset,
            "add-client" => UiAction::AddClient,
            "lang" => UiAction::Lang,
            "theme" => UiAction::Theme,
            "projector" => UiAction::Projector,
            "help" => UiAction::Help,
            "drawer" => UiAction::Drawer,
            "history-back" => UiAction::HistoryBack,
            "history-forward" => UiAction::HistoryForward,
            "live" => UiAction::Live,
            "scrub" => UiAction::Scrub,
            "code-lang" => UiAction::CodeLang {
                rust: get("value")? == "rust",
            },
            "code-side" => UiAction::CodeSide(match get("value")?.as_str() {
                "client" => Side::Client,
                _ => Side::Server,
            }),
            "log-kind" => UiAction::LogKind,
            "log-sock" => UiAction::LogSock,
            "inspect" => UiAction::Inspect {
                seq: number("seq")?,
            },
            "save-recording" => UiAction::SaveRecording,
            "open-recording" => UiAction::OpenRecording,
            "replay-play" => UiAction::ReplayPlay,
            "leave-recording" => UiAction::LeaveRecording,
            "watch-demo" => UiAction::WatchDemo,
            "save-diagram" => UiAction::SaveDiagram,
            "save-diagram-png" => UiAction::SaveDiagramPng,
            _ => return None,
        };
        Some(action)
    }
}

/// The attributes that carry the action, with a leading space, to write
/// inside a tag: `<button{action}>`.
impl fmt::Display for UiAction {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(out, r#" data-action="{}""#, self.name())?;
        match *self {
            UiAction::Step { lane, step } => {
                write!(out, r#" data-lane="{lane}" data-step="{}""#, step.key())
            }
            UiAction::Message { lane, sock }
            | UiAction::SendMessage { lane, sock }
            | UiAction::ReadOn { lane, sock } => {
                write!(out, r#" data-lane="{lane}" data-sock="{sock}""#)
            }
            UiAction::Address { lane } => write!(out, r#" data-lane="{lane}""#),
            UiAction::SelectConn { sock } => write!(out, r#" data-sock="{sock}""#),
            UiAction::Run(scenario) => write!(out, r#" data-scenario="{}""#, scenario.key()),
            UiAction::CodeLang { rust } => {
                write!(out, r#" data-value="{}""#, if rust { "rust" } else { "c" })
            }
            UiAction::CodeSide(side) => write!(
                out,
                r#" data-value="{}""#,
                match side {
                    Side::Server => "server",
                    Side::Client => "client",
                }
            ),
            UiAction::Inspect { seq } => write!(out, r#" data-seq="{seq}""#),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the attributes back out of what `Display` wrote.
    fn round_trip(action: UiAction) -> Option<UiAction> {
        let written = action.to_string();
        UiAction::read(|name| {
            let key = format!("data-{name}=\"");
            let start = written.find(&key)? + key.len();
            let end = start + written[start..].find('"')?;
            Some(written[start..end].to_string())
        })
    }

    #[test]
    fn every_action_reads_back_as_written() {
        let actions = [
            UiAction::Step {
                lane: 1,
                step: Step::Connect,
            },
            UiAction::Message { lane: 0, sock: 7 },
            UiAction::SendMessage { lane: 2, sock: 3 },
            UiAction::ReadOn { lane: 0, sock: 4 },
            UiAction::Address { lane: 1 },
            UiAction::SelectConn { sock: 9 },
            UiAction::Run(Scenario::Lesson),
            UiAction::RunChosen,
            UiAction::Pause,
            UiAction::Speed,
            UiAction::SkipAnimation,
            UiAction::Reset,
            UiAction::AddClient,
            UiAction::Lang,
            UiAction::Theme,
            UiAction::Projector,
            UiAction::Help,
            UiAction::Drawer,
            UiAction::HistoryBack,
            UiAction::HistoryForward,
            UiAction::Live,
            UiAction::Scrub,
            UiAction::CodeLang { rust: true },
            UiAction::CodeLang { rust: false },
            UiAction::CodeSide(Side::Client),
            UiAction::CodeSide(Side::Server),
            UiAction::LogKind,
            UiAction::LogSock,
            UiAction::Inspect { seq: 42 },
            UiAction::SaveRecording,
            UiAction::OpenRecording,
            UiAction::ReplayPlay,
            UiAction::LeaveRecording,
            UiAction::WatchDemo,
            UiAction::SaveDiagram,
            UiAction::SaveDiagramPng,
        ];
        for action in actions {
            assert_eq!(round_trip(action), Some(action), "{action}");
        }
        assert_eq!(UiAction::read(|_| Some("nonsense".into())), None);
    }
}
