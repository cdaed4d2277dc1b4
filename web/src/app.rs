//! The DOM side of the page: it turns the browser's events (clicks, keys,
//! the WebSocket, animation frames) into [`Msg`]s for [`page::update`],
//! carries out the [`Effect`]s it returns, and draws the page in the
//! requestAnimationFrame loop. It decides nothing itself.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    CloseEvent, Document, Element, Event, HtmlElement, HtmlInputElement, HtmlSelectElement,
    KeyboardEvent, MessageEvent, WebSocket,
};

use crate::action::UiAction;
use crate::model::{Connection, Model, ROW_CHUNK, Side, Step};
use crate::page::{self, Effect, Key, Msg, Page, Saved};
use crate::script::Scenario;
use crate::view;

/// The page, and what the browser holds for it. The WebSocket's closures
/// live here so that a reconnect replaces them instead of leaking them.
struct App {
    page: Page,
    socket: Option<WebSocket>,
    on_open: Option<Closure<dyn FnMut()>>,
    on_message: Option<Closure<dyn FnMut(MessageEvent)>>,
    on_close: Option<Closure<dyn FnMut(CloseEvent)>>,
    retry_timer: Option<Closure<dyn FnMut()>>,
    /// Each lane's next step when it was last brought into view.
    followed: Vec<Option<Step>>,
    /// The markup last written into each part of the page, by element id:
    /// a part whose markup did not change is not rewritten, so its elements
    /// (a button half-way through a click, a focused box) stay the same.
    /// A list, not a map: a dozen parts, and no second map type in the wasm.
    drawn: Vec<(&'static str, String)>,
    diagram: DrawnDiagram,
    /// The diagram is to scroll to its newest row at the next frame.
    scroll_to_newest: bool,
    /// The lab as it was at the event being stepped to, and that event.
    snapshot: Option<(u64, Model)>,
    /// What the controls were last drawn for: following, in a classroom,
    /// presenting, and the language of their tooltips.
    seated: Option<(bool, bool, bool, crate::i18n::Lang)>,
    /// Watches the diagram's box, which the drawer resizes (opening or
    /// closing) with no window resize to say so.
    sized: Option<web_sys::ResizeObserver>,
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

#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    let saved = Saved {
        lang: storage_get(page::LANG_KEY),
        theme: storage_get(page::THEME_KEY),
        projector: storage_get(page::PROJECTOR_KEY),
        drawer: storage_get(page::DRAWER_KEY),
    };
    let window = web_sys::window().ok_or("no window")?;
    let browser_lang = window.navigator().language();
    let width = window.inner_width().ok().and_then(|width| width.as_f64());
    let app = Rc::new(RefCell::new(App {
        page: Page::new(&saved, browser_lang.as_deref(), width),
        socket: None,
        on_open: None,
        on_message: None,
        on_close: None,
        retry_timer: None,
        followed: Vec::new(),
        drawn: Vec::new(),
        seated: None,
        diagram: DrawnDiagram::default(),
        scroll_to_newest: false,
        snapshot: None,
        sized: None,
    }));
    mount(&mut app.borrow_mut())?;
    listen_to_page(&app)?;
    connect(&app)?;
    schedule_frame(&app);
    Ok(())
}

/// Hands a message to `update` and carries out its effects. Returns whether
/// a key was taken, so that the browser does not also act on it.
fn dispatch(app: &Shared, msg: Msg) -> bool {
    let effects = page::update(&mut app.borrow_mut().page, msg);
    let mut taken = false;
    for effect in effects {
        taken |= effect == Effect::KeyTaken;
        carry_out(app, effect);
    }
    taken
}

