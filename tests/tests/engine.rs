//! The socket engine through the real relay binary and a real WebSocket, with
//! every claim checked against the kernel: /proc/PID/fd, `ss`, and outside
//! peers made with std::net.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use protocol::{
    ErrorCode, EventBody, Op, Phase, Role, ShutdownHow, SockOptName, SockOptValue, TcpState,
};
use socket_flow_tests::flows::{client_socket, connected_client, eventually, listening_server};
use socket_flow_tests::kernel::{self, fd_count, socket_inode, ss_socket_of};
use socket_flow_tests::lab_client::LabClient;
use socket_flow_tests::relay_process::RelayProcess;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_seed_flow_is_real_system_calls() {
    let relay = RelayProcess::start(&["--no-capture"]).await;
    let pid = relay.pid();
    let mut lab = LabClient::connect(&relay.ws_url()).await;

    let created = lab.ok(Op::Socket { role: Role::Server }).await;
    let server = created.sock.expect("sock");
    let server_fd = created.fd.expect("fd");
    assert_eq!(
        created.ret,
        Some(server_fd as i64),
        "socket() returns the fd, not 0"
    );
    assert!(
        socket_inode(pid, server_fd).is_some(),
        "fd {server_fd} is a socket in /proc/{pid}/fd"
    );
    assert!(
        created.c.starts_with("socket(AF_INET, SOCK_STREAM"),
        "{}",
        created.c
    );

    let bound = lab
        .ok(Op::Bind {
            sock: server,
            addr: None,
        })
        .await;
    let server_addr = bound.local.clone().expect("local");
    assert_eq!(
        bound.c,
        format!("bind({server_fd}, {{AF_INET, {server_addr}}}, 16) = 0")
    );
    let port: u16 = server_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let range = lab.hello.limits.port_range;
    assert!(
        (range[0]..=range[1]).contains(&port),
        "the default port is in the lab range"
    );

    let listened = lab
        .ok(Op::Listen {
            sock: server,
            backlog: None,
        })
        .await;
    assert_eq!(listened.c, format!("listen({server_fd}, 5) = 0"));
    let state = lab.state(server, TcpState::Listen).await;
    assert_eq!(state.backlog, Some(5));
    assert_eq!(state.queue, Some(0));
    let listening = ss_socket_of(pid, server_fd).expect("ss knows the listening socket");
    assert_eq!(listening.state, "LISTEN");
    assert_eq!(listening.local, server_addr);

    // accept blocks for real: the kernel said EAGAIN.
    let accept_id = lab.send(Op::Accept { sock: server }).await;
    let blocked = lab
        .until("accept blocked", |event| {
            matches!(&event.body, EventBody::Call(call)
                if call.id == Some(accept_id) && call.phase == Some(Phase::Blocked))
        })
        .await;
    let EventBody::Call(blocked) = blocked.body else {
        unreachable!()
    };
    assert_eq!(blocked.errno.as_deref(), Some("EAGAIN"));

    // The session is not blocked: a client of the same lab connects.
    let (client, client_fd) = client_socket(&mut lab).await;
    let connected = lab
        .ok(Op::Connect {
            sock: client,
            addr: None,
        })
        .await;
    assert_eq!(connected.peer.as_deref(), Some(server_addr.as_str()));
    let client_local = connected.local.clone().expect("connect reports local");

    // ...and the waiting accept completes with that client's address.
    let accepted = lab.outcome(accept_id).await;
    assert_eq!(accepted.phase, Some(Phase::Done));
    assert_eq!(accepted.peer.as_deref(), Some(client_local.as_str()));
    let conn = accepted.new_sock.expect("accept names the new sock");
    let conn_fd = accepted.new_fd.expect("accept names the new fd");
    assert_eq!(
        accepted.ret,
        Some(conn_fd as i64),
        "accept() returns the new fd, not 0"
    );

    lab.state(client, TcpState::Established).await;
    lab.state(conn, TcpState::Established).await;
    let client_row = ss_socket_of(pid, client_fd).expect("ss knows the client");
    assert_eq!(client_row.state, "ESTABLISHED");
    assert_eq!(client_row.local, client_local);
    assert_eq!(client_row.peer, server_addr);
    let conn_row = ss_socket_of(pid, conn_fd).expect("ss knows the connection");
    assert_eq!(conn_row.state, "ESTABLISHED");
    assert_eq!(conn_row.peer, client_local);

    let sent = lab
        .ok(Op::Send {
            sock: client,
            data: Some("hello".into()),
            hex: None,
        })
        .await;
    assert_eq!(sent.ret, Some(5));
    let read = lab
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert_eq!(read.ret, Some(5));
    assert_eq!(read.data.as_deref(), Some("hello"));
    assert_eq!(read.c, format!("read({conn_fd}, \"hello\", 1024) = 5"));

    lab.ok(Op::Send {
        sock: conn,
        data: None,
        hex: Some("00ff".into()),
    })
    .await;
    let reply = lab
        .ok(Op::Read {
            sock: client,
            max: Some(16),
        })
        .await;
    assert_eq!(
        reply.hex.as_deref(),
        Some("00ff"),
        "non-UTF-8 bytes travel as hex"
    );
    assert_eq!(reply.data, None);

    // The client closes first: the server's read sees EOF, and the client's
    // connection outlives its fd in the kernel.
    lab.ok(Op::Close { sock: client }).await;
    assert!(
        socket_inode(pid, client_fd).is_none(),
        "the client's fd is gone"
    );
    let eof = lab
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert_eq!(eof.ret, Some(0), "read returns 0 at end of file");
    lab.ok(Op::Close { sock: conn }).await;
    lab.ok(Op::Close { sock: server }).await;
    let after = lab
        .until("the client's kernel-held state", |event| {
            matches!(&event.body, EventBody::State(state)
                if state.sock == client && !state.fd_open && state.tcp == TcpState::TimeWait)
        })
        .await;
    let EventBody::State(after) = after.body else {
        unreachable!()
    };
    assert_eq!(
        after.fd, None,
        "TIME_WAIT belongs to the kernel, not to an fd"
    );
    let time_wait = kernel::ss_sockets().into_iter().find(|row| {
        row.local == client_local && row.peer == server_addr && row.state == "TIME_WAIT"
    });
    assert!(
        time_wait.is_some(),
        "ss shows the TIME_WAIT the relay reported"
    );

    // The listener's last word: the kernel forgot it at close.
    lab.until("the listener's CLOSE", |event| {
        matches!(&event.body, EventBody::State(state)
            if state.sock == server && state.tcp == TcpState::Close && !state.fd_open)
    })
    .await;
    // Keep the whole stream as an artifact: docs/protocol.md quotes it.
    let lines: Vec<String> = lab.events.iter().map(protocol::encode_event).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    std::fs::write(dir.join("seed-flow.jsonl"), lines.join("\n") + "\n").expect("written");
}

