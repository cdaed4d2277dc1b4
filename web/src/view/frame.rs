//! The page's frame, written once per language (the header, the toolbar,
//! the drawer, help), and the small parts beside it: the status line and
//! what the player is playing.

use std::fmt::Write;

use crate::action::UiAction;
use crate::i18n::Lang;
use crate::listing::MISTAKES;
use crate::model::{Connection, Model, Side};
use crate::page::Ui;
use crate::script::Scenario;

use super::esc;

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
  <a id="show-join" class="button" href="/join" target="_blank" title="{show_join}" aria-label="{show_join}" hidden>▦ QR</a>
  <label class="nc"><span class="nc-words">{join}</span> <input id="nc" readonly data-key="nc" aria-label="{join}" value=""></label>
  <button{a_drawer} id="drawer-toggle" aria-controls="drawer" aria-expanded="false">{code_and_log}</button>
  <button{a_lang} lang="{other_tag}">{other_lang}</button>
  <button{a_theme}>{theme}</button>
  <button{a_projector} aria-pressed="false">{projector}</button>
  <button{a_help} id="help-open" aria-keyshortcuts="?">?</button>
</header>
<div id="banner" class="banner" hidden></div>
<div id="recording" class="banner recording" role="status" hidden></div>
<nav class="toolbar" aria-label="{controls}">
  <button{a_lesson} class="drives">▶ {run}</button>
  <button{a_pause} id="pause" disabled>❚❚ {pause}</button>
  <label><span class="speed-text">{speed}</span> <input type="range" id="speed"{a_speed} min="150" max="2500" step="50" value="900" aria-label="{speed}"></label>
  <label class="check"><input type="checkbox"{a_skip} id="skip"> {skip_anim}</label>
  <span class="sep"></span>
  <label>{scenario_label} <select id="scenario" aria-label="{scenario_label}">{scenarios}</select></label>
  <button{a_run_chosen} class="drives">{try_it}</button>
  <span class="sep"></span>
  <button{a_add_client} class="drives">+ {add_client}</button>
  <button{a_reset} class="drives" aria-keyshortcuts="R">⟲ {reset}</button>
  <a id="own-lab" class="button" href="/" hidden>{own_lab}</a>
  <a id="follow-teacher" class="button" href="/?follow" hidden>{follow_teacher}</a>
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
    <button{a_save}>{save}</button>
    <button{a_diagram}>{save_diagram}</button>
    <button{a_png}>PNG</button>
    <span id="wireshark"></span>
    <label class="file">{open} <input type="file" accept=".jsonl,application/x-ndjson,application/json"{a_open}></label>
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
        a_save = UiAction::SaveRecording,
        a_diagram = UiAction::SaveDiagram,
        a_png = UiAction::SaveDiagramPng,
        a_open = UiAction::OpenRecording,
        own_lab = t("My own lab", "我自己的实验"),
        follow_teacher = t("Follow the teacher", "跟随老师"),
        show_join = t("Show students the address", "向学生显示地址"),
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
        save = t("Save recording", "保存录制"),
        save_diagram = t("Save diagram (SVG)", "保存时序图（SVG）"),
        open = t("Open recording:", "打开录制："),
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
/// Whom a follower follows: the teacher in a classroom, else a lab.
fn following_whom(model: &Model) -> &'static str {
    let classroom = model
        .hello
        .as_ref()
        .is_some_and(|hello| hello.classroom.is_some());
    match classroom {
        true => model.lang.pick("Following the teacher", "正在跟随老师"),
        false => model.lang.pick("Following a lab", "正在跟随实验"),
    }
}

/// Why a follower's controls are disabled, for their tooltip.
pub fn follow_only(lang: Lang) -> &'static str {
    lang.pick(
        "Following: only the teacher's screen makes calls. “My own lab” gives you yours.",
        "正在跟随：只有老师的屏幕能进行调用。“我自己的实验”给你自己的实验。",
    )
}

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
            match (model.following.is_some(), model.viewers, lang) {
                (true, count, _) => format!(
                    "{} · {}",
                    following_whom(model),
                    lang.pick("{} watching", "{} 人观看")
                        .replace("{}", &count.to_string())
                ),
                (false, 0, _) => lang.pick("Connected to the relay", "已连接中继").into(),
                (false, count, Lang::En) => format!("Connected · {count} watching"),
                (false, count, Lang::Zh) => format!("已连接 · {count} 人观看"),
            },
        ),
        Connection::Recording => (
            "recording",
            lang.pick("A recording: nothing is live", "录制：没有实时内容")
                .into(),
        ),
        Connection::Lost {
            attempt,
            retry_in_ms,
        } => {
            // Seconds to one decimal, in integers: formatting a float would
            // bring core's float printer (about 7 KB) into the wasm.
            let tenths = (retry_in_ms + 50) / 100;
            let seconds = format!("{}.{}", tenths / 10, tenths % 10);
            (
                "lost",
                match lang {
                    Lang::En => {
                        format!("Relay unreachable: retrying in {seconds} s (attempt {attempt})")
                    }
                    Lang::Zh => format!("无法连接中继：{seconds} 秒后重试（第 {attempt} 次）"),
                },
            )
        }
    }
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

