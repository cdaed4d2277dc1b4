//! The visualizer in real Chromium against the real relay: the course's whole
//! flow clicked through by accessible names, in English and in Chinese, the
//! error scenarios, messages, the code panel, and an outside peer.

use std::io::Write;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use socket_flow_tests::browser::{Browser, card, click, lane, step, wait_text};
use socket_flow_tests::relay_process::RelayProcess;

async fn open(language: &str) -> (RelayProcess, Browser, Duration) {
    let relay = RelayProcess::start(&[]).await;
    let browser = Browser::start(language).await;
    let started = Instant::now();
    browser.open_page(&relay.url).await;
    let interactive = started.elapsed();
    // Animations are for people; the tests want the truth at once.
    click(&browser, "//input[@id='skip']").await;
    // The code and the log are in the drawer beside the stage.
    click(
        &browser,
        "//button[@id='drawer-toggle' and @aria-expanded='false']",
    )
    .await;
    browser.wait_for("#workspace.drawer-open").await;
    (relay, browser, interactive)
}

#[tokio::test]
async fn the_whole_lesson_in_english() {
    let (_relay, browser, interactive) = open("en-US").await;
    let mut clicks = 0;
    let (server, client) = ("Server", "Client 1");

    step(&browser, server, "socket()", &mut clicks).await;
    let socket_card = card(&browser, server, "socket", "done").await;
    assert!(
        socket_card.contains("= "),
        "socket() shows its fd: {socket_card}"
    );
    step(&browser, server, "bind()", &mut clicks).await;
    card(&browser, server, "bind", "done").await;
    step(&browser, server, "listen()", &mut clicks).await;
    card(&browser, server, "listen", "done").await;
    wait_text(
        &browser,
        &format!("{}//span[@data-tcp='LISTEN']", lane(server)),
    )
    .await;
    step(&browser, server, "accept()", &mut clicks).await;
    let waiting = card(&browser, server, "accept", "blocked").await;
    assert!(
        waiting.contains("EAGAIN"),
        "a blocked accept shows the kernel's EAGAIN: {waiting}"
    );
    browser.screenshot("lesson-1-accept-waits").await;

    step(&browser, client, "socket()", &mut clicks).await;
    card(&browser, client, "socket", "done").await;
    step(&browser, client, "connect()", &mut clicks).await;
    card(&browser, client, "connect", "done").await;
    wait_text(
        &browser,
        &format!("{}//span[@data-tcp='ESTABLISHED']", lane(client)),
    )
    .await;
    let accepted = card(&browser, server, "accept", "done").await;
    assert!(accepted.contains("peer 127.0.0.1:"), "{accepted}");
    browser.screenshot("lesson-2-established").await;

    // A typed message travels through the real sockets.
    let message_box = format!("{}//input[@data-action='message']", lane(client));
    let input = browser
        .client
        .find(Locator::XPath(&message_box))
        .await
        .expect("the client has a message box once connected");
    input
        .send_keys("hello from chromium\u{E007}")
        .await
        .expect("typed");
    clicks += 1;
    wait_text(
        &browser,
        &format!(
            "{}//div[@data-phase='done']//q[contains(., 'hello from chromium')]",
            lane(client)
        ),
    )
    .await;
    step(&browser, server, "read()", &mut clicks).await;
    let read = card(&browser, server, "read", "done").await;
    assert!(
        read.contains("hello from chromium"),
        "the server's read got the message: {read}"
    );
    assert!(read.contains("= 19"), "read returns the byte count: {read}");

    // The code panel highlights the line of the call just made.
    let highlighted = wait_text(&browser, "//ol[@class='listing']/li[contains(@class,'hl')]").await;
    assert!(
        highlighted.contains("read(new_socket"),
        "highlighted: {highlighted}"
    );
    assert!(
        highlighted.contains("valread = 19"),
        "with the real value: {highlighted}"
    );
    browser.screenshot("lesson-3-read").await;
    // A tall window shows lanes, listing and timeline together: the README's picture.
    browser
        .client
        .set_window_size(1600, 1700)
        .await
        .expect("resized");
    browser
        .client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scrolled");
    browser.screenshot("overview").await;
    browser
        .client
        .set_window_size(1400, 1000)
        .await
        .expect("resized back");

    step(&browser, server, "send()", &mut clicks).await;
    card(&browser, server, "send", "done").await;
    step(&browser, client, "read()", &mut clicks).await;
    let reply = card(&browser, client, "read", "done").await;
    assert!(reply.contains("Hello, Client"), "{reply}");
    step(&browser, client, "close()", &mut clicks).await;
    card(&browser, client, "close", "done").await;
    step(&browser, server, "read()", &mut clicks).await;
    wait_text(
        &browser,
        &format!(
            "{}//li[@data-step='read']//div[@data-phase='done' and contains(., '= 0')]",
            lane(server)
        ),
    )
    .await;
    wait_text(
        &browser,
        &format!("{}//span[@data-tcp='CLOSE_WAIT']", lane(server)),
    )
    .await;
    step(&browser, server, "close()", &mut clicks).await;
    step(&browser, server, "close()", &mut clicks).await;
    wait_text(
        &browser,
        &format!(
            "{}//li[@data-step='close']//code[contains(., 'close(') ]",
            lane(server)
        ),
    )
    .await;
    wait_text(
        &browser,
        &format!("{}//span[@data-tcp='TIME_WAIT']", lane(client)),
    )
    .await;
    browser.screenshot("lesson-4-closed").await;
    // As root the relay captures: the diagram draws the real handshake.
    wait_text(
        &browser,
        "//*[local-name()='g' and contains(@class,'arrow') and contains(@class,'syn')]",
    )
    .await;
    // The timeline draws the handshake before accept() returns, as it
    // happened in the kernel: SYN, SYN+ACK and ACK rows come first.
    wait_text(
        &browser,
        "//*[local-name()='g' and contains(@class,'call') and contains(@class,'done')]/*[local-name()='text' and starts-with(., 'accept() = ')]",
    )
    .await;
    let rows: Vec<String> = browser
        .script(
            "return Array.from(document.querySelectorAll('#diagram g[data-seq]')).map(g => \
             (g.getAttribute('class') || '') + '|' + ((g.querySelector('text') || {}).textContent || ''));",
            vec![],
        )
        .await;
    let at = |what: &str, from: usize, test: &dyn Fn(&str) -> bool| {
        from + rows[from..]
            .iter()
            .position(|row| test(row))
            .unwrap_or_else(|| panic!("no {what} row after {from}: {rows:#?}"))
    };
    let syn = at("SYN", 0, &|row| {
        row.contains("arrow syn") && row.contains("|SYN seq")
    });
    let syn_ack = at("SYN+ACK", 0, &|row| row.contains("|SYN+ACK seq"));
    let ack = at("ACK", syn_ack, &|row| {
        row.contains("arrow ack") && row.contains("|ACK seq=1 ack=1")
    });
    let accept = at("accept() = N", 0, &|row| {
        row.contains("call done") && row.contains("|accept() = ")
    });
    assert!(
        syn < syn_ack && syn_ack < ack && ack < accept,
        "SYN {syn}, SYN+ACK {syn_ack}, ACK {ack}, accept {accept}: {rows:#?}"
    );
    browser
        .client
        .execute("document.querySelector('.wire').scrollIntoView()", vec![])
        .await
        .expect("scrolled");
    browser.screenshot("lesson-5-wire").await;
    browser.assert_clean_console().await;

    let mut report = std::io::stderr();
    let _ = writeln!(
        report,
        "lesson: {clicks} clicks; page load to interactive: {} ms",
        interactive.as_millis()
    );
}

