//! The loopback listener of a browser sign-in: `http://127.0.0.1:P/callback`
//! on a port the system picks, waiting for the one answer whose `state` is
//! this sign-in's. Requests with another state (or none) get a 400 page and
//! are otherwise ignored, so nothing else on this machine can end the wait
//! early; the first answer with the right state ends it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, oneshot};

use super::pkce::same;
use crate::error::CliError;

/// What the browser brought back.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The one-time code to trade for a token.
    Code(String),
    /// The person refused, or the server gave up (its `error`).
    Refused(String),
}

/// The callback's query.
#[derive(Debug, Default, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// What the handler shares.
struct Shared {
    state: String,
    answer: Mutex<Option<oneshot::Sender<Answer>>>,
}

/// A listener on 127.0.0.1 waiting for the browser.
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Binds 127.0.0.1 on a free port.
    pub async fn bind() -> Result<Listener, CliError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| CliError::io("cannot listen on 127.0.0.1 for the browser", e))?;
        Ok(Listener { listener })
    }

    /// The port the browser comes back to.
    pub fn port(&self) -> Result<u16, CliError> {
        self.listener
            .local_addr()
            .map(|address: SocketAddr| address.port())
            .map_err(|e| CliError::io("cannot read the loopback port", e))
    }

    /// Serves `/callback` until an answer with `state` arrives, and
    /// returns it. The listener stops when this future is dropped (the
    /// caller's time limit or Ctrl-C).
    pub async fn wait(self, state: &str) -> Result<Answer, CliError> {
        let (send, receive) = oneshot::channel();
        let shared = Arc::new(Shared {
            state: state.to_owned(),
            answer: Mutex::new(Some(send)),
        });
        let app = Router::new()
            .route("/callback", get(callback))
            .with_state(shared);
        let server = axum::serve(self.listener, app);
        tokio::select! {
            answer = receive => answer.map_err(|_| CliError::SignIn("the loopback listener stopped".to_owned())),
            served = server => Err(match served {
                Ok(()) => CliError::SignIn("the loopback listener stopped".to_owned()),
                Err(error) => CliError::io("the loopback listener failed", error),
            }),
        }
    }
}

async fn callback(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Callback>, QueryRejection>,
) -> Response {
    let callback = query.map(|Query(callback)| callback).unwrap_or_default();
    let ours = callback
        .state
        .as_deref()
        .is_some_and(|state| same(state, &shared.state));
    if !ours {
        tracing::debug!("a loopback request without this sign-in's state: ignored");
        return page(
            StatusCode::BAD_REQUEST,
            "This is not the sign-in `lease login` is waiting for. Nothing was done.",
        );
    }
    let (answer, response) = match (callback.code, callback.error) {
        (_, Some(error)) => (
            Answer::Refused(error),
            page(
                StatusCode::OK,
                "Sign-in refused: `lease login` stops. You can close this tab.",
            ),
        ),
        (Some(code), None) if !code.is_empty() => (
            Answer::Code(code),
            page(
                StatusCode::OK,
                "Signed in: you can close this tab and go back to the terminal.",
            ),
        ),
        _ => (
            Answer::Refused("no code in the answer".to_owned()),
            page(
                StatusCode::BAD_REQUEST,
                "The answer has no code: `lease login` stops.",
            ),
        ),
    };
    if let Some(send) = shared.answer.lock().await.take() {
        let _ = send.send(answer);
    }
    response
}

/// A small fixed page (nothing from the request is echoed).
fn page(status: StatusCode, text: &'static str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>lease login</title>\
         </head><body><p>{text}</p></body></html>"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// `GET target` on the listener; the answer's status line.
    async fn get(port: u16, target: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .expect("connect to the listener");
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("answer");
        answer.lines().next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn only_the_answer_with_our_state_ends_the_wait() {
        let listener = Listener::bind().await.expect("bind");
        let port = listener.port().expect("port");
        let waiting = tokio::spawn(listener.wait("our-state-0123456789"));
        for stray in [
            "/callback?code=evil",
            "/callback?code=evil&state=other-state",
            "/callback?code=evil&state=our-state-012345678",
            "/callback",
        ] {
            assert!(get(port, stray).await.contains("400"), "{stray}");
        }
        assert!(get(port, "/elsewhere").await.contains("404"));
        assert!(!waiting.is_finished());
        let ok = get(port, "/callback?code=K1&state=our-state-0123456789").await;
        assert!(ok.contains("200"), "{ok}");
        let answer = waiting.await.expect("joined").expect("an answer");
        assert_eq!(answer, Answer::Code("K1".to_owned()));
    }

    #[tokio::test]
    async fn a_refusal_with_our_state_ends_the_wait() {
        let listener = Listener::bind().await.expect("bind");
        let port = listener.port().expect("port");
        let waiting = tokio::spawn(listener.wait("s-0123456789abcdef"));
        get(
            port,
            "/callback?error=access_denied&state=s-0123456789abcdef",
        )
        .await;
        let answer = waiting.await.expect("joined").expect("an answer");
        assert_eq!(answer, Answer::Refused("access_denied".to_owned()));
    }
}
