//! The wire view: one packet socket for the whole relay, which reads every
//! TCP segment on the labs' interfaces, with the kernel's timestamp of each
//! frame, and hands each to the lab whose connection or listening address it
//! belongs to ([`RouteKey`]): by the full 4-tuple, never by a port number
//! alone. A task reads it whenever frames arrive; a lab also drains it at
//! the end of each step ([`Capture::drain`]), so that every frame up to that
//! moment is in the lab's hands before it releases its events in kernel time.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::bpf;
use crate::engine::clock::{self, Stamp};
use crate::transitions::{Transition, TransitionTrace};

/// One TCP segment as it crossed an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireSegment {
    /// When the kernel saw the frame (SO_TIMESTAMPNS, CLOCK_REALTIME).
    pub at: Stamp,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: Vec<&'static str>,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    /// Payload bytes on the wire.
    pub len: u32,
    /// The first bytes of the payload, for a preview.
    pub payload: Vec<u8>,
}

impl WireSegment {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// What the kernel showed of a lab: a segment on the wire, or a socket's
/// change of TCP state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Segment(WireSegment),
    Transition(Transition),
}

/// What a lab is routed: its connections, its listening addresses, and
/// the targets of its connects in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKey {
    /// A connection, from this end's address to the peer's.
    Connection(SocketAddrV4, SocketAddrV4),
    /// A listening socket's address (0.0.0.0 for every address): the
    /// segments of handshakes to it, before accept() names the connection.
    Listener(SocketAddrV4),
    /// A connect() in flight to this address: the kernel traces the
    /// socket's SYN_SENT before it has a port of its own.
    Connecting(SocketAddrV4),
}

impl Observation {
    /// Every key under which a lab may have asked for it.
    fn keys(&self) -> Vec<RouteKey> {
        let (a, b) = match self {
            Observation::Segment(segment) => (segment.src, segment.dst),
            Observation::Transition(change) => (change.local, change.peer),
        };
        let any = |end: SocketAddrV4| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, end.port());
        let mut keys = vec![
            RouteKey::Connection(a, b),
            RouteKey::Connection(b, a),
            RouteKey::Listener(a),
            RouteKey::Listener(b),
            RouteKey::Listener(any(a)),
            RouteKey::Listener(any(b)),
        ];
        if matches!(self, Observation::Transition(_)) && a.port() == 0 {
            keys.push(RouteKey::Connecting(b));
        }
        keys
    }

    /// When the kernel stamped it.
    fn at(&self) -> Stamp {
        match self {
            Observation::Segment(segment) => segment.at,
            Observation::Transition(change) => change.at,
        }
    }
}

/// How many payload bytes a segment event previews.
const PREVIEW_BYTES: usize = 64;
/// Segments that matched no lab are kept this long, so that a port a lab
/// registers right after its SYN went out (connect's ephemeral port) still
/// gets that SYN.
const UNMATCHED_KEEP: Duration = Duration::from_secs(2);
const UNMATCHED_MAX: usize = 512;

pub type LabId = u64;

/// The relay's capture: the packet socket, and which lab owns which port.
pub struct Capture {
    routes: Mutex<Routes>,
    /// The packet socket and its buffer. Whoever drains holds the lock until
    /// the socket answers EAGAIN and every frame read is routed, so a drain
    /// that returns has delivered every frame queued before it began.
    reader: Mutex<Reader>,
    /// The kernel's trace of state changes, or why there is none.
    transitions: Result<Mutex<TransitionTrace>, String>,
}

struct Reader {
    socket: OwnedFd,
    buffer: Vec<u8>,
    loopback_index: i32,
}

/// Where a lab takes its observations, and how many it had to let go.
#[derive(Clone)]
pub struct LabRoute {
    /// Bounded ([`OBSERVATIONS_QUEUE`]): the capture never waits for a lab.
    pub sender: mpsc::Sender<Observation>,
    /// Observations dropped because the lab's queue was full.
    pub dropped: Arc<AtomicU64>,
}

