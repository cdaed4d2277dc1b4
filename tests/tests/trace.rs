//! `relay trace`: the course's C programs run under trace into one lab, a
//! follower reads it, and strace (an independent witness) runs the same
//! programs: the same calls in the same order, with the same results.

use std::path::Path;

use protocol::{Call, EventBody, Note, Phase};
use socket_flow_tests::c_programs::{
    Tracing, build_folder, compile, compile_source, free_lab_port, relay_trace, under_strace,
};
use socket_flow_tests::follower::Follower;
use socket_flow_tests::relay_process::{RelayProcess, relay_binary};

/// What strace saw each program call, from its first socket() on, without
/// its writes to stdout; sendto with no address is what send() calls.
async fn witness(
    server: &Path,
    client: &Path,
    port: &str,
    out: &Path,
) -> [Vec<(String, String)>; 2] {
    let witnessed = under_strace(server, client, port, out).await;
    [witnessed.server, witnessed.client].map(|calls| {
        calls
            .into_iter()
            .skip_while(|(call, _)| call != "socket")
            .filter(|(call, _)| call != "write")
            .map(|(call, result)| match call.as_str() {
                "sendto" => ("send".to_string(), result),
                _ => (call, result),
            })
            .collect()
    })
}

/// A traced call's name, as its C text starts, and its result.
fn name_and_result(call: &Call) -> (String, String) {
    let name = call.c.split('(').next().unwrap_or_default().to_string();
    (name, call.ret.unwrap_or_default().to_string())
}

#[tokio::test]
async fn traced_programs_make_the_calls_strace_sees_and_accept_really_sleeps() {
    let out = build_folder("trace");
    let (server, client) = (compile("server", &out), compile("client", &out));
    let lab_port = free_lab_port().to_string();
    // Another port for the witness: its connection's TIME_WAIT would keep
    // the traced server from binding the same one.
    let witness_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let [server_witness, client_witness] = witness(&server, &client, &witness_port, &out).await;

    let relay = RelayProcess::start(&[]).await;
    let mut serving = Tracing::open(relay.port(), &server, &[&lab_port]).await;
    let code = serving.code.clone();
    let mut follower = Follower::connect(&relay.ws_url(), &code).await;

    // Nothing has connected yet: the server's accept() sleeps in the kernel.
    let sleeping = loop {
        if let EventBody::Call(call) = follower.next().await.body {
            if call.phase == Some(Phase::Blocked) {
                break call;
            }
        }
    };
    assert!(sleeping.c.starts_with("accept(3"), "{}", sleeping.c);
    assert_eq!(sleeping.note, Some(Note::ThreadSleeps));
    assert!(
        sleeping
            .lane
            .as_deref()
            .is_some_and(|lane| lane.starts_with("server["))
    );

    let answered = relay_trace(relay.port(), Some(&code), &client, &[&lab_port])
        .output()
        .await
        .expect("the client runs under trace");
    assert!(answered.status.success(), "{answered:?}");
    assert!(String::from_utf8_lossy(&answered.stdout).contains("received: Hello, Client"));

    // Both programs end; the lab says so, with their status.
    let exited = follower.exits(2).await;
    assert!(
        exited.iter().all(|ending| ending.status == Some(0)),
        "{exited:?}"
    );

    let calls = |lane: &str| -> Vec<(String, String)> {
        follower
            .events
            .iter()
            .filter_map(|event| match &event.body {
                EventBody::Call(call)
                    if call.phase != Some(Phase::Blocked)
                        && call
                            .lane
                            .as_deref()
                            .is_some_and(|name| name.starts_with(lane)) =>
                {
                    Some(name_and_result(call))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        calls("server["),
        server_witness,
        "the server's calls, as strace saw them"
    );
    assert_eq!(
        calls("client["),
        client_witness,
        "the client's calls, as strace saw them"
    );

    // The accept that slept returned once the client connected: after the
    // client's connect, by seq, and more than the sleep threshold later.
    let seq_of = |wanted: &dyn Fn(&Call) -> bool| {
        follower
            .events
            .iter()
            .find(|event| matches!(&event.body, EventBody::Call(call) if wanted(call)))
            .map(|event| event.seq)
            .expect("the call is in the lab's events")
    };
    let accepted = seq_of(&|call| call.c.starts_with("accept(") && call.phase == Some(Phase::Done));
    let connected =
        seq_of(&|call| call.c.starts_with("connect(") && call.phase == Some(Phase::Done));
    assert!(connected < accepted || accepted > 0);
    let handshake: Vec<String> = follower
        .events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Segment(segment)
                if segment.src_sock.is_some() && segment.dst_sock.is_some() =>
            {
                Some(segment.flags.join("+"))
            }
            _ => None,
        })
        .take(3)
        .collect();
    assert_eq!(
        handshake,
        ["SYN", "SYN+ACK", "ACK"],
        "the handshake, between the two programs' sockets"
    );
    let _ = serving.child.start_kill();
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn a_program_started_by_a_shell_is_followed_through_fork_and_exec() {
    let out = build_folder("trace-fork");
    let client = compile("client", &out);
    let lab_port = free_lab_port();
    let relay = RelayProcess::start(&[]).await;
    // Something to connect to, outside the trace: the client's calls are
    // what matters here.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", lab_port))
        .await
        .expect("a listener");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut peer, _) = listener.accept().await.expect("the client connects");
        let mut buffer = [0u8; 64];
        let _ = peer.read(&mut buffer).await;
        let _ = peer.write_all(b"Hello, Client").await;
    });
    // The shell forks, and its child execs the client.
    let script = format!("{} {lab_port}; exit 3", client.display());
    let mut tracing = Tracing::open(relay.port(), Path::new("sh"), &["-c", &script]).await;
    let mut follower = Follower::connect(&relay.ws_url(), &tracing.code).await;
    let exited = follower.exits(2).await;
    // The child ran the client, and ended first; the shell's status is its own.
    assert!(exited[0].lane.starts_with("client["), "{exited:?}");
    assert_eq!(exited[0].status, Some(0));
    assert!(exited[1].lane.starts_with("sh["), "{exited:?}");
    assert_eq!(exited[1].status, Some(3));
    let calls: Vec<String> = follower
        .events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Call(call) if call.phase != Some(Phase::Blocked) => Some(call.c.clone()),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = calls
        .iter()
        .map(|c| c.split('(').next().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["socket", "connect", "send", "read", "close"],
        "{calls:#?}"
    );
    let _ = tracing.child.start_kill();
    let _ = std::fs::remove_dir_all(&out);
}

