//! The DOM of the page: the only module that touches web-sys elements.

use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

use crate::model::{Connection, Model};

pub struct View {
    status: Element,
}

fn element(document: &Document, tag: &str, class: &str) -> Result<Element, JsValue> {
    let element = document.create_element(tag)?;
    if !class.is_empty() {
        element.set_class_name(class);
    }
    Ok(element)
}

impl View {
    /// Replaces the page's placeholder with the real shell.
    pub fn mount() -> Result<View, JsValue> {
        let document = web_sys::window()
            .and_then(|window| window.document())
            .ok_or("no document")?;
        let root = document.get_element_by_id("app").ok_or("no #app element")?;
        root.set_inner_html("");

        let header = element(&document, "header", "top")?;
        let title = element(&document, "h1", "")?;
        title.set_text_content(Some("socket-flow"));
        let status = element(&document, "span", "status")?;
        status.set_id("status");
        status.set_attribute("role", "status")?;
        header.append_child(&title)?;
        header.append_child(&status)?;
        root.append_child(&header)?;

        let lanes = element(&document, "main", "lanes")?;
        for (label, class) in [("Server", "lane server"), ("Client 1", "lane client")] {
            let lane = element(&document, "section", class)?;
            lane.set_attribute("aria-label", label)?;
            let heading = element(&document, "h2", "")?;
            heading.set_text_content(Some(label));
            lane.append_child(&heading)?;
            lanes.append_child(&lane)?;
        }
        root.append_child(&lanes)?;

        let view = View { status };
        view.render_connection(&Model::default());
        Ok(view)
    }

    pub fn render_connection(&self, model: &Model) {
        let (state, text) = match &model.connection {
            Connection::Connecting => ("connecting", "Connecting to the relay…".to_string()),
            Connection::Connected => ("connected", "Connected to the relay".to_string()),
            Connection::Lost {
                attempt,
                retry_in_ms,
            } => (
                "lost",
                format!(
                    "Relay unreachable: retrying in {:.1} s (attempt {attempt})",
                    *retry_in_ms as f64 / 1000.0
                ),
            ),
        };
        let _ = self.status.set_attribute("data-state", state);
        self.status.set_text_content(Some(&text));
    }
}
