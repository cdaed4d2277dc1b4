//! The path end to end without a browser: the real relay binary serves the
//! page and the wasm with their content types, compressed when asked and
//! validated by ETag, and `/ws` says hello.

use protocol::PROTOCOL_VERSION;
use socket_flow_tests::lab_client::LabClient;
use socket_flow_tests::relay_process::RelayProcess;
use socket_flow_tests::{http_get, http_get_headers};
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
async fn serves_the_bundle_compressed_and_answers_304_when_unchanged() {
    let relay = RelayProcess::start(&[]).await;
    let url = format!("{}pkg/socket_flow_web_bg.wasm", relay.url);
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../www/pkg/socket_flow_web_bg.wasm"
    ))
    .expect("the committed bundle");
    let header = |headers: &http::HeaderMap, name: http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };

    // What Chromium sends.
    let (status, headers, brotli) =
        http_get_headers(&url, &[("accept-encoding", "gzip, deflate, br, zstd")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, http::header::CONTENT_ENCODING), "br");
    assert_eq!(header(&headers, http::header::VARY), "accept-encoding");
    assert_eq!(
        header(&headers, http::header::CONTENT_TYPE),
        "application/wasm"
    );
    let mut unpacked = Vec::new();
    brotli::BrotliDecompress(&mut &brotli[..], &mut unpacked).expect("valid brotli");
    assert_eq!(unpacked, committed, "brotli gives back the committed wasm");
    println!(
        "wasm: {} bytes, {} over the wire with brotli",
        committed.len(),
        brotli.len()
    );
    assert!(
        brotli.len() <= 110 * 1024,
        "the wasm is {} bytes over the wire; the budget is 110 KiB",
        brotli.len()
    );

    let (status, headers, gzip) = http_get_headers(&url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, http::header::CONTENT_ENCODING), "gzip");
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut unpacked)
        .expect("valid gzip");
    assert_eq!(unpacked, committed, "gzip gives back the committed wasm");
    let gzip_tag = header(&headers, http::header::ETAG);

    // A reload: the browser names what it has, and gets no body back.
    let (status, headers, body) = http_get_headers(
        &url,
        &[("accept-encoding", "gzip"), ("if-none-match", &gzip_tag)],
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(header(&headers, http::header::ETAG), gzip_tag);

    // A tag of other bytes is not enough.
    let (status, _, body) = http_get_headers(
        &url,
        &[("accept-encoding", "gzip"), ("if-none-match", "\"stale\"")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, gzip);

    // No Accept-Encoding: the bytes as they are.
    let (status, headers, plain) = http_get_headers(&url, &[]).await;
    assert_eq!(status, 200);
    assert!(headers.get(http::header::CONTENT_ENCODING).is_none());
    assert_eq!(plain, committed);
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
