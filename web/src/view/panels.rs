//! The panels beside the stage: the packet pane of the picked segment, the
//! code listing with its highlighted line, the scenario summary, the log
//! with its filters, and the inspector.

use std::fmt::Write;

use protocol::Role;

use crate::action::UiAction;
use crate::listing::{self};
use crate::model::{Model, Side, Step};
use crate::notes;
use crate::page::Ui;

use super::esc;

/// The packet pane, as Wireshark's packet details: every field of the
/// segment the reader picked on the diagram, and the call that caused it.
pub fn packet(model: &Model, ui: &Ui) -> String {
    let lang = model.lang;
    let Some(entry) = ui
        .selected_seq
        .and_then(|seq| model.log.iter().find(|entry| entry.seq == seq))
    else {
        return String::new();
    };
    let protocol::EventBody::Segment(segment) = &entry.event.body else {
        return String::new();
    };
    let cause = match (segment.cause, segment.id) {
        (protocol::Cause::Call, Some(id)) => model
            .log
            .iter()
            .rev()
            .find_map(|entry| match &entry.event.body {
                protocol::EventBody::Call(call) if call.id == Some(id) => Some(call.c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| notes::cause(Some(id), lang)),
        _ => notes::cause(None, lang),
    };
    let hex = segment.payload_hex.clone().or_else(|| {
        segment.payload.as_ref().map(|text| {
            text.bytes()
                .map(|byte| format!("{byte:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
    });
    let mut rows = vec![
        (
            lang.pick("From → to", "源 → 目的"),
            format!("{} → {}", segment.src, segment.dst),
        ),
        (lang.pick("Flags", "标志"), segment.flags.join(", ")),
        (
            lang.pick("Sequence number", "序号"),
            format!(
                "{} ({} {})",
                segment.tcp_seq,
                lang.pick("relative", "相对"),
                segment.rel_seq
            ),
        ),
        (
            lang.pick("Acknowledgement", "确认号"),
            if segment.has("ACK") {
                format!(
                    "{} ({} {})",
                    segment.tcp_ack,
                    lang.pick("relative", "相对"),
                    segment.rel_ack
                )
            } else {
                format!(
                    "{} ({})",
                    segment.tcp_ack,
                    lang.pick("not in use: no ACK flag", "无效：没有 ACK 标志")
                )
            },
        ),
        (lang.pick("Window", "窗口"), segment.win.to_string()),
        (
            lang.pick("Payload length", "载荷长度"),
            segment.len.to_string(),
        ),
    ];
    if let Some(text) = &segment.payload {
        rows.push((lang.pick("Payload (text)", "载荷（文本）"), text.clone()));
    }
    if let Some(hex) = hex {
        rows.push((lang.pick("Payload (hex)", "载荷（十六进制）"), hex));
    }
    let (text, hex) = (segment.payload.as_ref(), segment.payload_hex.as_ref());
    if let Some(cut) = super::cut_note(text, hex, i64::from(segment.len), lang) {
        rows.push((lang.pick("Payload shown", "显示的载荷"), cut));
    }
    rows.push((lang.pick("Caused by", "起因"), cause));
    let mut html = format!(
        r#"<h3>{} #{}</h3><dl>"#,
        lang.pick("Segment", "报文段"),
        entry.seq
    );
    for (name, value) in rows {
        let _ = write!(
            html,
            "<dt>{}</dt><dd><code>{}</code></dd>",
            esc(name),
            esc(&value)
        );
    }
    html.push_str("</dl>");
    html
}

/// The listing of the side the last call was on, its line highlighted and
/// the kernel's values shown inline.
pub fn code(model: &Model, ui: &Ui) -> String {
    let lang = model.lang;
    let side = ui.code_side.or(model.code.side).unwrap_or(Side::Server);
    let lines = if ui.rust_listing {
        listing::rust_listing(side)
    } else {
        listing::c_listing(side)
    };
    let same_side = model.code.side == Some(side);
    let mut html = String::from(r#"<ol class="listing">"#);
    for line in lines {
        let hl = same_side
            && model.code.variable.is_some_and(|variable| {
                line.value == Some(variable) || line.also.contains(&variable)
            });
        let text = if line.code.is_empty() {
            format!(
                r#"<span class="comment">// {}</span>"#,
                esc(line.comment(lang).unwrap_or(""))
            )
        } else {
            esc(line.code)
        };
        let value = match (line.value, same_side) {
            (Some(variable), true) => model
                .code
                .values
                .get(variable)
                .map(|value| {
                    // Both closes are close(); the key only tells them apart.
                    let shown = variable.trim_end_matches("_listener");
                    format!(r#"<span class="value">{shown} = {}</span>"#, esc(value))
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let _ = write!(
            html,
            r#"<li class="line{hl}" data-step="{step}"{aria}><code>{text}</code>{value}</li>"#,
            hl = if hl { " hl" } else { "" },
            step = line.step.map(Step::key).unwrap_or(""),
            aria = if hl { r#" aria-current="true""# } else { "" },
        );
    }
    html.push_str("</ol>");
    html
}

/// The card above the stage after an error scenario: what the student just
/// saw, why, and where to look.
pub fn summary(model: &Model) -> String {
    let lang = model.lang;
    let Some(summary) = &model.summary else {
        return String::new();
    };
    let Some((title, why)) = notes::scenario_summary(summary.scenario, lang) else {
        return String::new();
    };
    let mut links = String::new();
    if let Some(seq) = summary.call_seq {
        let _ = write!(
            links,
            r#"<button{}>{}</button>"#,
            UiAction::Inspect { seq },
            lang.pick("Show the card", "查看卡片")
        );
    }
    if let Some(seq) = summary.segment_seq {
        let _ = write!(
            links,
            r#"<button{}>{}</button>"#,
            UiAction::Inspect { seq },
            lang.pick("Show the arrow", "查看箭头")
        );
    }
    if let (Some(seq), Some(line)) = (summary.call_seq, summary.c_line) {
        let _ = write!(
            links,
            r#"<button{}>{} <code>{}</code></button>"#,
            UiAction::Inspect { seq },
            lang.pick("The C line:", "C 代码行："),
            esc(line)
        );
    }
    format!(
        r#"<div class="summary-card" role="note"><h2>{title}</h2><p>{why}</p><div class="links">{links}</div></div>"#,
        title = esc(title),
        why = esc(why)
    )
}

/// The log's socket filter options.
pub fn sock_options(model: &Model, ui: &Ui) -> String {
    let mut html = format!(
        r#"<option value="all">{}</option>"#,
        model.lang.pick("all", "全部")
    );
    for view in model.sockets.values() {
        let role = match view.role {
            Role::Server => "server",
            Role::Client => "client",
            Role::Conn => "conn",
        };
        let value = view.sock.to_string();
        let _ = write!(
            html,
            r#"<option value="{value}"{selected}>sock {value} ({role})</option>"#,
            selected = if ui.log_sock == value {
                " selected"
            } else {
                ""
            }
        );
    }
    html
}

/// The log entries that pass the filters, the newest 300.
pub fn log(model: &Model, ui: &Ui) -> String {
    let matches: Vec<_> = model
        .log
        .iter()
        .filter(|entry| ui.log_kind == "all" || ui.log_kind == entry.kind)
        .filter(|entry| {
            ui.log_sock == "all"
                || entry.sock.map(|sock| sock.to_string()).as_deref() == Some(ui.log_sock.as_str())
        })
        .collect();
    let skip = matches.len().saturating_sub(300);
    let mut html = String::new();
    for entry in matches.into_iter().skip(skip) {
        let _ = write!(
            html,
            r#"<li class="entry {kind}{sel}"><button{action}><span class="seq">#{seq}</span> <span class="kind">{kind}</span> {summary}</button></li>"#,
            kind = entry.kind,
            sel = if ui.selected_seq == Some(entry.seq) {
                " highlight"
            } else {
                ""
            },
            seq = entry.seq,
            action = UiAction::Inspect { seq: entry.seq },
            summary = esc(&entry.summary)
        );
    }
    html
}

/// The JSON of the selected event, for the inspector.
pub fn inspector(model: &Model, ui: &Ui) -> String {
    ui.selected_seq
        .and_then(|seq| model.log.iter().find(|entry| entry.seq == seq))
        .and_then(|entry| entry.frame.as_deref())
        .map(protocol::pretty_frame)
        .unwrap_or_else(|| {
            model
                .lang
                .pick("Click an event to see its JSON.", "点击事件查看其 JSON。")
                .to_string()
        })
}
