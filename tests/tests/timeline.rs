//! Kernel time on the timeline: events leave the relay in the order things
//! happened in the kernel, segments carry the kernel's own timestamps (as an
//! independent capture sees them), and states follow the kernel's exact
//! sequence for each way a connection can end (checked against `ss`). These
//! tests need root, as CI has: the capture, and tracefs for state changes.

use std::collections::BTreeSet;
use std::net::SocketAddrV4;

use protocol::{Call, Event, EventBody, Op, Phase, Segment, SockOptName, SockOptValue, TcpState};
use socket_flow_tests::flows::{client_socket, connected_client, eventually, listening_server};
use socket_flow_tests::kernel::ss_sockets;
use socket_flow_tests::lab_client::LabClient;
use socket_flow_tests::relay_process::RelayProcess;
use socket_flow_tests::sniffer::Sniffer;

/// A relay that captures and traces state changes, and a lab on it.
async fn traced_lab() -> (RelayProcess, LabClient) {
    let relay = RelayProcess::start(&[]).await;
    let lab = LabClient::connect(&relay.ws_url()).await;
    assert!(lab.hello.capture, "{:?}", lab.hello.capture_reason);
    assert!(lab.hello.states_traced, "{:?}", lab.hello.states_reason);
    (relay, lab)
}

/// Where in the event stream the first event matching `test` is.
fn position(events: &[Event], what: &str, test: impl Fn(&Event) -> bool) -> usize {
    events
        .iter()
        .position(test)
        .unwrap_or_else(|| panic!("no {what} among {events:#?}"))
}

fn segment(event: &Event) -> Option<&Segment> {
    match &event.body {
        EventBody::Segment(segment) => Some(segment),
        _ => None,
    }
}

fn call(event: &Event) -> Option<&Call> {
    match &event.body {
        EventBody::Call(call) => Some(call),
        _ => None,
    }
}

fn flags(segment: &Segment) -> BTreeSet<&str> {
    segment.flags.iter().map(String::as_str).collect()
}

/// Whether an event is command `id`'s own call in `phase`; the bind the
/// relay makes first for an unbound socket's connect shares its id.
fn is_call(event: &Event, id: u64, phase: Phase) -> bool {
    call(event).is_some_and(|call| {
        call.id == Some(id) && call.phase == Some(phase) && call.op != Some(protocol::OpName::Bind)
    })
}

/// The span of a call, from its command's arrival to its return, in t_us.
fn span(event: &Event) -> (u64, u64) {
    let elapsed = call(event).and_then(|call| call.elapsed_us).unwrap_or(0);
    (event.t_us.saturating_sub(elapsed), event.t_us)
}

