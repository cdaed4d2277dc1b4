//! The page's words for what happened underneath a call, in both languages.
//!
//! The relay names each case with a [`Note`] key and reports the kernel's
//! errno; this module is the one place that says, in Chinese and in
//! English, what that means and why. It also words the timeline's own
//! labels and the summaries shown after each error scenario.

use protocol::{AbandonReason, Call, Note, OpName, Phase};

use crate::i18n::Lang;
use crate::script::Scenario;

/// The explanation of a call: its note, then its errno, in `lang`.
pub fn explain(call: &Call, lang: Lang) -> Option<String> {
    let note = call.note.as_ref().map(|note| note_text(note, lang));
    let errno = match (call.phase, call.errno.as_deref(), call.op) {
        (Some(Phase::Failed), Some(errno), Some(op)) => errno_text(op, errno, lang),
        _ => None,
    };
    match (note, errno) {
        (Some(note), Some(errno)) => Some(format!("{note} {errno}")),
        (Some(text), None) => Some(text),
        (None, Some(text)) => Some(text.to_string()),
        (None, None) => None,
    }
}

/// What a note says.
pub fn note_text(note: &Note, lang: Lang) -> String {
    let text = match note {
        Note::NonBlockingSocket => lang.pick(
            "The relay asks for a non-blocking socket because it runs under tokio: a call that would block returns EAGAIN or EINPROGRESS at once, and the relay waits for readiness instead of sleeping in the kernel.",
            "中继基于 tokio，因此请求的是非阻塞套接字：会阻塞的调用立即返回 EAGAIN 或 EINPROGRESS，中继等待内核通知“就绪”后再调用，而不是让线程睡在内核里。",
        ),
        Note::PortsSkipped { ports } => {
            let list = ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return match lang {
                Lang::En => format!(
                    "Port {list} answered EADDRINUSE (something outside this lab holds it, or an old connection on it waits in TIME_WAIT), so the relay took the next free one."
                ),
                Lang::Zh => format!(
                    "端口 {list} 返回 EADDRINUSE（实验之外有程序占用它，或它上面的旧连接还在 TIME_WAIT），所以中继换用了下一个空闲端口。"
                ),
            };
        }
        Note::KernelPickedPort => lang.pick(
            "Port 0 asks the kernel to pick a free port; getsockname() shows which.",
            "端口 0 表示让内核挑选一个空闲端口；用 getsockname() 可以看到是哪个。",
        ),
        Note::BoundBeforeListen => lang.pick(
            "listen() on an unbound socket would let the kernel bind it to 0.0.0.0, every address of the machine. The relay bound it to the lab's address first, with this real bind().",
            "在未绑定的套接字上调用 listen()，内核会把它绑定到 0.0.0.0，也就是本机的所有地址。中继先用这次真实的 bind() 把它绑定到实验的地址。",
        ),
        Note::BoundBeforeConnect => lang.pick(
            "The socket was not bound, so before connect() the relay bound it to the lab's address (the kernel picks the port), with this real bind().",
            "这个套接字还没有绑定，所以在 connect() 之前，中继先用这次真实的 bind() 把它绑定到实验的地址（端口由内核挑选）。",
        ),
        Note::AcceptQueueLength { backlog } => {
            return match lang {
                Lang::En => format!(
                    "The backlog {backlog} is the length of the accept queue: connections whose handshake the kernel has finished and that wait for accept(). When it is full, new SYNs are dropped and the clients retry; they are not refused."
                ),
                Lang::Zh => format!(
                    "backlog {backlog} 是 accept 队列的长度：内核已完成握手、等待 accept() 取走的连接。队列满时新的 SYN 会被丢弃、客户端重试，而不是被拒绝。"
                ),
            };
        }
        Note::AcceptQueueEmpty => lang.pick(
            "The accept queue is empty, so the kernel answered EAGAIN. The relay waits for epoll to report the listening socket readable (a finished handshake in the queue), then calls accept4() again. A blocking program would sleep inside accept() here.",
            "accept 队列为空，内核返回 EAGAIN。中继等待 epoll 报告监听套接字可读（队列里有完成握手的连接），然后再次调用 accept4()。阻塞式程序此时会睡在 accept() 里。",
        ),
        Note::AcceptTookConnection => lang.pick(
            "accept() does not take part in the handshake: the kernel finished it already and queued the connection; accept() only takes it off the queue and returns it as a new fd.",
            "accept() 不参与握手：内核早已完成三次握手并把连接放入队列，accept() 只是把它取出，作为新的 fd 返回。",
        ),
        Note::HandshakeInProgress => lang.pick(
            "The kernel sent a SYN and answered EINPROGRESS: the handshake is under way. The relay waits for epoll to report the socket writable, then reads the outcome with getsockopt(SO_ERROR).",
            "内核发出了 SYN 并返回 EINPROGRESS：握手正在进行。中继等待 epoll 报告套接字可写，再用 getsockopt(SO_ERROR) 读取结果。",
        ),
        Note::HandshakeComplete => lang.pick(
            "The three-way handshake is complete: the socket is ESTABLISHED even if the server has not called accept() yet; the kernel queued the connection for it.",
            "三次握手已完成：即使服务端还没有调用 accept()，套接字也已经是 ESTABLISHED，连接在内核的队列里等待。",
        ),
        Note::SendBufferFull => lang.pick(
            "The socket's send buffer is full (the peer is not reading), so the kernel answered EAGAIN. The relay waits for epoll to report it writable, then sends again.",
            "发送缓冲区已满（对方没有读取），内核返回 EAGAIN。中继等待套接字可写后再发送。",
        ),
        Note::BytesQueued => lang.pick(
            "send() returns once the bytes are in the kernel's send buffer; the kernel puts them on the wire on its own schedule.",
            "send() 在数据进入内核的发送缓冲区后就返回；何时发到线路上由内核决定。",
        ),
        Note::NothingToRead => lang.pick(
            "No bytes have arrived, so the kernel answered EAGAIN. The relay waits for epoll to report the socket readable, then reads again.",
            "还没有数据到达，内核返回 EAGAIN。中继等待 epoll 报告套接字可读，然后再次读取。",
        ),
        Note::EndOfFile => lang.pick(
            "read() returned 0: end of file. The peer closed its side (its FIN arrived) and no bytes remain.",
            "read() 返回 0：文件结束。对方已关闭它的一端（FIN 已到达），且没有剩余数据。",
        ),
        Note::ReadNeedsConnection => lang.pick(
            "This socket is not connected. A listening socket only accepts: read from the fd that accept() returned.",
            "这个套接字没有连接。监听套接字只能 accept：应该从 accept() 返回的 fd 读取。",
        ),
        Note::AbortiveClose => lang.pick(
            "With l_linger = 0, close() discards unsent data and sends RST instead of FIN: an abortive close, and no TIME_WAIT.",
            "l_linger = 0 时，close() 丢弃未发送的数据，发送 RST 而不是 FIN：这是“中止式”关闭，没有 TIME_WAIT。",
        ),
        Note::FinWait2Timeout { seconds } => {
            return match lang {
                Lang::En => format!(
                    "Once this socket's fd is closed, the kernel keeps its FIN_WAIT2 for at most {seconds} s waiting for the peer's FIN, then drops the connection."
                ),
                Lang::Zh => format!(
                    "这个套接字的 fd 关闭后，内核最多保留它的 FIN_WAIT2 {seconds} 秒来等待对方的 FIN，然后丢弃这个连接。"
                ),
            };
        }
        Note::ReuseAddress => lang.pick(
            "SO_REUSEADDR lets bind() take a port whose old connections only wait in TIME_WAIT. On Linux both sides must have asked: the old connection keeps the option of the listener it came from, so servers set it before every bind. It does not let two servers listen on one port.",
            "SO_REUSEADDR 允许 bind() 使用一个只剩 TIME_WAIT 旧连接的端口。在 Linux 上双方都必须设置：旧连接沿用它所属监听套接字的选项，所以服务端应在每次 bind 之前设置。它并不允许两个服务端监听同一个端口。",
        ),
        Note::ThreadSleeps => lang.pick(
            "The program's thread sleeps in the kernel in this call: its socket blocks, and the kernel wakes the thread when the call can finish.",
            "程序的线程正睡在内核里的这个调用中：它的套接字是阻塞的，调用能完成时内核才唤醒线程。",
        ),
        Note::FdClosed => lang.pick(
            "The fd is gone. If the connection still needs to finish (FIN_WAIT, TIME_WAIT), the kernel does that on its own; the state events that follow show it.",
            "fd 已经关闭。如果连接还需要收尾（FIN_WAIT、TIME_WAIT），由内核自己完成；后面的状态事件会显示出来。",
        ),
        Note::WaitAbandoned { because } => match because {
            AbandonReason::SocketClosed => lang.pick(
                "The relay stopped waiting for this call because its socket was closed. No further system call was made for it.",
                "因为套接字被关闭，中继不再等待这个调用，也没有再为它发起系统调用。",
            ),
            AbandonReason::LabReset => lang.pick(
                "The relay stopped waiting for this call because the lab was reset. No further system call was made for it.",
                "因为实验被重置，中继不再等待这个调用，也没有再为它发起系统调用。",
            ),
        },
    };
    text.to_string()
}

