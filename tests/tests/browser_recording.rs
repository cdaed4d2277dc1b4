//! Recordings in real Chromium against the real relay: a lesson saved from
//! the page opens again, without the relay, as the same timeline rows.

use std::path::Path;
use std::time::Duration;

use socket_flow_tests::browser::{Browser, after_handshake, click};

/// Each diagram row, by the event it draws (or `divider`).
const ROWS: &str = r#"
return [...document.querySelectorAll('#diagram svg.row')]
  .map((row) => row.querySelector('[data-seq]')?.dataset.seq ?? 'divider');
"#;

async fn rows(browser: &Browser) -> Vec<String> {
    browser.script(ROWS, vec![]).await
}

/// Waits until the page shows a recording, and answers its banner's words.
async fn recording_banner(browser: &Browser) -> String {
    browser.wait_for("#status[data-state='recording']").await;
    browser
        .wait_for("#recording:not([hidden])")
        .await
        .text()
        .await
        .expect("the banner's words")
}

/// Waits for the one finished download in `folder` whose name ends in
/// `extension`.
async fn downloaded(folder: &Path, extension: &str) -> std::path::PathBuf {
    for _ in 0..200 {
        let done: Vec<_> = std::fs::read_dir(folder)
            .expect("the download folder")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == extension))
            .collect();
        // Chrome reserves the name with an empty file when the download
        // starts, and writes into a .crdownload beside it until it ends.
        let writing = std::fs::read_dir(folder)
            .expect("the download folder")
            .filter_map(Result::ok)
            .any(|entry| {
                entry
                    .path()
                    .extension()
                    .is_some_and(|ext| ext == "crdownload")
            });
        if let [file] = done.as_slice() {
            if !writing && std::fs::metadata(file).is_ok_and(|meta| meta.len() > 0) {
                return file.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no recording was downloaded into {}", folder.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_lesson_opens_again_as_the_same_rows_with_no_relay_behind_it() {
    let (relay, browser) = after_handshake().await;
    let live = rows(&browser).await;
    assert!(live.len() > 5, "the handshake drew rows: {live:?}");

    // Save: the browser downloads the recording into a folder of the test's.
    let folder = std::env::temp_dir().join(format!("socket-flow-recording-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("a download folder");
    browser
        .cdp(
            "Browser.setDownloadBehavior",
            serde_json::json!({ "behavior": "allow", "downloadPath": folder.display().to_string() }),
        )
        .await;
    click(&browser, "//button[@id='drawer-toggle']").await;
    // Beside it, the live lab's capture for Wireshark, by the lab's code.
    let wireshark = browser
        .wait_for("#wireshark a[href$='/capture.pcapng']")
        .await
        .attr("href")
        .await
        .expect("the link's address")
        .expect("an address");
    let (status, _, pcapng) =
        socket_flow_tests::http_get(&format!("{}{wireshark}", relay.url)).await;
    assert_eq!(status, 200, "{wireshark}");
    assert_eq!(&pcapng[..4], [0x0a, 0x0d, 0x0d, 0x0a], "a pcapng section");
    click(&browser, "//button[@data-action='save-recording']").await;
    let file = downloaded(&folder, "jsonl").await;
    let text = std::fs::read_to_string(&file).expect("the recording");
    let recording = protocol::read_recording(&text).expect("it reads as a recording");
    assert!(recording.damaged.is_none());
    assert!(recording.header.relay.starts_with("socket-flow relay"));

    // Open it again: the live lab closes, and the stage shows the recording.
    browser
        .wait_for("input[data-action='open-recording']")
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("the file is chosen");
    let words = recording_banner(&browser).await;
    assert!(
        words.contains("A recording of a real run") && words.contains("Nothing in it is live"),
        "{words}"
    );
    // Show it all (the history's live button) shows the whole recording at once.
    click(&browser, "//button[@data-action='live']").await;
    let mut opened = Vec::new();
    for _ in 0..100 {
        opened = rows(&browser).await;
        if opened == live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(opened, live, "the same rows, in the same order");
    // Its end is the whole recording, never "Live": nothing in it is.
    let status: String = browser
        .script(
            "return document.querySelector('#history .at').textContent",
            vec![],
        )
        .await;
    assert_eq!(status, "The whole recording");
    browser.screenshot("recording-whole").await;
    // Every word of it can be read, the banner's buttons too.
    let unreadable = browser.unreadable_text().await;
    assert!(
        unreadable.is_empty(),
        "text the colour of its background: {unreadable:?}"
    );

    // Nothing in it is live: a step makes no command, and the page says why.
    click(
        &browser,
        "//section[@aria-label='Server']//button[@data-step='socket']",
    )
    .await;
    let error = browser.wait_for("#error:not([hidden])").await;
    assert!(
        error
            .text()
            .await
            .expect("the error's words")
            .contains("recording"),
        "the page says why nothing happened"
    );
    browser.assert_clean_console().await;

    // The diagram saved for slides is an SVG document a browser opens on
    // its own, with a row for each of the recording's rows.
    click(&browser, "//button[@data-action='save-diagram']").await;
    let svg = downloaded(&folder, "svg").await;
    let svg_text = std::fs::read_to_string(&svg).expect("the SVG");
    // Inkscape opens it too: it exports it as a PNG.
    let exported = folder.join("inkscape.png");
    let inkscape = std::process::Command::new("inkscape")
        .arg(&svg)
        .args(["--export-type=png", "--export-filename"])
        .arg(&exported)
        .output()
        .expect("inkscape runs (Debian's inkscape package)");
    assert!(
        inkscape.status.success() && exported.is_file(),
        "Inkscape opens the SVG: {}",
        String::from_utf8_lossy(&inkscape.stderr)
    );
    std::fs::remove_file(&exported).expect("the export is removed");
    // And as a PNG at twice its size: the width in its IHDR chunk.
    click(&browser, "//button[@data-action='save-diagram-png']").await;
    let png = std::fs::read(downloaded(&folder, "png").await).expect("the PNG");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let png_width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let svg_width: u32 = svg_text
        .split("width=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|width| width.parse().ok())
        .expect("the SVG's width");
    assert_eq!(png_width, svg_width * 2, "twice the diagram's size");
    browser
        .client
        .goto(&format!("file://{}", svg.display()))
        .await
        .expect("the SVG opens");
    let drawn: Vec<serde_json::Value> = browser
        .script(
            "return [document.documentElement.tagName, \
                   document.querySelectorAll('svg.row').length, \
                   document.querySelector('parsererror') === null]",
            vec![],
        )
        .await;
    assert_eq!(
        drawn,
        [
            serde_json::json!("svg"),
            serde_json::json!(live.len()),
            serde_json::json!(true)
        ],
        "a well-formed SVG with every row"
    );
    let _ = std::fs::remove_dir_all(&folder);
}

/// Serves `www/` as any static file server would, with no relay behind it:
/// `/ws` is a 404 like any missing file. Returns its URL.
async fn static_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}/", listener.local_addr().expect("an address"));
    let www = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let www = www.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let path = if path == "/" { "/index.html" } else { path };
                let kind = match path.rsplit_once('.').map(|(_, ext)| ext) {
                    Some("html") => "text/html; charset=utf-8",
                    Some("css") => "text/css",
                    Some("js") => "text/javascript",
                    Some("wasm") => "application/wasm",
                    _ => "application/octet-stream",
                };
                let file = (!path.contains(".."))
                    .then(|| std::fs::read(www.join(path.trim_start_matches('/'))).ok())
                    .flatten();
                let response = match file {
                    Some(body) => [
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes(),
                        body,
                    ]
                    .concat(),
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec(),
                };
                let _ = stream.write_all(&response).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_relay_the_page_says_so_and_plays_the_recorded_lesson_to_its_end() {
    let url = static_server().await;
    let browser = Browser::start("en-US").await;
    browser.client.goto(&url).await.expect("the page loads");
    // No relay answers: the page says so, and offers the recorded lesson.
    let banner = browser.wait_for("#banner:not([hidden]) button").await;
    browser.wait_for("#status[data-state='lost']").await;
    // Its button can be read on the banner's colour.
    let unreadable = browser.unreadable_text().await;
    assert!(
        unreadable.is_empty(),
        "text the colour of its background: {unreadable:?}"
    );
    banner.click().await.expect("the button is clicked");
    let words = recording_banner(&browser).await;
    assert!(words.contains("Nothing in it is live"), "{words}");
    // It plays, an event a step at the fastest speed, to its end: then the
    // stage shows it whole, and the player offers to play it again.
    browser
        .client
        .execute(
            "const speed = document.getElementById('speed'); speed.value = speed.min; \
             speed.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![],
        )
        .await
        .expect("the speed is set");
    let mut ended = false;
    for _ in 0..300 {
        let state: Vec<serde_json::Value> = browser.script("return [document.querySelector(\"#history button[data-action='live']\")?.disabled ?? false, \
                       document.querySelector(\"#recording button[data-action='replay-play']\")?.textContent ?? '']",
                    vec![]).await;
        if state[0] == serde_json::json!(true)
            && state[1].as_str().is_some_and(|text| text.contains("Play"))
        {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended, "the recording played to its end");
    // The whole lesson is on the stage: the handshake's arrows among them.
    browser.wait_for("#diagram g.arrow.syn").await;
    let rows = rows(&browser).await;
    assert!(rows.len() > 20, "the lesson's rows: {}", rows.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_dropped_anywhere_on_the_page_opens() {
    let (_relay, browser) = after_handshake().await;
    let lesson = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../www/demo/lesson.jsonl"
    ))
    .expect("the built-in lesson");
    // A drop on the page's body, as a file manager's drag would end.
    browser
        .client
        .execute(
            "const transfer = new DataTransfer(); \
             transfer.items.add(new File([arguments[0]], 'lesson.jsonl', { type: 'application/x-ndjson' })); \
             document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));",
            vec![serde_json::Value::String(lesson)],
        )
        .await
        .expect("the drop is made");
    let words = recording_banner(&browser).await;
    assert!(words.contains("A recording of a real run"), "{words}");
}
