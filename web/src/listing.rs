//! The corrected C listing of each side, the same flow in Rust (std::net),
//! and the course material's mistakes that the page teaches instead of
//! repeating. Each line names the step it belongs to, so the page can
//! highlight the line of the call just made.

use crate::i18n::Lang;
use crate::model::{Side, Step};
use crate::script::Scenario;

/// One line of a listing.
pub struct Line {
    pub step: Option<Step>,
    /// The code; empty for a comment-only line.
    pub code: &'static str,
    /// A comment in English and in Chinese.
    pub comment: Option<(&'static str, &'static str)>,
    /// The variable whose real value is shown inline, such as `sockfd`.
    pub value: Option<&'static str>,
    /// Other calls this line makes, for listings where one line does the
    /// work of several C calls (Rust's TcpListener::bind).
    pub also: &'static [&'static str],
}

impl Line {
    pub fn comment(&self, lang: Lang) -> Option<&'static str> {
        self.comment.map(|(en, zh)| lang.pick(en, zh))
    }
}

const fn code(step: Step, code: &'static str, value: Option<&'static str>) -> Line {
    Line {
        step: Some(step),
        code,
        comment: None,
        value,
        also: &[],
    }
}

/// A line that makes several of the C calls at once.
const fn combined(
    step: Step,
    code: &'static str,
    value: &'static str,
    also: &'static [&'static str],
) -> Line {
    Line {
        step: Some(step),
        code,
        comment: None,
        value: Some(value),
        also,
    }
}

const fn note(step: Step, en: &'static str, zh: &'static str) -> Line {
    Line {
        step: Some(step),
        code: "",
        comment: Some((en, zh)),
        value: None,
        also: &[],
    }
}

const fn plain(step: Step, text: &'static str) -> Line {
    code(step, text, None)
}

const SERVER_C: &[Line] = &[
    note(
        Step::Socket,
        "1. Create the socket: returns a NEW fd (>= 0), -1 on error",
        "1. 创建套接字：成功返回新的 fd（>= 0），失败返回 -1",
    ),
    code(
        Step::Socket,
        "int sockfd = socket(AF_INET, SOCK_STREAM, 0);",
        Some("sockfd"),
    ),
    plain(
        Step::Socket,
        "if (sockfd < 0) { perror(\"socket\"); exit(1); }",
    ),
    note(
        Step::Address,
        "2. Configure the server address",
        "2. 配置服务器地址",
    ),
    plain(Step::Address, "struct sockaddr_in serv_addr;"),
    plain(Step::Address, "memset(&serv_addr, 0, sizeof(serv_addr));"),
    plain(Step::Address, "serv_addr.sin_family = AF_INET;"),
    plain(Step::Address, "serv_addr.sin_port = htons(PORT);"),
    plain(
        Step::Address,
        "serv_addr.sin_addr.s_addr = inet_addr(\"127.0.0.1\");",
    ),
    note(
        Step::Bind,
        "3. Bind the socket: 0 on success",
        "3. 绑定套接字：成功返回 0",
    ),
    code(
        Step::Bind,
        "if (bind(sockfd, (struct sockaddr *)&serv_addr, sizeof(serv_addr)) < 0) {",
        Some("bind"),
    ),
    plain(Step::Bind, "    perror(\"bind\"); exit(1);"),
    plain(Step::Bind, "}"),
    note(
        Step::Listen,
        "4. Listen: 5 is the accept queue's length, not a device limit",
        "4. 启动监听：5 是“已完成握手、等待 accept 的队列”长度，不是设备上限",
    ),
    code(
        Step::Listen,
        "if (listen(sockfd, 5) < 0) { perror(\"listen\"); exit(1); }",
        Some("listen"),
    ),
    note(
        Step::Accept,
        "5. Accept: takes a finished connection off the queue as a NEW fd",
        "5. 接受设备：从队列取出已建立的连接，返回新的 fd",
    ),
    plain(Step::Accept, "struct sockaddr_in client_addr;"),
    plain(Step::Accept, "socklen_t addr_len = sizeof(client_addr);"),
    code(
        Step::Accept,
        "int new_socket = accept(sockfd, (struct sockaddr *)&client_addr, &addr_len);",
        Some("new_socket"),
    ),
    plain(
        Step::Accept,
        "if (new_socket < 0) { perror(\"accept\"); exit(1); }",
    ),
    note(
        Step::Read,
        "6. Receive: read from new_socket, not from the listening sockfd",
        "6. 接收数据：从 new_socket 读取，而不是监听用的 sockfd",
    ),
    plain(Step::Read, "char buffer[1024] = {0};"),
    code(
        Step::Read,
        "ssize_t valread = read(new_socket, buffer, sizeof(buffer));",
        Some("valread"),
    ),
    note(
        Step::Send,
        "7. Send, on the connection too",
        "7. 发送数据：同样使用 new_socket",
    ),
    plain(Step::Send, "const char *message = \"Hello, Client\";"),
    code(
        Step::Send,
        "send(new_socket, message, strlen(message), 0);",
        Some("send"),
    ),
    note(
        Step::Close,
        "8. Close both fds: the connection and the listening socket",
        "8. 关闭设备：连接和监听套接字都要关闭",
    ),
    code(Step::Close, "close(new_socket);", Some("close")),
    code(Step::Close, "close(sockfd);", Some("close_listener")),
];

