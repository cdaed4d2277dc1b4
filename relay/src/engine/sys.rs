//! The system calls that socket2 does not make the way the lesson needs, and
//! the kernel's views of a socket: TCP_INFO for an open fd, and sock_diag
//! (or /proc/net/tcp) for a connection whose fd is closed.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use protocol::TcpState;

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC, so the new connection is
/// ready for tokio without a second call.
pub fn accept4(listener: RawFd) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: sockaddr_in is plain data, for which all zeroes is valid.
    let mut peer: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut peer_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the pointers refer to live locals of the sizes given.
    let fd = unsafe {
        libc::accept4(
            listener,
            (&mut peer as *mut libc::sockaddr_in).cast(),
            &mut peer_len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 just returned this fd, and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let ip = Ipv4Addr::from(u32::from_be(peer.sin_addr.s_addr));
    let port = u16::from_be(peer.sin_port);
    Ok((owned, SocketAddr::V4(SocketAddrV4::new(ip, port))))
}

/// read(2), as the seed calls it, into a buffer of `max` bytes.
pub fn read(fd: RawFd, max: usize) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; max];
    // SAFETY: the buffer is `max` bytes long and lives across the call.
    let count = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), max) };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    buffer.truncate(count as usize);
    Ok(buffer)
}

/// send(2) with MSG_NOSIGNAL, so a send after the peer's RST returns EPIPE
/// instead of killing the relay with SIGPIPE.
pub fn send(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the slice is valid for its length across the call.
    let count = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(count as usize)
}

/// How a non-blocking connect() ended, once epoll says the socket is
/// writable: SO_ERROR's error, or Ok once the socket has a peer. "Not yet"
/// is EAGAIN, so the wait goes on.
pub fn connect_outcome(fd: RawFd) -> io::Result<()> {
    // SAFETY: the lab keeps the fd open while any wait on it runs.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&borrowed);
    if let Some(error) = socket.take_error()? {
        return Err(error);
    }
    socket
        .peer_addr()
        .map(|_| ())
        .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))
}

