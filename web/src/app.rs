//! The controller: the WebSocket to the relay, the clicks and keys of the
//! page, and the requestAnimationFrame loop that draws the model.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    CloseEvent, Document, Element, Event, HtmlElement, HtmlInputElement, HtmlSelectElement,
    KeyboardEvent, MessageEvent, WebSocket,
};

use crate::i18n::Lang;
use crate::model::{Action, Connection, Model, SERVER_LANE, Side, Step};
use crate::script::{Player, Scenario};
use crate::view::{self, Ui};

/// How long one new timeline row takes to appear, and how fast the queue
/// drains when events arrive faster than that.
const ROW_REVEAL_MS: f64 = 260.0;
const BACKLOG_REVEAL_MS: f64 = 40.0;
const BACKLOG_ROWS: usize = 6;

/// A window at least this wide opens the drawer beside the stage at first.
const DRAWER_ROOM_PX: f64 = 1600.0;

/// Everything the page keeps between callbacks. The WebSocket's closures live
/// here so that a reconnect replaces them instead of leaking them.
struct App {
    model: Model,
    ui: Ui,
    player: Option<Player>,
    socket: Option<WebSocket>,
    on_open: Option<Closure<dyn FnMut()>>,
    on_message: Option<Closure<dyn FnMut(MessageEvent)>>,
    on_close: Option<Closure<dyn FnMut(CloseEvent)>>,
    retry_timer: Option<Closure<dyn FnMut()>>,
    /// Something changed since the last frame was drawn.
    dirty: bool,
    /// When the last timeline row was revealed.
    last_reveal_ms: f64,
    /// Rows drawn before the last reveal; later ones animate.
    fresh_from: usize,
    /// Each lane's next step when it was last brought into view.
    followed: Vec<Option<Step>>,
    /// The markup last written into each part of the page, by element id:
    /// a part whose markup did not change is not rewritten, so its elements
    /// (a button half-way through a click, a focused box) stay the same.
    /// A list, not a map: a dozen parts, and no second map type in the wasm.
    drawn: Vec<(&'static str, String)>,
    /// Where focus goes back to when help closes.
    help_return: Option<String>,
    diagram: DrawnDiagram,
    /// The diagram is to scroll to its newest row at the next frame.
    scroll_to_newest: bool,
    /// The lab as it was at the event being stepped to, and that event.
    snapshot: Option<(u64, Model)>,
}

type Shared = Rc<RefCell<App>>;

fn document() -> Option<Document> {
    web_sys::window()?.document()
}

fn by_id(id: &str) -> Option<Element> {
    document()?.get_element_by_id(id)
}

fn storage_get(key: &str) -> Option<String> {
    web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(key)
        .ok()?
}

fn storage_set(key: &str, value: &str) {
    if let Some(storage) =
        web_sys::window().and_then(|window| window.local_storage().ok().flatten())
    {
        let _ = storage.set_item(key, value);
    }
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map(|performance| performance.now())
        .unwrap_or(0.0)
}

#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    let lang = storage_get("socket-flow.lang")
        .or_else(|| web_sys::window()?.navigator().language())
        .map(|tag| Lang::from_tag(&tag))
        .unwrap_or(Lang::En);
    let ui = Ui {
        dark: storage_get("socket-flow.theme").as_deref() == Some("dark"),
        projector: storage_get("socket-flow.projector").as_deref() == Some("on"),
        // Open beside the stage where there is room for both, unless the
        // person closed it.
        drawer_open: match storage_get("socket-flow.drawer").as_deref() {
            Some(choice) => choice == "open",
            None => web_sys::window()
                .and_then(|window| window.inner_width().ok())
                .and_then(|width| width.as_f64())
                .is_some_and(|width| width >= DRAWER_ROOM_PX),
        },
        ..Ui::default()
    };
    let app = Rc::new(RefCell::new(App {
        model: Model::new(lang),
        ui,
        player: None,
        socket: None,
        on_open: None,
        on_message: None,
        on_close: None,
        retry_timer: None,
        dirty: true,
        last_reveal_ms: 0.0,
        fresh_from: 0,
        followed: Vec::new(),
        drawn: Vec::new(),
        help_return: None,
        diagram: DrawnDiagram::default(),
        scroll_to_newest: false,
        snapshot: None,
    }));
    mount(&mut app.borrow_mut())?;
    listen_to_page(&app)?;
    connect(&app)?;
    schedule_frame(&app);
    Ok(())
}

