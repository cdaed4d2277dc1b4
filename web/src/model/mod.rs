//! The page's state, as pure Rust: protocol events in, what to show out.
//!
//! Nothing here touches the DOM, so `cargo test` runs it natively. The view
//! reads a [`Model`] and draws it; `page::update` feeds it events and asks it
//! which command a click means.
//!
//! - `lesson`: the lesson's vocabulary: steps, sides, lanes, cards, rows.
//! - `apply`: how each event changes the model.
//! - `commands`: which command a click or a script's step means.

mod apply;
mod commands;
mod lesson;

pub use apply::{segment_label, sock_name, state_label};
pub use commands::Action;
pub use lesson::*;

use std::collections::BTreeMap;

use protocol::{EventBody, Hello, OpName, Phase, Role, SockId};

use crate::i18n::Lang;
use crate::listing;
use crate::notes;
use crate::script::Scenario;

/// The state of the page's link to the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    /// The WebSocket is open.
    Connected,
    /// The WebSocket closed; the page tries again after `retry_in_ms`.
    Lost {
        attempt: u32,
        retry_in_ms: u32,
    },
    /// A recording is open: no relay, and nothing live.
    Recording,
}

/// What the browser knows of a command it sent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Issued {
    lane: LaneId,
    step: Option<Step>,
    /// A reset's closes update the sockets but draw no cards.
    quiet: bool,
}

/// How many announcements wait for the next frame, at most.
pub const MAX_ANNOUNCEMENTS: usize = 200;

/// The page's whole state.
#[derive(Debug)]
pub struct Model {
    pub connection: Connection,
    failed_attempts: u32,
    pub lang: Lang,
    pub hello: Option<Hello>,
    pub lanes: Vec<Lane>,
    pub sockets: BTreeMap<SockId, SockView>,
    issued: BTreeMap<u64, Issued>,
    next_id: u64,
    pub rows: Vec<Row>,
    pub log: Vec<LogEntry>,
    pub code: CodeFocus,
    /// Sentences for the ARIA live region; the view takes them.
    pub announcements: Vec<String>,
    /// How many timeline rows were let go, ever: the oldest beyond the
    /// limit, and all of them when a new lab starts.
    pub trimmed_rows: usize,
    /// How many of this lab's oldest rows the timeline let go (the event
    /// log and an export still hold them); the diagram says so.
    pub rows_let_go: usize,
    /// How many of this lab's oldest events the event log let go.
    pub log_let_go: usize,
    /// Announcements let go since the last frame (see [`Model::announce`]).
    pub unannounced: usize,
    /// The last refusal, shown until the next one.
    pub last_error: Option<String>,
    pub last_seq: u64,
    /// Events whose seq was not the next one, counted, never trusted blindly.
    pub out_of_order: u32,
    /// How many screens follow the lab, as the relay last said.
    pub viewers: u32,
    /// Set when this page follows another's lab: how many of the lab's
    /// oldest events the relay no longer had when it joined.
    pub following: Option<u64>,
    /// Rows already animated; the rest wait their turn.
    pub revealed: usize,
    /// The address the server lane last bound, kept after it closes, so a
    /// restarted server can ask for the same port.
    last_server_addr: Option<String>,
    /// Resets seen; sockets made before the last one are drawn as such.
    generation: u32,
    /// What the last error scenario showed.
    pub summary: Option<Summary>,
}

/// The first retry waits this long; each failure doubles it up to the cap.
const FIRST_RETRY_MS: u32 = 500;
const MAX_RETRY_MS: u32 = 8_000;
/// The timeline keeps this many rows; the log keeps everything.
const MAX_ROWS: usize = 2_000;
/// How many of the oldest rows go at once when there are too many.
const TRIM_BLOCK: usize = 500;
/// The page draws the rows in chunks of this many, counted from the
/// lesson's first row; the model lets rows go in whole chunks.
pub const ROW_CHUNK: usize = 50;
/// How many events the event log (and an export) keeps, and how many of
/// the oldest go at once when it is full.
pub const MAX_LOG: usize = 20_000;
const LOG_TRIM_BLOCK: usize = 5_000;

