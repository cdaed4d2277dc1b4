//! The page's HTML and SVG, written from the model. The functions here are
//! pure (model in, markup out) so they are tested natively; `app.rs` puts
//! the markup into the document.
//!
//! - `frame`: the page's frame, the status line, the player's line.
//! - `lanes`: the server and client lanes.
//! - `wire`: the sequence diagram and its history controls.
//! - `panels`: the packet pane, the code, the summary, the log, the inspector.

mod frame;
mod lanes;
mod panels;
mod wire;

pub use frame::{
    follow_only, mistakes, playing, recording, relay_lost, skeleton, status, wireshark,
};
pub use lanes::{lane, lanes};
pub use panels::{code, inspector, log, packet, sock_options, summary};
pub use wire::{
    chunk_end, diagram, diagram_chunk, diagram_document, diagram_layout, diagram_rows, history,
    wire_note,
};

/// Escapes text for HTML content and attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Says how much of `total` bytes the page holds (as `text`, or as `hex`
/// when they are not UTF-8), when it holds less: a traced program's call
/// shows at most 16 KiB, a segment a preview.
fn cut_note(
    text: Option<&String>,
    hex: Option<&String>,
    total: i64,
    lang: crate::i18n::Lang,
) -> Option<String> {
    let shown = text.map_or(hex.map_or(0, |hex| hex.len() / 2), String::len);
    (total > shown as i64).then(|| match lang {
        crate::i18n::Lang::En => format!("only the first {shown} of {total} bytes are shown"),
        crate::i18n::Lang::Zh => format!("只显示了前 {shown} 字节，共 {total} 字节"),
    })
}

#[cfg(test)]
mod tests {
    use super::wire::{Geometry, label_lines, wrap_words};
    use super::*;
    use crate::i18n::Lang;
    use crate::model::{Model, Row, Side};
    use crate::page::Ui;

    fn lesson_model(lang: Lang) -> Model {
        let mut model = Model::new(lang);
        for line in include_str!("../../tests/fixtures/seed-flow.jsonl").lines() {
            model.apply_frame(&protocol::decode_event(line).expect("parses"), line);
        }
        model.revealed = model.rows.len();
        model
    }