/// Writes the frame of the page for the current language and settings.
fn mount(app: &mut App) -> Result<(), JsValue> {
    app.drawn.clear();
    app.diagram = DrawnDiagram::default();
    let document = document().ok_or("no document")?;
    let root = document.get_element_by_id("app").ok_or("no #app element")?;
    root.set_inner_html(&view::skeleton(app.model.lang));
    if let Some(html) = document.document_element() {
        html.set_attribute("lang", app.model.lang.tag())?;
    }
    document.set_title(app.model.lang.pick(
        "socket-flow: how TCP sockets really work",
        "socket-flow：TCP 套接字到底如何工作",
    ));
    if let Some(body) = document.body() {
        let classes = body.class_list();
        classes.toggle_with_force("dark", app.ui.dark)?;
        classes.toggle_with_force("projector", app.ui.projector)?;
    }
    if let Some(button) = document.query_selector("[data-action=projector]")? {
        button.set_attribute(
            "aria-pressed",
            if app.ui.projector { "true" } else { "false" },
        )?;
    }
    if let Some(speed) =
        by_id("speed").and_then(|element| element.dyn_into::<HtmlInputElement>().ok())
    {
        speed.set_value(&app.ui.step_delay_ms.to_string());
    }
    if let Some(skip) =
        by_id("skip").and_then(|element| element.dyn_into::<HtmlInputElement>().ok())
    {
        skip.set_checked(app.ui.skip_animation);
    }
    if let Some(mistakes) = by_id("mistakes") {
        mistakes.set_inner_html(&view::mistakes(app.model.lang));
    }
    Ok(())
}

fn relay_url() -> Result<String, JsValue> {
    let location = web_sys::window().ok_or("no window")?.location();
    let scheme = if location.protocol()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Ok(format!("{scheme}://{}/ws", location.host()?))
}

fn connect(app: &Shared) -> Result<(), JsValue> {
    let socket = WebSocket::new(&relay_url()?)?;

    let opened = Rc::clone(app);
    let on_open = Closure::<dyn FnMut()>::new(move || {
        // A User Timing mark: the browser bench reads load-to-connected from it.
        if let Some(performance) = web_sys::window().and_then(|window| window.performance()) {
            let _ = performance.mark("socket-flow:connected");
        }
        let mut app = opened.borrow_mut();
        app.model.connection_opened();
        app.dirty = true;
    });

    let received = Rc::clone(app);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
        let Some(text) = message.data().as_string() else {
            return;
        };
        let mut app = received.borrow_mut();
        match protocol::decode_event(&text) {
            Ok(event) => {
                app.model.apply_frame(&event, &text);
                app.dirty = true;
            }
            // A frame this page cannot read is logged, not trusted.
            Err(error) => {
                web_sys::console::info_1(&format!("skipped an unreadable event: {error}").into())
            }
        }
    });

    let closed = Rc::clone(app);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
        let delay_ms = {
            let mut app = closed.borrow_mut();
            app.socket = None;
            app.player = None;
            app.ui.playing = None;
            app.dirty = true;
            app.model.connection_lost()
        };
        schedule_reconnect(&closed, delay_ms);
    });

    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));

    let mut state = app.borrow_mut();
    state.socket = Some(socket);
    state.on_open = Some(on_open);
    state.on_message = Some(on_message);
    state.on_close = Some(on_close);
    Ok(())
}

fn schedule_reconnect(app: &Shared, delay_ms: u32) {
    let retrying = Rc::clone(app);
    let retry = Closure::<dyn FnMut()>::new(move || {
        if let Err(error) = connect(&retrying) {
            web_sys::console::info_1(&error);
        }
    });
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            retry.as_ref().unchecked_ref(),
            delay_ms as i32,
        );
    }
    app.borrow_mut().retry_timer = Some(retry);
}

/// Turns an action into a command and sends it. None, with the reason
/// shown, when there is no command yet or no relay.
fn send_action(app: &mut App, action: &Action) -> Option<u64> {
    if app.ui.at_seq.is_some() {
        // The stage shows the past; a click there must not act on the present.
        app.model.last_error = Some(
            app.model
                .lang
                .pick(
                    "The stage shows the lab as it was. Press Live to act on it again.",
                    "舞台上显示的是过去的状态。按“回到实时”后才能继续操作。",
                )
                .to_string(),
        );
        app.dirty = true;
        return None;
    }
    let open = app
        .socket
        .as_ref()
        .is_some_and(|socket| socket.ready_state() == WebSocket::OPEN);
    if !open || app.model.connection != Connection::Connected {
        app.model.last_error = Some(
            app.model
                .lang
                .pick(
                    "The relay is not connected; the page is retrying.",
                    "中继未连接，页面正在重试。",
                )
                .to_string(),
        );
        app.dirty = true;
        return None;
    }
    match app.model.command_for(action) {
        Ok(command) => {
            let text = protocol::encode_command(&command);
            if let Some(socket) = &app.socket {
                let _ = socket.send_with_str(&text);
            }
            app.model.last_error = None;
            app.dirty = true;
            Some(command.id)
        }
        Err(reason) => {
            app.model.announce(reason.clone());
            app.model.last_error = Some(reason);
            app.dirty = true;
            None
        }
    }
}