#[tokio::test]
async fn the_wire_and_the_calls_come_in_kernel_order() {
    let sniffer = Sniffer::start();
    let (_relay, mut lab) = traced_lab().await;
    let (server, _, server_addr) = listening_server(&mut lab).await;
    let accept = lab.send(Op::Accept { sock: server }).await;
    let (client, _) = client_socket(&mut lab).await;
    let connect = lab
        .send(Op::Connect {
            sock: client,
            addr: None,
        })
        .await;
    let connected = lab.outcome(connect).await;
    let client_addr: SocketAddrV4 = connected.local.expect("local").parse().expect("addr");
    let conn = lab.outcome(accept).await.new_sock.expect("conn");
    let send = lab
        .send(Op::Send {
            sock: client,
            data: Some("hello".into()),
            hex: None,
        })
        .await;
    lab.outcome(send).await;
    let read = lab
        .send(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    lab.outcome(read).await;
    let close_client = lab.send(Op::Close { sock: client }).await;
    lab.outcome(close_client).await;
    let close_conn = lab.send(Op::Close { sock: conn }).await;
    lab.outcome(close_conn).await;
    lab.state(client, TcpState::TimeWait).await;

    let events = lab.events.clone();
    // Kept as an artifact: docs/protocol.md quotes it.
    let lines: Vec<String> = events.iter().map(protocol::encode_event).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    std::fs::write(dir.join("kernel-order.jsonl"), lines.join("\n") + "\n").expect("written");
    let (client_port, server_port) = (client_addr.port(), server_addr.port());
    let ours = |event: &Event| {
        segment(event).is_some_and(|segment| {
            let ends = [segment.src.as_str(), segment.dst.as_str()];
            ends.contains(&client_addr.to_string().as_str())
        })
    };
    let syn = position(&events, "SYN", |e| {
        ours(e) && segment(e).is_some_and(|s| flags(s) == BTreeSet::from(["SYN"]))
    });
    let syn_ack = position(&events, "SYN+ACK", |e| {
        ours(e) && segment(e).is_some_and(|s| flags(s) == BTreeSet::from(["SYN", "ACK"]))
    });
    let ack = syn_ack
        + 1
        + position(&events[syn_ack + 1..], "the handshake's ACK", |e| {
            ours(e) && segment(e).is_some_and(|s| flags(s) == BTreeSet::from(["ACK"]))
        });
    let connect_first = position(&events, "connect's first event", |e| {
        call(e).is_some_and(|c| c.id == Some(connect) && c.op == Some(protocol::OpName::Connect))
    });
    let connect_done = position(&events, "connect's done", |e| {
        is_call(e, connect, Phase::Done)
    });
    let accept_done = position(&events, "accept's done", |e| {
        is_call(e, accept, Phase::Done)
    });
    assert!(
        syn < connect_first,
        "the SYN goes out inside connect(), before its first event"
    );
    assert!(
        syn_ack < connect_done,
        "SYN+ACK comes before connect() returns 0"
    );
    assert!(
        ack < accept_done,
        "the handshake's last ACK comes before accept() returns"
    );

    let data = position(&events, "the data segment", |e| {
        ours(e) && segment(e).is_some_and(|s| s.len == 5)
    });
    let send_done = position(&events, "send's done", |e| is_call(e, send, Phase::Done));
    let read_done = position(&events, "read's done", |e| is_call(e, read, Phase::Done));
    let (send_start, send_end) = span(&events[send_done]);
    assert!(
        (send_start..=send_end).contains(&events[data].t_us) && data < send_done,
        "the data goes out within send(), {send_start}..{send_end} µs: {:?}",
        events[data]
    );
    assert!(
        data < read_done,
        "the data arrives before the read that returns it"
    );

    for (close, from) in [
        (close_client, client_addr.to_string()),
        (close_conn, server_addr.to_string()),
    ] {
        let done = position(&events, "close's done", |e| is_call(e, close, Phase::Done));
        let fin = position(&events, "a FIN", |e| {
            ours(e)
                && segment(e).is_some_and(|s| s.src == from && s.flags.contains(&"FIN".to_string()))
        });
        let (start, end) = span(&events[done]);
        assert!(
            fin < done && (start..=end).contains(&events[fin].t_us),
            "the FIN from {from} goes out within its close(), {start}..{end} µs"
        );
        let id = segment(&events[fin]).and_then(|s| s.id);
        assert_eq!(id, Some(close), "the FIN names its close()");
    }

    // The relay's segments are the kernel's, in the kernel's order and at
    // the kernel's times, as an independent capture stamps them.
    let relayed = events.iter().filter(|e| ours(e)).count();
    eventually("the independent capture has every segment", || {
        sniffer.between(client_port, server_port).len() >= relayed
    })
    .await;
    let wire: Vec<(u64, String)> = sniffer
        .between_timed(client_port, server_port)
        .into_iter()
        .map(|(at, seen)| {
            (
                at,
                format!("{}>{} {} {}", seen.src, seen.dst, seen.seq, seen.ack),
            )
        })
        .collect();
    let reported: Vec<(u64, String)> = events
        .iter()
        .filter(|e| ours(e))
        .filter_map(|e| {
            segment(e).map(|s| {
                (
                    e.t_us,
                    format!("{}>{} {} {}", s.src, s.dst, s.tcp_seq, s.tcp_ack),
                )
            })
        })
        .collect();
    assert_eq!(
        reported.iter().map(|(_, s)| s).collect::<Vec<_>>(),
        wire.iter().map(|(_, s)| s).collect::<Vec<_>>(),
        "the same segments in the same order"
    );
    // The session's zero is the relay's; the gaps between segments are the kernel's.
    let offsets: Vec<i64> = wire
        .iter()
        .zip(&reported)
        .map(|((at, _), (t_us, _))| (*at / 1000) as i64 - *t_us as i64)
        .collect();
    let spread = offsets.iter().max().unwrap_or(&0) - offsets.iter().min().unwrap_or(&0);
    assert!(
        spread <= 2,
        "segment times are the kernel's, to the µs: {offsets:?}"
    );
}

/// The states one socket went through from ESTABLISHED on, repeats folded.
fn states_of(events: &[Event], sock: u32) -> Vec<TcpState> {
    let mut states: Vec<TcpState> = Vec::new();
    for event in events {
        if let EventBody::State(state) = &event.body {
            let starts_or_goes_on = state.tcp == TcpState::Established || !states.is_empty();
            if state.sock == sock && states.last() != Some(&state.tcp) && starts_or_goes_on {
                states.push(state.tcp);
            }
        }
    }
    states
}

/// `ss`'s state of the connection from `local` to `peer`, as TCP names it.
fn ss_state(local: &str, peer: &str) -> Option<String> {
    ss_sockets()
        .into_iter()
        .find(|socket| socket.local == local && socket.peer == peer)
        .map(|socket| socket.state)
}

/// The time of the first segment from `src` whose flags include `flag`, and
/// of the first state `tcp` of `sock`.
fn t_of_segment(events: &[Event], src: &str, flag: &str) -> u64 {
    events[position(events, flag, |e| {
        segment(e).is_some_and(|s| s.src == src && s.flags.iter().any(|f| f == flag))
    })]
    .t_us
}

fn t_of_state(events: &[Event], sock: u32, tcp: TcpState) -> u64 {
    // The last one: a fresh socket is CLOSE too, before it ever connects.
    events
        .iter()
        .rev()
        .find(|e| matches!(&e.body, EventBody::State(s) if s.sock == sock && s.tcp == tcp))
        .unwrap_or_else(|| panic!("no {tcp:?} of socket {sock}"))
        .t_us
}

/// Every LISTEN reported is of a socket whose listen() succeeded.
fn assert_listen_only_for_listeners(events: &[Event]) {
    let listeners: BTreeSet<u32> = events
        .iter()
        .filter_map(call)
        .filter(|c| c.op == Some(protocol::OpName::Listen) && c.phase == Some(Phase::Done))
        .filter_map(|c| c.sock)
        .collect();
    for event in events {
        if let EventBody::State(state) = &event.body {
            if state.tcp == TcpState::Listen {
                assert!(
                    listeners.contains(&state.sock),
                    "LISTEN for a socket that never listened: {event:?}"
                );
            }
        }
    }
}

/// Closes `first`, then `second`, of a connected pair, and checks both
/// sequences against the kernel's and `ss`.
async fn close_in_order(first_is_client: bool) {
    let (_relay, mut lab) = traced_lab().await;
    let (server, _, _) = listening_server(&mut lab).await;
    let (client, conn) = connected_client(&mut lab, server).await;
    // Each end's addresses, as connect() and accept() reported them.
    let addr_of = |lab: &LabClient, sock: u32| {
        lab.events
            .iter()
            .filter_map(call)
            .find(|c| {
                c.phase == Some(Phase::Done)
                    && (c.new_sock == Some(sock)
                        || (c.sock == Some(sock) && c.op == Some(protocol::OpName::Connect)))
            })
            .map(|c| {
                (
                    c.local.clone().expect("local"),
                    c.peer.clone().expect("peer"),
                )
            })
            .expect("addresses")
    };
    let (first, second) = if first_is_client {
        (client, conn)
    } else {
        (conn, client)
    };
    let (first_local, first_peer) = addr_of(&lab, first);
    let (second_local, second_peer) = addr_of(&lab, second);

    lab.ok(Op::Close { sock: first }).await;
    lab.state(second, TcpState::CloseWait).await;
    assert_eq!(
        ss_state(&second_local, &second_peer).as_deref(),
        Some("CLOSE_WAIT"),
        "ss agrees: the peer waits for its own close"
    );
    lab.ok(Op::Close { sock: second }).await;
    lab.state(first, TcpState::TimeWait).await;
    // The fresh socket's CLOSE, before connect, does not count.
    lab.until("the second side forgotten", |e| {
        matches!(&e.body, EventBody::State(s) if s.sock == second && s.tcp == TcpState::Close && !s.fd_open)
    })
    .await;
    eventually("ss shows the TIME_WAIT", || {
        ss_state(&first_local, &first_peer).as_deref() == Some("TIME_WAIT")
    })
    .await;
    assert_eq!(
        ss_state(&second_local, &second_peer),
        None,
        "the kernel forgot the side that closed second"
    );

    let events = lab.events.clone();
    use TcpState::*;
    assert_eq!(
        states_of(&events, first),
        [Established, FinWait1, FinWait2, TimeWait],
        "the side that closes first"
    );
    assert_eq!(
        states_of(&events, second),
        [Established, CloseWait, LastAck, Close],
        "the other side"
    );
    // Each state within a few milliseconds of the segment that caused it.
    const NEAR_US: u64 = 5_000;
    let first_fin = t_of_segment(&events, &first_local, "FIN");
    let second_fin = t_of_segment(&events, &second_local, "FIN");
    for (t, cause) in [
        (t_of_state(&events, first, FinWait1), first_fin),
        (t_of_state(&events, second, CloseWait), first_fin),
        (t_of_state(&events, second, LastAck), second_fin),
        (t_of_state(&events, first, TimeWait), second_fin),
        (t_of_state(&events, second, Close), second_fin),
    ] {
        assert!(
            t.abs_diff(cause) <= NEAR_US,
            "a state {t} µs, its segment {cause} µs: {:#?}",
            events
                .iter()
                .map(protocol::encode_event)
                .collect::<Vec<_>>()
        );
    }
    assert_listen_only_for_listeners(&events);
    // CLOSE is reported once, and the closed socket is never heard of again.
    let closes = events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::State(s) if s.sock == second && s.tcp == Close && !s.fd_open))
        .count();
    assert_eq!(closes, 1);
}

