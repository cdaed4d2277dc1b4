//! The packet socket itself: opening it with its filter, buffer and
//! timestamps, reading the queued frames with the kernel's timestamp of
//! each, and parsing the TCP segment in one.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::bpf;
use crate::engine::clock::{self, Stamp};
use crate::engine::sys::set_int_option;

/// How many payload bytes a segment event previews.
const PREVIEW_BYTES: usize = 64;

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
    /// The frame as the capture kept it (its first [`crate::bpf::SNAP_BYTES`]),
    /// and its length on the wire: what Wireshark reads.
    pub frame: Vec<u8>,
    pub original_len: u32,
}

impl WireSegment {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// How much the kernel may queue for the packet socket before it drops
/// frames (SO_RCVBUFFORCE; the relay captures as root or with CAP_NET_RAW,
/// and only lab-port frames pass the filter).
const CAPTURE_BUFFER_BYTES: libc::c_int = 8 << 20;

/// socket(AF_PACKET, SOCK_RAW, ETH_P_ALL), bound to `lo` unless
/// `everywhere`, with the kernel's timestamp on every frame and a filter
/// that lets through only the lab ports' TCP frames.
pub(super) fn open_packet_socket(
    everywhere: bool,
    lab_ports: &RangeInclusive<u16>,
) -> io::Result<OwnedFd> {
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
    set_int_option(
        socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
        1,
    )?;
    if set_int_option(
        socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        CAPTURE_BUFFER_BYTES,
    )
    .is_err()
    {
        let _ = set_int_option(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            CAPTURE_BUFFER_BYTES,
        );
    }
    Ok(socket)
}

pub(super) fn loopback_index() -> i32 {
    // SAFETY: the argument is a NUL-terminated string literal.
    unsafe { libc::if_nametoindex(c"lo".as_ptr()) as i32 }
}

/// One frame read from the packet socket.
pub(super) struct Frame {
    pub length: usize,
    pub ifindex: i32,
    pub packet_type: u8,
    /// The kernel's timestamp of the frame.
    pub at: Stamp,
}

/// How many frames one read takes. A step's call puts a few frames in the
/// queue (a segment and its ACK), which one `recvmmsg` then reads, where
/// reading them one `recvmsg` at a time cost a system call each and one more
/// for EAGAIN.
pub(super) const BATCH: usize = 32;
/// Room for a frame: the filter cuts each to [`bpf::SNAP_BYTES`].
const FRAME_BYTES: usize = 256;
const _: () = assert!(bpf::SNAP_BYTES as usize <= FRAME_BYTES);

/// The buffers one `recvmmsg` fills, and the frames it read.
pub(super) struct Batch {
    buffers: Box<[[u8; FRAME_BYTES]; BATCH]>,
    names: [libc::sockaddr_ll; BATCH],
    /// Room for one timespec control message per frame, aligned as cmsghdr
    /// needs.
    controls: [[u64; 8]; BATCH],
}

impl Batch {
    pub(super) fn new() -> Batch {
        Batch {
            buffers: Box::new([[0; FRAME_BYTES]; BATCH]),
            // SAFETY: sockaddr_ll is plain data, for which all zeroes is valid.
            names: unsafe { std::mem::zeroed() },
            controls: [[0; 8]; BATCH],
        }
    }

    /// The bytes of the `index`th frame the last read took.
    pub(super) fn bytes(&self, index: usize, frame: &Frame) -> &[u8] {
        &self.buffers[index][..frame.length]
    }
}

/// Reads the frames queued on `fd`, up to [`BATCH`], each with the interface
/// and direction it was seen in and the kernel's timestamp
/// (SCM_TIMESTAMPNS). Fewer than [`BATCH`] means the queue is now empty;
/// none is EAGAIN.
pub(super) fn receive(fd: RawFd, batch: &mut Batch) -> io::Result<Vec<Frame>> {
    // SAFETY: iovec and mmsghdr are plain data, for which all zeroes is valid.
    let mut data: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut messages: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (index, (data, message)) in data.iter_mut().zip(messages.iter_mut()).enumerate() {
        *data = libc::iovec {
            iov_base: batch.buffers[index].as_mut_ptr().cast(),
            iov_len: FRAME_BYTES,
        };
        let header = &mut message.msg_hdr;
        header.msg_name = (&mut batch.names[index] as *mut libc::sockaddr_ll).cast();
        header.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        header.msg_iov = data;
        header.msg_iovlen = 1;
        header.msg_control = batch.controls[index].as_mut_ptr().cast();
        header.msg_controllen = std::mem::size_of_val(&batch.controls[index]) as _;
    }
    // SAFETY: every pointer in `messages` refers to a live buffer of `batch`
    // or of `data`, of the size given, for the length of the call.
    let count = unsafe {
        libc::recvmmsg(
            fd,
            messages.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(messages[..count as usize]
        .iter()
        .zip(&batch.names)
        .map(|(message, from)| Frame {
            length: (message.msg_len as usize).min(FRAME_BYTES),
            ifindex: from.sll_ifindex,
            packet_type: from.sll_pkttype,
            at: frame_timestamp(&message.msg_hdr).unwrap_or_else(clock::now),
        })
        .collect())
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
        frame: frame.to_vec(),
        // The Ethernet header, and the IP packet as long as its header says.
        original_len: (ETHERNET_HEADER + usize::from(header.total_len())).max(frame.len()) as u32,
    })
}

/// An Ethernet II header's length: what lo and the lab's interfaces carry.
const ETHERNET_HEADER: usize = 14;

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
}