#[tokio::test]
async fn the_lesson_in_chinese_by_its_chinese_titles() {
    let (_relay, browser, _) = open("zh-CN").await;
    let mut clicks = 0;
    let (server, client) = ("服务端", "客户端 1");
    step(&browser, server, "创建套接字", &mut clicks).await;
    step(&browser, server, "绑定套接字", &mut clicks).await;
    step(&browser, server, "启动监听", &mut clicks).await;
    card(&browser, server, "listen", "done").await;
    step(&browser, client, "创建套接字", &mut clicks).await;
    card(&browser, client, "socket", "done").await;
    step(&browser, client, "连接客户端", &mut clicks).await;
    card(&browser, client, "connect", "done").await;
    wait_text(
        &browser,
        &format!("{}//span[@data-tcp='ESTABLISHED']", lane(client)),
    )
    .await;
    step(&browser, server, "接受设备", &mut clicks).await;
    card(&browser, server, "accept", "done").await;
    let code_comment = wait_text(&browser, "//ol[@class='listing']").await;
    assert!(
        code_comment.contains("接受设备"),
        "the listing's comments are in Chinese"
    );
    browser.screenshot("zh-established").await;

    step(&browser, client, "发送数据", &mut clicks).await;
    card(&browser, client, "send", "done").await;
    step(&browser, server, "接收数据", &mut clicks).await;
    let read = card(&browser, server, "read", "done").await;
    assert!(read.contains("Hello, Server"), "{read}");
    step(&browser, server, "发送数据", &mut clicks).await;
    step(&browser, client, "接收数据", &mut clicks).await;
    let reply = card(&browser, client, "read", "done").await;
    assert!(reply.contains("Hello, Client"), "{reply}");
    step(&browser, client, "关闭设备", &mut clicks).await;
    card(&browser, client, "close", "done").await;
    step(&browser, server, "关闭设备", &mut clicks).await;
    step(&browser, server, "关闭设备", &mut clicks).await;
    wait_text(
        &browser,
        &format!("{}//span[@data-tcp='TIME_WAIT']", lane(client)),
    )
    .await;
    let status = wait_text(&browser, "//span[@id='status']").await;
    assert_eq!(status, "已连接中继");
    // The course material's titles stay; a gloss says what the call does.
    let gloss = wait_text(&browser, "//li[@data-step='accept']/p[@class='gloss']").await;
    assert!(gloss.contains("新的 fd"), "{gloss}");
    browser.screenshot("zh-closed").await;
    browser.assert_clean_console().await;
}

