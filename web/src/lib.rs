//! The socket-flow page: wires the relay's WebSocket to the view.
//!
//! Layout:
//! - `model`: pure Rust, tested natively; it decides what the page shows.
//! - `view`: owns the DOM.
//! - this file: the WebSocket, its reconnection, and the glue between them.

pub mod model;
#[cfg(target_arch = "wasm32")]
mod view;

#[cfg(target_arch = "wasm32")]
mod app {
    use std::cell::RefCell;
    use std::rc::Rc;

    use wasm_bindgen::prelude::*;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use crate::model::{Connection, Model};
    use crate::view::View;

    /// Everything the page keeps between callbacks. The WebSocket's closures
    /// live here so that a reconnect replaces them instead of leaking them.
    struct App {
        model: Model,
        view: View,
        socket: Option<WebSocket>,
        on_open: Option<Closure<dyn FnMut()>>,
        on_message: Option<Closure<dyn FnMut(MessageEvent)>>,
        on_close: Option<Closure<dyn FnMut(CloseEvent)>>,
        retry_timer: Option<Closure<dyn FnMut()>>,
    }

    #[wasm_bindgen(start)]
    pub fn start() -> Result<(), JsValue> {
        let view = View::mount()?;
        let app = Rc::new(RefCell::new(App {
            model: Model::default(),
            view,
            socket: None,
            on_open: None,
            on_message: None,
            on_close: None,
            retry_timer: None,
        }));
        connect(&app)?;
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

    fn connect(app: &Rc<RefCell<App>>) -> Result<(), JsValue> {
        let socket = WebSocket::new(&relay_url()?)?;

        let opened = Rc::clone(app);
        let on_open = Closure::<dyn FnMut()>::new(move || {
            let mut app = opened.borrow_mut();
            app.model.connection_opened();
            let App { model, view, .. } = &mut *app;
            view.render_connection(model);
        });

        let received = Rc::clone(app);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
            let Some(text) = message.data().as_string() else {
                return;
            };
            let mut app = received.borrow_mut();
            match protocol::decode_event(&text) {
                Ok(event) => {
                    app.model.apply(&event);
                    let App { model, view, .. } = &mut *app;
                    view.render_connection(model);
                }
                // A frame this page cannot read is logged, not trusted.
                Err(error) => {
                    web_sys::console::warn_1(&format!("unreadable event: {error}").into())
                }
            }
        });

        let closed = Rc::clone(app);
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            let delay_ms = {
                let mut app = closed.borrow_mut();
                let delay_ms = app.model.connection_lost();
                let App { model, view, .. } = &mut *app;
                view.render_connection(model);
                delay_ms
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

    fn schedule_reconnect(app: &Rc<RefCell<App>>, delay_ms: u32) {
        let retrying = Rc::clone(app);
        let retry = Closure::<dyn FnMut()>::new(move || {
            if let Err(error) = connect(&retrying) {
                web_sys::console::warn_1(&error);
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
}
