//! The wire view: one packet socket for the whole relay, which reads every
//! TCP segment on the labs' interfaces and hands each to the labs that own
//! one of its ports. It never blocks a session (it is a task of its own, and
//! hands segments over unbounded channels) and a lab only ever receives
//! segments to or from its own ports.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// One TCP segment as it crossed an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireSegment {
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

/// How many payload bytes a segment event previews.
const PREVIEW_BYTES: usize = 64;
/// Segments that matched no lab are kept this long, so that a port a lab
/// registers right after its SYN went out (connect's ephemeral port) still
/// gets that SYN.
const UNMATCHED_KEEP: Duration = Duration::from_secs(2);
const UNMATCHED_MAX: usize = 512;

pub type LabId = u64;

/// The relay's capture: which lab owns which port.
pub struct Capture {
    routes: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    by_port: HashMap<u16, Vec<(LabId, mpsc::UnboundedSender<WireSegment>)>>,
    unmatched: VecDeque<(Instant, WireSegment)>,
}

impl std::fmt::Debug for Capture {
    // The routes hold channels; their count says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports = self
            .routes
            .lock()
            .map(|routes| routes.by_port.len())
            .unwrap_or(0);
        write!(f, "Capture({ports} ports routed)")
    }
}

impl Capture {
    /// Opens the packet socket and starts reading. `lab_ip` decides the
    /// interfaces: loopback alone, or every interface when lab servers are
    /// reachable from outside. Fails with the reason when the relay lacks
    /// CAP_NET_RAW.
    pub fn start(lab_ip: IpAddr) -> Result<Arc<Capture>, String> {
        let everywhere = !lab_ip.is_loopback();
        let (socket, ignores_outgoing) = open_packet_socket(everywhere).map_err(|error| {
            if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                "The relay may not capture packets (it lacks CAP_NET_RAW). Run it as root, or \
                 grant it with `sudo setcap cap_net_raw+ep target/release/relay`."
                    .to_string()
            } else {
                format!("The relay could not open a packet socket: {error}.")
            }
        })?;
        let loopback_index = loopback_index();
        // SAFETY: the OwnedFd keeps the packet socket open for the
        // registration's life and always reports the same fd.
        let io = unsafe { AsyncFd::register(socket) }
            .map_err(|error| format!("The relay could not watch its packet socket: {error}."))?;
        let capture = Arc::new(Capture {
            routes: Mutex::new(Routes::default()),
        });
        tokio::spawn(read_loop(
            io,
            loopback_index,
            ignores_outgoing,
            Arc::clone(&capture),
        ));
        Ok(capture)
    }

    /// Sends segments to or from `port` to this lab, including any that
    /// arrived in the last moments before the lab knew the port.
    pub fn register(&self, lab: LabId, port: u16, segments: &mpsc::UnboundedSender<WireSegment>) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let owners = routes.by_port.entry(port).or_default();
        if owners.iter().any(|(owner, _)| *owner == lab) {
            return;
        }
        owners.push((lab, segments.clone()));
        let now = Instant::now();
        let Routes { unmatched, .. } = &mut *routes;
        unmatched.retain(|(seen, segment)| {
            let mine = segment.src.port() == port || segment.dst.port() == port;
            if mine && now.duration_since(*seen) < UNMATCHED_KEEP {
                let _ = segments.send(segment.clone());
            }
            !mine
        });
    }

    pub fn unregister(&self, lab: LabId, port: u16) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if let Some(owners) = routes.by_port.get_mut(&port) {
            owners.retain(|(owner, _)| *owner != lab);
            if owners.is_empty() {
                routes.by_port.remove(&port);
            }
        }
    }

    pub fn unregister_lab(&self, lab: LabId) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        routes.by_port.retain(|_, owners| {
            owners.retain(|(owner, _)| *owner != lab);
            !owners.is_empty()
        });
    }

    fn route(&self, segment: WireSegment) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let mut delivered: Vec<LabId> = Vec::new();
        for port in [segment.src.port(), segment.dst.port()] {
            for (lab, sender) in routes.by_port.get(&port).into_iter().flatten() {
                // A segment between two ports of one lab goes to it once.
                if !delivered.contains(lab) {
                    delivered.push(*lab);
                    let _ = sender.send(segment.clone());
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
            routes.unmatched.push_back((now, segment));
        }
    }
}