#[tokio::test]
async fn the_client_closes_first() {
    close_in_order(true).await;
}

#[tokio::test]
async fn the_server_closes_first() {
    close_in_order(false).await;
}

#[tokio::test]
async fn linger_zero_resets_and_leaves_nothing() {
    let (_relay, mut lab) = traced_lab().await;
    let (server, _, _) = listening_server(&mut lab).await;
    let (client, conn) = connected_client(&mut lab, server).await;
    lab.ok(Op::Setsockopt {
        sock: client,
        name: SockOptName::Linger,
        value: SockOptValue::Number(0),
    })
    .await;
    let from = lab.events.len();
    lab.ok(Op::Close { sock: client }).await;
    let closed = |sock: u32| move |e: &Event| matches!(&e.body, EventBody::State(s) if s.sock == sock && s.tcp == TcpState::Close);
    let reset = lab
        .until_from(from, "the reset connection", closed(conn))
        .await;
    let EventBody::State(reset) = reset.body else {
        unreachable!()
    };
    assert!(
        reset.fd_open,
        "the server's fd is still open; its connection is gone"
    );
    let client_closed = lab
        .until_from(from, "the closed client", closed(client))
        .await;
    let EventBody::State(client_closed) = client_closed.body else {
        unreachable!()
    };
    assert!(!client_closed.fd_open);
    let local = client_closed.local.expect("local");
    let peer = client_closed.peer.expect("peer");
    assert_eq!(ss_state(&local, &peer), None, "no TIME_WAIT after RST");
    assert_eq!(ss_state(&peer, &local), None);
    let rst = lab
        .until("the RST", |e| {
            segment(e).is_some_and(|s| s.flags.contains(&"RST".to_string()))
        })
        .await;
    assert_eq!(segment(&rst).map(|s| s.src.clone()), Some(local));
    let read = lab
        .call(Op::Read {
            sock: conn,
            max: None,
        })
        .await;
    assert_eq!(read.errno.as_deref(), Some("ECONNRESET"));
    assert_listen_only_for_listeners(&lab.events);
    use TcpState::*;
    assert_eq!(states_of(&lab.events, conn), [Established, Close]);
}

