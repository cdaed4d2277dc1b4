//! The page's state, as pure Rust: protocol events in, what to show out.
//!
//! Nothing here touches the DOM, so `cargo test` runs it natively. The view
//! reads a [`Model`] and draws it; the controller in `app.rs` feeds it events
//! and asks it which command a click means.

use std::collections::{BTreeMap, HashMap};

use protocol::{
    Call, Command, Event, EventBody, Hello, Op, OpName, Phase, Role, Segment, SockId, SockOptName,
    SockOptValue, SockState, TcpState,
};

use crate::i18n::Lang;
use crate::listing;
use crate::notes;
use crate::script::Scenario;
use crate::spoken;

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
}

/// The steps of the lesson, as the course material orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Socket,
    /// Filling in `struct sockaddr_in`: no system call, so no button that
    /// pretends one; the lane shows an address field instead.
    Address,
    Bind,
    Listen,
    Accept,
    Connect,
    Read,
    Send,
    Close,
}

/// Which program a lane runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Server,
    Client,
}

pub const SERVER_STEPS: [Step; 8] = [
    Step::Socket,
    Step::Address,
    Step::Bind,
    Step::Listen,
    Step::Accept,
    Step::Read,
    Step::Send,
    Step::Close,
];
pub const CLIENT_STEPS: [Step; 6] = [
    Step::Socket,
    Step::Address,
    Step::Connect,
    Step::Read,
    Step::Send,
    Step::Close,
];

impl Side {
    pub fn steps(self) -> &'static [Step] {
        match self {
            Side::Server => &SERVER_STEPS,
            Side::Client => &CLIENT_STEPS,
        }
    }
}

impl Step {
    /// The step's title: in Chinese, the course material's own words.
    pub fn title(self, side: Side, lang: Lang) -> &'static str {
        match self {
            Step::Socket => lang.pick("Create the socket", "创建套接字"),
            Step::Address => lang.pick("Configure the server address", "配置服务器地址"),
            Step::Bind => lang.pick("Bind the socket", "绑定套接字"),
            Step::Listen => lang.pick("Start listening", "启动监听"),
            Step::Accept => lang.pick("Accept a connection", "接受设备"),
            Step::Connect => lang.pick("Connect to the server", "连接客户端"),
            Step::Read => lang.pick("Receive data", "接收数据"),
            Step::Send => lang.pick("Send data", "发送数据"),
            Step::Close if side == Side::Server => lang.pick("Close", "关闭设备"),
            Step::Close => lang.pick("Close", "关闭设备"),
        }
    }

    /// A short gloss under the course material's Chinese title, where the
    /// title alone could teach a mistake. English titles say it already.
    pub fn gloss(self, lang: Lang) -> Option<&'static str> {
        if lang != Lang::Zh {
            return None;
        }
        match self {
            Step::Connect => Some("客户端调用 connect() 去连接服务端：发出 SYN，完成三次握手。"),
            Step::Accept => Some(
                "accept() 从队列中取出一个已完成握手的连接，返回一个新的 fd；握手本身由内核完成。",
            ),
            Step::Close => Some("close() 关闭一个 fd；关闭监听 fd 不会关闭已接受的连接。"),
            _ => None,
        }
    }

    /// The call the step makes, as its button names it.
    pub fn call_label(self) -> &'static str {
        match self {
            Step::Socket => "socket()",
            Step::Address => "struct sockaddr_in",
            Step::Bind => "bind()",
            Step::Listen => "listen()",
            Step::Accept => "accept()",
            Step::Connect => "connect()",
            Step::Read => "read()",
            Step::Send => "send()",
            Step::Close => "close()",
        }
    }

    pub fn is_system_call(self) -> bool {
        self != Step::Address
    }

    pub fn key(self) -> &'static str {
        match self {
            Step::Socket => "socket",
            Step::Address => "address",
            Step::Bind => "bind",
            Step::Listen => "listen",
            Step::Accept => "accept",
            Step::Connect => "connect",
            Step::Read => "read",
            Step::Send => "send",
            Step::Close => "close",
        }
    }

    pub fn from_key(key: &str) -> Option<Step> {
        SERVER_STEPS
            .iter()
            .chain(CLIENT_STEPS.iter())
            .copied()
            .find(|step| step.key() == key)
    }

    fn from_op(op: OpName) -> Option<Step> {
        Some(match op {
            OpName::Socket => Step::Socket,
            OpName::Bind => Step::Bind,
            OpName::Listen => Step::Listen,
            OpName::Accept => Step::Accept,
            OpName::Connect => Step::Connect,
            OpName::Read => Step::Read,
            OpName::Send => Step::Send,
            OpName::Close => Step::Close,
            _ => return None,
        })
    }
}

