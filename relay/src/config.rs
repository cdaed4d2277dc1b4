//! The relay's settings: where it listens, what a browser may ask for, and the limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use protocol::Limits;

/// The port the relay listens on unless `--listen` says otherwise. Chosen
/// outside the lab range and away from the common development ports.
pub const DEFAULT_PORT: u16 = 7878;

/// Everything a relay needs to know before it accepts its first browser.
#[derive(Clone, Debug)]
pub struct Config {
    /// Serve the page from this folder instead of the copy embedded at build time.
    pub www_dir: Option<PathBuf>,
    /// Origins, besides the relay's own, whose pages may open `/ws`.
    pub allowed_origins: Vec<String>,
    /// Host names, besides localhost and IP literals, the relay answers to.
    pub allowed_hosts: Vec<String>,
    /// Targets outside this host that a lab may connect to.
    pub allowed_connect_targets: Vec<SocketAddr>,
    /// The IP that lab servers bind to by default. Loopback unless the teacher
    /// opts in, so that nothing a student starts is reachable from the network.
    pub lab_ip: IpAddr,
    /// The ports a lab server may bind.
    pub lab_ports: RangeInclusive<u16>,
    pub sockets_per_lab: u32,
    /// How many labs one browser address may have open at once.
    pub labs_per_ip: u32,
    /// How many lab ports one lab may hold at once.
    pub ports_per_lab: u32,
    pub labs_per_relay: u32,
    pub send_bytes: u32,
    pub read_bytes: u32,
    /// The largest command frame accepted; larger ones get `error` `limit`.
    pub frame_bytes: u32,
    /// Capture the labs' segments when the relay may (root or CAP_NET_RAW).
    pub capture: bool,
    /// A browser silent this long (no frame, no pong) has gone.
    pub idle_timeout: std::time::Duration,
    /// This host's addresses, from its interfaces at start.
    pub host_addresses: Arc<Vec<IpAddr>>,
    /// How many screens may follow labs at once, across the relay.
    pub followers_per_relay: u32,
    /// Classroom mode: the presenter's secret (`/ws?present=TOKEN`) and the
    /// student URL; None outside it.
    pub classroom: Option<crate::classroom::Classroom>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            www_dir: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            allowed_connect_targets: Vec::new(),
            lab_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            lab_ports: 7001..=7999,
            sockets_per_lab: 16,
            labs_per_ip: 4,
            ports_per_lab: 8,
            labs_per_relay: 64,
            send_bytes: 16 * 1024,
            read_bytes: 64 * 1024,
            frame_bytes: 64 * 1024,
            capture: true,
            idle_timeout: std::time::Duration::from_secs(45),
            host_addresses: Arc::new(crate::host::addresses()),
            followers_per_relay: 1000,
            classroom: None,
        }
    }
}

impl Config {
    /// The limits as `hello` reports them.
    pub fn limits(&self) -> Limits {
        Limits {
            sockets_per_lab: self.sockets_per_lab,
            labs_per_relay: self.labs_per_relay,
            send_bytes: self.send_bytes,
            read_bytes: self.read_bytes,
            frame_bytes: self.frame_bytes,
            port_range: [*self.lab_ports.start(), *self.lab_ports.end()],
            ports_per_lab: self.ports_per_lab,
        }
    }
}

/// The fewest ports a lab port range may hold: a lesson's servers, and
/// room for ports still in TIME_WAIT.
const MIN_LAB_PORTS: u16 = 16;

/// Reads `--lab-ports`: `LOW-HIGH`, unprivileged, at least
/// [`MIN_LAB_PORTS`] ports.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (low, high) = text
        .split_once('-')
        .ok_or_else(|| format!("{text}: give the range as LOW-HIGH, such as 7001-7999"))?;
    let port = |part: &str| {
        part.trim()
            .parse::<u16>()
            .map_err(|_| format!("{part} is not a port number (1-65535)"))
    };
    let (low, high) = (port(low)?, port(high)?);
    if low < 1024 {
        return Err(format!(
            "{low}: ports below 1024 are privileged; labs use ports from 1024 up"
        ));
    }
    if high < low || high - low + 1 < MIN_LAB_PORTS {
        return Err(format!(
            "{low}-{high}: a range needs at least {MIN_LAB_PORTS} ports, lowest first"
        ));
    }
    Ok(low..=high)
}