/// setsockopt(2) of an int option, as most socket options are.
pub fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`.
    let status = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if status < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setsockopt(IP_BIND_ADDRESS_NO_PORT): a bind to port 0 leaves the port
/// to connect(), which may share one with connections to other peers. A
/// bind that picks its port at once must find one no socket uses at all,
/// which costs the kernel a search through every bound port.
pub fn set_bind_address_no_port(fd: RawFd) -> io::Result<()> {
    set_int_option(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// setsockopt(TCP_LINGER2): how long an orphaned FIN_WAIT2 lasts, in seconds.
pub fn set_linger2(fd: RawFd, seconds: i32) -> io::Result<()> {
    set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_LINGER2, seconds)
}

/// What getsockopt(TCP_INFO) says of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: TcpState,
    /// For LISTEN sockets, the accept queue's length (`tcpi_unacked`).
    pub queue: u32,
    /// For LISTEN sockets, the accept queue's capacity (`tcpi_sacked`).
    pub backlog: u32,
}

pub fn tcp_info(fd: RawFd) -> io::Result<TcpInfo> {
    // SAFETY: tcp_info is plain data, for which all zeroes is valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointers refer to a live tcp_info and its length.
    let status = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if status < 0 {
        return Err(io::Error::last_os_error());
    }
    let state = TcpState::from_linux(info.tcpi_state)
        .ok_or_else(|| io::Error::other(format!("unknown tcpi_state {}", info.tcpi_state)))?;
    Ok(TcpInfo {
        state,
        queue: info.tcpi_unacked,
        backlog: info.tcpi_sacked,
    })
}

/// What the kernel still keeps of a connection whose fd is closed: TIME_WAIT,
/// FIN_WAIT2, LAST_ACK and the like. None once the kernel has forgotten it.
///
/// It asks sock_diag over netlink for exactly that pair of addresses, which
/// the kernel answers from its hash tables; /proc/net/tcp, the fallback,
/// lists every socket of the host (4 ms with 600 of them).
pub fn kernel_state(local: SocketAddr, peer: SocketAddr) -> Option<TcpState> {
    match sock_diag_state(local, peer) {
        Ok(state) => state,
        Err(_) => {
            let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
            find_in_proc_net_tcp(&table, local, peer)
        }
    }
}

/// `SOCK_DIAG_BY_FAMILY`, from linux/sock_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// sizeof(struct nlmsghdr) + sizeof(struct inet_diag_req_v2).
const DIAG_REQUEST_BYTES: usize = 16 + 56;

/// One sock_diag request for one TCP connection (linux/inet_diag.h).
fn sock_diag_state(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<TcpState>> {
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (local, peer) else {
        return Ok(None);
    };
    // SAFETY: plain socket(2), checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket(2) just returned it, and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };

    let mut request = Vec::with_capacity(DIAG_REQUEST_BYTES);
    // struct nlmsghdr, in the host's byte order.
    request.extend((DIAG_REQUEST_BYTES as u32).to_ne_bytes());
    request.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
    request.extend(1u32.to_ne_bytes());
    request.extend(0u32.to_ne_bytes());
    // struct inet_diag_req_v2: family, protocol, ext, pad, states (all).
    request.extend([libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    request.extend(u32::MAX.to_ne_bytes());
    // struct inet_diag_sockid: ports and addresses in network order.
    request.extend(local.port().to_be_bytes());
    request.extend(peer.port().to_be_bytes());
    for ip in [local.ip(), peer.ip()] {
        request.extend(ip.octets());
        request.extend([0u8; 12]);
    }
    request.extend(0u32.to_ne_bytes());
    // INET_DIAG_NOCOOKIE.
    request.extend([0xffu8; 8]);

    // SAFETY: the buffer is valid for its length across the call.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 1024];
    // The kernel answers within send(); nothing queued means no answer.
    // SAFETY: the buffer is valid for its length across the call.
    let received = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if received < 18 {
        return Err(io::Error::last_os_error());
    }
    let message_type = u16::from_ne_bytes([reply[4], reply[5]]);
    if message_type == libc::NLMSG_ERROR as u16 {
        let errno = -i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        return if errno == libc::ENOENT {
            Ok(None)
        } else {
            Err(io::Error::from_raw_os_error(errno))
        };
    }
    if message_type != SOCK_DIAG_BY_FAMILY || received < DIAG_REPLY_MIN_BYTES {
        return Err(io::Error::other("unexpected sock_diag reply"));
    }
    // The kernel's lookup falls back to a listener on the local port when
    // the connection is gone: only a reply for this very connection counts.
    if !diag_reply_is(&reply[16..received as usize], local, peer) {
        return Ok(None);
    }
    // struct inet_diag_msg: idiag_family, then idiag_state.
    Ok(TcpState::from_linux(reply[17]))
}

/// The smallest reply that holds an inet_diag_msg up to its addresses.
const DIAG_REPLY_MIN_BYTES: isize = 16 + 4 + 4 + 32;

/// Whether an inet_diag_msg (from idiag_family on) names exactly the
/// connection from `local` to `peer`.
fn diag_reply_is(message: &[u8], local: SocketAddrV4, peer: SocketAddrV4) -> bool {
    // idiag_family, idiag_state, idiag_timer, idiag_retrans; then
    // inet_diag_sockid: sport, dport (network order), src[16], dst[16].
    let Some(sockid) = message.get(4..40) else {
        return false;
    };
    sockid[0..2] == local.port().to_be_bytes()
        && sockid[2..4] == peer.port().to_be_bytes()
        && sockid[4..8] == local.ip().octets()
        && sockid[20..24] == peer.ip().octets()
}

fn find_in_proc_net_tcp(table: &str, local: SocketAddr, peer: SocketAddr) -> Option<TcpState> {
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let row_local = parse_proc_addr(fields.next()?)?;
        let row_peer = parse_proc_addr(fields.next()?)?;
        let state = u8::from_str_radix(fields.next()?, 16).ok()?;
        (row_local == local && row_peer == peer)
            .then(|| TcpState::from_linux(state))
            .flatten()
    })
}

/// Parses `0100007F:1B59`: the IPv4 address as the kernel's u32 in host
/// order, then the port.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(ip.to_ne_bytes()),
        port,
    )))
}

/// The symbolic name of an errno, as C code and man pages spell it.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::EPIPE => "EPIPE",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EDESTADDRREQ => "EDESTADDRREQ",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        other => return format!("E{other}"),
    };
    name.to_string()
}

/// strerror(errno), without Rust's " (os error N)" suffix.
///
/// The C library's messages do not change while the relay runs, so each is
/// asked for once. A read that waits renders EAGAIN's each time, and asking
/// the C library (strerror_r, then gettext) and trimming the text was 7 % of
/// the relay's user time in the bench's wait-then-send round trips.
pub fn strerror(errno: i32) -> String {
    /// Linux's errno values run from 1 to EHWPOISON.
    const KNOWN: i32 = libc::EHWPOISON + 1;
    static MESSAGES: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (0..KNOWN).map(ask_strerror).collect());
    match usize::try_from(errno).ok().and_then(|at| MESSAGES.get(at)) {
        Some(message) => message.clone(),
        None => ask_strerror(errno),
    }
}

fn ask_strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_rows_are_found_by_both_ends() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1B59 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:1B59 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n";
        let server: SocketAddr = "127.0.0.1:7001".parse().expect("addr");
        let client: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        assert_eq!(
            find_in_proc_net_tcp(table, client, server),
            Some(TcpState::TimeWait)
        );
        assert_eq!(find_in_proc_net_tcp(table, server, client), None);
    }

    #[test]
    fn sock_diag_finds_time_wait_and_forgets_nothing_alive() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let server = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(server).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let client_addr = client.local_addr().expect("addr");
        assert_eq!(
            sock_diag_state(server, client_addr).expect("asked"),
            Some(TcpState::Established)
        );
        // The client closes first, so its end waits in TIME_WAIT.
        drop(client);
        drop(accepted);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while kernel_state(client_addr, server) != Some(TcpState::TimeWait) {
            assert!(std::time::Instant::now() < deadline, "never TIME_WAIT");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let nowhere: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert_eq!(sock_diag_state(nowhere, server).expect("asked"), None);
    }

    #[test]
    fn a_gone_connection_is_never_its_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let server = listener.local_addr().expect("addr");
        // A connection that never existed, on the listener's port: the
        // kernel's lookup finds the listener, which must not count.
        let stranger: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert_eq!(kernel_state(server, stranger), None);
    }

    #[test]
    fn errno_names_are_the_c_names() {
        assert_eq!(errno_name(libc::ECONNREFUSED), "ECONNREFUSED");
        assert_eq!(errno_name(libc::EAGAIN), "EAGAIN");
        assert_eq!(strerror(libc::ECONNREFUSED), "Connection refused");
        assert_eq!(strerror(libc::EAGAIN), "Resource temporarily unavailable");
        // Past the table, the C library is asked as before.
        assert_eq!(strerror(4096), ask_strerror(4096));
    }
}