fn carry_out(app: &Shared, effect: Effect) {
    match effect {
        Effect::Send(text) => {
            if let Some(socket) = &app.borrow().socket {
                let _ = socket.send_with_str(&text);
            }
        }
        Effect::Persist { key, value } => storage_set(key, &value),
        Effect::Download { name, mime, text } => download(name, mime, &text),
        Effect::Reconnect { delay_ms } => schedule_reconnect(app, delay_ms),
        Effect::Remount => {
            let _ = mount(&mut app.borrow_mut());
        }
        Effect::ConfirmReset(question) => {
            let confirmed = web_sys::window()
                .and_then(|window| window.confirm_with_message(question).ok())
                .unwrap_or(false);
            if confirmed {
                dispatch(app, Msg::ResetConfirmed);
            }
        }
        // Help must be on the page before focus can move into it.
        Effect::FocusHelp => {
            draw_now(app);
            focus("#help button");
        }
        Effect::Focus(selector) => {
            draw_now(app);
            focus(&selector);
        }
        Effect::ClearMessage(sock) => {
            if let Some(input) = message_box(sock) {
                input.set_value("");
            }
        }
        Effect::KeyTaken => {}
        Effect::ShowPacket => {
            let mut app = app.borrow_mut();
            if let Some(inspector) = by_id("inspector") {
                inspector.set_text_content(Some(&view::inspector(&app.page.model, &app.page.ui)));
            }
            let packet = view::packet(&app.page.model, &app.page.ui);
            draw(&mut app, "packet", packet);
        }
        Effect::Console(words) => web_sys::console::info_1(&words.into()),
        Effect::FetchDemo(path) => fetch_demo(app, path),
        Effect::DownloadPng { name, svg } => download_png(name, &svg),
        Effect::CloseSocket => {
            if let Some(socket) = app.borrow_mut().socket.take() {
                let _ = socket.close();
            }
        }
    }
}

/// Fetches the built-in recording from where the page was served, and
/// opens it; or says why it could not.
fn fetch_demo(app: &Shared, path: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let failed = Rc::clone(app);
    let on_error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
        let reason = error
            .as_string()
            .or_else(|| js_sys::JSON::stringify(&error).ok()?.as_string())
            .unwrap_or_default();
        dispatch(&failed, Msg::DemoUnavailable(reason));
    });
    let opened = Rc::clone(app);
    let mut on_text = Some(Closure::<dyn FnMut(JsValue)>::new(move |text: JsValue| {
        if let Some(text) = text.as_string() {
            dispatch(&opened, Msg::OpenRecording { text });
        }
    }));
    let refused = Rc::clone(app);
    let on_response = Closure::<dyn FnMut(JsValue)>::new(move |response: JsValue| {
        match response.dyn_into::<web_sys::Response>() {
            Ok(response) if response.ok() => {
                if let (Ok(text), Some(on_text)) = (response.text(), on_text.take()) {
                    let _ = text.then(&on_text);
                    // Called once, when the text is read.
                    on_text.forget();
                }
            }
            Ok(response) => {
                dispatch(
                    &refused,
                    Msg::DemoUnavailable(format!("HTTP {}", response.status())),
                );
            }
            Err(_) => {
                dispatch(&refused, Msg::DemoUnavailable("no response".into()));
            }
        }
    });
    let _ = window
        .fetch_with_str(path)
        .then(&on_response)
        .catch(&on_error);
    // Each is called at most once, when the fetch settles; the page keeps
    // no handle to them.
    on_response.forget();
    on_error.forget();
}

/// Reads a file's text and opens it as a recording.
fn open_file(app: &Shared, file: &web_sys::File) {
    let opened = Rc::clone(app);
    let on_text = Closure::<dyn FnMut(JsValue)>::new(move |text: JsValue| {
        if let Some(text) = text.as_string() {
            dispatch(&opened, Msg::OpenRecording { text });
        }
    });
    let _ = file.text().then(&on_text);
    // Called once, when the file has been read; the page keeps no handle.
    on_text.forget();
}

fn draw_now(app: &Shared) {
    let mut app = app.borrow_mut();
    let _ = render(&mut app);
    app.page.dirty = false;
}

fn focus(selector: &str) {
    let element = document().and_then(|document| document.query_selector(selector).ok().flatten());
    if let Some(element) = element
        .as_ref()
        .and_then(|element| element.dyn_ref::<HtmlElement>())
    {
        let _ = element.focus();
    }
}