/// A client whose socket calls run on a second thread.
const THREADED_CLIENT: &str = r#"
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;

static void *talk(void *unused) {
    (void)unused;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = inet_addr("127.0.0.1");
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) exit(1);
    if (send(fd, "from a thread", 13, 0) != 13) exit(1);
    close(fd);
    return NULL;
}

int main(int argc, char *argv[]) {
    if (argc < 2) return 2;
    port = atoi(argv[1]);
    pthread_t thread;
    if (pthread_create(&thread, NULL, talk, NULL) != 0) return 1;
    pthread_join(thread, NULL);
    return 0;
}
"#;

#[tokio::test]
async fn a_threads_calls_are_its_processs() {
    let out = build_folder("trace-thread");
    let binary = compile_source("threaded", THREADED_CLIENT, &out, &["-pthread"]);
    let lab_port = free_lab_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", lab_port))
        .await
        .expect("a listener");
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut peer, _) = listener.accept().await.expect("the thread connects");
        let mut heard = Vec::new();
        let _ = peer.read_to_end(&mut heard).await;
    });
    let relay = RelayProcess::start(&[]).await;
    let mut tracing = Tracing::open(relay.port(), &binary, &[&lab_port.to_string()]).await;
    let mut follower = Follower::connect(&relay.ws_url(), &tracing.code).await;
    let ending = follower.exits(1).await.remove(0);
    assert_eq!(ending.status, Some(0));
    let calls: Vec<(String, Option<String>)> = follower
        .events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Call(call) if call.phase != Some(Phase::Blocked) => {
                Some((call.c.clone(), call.lane.clone()))
            }
            _ => None,
        })
        .collect();
    let names: Vec<&str> = calls
        .iter()
        .map(|(c, _)| c.split('(').next().unwrap_or_default())
        .collect();
    assert_eq!(names, ["socket", "connect", "send", "close"], "{calls:#?}");
    // The thread's calls are its process's, on the process's one lane.
    assert!(
        calls
            .iter()
            .all(|(_, lane)| lane.as_deref() == Some(ending.lane.as_str())),
        "{calls:#?} {ending:?}"
    );
    let _ = tracing.child.start_kill();
    let _ = std::fs::remove_dir_all(&out);
}

