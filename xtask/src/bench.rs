//! `cargo xtask bench`: measures the release relay over real WebSockets on
//! loopback, as a page would use it, and prints the figures.
//!
//! - send-to-read latency: from writing a `send` command to receiving the
//!   peer's `read` done event (the read was already waiting), with capture
//!   off, and with capture and the state trace on, where the lab merges
//!   every step in kernel time; and how long that merge held a call event
//!   (the lab's own figure, from its closing log line);
//! - full-lifecycle labs per second: open a session, run the whole seed flow,
//!   close everything, leave;
//! - memory per idle lab: the relay's RSS growth per open session;
//! - the wire view's cost: the relay's CPU time with and without 1,000
//!   segments/s of traffic on other ports, capture on and off, and how soon
//!   after the `send` command its segment event reaches the page;
//! - the load section (`load`) and the browser section (`browser_bench`).
//!
//! `--section` runs one section; `--relay` and `--www` measure other builds,
//! and `--against` times another relay's round trip in turn with this one's.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use protocol::{Command, Event, EventBody, Op, Phase, Role};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{cargo, project_root, run_command};

/// How many full lifecycles to time for the labs-per-second figure.
const LIFECYCLES: u32 = 300;

/// The sections of the benchmark, to run one at a time while working on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// One client at a time: latency against the echo bridge, lifecycles,
    /// memory, the wire view.
    Relay,
    /// Many labs at once.
    Load,
    /// The page in Chromium: load, cost per event, long tasks, clicks.
    Browser,
    /// One lab and hundreds of screens following it.
    Fanout,
}

/// Other builds to measure instead of this tree's.
pub struct Builds {
    /// A relay binary.
    pub relay: Option<std::path::PathBuf>,
    /// A relay binary whose send→read round trip is timed beside.
    pub against: Option<std::path::PathBuf>,
    /// A folder holding a page (`index.html`, `pkg/`).
    pub www: Option<std::path::PathBuf>,
}

/// How the load section runs.
pub struct LoadPlan {
    pub labs: u32,
    pub seconds: u64,
}

pub fn run(
    round_trips: u32,
    idle_labs: u32,
    load: LoadPlan,
    builds: Builds,
    sections: &[Section],
) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        // The load generator must not be the bottleneck: measure from an
        // optimised xtask, with the same arguments.
        let mut release = cargo();
        release
            .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
            .args(std::env::args_os().skip(1));
        return run_command(release);
    }
    let wanted = |section| sections.is_empty() || sections.contains(&section);
    if let Some(path) = &builds.against {
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("no relay at {}", path.display()))?;
        let _ = AGAINST.set(path);
    }
    match builds.relay {
        Some(path) => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("no relay at {}", path.display()))?;
            let _ = RELAY.set(path);
        }
        None => {
            let mut build = cargo();
            build.args(["build", "--release", "--package", "relay"]);
            run_command(build)?;
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            if wanted(Section::Relay) {
                measure(round_trips, idle_labs).await?;
            }
            if wanted(Section::Load) {
                measure_load(load).await?;
            }
            if wanted(Section::Browser) {
                let www = match &builds.www {
                    Some(dir) => Some(
                        std::fs::canonicalize(dir)
                            .with_context(|| format!("no page at {}", dir.display()))?,
                    ),
                    None => None,
                };
                crate::browser_bench::measure(www.as_deref()).await?;
            }
            if wanted(Section::Fanout) {
                crate::fanout::measure(crate::fanout::FOLLOWERS).await?;
            }
            Ok(())
        })
}

