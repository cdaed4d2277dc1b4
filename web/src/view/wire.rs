//! The wire: the sequence diagram drawn one unit to a CSS pixel, its
//! lifelines under the lanes, appended row by row; the history controls
//! above it and the note on what the wire view can see.

use std::fmt::Write;

use crate::action::UiAction;
use crate::model::{Column, Model, ROW_CHUNK, Row, Side};
use crate::notes;
use crate::page::Ui;

use super::esc;
use super::lanes::phase_class;

/// The controls that step through the timeline one event at a time, as a
/// simulator does, and what the stage shows: live, or an event's moment.
pub fn history(model: &Model, ui: &Ui) -> String {
    let lang = model.lang;
    let Some((oldest, newest)) = model.log_span() else {
        return String::new();
    };
    let at = ui.at_seq.unwrap_or(newest);
    let (state, said) = match ui.at_seq {
        Some(seq) => (
            "past",
            format!(
                "{} {seq} / {newest}",
                lang.pick("As it was at event", "当时的状态：事件")
            ),
        ),
        // A recording has nothing live in it: its end is the whole of it.
        None if ui.replay.is_some() => (
            "live",
            lang.pick("The whole recording", "整段录制").to_string(),
        ),
        None => ("live", lang.pick("Live", "实时").to_string()),
    };
    // Beside the status, the button says where it goes, as the Chinese one
    // does: a second "Live" read as a label.
    let go_live = match ui.replay {
        Some(_) => lang.pick("Show it all", "显示全部"),
        None => lang.pick("Back to live", "回到实时"),
    };
    format!(
        r#"<button{back_action} aria-keyshortcuts="," title="{back}">◀</button><input type="range" id="scrub"{scrub} min="{oldest}" max="{newest}" value="{at}" aria-label="{event}"><button{forward_action} aria-keyshortcuts="." title="{forward}">▶</button><button{live}{live_disabled}>{go_live}</button> <span class="at" data-state="{state}" role="status">{said}</span>"#,
        back_action = UiAction::HistoryBack,
        scrub = UiAction::Scrub,
        forward_action = UiAction::HistoryForward,
        live = UiAction::Live,
        back = esc(lang.pick("One event back (,)", "后退一个事件（,）")),
        forward = esc(lang.pick("One event forward (.)", "前进一个事件（.）")),
        event = esc(lang.pick("Event", "事件")),
        go_live = esc(go_live),
        live_disabled = if ui.at_seq.is_none() { " disabled" } else { "" },
        said = esc(&said),
    )
}

/// The note above the diagram: whether the wire view is on, and what the
/// timeline and the log have let go.
pub fn wire_note(model: &Model) -> String {
    let lang = model.lang;
    let mut wire = wire_only_note(model);
    if let Some(let_go) = notes::let_go(model.rows_let_go, model.log_let_go, lang) {
        wire = format!("{wire} <b>{}</b>", esc(&let_go));
    }
    // A follower that joined late is told what the relay no longer had.
    if let Some(events @ 1..) = model.following {
        wire = format!(
            "{wire} <b>{}</b>",
            esc(&notes::history(false, events, lang))
        );
    }
    // When states are polled, a state that lasts less than a poll is never
    // seen: the page says so rather than let a student think it did not exist.
    match &model.hello {
        Some(hello) if !hello.states_traced => format!(
            "{wire} {}",
            esc(lang.pick(
                "States are polled, not traced: one that lasts less than a poll (FIN_WAIT1, LAST_ACK on loopback) may not be shown.",
                "状态是轮询得到的，不是内核跟踪的：持续时间短于一次轮询的状态（例如回环上的 FIN_WAIT1、LAST_ACK）可能不会显示。"
            ))
        ),
        _ => wire,
    }
}

fn wire_only_note(model: &Model) -> String {
    let lang = model.lang;
    match &model.hello {
        Some(hello) if hello.capture => esc(lang.pick(
            "Wire view on: arrows are real TCP segments captured on the wire.",
            "线路视图已开启：箭头是在线路上捕获的真实 TCP 报文段。",
        )),
        Some(hello) => format!(
            "<b>{}</b> {} {}",
            lang.pick("Wire view off.", "线路视图已关闭。"),
            esc(hello.capture_reason.as_deref().unwrap_or("")),
            lang.pick(
                "The timeline shows the calls and the kernel's states only; nothing is drawn that was not seen.",
                "时间线只显示调用和内核状态；没有看到的报文不会被画出来。"
            )
        ),
        None => String::new(),
    }
}

