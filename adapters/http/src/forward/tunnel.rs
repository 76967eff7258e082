//! The upgraded tunnel: bytes from the container's port out as binary
//! messages, the client's binary messages into the port, half-closes as
//! `eof` messages, until both sides are done, one fails, or the lease ends.
//!
//! Two halves run side by side: `inbound` (client → port) writes into the
//! TCP connection and tells `outbound` (port → client, the only writer of
//! the socket) what happened on its side through a small channel. Each
//! direction is back-pressured on its own: a client that stops reading
//! stalls only the port's output, a port that stops reading only the
//! client's input. Data sends have no timeout (a paused reader is normal
//! on a TCP connection); the lease's end or the server's shutdown
//! interrupts them.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::BytesMut;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use lease_core::{EndReason, LeaseId, LeaseManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{
    CLOSE_ERROR, CLOSE_LEASE_ENDED, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG, MAX_DATA_MESSAGE,
    TunnelEnd, TunnelMessage, prepare_message_buffer,
};

type Sink = SplitSink<WebSocket, Message>;

/// Longest wait for the client's close after ours.
const LINGER: Duration = Duration::from_secs(2);

/// How a tunnel behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TunnelSettings {
    /// Interval of the server's WebSocket pings.
    pub(crate) keepalive: Duration,
    /// Longest wait for the client to take a ping or the closing messages.
    pub(crate) send_timeout: Duration,
}

/// What ends a tunnel from outside, and how to tell why.
#[derive(Debug)]
pub(crate) struct Ends {
    /// Cancelled when the lease ends (a child of `shutdown`).
    pub(crate) lease: CancellationToken,
    /// Cancelled when the server stops.
    pub(crate) shutdown: CancellationToken,
    /// To read how the lease ended.
    pub(crate) manager: LeaseManager,
    /// The lease.
    pub(crate) lease_id: LeaseId,
}

impl Ends {
    /// Why the tunnel ends, once `lease` is cancelled.
    async fn why(&self) -> (TunnelEnd, &'static str) {
        if self.shutdown.is_cancelled() {
            return (TunnelEnd::Shutdown, "the server is stopping");
        }
        match self.manager.get(&self.lease_id).await.map(|l| l.end_reason) {
            Ok(Some(EndReason::Expired)) => (
                TunnelEnd::Expired,
                "the lease expired: its container was removed",
            ),
            Ok(Some(EndReason::Exited)) => (TunnelEnd::Deleted, "the lease's container stopped"),
            _ => (
                TunnelEnd::Deleted,
                "the lease was deleted: its container was removed",
            ),
        }
    }
}

/// What the inbound half tells the outbound half.
#[derive(Debug)]
enum Inbound {
    /// The client half-closed: the port got its FIN.
    Eof,
    /// The client closed the socket or went away.
    Gone,
    /// The tunnel must close with this code and reason.
    Fail(u16, String),
}

/// Carries `stream` over `socket` until the connection is done.
pub(crate) async fn run(
    socket: WebSocket,
    stream: TcpStream,
    ends: Ends,
    settings: TunnelSettings,
) {
    let (sink, incoming) = socket.split();
    let (port_read, port_write) = stream.into_split();
    let (tell, told) = mpsc::channel(2);
    debug!("tunnel open");
    let inbound = inbound(incoming, port_write, tell);
    let outbound = outbound(sink, port_read, told, &ends, settings);
    tokio::pin!(inbound, outbound);
    let mut inbound_done = false;
    let close = loop {
        tokio::select! {
            () = &mut inbound, if !inbound_done => inbound_done = true,
            close = &mut outbound => break close,
        }
    };
    if !inbound_done {
        // The closing handshake: read on until the client's close (or its
        // end), so the socket is not dropped with the client's late bytes
        // (pongs, its close) unread — the kernel would answer them with a
        // reset, which can discard our last messages before the client
        // reads them.
        let _ = tokio::time::timeout(LINGER, &mut inbound).await;
    }
    debug!(code = close.0, reason = %close.1, "tunnel closed");
}

