//! The course's C programs in `examples/c`, compiled as the issue asks, and
//! `strace -f` as the independent witness of the calls they make.

use std::path::{Path, PathBuf};

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
    let binary = out.join(name);
    let status = std::process::Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-O2", "-o"])
        .arg(&binary)
        .arg(examples().join(format!("{name}.c")))
        .status()
        .expect("cc runs (Debian's gcc)");
    assert!(status.success(), "{name}.c compiles without a warning");
    binary
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
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free lab port")
}