/// The errnos a lab's calls can fail with, for the test that each has words.
pub const LAB_ERRNOS: [&str; 17] = [
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "EACCES",
    "EINVAL",
    "ECONNREFUSED",
    "ECONNRESET",
    "ECONNABORTED",
    "EPIPE",
    "ENOTCONN",
    "EISCONN",
    "EALREADY",
    "ETIMEDOUT",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "EMFILE",
    "ENFILE",
    "ENOBUFS",
];

/// What an errno means for the call that got it.
pub fn errno_text(op: OpName, errno: &str, lang: Lang) -> Option<&'static str> {
    Some(match (errno, op) {
        ("EADDRINUSE", OpName::Bind) => lang.pick(
            "Another socket already holds this address and port: a server that is still running, or an old connection on the port that waits in TIME_WAIT after its server closed first. A server that sets SO_REUSEADDR before every bind() can reuse a port that only TIME_WAIT holds.",
            "这个地址和端口已被其他套接字占用：可能是仍在运行的服务端，也可能是服务端先关闭后、端口上还在 TIME_WAIT 的旧连接。如果服务端每次 bind() 之前都设置 SO_REUSEADDR，就能复用只被 TIME_WAIT 占用的端口。",
        ),
        ("EADDRINUSE", _) => lang.pick(
            "The kernel found no free local port for this connection.",
            "内核没有为这个连接找到空闲的本地端口。",
        ),
        ("EADDRNOTAVAIL", _) => lang.pick(
            "The address is not one of this host's, so nothing can be bound to it or sent from it.",
            "这个地址不属于本机，所以不能绑定它，也不能从它发出数据。",
        ),
        ("EACCES", _) => lang.pick(
            "Permission denied: ports below 1024 need privilege.",
            "权限不足：1024 以下的端口需要特权。",
        ),
        ("EINVAL", OpName::Bind) => lang.pick(
            "This socket is already bound: bind() works once per socket.",
            "这个套接字已经绑定过了：每个套接字只能 bind() 一次。",
        ),
        ("EINVAL", OpName::Accept) => lang.pick(
            "The socket is not listening: accept() needs listen() first.",
            "套接字没有在监听：accept() 之前必须先 listen()。",
        ),
        ("EINVAL", _) => lang.pick(
            "The kernel found the arguments invalid for this socket in its current state.",
            "对处于当前状态的这个套接字，内核认为参数无效。",
        ),
        ("ECONNREFUSED", _) => lang.pick(
            "Nothing listens on that port: the kernel answered the SYN with RST, so connect() failed. Start the server's listen() before the client connects.",
            "对方端口没有在监听：内核用 RST 回应了 SYN，connect() 失败，errno 为 ECONNREFUSED。应先让服务端 listen()，客户端再 connect()。",
        ),
        ("ECONNRESET", _) => lang.pick(
            "The peer sent RST (it closed with SO_LINGER 0, or closed with unread data): the connection was reset and its data is lost.",
            "对方发来了 RST（它以 SO_LINGER 0 关闭，或关闭时还有未读数据）：连接被重置，数据丢失。",
        ),
        ("ECONNABORTED", _) => lang.pick(
            "The connection was aborted before accept() could take it off the queue.",
            "连接在 accept() 取走之前就被中止了。",
        ),
        ("EPIPE", _) => lang.pick(
            "This side can no longer send: the connection was reset or shut down for writing. (The relay sends with MSG_NOSIGNAL; a plain program would get SIGPIPE.)",
            "这一端已经不能再发送：连接被重置，或写方向已关闭。（中继用 MSG_NOSIGNAL 发送；普通程序会收到 SIGPIPE。）",
        ),
        ("ENOTCONN", _) => lang.pick(
            "The socket is not connected: a listening or fresh socket has no peer to read from or send to.",
            "套接字没有连接：监听套接字或新建的套接字没有可以读写的对端。",
        ),
        ("EISCONN", _) => lang.pick(
            "The socket is already connected: a TCP socket connects once.",
            "套接字已经连接：一个 TCP 套接字只能连接一次。",
        ),
        ("EALREADY", _) => lang.pick(
            "A connect() on this socket is already under way.",
            "这个套接字上的 connect() 已经在进行中。",
        ),
        ("ETIMEDOUT", _) => lang.pick(
            "The peer never answered: the kernel retransmitted until it gave up.",
            "对方一直没有回应：内核重传到放弃为止。",
        ),
        ("ENETUNREACH" | "EHOSTUNREACH", _) => lang.pick(
            "The kernel has no route to that address.",
            "内核没有通往那个地址的路由。",
        ),
        ("EMFILE" | "ENFILE", _) => lang.pick(
            "The process (or the whole system) has no free file descriptor left.",
            "进程（或整个系统）已经没有空闲的文件描述符了。",
        ),
        ("ENOBUFS", _) => lang.pick(
            "The kernel is out of buffer memory for sockets.",
            "内核用于套接字的缓冲内存不足。",
        ),
        _ => return None,
    })
}

