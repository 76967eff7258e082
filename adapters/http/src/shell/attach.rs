//! The attached socket: replays what the client missed, then carries
//! output out and stdin, resize, signals and keepalives in, until the
//! session ends, the client goes, or another socket takes over.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::frames::{ClientMessage, ServerMessage, parse_client};
use super::registry::Registry;
use super::replay::Chunk;
use super::session::{Attached, Session, SessionEnd, StdinCommand, StdinRefused};

/// Normal closure.
const CLOSE_NORMAL: u16 = 1000;
/// The client sent a message over the size limit (or a broken one).
const CLOSE_TOO_BIG: u16 = 1009;
/// Another socket attached to the session.
pub(crate) const CLOSE_TAKEN_OVER: u16 = 4001;
/// Largest output payload of one binary message.
const MAX_OUTPUT_MESSAGE: usize = 64 * 1024;

type Sink = SplitSink<WebSocket, Message>;

/// How an attached socket behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketSettings {
    /// Interval of the server's WebSocket pings.
    pub(crate) keepalive: Duration,
    /// Longest wait for a client to take one message.
    pub(crate) send_timeout: Duration,
}

/// Why the socket loop stopped.
enum Stop {
    /// The session's end was delivered.
    Delivered,
    /// The client left or stopped reading: the session stays for a re-attach.
    Detached,
}

/// A socket attached to `session` with `offset` output bytes already.
pub(crate) async fn run(
    session: Arc<Session>,
    registry: Arc<Registry>,
    socket: WebSocket,
    offset: u64,
    settings: SocketSettings,
) {
    let (mut sink, mut incoming) = socket.split();
    let attached = session.attach(offset);
    let generation = attached.generation;
    debug!(
        lease_id = %session.info.lease_id,
        owner = %session.info.owner,
        session_id = %session.info.id,
        offset = attached.replay.from,
        missed = attached.replay.missed,
        "shell socket attached"
    );
    let stop = serve(&session, attached, &mut sink, &mut incoming, settings).await;
    match stop {
        Stop::Delivered => registry.remove(&session.info.id),
        Stop::Detached => {
            session.detach(generation);
            debug!(session_id = %session.info.id, "shell socket detached");
        }
    }
}

async fn serve(
    session: &Session,
    attached: Attached,
    sink: &mut Sink,
    incoming: &mut SplitStream<WebSocket>,
    settings: SocketSettings,
) -> Stop {
    let Attached {
        replay,
        mut output,
        taken_over,
        mut end,
        ..
    } = attached;
    let hello = ServerMessage::Attached {
        session_id: session.info.id.clone(),
        tty: session.info.tty,
        offset: replay.from,
        missed: replay.missed,
    };
    if send_text(sink, &hello, settings).await.is_err() {
        return Stop::Detached;
    }
    for message in coalesce(replay.chunks) {
        if send(sink, message, settings).await.is_err() {
            return Stop::Detached;
        }
    }
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.keepalive,
        settings.keepalive,
    );
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = taken_over.cancelled() => {
                let detached = ServerMessage::Detached { reason: "attached elsewhere".to_owned() };
                let _ = send_text(sink, &detached, settings).await;
                close(sink, CLOSE_TAKEN_OVER, "attached elsewhere").await;
                // The new socket holds the session now.
                return Stop::Detached;
            }
            chunk = output.recv() => {
                let mut next = chunk;
                if next.is_none() {
                    return Stop::Detached;
                }
                while let Some(chunk) = next {
                    let (message, rest) = output_message(chunk, &mut output);
                    if send(sink, message, settings).await.is_err() {
                        return Stop::Detached;
                    }
                    next = rest;
                }
            }
            finished = wait_end(&mut end) => {
                let Some(finished) = finished else { return Stop::Detached };
                return deliver(sink, &finished, settings).await;
            }
            message = incoming.next() => {
                match message {
                    None | Some(Ok(Message::Close(_))) => return Stop::Detached,
                    Some(Err(error)) => {
                        debug!(session_id = %session.info.id, error = %error, "shell client message refused");
                        close(sink, CLOSE_TOO_BIG, "message too big or not valid").await;
                        return Stop::Detached;
                    }
                    Some(Ok(message)) => {
                        if let Some(reply) = handle(session, message).await
                            && send_text(sink, &reply, settings).await.is_err()
                        {
                            return Stop::Detached;
                        }
                    }
                }
            }
            _ = pings.tick() => {
                if send(sink, Message::Ping(Bytes::new()), settings).await.is_err() {
                    return Stop::Detached;
                }
            }
        }
    }
}

/// The session's end, once it has one (`None`: the session is gone).
async fn wait_end(end: &mut watch::Receiver<Option<SessionEnd>>) -> Option<SessionEnd> {
    end.wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|e| e.clone())
}