pub type LaneId = usize;
/// Lane 0 is the server; lanes 1, 2, … are clients.
pub const SERVER_LANE: LaneId = 0;

/// One call's latest phase, as a step card shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Card {
    pub seq: u64,
    pub call: Call,
}

impl Card {
    pub fn phase(&self) -> Phase {
        self.call.phase.unwrap_or(Phase::Done)
    }
}

/// A column of the page: a server or client lane.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    pub id: LaneId,
    pub side: Side,
    /// The lane's own socket: the listening socket, or the client.
    pub sock: Option<SockId>,
    /// For the server: the connections accept returned, newest last.
    pub conns: Vec<SockId>,
    /// The connection the server's read, send and close act on.
    pub selected_conn: Option<SockId>,
    /// The address typed into the sockaddr_in field; empty means the default.
    pub address: String,
    /// The latest call of each step.
    pub cards: BTreeMap<Step, Card>,
    /// Calls that are no step of this side's lesson (a scenario's setsockopt, say).
    pub extra: Vec<Card>,
}

impl Lane {
    fn new(id: LaneId, side: Side) -> Lane {
        Lane {
            id,
            side,
            sock: None,
            conns: Vec::new(),
            selected_conn: None,
            address: String::new(),
            cards: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    pub fn label(&self, lang: Lang) -> String {
        match self.side {
            Side::Server => lang.pick("Server", "服务端").to_string(),
            Side::Client => format!("{} {}", lang.pick("Client", "客户端"), self.id),
        }
    }

    /// The label the lane's region carries, in the UI language, for screen
    /// readers and tests alike: the same words as its heading.
    pub fn aria_label(&self, lang: Lang) -> String {
        self.label(lang)
    }
}

/// What the page knows of one socket, from the relay's events.
#[derive(Clone, Debug, PartialEq)]
pub struct SockView {
    pub sock: SockId,
    pub role: Role,
    pub lane: LaneId,
    pub fd: Option<i32>,
    pub tcp: Option<TcpState>,
    pub fd_open: bool,
    pub local: Option<String>,
    pub peer: Option<String>,
    pub queue: Option<u32>,
    pub backlog: Option<u32>,
    /// What this socket's last read returned, for the message view.
    pub last_read: Option<String>,
    /// How many resets came before the socket was made.
    pub generation: u32,
}

/// Where a segment's arrow starts or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Lane(LaneId),
    /// A peer outside the lab, such as a student's nc.
    Outside,
}

/// One row of the timeline that interleaves calls, states and segments.
#[derive(Clone, Debug, PartialEq)]
pub enum Row {
    Call {
        seq: u64,
        lane: LaneId,
        label: String,
        phase: Phase,
    },
    State {
        seq: u64,
        lane: LaneId,
        label: String,
    },
    Segment {
        seq: u64,
        from: Column,
        to: Column,
        label: String,
        /// Every field, for the tooltip and the inspector.
        detail: String,
    },
    /// A reset: the rows above are the last run and its teardown.
    Divider { seq: u64, label: String },
}

impl Row {
    pub fn seq(&self) -> u64 {
        match self {
            Row::Call { seq, .. }
            | Row::State { seq, .. }
            | Row::Segment { seq, .. }
            | Row::Divider { seq, .. } => *seq,
        }
    }
}

/// What an error scenario showed: the card, the arrow and the C line to
/// look at, shown in a card above the stage once it has run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub scenario: Scenario,
    /// The call event that shows the lesson (a failure, or read's 0).
    pub call_seq: Option<u64>,
    /// The segment that caused it (RST, FIN), when the wire was seen.
    pub segment_seq: Option<u64>,
    /// The line of the C listing that made that call.
    pub c_line: Option<&'static str>,
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub seq: u64,
    pub kind: &'static str,
    pub sock: Option<SockId>,
    pub summary: String,
    pub event: Event,
    /// The frame exactly as the relay sent it, which the inspector and an
    /// export show (None for an event that came from elsewhere).
    pub frame: Option<String>,
}

