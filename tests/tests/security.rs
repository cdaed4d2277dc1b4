//! The relay is safe with any web page open: what an attacker's page or a
//! careless client can try, against the real binary.

use socket_flow_tests::http_get_with;
use socket_flow_tests::relay_process::RelayProcess;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The status a WebSocket upgrade got, with these headers.
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