impl Model {
    pub fn new(lang: Lang) -> Model {
        Model {
            connection: Connection::Connecting,
            failed_attempts: 0,
            lang,
            hello: None,
            lanes: vec![
                Lane::new(SERVER_LANE, Side::Server),
                Lane::new(1, Side::Client),
            ],
            sockets: BTreeMap::new(),
            issued: BTreeMap::new(),
            next_id: 1,
            rows: Vec::new(),
            log: Vec::new(),
            code: CodeFocus::default(),
            announcements: Vec::new(),
            unannounced: 0,
            trimmed_rows: 0,
            rows_let_go: 0,
            log_let_go: 0,
            last_error: None,
            last_seq: 0,
            out_of_order: 0,
            viewers: 0,
            following: None,
            revealed: 0,
            last_server_addr: None,
            generation: 0,
            summary: None,
        }
    }

    pub fn connection_opened(&mut self) {
        self.connection = Connection::Connected;
        self.failed_attempts = 0;
    }

    /// Records a lost connection and returns how long to wait before retrying.
    pub fn connection_lost(&mut self) -> u32 {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        let retry_in_ms = FIRST_RETRY_MS
            .saturating_mul(1 << self.failed_attempts.saturating_sub(1).min(5))
            .min(MAX_RETRY_MS);
        self.connection = Connection::Lost {
            attempt: self.failed_attempts,
            retry_in_ms,
        };
        retry_in_ms
    }

    /// The lab's sockets are gone with the session that owned them.
    fn clear_lab(&mut self) {
        let client_lanes = self.lanes.len().saturating_sub(1).max(1);
        self.lanes = std::iter::once(Lane::new(SERVER_LANE, Side::Server))
            .chain((1..=client_lanes).map(|id| Lane::new(id, Side::Client)))
            .collect();
        self.sockets.clear();
        self.issued.clear();
        // Every row is let go: a drawn diagram removes them all.
        self.trimmed_rows += self.rows.len();
        self.rows_let_go = 0;
        self.rows.clear();
        self.revealed = 0;
        self.code = CodeFocus::default();
        self.last_error = None;
        self.last_server_addr = None;
        self.summary = None;
    }

    /// Clears the lanes for a reset. The timeline keeps the last run: the
    /// reset's closes are drawn as its teardown, then a divider, and the
    /// sockets' own later events keep the socket table true.
    fn start_over(&mut self) {
        for lane in &mut self.lanes {
            let (id, side) = (lane.id, lane.side);
            *lane = Lane::new(id, side);
        }
        self.code = CodeFocus::default();
        self.last_error = None;
        self.summary = None;
    }

    fn free_client_lane(&self) -> LaneId {
        self.lanes
            .iter()
            .filter(|lane| lane.side == Side::Client)
            .find(|lane| self.lane_sock(lane.id).is_none())
            .map(|lane| lane.id)
            .unwrap_or(1)
    }

    pub fn add_client(&mut self) -> LaneId {
        let id = self.lanes.len();
        self.lanes.push(Lane::new(id, Side::Client));
        id
    }

    pub fn capture(&self) -> bool {
        self.hello.as_ref().is_some_and(|hello| hello.capture)
    }

    /// The next step of a lane that has not succeeded yet.
    pub fn next_step(&self, lane: LaneId) -> Option<Step> {
        let lane_entry = self.lanes.get(lane)?;
        lane_entry
            .side
            .steps()
            .iter()
            .copied()
            .filter(|step| step.is_system_call())
            .find(|step| {
                lane_entry
                    .cards
                    .get(step)
                    .is_none_or(|card| card.phase() != Phase::Done)
            })
    }

    /// Whether the command `id` is still waiting for its final phase.
    pub fn is_outstanding(&self, id: u64) -> bool {
        self.issued.contains_key(&id)
            && !self.log.iter().rev().any(|entry| {
                matches!(&entry.event.body, EventBody::Call(call)
                    if call.id == Some(id) && call.phase == Some(Phase::Blocked))
            })
    }

