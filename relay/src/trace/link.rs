//! The control socket between `relay trace` and the relay: a Unix socket
//! of the user's own (in a 0700 folder, so no other user and no web page
//! can reach it), one message per datagram (`SOCK_SEQPACKET`), a socket's
//! copy passed beside a message as `SCM_RIGHTS`.
//!
//! The tracer's end is blocking (it runs on the tracer's own threads); the
//! relay's end is tokio's (`AsyncFd`).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::report::{Message, Reply};

/// The largest message either end sends: a call with its data
/// ([`super::report::DATA_BYTES`]) as JSON numbers fits with room to spare.
const MESSAGE_BYTES: usize = 128 * 1024;

/// How long the tracer waits for an answer from the relay.
const REPLY_WITHIN_SECONDS: i64 = 10;

/// Where the relay listening on `port` keeps its control socket.
pub fn socket_path(port: u16) -> PathBuf {
    let folder = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if !runtime.is_empty() => PathBuf::from(runtime).join("socket-flow"),
        // SAFETY: getuid(2) cannot fail.
        _ => std::env::temp_dir().join(format!("socket-flow-{}", unsafe { libc::getuid() })),
    };
    folder.join(format!("relay-{port}.sock"))
}

fn seqpacket() -> io::Result<OwnedFd> {
    Ok(socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn encode(message: &impl Serialize) -> io::Result<Vec<u8>> {
    serde_json::to_vec(message).map_err(io::Error::other)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

fn send(
    fd: RawFd,
    bytes: &[u8],
    passing: Option<BorrowedFd<'_>>,
    flags: MsgFlags,
) -> io::Result<()> {
    let fds: Vec<RawFd> = passing.iter().map(AsRawFd::as_raw_fd).collect();
    let control: Vec<ControlMessage> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    socket::sendmsg::<()>(fd, &[IoSlice::new(bytes)], &control, flags, None)?;
    Ok(())
}

/// One message and the fd that came with it; `None` at the end.
fn receive(
    fd: RawFd,
    buffer: &mut [u8],
    flags: MsgFlags,
) -> io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut control = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(buffer)];
    let received = socket::recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut control),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut passed = None;
    for message in received.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = message {
            for fd in fds {
                // SAFETY: the kernel just installed this fd for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                passed.get_or_insert(owned);
            }
        }
    }
    if received.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a control message was too long",
        ));
    }
    let length = received.bytes;
    if length == 0 {
        return Ok(None);
    }
    Ok(Some((buffer[..length].to_vec(), passed)))
}

/// The tracer's end.
pub struct Link {
    fd: OwnedFd,
    /// The tracer and its timer both report; one message at a time.
    sending: Mutex<()>,
}

impl Link {
    /// Connects to the relay listening on `port`, if one runs.
    pub fn connect(port: u16) -> io::Result<Link> {
        Link::connect_at(&socket_path(port))
    }

    pub(super) fn connect_at(path: &Path) -> io::Result<Link> {
        let fd = seqpacket()?;
        let address = UnixAddr::new(path)?;
        socket::connect(fd.as_raw_fd(), &address)?;
        // A relay that does not answer within this long has gone astray:
        // the program then runs on untraced rather than wait for ever.
        let patience = nix::sys::time::TimeVal::new(REPLY_WITHIN_SECONDS, 0);
        socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &patience)?;
        Ok(Link {
            fd,
            sending: Mutex::new(()),
        })
    }

    pub fn send(&self, message: &Message, passing: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let bytes = encode(message)?;
        let _one_at_a_time = self
            .sending
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        send(self.fd.as_raw_fd(), &bytes, passing, MsgFlags::empty())
    }

    /// Waits for the relay's next answer.
    pub fn reply(&self) -> io::Result<Reply> {
        let mut buffer = vec![0u8; MESSAGE_BYTES];
        match receive(self.fd.as_raw_fd(), &mut buffer, MsgFlags::empty())? {
            Some((bytes, _)) => decode(&bytes),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the relay has gone",
            )),
        }
    }
}

/// The relay's listening end; the socket file goes when it is dropped.
pub struct Listener {
    fd: AsyncFd<OwnedFd>,
    path: PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Makes the user's own folder for the socket, or checks that the one there
/// is: owned by this user and closed to everyone else.
fn private_folder(folder: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(folder) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let metadata = std::fs::symlink_metadata(folder)?;
    // SAFETY: getuid(2) cannot fail.
    let mine = metadata.uid() == unsafe { libc::getuid() };
    if !metadata.is_dir() || !mine || metadata.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a private folder of this user", folder.display()),
        ));
    }
    Ok(())
}