impl LabRoute {
    fn deliver(&self, observation: Observation) {
        if self.sender.try_send(observation).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Observations queued for one lab at most. A lab drains its queue at every
/// step, so only a lab starved of CPU fills it; what does not fit is counted
/// and reported to the page as a gap.
pub const OBSERVATIONS_QUEUE: usize = 4096;

#[derive(Default)]
struct Routes {
    by_key: HashMap<RouteKey, Vec<(LabId, LabRoute)>>,
    unmatched: VecDeque<(Instant, Observation)>,
}

impl std::fmt::Debug for Capture {
    // The routes hold channels; their count says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports = self
            .routes
            .lock()
            .map(|routes| routes.by_key.len())
            .unwrap_or(0);
        write!(f, "Capture({ports} routes)")
    }
}

impl Capture {
    /// Opens the packet socket and starts reading. `lab_ip` decides the
    /// interfaces: loopback alone, or every interface when lab servers are
    /// reachable from outside. Fails with the reason when the relay lacks
    /// CAP_NET_RAW.
    pub fn start(lab_ip: IpAddr, lab_ports: &RangeInclusive<u16>) -> Result<Arc<Capture>, String> {
        let everywhere = !lab_ip.is_loopback();
        let socket = open_packet_socket(everywhere, lab_ports).map_err(|error| {
            if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                "The relay may not capture packets (it lacks CAP_NET_RAW). Run it as root, or \
                 grant it with `sudo setcap cap_net_raw+ep target/release/relay`."
                    .to_string()
            } else {
                format!("The relay could not open a packet socket: {error}.")
            }
        })?;
        // SAFETY: the capture owns the fd and lives as long as the relay, so
        // the fd stays open, and the same, for the registration's whole life.
        let io = unsafe { AsyncFd::register(PacketFd(socket.as_raw_fd())) }
            .map_err(|error| format!("The relay could not watch its packet socket: {error}."))?;
        let transitions = TransitionTrace::open(lab_ports);
        match &transitions {
            Ok(_) => tracing::info!("tracing the kernel's TCP state changes"),
            Err(reason) => tracing::warn!("state changes are polled only: {reason}"),
        }
        // SAFETY: the capture owns the trace and its fd for the relay's life.
        let transition_io = transitions
            .as_ref()
            .ok()
            .and_then(|trace| unsafe { AsyncFd::register(PacketFd(trace.fd())) }.ok());
        let capture = Arc::new(Capture {
            routes: Mutex::new(Routes::default()),
            reader: Mutex::new(Reader {
                socket,
                buffer: vec![0u8; 65536],
                loopback_index: loopback_index(),
            }),
            transitions: transitions.map(Mutex::new),
        });
        tokio::spawn(read_loop(io, Arc::clone(&capture)));
        if let Some(io) = transition_io {
            tokio::spawn(read_loop(io, Arc::clone(&capture)));
        }
        Ok(capture)
    }

    /// Whether the kernel's state changes are traced, or why they are only polled.
    pub fn transitions(&self) -> Result<(), String> {
        self.transitions.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    /// Reads every frame and every state change the kernel holds for the
    /// relay and routes each, returning once nothing more is queued.
    pub fn drain(&self) {
        self.drain_frames();
        if let Ok(Ok(mut trace)) = self.transitions.as_ref().map(|trace| trace.lock()) {
            trace.drain(|transition| self.route(Observation::Transition(transition)));
        }
    }

    fn drain_frames(&self) {
        let Ok(mut reader) = self.reader.lock() else {
            return;
        };
        let Reader {
            socket,
            buffer,
            loopback_index,
        } = &mut *reader;
        loop {
            match receive(socket.as_raw_fd(), buffer) {
                Ok(frame) => {
                    // On lo every segment is seen twice, leaving and
                    // arriving. Keep the leaving copy: the kernel hands it
                    // to this socket inside the sending system call, so it
                    // is here before that call returns. The arriving copy
                    // waits for the receive softirq, which the kernel may
                    // defer to ksoftirqd, and would then come after calls
                    // that happened later.
                    if frame.ifindex == *loopback_index && frame.packet_type == libc::PACKET_HOST {
                        continue;
                    }
                    if let Some(segment) = parse(&buffer[..frame.length], frame.at) {
                        self.route(Observation::Segment(segment));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    tracing::debug!(%error, "packet socket read failed");
                    return;
                }
            }
        }
    }

    /// Sends what belongs under `key` to this lab, including what arrived in
    /// the last moments before the lab asked, but nothing from before
    /// `since`, when the lab's socket was made.
    pub fn register(&self, lab: LabId, key: RouteKey, since: Stamp, route: &LabRoute) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let owners = routes.by_key.entry(key).or_default();
        if owners.iter().any(|(owner, _)| *owner == lab) {
            return;
        }
        owners.push((lab, route.clone()));
        let now = Instant::now();
        let Routes { unmatched, .. } = &mut *routes;
        unmatched.retain(|(seen, observation)| {
            let mine = observation.at() >= since && observation.keys().contains(&key);
            if mine && now.duration_since(*seen) < UNMATCHED_KEEP {
                route.deliver(observation.clone());
            }
            !mine
        });
    }

    pub fn unregister(&self, lab: LabId, key: RouteKey) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if let Some(owners) = routes.by_key.get_mut(&key) {
            owners.retain(|(owner, _)| *owner != lab);
            if owners.is_empty() {
                routes.by_key.remove(&key);
            }
        }
    }