/// The timeline's mark for a call that waits in the kernel.
pub fn waiting(lang: Lang) -> &'static str {
    lang.pick("(waiting)", "（等待中）")
}

/// The timeline's mark for a call the relay stopped waiting for.
pub fn cancelled(lang: Lang) -> &'static str {
    lang.pick("cancelled", "已取消")
}

/// Who made a segment go out, for its tooltip.
pub fn cause(id: Option<u64>, lang: Lang) -> String {
    match id {
        Some(id) => match lang {
            Lang::En => format!("caused by command {id}"),
            Lang::Zh => format!("由第 {id} 条命令引起"),
        },
        None => lang
            .pick("sent by the kernel on its own", "由内核自行发出")
            .to_string(),
    }
}

/// The divider a reset draws across the timeline.
pub fn reset_divider(closed: u32, lang: Lang) -> String {
    match lang {
        Lang::En => format!("reset: {closed} sockets closed; a new run starts below"),
        Lang::Zh => format!("重置：关闭了 {closed} 个套接字；下面开始新的一轮"),
    }
}

/// A hole in the wire view: segments the relay captured but let go of,
/// because it fell behind.
pub fn gap(segments: u64, lang: Lang) -> String {
    match lang {
        Lang::En => format!("{segments} segments not shown: the relay fell behind the wire here"),
        Lang::Zh => format!("有 {segments} 个报文段没有显示：中继在这里跟不上线路"),
    }
}

