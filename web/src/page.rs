//! The page as one state machine, in the shape of the Elm architecture and
//! wasm-bindgen's todomvc: a [`Page`], the [`Msg`]s that happen to it, and
//! one pure [`update`] that changes it and says which [`Effect`]s the
//! browser must carry out. Every decision the page makes is here, tested
//! natively; `app.rs` only turns DOM events into messages and effects into
//! DOM calls.

use protocol::{RecordingDamage, RecordingError, RecordingHeader};

use crate::action::UiAction;
use crate::i18n::Lang;
use crate::model::{Action, Connection, Model, SERVER_LANE, Side};
use crate::script::{Player, Scenario};

/// How long one new timeline row takes to appear, and how fast the queue
/// drains when events arrive faster than that.
const ROW_REVEAL_MS: f64 = 260.0;
const BACKLOG_REVEAL_MS: f64 = 40.0;
const BACKLOG_ROWS: usize = 6;

/// What the page shows that is no part of the lab: choices of the person
/// in front of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ui {
    pub dark: bool,
    pub projector: bool,
    pub skip_animation: bool,
    pub rust_listing: bool,
    /// Which side's listing the code panel shows; None follows the last call.
    pub code_side: Option<Side>,
    pub log_kind: String,
    pub log_sock: String,
    /// The event the inspector shows, highlighted everywhere.
    pub selected_seq: Option<u64>,
    pub help_open: bool,
    /// The player's state for the toolbar: (scenario, paused), if playing.
    pub playing: Option<(Scenario, bool)>,
    /// Milliseconds between the player's steps.
    pub step_delay_ms: u32,
    /// Whether the drawer beside the stage (code and log) is open.
    pub drawer_open: bool,
    /// The lane the keyboard drives when no lane has focus.
    pub active_lane: usize,
    /// The event the stage shows the lab as it was at; None is live.
    pub at_seq: Option<u64>,
    /// The width the diagram is drawn in, and the body's font size, both in
    /// CSS pixels, as the page measured them.
    pub diagram_width: f64,
    pub font_px: f64,
    /// The recording open in the stage, if one is.
    pub replay: Option<Replay>,
}

/// A recording open in the stage, instead of the live lab.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    pub header: RecordingHeader,
    /// Where the file stopped replaying, if it is damaged.
    pub damaged: Option<RecordingDamage>,
    /// Whether it plays, one event per step of the speed slider.
    pub playing: bool,
    /// When the last event was stepped to, in page milliseconds; None
    /// before the first tick, which only starts the clock.
    last_step_ms: Option<f64>,
}

impl Default for Ui {
    fn default() -> Ui {
        Ui {
            dark: false,
            projector: false,
            skip_animation: false,
            rust_listing: false,
            code_side: None,
            log_kind: "all".into(),
            log_sock: "all".into(),
            selected_seq: None,
            help_open: false,
            playing: None,
            step_delay_ms: 900,
            drawer_open: false,
            active_lane: 0,
            at_seq: None,
            diagram_width: 600.0,
            font_px: 16.0,
            replay: None,
        }
    }
}

/// The settings a page keeps across visits, as it reads them back.
#[derive(Clone, Debug, Default)]
pub struct Saved {
    pub lang: Option<String>,
    pub theme: Option<String>,
    pub projector: Option<String>,
    pub drawer: Option<String>,
}

/// Where settings are kept (localStorage keys).
pub const LANG_KEY: &str = "socket-flow.lang";
pub const THEME_KEY: &str = "socket-flow.theme";
pub const PROJECTOR_KEY: &str = "socket-flow.projector";
pub const DRAWER_KEY: &str = "socket-flow.drawer";

/// Where the built-in lesson is, beside the page: `cargo xtask record-demo`
/// records it from a real relay.
pub const DEMO_PATH: &str = "demo/lesson.jsonl";

/// A window at least this wide opens the drawer beside the stage at first.
const DRAWER_ROOM_PX: f64 = 1600.0;

/// Everything the page knows: the lab as its events told it, the person's
/// choices, the player, and the pace of the timeline.
pub struct Page {
    pub model: Model,
    pub ui: Ui,
    pub player: Option<Player>,
    /// Something changed since the last frame was drawn.
    pub dirty: bool,
    /// When the last timeline row was revealed.
    last_reveal_ms: f64,
    /// Rows drawn before the last reveal; later ones animate.
    pub fresh_from: usize,
    /// Where focus goes back to when help closes (a selector).
    help_return: Option<String>,
}

