//! `cargo xtask`: the project's build and CI tasks, in Rust rather than shell.
//!
//! Each task has a module of its own:
//! - `web`: builds the wasm page into `www/pkg/`, or checks the committed one.
//! - `ci`: everything CI runs, in order.
//! - `bench`: the relay's latency, throughput and memory figures; `load`, its
//!   many-labs section and the echo bridge it is measured against;
//!   `browser_bench`, the page's own cost in Chromium; `fanout`, one lab and
//!   the screens that follow it.
//! - `fuzz`: generated and mutated frames through the relay's frame handling.
//! - `tidy`: checks of the sources that run as tests.

mod bench;
mod bridge;
mod browser_bench;
mod ci;
mod demo;
mod fanout;
mod fuzz;
mod load;
mod tidy;
mod web;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "socket-flow's build and CI tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the wasm page into www/pkg/ (release, size-optimised, reproducible).
    Web {
        /// Rebuild into a temporary folder and fail if the committed bundle differs.
        #[arg(long)]
        check: bool,
    },
    /// Run everything CI runs: fmt, clippy, every test, and `web --check`.
    Ci,
    /// Measure the relay: send-to-read latency, labs per second, memory per lab.
    Bench {
        /// How many send/read round trips to time.
        #[arg(long, default_value_t = 2000)]
        round_trips: u32,
        /// How many idle labs to open for the memory figure.
        #[arg(long, default_value_t = 200)]
        idle_labs: u32,
        /// How many labs loop the whole lifecycle at once in the load section.
        #[arg(long, default_value_t = 200)]
        load_labs: u32,
        /// How long each load run lasts.
        #[arg(long, default_value_t = 30)]
        load_seconds: u64,
        /// Measure this relay binary instead of the release build of this tree,
        /// to compare before and after.
        #[arg(long)]
        relay: Option<PathBuf>,
        /// Also time this relay binary's send→read round trip, in turn with
        /// the measured relay's and the bridge's in the same run: a before
        /// and after that the machine's moods cannot tell apart.
        #[arg(long)]
        against: Option<PathBuf>,
        /// Serve the page from this folder in the browser section (an older
        /// checkout's www/, to compare before and after).
        #[arg(long)]
        www: Option<PathBuf>,
        /// Run only these sections (repeatable); all of them when not given.
        #[arg(long = "section", value_enum)]
        sections: Vec<bench::Section>,
    },
    /// Record the built-in lesson (www/demo/lesson.jsonl) from a real relay
    /// with capture on; run as root.
    RecordDemo,
    /// The bench's baseline, in a process of its own: a WebSocket-to-TCP echo
    /// bridge on a loopback port, printed as a ws:// URL.
    #[command(hide = true)]
    EchoBridge,
    /// Throw generated and mutated frames at the relay's frame handling and
    /// at real labs, checking for panics and gaps in seq.
    Fuzz {
        /// How long to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// The random seed, to repeat a run.
        #[arg(long, default_value_t = 0x5eed)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.task {
        Task::Web { check } => web::run(check),
        Task::Ci => ci::run(),
        Task::Bench {
            round_trips,
            idle_labs,
            load_labs,
            load_seconds,
            relay,
            against,
            www,
            sections,
        } => bench::run(
            round_trips,
            idle_labs,
            bench::LoadPlan {
                labs: load_labs,
                seconds: load_seconds,
            },
            bench::Builds {
                relay,
                against,
                www,
            },
            &sections,
        ),
        Task::Fuzz { seconds, seed } => fuzz::run(seconds, seed),
        Task::RecordDemo => demo::run(),
        Task::EchoBridge => bridge::serve(),
    }
}

/// The workspace root: xtask lives one folder below it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo that runs xtask, as rust-analyzer's xtask does.
fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(project_root());
    command
}

/// Runs a command to completion, failing with the command line if it fails.
fn run_command(mut command: Command) -> anyhow::Result<()> {
    let line = format!("{command:?}");
    eprintln!("$ {line}");
    let status = command
        .status()
        .with_context(|| format!("could not start {line}"))?;
    if !status.success() {
        bail!("{line} failed with {status}");
    }
    Ok(())
}