/// A traced program's end, as the timeline divides there.
pub fn exited(ending: &protocol::Exited, lang: Lang) -> String {
    let lane = &ending.lane;
    match (&ending.signal, lang) {
        (Some(signal), Lang::En) => format!("{lane} was killed by {signal}"),
        (Some(signal), Lang::Zh) => format!("{lane} 被 {signal} 终止"),
        (None, Lang::En) => format!("{lane} exited with status {}", ending.status.unwrap_or(0)),
        (None, Lang::Zh) => format!("{lane} 已退出，状态码 {}", ending.status.unwrap_or(0)),
    }
}

/// How many screens follow the lab.
pub fn viewers(count: u32, lang: Lang) -> String {
    match lang {
        Lang::En if count == 1 => "1 screen follows this lab".to_string(),
        Lang::En => format!("{count} screens follow this lab"),
        Lang::Zh => format!("{count} 个屏幕正在跟随这个实验"),
    }
}

/// What a follower is told as the lab's history starts.
pub fn history(resync: bool, let_go: u64, lang: Lang) -> String {
    let start = match (resync, lang) {
        (false, Lang::En) => "Following: the history so far, then live.",
        (true, Lang::En) => "This screen fell behind: redrawn from the history.",
        (false, Lang::Zh) => "正在跟随：先显示历史，然后实时显示。",
        (true, Lang::Zh) => "这个屏幕落后了：已根据历史重新绘制。",
    };
    match (let_go, lang) {
        (0, _) => start.to_string(),
        (events, Lang::En) => {
            format!("{start} The relay no longer keeps the first {events} events.")
        }
        (events, Lang::Zh) => format!("{start}中继已不再保留最早的 {events} 个事件。"),
    }
}

