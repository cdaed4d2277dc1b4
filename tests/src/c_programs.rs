//! The course's C programs in `examples/c`, compiled as the issue asks, and
//! `strace -f` as the independent witness of the calls they make.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::relay_process::relay_binary;

/// The names of the calls the lesson shows, as strace writes them.
const LESSON_CALLS: [&str; 10] = [
    "socket", "bind", "listen", "accept", "accept4", "connect", "read", "sendto", "close", "write",
];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/c")
}

/// A fresh folder for one test's binaries and traces.
pub fn build_folder(test: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("socket-flow-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("a build folder");
    out
}

/// Compiles one example with the warnings the issue names, as errors.
pub fn compile(name: &str, out: &Path) -> PathBuf {
    build(&examples().join(format!("{name}.c")), &out.join(name), &[])
}

/// Compiles a test's own program, `source`, as `out/name`, the same way.
pub fn compile_source(name: &str, source: &str, out: &Path, flags: &[&str]) -> PathBuf {
    let path = out.join(format!("{name}.c"));
    std::fs::write(&path, source).expect("the source");
    build(&path, &out.join(name), flags)
}

fn build(source: &Path, binary: &Path, flags: &[&str]) -> PathBuf {
    let status = std::process::Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-O2"])
        .args(flags)
        .arg("-o")
        .arg(binary)
        .arg(source)
        .status()
        .expect("cc runs (Debian's gcc)");
    assert!(
        status.success(),
        "{} compiles without a warning",
        source.display()
    );
    binary.to_path_buf()
}

/// The strace arguments that write the lesson's calls of a program (and its
/// children) to `trace`.
pub fn strace_args(trace: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["-f", "-qq", "-e", "trace=network,read,write,close", "-o"]
            .into_iter()
            .map(Into::into)
            .collect();
    args.push(trace.into());
    args
}

/// The calls strace saw, by name, with their return values, in order.
pub fn strace_calls(trace: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(trace).expect("the trace");
    text.lines()
        .filter_map(|line| {
            let (call, rest) = line.split_once('(')?;
            let result = rest.rsplit_once(" = ")?.1.split_whitespace().next()?;
            // `strace -f` starts each line with the pid.
            let call = call.split_whitespace().last()?;
            LESSON_CALLS
                .contains(&call)
                .then(|| (call.to_string(), result.to_string()))
        })
        .collect()
}

/// A free port in the relay's default lab range, which the capture reads;
/// tests that run at once in one process each get another.
pub fn free_lab_port() -> u16 {
    static ASKED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let asked = ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = 7001 + ((std::process::id() + asked * 97) % 999) as u16;
    (start..=7999)
        .chain(7001..start)
        .find(|port| bindable_as_the_course_server_binds(*port))
        .expect("a free lab port")
}

/// Whether 127.0.0.1:`port` can be bound as the course's C servers bind it:
/// without SO_REUSEADDR, which std's `TcpListener::bind` sets. A connection
/// of an earlier test still in TIME_WAIT on the port fails their bind() with
/// EADDRINUSE, and so it fails this one.
fn bindable_as_the_course_server_binds(port: u16) -> bool {
    let Ok(socket) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
    else {
        return false;
    };
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    socket.bind(&address.into()).is_ok()
}

/// What strace saw the server and client make, talking to each other once
/// on `port`, and what each printed.
pub struct Witnessed {
    pub server: Vec<(String, String)>,
    pub client: Vec<(String, String)>,
    pub server_printed: String,
    pub client_printed: String,
}

/// Runs the server, then the client, each under `strace -f`.
pub async fn under_strace(server: &Path, client: &Path, port: &str, out: &Path) -> Witnessed {
    let (server_trace, client_trace) = (out.join("server.trace"), out.join("client.trace"));
    let mut serving = Command::new("strace")
        .args(strace_args(&server_trace))
        .arg(server)
        .arg(port)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("strace runs (Debian's strace)");
    let mut lines = BufReader::new(serving.stdout.take().expect("stdout")).lines();
    let listening = lines.next_line().await.expect("readable").expect("a line");
    assert!(listening.starts_with("listening on"), "{listening}");
    let answered = Command::new("strace")
        .args(strace_args(&client_trace))
        .arg(client)
        .arg(port)
        .output()
        .await
        .expect("the client runs under strace");
    assert!(answered.status.success());
    let heard = lines
        .next_line()
        .await
        .expect("readable")
        .unwrap_or_default();
    assert!(serving.wait().await.expect("the server exits").success());
    Witnessed {
        server: strace_calls(&server_trace),
        client: strace_calls(&client_trace),
        server_printed: heard,
        client_printed: String::from_utf8_lossy(&answered.stdout).trim().to_string(),
    }
}

/// `relay trace` of `program` against the relay on `relay_port`, joining
/// the lab `join` when given; its stdout is piped.
pub fn relay_trace(relay_port: u16, join: Option<&str>, program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(relay_binary());
    command.args(["trace", "--port", &relay_port.to_string()]);
    if let Some(code) = join {
        command.args(["--join", code]);
    }
    command
        .arg("--")
        .arg(program)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A `relay trace` that opened a lab: the process, and the follow URL and
/// code it printed first.
pub struct Tracing {
    pub child: Child,
    pub url: String,
    pub code: String,
}

impl Tracing {
    pub async fn open(relay_port: u16, program: &Path, args: &[&str]) -> Tracing {
        let mut child = relay_trace(relay_port, None, program, args)
            .spawn()
            .expect("relay trace starts");
        let mut printed = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = printed
            .next_line()
            .await
            .expect("readable")
            .expect("the URL line");
        // Keep reading, so that relay trace never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = printed.next_line().await {} });
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first}"))
            .to_string();
        let code = url.split("?follow=").nth(1).expect("a code").to_string();
        Tracing { child, url, code }
    }
}
