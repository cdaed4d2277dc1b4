//! HTTP on one port: the page's files, and `/ws`, where each browser gets a lab.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::assets::Assets;
use crate::capture::Capture;
use crate::config::Config;
use crate::labs::Labs;
use crate::session;

/// The WebSocket read buffer a session starts with.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// What every request handler shares.
struct Shared {
    pub config: Config,
    assets: Assets,
    labs: Arc<Labs>,
}

/// A relay that is ready to serve: its capture is open (or known to be
/// impossible) before anyone is told where to connect.
pub struct Relay {
    shared: Arc<Shared>,
}

impl Relay {
    /// Prepares the relay. Must run inside the tokio runtime, which the
    /// capture's packet socket registers with.
    pub fn new(config: Config) -> Relay {
        let assets = match &config.www_dir {
            Some(dir) => Assets::Dir(dir.clone()),
            None => Assets::Embedded,
        };
        let capture = if config.capture {
            Capture::start(config.lab_ip)
        } else {
            Err("The wire view was turned off with --no-capture.".to_string())
        };
        match &capture {
            Ok(_) => tracing::info!("capturing the labs' TCP segments"),
            Err(reason) => tracing::warn!("wire view off: {reason}"),
        }
        let shared = Arc::new(Shared {
            labs: Arc::new(Labs::new(&config, capture)),
            config,
            assets,
        });
        Relay { shared }
    }

    /// Serves the page and the labs on an already-bound listener until
    /// `shutdown` completes. Taking the listener lets tests bind port 0.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = Router::new()
            .route("/ws", get(open_lab))
            .fallback(get(page_file))
            .with_state(self.shared);
        // Events are small frames that must leave at once: without
        // TCP_NODELAY, Nagle's algorithm and the browser's delayed ACK hold
        // them for ~40 ms.
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Prepares a relay and serves it on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Relay::new(config).serve(listener, shutdown).await
}

async fn page_file(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    match shared.assets.get(uri.path()).await {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                // The bundle changes with every build of the relay; never cache it stale.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn open_lab(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(origin) = check_origin(&headers, &shared.config.allowed_origins) {
        tracing::warn!(%origin, "refused a WebSocket from another origin");
        return (
            StatusCode::FORBIDDEN,
            format!(
                "The page at {origin} may not open this relay's labs. Start the relay with \
                 --allow-origin {origin} to allow it."
            ),
        )
            .into_response();
    }
    // The protocol's own frame limit answers with an `error` event and keeps
    // the session; this larger one only stops a browser from making the relay
    // buffer without bound.
    let frame_bytes = shared.config.frame_bytes;
    let hard_limit = frame_bytes as usize * 16;
    let labs = Arc::clone(&shared.labs);
    upgrade
        // tungstenite starts each session with a 128 KiB read buffer; commands
        // are tiny, and the buffer grows when a frame needs it.
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| session::run(socket, labs, frame_bytes))
}

/// A browser page may open `/ws` only if it came from this relay (its Origin
/// names the Host it asked) or from an origin the teacher allowed. Clients
/// that send no Origin are not browsers, so a page cannot hide behind them.
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("(unreadable)").to_string();
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("");
    let same_origin = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|origin_host| !host.is_empty() && origin_host == host);
    if same_origin || allowed.contains(&origin) {
        Ok(())
    } else {
        Err(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(origin) = origin {
            headers.insert(
                header::ORIGIN,
                HeaderValue::from_str(origin).expect("origin"),
            );
        }
        headers
    }

    #[test]
    fn origin_rules() {
        let allowed = vec!["http://teacher.example:8080".to_string()];
        assert!(check_origin(&headers(None, "127.0.0.1:7878"), &allowed).is_ok());
        assert!(
            check_origin(
                &headers(Some("http://127.0.0.1:7878"), "127.0.0.1:7878"),
                &allowed
            )
            .is_ok()
        );
        assert!(
            check_origin(
                &headers(Some("http://evil.example"), "127.0.0.1:7878"),
                &allowed
            )
            .is_err()
        );
        assert!(
            check_origin(
                &headers(Some("http://127.0.0.1:9999"), "127.0.0.1:7878"),
                &allowed
            )
            .is_err()
        );
        assert!(
            check_origin(
                &headers(Some("http://teacher.example:8080"), "127.0.0.1:7878"),
                &allowed
            )
            .is_ok()
        );
    }
}
