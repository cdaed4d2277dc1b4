//! One lab: its sockets, the calls waiting on the kernel, and the loop that
//! turns commands into system calls and system calls into events.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{
    Call, Command, ErrorCode, ErrorEvent, EventBody, Hello, Op, OpName, PROTOCOL_VERSION, Phase,
    Refusal, Role, ShutdownHow, SockId, SockOptName, SockOptValue, SockState, TcpState,
};
use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::render::{self, SOCKADDR_IN_LEN};
use super::sys;
use super::wire::Wire;
use super::{EventSink, LabInput, LabSettings};
use crate::capture::WireSegment;

/// How often the lab asks the kernel for its sockets' states while any exist.
/// TCP_INFO is one cheap getsockopt per socket.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Closed connections are looked up in /proc/net/tcp, which costs more, so
/// only every this many polls.
const GHOST_POLL_EVERY: u32 = 10;
/// The seed's backlog and read size.
const DEFAULT_BACKLOG: i32 = 5;
const DEFAULT_READ_BYTES: u32 = 1024;
const MAX_BACKLOG: i32 = 4096;

pub(super) async fn run(
    settings: LabSettings,
    mut inputs: mpsc::Receiver<LabInput>,
    sink: EventSink,
) {
    let (completion_tx, mut completions) = mpsc::unbounded_channel();
    let (wire, mut segments) = Wire::new(settings.capture.clone().ok(), settings.lab_id);
    let mut lab = Lab {
        wire,
        recent_closed: Vec::new(),
        settings,
        sink,
        sockets: BTreeMap::new(),
        next_sock: 1,
        pending: Vec::new(),
        completion_tx,
        ghosts: Vec::new(),
        polls: 0,
    };
    lab.hello();
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let polling = !lab.sockets.is_empty() || !lab.ghosts.is_empty();
        tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => lab.handle(input).await,
                None => break,
            },
            Some(completion) = completions.recv() => {
                lab.complete(completion);
                lab.observe();
            }
            Some(segment) = segments.recv() => lab.segment(&segment),
            _ = poll.tick(), if polling => lab.observe(),
        }
    }
    lab.tear_down().await;
}

/// One of the lab's sockets, open in the relay.
struct LabSocket {
    role: Role,
    socket: Arc<Socket>,
    /// The socket's registration with tokio's reactor (epoll), made at its
    /// first wait rather than at socket(): a socket that has never connected
    /// reports EPOLLHUP, which tokio keeps as a permanent "closed" readiness,
    /// and every wait would spin.
    registration: Option<Arc<AsyncFd<SharedSocket>>>,
    fd: RawFd,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    listening: bool,
    /// The lab port this socket holds in the relay's pool, freed on close.
    held_port: Option<u16>,
    /// The last state reported, so that only changes are sent.
    reported: Option<Observed>,
}

/// A closed socket whose connection the kernel may still hold (TIME_WAIT…).
struct Ghost {
    sock: SockId,
    role: Role,
    local: SocketAddr,
    peer: SocketAddr,
    reported: TcpState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// accept and read wait for readability.
    Inbound,
    /// connect and send wait for writability.
    Outbound,
}

/// A call that got EAGAIN or EINPROGRESS and waits for readiness in a task.
struct Pending {
    call: CallContext,
    direction: Direction,
    task: JoinHandle<()>,
}

/// What every event of one call repeats.
#[derive(Clone, Copy)]
struct CallContext {
    id: u64,
    op: OpName,
    sock: SockId,
    fd: RawFd,
    started: Instant,
}

/// The kernel's second answer to a call that blocked.
enum Completion {
    Accept {
        call: CallContext,
        result: io::Result<(OwnedFd, SocketAddr)>,
    },
    Read {
        call: CallContext,
        max: usize,
        result: io::Result<Vec<u8>>,
    },
    Connect {
        call: CallContext,
        target: SocketAddr,
        result: io::Result<()>,
    },
    Send {
        call: CallContext,
        bytes: Vec<u8>,
        result: io::Result<usize>,
    },
}

impl Completion {
    fn call(&self) -> &CallContext {
        match self {
            Completion::Accept { call, .. }
            | Completion::Read { call, .. }
            | Completion::Connect { call, .. }
            | Completion::Send { call, .. } => call,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Observed {
    tcp: TcpState,
    queue: Option<u32>,
    backlog: Option<u32>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
}

/// A socket closed a moment ago: the segments of its close still name it.
struct RecentlyClosed {
    sock: SockId,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    at: Instant,
}

/// How long a closed socket's addresses still name it on the wire.
const RECENTLY_CLOSED_KEEP: Duration = Duration::from_secs(10);

struct Lab {
    wire: Wire,
    recent_closed: Vec<RecentlyClosed>,
    settings: LabSettings,
    sink: EventSink,
    sockets: BTreeMap<SockId, LabSocket>,
    next_sock: SockId,
    pending: Vec<Pending>,
    completion_tx: mpsc::UnboundedSender<Completion>,
    ghosts: Vec<Ghost>,
    polls: u32,
}

type Refused = Result<(), Refusal>;

fn refuse(id: u64, code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal::new(Some(id), code, message)
}

impl CallContext {
    /// A call event of this call, in `phase`, written as `c`.
    fn event(&self, phase: Phase, c: String) -> Call {
        Call {
            id: Some(self.id),
            op: Some(self.op),
            sock: Some(self.sock),
            fd: Some(self.fd),
            phase: Some(phase),
            c,
            elapsed_us: Some(self.started.elapsed().as_micros() as u64),
            ..Call::default()
        }
    }

    /// A call event carrying the kernel's answer: `done` with `ret`, or
    /// `failed` with -1, the errno and strerror.
    fn answered(&self, result: &io::Result<i64>, c: String) -> Call {
        let mut call = self.event(Phase::Done, c);
        match result {
            Ok(value) => call.ret = Some(*value),
            Err(error) => {
                let errno = error.raw_os_error().unwrap_or(0);
                call.phase = Some(Phase::Failed);
                call.ret = Some(-1);
                call.errno = Some(sys::errno_name(errno));
                call.message = Some(sys::strerror(errno));
            }
        }
        call
    }
}

fn is_would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

fn is_in_progress(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::EINPROGRESS)
}

impl Lab {
    /// The socket's registration with epoll, made on its first wait. Only
    /// called after the kernel answered EAGAIN or EINPROGRESS, so the socket
    /// is then listening, connecting or connected, never fresh.
    fn registration(&mut self, sock: SockId) -> io::Result<Arc<AsyncFd<SharedSocket>>> {
        let socket = self
            .sockets
            .get_mut(&sock)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        if let Some(io) = &socket.registration {
            return Ok(Arc::clone(io));
        }
        let io = Arc::new(register(SharedSocket(Arc::clone(&socket.socket)))?);
        socket.registration = Some(Arc::clone(&io));
        Ok(io)
    }

    fn hello(&mut self) {
        self.sink.emit(EventBody::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            relay: format!("socket-flow relay {}", env!("CARGO_PKG_VERSION")),
            default_addr: self.settings.lab_ip.to_string(),
            limits: self.settings.limits.clone(),
            capture: self.settings.capture.is_ok(),
            capture_reason: self.settings.capture.as_ref().err().cloned(),
        }));
    }