/// Writes the frame of the page for the current language and settings.
fn mount(app: &mut App) -> Result<(), JsValue> {
    app.drawn.clear();
    app.seated = None;
    app.diagram = DrawnDiagram::default();
    let (lang, ui) = (app.page.model.lang, &app.page.ui);
    let document = document().ok_or("no document")?;
    let root = document.get_element_by_id("app").ok_or("no #app element")?;
    root.set_inner_html(&view::skeleton(lang));
    if let Some(html) = document.document_element() {
        html.set_attribute("lang", lang.tag())?;
    }
    document.set_title(lang.pick(
        "socket-flow: how TCP sockets really work",
        "socket-flow：TCP 套接字到底如何工作",
    ));
    if let Some(body) = document.body() {
        let classes = body.class_list();
        classes.toggle_with_force("dark", ui.dark)?;
        classes.toggle_with_force("projector", ui.projector)?;
    }
    if let Some(button) = document.query_selector(&format!("[{}]", projector_selector()))? {
        button.set_attribute("aria-pressed", if ui.projector { "true" } else { "false" })?;
    }
    if let Some(speed) =
        by_id("speed").and_then(|element| element.dyn_into::<HtmlInputElement>().ok())
    {
        speed.set_value(&ui.step_delay_ms.to_string());
    }
    if let Some(skip) =
        by_id("skip").and_then(|element| element.dyn_into::<HtmlInputElement>().ok())
    {
        skip.set_checked(ui.skip_animation);
    }
    if let Some(mistakes) = by_id("mistakes") {
        mistakes.set_inner_html(&view::mistakes(lang));
    }
    observe_diagram(app);
    Ok(())
}

/// Watches the diagram's box (a new one after each mount), so that the
/// diagram is drawn again at whatever width the layout gives it.
fn observe_diagram(app: &App) {
    if let (Some(sized), Some(diagram)) = (&app.sized, by_id("diagram")) {
        sized.disconnect();
        sized.observe(&diagram);
    }
}

/// The projector button's attribute, as the view writes it.
fn projector_selector() -> String {
    UiAction::Projector.to_string().trim().to_string()
}

fn relay_url() -> Result<String, JsValue> {
    let location = web_sys::window().ok_or("no window")?.location();
    let scheme = if location.protocol()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    // A page opened as a follower (`?follow=CODE`) or as the classroom's
    // presenter (`?present=TOKEN`) asks the relay for that seat, and keeps
    // it across reconnects.
    let search = location.search()?;
    let seat = if search.starts_with("?follow") || search.starts_with("?present") {
        search.as_str()
    } else {
        ""
    };
    Ok(format!("{scheme}://{}/ws{seat}", location.host()?))
}

fn connect(app: &Shared) -> Result<(), JsValue> {
    let socket = WebSocket::new(&relay_url()?)?;

    let opened = Rc::clone(app);
    let on_open = Closure::<dyn FnMut()>::new(move || {
        // A User Timing mark: the browser bench reads load-to-connected from it.
        if let Some(performance) = web_sys::window().and_then(|window| window.performance()) {
            let _ = performance.mark("socket-flow:connected");
        }
        dispatch(&opened, Msg::SocketOpened);
    });

    let received = Rc::clone(app);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
        if let Some(text) = message.data().as_string() {
            dispatch(&received, Msg::Frame(text));
        }
    });

    let closed = Rc::clone(app);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
        closed.borrow_mut().socket = None;
        dispatch(&closed, Msg::SocketClosed);
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

/// The action an element carries, read from its `data-*` attributes.
fn action_of(element: &Element) -> Option<UiAction> {
    UiAction::read(|name| element.get_attribute(&format!("data-{name}")))
}

fn message_box(sock: u32) -> Option<HtmlInputElement> {
    document()?
        .query_selector(&format!("input[data-key=msg-{sock}]"))
        .ok()??
        .dyn_into::<HtmlInputElement>()
        .ok()
}

