//! The relay knows its resources at start: under `ulimit -n 1024` it fits its
//! labs to the open-file limit, says so, and the tab past the last gets a
//! clear refusal, not a silent hang. In a file of its own, because it lowers
//! this test process's limit, which the relay inherits.

use protocol::{Op, Role};
use socket_flow_tests::lab_client::LabClient;
use socket_flow_tests::relay_process::RelayProcess;

#[tokio::test]
async fn under_ulimit_1024_the_tab_past_the_last_lab_is_refused_clearly() {
    let limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: the pointer refers to a live rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let relay = RelayProcess::start(&["--labs-per-ip", "1000"]).await;
    // 1024 fds hold 53 labs of 16 sockets each (with the relay's own fds).
    let mut labs = Vec::new();
    for _ in 0..53 {
        let mut lab = LabClient::connect(&relay.ws_url()).await;
        assert_eq!(
            lab.hello.limits.labs_per_relay, 53,
            "hello says the fitted limit"
        );
        for _ in 0..16 {
            lab.ok(Op::Socket { role: Role::Client }).await;
        }
        labs.push(lab);
    }
    // Every lab holds all its sockets; the next tab is told why not.
    let refused = tokio_tungstenite::connect_async(relay.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
            assert!(body.contains("limit of 53 labs"), "{body}");
        }
        other => panic!("the tab past the last lab got {other:?}"),
    }
}