#[tokio::test]
async fn run_the_whole_flow_plays_the_lesson_by_itself() {
    let (_relay, browser, _) = open("en-US").await;
    let set_speed = |delay_ms: u32| {
        let browser = &browser;
        async move {
            let speed = browser
                .client
                .find(Locator::Id("speed"))
                .await
                .expect("slider");
            browser
                .client
                .execute(
                    &format!(
                        "arguments[0].value = {delay_ms}; \
                         arguments[0].dispatchEvent(new Event('input', {{bubbles: true}}));"
                    ),
                    vec![serde_json::to_value(&speed).expect("element")],
                )
                .await
                .expect("speed set");
        }
    };
    // Slow enough to pause mid-lesson, then fast to the end.
    set_speed(2500).await;
    click(
        &browser,
        "//button[@data-action='run' and @data-scenario='lesson']",
    )
    .await;
    click(&browser, "//button[@id='pause']").await;
    wait_text(&browser, "//span[@id='playing' and contains(., 'Paused')]").await;
    set_speed(150).await;
    click(&browser, "//button[@id='pause']").await;
    wait_text(&browser, "//span[@id='playing' and contains(., 'Playing')]").await;
    // The client's TIME_WAIT comes once both sides have closed.
    wait_text(
        &browser,
        &format!("{}//span[@data-tcp='TIME_WAIT']", lane("Client 1")),
    )
    .await;
    let reply = card(&browser, "Client 1", "read", "done").await;
    assert!(reply.contains("Hello, Client"), "{reply}");
    // The player is finished once nothing plays.
    wait_text(&browser, "//span[@id='playing' and normalize-space(.)='']").await;
    let eof = card(&browser, "Server", "read", "done").await;
    assert!(
        eof.contains("= 0"),
        "the last read saw the client's FIN: {eof}"
    );
    browser.screenshot("lesson-played").await;
    browser.assert_clean_console().await;
}

/// Starts an error scenario from the menu at the fastest pace.
async fn run_scenario(browser: &Browser, key: &str) {
    let speed = browser
        .client
        .find(Locator::Id("speed"))
        .await
        .expect("slider");
    // The fastest setting: the scenario is the test, not the pace.
    browser
        .client
        .execute("arguments[0].value = 150; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", vec![serde_json::to_value(&speed).expect("element")])
        .await
        .expect("speed set");
    let select = browser
        .client
        .find(Locator::Id("scenario"))
        .await
        .expect("menu");
    select
        .select_by_value(key)
        .await
        .expect("the scenario is in the menu");
    click(browser, "//button[@data-action='run-scenario']").await;
}

