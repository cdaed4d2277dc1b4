//! One browser's session: it forwards the browser's commands to its lab and
//! the lab's events back, until either side goes away.
//!
//! Shaped like tokio-tungstenite's interval-server example: `run` logs the
//! expected endings; `forward` returns them as errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures_util::SinkExt;
use protocol::{ErrorCode, EventBody, Refusal};
use tokio::sync::mpsc;

use crate::audience::Audience;
use crate::engine::LabInput;
use crate::labs::OpenLab;

/// How a session keeps time with its browser.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    pub frame_bytes: u32,
    /// A browser that has sent nothing, not even a pong, for this long has
    /// gone; the relay pings it three times in that span.
    pub idle_timeout: Duration,
}

impl Pace {
    /// The pings that keep a browser's silence measured: a third of the idle
    /// timeout apart, the first one period in.
    pub(crate) fn pings(&self) -> tokio::time::Interval {
        let every = self.idle_timeout / 3;
        let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pings
    }
}

pub(crate) async fn run(socket: WebSocket, open: OpenLab, pace: Pace) {
    let OpenLab {
        handle: lab,
        run: run_lab,
        shutdown,
        audience,
        // The slots stay in `open`, and are freed when this function ends.
        ..
    } = open;
    // One task drives both; see `engine::LabRun`, and `together` for why not
    // `tokio::join!`. The lab's loop ends once `talk` drops its inputs and
    // every socket is closed, and only then are the lab's slots freed.
    let talking = async {
        talk(socket, lab, shutdown, pace, &audience).await;
        // The followers' streams end with the lab's.
        audience.close();
    };
    crate::together::join(run_lab, talking).await;
}

/// The frame an event leaves as, kept for the lab's followers too.
pub(crate) fn published(event: &protocol::Event, audience: &Audience) -> Message {
    let frame = Utf8Bytes::from(protocol::encode_event(event));
    audience.publish(event, &frame);
    Message::Text(frame)
}

/// Forwards commands and events until either side goes away, and closes the
/// WebSocket with the reason.
async fn talk(
    mut socket: WebSocket,
    mut lab: crate::engine::LabHandle,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    pace: Pace,
    audience: &Audience,
) {
    let overflowed = Arc::clone(&lab.overflowed);
    match forward(
        &mut socket,
        &lab.inputs,
        &mut lab.events,
        &overflowed,
        &mut shutdown,
        pace,
        audience,
    )
    .await
    {
        Ok(()) if *shutdown.borrow() => {
            let close = Message::Close(Some(CloseFrame {
                code: close_code::AWAY,
                reason: "relay shutting down".into(),
            }));
            let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
        }
        Ok(()) if overflowed.load(Ordering::Relaxed) => {
            // The lab stopped sending; say why and end the session.
            let close = Message::Close(Some(CloseFrame {
                code: close_code::POLICY,
                reason: "the page fell too far behind the lab's events".into(),
            }));
            let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
        }
        Err(error) if error.to_string() == IDLE => {
            tracing::info!("a browser went silent; closing its lab");
            let close = Message::Close(Some(CloseFrame {
                code: close_code::AWAY,
                reason: IDLE.into(),
            }));
            let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
        }
        Ok(()) => tracing::debug!("browser left"),
        Err(error) if is_invalid_utf8(&error) => {
            // RFC 6455 requires failing the connection on a text frame that
            // is not UTF-8, and tungstenite's stream has ended. Say why
            // first, in order, then close with 1007 (invalid payload data).
            let refusal = Refusal::new(
                None,
                ErrorCode::BadJson,
                "A text frame was not UTF-8. WebSocket requires closing the connection for that \
                 (RFC 6455, close code 1007); send raw bytes as a binary frame instead.",
            );
            if lab.inputs.send(LabInput::Refused(refusal)).await.is_ok() {
                forward_until_error(&mut socket, &mut lab.events, audience).await;
            }
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: close_code::INVALID,
                    reason: "text frame was not UTF-8".into(),
                })))
                .await;
        }
        Err(error) => match ending(&error) {
            Some((code, reason)) => {
                tracing::info!(%error, "closing a session with {code}");
                let close = Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }));
                let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
            }
            None => tracing::debug!(%error, "session ended"),
        },
    }
    // Closing the input channel ends the lab, which closes its sockets.
    drop(lab.inputs);
}

/// A frame the browser does not take within this long means it has stopped
/// reading.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const IDLE: &str = "the browser stopped answering";

