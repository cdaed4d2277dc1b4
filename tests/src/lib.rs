//! Helpers for the end-to-end tests: start the real relay, talk to it as a
//! browser would, and ask the kernel what it really holds.

pub mod browser;
pub mod c_programs;
pub mod flows;
pub mod follower;
pub mod kernel;
pub mod lab_client;
pub mod relay_process;
pub mod sniffer;

/// GETs a URL from the relay and returns the status, content type and body.
pub async fn http_get(url: &str) -> (u16, String, Vec<u8>) {
    http_get_with(url, &[]).await
}

/// GETs a URL with extra headers (a Host a rebinding page would send, say).
pub async fn http_get_with(url: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let (status, response_headers, body) = http_get_headers(url, headers).await;
    let content_type = response_headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, body)
}

/// GETs a URL with extra headers, and returns every header of the answer.
pub async fn http_get_headers(
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, Vec<u8>) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::new()).expect("a valid request");
    let response = client
        .request(request)
        .await
        .expect("the relay answers HTTP");
    let status = response.status().as_u16();
    let response_headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives")
        .to_bytes()
        .to_vec();
    (status, response_headers, body)
}
