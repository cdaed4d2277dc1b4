//! A WebSocket client that speaks protocol v1 as the page does, and awaits
//! events by what they say rather than by sleeping.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddrV4;

use protocol::{Call, Command, Event, EventBody, Hello, Op, Phase, Role, SockState};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take. Generous, because CI
/// machines are small; a passing test never waits this long.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct LabClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// The op of each command sent, so that its outcome is the event of that
    /// call (a listen or connect on an unbound socket has a bind before it).
    ops: std::collections::HashMap<u64, protocol::OpName>,
    /// Every event received so far, in order.
    pub events: Vec<Event>,
    pub hello: Hello,
}

impl LabClient {
    /// Opens `/ws` and reads `hello`.
    pub async fn connect(ws_url: &str) -> LabClient {
        let (socket, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true)
            .await
            .expect("the WebSocket opens");
        let mut client = LabClient {
            socket,
            next_id: 1,
            ops: std::collections::HashMap::new(),
            events: Vec::new(),
            hello: Hello {
                protocol: 0,
                relay: String::new(),
                default_addr: String::new(),
                limits: protocol::Limits {
                    sockets_per_lab: 0,
                    labs_per_relay: 0,
                    send_bytes: 0,
                    read_bytes: 0,
                    frame_bytes: 0,
                    port_range: [0, 0],
                    ports_per_lab: 0,
                },
                capture: false,
                capture_reason: None,
                states_traced: false,
                states_reason: None,
                code: None,
                role: None,
                classroom: None,
            },
        };
        let first = client.next_event().await;
        assert_eq!(first.seq, 1, "hello is the first frame");
        match first.body {
            EventBody::Hello(hello) => client.hello = hello,
            other => panic!("the first frame is not hello: {other:?}"),
        }
        client
    }

    /// The `segment` events received so far, in order.
    pub fn segments(&self) -> Vec<protocol::Segment> {
        self.events
            .iter()
            .filter_map(|event| match &event.body {
                EventBody::Segment(segment) => Some(segment.clone()),
                _ => None,
            })
            .collect()
    }

