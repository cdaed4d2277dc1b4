//! One browser's session: it forwards the browser's commands to its lab and
//! the lab's events back, until either side goes away.
//!
//! Shaped like tokio-tungstenite's interval-server example: `run` logs the
//! expected endings; `forward` returns them as errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use protocol::{ErrorCode, EventBody, Refusal};
use tokio::sync::mpsc;

use crate::engine::{self, LabInput};
use crate::labs::Labs;

pub(crate) async fn run(mut socket: WebSocket, labs: Arc<Labs>, frame_bytes: u32) {
    // A relay runs at most `labs_per_relay` labs; one past that is told why.
    let open = match labs.open() {
        Ok(open) => open,
        Err(refusal) => {
            let refusal = engine::refusal_event(refusal);
            let _ = socket
                .send(Message::Text(protocol::encode_event(&refusal).into()))
                .await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let mut lab = open.handle;
    let overflowed = Arc::clone(&lab.overflowed);
    match forward(
        &mut socket,
        &lab.inputs,
        &mut lab.events,
        &overflowed,
        frame_bytes,
    )
    .await
    {
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
                forward_until_error(&mut socket, &mut lab.events).await;
            }
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: close_code::INVALID,
                    reason: "text frame was not UTF-8".into(),
                })))
                .await;
        }
        Err(error) => tracing::debug!(%error, "session ended"),
    }
    // Closing the input channel ends the lab, which closes its sockets; wait
    // for that so that the lab slot is only freed once the fds are gone.
    drop(lab.inputs);
    let _ = lab.task.await;
}

/// How often the relay pings a browser that has been quiet.
const PING_EVERY: Duration = Duration::from_secs(15);
/// A browser that has sent nothing, not even a pong, for this long has gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A frame the browser does not take within this long means it has stopped
/// reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE: &str = "the browser stopped answering";

async fn forward(
    socket: &mut WebSocket,
    inputs: &mpsc::Sender<LabInput>,
    events: &mut mpsc::Receiver<protocol::Event>,
    overflowed: &AtomicBool,
    frame_bytes: u32,
) -> Result<(), axum::Error> {
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                let frame = Message::Text(protocol::encode_event(&event).into());
                send_in_time(socket, frame).await?;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    return Err(axum::Error::new(IDLE));
                }
                send_in_time(socket, Message::Ping(Default::default())).await?;
            }
        }
    }
}

/// Sends a frame, or fails if the browser has not taken it in time.
async fn send_in_time(socket: &mut WebSocket, frame: Message) -> Result<(), axum::Error> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await {
        Ok(sent) => sent,
        Err(_) => Err(axum::Error::new("the browser stopped reading")),
    }
}

/// Forwards events until the lab has reported an `error`, for at most a second.
async fn forward_until_error(socket: &mut WebSocket, events: &mut mpsc::Receiver<protocol::Event>) {
    let forwarding = async {
        while let Some(event) = events.recv().await {
            let is_error = matches!(event.body, EventBody::Error(_));
            let text = protocol::encode_event(&event);
            if socket.send(Message::Text(text.into())).await.is_err() || is_error {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), forwarding).await;
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
fn read_command(bytes: &[u8], frame_bytes: u32) -> LabInput {
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
