//! `cargo xtask fuzz`: throws generated and mutated frames at the relay's
//! frame handling, for a while, in a plain loop driven by `arbitrary`.
//!
//! - Every frame goes through `relay::read_command`, as the session hands
//!   it what a browser sent: JSON or not, UTF-8 or not, any size.
//! - Every frame that became a command also goes to a real lab (no capture,
//!   loopback only, the relay's own policy), which must answer each in
//!   order: `seq` without gaps, and never a panic.
//!
//! Inputs are built from random bytes: mutations of real commands (bytes
//! flipped, cut, spliced, repeated) and commands whose fields are arbitrary
//! JSON values. A seed makes a run repeatable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arbitrary::{Arbitrary, Unstructured};
use protocol::{Event, EventBody};
use relay::engine::{LabInput, LabSettings, PortPool, spawn_lab};

/// Real commands, the seeds that mutations start from.
const SEEDS: &[&str] = &[
    r#"{"id":1,"op":"socket","role":"server"}"#,
    r#"{"id":2,"op":"bind","sock":1,"addr":"127.0.0.1:7001"}"#,
    r#"{"id":3,"op":"listen","sock":1,"backlog":5}"#,
    r#"{"id":4,"op":"accept","sock":1}"#,
    r#"{"id":5,"op":"connect","sock":2}"#,
    r#"{"id":6,"op":"send","sock":2,"data":"hello"}"#,
    r#"{"id":7,"op":"send","sock":2,"hex":"00ff"}"#,
    r#"{"id":8,"op":"read","sock":3,"max":1024}"#,
    r#"{"id":9,"op":"shutdown","sock":2,"how":"write"}"#,
    r#"{"id":10,"op":"setsockopt","sock":1,"name":"SO_LINGER","value":0}"#,
    r#"{"id":11,"op":"close","sock":2}"#,
    r#"{"id":12,"op":"reset"}"#,
];
const OPS: &[&str] = &[
    "socket",
    "bind",
    "listen",
    "accept",
    "connect",
    "send",
    "read",
    "shutdown",
    "close",
    "setsockopt",
    "reset",
    "martian",
];
const FIELDS: &[&str] = &[
    "sock", "addr", "role", "backlog", "data", "hex", "max", "how", "name", "value", "id",
];
/// Lab commands per lab before it is replaced by a fresh one.
const COMMANDS_PER_LAB: u32 = 400;

pub fn run(seconds: u64, seed: u64) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fuzz(Duration::from_secs(seconds), seed))
}

async fn fuzz(duration: Duration, seed: u64) -> anyhow::Result<()> {
    let config = relay::Config {
        capture: false,
        ..relay::Config::default()
    };
    let frame_bytes = config.frame_bytes;
    let ports = Arc::new(PortPool::new(
        config.lab_ports.clone(),
        config.ports_per_lab as usize,
    ));
    // Each lab runs in a task of its own, so that a panic in it is caught
    // and reported rather than ending the fuzzer.
    let new_lab = || {
        spawn_lab(LabSettings::from_config(
            &config,
            Arc::clone(&ports),
            Err("no capture while fuzzing".into()),
        ))
    };
    let mut random = Random(seed | 1);
    let started = Instant::now();
    let (mut frames, mut commands, mut labs) = (0u64, 0u64, 1u64);
    let (mut lab, mut task) = new_lab();
    let mut expected_seq = 1u64;
    let mut in_lab = 0u32;
    while started.elapsed() < duration {
        let bytes: Vec<u8> = (0..512).map(|_| random.next() as u8).collect();
        let frame = frame(&mut Unstructured::new(&bytes));
        frames += 1;
        // The session's frame handling: any bytes, never a panic.
        let input = std::panic::catch_unwind(|| relay::read_command(&frame, frame_bytes)).map_err(
            |_| {
                anyhow::anyhow!(
                    "read_command panicked on {:?}",
                    String::from_utf8_lossy(&frame)
                )
            },
        )?;
        // Half the commands go to a real lab, which must answer in order.
        if random.next() % 2 == 0 {
            let is_command = matches!(input, LabInput::Command(_));
            lab.inputs.send(input).await.context("the lab ended")?;
            commands += u64::from(is_command);
            in_lab += 1;
            // Take what it said so far; each event must be the next seq.
            while let Ok(event) = lab.events.try_recv() {
                check(&event, &mut expected_seq)?;
            }
            if in_lab >= COMMANDS_PER_LAB {
                drop(lab.inputs);
                while let Some(event) = lab.events.recv().await {
                    check(&event, &mut expected_seq)?;
                }
                task.await.context("the lab panicked")?;
                (lab, task) = new_lab();
                labs += 1;
                expected_seq = 1;
                in_lab = 0;
            }
        }
    }
    drop(lab.inputs);
    while let Some(event) = lab.events.recv().await {
        check(&event, &mut expected_seq)?;
    }
    task.await.context("the lab panicked")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "fuzz: {frames} frames in {seconds:.1} s ({:.0}/s), {commands} commands through {labs} labs, seed {seed}: no panic, no seq gap",
        frames as f64 / seconds
    );
    Ok(())
}

