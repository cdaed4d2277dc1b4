//! HTTP on one port: the page's files, and `/ws`, where each browser gets a lab.

use std::future::Future;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::access::Access;
use crate::assets::{Accepts, Assets, already_has};
use crate::capture::Capture;
use crate::classroom::Classroom;
use crate::config::Config;
use crate::labs::Labs;
use crate::session;

/// How long a shutdown waits for the labs to close their sockets.
pub const SHUTDOWN_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The WebSocket read buffer a session starts with.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// What every request handler shares.
struct Shared {
    pub config: Config,
    assets: Assets,
    labs: Arc<Labs>,
    access: Access,
}

/// A relay that is ready to serve: its capture is open (or known to be
/// impossible) before anyone is told where to connect.
pub struct Relay {
    shared: Arc<Shared>,
    /// `relay trace`'s way in, once [`Relay::take_traces`] has opened it.
    traces: Option<crate::trace::Listener>,
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
            Capture::start(config.lab_ip, &config.lab_ports)
        } else {
            Err("The wire view was turned off with --no-capture.".to_string())
        };
        match &capture {
            Ok(_) => tracing::info!("capturing the labs' TCP segments"),
            Err(reason) => tracing::warn!("wire view off: {reason}"),
        }
        let shared = Arc::new(Shared {
            labs: Arc::new(Labs::new(&config, capture)),
            access: Access::new(&config.allowed_hosts, &config.allowed_origins),
            config,
            assets,
        });
        Relay {
            shared,
            traces: None,
        }
    }

    /// Opens the control socket through which `relay trace` reaches the relay
    /// serving on `port`; without one, the relay serves the page all the
    /// same. Called before the relay says where it is, so that a trace
    /// started as soon as it has said so finds it.
    pub fn take_traces(&mut self, port: u16) {
        match crate::trace::Listener::bind(port) {
            Ok(control) => self.traces = Some(control),
            Err(error) => tracing::warn!(%error, "relay trace cannot reach this relay"),
        }
    }

    /// Serves the page and the labs on an already-bound listener until
    /// `shutdown` completes; then every lab closes its sockets and every
    /// browser is told (1001), within [`SHUTDOWN_WITHIN`]. Taking the
    /// listener lets tests bind port 0.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let labs = Arc::clone(&self.shared.labs);
        if let Some(control) = self.traces {
            tokio::spawn(crate::trace::serve(control, Arc::clone(&labs)));
        }
        let shutdown = async move {
            shutdown.await;
            labs.close_all(SHUTDOWN_WITHIN).await;
        };
        let app = Router::new()
            .route("/ws", get(open_lab))
            .route("/labs/{code}/capture.pcapng", get(save_capture))
            .route("/qr.svg", get(student_qr))
            .route("/join", get(join_page))
            .fallback(get(page_file))
            .layer(middleware::from_fn_with_state(
                Arc::clone(&self.shared),
                check_host,
            ))
            .with_state(self.shared);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(serve_connection(stream, peer, app.clone()));
                    }
                    Err(error) => {
                        // Out of fds, say: never silent, and no spin.
                        tracing::warn!(%error, "could not accept a connection");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                    }
                },
                () = &mut shutdown => return Ok(()),
            }
        }
    }
}

/// How long the relay waits after an accept error before trying again.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// A request's headers must all arrive within this long.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One HTTP/1.1 connection: its requests, and the WebSocket it may become.
async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, app: Router) {
    // Events are small frames that must leave at once: without TCP_NODELAY,
    // Nagle's algorithm and the browser's delayed ACK hold them for ~40 ms.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    // The handlers learn the peer as axum::serve would tell them.
    let app = app.layer(axum::Extension(ConnectInfo(peer)));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "connection ended");
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

/// Answers nothing, not even a page, to a request for a host name that is
/// not allowed: that is what a DNS-rebinding page sends.
async fn check_host(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match shared.access.check_host(request.headers(), peer) {
        Ok(()) => next.run(request).await,
        Err(host) => (
            StatusCode::FORBIDDEN,
            format!(
                "This relay answers only to localhost, IP addresses and the names it was given. \
                 It was asked for as \"{host}\". If that is this machine's name, start the relay \
                 with --allow-host {name}.\n",
                name = host
                    .rsplit_once(':')
                    .map_or(host.as_str(), |(name, _)| name)
            ),
        )
            .into_response(),
    }
}

