//! TCP port-forward: a WebSocket tunnel to a port of a lease's container
//! (`/api/containers/{id}/ports/{port}/tcp`).
//!
//! [`Tunnel::pipe`] joins the tunnel to a local TCP connection (what `lease
//! port-forward` does for each connection it accepts); [`Tunnel::sender`]
//! and [`Tunnel::stream`] give the raw halves for anything else.

use bytes::BytesMut;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use lease_http::forward::prepare_message_buffer;
pub use lease_http::forward::{MAX_DATA_MESSAGE, READ_BUFFER, TunnelEnd, TunnelMessage};
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::client::without_query;
use crate::error::ClientError;
use crate::ws::{self, Socket};

/// What came through a tunnel from the container's side.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelEvent {
    /// Bytes from the port, unchanged.
    Data(Bytes),
    /// The port's side is done writing (half-close).
    Eof,
    /// The lease ended (or the server is stopping); the close follows.
    Ended {
        /// Why.
        reason: TunnelEnd,
        /// For people.
        message: String,
    },
}

/// How a tunnel ended (see [`TunnelStream::close_frame`] for the raw code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelClose {
    /// Both sides closed their half (close 1000), or the local side left.
    Closed,
    /// The lease ended or the server stopped.
    Ended {
        /// Why.
        reason: TunnelEnd,
        /// For people.
        message: String,
    },
    /// The server closed with an error (the TCP connection failed, a
    /// message it refused), or the link broke.
    Failed(String),
}

/// An open tunnel: one TCP connection to the lease's port.
#[derive(Debug)]
pub struct Tunnel {
    /// Toward the port.
    pub sender: TunnelSender,
    /// From the port.
    pub stream: TunnelStream,
}

impl Tunnel {
    pub(crate) async fn open(client: &crate::Client, url: Url) -> Result<Self, ClientError> {
        let shown = without_query(&url);
        let socket = ws::connect_with(client, url, tunnel_config()).await?;
        let (sink, stream) = socket.split();
        Ok(Tunnel {
            sender: TunnelSender {
                sink,
                url: shown.clone(),
            },
            stream: TunnelStream {
                stream,
                url: shown,
                close: None,
                ended: None,
            },
        })
    }

    /// Carries `local` over the tunnel both ways, half-closes included,
    /// until the connection is done on both sides, the lease ends, or
    /// either side fails.
    pub async fn pipe(self, local: TcpStream) -> TunnelClose {
        let _ = local.set_nodelay(true);
        let (local_read, local_write) = local.into_split();
        let Tunnel { sender, stream } = self;
        let upload = upload(local_read, sender);
        let download = download(stream, local_write);
        tokio::pin!(upload, download);
        let mut uploaded = false;
        loop {
            tokio::select! {
                done = &mut upload, if !uploaded => match done {
                    Ok(()) => uploaded = true,
                    // The local side failed: the tunnel is dropped (and closed).
                    Err(problem) => return TunnelClose::Failed(problem),
                },
                close = &mut download => return close,
            }
        }
    }
}

/// A tunnel's WebSocket buffering: socket reads of at most [`READ_BUFFER`]
/// (tungstenite zero-fills that much before each read; its default is
/// 128 KiB), as the server's end of the tunnel does.
fn tunnel_config() -> WebSocketConfig {
    ws::config().read_buffer_size(READ_BUFFER)
}

/// Local → tunnel, then `eof`.
async fn upload(mut local: OwnedReadHalf, mut sender: TunnelSender) -> Result<(), String> {
    // The local bytes are read straight into the message sent (no copy).
    let mut buffer = BytesMut::new();
    loop {
        // The last message was copied into the socket's output buffer as
        // it was sent: this takes its room back (no allocation), placed for
        // a cheap copy of the next.
        prepare_message_buffer(&mut buffer, true);
        let read = (&mut local)
            .take(MAX_DATA_MESSAGE as u64)
            .read_buf(&mut buffer)
            .await;
        match read {
            Ok(0) => break,
            Ok(_) => sender
                .message(Message::Binary(buffer.split().freeze()))
                .await
                .map_err(|e| e.to_string())?,
            Err(error) => {
                sender.close().await;
                return Err(format!("the local connection failed: {error}"));
            }
        }
    }
    sender.eof().await.map_err(|e| e.to_string())?;
    // Keep the sink (not closed): the server closes once the port is done too.
    std::future::pending::<()>().await;
    Ok(())
}

