//! The kernel's own record of TCP state changes: the `sock:inet_sock_set_state`
//! tracepoint, read through a tracefs instance of the relay's own.
//!
//! Polling TCP_INFO sees a state only if it lasts until the next poll, and on
//! loopback FIN_WAIT1, LAST_ACK and SYN_SENT last microseconds, inside the
//! very system call that caused them. The tracepoint fires at each change,
//! in the context where it happens, so every step's changes are in the trace
//! buffer before the step's call returns. Each line names the socket
//! (`skaddr`), its addresses, the old and the new state, with the kernel's
//! timestamp (CLOCK_MONOTONIC, converted to the session's CLOCK_REALTIME).

use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use protocol::TcpState;

use crate::engine::clock::{self, Stamp};

/// One state change of one TCP socket, as the kernel traced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub at: Stamp,
    /// The kernel's address of the socket: the same socket across its
    /// changes, even before connect() gave it a port.
    pub skaddr: u64,
    pub local: SocketAddrV4,
    pub peer: SocketAddrV4,
    pub old: TcpState,
    pub new: TcpState,
}

/// Where tracefs is mounted, in the order systems mount it.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
const EVENT: &str = "events/sock/inet_sock_set_state";
const INSTANCE_PREFIX: &str = "socket-flow-";

/// The relay's tracefs instance, removed when dropped.
pub struct TransitionTrace {
    instance: PathBuf,
    pipe: fs::File,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    monotonic_to_realtime: i128,
    buffer: Vec<u8>,
    /// The start of a line the last read cut off.
    partial: Vec<u8>,
}

impl TransitionTrace {
    /// Makes the instance and starts tracing, or says why it cannot.
    pub fn open(lab_ports: &std::ops::RangeInclusive<u16>) -> Result<TransitionTrace, String> {
        let root = TRACEFS
            .iter()
            .map(Path::new)
            .find(|root| root.join(EVENT).exists())
            .ok_or_else(|| {
                "tracefs is not mounted, so state changes between polls are not seen \
                 (`sudo mount -t tracefs nodev /sys/kernel/tracing` mounts it)"
                    .to_string()
            })?;
        remove_stale_instances(&root.join("instances"));
        let instance = root
            .join("instances")
            .join(format!("{INSTANCE_PREFIX}{}", std::process::id()));
        fs::create_dir(&instance)
            .map_err(|error| format!("could not make a tracefs instance: {error}"))?;
        let trace = TransitionTrace::configure(instance.clone(), lab_ports);
        if trace.is_err() {
            let _ = fs::remove_dir(&instance);
        }
        trace
    }

