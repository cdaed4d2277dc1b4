//! How a call that would block waits: the kernel answered EAGAIN or
//! EINPROGRESS, the lab reports phase `blocked`, and a future held by the
//! lab waits for epoll to say the socket is ready and calls again. The lab's
//! loop polls its waits itself ([`next_answer`]), so a lab, its waits and its
//! session are one task: an answer never waits for another thread to wake.
//!
//! Every blocking op (accept, connect, send, read) goes through
//! [`Lab::block`]; only the attempt and the way the answer is reported differ.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use protocol::{AbandonReason, Note, Phase, SockId};
use socket2::Socket;
use tokio::io::unix::AsyncFd;

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

/// A call that got EAGAIN or EINPROGRESS and waits for readiness.
pub(super) struct Pending {
    pub call: CallContext,
    pub direction: Direction,
    /// Waits for readiness and calls again until the kernel answers; `None`
    /// if the lab took the answer first. Dropping it stops the wait.
    wait: Pin<Box<dyn Future<Output = Option<Finish>> + Send>>,
    retry: SharedRetry,
}

/// Makes a blocked call again (with no error), or reports that waiting for
/// it failed (with the error). It answers `None` while the kernel still says
/// EAGAIN, and hands out the report once: after that it never calls again.
type Retry = Box<dyn FnMut(RawFd, Option<io::Error>) -> Option<Finish> + Send>;

/// Shared by the wait, which retries on readiness, and the lab, which
/// retries right after its own commands: a lab's send makes its other
/// socket's read ready inside the send() call, and answering that read in
/// the same step saves a turn of the loop. Whichever gets the answer first
/// reports it.
type SharedRetry = Arc<Mutex<Retry>>;

/// The kernel's second answer to a blocked call, stamped when it came, and
/// how to report it.
pub(super) struct Answer {
    /// Where the call is in [`Lab::pending`].
    index: usize,
    at: Stamp,
    finish: Option<Finish>,
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
    /// Reports a call that would block and waits for it. `attempt` is the
    /// call to make again on each readiness; `finish` reports its answer,
    /// stamped when it came.
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
        let direction = blocked.direction;
        let retry: SharedRetry = Arc::new(Mutex::new(retry(call, attempt, finish)));
        let shared = Arc::clone(&retry);
        let wait = Box::pin(async move { wait_and_retry(&io, direction, &shared).await });
        self.pending.push(Pending {
            call,
            direction,
            wait,
            retry,
        });
    }

    /// Makes every blocked call again once, right after a command, and
    /// reports those the kernel now answers: the command's own connect, too,
    /// whose handshake on loopback is often done by then. An answer that is
    /// still EAGAIN is not news: the call stays blocked, as its wait would
    /// find it.
    pub(super) fn retry_pending(&mut self) {
        let mut index = 0;
        while index < self.pending.len() {
            let pending = &self.pending[index];
            let answer = lock(&pending.retry)(pending.call.fd, None);
            match answer {
                Some(finish) => {
                    let at = clock::now();
                    // Dropping the wait stops it.
                    self.pending.remove(index);
                    finish(self, at);
                }
                None => index += 1,
            }
        }
    }

    /// Reports the answer a wait got.
    pub(super) fn answered(&mut self, answer: Answer) {
        self.pending.remove(answer.index);
        if let Some(finish) = answer.finish {
            finish(self, answer.at);
        }
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
    pub(super) fn cancel_pending(&mut self, sock: SockId, because: AbandonReason) {
        let (cancelled, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|pending| pending.call.sock == sock);
        self.pending = kept;
        // A wait's answer is taken only when the lab polls it, and is
        // reported then, so every wait still here has had none: dropping it
        // abandons a call the kernel has not answered.
        for pending in cancelled {
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

    /// Stops every wait, reporting nothing: the browser has gone.
    pub(super) fn abandon_all(&mut self) {
        self.pending.clear();
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

/// The first answer any of the lab's waits has, stamped as it comes; never
/// ready while there are none. The lab's loop polls this with its other
/// sources, so a readiness wakes the lab's own task.
pub(super) fn next_answer(pending: &mut [Pending]) -> impl Future<Output = Answer> + '_ {
    std::future::poll_fn(move |context| {
        for (index, waiting) in pending.iter_mut().enumerate() {
            if let Poll::Ready(finish) = waiting.wait.as_mut().poll(context) {
                let at = clock::now();
                return Poll::Ready(Answer { index, at, finish });
            }
        }
        Poll::Pending
    })
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
