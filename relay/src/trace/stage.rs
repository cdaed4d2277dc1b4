//! The relay's side of `relay trace`: it takes each `relay trace` process's
//! control connection, opens a lab for its program (or puts a joining
//! program's lanes into the lab it names), hands the lab what the tracer
//! reports, and publishes the lab's events to whoever follows it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::link::{Connection, Listener};
use super::report::{Message, Reply, Report};
use crate::audience::Audience;
use crate::engine::{LabInput, TracedInput};
use crate::labs::Labs;

/// The traced labs a program may join, by code.
type Joinable = Arc<Mutex<HashMap<String, mpsc::WeakSender<LabInput>>>>;

/// Takes `relay trace` connections until the relay shuts down.
pub(crate) async fn serve(listener: Listener, labs: Arc<Labs>) {
    let joinable = Joinable::default();
    let mut shutdown = labs.shutdown_signal();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => {
                    let (labs, joinable) = (Arc::clone(&labs), Arc::clone(&joinable));
                    tokio::spawn(async move {
                        if let Err(error) = take(connection, &labs, &joinable).await {
                            tracing::info!(%error, "a traced program's connection ended");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "could not accept a relay trace connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// One `relay trace` process: its opening message, then its reports.
async fn take(mut connection: Connection, labs: &Labs, joinable: &Joinable) -> std::io::Result<()> {
    let shutdown = labs.shutdown_signal();
    match connection.next().await? {
        Some((Message::Open { program }, _)) => {
            let open = match labs.open(IpAddr::V4(Ipv4Addr::LOCALHOST), protocol::Seat::Owner) {
                Ok(open) => open,
                Err(reason) => return connection.reply(&Reply::Refused { reason }).await,
            };
            let code = open.code().to_string();
            tracing::info!(%program, %code, "tracing a program into a lab");
            if let Ok(mut joinable) = joinable.lock() {
                joinable.retain(|_, lab| lab.strong_count() > 0);
                joinable.insert(code.clone(), open.handle.inputs.downgrade());
            }
            connection.reply(&Reply::Opened { code }).await?;
            let crate::labs::OpenLab {
                handle,
                run,
                audience,
                ..
            } = open;
            let crate::engine::LabHandle {
                inputs, mut events, ..
            } = handle;
            // The lab ends once every program feeding it has gone.
            let feeding = feed(&mut connection, inputs, shutdown);
            let publishing = publish(&mut events, &audience);
            let ((), ((), fed)) =
                crate::together::join(run, crate::together::join(publishing, feeding)).await;
            audience.close();
            fed
        }
        Some((Message::Join { code, program }, _)) => {
            let lab = joinable
                .lock()
                .ok()
                .and_then(|joinable| joinable.get(&code).and_then(mpsc::WeakSender::upgrade));
            let Some(inputs) = lab else {
                let reason =
                    format!("No traced lab has the code {code}; is its relay trace still running?");
                return connection.reply(&Reply::Refused { reason }).await;
            };
            tracing::info!(%program, %code, "a traced program joins a lab");
            connection.reply(&Reply::Opened { code }).await?;
            feed(&mut connection, inputs, shutdown).await
        }
        Some((Message::Report(_), _)) | None => Ok(()),
    }
}

/// Hands the lab each report; holds a closing program until the lab has
/// let go of its copy of the socket.
async fn feed(
    connection: &mut Connection,
    inputs: mpsc::Sender<LabInput>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    loop {
        let next = tokio::select! {
            next = connection.next() => next?,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some((Message::Report(report), socket)) = next else {
            return Ok(());
        };
        let (let_go, answered) = match report {
            Report::Closing { .. } => {
                let (let_go, answered) = oneshot::channel();
                (Some(let_go), Some(answered))
            }
            _ => (None, None),
        };
        let input = TracedInput {
            report,
            socket,
            let_go,
        };
        if inputs.send(LabInput::Traced(input)).await.is_err() {
            return Ok(());
        }
        if let Some(answered) = answered {
            let _ = answered.await;
            connection.reply(&Reply::LetGo).await?;
        }
    }
}

/// Publishes every event of the lab to its audience, until the lab ends.
async fn publish(events: &mut mpsc::Receiver<protocol::Event>, audience: &Audience) {
    while let Some(event) = events.recv().await {
        crate::session::published(&event, audience);
    }
}