fn start_player(app: &mut App, scenario: Scenario) {
    app.player = Some(Player::new(scenario, now_ms(), app.model.last_seq + 1));
    app.ui.playing = Some((scenario, false));
    app.dirty = true;
}

fn data(element: &Element, name: &str) -> Option<String> {
    element.get_attribute(&format!("data-{name}"))
}

fn data_usize(element: &Element, name: &str) -> Option<usize> {
    data(element, name)?.parse().ok()
}

fn input_value(element: &Element) -> String {
    element
        .dyn_ref::<HtmlInputElement>()
        .map(HtmlInputElement::value)
        .unwrap_or_default()
}

/// Sends the text of a message box, then empties it.
fn send_message(app: &mut App, lane: usize, sock: u32) {
    let Some(input) = document().and_then(|document| {
        document
            .query_selector(&format!("input[data-key=msg-{sock}]"))
            .ok()
            .flatten()
    }) else {
        return;
    };
    let text = input_value(&input);
    if text.is_empty() {
        return;
    }
    if send_action(app, &Action::SendText(lane, sock, text)).is_some() {
        if let Some(input) = input.dyn_ref::<HtmlInputElement>() {
            input.set_value("");
        }
    }
}

fn on_click(app: &Shared, event: Event) {
    let Some(target) = event
        .target()
        .and_then(|target| target.dyn_into::<Element>().ok())
    else {
        return;
    };
    let Ok(Some(element)) = target.closest("[data-action]") else {
        return;
    };
    if element.tag_name() == "INPUT" || element.tag_name() == "SELECT" {
        return;
    }
    let mut app = app.borrow_mut();
    let app = &mut *app;
    let action = data(&element, "action").unwrap_or_default();
    match action.as_str() {
        "step" => {
            if let (Some(lane), Some(step)) = (
                data_usize(&element, "lane"),
                data(&element, "step").and_then(|key| Step::from_key(&key)),
            ) {
                send_action(app, &Action::Step(lane, step));
            }
        }
        "send-message" => {
            if let (Some(lane), Some(sock)) =
                (data_usize(&element, "lane"), data_usize(&element, "sock"))
            {
                send_message(app, lane, sock as u32);
            }
        }
        "read-on" => {
            if let (Some(lane), Some(sock)) =
                (data_usize(&element, "lane"), data_usize(&element, "sock"))
            {
                send_action(app, &Action::ReadOn(lane, sock as u32));
            }
        }
        "run" => {
            let scenario = data(&element, "scenario")
                .and_then(|key| Scenario::from_key(&key))
                .unwrap_or(Scenario::Lesson);
            start_player(app, scenario);
        }
        "run-scenario" => {
            let chosen = by_id("scenario")
                .and_then(|select| select.dyn_into::<HtmlSelectElement>().ok())
                .and_then(|select| Scenario::from_key(&select.value()));
            if let Some(scenario) = chosen {
                start_player(app, scenario);
            }
        }
        "pause" => {
            if let Some(player) = &mut app.player {
                player.paused = !player.paused;
                app.ui.playing = Some((player.scenario, player.paused));
                app.dirty = true;
            }
        }
        "reset" => {
            app.player = None;
            app.ui.playing = None;
            send_action(app, &Action::Reset);
        }
        "add-client" => {
            app.model.add_client();
            app.dirty = true;
        }
        "lang" => {
            app.model.lang = app.model.lang.other();
            storage_set("socket-flow.lang", app.model.lang.tag());
            let _ = mount(app);
            app.dirty = true;
        }
        "theme" => {
            app.ui.dark = !app.ui.dark;
            storage_set(
                "socket-flow.theme",
                if app.ui.dark { "dark" } else { "light" },
            );
            let _ = mount(app);
            app.dirty = true;
        }
        "projector" => {
            app.ui.projector = !app.ui.projector;
            storage_set(
                "socket-flow.projector",
                if app.ui.projector { "on" } else { "off" },
            );
            let _ = mount(app);
            app.dirty = true;
        }
        "help" => {
            if app.ui.help_open {
                close_help(app);
            } else {
                open_help(app, &element);
            }
        }
        "history-back" | "history-forward" | "live" => {
            app.ui.at_seq = step_history(&app.model, app.ui.at_seq, action.as_str());
            app.dirty = true;
        }
        "drawer" => {
            app.ui.drawer_open = !app.ui.drawer_open;
            storage_set(
                "socket-flow.drawer",
                if app.ui.drawer_open { "open" } else { "closed" },
            );
            app.dirty = true;
        }
        "code-lang" => {
            app.ui.rust_listing = data(&element, "value").as_deref() == Some("rust");
            app.dirty = true;
        }
        "code-side" => {
            app.ui.code_side = match data(&element, "value").as_deref() {
                Some("client") => Some(Side::Client),
                _ => Some(Side::Server),
            };
            app.dirty = true;
        }
        "inspect" => {
            app.ui.selected_seq = data(&element, "seq").and_then(|seq| seq.parse().ok());
            app.dirty = true;
        }
        "export" => export_log(&app.model),
        _ => {}
    }
}

