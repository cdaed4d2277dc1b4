//! The browser section of `cargo xtask bench`: the page in headless
//! Chromium at 1280×720, against the release relay with capture on, while a
//! peer outside the lab streams segments at it.
//!
//! It reports load-to-connected, the main thread's time per event with
//! 5,000 events already shown (Chrome's own `TaskDuration` over the events
//! the page applied), long tasks while about 700 events/s arrive (counted
//! by a second screen that follows the lab, with how many the relay had to
//! coalesce because the page fell behind), how long a click takes to show
//! its card, and how long a 10,000-event recording takes to open. `--www DIR` measures another build
//! of the page (an older checkout's `www/`), to compare before and after.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use socket_flow_tests::browser::{Browser, click, handshake};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::bench::start_relay;

/// How many events the page shows before the steady part is measured.
const SHOWN: u64 = 5_000;
/// How long the steady stream lasts, and how often each streaming peer
/// writes in it: each write is a data segment, and some draw an ACK of
/// their own; the rate reached is printed beside the figures.
const STEADY: Duration = Duration::from_secs(5);
const WRITE_EVERY: Duration = Duration::from_millis(3);
/// How many connections stream at once.
const STREAMS: usize = 2;
/// How many writes fill a page that does not report its events.
const OLD_PAGE_FILL: u32 = 2_600;
/// How many clicks are timed.
const CLICKS: usize = 5;