/// Which line of the listing the last call was, with the real values.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CodeFocus {
    pub side: Option<Side>,
    pub step: Option<Step>,
    /// Variable names and the values the kernel gave them: `sockfd = 5`.
    pub values: BTreeMap<&'static str, String>,
    /// The variable of the line to highlight: each call's line has one.
    pub variable: Option<&'static str>,
}

/// What the browser knows of a command it sent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Issued {
    lane: LaneId,
    step: Option<Step>,
    /// A reset's closes update the sockets but draw no cards.
    quiet: bool,
}

/// What a click or a script asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A lesson step of a lane.
    Step(LaneId, Step),
    /// Send text on a socket (a message box).
    SendText(LaneId, SockId, String),
    /// Read on a socket (a message box's read button).
    ReadOn(LaneId, SockId),
    /// The course material's mistake: read on the listening socket.
    ReadListening,
    /// SO_LINGER 0 on the server's current connection.
    LingerZero,
    /// Bind a client lane's socket to the server's port.
    BindToServerPort(LaneId),
    /// Connect a client lane to the server's bound port, listening or not.
    ConnectToServerPort(LaneId),
    /// Bind the server lane's new socket to the port its last server had:
    /// a server restarted.
    RebindServer,
    /// SO_REUSEADDR on a lane's socket.
    ReuseAddr(LaneId),
    /// TCP_LINGER2 on a lane's socket: its orphaned FIN_WAIT2 lasts this
    /// many seconds.
    FinWait2Timeout(LaneId, i32),
    Reset,
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
    issued: HashMap<u64, Issued>,
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
            issued: HashMap::new(),
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
        // Rows let go, as far as a drawn diagram knows: it must start over.
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

    /// Applies one event from the relay, keeping the frame it came in.
    pub fn apply_frame(&mut self, event: &Event, frame: &str) {
        self.apply(event);
        if let Some(entry) = self.log.last_mut().filter(|entry| entry.seq == event.seq) {
            entry.frame = Some(frame.to_string());
        }
    }

    /// Applies one event from the relay.
    pub fn apply(&mut self, event: &Event) {
        if event.seq == 1 {
            // A new session: the relay made a new, empty lab.
            self.last_seq = 0;
            self.clear_lab();
            self.log.clear();
            self.log_let_go = 0;
        }
        if event.seq != self.last_seq + 1 {
            self.out_of_order += 1;
        }
        self.last_seq = self.last_seq.max(event.seq);
        let (kind, sock, summary) = self.summarise(event);
        if self.log.len() >= MAX_LOG {
            // The oldest block goes; the page says how many.
            self.log.drain(..LOG_TRIM_BLOCK);
            self.log_let_go += LOG_TRIM_BLOCK;
        }
        self.log.push(LogEntry {
            seq: event.seq,
            kind,
            sock,
            summary,
            event: event.clone(),
            frame: None,
        });
        match &event.body {
            EventBody::Hello(hello) => self.hello = Some(hello.clone()),
            EventBody::Call(call) => self.apply_call(event.seq, call),
            EventBody::State(state) => self.apply_state(event.seq, state),
            EventBody::Segment(segment) => self.apply_segment(event.seq, segment),
            EventBody::Error(error) => {
                if let Some(id) = error.id {
                    self.issued.remove(&id);
                }
                self.last_error = Some(error.message.clone());
                self.announce(error.message.clone());
            }
            EventBody::Gap(gap) => {
                let label = notes::gap(gap.segments, self.lang);
                self.announce(label.clone());
                self.rows.push(Row::Divider {
                    seq: event.seq,
                    label,
                });
            }
            EventBody::Reset(done) => {
                self.issued.remove(&done.id);
                self.generation += 1;
                let label = notes::reset_divider(done.closed, self.lang);
                self.announce(label.clone());
                self.rows.push(Row::Divider {
                    seq: event.seq,
                    label,
                });
            }
        }
        if self.rows.len() > MAX_ROWS {
            // Let go of a block at a time: the drawn diagram starts over at
            // each trim, so trimming row by row would redraw it per event.
            let excess = self.rows.len() - (MAX_ROWS - TRIM_BLOCK);
            self.rows.drain(..excess);
            self.trimmed_rows += excess;
            self.rows_let_go += excess;
            self.revealed = self.revealed.saturating_sub(excess);
        }
    }

    fn summarise(&self, event: &Event) -> (&'static str, Option<SockId>, String) {
        match &event.body {
            EventBody::Hello(hello) => {
                ("hello", None, format!("hello: protocol {}", hello.protocol))
            }
            EventBody::Call(call) => ("call", call.sock, call.c.clone()),
            EventBody::State(state) => (
                "state",
                Some(state.sock),
                format!("sock {} → {}", state.sock, state_label(state, self.lang)),
            ),
            EventBody::Segment(segment) => (
                "segment",
                segment.src_sock.or(segment.dst_sock),
                segment_label(segment),
            ),
            EventBody::Error(error) => (
                "error",
                None,
                format!("{}: {}", error.code.as_str(), error.message),
            ),
            EventBody::Reset(done) => ("reset", None, notes::reset_divider(done.closed, self.lang)),
            EventBody::Gap(gap) => ("gap", None, notes::gap(gap.segments, self.lang)),
        }
    }

    fn lane_of_sock(&self, sock: SockId) -> Option<LaneId> {
        self.sockets.get(&sock).map(|view| view.lane)
    }

    fn apply_call(&mut self, seq: u64, call: &Call) {
        let issued = call.id.and_then(|id| self.issued.get(&id).copied());
        let lane = issued
            .map(|issued| issued.lane)
            .or_else(|| call.sock.and_then(|sock| self.lane_of_sock(sock)))
            .or_else(|| match call.role {
                // A socket this page did not ask for (another tab's command
                // replayed, say): a client goes to the first free client lane.
                Some(Role::Client) => Some(self.free_client_lane()),
                _ => None,
            })
            .unwrap_or(SERVER_LANE);
        // The bind the relay makes first for an unbound socket's listen or
        // connect shares that command's id; the command's own call follows.
        let bound_first = matches!(
            call.note,
            Some(protocol::Note::BoundBeforeListen | protocol::Note::BoundBeforeConnect)
        );
        let step = if bound_first {
            Some(Step::Bind)
        } else {
            issued
                .and_then(|issued| issued.step)
                .or_else(|| call.op.and_then(Step::from_op))
        };
        let phase = call.phase.unwrap_or(Phase::Done);
        if issued.is_some_and(|issued| issued.quiet) {
            if let Some(view) = call.sock.and_then(|sock| self.sockets.get_mut(&sock)) {
                view.fd_open = false;
                view.fd = None;
            }
            // The reset's teardown, on the lifeline of the socket it closed.
            let lane = call
                .sock
                .and_then(|sock| self.lane_of_sock(sock))
                .unwrap_or(lane);
            self.rows.push(Row::Call {
                seq,
                lane,
                label: format!(
                    "{} · {}",
                    short_call(call, self.lang),
                    self.lang.pick("reset", "重置")
                ),
                phase: call.phase.unwrap_or(Phase::Done),
            });
            let who = self.lane_name(lane);
            self.announce(spoken::call(&who, call, self.lang));
            return;
        }
        if phase != Phase::Blocked && !bound_first {
            if let Some(id) = call.id {
                self.issued.remove(&id);
            }
        }

        if phase == Phase::Done {
            match call.op {
                Some(OpName::Bind) if lane == SERVER_LANE => {
                    self.last_server_addr = call.local.clone();
                }
                Some(OpName::Socket) => {
                    if let (Some(sock), Some(lane_entry)) = (call.sock, self.lanes.get_mut(lane)) {
                        lane_entry.sock = Some(sock);
                        let mut view =
                            new_sock_view(sock, call.role.unwrap_or(Role::Client), lane, call.fd);
                        view.generation = self.generation;
                        self.sockets.insert(sock, view);
                    }
                }
                Some(OpName::Accept) => {
                    if let Some(new_sock) = call.new_sock {
                        let mut view =
                            new_sock_view(new_sock, Role::Conn, SERVER_LANE, call.new_fd);
                        view.peer = call.peer.clone();
                        view.local = call.local.clone();
                        view.generation = self.generation;
                        self.sockets.insert(new_sock, view);
                        let server = &mut self.lanes[SERVER_LANE];
                        server.conns.push(new_sock);
                        server.selected_conn = Some(new_sock);
                    }
                }
                Some(OpName::Read) => {
                    if let Some(view) = call.sock.and_then(|sock| self.sockets.get_mut(&sock)) {
                        view.last_read = Some(match (&call.data, &call.hex, call.ret) {
                            (Some(text), _, _) => text.clone(),
                            (None, Some(hex), _) => format!("0x{hex}"),
                            _ => String::new(),
                        });
                    }
                }
                Some(OpName::Close) => {
                    if let Some(view) = call.sock.and_then(|sock| self.sockets.get_mut(&sock)) {
                        view.fd_open = false;
                        view.fd = None;
                    }
                    let server = &mut self.lanes[SERVER_LANE];
                    if server.selected_conn == call.sock {
                        server.selected_conn = server.conns.iter().rev().copied().find(|conn| {
                            Some(*conn) != call.sock
                                && self.sockets.get(conn).is_some_and(|view| view.fd_open)
                        });
                    }
                }
                _ => {}
            }
        }

        let card = Card {
            seq,
            call: call.clone(),
        };
        if let Some(lane_entry) = self.lanes.get_mut(lane) {
            match step.filter(|step| lane_entry.side.steps().contains(step)) {
                Some(step) => {
                    lane_entry.cards.insert(step, card);
                }
                None => {
                    lane_entry.extra.retain(|old| old.call.id != call.id);
                    lane_entry.extra.push(card);
                }
            }
            let closes_listener = call.op == Some(OpName::Close)
                && call
                    .sock
                    .and_then(|sock| self.sockets.get(&sock))
                    .is_some_and(|view| view.role == Role::Server);
            self.code = code_focus(lane_entry.side, step, call, closes_listener, &self.code);
        }
        self.rows.push(Row::Call {
            seq,
            lane,
            label: short_call(call, self.lang),
            phase,
        });
        let who = self.lane_name(lane);
        self.announce(spoken::call(&who, call, self.lang));
    }

    /// A lane's name, as headings and the live region say it.
    fn lane_name(&self, lane: LaneId) -> String {
        self.lanes
            .get(lane)
            .map(|entry| entry.label(self.lang))
            .unwrap_or_default()
    }

    /// A diagram column's name, as the live region says it.
    fn column_name(&self, column: Column) -> String {
        match column {
            Column::Lane(lane) => self.lane_name(lane),
            Column::Outside => self
                .lang
                .pick("a peer outside the lab", "实验外的对端")
                .to_string(),
        }
    }

    fn apply_state(&mut self, seq: u64, state: &SockState) {
        let lane = self.lane_of_sock(state.sock).unwrap_or(match state.role {
            Role::Client => 1,
            _ => SERVER_LANE,
        });
        let generation = self.generation;
        let view = self.sockets.entry(state.sock).or_insert_with(|| {
            let mut view = new_sock_view(state.sock, state.role, lane, state.fd);
            view.generation = generation;
            view
        });
        let changed = view.tcp != Some(state.tcp) || view.fd_open != state.fd_open;
        view.tcp = Some(state.tcp);
        view.fd = state.fd;
        view.fd_open = state.fd_open;
        view.local = state.local.clone().or(view.local.take());
        view.peer = state.peer.clone().or(view.peer.take());
        view.queue = state.queue;
        view.backlog = state.backlog;
        if changed {
            let mut label = format!("{} {}", sock_name(view), state_label(state, self.lang));
            if view.generation < self.generation {
                label = format!("{label} {}", notes::before_reset(self.lang));
            }
            let said = spoken::state(&self.lane_name(lane), state.fd, state.tcp, self.lang);
            self.rows.push(Row::State { seq, lane, label });
            self.announce(said);
        }
    }

    fn apply_segment(&mut self, seq: u64, segment: &Segment) {
        let column = |sock: Option<SockId>| {
            sock.and_then(|sock| self.lane_of_sock(sock))
                .map(Column::Lane)
                .unwrap_or(Column::Outside)
        };
        let (from, to) = (column(segment.src_sock), column(segment.dst_sock));
        let said = spoken::segment(
            &self.column_name(from),
            &self.column_name(to),
            segment,
            self.lang,
        );
        self.announce(said);
        self.rows.push(Row::Segment {
            seq,
            from,
            to,
            label: segment_label(segment),
            detail: segment_detail(segment, self.lang),
        });
    }

    /// The command a click means, or why there is none yet.
    pub fn command_for(&mut self, action: &Action) -> Result<Command, String> {
        let lang = self.lang;
        let (lane, step, op) = match action {
            Action::Reset => (SERVER_LANE, None, Op::Reset),
            Action::SendText(lane, sock, text) => (
                *lane,
                Some(Step::Send),
                Op::Send {
                    sock: *sock,
                    data: Some(text.clone()),
                    hex: None,
                },
            ),
            Action::ReadOn(lane, sock) => (
                *lane,
                Some(Step::Read),
                Op::Read {
                    sock: *sock,
                    max: None,
                },
            ),
            Action::ReadListening => {
                let sock = self.lane_sock(SERVER_LANE).ok_or_else(|| {
                    lang.pick("Create the server socket first.", "请先创建服务端套接字。")
                        .to_string()
                })?;
                (SERVER_LANE, None, Op::Read { sock, max: None })
            }
            Action::LingerZero => {
                let sock = self.lanes[SERVER_LANE].selected_conn.ok_or_else(|| {
                    lang.pick("Accept a connection first.", "请先接受一个连接。")
                        .to_string()
                })?;
                (
                    SERVER_LANE,
                    None,
                    Op::Setsockopt {
                        sock,
                        name: SockOptName::Linger,
                        value: SockOptValue::Number(0),
                    },
                )
            }
            Action::BindToServerPort(lane) => {
                let sock = self.lane_sock(*lane).ok_or_else(|| need_socket(lang))?;
                let addr = self.server_addr().ok_or_else(|| {
                    lang.pick("Bind the server first.", "请先绑定服务端。")
                        .to_string()
                })?;
                (
                    *lane,
                    None,
                    Op::Bind {
                        sock,
                        addr: Some(addr),
                    },
                )
            }
            Action::ConnectToServerPort(lane) => {
                let sock = self.lane_sock(*lane).ok_or_else(|| need_socket(lang))?;
                let addr = self.server_addr().ok_or_else(|| {
                    lang.pick("Bind the server first.", "请先绑定服务端。")
                        .to_string()
                })?;
                (
                    *lane,
                    Some(Step::Connect),
                    Op::Connect {
                        sock,
                        addr: Some(addr),
                    },
                )
            }
            Action::RebindServer => {
                let sock = self
                    .lane_sock(SERVER_LANE)
                    .ok_or_else(|| need_socket(lang))?;
                let addr = self.last_server_addr.clone().ok_or_else(|| {
                    lang.pick("No server has been bound yet.", "还没有绑定过服务端。")
                        .to_string()
                })?;
                (
                    SERVER_LANE,
                    Some(Step::Bind),
                    Op::Bind {
                        sock,
                        addr: Some(addr),
                    },
                )
            }
            Action::ReuseAddr(lane) => {
                let sock = self.lane_sock(*lane).ok_or_else(|| need_socket(lang))?;
                (
                    *lane,
                    None,
                    Op::Setsockopt {
                        sock,
                        name: SockOptName::ReuseAddr,
                        value: SockOptValue::Flag(true),
                    },
                )
            }
            Action::FinWait2Timeout(lane, seconds) => {
                let sock = self.lane_sock(*lane).ok_or_else(|| need_socket(lang))?;
                (
                    *lane,
                    None,
                    Op::Setsockopt {
                        sock,
                        name: SockOptName::Linger2,
                        value: SockOptValue::Number(*seconds),
                    },
                )
            }
            Action::Step(lane, step) => (*lane, Some(*step), self.step_op(*lane, *step)?),
        };
        let id = self.next_id;
        self.next_id += 1;
        let quiet = matches!(action, Action::Reset);
        if quiet {
            self.start_over();
        }
        self.issued.insert(id, Issued { lane, step, quiet });
        Ok(Command { id, op })
    }

    /// The lane's own socket, while its fd is open.
    pub fn lane_sock(&self, lane: LaneId) -> Option<SockId> {
        self.lanes
            .get(lane)?
            .sock
            .filter(|sock| self.sockets.get(sock).is_some_and(|view| view.fd_open))
    }

    /// The socket a server step acts on: read, send and close use the
    /// accepted connection, as the corrected listing does.
    fn step_op(&self, lane: LaneId, step: Step) -> Result<Op, String> {
        let lang = self.lang;
        let lane_entry = self.lanes.get(lane).ok_or("no such lane")?;
        let own = self.lane_sock(lane);
        let conn = lane_entry
            .selected_conn
            .filter(|sock| self.sockets.get(sock).is_some_and(|view| view.fd_open));
        let address = Some(lane_entry.address.trim().to_string()).filter(|text| !text.is_empty());
        let target = match (lane_entry.side, step) {
            (Side::Server, Step::Read | Step::Send) => conn.ok_or_else(|| {
                lang.pick(
                    "Accept a connection first: read and send use the fd that accept() returns.",
                    "请先接受连接：read 和 send 使用 accept() 返回的新 fd。",
                )
                .to_string()
            })?,
            (Side::Server, Step::Close) => conn.or(own).ok_or_else(|| need_socket(lang))?,
            (_, Step::Socket) => 0,
            (_, Step::Address) => {
                return Err(lang
                    .pick(
                        "Filling in struct sockaddr_in is no system call: type the address in the field.",
                        "填写 struct sockaddr_in 不是系统调用：请在输入框中填写地址。",
                    )
                    .to_string());
            }
            _ => own.ok_or_else(|| need_socket(lang))?,
        };
        Ok(match step {
            Step::Socket => Op::Socket {
                role: match lane_entry.side {
                    Side::Server => Role::Server,
                    Side::Client => Role::Client,
                },
            },
            Step::Bind => Op::Bind {
                sock: target,
                addr: address,
            },
            Step::Listen => Op::Listen {
                sock: target,
                backlog: Some(5),
            },
            Step::Accept => Op::Accept { sock: target },
            Step::Connect => Op::Connect {
                sock: target,
                addr: address,
            },
            Step::Read => Op::Read {
                sock: target,
                max: Some(1024),
            },
            Step::Send => Op::Send {
                sock: target,
                data: Some(
                    match lane_entry.side {
                        Side::Server => "Hello, Client",
                        Side::Client => "Hello, Server",
                    }
                    .to_string(),
                ),
                hex: None,
            },
            Step::Close => Op::Close { sock: target },
            Step::Address => unreachable!("refused above"),
        })
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
                    if segment.flags.iter().any(|flag| flag == "RST" || flag == "FIN"))
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

