//! The lanes: each side's steps as buttons, the card each call left, the
//! sockets with their kernel states, queues and message boxes.

use std::fmt::Write;

use protocol::{Phase, TcpState};

use crate::action::UiAction;
use crate::i18n::Lang;
use crate::model::{Card, Lane, Model, Side, SockView};
use crate::notes;
use crate::page::Ui;

use super::esc;

fn tcp_badge(view: &SockView, lang: Lang) -> String {
    let Some(tcp) = view.tcp else {
        return String::new();
    };
    let owner = if view.fd_open {
        String::new()
    } else if tcp == TcpState::Close {
        format!(" <small>{}</small>", lang.pick("fd closed", "fd 已关闭"))
    } else {
        format!(
            " <small>{}</small>",
            lang.pick("kernel only, fd closed", "仅内核持有，fd 已关闭")
        )
    };
    format!(
        r#"<span class="badge tcp-{name}" data-tcp="{name}">{name}</span>{owner}"#,
        name = tcp.name()
    )
}

fn queue_slots(view: &SockView, lang: Lang) -> String {
    let (Some(queue), Some(backlog)) = (view.queue, view.backlog) else {
        return String::new();
    };
    let mut slots = String::new();
    for slot in 0..backlog.clamp(1, 16) {
        slots.push_str(if slot < queue {
            "<i class=\"slot full\"></i>"
        } else {
            "<i class=\"slot\"></i>"
        });
    }
    format!(
        r#"<div class="queue" role="img" aria-label="{label} {queue}/{backlog}">{label} {slots} <span>{queue}/{backlog}</span></div>"#,
        label = lang.pick("accept queue", "accept 队列"),
    )
}

/// A call's card. `program` is the lane's traced program: a call another
/// process made (a forked child, on a socket it inherited) says whose it is.
fn card_html(card: &Card, lang: Lang, selected: Option<u64>, program: Option<&str>) -> String {
    let call = &card.call;
    let phase = card.phase();
    let class = phase_class(phase);
    let result = match phase {
        Phase::Blocked => format!(
            "{} <b>{}</b>",
            lang.pick("waiting in the kernel:", "在内核中等待："),
            esc(call.errno.as_deref().unwrap_or(""))
        ),
        Phase::Failed => format!(
            "= -1 <b class=\"errno\">{}</b> {}",
            esc(call.errno.as_deref().unwrap_or("")),
            esc(call.message.as_deref().unwrap_or(""))
        ),
        Phase::Cancelled => lang.pick("wait abandoned", "已放弃等待").to_string(),
        Phase::Done => format!("= <b class=\"ret\">{}</b>", call.ret.unwrap_or(0)),
    };
    let mut extras = String::new();
    if let Some(peer) = &call.peer {
        let _ = write!(
            extras,
            " <span class=\"addr\">{} {}</span>",
            lang.pick("peer", "对端"),
            esc(peer)
        );
    }
    if let Some(local) = &call.local {
        let _ = write!(
            extras,
            " <span class=\"addr\">{} {}</span>",
            lang.pick("local", "本地"),
            esc(local)
        );
    }
    if let Some(us) = call.elapsed_us {
        let _ = write!(extras, " <span class=\"time\">{us} µs</span>");
    }
    if let Some(by) = call.lane.as_deref().filter(|by| Some(*by) != program) {
        let by = match lang {
            Lang::En => format!("by {by}"),
            Lang::Zh => format!("由 {by} 调用"),
        };
        let _ = write!(extras, " <span class=\"by\">{}</span>", esc(&by));
    }
    if let Some(data) = call.data.as_ref().or(call.hex.as_ref()) {
        let _ = write!(extras, " <q class=\"data\">{}</q>", esc(data));
        let total = call.ret.unwrap_or(0);
        if let Some(cut) = super::cut_note(call.data.as_ref(), call.hex.as_ref(), total, lang) {
            let _ = write!(extras, " <span class=\"cut\">({})</span>", esc(&cut));
        }
    }
    // The kernel's story behind the call; open while the call waits, since
    // that is when a student asks why nothing happens.
    let detail = notes::explain(call, lang)
        .map(|detail| {
            format!(
                r#"<details class="detail"{open}><summary>{why}</summary>{text}</details>"#,
                open = if phase == Phase::Blocked { " open" } else { "" },
                why = lang.pick("What happened underneath", "底层发生了什么"),
                text = esc(&detail)
            )
        })
        .unwrap_or_default();
    let highlight = if selected == Some(card.seq) {
        " highlight"
    } else {
        ""
    };
    format!(
        r#"<div class="card {class}{highlight}" data-seq="{seq}" data-phase="{class}"><code class="c">{c}</code><div class="result">{result}{extras}</div>{detail}</div>"#,
        seq = card.seq,
        c = esc(&call.c),
    )
}

