//! Shell sessions: the REST shapes, and an attached session's typed frames
//! (`/api/containers/{id}/sessions/{sid}/attach`).
//!
//! Output arrives as binary messages whose first byte is the channel
//! (1 stdout, 2 stderr); control messages are JSON text. The stream keeps
//! the output offset, so a dropped connection can be re-attached with
//! `?offset=` ([`SessionStream::offset`]) and nothing is lost that the
//! server still buffers.

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
pub use lease_http::shell::{
    ClientMessage, EndReason, ServerMessage, SessionJson, SessionRequest,
    SessionSummaryJson as SessionInfo, SessionsJson, SignalName as Signal,
};
use reqwest::Url;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::client::{Client, without_query};
use crate::error::ClientError;
use crate::ws::{self, Socket};

/// Most stdin bytes in one message (the server closes with 1009 above).
pub const MAX_STDIN_MESSAGE: usize = 64 * 1024;

/// Which output stream bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Standard output (all output of a terminal session).
    Stdout,
    /// Standard error.
    Stderr,
}

/// One message from an attached session, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// Output bytes, unchanged (any bytes, not necessarily UTF-8).
    Output {
        /// Where they were written.
        channel: Channel,
        /// The bytes.
        bytes: Bytes,
    },
    /// The first message: output from `offset` on follows; `missed` bytes
    /// asked for are no longer buffered.
    Attached {
        /// The session.
        session_id: String,
        /// Whether it has a terminal.
        tty: bool,
        /// Offset of the next output byte sent.
        offset: u64,
        /// Bytes asked for that the server no longer holds.
        missed: u64,
    },
    /// The process ended with `code` (after its last output).
    Exit {
        /// Its exit code.
        code: i64,
    },
    /// The session ended without an exit code of ours to report.
    Ended {
        /// Why.
        reason: EndReason,
        /// For people.
        message: String,
    },
    /// Another client attached; this one is let go (close code 4001).
    Detached {
        /// Why.
        reason: String,
    },
    /// The answer to [`SessionSender::ping`].
    Pong,
    /// The server refused a message of ours; the session goes on.
    Error {
        /// The API code (`invalid_message`, …).
        code: String,
        /// For people.
        message: String,
    },
    /// A JSON message of a type this client does not know (newer server).
    Unknown(serde_json::Value),
}

impl Frame {
    /// Whether the session is over after this frame (no re-attach makes sense).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Frame::Exit { .. } | Frame::Ended { .. } | Frame::Detached { .. }
        )
    }
}

/// Decodes one output message: channel byte, then the bytes.
fn output_frame(data: Bytes) -> Result<Frame, ClientError> {
    let channel = match data.first() {
        Some(1) => Channel::Stdout,
        Some(2) => Channel::Stderr,
        Some(other) => {
            return Err(ClientError::Protocol(format!(
                "output on unknown channel {other}"
            )));
        }
        None => return Err(ClientError::Protocol("an empty output message".to_owned())),
    };
    Ok(Frame::Output {
        channel,
        bytes: data.slice(1..),
    })
}

/// Decodes one control message.
fn control_frame(text: &str) -> Result<Frame, ClientError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| ClientError::Decode {
            what: "a control message",
            source,
        })?;
    Ok(
        match serde_json::from_value::<ServerMessage>(value.clone()) {
            Ok(ServerMessage::Attached {
                session_id,
                tty,
                offset,
                missed,
            }) => Frame::Attached {
                session_id,
                tty,
                offset,
                missed,
            },
            Ok(ServerMessage::Exit { code }) => Frame::Exit { code },
            Ok(ServerMessage::Ended { reason, message }) => Frame::Ended { reason, message },
            Ok(ServerMessage::Detached { reason }) => Frame::Detached { reason },
            Ok(ServerMessage::Pong) => Frame::Pong,
            Ok(ServerMessage::Error { code, message }) => Frame::Error { code, message },
            Err(_) => Frame::Unknown(value),
        },
    )
}

/// An attached session: its output and control frames, and a sender for
/// its input. Split, so reading and writing can happen in different tasks.
#[derive(Debug)]
pub struct Attachment {
    /// Input: stdin bytes, resize, signals, end of input.
    pub sender: SessionSender,
    /// Output and control frames.
    pub stream: SessionStream,
}

impl Attachment {
    pub(crate) async fn open(client: &Client, url: Url) -> Result<Self, ClientError> {
        let shown = without_query(&url);
        let offset = url
            .query_pairs()
            .find(|(key, _)| key == "offset")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let socket = ws::connect(client, url).await?;
        let (sink, stream) = socket.split();
        Ok(Attachment {
            sender: SessionSender {
                sink,
                url: shown.clone(),
            },
            stream: SessionStream {
                stream,
                url: shown,
                offset,
                finished: false,
                close: None,
            },
        })
    }
}

/// An attached session's frames, with the output offset kept.
#[derive(Debug)]
pub struct SessionStream {
    stream: SplitStream<Socket>,
    url: String,
    offset: u64,
    finished: bool,
    close: Option<(u16, String)>,
}

