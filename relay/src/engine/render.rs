//! Writes each call the way C would, with its real arguments and result:
//! `bind(5, {AF_INET, 127.0.0.1:7001}, 16) = 0`.

use std::io;
use std::net::SocketAddr;

use super::sys::{errno_name, strerror};

/// `sizeof(struct sockaddr_in)`, the address length every IPv4 call passes.
pub const SOCKADDR_IN_LEN: usize = 16;

/// Longest payload shown inside a C string literal before it is cut with `...`.
const PREVIEW_BYTES: usize = 40;

pub fn sockaddr(addr: &SocketAddr) -> String {
    format!("{{AF_INET, {addr}}}")
}

/// A call that takes an address, as bind and connect do:
/// `connect(5, {AF_INET, 127.0.0.1:7001}, 16) = 0`.
pub fn with_sockaddr(name: &str, fd: i32, addr: &SocketAddr, result: &io::Result<i64>) -> String {
    format!(
        "{name}({fd}, {}, {SOCKADDR_IN_LEN}){}",
        sockaddr(addr),
        self::result(result)
    )
}

/// ` = 0`, or ` = -1 ECONNREFUSED (Connection refused)`.
pub fn result(result: &io::Result<i64>) -> String {
    match result {
        Ok(value) => format!(" = {value}"),
        Err(error) => {
            let errno = error.raw_os_error().unwrap_or(0);
            format!(" = -1 {} ({})", errno_name(errno), strerror(errno))
        }
    }
}

/// The bytes as a C string literal, cut after a preview's worth.
pub fn c_string(bytes: &[u8]) -> String {
    let mut text = String::from("\"");
    for &byte in bytes.iter().take(PREVIEW_BYTES) {
        match byte {
            b'"' => text.push_str("\\\""),
            b'\\' => text.push_str("\\\\"),
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            0x20..=0x7e => text.push(byte as char),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    text.push('"');
    if bytes.len() > PREVIEW_BYTES {
        text.push_str("...");
    }
    text
}

/// Bytes as the protocol carries them: text when UTF-8, hex otherwise.
pub fn payload(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (None, Some(hex(bytes))),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_rendering() {
        let addr: SocketAddr = "127.0.0.1:7001".parse().expect("addr");
        assert_eq!(
            format!(
                "bind(5, {}, {SOCKADDR_IN_LEN}){}",
                sockaddr(&addr),
                result(&Ok(0))
            ),
            "bind(5, {AF_INET, 127.0.0.1:7001}, 16) = 0"
        );
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(
            result(&Err(refused)),
            " = -1 ECONNREFUSED (Connection refused)"
        );
        assert_eq!(c_string(b"hi\n\x00"), "\"hi\\n\\x00\"");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(parse_hex("00ff 10"), Some(vec![0, 255, 16]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(hex(&[0, 255]), "00ff");
    }
}