fn need_socket(lang: Lang) -> String {
    lang.pick(
        "Create this lane's socket first (socket()).",
        "请先创建这一栏的套接字（socket()）。",
    )
    .to_string()
}

fn new_sock_view(sock: SockId, role: Role, lane: LaneId, fd: Option<i32>) -> SockView {
    SockView {
        sock,
        role,
        lane,
        fd,
        tcp: None,
        fd_open: true,
        local: None,
        peer: None,
        queue: None,
        backlog: None,
        last_read: None,
        generation: 0,
    }
}

/// `fd 5` while open, `sock 3` once the fd is gone.
pub fn sock_name(view: &SockView) -> String {
    match view.fd {
        Some(fd) if view.fd_open => format!("fd {fd}"),
        _ => format!("sock {}", view.sock),
    }
}

/// `LISTEN 0/5`, `TIME_WAIT (kernel, fd closed)`.
pub fn state_label(state: &SockState, lang: Lang) -> String {
    let mut label = state.tcp.name().to_string();
    if let (Some(queue), Some(backlog)) = (state.queue, state.backlog) {
        label.push_str(&format!(" {queue}/{backlog}"));
    }
    if !state.fd_open {
        label.push_str(if state.tcp == TcpState::Close {
            lang.pick(" (fd closed)", "（fd 已关闭）")
        } else {
            lang.pick(" (kernel only, fd closed)", "（仅内核持有，fd 已关闭）")
        });
    }
    label
}