#[tokio::test]
async fn connect_completes_before_accept_is_called() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let (server, _, _) = listening_server(&mut lab).await;
    let (client, _) = client_socket(&mut lab).await;
    let connected = lab
        .ok(Op::Connect {
            sock: client,
            addr: None,
        })
        .await;
    assert_eq!(connected.phase, Some(Phase::Done));
    lab.state(client, TcpState::Established).await;
    // The kernel finished the handshake and queued the connection.
    lab.until("a queued connection", |event| {
        matches!(&event.body, EventBody::State(state)
            if state.sock == server && state.queue == Some(1))
    })
    .await;
    let accept_id = lab.send(Op::Accept { sock: server }).await;
    let accepted = lab.outcome(accept_id).await;
    assert_eq!(accepted.phase, Some(Phase::Done));
    let blocked = lab.events.iter().any(|event| {
        matches!(&event.body, EventBody::Call(call)
            if call.id == Some(accept_id) && call.phase == Some(Phase::Blocked))
    });
    assert!(!blocked, "accept with a queued connection does not block");
}

#[tokio::test]
async fn an_outsider_is_accepted_and_exchanges_bytes() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let (server, _, server_addr) = listening_server(&mut lab).await;

    let mut outsider = TcpStream::connect(server_addr).expect("the outsider connects");
    let outsider_addr = outsider.local_addr().expect("local").to_string();
    let accepted = lab.ok(Op::Accept { sock: server }).await;
    assert_eq!(accepted.peer.as_deref(), Some(outsider_addr.as_str()));
    let conn = accepted.new_sock.expect("sock");

    outsider
        .write_all(b"from nc\n")
        .expect("the outsider writes");
    let read = lab
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert_eq!(read.data.as_deref(), Some("from nc\n"));

    lab.ok(Op::Send {
        sock: conn,
        data: Some("welcome".into()),
        hex: None,
    })
    .await;
    let mut buffer = [0u8; 7];
    outsider
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    outsider
        .read_exact(&mut buffer)
        .expect("the outsider reads");
    assert_eq!(&buffer, b"welcome");
}