/// Tunnel → local, until the server closes.
async fn download(mut stream: TunnelStream, mut local: OwnedWriteHalf) -> TunnelClose {
    loop {
        match stream.next().await {
            Some(Ok(TunnelEvent::Data(bytes))) => {
                if let Err(error) = local.write_all(&bytes).await {
                    return TunnelClose::Failed(format!(
                        "writing to the local connection failed: {error}"
                    ));
                }
            }
            Some(Ok(TunnelEvent::Eof)) => {
                let _ = local.shutdown().await;
            }
            Some(Ok(TunnelEvent::Ended { .. })) => {}
            Some(Err(error)) => return TunnelClose::Failed(error.to_string()),
            None => return stream.outcome(),
        }
    }
}

/// The tunnel's input: bytes for the port, and the half-close.
#[derive(Debug)]
pub struct TunnelSender {
    sink: SplitSink<Socket, Message>,
    url: String,
}

impl TunnelSender {
    async fn message(&mut self, message: Message) -> Result<(), ClientError> {
        self.sink
            .send(message)
            .await
            .map_err(|e| ClientError::websocket(&self.url, e))
    }

    /// Sends bytes to the port (in messages of at most [`MAX_DATA_MESSAGE`]).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        for chunk in bytes.chunks(MAX_DATA_MESSAGE) {
            self.message(Message::binary(Bytes::copy_from_slice(chunk)))
                .await?;
        }
        Ok(())
    }

    /// Half-closes: the port reads end of file; its answers still come.
    pub async fn eof(&mut self) -> Result<(), ClientError> {
        self.message(Message::text(TunnelMessage::Eof.to_text()))
            .await
    }

    /// Closes the tunnel at once (the server drops the TCP connection).
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

/// The tunnel's output, with the server's close kept.
#[derive(Debug)]
pub struct TunnelStream {
    stream: SplitStream<Socket>,
    url: String,
    close: Option<(u16, String)>,
    ended: Option<(TunnelEnd, String)>,
}

impl TunnelStream {
    /// The next event; `None` once the socket has closed (see
    /// [`TunnelStream::outcome`]).
    pub async fn next(&mut self) -> Option<Result<TunnelEvent, ClientError>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(error) => return Some(Err(ClientError::websocket(&self.url, error))),
            };
            return Some(match message {
                Message::Binary(bytes) => Ok(TunnelEvent::Data(bytes)),
                Message::Text(text) => match serde_json::from_str(text.as_str()) {
                    Ok(TunnelMessage::Eof) => Ok(TunnelEvent::Eof),
                    Ok(TunnelMessage::Ended { reason, message }) => {
                        self.ended = Some((reason, message.clone()));
                        Ok(TunnelEvent::Ended { reason, message })
                    }
                    Err(_) => Err(ClientError::Protocol(format!(
                        "an unknown tunnel message: {}",
                        text.as_str().chars().take(200).collect::<String>()
                    ))),
                },
                Message::Close(frame) => {
                    self.close = frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
                    return None;
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            });
        }
    }

    /// The close code and reason, once the server closed the socket.
    pub fn close_frame(&self) -> Option<(u16, &str)> {
        self.close
            .as_ref()
            .map(|(code, reason)| (*code, reason.as_str()))
    }

    /// How the tunnel ended, from the messages and close frame seen.
    pub fn outcome(&self) -> TunnelClose {
        if let Some((reason, message)) = &self.ended {
            return TunnelClose::Ended {
                reason: *reason,
                message: message.clone(),
            };
        }
        match &self.close {
            Some((1000, _)) => TunnelClose::Closed,
            Some((code, reason)) => TunnelClose::Failed(format!("closed with {code}: {reason}")),
            None => TunnelClose::Failed("the connection to the server dropped".to_owned()),
        }
    }
}
