//! The wire view against an independent capture: every segment of a lab's
//! conversation appears exactly once as a `segment` event with the kernel's
//! own numbers, each lab gets only its own, and an unprivileged relay says
//! that the wire view is off. These tests need root (CI runs as root).

use std::collections::BTreeSet;
use std::time::Duration;

use protocol::{Cause, EventBody, Segment};
use socket_flow_tests::lab_client::{LabClient, conversation};
use socket_flow_tests::relay_process::RelayProcess;
use socket_flow_tests::sniffer::{Seen, Sniffer};

fn as_seen(segment: &Segment) -> Seen {
    Seen {
        src: segment.src.parse().expect("src"),
        dst: segment.dst.parse().expect("dst"),
        flags: segment
            .flags
            .iter()
            .map(|flag| match flag.as_str() {
                "SYN" => "SYN",
                "ACK" => "ACK",
                "PSH" => "PSH",
                "FIN" => "FIN",
                "RST" => "RST",
                "URG" => "URG",
                "ECE" => "ECE",
                _ => "CWR",
            })
            .collect::<BTreeSet<_>>(),
        seq: segment.tcp_seq,
        ack: segment.tcp_ack,
        len: segment.len,
    }
}

#[tokio::test]
async fn every_segment_appears_once_with_the_kernels_numbers() {
    let sniffer = Sniffer::start();
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    assert!(
        lab.hello.capture,
        "as root the relay captures: {:?}",
        lab.hello.capture_reason
    );

    let (server_port, client_port, [connect_id, send_id, close_id, _]) =
        conversation(&mut lab).await;

    // The conversation ends with the second FIN's ACK. Wait until the
    // independent capture has it, then until the relay reported as many.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let independent = loop {
        let seen = sniffer.between(server_port, client_port);
        let fins = seen
            .iter()
            .filter(|segment| segment.flags.contains("FIN"))
            .count();
        let last_is_ack = seen
            .last()
            .is_some_and(|segment| segment.flags == BTreeSet::from(["ACK"]));
        if fins == 2 && last_is_ack {
            break seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the conversation never finished: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let reported: Vec<Segment> = loop {
        let reported: Vec<Segment> = lab
            .segments()
            .into_iter()
            .filter(|segment| {
                let seen = as_seen(segment);
                let ports = [seen.src.port(), seen.dst.port()];
                ports.contains(&server_port) && ports.contains(&client_port)
            })
            .collect();
        if reported.len() >= independent.len() {
            break reported;
        }
        lab.next_event().await;
    };

    let mut expected = independent.clone();
    let mut got: Vec<Seen> = reported.iter().map(as_seen).collect();
    expected.sort();
    got.sort();
    assert_eq!(
        got, expected,
        "the relay reports exactly the segments on the wire"
    );

    let syns: Vec<&Segment> = reported
        .iter()
        .filter(|segment| {
            segment.flags.contains(&"SYN".to_string())
                && !segment.flags.contains(&"ACK".to_string())
        })
        .collect();
    assert_eq!(syns.len(), 1, "one SYN for one connect");
    assert_eq!((syns[0].cause, syns[0].id), (Cause::Call, Some(connect_id)));
    assert_eq!(syns[0].rel_seq, 0);
    let data: Vec<&Segment> = reported.iter().filter(|segment| segment.len > 0).collect();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].len, 5);
    assert_eq!(data[0].payload.as_deref(), Some("hello"));
    assert_eq!((data[0].rel_seq, data[0].id), (1, Some(send_id)));
    let fins: Vec<&Segment> = reported
        .iter()
        .filter(|segment| segment.flags.contains(&"FIN".to_string()))
        .collect();
    assert_eq!(fins.len(), 2, "two FINs");
    assert_eq!(
        fins[0].id,
        Some(close_id),
        "the first FIN is the client's close"
    );
    let syn_ack = reported
        .iter()
        .find(|segment| {
            segment.flags.contains(&"SYN".to_string()) && segment.flags.contains(&"ACK".to_string())
        })
        .expect("a SYN-ACK");
    assert_eq!(
        syn_ack.cause,
        Cause::Kernel,
        "the kernel answers the SYN on its own"
    );
    assert!(
        reported
            .iter()
            .all(|segment| segment.src_sock.is_some() && segment.dst_sock.is_some()),
        "both ends of every segment are lab sockets"
    );
}

#[tokio::test]
async fn two_labs_get_only_their_own_segments() {
    let relay = RelayProcess::start(&[]).await;
    let mut first = LabClient::connect(&relay.ws_url()).await;
    let mut second = LabClient::connect(&relay.ws_url()).await;
    let (first_ports, second_ports) =
        tokio::join!(conversation(&mut first), conversation(&mut second));
    for (lab, (server, client, _)) in [(&mut first, first_ports), (&mut second, second_ports)] {
        // The data segment shows the capture reached this lab.
        lab.until(
            "this lab's data segment",
            |event| matches!(&event.body, EventBody::Segment(segment) if segment.len == 5),
        )
        .await;
        for segment in lab.segments() {
            let seen = as_seen(&segment);
            for port in [seen.src.port(), seen.dst.port()] {
                assert!(
                    port == server || port == client,
                    "a segment of another lab: {segment:?}"
                );
            }
        }
    }
    assert_ne!(
        first_ports.0, second_ports.0,
        "the labs have servers of their own"
    );
}

#[tokio::test]
async fn an_unprivileged_relay_says_the_wire_view_is_off_and_works() {
    let relay = RelayProcess::start_unprivileged(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    assert!(!lab.hello.capture);
    let reason = lab.hello.capture_reason.clone().expect("a reason");
    assert!(reason.contains("CAP_NET_RAW"), "{reason}");
    conversation(&mut lab).await;
    assert!(
        lab.segments().is_empty(),
        "nothing is invented to fill the gap"
    );
}
