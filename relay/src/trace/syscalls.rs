//! The socket system calls `relay trace` shows, by their numbers on this
//! architecture (the `libc` crate's tables), and each call written as C the
//! way the program wrote it: glibc's send() is the sendto system call with
//! no address, and is shown as send().

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use protocol::OpName;

use super::report::DATA_BYTES;
use crate::engine::render;

/// Whether this build knows its architecture's system call numbers.
pub const KNOWN_ARCHITECTURE: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// The calls a lesson's program makes on its sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sys {
    Socket,
    Bind,
    Listen,
    Accept,
    Accept4,
    Connect,
    Read,
    Write,
    RecvFrom,
    SendTo,
    RecvMsg,
    SendMsg,
    Shutdown,
    Close,
    SetSockOpt,
    Dup,
    Dup2,
    Dup3,
    /// fcntl(fd, F_DUPFD or F_DUPFD_CLOEXEC, lowest): a dup by another name.
    FcntlDup,
    /// fcntl(fd, F_SETFL, flags): O_NONBLOCK on or off, which decides whether
    /// the program's calls on the socket sleep or answer EAGAIN. fcntl's
    /// other commands (F_GETFL, F_SETFD, ...) change nothing shown.
    FcntlSetFl,
}

impl Sys {
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub fn from_call(_number: u64, _args: &[u64; 6]) -> Option<Sys> {
        None
    }

    /// The call a system call's number and arguments make, if it is one
    /// the lesson shows.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub fn from_call(number: u64, args: &[u64; 6]) -> Option<Sys> {
        let number = i64::try_from(number).ok()?;
        Some(match number {
            libc::SYS_socket => Sys::Socket,
            libc::SYS_bind => Sys::Bind,
            libc::SYS_listen => Sys::Listen,
            libc::SYS_accept => Sys::Accept,
            libc::SYS_accept4 => Sys::Accept4,
            libc::SYS_connect => Sys::Connect,
            libc::SYS_read => Sys::Read,
            libc::SYS_write => Sys::Write,
            libc::SYS_recvfrom => Sys::RecvFrom,
            libc::SYS_sendto => Sys::SendTo,
            libc::SYS_recvmsg => Sys::RecvMsg,
            libc::SYS_sendmsg => Sys::SendMsg,
            libc::SYS_shutdown => Sys::Shutdown,
            libc::SYS_close => Sys::Close,
            libc::SYS_setsockopt => Sys::SetSockOpt,
            libc::SYS_dup => Sys::Dup,
            // aarch64 has only dup3, which glibc's dup2 calls there.
            #[cfg(target_arch = "x86_64")]
            libc::SYS_dup2 => Sys::Dup2,
            libc::SYS_dup3 => Sys::Dup3,
            libc::SYS_fcntl if matches!(args[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) => {
                Sys::FcntlDup
            }
            libc::SYS_fcntl if args[1] as i32 == libc::F_SETFL => Sys::FcntlSetFl,
            _ => return None,
        })
    }

    pub fn op(self) -> OpName {
        match self {
            Sys::Socket => OpName::Socket,
            Sys::Bind => OpName::Bind,
            Sys::Listen => OpName::Listen,
            Sys::Accept | Sys::Accept4 => OpName::Accept,
            Sys::Connect => OpName::Connect,
            Sys::Read | Sys::RecvFrom | Sys::RecvMsg => OpName::Read,
            Sys::Write | Sys::SendTo | Sys::SendMsg => OpName::Send,
            Sys::Shutdown => OpName::Shutdown,
            Sys::Close => OpName::Close,
            Sys::SetSockOpt => OpName::Setsockopt,
            Sys::Dup | Sys::Dup2 | Sys::Dup3 | Sys::FcntlDup => OpName::Dup,
            Sys::FcntlSetFl => OpName::Fcntl,
        }
    }

    /// The fd a call closes before it returns: close's own, or the one
    /// dup2 and dup3 put the copy in, when another file had it.
    pub fn closes(self, args: &[u64; 6]) -> Option<i32> {
        match self {
            Sys::Close => Some(args[0] as i32),
            Sys::Dup2 | Sys::Dup3 if args[1] != args[0] => Some(args[1] as i32),
            _ => None,
        }
    }