/// Something that happened to the page.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// A button or a link with an action.
    Click(UiAction),
    /// A box, a slider, a checkbox or a picker changed: its value, and
    /// whether it is checked.
    Input {
        action: UiAction,
        value: String,
        checked: bool,
    },
    /// A message box's text, sent with its button or with Enter.
    SendText {
        lane: usize,
        sock: u32,
        text: String,
    },
    /// The scenario picker's choice, run with its button.
    RunChosen(Option<Scenario>),
    Key(Key),
    /// Help opens or closes; `from` is where focus was (a selector).
    ToggleHelp {
        from: Option<String>,
    },
    /// The person said yes to "Reset the lab?".
    ResetConfirmed,
    /// An animation frame, at this time in ms.
    Tick {
        now_ms: f64,
    },
    SocketOpened,
    SocketClosed,
    /// A text frame from the relay.
    Frame(String),
    /// The window changed size.
    Resized,
    /// The diagram's box is this wide now (CSS pixels): the drawer opened or
    /// closed, or a new row made it taller.
    DiagramResized {
        width: i32,
    },
    /// An arrow was focused or hovered: its event is shown at once, without
    /// drawing the rest of the page again.
    Hover {
        seq: u64,
    },
    /// "Save recording", at this moment (RFC 3339, from the browser's clock).
    SaveRecording {
        now: String,
    },
    /// A file to open as a recording: its text.
    OpenRecording {
        text: String,
    },
    /// The built-in lesson could not be fetched, for this reason.
    DemoUnavailable(String),
}

/// A key pressed outside any box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// → or Space: drive the lane with focus, else the active one.
    Next {
        focused_lane: Option<usize>,
    },
    /// `,` and `.`: one event back or forward in history.
    Back,
    Forward,
    /// L: switch the lane the keys drive.
    SwitchLane,
    /// R: reset, once confirmed.
    Reset,
    Escape,
}