    /// Sends a command and returns its id.
    pub async fn send(&mut self, op: Op) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.ops.insert(id, op.name());
        let text = protocol::encode_command(&Command { id, op });
        self.send_raw(Message::Text(text.into())).await;
        id
    }

    /// The id of the last command sent.
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("the frame is sent");
    }

    /// The next event, checking that `seq` has no gaps and `t_us` never
    /// goes backwards.
    pub async fn next_event(&mut self) -> Event {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no event in time; so far: {:#?}", self.events))
                .expect("the WebSocket is open")
                .expect("the frame is readable");
            let Message::Text(text) = frame else { continue };
            let event = protocol::decode_event(&text).expect("the event parses");
            if let Some(previous) = self.events.last() {
                assert_eq!(event.seq, previous.seq + 1, "seq has no gaps");
                assert!(event.t_us >= previous.t_us, "t_us is monotonic");
            }
            self.events.push(event.clone());
            return event;
        }
    }

    /// Reads events until one matches, and returns it. Events already
    /// received count too.
    pub async fn until(&mut self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        self.until_from(0, what, matches).await
    }

    /// Like `until`, but only events from index `from` of `events` on count.
    pub async fn until_from(
        &mut self,
        from: usize,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> Event {
        if let Some(event) = self.events.iter().skip(from).find(|event| matches(event)) {
            return event.clone();
        }
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; events: {:#?}",
                self.events
            );
            let event = self.next_event().await;
            if matches(&event) {
                return event;
            }
        }
    }

    /// Awaits the final call event (done or failed) of command `id`: the
    /// event of the call the command named.
    pub async fn outcome(&mut self, id: u64) -> Call {
        let op = self.ops.get(&id).copied();
        let event = self
            .until(&format!("the outcome of command {id}"), |event| {
                matches!(&event.body, EventBody::Call(call)
                    if call.id == Some(id)
                        && (op.is_none() || call.op == op)
                        && matches!(call.phase, Some(Phase::Done | Phase::Failed)))
            })
            .await;
        match event.body {
            EventBody::Call(call) => call,
            _ => unreachable!(),
        }
    }

    /// Sends a command and awaits its final call event.
    pub async fn call(&mut self, op: Op) -> Call {
        let id = self.send(op).await;
        self.outcome(id).await
    }

    /// Sends a command, asserts it succeeded, and returns the event.
    pub async fn ok(&mut self, op: Op) -> Call {
        let call = self.call(op.clone()).await;
        assert_eq!(call.phase, Some(Phase::Done), "{op:?} failed: {call:?}");
        call
    }

    /// Awaits a state event of `sock` in `tcp`.
    pub async fn state(&mut self, sock: u32, tcp: protocol::TcpState) -> SockState {
        let event = self
            .until(&format!("socket {sock} in {tcp:?}"), |event| {
                matches!(&event.body, EventBody::State(state) if state.sock == sock && state.tcp == tcp)
            })
            .await;
        match event.body {
            EventBody::State(state) => state,
            _ => unreachable!(),
        }
    }

    /// Awaits the `error` event of command `id` (or of an id-less frame)
    /// among the events from index `from` on.
    pub async fn error_from(&mut self, from: usize, id: Option<u64>) -> protocol::ErrorEvent {
        let event = self
            .until_from(
                from,
                "an error event",
                |event| matches!(&event.body, EventBody::Error(error) if error.id == id),
            )
            .await;
        match event.body {
            EventBody::Error(error) => error,
            _ => unreachable!(),
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// A server's accepted connection and the client connected to it, in one
/// lab, with the ids of the calls that made them.
pub struct ConnectedPair {
    pub server: u32,
    pub client: u32,
    pub conn: u32,
    pub server_addr: SocketAddrV4,
    pub client_addr: SocketAddrV4,
    pub accept_id: u64,
    pub connect_id: u64,
}

/// The seed's first half: a listening server, its accept waiting, a client
/// that connects, and the accepted connection.
pub async fn connected_pair(lab: &mut LabClient) -> ConnectedPair {
    let server = lab
        .ok(Op::Socket { role: Role::Server })
        .await
        .sock
        .expect("sock");
    let bound = lab
        .ok(Op::Bind {
            sock: server,
            addr: None,
        })
        .await;
    let server_addr: SocketAddrV4 = bound.local.expect("local").parse().expect("addr");
    lab.ok(Op::Listen {
        sock: server,
        backlog: None,
    })
    .await;
    let accept_id = lab.send(Op::Accept { sock: server }).await;
    let client = lab
        .ok(Op::Socket { role: Role::Client })
        .await
        .sock
        .expect("sock");
    let connect_id = lab
        .send(Op::Connect {
            sock: client,
            addr: None,
        })
        .await;
    let connected = lab.outcome(connect_id).await;
    let client_addr: SocketAddrV4 = connected.local.expect("local").parse().expect("addr");
    let conn = lab.outcome(accept_id).await.new_sock.expect("conn");
    ConnectedPair {
        server,
        client,
        conn,
        server_addr,
        client_addr,
        accept_id,
        connect_id,
    }
}

/// Runs the seed's conversation in one lab and returns (server port, client port, ids).
pub async fn conversation(lab: &mut LabClient) -> (u16, u16, [u64; 4]) {
    let ConnectedPair {
        server,
        client,
        conn,
        server_addr,
        client_addr,
        accept_id,
        connect_id,
    } = connected_pair(lab).await;
    let send_id = lab
        .send(Op::Send {
            sock: client,
            data: Some("hello".into()),
            hex: None,
        })
        .await;
    lab.outcome(send_id).await;
    let read = lab
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert_eq!(read.data.as_deref(), Some("hello"));
    let close_id = lab.send(Op::Close { sock: client }).await;
    lab.outcome(close_id).await;
    lab.ok(Op::Close { sock: conn }).await;
    lab.ok(Op::Close { sock: server }).await;
    (
        server_addr.port(),
        client_addr.port(),
        [connect_id, send_id, close_id, accept_id],
    )
}
