//! `cargo xtask record-demo`: records the built-in lesson the page offers
//! when no relay can be reached. It runs the whole lesson against a real
//! release relay, with capture on (run it as root, or with CAP_NET_RAW),
//! and writes every frame as the relay sent it to `www/demo/lesson.jsonl`.

use std::time::Duration;

use anyhow::{Context, bail};
use protocol::{EventBody, Op};

use crate::bench::{Session, start_relay};

/// Where the page finds the built-in recording.
pub const DEMO: &str = "www/demo/lesson.jsonl";

pub fn run() -> anyhow::Result<()> {
    let mut build = crate::cargo();
    build.args(["build", "--release", "--package", "relay"]);
    crate::run_command(build)?;
    let text = tokio::runtime::Runtime::new()?.block_on(record())?;
    let path = crate::project_root().join(DEMO);
    std::fs::create_dir_all(path.parent().context("a folder")?)?;
    std::fs::write(&path, text)?;
    println!("recorded the lesson into {}", path.display());
    Ok(())
}

async fn record() -> anyhow::Result<String> {
    let relay = start_relay(&[]).await?;
    let mut session = Session::open_keeping(&relay.ws_url, true).await?;
    if !session.capture {
        bail!(
            "this relay may not capture segments, and the lesson needs the wire: run \
             `cargo xtask record-demo` as root"
        );
    }
    // The course material's order: the server up to accept, the client's
    // connect, data both ways, the client closes first.
    let (server, client, conn) = session.connected_pair().await?;
    for (from, to, words) in [
        (client, conn, "Hello, server"),
        (conn, client, "Hello, client"),
    ] {
        session
            .call(Op::Send {
                sock: from,
                data: Some(words.into()),
                hex: None,
            })
            .await?;
        session
            .call(Op::Read {
                sock: to,
                max: None,
            })
            .await?;
    }
    session.call(Op::Close { sock: client }).await?;
    // read() returns 0: the client's FIN.
    session
        .call(Op::Read {
            sock: conn,
            max: None,
        })
        .await?;
    session.call(Op::Close { sock: conn }).await?;
    session.call(Op::Close { sock: server }).await?;
    // The last segments and states come after the last call's answer: keep
    // reading until the lab has been quiet for a moment.
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(500), session.next()).await {
        event?;
    }
    let frames = session.kept.take().unwrap_or_default();
    let hello = frames
        .first()
        .and_then(|frame| protocol::decode_event(frame).ok())
        .and_then(|event| match event.body {
            EventBody::Hello(hello) => Some(hello),
            _ => None,
        })
        .context("the recording starts with hello")?;
    let header = protocol::RecordingHeader::new(&hello.relay, &now_rfc3339()?, hello.capture);
    Ok(protocol::write_recording(
        &header,
        frames.iter().map(String::as_str),
    ))
}

/// Now, in RFC 3339 (UTC), as `date` writes it.
fn now_rfc3339() -> anyhow::Result<String> {
    let output = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .context("could not run date")?;
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}