const CLIENT_C: &[Line] = &[
    note(
        Step::Socket,
        "1. Create the socket: returns a NEW fd (>= 0), -1 on error",
        "1. 创建套接字：成功返回新的 fd（>= 0），失败返回 -1",
    ),
    code(
        Step::Socket,
        "int sockfd = socket(AF_INET, SOCK_STREAM, 0);",
        Some("sockfd"),
    ),
    plain(
        Step::Socket,
        "if (sockfd < 0) { perror(\"socket\"); exit(1); }",
    ),
    note(
        Step::Address,
        "2. Configure the server's address",
        "2. 配置服务器地址",
    ),
    plain(Step::Address, "struct sockaddr_in serv_addr;"),
    plain(Step::Address, "memset(&serv_addr, 0, sizeof(serv_addr));"),
    plain(Step::Address, "serv_addr.sin_family = AF_INET;"),
    plain(Step::Address, "serv_addr.sin_port = htons(PORT);"),
    plain(
        Step::Address,
        "serv_addr.sin_addr.s_addr = inet_addr(\"127.0.0.1\");",
    ),
    note(
        Step::Connect,
        "3. Connect: the kernel does the three-way handshake; 0 on success",
        "3. 连接：内核完成三次握手，成功返回 0",
    ),
    code(
        Step::Connect,
        "if (connect(sockfd, (struct sockaddr *)&serv_addr, sizeof(serv_addr)) < 0) {",
        Some("connect"),
    ),
    plain(Step::Connect, "    perror(\"connect\"); exit(1);"),
    plain(Step::Connect, "}"),
    note(
        Step::Read,
        "4. Receive: 0 means the server closed its side",
        "4. 接收数据：返回 0 表示对方已关闭",
    ),
    plain(Step::Read, "char buffer[1024] = {0};"),
    code(
        Step::Read,
        "ssize_t valread = read(sockfd, buffer, sizeof(buffer));",
        Some("valread"),
    ),
    note(Step::Send, "5. Send", "5. 发送数据"),
    plain(Step::Send, "const char *message = \"Hello, Server\";"),
    code(
        Step::Send,
        "send(sockfd, message, strlen(message), 0);",
        Some("send"),
    ),
    note(Step::Close, "6. Close", "6. 关闭设备"),
    code(Step::Close, "close(sockfd);", Some("close")),
];

const SERVER_RUST: &[Line] = &[
    note(
        Step::Socket,
        "socket(), bind() and listen() in one call (backlog 128)",
        "一次调用完成 socket()、bind() 和 listen()（backlog 为 128）",
    ),
    combined(
        Step::Socket,
        "let listener = TcpListener::bind(\"127.0.0.1:PORT\")?;",
        "sockfd",
        &["bind", "listen"],
    ),
    note(
        Step::Accept,
        "accept(): a new TcpStream for the connection",
        "accept()：为连接返回新的 TcpStream",
    ),
    code(
        Step::Accept,
        "let (mut stream, client_addr) = listener.accept()?;",
        Some("new_socket"),
    ),
    note(Step::Read, "read() from the connection", "从连接读取"),
    plain(Step::Read, "let mut buffer = [0u8; 1024];"),
    code(
        Step::Read,
        "let valread = stream.read(&mut buffer)?;",
        Some("valread"),
    ),
    note(Step::Send, "send()", "发送"),
    code(
        Step::Send,
        "stream.write_all(b\"Hello, Client\")?;",
        Some("send"),
    ),
    note(
        Step::Close,
        "close(): dropping closes the fd",
        "close()：离开作用域即关闭 fd",
    ),
    code(Step::Close, "drop(stream);", Some("close")),
    code(Step::Close, "drop(listener);", Some("close_listener")),
];