    fn configure(
        instance: PathBuf,
        lab_ports: &std::ops::RangeInclusive<u16>,
    ) -> Result<TransitionTrace, String> {
        let write = |file: &str, value: &str| {
            fs::write(instance.join(file), value)
                .map_err(|error| format!("could not set tracefs {file}: {error}"))
        };
        // Named fields carry skaddr, which the default format leaves out.
        write("options/fields", "1")?;
        write("trace_clock", "mono")?;
        // Wake a reader at the first event, not when the buffer is half full.
        write("buffer_percent", "0")?;
        write("buffer_size_kb", "256")?;
        // Only changes of sockets on a lab port reach the relay.
        let (low, high) = (lab_ports.start(), lab_ports.end());
        let filter = format!(
            "family == 2 && protocol == 6 && ((sport >= {low} && sport <= {high}) || \
             (dport >= {low} && dport <= {high}))"
        );
        write(&format!("{EVENT}/filter"), &filter)?;
        write(&format!("{EVENT}/enable"), "1")?;
        let pipe = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(instance.join("trace_pipe"))
            .map_err(|error| format!("could not open trace_pipe: {error}"))?;
        Ok(TransitionTrace {
            instance,
            pipe,
            monotonic_to_realtime: monotonic_to_realtime(),
            buffer: vec![0; 16 * 1024],
            partial: Vec::new(),
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.pipe.as_raw_fd()
    }

    /// Reads every transition traced so far.
    pub fn drain(&mut self, mut each: impl FnMut(Transition)) {
        loop {
            match self.pipe.read(&mut self.buffer) {
                Ok(0) => return,
                Ok(count) => {
                    self.partial.extend_from_slice(&self.buffer[..count]);
                    let complete = match self.partial.iter().rposition(|&byte| byte == b'\n') {
                        Some(end) => end + 1,
                        None => continue,
                    };
                    let lines: Vec<u8> = self.partial.drain(..complete).collect();
                    for line in String::from_utf8_lossy(&lines).lines() {
                        if let Some(transition) = parse_line(line, self.monotonic_to_realtime) {
                            each(transition);
                        }
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::debug!(%error, "trace_pipe read failed");
                    return;
                }
            }
        }
    }
}

impl Drop for TransitionTrace {
    fn drop(&mut self) {
        let _ = fs::write(self.instance.join(EVENT).join("enable"), "0");
        let _ = fs::remove_dir(&self.instance);
    }
}

/// Removes instances left by relays that died without cleaning up.
fn remove_stale_instances(instances: &Path) {
    let Ok(entries) = fs::read_dir(instances) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix(INSTANCE_PREFIX) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// The offset from CLOCK_MONOTONIC to CLOCK_REALTIME, from the closest of a
/// few paired readings.
fn monotonic_to_realtime() -> i128 {
    let monotonic = || {
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the pointer refers to a live timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time) };
        clock::from_timespec(time.tv_sec, time.tv_nsec) as i128
    };
    (0..5)
        .map(|_| {
            let before = monotonic();
            let real = clock::now() as i128;
            let after = monotonic();
            (after - before, real - (before + after) / 2)
        })
        .min_by_key(|(spread, _)| *spread)
        .map(|(_, offset)| offset)
        .unwrap_or(0)
}

/// Parses one trace line with named fields:
/// `relay-1 [001] ..... 796.894390: inet_sock_set_state: skaddr=0xffff… (…)
/// oldstate=0x2 (2) newstate=0x1 (1) sport=0xe488 (58504) dport=0x1d84 (7556)
/// family=0x2 (2) protocol=0x6 (6) saddr=0x100007f (16777343) daddr=…`
pub fn parse_line(line: &str, monotonic_to_realtime: i128) -> Option<Transition> {
    let (head, fields) = line.split_once(": inet_sock_set_state: ")?;
    let seconds = head.rsplit(' ').next()?;
    let (whole, fraction) = seconds.split_once('.')?;
    let micros: i128 = whole.parse::<i128>().ok()? * 1_000_000 + fraction.parse::<i128>().ok()?;
    let field = |name: &str| -> Option<u64> {
        let start = fields.find(&format!("{name}=0x"))? + name.len() + 3;
        let hex = fields[start..].split(' ').next()?;
        u64::from_str_radix(hex, 16).ok()
    };
    let address = |name: &str| -> Option<Ipv4Addr> {
        // The kernel reads the four address bytes as one native integer.
        Some(Ipv4Addr::from((field(name)? as u32).to_ne_bytes()))
    };
    let old = TcpState::from_linux(field("oldstate")? as u8)?;
    let new = TcpState::from_linux(field("newstate")? as u8)?;
    // The trace prints microseconds. Within its microsecond, a change that a
    // sending call makes (SYN_SENT, FIN_WAIT1, LAST_ACK) comes before the
    // segment it sends; a change that an arriving segment makes comes after.
    let within = if sends_first(new) { 0 } else { 999 };
    let at = (micros * 1000 + within + monotonic_to_realtime).max(0) as Stamp;
    Some(Transition {
        at,
        skaddr: field("skaddr")?,
        local: SocketAddrV4::new(address("saddr")?, field("sport")? as u16),
        peer: SocketAddrV4::new(address("daddr")?, field("dport")? as u16),
        old,
        new,
    })
}

/// The states a socket enters just before it sends the segment they wait on.
fn sends_first(state: TcpState) -> bool {
    matches!(
        state,
        TcpState::SynSent | TcpState::FinWait1 | TcpState::LastAck | TcpState::Listen
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traced_line_becomes_a_transition() {
        let line = "         python3-1655    [001] .....   796.894390: inet_sock_set_state: \
                    skaddr=0xffff8881030b0940 (-131387293497024) oldstate=0x2 (2) newstate=0x1 (1) \
                    sport=0xe488 (58504) dport=0x1d84 (7556) family=0x2 (2) protocol=0x6 (6) \
                    saddr=0x100007f (16777343) daddr=0x100007f (16777343) \
                    saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>";
        let transition = parse_line(line, 1_000).expect("parsed");
        assert_eq!(transition.at, 796_894_390_000 + 999 + 1_000);
        assert_eq!(transition.skaddr, 0xffff8881030b0940);
        assert_eq!(transition.local, "127.0.0.1:58504".parse().expect("addr"));
        assert_eq!(transition.peer, "127.0.0.1:7556".parse().expect("addr"));
        assert_eq!(
            (transition.old, transition.new),
            (TcpState::SynSent, TcpState::Established)
        );
        assert_eq!(parse_line("# tracer: nop", 0), None);
    }
}