    #[test]
    fn lanes_are_labelled_regions_with_step_buttons() {
        let model = lesson_model(Lang::En);
        let html = lanes(&model, &Ui::default(), Side::Server)
            + &lanes(&model, &Ui::default(), Side::Client);
        assert!(html.contains(r#"aria-label="Server""#));
        assert!(html.contains(r#"aria-label="Client 1""#));
        assert!(html.contains("<code>listen()</code>"));
        assert!(html.contains("Accepted connections"));
        let zh_model = lesson_model(Lang::Zh);
        let zh = lanes(&zh_model, &Ui::default(), Side::Server)
            + &lanes(&zh_model, &Ui::default(), Side::Client);
        assert!(zh.contains("启动监听"));
        assert!(zh.contains("接受设备"));
        assert!(zh.contains(r#"aria-label="服务端""#));
    }

    #[test]
    fn bytes_the_page_does_not_hold_are_said_to_be_cut() {
        let mut model = lesson_model(Lang::En);
        let line = r#"{"seq":40,"t_us":40000,"kind":"call","id":20,"op":"read","sock":3,"fd":14,"phase":"done","ret":70000,"c":"read(14, \"abc\"..., 70000) = 70000","data":"abc","elapsed_us":5}"#;
        model.apply_frame(&protocol::decode_event(line).expect("parses"), line);
        model.revealed = model.rows.len();
        let html = lanes(&model, &Ui::default(), Side::Server);
        assert!(
            html.contains("only the first 3 of 70000 bytes are shown"),
            "{html}"
        );
        // A whole read says nothing of the kind.
        assert_eq!(html.matches("bytes are shown").count(), 1, "{html}");
        let (text, hex) = (String::from("hello"), String::from("00ff"));
        assert_eq!(
            cut_note(None, Some(&hex), 1448, Lang::Zh).as_deref(),
            Some("只显示了前 2 字节，共 1448 字节")
        );
        assert_eq!(cut_note(Some(&text), None, 5, Lang::En), None);
    }

    #[test]
    fn a_call_by_another_process_than_the_lanes_says_whose_it_is() {
        let mut model = Model::new(Lang::En);
        for line in [
            r#"{"seq":1,"t_us":1,"kind":"call","id":null,"op":"socket","sock":1,"fd":3,"phase":"done","ret":3,"c":"socket(AF_INET, SOCK_STREAM, 0) = 3","role":"server","lane":"server[7]"}"#,
            r#"{"seq":2,"t_us":2,"kind":"call","id":null,"op":"accept","sock":1,"fd":3,"phase":"done","ret":4,"new_sock":2,"new_fd":4,"c":"accept(3, NULL, NULL) = 4","lane":"server[7]"}"#,
            r#"{"seq":3,"t_us":3,"kind":"call","id":null,"op":"read","sock":2,"fd":4,"phase":"done","ret":2,"c":"read(4, \"hi\", 1024) = 2","data":"hi","lane":"server[9]"}"#,
        ] {
            model.apply(&protocol::decode_event(line).expect("parses"));
        }
        model.revealed = model.rows.len();
        let html = lanes(&model, &Ui::default(), Side::Server);
        assert!(html.contains("by server[9]"), "{html}");
        assert!(!html.contains("by server[7]"), "{html}");
    }

    #[test]
    fn the_code_panel_highlights_the_last_call_with_its_value() {
        let model = lesson_model(Lang::En);
        let html = code(&model, &Ui::default());
        let highlighted: Vec<&str> = html
            .split("<li")
            .filter(|line| line.contains(" hl\""))
            .collect();
        assert_eq!(highlighted.len(), 1, "{html}");
        assert!(highlighted[0].contains("close("));
        assert!(html.contains("valread = 0"));
    }

    #[test]
    fn the_diagram_draws_every_revealed_row_and_escapes_text() {
        let model = lesson_model(Lang::En);
        let svg = diagram(&model, &Ui::default(), model.rows.len());
        assert_eq!(svg.matches("data-seq=").count(), model.rows.len());
        assert!(!svg.contains("<q>"));
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_rust_listing_highlights_the_line_that_binds_and_listens() {
        let mut model = Model::new(Lang::En);
        for line in include_str!("../../tests/fixtures/seed-flow.jsonl")
            .lines()
            .take(7)
        {
            model.apply(&protocol::decode_event(line).expect("parses"));
        }
        let ui = Ui {
            rust_listing: true,
            ..Ui::default()
        };
        let html = code(&model, &ui);
        let highlighted: Vec<&str> = html
            .split("<li")
            .filter(|line| line.contains(" hl\""))
            .collect();
        assert_eq!(highlighted.len(), 1, "{html}");
        assert!(highlighted[0].contains("TcpListener::bind"));
    }

    #[test]
    fn the_diagram_is_drawn_at_the_body_size_with_lifelines_under_their_lanes() {
        let model = lesson_model(Lang::En);
        for (width, font) in [(380.0, 16.0), (700.0, 22.0), (1200.0, 16.0)] {
            let ui = Ui {
                diagram_width: width,
                font_px: font,
                ..Ui::default()
            };
            let svg = diagram(&model, &ui, model.rows.len());
            // One unit is one pixel: the heads' viewBox is as wide as the
            // SVG, and every row is that wide.
            assert!(svg.contains(&format!(r#"viewBox="0 0 {width} "#)), "{svg}");
            let rows = svg.matches(r#"<svg class="row""#).count();
            assert_eq!(rows, model.rows.len(), "a row each");
            assert_eq!(
                svg.matches(&format!(r#"width="{width}""#)).count(),
                rows + 1
            );
            // The heads come first, with one lifeline each.
            let heads = &svg[..svg.find("</svg>").expect("the heads")];
            let lifelines: Vec<f64> = heads
                .split(r#"class="lifeline" x1=""#)
                .skip(1)
                .filter_map(|rest| rest.split('"').next()?.parse().ok())
                .collect();
            assert_eq!(lifelines.len(), 2, "a server and a client: {svg}");
            assert!(lifelines[0] < width * 0.1, "the server's at the left");
            assert!(lifelines[1] > width * 0.9, "the client's at the right");
            // Every arrow label fits between the lifelines.
            let geometry = Geometry::new(&ui);
            let span = lifelines[1] - lifelines[0] - 2.0 * font * 0.7;
            for row in &model.rows {
                if let Row::Segment { label, .. } = row {
                    for line in label_lines(label, span, &geometry) {
                        assert!(
                            geometry.text_width(line) <= span || width < 400.0,
                            "{line:?} does not fit {span} px at {width}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn chinese_cards_explain_in_chinese() {
        let html = lanes(&lesson_model(Lang::Zh), &Ui::default(), Side::Server);
        assert!(html.contains("accept() 不参与握手"));
        assert!(!html.contains("accept() does not take part"));
    }

    #[test]
    fn the_wire_note_is_honest_when_capture_is_off() {
        let model = lesson_model(Lang::En);
        assert!(wire_note(&model).contains("Wire view off."));
    }

    #[test]
    fn a_mark_too_long_for_its_side_wraps_between_words() {
        let ui = Ui {
            diagram_width: 300.0,
            font_px: 22.0,
            ..Ui::default()
        };
        let geometry = Geometry::new(&ui);
        let label = "connect() … EINPROGRESS (waiting)";
        let span = 200.0;
        let lines = wrap_words(label, span, &geometry);
        assert!(lines.len() > 1, "{lines:?}");
        assert_eq!(lines.join(" "), label, "no word is lost");
        for line in &lines {
            assert!(
                geometry.text_width(line) <= span || !line.contains(' '),
                "{line} fits"
            );
        }
        assert_eq!(wrap_words("bind() = 0", span, &geometry), ["bind() = 0"]);
    }

    #[test]
    fn a_saved_diagram_is_a_standalone_svg_of_every_row() {
        let model = lesson_model(Lang::Zh);
        let ui = Ui {
            selected_seq: Some(5),
            ..Ui::default()
        };
        let svg = super::diagram_document(&model, &ui);
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.contains("<style>"), "its colours are its own");
        assert!(!svg.contains("var(--"), "no page variables");
        assert!(!svg.contains("highlight") && !svg.contains("fresh"));
        assert_eq!(
            svg.matches(r#"<svg class="row" y=""#).count(),
            model.rows.len(),
            "every row, each at its own y"
        );
        assert!(svg.contains("服务端"), "in the language shown");
        // Rows stand one under the other, inside the document's height.
        let ys: Vec<i64> = svg
            .split(r#"<svg class="row" y=""#)
            .skip(1)
            .map(|rest| {
                rest.split('"')
                    .next()
                    .expect("a y")
                    .parse()
                    .expect("a number")
            })
            .collect();
        assert!(ys.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn a_saved_diagram_holds_every_arrow_label_of_the_recorded_lesson() {
        // The built-in lesson, recorded from a real relay with capture on.
        let recording = protocol::read_recording(include_str!("../../../www/demo/lesson.jsonl"))
            .expect("the built-in lesson");
        let mut model = Model::new(Lang::En);
        for (event, frame) in &recording.events {
            model.apply_frame(event, frame);
        }
        model.revealed = model.rows.len();
        let svg = super::diagram_document(&model, &Ui::default());
        let geometry = Geometry::new(&Ui::default());
        let mut arrows = 0;
        for row in &model.rows {
            if let Row::Segment { label, .. } = row {
                arrows += 1;
                // Whole, or in its two lines where it does not fit.
                for line in label_lines(label, 0.0, &geometry) {
                    assert!(svg.contains(&super::esc(line)), "{line} is drawn");
                }
            }
        }
        assert!(arrows >= 9, "the lesson's segments: {arrows}");
    }

    #[test]
    fn wireshark_is_a_link_with_the_code_or_says_why_not() {
        let off = super::wireshark(&lesson_model(Lang::En));
        assert!(off.contains("disabled"), "{off}");
        let mut captured = lesson_model(Lang::En);
        if let Some(hello) = &mut captured.hello {
            hello.capture = true;
            hello.code = Some("00ff".into());
        }
        let on = super::wireshark(&captured);
        assert!(on.contains(r#"href="labs/00ff/capture.pcapng""#), "{on}");
    }
}
