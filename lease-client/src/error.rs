//! What can go wrong talking to a lease-server.

use lease_http::error::ErrorBody;

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error (`{"error":{"code","message"}}`).
    #[error("the lease-server answered HTTP {status} ({code}): {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's stable error code (`not_found`, `quota_exceeded`, …).
        code: String,
        /// The API's message for people.
        message: String,
        /// The request field at fault, if the server named one.
        field: Option<String>,
        /// Seconds to wait before retrying (`Retry-After`), if given.
        retry_after: Option<u64>,
    },
    /// The server URL is not an `http(s)://` URL.
    #[error("invalid server URL `{url}`: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("cannot reach the lease-server at {url}")]
    Transport {
        /// The URL called.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// A WebSocket could not be opened or broke.
    #[error("WebSocket to {url} failed")]
    WebSocket {
        /// The URL (without query).
        url: String,
        /// Why.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server's JSON is not the shape this client knows.
    #[error("unexpected answer from the lease-server: {what}")]
    Decode {
        /// What was being read.
        what: &'static str,
        /// Why it did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// A message could not be encoded as JSON.
    #[error("cannot encode a message for the lease-server")]
    Encode(#[source] serde_json::Error),
    /// The server broke the protocol in another way (an output message on
    /// an unknown channel, a close for an error).
    #[error("unexpected answer from the lease-server: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's error code (`not_found`, `unauthorized`, …) of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the server said there is no such thing (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// An API error from a status and a body that may or may not be the
    /// API's error JSON (a proxy's HTML page, for one).
    pub(crate) fn from_answer(status: u16, body: &[u8], retry_after: Option<u64>) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => ClientError::Api {
                status,
                code: error.code,
                message: error.message,
                field: error.field,
                retry_after,
            },
            Err(_) => {
                let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
                ClientError::Api {
                    status,
                    code: format!("http_{status}"),
                    message: if text.trim().is_empty() {
                        format!("HTTP {status} without an explanation")
                    } else {
                        text.trim().to_owned()
                    },
                    field: None,
                    retry_after,
                }
            }
        }
    }

    pub(crate) fn websocket(url: &str, source: tokio_tungstenite::tungstenite::Error) -> Self {
        ClientError::WebSocket {
            url: url.to_owned(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_api_error_shape() {
        let error = ClientError::from_answer(
            404,
            br#"{"error":{"code":"not_found","message":"no lease x"}}"#,
            None,
        );
        assert_eq!(error.status(), Some(404));
        assert_eq!(error.code(), Some("not_found"));
        assert!(error.is_not_found());
        assert_eq!(
            error.to_string(),
            "the lease-server answered HTTP 404 (not_found): no lease x"
        );
    }

    #[test]
    fn keeps_a_foreign_body_short() {
        let body = "<html>".repeat(100);
        let error = ClientError::from_answer(502, body.as_bytes(), Some(3));
        assert_eq!(error.code(), Some("http_502"));
        match error {
            ClientError::Api {
                message,
                retry_after,
                ..
            } => {
                assert_eq!(message.chars().count(), 200);
                assert_eq!(retry_after, Some(3));
            }
            other => panic!("{other:?}"),
        }
    }
}