/// Client → port, until the client closes, half-closes or fails.
async fn inbound(
    mut incoming: SplitStream<WebSocket>,
    mut port: OwnedWriteHalf,
    tell: mpsc::Sender<Inbound>,
) {
    let mut eof = false;
    let outcome = loop {
        let message = match incoming.next().await {
            None | Some(Ok(Message::Close(_))) => break Inbound::Gone,
            Some(Err(error)) => {
                debug!(%error, "tunnel client message refused");
                break Inbound::Fail(CLOSE_TOO_BIG, "message too big or not valid".to_owned());
            }
            Some(Ok(message)) => message,
        };
        match message {
            Message::Binary(_) if eof => {
                break Inbound::Fail(CLOSE_POLICY, "data after eof".to_owned());
            }
            Message::Binary(bytes) => {
                if let Err(error) = port.write_all(&bytes).await {
                    break Inbound::Fail(
                        CLOSE_ERROR,
                        format!("writing to the port failed: {error}"),
                    );
                }
            }
            Message::Text(text) => match serde_json::from_str::<TunnelMessage>(text.as_str()) {
                Ok(TunnelMessage::Eof) if !eof => {
                    eof = true;
                    if let Err(error) = port.shutdown().await {
                        break Inbound::Fail(
                            CLOSE_ERROR,
                            format!("closing the port's input failed: {error}"),
                        );
                    }
                    if tell.send(Inbound::Eof).await.is_err() {
                        return;
                    }
                }
                Ok(TunnelMessage::Eof) => {}
                Ok(TunnelMessage::Ended { .. }) | Err(_) => {
                    break Inbound::Fail(
                        CLOSE_POLICY,
                        "text messages must be {\"type\":\"eof\"}".to_owned(),
                    );
                }
            },
            // Pings are answered by the WebSocket layer; pongs answer ours.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    };
    let _ = tell.send(outcome).await;
}

/// Port → client, and the socket's closing; returns the close sent.
async fn outbound(
    mut sink: Sink,
    mut port: OwnedReadHalf,
    mut told: mpsc::Receiver<Inbound>,
    ends: &Ends,
    settings: TunnelSettings,
) -> (u16, String) {
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.keepalive,
        settings.keepalive,
    );
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut port_eof, mut client_eof) = (false, false);
    // The port's bytes are read straight into the message sent (no copy).
    let mut buffer = BytesMut::new();
    loop {
        // The last message's bytes were copied into the socket's output
        // buffer as it was sent: this takes their room back (no allocation),
        // placed for a cheap copy of the next.
        prepare_message_buffer(&mut buffer, false);
        let next = tokio::select! {
            biased;
            () = ends.lease.cancelled() => return lease_ended(&mut sink, ends, settings).await,
            said = told.recv() => match said {
                Some(Inbound::Eof) => {
                    client_eof = true;
                    None
                }
                Some(Inbound::Fail(code, reason)) => {
                    return close(&mut sink, code, reason, settings).await;
                }
                Some(Inbound::Gone) | None => {
                    let _ = tokio::time::timeout(settings.send_timeout, sink.close()).await;
                    return (CLOSE_NORMAL, "the client left".to_owned());
                }
            },
            read = read_some(&mut port, &mut buffer), if !port_eof => match read {
                Ok(0) => {
                    port_eof = true;
                    Some(Message::Text(TunnelMessage::Eof.to_text().into()))
                }
                Ok(_) => Some(Message::Binary(buffer.split().freeze())),
                Err(error) => {
                    let reason = format!("the connection to the port failed: {error}");
                    return close(&mut sink, CLOSE_ERROR, reason, settings).await;
                }
            },
            _ = pings.tick() => Some(Message::Ping(Bytes::new())),
        };
        if let Some(message) = next {
            tokio::select! {
                biased;
                () = ends.lease.cancelled() => return lease_ended(&mut sink, ends, settings).await,
                sent = sink.send(message) => if sent.is_err() {
                    return (CLOSE_NORMAL, "the client went away".to_owned());
                },
            }
        }
        if port_eof && client_eof {
            return close(&mut sink, CLOSE_NORMAL, "closed".to_owned(), settings).await;
        }
    }
}

/// Reads what the port has, at most [`MAX_DATA_MESSAGE`] bytes, onto the
/// end of `buffer` (into its spare room: nothing is zero-filled or copied).
async fn read_some(port: &mut OwnedReadHalf, buffer: &mut BytesMut) -> std::io::Result<usize> {
    port.take(MAX_DATA_MESSAGE as u64).read_buf(buffer).await
}

/// Says why the lease ended, then closes with 1001 and the reason's name.
async fn lease_ended(sink: &mut Sink, ends: &Ends, settings: TunnelSettings) -> (u16, String) {
    let (reason, message) = ends.why().await;
    let ended = TunnelMessage::Ended {
        reason,
        message: message.to_owned(),
    };
    let _ = tokio::time::timeout(
        settings.send_timeout,
        sink.send(Message::Text(ended.to_text().into())),
    )
    .await;
    close(
        sink,
        CLOSE_LEASE_ENDED,
        reason.as_str().to_owned(),
        settings,
    )
    .await
}

/// Sends a close frame (the reason cut to what a close frame holds).
async fn close(
    sink: &mut Sink,
    code: u16,
    mut reason: String,
    settings: TunnelSettings,
) -> (u16, String) {
    // A close frame's reason has at most 123 bytes.
    while reason.len() > 123 {
        reason.pop();
    }
    let frame = CloseFrame {
        code,
        reason: reason.clone().into(),
    };
    let _ = tokio::time::timeout(settings.send_timeout, async {
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.close().await;
    })
    .await;
    (code, reason)
}
