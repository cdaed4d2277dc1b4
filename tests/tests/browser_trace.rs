//! `relay trace` on the stage, in a real Chromium: the course's C server
//! and client, traced into one lab, each in a lane named by its program and
//! pid, with the handshake's arrows drawn between their two lifelines.

use socket_flow_tests::browser::{Browser, click, wait_text};
use socket_flow_tests::c_programs::{Tracing, build_folder, compile, free_lab_port, relay_trace};
use socket_flow_tests::relay_process::RelayProcess;

/// Each lifeline head's label and x, and each handshake arrow's kind and
/// the x it leaves from and points to.
const GEOMETRY: &str = "\
    const heads = [...document.querySelectorAll('#diagram text.lifehead')] \
      .map((head) => [head.textContent, Number(head.getAttribute('x'))]); \
    const arrows = [...document.querySelectorAll('#diagram g.arrow.syn, #diagram g.arrow.ack')] \
      .slice(0, 3).map((arrow) => { const line = arrow.querySelector('line'); \
        return [arrow.getAttribute('aria-label'), Number(line.getAttribute('x1')), Number(line.getAttribute('x2'))]; }); \
    return [heads, arrows]";

/// A lifeline head's label and x.
type Head = (String, f64);
/// An arrow's accessible label, and the x it leaves from and points to.
type Arrow = (String, f64, f64);

/// The server lane's accept card, in a phase; the lane is named by the
/// traced program and its pid, which only the relay knows.
fn accept_card(phase: &str) -> String {
    format!(
        "//section[starts-with(@aria-label,'Server · server[')]//li[@data-step='accept']\
         //div[contains(@class,'card') and @data-phase='{phase}']"
    )
}

#[tokio::test]
async fn both_programs_get_a_lane_and_the_handshake_runs_between_them() {
    let out = build_folder("browser-trace");
    let (server, client) = (compile("server", &out), compile("client", &out));
    let lab_port = free_lab_port().to_string();
    let relay = RelayProcess::start(&[]).await;
    let mut serving = Tracing::open(relay.port(), &server, &[&lab_port]).await;

    let browser = Browser::start("en-US").await;
    browser.open_page(&serving.url).await;
    click(&browser, "//input[@id='skip']").await;
    // The server's accept() sleeps in the kernel until the client comes.
    wait_text(&browser, &accept_card("blocked")).await;

    let answered = relay_trace(relay.port(), Some(&serving.code), &client, &[&lab_port])
        .output()
        .await
        .expect("the client runs under trace");
    assert!(answered.status.success(), "{answered:?}");
    // Each program's end divides the timeline (SVG elements, matched by
    // their local names).
    for program in ["server[", "client["] {
        wait_text(
            &browser,
            &format!(
                "//*[@id='diagram']//*[local-name()='g' and contains(@class,'divider') \
                 and contains(., '{program}') and contains(., 'exited with status 0')]"
            ),
        )
        .await;
    }
    wait_text(&browser, &accept_card("done")).await;

    let (heads, arrows): (Vec<Head>, Vec<Arrow>) = browser.script(GEOMETRY, vec![]).await;
    let x_of = |program: &str| {
        heads
            .iter()
            .find(|(label, _)| label.contains(program))
            .map(|(_, x)| *x)
            .unwrap_or_else(|| panic!("no lane of {program}: {heads:?}"))
    };
    let (server_x, client_x) = (x_of("· server["), x_of("· client["));
    assert_ne!(server_x, client_x);
    let ends: Vec<(f64, f64)> = arrows.iter().map(|(_, from, to)| (*from, *to)).collect();
    let near = |a: f64, b: f64| (a - b).abs() < 2.0;
    assert_eq!(arrows.len(), 3, "{arrows:?}");
    // SYN from the client's lifeline to the server's, SYN-ACK back, ACK on
    // (each arrow stops short of the line it points at, for its head).
    for (index, (from, to)) in ends.iter().enumerate() {
        let (start, end) = if index == 1 {
            (server_x, client_x)
        } else {
            (client_x, server_x)
        };
        assert!(
            near(*from, start) && (to - end).abs() < (start - end).abs() / 4.0,
            "arrow {index} runs from {from} to {to}; the lanes are at {start} and {end}: {arrows:?}"
        );
    }
    browser.assert_clean_console().await;
    let _ = serving.child.start_kill();
    let _ = std::fs::remove_dir_all(&out);
}