/// `connect() = 0`, `read() = 5`, `accept() … EAGAIN`.
fn short_call(call: &Call, lang: Lang) -> String {
    let op = call.op.map(|op| op.as_str()).unwrap_or("?");
    match (call.phase, &call.errno, call.ret) {
        (Some(Phase::Blocked), errno, _) => format!(
            "{op}() … {} {}",
            errno.as_deref().unwrap_or("blocked"),
            notes::waiting(lang)
        ),
        (Some(Phase::Cancelled), _, _) => format!("{op}() {}", notes::cancelled(lang)),
        (_, Some(errno), _) => format!("{op}() = -1 {errno}"),
        (_, None, Some(ret)) => format!("{op}() = {ret}"),
        _ => format!("{op}()"),
    }
}

pub fn segment_label(segment: &Segment) -> String {
    let mut label = segment.flags.join("+");
    if let Some(count) = segment.coalesced {
        label.push_str(&format!(" ×{count}"));
    }
    label.push_str(&format!(" seq={} ack={}", segment.rel_seq, segment.rel_ack));
    if segment.len > 0 {
        label.push_str(&format!(" len={}", segment.len));
    }
    label
}

fn segment_detail(segment: &Segment, lang: Lang) -> String {
    let mut lines = vec![
        format!("{} → {}", segment.src, segment.dst),
        format!("flags: {}", segment.flags.join(", ")),
        format!("seq {} (relative {})", segment.tcp_seq, segment.rel_seq),
        format!("ack {} (relative {})", segment.tcp_ack, segment.rel_ack),
        format!("len {}  win {}", segment.len, segment.win),
    ];
    if let Some(payload) = segment.payload.as_ref().or(segment.payload_hex.as_ref()) {
        lines.push(format!("payload: {payload}"));
    }
    lines.push(match (segment.cause, segment.id) {
        (protocol::Cause::Call, Some(id)) => notes::cause(Some(id), lang),
        _ => notes::cause(None, lang),
    });
    lines.join("\n")
}

