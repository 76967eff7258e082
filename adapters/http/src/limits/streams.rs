//! The cap on open streams per caller. A stream route takes a
//! [`StreamPermit`] as an extractor and keeps it for as long as the stream
//! lives; over the cap the request is answered `429 too_many_streams`
//! before any upgrade. The log WebSocket and the event stream use it; a
//! future stream route (a terminal) takes one the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::CallerKey;
use crate::AppState;
use crate::error::ApiError;

/// Open streams per caller.
#[derive(Debug)]
pub(crate) struct StreamLimiter {
    max: Option<u32>,
    /// Single-user mode: count per client IP rather than per owner.
    per_ip: bool,
    open: Mutex<HashMap<CallerKey, u32>>,
}

impl StreamLimiter {
    /// A limiter of at most `max` streams per caller (`None`: no cap).
    pub(crate) fn new(max: Option<u32>, per_ip: bool) -> Arc<Self> {
        Arc::new(StreamLimiter {
            max,
            per_ip,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<CallerKey, u32>> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn acquire(self: &Arc<Self>, key: CallerKey) -> Result<StreamPermit, ApiError> {
        let mut open = self.open();
        let count = open.entry(key.clone()).or_insert(0);
        if let Some(max) = self.max
            && *count >= max
        {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {max} streams may be open at once; close one first"),
            ));
        }
        *count += 1;
        Ok(StreamPermit {
            limiter: self.clone(),
            key,
        })
    }

    fn release(&self, key: &CallerKey) {
        let mut open = self.open();
        if let Some(count) = open.get_mut(key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(key);
            }
        }
    }

    /// Streams open now, all callers together.
    #[cfg(test)]
    fn total(&self) -> u32 {
        self.open().values().sum()
    }
}

/// One open stream of a caller, counted until dropped. Take it as a
/// handler argument (after the caller is authenticated) and move it into
/// the stream's task or body.
#[derive(Debug)]
pub struct StreamPermit {
    limiter: Arc<StreamLimiter>,
    key: CallerKey,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limiter.release(&self.key);
    }
}

impl FromRequestParts<AppState> for StreamPermit {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = CallerKey::of(&parts.extensions, state.streams.per_ip);
        state.streams.acquire(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_caller_and_released_on_drop() {
        let limiter = StreamLimiter::new(Some(2), false);
        let alice = || CallerKey::Owner("alice".into());
        let first = limiter.acquire(alice()).unwrap_or_else(|e| panic!("{e}"));
        let _second = limiter.acquire(alice()).unwrap_or_else(|e| panic!("{e}"));
        let refused = limiter.acquire(alice()).err();
        assert_eq!(
            refused.map(|e| (e.status, e.detail.code)),
            Some((StatusCode::TOO_MANY_REQUESTS, "too_many_streams".to_owned()))
        );
        // Another caller has its own count.
        let _bob = limiter
            .acquire(CallerKey::Owner("bob".into()))
            .unwrap_or_else(|e| panic!("{e}"));
        drop(first);
        assert!(limiter.acquire(alice()).is_ok());
        assert_eq!(limiter.total(), 2, "the dropped permits were released");
    }

    #[test]
    fn no_cap_admits_any_number() {
        let limiter = StreamLimiter::new(None, true);
        let permits: Vec<_> = (0..1000)
            .map(|_| limiter.acquire(CallerKey::Unknown))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(limiter.total(), 1000);
        drop(permits);
        assert!(limiter.open().is_empty(), "no entry is left behind");
    }
}