/// The diagram's geometry, in CSS pixels: its width is the width of the
/// space it is drawn in, so one unit of its viewBox is one pixel and its
/// text is exactly the body's size, never scaled below it.
pub(super) struct Geometry {
    width: f64,
    font: f64,
}

impl Geometry {
    pub(super) fn new(ui: &Ui) -> Geometry {
        Geometry {
            width: ui.diagram_width.max(MIN_DIAGRAM_WIDTH),
            font: ui.font_px.max(12.0),
        }
    }

    /// Room between a lifeline and the diagram's edge.
    fn margin(&self) -> f64 {
        self.font * 0.75
    }

    fn row_height(&self) -> f64 {
        self.font * 1.9
    }

    fn head_height(&self) -> f64 {
        self.font * 2.0
    }

    /// How wide `text` is, at most: the widest glyphs of the fonts the page
    /// uses are about 0.62 em (Latin monospace), and a CJK glyph 1 em.
    pub(super) fn text_width(&self, text: &str) -> f64 {
        text.chars()
            .map(|c| if c.is_ascii() { 0.62 } else { 1.0 })
            .sum::<f64>()
            * self.font
    }
}

/// A coordinate in whole pixels: crisp lines, and no float formatting code
/// in the wasm.
fn px(value: f64) -> i64 {
    value.round() as i64
}

/// Narrower than this, the diagram scrolls sideways inside its own box
/// rather than squeeze its lifelines together.
const MIN_DIAGRAM_WIDTH: f64 = 260.0;

/// Where each column's lifeline stands: the server's at the left edge, under
/// the server lane; the clients' (and an outside peer's) at the right, under
/// theirs. Returns (x, whether its marks are written to the left).
fn lifeline_x(model: &Model, geometry: &Geometry, column: Column, outside: bool) -> (f64, bool) {
    let right: Vec<Column> = model
        .lanes
        .iter()
        .filter(|lane| lane.side == Side::Client)
        .map(|lane| Column::Lane(lane.id))
        .chain(outside.then_some(Column::Outside))
        .collect();
    let left_x = geometry.margin();
    let right_x = geometry.width - geometry.margin();
    let is_server = |column: Column| matches!(column, Column::Lane(id) if model.lanes.get(id).is_some_and(|lane| lane.side == Side::Server));
    if is_server(column) {
        return (left_x, false);
    }
    let index = right.iter().position(|c| *c == column).unwrap_or(0);
    // One right-hand column stands at the right edge; several share the
    // right half, the first nearest the middle.
    let count = right.len().max(1);
    if count == 1 {
        return (right_x, true);
    }
    let from = geometry.width * 0.5;
    let x = from + (right_x - from) * index as f64 / (count - 1) as f64;
    (x, true)
}

/// A mark's words, in as many lines as they need to fit `span`, broken
/// between words: never clipped at the diagram's edge. A word longer than
/// the span keeps a line of its own.
pub(super) fn wrap_words(text: &str, span: f64, geometry: &Geometry) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if geometry.text_width(&format!("{line} {word}")) <= span => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// Writes lines of text one under the other, the first at `y`.
fn text_lines(out: &mut String, lines: &[String], x: i64, y: f64, anchor: &str, font: f64) {
    for (number, line) in lines.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{x}" y="{yp}" text-anchor="{anchor}">{line}</text>"#,
            yp = px(y + font * 1.2 * number as f64),
            line = esc(line)
        );
    }
}

/// An arrow's label, in one line when it fits between the lifelines and in
/// two (the flags, then the numbers) when it does not, so it is never
/// clipped and never runs over the arrowhead.
pub(super) fn label_lines<'a>(label: &'a str, span: f64, geometry: &Geometry) -> Vec<&'a str> {
    if geometry.text_width(label) <= span {
        return vec![label];
    }
    match label.split_once(' ') {
        Some((flags, rest)) => vec![flags, rest],
        None => vec![label],
    }
}

