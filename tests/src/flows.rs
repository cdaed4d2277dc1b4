//! The steps most tests start with, made through a real lab: a listening
//! server, a client, a connected and accepted pair; and the one way tests
//! wait for a kernel view that offers no event to await.

use std::net::SocketAddr;
use std::time::Duration;

use protocol::{Op, Role};

use crate::lab_client::LabClient;

/// Polls a kernel view until it holds. The kernel offers no event to await
/// for these, so the test asks again every few milliseconds, within a bound.
pub async fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(Duration::from_secs(5), what, check).await;
}

/// Like [`eventually`], with a bound of its own.
pub async fn eventually_within(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + bound;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never true: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A listening server of the lab: (sock, fd, address).
pub async fn listening_server(lab: &mut LabClient) -> (u32, i32, SocketAddr) {
    let created = lab.ok(Op::Socket { role: Role::Server }).await;
    let sock = created.sock.expect("socket names its sock");
    let bound = lab.ok(Op::Bind { sock, addr: None }).await;
    let addr: SocketAddr = bound
        .local
        .expect("bind reports local")
        .parse()
        .expect("addr");
    lab.ok(Op::Listen {
        sock,
        backlog: None,
    })
    .await;
    (sock, created.fd.expect("fd"), addr)
}

pub async fn client_socket(lab: &mut LabClient) -> (u32, i32) {
    let created = lab.ok(Op::Socket { role: Role::Client }).await;
    (created.sock.expect("sock"), created.fd.expect("fd"))
}

/// A client of the lab's server, connected and accepted: (client, conn).
pub async fn connected_client(lab: &mut LabClient, server: u32) -> (u32, u32) {
    let (client, _) = client_socket(lab).await;
    lab.ok(Op::Connect {
        sock: client,
        addr: None,
    })
    .await;
    let conn = lab
        .ok(Op::Accept { sock: server })
        .await
        .new_sock
        .expect("sock");
    (client, conn)
}
