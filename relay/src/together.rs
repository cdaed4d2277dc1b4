//! Two futures driven by one task, like `tokio::join!`, except that when one
//! wakes the other during the task's poll (the lab hands its session events),
//! the other is polled again at once, in the same poll.
//!
//! With `tokio::join!`, that wake is the task waking itself while it runs.
//! Tokio treats it as a yield: the task goes to the back of the run queue and
//! an idle worker is woken, which steals it. Every step of a lab then crossed
//! threads between its system calls and the write of its events (a futex
//! wake, and the other core's wake-up, on each round trip).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// How many times one poll may go round before it yields: a pair that keeps
/// waking each other still lets the worker's other tasks run.
const ROUNDS: usize = 16;

/// Drives `a` and `b` to completion in the calling task.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let shared = Arc::new(Shared::default());
    let (flag_a, flag_b) = (Flag::new(&shared), Flag::new(&shared));
    let (waker_a, waker_b) = (Waker::from(flag_a.clone()), Waker::from(flag_b.clone()));
    let (mut out_a, mut out_b) = (None, None);
    poll_fn(|cx| {
        shared.task.register(cx.waker());
        shared.polling.store(true, SeqCst);
        for _ in 0..ROUNDS {
            let mut polled = false;
            if out_a.is_none() && flag_a.woken.swap(false, SeqCst) {
                polled = true;
                if let Poll::Ready(done) = a.as_mut().poll(&mut Context::from_waker(&waker_a)) {
                    out_a = Some(done);
                }
            }
            if out_b.is_none() && flag_b.woken.swap(false, SeqCst) {
                polled = true;
                if let Poll::Ready(done) = b.as_mut().poll(&mut Context::from_waker(&waker_b)) {
                    out_b = Some(done);
                }
            }
            if !polled || (out_a.is_some() && out_b.is_some()) {
                break;
            }
        }
        shared.polling.store(false, SeqCst);
        if out_a.is_some() && out_b.is_some() {
            return Poll::Ready((out_a.take().unwrap(), out_b.take().unwrap()));
        }
        // A wake that came while this poll was under way, after its flag was
        // last looked at, or after the last round, woke nobody: wake the task
        // now, which yields to the worker's other tasks first.
        let woken = |flag: &Flag, done: bool| !done && flag.woken.load(SeqCst);
        if woken(&flag_a, out_a.is_some()) || woken(&flag_b, out_b.is_some()) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}

#[derive(Default)]
struct Shared {
    /// Set while the pair is being polled: a wake then only marks its flag,
    /// which the poll looks at before it returns.
    polling: AtomicBool,
    task: AtomicWaker,
}

/// One future's waker: marks it to be polled, and wakes the task unless the
/// task is polling the pair right now.
struct Flag {
    woken: AtomicBool,
    shared: Arc<Shared>,
}

impl Flag {
    fn new(shared: &Arc<Shared>) -> Arc<Flag> {
        Arc::new(Flag {
            woken: AtomicBool::new(true),
            shared: Arc::clone(shared),
        })
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        if !self.shared.polling.load(SeqCst) {
            self.shared.task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::mpsc as std_mpsc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::join;

    /// The task's waker: passes on each wake to the test.
    struct Told(std::sync::Mutex<std_mpsc::Sender<()>>);

    impl Wake for Told {
        fn wake(self: Arc<Self>) {
            let _ = self.0.lock().unwrap().send(());
        }
    }

    fn task_waker() -> (Waker, std_mpsc::Receiver<()>) {
        let (sender, woken) = std_mpsc::channel();
        (Waker::from(Arc::new(Told(sender.into()))), woken)
    }

    /// Messages back and forth between the two are all taken within one
    /// poll, and the task is never woken for them: with `tokio::join!`,
    /// each would have woken the task, which tokio takes for a yield.
    #[test]
    fn messages_between_the_two_are_taken_in_the_same_poll() {
        let (to_b, mut from_a) = mpsc::channel::<u32>(1);
        let (to_a, mut from_b) = mpsc::channel::<u32>(1);
        let a = async move {
            for n in 0..4 {
                to_b.send(n).await.unwrap();
                assert_eq!(from_b.recv().await, Some(n + 1));
            }
        };
        let b = async move {
            while let Some(n) = from_a.recv().await {
                to_a.send(n + 1).await.unwrap();
            }
            "b ended"
        };
        let (waker, woken) = task_waker();
        let polled = pin!(join(a, b)).poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Ready(((), "b ended")));
        assert!(woken.try_recv().is_err(), "the task woke itself");
    }

    /// A wake from another thread, once the pair has gone to sleep, wakes
    /// the task.
    #[test]
    fn a_wake_from_another_thread_reaches_the_task() {
        let (sender, mut receiver) = mpsc::channel::<&str>(1);
        let waiting = async move { receiver.recv().await };
        let mut pair = pin!(join(waiting, async {}));
        let (waker, woken) = task_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(pair.as_mut().poll(&mut cx).is_pending());
        std::thread::spawn(move || sender.blocking_send("from a thread").unwrap());
        woken
            .recv_timeout(Duration::from_secs(10))
            .expect("the wake from another thread was lost");
        assert_eq!(
            pair.as_mut().poll(&mut cx),
            Poll::Ready((Some("from a thread"), ()))
        );
    }
}