fn check(event: &Event, expected: &mut u64) -> anyhow::Result<()> {
    if event.seq != *expected {
        bail!(
            "seq {} came where {} was due: {event:?}",
            event.seq,
            *expected
        );
    }
    *expected += 1;
    if let EventBody::Hello(hello) = &event.body {
        if hello.capture {
            bail!("the fuzzed lab must not capture");
        }
    }
    Ok(())
}

/// One frame: a mutated seed, or a command of arbitrary fields.
fn frame(input: &mut Unstructured) -> Vec<u8> {
    let mutate = bool::arbitrary(input).unwrap_or(true);
    if mutate {
        let seed = input.choose(SEEDS).copied().unwrap_or(SEEDS[0]);
        let mut bytes = seed.as_bytes().to_vec();
        let rounds = input.int_in_range(1..=4).unwrap_or(1);
        for _ in 0..rounds {
            mutate_once(&mut bytes, input);
        }
        return bytes;
    }
    let mut object = serde_json::Map::new();
    if bool::arbitrary(input).unwrap_or(true) {
        object.insert("id".into(), json_value(input, 1));
    }
    let op = input.choose(OPS).copied().unwrap_or("socket");
    object.insert("op".into(), serde_json::Value::String(op.into()));
    let extra = input.int_in_range(0..=4).unwrap_or(0);
    for _ in 0..extra {
        let field = input.choose(FIELDS).copied().unwrap_or("sock");
        object.insert(field.into(), json_value(input, 2));
    }
    serde_json::Value::Object(object).to_string().into_bytes()
}

fn mutate_once(bytes: &mut Vec<u8>, input: &mut Unstructured) {
    if bytes.is_empty() {
        bytes.push(b'{');
    }
    let at = input.choose_index(bytes.len()).unwrap_or(0);
    match input.int_in_range(0..=5).unwrap_or(0) {
        0 => bytes[at] = u8::arbitrary(input).unwrap_or(0),
        1 => bytes.truncate(at),
        2 => {
            let byte = u8::arbitrary(input).unwrap_or(b'"');
            bytes.insert(at, byte);
        }
        3 => {
            let other = input.choose(SEEDS).copied().unwrap_or(SEEDS[1]);
            let cut = input.choose_index(other.len()).unwrap_or(0);
            bytes.splice(at.., other.as_bytes()[cut..].iter().copied());
        }
        4 => {
            let piece = bytes[at..].to_vec();
            bytes.extend(piece.iter().cycle().take(piece.len() * 8));
        }
        _ => {
            let number = i64::arbitrary(input).unwrap_or(-1).to_string();
            bytes.splice(at..at, number.into_bytes());
        }
    }
}

fn json_value(input: &mut Unstructured, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    match input.int_in_range(0..=6).unwrap_or(0) {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(input).unwrap_or(false)),
        2 => Value::from(i64::arbitrary(input).unwrap_or(0)),
        3 => Value::from(u32::arbitrary(input).unwrap_or(1) % 20),
        4 => Value::from(f64::arbitrary(input).unwrap_or(0.5)),
        5 if depth > 0 => Value::Array(vec![json_value(input, depth - 1)]),
        _ => Value::String(String::arbitrary(input).unwrap_or_default()),
    }
}

/// xorshift64*: repeatable random bytes from a seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
