//! The one error shape of the API: `{"error":{"code","message"}}`.
//!
//! Every failure answers with it — the engine's errors, bad input, unknown
//! routes, wrong methods, oversized bodies and axum's own rejections — with a
//! 4xx status for what the caller got wrong and a 5xx only for our faults.

use axum::Json;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lease_core::{LeaseError, RuntimeError, StoreError, error::error_chain};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};
use utoipa::ToSchema;

/// The body of every error response.
///
/// ```json
/// {"error":{"code":"not_found","message":"no lease container-…"}}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code, message and, where it applies, the request field or quota limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid_json`, `validation_failed`,
    /// `not_found`, `quota_exceeded`, …).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault (`imageType`, `durationMinutes`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `quota_exceeded` (an owner's limit: `max_leases_per_owner`,
    /// `max_daily_spend`) and `capacity_exhausted` (the host's:
    /// `max_leases`, `max_cpus`, `max_memory`): the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// An error answered as JSON with its HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's `error` object.
    pub detail: ErrorDetail,
}

/// Seconds a client is told to wait (`Retry-After`) when the host is at
/// capacity: leases end and free room all the time, so a retry soon may fit.
pub const CAPACITY_RETRY_AFTER_SECS: u64 = 30;

/// Longest piece of caller input echoed back in a message.
const ECHO_MAX: usize = 80;

/// `text` cut to a length fit to echo in a message.
pub(crate) fn echo(text: &str) -> String {
    if text.chars().count() <= ECHO_MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(ECHO_MAX).collect();
        format!("{cut}…")
    }
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                field: None,
                limit: None,
            },
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422 `validation_failed` about `field`.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_field(field)
    }

    /// 404 `not_found` for a lease id (unknown, malformed or someone else's).
    pub fn no_lease(id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no lease {}", echo(id)),
        )
    }

    /// 401 `unauthorized` (answered with `WWW-Authenticate: Bearer`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 500 `internal`, logging the cause (which is not shown to the caller).
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        error!(error = %error_chain(cause), "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// The generic error for a bare `status` (used for responses that
    /// reached the client without a JSON body, such as axum's rejections).
    pub fn from_status(status: StatusCode, message: Option<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::NOT_ACCEPTABLE => "not_acceptable",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::URI_TOO_LONG => "uri_too_long",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
            StatusCode::UPGRADE_REQUIRED => "upgrade_required",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_client_error() => "bad_request",
            _ => "internal",
        };
        let message = message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        ApiError::new(status, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.detail.code,
            self.detail.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let at_capacity = self.detail.code == "capacity_exhausted";
        let mut response = (status, Json(ErrorBody { error: self.detail })).into_response();
        if at_capacity {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(CAPACITY_RETRY_AFTER_SECS));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"containerlease\""),
            );
        }
        response
    }
}

impl From<LeaseError> for ApiError {
    fn from(error: LeaseError) -> Self {
        match error {
            LeaseError::Invalid(invalid) => ApiError::invalid_field(
                field_name(invalid.field),
                format!("{}: {}", field_name(invalid.field), invalid.message),
            ),
            LeaseError::NotFound(id) => ApiError::no_lease(id.as_str()),
            LeaseError::WrongState {
                status, message, ..
            } => ApiError::new(
                StatusCode::CONFLICT,
                "wrong_state",
                format!("the lease is {status}: {message}"),
            ),
            LeaseError::QuotaExceeded { limit, message } => {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!("quota {limit} exceeded: {message}"),
                );
                error.detail.limit = Some(limit.to_owned());
                error
            }
            LeaseError::CapacityExhausted { limit, message } => {
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "capacity_exhausted",
                    format!("capacity {limit} exhausted: {message}"),
                );
                error.detail.limit = Some(limit.to_owned());
                error
            }
            LeaseError::Transition(transition) => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", transition.to_string())
            }
            LeaseError::Store(StoreError::InvalidCursor(_)) => {
                ApiError::bad_request("cursor is not valid")
            }
            LeaseError::Store(StoreError::InvalidRange(range)) => {
                ApiError::bad_request(range.to_string())
            }
            LeaseError::Store(StoreError::Conflict { .. }) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the lease changed concurrently; try again",
            ),
            LeaseError::Store(StoreError::Unavailable(source)) => {
                warn!(error = %error_chain(source.as_ref()), "lease store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the lease store cannot be reached; try again shortly",
                )
            }
            LeaseError::Runtime(runtime) => from_runtime(runtime),
            other => ApiError::internal(&other),
        }
    }
}

fn from_runtime(error: RuntimeError) -> ApiError {
    match error {
        RuntimeError::Unavailable { .. } => {
            warn!(error = %error_chain(&error), "container runtime unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "runtime_unavailable",
                "the container runtime cannot be reached; try again shortly",
            )
        }
        RuntimeError::NotFound { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "wrong_state",
            "the lease's container is gone",
        ),
        RuntimeError::Invalid(message) => ApiError::bad_request(message),
        other => ApiError::internal(&other),
    }
}

/// The engine names fields as the seed does, except a few internal ones.
fn field_name(field: &str) -> &str {
    match field {
        "max_minutes" => "durationMinutes",
        other => other,
    }
}

/// Whether a response already carries a JSON body.
pub(crate) fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}
