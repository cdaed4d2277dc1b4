//! The relay's settings: where it listens, what a browser may ask for, and the limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

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
    /// How many lab ports one lab may hold at once.
    pub ports_per_lab: u32,
    pub labs_per_relay: u32,
    pub send_bytes: u32,
    pub read_bytes: u32,
    /// The largest command frame accepted; larger ones get `error` `limit`.
    pub frame_bytes: u32,
    /// Capture the labs' segments when the relay may (root or CAP_NET_RAW).
    pub capture: bool,
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
            ports_per_lab: 8,
            labs_per_relay: 64,
            send_bytes: 16 * 1024,
            read_bytes: 64 * 1024,
            frame_bytes: 64 * 1024,
            capture: true,
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
