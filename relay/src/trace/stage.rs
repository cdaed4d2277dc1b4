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

/// Hands the lab each report; answers the ones the program is held on
/// once the lab has handled them.
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
        // The tracer holds the program on a close, until the lab has let go
        // of its copy, and on a call that made a socket, until the lab has
        // it (see `Report`).
        let held = matches!(report, Report::Closing { .. })
            || (matches!(report, Report::Returned(_)) && socket.is_some());
        let (handled, answered) = if held {
            let (handled, answered) = oneshot::channel();
            (Some(handled), Some(answered))
        } else {
            (None, None)
        };
        let input = TracedInput {
            report,
            socket,
            handled,
        };
        if inputs.send(LabInput::Traced(input)).await.is_err() {
            return Ok(());
        }
        if let Some(answered) = answered {
            let _ = answered.await;
            connection.reply(&Reply::Handled).await?;
        }
    }
}

/// Publishes every event of the lab to its audience, until the lab ends.
async fn publish(events: &mut mpsc::Receiver<protocol::Event>, audience: &Audience) {
    while let Some(event) = events.recv().await {
        crate::session::published(&event, audience);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use protocol::{OpName, Role};

    use super::*;
    use crate::trace::link::Link;
    use crate::trace::report::TracedCall;

    fn returned(op: OpName, fd: i32) -> Message {
        Message::Report(Report::Returned(TracedCall {
            process: 7,
            lane: "client[7]".into(),
            role: Role::Client,
            op,
            fd,
            c: String::new(),
            ret: i64::from(fd),
            errno: None,
            entered: 0,
            at: 0,
            addr: None,
            data: None,
            new_fd: None,
        }))
    }

    /// The tracer holds a program that made a socket until the lab has it,
    /// so that the socket's first segment finds it: the relay answers such
    /// a report only once the lab has handled it, and no other.
    // Two workers: the link's reply is a blocking read, which the relay's
    // side must answer meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_made_a_socket_is_answered_once_the_lab_has_it() {
        let folder = crate::trace::link::tests::folder("stage");
        let path = folder.join("relay.sock");
        let listener = Listener::bind_at(path.clone()).expect("listens");
        let link = Link::connect_at(&path).expect("connects");
        let mut connection = listener.accept().await.expect("accepted");
        let (inputs, mut lab) = mpsc::channel(4);
        let (_stop, shutdown) = watch::channel(false);
        let feeding = tokio::spawn(async move { feed(&mut connection, inputs, shutdown).await });

        // A send made no socket: nothing to wait for.
        link.send(&returned(OpName::Send, 3), None).expect("sent");
        let Some(LabInput::Traced(sent)) = lab.recv().await else {
            panic!("the lab gets the report");
        };
        assert!(sent.handled.is_none(), "nobody waits on a send");

        let made = std::net::TcpListener::bind("127.0.0.1:0").expect("a socket to pass");
        link.send(&returned(OpName::Socket, 3), Some(made.as_fd()))
            .expect("sent");
        let Some(LabInput::Traced(socket)) = lab.recv().await else {
            panic!("the lab gets the report");
        };
        assert!(socket.socket.is_some(), "with the socket");
        let handled = socket.handled.expect("the relay waits for the lab");
        handled.send(()).expect("the relay still waits");
        assert!(matches!(link.reply(), Ok(Reply::Handled)));

        drop(link);
        feeding.await.expect("fed").expect("ended cleanly");
        drop(listener);
        let _ = std::fs::remove_dir_all(folder);
    }
}