/// Where focus is, as a selector that finds it again after a redraw.
fn selector_of(element: &Element) -> Option<String> {
    element
        .get_attribute("data-key")
        .map(|key| format!("[data-key='{key}']"))
        .or_else(|| Some(format!("#{}", element.id())).filter(|id| id.len() > 1))
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
    // Boxes and pickers speak through their changes, not their clicks.
    if element.tag_name() == "INPUT" || element.tag_name() == "SELECT" {
        return;
    }
    let Some(action) = action_of(&element) else {
        return;
    };
    // A few actions need something from the browser first.
    let msg = match action {
        UiAction::SaveRecording => Msg::SaveRecording {
            now: js_sys::Date::new_0()
                .to_iso_string()
                .as_string()
                .unwrap_or_default(),
        },
        UiAction::SendMessage { lane, sock } => Msg::SendText {
            lane,
            sock,
            text: message_box(sock)
                .map(|input| input.value())
                .unwrap_or_default(),
        },
        UiAction::RunChosen => Msg::RunChosen(
            by_id("scenario")
                .and_then(|select| select.dyn_into::<HtmlSelectElement>().ok())
                .and_then(|select| Scenario::from_key(&select.value())),
        ),
        UiAction::Help => Msg::ToggleHelp {
            from: selector_of(&element),
        },
        action => Msg::Click(action),
    };
    dispatch(app, msg);
}

/// Inputs and selects: addresses, the speed, filters, the chosen connection.
fn on_change(app: &Shared, event: Event) {
    let Some(element) = event
        .target()
        .and_then(|target| target.dyn_into::<Element>().ok())
    else {
        return;
    };
    let Some(action) = action_of(&element) else {
        return;
    };
    if action == UiAction::OpenRecording {
        if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
            if let Some(file) = input.files().and_then(|files| files.get(0)) {
                open_file(app, &file);
            }
            // The same file may be opened again.
            input.set_value("");
        }
        return;
    }
    let (value, checked) = match (
        element.dyn_ref::<HtmlInputElement>(),
        element.dyn_ref::<HtmlSelectElement>(),
    ) {
        (Some(input), _) => (input.value(), input.checked()),
        (None, Some(select)) => (select.value(), false),
        (None, None) => return,
    };
    dispatch(
        app,
        Msg::Input {
            action,
            value,
            checked,
        },
    );
}