    pub fn unregister_lab(&self, lab: LabId) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        routes.by_key.retain(|_, owners| {
            owners.retain(|(owner, _)| *owner != lab);
            !owners.is_empty()
        });
    }

    fn route(&self, observation: Observation) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let mut delivered: Vec<LabId> = Vec::new();
        for key in observation.keys() {
            for (lab, route) in routes.by_key.get(&key).into_iter().flatten() {
                // A segment between two sockets of one lab goes to it once.
                if !delivered.contains(lab) {
                    delivered.push(*lab);
                    route.deliver(observation.clone());
                }
            }
        }
        if delivered.is_empty() {
            let now = Instant::now();
            while routes.unmatched.len() >= UNMATCHED_MAX
                || routes
                    .unmatched
                    .front()
                    .is_some_and(|(seen, _)| now.duration_since(*seen) > UNMATCHED_KEEP)
            {
                routes.unmatched.pop_front();
            }
            routes.unmatched.push_back((now, observation));
        }
    }
}

/// How much the kernel may queue for the packet socket before it drops
/// frames (SO_RCVBUFFORCE; the relay captures as root or with CAP_NET_RAW,
/// and only lab-port frames pass the filter).
const CAPTURE_BUFFER_BYTES: libc::c_int = 8 << 20;

/// socket(AF_PACKET, SOCK_RAW, ETH_P_ALL), bound to `lo` unless
/// `everywhere`, with the kernel's timestamp on every frame and a filter
/// that lets through only the lab ports' TCP frames.
fn open_packet_socket(everywhere: bool, lab_ports: &RangeInclusive<u16>) -> io::Result<OwnedFd> {
    let protocol = (libc::ETH_P_ALL as u16).to_be() as i32;
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket(2) just returned this fd and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data, for which all zeroes is valid.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol as u16;
    address.sll_ifindex = if everywhere { 0 } else { loopback_index() };
    // SAFETY: the pointer and length describe the sockaddr_ll above.
    let status = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if status < 0 {
        return Err(io::Error::last_os_error());
    }
    // Filter first: frames queued before the filter would still arrive.
    bpf::attach(socket.as_raw_fd(), &bpf::lab_ports(lab_ports, !everywhere))?;
    set_int(socket.as_raw_fd(), libc::SO_TIMESTAMPNS, 1)?;
    if set_int(
        socket.as_raw_fd(),
        libc::SO_RCVBUFFORCE,
        CAPTURE_BUFFER_BYTES,
    )
    .is_err()
    {
        let _ = set_int(socket.as_raw_fd(), libc::SO_RCVBUF, CAPTURE_BUFFER_BYTES);
    }
    Ok(socket)
}