/// The scenario students meet: the server closes first, so its end of the
/// connection waits in TIME_WAIT on the server's port, and the restarted
/// server's bind() fails with EADDRINUSE. With SO_REUSEADDR set before each
/// bind, as servers do, the restart binds: Linux lets a bind share a port
/// with TIME_WAIT only when both sockets asked for it (the TIME_WAIT keeps
/// the option of the connection it came from, which inherits the listener's).
async fn restart_over_time_wait(reuse: bool) -> Call {
    let (_relay, mut lab) = traced_lab().await;
    let server_socket = Op::Socket {
        role: protocol::Role::Server,
    };
    let first = lab.ok(server_socket.clone()).await.sock.expect("sock");
    if reuse {
        lab.ok(Op::Setsockopt {
            sock: first,
            name: SockOptName::ReuseAddr,
            value: SockOptValue::Flag(true),
        })
        .await;
    }
    let bound = lab
        .ok(Op::Bind {
            sock: first,
            addr: None,
        })
        .await;
    let server_addr = bound.local.expect("local");
    lab.ok(Op::Listen {
        sock: first,
        backlog: None,
    })
    .await;
    let (client, conn) = connected_client(&mut lab, first).await;
    lab.ok(Op::Close { sock: conn }).await;
    lab.ok(Op::Close { sock: client }).await;
    lab.until(
        "the server's end in TIME_WAIT",
        |e| matches!(&e.body, EventBody::State(s) if s.sock == conn && s.tcp == TcpState::TimeWait),
    )
    .await;
    lab.ok(Op::Close { sock: first }).await;
    assert!(
        ss_sockets()
            .iter()
            .any(|s| s.local == server_addr && s.state == "TIME_WAIT"),
        "ss shows the TIME_WAIT on the server's port"
    );
    let restarted = lab.ok(server_socket).await.sock.expect("sock");
    if reuse {
        let set = lab
            .ok(Op::Setsockopt {
                sock: restarted,
                name: SockOptName::ReuseAddr,
                value: SockOptValue::Flag(true),
            })
            .await;
        assert_eq!(set.note, Some(protocol::Note::ReuseAddress));
    }
    lab.call(Op::Bind {
        sock: restarted,
        addr: Some(server_addr),
    })
    .await
}

