//! Headless Debian Chromium, driven through chromedriver with fantoccini.
//! Nothing here downloads a browser: it needs the `chromium` and
//! `chromium-driver` packages, and says so when they are missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the page may take to reach a state the test waits for.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A browser session. Dropping it stops chromedriver (and so Chromium).
pub struct Browser {
    pub client: Client,
    _driver: Child,
    _profile: TempProfile,
}

/// A fresh `--user-data-dir`, removed afterwards.
struct TempProfile(PathBuf);

impl Drop for TempProfile {
    fn drop(&mut self) {
        // Killing chromedriver leaves its Chromium running, and a page with
        // an animation loop keeps a core busy. Every process of this profile
        // goes, even when the test panicked.
        let _ = std::process::Command::new("pkill")
            .args(["--signal", "KILL", "--full"])
            .arg(self.0.as_os_str())
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with the given UI language.
    pub async fn start(language: &str) -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: install it with `apt-get install chromium chromium-driver` \
                 (.ci/run does); these tests never download a browser"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!(
            "socket-flow-chromium-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        let profile = TempProfile(profile);
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--window-size=1400,1000".to_string(),
            format!("--lang={language}"),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": { "intl.accept_languages": language },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "chromedriver did not start a session: {error}"
                    );
                    // chromedriver is still starting; ask again shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Runs a script in the page and reads its answer as `T`.
    pub async fn script<T: serde::de::DeserializeOwned>(
        &self,
        script: &str,
        args: Vec<serde_json::Value>,
    ) -> T {
        let value = self
            .client
            .execute(script, args)
            .await
            .expect("the script runs");
        serde_json::from_value(value.clone()).unwrap_or_else(|error| {
            panic!("the script answered {value}, not what was asked: {error}")
        })
    }

    /// Waits for an element by CSS selector.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{css} never appeared: {error}"))
    }

    /// Opens the page at `url` and waits until its WebSocket is connected
    /// (only the wasm writes that state, and only once the socket opened).
    pub async fn open_page(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
        self.wait_for("#status[data-state='connected']").await;
    }

    /// The lab server's port, from the header's "join from outside" line
    /// (`nc HOST PORT`).
    pub async fn lab_port(&self) -> u16 {
        let line = self
            .client
            .execute("return document.getElementById('nc').value", vec![])
            .await
            .expect("the script runs");
        line.as_str()
            .and_then(|line| line.split_whitespace().last())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the page shows no nc line with a port: {line}"))
    }

    /// The seq of the last event the page applied, if the page says it
    /// (its status carries it as `data-seq`; older pages do not).
    pub async fn applied_seq(&self) -> Option<u64> {
        self.client
            .execute(
                "const seq = document.getElementById('status')?.dataset.seq; \
                 return seq ? Number(seq) : null",
                vec![],
            )
            .await
            .ok()
            .and_then(|value| value.as_u64())
    }

    /// Sizes the window so that its viewport (the page's own area, without
    /// the browser's frame) is `width`×`height`, as a screen of that size
    /// shows a page in full screen.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let (mut outer_width, mut outer_height) = (width, height);
        for _ in 0..10 {
            self.client
                .set_window_size(outer_width, outer_height)
                .await
                .expect("the window resizes");
            // A busy machine applies the new size a moment later: wait
            // until the page reports the same size twice in a row.
            let mut inner = self.inner_size().await;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(25)).await;
                let again = self.inner_size().await;
                if again == inner {
                    break;
                }
                inner = again;
            }
            if inner == [width, height] {
                return;
            }
            // The frame's size is the difference; grow the window by it.
            let grow = |outer: u32, want: u32, got: u32| {
                (i64::from(outer) + i64::from(want) - i64::from(got)).max(100) as u32
            };
            outer_width = grow(outer_width, width, inner[0]);
            outer_height = grow(outer_height, height, inner[1]);
        }
        panic!("the viewport could not be made {width}×{height}");
    }

    async fn inner_size(&self) -> Vec<u32> {
        serde_json::from_value(
            self.client
                .execute("return [window.innerWidth, window.innerHeight]", vec![])
                .await
                .expect("the script runs"),
        )
        .expect("two numbers")
    }

    /// The visible elements whose own text is the colour of what it sits on
    /// (the nearest background that is not transparent), as `tag: text`:
    /// text nobody can read, such as a button that inherits a banner's white.
    pub async fn unreadable_text(&self) -> Vec<String> {
        self.script(
            "const under = (element) => { \
               for (let at = element; at; at = at.parentElement) { \
                 const colour = getComputedStyle(at).backgroundColor; \
                 if (colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour; \
               } \
               return 'rgb(255, 255, 255)'; }; \
             return [...document.querySelectorAll('body *')] \
               .filter((element) => !(element instanceof SVGElement) \
                 && element.getClientRects().length > 0 \
                 && getComputedStyle(element).visibility !== 'hidden' \
                 && [...element.childNodes].some((node) => node.nodeType === 3 && node.textContent.trim()) \
                 && getComputedStyle(element).color === under(element)) \
               .map((element) => element.tagName + ': ' + element.textContent.trim().slice(0, 60))",
            vec![],
        )
        .await
    }

    /// Saves a screenshot under tests/artifacts/ and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts");
        std::fs::create_dir_all(&dir).expect("the artifacts folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is saved");
        path
    }

    /// Runs a DevTools Protocol command (`Performance.getMetrics`, say) and
    /// returns its result.
    pub async fn cdp(&self, command: &str, params: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({ "cmd": command, "params": params }).to_string();
        self.client
            .issue_cmd(Chromedriver {
                path: "goog/cdp/execute",
                body,
            })
            .await
            .unwrap_or_else(|error| panic!("chromedriver ran no {command}: {error}"))
    }

    /// The browser console's entries so far, as (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let logs = self
            .client
            .issue_cmd(Chromedriver {
                path: "se/log",
                body: r#"{"type":"browser"}"#.to_string(),
            })
            .await
            .expect("chromedriver returns the browser log");
        logs.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        (
                            entry["level"].as_str().unwrap_or_default().to_string(),
                            entry["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails the test on any console error or warning from the page.
    pub async fn assert_clean_console(&self) {
        let problems: Vec<(String, String)> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
            .collect();
        assert!(problems.is_empty(), "the console has errors: {problems:#?}");
    }
}

/// A chromedriver endpoint fantoccini has no method for: the browser's log
/// (`se/log`), or a DevTools Protocol command (`goog/cdp/execute`).
#[derive(Debug)]
struct Chromedriver {
    path: &'static str,
    body: String,
}

impl WebDriverCompatibleCommand for Chromedriver {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.clone()))
    }
}

