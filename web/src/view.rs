//! The page's HTML and SVG, written from the model. The functions here are
//! pure (model in, markup out) so they are tested natively; `app.rs` puts
//! the markup into the document.

use std::fmt::Write;

use protocol::{Phase, Role, TcpState};

use crate::action::UiAction;
use crate::i18n::Lang;
use crate::listing::{self, MISTAKES};
use crate::model::{Card, Column, Connection, Lane, Model, Row, Side, SockView, Step};
use crate::notes;
use crate::page::Ui;
use crate::script::Scenario;

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

/// The page's frame: everything that only changes with the language.
pub fn skeleton(lang: Lang) -> String {
    let t = |en, zh| lang.pick(en, zh);
    let mut scenarios = String::new();
    for scenario in Scenario::MENU {
        let _ = write!(
            scenarios,
            r#"<option value="{}">{}</option>"#,
            scenario.key(),
            esc(scenario.title(lang))
        );
    }
    format!(
        r##"<a class="skip" href="#lanes">{skip}</a>
<header class="top">
  <h1>socket-flow</h1>
  <span id="status" class="status" role="status"></span>
  <span class="spacer"></span>
  <label class="nc">{join} <input id="nc" readonly data-key="nc" aria-label="{join}" value=""></label>
  <button{a_drawer} id="drawer-toggle" aria-controls="drawer" aria-expanded="false">{code_and_log}</button>
  <button{a_lang} lang="{other_tag}">{other_lang}</button>
  <button{a_theme}>{theme}</button>
  <button{a_projector} aria-pressed="false">{projector}</button>
  <button{a_help} id="help-open" aria-keyshortcuts="?">?</button>
</header>
<div id="banner" class="banner" hidden></div>
<nav class="toolbar" aria-label="{controls}">
  <button{a_lesson}>▶ {run}</button>
  <button{a_pause} id="pause" disabled>❚❚ {pause}</button>
  <label><span class="speed-text">{speed}</span> <input type="range" id="speed"{a_speed} min="150" max="2500" step="50" value="900" aria-label="{speed}"></label>
  <label class="check"><input type="checkbox"{a_skip} id="skip"> {skip_anim}</label>
  <span class="sep"></span>
  <label>{scenario_label} <select id="scenario" aria-label="{scenario_label}">{scenarios}</select></label>
  <button{a_run_chosen}>{try_it}</button>
  <span class="sep"></span>
  <button{a_add_client}>+ {add_client}</button>
  <button{a_reset} aria-keyshortcuts="R">⟲ {reset}</button>
  <span id="playing" class="playing"></span>
</nav>
<div id="error" class="error" role="alert" hidden></div>
<div id="summary" class="summary"></div>
<div id="workspace" class="workspace">
<main id="lanes" class="stage">
<div id="side-server-lanes" class="side server-side"></div>
<section class="wire" aria-label="{wire}">
  <h2>{wire}</h2>
  <div id="history" class="history"></div>
  <div id="wire-note" class="note"></div>
  <div id="diagram" class="diagram"></div>
  <div id="packet" class="packet"></div>
</section>
<div id="side-client-lanes" class="side client-side"></div>
</main>
<aside id="drawer" class="drawer" aria-label="{code}">
<section class="code" aria-label="{code}">
  <div class="tabs" role="tablist">
    <button{a_c} role="tab" id="tab-c">C</button>
    <button{a_rust} role="tab" id="tab-rust">Rust (std::net)</button>
    <span class="sep"></span>
    <button{a_server} id="side-server">{server}</button>
    <button{a_client} id="side-client">{client}</button>
  </div>
  <div id="code"></div>
  <details class="mistakes-box" open><summary>{mistakes}</summary><div id="mistakes"></div></details>
</section>
<section class="log" aria-label="{log}">
  <h2>{log}</h2>
  <div class="filters">
    <label>{kind} <select id="log-kind"{a_log_kind}>
      <option value="all">{all}</option><option value="call">call</option><option value="state">state</option>
      <option value="segment">segment</option><option value="error">error</option><option value="hello">hello</option>
    </select></label>
    <label>{socket} <select id="log-sock"{a_log_sock}></select></label>
    <button{a_export}>{export}</button>
  </div>
  <ol id="log-list" class="log-list"></ol>
  <pre id="inspector" class="inspector" tabindex="0" aria-label="{inspector}"></pre>
</section>
</aside>
</div>
<div id="help" class="help" role="dialog" aria-label="{help}" hidden>
  <h2>{help}</h2>
  <ul>
    <li><kbd>→</kbd> / <kbd>Space</kbd>: {next_step}</li>
    <li><kbd>L</kbd>: {switch_lane}</li>
    <li><kbd>,</kbd> / <kbd>.</kbd>: {step_events}</li>
    <li><kbd>R</kbd>: {reset_asks}</li>
    <li><kbd>?</kbd>: {help} · <kbd>Esc</kbd>: {close}</li>
  </ul>
  <p>{honest}</p>
  <button{a_help}>{close}</button>
</div>
<div id="live" class="sr-only" aria-live="polite"></div>"##,
        skip = t("Skip to the lab", "跳到实验"),
        a_drawer = UiAction::Drawer,
        a_lang = UiAction::Lang,
        a_theme = UiAction::Theme,
        a_projector = UiAction::Projector,
        a_help = UiAction::Help,
        a_lesson = UiAction::Run(Scenario::Lesson),
        a_pause = UiAction::Pause,
        a_speed = UiAction::Speed,
        a_skip = UiAction::SkipAnimation,
        a_run_chosen = UiAction::RunChosen,
        a_add_client = UiAction::AddClient,
        a_reset = UiAction::Reset,
        a_c = UiAction::CodeLang { rust: false },
        a_rust = UiAction::CodeLang { rust: true },
        a_server = UiAction::CodeSide(Side::Server),
        a_client = UiAction::CodeSide(Side::Client),
        a_log_kind = UiAction::LogKind,
        a_log_sock = UiAction::LogSock,
        a_export = UiAction::Export,
        join = t("Join from outside:", "从外部加入："),
        other_tag = lang.other().tag(),
        other_lang = lang.pick("中文", "English"),
        theme = t("Light / dark", "浅色 / 深色"),
        projector = t("Projector", "投影模式"),
        controls = t("Controls", "控制"),
        run = t("Run the whole flow", "运行完整流程"),
        pause = t("Pause", "暂停"),
        speed = t("Speed", "速度"),
        skip_anim = t("Skip animation", "跳过动画"),
        scenario_label = t("Error scenario", "错误场景"),
        scenarios = scenarios,
        try_it = t("Run scenario", "运行场景"),
        add_client = t("Add client", "添加客户端"),
        reset = t("Reset lab", "重置实验"),
        wire = t("Timeline and wire", "时间线与线路"),
        code = t("Code", "代码"),
        code_and_log = t("Code and log", "代码与日志"),
        server = t("Server", "服务端"),
        client = t("Client", "客户端"),
        mistakes = t(
            "Common mistakes in the course material",
            "原教程中的常见错误"
        ),
        log = t("Event log", "事件日志"),
        kind = t("Kind", "类型"),
        all = t("all", "全部"),
        socket = t("Socket", "套接字"),
        export = t("Export JSON", "导出 JSON"),
        inspector = t("Selected event", "所选事件"),
        help = t("Keyboard shortcuts", "键盘快捷键"),
        next_step = t(
            "the next step of the lane you are driving (the one with focus, else the highlighted one; if it has none, the next lane that has one)",
            "执行正在操作的栏的下一步（有焦点的栏，否则是高亮的栏；若它没有下一步，则是下一个有下一步的栏）"
        ),
        switch_lane = t(
            "drive the next lane (server, client 1, …)",
            "切换到下一栏（服务端、客户端 1……）"
        ),
        reset_asks = t("reset the lab, after you confirm", "确认后重置实验"),
        step_events = t(
            "one event back / forward: the stage shows the lab as it was then (Live returns)",
            "后退 / 前进一个事件：舞台显示当时的实验状态（“回到实时”返回）"
        ),
        honest = t(
            "Every step is a real system call on the relay's host. The relay's sockets are non-blocking (it runs under tokio): a call shown as waiting got EAGAIN or EINPROGRESS from the kernel, and the relay waits for readiness, then calls again.",
            "每一步都是中继所在主机上的真实系统调用。中继的套接字是非阻塞的（基于 tokio）：显示为“等待”的调用从内核得到了 EAGAIN 或 EINPROGRESS，中继等待就绪后再次调用。"
        ),
        close = t("Close", "关闭"),
    )
}