#[tokio::test]
async fn a_restarted_server_meets_its_own_time_wait() {
    let refused = restart_over_time_wait(false).await;
    assert_eq!(refused.errno.as_deref(), Some("EADDRINUSE"), "{refused:?}");
}

#[tokio::test]
async fn so_reuseaddr_lets_the_restart_bind() {
    let bound = restart_over_time_wait(true).await;
    assert_eq!(bound.phase, Some(Phase::Done), "{bound:?}");
}

/// The server never closes: its end stays in CLOSE_WAIT while its fd is
/// open, and the client's orphaned FIN_WAIT2 expires after TCP_LINGER2.
#[tokio::test]
async fn fin_wait2_expires_while_close_wait_stays() {
    let (_relay, mut lab) = traced_lab().await;
    let (server, _, _) = listening_server(&mut lab).await;
    let (client, conn) = connected_client(&mut lab, server).await;
    let linger2 = lab
        .ok(Op::Setsockopt {
            sock: client,
            name: SockOptName::Linger2,
            value: SockOptValue::Number(1),
        })
        .await;
    assert!(linger2.c.contains("TCP_LINGER2, [1]"), "{}", linger2.c);
    lab.ok(Op::Close { sock: client }).await;
    lab.state(conn, TcpState::CloseWait).await;
    let fin_wait2 = lab.state(client, TcpState::FinWait2).await;
    let from = lab.events.len();
    let gone = lab
        .until_from(from, "the orphaned FIN_WAIT2 expires", |e| {
            matches!(&e.body, EventBody::State(s) if s.sock == client && s.tcp == TcpState::Close)
        })
        .await;
    let waited_us = gone.t_us
        - lab
            .events
            .iter()
            .rev()
            .find(|e| matches!(&e.body, EventBody::State(s) if s == &fin_wait2))
            .map(|e| e.t_us)
            .unwrap_or(0);
    assert!(
        (900_000..3_000_000).contains(&waited_us),
        "FIN_WAIT2 lasted {waited_us} µs with TCP_LINGER2 1 s"
    );
    let local = fin_wait2.local.expect("local");
    let peer = fin_wait2.peer.expect("peer");
    assert_eq!(ss_state(&local, &peer), None, "the kernel dropped it");
    assert_eq!(ss_state(&peer, &local).as_deref(), Some("CLOSE_WAIT"));
    let still = lab.events.iter().rev().find_map(|e| match &e.body {
        EventBody::State(s) if s.sock == conn => Some(s.tcp),
        _ => None,
    });
    assert_eq!(still, Some(TcpState::CloseWait), "the server's end stays");
}
