//! What the live region says: each call, state change and segment in words,
//! in the UI language, as a screen reader should hear it rather than as C.

use protocol::{Call, OpName, Phase, Segment, TcpState};

use crate::i18n::Lang;

/// "Server: accept returned a new connection, fd 17."
pub fn call(who: &str, call: &Call, lang: Lang) -> String {
    let op = call.op.map_or("call", OpName::as_str);
    let ret = call.ret.unwrap_or(0);
    let errno = call.errno.as_deref().unwrap_or("EAGAIN");
    let what = match (call.phase.unwrap_or(Phase::Done), call.op) {
        (Phase::Blocked, _) => lang
            .pick(
                "waits; the kernel answered {e} for now",
                "在等待；内核暂时返回 {e}",
            )
            .replace("{e}", errno),
        (Phase::Failed, _) => {
            let failed = lang.pick("failed with", "失败，");
            format!(
                "{failed} {errno} ({})",
                call.message.as_deref().unwrap_or("")
            )
        }
        (Phase::Cancelled, _) => lang
            .pick("was abandoned while it waited", "在等待中被放弃")
            .to_string(),
        (Phase::Done, Some(OpName::Socket)) => {
            format!(
                "{} {ret}",
                lang.pick("returned a new socket, fd", "返回一个新套接字，fd")
            )
        }
        (Phase::Done, Some(OpName::Accept)) => format!(
            "{} {}",
            lang.pick("returned a new connection, fd", "返回一个新连接，fd"),
            call.new_fd.map_or(ret, i64::from)
        ),
        (Phase::Done, Some(OpName::Read)) if ret == 0 => lang
            .pick(
                "returned 0: the peer closed its side",
                "返回 0：对方关闭了它那一端",
            )
            .to_string(),
        (Phase::Done, Some(OpName::Read)) => format!(
            "{} {ret} {}{}",
            lang.pick("returned", "返回"),
            lang.pick("bytes", "字节"),
            quoted(call.data.as_deref(), lang)
        ),
        (Phase::Done, _) => format!("{} {ret}", lang.pick("returned", "返回")),
    };
    match lang {
        Lang::En => format!("{who}: {op} {what}."),
        Lang::Zh => format!("{who}：{op} {what}。"),
    }
}

fn quoted(data: Option<&str>, lang: Lang) -> String {
    match (data, lang) {
        (Some(text), Lang::En) if !text.is_empty() => format!(": \"{text}\""),
        (Some(text), Lang::Zh) if !text.is_empty() => format!("：“{text}”"),
        _ => String::new(),
    }
}

/// "Client 1: fd 16 is now ESTABLISHED."
pub fn state(who: &str, fd: Option<i32>, tcp: TcpState, lang: Lang) -> String {
    let socket = match (fd, lang) {
        (Some(fd), _) => format!("fd {fd}"),
        (None, Lang::En) => "a closed socket".to_string(),
        (None, Lang::Zh) => "已关闭的套接字".to_string(),
    };
    match lang {
        Lang::En => format!("{who}: {socket} is now {}.", tcp.name()),
        Lang::Zh => format!("{who}：{socket} 现在是 {}。", tcp.name()),
    }
}

/// "A SYN segment went from Client 1 to the Server."
pub fn segment(from: &str, to: &str, segment: &Segment, lang: Lang) -> String {
    let flags = segment.flags.join("+");
    let length = match (segment.len, lang) {
        (0, _) => String::new(),
        (len, Lang::En) => format!(", carrying {len} bytes"),
        (len, Lang::Zh) => format!("，携带 {len} 字节"),
    };
    match lang {
        Lang::En => format!("A {flags} segment went from {from} to {to}{length}."),
        Lang::Zh => format!("一个 {flags} 报文段从{from}发往{to}{length}。"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_said_in_words_not_in_c() {
        let call = Call {
            op: Some(OpName::Accept),
            phase: Some(Phase::Done),
            ret: Some(17),
            new_fd: Some(17),
            c: "accept4(16, …) = 17".into(),
            ..Call::default()
        };
        assert_eq!(
            super::call("Server", &call, Lang::En),
            "Server: accept returned a new connection, fd 17."
        );
        assert_eq!(
            super::call("服务端", &call, Lang::Zh),
            "服务端：accept 返回一个新连接，fd 17。"
        );
        assert!(!super::call("Server", &call, Lang::En).contains("accept4("));
    }
}