fn on_key(app: &Shared, event: KeyboardEvent) {
    let Some(target) = event
        .target()
        .and_then(|target| target.dyn_into::<Element>().ok())
    else {
        return;
    };
    let typing = matches!(target.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA");
    if typing {
        if let (Some(UiAction::Message { lane, sock }), "Enter") =
            (action_of(&target), event.key().as_str())
        {
            event.prevent_default();
            let text = message_box(sock)
                .map(|input| input.value())
                .unwrap_or_default();
            dispatch(app, Msg::SendText { lane, sock, text });
        }
        return;
    }
    if event.ctrl_key() || event.meta_key() || event.alt_key() {
        return;
    }
    let msg = match event.key().as_str() {
        // A focused button's own Space is its click; leave it alone.
        " " if target.tag_name() == "BUTTON" => return,
        "ArrowRight" | " " => Msg::Key(Key::Next {
            focused_lane: target
                .closest("[data-lane]")
                .ok()
                .flatten()
                .and_then(|lane| lane.get_attribute("data-lane")?.parse().ok()),
        }),
        "," => Msg::Key(Key::Back),
        "." => Msg::Key(Key::Forward),
        "l" | "L" => Msg::Key(Key::SwitchLane),
        "r" | "R" => Msg::Key(Key::Reset),
        "?" => Msg::ToggleHelp {
            from: selector_of(&target),
        },
        "Escape" => Msg::Key(Key::Escape),
        _ => return,
    };
    if dispatch(app, msg) {
        event.prevent_default();
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
    if let Some(seq) = mark
        .get_attribute("data-seq")
        .and_then(|seq| seq.parse().ok())
    {
        dispatch(app, Msg::Hover { seq });
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
    let on_resize = Closure::<dyn FnMut()>::new(move || {
        dispatch(&resized, Msg::Resized);
    });
    web_sys::window()
        .ok_or("no window")?
        .add_event_listener_with_callback("resize", on_resize.as_ref().unchecked_ref())?;
    on_resize.forget();
    // So does a new width of the diagram's own box: opening the drawer
    // narrows it, closing it widens it, and no window resize says so.
    let sized = Rc::clone(app);
    let on_sized = Closure::<dyn FnMut()>::new(move || {
        let width = by_id("diagram").map_or(0, |diagram| diagram.client_width());
        dispatch(&sized, Msg::DiagramResized { width });
    });
    let observer = web_sys::ResizeObserver::new(on_sized.as_ref().unchecked_ref())?;
    on_sized.forget();
    app.borrow_mut().sized = Some(observer);
    observe_diagram(&app.borrow());

    // A recording dropped anywhere on the page opens.
    let dragged = Closure::<dyn FnMut(Event)>::new(|event: Event| event.prevent_default());
    document.add_event_listener_with_callback("dragover", dragged.as_ref().unchecked_ref())?;
    dragged.forget();
    let dropped = Rc::clone(app);
    let on_drop =
        Closure::<dyn FnMut(web_sys::DragEvent)>::new(move |event: web_sys::DragEvent| {
            event.prevent_default();
            if let Some(file) = event
                .data_transfer()
                .and_then(|transfer| transfer.files())
                .and_then(|files| files.get(0))
            {
                open_file(&dropped, &file);
            }
        });
    document.add_event_listener_with_callback("drop", on_drop.as_ref().unchecked_ref())?;
    on_drop.forget();

    for kind in ["focusin", "mouseover"] {
        let focused = Rc::clone(app);
        let closure = Closure::<dyn FnMut(Event)>::new(move |event| on_focus(&focused, event));
        document.add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref())?;
        closure.forget();
    }
    Ok(())
}

/// The animation loop: a tick for the player and the timeline, then a
/// drawing of the page when it changed.
fn schedule_frame(app: &Shared) {
    let frame: Rc<RefCell<Option<Closure<dyn FnMut(f64)>>>> = Rc::new(RefCell::new(None));
    let next = Rc::clone(&frame);
    let looping = Rc::clone(app);
    *frame.borrow_mut() = Some(Closure::<dyn FnMut(f64)>::new(move |now_ms: f64| {
        dispatch(&looping, Msg::Tick { now_ms });
        {
            let mut app = looping.borrow_mut();
            if std::mem::take(&mut app.page.dirty) {
                let _ = render(&mut app);
            }
        }
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

/// Draws the model. Inputs keep their text and the focused control keeps
/// focus across the redraw.
fn render(app: &mut App) -> Result<(), JsValue> {
    let document = document().ok_or("no document")?;
    let focused = document
        .active_element()
        .and_then(|element| element.get_attribute("data-key"));
    // A list, not a map: a handful of boxes, and no hash map code in the wasm.
    let mut typed: Vec<(String, String)> = Vec::new();
    let inputs = document.query_selector_all("#lanes input[data-key]")?;
    for index in 0..inputs.length() {
        if let Some(input) = inputs
            .get(index)
            .and_then(|node| node.dyn_into::<HtmlInputElement>().ok())
        {
            if let Some(key) = input.get_attribute("data-key") {
                typed.push((key, input.value()));
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

    let (state, text) = view::status(&app.page.model);
    if let Some(status) = by_id("status") {
        status.set_attribute("data-state", state)?;
        // How far the page has applied the lab's events, for tests and the
        // browser bench to read.
        status.set_attribute("data-seq", &app.page.model.last_seq.to_string())?;
        status.set_text_content(Some(&text));
    }
    let lost = matches!(app.page.model.connection, Connection::Lost { .. });
    if let Some(banner) = by_id("banner") {
        banner.toggle_attribute_with_force("hidden", !lost)?;
    }
    draw(app, "banner", view::relay_lost(&app.page.model));
    if let Some(main) = by_id("lanes") {
        main.class_list().toggle_with_force("stale", lost)?;
    }
    if let Some(error) = by_id("error") {
        error.toggle_attribute_with_force("hidden", app.page.model.last_error.is_none())?;
        error.set_text_content(app.page.model.last_error.as_deref());
    }
    if let Some(nc) = by_id("nc").and_then(|element| element.dyn_into::<HtmlInputElement>().ok()) {
        nc.set_value(&app.page.model.nc_command().unwrap_or_default());
    }
    // Live, or the lab as it was at the event being stepped to.
    if let Some(seq) = app.page.ui.at_seq {
        if app.snapshot.as_ref().map(|(at, _)| *at) != Some(seq) {
            app.snapshot = Some((seq, app.page.model.as_of(seq)));
        }
    } else {
        app.snapshot = None;
    }
    let shown = app
        .snapshot
        .as_ref()
        .map_or(&app.page.model, |(_, past)| past);
    let parts = [
        (
            "side-server-lanes",
            view::lanes(shown, &app.page.ui, Side::Server),
        ),
        (
            "side-client-lanes",
            view::lanes(shown, &app.page.ui, Side::Client),
        ),
        ("history", view::history(&app.page.model, &app.page.ui)),
    ];
    for (id, html) in parts {
        draw(app, id, html);
    }
    if let Some(stage) = by_id("lanes") {
        stage
            .class_list()
            .toggle_with_force("in-past", app.page.ui.at_seq.is_some())?;
    }
    if app.page.ui.at_seq.is_none() {
        follow_steps(app);
    }
    draw(app, "summary", view::summary(&app.page.model));
    if app.page.ui.drawer_open {
        draw(app, "wireshark", view::wireshark(&app.page.model));
    }
    let recording = view::recording(&app.page.model, &app.page.ui);
    if let Some(banner) = by_id("recording") {
        banner.toggle_attribute_with_force("hidden", recording.is_empty())?;
    }
    draw(app, "recording", recording);
    draw(app, "packet", view::packet(&app.page.model, &app.page.ui));
    draw(app, "wire-note", view::wire_note(&app.page.model));
    if let (Some(diagram), Some((_, past))) = (by_id("diagram"), &app.snapshot) {
        // The past is drawn whole, and drawn again whole once live.
        diagram.set_inner_html(&view::diagram(past, &app.page.ui, usize::MAX));
        app.diagram = DrawnDiagram::default();
    } else if let Some(diagram) = by_id("diagram") {
        draw_diagram(app, &diagram);
        if following && app.diagram.rows != rows_before {
            // Scrolled at the start of the next frame, where reading and
            // scrolling cost no extra layout of the page.
            app.scroll_to_newest = true;
            app.page.dirty = true;
        }
    }
    if let Some(workspace) = by_id("workspace") {
        workspace
            .class_list()
            .toggle_with_force("drawer-open", app.page.ui.drawer_open)?;
    }
    if let Some(toggle) = by_id("drawer-toggle") {
        toggle.set_attribute(
            "aria-expanded",
            if app.page.ui.drawer_open {
                "true"
            } else {
                "false"
            },
        )?;
    }
    // The drawer's parts are drawn only while it is open: nobody reads a
    // log that is not on screen, and a stream of events would rewrite it
    // every frame.
    if app.page.ui.drawer_open {
        draw(app, "code", view::code(&app.page.model, &app.page.ui));
    }
    for (id, pressed) in [
        ("tab-c", !app.page.ui.rust_listing),
        ("tab-rust", app.page.ui.rust_listing),
        (
            "side-server",
            app.page.ui.code_side.or(app.page.model.code.side) != Some(Side::Client),
        ),
        (
            "side-client",
            app.page.ui.code_side.or(app.page.model.code.side) == Some(Side::Client),
        ),
    ] {
        if let Some(tab) = by_id(id) {
            tab.set_attribute("aria-selected", if pressed { "true" } else { "false" })?;
        }
    }
    if app.page.ui.drawer_open {
        draw(
            app,
            "log-sock",
            view::sock_options(&app.page.model, &app.page.ui),
        );
    }
    if app.page.ui.drawer_open && draw(app, "log-list", view::log(&app.page.model, &app.page.ui)) {
        if let Some(list) = by_id("log-list") {
            list.set_scroll_top(list.scroll_height());
        }
    }
    if let Some(inspector) = by_id("inspector") {
        inspector.set_text_content(Some(&view::inspector(&app.page.model, &app.page.ui)));
    }
    draw(app, "playing", view::playing(&app.page.model, &app.page.ui));
    if let Some(pause) = by_id("pause") {
        pause.toggle_attribute_with_force("disabled", app.page.ui.playing.is_none())?;
    }
    if let Some(help) = by_id("help") {
        help.toggle_attribute_with_force("hidden", !app.page.ui.help_open)?;
    }
    seats(app, &document)?;
    // Every announcement of the frame, in order: a screen reader hears them
    // all rather than only the last.
    let announcements = app.page.model.take_announcements();
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

/// What the diagram in the page shows: its layout, how many rows, and how
/// many rows the model had let go of when they were drawn.
#[derive(Default)]
struct DrawnDiagram {
    layout: String,
    rows: usize,
    trimmed: usize,
}

/// Draws the diagram: new rows are appended to the ones already there (a
/// stream of segments costs its own rows, not the whole diagram again), and
/// rows the model let go of are removed from the top; anything else redraws
/// it whole.
fn draw_diagram(app: &mut App, diagram: &Element) {
    let model = &app.page.model;
    let layout = view::diagram_layout(model, &app.page.ui);
    let revealed = model.revealed.min(model.rows.len());
    let drawn = &mut app.diagram;
    let heads = diagram.first_element_child();
    if heads.is_some() && drawn.layout == layout {
        // The model let go of its oldest rows, whole chunks of them: so
        // does the page.
        let let_go = model
            .trimmed_rows
            .saturating_sub(drawn.trimmed)
            .min(drawn.rows);
        for _ in 0..let_go.div_ceil(ROW_CHUNK) {
            if let Some(chunk) = heads.as_ref().and_then(Element::next_element_sibling) {
                chunk.remove();
            }
        }
        drawn.rows -= let_go;
        drawn.trimmed = model.trimmed_rows;
        if revealed >= drawn.rows {
            // New rows fill the last chunk, then start new ones.
            let ui = &app.page.ui;
            while drawn.rows < revealed {
                let end = view::chunk_end(model, drawn.rows).min(revealed);
                let rows = view::diagram_rows(model, ui, drawn.rows..end, app.page.fresh_from);
                let last = diagram.last_element_child();
                let starts_chunk =
                    view::chunk_end(model, drawn.rows) - drawn.rows == ROW_CHUNK || last == heads;
                match last {
                    Some(chunk) if !starts_chunk => {
                        let _ = chunk.insert_adjacent_html("beforeend", &rows);
                    }
                    _ => {
                        let chunk = view::diagram_chunk(&rows);
                        let _ = diagram.insert_adjacent_html("beforeend", &chunk);
                    }
                }
                drawn.rows = end;
            }
            return;
        }
    }
    diagram.set_inner_html(&view::diagram(model, &app.page.ui, app.page.fresh_from));
    app.diagram = DrawnDiagram {
        layout,
        rows: revealed,
        trimmed: model.trimmed_rows,
    };
}

/// What a follower, a presenter and a classroom student's own lab show: a
/// follower's driving controls disabled (with the reason as their tooltip)
/// and its way to a lab of its own; a student's way back to following; the
/// presenter's button that shows the class the address.
fn seats(app: &mut App, document: &web_sys::Document) -> Result<(), JsValue> {
    let model = &app.page.model;
    let hello = model.hello.as_ref();
    let classroom = hello.is_some_and(|hello| hello.classroom.is_some());
    let presenter = hello.and_then(|hello| hello.role) == Some(protocol::Seat::Presenter);
    let following = model.following.is_some();
    let seated = Some((following, classroom, presenter, app.page.model.lang));
    if app.seated == seated {
        return Ok(());
    }
    app.seated = seated;
    let lang = app.page.model.lang;
    for (id, shown) in [
        ("own-lab", following),
        ("follow-teacher", classroom && !following && !presenter),
        ("show-join", presenter),
    ] {
        if let Some(element) = by_id(id) {
            element.toggle_attribute_with_force("hidden", !shown)?;
        }
    }
    let driving = document.query_selector_all(".drives")?;
    for index in 0..driving.length() {
        if let Some(button) = driving
            .get(index)
            .and_then(|node| node.dyn_into::<Element>().ok())
        {
            button.toggle_attribute_with_force("disabled", following)?;
            if following {
                button.set_attribute("title", view::follow_only(lang))?;
            } else {
                button.remove_attribute("title")?;
            }
        }
    }
    Ok(())
}

/// How close to its end a scrolled box must be to count as following.
const FOLLOW_SLACK_PX: i32 = 48;

/// Takes the diagram's width and the body's font size, so that the diagram
/// is drawn one unit to a pixel, its text at the body's size.
fn measure(app: &mut App, diagram: &Element) {
    let width = f64::from(diagram.client_width());
    if width > 0.0 {
        app.page.ui.diagram_width = width;
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
        app.page.ui.font_px = font;
    }
}

/// Brings each lane's steps into view when its next step changes, inside
/// the lane's own scrolling column: the step just run at the top, with its
/// card, and the next step below it when there is room.
fn follow_steps(app: &mut App) {
    let next: Vec<Option<Step>> = app
        .page
        .model
        .lanes
        .iter()
        .map(|lane| app.page.model.next_step(lane.id))
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

/// Draws an SVG document on a canvas at twice its size, once the browser
/// has loaded it as an image, and offers the canvas as a PNG.
fn download_png(name: &'static str, svg: &str) {
    let Some(document) = document() else { return };
    let parts = js_sys::Array::of1(&JsValue::from_str(svg));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("image/svg+xml");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let (Ok(url), Ok(image)) = (
        web_sys::Url::create_object_url_with_blob(&blob),
        web_sys::HtmlImageElement::new(),
    ) else {
        return;
    };
    let loaded = image.clone();
    let source = url.clone();
    let on_load = Closure::<dyn FnMut()>::new(move || {
        let _ = web_sys::Url::revoke_object_url(&source);
        let canvas = document
            .create_element("canvas")
            .ok()
            .and_then(|canvas| canvas.dyn_into::<web_sys::HtmlCanvasElement>().ok());
        let Some(canvas) = canvas else { return };
        canvas.set_width(loaded.natural_width() * 2);
        canvas.set_height(loaded.natural_height() * 2);
        let context = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|context| context.dyn_into::<web_sys::CanvasRenderingContext2d>().ok());
        let Some(context) = context else { return };
        let _ = context.scale(2.0, 2.0);
        let _ = context.draw_image_with_html_image_element(&loaded, 0.0, 0.0);
        if let (Ok(png), Ok(anchor)) = (
            canvas.to_data_url_with_type("image/png"),
            document.create_element("a"),
        ) {
            let _ = anchor.set_attribute("href", &png);
            let _ = anchor.set_attribute("download", name);
            if let Some(anchor) = anchor.dyn_ref::<HtmlElement>() {
                anchor.click();
            }
        }
    });
    image.set_onload(Some(on_load.as_ref().unchecked_ref()));
    // Called once, when the image has loaded.
    on_load.forget();
    image.set_src(&url);
}

/// Offers `text` as a file to download.
fn download(name: &str, mime: &str, text: &str) {
    let Some(document) = document() else { return };
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Ok(anchor) = document.create_element("a") {
        let _ = anchor.set_attribute("href", &url);
        let _ = anchor.set_attribute("download", name);
        if let Some(anchor) = anchor.dyn_ref::<HtmlElement>() {
            anchor.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}