/// The CSS class, and the `data-phase` value the tests look for, of a phase.
pub(super) fn phase_class(phase: Phase) -> &'static str {
    match phase {
        Phase::Done => "done",
        Phase::Failed => "failed",
        Phase::Blocked => "blocked",
        Phase::Cancelled => "cancelled",
    }
}

fn message_box(lane: &Lane, view: &SockView, lang: Lang, off: &str) -> String {
    let connected =
        view.fd_open && matches!(view.tcp, Some(TcpState::Established | TcpState::CloseWait));
    if !connected {
        return String::new();
    }
    let last = view
        .last_read
        .as_ref()
        .map(|text| {
            format!(
                r#"<span class="last-read">{} <q>{}</q></span>"#,
                lang.pick("last read:", "最近读到："),
                esc(text)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<div class="message"><input data-key="msg-{sock}"{message} aria-label="{label} fd {fd}" placeholder="{placeholder}">
<button{send}{off}>send()</button>
<button{read}{off}>read()</button>{last}</div>"#,
        sock = view.sock,
        message = UiAction::Message {
            lane: lane.id,
            sock: view.sock
        },
        send = UiAction::SendMessage {
            lane: lane.id,
            sock: view.sock
        },
        read = UiAction::ReadOn {
            lane: lane.id,
            sock: view.sock
        },
        fd = view.fd.unwrap_or(-1),
        label = lang.pick("Message to send on", "要发送的消息，fd"),
        placeholder = lang.pick("Type a message, Enter sends", "输入消息，按 Enter 发送"),
    )
}

fn sock_line(view: &SockView, lang: Lang) -> String {
    let fd = match view.fd {
        Some(fd) if view.fd_open => format!("fd {fd}"),
        _ => format!("sock {}", view.sock),
    };
    let addresses = match (&view.local, &view.peer) {
        (Some(local), Some(peer)) => format!("{} ⇄ {}", esc(local), esc(peer)),
        (Some(local), None) => esc(local),
        _ => String::new(),
    };
    format!(
        r#"<div class="sock" data-sock="{sock}"><b>{fd}</b> <span class="addr">{addresses}</span> {badge}</div>"#,
        sock = view.sock,
        badge = tcp_badge(view, lang)
    )
}

/// One lane: its sockets, its steps with their cards, its connections.
pub fn lane(model: &Model, lane: &Lane, ui: &Ui) -> String {
    let lang = model.lang;
    let label = lane.aria_label(lang);
    let own = lane.sock.and_then(|sock| model.sockets.get(&sock));
    let mut html = format!(
        r#"<section class="lane {side}{active}" aria-label="{label}" data-lane="{id}"><h2>{label}</h2>"#,
        side = match lane.side {
            Side::Server => "server",
            Side::Client => "client",
        },
        active = if ui.active_lane == lane.id {
            " active"
        } else {
            ""
        },
        label = esc(&label),
        id = lane.id
    );
    if let Some(view) = own {
        html.push_str(&sock_line(view, lang));
        html.push_str(&queue_slots(view, lang));
    }
    html.push_str("<ol class=\"steps\">");
    for (number, step) in lane.side.steps().iter().enumerate() {
        let title = step.title(lane.side, lang);
        if !step.is_system_call() {
            let placeholder = match lane.side {
                Side::Server => lang.pick(
                    "default: 127.0.0.1, a free lab port",
                    "默认：127.0.0.1，空闲的实验端口",
                ),
                Side::Client => lang.pick("default: this lab's server", "默认：本实验的服务端"),
            };
            let _ = write!(
                html,
                r#"<li class="step address"><label><span class="n">{n}</span> {title} <code>struct sockaddr_in</code>
<input data-key="addr-{lane}"{action} placeholder="{placeholder}" value="{value}" aria-label="{title} (IP:PORT)"></label>
<p class="hint">{hint}</p></li>"#,
                n = number + 1,
                lane = lane.id,
                action = UiAction::Address { lane: lane.id },
                value = esc(&lane.address),
                hint = lang.pick(
                    "No system call: this only fills in a struct in memory.",
                    "这一步没有系统调用：只是在内存中填写结构体。"
                ),
            );
            continue;
        }
        let card = lane.cards.get(step);
        let state = card.map(|card| phase_class(card.phase()));
        let next = model.next_step(lane.id) == Some(*step);
        let _ = write!(
            html,
            r#"<li class="step {state}{next}" data-step="{key}"><button{action} data-key="step-{lane}-{key}"{current}{off}><span class="n">{n}</span> {title} <code>{call}</code></button>{gloss}{card}</li>"#,
            off = followed(model),
            gloss = step
                .gloss(lang)
                .map(|gloss| format!(r#"<p class="gloss">{}</p>"#, esc(gloss)))
                .unwrap_or_default(),
            state = state.unwrap_or("todo"),
            next = if next { " next" } else { "" },
            key = step.key(),
            action = UiAction::Step {
                lane: lane.id,
                step: *step
            },
            lane = lane.id,
            current = if next { r#" aria-current="step""# } else { "" },
            n = number + 1,
            call = step.call_label(),
            card = card
                .map(|card| card_html(card, lang, ui.selected_seq, lane.program.as_deref()))
                .unwrap_or_default(),
        );
    }
    html.push_str("</ol>");
    if let Some(view) = own.filter(|_| lane.side == Side::Client) {
        html.push_str(&message_box(lane, view, lang, &followed(model)));
    }
    if lane.side == Side::Server && !lane.conns.is_empty() {
        let _ = write!(
            html,
            r#"<div class="conns"><h3>{}</h3>"#,
            lang.pick("Accepted connections", "已接受的连接")
        );
        for conn in &lane.conns {
            let Some(view) = model.sockets.get(conn) else {
                continue;
            };
            let selected = lane.selected_conn == Some(*conn);
            let _ = write!(
                html,
                r#"<div class="conn{sel}"><label class="pick"><input type="radio" name="conn"{action}{checked} aria-label="{use_it} fd {fd}"></label>{line}{message}</div>"#,
                sel = if selected { " selected" } else { "" },
                action = UiAction::SelectConn { sock: *conn },
                checked = if selected { " checked" } else { "" },
                use_it = lang.pick("read, send and close use", "read、send 和 close 使用"),
                fd = view.fd.unwrap_or(-1),
                line = sock_line(view, lang),
                message = message_box(lane, view, lang, &followed(model)),
            );
        }
        html.push_str("</div>");
    }
    if !lane.extra.is_empty() {
        let _ = write!(
            html,
            r#"<div class="extra"><h3>{}</h3>"#,
            lang.pick("Other calls", "其他调用")
        );
        for card in &lane.extra {
            html.push_str(&card_html(
                card,
                lang,
                ui.selected_seq,
                lane.program.as_deref(),
            ));
        }
        html.push_str("</div>");
    }
    html.push_str("</section>");
    html
}

/// The lanes of one side of the stage: the server's, left of the wire, or
/// the clients', right of it, as the textbook draws them.
pub fn lanes(model: &Model, ui: &Ui, side: Side) -> String {
    model
        .lanes
        .iter()
        .filter(|entry| entry.side == side)
        .map(|entry| lane(model, entry, ui))
        .collect()
}

/// A follower's buttons are disabled, not hidden, and say why.
fn followed(model: &Model) -> String {
    if model.following.is_some() {
        format!(r#" disabled title="{}""#, super::follow_only(model.lang))
    } else {
        String::new()
    }
}
