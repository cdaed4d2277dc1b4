//! How sessions and the relay end, read by an ordinary WebSocket client:
//! a close code for each cause, never a bare reset; and flags checked
//! before anything starts.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::{Op, Role};
use socket_flow_tests::flows::eventually_within;
use socket_flow_tests::kernel::{fd_count, ss_sockets};
use socket_flow_tests::lab_client::LabClient;
use socket_flow_tests::relay_process::{RelayProcess, relay_binary};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until the relay's close frame, and returns its code and reason.
async fn close_of(socket: &mut Socket) -> (CloseCode, String) {
    let deadline = Duration::from_secs(20);
    let ending = tokio::time::timeout(deadline, async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Close(Some(close))) => {
                    return Some((close.code, close.reason.to_string()));
                }
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    })
    .await
    .expect("the relay ends the session in time");
    ending.expect("a close frame with a code, not a bare ending")
}

async fn open(relay: &RelayProcess) -> Socket {
    tokio_tungstenite::connect_async(relay.ws_url())
        .await
        .expect("a lab")
        .0
}

#[tokio::test]
async fn a_frame_over_the_hard_limit_gets_1009() {
    let relay = RelayProcess::start(&[]).await;
    let mut socket = open(&relay).await;
    // 16 × the 64 KiB command limit is the hard limit.
    let huge = "x".repeat(2 * 1024 * 1024);
    let _ = socket.send(Message::Text(huge.into())).await;
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(code, CloseCode::Size, "{reason}");
}

#[tokio::test]
async fn a_protocol_violation_gets_1002() {
    use tokio::io::AsyncWriteExt;
    let relay = RelayProcess::start(&[]).await;
    let mut socket = open(&relay).await;
    // A frame with a reserved bit set, masked as a client must: RSV1 without
    // an extension that defines it is a protocol error (RFC 6455 §5.2).
    let raw = socket.get_mut();
    let tokio_tungstenite::MaybeTlsStream::Plain(stream) = raw else {
        panic!("plain TCP")
    };
    stream
        .write_all(&[0xC1, 0x81, 0, 0, 0, 0, b'x'])
        .await
        .expect("written");
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(code, CloseCode::Protocol, "{reason}");
}

#[tokio::test]
async fn sigterm_closes_every_lab_and_follower_and_exits_0() {
    let mut relay = RelayProcess::start(&[]).await;
    let pid = relay.pid();
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    for _ in 0..3 {
        lab.ok(Op::Socket { role: Role::Server }).await;
    }
    let mut other = open(&relay).await;
    // A screen that follows the lab is told too.
    let code = lab.hello.code.clone().expect("the lab's code");
    let (mut follower, _) =
        tokio_tungstenite::connect_async(format!("{}?follow={code}", relay.ws_url()))
            .await
            .expect("a follower");
    assert!(fd_count(pid) > 5);
    let asked = Instant::now();
    relay.signal(libc::SIGTERM);
    for socket in [&mut other, &mut follower] {
        let (code, reason) = close_of(socket).await;
        assert_eq!(code, CloseCode::Away);
        assert_eq!(reason, "relay shutting down");
    }
    let exit = relay.exit_code(Duration::from_secs(5)).await;
    assert_eq!(exit, Some(0), "the relay exits 0");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "within 2 s and a little: {:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_silent_browser_is_closed_after_the_idle_timeout() {
    let relay = RelayProcess::start(&["--idle-timeout", "3"]).await;
    // A client that never reads answers no ping.
    let (socket, _) = tokio_tungstenite::connect_async(relay.ws_url())
        .await
        .expect("a lab");
    let tokio_tungstenite::MaybeTlsStream::Plain(stream) = socket.get_ref() else {
        panic!("plain TCP")
    };
    let ours = stream.local_addr().expect("local").to_string();
    let started = Instant::now();
    // The kernel tells when the relay closed its end: ours is then CLOSE_WAIT.
    eventually_within(
        Duration::from_secs(15),
        "the relay closes the silent browser",
        || {
            ss_sockets()
                .iter()
                .any(|row| row.local == ours && row.state == "CLOSE_WAIT")
        },
    )
    .await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(3), "closed after {waited:?}");
    drop(socket);
}

#[tokio::test]
async fn a_slow_header_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay = RelayProcess::start(&[]).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", relay.port()))
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\n")
        .await
        .expect("written");
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    // The relay gives up on the headers and closes: read returns 0 or fails.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let _ = stream.write_all(b"X-Slow: 1\r\n").await;
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => return,
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "a trickled header kept the connection for 30 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_flags_exit_2_with_a_message() {
    for (flags, says) in [
        (vec!["--www", "/nonexistent/www"], "index.html"),
        (vec!["--lab-ip", "::1"], "IPv4"),
        (
            vec!["--lab-ip", "192.0.2.99"],
            "not an address of this machine",
        ),
        (vec!["--lab-ip", "224.0.0.1"], "unicast"),
        (vec!["--max-labs", "many"], "invalid value"),
        (vec!["--lab-ports", "80-120"], "privileged"),
        (vec!["--lab-ports", "9000-9005"], "at least 16 ports"),
        (vec!["--lab-ports", "9000"], "LOW-HIGH"),
    ] {
        let output = tokio::process::Command::new(relay_binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(&flags)
            .output()
            .await
            .expect("the relay runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{flags:?} printed no URL");
    }
}