/// The banner over a recording: what it is, that nothing in it is live,
/// where a damaged file stopped, and its controls. Empty when none is open.
pub fn recording(model: &Model, ui: &Ui) -> String {
    let Some(replay) = &ui.replay else {
        return String::new();
    };
    let lang = model.lang;
    let header = &replay.header;
    let mut html = match lang {
        Lang::En => format!(
            "A recording of a real run on {}, by {}{}. Nothing in it is live: it replays what the kernel did then.",
            esc(&header.recorded_at),
            esc(&header.relay),
            if header.capture {
                ", with the wire captured"
            } else {
                ""
            }
        ),
        Lang::Zh => format!(
            "这是 {} 一次真实运行的录制（{}{}）。其中没有任何实时内容：它重放的是当时内核所做的事。",
            esc(&header.recorded_at),
            esc(&header.relay),
            if header.capture {
                "，含抓到的报文段"
            } else {
                ""
            }
        ),
    };
    if let Some(damage) = &replay.damaged {
        let _ = write!(
            html,
            " <b>{}</b>",
            esc(&match lang {
                Lang::En => format!(
                    "Line {} of the file is damaged ({}); the recording stops before it.",
                    damage.line, damage.reason
                ),
                Lang::Zh => format!(
                    "文件第 {} 行已损坏（{}）；录制在它之前结束。",
                    damage.line, damage.reason
                ),
            })
        );
    }
    let _ = write!(
        html,
        r#" <button{play}>{play_label}</button> <button{leave}>{leave_label}</button>"#,
        play = UiAction::ReplayPlay,
        play_label = if replay.playing {
            lang.pick("❚❚ Pause", "❚❚ 暂停")
        } else {
            lang.pick("▶ Play", "▶ 播放")
        },
        leave = UiAction::LeaveRecording,
        leave_label = lang.pick("Back to the live lab", "回到实时实验"),
    );
    html
}

/// The banner while the relay cannot be reached: what the stage shows
/// then, and the built-in recording of the whole lesson to watch instead.
pub fn relay_lost(model: &Model) -> String {
    if !matches!(model.connection, Connection::Lost { .. }) {
        return String::new();
    }
    let lang = model.lang;
    format!(
        r#"{} <button{}>{}</button>"#,
        esc(lang.pick(
            "The relay cannot be reached: what you see below is the last known state, not live. The page reconnects by itself; a new connection starts a new, empty lab. Meanwhile, you can watch a recording of the whole lesson, made from a real relay.",
            "无法连接中继：下面是最后已知的状态，不是实时的。页面会自动重连；新连接会开始一个新的空实验。在此期间，你可以观看整节课的录制，它来自一个真实的中继。",
        )),
        UiAction::WatchDemo,
        esc(lang.pick("▶ Watch the recorded lesson", "▶ 观看录制的课程")),
    )
}

/// "Save for Wireshark": a link to the lab's capture as pcapng, by its
/// code; or, without a capture, a disabled button that says why.
pub fn wireshark(model: &Model) -> String {
    let lang = model.lang;
    let label = esc(lang.pick("Save for Wireshark", "保存给 Wireshark"));
    match &model.hello {
        Some(hello) if hello.capture && model.connection != Connection::Recording => {
            match &hello.code {
                Some(code) => format!(
                    r#"<a class="button" href="labs/{code}/capture.pcapng" download="socket-flow-lab.pcapng">{label}</a>"#,
                    code = esc(code)
                ),
                None => String::new(),
            }
        }
        Some(hello) if model.connection != Connection::Recording => format!(
            r#"<button disabled title="{why}">{label}</button>"#,
            why = esc(hello.capture_reason.as_deref().unwrap_or_default())
        ),
        _ => format!(
            r#"<button disabled title="{why}">{label}</button>"#,
            why = esc(lang.pick(
                "Only a live lab with the wire view has a capture to save.",
                "只有开启了线路视图的实时实验才有可保存的抓包。"
            ))
        ),
    }
}