/// setsockopt(SOL_SOCKET, `name`, `value`).
fn set_int(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`.
    let status = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
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

fn loopback_index() -> i32 {
    // SAFETY: the argument is a NUL-terminated string literal.
    unsafe { libc::if_nametoindex(c"lo".as_ptr()) as i32 }
}

/// One frame read from the packet socket.
struct Frame {
    length: usize,
    ifindex: i32,
    packet_type: u8,
    /// The kernel's timestamp of the frame.
    at: Stamp,
}

/// Reads one frame, with the interface and direction it was seen in and the
/// kernel's timestamp (SCM_TIMESTAMPNS).
fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<Frame> {
    // SAFETY: sockaddr_ll is plain data, for which all zeroes is valid.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut data = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // Room for one timespec control message, aligned as cmsghdr needs.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data, for which all zeroes is valid.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
    message.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    message.msg_iov = &mut data;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `message` refers to a live local of the size given.
    let count = unsafe { libc::recvmsg(fd, &mut message, libc::MSG_DONTWAIT) };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Frame {
        length: (count as usize).min(buffer.len()),
        ifindex: from.sll_ifindex,
        packet_type: from.sll_pkttype,
        at: frame_timestamp(&message).unwrap_or_else(clock::now),
    })
}

/// The SCM_TIMESTAMPNS control message of a received frame.
fn frame_timestamp(message: &libc::msghdr) -> Option<Stamp> {
    // SAFETY: `message` was filled by recvmsg; the CMSG macros walk its
    // control buffer within msg_controllen.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let time: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                return Some(clock::from_timespec(
                    time.tv_sec as i64,
                    time.tv_nsec as i64,
                ));
            }
            header = libc::CMSG_NXTHDR(message, header);
        }
    }
    None
}

/// The packet socket's fd as the reactor sees it; [`Capture`] owns it.
struct PacketFd(RawFd);

impl AsRawFd for PacketFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Drains the packet socket whenever epoll says frames are waiting.
async fn read_loop(io: AsyncFd<PacketFd>, capture: Arc<Capture>) {
    loop {
        let Ok(mut guard) = io.readable().await else {
            tracing::warn!("the packet socket failed; the wire view stops");
            return;
        };
        // Clear first: a frame that lands during the drain sets readiness
        // again, so none is left waiting for the next one.
        guard.clear_ready();
        capture.drain();
    }
}

/// The TCP segment in an Ethernet frame, if it carries IPv4 and TCP.
///
/// The frame may be cut after its headers and the preview (the filter keeps
/// [`bpf::SNAP_BYTES`]); the payload's length comes from the IP header.
pub fn parse(frame: &[u8], at: Stamp) -> Option<WireSegment> {
    let packet = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let Some(LaxNetSlice::Ipv4(ip)) = &packet.net else {
        return None;
    };
    let Some(TransportSlice::Tcp(tcp)) = &packet.transport else {
        return None;
    };
    let header = ip.header();
    let src_ip: Ipv4Addr = header.source_addr();
    let dst_ip: Ipv4Addr = header.destination_addr();
    let mut flags = Vec::new();
    for (set, name) in [
        (tcp.syn(), "SYN"),
        (tcp.ack(), "ACK"),
        (tcp.psh(), "PSH"),
        (tcp.fin(), "FIN"),
        (tcp.rst(), "RST"),
        (tcp.urg(), "URG"),
        (tcp.ece(), "ECE"),
        (tcp.cwr(), "CWR"),
    ] {
        if set {
            flags.push(name);
        }
    }
    let payload = tcp.payload();
    let len = usize::from(header.total_len())
        .saturating_sub(usize::from(header.ihl()) * 4)
        .saturating_sub(usize::from(tcp.data_offset()) * 4);
    Some(WireSegment {
        at,
        src: SocketAddrV4::new(src_ip, tcp.source_port()),
        dst: SocketAddrV4::new(dst_ip, tcp.destination_port()),
        flags,
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        win: tcp.window_size(),
        len: len as u32,
        payload: payload[..payload.len().min(PREVIEW_BYTES)].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn parses_an_ethernet_tcp_frame() {
        let builder = PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(50000, 7001, 1000, 65495)
            .psh()
            .ack(2000);
        let payload = b"hello";
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut frame, payload).expect("a frame");
        let segment = parse(&frame, 7).expect("a TCP segment");
        assert_eq!(segment.at, 7);
        assert_eq!(segment.src, "127.0.0.1:50000".parse().expect("addr"));
        assert_eq!(segment.dst.port(), 7001);
        assert_eq!(segment.flags, vec!["ACK", "PSH"]);
        assert_eq!((segment.seq, segment.ack, segment.len), (1000, 2000, 5));
        assert_eq!(segment.payload, b"hello");
        assert!(parse(&frame[..20], 7).is_none());
        // Cut after the headers and two payload bytes, as the filter cuts
        // big frames: the length still comes from the IP header.
        let cut = parse(&frame[..frame.len() - 3], 7).expect("a cut segment");
        assert_eq!((cut.len, cut.payload.as_slice()), (5, &b"he"[..]));
    }

    #[test]
    fn routes_by_connection_never_by_port_alone() {
        // Routing never reads the socket, so any socket stands in for it.
        let socket = OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").expect("a socket"));
        let capture = Capture {
            routes: Mutex::new(Routes::default()),
            reader: Mutex::new(Reader {
                socket,
                buffer: Vec::new(),
                loopback_index: 1,
            }),
            transitions: Err("not in this test".into()),
        };
        let route = |capacity: usize| {
            let (sender, receiver) = mpsc::channel(capacity);
            let dropped = Arc::new(AtomicU64::new(0));
            (LabRoute { sender, dropped }, receiver)
        };
        let addr = |text: &str| -> SocketAddrV4 { text.parse().expect("addr") };
        let segment = |src: &str, dst: &str| {
            Observation::Segment(WireSegment {
                at: 0,
                src: addr(src),
                dst: addr(dst),
                flags: vec!["ACK"],
                seq: 1,
                ack: 0,
                win: 0,
                len: 0,
                payload: Vec::new(),
            })
        };
        let (lab_a, mut from_a) = route(16);
        let (lab_b, mut from_b) = route(16);
        // Lab A listens on 127.0.0.1:7002; lab B has 127.0.0.2:7002 bound.
        capture.register(1, RouteKey::Listener(addr("127.0.0.1:7002")), 0, &lab_a);
        capture.register(2, RouteKey::Listener(addr("127.0.0.2:7002")), 0, &lab_b);
        capture.route(segment("127.0.0.1:50000", "127.0.0.1:7002"));
        assert!(from_a.try_recv().is_ok());
        assert!(
            from_b.try_recv().is_err(),
            "the same port elsewhere is not B's"
        );
        // A connection of lab B, both ways.
        capture.register(
            2,
            RouteKey::Connection(addr("127.0.0.1:50001"), addr("127.0.0.1:9000")),
            0,
            &lab_b,
        );
        capture.route(segment("127.0.0.1:9000", "127.0.0.1:50001"));
        assert!(from_b.try_recv().is_ok());
        assert!(from_a.try_recv().is_err());
        // Something that was nobody's is handed over once it becomes A's,
        // but nothing from before its socket was made.
        capture.route(segment("127.0.0.1:50002", "127.0.0.1:9001"));
        let key = RouteKey::Connection(addr("127.0.0.1:50002"), addr("127.0.0.1:9001"));
        capture.register(1, key, 1, &lab_a);
        assert!(from_a.try_recv().is_err());
        capture.route(segment("127.0.0.1:50003", "127.0.0.1:9001"));
        let key = RouteKey::Connection(addr("127.0.0.1:50003"), addr("127.0.0.1:9001"));
        capture.register(1, key, 0, &lab_a);
        assert!(from_a.try_recv().is_ok());
        capture.unregister_lab(1);
        capture.route(segment("127.0.0.1:50000", "127.0.0.1:7002"));
        assert!(from_a.try_recv().is_err());
        // A full lab queue drops and counts; the capture never waits.
        let (lab_c, _from_c) = route(1);
        capture.register(3, RouteKey::Listener(addr("0.0.0.0:7003")), 0, &lab_c);
        for _ in 0..3 {
            capture.route(segment("127.0.0.1:50004", "127.0.0.9:7003"));
        }
        assert_eq!(lab_c.dropped.load(Ordering::Relaxed), 2);
    }
}