// The lesson's clicks and waits, by accessible names, for every browser test.

/// Makes `attempt` until it succeeds, for at most [`PAGE_TIMEOUT`]: an
/// element found a moment ago may be replaced by a redraw, or not be there
/// yet. Past the timeout it saves a screenshot and fails, saying `what`.
async fn retried<T, Attempt>(
    browser: &Browser,
    what: &str,
    mut attempt: impl FnMut() -> Attempt,
) -> T
where
    Attempt: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => {
                if Instant::now() >= deadline {
                    browser.screenshot("timeout").await;
                    panic!("{what}: {error}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Clicks the element an XPath finds, again if a redraw replaced it between
/// the finding and the click.
pub async fn click(browser: &Browser, xpath: &str) {
    retried(browser, &format!("could not click {xpath}"), || async {
        browser
            .client
            .find(Locator::XPath(xpath))
            .await?
            .click()
            .await
    })
    .await
}

/// Types into the field an XPath finds, replacing its text, again if a
/// redraw (the answer to the last click) replaced it in between.
pub async fn type_into(browser: &Browser, xpath: &str, text: &str) {
    retried(browser, &format!("could not type into {xpath}"), || async {
        let field = browser.client.find(Locator::XPath(xpath)).await?;
        field.clear().await?;
        field.send_keys(text).await
    })
    .await
}

/// Waits until an XPath finds an element, and returns its text.
pub async fn wait_text(browser: &Browser, xpath: &str) -> String {
    retried(browser, &format!("{xpath} never appeared"), || async {
        browser
            .client
            .find(Locator::XPath(xpath))
            .await?
            .text()
            .await
    })
    .await
}

pub fn lane(label: &str) -> String {
    format!("//section[@aria-label='{label}']")
}

/// Clicks the step button of a lane whose accessible name contains `call`.
pub async fn step(browser: &Browser, lane_label: &str, call: &str, clicks: &mut u32) {
    click(
        browser,
        &format!(
            "{}//button[@data-action='step' and contains(., '{call}')]",
            lane(lane_label)
        ),
    )
    .await;
    *clicks += 1;
}

/// Waits for a lane's step card in a phase (done, failed, blocked) and returns it.
pub async fn card(browser: &Browser, lane_label: &str, step_key: &str, phase: &str) -> String {
    wait_text(
        browser,
        &format!(
            "{}//li[@data-step='{step_key}']//div[contains(@class,'card') and @data-phase='{phase}']",
            lane(lane_label)
        ),
    )
    .await
}

/// A relay, and Chromium with the page open, animation skipped, and the
/// handshake made by hand between the server and Client 1.
pub async fn after_handshake() -> (crate::relay_process::RelayProcess, Browser) {
    let relay = crate::relay_process::RelayProcess::start(&[]).await;
    let browser = Browser::start("en-US").await;
    browser.open_page(&relay.url).await;
    click(&browser, "//input[@id='skip']").await;
    handshake(&browser, "Server", "Client 1", &mut 0).await;
    (relay, browser)
}

/// The course's handshake by hand: the server's socket, bind, listen and
/// accept (which waits), then the client's socket and connect. Returns once
/// accept() has returned the connection.
pub async fn handshake(browser: &Browser, server: &str, client: &str, clicks: &mut u32) {
    for call in ["socket()", "bind()", "listen()", "accept()"] {
        step(browser, server, call, clicks).await;
    }
    card(browser, server, "accept", "blocked").await;
    for call in ["socket()", "connect()"] {
        step(browser, client, call, clicks).await;
    }
    card(browser, server, "accept", "done").await;
}
