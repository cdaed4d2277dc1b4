//! The fan-out section of `cargo xtask bench`: one lab and hundreds of
//! screens following it (`/ws?follow=CODE`), as a classroom has.
//!
//! It reports the time from the lab's command to its `call` event at every
//! follower (p50, p99), the relay's memory per follower, and the lab's own
//! send→read round trip with and without a follower that reads nothing.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use protocol::{EventBody, Op, OpName, Phase};
use socket_flow_tests::follower::small_buffer_websocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::bench::{ReadingPair, Session, connect, percentile, rss_bytes, start_relay};

/// How many screens follow the lab.
pub const FOLLOWERS: u32 = 500;
/// How many commands are timed at every follower.
const ROUNDS: u32 = 200;
/// How many round trips the lab makes with and without a stuck follower.
const ROUND_TRIPS: u32 = 1_000;

pub async fn measure(followers: u32) -> anyhow::Result<()> {
    let relay = start_relay(&["--no-capture", "--labs-per-ip", "8"]).await?;
    let mut lab = Session::open(&relay.ws_url).await?;
    let code = lab.code.clone().context("hello names no code")?;
    let (_, client, _) = lab.connected_pair().await?;
    let before = rss_bytes(relay.pid)?;

    // Each follower reports when it saw each of the lab's send calls.
    let (seen_tx, mut seen) = mpsc::channel::<(u64, Instant)>(followers as usize * 4);
    let url = format!("{}?follow={code}", relay.ws_url);
    let mut tasks = Vec::new();
    for _ in 0..followers {
        let mut socket = connect(&url).await?;
        let seen_tx = seen_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(event) = protocol::decode_event(&text) else {
                    continue;
                };
                if let EventBody::Call(call) = event.body {
                    if call.op == Some(OpName::Send) && call.phase == Some(Phase::Done) {
                        let id = call.id.unwrap_or_default();
                        if seen_tx.send((id, Instant::now())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    drop(seen_tx);
    // Every follower has caught up once the lab counts them all.
    loop {
        if let EventBody::Viewers(viewers) = lab.next().await?.body {
            if viewers.count == followers {
                break;
            }
        }
    }
    let after = rss_bytes(relay.pid)?;

    let mut latencies = Vec::with_capacity((ROUNDS * followers) as usize);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let send = Op::Send {
            sock: client,
            data: Some("ping".into()),
            hex: None,
        };
        let id = lab.call(send).await?.id.context("no id")?;
        let mut arrived = 0;
        while arrived < followers {
            let (seen_id, at) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
                .await
                .context("a follower never saw the send")?
                .context("the followers ended")?;
            if seen_id == id {
                arrived += 1;
                latencies.push(at.duration_since(started).as_secs_f64() * 1e6);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    for task in tasks {
        task.abort();
    }
    drop(lab);
    println!(
        "fan-out: command → event at every follower  p50 {:>7.0} µs   p99 {:>7.0} µs   ({followers} followers, {ROUNDS} commands, capture off)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
    println!(
        "fan-out: relay memory per follower  {:>6.1} KiB   ({followers} followers, caught up)",
        (after - before) / f64::from(followers) / 1024.0
    );

    // The lab's own round trip, alone and beside a follower that reads
    // nothing (a 4 KiB receive buffer that the kernel will not grow).
    let mut pair = ReadingPair::open(&relay.ws_url).await?;
    let alone = round_trips(&mut pair).await?;
    let code = pair.code().context("no code")?.to_string();
    let stuck = small_buffer_websocket(&format!("{}?follow={code}", relay.ws_url)).await;
    let beside = round_trips(&mut pair).await?;
    drop(stuck);
    let (alone_p50, beside_p50) = (percentile(&alone, 0.5), percentile(&beside, 0.5));
    println!(
        "fan-out: lab's send→read  p50 {alone_p50:>6.1} µs alone, {beside_p50:>6.1} µs beside a follower that reads nothing ({:+.1} %)",
        (beside_p50 / alone_p50 - 1.0) * 100.0
    );
    Ok(())
}

async fn round_trips(pair: &mut ReadingPair) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(ROUND_TRIPS as usize);
    for _ in 0..ROUND_TRIPS {
        times.push(pair.round_trip().await?);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}