    async fn handle(&mut self, input: LabInput) {
        let outcome = match input {
            LabInput::Refused(refusal) => Err(refusal),
            LabInput::Command(command) => self.execute(command).await,
        };
        if let Err(refusal) = outcome {
            self.sink.emit(EventBody::Error(ErrorEvent {
                id: refusal.id,
                code: refusal.code,
                message: refusal.message,
            }));
        }
        self.observe();
    }

    fn emit(&mut self, call: Call) {
        if let (Some(sock), Some(op), Some(id)) = (call.sock, call.op, call.id) {
            self.wire.record_call(sock, op, id);
        }
        self.sink.emit(EventBody::Call(call));
    }

    /// Reports a captured segment, naming the lab socket at each end.
    fn segment(&mut self, segment: &WireSegment) {
        let src_sock = self.sock_at(segment.src, segment.dst);
        let dst_sock = self.sock_at(segment.dst, segment.src);
        let event = self.wire.event(segment, src_sock, dst_sock);
        self.sink.emit(EventBody::Segment(event));
    }

    /// The lab socket whose end of a connection is `local`, talking to `peer`:
    /// an open socket, a closed one the kernel still holds or that closed a
    /// moment ago, or else the listening socket a handshake is for.
    fn sock_at(&self, local: SocketAddrV4, peer: SocketAddrV4) -> Option<SockId> {
        let (local, peer) = (SocketAddr::V4(local), SocketAddr::V4(peer));
        self.sockets
            .iter()
            .find(|(_, socket)| socket.local == Some(local) && socket.peer == Some(peer))
            .map(|(sock, _)| *sock)
            .or_else(|| {
                self.ghosts
                    .iter()
                    .find(|ghost| ghost.local == local && ghost.peer == peer)
                    .map(|ghost| ghost.sock)
            })
            .or_else(|| {
                self.recent_closed
                    .iter()
                    .rev()
                    .find(|closed| closed.local == Some(local) && closed.peer == Some(peer))
                    .map(|closed| closed.sock)
            })
            .or_else(|| {
                self.sockets
                    .iter()
                    .find(|(_, socket)| {
                        socket.listening
                            && socket.local.is_some_and(|bound| {
                                bound.port() == local.port()
                                    && (bound.ip() == local.ip() || bound.ip().is_unspecified())
                            })
                    })
                    .map(|(sock, _)| *sock)
            })
    }

    async fn execute(&mut self, command: Command) -> Refused {
        let id = command.id;
        let op = command.op.name();
        let started = Instant::now();
        // Every op but socket and reset names an existing socket.
        let context = match command.op.sock() {
            Some(sock) => {
                let socket = self.sockets.get(&sock).ok_or_else(|| {
                    let closed =
                        self.ghosts.iter().any(|ghost| ghost.sock == sock) || sock < self.next_sock;
                    let why = if closed {
                        format!(
                            "Socket {sock} is closed; its fd is gone, so {} is impossible.",
                            op.as_str()
                        )
                    } else {
                        format!(
                            "This lab has no socket {sock}. Create one with the socket step first."
                        )
                    };
                    refuse(
                        id,
                        if closed {
                            ErrorCode::BadState
                        } else {
                            ErrorCode::BadArgs
                        },
                        why,
                    )
                })?;
                Some(CallContext {
                    id,
                    op,
                    sock,
                    fd: socket.fd,
                    started,
                })
            }
            None => None,
        };
        match (command.op, context) {
            (Op::Socket { role }, _) => self.socket(id, role, started),
            (Op::Reset, _) => {
                self.reset(id).await;
                Ok(())
            }
            (Op::Bind { addr, .. }, Some(call)) => self.bind(call, addr),
            (Op::Listen { backlog, .. }, Some(call)) => self.listen(call, backlog),
            (Op::Accept { .. }, Some(call)) => self.accept(call),
            (Op::Connect { addr, .. }, Some(call)) => self.connect(call, addr),
            (Op::Send { data, hex, .. }, Some(call)) => self.send(call, data, hex),
            (Op::Read { max, .. }, Some(call)) => self.read(call, max),
            (Op::Shutdown { how, .. }, Some(call)) => self.shutdown(call, how),
            (Op::Close { .. }, Some(call)) => {
                self.close(call).await;
                Ok(())
            }
            (Op::Setsockopt { name, value, .. }, Some(call)) => self.setsockopt(call, name, value),
            // Op::sock() returned a socket for every other op.
            (_, None) => Err(refuse(
                id,
                ErrorCode::BadArgs,
                "This operation needs a \"sock\".",
            )),
        }
    }