/// File descriptors the relay needs besides its labs' (listener, epoll,
/// capture, trace, logs), with room to spare.
const BASE_FDS: u64 = 64;

impl Config {
    /// Checks the flags against this host before anything starts; the
    /// message says what to change.
    pub fn check(&self) -> Result<(), String> {
        if let Some(dir) = &self.www_dir {
            if !dir.join("index.html").is_file() {
                return Err(format!(
                    "--www {}: that folder has no index.html. Give the folder that holds the \
                     page (the repository's www/), or leave --www out to serve the built-in copy.",
                    dir.display()
                ));
            }
        }
        match self.lab_ip {
            IpAddr::V4(ip) if ip.is_unspecified() => Ok(()),
            IpAddr::V4(ip) if ip.is_multicast() || ip.is_broadcast() => Err(format!(
                "--lab-ip {ip}: a lab server needs a unicast address. Use 127.0.0.1 (the \
                 default), an address of this machine, or 0.0.0.0 for all of them."
            )),
            IpAddr::V4(ip) if !crate::host::is_own(IpAddr::V4(ip), &self.host_addresses) => {
                Err(format!(
                    "--lab-ip {ip}: that is not an address of this machine, so every bind would \
                     fail. This machine has: {}.",
                    self.host_addresses
                        .iter()
                        .filter(|address| address.is_ipv4())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
            IpAddr::V4(_) => Ok(()),
            IpAddr::V6(ip) => Err(format!(
                "--lab-ip {ip}: labs use IPv4 (AF_INET) sockets; give an IPv4 address."
            )),
        }
    }

    /// Raises the soft limit on open files to the hard one, and lowers the
    /// number of labs if even that cannot hold every lab's sockets. Returns
    /// a warning to log when it had to.
    pub fn fit_open_files(&mut self) -> Option<String> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: the pointer refers to a live rlimit.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: the pointer refers to a live rlimit.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        // Each lab: its sockets, its WebSocket, and an fd for a sock_diag query.
        let per_lab = u64::from(self.sockets_per_lab) + 2;
        let fits = limit.rlim_cur.saturating_sub(BASE_FDS) / per_lab;
        if u64::from(self.labs_per_relay) <= fits {
            return None;
        }
        let was = self.labs_per_relay;
        self.labs_per_relay = fits.max(1) as u32;
        Some(format!(
            "the open-file limit is {} (ulimit -n), room for {} labs of {} sockets, not {was}: \
             running at most {} labs. Raise the limit (ulimit -n) to run more.",
            limit.rlim_cur, self.labs_per_relay, self.sockets_per_lab, self.labs_per_relay
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_port_ranges_are_unprivileged_and_roomy() {
        assert_eq!(parse_port_range("7001-7999"), Ok(7001..=7999));
        assert_eq!(parse_port_range("9001-9016"), Ok(9001..=9016));
        assert!(parse_port_range("80-120").is_err());
        assert!(parse_port_range("9001-9015").is_err());
        assert!(parse_port_range("9999-9001").is_err());
        assert!(parse_port_range("9001").is_err());
        assert!(parse_port_range("a-b").is_err());
    }

    #[test]
    fn flags_are_checked_against_this_host() {
        let ok = Config::default();
        assert!(ok.check().is_ok());
        for (lab_ip, says) in [
            ("224.0.0.1", "unicast"),
            ("192.0.2.99", "not an address of this machine"),
            ("::1", "IPv4"),
        ] {
            let config = Config {
                lab_ip: lab_ip.parse().expect("ip"),
                ..Config::default()
            };
            let error = config.check().expect_err(lab_ip);
            assert!(error.contains(says), "{error}");
        }
        let missing = Config {
            www_dir: Some(PathBuf::from("/nonexistent/www")),
            ..Config::default()
        };
        assert!(missing.check().expect_err("no www").contains("index.html"));
    }
}
