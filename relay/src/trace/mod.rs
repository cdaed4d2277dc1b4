//! `relay trace -- PROGRAM ARGS…`: a student's own program on the stage.
//!
//! The program runs as this process's child under ptrace; its socket calls
//! become a lab's events, which the page shows as a follower does. The lab
//! runs in the relay on this machine, reached over its control socket; if
//! none runs, this process starts one.
//!
//! # Layout
//! - `tracer`: the ptrace loop and the timer that sees a thread sleep.
//! - `syscalls`: the calls shown, by number, and each written as C.
//! - `report`: the messages between `relay trace` and the relay.
//! - `link`: the control socket that carries them.
//! - `stage`: the relay's side: a lab per traced program, fed and published.

mod link;
pub mod report;
mod stage;
mod syscalls;
mod tracer;

use std::ffi::OsString;
use std::sync::Arc;

use anyhow::Context;
use protocol::Role;

pub(crate) use link::Listener;
pub(crate) use stage::serve;

use link::Link;
use report::{Message, Reply};

/// What `relay trace` was asked.
#[derive(Debug)]
pub struct TraceRequest {
    /// The port of the relay to use, or to start on 127.0.0.1.
    pub port: u16,
    /// Put the program's lanes into the traced lab with this code.
    pub join: Option<String>,
    /// Open the follow URL in the default browser.
    pub open: bool,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// Runs the program under trace and returns the exit code `relay trace`
/// should end with: the program's own. `start_relay` starts a relay in
/// this process, its control socket open, on a thread of its own that ends
/// when the relay has shut down (SIGINT, SIGTERM), when none answers on
/// the port.
pub fn run(
    request: TraceRequest,
    start_relay: impl FnOnce() -> anyhow::Result<std::thread::JoinHandle<()>>,
) -> anyhow::Result<i32> {
    if !syscalls::KNOWN_ARCHITECTURE {
        anyhow::bail!(
            "relay trace knows the system call numbers of x86_64 and aarch64 only, and this is {}",
            std::env::consts::ARCH
        );
    }
    let (link, own_relay) = match Link::connect(request.port) {
        Ok(link) => (link, None),
        Err(_) => {
            let relay = start_relay()?;
            let link = Link::connect(request.port)
                .context("the relay this process started does not answer")?;
            (link, Some(relay))
        }
    };
    let program = request.program.to_string_lossy().into_owned();
    let (message, role) = match &request.join {
        Some(code) => (
            Message::Join {
                code: code.clone(),
                program: program.clone(),
            },
            Role::Client,
        ),
        None => (
            Message::Open {
                program: program.clone(),
            },
            Role::Server,
        ),
    };
    link.send(&message, None)?;
    let code = match link.reply()? {
        Reply::Opened { code } => code,
        Reply::Refused { reason } => anyhow::bail!("{reason}"),
        Reply::Handled => anyhow::bail!("the relay answered out of turn"),
    };
    let url = format!("http://127.0.0.1:{}/?follow={code}", request.port);
    // The first line of stdout is the URL, as the relay's own is.
    println!("socket-flow trace of {program}: watch it at {url}");
    if request.join.is_none() {
        println!(
            "Trace a second program into the same lab with: relay trace --join {code} -- PROGRAM"
        );
    }
    if request.open {
        crate::open_browser(&url);
    }
    let link = Arc::new(link);
    let ending = tracer::trace(&request.program, &request.args, Arc::clone(&link), role)
        .with_context(|| format!("could not trace {program}"))?;
    let code = match ending {
        tracer::Ending::Exited(status) => {
            println!("{program} exited with status {status}");
            status
        }
        tracer::Ending::Killed(signal) => {
            println!("{program} was killed by {}", signal.as_str());
            128 + signal as i32
        }
    };
    // The lab stays to be watched while its first program's tracer runs: it
    // ends with this connection. A joining program's lanes stay in it.
    if request.join.is_none() {
        println!("The lab stays open at {url}; press Ctrl-C to end it.");
        match own_relay {
            Some(relay) => {
                let _ = relay.join();
            }
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(crate::stop_signal()),
        }
    }
    drop(link);
    Ok(code)
}