    /// The server's bound address, as `IP:PORT`.
    pub fn server_addr(&self) -> Option<String> {
        let sock = self.lanes[SERVER_LANE].sock?;
        self.sockets
            .get(&sock)?
            .local
            .clone()
            .filter(|addr| !addr.ends_with(":0"))
    }

    /// The command an outside peer joins the lab with.
    pub fn nc_command(&self) -> Option<String> {
        let addr = self.server_addr()?;
        let (host, port) = addr.rsplit_once(':')?;
        Some(format!("nc {host} {port}"))
    }

    /// Rows not animated yet.
    pub fn waiting_rows(&self) -> usize {
        self.rows.len().saturating_sub(self.revealed)
    }

    /// Finds what a scenario that has just run showed, among the events
    /// from `since_seq` on, for its summary card.
    pub fn summarise_scenario(&mut self, scenario: Scenario, since_seq: u64) {
        if notes::scenario_summary(scenario, self.lang).is_none() {
            return;
        }
        let recent = || self.log.iter().filter(|entry| entry.seq >= since_seq);
        let call = |entry: &LogEntry| match &entry.event.body {
            EventBody::Call(call) => Some(call.clone()),
            _ => None,
        };
        // The call that shows it: the last failure, else the last read.
        let key_call = recent()
            .filter_map(|entry| call(entry).map(|call| (entry.seq, call)))
            .rfind(|(_, call)| call.phase == Some(Phase::Failed))
            .or_else(|| {
                let wanted = match scenario {
                    Scenario::BindReuseAddr => OpName::Bind,
                    Scenario::NeverClose => OpName::Close,
                    _ => OpName::Read,
                };
                recent()
                    .filter_map(|entry| call(entry).map(|call| (entry.seq, call)))
                    .rfind(|(_, call)| call.op == Some(wanted) && call.phase == Some(Phase::Done))
            });
        let segment_seq = recent()
            .filter(|entry| {
                matches!(&entry.event.body, EventBody::Segment(segment)
                    if segment.has("RST") || segment.has("FIN"))
            })
            .map(|entry| entry.seq)
            .next_back();
        let c_line = key_call.as_ref().and_then(|(_, call)| {
            let step = call.op.and_then(Step::from_op)?;
            let side = match call.sock.and_then(|sock| self.sockets.get(&sock)) {
                Some(view) if view.role == Role::Client => Side::Client,
                _ => Side::Server,
            };
            // The step's line that makes the call: the one whose value it shows.
            listing::c_listing(side)
                .iter()
                .find(|line| line.step == Some(step) && line.value.is_some())
                .map(|line| line.code)
        });
        self.summary = Some(Summary {
            scenario,
            call_seq: key_call.map(|(seq, _)| seq),
            segment_seq,
            c_line,
        });
    }

    /// The lab as it was when event `seq` had just arrived: the events the
    /// log holds up to it, applied to a fresh page with the same lanes.
    /// Nothing is guessed: what no event had reported by then is not there.
    pub fn as_of(&self, seq: u64) -> Model {
        let mut past = Model::new(self.lang);
        while past.lanes.len() < self.lanes.len() {
            past.add_client();
        }
        past.connection = self.connection.clone();
        for entry in self.log.iter().take_while(|entry| entry.seq <= seq) {
            match &entry.frame {
                Some(frame) => past.apply_frame(&entry.event, frame),
                None => past.apply(&entry.event),
            }
        }
        past.revealed = past.rows.len();
        past.announcements.clear();
        past
    }

    /// The seqs the log can step through: the oldest it holds and the newest.
    pub fn log_span(&self) -> Option<(u64, u64)> {
        Some((self.log.first()?.seq, self.log.last()?.seq))
    }

    pub fn take_announcements(&mut self) -> Vec<String> {
        let mut said = std::mem::take(&mut self.announcements);
        if self.unannounced > 0 {
            said.insert(0, notes::unannounced(self.unannounced, self.lang));
            self.unannounced = 0;
        }
        said
    }