    /// Whether the call's first argument is a socket fd (all but socket()).
    pub fn on_fd(self) -> bool {
        self != Sys::Socket
    }

    /// Whether the kernel may make the calling thread sleep in it.
    pub fn may_sleep(self) -> bool {
        !matches!(
            self,
            Sys::Socket
                | Sys::Bind
                | Sys::Listen
                | Sys::Shutdown
                | Sys::SetSockOpt
                | Sys::Dup
                | Sys::Dup2
                | Sys::Dup3
                | Sys::FcntlDup
                | Sys::FcntlSetFl
        )
    }
}

/// Whether socket(domain, type, protocol) makes a TCP socket over IPv4, the
/// only kind the lesson shows.
pub fn is_tcp_socket(args: &[u64; 6]) -> bool {
    let kind = args[1] as i32 & 0xf;
    args[0] as i32 == libc::AF_INET
        && kind == libc::SOCK_STREAM
        && matches!(args[2] as i32, 0 | libc::IPPROTO_TCP)
}

/// Reads the traced program's memory.
pub trait Memory {
    fn read(&self, address: u64, length: usize) -> Option<Vec<u8>>;
}

/// What a call's entry showed: the address and the bytes it handed the
/// kernel, read before the kernel ran it.
#[derive(Clone, Debug, Default)]
pub struct AtEntry {
    pub addr: Option<SocketAddr>,
    pub data: Option<Vec<u8>>,
}

pub fn at_entry(sys: Sys, args: &[u64; 6], memory: &dyn Memory) -> AtEntry {
    match sys {
        Sys::Bind | Sys::Connect => AtEntry {
            addr: read_sockaddr(memory, args[1], args[2] as usize),
            data: None,
        },
        Sys::Write | Sys::SendTo => AtEntry {
            addr: None,
            data: memory.read(args[1], (args[2] as usize).min(DATA_BYTES)),
        },
        Sys::SendMsg => AtEntry {
            addr: None,
            data: read_message(memory, args[1], DATA_BYTES),
        },
        _ => AtEntry::default(),
    }
}

/// What a returned call showed, read from the program's memory after the
/// kernel filled it in.
pub struct Written {
    pub c: String,
    pub addr: Option<SocketAddr>,
    pub data: Option<Vec<u8>>,
}

