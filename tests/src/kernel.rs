//! The kernel's own view, independent of the relay: /proc/PID/fd and `ss`.
//! Tests check what the relay reports against these.

use std::path::Path;
use std::process::Command;

/// The socket inode behind `fd` of process `pid`, if that fd is a socket.
pub fn socket_inode(pid: u32, fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let link = link.to_string_lossy();
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// How many fds process `pid` holds.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// One TCP socket as `ss -tanei` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsSocket {
    /// The state, in the Linux names the protocol uses (LISTEN, ESTABLISHED…).
    pub state: String,
    /// Bytes received and not yet read (for LISTEN: the accept queue).
    pub recv_q: u64,
    pub local: String,
    pub peer: String,
    pub inode: u64,
}

/// Every TCP socket of this host, from `ss -tanei`.
pub fn ss_sockets() -> Vec<SsSocket> {
    let output = Command::new("ss")
        .arg("-tanei")
        .output()
        .expect("ss runs (apt-get install iproute2)");
    assert!(output.status.success(), "ss -tanei failed");
    parse_ss(&String::from_utf8_lossy(&output.stdout))
}

fn parse_ss(text: &str) -> Vec<SsSocket> {
    text.lines()
        .skip(1)
        .filter(|line| !line.starts_with(char::is_whitespace))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = fields
                .iter()
                .find_map(|field| field.strip_prefix("ino:"))
                .and_then(|inode| inode.parse().ok())?;
            Some(SsSocket {
                state: linux_state_name(fields.first()?).to_string(),
                recv_q: fields.get(1)?.parse().ok()?,
                local: fields.get(3)?.to_string(),
                peer: fields.get(4)?.to_string(),
                inode,
            })
        })
        .collect()
}

/// ss abbreviates and hyphenates; the kernel's names use underscores.
fn linux_state_name(ss_state: &str) -> &str {
    match ss_state {
        "ESTAB" => "ESTABLISHED",
        "SYN-SENT" => "SYN_SENT",
        "SYN-RECV" => "SYN_RECV",
        "FIN-WAIT-1" => "FIN_WAIT1",
        "FIN-WAIT-2" => "FIN_WAIT2",
        "TIME-WAIT" => "TIME_WAIT",
        "CLOSE-WAIT" => "CLOSE_WAIT",
        "LAST-ACK" => "LAST_ACK",
        "UNCONN" => "CLOSE",
        other => other,
    }
}

/// The ss row of the socket behind `fd` of process `pid`.
pub fn ss_socket_of(pid: u32, fd: i32) -> Option<SsSocket> {
    let inode = socket_inode(pid, fd)?;
    ss_sockets()
        .into_iter()
        .find(|socket| socket.inode == inode)
}

/// A process's resident memory, from /proc.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_rows_parse() {
        let text = "State     Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n\
LISTEN    0      5          127.0.0.1:7001       0.0.0.0:*     ino:548 sk:1 cgroup:/ <->\n\
\t bbr cwnd:10\n\
ESTAB     0      0          127.0.0.1:41708    127.0.0.1:7001 ino:77 sk:2\n";
        let rows = parse_ss(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].state, "LISTEN");
        assert_eq!(rows[0].local, "127.0.0.1:7001");
        assert_eq!(rows[1].state, "ESTABLISHED");
        assert_eq!(rows[1].inode, 77);
    }
}