pub async fn measure(www: Option<&Path>) -> anyhow::Result<()> {
    let www_arg = www.map(|dir| dir.display().to_string());
    let mut args: Vec<&str> = Vec::new();
    if let Some(dir) = &www_arg {
        args.extend(["--www", dir.as_str()]);
    }
    let relay = start_relay(&args).await?;
    let page = relay
        .ws_url
        .replacen("ws://", "http://", 1)
        .trim_end_matches("ws")
        .to_string();
    let browser = Browser::start("en-US").await;
    browser.set_viewport(1280, 720).await;
    browser.open_page(&page).await;
    let connected_ms = number(
        &browser,
        "return performance.getEntriesByName('socket-flow:connected')[0]?.startTime ?? null",
    )
    .await;
    click(&browser, "//input[@id='skip']").await;
    handshake(&browser, "Server", "Client 1", &mut 0).await;
    let port = browser.lab_port().await;
    // A second screen follows the lab with its code (from the drawer's
    // Wireshark link), and counts what the relay sent the page, and how
    // much of it the relay had to coalesce because the page fell behind.
    click(&browser, "//button[@id='drawer-toggle']").await;
    let link = browser.wait_for("#wireshark a").await;
    let href = link.attr("href").await?.unwrap_or_default();
    click(&browser, "//button[@id='drawer-toggle']").await;
    let code = href
        .strip_prefix("labs/")
        .and_then(|rest| rest.split('/').next())
        .context("no lab code in the Wireshark link")?
        .to_string();
    let counted = count_followed(&format!("{}?follow={code}", relay.ws_url)).await?;

    // A peer outside the lab joins the server's queue and streams at it.
    let mut peer = TcpStream::connect(("127.0.0.1", port)).await?;
    peer.set_nodelay(true)?;
    let filled = Instant::now();
    let mut applied = browser.applied_seq().await;
    if applied.is_none() {
        // An older page that does not say how far it got: stream as many
        // writes as this page needs for 5,000 events (about 1.9 events each).
        println!(
            "browser: this page does not say how many events it applied; it gets {OLD_PAGE_FILL} writes, and per-event figures are not measured"
        );
        for _ in 0..OLD_PAGE_FILL {
            peer.write_all(b"x").await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    while applied.is_some_and(|seq| seq < SHOWN) {
        for _ in 0..50 {
            peer.write_all(b"x").await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        applied = browser.applied_seq().await;
        if filled.elapsed() > Duration::from_secs(120) {
            bail!("the page never showed {SHOWN} events (it is at {applied:?})");
        }
    }

    browser
        .client
        .execute(
            "window.__longTasks = []; \
             new PerformanceObserver((list) => { \
               for (const entry of list.getEntries()) { window.__longTasks.push(entry.duration); } \
             }).observe({ type: 'longtask' });",
            vec![],
        )
        .await?;
    browser
        .cdp("Performance.enable", serde_json::json!({}))
        .await;
    let before = MainThread::read(&browser).await?;
    let seq_before = browser.applied_seq().await;
    // The steady stream comes on connections of their own, which the
    // server accepts and reads every 100 ms, as a lesson would: a peer
    // nobody reads fills the kernel's receive buffer, and the kernel then
    // sends ever fewer, larger segments, whatever the writer does. Two of
    // them, because one writer's 1 ms ticks on this busy machine bunch up,
    // and a bunch of writes leaves as one segment.
    const SERVER_READS: &str = "[data-lane='0'] [data-action='read-on']";
    let count_reads = format!("return document.querySelectorAll(\"{SERVER_READS}\").length");
    let mut streamers = Vec::new();
    for _ in 0..STREAMS {
        let streamer = TcpStream::connect(("127.0.0.1", port)).await?;
        streamer.set_nodelay(true)?;
        streamers.push(streamer);
        let conns_before: u64 = browser.script(&count_reads, vec![]).await;
        click(
            &browser,
            "//section[@aria-label='Server']//button[@data-action='step' and contains(., 'accept()')]",
        )
        .await;
        let accepted = Instant::now();
        while browser.script::<u64>(&count_reads, vec![]).await <= conns_before {
            if accepted.elapsed() > Duration::from_secs(10) {
                bail!("the server never accepted a streaming peer");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let read_streams = format!(
        "const reads = [...document.querySelectorAll(\"{SERVER_READS}\")]; \
         reads.slice(-{STREAMS}).forEach((read) => read.click());"
    );
    let started = Instant::now();
    // An interval, not a sleep after each write: a sleep of 1 ms on a busy
    // machine is often 2–3 ms, and the stream came to a third of its rate.
    let mut pace = tokio::time::interval(WRITE_EVERY);
    let mut ticks = 0u64;
    while started.elapsed() < STEADY {
        pace.tick().await;
        for streamer in &mut streamers {
            streamer.write_all(b"y").await?;
        }
        ticks += 1;
        if ticks % 100 == 0 {
            browser.client.execute(&read_streams, vec![]).await?;
        }
    }
    let streamed = (started, Instant::now());
    // Let the page apply what is in flight before the second reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spent = MainThread::read(&browser).await?.since(&before);
    let busy = spent.task;
    let span = started.elapsed().as_secs_f64();
    let seq_after = browser.applied_seq().await;
    let long_tasks: Vec<f64> = serde_json::from_value(
        browser
            .client
            .execute("return window.__longTasks", vec![])
            .await?,
    )
    .unwrap_or_default();

    let mut click_ms = Vec::new();
    for round in 0..CLICKS {
        let value = browser
            .client
            .execute_async(
                CLICK_TO_CARD,
                vec![serde_json::json!(format!("click {round}"))],
            )
            .await?;
        if let Some(ms) = value.as_f64() {
            click_ms.push(ms);
        }
    }
    click_ms.sort_by(f64::total_cmp);
    drop(peer);
    let open_ms = open_recording(&browser, RECORDING_EVENTS).await;

    println!(
        "browser load→connected: {}",
        connected_ms.map_or("not measured (this page sets no mark)".to_string(), |ms| {
            format!("{ms:.0} ms (headless Chromium, loopback)")
        })
    );
    match (seq_before, seq_after) {
        (Some(before), Some(after)) if after > before => {
            let events = (after - before) as f64;
            println!(
                "browser per event:      {:>6.2} ms main thread   ({events:.0} events in {span:.1} s, {:.0}/s, {}+ shown)",
                busy * 1000.0 / events,
                events / span,
                before
            );
        }
        _ => println!("browser per event:      not measured"),
    }
    println!(
        "browser main thread:    busy {:.0} ms per second of streaming: script {:.0}, style {:.0}, layout {:.0}, the rest (paint, parsing, GC) {:.0}",
        busy * 1000.0 / span,
        spent.script * 1000.0 / span,
        spent.style * 1000.0 / span,
        spent.layout * 1000.0 / span,
        (busy - spent.script - spent.style - spent.layout) * 1000.0 / span,
    );
    let arrived = counted.between(streamed.0, streamed.1);
    println!(
        "browser stream:         {:.0} events/s sent to the page; {} of them coalesced segments standing for {} (the page fell behind)",
        arrived.events as f64 / (streamed.1 - streamed.0).as_secs_f64(),
        arrived.coalesced,
        arrived.stood_for,
    );
    println!(
        "browser long tasks:     {} over 50 ms, longest {:.0} ms   (while streaming)",
        long_tasks.len(),
        long_tasks.iter().copied().fold(0.0, f64::max)
    );
    if click_ms.is_empty() {
        println!("browser click→card:     not measured");
    } else {
        println!(
            "browser click→card:     median {:.0} ms, worst {:.0} ms   ({} sends, {}+ events shown)",
            click_ms[click_ms.len() / 2],
            click_ms[click_ms.len() - 1],
            click_ms.len(),
            seq_after.unwrap_or(0)
        );
    }
    match open_ms {
        Ok(ms) => println!(
            "browser open recording: {ms:>6.0} ms   ({RECORDING_EVENTS} events, from choosing the file to the stage drawn)"
        ),
        Err(error) => println!("browser open recording: not measured: {error:#}"),
    }
    Ok(())
}

/// When each event reached a follower of the page's lab, and how many
/// segments it stood for when the relay coalesced it.
type Arrivals = Vec<(Instant, Option<u32>)>;

/// What a follower of the page's lab saw, filled by a task of its own.
struct Followed(std::sync::Arc<std::sync::Mutex<Arrivals>>);

/// What arrived in a span.
struct Arrived {
    events: u64,
    coalesced: u64,
    stood_for: u64,
}

impl Followed {
    fn between(&self, from: Instant, to: Instant) -> Arrived {
        let seen = self.0.lock().map(|seen| seen.clone()).unwrap_or_default();
        let mut arrived = Arrived {
            events: 0,
            coalesced: 0,
            stood_for: 0,
        };
        for (at, coalesced) in seen {
            if at >= from && at <= to {
                arrived.events += 1;
                if let Some(count) = coalesced {
                    arrived.coalesced += 1;
                    arrived.stood_for += u64::from(count);
                }
            }
        }
        arrived
    }
}

/// Follows a lab and notes when each of its events arrived.
async fn count_followed(url: &str) -> anyhow::Result<Followed> {
    use futures_util::StreamExt;
    let mut socket = crate::bench::connect(url).await?;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let filling = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            let tokio_tungstenite::tungstenite::Message::Text(text) = frame else {
                continue;
            };
            let Ok(event) = protocol::decode_event(&text) else {
                continue;
            };
            if event.seq == 0 {
                continue;
            }
            let coalesced = match event.body {
                protocol::EventBody::Segment(segment) => segment.coalesced,
                _ => None,
            };
            if let Ok(mut seen) = filling.lock() {
                seen.push((Instant::now(), coalesced));
            }
        }
    });
    Ok(Followed(seen))
}

/// How many events the recording the bench opens holds.
const RECORDING_EVENTS: usize = 10_000;

/// Opens a recording of `events` events (the built-in lesson's, repeated
/// with fresh numbers) from the drawer's file picker, and answers how long
/// the page took to show it, in ms.
async fn open_recording(browser: &Browser, events_wanted: usize) -> anyhow::Result<f64> {
    let lesson = std::fs::read_to_string(crate::project_root().join(crate::demo::DEMO))?;
    let recording = protocol::read_recording(&lesson).map_err(anyhow::Error::msg)?;
    let (hello, rest) = recording.events.split_first().context("hello")?;
    // Its hello, then the rest again and again, numbered afresh.
    let mut events = vec![hello.0.clone()];
    for (index, (event, _)) in rest.iter().cycle().take(events_wanted - 1).enumerate() {
        let mut event = event.clone();
        event.seq = index as u64 + 2;
        event.t_us = index as u64 * 100;
        events.push(event);
    }
    let frames: Vec<String> = events.iter().map(protocol::encode_event).collect();
    let text = protocol::write_recording(&recording.header, frames.iter().map(String::as_str));
    let path = std::env::temp_dir().join(format!("socket-flow-bench-{}.jsonl", std::process::id()));
    std::fs::write(&path, text)?;
    if browser
        .client
        .execute(
            "return document.getElementById('drawer').offsetParent === null",
            vec![],
        )
        .await?
        == serde_json::json!(true)
    {
        click(browser, "//button[@id='drawer-toggle']").await;
    }
    let picker = browser
        .wait_for("input[data-action='open-recording']")
        .await;
    let started = Instant::now();
    picker.send_keys(&path.display().to_string()).await?;
    loop {
        let shown = browser
            .client
            .execute(
                "return document.querySelector(\"#status[data-state='recording']\") !== null \
                   && !document.getElementById('recording').hidden",
                vec![],
            )
            .await?;
        if shown == serde_json::json!(true) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the recording did not open within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = std::fs::remove_file(&path);
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Types a message into the client's box and clicks send(), from inside the
/// page, then waits for a new send card; answers the milliseconds between.
const CLICK_TO_CARD: &str = r#"
const done = arguments[arguments.length - 1];
const text = arguments[0];
const cardSelector = "section[aria-label='Client 1'] li[data-step='send'] .card";
const before = document.querySelector(cardSelector)?.dataset.seq;
const box = document.querySelector("section[aria-label='Client 1'] input[data-action='message']");
const button = document.querySelector("section[aria-label='Client 1'] button[data-action='send-message']");
if (!box || !button) { done(null); return; }
box.value = text;
const started = performance.now();
button.click();
const check = () => {
  const card = document.querySelector(cardSelector);
  if (card && card.dataset.seq !== before) { done(performance.now() - started); }
  else if (performance.now() - started > 5000) { done(null); }
  else { requestAnimationFrame(check); }
};
requestAnimationFrame(check);
"#;

async fn number(browser: &Browser, script: &str) -> Option<f64> {
    browser
        .client
        .execute(script, vec![])
        .await
        .ok()
        .and_then(|value| value.as_f64())
}

/// Chrome's own count of the main thread's busy time, in seconds, and
/// what it went to.
struct MainThread {
    task: f64,
    script: f64,
    style: f64,
    layout: f64,
}

impl MainThread {
    async fn read(browser: &Browser) -> anyhow::Result<MainThread> {
        let metrics = browser
            .cdp("Performance.getMetrics", serde_json::json!({}))
            .await;
        let metric = |name: &str| {
            metrics["metrics"]
                .as_array()
                .and_then(|metrics| metrics.iter().find(|metric| metric["name"] == name))
                .and_then(|metric| metric["value"].as_f64())
                .with_context(|| format!("Chrome reported no {name}"))
        };
        Ok(MainThread {
            task: metric("TaskDuration")?,
            script: metric("ScriptDuration")?,
            style: metric("RecalcStyleDuration")?,
            layout: metric("LayoutDuration")?,
        })
    }

    fn since(&self, before: &MainThread) -> MainThread {
        MainThread {
            task: self.task - before.task,
            script: self.script - before.script,
            style: self.style - before.style,
            layout: self.layout - before.layout,
        }
    }
}