/// The load section: closed-loop and paced load, with capture off and on.
async fn measure_load(plan: LoadPlan) -> anyhow::Result<()> {
    let may_capture = start_relay(&[]).await?;
    let capture = Session::open(&may_capture.ws_url).await?.capture;
    drop(may_capture);
    let mut runs = vec![false];
    if capture {
        runs.push(true);
    }
    for capture in runs {
        for (label, shape) in [
            ("closed loop", crate::load::Shape::ClosedLoop),
            ("paced 25/s ", crate::load::Shape::Paced { per_second: 25 }),
        ] {
            let figures = crate::load::run(plan.labs, plan.seconds, shape, capture).await?;
            println!(
                "load {label}, capture {}: {:>7.0} commands/s   p50 {:>7.1} µs   p99 {:>8.1} µs   relay {:>5.1} MiB, CPU {:>5.1} %   ({} labs, {} s{})",
                if capture { "on " } else { "off" },
                figures.commands_per_second,
                figures.p50_us,
                figures.p99_us,
                figures.rss_mib,
                figures.cpu_percent,
                plan.labs,
                plan.seconds,
                if figures.errors > 0 {
                    format!(", {} labs stopped", figures.errors)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}

/// A release relay started for the benchmark.
pub(crate) struct BenchRelay {
    _child: tokio::process::Child,
    pub ws_url: String,
    pub pid: u32,
    /// Its log lines, as they come.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BenchRelay {
    /// Awaits the log line a lab writes when it ends, with how long merging
    /// held its call events: (p50, p99) in µs.
    async fn merge_hold(&self) -> anyhow::Result<(f64, f64)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.logs.lock().ok().and_then(|logs| {
                logs.iter().rev().find_map(|line| {
                    Some((
                        number_after(line, "hold_p50_us")?,
                        number_after(line, "hold_p99_us")?,
                    ))
                })
            });
            if let Some(hold) = found {
                return Ok(hold);
            }
            if Instant::now() > deadline {
                bail!("the relay never logged its merge hold");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The number after `key=` in a log line, without tracing's colour codes.
fn number_after(line: &str, key: &str) -> Option<f64> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence runs to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let rest = &plain[plain.find(&format!("{key}="))? + key.len() + 1..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The relay binary `--relay` named, when it named one.
static RELAY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
/// The relay binary `--against` named, when it named one.
static AGAINST: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
/// The `--against` relay's lab ports: its capture then reads none of the
/// measured relay's frames, nor the measured relay's any of its.
const AGAINST_LAB_PORTS: &str = "8001-8999";

pub(crate) async fn start_relay(extra_args: &[&str]) -> anyhow::Result<BenchRelay> {
    let relay_path = RELAY
        .get()
        .cloned()
        .unwrap_or_else(|| project_root().join("target/release/relay"));
    start_relay_binary(&relay_path, extra_args).await
}

/// Starts the `--against` relay with the same flags, when one was named.
async fn start_against(extra_args: &[&str]) -> anyhow::Result<Option<BenchRelay>> {
    let Some(path) = AGAINST.get() else {
        return Ok(None);
    };
    let mut args = extra_args.to_vec();
    args.extend(["--lab-ports", AGAINST_LAB_PORTS]);
    Ok(Some(start_relay_binary(path, &args).await?))
}

async fn start_relay_binary(
    relay_path: &std::path::Path,
    extra_args: &[&str],
) -> anyhow::Result<BenchRelay> {
    let mut child = tokio::process::Command::new(relay_path)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra_args)
        // The lab's closing line carries the merge hold.
        .env("RUST_LOG", "relay=warn,relay::engine::lab=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start {}", relay_path.display()))?;
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(stderr) = child.stderr.take() {
        let logs = std::sync::Arc::clone(&logs);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut logs) = logs.lock() {
                    // Only the hold lines are read; keep the newest few.
                    if line.contains("hold_p50_us") {
                        if logs.len() >= 64 {
                            logs.remove(0);
                        }
                        logs.push(line);
                    }
                }
            }
        });
    }
    let stdout = child.stdout.take().context("no stdout")?;
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
    let pid = child.id().context("the relay exited")?;
    Ok(BenchRelay {
        _child: child,
        ws_url,
        pid,
        logs,
    })
}

async fn measure(round_trips: u32, idle_labs: u32) -> anyhow::Result<()> {
    let max_labs = (idle_labs + 8).to_string();
    let relay = start_relay(&[
        "--max-labs",
        &max_labs,
        "--labs-per-ip",
        &max_labs,
        "--no-capture",
    ])
    .await?;
    let against = start_against(&["--no-capture"]).await?;
    let round_trips_off =
        send_to_read_against_bridge(&relay, against.as_ref(), round_trips).await?;
    drop(against);
    let labs_per_second = lifecycles_per_second(&relay.ws_url, LIFECYCLES).await?;
    let (bytes_per_lab, fds_per_lab) =
        memory_per_idle_lab(&relay.ws_url, relay.pid, idle_labs).await?;
    drop(relay);

    println!("socket-flow relay benchmark (release build, loopback, one client at a time)");
    round_trips_off.print("capture off");
    println!(
        "full-lifecycle labs:  {labs_per_second:>7.0} labs/s   ({LIFECYCLES} labs, 15 commands each)"
    );
    println!(
        "idle lab:             {:>7.1} KiB RSS per lab, {fds_per_lab:.1} fds   ({idle_labs} labs open)",
        bytes_per_lab / 1024.0
    );

    let captured = start_relay(&[]).await?;
    let mut probe = Session::open(&captured.ws_url).await?;
    let capturing = probe.capture;
    if !capturing {
        println!("wire view:            not measured: this relay may not capture (run as root)");
        return Ok(());
    }
    let against = start_against(&[]).await?;
    send_to_read_against_bridge(&captured, against.as_ref(), round_trips)
        .await?
        .print("capture and state trace on");
    drop(against);
    match captured.merge_hold().await {
        Ok((hold_p50, hold_p99)) => println!(
            "merge hold per call:  p50 {hold_p50:>7.1} µs   p99 {hold_p99:>7.1} µs   (syscall return → event released, in that lab)"
        ),
        Err(error) => println!("merge hold per call:  not measured: {error}"),
    }
    let (segment_delay, segment_delay_t_us) = segment_delay(&mut probe, 300).await?;
    println!(
        "send cmd→segment:     p50 {:>7.1} µs   p99 {:>7.1} µs   at the client ({} sends); on the wire p50 {:.0} µs before send() returned",
        percentile(&segment_delay, 0.50),
        percentile(&segment_delay, 0.99),
        segment_delay.len(),
        percentile(&segment_delay_t_us, 0.50),
    );
    for (label, relay) in [
        ("capture on ", captured),
        ("capture off", start_relay(&["--no-capture"]).await?),
    ] {
        let mut session = Session::open(&relay.ws_url).await?;
        // One listening lab, so that the capture has a route to consult.
        session.connected_pair().await?;
        let idle = cpu_over(relay.pid, Duration::from_secs(3)).await?;
        let (busy, segments) = cpu_over_traffic(relay.pid, Duration::from_secs(3)).await?;
        println!(
            "relay CPU, {label}:  idle {:>5.2} %   with {:.0} segments/s on other ports {:>5.2} %",
            idle * 100.0,
            segments,
            busy * 100.0
        );
    }
    Ok(())
}

/// The send→read round trips of one run, in µs, sorted.
struct RoundTrips {
    relay: Vec<f64>,
    /// The `--against` relay's, timed in turn with the others.
    against: Option<Vec<f64>>,
    bridge: Vec<f64>,
}

impl RoundTrips {
    /// Prints the send→read round trip, the bridge's echo timed beside it,
    /// and how they compare; and the other relay's, when one was timed.
    fn print(&self, how: &str) {
        let (relay, bridge) = (&self.relay, &self.bridge);
        println!(
            "send→peer read done:  p50 {:>7.1} µs   p99 {:>7.1} µs   ({} round trips, {how})",
            percentile(relay, 0.50),
            percentile(relay, 0.99),
            relay.len()
        );
        beside(
            "echo bridge",
            "WebSocket → TCP echo → WebSocket",
            relay,
            bridge,
        );
        if let Some(against) = &self.against {
            let what = format!("its lab ports {AGAINST_LAB_PORTS}");
            beside("--against", &what, relay, against);
        }
    }
}

/// A round trip timed beside the relay's, and the relay's over it.
fn beside(name: &str, what: &str, relay: &[f64], other: &[f64]) {
    let short = name.trim_start_matches('-').replace("echo ", "");
    println!(
        "  {:<19} p50 {:>7.1} µs   p99 {:>7.1} µs   ({what}); relay/{short} p50 {:.2}×, p99 {:.2}×",
        format!("{name} beside:"),
        percentile(other, 0.50),
        percentile(other, 0.99),
        percentile(relay, 0.50) / percentile(other, 0.50),
        percentile(relay, 0.99) / percentile(other, 0.99),
    );
}

/// The relay's CPU time (user + system) in seconds, from /proc/PID/stat.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
        + fields.get(12).context("stime")?.parse::<f64>()?;
    // USER_HZ, which Linux fixes at 100 for /proc.
    const TICKS_PER_SECOND: f64 = 100.0;
    Ok(ticks / TICKS_PER_SECOND)
}

