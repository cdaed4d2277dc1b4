//! Which command a click or a script's step means, on which socket, or why
//! there is none yet.

use protocol::{Command, Op, Role, SockId, SockOptName, SockOptValue};

use crate::i18n::Lang;

use super::*;

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

impl Model {
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
}

fn need_socket(lang: Lang) -> String {
    lang.pick(
        "Create this lane's socket first (socket()).",
        "请先创建这一栏的套接字（socket()）。",
    )
    .to_string()
}
