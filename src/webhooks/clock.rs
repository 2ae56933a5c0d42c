//! Time as the dispatcher sees it. Every time decision of delivery (when an attempt is due, the
//! timestamps it records, pruning) goes through a [`Clock`], so tests drive the retry schedule
//! with a [`ManualClock`] instead of sleeping. The schedule runner (`schedules::runner`) tells
//! time by one too (`ServeOptions::clock`).

use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// A source of time that can be slept on.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Returns at `deadline_ms` (at once when it has passed).
    async fn sleep_until(&self, deadline_ms: i64);

    /// Returns at `deadline_ms` (never with `None`) or when `wake` is notified, whichever is
    /// first.
    async fn sleep_until_or(&self, deadline_ms: Option<i64>, wake: &Notify) {
        match deadline_ms {
            Some(deadline) => tokio::select! {
                _ = self.sleep_until(deadline) => {}
                _ = wake.notified() => {}
            },
            None => wake.notified().await,
        }
    }
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now_ms = {})", self.now_ms())
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

/// Unix milliseconds of the system clock.
pub fn system_now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_millis().min(i64::MAX as u128) as i64
}

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }

    async fn sleep_until(&self, deadline_ms: i64) {
        // Re-check after waking: the system clock may have been stepped meanwhile.
        loop {
            let left = deadline_ms.saturating_sub(self.now_ms());
            if left <= 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(left as u64)).await;
        }
    }
}

/// A clock that moves only when told to; [`ManualClock::advance`] wakes sleepers whose
/// deadline has come.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<i64>,
}

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: watch::Sender::new(start_ms),
        })
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now.send_modify(|now| *now += ms);
    }

    /// Sets the clock to `ms` (never backwards).
    pub fn set(&self, ms: i64) {
        self.now.send_modify(|now| *now = (*now).max(ms));
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline_ms: i64) {
        let mut rx = self.now.subscribe();
        // The sender lives as long as `self`, so this only returns once the deadline is met.
        let _ = rx.wait_for(|now| *now >= deadline_ms).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_their_time_comes() {
        let clock = ManualClock::new(1_000);
        let c = clock.clone();
        let sleeper = tokio::spawn(async move { c.sleep_until(6_000).await });
        tokio::task::yield_now().await;
        clock.advance(4_000);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(1_000);
        sleeper.await.unwrap();
        assert_eq!(clock.now_ms(), 6_000);
    }

    #[tokio::test]
    async fn a_notify_ends_the_sleep_early() {
        let clock = ManualClock::new(0);
        let wake = Arc::new(Notify::new());
        wake.notify_one();
        clock.sleep_until_or(Some(1_000_000), &wake).await;
        wake.notify_one();
        clock.sleep_until_or(None, &wake).await;
        SystemClock.sleep_until(0).await;
    }
}