/// Inputs and selects: addresses, the speed, filters, the chosen connection.
fn on_change(app: &Shared, event: Event) {
    let Some(element) = event
        .target()
        .and_then(|target| target.dyn_into::<Element>().ok())
    else {
        return;
    };
    let mut app = app.borrow_mut();
    let action = data(&element, "action").unwrap_or_default();
    let select_value = || {
        element
            .dyn_ref::<HtmlSelectElement>()
            .map(HtmlSelectElement::value)
            .unwrap_or_default()
    };
    match action.as_str() {
        "address" => {
            if let Some(lane) = data_usize(&element, "lane") {
                let value = input_value(&element);
                if let Some(lane) = app.model.lanes.get_mut(lane) {
                    lane.address = value;
                }
            }
        }
        "speed" => {
            if let Ok(delay) = input_value(&element).parse() {
                app.ui.step_delay_ms = delay;
            }
        }
        "skip" => {
            let checked = element
                .dyn_ref::<HtmlInputElement>()
                .is_some_and(HtmlInputElement::checked);
            app.ui.skip_animation = checked;
            app.dirty = true;
        }
        "scrub" => {
            if let (Ok(seq), Some((_, newest))) =
                (input_value(&element).parse::<u64>(), app.model.log_span())
            {
                app.ui.at_seq = (seq < newest).then_some(seq);
                app.dirty = true;
            }
        }
        "log-kind" => {
            app.ui.log_kind = select_value();
            app.dirty = true;
        }
        "log-sock" => {
            app.ui.log_sock = select_value();
            app.dirty = true;
        }
        "select-conn" => {
            if let Some(sock) = data_usize(&element, "sock") {
                app.model.lanes[SERVER_LANE].selected_conn = Some(sock as u32);
                app.dirty = true;
            }
        }
        _ => {}
    }
}