    /// Queues words for the live region. A page that draws no frames (a
    /// hidden tab) keeps the newest [`MAX_ANNOUNCEMENTS`], and says how
    /// many it let go.
    pub fn announce(&mut self, words: String) {
        if self.announcements.len() >= MAX_ANNOUNCEMENTS {
            self.announcements.remove(0);
            self.unannounced += 1;
        }
        self.announcements.push(words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Event, Op, Segment, SockState, TcpState};

    /// A real session of the whole seed flow, recorded by the engine test.
    const SEED_FLOW: &str = include_str!("../../tests/fixtures/seed-flow.jsonl");

    fn events() -> Vec<Event> {
        SEED_FLOW
            .lines()
            .map(|line| protocol::decode_event(line).expect("the fixture parses"))
            .collect()
    }

    #[test]
    fn a_traced_programs_lanes_carry_its_name_and_its_exit_divides_the_timeline() {
        let mut model = Model::new(Lang::En);
        let mut lesson = events();
        lesson.truncate(1);
        for event in &lesson {
            model.apply(event);
        }
        for line in [
            r#"{"seq":2,"t_us":9,"kind":"call","id":null,"op":"socket","sock":1,"fd":3,"phase":"done","ret":3,"c":"socket(AF_INET, SOCK_STREAM, 0) = 3","role":"server","lane":"server[7]"}"#,
            r#"{"seq":3,"t_us":9,"kind":"call","id":null,"op":"accept","sock":1,"fd":3,"phase":"blocked","c":"accept(3, …, …)","note":{"key":"thread_sleeps"},"lane":"server[7]"}"#,
            r#"{"seq":4,"t_us":9,"kind":"call","id":null,"op":"socket","sock":2,"fd":3,"phase":"done","ret":3,"c":"socket(AF_INET, SOCK_STREAM, 0) = 3","role":"client","lane":"client[8]"}"#,
            r#"{"seq":5,"t_us":9,"kind":"exited","lane":"client[8]","status":0}"#,
        ] {
            model.apply(&protocol::decode_event(line).expect("parses"));
        }
        assert_eq!(model.lanes[0].label(Lang::En), "Server · server[7]");
        assert_eq!(model.lanes[1].label(Lang::En), "Client 1 · client[8]");
        assert!(matches!(
            model.rows.last(),
            Some(Row::Divider { label, .. }) if label == "client[8] exited with status 0"
        ));
    }

    #[test]
    fn a_follower_draws_the_lab_from_its_history_and_counts_the_screens() {
        let mut model = Model::new(Lang::En);
        let history = r#"{"seq":0,"t_us":0,"kind":"history","resync":false,"let_go":0}"#;
        model.apply(&protocol::decode_event(history).expect("history"));
        let viewers = r#"{"seq":2,"t_us":5,"kind":"viewers","count":3}"#;
        let mut lesson = events();
        lesson.truncate(1);
        lesson.push(protocol::decode_event(viewers).expect("viewers"));
        for event in &lesson {
            model.apply(event);
        }
        model.connection = Connection::Connected;
        assert_eq!(model.following, Some(0));
        assert_eq!(model.out_of_order, 0, "seq 0 is not the lab's");
        assert_eq!(
            crate::view::status(&model).1,
            "Following a lab · 3 watching"
        );
        // A refusal of this screen's command is shown, and is not the lab's.
        let refused = r#"{"seq":0,"t_us":0,"kind":"error","id":4,"code":"read_only","message":"This screen follows a lab"}"#;
        model.apply(&protocol::decode_event(refused).expect("error"));
        assert_eq!(
            model.last_error.as_deref(),
            Some("This screen follows a lab")
        );
        assert_eq!(model.last_seq, 2);
    }

    #[test]
    fn the_lab_as_it_was_before_accept_returned_has_no_connection_yet() {
        let mut model = Model::new(Lang::En);
        for event in events() {
            model.apply(&event);
        }
        let accepted = model
            .log
            .iter()
            .find(|entry| {
                matches!(&entry.event.body, EventBody::Call(call)
                    if call.op == Some(OpName::Accept) && call.phase == Some(Phase::Done))
            })
            .map(|entry| entry.seq)
            .expect("the fixture accepts a connection");
        let before = model.as_of(accepted - 1);
        assert_eq!(before.last_seq, accepted - 1);
        assert!(
            before.lanes[SERVER_LANE].conns.is_empty(),
            "not accepted yet"
        );
        assert_eq!(before.rows.len(), before.revealed);
        let after = model.as_of(accepted);
        assert_eq!(after.lanes[SERVER_LANE].conns.len(), 1, "accepted then");
        assert!(
            model.rows.len() > after.rows.len(),
            "later rows are not there"
        );
    }

    #[test]
    fn a_lanes_new_socket_starts_its_steps_again() {
        let mut model = Model::new(Lang::En);
        for event in events() {
            model.apply(&event);
        }
        assert!(model.lanes[SERVER_LANE].cards.contains_key(&Step::Listen));
        let again = format!(
            r#"{{"seq":{},"t_us":99000,"kind":"call","id":99,"op":"socket","sock":9,"fd":20,"phase":"done","ret":20,"c":"socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0) = 20","role":"server"}}"#,
            model.last_seq + 1
        );
        model.apply(&protocol::decode_event(&again).expect("a call"));
        let server = &model.lanes[SERVER_LANE];
        let steps: Vec<Step> = server.cards.keys().copied().collect();
        assert_eq!(steps, [Step::Socket], "only the new socket's card");
        assert_eq!(server.cards[&Step::Socket].call.sock, Some(9));
        assert!(server.extra.is_empty());
        assert_eq!(server.sock, Some(9));
    }

    #[test]
    fn back_off_doubles_then_caps_and_resets_on_open() {
        let mut model = Model::new(Lang::En);
        let delays: Vec<u32> = (0..7).map(|_| model.connection_lost()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        model.connection_opened();
        assert_eq!(model.connection, Connection::Connected);
        assert_eq!(model.connection_lost(), 500);
    }

    #[test]
    fn a_full_lesson_gives_lanes_states_and_cards() {
        let mut model = Model::new(Lang::En);
        for event in events() {
            model.apply(&event);
        }
        assert_eq!(model.out_of_order, 0);
        let server = &model.lanes[SERVER_LANE];
        assert_eq!(server.sock, Some(1));
        assert_eq!(server.conns, vec![3]);
        let accept = &server.cards[&Step::Accept];
        assert_eq!(accept.phase(), Phase::Done);
        assert_eq!(accept.call.new_fd, Some(14));
        let client = &model.lanes[1];
        assert_eq!(client.sock, Some(2));
        assert_eq!(client.cards[&Step::Connect].phase(), Phase::Done);
        // The kernel's last word on each socket.
        assert_eq!(model.sockets[&2].tcp, Some(TcpState::TimeWait));
        assert!(!model.sockets[&2].fd_open);
        assert_eq!(model.sockets[&1].tcp, Some(TcpState::Close));
        assert_eq!(model.sockets[&3].last_read.as_deref(), Some(""));
        // ESTABLISHED was shown before accept completed.
        let established = model
            .rows
            .iter()
            .position(|row| matches!(row, Row::State { label, lane: 1, .. } if label.contains("ESTABLISHED")))
            .expect("the client was ESTABLISHED");
        let accepted = model
            .rows
            .iter()
            .position(|row| matches!(row, Row::Call { label, phase: Phase::Done, .. } if label.starts_with("accept()")))
            .expect("accept completed");
        assert!(established < accepted);
        assert_eq!(model.log.len(), events().len());
    }

    #[test]
    fn clicks_map_to_commands_on_the_right_sockets() {
        let mut model = Model::new(Lang::En);
        let all = events();
        // Up to the accept's completion.
        for event in all.iter().take_while(|event| event.seq <= 16) {
            model.apply(event);
        }
        let read = model
            .command_for(&Action::Step(SERVER_LANE, Step::Read))
            .expect("read");
        assert_eq!(
            read.op,
            Op::Read {
                sock: 3,
                max: Some(1024)
            },
            "the server reads the accepted fd"
        );
        let send = model
            .command_for(&Action::Step(1, Step::Send))
            .expect("send");
        assert!(matches!(send.op, Op::Send { sock: 2, .. }));
        assert!(read.id < send.id);
        assert!(model.command_for(&Action::Step(1, Step::Address)).is_err());
        let server_port = model.sockets[&1].local.clone().expect("bound");
        assert_eq!(
            model.nc_command(),
            Some(format!("nc {}", server_port.replace(':', " ")))
        );
        let mistake = model
            .command_for(&Action::ReadListening)
            .expect("the seed's read");
        assert_eq!(mistake.op, Op::Read { sock: 1, max: None });
    }

    #[test]
    fn steps_need_their_socket_first() {
        let mut model = Model::new(Lang::Zh);
        let refused = model.command_for(&Action::Step(SERVER_LANE, Step::Bind));
        assert!(refused.expect_err("no socket yet").contains("socket()"));
        assert_eq!(model.next_step(SERVER_LANE), Some(Step::Socket));
    }

    #[test]
    fn a_failed_call_shows_its_errno() {
        let mut model = Model::new(Lang::En);
        let command = model
            .command_for(&Action::Step(SERVER_LANE, Step::Socket))
            .expect("socket");
        let text = format!(
            r#"{{"seq":1,"t_us":0,"kind":"hello","protocol":1,"relay":"r","default_addr":"127.0.0.1","limits":{{"sockets_per_lab":16,"labs_per_relay":64,"send_bytes":1,"read_bytes":1,"frame_bytes":1,"port_range":[7001,7999]}},"capture":false}}
{{"seq":2,"t_us":5,"kind":"call","id":{id},"op":"connect","sock":2,"fd":13,"phase":"failed","ret":-1,"errno":"ECONNREFUSED","message":"Connection refused","c":"connect(13, {{AF_INET, 127.0.0.1:7001}}, 16) = -1 ECONNREFUSED (Connection refused)"}}"#,
            id = command.id
        );
        for line in text.lines() {
            model.apply(&protocol::decode_event(line).expect("parses"));
        }
        let card = model.lanes[SERVER_LANE]
            .extra
            .iter()
            .chain(model.lanes[SERVER_LANE].cards.values())
            .find(|card| card.call.errno.is_some())
            .expect("a card with the errno");
        assert_eq!(card.call.errno.as_deref(), Some("ECONNREFUSED"));
        assert_eq!(card.phase(), Phase::Failed);
        assert_eq!(
            model.code.values.get("connect").map(String::as_str),
            Some("-1 (ECONNREFUSED)")
        );
    }

    #[test]
    fn segments_become_arrows_between_lanes() {
        let mut model = Model::new(Lang::En);
        for event in events().iter().take_while(|event| event.seq <= 16) {
            model.apply(event);
        }
        let segment = Event {
            seq: 17,
            t_us: 99_000,
            body: EventBody::Segment(Segment {
                src: "127.0.0.1:40122".into(),
                dst: "127.0.0.1:7003".into(),
                flags: vec!["PSH".into(), "ACK".into()],
                tcp_seq: 1000,
                tcp_ack: 2000,
                rel_seq: 1,
                rel_ack: 1,
                len: 5,
                win: 512,
                payload: Some("hello".into()),
                payload_hex: None,
                src_sock: Some(2),
                dst_sock: Some(3),
                cause: protocol::Cause::Call,
                id: Some(7),
                coalesced: None,
            }),
        };
        model.apply(&segment);
        let Some(Row::Segment {
            from,
            to,
            label,
            detail,
            ..
        }) = model.rows.last()
        else {
            panic!("no arrow");
        };
        assert_eq!((*from, *to), (Column::Lane(1), Column::Lane(SERVER_LANE)));
        assert_eq!(label, "PSH+ACK seq=1 ack=1 len=5");
        assert!(detail.contains("payload: hello"));
    }

    #[test]
    fn a_segment_without_the_ack_flag_shows_no_ack_number() {
        let syn = r#"{"seq":12,"t_us":2509,"kind":"segment","src":"127.0.0.1:49194","dst":"127.0.0.1:7006","flags":["SYN"],"tcp_seq":2036192122,"tcp_ack":0,"rel_seq":0,"rel_ack":0,"len":0,"win":65495,"src_sock":2,"dst_sock":1,"cause":"call","id":6}"#;
        let Ok(protocol::Event {
            body: EventBody::Segment(segment),
            ..
        }) = protocol::decode_event(syn)
        else {
            panic!("a segment");
        };
        assert_eq!(segment_label(&segment), "SYN seq=0");
        let syn_ack = protocol::Segment {
            flags: vec!["SYN".into(), "ACK".into()],
            rel_ack: 1,
            ..segment
        };
        assert_eq!(segment_label(&syn_ack), "SYN+ACK seq=0 ack=1");
    }

    #[test]
    fn odd_events_do_not_panic() {
        let mut model = Model::new(Lang::En);
        let odd = [
            r#"{"seq":5,"t_us":1,"kind":"state","sock":77,"fd":null,"role":"conn","tcp":"CLOSE","fd_open":false}"#,
            r#"{"seq":3,"t_us":1,"kind":"call","id":999,"op":"read","sock":42,"fd":9,"phase":"done","ret":0,"c":"read(9, \"\", 1024) = 0"}"#,
            r#"{"seq":9,"t_us":2,"kind":"error","id":null,"code":"bad_json","message":"no"}"#,
            r#"{"seq":10,"t_us":3,"kind":"call","id":null,"op":null,"sock":null,"fd":null,"phase":null,"c":""}"#,
        ];
        for line in odd {
            model.apply(&protocol::decode_event(line).expect("parses"));
        }
        assert!(model.out_of_order > 0);
        assert!(protocol::decode_event(r#"{"seq":1,"kind":"martian"}"#).is_err());
        assert_eq!(model.last_error.as_deref(), Some("no"));
    }

    #[test]
    fn a_new_session_starts_a_fresh_lab() {
        let mut model = Model::new(Lang::En);
        for event in events() {
            model.apply(&event);
        }
        model.add_client();
        model.apply(&events()[0]);
        assert!(model.sockets.is_empty());
        assert_eq!(model.lanes.len(), 3, "the lanes stay, empty");
        assert!(model.lanes.iter().all(|lane| lane.cards.is_empty()));
    }

    #[test]
    fn a_reset_draws_its_teardown_then_a_divider() {
        let mut model = Model::new(Lang::En);
        for event in events() {
            model.apply(&event);
        }
        let reset = model.command_for(&Action::Reset).expect("reset");
        let rows_before = model.rows.len();
        assert!(rows_before > 0, "the last run stays on the timeline");
        let last = model.last_seq;
        model.apply(&Event {
            seq: last + 1,
            t_us: 1,
            body: EventBody::Reset(protocol::ResetDone {
                id: reset.id,
                closed: 0,
            }),
        });
        assert!(
            matches!(model.rows.last(), Some(Row::Divider { label, .. }) if label.contains("new run"))
        );
        assert!(!model.is_outstanding(reset.id), "the reset has its answer");
        // An old socket's later state is marked as being from before.
        model.apply(&Event {
            seq: last + 2,
            t_us: 2,
            body: EventBody::State(SockState {
                sock: 2,
                fd: None,
                role: Role::Client,
                tcp: TcpState::Close,
                fd_open: false,
                local: None,
                peer: None,
                queue: None,
                backlog: None,
            }),
        });
        assert!(
            matches!(model.rows.last(), Some(Row::State { label, .. }) if label.contains("before the reset"))
        );
    }

    #[test]
    fn a_scenario_summary_points_at_the_failed_call() {
        let mut model = Model::new(Lang::En);
        for event in events() {
            model.apply(&event);
        }
        model.summarise_scenario(Scenario::ReadAfterPeerClosed, 1);
        let summary = model.summary.clone().expect("a summary");
        let read = model
            .log
            .iter()
            .rev()
            .find(|entry| matches!(&entry.event.body, EventBody::Call(call) if call.op == Some(OpName::Read) && call.ret == Some(0)))
            .expect("read = 0");
        assert_eq!(summary.call_seq, Some(read.seq));
        assert!(summary.c_line.is_some_and(|line| line.contains("read(")));
    }
}