/// The timeline as an SVG sequence diagram: a lifeline per lane, call and
/// state marks on it, and segments as arrows between lanes.
pub fn diagram(model: &Model, ui: &Ui, fresh_from: usize) -> String {
    let revealed = model.revealed.min(model.rows.len());
    let mut body = String::new();
    let mut from = 0;
    while from < revealed {
        let to = chunk_end(model, from).min(revealed);
        body.push_str(&diagram_chunk(&diagram_rows(
            model,
            ui,
            from..to,
            fresh_from,
        )));
        from = to;
    }
    diagram_frame(model, ui, &body)
}

/// Where the chunk that holds row `index` ends. The page's diagram holds
/// its rows in chunks of [`ROW_CHUNK`], and the browser lays out and paints
/// only the chunks in sight (`content-visibility: auto`): the thousands of
/// rows out of sight cost a frame nothing, where one block of them all was
/// laid out whole at every new row. Chunks are counted from the lesson's
/// first row, so letting old rows go does not move their edges.
pub fn chunk_end(model: &Model, index: usize) -> usize {
    let absolute = model.trimmed_rows + index;
    index + ROW_CHUNK - absolute % ROW_CHUNK
}

/// A chunk of rows, as the page holds it.
pub fn diagram_chunk(rows: &str) -> String {
    format!(r#"<div class="rows">{rows}</div>"#)
}

/// The diagram's layout, as a key: new rows are appended (and let-go rows
/// removed) while it stays the same, and anything that changes it (the
/// width, the lanes, a selection) redraws the diagram whole.
pub fn diagram_layout(model: &Model, ui: &Ui) -> String {
    let geometry = Geometry::new(ui);
    // A traced program names its lane with its first call.
    let programs: String = model
        .lanes
        .iter()
        .filter_map(|lane| lane.program.as_deref())
        .collect();
    format!(
        "{}|{}|{}|{programs}|{}|{}|{}|{}",
        px(geometry.width),
        px(geometry.font),
        model.lanes.len(),
        has_outside(model),
        model.lang.tag(),
        ui.selected_seq.map_or(0, |seq| seq + 1),
        ui.skip_animation,
    )
}

/// Whether a revealed segment has an end outside the lab.
fn has_outside(model: &Model) -> bool {
    model.rows[..model.revealed.min(model.rows.len())]
        .iter()
        .any(|row| {
            matches!(row, Row::Segment { from, to, .. } if *from == Column::Outside || *to == Column::Outside)
        })
}

/// The revealed rows in `range`, an SVG each, to follow the rows drawn
/// before them.
pub fn diagram_rows(
    model: &Model,
    ui: &Ui,
    range: std::ops::Range<usize>,
    fresh_from: usize,
) -> String {
    rows_from(model, ui, range, fresh_from, None).0
}

/// The rows in `range`, and their height in all. With `stacked`,
/// each row stands at its own y, from that y on, in one document; without,
/// each is a block of the page, one under the other.
fn rows_from(
    model: &Model,
    ui: &Ui,
    range: std::ops::Range<usize>,
    fresh_from: usize,
    stacked: Option<f64>,
) -> (String, f64) {
    let mut stack_y = stacked.unwrap_or(0.0);
    let geometry = &Geometry::new(ui);
    let shown = &model.rows[..model.revealed.min(model.rows.len())];
    let outside = has_outside(model);
    let x = |column: Column| lifeline_x(model, geometry, column, outside);
    let (width, font) = (geometry.width, geometry.font);
    let head_arrow = font * 0.7;
    // The room a mark's words have, from where they start to the diagram's
    // edge on their side.
    let room = |start: f64, leftward: bool| {
        if leftward {
            start - geometry.margin()
        } else {
            width - start - geometry.margin()
        }
    };
    let mut body = String::new();
    // Each lifeline's x, drawn again in every row.
    let mut columns: Vec<Column> = model
        .lanes
        .iter()
        .map(|lane| Column::Lane(lane.id))
        .collect();
    if outside {
        columns.push(Column::Outside);
    }
    let count = range.end.saturating_sub(range.start);
    for (index, row) in shown.iter().enumerate().skip(range.start).take(count) {
        // Each row is an SVG of its own, its y from its own top: a new row
        // is appended without touching the rows above it.
        let y_top = 0.0;
        let mut content = String::new();
        let fresh = if index >= fresh_from && !ui.skip_animation {
            " fresh"
        } else {
            ""
        };
        let highlight = if ui.selected_seq == Some(row.seq()) {
            " highlight"
        } else {
            ""
        };
        let mut row_height = geometry.row_height();
        match row {
            Row::Call {
                seq,
                lane,
                label,
                phase,
            } => {
                let (cx, leftward) = x(Column::Lane(*lane));
                let y = y_top + row_height * 0.65;
                let class = phase_class(*phase);
                let (tx, anchor) = if leftward {
                    (cx - font * 0.6, "end")
                } else {
                    (cx + font * 0.6, "start")
                };
                let lines = wrap_words(label, room(tx, leftward), geometry);
                row_height += font * 1.2 * (lines.len() as f64 - 1.0);
                let (cxp, tx) = (px(cx), px(tx));
                let _ = write!(
                    content,
                    r#"<g class="mark call {class}{fresh}{highlight}" data-seq="{seq}" tabindex="0"><title>{title}</title><circle cx="{cxp}" cy="{cy}" r="{r}"/>"#,
                    title = esc(label),
                    cy = px(y - font * 0.3),
                    r = px(font * 0.3),
                );
                text_lines(&mut content, &lines, tx, y, anchor, font);
                content.push_str("</g>");
            }
            Row::State { seq, lane, label } => {
                let (cx, leftward) = x(Column::Lane(*lane));
                let y = y_top + row_height * 0.65;
                let (tx, anchor, text) = if leftward {
                    (cx - font * 0.6, "end", format!("{label} ◂"))
                } else {
                    (cx + font * 0.6, "start", format!("▸ {label}"))
                };
                let lines = wrap_words(&text, room(tx, leftward), geometry);
                row_height += font * 1.2 * (lines.len() as f64 - 1.0);
                let _ = write!(
                    content,
                    r#"<g class="mark state{fresh}{highlight}" data-seq="{seq}">"#
                );
                text_lines(&mut content, &lines, px(tx), y, anchor, font);
                content.push_str("</g>");
            }
            Row::Divider { seq, label } => {
                let (yp, wp) = (px(y_top + row_height * 0.65), px(width));
                let y = y_top + row_height * 0.65;
                let _ = write!(
                    content,
                    r#"<g class="divider{fresh}" data-seq="{seq}"><line x1="0" y1="{yp}" x2="{wp}" y2="{yp}"/><text x="{tx}" y="{ty}">{label}</text></g>"#,
                    tx = px(geometry.margin()),
                    ty = px(y - font * 0.3),
                    label = esc(label)
                );
            }
            Row::Segment {
                seq,
                from,
                to,
                label,
                detail,
            } => {
                let ((x1, _), (x2, _)) = (x(*from), x(*to));
                let span = (x2 - x1).abs() - 2.0 * head_arrow;
                let lines = label_lines(label, span, geometry);
                row_height += font * 1.2 * (lines.len() as f64 - 1.0);
                let y = y_top + row_height * 0.8;
                let flags = label.split_whitespace().next().unwrap_or("");
                let kind = if flags.contains("RST") {
                    "rst"
                } else if flags.contains("SYN") {
                    "syn"
                } else if flags.contains("FIN") {
                    "fin"
                } else if label.contains("len=") {
                    "data"
                } else {
                    "ack"
                };
                let mut text = String::new();
                for (number, line) in lines.iter().enumerate() {
                    let from_bottom = (lines.len() - 1 - number) as f64;
                    let _ = write!(
                        text,
                        r#"<text x="{mx}" y="{ty}" text-anchor="middle">{line}</text>"#,
                        mx = px((x1 + x2) / 2.0),
                        ty = px(y - font * 0.35 - from_bottom * font * 1.2),
                        line = esc(line)
                    );
                }
                let (x1p, x2p, yp) = (px(x1), px(x2), px(y));
                let _ = write!(
                    content,
                    r#"<g class="arrow {kind}{fresh}{highlight}" data-seq="{seq}" tabindex="0" role="img" aria-label="{aria}"><title>{detail}</title><line x1="{x1p}" y1="{yp}" x2="{x2p}" y2="{yp}" marker-end="url(#head)" pathLength="100"/>{text}</g>"#,
                    aria = esc(&detail.replace('\n', "; ")),
                    detail = esc(detail),
                );
            }
        }
        let (wp, hp) = (px(width), px(row_height));
        let y = match stacked {
            Some(_) => format!(r#" y="{}""#, px(stack_y)),
            None => String::new(),
        };
        stack_y += row_height;
        let _ = write!(body, r#"<svg class="row"{y} width="{wp}" height="{hp}">"#);
        for column in &columns {
            let xp = px(x(*column).0);
            let _ = write!(
                body,
                r#"<line class="lifeline" x1="{xp}" y1="0" x2="{xp}" y2="{hp}"/>"#
            );
        }
        body.push_str(&content);
        body.push_str("</svg>");
    }
    (body, stack_y - stacked.unwrap_or(0.0))
}

/// The colours and type of a diagram saved on its own, spelled out: the
/// page's own rules use its CSS variables, which a slide or Inkscape lacks.
const DOCUMENT_STYLE: &str = ".lifehead{font-weight:700;fill:#161616}\
.lifeline{stroke:#c4c4c4;stroke-width:2}.mark text{fill:#161616}.mark.call circle{fill:#0a5cc2}\
.mark.call.failed circle,.mark.call.failed text{fill:#a1145f}.mark.call.blocked circle{fill:#a35200}\
.mark.state text{fill:#5b3aa8;font-style:italic}.arrow line{stroke:#161616;stroke-width:2}\
.arrow text{fill:#161616}.arrow.syn line{stroke:#0a5cc2}\
.arrow.data line{stroke:#a35200;stroke-width:3}\
.arrow.fin line{stroke:#5b3aa8;stroke-dasharray:6 3}.arrow.rst line{stroke:#a1145f;stroke-width:4}\
.head{fill:#161616}.divider line{stroke:#161616;stroke-dasharray:6 4;opacity:.6}\
.divider text{font-style:italic;fill:#161616}";

/// The whole diagram as a standalone SVG document, for slides: every row
/// the page holds, in the language shown, with its colours spelled out and
/// generic fonts, on a white ground.
pub fn diagram_document(model: &Model, ui: &Ui) -> String {
    // Nothing picked and nothing fresh: a slide shows the figure itself.
    let ui = &Ui {
        selected_seq: None,
        skip_animation: true,
        ..ui.clone()
    };
    let geometry = Geometry::new(ui);
    let head = geometry.head_height();
    let (rows, height) = rows_from(model, ui, 0..usize::MAX, usize::MAX, Some(head));
    let (wp, hp) = (px(geometry.width), px(head + height));
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{wp}" height="{hp}" viewBox="0 0 {wp} {hp}" font-family="sans-serif" font-size="{font}"><style>{DOCUMENT_STYLE}</style><rect width="{wp}" height="{hp}" fill="#fff"/>{frame}</svg>
"##,
        font = px(geometry.font),
        frame = diagram_frame(model, ui, &rows)
    )
}

/// The diagram around its rows: the lifelines, with their heads.
fn diagram_frame(model: &Model, ui: &Ui, body: &str) -> String {
    let lang = model.lang;
    let geometry = Geometry::new(ui);
    let outside = has_outside(model);
    let x = |column: Column| lifeline_x(model, &geometry, column, outside);
    let (width, font) = (geometry.width, geometry.font);
    let (wp, hp) = (px(width), px(geometry.head_height()));
    // The heads, in an SVG of their own above the rows; it also holds the
    // arrowhead every row's arrows use.
    let mut svg = format!(
        r#"<svg class="heads" viewBox="0 0 {wp} {hp}" width="{wp}" height="{hp}" role="img" aria-label="{label}"><defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="head"/></marker></defs>"#,
        label = lang.pick(
            "Timeline of calls, states and segments",
            "调用、状态与报文段的时间线"
        )
    );
    let mut heads: Vec<(Column, String)> = model
        .lanes
        .iter()
        .map(|lane| (Column::Lane(lane.id), lane.label(lang)))
        .collect();
    if outside {
        heads.push((Column::Outside, lang.pick("Outside", "外部").to_string()));
    }
    for (column, label) in heads {
        let (cx, leftward) = x(column);
        let anchor = if leftward { "end" } else { "start" };
        let cxp = px(cx);
        let _ = write!(
            svg,
            r#"<text class="lifehead" x="{cxp}" y="{ty}" text-anchor="{anchor}">{label}</text><line class="lifeline" x1="{cxp}" y1="{y1}" x2="{cxp}" y2="{hp}"/>"#,
            ty = px(font * 1.2),
            y1 = px(geometry.head_height() * 0.8),
            label = esc(&label)
        );
    }
    svg.push_str("</svg>");
    svg.push_str(body);
    svg
}
