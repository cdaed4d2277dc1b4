//! The load section of `cargo xtask bench`: many labs at once, each looping
//! the whole lifecycle, driven by a Rust client so that the client is not
//! the bottleneck.
//!
//! Two shapes: closed loop (each lab sends its next command once the last
//! is answered: the peak rate) and paced (each lab sends 25 commands a
//! second: the latency of a classroom's load, free of queueing artefacts).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::{EventBody, Op, Phase, Role};

use crate::bench::{BenchRelay, Session, cpu_seconds, percentile, rss_bytes, start_relay};

/// How a lab paces its commands.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    ClosedLoop,
    Paced { per_second: u32 },
}

/// What one load run measured.
pub struct LoadFigures {
    pub commands_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub rss_mib: f64,
    pub cpu_percent: f64,
    pub errors: u64,
}

/// Starts a relay with room for `labs` from one address and loads it.
pub async fn run(
    labs: u32,
    seconds: u64,
    shape: Shape,
    capture: bool,
) -> anyhow::Result<LoadFigures> {
    let room = (labs + 8).to_string();
    let mut flags = vec!["--max-labs", &room, "--labs-per-ip", &room];
    if !capture {
        flags.push("--no-capture");
    }
    let relay = start_relay(&flags).await?;
    load(&relay, labs, Duration::from_secs(seconds), shape).await
}

async fn load(
    relay: &BenchRelay,
    labs: u32,
    span: Duration,
    shape: Shape,
) -> anyhow::Result<LoadFigures> {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut sessions = Vec::new();
    for _ in 0..labs {
        sessions.push(Session::open(&relay.ws_url).await?);
    }
    let cpu_before = cpu_seconds(relay.pid)?;
    let started = Instant::now();
    let deadline = started + span;
    let mut tasks = Vec::new();
    for (index, session) in sessions.into_iter().enumerate() {
        let latencies = Arc::clone(&latencies);
        let errors = Arc::clone(&errors);
        // Spread the paced labs' ticks over the interval.
        let offset = Duration::from_micros(index as u64 * 40_000 / u64::from(labs.max(1)));
        tasks.push(tokio::spawn(async move {
            if let Err(error) = lab_loop(session, shape, deadline, offset, &latencies).await {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                eprintln!("load: a lab stopped: {error:#}");
            }
        }));
    }
    let mut rss_peak = 0.0f64;
    while Instant::now() < deadline {
        rss_peak = rss_peak.max(rss_bytes(relay.pid).unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(relay.pid)? - cpu_before;
    let mut sorted =
        std::mem::take(&mut *latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    sorted.sort_by(f64::total_cmp);
    Ok(LoadFigures {
        commands_per_second: sorted.len() as f64 / elapsed,
        p50_us: percentile(&sorted, 0.50),
        p99_us: percentile(&sorted, 0.99),
        rss_mib: rss_peak / (1024.0 * 1024.0),
        cpu_percent: cpu / elapsed * 100.0,
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// One lab's client: its session, its pace, and its latencies.
struct Driver {
    session: Session,
    interval: Option<Duration>,
    next_at: Instant,
    latencies_us: Vec<f64>,
    /// Final answers that came while the driver waited for another command
    /// (a blocked connect's or accept's), kept until it asks for them.
    finished: std::collections::HashMap<u64, protocol::Call>,
}

impl Driver {
    /// Sends one command, at its time when paced, and waits for its first
    /// answer (a `blocked` answer counts: the browser has heard back).
    async fn step(&mut self, op: Op) -> anyhow::Result<protocol::Call> {
        if let Some(interval) = self.interval {
            tokio::time::sleep_until(self.next_at.into()).await;
            self.next_at += interval;
        }
        let sent = Instant::now();
        let id = self.session.send(op).await?;
        let answer = self.answer(id, false).await?;
        self.latencies_us.push(sent.elapsed().as_secs_f64() * 1e6);
        Ok(answer)
    }

    /// The first answer to command `id` (with `last`, its final one): its
    /// call event, never the bind the relay makes first for an unbound
    /// socket; or a refusal. Final answers of other commands are kept.
    async fn answer(&mut self, id: u64, last: bool) -> anyhow::Result<protocol::Call> {
        if let Some(call) = self.finished.remove(&id) {
            return Ok(call);
        }
        loop {
            match self.session.next().await?.body {
                EventBody::Call(call) if !bound_first(&call) => {
                    let done = matches!(call.phase, Some(Phase::Done | Phase::Failed));
                    match call.id {
                        Some(of) if of == id && (done || !last) => return Ok(call),
                        Some(of) if done => {
                            self.finished.insert(of, call);
                        }
                        _ => {}
                    }
                }
                EventBody::Error(error) if error.id == Some(id) => {
                    anyhow::bail!("command {id} refused: {}", error.message)
                }
                _ => {}
            }
        }
    }

    /// The whole lifecycle, once.
    async fn lifecycle(&mut self) -> anyhow::Result<()> {
        let server = self
            .step(Op::Socket { role: Role::Server })
            .await?
            .sock
            .context("sock")?;
        self.step(Op::Bind {
            sock: server,
            addr: None,
        })
        .await?;
        self.step(Op::Listen {
            sock: server,
            backlog: None,
        })
        .await?;
        let client = self
            .step(Op::Socket { role: Role::Client })
            .await?
            .sock
            .context("sock")?;
        let connect = self
            .step(Op::Connect {
                sock: client,
                addr: None,
            })
            .await?;
        let accept = self.step(Op::Accept { sock: server }).await?;
        let conn = match accept.new_sock {
            Some(conn) => conn,
            None => {
                let id = accept.id.context("id")?;
                self.answer(id, true).await?.new_sock.context("conn")?
            }
        };
        if connect.phase == Some(Phase::Blocked) {
            self.answer(connect.id.context("id")?, true).await?;
        }
        self.step(Op::Send {
            sock: client,
            data: Some("ping".into()),
            hex: None,
        })
        .await?;
        self.step(Op::Read {
            sock: conn,
            max: None,
        })
        .await?;
        self.step(Op::Send {
            sock: conn,
            data: Some("pong".into()),
            hex: None,
        })
        .await?;
        self.step(Op::Read {
            sock: client,
            max: None,
        })
        .await?;
        self.step(Op::Close { sock: client }).await?;
        self.step(Op::Read {
            sock: conn,
            max: None,
        })
        .await?;
        self.step(Op::Close { sock: conn }).await?;
        self.step(Op::Close { sock: server }).await?;
        Ok(())
    }
}

/// One lab looping the whole lifecycle until `deadline`.
async fn lab_loop(
    session: Session,
    shape: Shape,
    deadline: Instant,
    offset: Duration,
    latencies: &Mutex<Vec<f64>>,
) -> anyhow::Result<()> {
    let mut driver = Driver {
        session,
        interval: match shape {
            Shape::ClosedLoop => None,
            Shape::Paced { per_second } => Some(Duration::from_secs(1) / per_second.max(1)),
        },
        next_at: Instant::now() + offset,
        latencies_us: Vec::new(),
        finished: std::collections::HashMap::new(),
    };
    let mut outcome = Ok(());
    while Instant::now() < deadline && outcome.is_ok() {
        outcome = driver.lifecycle().await;
    }
    if let Ok(mut all) = latencies.lock() {
        all.extend(driver.latencies_us);
    }
    outcome
}

fn bound_first(call: &protocol::Call) -> bool {
    matches!(
        call.note,
        Some(protocol::Note::BoundBeforeListen | protocol::Note::BoundBeforeConnect)
    )
}