fn on_key(app: &Shared, event: KeyboardEvent) {
    let Some(target) = event
        .target()
        .and_then(|target| target.dyn_into::<Element>().ok())
    else {
        return;
    };
    let typing = matches!(target.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA");
    let mut app = app.borrow_mut();
    let app = &mut *app;
    if typing {
        if event.key() == "Enter" && data(&target, "action").as_deref() == Some("message") {
            if let (Some(lane), Some(sock)) =
                (data_usize(&target, "lane"), data_usize(&target, "sock"))
            {
                event.prevent_default();
                send_message(app, lane, sock as u32);
            }
        }
        return;
    }
    if event.ctrl_key() || event.meta_key() || event.alt_key() {
        return;
    }
    match event.key().as_str() {
        "ArrowRight" | " " => {
            // A focused button's own Space is its click; leave it alone.
            if event.key() == " " && target.tag_name() == "BUTTON" {
                return;
            }
            let focused = target
                .closest("[data-lane]")
                .ok()
                .flatten()
                .and_then(|lane| data_usize(&lane, "lane"));
            let wanted = focused.unwrap_or(app.ui.active_lane);
            // The lane asked for, or else the first after it with a step to take.
            let count = app.model.lanes.len().max(1);
            let driven = (0..count)
                .map(|offset| (wanted + offset) % count)
                .find_map(|lane| Some((lane, app.model.next_step(lane)?)));
            if let Some((lane, step)) = driven {
                event.prevent_default();
                app.ui.active_lane = lane;
                send_action(app, &Action::Step(lane, step));
            }
        }
        "," | "." => {
            let action = if event.key() == "," {
                "history-back"
            } else {
                "history-forward"
            };
            app.ui.at_seq = step_history(&app.model, app.ui.at_seq, action);
            app.dirty = true;
        }
        "l" | "L" => {
            let count = app.model.lanes.len().max(1);
            app.ui.active_lane = (app.ui.active_lane + 1) % count;
            if let Some(lane) = app.model.lanes.get(app.ui.active_lane) {
                let label = lane.aria_label(app.model.lang);
                let said = app.model.lang.pick("Now driving", "正在操作");
                app.model.announce(format!("{said}: {label}"));
            }
            app.dirty = true;
        }
        "r" | "R" => {
            // A stray key must not throw the lesson away.
            let question = app.model.lang.pick(
                "Reset the lab? Every socket is closed.",
                "重置实验？所有套接字都会被关闭。",
            );
            let confirmed = web_sys::window()
                .and_then(|window| window.confirm_with_message(question).ok())
                .unwrap_or(false);
            if confirmed {
                app.player = None;
                app.ui.playing = None;
                send_action(app, &Action::Reset);
            }
        }
        "?" => {
            if app.ui.help_open {
                close_help(app);
            } else {
                open_help(app, &target);
            }
        }
        "Escape" if app.ui.help_open => close_help(app),
        _ => {}
    }
}

/// Where a history control takes the view: one event back or forward
/// (forward past the newest is live again), or live.
fn step_history(model: &Model, at: Option<u64>, action: &str) -> Option<u64> {
    let (oldest, newest) = model.log_span()?;
    match (action, at) {
        ("history-back", None) => Some(newest.saturating_sub(1).max(oldest)),
        ("history-back", Some(seq)) => Some(seq.saturating_sub(1).max(oldest)),
        ("history-forward", Some(seq)) if seq + 1 < newest => Some(seq + 1),
        _ => None,
    }
}

/// Opens help and moves focus into it, remembering where focus was.
fn open_help(app: &mut App, from: &Element) {
    app.help_return = from
        .get_attribute("data-key")
        .map(|key| format!("[data-key='{key}']"))
        .or_else(|| Some(format!("#{}", from.id())).filter(|id| id.len() > 1));
    app.ui.help_open = true;
    let _ = render(app);
    app.dirty = false;
    if let Some(help) =
        document().and_then(|document| document.query_selector("#help button").ok().flatten())
    {
        if let Some(button) = help.dyn_ref::<HtmlElement>() {
            let _ = button.focus();
        }
    }
}

/// Closes help and gives focus back to where it was.
fn close_help(app: &mut App) {
    app.ui.help_open = false;
    let _ = render(app);
    app.dirty = false;
    let back = app
        .help_return
        .take()
        .and_then(|selector| document()?.query_selector(&selector).ok().flatten());
    if let Some(element) = back
        .as_ref()
        .and_then(|element| element.dyn_ref::<HtmlElement>())
    {
        let _ = element.focus();
    }
}

/// Focusing or hovering an arrow shows every field of its event.
fn on_focus(app: &Shared, event: Event) {
    let Some(target) = event
        .target()
        .and_then(|target| target.dyn_into::<Element>().ok())
    else {
        return;
    };
    let Ok(Some(mark)) = target.closest("g[data-seq]") else {
        return;
    };
    let mut app = app.borrow_mut();
    let seq = data(&mark, "seq").and_then(|seq| seq.parse().ok());
    if app.ui.selected_seq != seq {
        app.ui.selected_seq = seq;
        if let Some(inspector) = by_id("inspector") {
            inspector.set_text_content(Some(&view::inspector(&app.model, &app.ui)));
        }
        let packet = view::packet(&app.model, &app.ui);
        draw(&mut app, "packet", packet);
    }
}

fn listen_to_page(app: &Shared) -> Result<(), JsValue> {
    let document = document().ok_or("no document")?;
    // These listeners live as long as the page, so forgetting them is right.
    let clicked = Rc::clone(app);
    let on_click_closure = Closure::<dyn FnMut(Event)>::new(move |event| on_click(&clicked, event));
    document
        .add_event_listener_with_callback("click", on_click_closure.as_ref().unchecked_ref())?;
    on_click_closure.forget();

    for kind in ["input", "change"] {
        let changed = Rc::clone(app);
        let closure = Closure::<dyn FnMut(Event)>::new(move |event| on_change(&changed, event));
        document.add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref())?;
        closure.forget();
    }

    let keyed = Rc::clone(app);
    let on_key_closure =
        Closure::<dyn FnMut(KeyboardEvent)>::new(move |event| on_key(&keyed, event));
    document
        .add_event_listener_with_callback("keydown", on_key_closure.as_ref().unchecked_ref())?;
    on_key_closure.forget();

    // A new width redraws the diagram at its new size.
    let resized = Rc::clone(app);
    let on_resize = Closure::<dyn FnMut()>::new(move || resized.borrow_mut().dirty = true);
    web_sys::window()
        .ok_or("no window")?
        .add_event_listener_with_callback("resize", on_resize.as_ref().unchecked_ref())?;
    on_resize.forget();

    for kind in ["focusin", "mouseover"] {
        let focused = Rc::clone(app);
        let closure = Closure::<dyn FnMut(Event)>::new(move |event| on_focus(&focused, event));
        document.add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref())?;
        closure.forget();
    }
    Ok(())
}