const CLIENT_RUST: &[Line] = &[
    note(
        Step::Connect,
        "socket() and connect() in one call",
        "一次调用完成 socket() 和 connect()",
    ),
    combined(
        Step::Connect,
        "let mut stream = TcpStream::connect(\"127.0.0.1:PORT\")?;",
        "connect",
        &["sockfd"],
    ),
    note(Step::Read, "read()", "读取"),
    plain(Step::Read, "let mut buffer = [0u8; 1024];"),
    code(
        Step::Read,
        "let valread = stream.read(&mut buffer)?;",
        Some("valread"),
    ),
    note(Step::Send, "send()", "发送"),
    code(
        Step::Send,
        "stream.write_all(b\"Hello, Server\")?;",
        Some("send"),
    ),
    note(
        Step::Close,
        "close(): dropping closes the fd",
        "close()：离开作用域即关闭 fd",
    ),
    code(Step::Close, "drop(stream);", Some("close")),
];

pub fn c_listing(side: Side) -> &'static [Line] {
    match side {
        Side::Server => SERVER_C,
        Side::Client => CLIENT_C,
    }
}

pub fn rust_listing(side: Side) -> &'static [Line] {
    match side {
        Side::Server => SERVER_RUST,
        Side::Client => CLIENT_RUST,
    }
}

/// A mistake of the course material, and the scenario that shows the truth.
pub struct Mistake {
    pub en: &'static str,
    pub zh: &'static str,
    pub scenario: Option<Scenario>,
}

pub const MISTAKES: &[Mistake] = &[
    Mistake {
        en: "The material says socket() and accept() \"return 0 on success\". They return a new fd (watch the number each card shows); only -1 means failure.",
        zh: "原文说 socket() 和 accept()“成功返回 0”。实际上它们返回新的 fd（看每张卡片上显示的数字），只有 -1 表示失败。",
        scenario: None,
    },
    Mistake {
        en: "Its words mislead: \"connect the client\" (连接客户端) is the client connecting to the server; \"accept the device\" (接受设备) takes one finished connection off the queue and returns a new fd; \"close the device\" (关闭设备) closes one fd, not the connection's other end, and not the accepted connections.",
        zh: "原文的用词容易误导：“连接客户端”其实是客户端去连接服务端；“接受设备”是从队列中取出一个已完成握手的连接、返回新的 fd；“关闭设备”只关闭一个 fd，既不关闭对方，也不关闭已接受的连接。",
        scenario: None,
    },
    Mistake {
        en: "The server reads from and sends to the listening sockfd. A listening socket has no peer: read() fails with ENOTCONN. Use new_socket.",
        zh: "原文的服务端在监听套接字 sockfd 上 read/send。监听套接字没有对端：read() 会失败，errno 为 ENOTCONN。应使用 new_socket。",
        scenario: Some(Scenario::ReadListening),
    },
    Mistake {
        en: "It closes only the listening socket. The accepted connection stays open: the client waits in FIN_WAIT2 and the server's side in CLOSE_WAIT.",
        zh: "原文只关闭了监听套接字。已接受的连接仍然打开：客户端停在 FIN_WAIT2，服务端停在 CLOSE_WAIT。",
        scenario: Some(Scenario::NeverClose),
    },
    Mistake {
        en: "It calls listen's 5 \"the maximum number of devices\". It is the length of the accept queue: when it is full, new handshakes are dropped and the clients retry; they are not refused.",
        zh: "原文把 listen 的 5 说成“同时监听设备最大数”。它其实是 accept 队列的长度：队列满时新的握手被丢弃、客户端重试，而不是被拒绝。",
        scenario: None,
    },
    Mistake {
        en: "Two lines do not compile: the bind() line misses its closing ), and the client's connect() line misses its ; (and listen(sockfd, 5);. has a stray dot).",
        zh: "有两行无法编译：bind() 那一行缺少右括号 )，客户端 connect() 那一行缺少分号 ;（listen(sockfd, 5);. 还多了一个点）。",
        scenario: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_call_step_has_a_line() {
        for side in [Side::Server, Side::Client] {
            for step in side.steps() {
                assert!(
                    c_listing(side)
                        .iter()
                        .any(|line| line.step == Some(*step) && !line.code.is_empty()),
                    "{side:?} {step:?}"
                );
            }
        }
    }

    #[test]
    fn the_corrected_listing_reads_the_connection() {
        let read = SERVER_C
            .iter()
            .find(|line| line.value == Some("valread"))
            .expect("a read line");
        assert!(read.code.contains("read(new_socket"));
        assert!(SERVER_C.iter().any(|line| line.code == "close(sockfd);"));
        assert!(
            SERVER_C
                .iter()
                .any(|line| line.code == "close(new_socket);")
        );
    }
}