/// The listing line of the call just made, with the values it produced.
fn code_focus(
    side: Side,
    step: Option<Step>,
    call: &Call,
    closes_listener: bool,
    previous: &CodeFocus,
) -> CodeFocus {
    let mut values = if previous.side == Some(side) {
        previous.values.clone()
    } else {
        BTreeMap::new()
    };
    let shown = match (call.phase, &call.errno, call.ret) {
        (Some(Phase::Blocked), _, _) => Some("…".to_string()),
        (_, Some(errno), _) => Some(format!("-1 ({errno})")),
        (_, None, Some(ret)) => Some(ret.to_string()),
        _ => None,
    };
    let variable = match (side, step) {
        (_, Some(Step::Socket)) => Some("sockfd"),
        (Side::Server, Some(Step::Accept)) => Some("new_socket"),
        (_, Some(Step::Read)) => Some("valread"),
        (_, Some(Step::Bind)) => Some("bind"),
        (_, Some(Step::Listen)) => Some("listen"),
        (_, Some(Step::Connect)) => Some("connect"),
        (_, Some(Step::Send)) => Some("send"),
        (Side::Server, Some(Step::Close)) if closes_listener => Some("close_listener"),
        (_, Some(Step::Close)) => Some("close"),
        _ => None,
    };
    if let (Some(variable), Some(shown)) = (variable, shown) {
        values.insert(variable, shown);
    }
    CodeFocus {
        side: Some(side),
        step,
        values,
        variable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real session of the whole seed flow, recorded by the engine test.
    const SEED_FLOW: &str = include_str!("../tests/fixtures/seed-flow.jsonl");

    fn events() -> Vec<Event> {
        SEED_FLOW
            .lines()
            .map(|line| protocol::decode_event(line).expect("the fixture parses"))
            .collect()
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