/// A row of a socket from before the last reset.
/// What the diagram's note says when the timeline or the event log let
/// their oldest entries go, so that nothing disappears without a word.
pub fn let_go(rows: usize, events: usize, lang: Lang) -> Option<String> {
    match (rows, events, lang) {
        (0, 0, _) => None,
        (rows, 0, Lang::En) => Some(format!(
            "The {rows} oldest rows are no longer drawn; the event log still has their events."
        )),
        (rows, 0, Lang::Zh) => Some(format!(
            "最早的 {rows} 行已不再绘制；事件日志里仍有这些事件。"
        )),
        (rows, events, Lang::En) => Some(format!(
            "The {rows} oldest rows are no longer drawn, and the event log let its {events} oldest events go."
        )),
        (rows, events, Lang::Zh) => Some(format!(
            "最早的 {rows} 行已不再绘制，事件日志也已丢弃最早的 {events} 个事件。"
        )),
    }
}

/// What the live region says when it let announcements go unread.
pub fn unannounced(count: usize, lang: Lang) -> String {
    match lang {
        Lang::En => {
            format!("{count} earlier events were not read out; the event log has them all.")
        }
        Lang::Zh => format!("有 {count} 个较早的事件没有朗读；事件日志里有全部事件。"),
    }
}

pub fn before_reset(lang: Lang) -> &'static str {
    lang.pick("(from before the reset)", "（重置之前的套接字）")
}