async fn forward(
    socket: &mut WebSocket,
    inputs: &mpsc::Sender<LabInput>,
    events: &mut mpsc::Receiver<protocol::Event>,
    overflowed: &AtomicBool,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    pace: Pace,
    audience: &Audience,
) -> Result<(), axum::Error> {
    let frame_bytes = pace.frame_bytes;
    let mut last_heard = Instant::now();
    let mut ping = pace.pings();
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let Some(frame) = frame else { return Ok(()) };
                last_heard = Instant::now();
                let input = match frame? {
                    Message::Text(text) => read_command(text.as_bytes(), frame_bytes),
                    Message::Binary(bytes) => read_command(&bytes, frame_bytes),
                    Message::Close(_) => return Ok(()),
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if inputs.send(input).await.is_err() {
                    return Ok(());
                }
            }
            event = events.recv() => {
                let Some(event) = event else { return Ok(()) };
                if overflowed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                send_batch_in_time(socket, event, events, audience).await?;
            }
            _ = shutdown.changed() => return Ok(()),
            _ = ping.tick() => {
                if last_heard.elapsed() > pace.idle_timeout {
                    return Err(axum::Error::new(IDLE));
                }
                in_time(socket.send(Message::Ping(Default::default()))).await?;
            }
        }
    }
}

/// How many events one write may carry. A lab releases a step's events
/// together (a call, its segments, the states that follow); writing them in
/// one go costs one system call instead of one each, which is most of what
/// the capture costs under load.
const EVENTS_PER_WRITE: usize = 64;

/// Sends `first` and the events already queued behind it in one write, or
/// fails if the browser has not taken them in time. Order is kept: they
/// leave in the order the lab released them.
async fn send_batch_in_time(
    socket: &mut WebSocket,
    first: protocol::Event,
    events: &mut mpsc::Receiver<protocol::Event>,
    audience: &Audience,
) -> Result<(), axum::Error> {
    let writing = async {
        socket.feed(published(&first, audience)).await?;
        for _ in 1..EVENTS_PER_WRITE {
            let Ok(event) = events.try_recv() else { break };
            socket.feed(published(&event, audience)).await?;
        }
        socket.flush().await
    };
    in_time(writing).await
}

/// Finishes a send, or fails if the browser has not taken it in time.
pub(crate) async fn in_time(
    sending: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), axum::Error> {
    match tokio::time::timeout(SEND_TIMEOUT, sending).await {
        Ok(sent) => sent,
        Err(_) => Err(axum::Error::new("the browser stopped reading")),
    }
}

/// Forwards events until the lab has reported an `error`, for at most a second.
async fn forward_until_error(
    socket: &mut WebSocket,
    events: &mut mpsc::Receiver<protocol::Event>,
    audience: &Audience,
) {
    let forwarding = async {
        while let Some(event) = events.recv().await {
            let is_error = matches!(event.body, EventBody::Error(_));
            if socket.send(published(&event, audience)).await.is_err() || is_error {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), forwarding).await;
}

/// The close code and reason for an ending the browser caused: a frame over
/// the hard limit (1009), a protocol violation (1002).
fn ending(error: &axum::Error) -> Option<(u16, &'static str)> {
    use std::error::Error;
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source = error.source();
    while let Some(cause) = source {
        match cause.downcast_ref() {
            Some(WsError::Capacity(_)) => {
                return Some((close_code::SIZE, "frame over the relay's hard limit"));
            }
            Some(WsError::Protocol(_)) => {
                return Some((close_code::PROTOCOL, "WebSocket protocol violation"));
            }
            _ => {}
        }
        source = cause.source();
    }
    None
}

fn is_invalid_utf8(error: &axum::Error) -> bool {
    use std::error::Error;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(tokio_tungstenite::tungstenite::Error::Utf8(_)) = cause.downcast_ref() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Turns one frame into a command, or into the refusal the lab will report.
/// Public for `cargo xtask fuzz`, which feeds it every kind of frame.
pub fn read_command(bytes: &[u8], frame_bytes: u32) -> LabInput {
    if bytes.len() > frame_bytes as usize {
        return LabInput::Refused(Refusal::new(
            None,
            ErrorCode::Limit,
            format!(
                "This frame is {} bytes; the limit is {frame_bytes}. Send smaller commands.",
                bytes.len()
            ),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => match protocol::decode_command(text) {
            Ok(command) => LabInput::Command(command),
            Err(refusal) => LabInput::Refused(refusal),
        },
        Err(error) => LabInput::Refused(Refusal::new(
            None,
            ErrorCode::BadJson,
            format!("This frame is not UTF-8 text ({error}); commands are JSON text."),
        )),
    }
}
