//! The real relay binary serves a page that real Chromium renders from wasm,
//! and that holds a live WebSocket to the relay, with a clean console.

use socket_flow_tests::browser::Browser;
use socket_flow_tests::relay_process::RelayProcess;

#[tokio::test]
async fn chromium_renders_the_wasm_shell_and_connects() {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start("en-US").await;
    // Only the wasm writes the connected state, once the WebSocket opened.
    browser.open_page(&relay.url).await;
    let title = browser.wait_for("header h1").await;
    assert_eq!(title.text().await.expect("text"), "socket-flow");
    browser.wait_for("[aria-label='Server']").await;
    browser.wait_for("[aria-label='Client 1']").await;
    browser.screenshot("shell-connected").await;
    browser.assert_clean_console().await;
}

#[tokio::test]
async fn the_page_says_when_the_relay_is_gone() {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start("en-US").await;
    browser.open_page(&relay.url).await;
    drop(relay);
    // The page notices, and says it is retrying.
    browser.wait_for("#status[data-state='lost']").await;
}
