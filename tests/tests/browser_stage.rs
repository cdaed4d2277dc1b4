//! The stage on a projector's screen, in real Chromium against the real
//! relay: after the handshake, the server's accept step and the SYN, SYN+ACK
//! and ACK arrows the capture saw are all inside the window, without any
//! scrolling, in both languages.

use socket_flow_tests::browser::{
    Browser, after_handshake, card, click, handshake, step, type_into,
};
use socket_flow_tests::relay_process::RelayProcess;

/// Where an element is, against the window: (top, bottom, left, right,
/// window width, window height).
const PLACE: &str = r#"
const element = arguments[0] instanceof Element ? arguments[0] : document.querySelector(arguments[0]);
if (!element) { return null; }
const box = element.getBoundingClientRect();
return [box.top, box.bottom, box.left, box.right, window.innerWidth, window.innerHeight];
"#;

async fn place(browser: &Browser, css: &str) -> Option<Vec<f64>> {
    let value = browser
        .client
        .execute(PLACE, vec![serde_json::Value::String(css.into())])
        .await
        .expect("the script runs");
    serde_json::from_value(value).ok()
}

fn inside(place: &[f64]) -> bool {
    let [top, bottom, left, right, width, height] = place else {
        return false;
    };
    *top >= 0.0 && *left >= 0.0 && bottom <= height && right <= width && bottom > top
}

/// Whether each of `bars` (the header, the toolbar, the timeline's
/// controls) takes one row: its visible children all start within 20 px of
/// one another.
async fn bars_rows(browser: &Browser, bars: &[&str]) -> serde_json::Value {
    browser
        .client
        .execute(
            "return arguments[0].map((bar) => {                const tops = [...document.querySelector(bar).children]                  .filter((child) => child.getClientRects().length > 0)                  .map((child) => child.getBoundingClientRect().top);                return Math.max(...tops) - Math.min(...tops) < 20; })",
            vec![serde_json::json!(bars)],
        )
        .await
        .expect("the script runs")
}

/// Runs the handshake by hand on a 1280×720 projector, and checks what is
/// in view.
async fn handshake_on_a_projector(language: &str, server: &str, client: &str) {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start(language).await;
    browser.open_page(&relay.url).await;
    browser.set_viewport(1280, 720).await;
    // A laptop's 1280-wide screen fits the header and the toolbar in one
    // row each before the projector's larger stage is asked for.
    assert_eq!(
        bars_rows(&browser, &[".top", ".toolbar"]).await,
        serde_json::json!([true, true]),
        "header and toolbar in one row each, without projector mode"
    );
    click(&browser, "//input[@id='skip']").await;
    click(&browser, "//button[@data-action='projector']").await;
    browser.wait_for("body.projector").await;
    handshake(&browser, server, client, &mut 0).await;
    browser.wait_for("#diagram g.arrow.syn").await;

    let viewport = place(&browser, "body").await.expect("a body");
    assert_eq!(
        (viewport[4], viewport[5]),
        (1280.0, 720.0),
        "the window is 1280×720"
    );
    let no_scroll = browser
        .client
        .execute(
            "return [window.scrollY, document.documentElement.scrollWidth <= window.innerWidth]",
            vec![],
        )
        .await
        .expect("the script runs");
    assert_eq!(
        no_scroll,
        serde_json::json!([0, true]),
        "the page has not scrolled"
    );

    // The header, the toolbar and the timeline's controls take one row
    // each, so the stage and the diagram start high on the screen.
    assert_eq!(
        bars_rows(&browser, &[".top", ".toolbar", ".history"]).await,
        serde_json::json!([true, true, true]),
        "header, toolbar and the timeline's controls in one row each"
    );

    let accept = place(&browser, "[data-lane='0'] button[data-step='accept']")
        .await
        .expect("the accept step");
    let arrows: Vec<serde_json::Value> = browser.script(// From the SYN on: another test's relay on this machine may
                // have closed a connection on a lab port a moment before.
                "const arrows = [...document.querySelectorAll('#diagram g.arrow')]; \
                 const syn = arrows.findIndex((arrow) => arrow.classList.contains('syn')); \
                 return arrows.slice(syn, syn + 3).map((arrow) => {
                    const box = arrow.getBoundingClientRect();
                    return [[...arrow.querySelectorAll('text')].map((text) => text.textContent).join(' '), [box.top, box.bottom, box.left, box.right, window.innerWidth, window.innerHeight]];
                })",
                vec![]).await;
    // No word of the diagram runs past its edges.
    let clipped: Vec<String> = browser
        .script(
            "const box = document.getElementById('diagram').getBoundingClientRect(); \
                 return [...document.querySelectorAll('#diagram svg.row text')] \
                   .filter((text) => { const r = text.getBoundingClientRect(); \
                     return r.left < box.left - 1 || r.right > box.right + 1; }) \
                   .map((text) => text.textContent);",
            vec![],
        )
        .await;
    let shot = browser
        .screenshot(&format!("stage-projector-1280x720-{language}"))
        .await;
    assert!(
        clipped.is_empty(),
        "these labels run past the diagram's edge: {clipped:?}; see {}",
        shot.display()
    );
    assert!(
        inside(&accept),
        "the accept step is in view ({accept:?}); see {}",
        shot.display()
    );
    assert_eq!(
        arrows.len(),
        3,
        "the handshake's three segments: {arrows:?}"
    );
    let labels: Vec<String> = arrows
        .iter()
        .map(|arrow| arrow[0].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(labels[0].starts_with("SYN"), "{labels:?}");
    assert!(labels[1].starts_with("SYN+ACK"), "{labels:?}");
    assert!(labels[2].starts_with("ACK"), "{labels:?}");
    for arrow in &arrows {
        let place: Vec<f64> = serde_json::from_value(arrow[1].clone()).expect("a box");
        assert!(
            inside(&place),
            "{} is in view ({place:?}); see {}",
            arrow[0],
            shot.display()
        );
    }
    browser.assert_clean_console().await;
}

