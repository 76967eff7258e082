//! [`LogStream`]: a lease's container output over `/ws/logs/{id}`.

use futures::StreamExt;
use reqwest::Url;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{Client, without_query};
use crate::error::ClientError;
use crate::ws::{self, Socket};

/// Lines of a container's output, as the server sends them: the last
/// `tail`, then new ones until the container stops or the lease ends.
#[derive(Debug)]
pub struct LogStream {
    socket: Socket,
    url: String,
    closed: Option<String>,
}

impl LogStream {
    pub(crate) async fn open(client: &Client, url: Url) -> Result<Self, ClientError> {
        let shown = without_query(&url);
        let socket = ws::connect(client, url).await?;
        Ok(LogStream {
            socket,
            url: shown,
            closed: None,
        })
    }

    /// The next line; `None` once the server closed the stream normally
    /// ([`LogStream::close_reason`] says why). A close for an error
    /// (`cannot read the container's logs`) is an `Err`.
    pub async fn next_line(&mut self) -> Option<Result<String, ClientError>> {
        while let Some(message) = self.socket.next().await {
            match message {
                Ok(Message::Text(text)) => return Some(Ok(text.as_str().to_owned())),
                Ok(Message::Binary(bytes)) => {
                    return Some(Ok(String::from_utf8_lossy(&bytes).into_owned()));
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame.map_or((CloseCode::Normal, String::new()), |f| {
                        (f.code, f.reason.as_str().to_owned())
                    });
                    self.closed = Some(reason.clone());
                    return match code {
                        CloseCode::Normal | CloseCode::Away => None,
                        other => Some(Err(ClientError::Protocol(format!(
                            "the log stream ended with close code {}: {reason}",
                            u16::from(other)
                        )))),
                    };
                }
                Ok(_) => {}
                Err(error) => return Some(Err(ClientError::websocket(&self.url, error))),
            }
        }
        None
    }

    /// Why the server closed the stream (`lease ended`, `container
    /// stopped`, …), once it has.
    pub fn close_reason(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Closes the stream (best effort).
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
