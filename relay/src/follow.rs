//! A follower's session: a screen that shows another session's lab, event
//! for event, and may not drive it.
//!
//! It gets a `history` marker, the lab's `hello` (with `role` `viewer`), the
//! frames the lab has sent so far, and then every new frame live, exactly as
//! the lab's own browser got them. A follower that falls behind gets it all
//! again, marked `resync`; a command gets `read_only`. Neither ever waits on
//! the lab or on another follower.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures_util::SinkExt;
use protocol::{ErrorCode, ErrorEvent, Event, EventBody, History, Seat};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::audience::{Audience, Joined};
use crate::engine::LabInput;
use crate::session::{IDLE, Pace, SEND_TIMEOUT, in_time, read_command};

/// How a follow ended, when the follower is to be told.
enum Ending {
    /// The browser left or stopped answering, or the write failed.
    Gone,
    Close(u16, &'static str),
}

pub(crate) async fn run(
    mut socket: WebSocket,
    audience: Arc<Audience>,
    mut shutdown: watch::Receiver<bool>,
    pace: Pace,
) {
    let seat = audience.take_seat();
    let ending = follow(&mut socket, &audience, &mut shutdown, pace).await;
    drop(seat);
    if let Ending::Close(code, reason) = ending {
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
    }
}

/// How many live frames one write may carry.
const FRAMES_PER_WRITE: usize = 64;

async fn follow(
    socket: &mut WebSocket,
    audience: &Audience,
    shutdown: &mut watch::Receiver<bool>,
    pace: Pace,
) -> Ending {
    let mut resync = false;
    let mut last_heard = Instant::now();
    let mut ping = pace.pings();
    loop {
        let Some(joined) = audience.join() else {
            return lab_ended(shutdown);
        };
        let Joined {
            hello,
            frames,
            let_go,
            mut live,
        } = joined;
        if catch_up(socket, resync, let_go, hello, frames)
            .await
            .is_err()
        {
            return Ending::Gone;
        }
        loop {
            tokio::select! {
                frame = live.recv() => match frame {
                    Ok(frame) => {
                        if send_live(socket, frame, &mut live).await.is_err() {
                            return Ending::Gone;
                        }
                    }
                    // Too far behind: start again from a fresh history,
                    // never from a hole.
                    Err(RecvError::Lagged(_)) => {
                        resync = true;
                        break;
                    }
                    Err(RecvError::Closed) => return lab_ended(shutdown),
                },
                frame = socket.recv() => {
                    let Some(Ok(frame)) = frame else { return Ending::Gone };
                    last_heard = Instant::now();
                    let bytes = match &frame {
                        Message::Text(text) => text.as_bytes(),
                        Message::Binary(bytes) => bytes,
                        Message::Close(_) => return Ending::Gone,
                        Message::Ping(_) | Message::Pong(_) => continue,
                    };
                    let refusal = read_only(bytes, pace.frame_bytes);
                    if in_time(socket.send(own(refusal))).await.is_err() {
                        return Ending::Gone;
                    }
                }
                _ = shutdown.changed() => {
                    return Ending::Close(close_code::AWAY, "relay shutting down");
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > pace.idle_timeout {
                        tracing::info!("a follower went silent; closing it");
                        return Ending::Close(close_code::AWAY, IDLE);
                    }
                    if in_time(socket.send(Message::Ping(Default::default()))).await.is_err() {
                        return Ending::Gone;
                    }
                }
            }
        }
    }
}

/// The ending when the followed lab has ended: the relay's shutdown ends
/// every lab first, and a follower is told that, not that one lab ended.
fn lab_ended(shutdown: &watch::Receiver<bool>) -> Ending {
    if *shutdown.borrow() {
        Ending::Close(close_code::AWAY, "relay shutting down")
    } else {
        Ending::Close(close_code::NORMAL, "the lab you followed has ended")
    }
}

/// The `history` marker, the lab's `hello` as a follower's, and every frame
/// kept so far, in one write.
async fn catch_up(
    socket: &mut WebSocket,
    resync: bool,
    let_go: u64,
    hello: Option<Event>,
    frames: Vec<Utf8Bytes>,
) -> Result<(), axum::Error> {
    let writing = async {
        let marker = EventBody::History(History { resync, let_go });
        socket.feed(own(marker)).await?;
        if let Some(mut hello) = hello {
            if let EventBody::Hello(body) = &mut hello.body {
                body.role = Some(Seat::Viewer);
            }
            let text = protocol::encode_event(&hello);
            socket.feed(Message::Text(text.into())).await?;
        }
        for frame in frames {
            socket.feed(Message::Text(frame)).await?;
        }
        socket.flush().await
    };
    in_time(writing).await
}

/// Sends `first` and the live frames already waiting behind it in one write.
async fn send_live(
    socket: &mut WebSocket,
    first: Utf8Bytes,
    live: &mut tokio::sync::broadcast::Receiver<Utf8Bytes>,
) -> Result<(), axum::Error> {
    let writing = async {
        socket.feed(Message::Text(first)).await?;
        for _ in 1..FRAMES_PER_WRITE {
            // A lag found here is found again by the next `recv`.
            let Ok(frame) = live.try_recv() else { break };
            socket.feed(Message::Text(frame)).await?;
        }
        socket.flush().await
    };
    in_time(writing).await
}

/// The refusal of a follower's command, with the command's id when the frame
/// had one.
fn read_only(bytes: &[u8], frame_bytes: u32) -> EventBody {
    let id = match read_command(bytes, frame_bytes) {
        LabInput::Command(command) => Some(command.id),
        LabInput::Refused(refusal) => refusal.id,
        LabInput::Viewers | LabInput::Traced(_) => None,
    };
    EventBody::Error(ErrorEvent {
        id,
        code: ErrorCode::ReadOnly,
        message: "This screen follows a lab that another screen drives: it shows every event, \
                  and runs no calls. Open the page without ?follow for a lab of your own."
            .to_string(),
    })
}

/// An event of the follower's own session rather than of the lab: `seq` 0,
/// which no lab event has.
fn own(body: EventBody) -> Message {
    let event = Event {
        seq: 0,
        t_us: 0,
        body,
    };
    Message::Text(protocol::encode_event(&event).into())
}