/// The animation loop: plays the player, reveals queued timeline rows, and
/// draws the model when it changed.
fn schedule_frame(app: &Shared) {
    let frame: Rc<RefCell<Option<Closure<dyn FnMut(f64)>>>> = Rc::new(RefCell::new(None));
    let next = Rc::clone(&frame);
    let looping = Rc::clone(app);
    *frame.borrow_mut() = Some(Closure::<dyn FnMut(f64)>::new(move |now: f64| {
        tick(&looping, now);
        if let (Some(window), Some(callback)) = (web_sys::window(), next.borrow().as_ref()) {
            let _ = window.request_animation_frame(callback.as_ref().unchecked_ref());
        }
    }));
    if let (Some(window), Some(callback)) = (web_sys::window(), frame.borrow().as_ref()) {
        let _ = window.request_animation_frame(callback.as_ref().unchecked_ref());
    }
    // The loop runs for the page's life.
    std::mem::forget(frame);
}

fn tick(app: &Shared, now: f64) {
    let mut app = app.borrow_mut();
    let app = &mut *app;
    // The player clicks its next step when the last one has its answer.
    let delay = app.ui.step_delay_ms as f64;
    let due = app
        .player
        .as_mut()
        .and_then(|player| player.due(now, delay, &app.model));
    if let Some(action) = due {
        match send_action(app, &action) {
            Some(id) => {
                if let Some(player) = &mut app.player {
                    player.sent(id);
                }
            }
            // The step has no command (it says why): stop, do not guess.
            None => {
                if let Some(player) = &mut app.player {
                    player.paused = true;
                    app.ui.playing = Some((player.scenario, true));
                }
            }
        }
    }
    if app.player.as_ref().is_some_and(Player::finished) {
        if let Some(player) = app.player.take() {
            app.model
                .summarise_scenario(player.scenario, player.started_at_seq);
        }
        app.ui.playing = None;
        app.dirty = true;
    }

    let waiting = app.model.waiting_rows();
    if waiting > 0 {
        let interval = if waiting > BACKLOG_ROWS {
            BACKLOG_REVEAL_MS
        } else {
            ROW_REVEAL_MS
        };
        if app.ui.skip_animation {
            app.fresh_from = app.model.rows.len();
            app.model.revealed = app.model.rows.len();
            app.dirty = true;
        } else if now - app.last_reveal_ms >= interval {
            app.fresh_from = app.model.revealed;
            app.model.revealed += 1;
            app.last_reveal_ms = now;
            app.dirty = true;
        }
    }
    if app.dirty {
        app.dirty = false;
        let _ = render(app);
    }
}

