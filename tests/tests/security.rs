//! The relay is safe with any web page open: what an attacker's page or a
//! careless client can try, against the real binary.

use socket_flow_tests::http_get_with;
use socket_flow_tests::lab_client::LabClient;
use socket_flow_tests::relay_process::RelayProcess;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The status a WebSocket upgrade got, with these headers.
/// A relay that captures, and two labs of it.
async fn two_capturing_labs() -> (RelayProcess, LabClient, LabClient) {
    let relay = RelayProcess::start(&[]).await;
    let lab_a = LabClient::connect(&relay.ws_url()).await;
    let lab_b = LabClient::connect(&relay.ws_url()).await;
    assert!(lab_a.hello.capture, "{:?}", lab_a.hello.capture_reason);
    (relay, lab_a, lab_b)
}

async fn upgrade_status(relay: &RelayProcess, headers: &[(&'static str, String)]) -> u16 {
    let mut request = relay.ws_url().into_client_request().expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(error) => panic!("no HTTP answer: {error}"),
    }
}

/// A page on a rebinding domain reaches the relay under its own name, and
/// is refused before any page or upgrade; a name the teacher allowed works.
#[tokio::test]
async fn a_rebinding_host_gets_neither_the_page_nor_a_lab() {
    let relay = RelayProcess::start(&["--allow-host", "teacher-laptop.local"]).await;
    let port = relay.port();
    let evil = format!("evil.example:{port}");
    let (status, _, body) = http_get_with(&relay.url, &[("Host", &evil)]).await;
    assert_eq!(status, 403);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("--allow-host evil.example"), "{body}");
    let status = upgrade_status(
        &relay,
        &[("Host", evil.clone()), ("Origin", format!("http://{evil}"))],
    )
    .await;
    assert_eq!(status, 403, "the upgrade is refused too");

    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("teacher-laptop.local:{port}"),
    ] {
        let (status, _, _) = http_get_with(&relay.url, &[("Host", &host)]).await;
        assert_eq!(status, 200, "{host}");
    }
    let allowed = format!("teacher-laptop.local:{port}");
    let status = upgrade_status(
        &relay,
        &[
            ("Host", allowed.clone()),
            ("Origin", format!("http://{allowed}")),
        ],
    )
    .await;
    assert_eq!(status, 101, "an allowed name opens a lab");
}

