//! The request timeout of non-streaming routes: a handler that has not
//! answered in time is dropped and the caller gets `503 request_timeout`.
//! Stream routes (SSE, WebSockets) do not take it: their answer is quick
//! and what follows is bounded by the stream limits and the connection's
//! idle timeout.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::error::ApiError;

/// Middleware: answers `503 request_timeout` when the request takes longer
/// than `limit`.
pub(crate) async fn request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            warn!(%method, path = %crate::error::echo(uri.path()), limit_ms = limit.as_millis() as u64, "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "the server did not answer within {} s; try again",
                    limit.as_secs_f64()
                ),
            )
            .into_response()
        }
    }
}
