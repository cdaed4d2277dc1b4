//! The socket-flow relay: it serves the page, and for each browser that opens
//! `/ws` it runs a lab of real sockets, making the system calls the page asks
//! for and streaming what the kernel answered.
//!
//! # Layout
//! - `server`: HTTP, the embedded page, the WebSocket upgrade.
//! - `access`: who may reach the relay: the Host allow-list and the Origin check.
//! - `assets`: the page's files, embedded at compile time or read from `--www`.
//! - `session`: one per browser; forwards commands to its lab and events back.
//! - `labs`: the relay's lab slots, its shared lab ports and capture, and
//!   opening a lab for a session.
//! - `engine`: the labs; performs the real socket calls and emits protocol
//!   events into a channel. It knows nothing of WebSocket or JSON.
//! - `capture`: the wire view; one packet socket that hands each lab the
//!   TCP segments of its own connections.
//! - `bpf`: the filter that lets only lab-port TCP frames reach it.
//! - `transitions`: the kernel's trace of TCP state changes, which the
//!   capture hands to the labs beside their segments.
//! - `config`: the relay's settings and limits, checked at start.
//! - `host`: this host's addresses, from its interfaces.
//! - `trace`: `relay trace`, a program of the student's own under ptrace,
//!   its socket calls shown as a lab's events.

mod access;
mod assets;
mod audience;
mod bpf;
pub mod capture;
pub mod classroom;
pub mod config;
pub mod engine;
mod follow;
mod host;
mod labs;
mod pcapng;
mod server;
mod session;
mod together;

pub use session::read_command;
pub mod trace;
pub mod transitions;

pub use config::Config;
pub use server::{Relay, serve};

/// SIGINT (Ctrl-C) or SIGTERM (systemd, kill).
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Opens `url` in the default browser, or says how to.
pub fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(error) = std::process::Command::new(opener).arg(url).spawn() {
        tracing::warn!(%error, "could not open a browser; open {url} by hand");
    }
}