/// The call as C, with its result when it has one (`None`: still in the
/// kernel), and what it carried.
pub fn written(
    sys: Sys,
    args: &[u64; 6],
    entry: &AtEntry,
    result: Option<i64>,
    memory: &dyn Memory,
) -> Written {
    let fd = args[0] as i32;
    let returned = result.filter(|&value| value >= 0);
    let mut addr = entry.addr;
    let mut data = entry.data.clone();
    let call = match sys {
        Sys::Socket => format!(
            "socket({}, {}, {})",
            family(args[0] as i32),
            socket_type(args[1] as i32),
            match args[2] as i32 {
                libc::IPPROTO_TCP => "IPPROTO_TCP".to_string(),
                other => other.to_string(),
            }
        ),
        Sys::Bind | Sys::Connect => format!(
            "{}({fd}, {}, {})",
            if sys == Sys::Bind { "bind" } else { "connect" },
            shown_sockaddr(addr, args[1]),
            args[2]
        ),
        Sys::Listen => format!("listen({fd}, {})", args[1] as i32),
        Sys::Accept | Sys::Accept4 => {
            let name = if sys == Sys::Accept {
                "accept"
            } else {
                "accept4"
            };
            let (peer, length) = if returned.is_some() && args[1] != 0 {
                let length = read_u32(memory, args[2]).unwrap_or(0) as usize;
                (read_sockaddr(memory, args[1], length), Some(length))
            } else {
                (None, None)
            };
            addr = peer;
            let peer_text = match (args[1], result) {
                (0, _) => "NULL".to_string(),
                (_, None) => "…".to_string(),
                _ => shown_sockaddr(peer, args[1]),
            };
            let length_text = match (args[2], length) {
                (0, _) => "NULL".to_string(),
                (_, Some(length)) => format!("[{length}]"),
                _ => "…".to_string(),
            };
            let flags = if sys == Sys::Accept4 {
                format!(
                    ", {}",
                    socket_flags(args[3] as i32).unwrap_or_else(|| "0".into())
                )
            } else {
                String::new()
            };
            format!("{name}({fd}, {peer_text}, {length_text}{flags})")
        }
        Sys::Read | Sys::RecvFrom => {
            data =
                returned.and_then(|count| memory.read(args[1], (count as usize).min(DATA_BYTES)));
            let buffer = match &data {
                Some(bytes) => render::c_string(bytes),
                None => "…".to_string(),
            };
            match sys {
                Sys::Read => format!("read({fd}, {buffer}, {})", args[2]),
                // recv() is recvfrom with no address to fill in.
                _ if args[4] == 0 => {
                    format!("recv({fd}, {buffer}, {}, {})", args[2], msg_flags(args[3]))
                }
                _ => format!(
                    "recvfrom({fd}, {buffer}, {}, {}, …)",
                    args[2],
                    msg_flags(args[3])
                ),
            }
        }
        Sys::Write | Sys::SendTo => {
            let buffer = match &data {
                Some(bytes) => render::c_string(bytes),
                None => format!("{:#x}", args[1]),
            };
            match sys {
                Sys::Write => format!("write({fd}, {buffer}, {})", args[2]),
                // send() is sendto with no address.
                _ if args[4] == 0 => {
                    format!("send({fd}, {buffer}, {}, {})", args[2], msg_flags(args[3]))
                }
                _ => format!(
                    "sendto({fd}, {buffer}, {}, {}, {}, {})",
                    args[2],
                    msg_flags(args[3]),
                    shown_sockaddr(read_sockaddr(memory, args[4], args[5] as usize), args[4]),
                    args[5]
                ),
            }
        }
        Sys::RecvMsg | Sys::SendMsg => {
            if sys == Sys::RecvMsg {
                data = returned.and_then(|count| {
                    read_message(memory, args[1], (count as usize).min(DATA_BYTES))
                });
            }
            let name = if sys == Sys::RecvMsg {
                "recvmsg"
            } else {
                "sendmsg"
            };
            let buffer = data
                .as_deref()
                .map_or_else(|| "…".to_string(), render::c_string);
            format!("{name}({fd}, {{msg_iov={buffer}}}, {})", msg_flags(args[2]))
        }
        Sys::Shutdown => format!(
            "shutdown({fd}, {})",
            match args[1] as i32 {
                libc::SHUT_RD => "SHUT_RD".to_string(),
                libc::SHUT_WR => "SHUT_WR".to_string(),
                libc::SHUT_RDWR => "SHUT_RDWR".to_string(),
                other => other.to_string(),
            }
        ),
        Sys::Close => format!("close({fd})"),
        Sys::Dup => format!("dup({fd})"),
        Sys::Dup2 => format!("dup2({fd}, {})", args[1] as i32),
        Sys::Dup3 => format!(
            "dup3({fd}, {}, {})",
            args[1] as i32,
            if args[2] as i32 & libc::O_CLOEXEC != 0 {
                "O_CLOEXEC"
            } else {
                "0"
            }
        ),
        Sys::FcntlDup => format!(
            "fcntl({fd}, {}, {})",
            if args[1] as i32 == libc::F_DUPFD_CLOEXEC {
                "F_DUPFD_CLOEXEC"
            } else {
                "F_DUPFD"
            },
            args[2] as i32
        ),
        Sys::FcntlSetFl => format!("fcntl({fd}, F_SETFL, {})", status_flags(args[2] as i32)),
        Sys::SetSockOpt => {
            let value = (args[4] == 4)
                .then(|| read_u32(memory, args[3]))
                .flatten()
                .map_or_else(|| "…".to_string(), |value| format!("[{}]", value as i32));
            format!(
                "setsockopt({fd}, {}, {}, {value}, {})",
                sockopt_level(args[1] as i32),
                sockopt_name(args[1] as i32, args[2] as i32),
                args[4]
            )
        }
    };
    let c = match result {
        Some(value) => format!("{call}{}", render::result(&as_result(value))),
        None => call,
    };
    Written { c, addr, data }
}

