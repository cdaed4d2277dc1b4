//! Who may reach the relay. A web page on any site can make the teacher's
//! browser send requests to the relay; two checks keep such a page out:
//!
//! - the Host allow-list, on every request, before any page or upgrade: a
//!   DNS-rebinding page reaches the relay under its own name, which is not
//!   on the list (as Vite's `server.allowedHosts` and Jupyter's
//!   `allow_remote_access` do);
//! - the Origin check on the WebSocket: a page from another origin may not
//!   open a lab, unless the teacher allowed that origin.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::http::{HeaderMap, header};

/// How many non-loopback peers are remembered, so that each is logged once.
const PEERS_LOGGED_MAX: usize = 1024;

/// The rules, from the relay's flags.
#[derive(Debug, Default)]
pub struct Access {
    /// Names besides localhost and IP literals, from `--allow-host`, lowercase.
    allowed_hosts: Vec<String>,
    /// Origins besides the relay's own, from `--allow-origin`.
    allowed_origins: Vec<String>,
    peers_logged: Mutex<HashSet<IpAddr>>,
}

impl Access {
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Access {
        Access {
            allowed_hosts: allowed_hosts
                .iter()
                .map(|host| host.to_ascii_lowercase())
                .collect(),
            allowed_origins: allowed_origins.to_vec(),
            peers_logged: Mutex::new(HashSet::new()),
        }
    }

    /// Whether a request may be answered at all, judged by its Host header:
    /// `localhost`, `*.localhost`, an IP literal, or a name the teacher
    /// allowed. A request without Host (HTTP/1.0) names no site, so no
    /// rebinding page can hide behind it.
    pub fn check_host(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<(), String> {
        let Some(host) = headers.get(header::HOST) else {
            return Ok(());
        };
        let host = host.to_str().unwrap_or("").to_string();
        let name = host_name(&host).to_ascii_lowercase();
        let allowed = name == "localhost"
            || name.ends_with(".localhost")
            || name.parse::<IpAddr>().is_ok()
            || self.allowed_hosts.contains(&name);
        if !allowed {
            tracing::info!(%peer, %host, "refused a request for a host name that is not allowed");
            return Err(host);
        }
        if !peer.ip().is_loopback() {
            if let Ok(mut logged) = self.peers_logged.lock() {
                if logged.len() < PEERS_LOGGED_MAX && logged.insert(peer.ip()) {
                    tracing::info!(%peer, %host, "a peer from the network reached the relay");
                }
            }
        }
        Ok(())
    }

    /// A browser page may open `/ws` only if it came from this relay (its
    /// Origin names the Host it asked) or from an origin the teacher
    /// allowed. Clients that send no Origin are not browsers, so a page
    /// cannot hide behind them.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), String> {
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
        if same_origin || self.allowed_origins.contains(&origin) {
            Ok(())
        } else {
            Err(origin)
        }
    }
}

/// The name in a Host header, without its port: `[::1]:7878` → `::1`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
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

    const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

    #[test]
    fn host_rules() {
        let access = Access::new(&["Teacher-Laptop.local".to_string()], &[]);
        for host in [
            "localhost:7878",
            "LOCALHOST",
            "socket-flow.localhost:7878",
            "127.0.0.1:7878",
            "192.168.1.23:7878",
            "[::1]:7878",
            "teacher-laptop.local:7878",
        ] {
            assert!(
                access.check_host(&headers(None, host), PEER).is_ok(),
                "{host}"
            );
        }
        for host in [
            "evil.example:7878",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:7878",
        ] {
            assert!(
                access.check_host(&headers(None, host), PEER).is_err(),
                "{host}"
            );
        }
    }

    #[test]
    fn origin_rules() {
        let access = Access::new(&[], &["http://teacher.example:8080".to_string()]);
        assert!(
            access
                .check_origin(&headers(None, "127.0.0.1:7878"))
                .is_ok()
        );
        assert!(
            access
                .check_origin(&headers(Some("http://127.0.0.1:7878"), "127.0.0.1:7878"))
                .is_ok()
        );
        assert!(
            access
                .check_origin(&headers(Some("http://evil.example"), "127.0.0.1:7878"))
                .is_err()
        );
        assert!(
            access
                .check_origin(&headers(Some("http://127.0.0.1:9999"), "127.0.0.1:7878"))
                .is_err()
        );
        assert!(
            access
                .check_origin(&headers(
                    Some("http://teacher.example:8080"),
                    "127.0.0.1:7878"
                ))
                .is_ok()
        );
    }
}