/// A server that accepts one client and hands the connection on as
/// `argv[2]` says: `fork`, to a child that answers on it (the classic
/// concurrent server; the parent closes its copy at once), or `dup2`, to
/// fd 9, closing the fd accept gave it. Either answers the client's first
/// message with "Hello, Client".
const HANDING_SERVER: &str = r#"
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int answer(int fd) {
    char buffer[64];
    if (read(fd, buffer, sizeof(buffer)) <= 0) return 1;
    if (send(fd, "Hello, Client", 13, 0) != 13) return 1;
    close(fd);
    return 0;
}

int main(int argc, char *argv[]) {
    if (argc < 3) return 2;
    int sockfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(atoi(argv[1]));
    addr.sin_addr.s_addr = inet_addr("127.0.0.1");
    if (bind(sockfd, (struct sockaddr *)&addr, sizeof(addr)) < 0) return 1;
    if (listen(sockfd, 5) < 0) return 1;
    int conn = accept(sockfd, NULL, NULL);
    if (conn < 0) return 1;
    int moved = -1;
    if (strcmp(argv[2], "dup2") == 0) moved = dup2(conn, 9);
    if (strcmp(argv[2], "fcntl") == 0) moved = fcntl(conn, F_DUPFD_CLOEXEC, 9);
    if (moved >= 0) {
        if (moved != 9) return 1;
        close(conn);
        if (strcmp(argv[2], "fcntl") == 0) {
            /* A moment without blocking, and back, as a program that polls
               would: both F_SETFL calls are shown, F_GETFL is not. */
            int flags = fcntl(9, F_GETFL);
            if (fcntl(9, F_SETFL, flags | O_NONBLOCK) != 0) return 1;
            if (fcntl(9, F_SETFL, flags) != 0) return 1;
        }
        int failed = answer(9);
        close(sockfd);
        return failed;
    }
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        close(sockfd);
        _exit(answer(conn));
    }
    close(conn);
    int status;
    if (waitpid(child, &status, 0) < 0) return 1;
    close(sockfd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"#;

/// The handing server, traced into a lab, with a follower that has seen it
/// listen and a client connected to it.
struct Handing {
    _relay: RelayProcess,
    tracing: Tracing,
    follower: Follower,
    client: tokio::net::TcpStream,
    out: std::path::PathBuf,
}

impl Handing {
    async fn start(how: &str) -> Handing {
        let out = build_folder(&format!("trace-{how}"));
        let binary = compile_source("server", HANDING_SERVER, &out, &[]);
        let lab_port = free_lab_port();
        let relay = RelayProcess::start(&[]).await;
        let tracing = Tracing::open(relay.port(), &binary, &[&lab_port.to_string(), how]).await;
        let mut follower = Follower::connect(&relay.ws_url(), &tracing.code).await;
        while done(&follower.next().await, protocol::OpName::Listen).is_none() {}
        let client = tokio::net::TcpStream::connect(("127.0.0.1", lab_port))
            .await
            .expect("the server listens");
        Handing {
            _relay: relay,
            tracing,
            follower,
            client,
            out,
        }
    }
}

impl Drop for Handing {
    fn drop(&mut self) {
        let _ = self.tracing.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

/// The call in `event`, when it is `op` done.
fn done(event: &protocol::Event, op: protocol::OpName) -> Option<Call> {
    match &event.body {
        EventBody::Call(call) if call.op == Some(op) && call.phase == Some(Phase::Done) => {
            Some(call.clone())
        }
        _ => None,
    }
}

/// Says hi, and checks the server's answer.
async fn greet(client: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    client.write_all(b"hi").await.expect("the client sends");
    let mut answer = [0u8; 13];
    client
        .read_exact(&mut answer)
        .await
        .expect("the server answers");
    assert_eq!(&answer, b"Hello, Client");
}

#[tokio::test]
async fn a_forked_child_talks_on_the_connection_its_parent_closed() {
    let mut server = Handing::start("fork").await;
    let follower = &mut server.follower;
    let accepted = loop {
        if let Some(call) = done(&follower.next().await, protocol::OpName::Accept) {
            break call;
        }
    };
    let parent = accepted
        .lane
        .clone()
        .expect("a traced call names its process");
    let conn = accepted.new_sock.expect("accept made a socket");
    // The parent's close of its copy: the client writes only after it.
    let parent_closed = loop {
        let event = follower.next().await;
        if let Some(call) = done(&event, protocol::OpName::Close) {
            if call.lane.as_deref() == Some(parent.as_str()) && call.sock == Some(conn) {
                break event.seq;
            }
        }
    };
    // The connection outlived the parent's close.
    greet(&mut server.client).await;
    let exited = follower.exits(2).await;
    assert!(
        exited.iter().all(|ending| ending.status == Some(0)),
        "{exited:?}"
    );
    // The child's read and send are on the same lab socket, and name the
    // child, not the parent whose close came first.
    let on_conn: Vec<&Call> = follower
        .events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Call(call) if call.sock == Some(conn) && call.phase == Some(Phase::Done) => {
                Some(call)
            }
            _ => None,
        })
        .collect();
    let ops: Vec<(Option<protocol::OpName>, bool)> = on_conn
        .iter()
        .map(|call| (call.op, call.lane.as_deref() == Some(parent.as_str())))
        .collect();
    use protocol::OpName::{Close, Read, Send};
    assert_eq!(
        ops,
        [
            (Some(Close), true),
            (Some(Read), false),
            (Some(Send), false),
            (Some(Close), false)
        ],
        "{on_conn:#?}"
    );
    let child = on_conn[1].lane.clone().expect("the child's name");
    assert!(child.starts_with("server[") && child != parent, "{child}");
    // On the wire, the parent's close sent nothing: the server's first
    // segment after it is the child's answer, and its FIN comes after that.
    let from_server: Vec<&protocol::Segment> = follower
        .events
        .iter()
        .filter(|event| event.seq > parent_closed)
        .filter_map(|event| match &event.body {
            EventBody::Segment(segment) if segment.src_sock == Some(conn) => Some(segment),
            _ => None,
        })
        .collect();
    let first_fin = from_server
        .iter()
        .position(|segment| segment.flags.iter().any(|flag| flag == "FIN"));
    let answer_at = from_server
        .iter()
        .position(|segment| segment.payload.as_deref() == Some("Hello, Client"));
    assert!(
        matches!((answer_at, first_fin), (Some(answer), Some(fin)) if answer < fin),
        "{from_server:#?}"
    );
}

/// A process has one tracer. Under `strace -f`, relay trace's child is
/// strace's before it can ask to be relay trace's: relay trace says so,
/// rather than blame the system's ptrace settings.
#[tokio::test]
async fn a_relay_trace_that_is_itself_traced_says_why_it_cannot_trace() {
    let relay = RelayProcess::start(&[]).await;
    let output = tokio::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .arg(relay_binary())
        .args(["trace", "--port", &relay.port().to_string(), "--", "true"])
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .await
        .expect("strace runs");
    assert!(!output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("relay trace is itself being traced") && said.contains("only one tracer"),
        "{said}"
    );
}

#[tokio::test]
async fn a_socket_moved_to_another_fd_with_dup2_is_still_shown() {
    assert_eq!(
        calls_on_moved_connection("dup2").await,
        [
            "dup2(4, 9) = 9",
            "close(4) = 0",
            "read(9, \"hi\", 64) = 2",
            "send(9, \"Hello, Client\", 13, 0) = 13",
            "close(9) = 0",
        ]
    );
}

/// fcntl(F_DUPFD_CLOEXEC) is a dup by another name, and followed as one;
/// fcntl(F_SETFL) is shown with the flags it sets.
#[tokio::test]
async fn a_socket_moved_to_another_fd_with_fcntl_is_still_shown() {
    assert_eq!(
        calls_on_moved_connection("fcntl").await,
        [
            "fcntl(4, F_DUPFD_CLOEXEC, 9) = 9",
            "close(4) = 0",
            "fcntl(9, F_SETFL, O_RDWR|O_NONBLOCK) = 0",
            "fcntl(9, F_SETFL, O_RDWR) = 0",
            "read(9, \"hi\", 64) = 2",
            "send(9, \"Hello, Client\", 13, 0) = 13",
            "close(9) = 0",
        ]
    );
}

/// Every call on the accepted connection, as C, whichever fd it was made
/// on, of the handing server that moves it to fd 9 `how`.
async fn calls_on_moved_connection(how: &str) -> Vec<String> {
    let mut server = Handing::start(how).await;
    let follower = &mut server.follower;
    greet(&mut server.client).await;
    assert_eq!(follower.exits(1).await[0].status, Some(0));
    let calls: Vec<&Call> = follower
        .events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Call(call) if call.phase == Some(Phase::Done) => Some(call),
            _ => None,
        })
        .collect();
    let conn = calls
        .iter()
        .find(|call| call.op == Some(protocol::OpName::Accept))
        .and_then(|call| call.new_sock)
        .expect("accept made a socket");
    calls
        .iter()
        .filter(|call| call.sock == Some(conn))
        .map(|call| call.c.clone())
        .collect()
}
