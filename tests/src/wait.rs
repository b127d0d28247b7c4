//! Bounded waiting: every wait in the harness has a deadline and says what it waited for.

use std::future::Future;
use std::time::Duration;

/// Polls `check` every 20ms until it returns true.
///
/// # Panics
/// When `check` is still false after `timeout`, naming `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for tests without a runtime (processes in network namespaces): polls
/// `check` until it holds, failing after `timeout`.
///
/// # Panics
/// When `check` still does not hold at the deadline.
pub fn eventually_blocking(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `fut` to completion within `timeout`.
///
/// # Panics
/// When it takes longer, naming `what`.
pub async fn within<T>(what: &str, timeout: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}