#[tokio::test]
async fn the_handshake_and_the_accept_step_fit_a_projector_in_english() {
    handshake_on_a_projector("en-US", "Server", "Client 1").await;
}

#[tokio::test]
async fn the_handshake_and_the_accept_step_fit_a_projector_in_chinese() {
    handshake_on_a_projector("zh-CN", "服务端", "客户端 1").await;
}

/// The controls a finger cannot hit: visible buttons and fields under
/// 44×44 CSS pixels, by a piece of their markup.
const SMALL_TARGETS: &str = r#"
return [...document.querySelectorAll('button, select, input')]
  .filter((element) => element.getClientRects().length > 0 && getComputedStyle(element).visibility !== 'hidden')
  .filter((element) => !element.closest('.sr-only, [hidden]'))
  .map((element) => [element.outerHTML.slice(0, 90), element.getBoundingClientRect()])
  .filter(([, box]) => box.width < 44 || box.height < 44)
  .map(([markup, box]) => `${markup} ${Math.round(box.width)}×${Math.round(box.height)}`);
"#;

#[tokio::test]
async fn a_phone_stacks_the_stage_with_no_sideways_scroll_and_big_targets() {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start("en-US").await;
    browser.open_page(&relay.url).await;
    browser.set_viewport(390, 844).await;
    click(&browser, "//input[@id='skip']").await;
    let mut clicks = 0;
    handshake(&browser, "Server", "Client 1", &mut clicks).await;
    browser.wait_for("#diagram g.arrow.syn").await;
    let shot = browser.screenshot("stage-phone-390x844").await;

    let [scroll_width, width]: [u32; 2] = browser
        .script(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await;
    assert!(
        scroll_width <= width,
        "the page is {scroll_width} px wide in a {width} px window; see {}",
        shot.display()
    );
    // The lanes stack: the wire comes below the server's lane, and the
    // client's below the wire.
    let server = place(&browser, "#side-server-lanes").await.expect("server");
    let wire = place(&browser, ".wire").await.expect("wire");
    let client = place(&browser, "#side-client-lanes").await.expect("client");
    assert!(
        server[1] <= wire[0] && wire[1] <= client[0],
        "{server:?} {wire:?} {client:?}"
    );
    let small: Vec<String> = browser.script(SMALL_TARGETS, vec![]).await;
    assert!(small.is_empty(), "tap targets under 44 px: {small:#?}");
}

/// Where focus is: its data-key, and the text in it.
const FOCUSED: &str = "const element = document.activeElement; \
    return [element.getAttribute('data-key'), element.value ?? null];";

#[tokio::test]
async fn focus_and_typed_text_stay_in_the_message_box_while_events_come() {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start("en-US").await;
    browser.open_page(&relay.url).await;
    click(&browser, "//input[@id='skip']").await;
    let mut clicks = 0;
    handshake(&browser, "Server", "Client 1", &mut clicks).await;

    let message_box = "//section[@aria-label='Client 1']//input[@data-action='message']";
    let input = browser
        .client
        .find(fantoccini::Locator::XPath(message_box))
        .await
        .expect("the client's message box");
    input.click().await.expect("focused");
    input.send_keys("half a thou").await.expect("typed");
    let key: String = serde_json::from_value(
        browser
            .client
            .execute(FOCUSED, vec![])
            .await
            .expect("the script runs")[0]
            .clone(),
    )
    .expect("a data-key");

    // Events for the very lane being typed in: its read() waits, then the
    // server sends, and the read returns. The clicks are the page's own
    // (element.click() from script moves no focus), as a second person at
    // the same screen might make them.
    browser
        .client
        .execute(
            "document.querySelector(\"section[aria-label='Client 1'] button[data-action='read-on']\").click()",
            vec![],
        )
        .await
        .expect("the script runs");
    card(&browser, "Client 1", "read", "blocked").await;
    browser
        .client
        .execute(
            "const box = document.querySelector(\"section[aria-label='Server'] .conn input[data-action='message']\"); \
             box.value = 'hi'; \
             document.querySelector(\"section[aria-label='Server'] .conn button[data-action='send-message']\").click()",
            vec![],
        )
        .await
        .expect("the script runs");
    card(&browser, "Client 1", "read", "done").await;

    let focused = browser
        .client
        .execute(FOCUSED, vec![])
        .await
        .expect("the script runs");
    assert_eq!(
        focused,
        serde_json::json!([key, "half a thou"]),
        "focus and the typed text survived the events"
    );
}

#[tokio::test]
async fn stepping_back_to_the_syn_shows_the_lab_as_it_was_then() {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start("en-US").await;
    browser.open_page(&relay.url).await;
    click(&browser, "//input[@id='skip']").await;
    let mut clicks = 0;
    handshake(&browser, "Server", "Client 1", &mut clicks).await;
    let syn: u64 = browser
        .wait_for("#diagram g.arrow.syn")
        .await
        .attr("data-seq")
        .await
        .expect("an attribute")
        .and_then(|seq| seq.parse().ok())
        .expect("the SYN's seq");

    // The scrubber, moved as a hand would move it.
    browser
        .client
        .execute(
            "const scrub = document.getElementById('scrub'); scrub.value = arguments[0]; \
             scrub.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![serde_json::json!(syn)],
        )
        .await
        .expect("the script runs");
    browser.wait_for(".at[data-state='past']").await;
    let then = browser
        .client
        .execute(
            "const seqs = [...document.querySelectorAll('#diagram [data-seq]')].map((row) => Number(row.dataset.seq)); \
             const arrows = [...document.querySelectorAll('#diagram g.arrow text')].map((text) => text.textContent); \
             return { \
               newest: Math.max(...seqs), \
               lastArrow: arrows[arrows.length - 1] ?? null, \
               accepted: document.querySelectorAll(\"section[aria-label='Server'] .conns .conn\").length, \
               accept: document.querySelector(\"section[aria-label='Server'] li[data-step='accept'] .card\")?.dataset.phase ?? null, \
               connect: document.querySelector(\"section[aria-label='Client 1'] li[data-step='connect'] .card\")?.dataset.phase ?? null, \
             };",
            vec![],
        )
        .await
        .expect("the script runs");
    let shot = browser.screenshot("stage-stepped-back-to-the-syn").await;
    assert_eq!(
        then["newest"],
        serde_json::json!(syn),
        "nothing after the SYN is drawn; see {}",
        shot.display()
    );
    assert!(
        then["lastArrow"]
            .as_str()
            .is_some_and(|label| label.starts_with("SYN ")),
        "the newest arrow is the SYN: {then}"
    );
    assert_eq!(
        then["accepted"],
        serde_json::json!(0),
        "no accepted connection yet: {then}"
    );
    assert_eq!(
        then["accept"],
        serde_json::json!("blocked"),
        "accept() still waits: {then}"
    );
    // connect() had not returned when its SYN left: its card is not done.
    assert_ne!(then["connect"], serde_json::json!("done"), "{then}");

    click(&browser, "//button[@data-action='live']").await;
    browser.wait_for(".at[data-state='live']").await;
    browser
        .wait_for("section[aria-label='Server'] .conns .conn")
        .await;

    // Picking the SYN opens its packet pane, with the call that sent it.
    browser
        .wait_for("#diagram g.arrow.syn")
        .await
        .click()
        .await
        .expect("the SYN is clickable");
    let pane = browser
        .wait_for("#packet dl")
        .await
        .text()
        .await
        .expect("the pane's text");
    assert!(pane.contains("SYN"), "{pane}");
    assert!(pane.contains("connect("), "the call that caused it: {pane}");
    assert!(pane.contains("relative 0"), "{pane}");
}

#[tokio::test]
async fn twenty_clicks_while_segments_stream_in_all_reach_the_relay() {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start("en-US").await;
    browser.open_page(&relay.url).await;
    click(&browser, "//input[@id='skip']").await;
    let mut clicks = 0;
    handshake(&browser, "Server", "Client 1", &mut clicks).await;

    // A peer outside the lab joins the server's queue and streams at it, so
    // the page redraws all the while.
    let port = browser.lab_port().await;
    let streaming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let streamer = {
        let streaming = std::sync::Arc::clone(&streaming);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut peer = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("the peer connects");
            peer.set_nodelay(true).expect("nodelay");
            while streaming.load(std::sync::atomic::Ordering::Relaxed) {
                peer.write_all(b"~").await.expect("the peer writes");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };

    // Twenty sends, a click each, 0.3 s apart, each with its own text.
    let message_box = "//section[@aria-label='Client 1']//input[@data-action='message']";
    let send = "//section[@aria-label='Client 1']//button[@data-action='send-message']";
    let seq_before = browser.applied_seq().await.expect("the page says its seq");
    for index in 0..20 {
        let started = std::time::Instant::now();
        type_into(&browser, message_box, &format!("m{index};")).await;
        click(&browser, send).await;
        let spent = started.elapsed();
        if let Some(rest) = std::time::Duration::from_millis(300).checked_sub(spent) {
            tokio::time::sleep(rest).await;
        }
    }
    // The server reads: every message is in its connection, in order.
    step(&browser, "Server", "read()", &mut clicks).await;
    let read = card(&browser, "Server", "read", "done").await;
    streaming.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = streamer.await;
    let expected: String = (0..20).map(|index| format!("m{index};")).collect();
    assert!(
        read.contains(&expected),
        "all twenty sends reached the relay and the peer, in order: {read}"
    );
    assert!(
        browser.applied_seq().await.expect("the page says its seq") > seq_before + 40,
        "segments streamed in while the clicks were made"
    );
}

/// Each drawn row's event, in the order the rows stand (rows without an
/// event, like a reset's divider, are left out), and the wire note.
const DRAWN_ROWS: &str = r#"
const seqs = Array.from(document.querySelectorAll('#diagram svg.row'))
  .map((row) => row.querySelector('g[data-seq]')?.dataset.seq)
  .filter((seq) => seq !== undefined)
  .map(Number);
return [seqs, document.getElementById('wire-note')?.textContent ?? ''];
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_diagram_lets_its_oldest_rows_go_and_keeps_drawing_the_newest() {
    let (_relay, browser) = after_handshake().await;
    let port = browser.lab_port().await;

    // An outside peer streams until the page has applied far more events
    // than the diagram keeps rows (2,000), so it lets blocks of rows go.
    let mut peer = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the peer connects");
    peer.set_nodelay(true).expect("nodelay");
    let started = std::time::Instant::now();
    while browser.applied_seq().await.expect("the page says its seq") < 4_600 {
        for _ in 0..50 {
            tokio::io::AsyncWriteExt::write_all(&mut peer, b"x")
                .await
                .expect("the peer writes");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the page kept up"
        );
    }
    drop(peer);

    // Once the page has drawn what it applied, the newest rows are there,
    // each once and in order, and the note says the oldest were let go.
    let mut last: (Vec<u64>, String) = (Vec::new(), String::new());
    for _ in 0..100 {
        let applied = browser.applied_seq().await.expect("the page says its seq");
        last = browser.script(DRAWN_ROWS, vec![]).await;
        if last.0.last().is_some_and(|newest| newest + 5 >= applied) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (seqs, note) = last;
    assert!(
        (1_000..=2_000).contains(&seqs.len()),
        "{} rows are drawn",
        seqs.len()
    );
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "every row is drawn once, in order"
    );
    assert!(seqs[0] > 1_000, "the oldest rows were let go: {}", seqs[0]);
    assert!(
        note.contains("oldest rows are no longer drawn"),
        "the page says so: {note}"
    );
    browser.assert_clean_console().await;
}

/// The step titles whose text runs over more than one line: each title is
/// the text of its step button (or of the address step's label), outside
/// the number and the call.
const WRAPPED_TITLES: &str = r#"
return [...document.querySelectorAll('li.step button, li.step.address label')].flatMap((button) => {
  const lines = new Set();
  for (const node of button.childNodes) {
    if (node.nodeType !== Node.TEXT_NODE || !node.textContent.trim()) { continue; }
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) {
      if (rect.width > 0) { lines.add(Math.round(rect.top)); }
    }
  }
  return lines.size > 1 ? [button.textContent.trim()] : [];
});
"#;

async fn no_step_title_wraps_on_a_1366_projector(language: &str) {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start(language).await;
    browser.open_page(&relay.url).await;
    browser.set_viewport(1366, 768).await;
    click(&browser, "//button[@data-action='projector']").await;
    browser.wait_for("body.projector").await;
    browser.wait_for("li.step button").await;
    let wrapped: Vec<String> = browser.script(WRAPPED_TITLES, vec![]).await;
    let steps: u64 = browser
        .script(
            "return document.querySelectorAll('li.step button').length",
            vec![],
        )
        .await;
    assert!(steps >= 12, "both lanes' steps are drawn ({steps})");
    let shot = browser
        .screenshot(&format!("stage-projector-1366x768-{language}"))
        .await;
    assert!(
        wrapped.is_empty(),
        "these step titles wrap: {wrapped:?}; see {}",
        shot.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_step_title_wraps_on_a_1366_projector_in_english() {
    no_step_title_wraps_on_a_1366_projector("en-US").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_step_title_wraps_on_a_1366_projector_in_chinese() {
    no_step_title_wraps_on_a_1366_projector("zh-CN").await;
}

/// Every word on the stage can be read in each theme: no text is the colour
/// of what it sits on, as a banner's buttons once were.
#[tokio::test]
async fn every_word_can_be_read_in_the_light_and_dark_themes_and_on_a_projector() {
    let (_relay, browser) = after_handshake().await;
    let mut themes = Vec::new();
    for (theme, toggle) in [
        ("light", None),
        ("dark", Some("theme")),
        ("dark projector", Some("projector")),
        ("light projector", Some("theme")),
    ] {
        if let Some(action) = toggle {
            click(&browser, &format!("//button[@data-action='{action}']")).await;
        }
        let body: String = browser
            .script("return document.body.className", vec![])
            .await;
        themes.push(format!("{theme}: {body}"));
        let unreadable = browser.unreadable_text().await;
        assert!(
            unreadable.is_empty(),
            "{theme}: text the colour of its background: {unreadable:?}"
        );
    }
    // Each toggle took: the checks above met four different pages.
    assert!(
        themes[1].contains("dark") && themes[2].contains("projector"),
        "{themes:?}"
    );
    assert!(
        !themes[3].contains("dark") && themes[3].contains("projector"),
        "{themes:?}"
    );
}

/// Opening the drawer on a 1280-wide laptop narrows the stage's columns with
/// no window resize: the diagram is drawn again at its new width, and no
/// part of the page (a lane, the drawer, the log) needs a sideways scroll.
#[tokio::test]
async fn the_drawer_narrows_the_stage_and_the_diagram_is_redrawn_to_fit() {
    let (_relay, browser) = after_handshake().await;
    browser.set_viewport(1280, 800).await;
    click(&browser, "//button[@data-action='drawer']").await;
    browser.wait_for("body .code:not([hidden])").await;
    let fits = "const diagram = document.getElementById('diagram'); \
                const svg = diagram.querySelector('svg'); \
                return [svg.getBoundingClientRect().width <= diagram.clientWidth + 1, \
                  [...document.querySelectorAll('body *')] \
                    .filter((box) => box.clientWidth > 1 \
                      && getComputedStyle(box).overflowX !== 'visible' \
                      && box.scrollWidth > box.clientWidth + 1) \
                    .map((box) => box.id || box.className)]";
    let mut seen = serde_json::Value::Null;
    for _ in 0..50 {
        seen = browser.script(fits, vec![]).await;
        if seen == serde_json::json!([true, []]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        serde_json::json!([true, []]),
        "[the diagram fits its box, the parts that scroll sideways]"
    );
}
