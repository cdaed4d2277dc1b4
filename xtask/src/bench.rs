//! `cargo xtask bench`: measures the release relay over real WebSockets on
//! loopback, as a page would use it, and prints the figures.
//!
//! - send-to-read latency: from writing a `send` command to receiving the
//!   peer's `read` done event (the read was already waiting);
//! - full-lifecycle labs per second: open a session, run the whole seed flow,
//!   close everything, leave;
//! - memory per idle lab: the relay's RSS growth per open session.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use protocol::{Command, Event, EventBody, Op, Phase, Role};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{cargo, project_root, run_command};

/// How many full lifecycles to time for the labs-per-second figure.
const LIFECYCLES: u32 = 300;

pub fn run(round_trips: u32, idle_labs: u32) -> anyhow::Result<()> {
    let mut build = cargo();
    build.args(["build", "--release", "--package", "relay"]);
    run_command(build)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(measure(round_trips, idle_labs))
}

async fn measure(round_trips: u32, idle_labs: u32) -> anyhow::Result<()> {
    let relay_path = project_root().join("target/release/relay");
    let mut relay = tokio::process::Command::new(&relay_path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--max-labs",
            &(idle_labs + 8).to_string(),
        ])
        .env("RUST_LOG", "relay=warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start {}", relay_path.display()))?;
    let stdout = relay.stdout.take().context("no stdout")?;
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .context("the relay printed nothing")?;
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .context("no URL in the relay's first line")?;
    let ws_url = format!("{}ws", url.replacen("http://", "ws://", 1));
    let pid = relay.id().context("the relay exited")?;

    let latencies = send_to_read_latency(&ws_url, round_trips).await?;
    let labs_per_second = lifecycles_per_second(&ws_url, LIFECYCLES).await?;
    let (bytes_per_lab, fds_per_lab) = memory_per_idle_lab(&ws_url, pid, idle_labs).await?;

    println!("socket-flow relay benchmark (release build, loopback, one client at a time)");
    println!(
        "send→peer read done:  p50 {:>7.1} µs   p99 {:>7.1} µs   ({} round trips)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    println!(
        "full-lifecycle labs:  {labs_per_second:>7.0} labs/s   ({LIFECYCLES} labs, 15 commands each)"
    );
    println!(
        "idle lab:             {:>7.1} KiB RSS per lab, {fds_per_lab:.1} fds   ({idle_labs} labs open)",
        bytes_per_lab / 1024.0
    );
    Ok(())
}

fn percentile(sorted_us: &[f64], fraction: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted_us.len() - 1) as f64 * fraction).round() as usize;
    sorted_us[index]
}

/// A minimal protocol client for the benchmark.
struct Session {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Session {
    async fn open(ws_url: &str) -> anyhow::Result<Session> {
        // No Nagle on the client either: a page's frames leave at once too.
        let (socket, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true).await?;
        let mut session = Session { socket, next_id: 1 };
        match session.next().await?.body {
            EventBody::Hello(_) => Ok(session),
            other => bail!("expected hello, got {other:?}"),
        }
    }

    async fn next(&mut self) -> anyhow::Result<Event> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .context("no event within 10 s")?
                .context("the relay closed the session")??;
            if let Message::Text(text) = frame {
                return protocol::decode_event(&text).map_err(anyhow::Error::msg);
            }
        }
    }

    async fn send(&mut self, op: Op) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let text = protocol::encode_command(&Command { id, op });
        self.socket.send(Message::Text(text.into())).await?;
        Ok(id)
    }

    /// Waits for the final call event of `id`.
    async fn outcome(&mut self, id: u64) -> anyhow::Result<protocol::Call> {
        loop {
            if let EventBody::Call(call) = self.next().await?.body {
                if call.id == Some(id) {
                    match call.phase {
                        Some(Phase::Done) => return Ok(call),
                        Some(Phase::Failed) => bail!("call {id} failed: {}", call.c),
                        _ => {}
                    }
                }
            }
        }
    }

    async fn call(&mut self, op: Op) -> anyhow::Result<protocol::Call> {
        let id = self.send(op).await?;
        self.outcome(id).await
    }

    /// socket, bind, listen, socket, connect, accept: returns (client, conn).
    async fn connected_pair(&mut self) -> anyhow::Result<(u32, u32, u32)> {
        let server = self
            .call(Op::Socket { role: Role::Server })
            .await?
            .sock
            .context("sock")?;
        self.call(Op::Bind {
            sock: server,
            addr: None,
        })
        .await?;
        self.call(Op::Listen {
            sock: server,
            backlog: None,
        })
        .await?;
        let client = self
            .call(Op::Socket { role: Role::Client })
            .await?
            .sock
            .context("sock")?;
        self.call(Op::Connect {
            sock: client,
            addr: None,
        })
        .await?;
        let conn = self
            .call(Op::Accept { sock: server })
            .await?
            .new_sock
            .context("new sock")?;
        Ok((server, client, conn))
    }
}

async fn send_to_read_latency(ws_url: &str, round_trips: u32) -> anyhow::Result<Vec<f64>> {
    let mut session = Session::open(ws_url).await?;
    let (_, client, conn) = session.connected_pair().await?;
    let mut latencies = Vec::with_capacity(round_trips as usize);
    for _ in 0..round_trips {
        // The read waits first, as a server's would.
        session
            .send(Op::Read {
                sock: conn,
                max: None,
            })
            .await?;
        let started = Instant::now();
        session
            .send(Op::Send {
                sock: client,
                data: Some("ping".into()),
                hex: None,
            })
            .await?;
        loop {
            if let EventBody::Call(call) = session.next().await?.body {
                if call.op == Some(protocol::OpName::Read) && call.phase == Some(Phase::Done) {
                    break;
                }
            }
        }
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

async fn lifecycles_per_second(ws_url: &str, count: u32) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..count {
        let mut session = Session::open(ws_url).await?;
        let (server, client, conn) = session.connected_pair().await?;
        session
            .call(Op::Send {
                sock: client,
                data: Some("hello".into()),
                hex: None,
            })
            .await?;
        session
            .call(Op::Read {
                sock: conn,
                max: None,
            })
            .await?;
        session
            .call(Op::Send {
                sock: conn,
                data: Some("hi".into()),
                hex: None,
            })
            .await?;
        session
            .call(Op::Read {
                sock: client,
                max: None,
            })
            .await?;
        for sock in [client, conn, server] {
            session.call(Op::Close { sock }).await?;
        }
        session.socket.close(None).await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

fn rss_bytes(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024.0)
}

fn fd_count(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count() as f64)
        .unwrap_or(0.0)
}

async fn memory_per_idle_lab(ws_url: &str, pid: u32, labs: u32) -> anyhow::Result<(f64, f64)> {
    // One session first, so that buffers the runtime makes once are counted
    // in the baseline, not against the labs.
    Session::open(ws_url).await?.socket.close(None).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_before, fds_before) = (rss_bytes(pid)?, fd_count(pid));
    let mut open = Vec::with_capacity(labs as usize);
    for _ in 0..labs {
        open.push(Session::open(ws_url).await?);
    }
    // Let the relay settle: every session has sent hello and waits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_after, fds_after) = (rss_bytes(pid)?, fd_count(pid));
    drop(open);
    Ok((
        (rss_after - rss_before) / labs as f64,
        (fds_after - fds_before) / labs as f64,
    ))
}
