//! How a call that would block waits: the kernel answered EAGAIN or
//! EINPROGRESS, the lab reports phase `blocked`, a task waits for epoll to
//! say the socket is ready and calls again, and the answer comes back to the
//! lab as a [`Completion`] that finishes the call in order.
//!
//! Every blocking op (accept, connect, send, read) goes through
//! [`Lab::block`]; only the attempt and the way the answer is reported differ.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{AbandonReason, Note, Phase, SockId};
use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use super::clock::{self, Stamp};
use super::lab::Lab;
use super::ops::CallContext;
use super::sys;

/// How long a wait sleeps when tokio's readiness can no longer tell it
/// anything. tokio keeps a "closed" readiness (EPOLLHUP, EPOLLRDHUP) for good,
/// so a socket that has one is always "ready"; a call that still answers
/// EAGAIN then is asked again after this pause instead of in a spin.
const STALE_READINESS_PAUSE: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Direction {
    /// accept and read wait for readability.
    Inbound,
    /// connect and send wait for writability.
    Outbound,
}

/// A call that got EAGAIN or EINPROGRESS and waits for readiness in a task.
pub(super) struct Pending {
    pub call: CallContext,
    pub direction: Direction,
    task: JoinHandle<()>,
    retry: SharedRetry,
}

/// Makes a blocked call again (with no error), or reports that waiting for
/// it failed (with the error). It answers `None` while the kernel still says
/// EAGAIN, and hands out the report once: after that it never calls again.
type Retry = Box<dyn FnMut(RawFd, Option<io::Error>) -> Option<Finish> + Send>;

/// Shared by the wait task, which retries on readiness, and the lab, which
/// retries right after its own commands: a lab's send makes its other
/// socket's read ready inside the send() call, and answering that read in
/// the same step saves two task hops. Whichever gets the answer first
/// reports it.
type SharedRetry = Arc<Mutex<Retry>>;

/// The kernel's second answer to a blocked call, stamped when it came, and
/// how to report it.
pub(super) struct Completion {
    call: CallContext,
    at: Stamp,
    finish: Finish,
}

/// Reports a blocked call's answer on the lab, at the stamp given.
type Finish = Box<dyn FnOnce(&mut Lab, Stamp) + Send>;

/// A lab socket as tokio's reactor sees it: shared with the lab, which keeps
/// making its own calls on it.
pub(super) struct SharedSocket(Arc<Socket>);

impl AsRawFd for SharedSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What a blocked call's first answer was, for its `blocked` event.
pub(super) struct Blocked {
    /// The call as C writes it, with its result (` = -1 EAGAIN (…)`).
    pub c: String,
    pub errno: i32,
    pub note: Note,
    pub direction: Direction,
    /// The address a blocked connect() is reaching for.
    pub peer: Option<std::net::SocketAddr>,
}

