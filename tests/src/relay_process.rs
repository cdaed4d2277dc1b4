//! Starts the real `relay` binary on a free port and stops it when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running relay binary.
pub struct RelayProcess {
    child: Child,
    /// `http://127.0.0.1:PORT/`, as the relay printed it.
    pub url: String,
}

/// The relay binary that `cargo build -p relay` made beside these tests.
pub fn relay_binary() -> PathBuf {
    // The test executable is target/<profile>/deps/<name>; the relay is
    // target/<profile>/relay.
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let relay = profile_dir.join("relay");
    assert!(
        relay.exists(),
        "{} does not exist: build it first with `cargo build -p relay` (cargo xtask ci does)",
        relay.display()
    );
    relay
}

impl RelayProcess {
    /// Starts the relay on 127.0.0.1, port 0, with these extra flags, and
    /// waits for the URL line it prints once listening.
    pub async fn start(extra_args: &[&str]) -> RelayProcess {
        RelayProcess::spawn(Command::new(relay_binary()), extra_args).await
    }

    /// Starts the relay as the unprivileged user nobody, through setpriv,
    /// so that it has no CAP_NET_RAW even when the tests run as root.
    pub async fn start_unprivileged(extra_args: &[&str]) -> RelayProcess {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(relay_binary());
        RelayProcess::spawn(command, extra_args).await
    }

    /// Starts the relay like `start`, and also returns the lines it printed
    /// up to and including the first that contains `last`.
    pub async fn start_printing(extra_args: &[&str], last: &str) -> (RelayProcess, Vec<String>) {
        let (relay, mut lines) =
            RelayProcess::launch(Command::new(relay_binary()), extra_args).await;
        let mut printed = Vec::new();
        while !printed.iter().any(|line: &String| line.contains(last)) {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("the relay prints within 20 s")
                .expect("stdout is readable")
                .unwrap_or_else(|| panic!("the relay never printed {last}: {printed:#?}"));
            printed.push(line);
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (relay, printed)
    }

    async fn spawn(command: Command, extra_args: &[&str]) -> RelayProcess {
        let (relay, mut lines) = RelayProcess::launch(command, extra_args).await;
        // Keep draining stdout so the relay never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        relay
    }

    /// Starts the relay and reads its first line, the URL; the rest of its
    /// output is the caller's to drain.
    async fn launch(
        mut command: Command,
        extra_args: &[&str],
    ) -> (
        RelayProcess,
        tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    ) {
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("RUST_LOG", "relay=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the relay binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the relay prints its URL within 20 s")
            .expect("stdout is readable")
            .expect("the relay printed a line");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in the relay's first line: {line}"))
            .to_string();
        (RelayProcess { child, url }, lines)
    }

    /// Sends the relay a signal (SIGTERM, say).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Waits for the relay to exit, for at most `within`, and returns its code.
    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()?
            .ok()?
            .code()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the relay is running")
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("{}ws", self.url.replacen("http://", "ws://", 1))
    }

    pub fn port(&self) -> u16 {
        self.url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("the URL ends with a port")
    }
}