/// Draws the model. Inputs keep their text and the focused control keeps
/// focus across the redraw.
fn render(app: &mut App) -> Result<(), JsValue> {
    let document = document().ok_or("no document")?;
    let focused = document
        .active_element()
        .and_then(|element| element.get_attribute("data-key"));
    let mut typed: HashMap<String, String> = HashMap::new();
    let inputs = document.query_selector_all("#lanes input[data-key]")?;
    for index in 0..inputs.length() {
        if let Some(input) = inputs
            .get(index)
            .and_then(|node| node.dyn_into::<HtmlInputElement>().ok())
        {
            if let Some(key) = input.get_attribute("data-key") {
                typed.insert(key, input.value());
            }
        }
    }

    // Everything read from the layout is read first, before this frame
    // writes anything: a read after a write makes the browser lay the whole
    // page out again at once, which was most of a frame's cost.
    let rows_before = app.diagram.rows;
    let mut following = false;
    if let Some(diagram) = by_id("diagram") {
        if std::mem::take(&mut app.scroll_to_newest) {
            diagram.set_scroll_top(i32::MAX);
        }
        // Keep the newest rows in sight, unless the reader scrolled up to
        // look at older ones.
        following = diagram.scroll_top() + diagram.client_height()
            >= diagram.scroll_height() - FOLLOW_SLACK_PX;
        measure(app, &diagram);
    }

    let (state, text) = view::status(&app.model);
    if let Some(status) = by_id("status") {
        status.set_attribute("data-state", state)?;
        // How far the page has applied the lab's events, for tests and the
        // browser bench to read.
        status.set_attribute("data-seq", &app.model.last_seq.to_string())?;
        status.set_text_content(Some(&text));
    }
    if let Some(banner) = by_id("banner") {
        let lost = matches!(app.model.connection, Connection::Lost { .. });
        banner.toggle_attribute_with_force("hidden", !lost)?;
        if lost {
            banner.set_text_content(Some(app.model.lang.pick(
                "The relay is down: what you see below is the last known state, not live. The page reconnects by itself; a new connection starts a new, empty lab.",
                "中继已断开：下面是最后已知的状态，不是实时的。页面会自动重连；新连接会开始一个新的空实验。",
            )));
        }
        if let Some(main) = by_id("lanes") {
            main.class_list().toggle_with_force("stale", lost)?;
        }
    }
    if let Some(error) = by_id("error") {
        error.toggle_attribute_with_force("hidden", app.model.last_error.is_none())?;
        error.set_text_content(app.model.last_error.as_deref());
    }
    if let Some(nc) = by_id("nc").and_then(|element| element.dyn_into::<HtmlInputElement>().ok()) {
        nc.set_value(&app.model.nc_command().unwrap_or_default());
    }
    // Live, or the lab as it was at the event being stepped to.
    if let Some(seq) = app.ui.at_seq {
        if app.snapshot.as_ref().map(|(at, _)| *at) != Some(seq) {
            app.snapshot = Some((seq, app.model.as_of(seq)));
        }
    } else {
        app.snapshot = None;
    }
    let shown = app.snapshot.as_ref().map_or(&app.model, |(_, past)| past);
    let parts = [
        (
            "side-server-lanes",
            view::lanes(shown, &app.ui, Side::Server),
        ),
        (
            "side-client-lanes",
            view::lanes(shown, &app.ui, Side::Client),
        ),
        ("history", view::history(&app.model, &app.ui)),
    ];
    for (id, html) in parts {
        draw(app, id, html);
    }
    if let Some(stage) = by_id("lanes") {
        stage
            .class_list()
            .toggle_with_force("in-past", app.ui.at_seq.is_some())?;
    }
    if app.ui.at_seq.is_none() {
        follow_steps(app);
    }
    draw(app, "summary", view::summary(&app.model));
    draw(app, "packet", view::packet(&app.model, &app.ui));
    draw(app, "wire-note", view::wire_note(&app.model));
    if let (Some(diagram), Some((_, past))) = (by_id("diagram"), &app.snapshot) {
        // The past is drawn whole, and drawn again whole once live.
        diagram.set_inner_html(&view::diagram(past, &app.ui, usize::MAX));
        app.diagram = DrawnDiagram::default();
    } else if let Some(diagram) = by_id("diagram") {
        draw_diagram(app, &diagram);
        if following && app.diagram.rows != rows_before {
            // Scrolled at the start of the next frame, where reading and
            // scrolling cost no extra layout of the page.
            app.scroll_to_newest = true;
            app.dirty = true;
        }
    }
    if let Some(workspace) = by_id("workspace") {
        workspace
            .class_list()
            .toggle_with_force("drawer-open", app.ui.drawer_open)?;
    }
    if let Some(toggle) = by_id("drawer-toggle") {
        toggle.set_attribute(
            "aria-expanded",
            if app.ui.drawer_open { "true" } else { "false" },
        )?;
    }
    // The drawer's parts are drawn only while it is open: nobody reads a
    // log that is not on screen, and a stream of events would rewrite it
    // every frame.
    if app.ui.drawer_open {
        draw(app, "code", view::code(&app.model, &app.ui));
    }
    for (id, pressed) in [
        ("tab-c", !app.ui.rust_listing),
        ("tab-rust", app.ui.rust_listing),
        (
            "side-server",
            app.ui.code_side.or(app.model.code.side) != Some(Side::Client),
        ),
        (
            "side-client",
            app.ui.code_side.or(app.model.code.side) == Some(Side::Client),
        ),
    ] {
        if let Some(tab) = by_id(id) {
            tab.set_attribute("aria-selected", if pressed { "true" } else { "false" })?;
        }
    }
    if app.ui.drawer_open {
        draw(app, "log-sock", view::sock_options(&app.model, &app.ui));
    }
    if app.ui.drawer_open && draw(app, "log-list", view::log(&app.model, &app.ui)) {
        if let Some(list) = by_id("log-list") {
            list.set_scroll_top(list.scroll_height());
        }
    }
    if let Some(inspector) = by_id("inspector") {
        inspector.set_text_content(Some(&view::inspector(&app.model, &app.ui)));
    }
    draw(app, "playing", view::playing(&app.model, &app.ui));
    if let Some(pause) = by_id("pause") {
        pause.toggle_attribute_with_force("disabled", app.ui.playing.is_none())?;
    }
    if let Some(help) = by_id("help") {
        help.toggle_attribute_with_force("hidden", !app.ui.help_open)?;
    }
    // Every announcement of the frame, in order: a screen reader hears them
    // all rather than only the last.
    let announcements = app.model.take_announcements();
    if let (Some(live), false) = (by_id("live"), announcements.is_empty()) {
        let mut said = String::new();
        for words in &announcements {
            said.push_str(words);
            said.push(' ');
        }
        live.set_text_content(Some(&said));
    }

    for (key, value) in typed {
        if let Ok(Some(input)) = document.query_selector(&format!("input[data-key='{key}']")) {
            if let Some(input) = input.dyn_ref::<HtmlInputElement>() {
                if !key.starts_with("addr-") {
                    input.set_value(&value);
                }
            }
        }
    }
    if let Some(key) = focused {
        if let Ok(Some(element)) = document.query_selector(&format!("[data-key='{key}']")) {
            if let Some(element) = element.dyn_ref::<HtmlElement>() {
                let _ = element.focus();
            }
        }
    }
    Ok(())
}