#[tokio::test]
async fn the_connect_before_listen_scenario_shows_econnrefused() {
    let (_relay, browser, _) = open("en-US").await;
    run_scenario(&browser, "connect-before-listen").await;
    let refused = card(&browser, "Client 1", "connect", "failed").await;
    assert!(refused.contains("ECONNREFUSED"), "{refused}");
    assert!(refused.contains("Connection refused"), "{refused}");
    // Once it has run, a summary says what was seen and why, and points at
    // the card, the arrow and the C line.
    let summary = wait_text(&browser, "//div[@class='summary-card']").await;
    assert!(
        summary.contains("connect() failed: ECONNREFUSED"),
        "{summary}"
    );
    assert!(summary.contains("listen()"), "{summary}");
    wait_text(
        &browser,
        "//div[@class='summary-card']//button[contains(., 'Show the card')]",
    )
    .await;
    wait_text(
        &browser,
        "//div[@class='summary-card']//button[contains(., 'Show the arrow')]",
    )
    .await;
    let line = wait_text(&browser, "//div[@class='summary-card']//button/code").await;
    assert!(line.contains("connect(sockfd"), "{line}");
    browser.screenshot("scenario-econnrefused").await;
    browser.assert_clean_console().await;
}

#[tokio::test]
async fn an_outside_peer_appears_as_an_accepted_connection() {
    let (_relay, browser, _) = open("en-US").await;
    let mut clicks = 0;
    for call in ["socket()", "bind()", "listen()"] {
        step(&browser, "Server", call, &mut clicks).await;
    }
    card(&browser, "Server", "listen", "done").await;
    let nc = browser
        .wait_for("#nc")
        .await
        .prop("value")
        .await
        .expect("the nc field")
        .unwrap_or_default();
    assert!(
        nc.starts_with("nc 127.0.0.1 "),
        "the page says how to join: {nc:?}"
    );
    let port = browser.lab_port().await;
    let mut outsider =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("the outsider connects");
    let outsider_addr = outsider.local_addr().expect("local").to_string();
    step(&browser, "Server", "accept()", &mut clicks).await;
    let accepted = card(&browser, "Server", "accept", "done").await;
    assert!(
        accepted.contains(&outsider_addr),
        "{accepted} names {outsider_addr}"
    );
    wait_text(
        &browser,
        &format!(
            "{}//div[@class='conns']//span[contains(., '{outsider_addr}')]",
            lane("Server")
        ),
    )
    .await;
    outsider.write_all(b"from outside").expect("written");
    step(&browser, "Server", "read()", &mut clicks).await;
    let read = card(&browser, "Server", "read", "done").await;
    assert!(read.contains("from outside"), "{read}");
    browser.screenshot("outsider-accepted").await;
    browser.assert_clean_console().await;
}

#[tokio::test]
async fn a_restarted_server_meets_time_wait_and_so_reuseaddr_fixes_it() {
    let (_relay, browser, _) = open("en-US").await;
    run_scenario(&browser, "bind-in-use").await;
    let summary = wait_text(&browser, "//div[@class='summary-card']").await;
    assert!(summary.contains("bind() failed: EADDRINUSE"), "{summary}");
    let refused = card(&browser, "Server", "bind", "failed").await;
    assert!(refused.contains("EADDRINUSE"), "{refused}");
    // The scenario starts with a reset: a divider, then the new run.
    wait_text(
        &browser,
        "//*[local-name()='g' and contains(@class,'divider')]",
    )
    .await;
    browser.screenshot("scenario-eaddrinuse").await;
    run_scenario(&browser, "bind-reuseaddr").await;
    let summary = wait_text(
        &browser,
        "//div[@class='summary-card']/h2[contains(., 'SO_REUSEADDR')]",
    )
    .await;
    assert!(summary.contains("bind() succeeded"), "{summary}");
    let bound = card(&browser, "Server", "bind", "done").await;
    assert!(bound.contains("= 0"), "{bound}");
    browser.assert_clean_console().await;
}
