//! A screen that follows a lab (`/ws?follow=CODE`), as a follower's page
//! does: it reads the history marker, then the lab's events, and checks
//! that each run of them (the first, and each resync's) has no gap.

use futures_util::{SinkExt, StreamExt};
use protocol::{Event, EventBody, History};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::lab_client::EVENT_TIMEOUT;

pub struct Follower {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The lab's events of the current run, from its hello on, in order.
    pub events: Vec<Event>,
    /// Every `history` marker, in order: the first, then one per resync.
    pub histories: Vec<History>,
    /// Events of the follower's own session (`seq` 0) other than markers.
    pub own: Vec<Event>,
}

impl Follower {
    /// Opens `/ws?follow=CODE` at the relay whose `/ws` URL this is.
    pub async fn connect(ws_url: &str, code: &str) -> Follower {
        let url = format!("{ws_url}?follow={code}");
        let (socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|error| panic!("{url} opens: {error}"));
        Follower::over(socket)
    }

    /// Like `connect`, with a receive buffer of a few KiB that the kernel
    /// will not grow: a follower that stops reading is then behind in
    /// hundreds of events, not in the megabytes loopback would buffer.
    pub async fn connect_small(ws_url: &str, code: &str) -> Follower {
        Follower::over(small_buffer_websocket(&format!("{ws_url}?follow={code}")).await)
    }

    fn over(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Follower {
        Follower {
            socket,
            events: Vec::new(),
            histories: Vec::new(),
            own: Vec::new(),
        }
    }

    /// Reads the next frame and files it; panics on a gap in a run.
    /// Reads on until `count` traced programs have ended; their endings,
    /// in the order the lab told them.
    pub async fn exits(&mut self, count: usize) -> Vec<protocol::Exited> {
        let mut exited = Vec::new();
        while exited.len() < count {
            if let EventBody::Exited(ending) = self.next().await.body {
                exited.push(ending);
            }
        }
        exited
    }

    pub async fn next(&mut self) -> Event {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.socket.next())
                .await
                .expect("the follower gets a frame in time")
                .expect("the WebSocket is open")
                .expect("the frame is readable");
            let Message::Text(text) = frame else { continue };
            let event = protocol::decode_event(&text).expect("the event parses");
            if event.seq == 0 {
                match &event.body {
                    EventBody::History(history) => {
                        self.histories.push(history.clone());
                        self.events.clear();
                    }
                    _ => self.own.push(event.clone()),
                }
                return event;
            }
            // After the hello, the history resumes past what it let go.
            let let_go = self.histories.last().map_or(0, |history| history.let_go);
            let expected = match self.events.last() {
                None => 1,
                Some(hello) if hello.seq == 1 => 2 + let_go,
                Some(last) => last.seq + 1,
            };
            assert_eq!(
                event.seq, expected,
                "a follower's events have no gap and no repeat"
            );
            self.events.push(event.clone());
            return event;
        }
    }

    /// Reads until the lab's event `seq` has arrived.
    pub async fn until_seq(&mut self, seq: u64) {
        while self.events.last().is_none_or(|last| last.seq < seq) {
            self.next().await;
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("the frame is sent");
    }
}

/// Opens a WebSocket at `url` (`ws://HOST:PORT/…`) over a TCP connection
/// whose receive buffer is 4 KiB and stays so: setting SO_RCVBUF turns the
/// kernel's autotuning off for it. A client of it that stops reading stops
/// the relay's writes after a few KiB.
pub async fn small_buffer_websocket(url: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let address = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .and_then(|host_port| host_port.parse().ok())
        .unwrap_or_else(|| panic!("{url} names no HOST:PORT"));
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(address).await.expect("the relay accepts");
    let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap_or_else(|error| panic!("{url} opens: {error}"));
    socket
}
