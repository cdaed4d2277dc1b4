//! Following a lab (`/ws?follow=CODE`, or a classroom's shared lab with
//! `?follow`): every follower sees the lab's events exactly as its own
//! browser did, seq for seq, whether it joined before the lesson or in the
//! middle of it; it may not drive the lab; and the lab's browser is told how
//! many follow.

use protocol::{ErrorCode, Event, EventBody, Op, Role, Seat};
use socket_flow_tests::follower::Follower;
use socket_flow_tests::lab_client::{ConnectedPair, LabClient, connected_pair, conversation};
use socket_flow_tests::relay_process::RelayProcess;

/// The lab's events as a follower should see them: the same, but for the
/// hello, which names the follower's role.
fn as_followed(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .cloned()
        .map(|mut event| {
            if let EventBody::Hello(hello) = &mut event.body {
                hello.role = Some(Seat::Viewer);
            }
            event
        })
        .collect()
}

fn viewers(count: u32) -> impl Fn(&Event) -> bool {
    move |event| matches!(&event.body, EventBody::Viewers(v) if v.count == count)
}

#[tokio::test]
async fn fifty_students_see_the_presenters_lesson_seq_for_seq() {
    let (relay, printed) = RelayProcess::start_printing(&["--classroom"], "?present=").await;
    let token = printed
        .iter()
        .find_map(|line| line.trim().split("?present=").nth(1))
        .expect("the presenter URL");
    let mut lab = LabClient::connect(&format!("{}?present={token}", relay.ws_url())).await;
    assert_eq!(lab.hello.role, Some(Seat::Presenter));
    let mut followers = Vec::new();
    for _ in 0..50 {
        // `?follow` alone: the classroom's shared lab.
        followers.push(Follower::connect(&relay.ws_url(), "").await);
    }
    lab.until("50 followers counted", viewers(50)).await;
    conversation(&mut lab).await;
    let last = lab.events.last().expect("events").seq;
    let expected = as_followed(&lab.events);
    for follower in &mut followers {
        follower.until_seq(last).await;
        assert_eq!(follower.histories.len(), 1, "nobody fell behind");
        assert_eq!(follower.histories[0].let_go, 0);
        assert_eq!(follower.events[..expected.len()], expected[..]);
    }
    // They leave, and the lab says so.
    drop(followers);
    lab.until("no follower left", viewers(0)).await;
}

#[tokio::test]
async fn a_follower_who_joins_mid_lesson_gets_the_history_then_every_new_event() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let code = lab.hello.code.clone().expect("code");
    conversation(&mut lab).await;
    let mut late = Follower::connect(&relay.ws_url(), &code).await;
    lab.until("the follower counted", viewers(1)).await;
    // The lesson goes on after it joined.
    lab.ok(Op::Socket { role: Role::Client }).await;
    let last = lab.events.last().expect("events").seq;
    late.until_seq(last).await;
    assert_eq!(late.histories.len(), 1);
    assert_eq!(late.events[..], as_followed(&lab.events)[..]);
}

#[tokio::test]
async fn a_followers_command_is_refused_as_read_only_and_it_keeps_following() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let code = lab.hello.code.clone().expect("code");
    let mut follower = Follower::connect(&relay.ws_url(), &code).await;
    follower.until_seq(1).await;
    let EventBody::Hello(hello) = &follower.events[0].body else {
        panic!("the lab's hello comes first: {:?}", follower.events[0]);
    };
    assert_eq!(hello.role, Some(Seat::Viewer));

    follower
        .send_text(r#"{"id": 7, "op": "socket", "role": "server"}"#)
        .await;
    while follower.own.is_empty() {
        follower.next().await;
    }
    let EventBody::Error(error) = &follower.own[0].body else {
        panic!("a refusal: {:?}", follower.own[0]);
    };
    assert_eq!((error.code, error.id), (ErrorCode::ReadOnly, Some(7)));

    // The lab made no socket for it, and its follower still sees it live.
    let made = lab.ok(Op::Socket { role: Role::Server }).await;
    assert_eq!(
        made.sock,
        Some(1),
        "the follower's socket() never reached the lab"
    );
    follower
        .until_seq(lab.events.last().expect("events").seq)
        .await;
    assert_eq!(follower.events[..], as_followed(&lab.events)[..]);
}

#[tokio::test]
async fn a_code_no_lab_has_cannot_be_followed() {
    let relay = RelayProcess::start(&[]).await;
    for query in ["follow=00112233445566778899aabbccddeeff", "follow"] {
        let url = format!("{}?{query}", relay.ws_url());
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 404, "{query}");
            }
            other => panic!("{query} should be refused with 404: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_follower_that_stops_reading_is_resynced_and_never_holds_up_the_lab() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let code = lab.hello.code.clone().expect("code");
    let mut stuck = Follower::connect_small(&relay.ws_url(), &code).await;
    lab.until("the follower counted", viewers(1)).await;
    let ConnectedPair { client, conn, .. } = connected_pair(&mut lab).await;
    // Far more than the follower's queue and its socket's buffers hold,
    // while it reads nothing: the lab's own browser is never held up.
    for round in 0..1_000 {
        // Each read's event carries what it read: 8 KB a round.
        let text = format!("{round:>8}").repeat(1_000);
        lab.ok(Op::Send {
            sock: client,
            data: Some(text),
            hex: None,
        })
        .await;
        lab.ok(Op::Read {
            sock: conn,
            max: Some(65_536),
        })
        .await;
    }
    let last = lab.events.last().expect("events").seq;
    assert!(last > 4_000, "enough events to overflow: {last}");
    // Now it reads: what it already had, with no gap, then the lab afresh.
    stuck.until_seq(last).await;
    let resync = stuck.histories.last().expect("a history");
    assert!(
        stuck.histories.len() >= 2 && resync.resync,
        "the follower was resynced: {:?}",
        stuck.histories
    );
    // Its fresh history is the hello and the newest events, as many as the
    // relay keeps, and it says how many it let go.
    let expected = as_followed(&lab.events);
    let kept = 1 + resync.let_go as usize;
    assert_eq!(stuck.events[0], expected[0]);
    assert_eq!(stuck.events[1..], expected[kept..]);
    let rss = socket_flow_tests::kernel::rss_bytes(relay.pid());
    assert!(rss < 100 << 20, "the relay stays small: {rss} bytes");
}