/// What an error scenario showed, and why: a title and a sentence.
pub fn scenario_summary(scenario: Scenario, lang: Lang) -> Option<(&'static str, &'static str)> {
    Some(match scenario {
        Scenario::Lesson => return None,
        Scenario::ConnectBeforeListen => (
            lang.pick("connect() failed: ECONNREFUSED", "connect() 失败：ECONNREFUSED"),
            lang.pick(
                "The server was bound but not listening, so its kernel answered the client's SYN with RST. Only listen() makes a port accept handshakes.",
                "服务端已经 bind 但还没有 listen，所以它的内核用 RST 回应了客户端的 SYN。只有 listen() 之后，端口才接受握手。",
            ),
        ),
        Scenario::BindInUse => (
            lang.pick("bind() failed: EADDRINUSE", "bind() 失败：EADDRINUSE"),
            lang.pick(
                "The server closed its connection first, so that connection waits in TIME_WAIT on the server's port. The restarted server's bind() to the same port is refused until TIME_WAIT ends (60 s on Linux).",
                "服务端先关闭了连接，所以这个连接在服务端的端口上处于 TIME_WAIT。重启的服务端 bind() 同一个端口会被拒绝，直到 TIME_WAIT 结束（Linux 上是 60 秒）。",
            ),
        ),
        Scenario::BindReuseAddr => (
            lang.pick("bind() succeeded with SO_REUSEADDR", "设置 SO_REUSEADDR 后 bind() 成功"),
            lang.pick(
                "The old connection still waits in TIME_WAIT on the port. Both servers set SO_REUSEADDR before bind() (Linux requires it of the old one too: its TIME_WAIT keeps the option), so the new server may take a port that only TIME_WAIT holds.",
                "旧连接仍在这个端口上处于 TIME_WAIT。两次启动的服务端都在 bind() 之前设置了 SO_REUSEADDR（Linux 要求旧的那个也设置：它的 TIME_WAIT 沿用这个选项），所以新服务端可以使用只被 TIME_WAIT 占用的端口。",
            ),
        ),
        Scenario::ReadAfterPeerClosed => (
            lang.pick("read() returned 0", "read() 返回 0"),
            lang.pick(
                "The client closed, its FIN arrived, and the server's read() returned 0: end of file, not an error.",
                "客户端关闭了，它的 FIN 已到达，服务端的 read() 返回 0：这是文件结束，不是错误。",
            ),
        ),
        Scenario::LingerZero => (
            lang.pick("RST, then ECONNRESET", "RST，然后 ECONNRESET"),
            lang.pick(
                "With SO_LINGER 0 the server's close() sent RST instead of FIN. The client's connection is gone at once, without TIME_WAIT, and its read() fails with ECONNRESET.",
                "设置 SO_LINGER 0 后，服务端的 close() 发送 RST 而不是 FIN。客户端的连接立刻消失，没有 TIME_WAIT，它的 read() 失败，errno 为 ECONNRESET。",
            ),
        ),
        Scenario::NeverClose => (
            lang.pick("CLOSE_WAIT stays; FIN_WAIT2 expires", "CLOSE_WAIT 一直存在；FIN_WAIT2 会超时"),
            lang.pick(
                "The client closed; the server never does. The server's side stays in CLOSE_WAIT for as long as its fd is open. The client's orphaned FIN_WAIT2 lasts only TCP_LINGER2 seconds, then the kernel drops it.",
                "客户端关闭了，服务端一直不关闭。只要服务端的 fd 还开着，它这一端就一直处于 CLOSE_WAIT。客户端被“遗弃”的 FIN_WAIT2 只持续 TCP_LINGER2 秒，然后被内核丢弃。",
            ),
        ),
        Scenario::ReadListening => (
            lang.pick("read() failed: ENOTCONN", "read() 失败：ENOTCONN"),
            lang.pick(
                "The course material reads from the listening socket. A listening socket has no peer; read from the fd that accept() returned.",
                "原文在监听套接字上 read。监听套接字没有对端；应该从 accept() 返回的 fd 读取。",
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_a_lab_can_get_has_words_in_both_languages() {
        for errno in LAB_ERRNOS {
            for op in [OpName::Bind, OpName::Connect, OpName::Read, OpName::Send] {
                let en = errno_text(op, errno, Lang::En).unwrap_or_default();
                let zh = errno_text(op, errno, Lang::Zh).unwrap_or_default();
                assert!(!en.is_empty() && !zh.is_empty(), "{errno} {op:?}");
                assert_ne!(en, zh, "{errno} is translated");
            }
        }
    }

    #[test]
    fn every_note_has_words_in_both_languages() {
        let notes = [
            Note::NonBlockingSocket,
            Note::PortsSkipped { ports: vec![7001] },
            Note::KernelPickedPort,
            Note::BoundBeforeListen,
            Note::BoundBeforeConnect,
            Note::AcceptQueueLength { backlog: 5 },
            Note::AcceptQueueEmpty,
            Note::AcceptTookConnection,
            Note::HandshakeInProgress,
            Note::HandshakeComplete,
            Note::SendBufferFull,
            Note::BytesQueued,
            Note::NothingToRead,
            Note::EndOfFile,
            Note::ReadNeedsConnection,
            Note::AbortiveClose,
            Note::FinWait2Timeout { seconds: 5 },
            Note::ReuseAddress,
            Note::FdClosed,
            Note::ThreadSleeps,
            Note::WaitAbandoned {
                because: AbandonReason::SocketClosed,
            },
            Note::WaitAbandoned {
                because: AbandonReason::LabReset,
            },
        ];
        for note in notes {
            let (en, zh) = (note_text(&note, Lang::En), note_text(&note, Lang::Zh));
            assert!(!en.is_empty() && !zh.is_empty() && en != zh, "{note:?}");
        }
    }

    #[test]
    fn every_error_scenario_has_a_summary_in_both_languages() {
        for scenario in Scenario::MENU {
            let en = scenario_summary(scenario, Lang::En).expect("a summary");
            let zh = scenario_summary(scenario, Lang::Zh).expect("a summary");
            assert_ne!(en, zh);
        }
    }

    #[test]
    fn a_failed_call_is_explained_by_its_note_and_its_errno() {
        let call = Call {
            op: Some(OpName::Connect),
            phase: Some(Phase::Failed),
            errno: Some("ECONNREFUSED".into()),
            ..Call::default()
        };
        let text = explain(&call, Lang::Zh).expect("explained");
        assert!(text.contains("RST"), "{text}");
        let text = explain(&call, Lang::En).expect("explained");
        assert!(text.contains("Nothing listens"), "{text}");
    }
}