/// What the browser must do for an update.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a command frame to the relay.
    Send(String),
    /// Keep a setting for the next visit.
    Persist { key: &'static str, value: String },
    /// Offer a file for download.
    Download {
        name: &'static str,
        mime: &'static str,
        text: String,
    },
    /// Open a new WebSocket after this long.
    Reconnect { delay_ms: u32 },
    /// Write the page's frame again (language, theme or projector changed).
    Remount,
    /// Ask this question, and answer [`Msg::ResetConfirmed`] on yes.
    ConfirmReset(&'static str),
    /// Draw now, then move focus into help.
    FocusHelp,
    /// Draw now, then give focus back to this selector.
    Focus(String),
    /// Empty the message box of this socket.
    ClearMessage(u32),
    /// The key did something: the browser should not also act on it.
    KeyTaken,
    /// Draw the inspector and the packet pane now.
    ShowPacket,
    /// Write this to the browser's console.
    Console(String),
    /// Close the WebSocket and do not reconnect: a recording is open.
    CloseSocket,
    /// Fetch the built-in recording at this path, and open it.
    FetchDemo(&'static str),
    /// Draw this SVG document at twice its size, and offer it as a PNG.
    DownloadPng { name: &'static str, svg: String },
}

impl Page {
    /// A new page, from the settings kept from earlier visits, the
    /// browser's language and the window's width.
    pub fn new(saved: &Saved, browser_lang: Option<&str>, window_width: Option<f64>) -> Page {
        let lang = saved
            .lang
            .as_deref()
            .or(browser_lang)
            .map(Lang::from_tag)
            .unwrap_or(Lang::En);
        let ui = Ui {
            dark: saved.theme.as_deref() == Some("dark"),
            projector: saved.projector.as_deref() == Some("on"),
            // Open beside the stage where there is room for both, unless the
            // person closed it.
            drawer_open: match saved.drawer.as_deref() {
                Some(choice) => choice == "open",
                None => window_width.is_some_and(|width| width >= DRAWER_ROOM_PX),
            },
            ..Ui::default()
        };
        Page {
            model: Model::new(lang),
            ui,
            player: None,
            dirty: true,
            last_reveal_ms: 0.0,
            fresh_from: 0,
            help_return: None,
        }
    }
}

/// Changes the page for one message, and returns what the browser must do.
pub fn update(page: &mut Page, msg: Msg) -> Vec<Effect> {
    let mut effects = Vec::new();
    // A tick decides for itself whether anything is new; typing an address
    // or sliding the speed shows nothing new, and a hover draws its own
    // part. Anything else may change what is shown.
    let quiet = matches!(
        msg,
        Msg::Tick { .. }
            | Msg::Hover { .. }
            | Msg::Input {
                action: UiAction::Address { .. } | UiAction::Speed,
                ..
            }
    ) || matches!(
        // Only a new width draws the diagram again: the box also grows
        // taller with each new row until it reaches its height.
        msg,
        Msg::DiagramResized { width } if width <= 0 || f64::from(width) == page.ui.diagram_width
    );
    match msg {
        Msg::Click(action) => click(page, action, &mut effects),
        Msg::Input {
            action,
            value,
            checked,
        } => input(page, action, &value, checked),
        Msg::SendText { lane, sock, text } => {
            if !text.is_empty()
                && send_action(page, &Action::SendText(lane, sock, text), &mut effects).is_some()
            {
                effects.push(Effect::ClearMessage(sock));
            }
        }
        Msg::RunChosen(scenario) => {
            if let Some(scenario) = scenario {
                start_player(page, scenario);
            }
        }
        Msg::Key(key) => self::key(page, key, &mut effects),
        Msg::ToggleHelp { from } => {
            if page.ui.help_open {
                close_help(page, &mut effects);
            } else {
                page.help_return = from;
                page.ui.help_open = true;
                effects.push(Effect::FocusHelp);
            }
        }
        Msg::ResetConfirmed => reset(page, &mut effects),
        Msg::Tick { now_ms } => tick(page, now_ms, &mut effects),
        // A recording is open: the live lab is closed and stays closed.
        Msg::SocketOpened | Msg::Frame(_) if page.ui.replay.is_some() => {
            effects.push(Effect::CloseSocket);
            return effects;
        }
        Msg::SocketClosed if page.ui.replay.is_some() => return effects,
        Msg::SocketOpened => page.model.connection_opened(),
        Msg::SocketClosed => {
            page.player = None;
            page.ui.playing = None;
            let delay_ms = page.model.connection_lost();
            effects.push(Effect::Reconnect { delay_ms });
        }
        // A frame this page cannot read is logged, not trusted, and changes
        // nothing.
        Msg::Frame(text) => match protocol::decode_event(&text) {
            Ok(event) => page.model.apply_frame(&event, &text),
            Err(error) => {
                effects.push(Effect::Console(format!(
                    "skipped an unreadable event: {error}"
                )));
                return effects;
            }
        },
        Msg::Resized | Msg::DiagramResized { .. } => {}
        Msg::SaveRecording { now } => save_recording(page, &now, &mut effects),
        Msg::OpenRecording { text } => open_recording(page, &text, &mut effects),
        Msg::DemoUnavailable(reason) => {
            page.model.last_error = Some(match page.model.lang {
                Lang::En => format!("The built-in lesson could not be loaded ({reason})."),
                Lang::Zh => format!("无法载入内置课程（{reason}）。"),
            });
        }
        Msg::Hover { seq } => {
            if page.ui.selected_seq != Some(seq) {
                page.ui.selected_seq = Some(seq);
                effects.push(Effect::ShowPacket);
            }
        }
    }
    if !quiet {
        page.dirty = true;
    }
    effects
}

fn click(page: &mut Page, action: UiAction, effects: &mut Vec<Effect>) {
    match action {
        UiAction::Step { lane, step } => {
            send_action(page, &Action::Step(lane, step), effects);
        }
        UiAction::ReadOn { lane, sock } => {
            send_action(page, &Action::ReadOn(lane, sock), effects);
        }
        UiAction::Run(scenario) => start_player(page, scenario),
        UiAction::Pause => {
            if let Some(player) = &mut page.player {
                player.paused = !player.paused;
                page.ui.playing = Some((player.scenario, player.paused));
            }
        }
        UiAction::Reset => reset(page, effects),
        UiAction::AddClient => {
            page.model.add_client();
        }
        UiAction::Lang => {
            page.model.lang = page.model.lang.other();
            effects.push(Effect::Persist {
                key: LANG_KEY,
                value: page.model.lang.tag().to_string(),
            });
            effects.push(Effect::Remount);
        }
        UiAction::Theme => {
            toggle(&mut page.ui.dark, THEME_KEY, ("dark", "light"), effects);
            effects.push(Effect::Remount);
        }
        UiAction::Projector => {
            toggle(
                &mut page.ui.projector,
                PROJECTOR_KEY,
                ("on", "off"),
                effects,
            );
            effects.push(Effect::Remount);
        }
        UiAction::HistoryBack => page.ui.at_seq = step_history(&page.model, page.ui.at_seq, -1),
        UiAction::HistoryForward => page.ui.at_seq = step_history(&page.model, page.ui.at_seq, 1),
        UiAction::Live => {
            page.ui.at_seq = None;
            // A recording shown whole has nothing left to play.
            if let Some(replay) = &mut page.ui.replay {
                replay.playing = false;
            }
        }
        UiAction::Drawer => {
            toggle(
                &mut page.ui.drawer_open,
                DRAWER_KEY,
                ("open", "closed"),
                effects,
            );
        }
        UiAction::CodeLang { rust } => page.ui.rust_listing = rust,
        UiAction::CodeSide(side) => page.ui.code_side = Some(side),
        UiAction::Inspect { seq } => page.ui.selected_seq = Some(seq),
        UiAction::ReplayPlay => {
            if let Some(replay) = &mut page.ui.replay {
                replay.playing = !replay.playing;
                // Playing from the end starts again at the beginning.
                if replay.playing && page.ui.at_seq.is_none() {
                    page.ui.at_seq = page.model.log_span().map(|(oldest, _)| oldest);
                }
            }
        }
        UiAction::WatchDemo => effects.push(Effect::FetchDemo(DEMO_PATH)),
        UiAction::SaveDiagram => effects.push(Effect::Download {
            name: "socket-flow-diagram.svg",
            mime: "image/svg+xml",
            text: crate::view::diagram_document(&page.model, &page.ui),
        }),
        UiAction::SaveDiagramPng => effects.push(Effect::DownloadPng {
            name: "socket-flow-diagram.png",
            svg: crate::view::diagram_document(&page.model, &page.ui),
        }),
        UiAction::LeaveRecording => {
            if page.ui.replay.take().is_some() {
                page.model = Model::new(page.model.lang);
                page.ui.at_seq = None;
                effects.push(Effect::Reconnect { delay_ms: 0 });
            }
        }
        // These need the DOM first (a box's text, the picker's choice, where
        // focus was); `app.rs` sends the message that carries it.
        UiAction::SendMessage { .. }
        | UiAction::RunChosen
        | UiAction::Help
        | UiAction::SaveRecording
        | UiAction::OpenRecording => {}
        // Boxes and pickers change; they are not clicked.
        UiAction::Message { .. }
        | UiAction::Address { .. }
        | UiAction::SelectConn { .. }
        | UiAction::Speed
        | UiAction::SkipAnimation
        | UiAction::Scrub
        | UiAction::LogKind
        | UiAction::LogSock => {}
    }
}

/// Flips a setting and keeps it for the next visit, as `words` (on, off).
fn toggle(flag: &mut bool, key: &'static str, words: (&str, &str), effects: &mut Vec<Effect>) {
    *flag = !*flag;
    let value = if *flag { words.0 } else { words.1 };
    effects.push(Effect::Persist {
        key,
        value: value.into(),
    });
}

/// Boxes, sliders and pickers: addresses, the speed, filters, the chosen
/// connection.
fn input(page: &mut Page, action: UiAction, value: &str, checked: bool) {
    match action {
        UiAction::Address { lane } => {
            if let Some(lane) = page.model.lanes.get_mut(lane) {
                lane.address = value.to_string();
            }
        }
        UiAction::Speed => {
            if let Ok(delay) = value.parse() {
                page.ui.step_delay_ms = delay;
            }
        }
        UiAction::SkipAnimation => page.ui.skip_animation = checked,
        UiAction::Scrub => {
            if let (Ok(seq), Some((_, newest))) = (value.parse::<u64>(), page.model.log_span()) {
                page.ui.at_seq = (seq < newest).then_some(seq);
            }
        }
        UiAction::LogKind => page.ui.log_kind = value.to_string(),
        UiAction::LogSock => page.ui.log_sock = value.to_string(),
        UiAction::SelectConn { sock } => {
            page.model.lanes[SERVER_LANE].selected_conn = Some(sock);
        }
        _ => {}
    }
}

fn key(page: &mut Page, key: Key, effects: &mut Vec<Effect>) {
    match key {
        Key::Next { focused_lane } => {
            let wanted = focused_lane.unwrap_or(page.ui.active_lane);
            // The lane asked for, or else the first after it with a step to take.
            let count = page.model.lanes.len().max(1);
            let driven = (0..count)
                .map(|offset| (wanted + offset) % count)
                .find_map(|lane| Some((lane, page.model.next_step(lane)?)));
            if let Some((lane, step)) = driven {
                effects.push(Effect::KeyTaken);
                page.ui.active_lane = lane;
                send_action(page, &Action::Step(lane, step), effects);
            }
        }
        Key::Back => page.ui.at_seq = step_history(&page.model, page.ui.at_seq, -1),
        Key::Forward => page.ui.at_seq = step_history(&page.model, page.ui.at_seq, 1),
        Key::SwitchLane => {
            let count = page.model.lanes.len().max(1);
            page.ui.active_lane = (page.ui.active_lane + 1) % count;
            if let Some(lane) = page.model.lanes.get(page.ui.active_lane) {
                let label = lane.aria_label(page.model.lang);
                let said = page.model.lang.pick("Now driving", "正在操作");
                page.model.announce(format!("{said}: {label}"));
            }
        }
        // A stray key must not throw the lesson away.
        Key::Reset => effects.push(Effect::ConfirmReset(page.model.lang.pick(
            "Reset the lab? Every socket is closed.",
            "重置实验？所有套接字都会被关闭。",
        ))),
        Key::Escape => {
            if page.ui.help_open {
                close_help(page, effects);
            }
        }
    }
}

fn close_help(page: &mut Page, effects: &mut Vec<Effect>) {
    page.ui.help_open = false;
    if let Some(selector) = page.help_return.take() {
        effects.push(Effect::Focus(selector));
    }
}

fn reset(page: &mut Page, effects: &mut Vec<Effect>) {
    page.player = None;
    page.ui.playing = None;
    send_action(page, &Action::Reset, effects);
}

/// The player's next click, the recording's next event, and the timeline's
/// next row.
fn tick(page: &mut Page, now_ms: f64, effects: &mut Vec<Effect>) {
    let delay = f64::from(page.ui.step_delay_ms);
    if let Some(replay) = &mut page.ui.replay {
        let last = *replay.last_step_ms.get_or_insert(now_ms);
        if replay.playing && now_ms - last >= delay {
            replay.last_step_ms = Some(now_ms);
            page.ui.at_seq = step_history(&page.model, page.ui.at_seq, 1);
            // Past the newest event the recording is shown whole, and stops.
            replay.playing = page.ui.at_seq.is_some();
            page.dirty = true;
        }
    }
    // The player clicks its next step when the last one has its answer.
    let due = page
        .player
        .as_mut()
        .and_then(|player| player.due(now_ms, delay, &page.model));
    if let Some(action) = due {
        match send_action(page, &action, effects) {
            Some(id) => {
                if let Some(player) = &mut page.player {
                    player.sent(id);
                }
            }
            // The step has no command (it says why): stop, do not guess.
            None => {
                if let Some(player) = &mut page.player {
                    player.paused = true;
                    page.ui.playing = Some((player.scenario, true));
                }
            }
        }
    }
    if page.player.as_ref().is_some_and(Player::finished) {
        if let Some(player) = page.player.take() {
            page.model
                .summarise_scenario(player.scenario, player.started_at_seq);
        }
        page.ui.playing = None;
        page.dirty = true;
    }
    let waiting = page.model.waiting_rows();
    if waiting > 0 {
        let interval = if waiting > BACKLOG_ROWS {
            BACKLOG_REVEAL_MS
        } else {
            ROW_REVEAL_MS
        };
        if page.ui.skip_animation {
            page.fresh_from = page.model.rows.len();
            page.model.revealed = page.model.rows.len();
            page.dirty = true;
        } else if now_ms - page.last_reveal_ms >= interval {
            page.fresh_from = page.model.revealed;
            page.model.revealed += 1;
            page.last_reveal_ms = now_ms;
            page.dirty = true;
        }
    }
}

fn start_player(page: &mut Page, scenario: Scenario) {
    page.player = Some(Player::new(scenario, 0.0, page.model.last_seq + 1));
    page.ui.playing = Some((scenario, false));
}

/// Offers the lab's events so far as a recording to download.
fn save_recording(page: &mut Page, now: &str, effects: &mut Vec<Effect>) {
    let lang = page.model.lang;
    // A recording saved again keeps the header of the run it records.
    let header = match (&page.ui.replay, &page.model.hello) {
        (Some(replay), _) => replay.header.clone(),
        (None, Some(hello)) => RecordingHeader::new(&hello.relay, now, hello.capture),
        (None, None) => {
            page.model.last_error = Some(
                lang.pick(
                    "Nothing to save yet: the relay has not said hello.",
                    "还没有可保存的内容：中继尚未发送 hello。",
                )
                .to_string(),
            );
            return;
        }
    };
    let frames = page
        .model
        .log
        .iter()
        .filter_map(|entry| entry.frame.as_deref());
    effects.push(Effect::Download {
        name: "socket-flow-recording.jsonl",
        mime: "application/x-ndjson",
        text: protocol::write_recording(&header, frames),
    });
}

/// Opens a recording in the stage in place of the live lab, from its first
/// event, playing; or says, in the UI language, why the file cannot be.
fn open_recording(page: &mut Page, text: &str, effects: &mut Vec<Effect>) {
    let lang = page.model.lang;
    let recording = match protocol::read_recording(text) {
        Ok(recording) => recording,
        Err(error) => {
            page.model.last_error = Some(match (lang, &error) {
                (Lang::Zh, RecordingError::Newer(version)) => {
                    format!("这是第 {version} 版的录制；请用更新的 socket-flow 打开。")
                }
                (Lang::Zh, RecordingError::NotARecording(reason)) => {
                    format!("这不是 socket-flow 的录制文件：{reason}")
                }
                (Lang::En, error) => format!("This file cannot be opened: {error}."),
            });
            return;
        }
    };
    let mut model = Model::new(lang);
    model.connection = Connection::Recording;
    for (event, frame) in &recording.events {
        model.apply_frame(event, frame);
    }
    model.revealed = model.rows.len();
    // What the recording says in the live region is not news now.
    model.take_announcements();
    page.player = None;
    page.ui.playing = None;
    page.ui.at_seq = model.log_span().map(|(oldest, _)| oldest);
    page.ui.replay = Some(Replay {
        header: recording.header,
        damaged: recording.damaged,
        playing: true,
        last_step_ms: None,
    });
    page.model = model;
    page.fresh_from = page.model.rows.len();
    effects.push(Effect::CloseSocket);
}

/// Where a history control takes the view: one event back or forward
/// (forward past the newest is live again).
fn step_history(model: &Model, at: Option<u64>, direction: i8) -> Option<u64> {
    let (oldest, newest) = model.log_span()?;
    match (direction, at) {
        (-1, None) => Some(newest.saturating_sub(1).max(oldest)),
        (-1, Some(seq)) => Some(seq.saturating_sub(1).max(oldest)),
        (1, Some(seq)) if seq + 1 < newest => Some(seq + 1),
        _ => None,
    }
}

/// Turns an action into a command to send. None, with the reason shown,
/// when there is no command yet, no relay, or the stage shows the past.
fn send_action(page: &mut Page, action: &Action, effects: &mut Vec<Effect>) -> Option<u64> {
    // Why no call can be made now, if none can, in both languages.
    let refused = if page.ui.replay.is_some() {
        Some((
            "This is a recording of a real run: nothing in it is live. Press “Back to the live lab” to make calls.",
            "这是一次真实运行的录制：其中没有任何实时内容。按“回到实时实验”后才能进行调用。",
        ))
    } else if page.ui.at_seq.is_some() {
        // The stage shows the past; a click there must not act on the present.
        Some((
            "The stage shows the lab as it was. Press “Back to live” to act on it again.",
            "舞台上显示的是过去的状态。按“回到实时”后才能继续操作。",
        ))
    } else if page.model.following.is_some() {
        // The words of the disabled buttons' tooltip: one string, not two.
        let words = crate::view::follow_only(page.model.lang);
        page.model.last_error = Some(words.to_string());
        return None;
    } else if page.model.connection != Connection::Connected {
        Some((
            "The relay is not connected; the page is retrying.",
            "中继未连接，页面正在重试。",
        ))
    } else {
        None
    };
    if let Some((english, chinese)) = refused {
        page.model.last_error = Some(page.model.lang.pick(english, chinese).to_string());
        return None;
    }
    match page.model.command_for(action) {
        Ok(command) => {
            effects.push(Effect::Send(protocol::encode_command(&command)));
            page.model.last_error = None;
            Some(command.id)
        }
        Err(reason) => {
            page.model.announce(reason.clone());
            page.model.last_error = Some(reason);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Step;

    fn connected() -> Page {
        let mut page = Page::new(&Saved::default(), Some("en-GB"), Some(1280.0));
        update(&mut page, Msg::SocketOpened);
        let hello = r#"{"seq":1,"t_us":0,"kind":"hello","protocol":1,"relay":"r","default_addr":"127.0.0.1","limits":{"sockets_per_lab":16,"labs_per_relay":64,"send_bytes":1,"read_bytes":1,"frame_bytes":1,"port_range":[7001,7999]},"capture":false}"#;
        update(&mut page, Msg::Frame(hello.into()));
        page
    }

    /// A click on the server lane's socket() step.
    fn click_socket(page: &mut Page) -> Vec<Effect> {
        update(
            page,
            Msg::Click(UiAction::Step {
                lane: SERVER_LANE,
                step: Step::Socket,
            }),
        )
    }

    fn sent(effects: &[Effect]) -> Vec<&str> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Send(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_step_click_sends_its_command() {
        let mut page = connected();
        let effects = click_socket(&mut page);
        let sent = sent(&effects);
        assert_eq!(sent.len(), 1, "{effects:?}");
        assert!(sent[0].contains(r#""op":"socket""#), "{}", sent[0]);
        assert!(page.dirty);
    }

    #[test]
    fn nothing_is_sent_without_a_relay_and_the_page_says_why() {
        let mut page = Page::new(&Saved::default(), None, None);
        let effects = click_socket(&mut page);
        assert!(sent(&effects).is_empty());
        assert!(page.model.last_error.is_some());
    }

    #[test]
    fn the_past_refuses_clicks() {
        let mut page = connected();
        page.ui.at_seq = Some(1);
        let effects = click_socket(&mut page);
        assert!(sent(&effects).is_empty());
        assert!(
            page.model
                .last_error
                .as_deref()
                .is_some_and(|error| error.contains("Back to live"))
        );
    }

    #[test]
    fn a_follower_sends_nothing_and_says_whose_screen_makes_calls() {
        let mut page = connected();
        page.model.following = Some(0);
        let effects = click_socket(&mut page);
        assert!(sent(&effects).is_empty());
        assert!(
            page.model
                .last_error
                .as_deref()
                .is_some_and(|error| error.contains("teacher's screen"))
        );
    }

    #[test]
    fn a_reset_key_asks_first_and_a_yes_resets() {
        let mut page = connected();
        let effects = update(&mut page, Msg::Key(Key::Reset));
        assert!(matches!(effects.as_slice(), [Effect::ConfirmReset(_)]));
        let effects = update(&mut page, Msg::ResetConfirmed);
        assert!(sent(&effects)[0].contains(r#""op":"reset""#));
    }

    #[test]
    fn help_takes_focus_and_gives_it_back() {
        let mut page = connected();
        let effects = update(
            &mut page,
            Msg::ToggleHelp {
                from: Some("#help-open".into()),
            },
        );
        assert_eq!(effects, vec![Effect::FocusHelp]);
        assert!(page.ui.help_open);
        let effects = update(&mut page, Msg::Key(Key::Escape));
        assert_eq!(effects, vec![Effect::Focus("#help-open".into())]);
        assert!(!page.ui.help_open);
    }

    #[test]
    fn the_next_key_drives_a_lane_with_a_step_and_takes_the_key() {
        let mut page = connected();
        let effects = update(&mut page, Msg::Key(Key::Next { focused_lane: None }));
        assert_eq!(effects.first(), Some(&Effect::KeyTaken));
        assert_eq!(sent(&effects).len(), 1);
    }

    #[test]
    fn settings_are_kept_and_the_frame_is_written_again() {
        let mut page = connected();
        let effects = update(&mut page, Msg::Click(UiAction::Lang));
        assert_eq!(page.model.lang, Lang::Zh);
        assert_eq!(
            effects,
            vec![
                Effect::Persist {
                    key: LANG_KEY,
                    value: "zh-CN".into()
                },
                Effect::Remount
            ]
        );
        let effects = update(&mut page, Msg::Click(UiAction::Drawer));
        assert!(matches!(
            effects.as_slice(),
            [Effect::Persist {
                key: DRAWER_KEY,
                ..
            }]
        ));
    }

    #[test]
    fn a_lost_relay_stops_the_player_and_reconnects() {
        let mut page = connected();
        update(&mut page, Msg::Click(UiAction::Run(Scenario::Lesson)));
        assert!(page.player.is_some());
        let effects = update(&mut page, Msg::SocketClosed);
        assert!(page.player.is_none());
        assert!(matches!(effects.as_slice(), [Effect::Reconnect { .. }]));
    }

    #[test]
    fn an_unreadable_frame_changes_nothing() {
        let mut page = connected();
        page.dirty = false;
        let effects = update(&mut page, Msg::Frame("{not json".into()));
        assert!(matches!(effects.as_slice(), [Effect::Console(_)]));
        assert!(!page.dirty);
    }

    #[test]
    fn a_sent_message_empties_its_box_and_an_empty_one_sends_nothing() {
        let mut page = connected();
        assert!(
            update(
                &mut page,
                Msg::SendText {
                    lane: 0,
                    sock: 1,
                    text: String::new()
                }
            )
            .is_empty()
        );
    }

    const SEED_FLOW: &str = include_str!("../tests/fixtures/seed-flow.jsonl");

    /// A page that ran the seed flow, and the recording it saves.
    fn saved() -> (Page, String) {
        let mut page = connected();
        for line in SEED_FLOW.lines() {
            update(&mut page, Msg::Frame(line.into()));
        }
        let effects = update(
            &mut page,
            Msg::SaveRecording {
                now: "2026-11-30T16:00:00.000Z".into(),
            },
        );
        let [Effect::Download { text, name, .. }] = effects.as_slice() else {
            panic!("{effects:?}");
        };
        assert!(name.ends_with(".jsonl"));
        (page, text.clone())
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.model.rows.iter().map(crate::model::Row::seq).collect()
    }

    #[test]
    fn a_saved_recording_opens_again_with_the_same_rows() {
        let (live, text) = saved();
        assert!(text.starts_with(r#"{"format":"socket-flow-recording","version":1,"#));
        for line in SEED_FLOW.lines() {
            assert!(
                text.contains(line),
                "every frame exactly as the relay sent it"
            );
        }
        let mut page = Page::new(&Saved::default(), Some("en"), None);
        let effects = update(&mut page, Msg::OpenRecording { text });
        assert_eq!(effects, vec![Effect::CloseSocket]);
        assert_eq!(seqs(&page), seqs(&live));
        assert_eq!(page.model.connection, Connection::Recording);
        let replay = page.ui.replay.as_ref().expect("a recording is open");
        assert_eq!(replay.header.recorded_at, "2026-11-30T16:00:00.000Z");
        // Nothing in it is live: a click makes no command, and says why.
        let effects = click_socket(&mut page);
        assert!(sent(&effects).is_empty());
        assert!(page.model.last_error.is_some());
        // The relay is not asked for, nor heard.
        assert_eq!(
            update(&mut page, Msg::SocketOpened),
            vec![Effect::CloseSocket]
        );
        assert!(update(&mut page, Msg::SocketClosed).is_empty());
    }

    #[test]
    fn a_damaged_recording_replays_up_to_its_bad_line_and_names_it() {
        let (_, text) = saved();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[5] = "{\"seq\": 5, \"t_us";
        let mut page = Page::new(&Saved::default(), Some("en"), None);
        update(
            &mut page,
            Msg::OpenRecording {
                text: lines.join("\n"),
            },
        );
        let replay = page.ui.replay.as_ref().expect("a recording is open");
        assert_eq!(replay.damaged.as_ref().expect("damage").line, 6);
        assert_eq!(page.model.log.len(), 4, "the four events before it replay");
        let banner = crate::view::recording(&page.model, &page.ui);
        assert!(banner.contains("Line 6"), "{banner}");
        assert!(banner.contains("Nothing in it is live"), "{banner}");
    }

    #[test]
    fn a_file_that_is_no_recording_is_refused_in_words() {
        let mut page = connected();
        let effects = update(
            &mut page,
            Msg::OpenRecording {
                text: "[1, 2, 3]".into(),
            },
        );
        assert!(effects.is_empty());
        assert!(page.ui.replay.is_none());
        assert!(
            page.model
                .last_error
                .as_deref()
                .is_some_and(|error| error.contains("not a socket-flow recording"))
        );
    }

    #[test]
    fn a_recording_plays_an_event_a_step_and_leaving_it_reconnects() {
        let (_, text) = saved();
        let mut page = Page::new(&Saved::default(), Some("en"), None);
        update(&mut page, Msg::OpenRecording { text });
        let (oldest, newest) = page.model.log_span().expect("events");
        assert_eq!(page.ui.at_seq, Some(oldest), "it starts at the beginning");
        let mut now = 0.0;
        let mut steps = 0;
        while page.ui.replay.as_ref().is_some_and(|replay| replay.playing) {
            now += f64::from(page.ui.step_delay_ms);
            update(&mut page, Msg::Tick { now_ms: now });
            steps += 1;
            assert!(steps < 1_000, "it ends");
        }
        assert_eq!(page.ui.at_seq, None, "the end shows the whole recording");
        // The first tick starts the clock; each after it is one event on.
        assert_eq!(steps as u64, newest - oldest + 1);
        let effects = update(&mut page, Msg::Click(UiAction::LeaveRecording));
        assert_eq!(effects, vec![Effect::Reconnect { delay_ms: 0 }]);
        assert!(page.ui.replay.is_none());
        assert!(page.model.log.is_empty(), "a fresh lab");
    }

    #[test]
    fn only_a_new_width_of_the_diagrams_box_draws_the_page_again() {
        let mut page = connected();
        page.ui.diagram_width = 479.0;
        page.dirty = false;
        update(&mut page, Msg::DiagramResized { width: 479 });
        assert!(!page.dirty, "taller, not wider");
        update(&mut page, Msg::DiagramResized { width: 327 });
        assert!(page.dirty, "the drawer opened");
    }

    #[test]
    fn showing_a_playing_recording_whole_stops_it() {
        let (_, text) = saved();
        let mut page = Page::new(&Saved::default(), Some("en"), None);
        update(&mut page, Msg::OpenRecording { text });
        assert!(page.ui.replay.as_ref().is_some_and(|replay| replay.playing));
        update(&mut page, Msg::Click(UiAction::Live));
        assert_eq!(page.ui.at_seq, None, "the whole recording");
        assert!(
            page.ui
                .replay
                .as_ref()
                .is_some_and(|replay| !replay.playing),
            "nothing is left to play"
        );
    }

    #[test]
    fn a_lost_relay_offers_the_built_in_lesson_and_says_if_it_cannot_be_had() {
        let mut page = connected();
        update(&mut page, Msg::SocketClosed);
        let banner = crate::view::relay_lost(&page.model);
        assert!(banner.contains("cannot be reached"), "{banner}");
        assert!(
            banner.contains(&UiAction::WatchDemo.to_string()),
            "{banner}"
        );
        let effects = update(&mut page, Msg::Click(UiAction::WatchDemo));
        assert_eq!(effects, vec![Effect::FetchDemo(DEMO_PATH)]);
        update(&mut page, Msg::DemoUnavailable("HTTP 404".into()));
        assert!(
            page.model
                .last_error
                .as_deref()
                .is_some_and(|error| error.contains("HTTP 404"))
        );
        assert!(crate::view::relay_lost(&connected().model).is_empty());
    }

    #[test]
    fn the_diagram_downloads_as_svg() {
        let (mut page, _) = saved();
        let effects = update(&mut page, Msg::Click(UiAction::SaveDiagram));
        let [Effect::Download { name, mime, text }] = effects.as_slice() else {
            panic!("{effects:?}");
        };
        assert_eq!((*name, *mime), ("socket-flow-diagram.svg", "image/svg+xml"));
        assert!(text.contains("<svg xmlns"));
        let effects = update(&mut page, Msg::Click(UiAction::SaveDiagramPng));
        assert!(matches!(
            effects.as_slice(),
            [Effect::DownloadPng { name: "socket-flow-diagram.png", svg }] if svg == text
        ));
    }

    #[test]
    fn the_first_visit_opens_the_drawer_only_where_there_is_room() {
        assert!(
            Page::new(&Saved::default(), None, Some(1920.0))
                .ui
                .drawer_open
        );
        assert!(
            !Page::new(&Saved::default(), None, Some(1280.0))
                .ui
                .drawer_open
        );
        let closed = Saved {
            drawer: Some("closed".into()),
            ..Saved::default()
        };
        assert!(!Page::new(&closed, None, Some(1920.0)).ui.drawer_open);
    }
}