impl SessionStream {
    /// The next frame; `None` when the connection has closed. If no final
    /// frame ([`Frame::is_final`]) came before, the link dropped: attach
    /// again with [`SessionStream::offset`].
    pub async fn next(&mut self) -> Option<Result<Frame, ClientError>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(error) => {
                    tracing::debug!(url = %self.url, error = %error, "session socket failed");
                    return Some(Err(ClientError::websocket(&self.url, error)));
                }
            };
            let frame = match message {
                Message::Binary(data) => output_frame(data),
                Message::Text(text) => control_frame(text.as_str()),
                Message::Close(frame) => {
                    self.close = frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
                    return None;
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            match &frame {
                Ok(Frame::Attached { offset, .. }) => self.offset = *offset,
                Ok(Frame::Output { bytes, .. }) => {
                    self.offset = self.offset.saturating_add(bytes.len() as u64);
                }
                Ok(other) if other.is_final() => self.finished = true,
                _ => {}
            }
            return Some(frame);
        }
    }

    /// How many output bytes this client has: the `offset` to re-attach with.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether an exit, an end or a take-over was received.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The close code and reason, once the server closed the socket.
    pub fn close_frame(&self) -> Option<(u16, &str)> {
        self.close
            .as_ref()
            .map(|(code, reason)| (*code, reason.as_str()))
    }
}

/// The input half of an attached session.
#[derive(Debug)]
pub struct SessionSender {
    sink: SplitSink<Socket, Message>,
    url: String,
}

impl SessionSender {
    async fn send(&mut self, message: Message) -> Result<(), ClientError> {
        self.sink
            .send(message)
            .await
            .map_err(|e| ClientError::websocket(&self.url, e))
    }

    async fn control(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message).map_err(|source| ClientError::Decode {
            what: "a message to send",
            source,
        })?;
        self.send(Message::text(text)).await
    }

    /// Sends stdin bytes (in messages of at most [`MAX_STDIN_MESSAGE`]).
    pub async fn stdin(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        for chunk in bytes.chunks(MAX_STDIN_MESSAGE) {
            self.send(Message::binary(Bytes::copy_from_slice(chunk)))
                .await?;
        }
        Ok(())
    }

    /// Tells the terminal's new size.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ClientError> {
        self.control(&ClientMessage::Resize { cols, rows }).await
    }

    /// Sends a signal to the session's processes (mostly for sessions
    /// without a terminal; with one, Ctrl-C is the byte 0x03 on stdin).
    pub async fn signal(&mut self, signal: Signal) -> Result<(), ClientError> {
        self.control(&ClientMessage::Signal { name: signal }).await
    }

    /// Closes the process's stdin.
    pub async fn eof(&mut self) -> Result<(), ClientError> {
        self.control(&ClientMessage::Eof).await
    }

    /// An application-level ping (answered with [`Frame::Pong`]).
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        self.control(&ClientMessage::Ping).await
    }

    /// A WebSocket ping: keeps the link alive through proxies, and fails
    /// soon on a dead link.
    pub async fn ws_ping(&mut self) -> Result<(), ClientError> {
        self.send(Message::Ping(Bytes::new())).await
    }

    /// Closes the socket (the session goes on; attach again to resume).
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_output_by_channel() {
        let frame = output_frame(Bytes::from_static(b"\x02oops\xff")).expect("frame");
        assert_eq!(
            frame,
            Frame::Output {
                channel: Channel::Stderr,
                bytes: Bytes::from_static(b"oops\xff")
            }
        );
        assert!(output_frame(Bytes::new()).is_err());
        assert!(output_frame(Bytes::from_static(b"\x07x")).is_err());
    }

    #[test]
    fn decodes_control_messages() {
        assert_eq!(
            control_frame(
                r#"{"type":"attached","sessionId":"s","tty":true,"offset":5,"missed":2}"#
            )
            .expect("frame"),
            Frame::Attached {
                session_id: "s".into(),
                tty: true,
                offset: 5,
                missed: 2
            }
        );
        assert_eq!(
            control_frame(r#"{"type":"exit","code":3}"#).expect("frame"),
            Frame::Exit { code: 3 }
        );
        let ended =
            control_frame(r#"{"type":"ended","reason":"expired","message":"m"}"#).expect("frame");
        assert!(ended.is_final());
        assert!(matches!(
            control_frame(r#"{"type":"future","x":1}"#),
            Ok(Frame::Unknown(_))
        ));
        assert!(control_frame("not json").is_err());
    }

    #[test]
    fn encodes_control_messages() {
        let text = |m: &ClientMessage| serde_json::to_string(m).expect("json");
        assert_eq!(
            text(&ClientMessage::Resize {
                cols: 100,
                rows: 30
            }),
            r#"{"type":"resize","cols":100,"rows":30}"#
        );
        assert_eq!(
            text(&ClientMessage::Signal { name: Signal::Int }),
            r#"{"type":"signal","name":"INT"}"#
        );
        assert_eq!(text(&ClientMessage::Eof), r#"{"type":"eof"}"#);
        assert_eq!(text(&ClientMessage::Ping), r#"{"type":"ping"}"#);
    }
}
