//! An independent capture for the wire tests: a packet socket on `lo`, read
//! on a thread of its own, that owes nothing to the relay's capture.

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// A TCP segment as the independent capture saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: BTreeSet<&'static str>,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
}

/// SIOCGSTAMPNS from asm-generic/sockios.h (SIOCGSTAMPNS_OLD): the kernel's
/// timestamp of the last frame read, which the libc crate does not name.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

pub struct Sniffer {
    /// Each segment with the kernel's timestamp of its frame, in
    /// nanoseconds on CLOCK_REALTIME (from SIOCGSTAMPNS).
    seen: Arc<Mutex<Vec<(u64, Seen)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sniffer {
    /// Starts capturing every TCP segment leaving `lo`. Needs root or
    /// CAP_NET_RAW, as CI has.
    pub fn start() -> Sniffer {
        let protocol = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket(2), checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        assert!(
            fd >= 0,
            "the wire tests need a packet socket: run them as root or with CAP_NET_RAW ({})",
            std::io::Error::last_os_error()
        );
        // SAFETY: socket(2) just returned it.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zeroed sockaddr_ll is valid; the bind gets its real size.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol as u16;
        // SAFETY: a NUL-terminated literal.
        address.sll_ifindex = unsafe { libc::if_nametoindex(c"lo".as_ptr()) } as i32;
        // SAFETY: pointer and length describe `address`.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(bound, 0, "bind to lo: {}", std::io::Error::last_os_error());
        // A short receive timeout lets the thread notice `stop`.
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: pointer and length describe `timeout`.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: zeroed sockaddr_ll is valid.
                    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                    let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                    // SAFETY: buffer and address are live, of the sizes given.
                    let count = unsafe {
                        libc::recvfrom(
                            socket.as_raw_fd(),
                            buffer.as_mut_ptr().cast(),
                            buffer.len(),
                            0,
                            (&mut from as *mut libc::sockaddr_ll).cast(),
                            &mut from_len,
                        )
                    };
                    // lo shows each segment leaving and arriving; count it once.
                    if count <= 0 || from.sll_pkttype != libc::PACKET_OUTGOING {
                        continue;
                    }
                    let mut stamp = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    // SAFETY: SIOCGSTAMPNS writes the last frame's timespec.
                    unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSTAMPNS, &mut stamp) };
                    let at = stamp.tv_sec as u64 * 1_000_000_000 + stamp.tv_nsec as u64;
                    if let Some(segment) = parse(&buffer[..count as usize]) {
                        if let Ok(mut seen) = seen.lock() {
                            seen.push((at, segment));
                        }
                    }
                }
            })
        };
        Sniffer {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The segments seen so far between two ports, in order.
    pub fn between(&self, a: u16, b: u16) -> Vec<Seen> {
        self.between_timed(a, b)
            .into_iter()
            .map(|(_, segment)| segment)
            .collect()
    }

    /// The segments seen so far between two ports, each with the kernel's
    /// timestamp in nanoseconds, in the kernel's order.
    pub fn between_timed(&self, a: u16, b: u16) -> Vec<(u64, Seen)> {
        let mut seen: Vec<(u64, Seen)> = self
            .seen
            .lock()
            .map(|seen| {
                seen.iter()
                    .filter(|(_, segment)| {
                        let ports = [segment.src.port(), segment.dst.port()];
                        ports.contains(&a) && ports.contains(&b)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        seen.sort_by_key(|(at, _)| *at);
        seen
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn parse(frame: &[u8]) -> Option<Seen> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(ip)) = &packet.net else {
        return None;
    };
    let Some(TransportSlice::Tcp(tcp)) = &packet.transport else {
        return None;
    };
    let mut flags = BTreeSet::new();
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
            flags.insert(name);
        }
    }
    Some(Seen {
        src: SocketAddrV4::new(ip.header().source_addr(), tcp.source_port()),
        dst: SocketAddrV4::new(ip.header().destination_addr(), tcp.destination_port()),
        flags,
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        len: tcp.payload().len() as u32,
    })
}