impl Listener {
    /// Listens on the control socket of the relay on `port`, taking over a
    /// socket file that no relay answers on any more.
    pub fn bind(port: u16) -> io::Result<Listener> {
        Listener::bind_at(socket_path(port))
    }

    pub(super) fn bind_at(path: PathBuf) -> io::Result<Listener> {
        if let Some(folder) = path.parent() {
            private_folder(folder)?;
        }
        if Link::connect_at(&path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another relay on this port already takes traced programs",
            ));
        }
        let _ = std::fs::remove_file(&path);
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        socket::bind(fd.as_raw_fd(), &UnixAddr::new(&path)?)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        socket::listen(&fd, Backlog::new(16).map_err(io::Error::from)?)?;
        Ok(Listener {
            fd: registered(fd)?,
            path,
        })
    }

    pub async fn accept(&self) -> io::Result<Connection> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| {
                Ok(socket::accept4(
                    fd.as_raw_fd(),
                    SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                )?)
            }) {
                // SAFETY: accept4 just returned this fd, and nothing else owns it.
                Ok(result) => return Connection::new(unsafe { OwnedFd::from_raw_fd(result?) }),
                Err(_would_block) => continue,
            }
        }
    }
}

/// The fd, watched by tokio's reactor.
fn registered(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the fd, which stays open and the same until
    // the AsyncFd drops it.
    unsafe { AsyncFd::register(fd) }.map_err(|error| io::Error::other(error.to_string()))
}

/// One `relay trace` process, at the relay's end.
pub struct Connection {
    fd: AsyncFd<OwnedFd>,
    buffer: Vec<u8>,
}

impl Connection {
    fn new(fd: OwnedFd) -> io::Result<Connection> {
        Ok(Connection {
            fd: registered(fd)?,
            buffer: vec![0u8; MESSAGE_BYTES],
        })
    }

    /// The next message and the socket copy that came with it; `None` once
    /// `relay trace` has gone.
    pub async fn next(&mut self) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
        loop {
            let mut ready = self.fd.readable().await?;
            let buffer = &mut self.buffer;
            match ready.try_io(|fd| receive(fd.as_raw_fd(), buffer, MsgFlags::MSG_DONTWAIT)) {
                Ok(Ok(Some((bytes, passed)))) => return Ok(Some((decode(&bytes)?, passed))),
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn reply(&self, reply: &Reply) -> io::Result<()> {
        let bytes = encode(reply)?;
        self.fd
            .async_io(Interest::WRITABLE, |fd| {
                send(fd.as_fd().as_raw_fd(), &bytes, None, MsgFlags::MSG_DONTWAIT)
            })
            .await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::trace::report::Report;

    /// A fresh folder for one test's control socket.
    pub(in crate::trace) fn folder(name: &str) -> PathBuf {
        let folder =
            std::env::temp_dir().join(format!("socket-flow-link-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        folder
    }

    #[test]
    fn the_socket_lives_only_in_a_folder_of_the_users_own() {
        let open = folder("open");
        std::fs::create_dir_all(&open).expect("a folder");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let refused = private_folder(&open).expect_err("a folder others may enter is refused");
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        let mine = folder("mine");
        private_folder(&mine).expect("made");
        let mode = std::fs::metadata(&mine).expect("made").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        for made in [open, mine] {
            let _ = std::fs::remove_dir_all(made);
        }
    }

    #[tokio::test]
    async fn a_report_and_a_socket_pass_to_the_relay_together() {
        let folder = folder("pass");
        let path = folder.join("relay.sock");
        let listener = Listener::bind_at(path.clone()).expect("listens");
        let mode = std::fs::metadata(&path)
            .expect("the socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only its user may connect");
        let link = Link::connect_at(&path).expect("connects");
        let mut connection = listener.accept().await.expect("accepted");
        let passed = std::net::TcpListener::bind("127.0.0.1:0").expect("a socket to pass");
        let closing = Message::Report(Report::Closing { process: 7, fd: 3 });
        link.send(&closing, Some(passed.as_fd())).expect("sent");
        let (message, fd) = connection.next().await.expect("read").expect("a message");
        assert!(matches!(
            message,
            Message::Report(Report::Closing { process: 7, fd: 3 })
        ));
        let copy = std::net::TcpListener::from(fd.expect("the socket came too"));
        assert_eq!(
            copy.local_addr().ok(),
            passed.local_addr().ok(),
            "the same socket"
        );
        connection.reply(&Reply::Handled).await.expect("answered");
        assert!(matches!(link.reply(), Ok(Reply::Handled)));
        drop(link);
        assert!(connection.next().await.expect("read").is_none(), "the end");
        drop(listener);
        assert!(!path.exists(), "the socket file goes with the listener");
        let _ = std::fs::remove_dir_all(folder);
    }
}