/// Sends the session's end and closes normally.
async fn deliver(sink: &mut Sink, end: &SessionEnd, settings: SocketSettings) -> Stop {
    if send_text(sink, &end.message(), settings).await.is_err() {
        return Stop::Detached;
    }
    close(sink, CLOSE_NORMAL, "session ended").await;
    Stop::Delivered
}

/// Acts on one client message; returns the reply, if any.
async fn handle(session: &Session, message: Message) -> Option<ServerMessage> {
    match message {
        Message::Binary(bytes) => {
            if bytes.is_empty() {
                return None;
            }
            stdin(session, StdinCommand::Data(bytes))
        }
        Message::Text(text) => match parse_client(text.as_str()) {
            Ok(message) => command(session, message).await,
            Err(problem) => Some(ServerMessage::invalid(problem)),
        },
        // Pongs answer our pings; pings are answered by the WebSocket layer.
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => None,
    }
}

async fn command(session: &Session, message: ClientMessage) -> Option<ServerMessage> {
    match message {
        ClientMessage::Ping => Some(ServerMessage::Pong),
        ClientMessage::Eof => stdin(session, StdinCommand::Eof),
        ClientMessage::Resize { cols, rows } => {
            if !session.info.tty {
                return Some(ServerMessage::invalid(
                    "this session has no terminal to resize",
                ));
            }
            if let Err(error) = session.resize(cols, rows).await {
                debug!(session_id = %session.info.id, error = %error.chain(), "shell resize failed");
            }
            None
        }
        ClientMessage::Signal { name } => match session.signal(name).await {
            Ok(()) => None,
            Err(error) => {
                warn!(session_id = %session.info.id, error = %error.chain(), "shell signal failed");
                Some(ServerMessage::Error {
                    code: "signal_failed".to_owned(),
                    message: format!("the {} signal could not be sent", name.as_str()),
                })
            }
        },
    }
}

fn stdin(session: &Session, command: StdinCommand) -> Option<ServerMessage> {
    let refused = session.send_stdin(command).err()?;
    let (code, message) = match refused {
        StdinRefused::Full => (
            "input_overflow",
            "the process is not reading its input: this message was dropped",
        ),
        StdinRefused::Closed => ("input_closed", "the process's input is closed"),
    };
    Some(ServerMessage::Error {
        code: code.to_owned(),
        message: message.to_owned(),
    })
}

/// One binary message: the channel byte, then the bytes.
fn frame(channel: u8, parts: &[Bytes]) -> Message {
    let length: usize = parts.iter().map(Bytes::len).sum();
    let mut payload = Vec::with_capacity(length + 1);
    payload.push(channel);
    for part in parts {
        payload.extend_from_slice(part);
    }
    Message::Binary(payload.into())
}

/// `first` and whatever more output of the same channel is already queued,
/// up to [`MAX_OUTPUT_MESSAGE`], as one message (fewer, larger messages
/// under a burst of output); also the first queued chunk of another
/// channel, which goes in a message of its own.
fn output_message(first: Chunk, queue: &mut mpsc::Receiver<Chunk>) -> (Message, Option<Chunk>) {
    let channel = first.channel;
    let mut length = first.bytes.len();
    let mut parts = vec![first.bytes];
    // Only look at what is queued; never wait for more.
    while length < MAX_OUTPUT_MESSAGE {
        match queue.try_recv() {
            Ok(next) if next.channel == channel => {
                length += next.bytes.len();
                parts.push(next.bytes);
            }
            Ok(next) => return (frame(channel, &parts), Some(next)),
            Err(_) => break,
        }
    }
    (frame(channel, &parts), None)
}

/// The replay's chunks as messages, neighbours of one channel joined.
fn coalesce(chunks: Vec<Chunk>) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut parts: Vec<Bytes> = Vec::new();
    let mut channel = 0;
    let mut length = 0;
    for chunk in chunks {
        if !parts.is_empty()
            && (chunk.channel != channel || length + chunk.bytes.len() > MAX_OUTPUT_MESSAGE)
        {
            messages.push(frame(channel, &parts));
            parts.clear();
            length = 0;
        }
        channel = chunk.channel;
        length += chunk.bytes.len();
        parts.push(chunk.bytes);
    }
    if !parts.is_empty() {
        messages.push(frame(channel, &parts));
    }
    messages
}

async fn send_text(
    sink: &mut Sink,
    message: &ServerMessage,
    settings: SocketSettings,
) -> Result<(), ()> {
    send(sink, Message::Text(message.to_text().into()), settings).await
}

/// Sends one message, giving up on a client that does not take it in time.
async fn send(sink: &mut Sink, message: Message, settings: SocketSettings) -> Result<(), ()> {
    match tokio::time::timeout(settings.send_timeout, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(()),
    }
}

async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}
