//! A lab's captured frames as pcapng, for Wireshark: one Ethernet
//! interface with nanosecond timestamps (the kernel's own), the frames'
//! real bytes as the capture kept them, and a comment on each naming the
//! call that sent it, or saying that the kernel sent it on its own.

use std::borrow::Cow;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

use crate::engine::CapturedFrame;

/// The comment on a frame no call of the lab sent.
const KERNEL_OWN: &str = "sent by the kernel on its own: no call of the lab made it";

/// Writes `frames` as a pcapng file.
pub fn write<'a>(frames: impl Iterator<Item = &'a CapturedFrame>) -> Result<Vec<u8>, String> {
    let failed = |error: pcap_file::PcapError| format!("could not write pcapng: {error}");
    let mut writer = PcapNgWriter::new(Vec::new()).map_err(failed)?;
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: crate::bpf::SNAP_BYTES,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Borrowed("socket-flow lab")),
                // Nanoseconds, as the kernel stamped the frames.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })
        .map_err(failed)?;
    for frame in frames {
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(frame.at),
                original_len: frame.original_len,
                data: Cow::Borrowed(&frame.bytes),
                options: vec![EnhancedPacketOption::Comment(Cow::Borrowed(
                    frame.call.as_deref().unwrap_or(KERNEL_OWN),
                ))],
            })
            .map_err(failed)?;
    }
    Ok(writer.into_inner())
}
