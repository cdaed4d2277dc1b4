//! The socket-flow page: Rust compiled to WebAssembly.
//!
//! Layout:
//! - `page`: the page as one state machine: `Page`, `Msg`, `Effect`, and
//!   the one pure `update`; `action`: what each control does, as a type.
//! - `model`: pure Rust, tested natively; applies the relay's events and
//!   decides which command a click means.
//! - `view`: pure functions from the model to HTML and SVG.
//! - `listing`, `script`, `i18n`: the C and Rust listings, the lesson and its
//!   error scenarios, and the two languages.
//! - `notes`, `spoken`: the page's words for what happened underneath a call,
//!   and what the live region says of each event.
//! - `app` (wasm only): the DOM side. It turns DOM events into messages for
//!   `update`, carries out its effects (the WebSocket with its reconnection,
//!   storage, downloads, focus), and draws in the requestAnimationFrame loop.

pub mod action;
pub mod i18n;
pub mod listing;
pub mod model;
pub mod notes;
pub mod page;
pub mod script;
pub mod spoken;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod app;
