//! A classroom in two real Chromium sessions: the teacher presents with the
//! printed link and runs the whole lesson; a student's page follows it,
//! draws the same rows within 100 ms of the teacher's, and cannot drive it.

use std::time::{Duration, Instant};

use socket_flow_tests::browser::{Browser, click, wait_text};
use socket_flow_tests::relay_process::RelayProcess;

/// The diagram's rows, as the reader sees them, without the line breaks
/// that each screen's own width puts in its labels.
const ROWS: &str = "return Array.from(document.querySelectorAll('#diagram svg.row')).map((row) => row.textContent.replace(/\\s+/g, ''))";

#[tokio::test]
async fn a_student_follows_the_presenter_row_for_row_and_cannot_drive() {
    let (relay, printed) = RelayProcess::start_printing(&["--classroom"], "?present=").await;
    let token = printed
        .iter()
        .find_map(|line| line.trim().split("?present=").nth(1))
        .expect("the presenter URL");
    let teacher = Browser::start("en-US").await;
    teacher
        .open_page(&format!("{}?present={token}", relay.url))
        .await;
    let student = Browser::start("en-US").await;
    student.open_page(&format!("{}?follow", relay.url)).await;
    wait_text(
        &student,
        "//*[@id='status' and contains(., 'Following the teacher')]",
    )
    .await;
    wait_text(&teacher, "//*[@id='status' and contains(., '1 watching')]").await;
    wait_text(
        &teacher,
        "//a[@id='show-join' and @href='/join' and not(@hidden)]",
    )
    .await;
    for browser in [&teacher, &student] {
        click(browser, "//input[@id='skip']").await;
    }

    // Every driving control of the student's page is there, disabled, and
    // says why.
    let (enabled, disabled, silent): (u32, u32, u32) = student
        .script(
            "const steps = Array.from(document.querySelectorAll('.step > button, .drives')); \
             return [steps.filter((b) => !b.disabled).length, \
                     steps.filter((b) => b.disabled).length, \
                     steps.filter((b) => b.disabled && !b.title.includes('teacher')).length]",
            vec![],
        )
        .await;
    assert_eq!((enabled, silent), (0, 0), "{disabled} disabled controls");
    assert!(
        disabled >= 8,
        "the step buttons and the toolbar's: {disabled}"
    );
    wait_text(&student, "//a[@id='own-lab' and not(@hidden)]").await;

    // The teacher's page shows neither student link, and on a 1280×720
    // projector its header, with the address button and the count of
    // screens watching, and its toolbar are still one row each.
    teacher.set_viewport(1280, 720).await;
    click(&teacher, "//button[@data-action='projector']").await;
    teacher.wait_for("body.projector").await;
    let (links_shown, one_row): (u32, bool) = teacher
        .script(
            "const shown = ['own-lab', 'follow-teacher'] \
               .filter((id) => document.getElementById(id).getClientRects().length > 0).length; \
             const row = (bar) => { \
               const tops = [...document.querySelector(bar).children] \
                 .filter((child) => child.getClientRects().length > 0) \
                 .map((child) => child.getBoundingClientRect().top); \
               return Math.max(...tops) - Math.min(...tops) < 20; }; \
             return [shown, row('.top') && row('.toolbar')]",
            vec![],
        )
        .await;
    assert_eq!((links_shown, one_row), (0, true));

    // The teacher runs the whole lesson at the fastest pace.
    teacher
        .client
        .execute(
            "const speed = document.getElementById('speed'); speed.value = 150; \
             speed.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![],
        )
        .await
        .expect("speed set");
    click(
        &teacher,
        "//button[@data-action='run' and @data-scenario='lesson']",
    )
    .await;
    // How far each page got, sampled side by side until the lesson ends.
    let mut teacher_at: Vec<(u64, Instant)> = Vec::new();
    let mut lags = Vec::new();
    let started = Instant::now();
    loop {
        let seq = teacher.applied_seq().await.unwrap_or(0);
        let now = Instant::now();
        if teacher_at.last().is_none_or(|(last, _)| *last < seq) {
            teacher_at.push((seq, now));
        }
        let seen = student.applied_seq().await.unwrap_or(0);
        let now = Instant::now();
        // Each teacher's seq the student now has, and how long after the
        // teacher's page was seen with it.
        teacher_at.retain(|(seq, at)| {
            if *seq <= seen {
                lags.push(now.duration_since(*at));
                false
            } else {
                true
            }
        });
        let playing: String = teacher
            .script(
                "return document.getElementById('playing').textContent.trim()",
                vec![],
            )
            .await;
        if playing.is_empty() && teacher_at.is_empty() && seq > 40 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the lesson ends within a minute"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let worst = lags.iter().max().copied().unwrap_or_default();
    eprintln!(
        "the student's page trailed the teacher's by at most {} ms over {} samples",
        worst.as_millis(),
        lags.len()
    );
    assert!(worst <= Duration::from_millis(100), "{worst:?}");
    let teacher_rows: Vec<String> = teacher.script(ROWS, vec![]).await;
    let student_rows: Vec<String> = student.script(ROWS, vec![]).await;
    assert!(teacher_rows.len() > 20, "{teacher_rows:#?}");
    assert_eq!(student_rows, teacher_rows);
    student.assert_clean_console().await;
    teacher.assert_clean_console().await;
}
