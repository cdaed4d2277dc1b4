//! The engine without any WebSocket: drive a lab through its channels and
//! read its events directly.

use std::sync::Arc;
use std::time::Duration;

use protocol::{Command, Event, EventBody, Op, Phase, Role, TcpState};
use relay::Config;
use relay::engine::{LabHandle, LabInput, LabSettings, PortPool, spawn_lab};

fn lab() -> (LabHandle, tokio::task::JoinHandle<()>) {
    let config = Config::default();
    spawn_lab(LabSettings::from_config(
        &config,
        Arc::new(PortPool::new(
            config.lab_ports.clone(),
            config.ports_per_lab as usize,
        )),
        Err("no capture in this test".into()),
    ))
}

async fn next(lab: &mut LabHandle) -> Event {
    tokio::time::timeout(Duration::from_secs(5), lab.events.recv())
        .await
        .expect("an event in time")
        .expect("the lab is running")
}

/// Sends a command and returns the events up to its final call event.
async fn run(lab: &mut LabHandle, id: u64, op: Op) -> Vec<Event> {
    lab.inputs
        .send(LabInput::Command(Command { id, op }))
        .await
        .expect("the lab takes commands");
    let mut events = Vec::new();
    loop {
        let event = next(lab).await;
        // The command's own call, not the bind the relay makes first for
        // an unbound socket's listen or connect.
        let last = matches!(&event.body, EventBody::Call(call)
        if call.id == Some(id)
            && matches!(call.phase, Some(Phase::Done | Phase::Failed))
            && !matches!(
                call.note,
                Some(protocol::Note::BoundBeforeListen | protocol::Note::BoundBeforeConnect)
            ));
        events.push(event);
        if last {
            return events;
        }
    }
}

fn final_call(events: &[Event]) -> &protocol::Call {
    match &events.last().expect("an event").body {
        EventBody::Call(call) => call,
        other => panic!("not a call: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_runs_the_seed_flow_without_a_websocket() {
    let (mut lab, task) = lab();
    assert!(matches!(next(&mut lab).await.body, EventBody::Hello(_)));
    let server = final_call(&run(&mut lab, 1, Op::Socket { role: Role::Server }).await)
        .sock
        .expect("sock");
    run(
        &mut lab,
        2,
        Op::Bind {
            sock: server,
            addr: Some("127.0.0.1:0".into()),
        },
    )
    .await;
    let events = run(
        &mut lab,
        3,
        Op::Listen {
            sock: server,
            backlog: Some(2),
        },
    )
    .await;
    assert_eq!(final_call(&events).c.split(" = ").nth(1), Some("0"));
    let client = final_call(&run(&mut lab, 4, Op::Socket { role: Role::Client }).await)
        .sock
        .expect("sock");
    let connected = run(
        &mut lab,
        5,
        Op::Connect {
            sock: client,
            addr: None,
        },
    )
    .await;
    assert_eq!(final_call(&connected).phase, Some(Phase::Done));
    let accepted = run(&mut lab, 6, Op::Accept { sock: server }).await;
    let conn = final_call(&accepted).new_sock.expect("new sock");
    run(
        &mut lab,
        7,
        Op::Send {
            sock: client,
            data: Some("hi".into()),
            hex: None,
        },
    )
    .await;
    let read = run(
        &mut lab,
        8,
        Op::Read {
            sock: conn,
            max: None,
        },
    )
    .await;
    assert_eq!(final_call(&read).data.as_deref(), Some("hi"));

    // A blocked read, then close: the wait is cancelled and close succeeds.
    lab.inputs
        .send(LabInput::Command(Command {
            id: 9,
            op: Op::Read {
                sock: conn,
                max: None,
            },
        }))
        .await
        .expect("sent");
    let closed = run(&mut lab, 10, Op::Close { sock: conn }).await;
    assert_eq!(final_call(&closed).phase, Some(Phase::Done), "{closed:#?}");
    assert!(closed.iter().any(|event| matches!(&event.body,
        EventBody::Call(call) if call.id == Some(9) && call.phase == Some(Phase::Cancelled))));

    // The same on a client that was never accepted.
    let other = final_call(&run(&mut lab, 11, Op::Socket { role: Role::Client }).await)
        .sock
        .expect("sock");
    run(
        &mut lab,
        12,
        Op::Connect {
            sock: other,
            addr: None,
        },
    )
    .await;
    lab.inputs
        .send(LabInput::Command(Command {
            id: 13,
            op: Op::Read {
                sock: other,
                max: None,
            },
        }))
        .await
        .expect("sent");
    lab.inputs
        .send(LabInput::Command(Command {
            id: 15,
            op: Op::Read {
                sock: other,
                max: None,
            },
        }))
        .await
        .expect("sent");
    let closed = run(&mut lab, 14, Op::Close { sock: other }).await;
    assert_eq!(final_call(&closed).phase, Some(Phase::Done), "{closed:#?}");

    // Dropping the inputs ends the lab.
    drop(lab.inputs);
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("the lab ends within a second")
        .expect("the lab task does not panic");
    let _ = TcpState::Close;
}
