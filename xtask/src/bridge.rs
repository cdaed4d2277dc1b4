//! The baseline the relay's send→read round trip must meet: a plain
//! WebSocket-to-TCP echo bridge on tokio-tungstenite. A client's text frame
//! is written to a TCP connection to an echo server, and what comes back is
//! sent back as a frame.
//!
//! Like the relay, and like the websocat bridge the goal was set against, it
//! runs in a process of its own (`xtask echo-bridge`): a bridge inside the
//! measuring process would skip the wake-up of another process that every
//! relay round trip pays. The bench times it in the same run as the relay,
//! one round trip of each in turn, so that both meet the same machine.

use std::time::Instant;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::bench::{Client, client_config, connect};

/// The bridge's process and a client connected to it.
pub struct Bridge {
    _process: tokio::process::Child,
    client: Client,
}

impl Bridge {
    /// Starts `xtask echo-bridge` and connects to it.
    pub async fn start() -> anyhow::Result<Bridge> {
        let exe = std::env::current_exe().context("where is xtask?")?;
        let mut process = tokio::process::Command::new(exe)
            .arg("echo-bridge")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("could not start the echo bridge")?;
        let stdout = process.stdout.take().context("no stdout")?;
        let url = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout))
            .next_line()
            .await?
            .context("the echo bridge printed nothing")?;
        let client = connect(&url).await?;
        Ok(Bridge {
            _process: process,
            client,
        })
    }

    /// One echo, in µs.
    pub async fn round_trip(&mut self) -> anyhow::Result<f64> {
        let started = Instant::now();
        self.client.send(Message::Text("ping".into())).await?;
        loop {
            match self.client.next().await.context("the bridge closed")?? {
                Message::Text(_) => break,
                _ => continue,
            }
        }
        Ok(started.elapsed().as_secs_f64() * 1e6)
    }
}

/// `xtask echo-bridge`: serves the bridge on a loopback port, which it
/// prints as a ws:// URL, until it is killed.
pub fn serve() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let echo = TcpListener::bind("127.0.0.1:0").await?;
        let echo_addr = echo.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = echo.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    while let Ok(count) = stream.read(&mut buffer).await {
                        if count == 0 || stream.write_all(&buffer[..count]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let bridge = TcpListener::bind("127.0.0.1:0").await?;
        println!("ws://{}/", bridge.local_addr()?);
        while let Ok((stream, _)) = bridge.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                // The relay's read buffer, not tungstenite's 128 KiB default,
                // which is zeroed on every read: the baseline is the best
                // plain bridge, not one slowed by a setting.
                let accepted =
                    tokio_tungstenite::accept_async_with_config(stream, Some(client_config()))
                        .await;
                let Ok(mut socket) = accepted else {
                    return;
                };
                let Ok(mut tcp) = TcpStream::connect(echo_addr).await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let mut buffer = vec![0u8; 4096];
                while let Some(Ok(Message::Text(text))) = socket.next().await {
                    if tcp.write_all(text.as_bytes()).await.is_err() {
                        return;
                    }
                    let Ok(count) = tcp.read(&mut buffer).await else {
                        return;
                    };
                    let reply = String::from_utf8_lossy(&buffer[..count]).to_string();
                    if socket.send(Message::Text(reply.into())).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(())
    })
}