    fn socket_count(&self) -> usize {
        let waiting_accepts = self
            .pending
            .iter()
            .filter(|pending| pending.call.op == OpName::Accept)
            .count();
        self.sockets.len() + waiting_accepts
    }

    fn check_socket_limit(&self, id: u64) -> Refused {
        let limit = self.settings.limits.sockets_per_lab as usize;
        if self.socket_count() >= limit {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!("A lab may hold {limit} sockets at once. Close one, or reset the lab."),
            ));
        }
        Ok(())
    }

    fn check_not_waiting(&self, call: &CallContext, direction: Direction) -> Refused {
        if let Some(waiting) = self
            .pending
            .iter()
            .find(|pending| pending.call.sock == call.sock && pending.direction == direction)
        {
            return Err(refuse(
                call.id,
                ErrorCode::BadState,
                format!(
                    "Socket {} already waits in {}() (command {}). Let it finish, or close the socket.",
                    call.sock,
                    waiting.call.op.as_str(),
                    waiting.call.id
                ),
            ));
        }
        Ok(())
    }

    fn socket(&mut self, id: u64, role: Role, started: Instant) -> Refused {
        if role == Role::Conn {
            return Err(refuse(
                id,
                ErrorCode::BadArgs,
                "Only accept() makes a connection socket; ask for role \"server\" or \"client\".",
            ));
        }
        self.check_socket_limit(id)?;
        let sock = self.next_sock;
        let c_call = "socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0)";
        let result = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None).map(|socket| {
            let fd = socket.as_raw_fd();
            (fd, socket)
        });
        let call = CallContext {
            id,
            op: OpName::Socket,
            sock,
            fd: -1,
            started,
        };
        match result {
            Ok((fd, socket)) => {
                self.next_sock += 1;
                self.sockets.insert(
                    sock,
                    LabSocket {
                        role,
                        socket: Arc::new(socket),
                        registration: None,
                        fd,
                        local: None,
                        peer: None,
                        listening: false,
                        held_port: None,
                        reported: None,
                    },
                );
                let mut event =
                    CallContext { fd, ..call }.answered(&Ok(fd as i64), format!("{c_call} = {fd}"));
                event.role = Some(role);
                event.detail = Some(
                    "The relay asks for a non-blocking socket because it runs under tokio: a call \
                     that would block returns EAGAIN or EINPROGRESS at once, and the relay waits for \
                     readiness instead of sleeping in the kernel."
                        .to_string(),
                );
                self.emit(event);
            }
            Err(error) => {
                let result = Err(error);
                let mut event =
                    call.answered(&result, format!("{c_call}{}", render::result(&result)));
                event.sock = None;
                event.fd = None;
                self.emit(event);
            }
        }
        Ok(())
    }

    fn bind(&mut self, call: CallContext, addr: Option<String>) -> Refused {
        let ports = Arc::clone(&self.settings.ports);
        let requested = match addr {
            Some(text) => Some(self.parse_bind_addr(call.id, &text)?),
            None => None,
        };
        let Some(socket) = self.sockets.get_mut(&call.sock) else {
            return Ok(());
        };
        let (target, result, skipped) = match requested {
            Some(target) => (target, socket.socket.bind(&target.into()), Vec::new()),
            None => {
                // A free port of the lab range. Ports that an outsider holds
                // answer EADDRINUSE and are skipped; the event says which.
                let mut skipped = Vec::new();
                loop {
                    let Some(port) = ports.reserve(&skipped) else {
                        return Err(refuse(
                            call.id,
                            ErrorCode::Limit,
                            "Every port of this relay's lab range is in use. Close a server, or name a port.",
                        ));
                    };
                    let target = SocketAddr::new(self.settings.lab_ip, port);
                    let result = socket.socket.bind(&target.into());
                    match &result {
                        Err(error) if error.raw_os_error() == Some(libc::EADDRINUSE) => {
                            ports.release(port);
                            skipped.push(port);
                        }
                        Ok(()) => {
                            socket.held_port = Some(port);
                            break (target, result, skipped);
                        }
                        Err(_) => {
                            ports.release(port);
                            break (target, result, skipped);
                        }
                    }
                }
            }
        };
        if result.is_ok() {
            socket.local = socket
                .socket
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_socket());
            if let Some(port) = socket.local.map(|addr| addr.port()) {
                if socket.held_port.is_none() && ports.contains(port) {
                    ports.hold(port);
                    socket.held_port = Some(port);
                }
            }
        }
        let local = socket.local;
        let result = result.map(|()| 0);
        let mut event = call.answered(
            &result,
            format!(
                "bind({}, {}, {SOCKADDR_IN_LEN}){}",
                call.fd,
                render::sockaddr(&target),
                render::result(&result)
            ),
        );
        event.local = local.map(|addr| addr.to_string());
        if !skipped.is_empty() {
            let shown = match skipped.as_slice() {
                [only] => format!("Port {only} was"),
                [first, .., last] => format!("{} ports ({first}…{last}) were", skipped.len()),
                [] => String::new(),
            };
            event.detail = Some(format!(
                "{shown} already in use outside this lab (bind answered EADDRINUSE), so the relay \
                 took the next free one. The kernel keeps a port taken while an old connection \
                 on it waits in TIME_WAIT."
            ));
        } else if target.port() == 0 && result.is_ok() {
            event.detail = Some(
                "Port 0 asks the kernel to pick a free port; getsockname() shows which.".into(),
            );
        }
        self.emit(event);
        Ok(())
    }

    fn parse_bind_addr(&self, id: u64, text: &str) -> Result<SocketAddr, Refusal> {
        let target: SocketAddr = text.parse().map_err(|_| {
            refuse(
                id,
                ErrorCode::BadArgs,
                format!("\"{text}\" is not an IPv4 address and port such as 127.0.0.1:7001."),
            )
        })?;
        let ip = target.ip();
        let lab_ip = self.settings.lab_ip;
        let allowed_ip =
            ip.is_ipv4() && (ip.is_loopback() || ip == lab_ip || lab_ip.is_unspecified());
        if !allowed_ip {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!(
                    "Labs bind to loopback addresses{}. Binding {ip} needs the teacher to start the relay with --lab-ip.",
                    if lab_ip.is_loopback() {
                        String::new()
                    } else {
                        format!(" or {lab_ip}")
                    }
                ),
            ));
        }
        let range = &self.settings.limits.port_range;
        if target.port() != 0 && !(range[0]..=range[1]).contains(&target.port()) {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!(
                    "Labs bind ports {} to {} (or 0, to let the kernel pick). Port {} is outside that range.",
                    range[0],
                    range[1],
                    target.port()
                ),
            ));
        }
        Ok(target)
    }

    fn listen(&mut self, call: CallContext, backlog: Option<i32>) -> Refused {
        let backlog = backlog.unwrap_or(DEFAULT_BACKLOG);
        if !(0..=MAX_BACKLOG).contains(&backlog) {
            return Err(refuse(
                call.id,
                ErrorCode::BadArgs,
                format!("The backlog must be between 0 and {MAX_BACKLOG}; the seed uses 5."),
            ));
        }
        let Some(socket) = self.sockets.get_mut(&call.sock) else {
            return Ok(());
        };
        let result = socket.socket.listen(backlog);
        if result.is_ok() {
            socket.listening = true;
            socket.local = socket
                .socket
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_socket());
        }
        let local = socket.local;
        let result = result.map(|()| 0);
        let mut event = call.answered(
            &result,
            format!("listen({}, {backlog}){}", call.fd, render::result(&result)),
        );
        event.local = local.map(|addr| addr.to_string());
        if result.is_ok() {
            event.detail = Some(format!(
                "The backlog {backlog} is the length of the accept queue: connections the kernel \
                 has finished handshaking and that wait for accept(). When it is full, new SYNs are \
                 dropped and the clients retry; they are not refused."
            ));
        }
        self.emit(event);
        Ok(())
    }

    fn accept(&mut self, call: CallContext) -> Refused {
        let Some(socket) = self.sockets.get(&call.sock) else {
            return Ok(());
        };
        if !socket.listening {
            return Err(refuse(
                call.id,
                ErrorCode::BadState,
                format!(
                    "Socket {} is not listening, so it has no accept queue: call listen() first \
                     (the kernel would answer accept() with EINVAL).",
                    call.sock
                ),
            ));
        }
        self.check_not_waiting(&call, Direction::Inbound)?;
        self.check_socket_limit(call.id)?;
        match sys::accept4(call.fd) {
            Err(error) if is_would_block(&error) => {
                let mut event = call.event(
                    Phase::Blocked,
                    format!(
                        "accept4({}, {{AF_INET, …}}, [16], SOCK_NONBLOCK|SOCK_CLOEXEC){}",
                        call.fd,
                        render::result(&Err(io::Error::from_raw_os_error(libc::EAGAIN)))
                    ),
                );
                mark_blocked(
                    &mut event,
                    libc::EAGAIN,
                    "The accept queue is empty, so the kernel answered EAGAIN. The relay now waits \
                     for epoll to report the listening socket readable (a finished handshake in the \
                     queue), then calls accept4() again.",
                );
                self.emit(event);
                let io = match self.registration(call.sock) {
                    Ok(io) => io,
                    Err(error) => {
                        self.finish_accept(call, Err(error));
                        return Ok(());
                    }
                };
                let completions = self.completion_tx.clone();
                let task = tokio::spawn(async move {
                    let result = wait_and_retry(&io, Direction::Inbound, sys::accept4).await;
                    let _ = completions.send(Completion::Accept { call, result });
                });
                self.pending.push(Pending {
                    call,
                    direction: Direction::Inbound,
                    task,
                });
            }
            result => self.finish_accept(call, result),
        }
        Ok(())
    }

    fn finish_accept(&mut self, call: CallContext, result: io::Result<(OwnedFd, SocketAddr)>) {
        let accepted = result.map(|(fd, peer)| {
            let socket = Socket::from(fd);
            let new_fd = socket.as_raw_fd();
            let local = socket.local_addr().ok().and_then(|addr| addr.as_socket());
            (socket, new_fd, local, peer)
        });
        match accepted {
            Ok((socket, new_fd, local, peer)) => {
                let new_sock = self.next_sock;
                self.next_sock += 1;
                self.sockets.insert(
                    new_sock,
                    LabSocket {
                        role: Role::Conn,
                        socket: Arc::new(socket),
                        registration: None,
                        fd: new_fd,
                        local,
                        peer: Some(peer),
                        listening: false,
                        held_port: None,
                        reported: None,
                    },
                );
                let mut event = call.answered(
                    &Ok(new_fd as i64),
                    format!(
                        "accept4({}, {}, [16], SOCK_NONBLOCK|SOCK_CLOEXEC) = {new_fd}",
                        call.fd,
                        render::sockaddr(&peer)
                    ),
                );
                event.new_sock = Some(new_sock);
                event.new_fd = Some(new_fd);
                event.role = Some(Role::Conn);
                event.peer = Some(peer.to_string());
                event.local = local.map(|addr| addr.to_string());
                event.detail = Some(
                    "accept() does not take part in the handshake: the kernel finished it already \
                     and queued the connection; accept() only takes it off the queue as a new fd."
                        .to_string(),
                );
                self.emit(event);
            }
            Err(error) => {
                let result = Err(error);
                let event = call.answered(
                    &result,
                    format!(
                        "accept4({}, {{AF_INET, …}}, [16], SOCK_NONBLOCK|SOCK_CLOEXEC){}",
                        call.fd,
                        render::result(&result)
                    ),
                );
                self.emit(event);
            }
        }
    }

    fn resolve_connect_target(&self, id: u64, addr: Option<String>) -> Result<SocketAddr, Refusal> {
        let Some(text) = addr else {
            // This lab's listening server, or failing that a bound one: a
            // connect to a server that never listened is a lesson too.
            let server = self
                .sockets
                .values()
                .filter(|socket| socket.role == Role::Server && socket.local.is_some())
                .max_by_key(|socket| socket.listening)
                .and_then(|socket| socket.local);
            return server.ok_or_else(|| {
                refuse(
                    id,
                    ErrorCode::BadState,
                    "This lab has no bound server to connect to. Bind a server first, or give \"addr\".",
                )
            });
        };
        let target: SocketAddr = text.parse().map_err(|_| {
            refuse(
                id,
                ErrorCode::BadArgs,
                format!("\"{text}\" is not an IPv4 address and port such as 127.0.0.1:7001."),
            )
        })?;
        if !target.is_ipv4() {
            return Err(refuse(
                id,
                ErrorCode::BadArgs,
                "Labs use IPv4 (AF_INET) sockets; give an IPv4 address.",
            ));
        }
        if !is_on_this_host(target.ip()) && !self.settings.allowed_connect_targets.contains(&target)
        {
            return Err(refuse(
                id,
                ErrorCode::Limit,
                format!(
                    "Labs connect only to addresses on this host. The teacher can allow {target} with --allow-connect {target}."
                ),
            ));
        }
        Ok(target)
    }

    fn connect(&mut self, call: CallContext, addr: Option<String>) -> Refused {
        let target = self.resolve_connect_target(call.id, addr)?;
        self.check_not_waiting(&call, Direction::Outbound)?;
        let Some(socket) = self.sockets.get(&call.sock) else {
            return Ok(());
        };
        let c_call = format!(
            "connect({}, {}, {SOCKADDR_IN_LEN})",
            call.fd,
            render::sockaddr(&target)
        );
        match socket.socket.connect(&target.into()) {
            Err(error) if is_in_progress(&error) => {
                let mut event = call.event(
                    Phase::Blocked,
                    format!("{c_call}{}", render::result(&Err(error))),
                );
                mark_blocked(
                    &mut event,
                    libc::EINPROGRESS,
                    "The kernel sent a SYN and answered EINPROGRESS: the handshake is under way. \
                     The relay waits for epoll to report the socket writable, then reads the outcome \
                     with getsockopt(SO_ERROR).",
                );
                event.peer = Some(target.to_string());
                self.emit(event);
                if let Some(socket) = self.sockets.get_mut(&call.sock) {
                    socket.peer = Some(target);
                }
                // Show SYN_SENT while it lasts.
                self.observe();
                let io = match self.registration(call.sock) {
                    Ok(io) => io,
                    Err(error) => {
                        self.finish_connect(call, target, Err(error));
                        return Ok(());
                    }
                };
                let completions = self.completion_tx.clone();
                let task = tokio::spawn(async move {
                    let result = wait_for_connect(&io).await;
                    let _ = completions.send(Completion::Connect {
                        call,
                        target,
                        result,
                    });
                });
                self.pending.push(Pending {
                    call,
                    direction: Direction::Outbound,
                    task,
                });
            }
            result => self.finish_connect(call, target, result),
        }
        Ok(())
    }

    fn finish_connect(&mut self, call: CallContext, target: SocketAddr, result: io::Result<()>) {
        let local = self.sockets.get_mut(&call.sock).and_then(|socket| {
            if result.is_ok() {
                socket.peer = Some(target);
                socket.local = socket
                    .socket
                    .local_addr()
                    .ok()
                    .and_then(|addr| addr.as_socket());
            }
            socket.local
        });
        let result = result.map(|()| 0);
        let mut event = call.answered(
            &result,
            format!(
                "connect({}, {}, {SOCKADDR_IN_LEN}){}",
                call.fd,
                render::sockaddr(&target),
                render::result(&result)
            ),
        );
        event.peer = Some(target.to_string());
        event.local = local.map(|addr| addr.to_string());
        if result.is_ok() {
            event.detail = Some(
                "The three-way handshake is complete: the socket is ESTABLISHED even if the \
                 server has not called accept() yet; the kernel queued the connection for it."
                    .to_string(),
            );
        }
        self.emit(event);
    }

    fn send(&mut self, call: CallContext, data: Option<String>, hex: Option<String>) -> Refused {
        let bytes = match (data, hex) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(hex)) => render::parse_hex(&hex).ok_or_else(|| {
                refuse(
                    call.id,
                    ErrorCode::BadArgs,
                    "\"hex\" must be pairs of hex digits, such as \"68 69\".",
                )
            })?,
            _ => {
                return Err(refuse(
                    call.id,
                    ErrorCode::BadArgs,
                    "send needs exactly one of \"data\" (text) or \"hex\" (bytes).",
                ));
            }
        };
        let limit = self.settings.limits.send_bytes as usize;
        if bytes.len() > limit {
            return Err(refuse(
                call.id,
                ErrorCode::Limit,
                format!(
                    "A send may carry at most {limit} bytes; this one has {}.",
                    bytes.len()
                ),
            ));
        }
        self.check_not_waiting(&call, Direction::Outbound)?;
        match sys::send(call.fd, &bytes) {
            Err(error) if is_would_block(&error) => {
                let mut event = call.event(
                    Phase::Blocked,
                    format!(
                        "send({}, {}, {}, MSG_NOSIGNAL){}",
                        call.fd,
                        render::c_string(&bytes),
                        bytes.len(),
                        render::result(&Err(error))
                    ),
                );
                mark_blocked(
                    &mut event,
                    libc::EAGAIN,
                    "The socket's send buffer is full (the peer is not reading), so the kernel \
                     answered EAGAIN. The relay waits for epoll to report it writable, then sends again.",
                );
                self.emit(event);
                let io = match self.registration(call.sock) {
                    Ok(io) => io,
                    Err(error) => {
                        self.finish_send(call, &bytes, Err(error));
                        return Ok(());
                    }
                };
                let completions = self.completion_tx.clone();
                let task = tokio::spawn(async move {
                    let result =
                        wait_and_retry(&io, Direction::Outbound, |fd| sys::send(fd, &bytes)).await;
                    let _ = completions.send(Completion::Send {
                        call,
                        bytes,
                        result,
                    });
                });
                self.pending.push(Pending {
                    call,
                    direction: Direction::Outbound,
                    task,
                });
            }
            result => self.finish_send(call, &bytes, result),
        }
        Ok(())
    }

    fn finish_send(&mut self, call: CallContext, bytes: &[u8], result: io::Result<usize>) {
        let result = result.map(|count| count as i64);
        let mut event = call.answered(
            &result,
            format!(
                "send({}, {}, {}, MSG_NOSIGNAL){}",
                call.fd,
                render::c_string(bytes),
                bytes.len(),
                render::result(&result)
            ),
        );
        if let Ok(count) = result {
            let (data, hex) = render::payload(&bytes[..count as usize]);
            event.data = data;
            event.hex = hex;
            event.detail = Some(
                "send() returns once the bytes are in the kernel's send buffer; the kernel puts \
                 them on the wire on its own schedule."
                    .to_string(),
            );
        }
        self.emit(event);
    }

    fn read(&mut self, call: CallContext, max: Option<u32>) -> Refused {
        let max = max.unwrap_or(DEFAULT_READ_BYTES);
        let limit = self.settings.limits.read_bytes;
        if max == 0 || max > limit {
            return Err(refuse(
                call.id,
                ErrorCode::BadArgs,
                format!("\"max\" must be between 1 and {limit} bytes; the seed reads 1024."),
            ));
        }
        self.check_not_waiting(&call, Direction::Inbound)?;
        let max = max as usize;
        match sys::read(call.fd, max) {
            Err(error) if is_would_block(&error) => {
                let mut event = call.event(
                    Phase::Blocked,
                    format!(
                        "read({}, buffer, {max}){}",
                        call.fd,
                        render::result(&Err(error))
                    ),
                );
                mark_blocked(
                    &mut event,
                    libc::EAGAIN,
                    "No bytes have arrived, so the kernel answered EAGAIN. The relay waits for \
                     epoll to report the socket readable, then reads again.",
                );
                self.emit(event);
                let io = match self.registration(call.sock) {
                    Ok(io) => io,
                    Err(error) => {
                        self.finish_read(call, max, Err(error));
                        return Ok(());
                    }
                };
                let completions = self.completion_tx.clone();
                let task = tokio::spawn(async move {
                    let result =
                        wait_and_retry(&io, Direction::Inbound, |fd| sys::read(fd, max)).await;
                    let _ = completions.send(Completion::Read { call, max, result });
                });
                self.pending.push(Pending {
                    call,
                    direction: Direction::Inbound,
                    task,
                });
            }
            result => self.finish_read(call, max, result),
        }
        Ok(())
    }

    fn finish_read(&mut self, call: CallContext, max: usize, result: io::Result<Vec<u8>>) {
        let ret = result
            .as_ref()
            .map(|bytes| bytes.len() as i64)
            .map_err(clone_error);
        let shown = match &result {
            Ok(bytes) => render::c_string(bytes),
            Err(_) => "buffer".to_string(),
        };
        let mut event = call.answered(
            &ret,
            format!("read({}, {shown}, {max}){}", call.fd, render::result(&ret)),
        );
        match &result {
            Ok(bytes) if bytes.is_empty() => {
                event.detail = Some(
                    "read() returned 0: end of file. The peer closed its side (its FIN arrived) \
                     and no bytes remain."
                        .to_string(),
                );
            }
            Ok(bytes) => {
                let (data, hex) = render::payload(bytes);
                event.data = data;
                event.hex = hex;
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOTCONN) => {
                event.detail = Some(
                    "This socket is not connected. A listening socket only accepts: read from the \
                     fd that accept() returned."
                        .to_string(),
                );
            }
            Err(_) => {}
        }
        self.emit(event);
    }

    fn shutdown(&mut self, call: CallContext, how: ShutdownHow) -> Refused {
        let Some(socket) = self.sockets.get(&call.sock) else {
            return Ok(());
        };
        let (std_how, name) = match how {
            ShutdownHow::Read => (std::net::Shutdown::Read, "SHUT_RD"),
            ShutdownHow::Write => (std::net::Shutdown::Write, "SHUT_WR"),
            ShutdownHow::Both => (std::net::Shutdown::Both, "SHUT_RDWR"),
        };
        let result = socket.socket.shutdown(std_how).map(|()| 0);
        let event = call.answered(
            &result,
            format!("shutdown({}, {name}){}", call.fd, render::result(&result)),
        );
        self.emit(event);
        Ok(())
    }

    fn setsockopt(&mut self, call: CallContext, name: SockOptName, value: SockOptValue) -> Refused {
        let Some(socket) = self.sockets.get(&call.sock) else {
            return Ok(());
        };
        let flag = |value: SockOptValue| match value {
            SockOptValue::Flag(flag) => flag,
            SockOptValue::Number(number) => number != 0,
        };
        let inner = &socket.socket;
        let (result, c_args) = match name {
            SockOptName::ReuseAddr => {
                let on = flag(value);
                (
                    inner.set_reuse_address(on),
                    format!("SOL_SOCKET, SO_REUSEADDR, [{}], 4", on as i32),
                )
            }
            SockOptName::NoDelay => {
                let on = flag(value);
                (
                    inner.set_tcp_nodelay(on),
                    format!("IPPROTO_TCP, TCP_NODELAY, [{}], 4", on as i32),
                )
            }
            SockOptName::Linger => match value {
                SockOptValue::Flag(false) => (
                    inner.set_linger(None),
                    "SOL_SOCKET, SO_LINGER, {l_onoff=0, l_linger=0}, 8".to_string(),
                ),
                SockOptValue::Number(seconds) if seconds >= 0 => (
                    inner.set_linger(Some(Duration::from_secs(seconds as u64))),
                    format!("SOL_SOCKET, SO_LINGER, {{l_onoff=1, l_linger={seconds}}}, 8"),
                ),
                _ => {
                    return Err(refuse(
                        call.id,
                        ErrorCode::BadArgs,
                        "SO_LINGER takes the linger time in seconds (0 makes close send RST), or false to turn it off.",
                    ));
                }
            },
        };
        let result = result.map(|()| 0);
        let mut event = call.answered(
            &result,
            format!(
                "setsockopt({}, {c_args}){}",
                call.fd,
                render::result(&result)
            ),
        );
        if name == SockOptName::Linger && value == SockOptValue::Number(0) && result.is_ok() {
            event.detail = Some(
                "With l_linger = 0, close() discards unsent data and sends RST instead of FIN: \
                 an abortive close, and no TIME_WAIT."
                    .to_string(),
            );
        }
        self.emit(event);
        Ok(())
    }

    /// Stops waiting for every blocked call of `sock`, and reports each.
    async fn cancel_pending(&mut self, sock: SockId, because: &str) {
        let (cancelled, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|pending| pending.call.sock == sock);
        self.pending = kept;
        for pending in cancelled {
            pending.task.abort();
            // A task that finished before the abort has queued its
            // completion, which will be reported; only a real abort is news.
            if let Err(error) = pending.task.await {
                if error.is_cancelled() {
                    let call = pending.call;
                    let mut event = call.event(
                        Phase::Cancelled,
                        format!(
                            "{}({}, …) /* abandoned: {because} */",
                            call.op.as_str(),
                            call.fd
                        ),
                    );
                    event.detail = Some(format!(
                        "The relay stopped waiting for this call because {because}. No further \
                         system call was made for it."
                    ));
                    self.emit(event);
                }
            }
        }
    }

    async fn close(&mut self, call: CallContext) {
        self.cancel_pending(call.sock, &format!("close({}) was called", call.fd))
            .await;
        let Some(socket) = self.sockets.remove(&call.sock) else {
            return;
        };
        if let Some(port) = socket.held_port {
            self.settings.ports.release(port);
        }
        let (role, local, peer) = (socket.role, socket.local, socket.peer);
        self.recent_closed.push(RecentlyClosed {
            sock: call.sock,
            local,
            peer,
            at: Instant::now(),
        });
        let result = close_socket(socket);
        let mut event = call.answered(
            &result,
            format!("close({}){}", call.fd, render::result(&result)),
        );
        event.detail = Some(
            "The fd is gone. If the connection still needs to finish (FIN_WAIT, TIME_WAIT), the \
             kernel does that on its own; the state events that follow show it."
                .to_string(),
        );
        self.emit(event);
        self.report_closed(call.sock, role, local, peer);
    }

    /// The state right after close: what the kernel still keeps of the
    /// connection, if anything, followed on the timer until it is gone.
    fn report_closed(
        &mut self,
        sock: SockId,
        role: Role,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) {
        let kernel_state = match (local, peer) {
            (Some(local), Some(peer)) => sys::kernel_state(local, peer),
            _ => None,
        };
        let tcp = kernel_state.unwrap_or(TcpState::Close);
        self.sink.emit(EventBody::State(SockState {
            sock,
            fd: None,
            role,
            tcp,
            fd_open: false,
            local: local.map(|addr| addr.to_string()),
            peer: peer.map(|addr| addr.to_string()),
            queue: None,
            backlog: None,
        }));
        if let (Some(local), Some(peer), Some(state)) = (local, peer, kernel_state) {
            self.ghosts.push(Ghost {
                sock,
                role,
                local,
                peer,
                reported: state,
            });
        }
    }

    async fn reset(&mut self, id: u64) {
        let socks: Vec<SockId> = self.sockets.keys().copied().collect();
        for sock in socks {
            let Some(socket) = self.sockets.get(&sock) else {
                continue;
            };
            let call = CallContext {
                id,
                op: OpName::Close,
                sock,
                fd: socket.fd,
                started: Instant::now(),
            };
            self.close(call).await;
        }
    }

    fn complete(&mut self, completion: Completion) {
        let finished = *completion.call();
        self.pending.retain(|pending| {
            !(pending.call.id == finished.id
                && pending.call.sock == finished.sock
                && pending.call.op == finished.op)
        });
        match completion {
            Completion::Accept { call, result } => self.finish_accept(call, result),
            Completion::Read { call, max, result } => self.finish_read(call, max, result),
            Completion::Connect {
                call,
                target,
                result,
            } => self.finish_connect(call, target, result),
            Completion::Send {
                call,
                bytes,
                result,
            } => self.finish_send(call, &bytes, result),
        }
    }

    /// Asks the kernel for every socket's state and reports what changed.
    fn observe(&mut self) {
        let mut changes = Vec::new();
        for (&sock, socket) in self.sockets.iter_mut() {
            let Ok(info) = sys::tcp_info(socket.fd) else {
                continue;
            };
            if socket.local.is_none_or(|addr| addr.port() == 0) {
                socket.local = socket
                    .socket
                    .local_addr()
                    .ok()
                    .and_then(|addr| addr.as_socket());
            }
            if socket.peer.is_none() && !matches!(info.state, TcpState::Listen | TcpState::Close) {
                socket.peer = socket
                    .socket
                    .peer_addr()
                    .ok()
                    .and_then(|addr| addr.as_socket());
            }
            let listening = info.state == TcpState::Listen;
            let observed = Observed {
                tcp: info.state,
                queue: listening.then_some(info.queue),
                backlog: listening.then_some(info.backlog),
                local: socket.local,
                peer: socket.peer,
            };
            if socket.reported != Some(observed) {
                socket.reported = Some(observed);
                changes.push(SockState {
                    sock,
                    fd: Some(socket.fd),
                    role: socket.role,
                    tcp: observed.tcp,
                    fd_open: true,
                    local: observed.local.map(|addr| addr.to_string()),
                    peer: observed.peer.map(|addr| addr.to_string()),
                    queue: observed.queue,
                    backlog: observed.backlog,
                });
            }
        }
        self.polls = self.polls.wrapping_add(1);
        if !self.ghosts.is_empty() && self.polls % GHOST_POLL_EVERY == 0 {
            self.ghosts.retain_mut(|ghost| {
                let now = sys::kernel_state(ghost.local, ghost.peer).unwrap_or(TcpState::Close);
                if now != ghost.reported {
                    ghost.reported = now;
                    changes.push(SockState {
                        sock: ghost.sock,
                        fd: None,
                        role: ghost.role,
                        tcp: now,
                        fd_open: false,
                        local: Some(ghost.local.to_string()),
                        peer: Some(ghost.peer.to_string()),
                        queue: None,
                        backlog: None,
                    });
                }
                now != TcpState::Close
            });
        }
        for change in changes {
            self.sink.emit(EventBody::State(change));
        }
        self.recent_closed
            .retain(|closed| closed.at.elapsed() < RECENTLY_CLOSED_KEEP);
        let wanted: std::collections::BTreeSet<u16> = self
            .sockets
            .values()
            .filter_map(|socket| socket.local)
            .chain(self.ghosts.iter().map(|ghost| ghost.local))
            .chain(self.recent_closed.iter().filter_map(|closed| closed.local))
            .map(|addr| addr.port())
            .filter(|port| *port != 0)
            .collect();
        self.wire.sync_ports(&wanted);
    }

    /// When the browser has gone: stop every wait, close every socket.
    async fn tear_down(&mut self) {
        self.wire.shut_down();
        for pending in std::mem::take(&mut self.pending) {
            pending.task.abort();
            let _ = pending.task.await;
        }
        for (_, socket) in std::mem::take(&mut self.sockets) {
            if let Some(port) = socket.held_port {
                self.settings.ports.release(port);
            }
            let _ = close_socket(socket);
        }
    }
}

