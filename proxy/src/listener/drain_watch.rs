//! Whether the listener drains, read cheaply on every turn of a connection's supervisor.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

pin_project_lite::pin_project! {
    /// The drain token, watched by one connection.
    ///
    /// Polling the token's future takes its lock and its notifier's on every turn, and
    /// a connection's supervisor turns a few times per request (about 340 instructions
    /// per request, bench/RESULTS.md). The future is polled once, which registers the
    /// task's waker with the token; later turns woken by the same waker only read the
    /// flag, since the drain wakes that waker when it begins (the token sets its flag
    /// before it wakes). A turn with another waker polls the future again, so the waker
    /// to wake is always the current one.
    pub(super) struct DrainWatch<'a> {
        token: &'a CancellationToken,
        #[pin]
        cancelled: WaitForCancellationFuture<'a>,
        // The waker the future registered last, while the drain has not begun.
        registered: Option<Waker>,
    }
}

impl<'a> DrainWatch<'a> {
    pub(super) fn new(token: &'a CancellationToken) -> Self {
        Self {
            token,
            cancelled: token.cancelled(),
            registered: None,
        }
    }

    /// Whether the drain began; if not, `cx`'s waker is woken when it does.
    pub(super) fn poll_drained(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let this = self.project();
        if this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return this.token.is_cancelled();
        }
        if this.cancelled.poll(cx).is_ready() {
            return true;
        }
        *this.registered = Some(cx.waker().clone());
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn drained(watch: Pin<&mut DrainWatch<'_>>, waker: &Arc<Counting>) -> bool {
        let waker = Waker::from(waker.clone());
        watch.poll_drained(&mut Context::from_waker(&waker))
    }

    /// A connection moved to another task is polled with another waker: the drain must
    /// wake that one, not the waker of the task it left.
    #[test]
    fn a_drain_wakes_the_waker_of_the_latest_turn() {
        let token = CancellationToken::new();
        let mut watch = std::pin::pin!(DrainWatch::new(&token));
        let (first, second) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
        assert!(!drained(watch.as_mut(), &first));
        assert!(!drained(watch.as_mut(), &first));
        assert!(!drained(watch.as_mut(), &second));
        token.cancel();
        assert_eq!(
            second.0.load(Ordering::SeqCst),
            1,
            "the current waker is woken"
        );
        assert_eq!(first.0.load(Ordering::SeqCst), 0, "the old waker is not");
        assert!(drained(watch.as_mut(), &second));
    }

    /// Turns after the first only read the flag: a drain that began between them is
    /// seen, and it was announced to the registered waker.
    #[test]
    fn a_drain_between_turns_is_seen_and_wakes() {
        let token = CancellationToken::new();
        let mut watch = std::pin::pin!(DrainWatch::new(&token));
        let waker = Arc::new(Counting::default());
        for _ in 0..3 {
            assert!(!drained(watch.as_mut(), &waker));
        }
        token.cancel();
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        assert!(drained(watch.as_mut(), &waker));
    }

    /// A drain that began before the connection's first turn (or a parent token's
    /// drain) is seen on that turn.
    #[test]
    fn a_drain_begun_before_the_first_turn_is_seen() {
        let parent = CancellationToken::new();
        let token = parent.child_token();
        parent.cancel();
        let mut watch = std::pin::pin!(DrainWatch::new(&token));
        assert!(drained(watch.as_mut(), &Arc::new(Counting::default())));
    }
}
