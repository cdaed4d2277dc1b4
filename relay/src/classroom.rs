//! Classroom mode (`relay --classroom`): the presenter's secret, the URLs
//! the teacher and the students open, and the students' one as a QR code,
//! for the terminal, as `/qr.svg`, and on the page the presenter projects
//! for the class to scan (`/join`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

/// What classroom mode tells the teacher at start.
#[derive(Clone, Debug)]
pub struct Classroom {
    /// 128 random bits, in hex: `?present=TOKEN` makes a browser the
    /// presenter of the shared lab.
    pub token: String,
    /// What students open: the page, following the shared lab.
    pub student_url: String,
    /// What the teacher opens on this machine.
    pub presenter_url: String,
    /// Whether students can reach the student URL at all (false when the
    /// relay listens on loopback, or this machine has no network address).
    pub reachable: bool,
}

impl Classroom {
    pub fn new(listen: SocketAddr, host_addresses: &[IpAddr]) -> Classroom {
        let port = listen.port();
        let student_ip = match listen.ip() {
            ip if ip.is_unspecified() => lan_address(host_addresses).map(IpAddr::V4),
            ip if ip.is_loopback() => None,
            ip => Some(ip),
        };
        let token = crate::engine::new_code();
        let shown_ip = student_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Classroom {
            student_url: format!("http://{}/?follow", SocketAddr::new(shown_ip, port)),
            presenter_url: format!("http://127.0.0.1:{port}/?present={token}"),
            token,
            reachable: student_ip.is_some(),
        }
    }

    /// The student URL as a QR code of Unicode half blocks, two modules to a
    /// character cell, light on dark as a terminal shows it.
    pub fn qr_text(&self) -> String {
        match QrCode::new(self.student_url.as_bytes()) {
            Ok(code) => code
                .render::<unicode::Dense1x2>()
                .dark_color(unicode::Dense1x2::Light)
                .light_color(unicode::Dense1x2::Dark)
                .build(),
            Err(error) => format!("(no QR code: {error})"),
        }
    }

    /// A page that fills the screen with the student URL and its QR code,
    /// for the teacher to project while the class joins.
    pub fn join_page(&self) -> Option<String> {
        let svg = self.qr_svg()?;
        // The URL is ours (an address and a port); nothing in it needs
        // escaping, but it is escaped all the same.
        let url = self
            .student_url
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        Some(format!(
            r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>socket-flow · 加入课堂 · Join the class</title>
<style>
body {{ margin: 0; min-height: 100vh; display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 2vh; background: #fff; color: #000; font-family: system-ui, sans-serif; }}
h1 {{ margin: 0; font-size: clamp(1.5rem, 4vw, 3rem); }}
svg {{ width: min(70vh, 80vw); height: auto; }}
p {{ margin: 0; font-size: clamp(1.5rem, 5vw, 4rem); font-weight: 700; word-break: break-all; text-align: center; }}
</style></head>
<body><h1>扫码跟随老师 · Scan to follow the teacher</h1>{svg}<p>{url}</p></body></html>
"#
        ))
    }

    /// The student URL as a QR code in SVG, for the page to show full screen.
    pub fn qr_svg(&self) -> Option<String> {
        let code = QrCode::new(self.student_url.as_bytes()).ok()?;
        Some(
            code.render::<svg::Color>()
                .min_dimensions(256, 256)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .build(),
        )
    }
}

/// The address students on the same network reach this machine at: its
/// first IPv4 address that is neither loopback nor link-local, private
/// ranges first.
pub fn lan_address(addresses: &[IpAddr]) -> Option<Ipv4Addr> {
    let usable = addresses.iter().filter_map(|ip| match ip {
        IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified() => {
            Some(*v4)
        }
        _ => None,
    });
    let all: Vec<Ipv4Addr> = usable.collect();
    all.iter()
        .find(|ip| ip.is_private())
        .or(all.first())
        .copied()
}

/// This machine's host name, which students' browsers may use too.
pub fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return None;
    }
    let end = buffer.iter().position(|&byte| byte == 0)?;
    let name = std::str::from_utf8(&buffer[..end])
        .ok()?
        .to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn students_get_the_private_address_and_the_teacher_loopback() {
        let addresses = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(169, 254, 1, 2)),
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 23)),
        ];
        let listen = SocketAddr::from(([0, 0, 0, 0], 7878));
        let classroom = Classroom::new(listen, &addresses);
        assert_eq!(classroom.student_url, "http://192.168.1.23:7878/?follow");
        assert!(classroom.reachable);
        assert_eq!(
            classroom.presenter_url,
            format!("http://127.0.0.1:7878/?present={}", classroom.token)
        );
        assert_eq!(classroom.token.len(), 32);
        assert!(classroom.qr_text().contains('▀') || classroom.qr_text().contains('▄'));
        assert!(classroom.qr_svg().is_some_and(|svg| svg.contains("<svg")));
        let page = classroom.join_page().expect("a page");
        assert!(page.contains("<svg") && page.contains("http://192.168.1.23:7878/?follow"));
    }

    #[test]
    fn a_loopback_relay_is_not_reachable_by_students() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 7878));
        let classroom = Classroom::new(listen, &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        assert!(!classroom.reachable);
        assert_eq!(classroom.student_url, "http://127.0.0.1:7878/?follow");
    }
}
