//! The lesson's vocabulary: the steps of each side, the lanes that take
//! them, the cards a call leaves, and the rows of the timeline.

use std::collections::BTreeMap;

use protocol::{Call, Event, OpName, Phase, Role, SockId, TcpState};

use crate::i18n::Lang;
use crate::script::Scenario;

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

    pub(super) fn from_op(op: OpName) -> Option<Step> {
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
    /// The traced program whose calls the lane shows (`server[4242]`).
    pub program: Option<String>,
}

impl Lane {
    pub(super) fn new(id: LaneId, side: Side) -> Lane {
        Lane {
            id,
            side,
            sock: None,
            conns: Vec::new(),
            selected_conn: None,
            address: String::new(),
            cards: BTreeMap::new(),
            extra: Vec::new(),
            program: None,
        }
    }

    pub fn label(&self, lang: Lang) -> String {
        let side = match self.side {
            Side::Server => lang.pick("Server", "服务端").to_string(),
            Side::Client => format!("{} {}", lang.pick("Client", "客户端"), self.id),
        };
        match &self.program {
            Some(program) => format!("{side} · {program}"),
            None => side,
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