/// The kernel's return value as the relay's own calls report theirs.
pub fn as_result(value: i64) -> std::io::Result<i64> {
    if (-4095..0).contains(&value) {
        Err(std::io::Error::from_raw_os_error(-value as i32))
    } else {
        Ok(value)
    }
}

/// The bytes a `struct msghdr`'s buffers hold, up to `limit`, in order.
fn read_message(memory: &dyn Memory, address: u64, limit: usize) -> Option<Vec<u8>> {
    // struct msghdr on a 64-bit system: msg_name, msg_namelen (and its
    // padding), then msg_iov and msg_iovlen, 8 bytes each.
    let header = memory.read(address, 32)?;
    let word = |bytes: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let (iov, count) = (word(&header, 16)?, word(&header, 24)?.min(64));
    let vectors = memory.read(iov, count as usize * 16)?;
    let mut bytes = Vec::new();
    for vector in vectors.chunks_exact(16) {
        let room = limit - bytes.len();
        let (base, length) = (word(vector, 0)?, word(vector, 8)? as usize);
        if room == 0 {
            break;
        }
        bytes.extend(memory.read(base, length.min(room))?);
    }
    Some(bytes)
}

fn read_u32(memory: &dyn Memory, address: u64) -> Option<u32> {
    let bytes = memory.read(address, 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// A `struct sockaddr_in`, when the program passed one.
fn read_sockaddr(memory: &dyn Memory, address: u64, length: usize) -> Option<SocketAddr> {
    if address == 0 || length < 8 {
        return None;
    }
    let bytes = memory.read(address, 8)?;
    if i32::from(u16::from_ne_bytes([bytes[0], bytes[1]])) != libc::AF_INET {
        return None;
    }
    let port = u16::from_be_bytes([bytes[2], bytes[3]]);
    let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
    Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
}

fn shown_sockaddr(addr: Option<SocketAddr>, pointer: u64) -> String {
    match (addr, pointer) {
        (Some(addr), _) => render::sockaddr(&addr),
        (None, 0) => "NULL".to_string(),
        (None, pointer) => format!("{pointer:#x}"),
    }
}

fn family(domain: i32) -> String {
    match domain {
        libc::AF_INET => "AF_INET".to_string(),
        libc::AF_INET6 => "AF_INET6".to_string(),
        libc::AF_UNIX => "AF_UNIX".to_string(),
        other => other.to_string(),
    }
}

fn socket_type(value: i32) -> String {
    let kind = match value & 0xf {
        libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
        other => other.to_string(),
    };
    match socket_flags(value & !0xf) {
        Some(flags) => format!("{kind}|{flags}"),
        None => kind,
    }
}

/// The names of the `known` flags set in `value`, in their order, and the
/// bits none of them names. Callers join them with a bare `|`, as the lab's
/// own calls and strace write flags, so that a traced program's calls read
/// like the lab's.
fn named_flags(value: i32, known: &[(i32, &'static str)]) -> (Vec<&'static str>, i32) {
    let names = known
        .iter()
        .filter(|(flag, _)| value & flag != 0)
        .map(|(_, name)| *name)
        .collect();
    let rest = known.iter().fold(value, |rest, (flag, _)| rest & !flag);
    (names, rest)
}

/// SOCK_NONBLOCK and SOCK_CLOEXEC, as socket() and accept4() take them.
fn socket_flags(value: i32) -> Option<String> {
    let known = [
        (libc::SOCK_NONBLOCK, "SOCK_NONBLOCK"),
        (libc::SOCK_CLOEXEC, "SOCK_CLOEXEC"),
    ];
    let (names, _) = named_flags(value, &known);
    (!names.is_empty()).then(|| names.join("|"))
}

/// F_SETFL's flags as C writes them: `O_RDWR|O_NONBLOCK`. The access mode
/// is named only when it is not O_RDONLY (0), as a program that passes on
/// F_GETFL's answer (O_RDWR for a socket) shows it.
fn status_flags(flags: i32) -> String {
    let known = [
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_ASYNC, "O_ASYNC"),
    ];
    let (named, rest) = named_flags(flags & !libc::O_ACCMODE, &known);
    let mode = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => Some("O_WRONLY"),
        libc::O_RDWR => Some("O_RDWR"),
        _ => None,
    };
    let mut names: Vec<String> = mode.into_iter().chain(named).map(String::from).collect();
    if rest != 0 {
        names.push(format!("{rest:#o}"));
    }
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

fn msg_flags(value: u64) -> String {
    let value = value as i32;
    let known = [
        (libc::MSG_PEEK, "MSG_PEEK"),
        (libc::MSG_DONTWAIT, "MSG_DONTWAIT"),
        (libc::MSG_WAITALL, "MSG_WAITALL"),
        (libc::MSG_NOSIGNAL, "MSG_NOSIGNAL"),
        (libc::MSG_MORE, "MSG_MORE"),
    ];
    let (named, rest) = named_flags(value, &known);
    let mut names: Vec<String> = named.into_iter().map(String::from).collect();
    if rest != 0 || names.is_empty() {
        names.push(format!("{rest:#x}").replace("0x0", "0"));
    }
    names.join("|")
}

fn sockopt_level(level: i32) -> String {
    match level {
        libc::SOL_SOCKET => "SOL_SOCKET".to_string(),
        libc::IPPROTO_TCP => "IPPROTO_TCP".to_string(),
        other => other.to_string(),
    }
}

fn sockopt_name(level: i32, name: i32) -> String {
    let known = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => "SO_REUSEADDR",
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => "SO_REUSEPORT",
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => "SO_KEEPALIVE",
        (libc::SOL_SOCKET, libc::SO_LINGER) => "SO_LINGER",
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => "SO_RCVBUF",
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => "SO_SNDBUF",
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => "TCP_NODELAY",
        (libc::IPPROTO_TCP, libc::TCP_LINGER2) => "TCP_LINGER2",
        _ => return name.to_string(),
    };
    known.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program's memory: a sockaddr_in at 0x1000, a length at 0x2000,
    /// bytes at 0x3000.
    struct Fake;

    impl Memory for Fake {
        fn read(&self, address: u64, length: usize) -> Option<Vec<u8>> {
            let bytes: Vec<u8> = match address {
                0x1000 => {
                    let mut bytes = (libc::AF_INET as u16).to_ne_bytes().to_vec();
                    bytes.extend(7001u16.to_be_bytes());
                    bytes.extend([127, 0, 0, 1]);
                    bytes
                }
                0x2000 => 16u32.to_ne_bytes().to_vec(),
                0x3000 => b"Hello, Server".to_vec(),
                // struct msghdr: no name, one iovec at 0x5000.
                0x4000 => [0u64, 0, 0x5000, 1]
                    .iter()
                    .flat_map(|word| word.to_ne_bytes())
                    .collect(),
                0x5000 => [0x3000u64, 13]
                    .iter()
                    .flat_map(|word| word.to_ne_bytes())
                    .collect(),
                _ => return None,
            };
            Some(bytes.into_iter().take(length).collect())
        }
    }

    fn c(sys: Sys, args: [u64; 6], result: Option<i64>) -> String {
        let entry = at_entry(sys, &args, &Fake);
        written(sys, &args, &entry, result, &Fake).c
    }

    #[test]
    fn calls_read_as_the_program_wrote_them() {
        let tcp = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        assert!(is_tcp_socket(&tcp));
        let refused = Some(-libc::ECONNREFUSED as i64);
        let cases = [
            (
                Sys::Socket,
                tcp,
                Some(3),
                "socket(AF_INET, SOCK_STREAM, 0) = 3",
            ),
            (
                Sys::Socket,
                [
                    libc::AF_INET as u64,
                    (libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u64,
                    0,
                    0,
                    0,
                    0,
                ],
                Some(3),
                "socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0) = 3",
            ),
            (
                Sys::Bind,
                [3, 0x1000, 16, 0, 0, 0],
                Some(0),
                "bind(3, {AF_INET, 127.0.0.1:7001}, 16) = 0",
            ),
            (
                Sys::Accept,
                [3, 0x1000, 0x2000, 0, 0, 0],
                Some(4),
                "accept(3, {AF_INET, 127.0.0.1:7001}, [16]) = 4",
            ),
            (
                Sys::Accept,
                [3, 0x1000, 0x2000, 0, 0, 0],
                None,
                "accept(3, …, …)",
            ),
            (
                Sys::SendTo,
                [4, 0x3000, 13, 0, 0, 0],
                Some(13),
                "send(4, \"Hello, Server\", 13, 0) = 13",
            ),
            (
                Sys::SendTo,
                [
                    4,
                    0x3000,
                    13,
                    (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u64,
                    0,
                    0,
                ],
                Some(13),
                "send(4, \"Hello, Server\", 13, MSG_DONTWAIT|MSG_NOSIGNAL) = 13",
            ),
            (
                Sys::Read,
                [4, 0x3000, 1023, 0, 0, 0],
                Some(13),
                "read(4, \"Hello, Server\", 1023) = 13",
            ),
            (
                Sys::Connect,
                [3, 0x1000, 16, 0, 0, 0],
                refused,
                "connect(3, {AF_INET, 127.0.0.1:7001}, 16) = -1 ECONNREFUSED (Connection refused)",
            ),
            (
                Sys::Shutdown,
                [4, libc::SHUT_WR as u64, 0, 0, 0, 0],
                Some(0),
                "shutdown(4, SHUT_WR) = 0",
            ),
            (Sys::Dup, [4, 0, 0, 0, 0, 0], Some(5), "dup(4) = 5"),
            (Sys::Dup2, [4, 9, 0, 0, 0, 0], Some(9), "dup2(4, 9) = 9"),
            (
                Sys::Dup3,
                [4, 9, libc::O_CLOEXEC as u64, 0, 0, 0],
                Some(9),
                "dup3(4, 9, O_CLOEXEC) = 9",
            ),
            (
                Sys::FcntlDup,
                [4, libc::F_DUPFD_CLOEXEC as u64, 10, 0, 0, 0],
                Some(10),
                "fcntl(4, F_DUPFD_CLOEXEC, 10) = 10",
            ),
            (
                Sys::FcntlSetFl,
                [
                    4,
                    libc::F_SETFL as u64,
                    (libc::O_RDWR | libc::O_NONBLOCK) as u64,
                    0,
                    0,
                    0,
                ],
                Some(0),
                "fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0",
            ),
            (
                Sys::FcntlSetFl,
                [4, libc::F_SETFL as u64, 0, 0, 0, 0],
                Some(0),
                "fcntl(4, F_SETFL, 0) = 0",
            ),
        ];
        for (sys, args, result, expected) in cases {
            assert_eq!(c(sys, args, result), expected);
        }
    }

    /// dup2 and dup3 close the fd they put the copy in, unless it is the
    /// fd they copy.
    #[test]
    fn the_calls_that_close_an_fd_name_it() {
        assert_eq!(Sys::Close.closes(&[4, 0, 0, 0, 0, 0]), Some(4));
        assert_eq!(Sys::Dup2.closes(&[4, 9, 0, 0, 0, 0]), Some(9));
        assert_eq!(Sys::Dup2.closes(&[4, 4, 0, 0, 0, 0]), None);
        assert_eq!(Sys::Dup.closes(&[4, 0, 0, 0, 0, 0]), None);
        assert_eq!(Sys::FcntlDup.closes(&[4, 0, 10, 0, 0, 0]), None);
    }

    /// Of fcntl's commands, the two that copy an fd and F_SETFL are
    /// followed; the others change nothing the lesson shows.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn fcntl_is_followed_where_it_copies_an_fd_or_sets_its_flags() {
        let fcntl = libc::SYS_fcntl as u64;
        for (command, expected) in [
            (libc::F_DUPFD, Some(Sys::FcntlDup)),
            (libc::F_DUPFD_CLOEXEC, Some(Sys::FcntlDup)),
            (libc::F_SETFL, Some(Sys::FcntlSetFl)),
            (libc::F_GETFL, None),
            (libc::F_SETFD, None),
        ] {
            assert_eq!(
                Sys::from_call(fcntl, &[4, command as u64, 10, 0, 0, 0]),
                expected
            );
        }
    }

    #[test]
    fn only_tcp_over_ipv4_is_shown() {
        let unix = [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        let udp = [libc::AF_INET as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0];
        assert!(!is_tcp_socket(&unix));
        assert!(!is_tcp_socket(&udp));
    }
}