#[tokio::test]
async fn two_sends_can_arrive_as_one_read() {
    let relay = RelayProcess::start(&[]).await;
    let pid = relay.pid();
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let (server, _, _) = listening_server(&mut lab).await;
    let (client, _) = client_socket(&mut lab).await;
    lab.ok(Op::Connect {
        sock: client,
        addr: None,
    })
    .await;
    let accepted = lab.ok(Op::Accept { sock: server }).await;
    let conn = accepted.new_sock.expect("sock");
    let conn_fd = accepted.new_fd.expect("fd");
    for part in ["ab", "cd"] {
        lab.ok(Op::Send {
            sock: client,
            data: Some(part.into()),
            hex: None,
        })
        .await;
    }
    // Both sends are in the connection's receive queue, as ss shows...
    eventually("4 bytes queued", || {
        ss_socket_of(pid, conn_fd).is_some_and(|row| row.recv_q == 4)
    })
    .await;
    // ...and one read takes them both: TCP is a byte stream, not messages.
    let read = lab
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert_eq!(read.ret, Some(4));
    assert_eq!(read.data.as_deref(), Some("abcd"));
}

#[tokio::test]
async fn errors_are_the_kernels() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;

    // A bound server that never listened: connect is refused by the kernel.
    let created = lab.ok(Op::Socket { role: Role::Server }).await;
    let unlistened = created.sock.expect("sock");
    let bound = lab
        .ok(Op::Bind {
            sock: unlistened,
            addr: None,
        })
        .await;
    let closed_port = bound.local.expect("local");
    let (client, _) = client_socket(&mut lab).await;
    let refused = lab
        .call(Op::Connect {
            sock: client,
            addr: Some(closed_port.clone()),
        })
        .await;
    assert_eq!(refused.phase, Some(Phase::Failed));
    assert_eq!(refused.errno.as_deref(), Some("ECONNREFUSED"));
    assert_eq!(refused.message.as_deref(), Some("Connection refused"));
    assert_eq!(refused.ret, Some(-1));

    // A second bind on a bound port.
    let (second, _) = client_socket(&mut lab).await;
    let in_use = lab
        .call(Op::Bind {
            sock: second,
            addr: Some(closed_port),
        })
        .await;
    assert_eq!(in_use.errno.as_deref(), Some("EADDRINUSE"));

    // The seed's mistake: read on the listening socket.
    let (server, _, _) = listening_server(&mut lab).await;
    let not_connected = lab
        .call(Op::Read {
            sock: server,
            max: None,
        })
        .await;
    assert_eq!(not_connected.errno.as_deref(), Some("ENOTCONN"));

    // RST: the server's connection closes with SO_LINGER 0; the client's
    // send then fails.
    let (client, conn) = connected_client(&mut lab, server).await;
    lab.ok(Op::Setsockopt {
        sock: conn,
        name: SockOptName::Linger,
        value: SockOptValue::Number(0),
    })
    .await;
    lab.ok(Op::Close { sock: conn }).await;
    lab.state(client, TcpState::Close).await;
    let after_reset = lab
        .call(Op::Send {
            sock: client,
            data: Some("anyone?".into()),
            hex: None,
        })
        .await;
    assert_eq!(after_reset.phase, Some(Phase::Failed));
    let errno = after_reset.errno.as_deref();
    assert!(
        matches!(errno, Some("EPIPE" | "ECONNRESET")),
        "send after RST: {errno:?}"
    );

    // shutdown(SHUT_WR) sends FIN: the peer reads EOF.
    let (client, conn) = connected_client(&mut lab, server).await;
    lab.ok(Op::Shutdown {
        sock: client,
        how: ShutdownHow::Write,
    })
    .await;
    let eof = lab
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert_eq!(eof.ret, Some(0));
    lab.state(conn, TcpState::CloseWait).await;
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_session_goes_on() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let frame_limit = lab.hello.limits.frame_bytes as usize;

    let cases: Vec<(Message, ErrorCode, Option<u64>)> = vec![
        (Message::Text("{oops".into()), ErrorCode::BadJson, None),
        (
            Message::Text(r#"{"id":1,"op":"teleport"}"#.into()),
            ErrorCode::UnknownOp,
            Some(1),
        ),
        (
            Message::Text(r#"{"id":2,"op":"bind"}"#.into()),
            ErrorCode::BadArgs,
            Some(2),
        ),
        (
            Message::Text(r#"{"id":3,"op":"read","sock":"x"}"#.into()),
            ErrorCode::BadArgs,
            Some(3),
        ),
        (
            Message::Text(r#"{"id":4,"op":"close","sock":99}"#.into()),
            ErrorCode::BadArgs,
            Some(4),
        ),
        (
            Message::Text(
                format!(
                    r#"{{"id":5,"op":"send","sock":1,"data":"{}"}}"#,
                    "x".repeat(frame_limit)
                )
                .into(),
            ),
            ErrorCode::Limit,
            None,
        ),
        (
            Message::Binary(vec![0xff, 0xfe, b'{'].into()),
            ErrorCode::BadJson,
            None,
        ),
    ];
    for (frame, code, id) in cases {
        let mark = lab.events.len();
        lab.send_raw(frame).await;
        let error = lab.error_from(mark, id).await;
        assert_eq!(error.code, code, "{error:?}");
        assert!(error.message.len() > 10, "the message explains: {error:?}");
    }

    // A wrong-state call: accept on a socket that never listened.
    let (client, _) = client_socket(&mut lab).await;
    let mark = lab.events.len();
    let id = lab.send(Op::Accept { sock: client }).await;
    assert_eq!(
        lab.error_from(mark, Some(id)).await.code,
        ErrorCode::BadState
    );

    // A send over the limit.
    let mark = lab.events.len();
    let too_big = "y".repeat(lab.hello.limits.send_bytes as usize + 1);
    let id = lab
        .send(Op::Send {
            sock: client,
            data: Some(too_big),
            hex: None,
        })
        .await;
    assert_eq!(lab.error_from(mark, Some(id)).await.code, ErrorCode::Limit);

    // A port outside the lab range.
    let mark = lab.events.len();
    let id = lab
        .send(Op::Bind {
            sock: client,
            addr: Some("127.0.0.1:22".into()),
        })
        .await;
    assert_eq!(lab.error_from(mark, Some(id)).await.code, ErrorCode::Limit);

    // After all that, the session still works.
    let created = lab.ok(Op::Socket { role: Role::Server }).await;
    assert!(created.fd.is_some());
}

#[tokio::test]
async fn a_blocked_read_is_cancelled_by_close_and_the_session_goes_on() {
    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let (server, _, _) = listening_server(&mut lab).await;
    let (client, _) = client_socket(&mut lab).await;
    lab.ok(Op::Connect {
        sock: client,
        addr: None,
    })
    .await;
    let read_id = lab
        .send(Op::Read {
            sock: client,
            max: None,
        })
        .await;
    lab.until("read blocked", |event| {
        matches!(&event.body, EventBody::Call(call)
            if call.id == Some(read_id) && call.phase == Some(Phase::Blocked))
    })
    .await;
    // A second read on the same socket is refused while the first waits.
    let mark = lab.events.len();
    let again = lab
        .send(Op::Read {
            sock: client,
            max: None,
        })
        .await;
    assert_eq!(
        lab.error_from(mark, Some(again)).await.code,
        ErrorCode::BadState
    );

    lab.ok(Op::Close { sock: client }).await;
    let cancelled = lab.events.iter().any(|event| {
        matches!(&event.body, EventBody::Call(call)
            if call.id == Some(read_id) && call.phase == Some(Phase::Cancelled))
    });
    assert!(cancelled, "the waiting read is reported as cancelled");
    lab.ok(Op::Close { sock: server }).await;
}

#[tokio::test]
async fn sockets_close_when_the_browser_leaves() {
    let relay = RelayProcess::start(&[]).await;
    let pid = relay.pid();
    // The relay's fds before any browser came: its listener, epoll, the
    // packet socket of the wire view.
    let baseline = fd_count(pid);

    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let (server, _, _) = listening_server(&mut lab).await;
    let (client, client_fd) = client_socket(&mut lab).await;
    lab.ok(Op::Connect {
        sock: client,
        addr: None,
    })
    .await;
    lab.ok(Op::Accept { sock: server }).await;
    let read_id = lab
        .send(Op::Read {
            sock: client,
            max: None,
        })
        .await;
    lab.until(
        "read blocked",
        |event| matches!(&event.body, EventBody::Call(call) if call.id == Some(read_id)),
    )
    .await;
    assert!(fd_count(pid) >= baseline + 4, "the lab holds its sockets");
    assert!(socket_inode(pid, client_fd).is_some());

    let left = tokio::time::Instant::now();
    lab.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fd_count(pid) != baseline {
        if tokio::time::Instant::now() > deadline {
            let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|entry| {
                            format!(
                                "{:?} -> {:?}",
                                entry.file_name(),
                                std::fs::read_link(entry.path())
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let tables: Vec<String> = ["tcp", "udp", "raw", "packet", "unix", "netlink"]
                .iter()
                .map(|name| {
                    format!(
                        "== {name}\n{}",
                        std::fs::read_to_string(format!("/proc/{pid}/net/{name}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            panic!(
                "the relay's fds never returned to {baseline}: {links:#?} tables: {}",
                tables.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        left.elapsed() < Duration::from_secs(1),
        "sockets closed within a second"
    );
}

#[tokio::test]
async fn an_invalid_utf8_text_frame_is_explained_before_the_close() {
    let relay = RelayProcess::start(&[]).await;
    // tungstenite will not send a text frame that is not UTF-8, so write the
    // frame by hand over a raw handshake made by tungstenite.
    let (stream, _) = tokio_tungstenite::connect_async(relay.ws_url())
        .await
        .expect("the WebSocket opens");
    let mut tcp = stream.into_inner();
    let tcp = match &mut tcp {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("plain ws"),
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // FIN + text, masked, 2 bytes, mask 0: payload ff fe.
    tcp.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
        .await
        .expect("the frame is written");
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains("\"code\":\"bad_json\"") && text.contains("not UTF-8"),
        "the error event explains the close: {text}"
    );
}

#[tokio::test]
async fn reset_closes_every_socket_of_the_lab() {
    let relay = RelayProcess::start(&[]).await;
    let pid = relay.pid();
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let (server, server_fd, _) = listening_server(&mut lab).await;
    let (client, client_fd) = client_socket(&mut lab).await;
    lab.ok(Op::Connect {
        sock: client,
        addr: None,
    })
    .await;
    let accept_id = lab.send(Op::Accept { sock: server }).await;
    let conn_fd = lab.outcome(accept_id).await.new_fd.expect("fd");
    let reset_id = lab.send(Op::Reset).await;
    for sock in [server, client] {
        lab.until(&format!("the reset's close of sock {sock}"), |event| {
            matches!(&event.body, EventBody::Call(call)
                if call.id == Some(reset_id) && call.sock == Some(sock) && call.phase == Some(Phase::Done))
        })
        .await;
    }
    let conn = lab
        .until("the reset's close of the connection", |event| {
            matches!(&event.body, EventBody::Call(call)
                if call.id == Some(reset_id) && call.fd == Some(conn_fd) && call.phase == Some(Phase::Done))
        })
        .await;
    assert!(matches!(conn.body, EventBody::Call(_)));
    for fd in [server_fd, client_fd, conn_fd] {
        assert!(
            socket_inode(pid, fd).is_none(),
            "fd {fd} is closed after reset"
        );
    }
    // The lab goes on after a reset.
    lab.ok(Op::Socket { role: Role::Server }).await;
}