async fn page_file(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    };
    let accepts = Accepts::parse(header_text(header::ACCEPT_ENCODING));
    let Some(asset) = shared.assets.get(uri.path(), accepts).await else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // The bundle changes with every build of the relay, so the browser asks
    // each time (no-cache), and the ETag makes the answer a bodiless 304
    // when nothing changed.
    let mut response = if already_has(header_text(header::IF_NONE_MATCH), &asset.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.bytes.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(encoding) = asset.encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// A lab's captured frames as pcapng, for Wireshark, to whoever has the
/// lab's code.
async fn save_capture(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Response {
    if let Err(reason) = &shared.labs.capture_reason() {
        return (StatusCode::NOT_FOUND, reason.clone()).into_response();
    }
    match shared.labs.capture_file(&code) {
        Some(Ok(file)) => (
            [
                (header::CONTENT_TYPE, "application/x-pcapng"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"socket-flow-lab.pcapng\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            file,
        )
            .into_response(),
        Some(Err(reason)) => (StatusCode::INTERNAL_SERVER_ERROR, reason).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "No open lab has this code. A lab's capture can be saved while its page is open.",
        )
            .into_response(),
    }
}

/// What `/ws` may be asked for: `?follow=CODE` follows a lab by its code,
/// `?follow` alone the classroom's shared lab, and `?present=TOKEN` opens
/// that shared lab as its presenter. Without either, a lab of one's own.
#[derive(serde::Deserialize, Debug)]
struct WsQuery {
    follow: Option<String>,
    present: Option<String>,
}

/// What a classroom page's request gets outside classroom mode.
const NOT_CLASSROOM: &str = "This relay is not in classroom mode (relay --classroom).";

/// The student URL as a QR code, for the presenter to show full screen.
async fn student_qr(State(shared): State<Arc<Shared>>) -> Response {
    classroom_page(&shared, "image/svg+xml", Classroom::qr_svg)
}

/// The student URL and its QR code on a page of their own, for the
/// presenter to project while the class joins.
async fn join_page(State(shared): State<Arc<Shared>>) -> Response {
    classroom_page(&shared, "text/html; charset=utf-8", Classroom::join_page)
}

/// A page only classroom mode serves, drawn from its classroom.
fn classroom_page(
    shared: &Shared,
    content_type: &'static str,
    draw: impl Fn(&Classroom) -> Option<String>,
) -> Response {
    match shared.config.classroom.as_ref().map(draw) {
        Some(Some(body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Some(None) => (StatusCode::INTERNAL_SERVER_ERROR, "no QR code").into_response(),
        None => (StatusCode::NOT_FOUND, NOT_CLASSROOM).into_response(),
    }
}

async fn open_lab(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(origin) = shared.access.check_origin(&headers) {
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
    let pace = session::Pace {
        frame_bytes,
        idle_timeout: shared.config.idle_timeout,
    };
    let upgrade = upgrade
        // tungstenite starts each session with a 128 KiB read buffer; commands
        // are tiny, and the buffer grows when a frame needs it.
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit);
    if let Some(code) = &query.follow {
        return follow_lab(&shared, peer, code, pace, upgrade);
    }
    let seat = match &query.present {
        None => protocol::Seat::Owner,
        Some(token) => match &shared.config.classroom {
            Some(classroom) if same_secret(token, &classroom.token) => protocol::Seat::Presenter,
            Some(_) => {
                tracing::warn!(%peer, "refused a presenter with a wrong token");
                return (
                    StatusCode::FORBIDDEN,
                    "This is not the presenter's link. Students follow the lesson at the \
                     relay's address without ?present.",
                )
                    .into_response();
            }
            None => return (StatusCode::NOT_FOUND, NOT_CLASSROOM).into_response(),
        },
    };
    // No room: say so in HTTP, before any WebSocket exists.
    let lab = match shared.labs.open(peer.ip(), seat) {
        Ok(lab) => lab,
        Err(message) => {
            tracing::info!(%peer, "{message}");
            return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
        }
    };
    upgrade.on_upgrade(move |socket| async move {
        session::run(socket, lab, pace).await;
        // Everything the session held is dropped by now: its WebSocket,
        // its queues, its lab.
        crate::labs::give_memory_back();
    })
}

/// `/ws?follow=CODE`, or `?follow` in classroom mode: a screen that shows
/// the lab and may not drive it.
fn follow_lab(
    shared: &Shared,
    peer: SocketAddr,
    code: &str,
    pace: session::Pace,
    upgrade: WebSocketUpgrade,
) -> Response {
    let audience = if code.is_empty() {
        if shared.config.classroom.is_none() {
            return (
                StatusCode::NOT_FOUND,
                "This relay is not in classroom mode: follow a lab by its code (?follow=CODE).",
            )
                .into_response();
        }
        shared
            .labs
            .presented()
            .ok_or("The teacher's lab is not open yet. This page tries again until it is.")
    } else {
        shared
            .labs
            .audience(code)
            .ok_or("No open lab has this code. A lab can be followed while its page is open.")
    };
    let audience = match audience {
        Ok(audience) => audience,
        Err(message) => return (StatusCode::NOT_FOUND, message).into_response(),
    };
    let slot = match shared.labs.follower_slot() {
        Ok(slot) => slot,
        Err(message) => {
            tracing::info!(%peer, "{message}");
            return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
        }
    };
    let shutdown = shared.labs.shutdown_signal();
    upgrade.on_upgrade(move |socket| async move {
        crate::follow::run(socket, audience, shutdown, pace).await;
        drop(slot);
    })
}

/// Whether a presented secret is the expected one, in time that does not
/// depend on where they first differ.
fn same_secret(presented: &str, expected: &str) -> bool {
    let (presented, expected) = (presented.as_bytes(), expected.as_bytes());
    let differences = presented
        .iter()
        .zip(expected)
        .fold(0u8, |all, (a, b)| all | (a ^ b));
    presented.len() == expected.len() && differences == 0
}