/// A lab socket as tokio's reactor sees it: shared with the lab, which keeps
/// making its own calls on it.
struct SharedSocket(Arc<Socket>);

impl AsRawFd for SharedSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Hands a socket to tokio's reactor (epoll).
fn register(socket: SharedSocket) -> io::Result<AsyncFd<SharedSocket>> {
    // SAFETY: the Arc keeps the Socket, and so its fd, open for as long as
    // the registration lives, and a Socket always reports the same fd. The
    // lab closes the fd only after every registration is gone.
    Ok(unsafe { AsyncFd::register(socket) }?)
}

fn mark_blocked(event: &mut Call, errno: i32, detail: &str) {
    event.ret = Some(-1);
    event.errno = Some(sys::errno_name(errno));
    event.message = Some(sys::strerror(errno));
    event.detail = Some(detail.to_string());
}

fn clone_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

/// close(2) on the socket's fd, with its real return value. Every task that
/// shared the socket has ended by now, so the lab is its only owner.
fn close_socket(socket: LabSocket) -> io::Result<i64> {
    // Leave epoll first: the reactor must never watch a closed fd.
    drop(socket.registration);
    let socket =
        Arc::try_unwrap(socket.socket).map_err(|_| io::Error::other("socket still shared"))?;
    let fd = socket.into_raw_fd();
    // SAFETY: the fd came out of its only owner just above.
    let status = unsafe { libc::close(fd) };
    if status < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(0)
}

