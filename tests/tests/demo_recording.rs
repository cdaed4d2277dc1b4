//! The built-in lesson the page offers when no relay can be reached
//! (`www/demo/lesson.jsonl`, made by `cargo xtask record-demo` from a real
//! relay): it reads as a recording, and holds the whole lesson on the wire.

use protocol::{EventBody, Segment};

fn segments() -> Vec<Segment> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../www/demo/lesson.jsonl"
    ))
    .expect("www/demo/lesson.jsonl is committed; `cargo xtask record-demo` makes it");
    let recording = protocol::read_recording(&text).expect("it is a recording");
    assert!(recording.damaged.is_none(), "{:?}", recording.damaged);
    assert!(recording.header.capture, "it was recorded with the wire");
    recording
        .events
        .into_iter()
        .filter_map(|(event, _)| match event.body {
            EventBody::Segment(segment) => Some(segment),
            _ => None,
        })
        .collect()
}

fn flags(segment: &Segment) -> Vec<&str> {
    segment.flags.iter().map(String::as_str).collect()
}

#[test]
fn the_built_in_lesson_holds_the_handshake_data_both_ways_and_both_fins() {
    let segments = segments();
    // The three-way handshake, in order.
    let syn = segments
        .iter()
        .position(|s| flags(s) == ["SYN"])
        .expect("a SYN");
    let client = &segments[syn].src;
    let server = &segments[syn].dst;
    let syn_ack = segments[syn..]
        .iter()
        .position(|s| flags(s) == ["SYN", "ACK"] && &s.src == server)
        .expect("a SYN+ACK")
        + syn;
    assert!(
        segments[syn_ack..]
            .iter()
            .any(|s| flags(s) == ["ACK"] && &s.src == client && s.len == 0),
        "the handshake's last ACK"
    );
    // Data both ways.
    for (from, to) in [(client, server), (server, client)] {
        assert!(
            segments
                .iter()
                .any(|s| &s.src == from && &s.dst == to && s.len > 0 && s.payload.is_some()),
            "data from {from} to {to}"
        );
    }
    // Both FINs, the client's first.
    let fins: Vec<&String> = segments
        .iter()
        .filter(|s| flags(s).contains(&"FIN"))
        .map(|s| &s.src)
        .collect();
    assert_eq!(fins, [client, server], "both FINs, the client's first");
}
