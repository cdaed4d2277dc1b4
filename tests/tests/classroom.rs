//! `relay --classroom`: it prints the student URL, its QR code and the
//! presenter's URL; the token makes a browser the presenter of the shared
//! lab, a wrong one is refused, and `?follow` follows that lab.

use protocol::{ErrorCode, EventBody, Seat};
use socket_flow_tests::follower::Follower;
use socket_flow_tests::lab_client::{LabClient, conversation};
use socket_flow_tests::relay_process::RelayProcess;

#[tokio::test]
async fn the_teacher_presents_with_the_printed_token_and_the_class_follows() {
    let (relay, printed) = RelayProcess::start_printing(&["--classroom"], "?present=").await;
    let text = printed.join("\n");
    assert!(
        printed.iter().any(|line| line.trim().ends_with("/?follow")),
        "the student URL: {text}"
    );
    assert!(
        printed
            .iter()
            .filter(|line| line.contains('▀') || line.contains('▄'))
            .count()
            > 10,
        "a QR code of half blocks: {text}"
    );
    let token = printed
        .iter()
        .find_map(|line| line.trim().split("?present=").nth(1))
        .unwrap_or_else(|| panic!("the presenter URL: {text}"));
    assert_eq!(token.len(), 32, "128 bits in hex");

    // A wrong token is refused before any WebSocket.
    let wrong = format!(
        "{}?present=00000000000000000000000000000000",
        relay.ws_url()
    );
    match tokio_tungstenite::connect_async(&wrong).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("a wrong token is refused with 403: {other:?}"),
    }

    let mut presenter = LabClient::connect(&format!("{}?present={token}", relay.ws_url())).await;
    assert_eq!(presenter.hello.role, Some(Seat::Presenter));
    let mut student = Follower::connect(&relay.ws_url(), "").await;
    // A student's own lab is still there for the asking.
    let own = LabClient::connect(&relay.ws_url()).await;
    assert_eq!(own.hello.role, Some(Seat::Owner));

    conversation(&mut presenter).await;
    let last = presenter.events.last().expect("events").seq;
    student.until_seq(last).await;
    let EventBody::Hello(hello) = &student.events[0].body else {
        panic!("hello first");
    };
    assert_eq!(hello.role, Some(Seat::Viewer));
    assert_eq!(student.events[1..], presenter.events[1..last as usize]);
    student.send_text(r#"{"id": 1, "op": "reset"}"#).await;
    while student.own.is_empty() {
        student.next().await;
    }
    assert!(matches!(&student.own[0].body, EventBody::Error(e) if e.code == ErrorCode::ReadOnly));

    let (status, content_type, svg) =
        socket_flow_tests::http_get(&format!("{}qr.svg", relay.url)).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "image/svg+xml");
    assert!(String::from_utf8_lossy(&svg).contains("<svg"));
    let (status, content_type, page) =
        socket_flow_tests::http_get(&format!("{}join", relay.url)).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("<svg") && page.contains("/?follow"), "{page}");
}
