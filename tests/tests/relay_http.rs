//! The path end to end without a browser: the real relay binary serves the
//! page and the wasm with their content types, and `/ws` says hello.

use protocol::PROTOCOL_VERSION;
use socket_flow_tests::http_get;
use socket_flow_tests::lab_client::LabClient;
use socket_flow_tests::relay_process::RelayProcess;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn serves_the_page_the_wasm_and_hello() {
    let relay = RelayProcess::start(&[]).await;

    let (status, content_type, body) = http_get(&relay.url).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    let page = String::from_utf8(body).expect("the page is UTF-8");
    assert!(
        page.contains("/pkg/socket_flow_web.js"),
        "the page loads the bundle"
    );

    let (status, content_type, body) =
        http_get(&format!("{}pkg/socket_flow_web_bg.wasm", relay.url)).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/wasm");
    assert_eq!(
        &body[..4],
        b"\0asm",
        "the wasm starts with its magic number"
    );
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../www/pkg/socket_flow_web_bg.wasm"
    ))
    .expect("the committed bundle");
    assert_eq!(body, committed, "the relay serves the committed bundle");

    let (status, _, _) = http_get(&format!("{}no-such-file.js", relay.url)).await;
    assert_eq!(status, 404);

    let lab = LabClient::connect(&relay.ws_url()).await;
    assert_eq!(lab.hello.protocol, PROTOCOL_VERSION);
    assert_eq!(lab.hello.default_addr, "127.0.0.1");
    assert!(lab.hello.limits.sockets_per_lab > 0);
    lab.close().await;
}

#[tokio::test]
async fn refuses_a_websocket_from_another_origin() {
    let relay = RelayProcess::start(&[]).await;
    let mut request = relay.ws_url().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("Origin", "http://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a foreign Origin must not get a lab");

    let mut request = relay.ws_url().into_client_request().expect("request");
    let own_origin = relay.url.trim_end_matches('/').to_string();
    request
        .headers_mut()
        .insert("Origin", own_origin.parse().expect("header"));
    assert!(
        tokio_tungstenite::connect_async(request).await.is_ok(),
        "the relay's own page gets a lab"
    );
}

#[tokio::test]
async fn an_allowed_origin_gets_a_lab() {
    let relay = RelayProcess::start(&["--allow-origin", "http://localhost:8000"]).await;
    let mut request = relay.ws_url().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("Origin", "http://localhost:8000".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}
