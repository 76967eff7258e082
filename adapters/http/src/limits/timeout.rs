//! The request timeout of non-streaming routes: a handler that has not
//! answered in time is dropped and the caller gets `503 request_timeout`.
//! Stream routes (SSE, WebSockets) do not take it: their answer is quick
//! and what follows is bounded by the stream limits and the connection's
//! idle timeout.
//!
//! The timing is tower-http's [`TimeoutLayer`]: it answers an empty `503`,
//! which the router's JSON error conversion turns into our error body
//! ([`timed_out`]); every other 503 of ours already has a JSON body.

use std::time::Duration;

use axum::http::StatusCode;
use tower_http::timeout::TimeoutLayer;
use tracing::warn;

use crate::error::ApiError;

/// The layer that times a non-streaming route out after `limit`.
pub(crate) fn request_timeout(limit: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limit)
}

/// The answer to a request the timeout layer cut.
pub(crate) fn timed_out(limit: Duration) -> ApiError {
    warn!(limit_ms = limit.as_millis() as u64, "a request timed out");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "request_timeout",
        format!(
            "the server did not answer within {} s; try again",
            limit.as_secs_f64()
        ),
    )
}