/// The header's connection status: (data-state, text).
pub fn status(model: &Model) -> (&'static str, String) {
    let lang = model.lang;
    match &model.connection {
        Connection::Connecting => (
            "connecting",
            lang.pick("Connecting to the relay…", "正在连接中继…")
                .into(),
        ),
        Connection::Connected => (
            "connected",
            lang.pick("Connected to the relay", "已连接中继").into(),
        ),
        Connection::Lost {
            attempt,
            retry_in_ms,
        } => (
            "lost",
            match lang {
                Lang::En => format!(
                    "Relay unreachable: retrying in {:.1} s (attempt {attempt})",
                    *retry_in_ms as f64 / 1000.0
                ),
                Lang::Zh => format!(
                    "无法连接中继：{:.1} 秒后重试（第 {attempt} 次）",
                    *retry_in_ms as f64 / 1000.0
                ),
            },
        ),
    }
}

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

fn card_html(card: &Card, lang: Lang, selected: Option<u64>) -> String {
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
    if let Some(data) = call.data.as_ref().or(call.hex.as_ref()) {
        let _ = write!(extras, " <q class=\"data\">{}</q>", esc(data));
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
fn phase_class(phase: Phase) -> &'static str {
    match phase {
        Phase::Done => "done",
        Phase::Failed => "failed",
        Phase::Blocked => "blocked",
        Phase::Cancelled => "cancelled",
    }
}

fn message_box(lane: &Lane, view: &SockView, lang: Lang) -> String {
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
<button{send}>send()</button>
<button{read}>read()</button>{last}</div>"#,
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
            r#"<li class="step {state}{next}" data-step="{key}"><button{action} data-key="step-{lane}-{key}"{current}><span class="n">{n}</span> {title} <code>{call}</code></button>{gloss}{card}</li>"#,
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
                .map(|card| card_html(card, lang, ui.selected_seq))
                .unwrap_or_default(),
        );
    }
    html.push_str("</ol>");
    if let Some(view) = own.filter(|_| lane.side == Side::Client) {
        html.push_str(&message_box(lane, view, lang));
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
                message = message_box(lane, view, lang),
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
            html.push_str(&card_html(card, lang, ui.selected_seq));
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
            format!(
                "{} ({} {})",
                segment.tcp_ack,
                lang.pick("relative", "相对"),
                segment.rel_ack
            ),
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
        None => ("live", lang.pick("Live", "实时").to_string()),
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
        go_live = esc(lang.pick("Live", "回到实时")),
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
struct Geometry {
    width: f64,
    font: f64,
}

impl Geometry {
    fn new(ui: &Ui) -> Geometry {
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
    fn text_width(&self, text: &str) -> f64 {
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

/// An arrow's label, in one line when it fits between the lifelines and in
/// two (the flags, then the numbers) when it does not, so it is never
/// clipped and never runs over the arrowhead.
fn label_lines<'a>(label: &'a str, span: f64, geometry: &Geometry) -> Vec<&'a str> {
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
    diagram_frame(model, ui, &diagram_rows(model, ui, 0, fresh_from))
}

/// The diagram's layout, as a key: new rows are appended while it stays the
/// same, and anything that changes it (the width, the lanes, a selection,
/// trimmed rows) redraws the diagram whole.
pub fn diagram_layout(model: &Model, ui: &Ui) -> String {
    let geometry = Geometry::new(ui);
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        px(geometry.width),
        px(geometry.font),
        model.lanes.len(),
        has_outside(model),
        model.lang.tag(),
        ui.selected_seq.map_or(0, |seq| seq + 1),
        ui.skip_animation,
        model.trimmed_rows
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

/// The revealed rows from index `from` on, an SVG each, to follow the heads
/// or the rows drawn before them.
pub fn diagram_rows(model: &Model, ui: &Ui, from: usize, fresh_from: usize) -> String {
    let geometry = &Geometry::new(ui);
    let shown = &model.rows[..model.revealed.min(model.rows.len())];
    let outside = has_outside(model);
    let x = |column: Column| lifeline_x(model, geometry, column, outside);
    let (width, font) = (geometry.width, geometry.font);
    let head_arrow = font * 0.7;
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
    for (index, row) in shown.iter().enumerate().skip(from) {
        // Each row is an SVG of its own, its y from its own top: a new row
        // is appended without touching the rows above it, and a row out of
        // sight is not rendered at all (content-visibility).
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
                let (cxp, yp, tx) = (px(cx), px(y), px(tx));
                let _ = write!(
                    content,
                    r#"<g class="mark call {class}{fresh}{highlight}" data-seq="{seq}" tabindex="0"><title>{title}</title><circle cx="{cxp}" cy="{cy}" r="{r}"/><text x="{tx}" y="{yp}" text-anchor="{anchor}">{label}</text></g>"#,
                    title = esc(label),
                    cy = px(y - font * 0.3),
                    r = px(font * 0.3),
                    label = esc(label)
                );
            }
            Row::State { seq, lane, label } => {
                let (cx, leftward) = x(Column::Lane(*lane));
                let y = y_top + row_height * 0.65;
                let (tx, anchor, text) = if leftward {
                    (cx - font * 0.6, "end", format!("{label} ◂"))
                } else {
                    (cx + font * 0.6, "start", format!("▸ {label}"))
                };
                let (yp, tx) = (px(y), px(tx));
                let _ = write!(
                    content,
                    r#"<g class="mark state{fresh}{highlight}" data-seq="{seq}"><text x="{tx}" y="{yp}" text-anchor="{anchor}">{text}</text></g>"#,
                    text = esc(&text)
                );
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
        let _ = write!(
            body,
            r#"<svg class="row" width="{wp}" height="{hp}" style="contain-intrinsic-size: auto {hp}px">"#
        );
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
    body
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

pub fn mistakes(lang: Lang) -> String {
    let mut html = String::from("<ul class=\"mistakes\">");
    for mistake in MISTAKES {
        let button = mistake
            .scenario
            .map(|scenario| {
                format!(
                    r#" <button{}>{}</button>"#,
                    UiAction::Run(scenario),
                    lang.pick("Show the kernel's answer", "看看内核怎么说")
                )
            })
            .unwrap_or_default();
        let _ = write!(
            html,
            "<li>{}{button}</li>",
            esc(lang.pick(mistake.en, mistake.zh))
        );
    }
    html.push_str("</ul>");
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

/// The sentence the player shows while it plays.
pub fn playing(model: &Model, ui: &Ui) -> String {
    match ui.playing {
        Some((scenario, paused)) => format!(
            "{} {}",
            if paused {
                model.lang.pick("Paused:", "已暂停：")
            } else {
                model.lang.pick("Playing:", "正在运行：")
            },
            esc(scenario.title(model.lang))
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lesson_model(lang: Lang) -> Model {
        let mut model = Model::new(lang);
        for line in include_str!("../tests/fixtures/seed-flow.jsonl").lines() {
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
        for line in include_str!("../tests/fixtures/seed-flow.jsonl")
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
}
