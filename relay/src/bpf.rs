//! The classic BPF program on the capture's packet socket: the kernel hands
//! the relay only IPv4 TCP frames with a port in the lab range, and on `lo`
//! only the leaving copy of each. Everything else on the machine, however
//! busy, never reaches the relay, nor fills its socket's buffer.

use std::io;
use std::ops::RangeInclusive;
use std::os::fd::RawFd;

// Opcodes from linux/filter.h.
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_W_ABS: u16 = 0x20;
const LDX_B_MSH: u16 = 0xb1;
const LD_H_IND: u16 = 0x48;
const JEQ: u16 = 0x15;
const JSET: u16 = 0x45;
const JGE: u16 = 0x35;
const JGT: u16 = 0x25;
const RET: u16 = 0x06;
/// The ancillary load of the frame's packet type (`SKF_AD_OFF + SKF_AD_PKTTYPE`).
const PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
/// How much of a frame the filter keeps: the Ethernet, IP and TCP headers
/// with room for options, and the 64 bytes a segment event previews. Bulk
/// data then costs the socket's buffer a few hundred bytes a frame, not 64 KiB.
pub const SNAP_BYTES: u32 = 14 + 60 + 60 + 64;
const WHOLE: u32 = SNAP_BYTES;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The program: IPv4, TCP, not a later fragment, a source or destination
/// port in `ports`; with `skip_arriving`, not an arriving (PACKET_HOST) copy.
pub fn lab_ports(ports: &RangeInclusive<u16>, skip_arriving: bool) -> Vec<libc::sock_filter> {
    let (low, high) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let mut program = Vec::new();
    if skip_arriving {
        // A PACKET_HOST (0) copy on lo is the arriving twin of one already seen.
        program.push(op(LD_W_ABS, 0, 0, PKTTYPE));
        program.push(op(JEQ, 11, 0, libc::PACKET_HOST as u32));
    }
    program.extend([
        op(LD_H_ABS, 0, 0, 12),  // ethertype
        op(JEQ, 0, 9, 0x0800),   // IPv4, else drop
        op(LD_B_ABS, 0, 0, 23),  // IP protocol
        op(JEQ, 0, 7, 6),        // TCP, else drop
        op(LD_H_ABS, 0, 0, 20),  // fragment offset
        op(JSET, 5, 0, 0x1fff),  // a later fragment has no ports: drop
        op(LDX_B_MSH, 0, 0, 14), // X = IP header length
        op(LD_H_IND, 0, 0, 14),  // source port
        op(JGE, 0, 1, low),
        op(JGT, 0, 3, high),    // in range: accept
        op(LD_H_IND, 0, 0, 16), // destination port
        op(JGE, 0, 2, low),
        op(JGT, 1, 0, high),
    ]);
    program.push(op(RET, 0, 0, WHOLE));
    program.push(op(RET, 0, 0, 0));
    // Fix the two jumps the skip and the port checks make to the ends.
    fix_jumps(&mut program, skip_arriving);
    program
}

/// Points every jump at "accept" or "drop", counted from where it stands:
/// the table above is written with the ends in mind, and this keeps the
/// offsets right whether or not the packet-type check leads it.
fn fix_jumps(program: &mut [libc::sock_filter], skip_arriving: bool) {
    let accept = program.len() - 2;
    let drop = program.len() - 1;
    let start = if skip_arriving { 2 } else { 0 };
    let to = |from: usize, target: usize| (target - from - 1) as u8;
    if skip_arriving {
        program[1].jt = to(1, drop);
    }
    let at = |index: usize| start + index;
    program[at(1)].jf = to(at(1), drop);
    program[at(3)].jf = to(at(3), drop);
    program[at(5)].jt = to(at(5), drop);
    program[at(8)].jf = to(at(8), at(10));
    program[at(9)].jt = to(at(9), at(10));
    program[at(9)].jf = to(at(9), accept);
    program[at(11)].jf = to(at(11), drop);
    program[at(12)].jt = to(at(12), drop);
    program[at(12)].jf = to(at(12), accept);
}

/// Attaches the program to a socket (SO_ATTACH_FILTER).
pub fn attach(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the pointer and length describe `filter`, whose program lives
    // across the call; the kernel copies it.
    let status = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&filter as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if status < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program over a frame, as the kernel would, for the
    /// few opcodes it uses. The packet type is given, as the kernel knows it.
    fn run(program: &[libc::sock_filter], frame: &[u8], packet_type: u32) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: usize| u32::from(frame[at]);
        let half = |at: usize| u32::from(u16::from_be_bytes([frame[at], frame[at + 1]]));
        loop {
            let i = program[pc];
            pc += 1;
            let jump = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
            match i.code {
                LD_W_ABS if i.k == PKTTYPE => a = packet_type,
                LD_H_ABS => a = half(i.k as usize),
                LD_B_ABS => a = byte(i.k as usize),
                LDX_B_MSH => x = 4 * (byte(i.k as usize) & 0xf),
                LD_H_IND => a = half((x + i.k) as usize),
                JEQ => pc += jump(a == i.k),
                JSET => pc += jump(a & i.k != 0),
                JGE => pc += jump(a >= i.k),
                JGT => pc += jump(a > i.k),
                RET => return i.k,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    fn tcp_frame(src: u16, dst: u16) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(src, dst, 1, 1024);
        let mut frame = Vec::new();
        builder.write(&mut frame, b"x").expect("a frame");
        frame
    }

    #[test]
    fn only_lab_port_tcp_passes() {
        let ports = 7001..=7999;
        let program = lab_ports(&ports, true);
        let outgoing = libc::PACKET_OUTGOING as u32;
        assert_eq!(run(&program, &tcp_frame(50000, 7001), outgoing), WHOLE);
        assert_eq!(run(&program, &tcp_frame(7999, 50000), outgoing), WHOLE);
        assert_eq!(run(&program, &tcp_frame(50000, 8000), outgoing), 0);
        assert_eq!(run(&program, &tcp_frame(7000, 22), outgoing), 0);
        assert_eq!(
            run(&program, &tcp_frame(50000, 7001), libc::PACKET_HOST as u32),
            0,
            "the arriving twin on lo"
        );
        let everywhere = lab_ports(&ports, false);
        assert_eq!(
            run(
                &everywhere,
                &tcp_frame(50000, 7500),
                libc::PACKET_HOST as u32
            ),
            WHOLE
        );
        let udp = {
            let builder = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
                .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
                .udp(50000, 7001);
            let mut frame = Vec::new();
            builder.write(&mut frame, b"x").expect("a frame");
            frame
        };
        assert_eq!(run(&everywhere, &udp, 0), 0);
    }
}
