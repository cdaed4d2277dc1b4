//! The course's C programs in `examples/c`: they compile with
//! `cc -Wall -Wextra -Werror`, talk to each other over loopback, and make
//! the lesson's calls in the lesson's order, as `strace -f` (an independent
//! witness) sees them.

use socket_flow_tests::c_programs::{build_folder, compile, under_strace};

#[tokio::test]
async fn the_course_programs_compile_strictly_and_make_the_lessons_calls_in_order() {
    let out = build_folder("examples");
    let (server, client) = (compile("server", &out), compile("client", &out));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
        .to_string();

    let witnessed = under_strace(&server, &client, &port, &out).await;
    assert_eq!(witnessed.client_printed, "received: Hello, Client");
    assert_eq!(witnessed.server_printed, "received: Hello, Server");

    let names = |calls: &[(String, String)]| -> Vec<String> {
        calls
            .iter()
            .map(|(call, _)| call.clone())
            // The C library's own reads and closes at start (its shared
            // objects) come before socket(); the lesson starts there.
            .skip_while(|call| call != "socket")
            .filter(|call| call != "write")
            .collect()
    };
    let server_calls = witnessed.server;
    assert_eq!(
        names(&server_calls),
        [
            "socket", "bind", "listen", "accept", "read", "sendto", "close", "close"
        ],
        "{server_calls:?}"
    );
    let client_calls = witnessed.client;
    assert_eq!(
        names(&client_calls),
        ["socket", "connect", "sendto", "read", "close"],
        "{client_calls:?}"
    );
    // Each call succeeded with what the lesson expects: accept's new fd,
    // 13 bytes each way.
    let result = |calls: &[(String, String)], name: &str| {
        calls
            .iter()
            .skip_while(|(call, _)| call != "socket")
            .find(|(call, _)| call == name)
            .map(|(_, result)| result.clone())
            .unwrap_or_default()
    };
    assert_eq!(result(&server_calls, "read"), "13");
    assert_eq!(result(&server_calls, "sendto"), "13");
    assert_eq!(result(&client_calls, "connect"), "0");
    assert!(
        result(&server_calls, "accept")
            .parse::<i32>()
            .is_ok_and(|fd| fd > 2)
    );
    let _ = std::fs::remove_dir_all(&out);
}