/// The share of one core the relay used over `span`.
async fn cpu_over(pid: u32, span: Duration) -> anyhow::Result<f64> {
    let before = cpu_seconds(pid)?;
    tokio::time::sleep(span).await;
    Ok((cpu_seconds(pid)? - before) / span.as_secs_f64())
}

/// The same, while a loopback pair unrelated to any lab exchanges 1,000
/// one-byte writes a second. Returns the share and the segments per second
/// actually sent (each write is a data segment; the kernel adds ACKs).
async fn cpu_over_traffic(pid: u32, span: Duration) -> anyhow::Result<(f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut sender = TcpStream::connect(listener.local_addr()?).await?;
    sender.set_nodelay(true)?;
    let (mut receiver, _) = listener.accept().await?;
    let drain = tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        while let Ok(count) = receiver.read(&mut buffer).await {
            if count == 0 {
                break;
            }
        }
    });
    let before = cpu_seconds(pid)?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut writes = 0u32;
    while started.elapsed() < span {
        ticker.tick().await;
        sender.write_all(b"x").await?;
        writes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let used = (cpu_seconds(pid)? - before) / elapsed;
    drop(sender);
    let _ = drain.await;
    Ok((used, writes as f64 / elapsed))
}

/// From a send's done event to its data segment's event, as the client sees
/// it, and as the relay stamped it (t_us).
async fn segment_delay(session: &mut Session, sends: u32) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (_, client, conn) = session.connected_pair().await?;
    let mut at_client = Vec::new();
    let mut in_t_us = Vec::new();
    for _ in 0..sends {
        let sent = Instant::now();
        let id = session
            .send(Op::Send {
                sock: client,
                data: Some("x".into()),
                hex: None,
            })
            .await?;
        let mut done: Option<(Instant, u64)> = None;
        let mut segment: Option<(Instant, u64)> = None;
        while done.is_none() || segment.is_none() {
            let event = session.next().await?;
            match &event.body {
                EventBody::Call(call) if call.id == Some(id) && call.phase == Some(Phase::Done) => {
                    done = Some((Instant::now(), event.t_us));
                }
                EventBody::Segment(wire) if wire.id == Some(id) && wire.len > 0 => {
                    segment = Some((Instant::now(), event.t_us));
                }
                _ => {}
            }
        }
        // The segment goes out inside send(), so it comes first: the page
        // waits for the command's answer, and the segment is in kernel time
        // this long before send() returned.
        if let (Some((_, done_t)), Some((segment_at, segment_t))) = (done, segment) {
            at_client.push(segment_at.saturating_duration_since(sent).as_secs_f64() * 1e6);
            in_t_us.push(done_t.saturating_sub(segment_t) as f64);
        }
        session
            .call(Op::Read {
                sock: conn,
                max: None,
            })
            .await?;
    }
    at_client.sort_by(f64::total_cmp);
    in_t_us.sort_by(f64::total_cmp);
    Ok((at_client, in_t_us))
}

