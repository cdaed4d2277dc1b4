//! One browser's session: it forwards the browser's commands to its lab and
//! the lab's events back, until either side goes away.
//!
//! Shaped like tokio-tungstenite's interval-server example: `run` logs the
//! expected endings; `forward` returns them as errors.

use std::sync::Arc;

use std::time::Duration;

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
    match forward(&mut socket, &lab.inputs, &mut lab.events, frame_bytes).await {
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

async fn forward(
    socket: &mut WebSocket,
    inputs: &mpsc::Sender<LabInput>,
    events: &mut mpsc::UnboundedReceiver<protocol::Event>,
    frame_bytes: u32,
) -> Result<(), axum::Error> {
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let Some(frame) = frame else { return Ok(()) };
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
                socket.send(Message::Text(protocol::encode_event(&event).into())).await?;
            }
        }
    }
}

/// Forwards events until the lab has reported an `error`, for at most a second.
async fn forward_until_error(
    socket: &mut WebSocket,
    events: &mut mpsc::UnboundedReceiver<protocol::Event>,
) {
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
