//! Where time comes from.
//!
//! Everything in the engine that depends on time asks a [`Clock`]: the real
//! one in production, a [`ManualClock`] in tests so expiry is tested without
//! sleeping.

use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

/// A source of the current time that can also wait for a moment to come.
#[async_trait]
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Returns once `deadline` has been reached (at once if it has passed).
    async fn sleep_until(&self, deadline: DateTime<Utc>);
}

/// The system's wall clock, waiting with tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        // Re-check after waking: the wall clock may have been adjusted.
        loop {
            let left = deadline - Utc::now();
            match left.to_std() {
                Ok(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
                _ => return,
            }
        }
    }
}

/// A clock that only moves when told to; sleepers wake when it passes their
/// deadline.
///
/// ```
/// # tokio_test_block_on(async {
/// use chrono::Duration;
/// use lease_core::{Clock, ManualClock};
/// let clock = ManualClock::default();
/// let start = clock.now();
/// clock.advance(Duration::minutes(5));
/// assert_eq!(clock.now() - start, Duration::minutes(5));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    ticks: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A manual clock that reads `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        let (ticks, _) = watch::channel(start);
        ManualClock {
            now: Mutex::new(start),
            ticks,
        }
    }

    /// Moves the clock forward by `by` and wakes the sleepers that are due.
    pub fn advance(&self, by: Duration) {
        let next = {
            let mut now = self
                .now
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *now += by;
            *now
        };
        self.ticks.send_replace(next);
    }

    /// Sets the clock to `at` (forward or back) and wakes the sleepers that are due.
    pub fn set(&self, at: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
        self.ticks.send_replace(at);
    }
}

impl Default for ManualClock {
    /// Starts at the current wall-clock time, truncated to the millisecond.
    fn default() -> Self {
        let now = Utc::now();
        let millis = now.timestamp_millis();
        ManualClock::new(DateTime::from_timestamp_millis(millis).unwrap_or(now))
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let mut ticks = self.ticks.subscribe();
        // `wait_for` checks the current value first, then every change.
        let _ = ticks.wait_for(|now| *now >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn manual_sleepers_wake_when_passed() {
        let clock = Arc::new(ManualClock::default());
        let deadline = clock.now() + Duration::seconds(10);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(deadline).await })
        };
        clock.advance(Duration::seconds(5));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::seconds(5));
        tokio::time::timeout(std::time::Duration::from_secs(1), sleeper)
            .await
            .expect("sleeper woke")
            .expect("no panic");
    }
}