pub(crate) fn percentile(sorted_us: &[f64], fraction: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted_us.len() - 1) as f64 * fraction).round() as usize;
    sorted_us[index]
}

/// A minimal protocol client for the benchmark.
/// A benchmark's WebSocket client.
pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The WebSocket settings of every client the bench opens, and of the echo
/// bridge: the relay's own read buffer (tungstenite's default of 128 KiB is
/// zeroed on every read, which was a seventh of the load client's CPU).
pub(crate) fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// Opens a WebSocket with [`client_config`], and without Nagle, as a page's
/// frames leave at once too.
pub(crate) async fn connect(url: &str) -> anyhow::Result<Client> {
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true).await?;
    Ok(socket)
}

/// How long the bench waits for an event before it gives up on the relay.
const EVENT_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Session {
    socket: Client,
    next_id: u64,
    /// Whether this relay captures segments (from hello).
    pub capture: bool,
    /// The lab's code (from hello): followers join with it.
    pub code: Option<String>,
    /// Every frame received, exactly as the relay sent it, when kept.
    pub kept: Option<Vec<String>>,
}

impl Session {
    pub async fn open(ws_url: &str) -> anyhow::Result<Session> {
        Session::open_keeping(ws_url, false).await
    }

    /// Opens a session that keeps every frame it receives, hello included,
    /// in [`Session::kept`].
    pub async fn open_keeping(ws_url: &str, keep: bool) -> anyhow::Result<Session> {
        let mut session = Session {
            socket: connect(ws_url).await?,
            next_id: 1,
            capture: false,
            code: None,
            kept: keep.then(Vec::new),
        };
        match session.next().await?.body {
            EventBody::Hello(hello) => {
                session.capture = hello.capture;
                session.code = hello.code;
                Ok(session)
            }
            other => bail!("expected hello, got {other:?}"),
        }
    }