/// Writes `html` into the element with `id`, unless it already holds exactly
/// that. Returns whether it wrote.
fn draw(app: &mut App, id: &'static str, html: String) -> bool {
    let index = match app.drawn.iter().position(|(drawn, _)| *drawn == id) {
        Some(index) if app.drawn[index].1 == html => return false,
        Some(index) => index,
        None => {
            app.drawn.push((id, String::new()));
            app.drawn.len() - 1
        }
    };
    let Some(element) = by_id(id) else {
        return false;
    };
    element.set_inner_html(&html);
    app.drawn[index].1 = html;
    true
}

/// What the diagram in the page shows: its layout, and how many rows.
#[derive(Default)]
struct DrawnDiagram {
    layout: String,
    rows: usize,
}

/// Draws the diagram: new rows are appended to the ones already there (a
/// stream of segments costs its own rows, not the whole diagram again);
/// anything else redraws it whole.
fn draw_diagram(app: &mut App, diagram: &Element) {
    let layout = view::diagram_layout(&app.model, &app.ui);
    let revealed = app.model.revealed.min(app.model.rows.len());
    let drawn = &app.diagram;
    let has_heads = diagram.first_element_child().is_some();
    if has_heads && drawn.layout == layout && revealed >= drawn.rows {
        if revealed > drawn.rows {
            let rows = view::diagram_rows(&app.model, &app.ui, drawn.rows, app.fresh_from);
            let _ = diagram.insert_adjacent_html("beforeend", &rows);
            app.diagram.rows = revealed;
        }
        return;
    }
    diagram.set_inner_html(&view::diagram(&app.model, &app.ui, app.fresh_from));
    app.diagram = DrawnDiagram {
        layout,
        rows: revealed,
    };
}

/// How close to its end a scrolled box must be to count as following.
const FOLLOW_SLACK_PX: i32 = 48;

/// Takes the diagram's width and the body's font size, so that the diagram
/// is drawn one unit to a pixel, its text at the body's size.
fn measure(app: &mut App, diagram: &Element) {
    let width = f64::from(diagram.client_width());
    if width > 0.0 {
        app.ui.diagram_width = width;
    }
    let font = web_sys::window()
        .zip(document().and_then(|document| document.body()))
        .and_then(|(window, body)| window.get_computed_style(&body).ok().flatten())
        .and_then(|style| style.get_property_value("font-size").ok())
        // Whole pixels are enough, and parsing an integer keeps core's float
        // parser (about 18 KB of wasm) out of the bundle.
        .and_then(|size| {
            let whole = size.trim_end_matches("px").split('.').next()?.to_string();
            whole.parse::<u32>().ok().map(f64::from)
        });
    if let Some(font) = font {
        app.ui.font_px = font;
    }
}

/// Brings each lane's steps into view when its next step changes, inside
/// the lane's own scrolling column: the step just run at the top, with its
/// card, and the next step below it when there is room.
fn follow_steps(app: &mut App) {
    let next: Vec<Option<Step>> = app
        .model
        .lanes
        .iter()
        .map(|lane| app.model.next_step(lane.id))
        .collect();
    for (lane, step) in next.iter().enumerate() {
        if app.followed.get(lane) == Some(step) {
            continue;
        }
        let Some(step) = step else { continue };
        let selector = format!("[data-lane='{lane}'] li[data-step='{}']", step.key());
        let Some(next) =
            document().and_then(|document| document.query_selector(&selector).ok().flatten())
        else {
            continue;
        };
        let options = web_sys::ScrollIntoViewOptions::new();
        options.set_inline(web_sys::ScrollLogicalPosition::Nearest);
        match next.previous_element_sibling() {
            Some(just_run) => {
                options.set_block(web_sys::ScrollLogicalPosition::Start);
                just_run.scroll_into_view_with_scroll_into_view_options(&options);
            }
            None => {
                options.set_block(web_sys::ScrollLogicalPosition::Nearest);
                next.scroll_into_view_with_scroll_into_view_options(&options);
            }
        }
    }
    app.followed = next;
}

/// Offers the whole event log as a JSON file.
fn export_log(model: &Model) {
    let Some(document) = document() else { return };
    let parts = js_sys::Array::of1(&JsValue::from_str(&view::export(model)));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Ok(anchor) = document.create_element("a") {
        let _ = anchor.set_attribute("href", &url);
        let _ = anchor.set_attribute("download", "socket-flow-events.json");
        if let Some(anchor) = anchor.dyn_ref::<HtmlElement>() {
            anchor.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}