/// socket(AF_PACKET, SOCK_RAW, ETH_P_ALL), bound to `lo` unless `everywhere`.
/// On `lo` alone it also asks the kernel not to copy outgoing frames
/// (PACKET_IGNORE_OUTGOING, Linux 4.20): every segment on `lo` also arrives,
/// so that halves the frames read without losing one. Returns whether it did.
fn open_packet_socket(everywhere: bool) -> io::Result<(OwnedFd, bool)> {
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
    let ignores_outgoing = !everywhere && {
        let on: libc::c_int = 1;
        // SAFETY: the pointer and length describe `on`.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    };
    Ok((socket, ignores_outgoing))
}

fn loopback_index() -> i32 {
    // SAFETY: the argument is a NUL-terminated string literal.
    unsafe { libc::if_nametoindex(c"lo".as_ptr()) as i32 }
}

/// One frame and the interface and direction it was seen in.
fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<(usize, i32, u8)> {
    // SAFETY: sockaddr_ll is plain data, for which all zeroes is valid.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the buffer and the address are live and of the sizes given.
    let count = unsafe {
        libc::recvfrom(
            fd,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
            (&mut from as *mut libc::sockaddr_ll).cast(),
            &mut from_len,
        )
    };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((count as usize, from.sll_ifindex, from.sll_pkttype))
}

async fn read_loop(
    io: AsyncFd<OwnedFd>,
    loopback_index: i32,
    ignores_outgoing: bool,
    capture: Arc<Capture>,
) {
    let mut buffer = vec![0u8; 65536];
    loop {
        let Ok(mut guard) = io.readable().await else {
            tracing::warn!("the packet socket failed; the wire view stops");
            return;
        };
        loop {
            match guard.try_io(|inner| receive(inner.get_ref().as_raw_fd(), &mut buffer)) {
                Ok(Ok((length, ifindex, packet_type))) => {
                    // On lo every segment is seen twice, leaving and
                    // arriving; unless the kernel already dropped the
                    // leaving copies, keep those and skip the arriving ones.
                    if !ignores_outgoing
                        && ifindex == loopback_index
                        && packet_type == libc::PACKET_HOST
                    {
                        continue;
                    }
                    if let Some(segment) = parse(&buffer[..length]) {
                        capture.route(segment);
                    }
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "packet socket read failed");
                    break;
                }
                Err(_would_block) => break,
            }
        }
    }
}

/// The TCP segment in an Ethernet frame, if it carries IPv4 and TCP.
pub fn parse(frame: &[u8]) -> Option<WireSegment> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(ip)) = &packet.net else {
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
    Some(WireSegment {
        src: SocketAddrV4::new(src_ip, tcp.source_port()),
        dst: SocketAddrV4::new(dst_ip, tcp.destination_port()),
        flags,
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        win: tcp.window_size(),
        len: payload.len() as u32,
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
        let segment = parse(&frame).expect("a TCP segment");
        assert_eq!(segment.src, "127.0.0.1:50000".parse().expect("addr"));
        assert_eq!(segment.dst.port(), 7001);
        assert_eq!(segment.flags, vec!["ACK", "PSH"]);
        assert_eq!((segment.seq, segment.ack, segment.len), (1000, 2000, 5));
        assert_eq!(segment.payload, b"hello");
        assert!(parse(&frame[..20]).is_none());
    }

    #[test]
    fn routes_only_to_the_labs_that_own_a_port() {
        let capture = Capture {
            routes: Mutex::new(Routes::default()),
        };
        let (lab_a, mut from_a) = mpsc::unbounded_channel();
        let (lab_b, mut from_b) = mpsc::unbounded_channel();
        capture.register(1, 7001, &lab_a);
        capture.register(2, 7002, &lab_b);
        let segment = |src: u16, dst: u16| WireSegment {
            src: SocketAddrV4::new(Ipv4Addr::LOCALHOST, src),
            dst: SocketAddrV4::new(Ipv4Addr::LOCALHOST, dst),
            flags: vec!["SYN"],
            seq: 1,
            ack: 0,
            win: 0,
            len: 0,
            payload: Vec::new(),
        };
        capture.route(segment(50000, 7001));
        capture.route(segment(50001, 9999));
        assert_eq!(from_a.try_recv().map(|s| s.dst.port()), Ok(7001));
        assert!(from_a.try_recv().is_err());
        assert!(from_b.try_recv().is_err());
        // A port registered just after its SYN still gets it.
        capture.register(2, 50001, &lab_b);
        assert_eq!(from_b.try_recv().map(|s| s.src.port()), Ok(50001));
        capture.unregister_lab(1);
        capture.route(segment(50000, 7001));
        assert!(from_a.try_recv().is_err());
    }
}