impl Lab {
    /// Reports a call that would block and waits for it in a task. `attempt`
    /// is the call to make again on each readiness; `finish` reports its
    /// answer, stamped when it came.
    pub(super) fn block<T: Send + 'static>(
        &mut self,
        call: CallContext,
        at: Stamp,
        blocked: Blocked,
        attempt: impl FnMut(RawFd) -> io::Result<T> + Send + 'static,
        finish: impl FnOnce(&mut Lab, CallContext, io::Result<T>, Stamp) + Send + 'static,
    ) {
        let mut event = call.event(Phase::Blocked, blocked.c, at);
        event.ret = Some(-1);
        event.errno = Some(sys::errno_name(blocked.errno));
        event.message = Some(sys::strerror(blocked.errno));
        event.note = Some(blocked.note);
        event.peer = blocked.peer.map(|addr| addr.to_string());
        self.emit(at, event);
        let io = match self.registration(call.sock) {
            Ok(io) => io,
            Err(error) => return finish(self, call, Err(error), clock::now()),
        };
        let completions = self.completion_sender();
        let direction = blocked.direction;
        let retry: SharedRetry = Arc::new(Mutex::new(retry(call, attempt, finish)));
        let shared = Arc::clone(&retry);
        let task = tokio::spawn(async move {
            if let Some(finish) = wait_and_retry(&io, direction, &shared).await {
                let at = clock::now();
                let _ = completions.send(Completion { call, at, finish });
            }
        });
        self.pending.push(Pending {
            call,
            direction,
            task,
            retry,
        });
    }

    /// Makes every blocked call again once, right after a command, and
    /// reports those the kernel now answers. An answer that is still EAGAIN
    /// is not news: the call stays blocked, as its wait task would find it.
    pub(super) fn retry_pending(&mut self) {
        let mut index = 0;
        while index < self.pending.len() {
            let pending = &self.pending[index];
            let answer = lock(&pending.retry)(pending.call.fd, None);
            match answer {
                Some(finish) => {
                    let at = clock::now();
                    let pending = self.pending.remove(index);
                    pending.task.abort();
                    finish(self, at);
                }
                None => index += 1,
            }
        }
    }

    /// Reports a blocked call's answer.
    pub(super) fn complete(&mut self, completion: Completion) {
        let finished = completion.call;
        self.pending.retain(|pending| {
            !(pending.call.id == finished.id
                && pending.call.sock == finished.sock
                && pending.call.op == finished.op)
        });
        (completion.finish)(self, completion.at);
    }

    /// The socket's registration with epoll, made on its first wait. Only
    /// called after the kernel answered EAGAIN or EINPROGRESS, so the socket
    /// is then listening, connecting or connected, never fresh.
    fn registration(&mut self, sock: SockId) -> io::Result<Arc<AsyncFd<SharedSocket>>> {
        let socket = self
            .sockets
            .open
            .get_mut(&sock)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        if let Some(io) = &socket.registration {
            return Ok(Arc::clone(io));
        }
        // SAFETY: the Arc keeps the Socket, and so its fd, open for as long
        // as the registration lives, and a Socket always reports the same fd.
        // The lab closes the fd only after every registration is gone.
        let io = Arc::new(unsafe { AsyncFd::register(SharedSocket(Arc::clone(&socket.socket))) }?);
        socket.registration = Some(Arc::clone(&io));
        Ok(io)
    }

    /// Stops waiting for every blocked call of `sock`, and reports each.
    pub(super) async fn cancel_pending(&mut self, sock: SockId, because: AbandonReason) {
        let (cancelled, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|pending| pending.call.sock == sock);
        self.pending = kept;
        for pending in cancelled {
            pending.task.abort();
            // A task that finished before the abort has queued its
            // completion, which will be reported; only a real abort is news.
            if let Err(error) = pending.task.await {
                if error.is_cancelled() {
                    let call = pending.call;
                    let at = clock::now();
                    let mut event = call.event(
                        Phase::Cancelled,
                        format!("{}({}, …) /* abandoned */", call.op.as_str(), call.fd),
                        at,
                    );
                    event.note = Some(Note::WaitAbandoned { because });
                    self.emit(at, event);
                }
            }
        }
    }

    /// Stops every wait, reporting nothing: the browser has gone.
    pub(super) async fn abandon_all(&mut self) {
        for pending in std::mem::take(&mut self.pending) {
            pending.task.abort();
            let _ = pending.task.await;
        }
    }

    /// Whether `sock` already has a call waiting in `direction`, and which.
    pub(super) fn waiting(&self, sock: SockId, direction: Direction) -> Option<&CallContext> {
        self.pending
            .iter()
            .find(|pending| pending.call.sock == sock && pending.direction == direction)
            .map(|pending| &pending.call)
    }
}

/// Builds a blocked call's retry from the call to make and the way its
/// answer is reported.
fn retry<T: Send + 'static>(
    call: CallContext,
    mut attempt: impl FnMut(RawFd) -> io::Result<T> + Send + 'static,
    finish: impl FnOnce(&mut Lab, CallContext, io::Result<T>, Stamp) + Send + 'static,
) -> Retry {
    let mut finish = Some(finish);
    Box::new(move |fd, failed| {
        // Answered already: never make the call again.
        finish.as_ref()?;
        let result = match failed {
            Some(error) => Err(error),
            None => match attempt(fd) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return None,
                result => result,
            },
        };
        let finish = finish.take()?;
        Some(Box::new(move |lab: &mut Lab, at| finish(lab, call, result, at)) as Finish)
    })
}

/// The retry, even if another holder panicked while holding it: the state
/// inside (whether the call was answered) is still right.
fn lock(retry: &SharedRetry) -> std::sync::MutexGuard<'_, Retry> {
    retry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits for readiness and repeats the call until the kernel gives an answer
/// other than EAGAIN, and returns its report; `None` when the lab took the
/// answer first.
async fn wait_and_retry(
    io: &AsyncFd<SharedSocket>,
    direction: Direction,
    retry: &SharedRetry,
) -> Option<Finish> {
    let fd = io.get_ref().as_raw_fd();
    loop {
        let waited = match direction {
            Direction::Inbound => io.readable().await,
            Direction::Outbound => io.writable().await,
        };
        let mut guard = match waited {
            Ok(guard) => guard,
            Err(error) => return lock(retry)(fd, Some(error)),
        };
        let ready = guard.ready();
        let answered = guard.try_io(|_| {
            lock(retry)(fd, None).ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))
        });
        match answered {
            Ok(Ok(finish)) => return Some(finish),
            // The retry only ever fails with WouldBlock, which try_io turns
            // into the arm below; wait again either way.
            Ok(Err(_)) => {}
            Err(_would_block) => {
                if ready.is_read_closed() || ready.is_write_closed() {
                    tokio::time::sleep(STALE_READINESS_PAUSE).await;
                }
            }
        }
    }
}