/// How long a wait sleeps when tokio's readiness can no longer tell it
/// anything. tokio keeps a "closed" readiness (EPOLLHUP, EPOLLRDHUP) for good,
/// so a socket that has one is always "ready"; a call that still answers
/// EAGAIN then is asked again after this pause instead of in a spin.
const STALE_READINESS_PAUSE: Duration = Duration::from_millis(5);

/// Waits for readiness and repeats the call until the kernel gives an answer
/// other than EAGAIN.
async fn wait_and_retry<T>(
    io: &AsyncFd<SharedSocket>,
    direction: Direction,
    mut attempt: impl FnMut(RawFd) -> io::Result<T>,
) -> io::Result<T> {
    let fd = io.get_ref().as_raw_fd();
    loop {
        let mut guard = match direction {
            Direction::Inbound => io.readable().await?,
            Direction::Outbound => io.writable().await?,
        };
        let ready = guard.ready();
        match guard.try_io(|_| attempt(fd)) {
            Ok(result) => return result,
            Err(_would_block) => {
                if ready.is_read_closed() || ready.is_write_closed() {
                    tokio::time::sleep(STALE_READINESS_PAUSE).await;
                }
            }
        }
    }
}

/// Waits for a non-blocking connect to finish: writable, then SO_ERROR.
async fn wait_for_connect(io: &AsyncFd<SharedSocket>) -> io::Result<()> {
    let socket = &io.get_ref().0;
    loop {
        let mut guard = io.writable().await?;
        if let Some(error) = socket.take_error()? {
            return Err(error);
        }
        // Writable with no error and a peer means the handshake is done.
        if socket.peer_addr().is_ok() {
            return Ok(());
        }
        let ready = guard.ready();
        guard.clear_ready();
        if ready.is_write_closed() {
            tokio::time::sleep(STALE_READINESS_PAUSE).await;
        }
    }
}

/// Whether an address belongs to this host: loopback, or one a socket can
/// bind to, which the kernel only allows for its own addresses.
fn is_on_this_host(ip: IpAddr) -> bool {
    ip.is_loopback() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_hosts_addresses_are_local() {
        assert!(is_on_this_host("127.0.0.1".parse().expect("ip")));
        assert!(is_on_this_host("127.3.2.1".parse().expect("ip")));
        // TEST-NET-1 (RFC 5737) is never assigned to a real host; the check
        // binds a UDP socket and sends nothing.
        assert!(!is_on_this_host("192.0.2.1".parse().expect("ip")));
    }
}
