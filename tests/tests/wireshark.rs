//! "Save for Wireshark" against tshark: a lab's capture, fetched as pcapng
//! with the lab's code, holds every segment the lab reported, with the same
//! sequence numbers, acknowledgements and flags, and a comment on each
//! naming the call that sent it. Needs root (CI runs as root) and tshark.

use protocol::Segment;
use socket_flow_tests::lab_client::{LabClient, conversation};
use socket_flow_tests::relay_process::RelayProcess;

#[tokio::test]
async fn the_capture_opens_in_tshark_with_every_segment_and_its_call() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    assert!(lab.hello.capture, "this test needs the wire view (root)");
    let code = lab.hello.code.clone().expect("hello names the lab's code");
    assert_eq!(code.len(), 32, "128 bits in hex: {code}");
    conversation(&mut lab).await;
    // The last FIN's ACK closes the conversation on the wire.
    let fins = |segments: &[Segment]| {
        segments
            .iter()
            .filter(|s| s.flags.iter().any(|flag| flag == "FIN"))
            .count()
    };
    let mut reported = lab.segments();
    while fins(&reported) < 2 || reported.last().is_some_and(|s| s.flags != ["ACK"]) {
        lab.next_event().await;
        reported = lab.segments();
    }

    let (status, _, file) =
        socket_flow_tests::http_get(&format!("{}labs/{code}/capture.pcapng", relay.url)).await;
    assert_eq!(status, 200);
    eprintln!(
        "the conversation's capture: {} segments, {} bytes as pcapng",
        reported.len(),
        file.len()
    );
    let path = std::env::temp_dir().join(format!("socket-flow-{code}.pcapng"));
    std::fs::write(&path, &file).expect("the capture is saved");
    let output = std::process::Command::new("tshark")
        .args([
            "-r",
            &path.display().to_string(),
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args(["-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.flags"])
        .args(["-e", "frame.comment"])
        .output()
        .expect("tshark runs (Debian's tshark package)");
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "tshark reads it: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Vec<String>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split('|').map(str::to_string).collect())
        .collect();
    assert_eq!(
        lines.len(),
        reported.len(),
        "one packet per segment event: {lines:?}"
    );
    for (line, segment) in lines.iter().zip(&reported) {
        let flag_bits = [
            ("FIN", 0x01),
            ("SYN", 0x02),
            ("RST", 0x04),
            ("PSH", 0x08),
            ("ACK", 0x10),
        ]
        .iter()
        .filter(|(name, _)| segment.flags.iter().any(|flag| flag == name))
        .fold(0u32, |bits, (_, bit)| bits | bit);
        let tshark_flags =
            u32::from_str_radix(line[2].trim_start_matches("0x"), 16).expect("tcp.flags in hex");
        assert_eq!(
            (line[0].as_str(), line[1].as_str(), tshark_flags & 0x1f),
            (
                segment.tcp_seq.to_string().as_str(),
                segment.tcp_ack.to_string().as_str(),
                flag_bits
            ),
            "{line:?} is {segment:?}"
        );
        assert!(!line[3].is_empty(), "every packet has a comment: {line:?}");
    }
    let syn = lines
        .iter()
        .zip(&reported)
        .find(|(_, segment)| segment.flags == ["SYN"])
        .expect("the SYN");
    assert!(
        syn.0[3].starts_with("connect("),
        "the SYN names the connect() that sent it: {:?}",
        syn.0[3]
    );

    // A code no lab has gets nothing.
    let (status, _, _) = socket_flow_tests::http_get(&format!(
        "{}labs/{}/capture.pcapng",
        relay.url,
        "0".repeat(32)
    ))
    .await;
    assert_eq!(status, 404);
}