/// A client opens a lab, then stops reading its WebSocket while its lab and
/// two outsiders on the lab's port number move bulk data. Every queue is
/// bounded, so the relay's memory stays flat, the client is cut off, and
/// the memory comes back once it has gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_cannot_grow_the_relay() {
    use futures_util::SinkExt;
    use protocol::{Command, Op, Role};
    use tokio_tungstenite::tungstenite::Message;

    const FLOOD: std::time::Duration = std::time::Duration::from_secs(30);
    // A range of its own: the other tests' relays, running at the same
    // time with the default range, capture none of this flood.
    const PORT: u16 = 9077;
    let relay = RelayProcess::start(&["--lab-ports", "9001-9099"]).await;
    let pid = relay.pid();
    let baseline = socket_flow_tests::kernel::rss_bytes(pid);
    let (mut socket, _) = tokio_tungstenite::connect_async(relay.ws_url())
        .await
        .expect("a lab");
    // The lab's commands, sent blind: its sockets are numbered 1, 2, 3.
    let setup = [
        Op::Socket { role: Role::Server },
        Op::Bind {
            sock: 1,
            addr: Some(format!("127.0.0.1:{PORT}")),
        },
        Op::Listen {
            sock: 1,
            backlog: None,
        },
        Op::Socket { role: Role::Client },
        Op::Connect {
            sock: 2,
            addr: Some(format!("127.0.0.1:{PORT}")),
        },
        Op::Accept { sock: 1 },
    ];
    let mut id = 0;
    for op in setup {
        id += 1;
        let text = protocol::encode_command(&Command { id, op });
        socket.send(Message::Text(text.into())).await.expect("sent");
    }
    // Two ordinary programs move bulk data on the same port number, on
    // another loopback address, for the length of the flood.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outsiders = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let listener = std::net::TcpListener::bind(("127.0.0.2", PORT)).expect("outsider");
            let mut writer = std::net::TcpStream::connect(("127.0.0.2", PORT)).expect("connect");
            let (mut reader, _) = listener.accept().expect("accept");
            let reading = std::thread::spawn(move || {
                let mut buffer = vec![0u8; 1 << 16];
                while reader.read(&mut buffer).is_ok_and(|count| count > 0) {}
            });
            let chunk = vec![7u8; 1 << 16];
            let started = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < FLOOD {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
            drop(writer);
            let _ = reading.join();
        })
    };
    // The lab floods too, while nobody reads its events.
    let started = std::time::Instant::now();
    let mut peak = baseline;
    let mut cut_off = false;
    let payload = "x".repeat(16 * 1024);
    while started.elapsed() < FLOOD {
        peak = peak.max(socket_flow_tests::kernel::rss_bytes(pid));
        for op in [
            Op::Send {
                sock: 2,
                data: Some(payload.clone()),
                hex: None,
            },
            Op::Read {
                sock: 3,
                max: Some(65536),
            },
        ] {
            id += 1;
            let text = protocol::encode_command(&Command { id, op });
            let sent = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                socket.send(Message::Text(text.into())),
            )
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(_)) => cut_off = true,
                // The relay no longer reads us: its side is full or closed.
                Err(_) => {}
            }
        }
        if cut_off {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    outsiders.join().expect("the outsiders end");
    eprintln!(
        "flood: relay RSS {} KiB before, {} KiB at most; cut off after {:.1} s",
        baseline >> 10,
        peak >> 10,
        started.elapsed().as_secs_f64()
    );
    assert!(
        peak < 100 * 1024 * 1024,
        "relay RSS peaked at {} MiB (baseline {} MiB)",
        peak >> 20,
        baseline >> 20
    );
    drop(socket);
    // Once the client has gone, its lab ends and the memory comes back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = socket_flow_tests::kernel::rss_bytes(pid);
        if now < baseline + 16 * 1024 * 1024 {
            eprintln!("flood: relay RSS {} KiB once the client left", now >> 10);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "RSS stayed at {} MiB (baseline {} MiB)",
            now >> 20,
            baseline >> 20
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A lab port is one lab's on every address, and the capture hands a lab
/// only its own connections: not another address's traffic on the same port.
#[tokio::test]
async fn one_lab_never_sees_another_on_the_same_port_number() {
    use protocol::{ErrorCode, EventBody, Op, Role};
    use socket_flow_tests::flows::{connected_client, listening_server};

    let (_relay, mut lab_a, mut lab_b) = two_capturing_labs().await;
    let (server, _, server_addr) = listening_server(&mut lab_a).await;
    let port = server_addr.port();
    // Lab B may not take A's port, on any address.
    let other = lab_b
        .ok(Op::Socket { role: Role::Server })
        .await
        .sock
        .expect("sock");
    let from = lab_b.events.len();
    lab_b
        .send(Op::Bind {
            sock: other,
            addr: Some(format!("127.0.0.2:{port}")),
        })
        .await;
    let refused = lab_b.error_from(from, Some(lab_b.last_id())).await;
    assert_eq!(refused.code, ErrorCode::Limit);
    assert!(
        refused.message.contains("another lab"),
        "{}",
        refused.message
    );

    // Ordinary programs on another address with the same port number.
    {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.3", port)).expect("outsider");
        let mut writer = std::net::TcpStream::connect(("127.0.0.3", port)).expect("connect");
        let (mut reader, _) = listener.accept().expect("accept");
        writer.write_all(b"not for any lab").expect("written");
        let mut buffer = [0u8; 64];
        let _ = reader.read(&mut buffer).expect("read");
    }
    // Lab A's own conversation, then every segment it got is its own.
    let (client, conn) = connected_client(&mut lab_a, server).await;
    lab_a
        .ok(Op::Send {
            sock: client,
            data: Some("mine".into()),
            hex: None,
        })
        .await;
    lab_a
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    let strangers: Vec<String> = lab_a
        .events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Segment(segment)
                if segment.src.starts_with("127.0.0.3") || segment.dst.starts_with("127.0.0.3") =>
            {
                Some(format!("{} → {}", segment.src, segment.dst))
            }
            _ => None,
        })
        .collect();
    assert!(
        strangers.is_empty(),
        "lab A saw others' segments: {strangers:?}"
    );
    assert!(
        lab_a
            .events
            .iter()
            .any(|event| matches!(&event.body, EventBody::Segment(s) if s.payload.as_deref() == Some("mine"))),
        "lab A sees its own"
    );
    assert!(
        !lab_b
            .events
            .iter()
            .any(|event| matches!(event.body, EventBody::Segment(_))),
        "lab B sees nothing of A's"
    );
}

