//! The rate limit on mutating requests (POST, DELETE): one GCRA bucket per
//! caller, kept by the `governor` crate; over it, `429 rate_limited` with
//! `Retry-After` and nothing done.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{CallerKey, RateLimit};
use crate::error::ApiError;

/// How often buckets that are full again (their callers quiet) are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The buckets of every caller.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: DefaultKeyedRateLimiter<CallerKey>,
    /// Single-user mode: buckets per client IP rather than per owner.
    per_ip: bool,
}

impl RateLimiter {
    /// Buckets for `rate`, pruned in the background until `shutdown`.
    /// Must be called inside a Tokio runtime.
    pub(crate) fn start(rate: RateLimit, per_ip: bool, shutdown: CancellationToken) -> Arc<Self> {
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        let limiter = Arc::new(RateLimiter {
            buckets: DefaultKeyedRateLimiter::keyed(quota),
            per_ip,
        });
        tokio::spawn(prune(Arc::downgrade(&limiter), shutdown));
        limiter
    }

    /// `Ok` if `key` may go on now, else how long until it may.
    fn check(&self, key: &CallerKey) -> Result<(), Duration> {
        self.buckets
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Drops the buckets of callers that went quiet, so a stream of new client
/// addresses cannot grow the map for ever.
async fn prune(limiter: Weak<RateLimiter>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        limiter.buckets.retain_recent();
        limiter.buckets.shrink_to_fit();
    }
}

/// Middleware (inside authentication): spends one unit of the caller's
/// bucket on each POST or DELETE; other methods pass untouched.
pub(crate) async fn rate_limit(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    request: Request,
    next: Next,
) -> Response {
    let mutating = matches!(*request.method(), Method::POST | Method::DELETE);
    let Some(limiter) = limiter.filter(|_| mutating) else {
        return next.run(request).await;
    };
    let key = CallerKey::of(request.extensions(), limiter.per_ip);
    match limiter.check(&key) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            debug!(caller = %key, wait_ms = wait.as_millis() as u64, "rate limited");
            rate_limited(wait)
        }
    }
}

/// `429 rate_limited` with `Retry-After` in whole seconds (at least 1).
fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many changes in a short time; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (wait, expected) in [
            (Duration::from_millis(1), "1"),
            (Duration::from_millis(1000), "1"),
            (Duration::from_millis(1001), "2"),
            (Duration::ZERO, "1"),
        ] {
            let response = rate_limited(wait);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[RETRY_AFTER], expected, "{wait:?}");
        }
    }
}