    pub async fn next(&mut self) -> anyhow::Result<Event> {
        tokio::time::timeout(EVENT_WAIT, self.event())
            .await
            .context("no event within 10 s")?
    }

    /// The next event, however long it takes: for a caller that bounds a
    /// whole exchange with one timer. A timer started per event wakes this
    /// process's timer thread, which then competes with the relay for the
    /// CPU inside the very round trip being timed.
    async fn event(&mut self) -> anyhow::Result<Event> {
        let text = self.text().await?;
        protocol::decode_event(&text).map_err(anyhow::Error::msg)
    }

    /// The next text frame, as the relay sent it.
    async fn text(&mut self) -> anyhow::Result<Utf8Bytes> {
        loop {
            let frame = self
                .socket
                .next()
                .await
                .context("the relay closed the session")??;
            if let Message::Text(text) = frame {
                if let Some(kept) = &mut self.kept {
                    kept.push(text.to_string());
                }
                return Ok(text);
            }
        }
    }

    pub async fn send(&mut self, op: Op) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let text = protocol::encode_command(&Command { id, op });
        self.socket.send(Message::Text(text.into())).await?;
        Ok(id)
    }

    /// Waits for the final call event of `id` (not the bind the relay
    /// makes first for an unbound socket's listen or connect).
    pub async fn outcome(&mut self, id: u64) -> anyhow::Result<protocol::Call> {
        loop {
            if let EventBody::Call(call) = self.next().await?.body {
                let bound_first = matches!(
                    call.note,
                    Some(protocol::Note::BoundBeforeListen | protocol::Note::BoundBeforeConnect)
                );
                if call.id == Some(id) && !bound_first {
                    match call.phase {
                        Some(Phase::Done) => return Ok(call),
                        Some(Phase::Failed) => bail!("call {id} failed: {}", call.c),
                        _ => {}
                    }
                }
            }
        }
    }

    pub async fn call(&mut self, op: Op) -> anyhow::Result<protocol::Call> {
        let id = self.send(op).await?;
        self.outcome(id).await
    }

    /// socket, bind, listen, socket, connect, accept: returns (client, conn).
    pub(crate) async fn connected_pair(&mut self) -> anyhow::Result<(u32, u32, u32)> {
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

/// How many round trips of each kind are made before timing starts.
const WARM_UP: u32 = 100;

/// The send→read round trip and the echo bridge's (and the `--against`
/// relay's), one of each in turn, so that all meet the same machine at the
/// same moments.
async fn send_to_read_against_bridge(
    relay: &BenchRelay,
    against: Option<&BenchRelay>,
    round_trips: u32,
) -> anyhow::Result<RoundTrips> {
    let mut pair = ReadingPair::open(&relay.ws_url).await?;
    let mut other = match against {
        Some(other) => Some(ReadingPair::open(&other.ws_url).await?),
        None => None,
    };
    let mut bridge = crate::bridge::Bridge::start().await?;
    let mut times = RoundTrips {
        relay: Vec::with_capacity(round_trips as usize),
        against: other
            .as_ref()
            .map(|_| Vec::with_capacity(round_trips as usize)),
        bridge: Vec::with_capacity(round_trips as usize),
    };
    for turn in 0..WARM_UP + round_trips {
        // Each goes first every other turn: the one after the bridge meets
        // a machine woken differently from the one after a relay.
        let one_turn = async {
            let (relay, against) = match &mut other {
                Some(other) if turn % 2 == 1 => {
                    let against = other.round_trip().await?;
                    (pair.round_trip().await?, Some(against))
                }
                Some(other) => (pair.round_trip().await?, Some(other.round_trip().await?)),
                None => (pair.round_trip().await?, None),
            };
            anyhow::Ok((relay, against, bridge.round_trip().await?))
        };
        // The turn's timer, like the relay's, starts while a relay's read
        // waits, before any clock: the bridge's echo is timed with no timer
        // set inside it, as the relay's send is.
        let (relay, against, echo) = tokio::time::timeout(EVENT_WAIT * 3, one_turn)
            .await
            .context("a round trip took over 30 s")??;
        if turn >= WARM_UP {
            times.relay.push(relay);
            times.bridge.push(echo);
            if let (Some(times), Some(against)) = (&mut times.against, against) {
                times.push(against);
            }
        }
    }
    times.relay.sort_by(f64::total_cmp);
    times.bridge.sort_by(f64::total_cmp);
    if let Some(against) = &mut times.against {
        against.sort_by(f64::total_cmp);
    }
    Ok(times)
}

/// A lab with a connected pair, whose server end reads what the client end
/// sends.
pub(crate) struct ReadingPair {
    session: Session,
    client: u32,
    conn: u32,
}

impl ReadingPair {
    pub(crate) async fn open(ws_url: &str) -> anyhow::Result<ReadingPair> {
        let mut session = Session::open(ws_url).await?;
        let (_, client, conn) = session.connected_pair().await?;
        Ok(ReadingPair {
            session,
            client,
            conn,
        })
    }

    /// The lab's code, for followers.
    pub(crate) fn code(&self) -> Option<&str> {
        self.session.code.as_deref()
    }

    /// From the send command to the peer's read done event, in µs.
    ///
    /// One timer bounds the whole exchange; it starts while the read waits,
    /// before the clock does, so no timer is set inside the timed part (the
    /// echo bridge's round trip sets none either).
    pub(crate) async fn round_trip(&mut self) -> anyhow::Result<f64> {
        tokio::time::timeout(EVENT_WAIT, self.untimed_round_trip())
            .await
            .context("no read done event within 10 s")?
    }

    async fn untimed_round_trip(&mut self) -> anyhow::Result<f64> {
        let session = &mut self.session;
        // The read waits first, as a server's would: the clock starts once
        // the relay has said it is waiting, so the figure is the send's
        // round trip alone.
        session
            .send(Op::Read {
                sock: self.conn,
                max: None,
            })
            .await?;
        loop {
            if let EventBody::Call(call) = session.event().await?.body {
                if call.op == Some(protocol::OpName::Read) && call.phase == Some(Phase::Blocked) {
                    break;
                }
            }
        }
        let started = Instant::now();
        session
            .send(Op::Send {
                sock: self.client,
                data: Some("ping".into()),
                hex: None,
            })
            .await?;
        loop {
            // The clock stops when the frame arrives, and the frame is read
            // only as far as telling which event it is: the bridge's client
            // reads nothing of its echo either, so neither figure carries
            // the measuring client's own decoding.
            let text = session.text().await?;
            let arrived = started.elapsed();
            let peek: CallPeek = serde_json::from_str(&text)?;
            if peek.kind == "call"
                && peek.op == Some(protocol::OpName::Read)
                && peek.phase == Some(Phase::Done)
            {
                return Ok(arrived.as_secs_f64() * 1e6);
            }
        }
    }
}

/// Of an event, what tells a read's done event from the others.
#[derive(serde::Deserialize)]
struct CallPeek {
    kind: String,
    op: Option<protocol::OpName>,
    phase: Option<Phase>,
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

pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<f64> {
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