/// listen() on an unbound socket: the kernel would bind 0.0.0.0, every
/// address of the machine. The relay binds the lab's address first, with a
/// real bind() it reports, as `ss` confirms.
#[tokio::test]
async fn an_unbound_listen_binds_the_lab_address_first() {
    use protocol::{EventBody, Note, Op, OpName, Role};
    use socket_flow_tests::kernel::ss_socket_of;

    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let created = lab.ok(Op::Socket { role: Role::Server }).await;
    let sock = created.sock.expect("sock");
    let listened = lab
        .ok(Op::Listen {
            sock,
            backlog: None,
        })
        .await;
    let bind = lab
        .events
        .iter()
        .find_map(|event| match &event.body {
            EventBody::Call(call) if call.op == Some(OpName::Bind) => Some(call.clone()),
            _ => None,
        })
        .expect("the relay's bind is reported");
    assert_eq!(
        bind.id, listened.id,
        "the bind belongs to the listen command"
    );
    assert_eq!(bind.note, Some(Note::BoundBeforeListen));
    let local = listened.local.expect("local");
    assert!(local.starts_with("127.0.0.1:"), "{local}");
    let ss = ss_socket_of(relay.pid(), created.fd.expect("fd")).expect("ss sees it");
    assert_eq!(ss.state, "LISTEN");
    assert_eq!(
        ss.local, local,
        "the kernel agrees: the lab address, not 0.0.0.0"
    );
}

/// A lab connects only to this host's own addresses (from its interface
/// list, whatever net.ipv4.ip_nonlocal_bind says), or to what the teacher
/// allowed. Any other target is refused before any system call: no packet
/// leaves for it, which is why this test may name it.
#[tokio::test]
async fn connects_beyond_this_host_are_refused_without_a_system_call() {
    use protocol::{ErrorCode, EventBody, Op, Role};

    let relay = RelayProcess::start(&[]).await;
    let mut lab = LabClient::connect(&relay.ws_url()).await;
    let client = lab
        .ok(Op::Socket { role: Role::Client })
        .await
        .sock
        .expect("sock");
    for target in [
        "192.0.2.1:80",
        "169.254.169.254:80",
        "8.8.8.8:53",
        "10.1.2.3:80",
    ] {
        let mark = lab.events.len();
        let id = lab
            .send(Op::Connect {
                sock: client,
                addr: Some(target.into()),
            })
            .await;
        let refused = lab.error_from(mark, Some(id)).await;
        assert_eq!(refused.code, ErrorCode::Limit, "{target}");
        assert!(
            refused.message.contains("--allow-connect"),
            "{}",
            refused.message
        );
        assert!(
            !lab.events[mark..]
                .iter()
                .any(|event| matches!(&event.body, EventBody::Call(call) if call.id == Some(id))),
            "no system call was made for {target}"
        );
    }
    // This host's own loopback is fine: a real connect, refused by the kernel.
    let reached = lab
        .call(Op::Connect {
            sock: client,
            addr: Some("127.0.0.1:7999".into()),
        })
        .await;
    assert_eq!(reached.errno.as_deref(), Some("ECONNREFUSED"));
}

#[tokio::test]
async fn a_port_handed_on_takes_none_of_the_new_labs_traffic_with_it() {
    use protocol::{EventBody, Op, Role};
    use socket_flow_tests::flows::{connected_client, listening_server};

    let (_relay, mut lab_a, mut lab_b) = two_capturing_labs().await;
    // Lab A listens, and closes its listener: the port is free again,
    // while the capture still routes A's last moments there.
    let (server_a, _, addr_a) = listening_server(&mut lab_a).await;
    lab_a.ok(Op::Close { sock: server_a }).await;
    // Lab B gets the same port at once, and talks on it.
    let (server_b, _, addr_b) = listening_server(&mut lab_b).await;
    assert_eq!(addr_b, addr_a, "the pool hands the freed port on");
    let (client, conn) = connected_client(&mut lab_b, server_b).await;
    lab_b
        .ok(Op::Send {
            sock: client,
            data: Some("for B only".into()),
            hex: None,
        })
        .await;
    lab_b
        .ok(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert!(
        lab_b.events.iter().any(|event| matches!(&event.body,
            EventBody::Segment(segment) if segment.payload.as_deref() == Some("for B only"))),
        "lab B sees its own"
    );
    // A step of A's after all that: whatever the capture routed to A is in
    // its events by the step's end. A never connected: none is A's.
    lab_a.ok(Op::Socket { role: Role::Client }).await;
    let strangers: Vec<String> = lab_a
        .events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Segment(segment) => Some(format!(
                "{} → {} {:?}",
                segment.src, segment.dst, segment.flags
            )),
            _ => None,
        })
        .collect();
    assert!(
        strangers.is_empty(),
        "lab A saw lab B's segments: {strangers:?}"
    );
}
