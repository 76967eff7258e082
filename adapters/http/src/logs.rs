//! `GET /ws/logs/{id}`: a lease's container output over a WebSocket.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use lease_core::runtime::LogOptions;
use lease_core::{LeaseId, Status};
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiQuery, LeasePath};
use crate::leases::find_lease;
use crate::limits::StreamPermit;
use crate::wire::LogsParams;

/// Default number of past lines sent first.
const DEFAULT_TAIL: u32 = 100;
/// Most past lines a client may ask for.
const MAX_TAIL: u32 = 10_000;
/// How often a pending lease is re-read while waiting for its container
/// (events only come from this process; another replica may provision it).
const PENDING_POLL: Duration = Duration::from_secs(1);

/// Normal closure.
const CLOSE_NORMAL: u16 = 1000;
/// The server is going away.
const CLOSE_GOING_AWAY: u16 = 1001;
/// The client sent a message over the size limit (or a malformed one).
const CLOSE_TOO_BIG: u16 = 1009;
/// The server failed.
const CLOSE_ERROR: u16 = 1011;

/// Streams a lease's container logs: the last `tail` lines, then new ones
/// as they come (unless `follow=false`), one text frame per line. Waits while the lease is pending.
/// Ends with a normal close whose reason says why (`lease ended`,
/// `container stopped`, `log stream ended`). A client message over the size
/// limit closes the socket with 1009; a client that does not take a line
/// within the stream send timeout is disconnected.
#[utoipa::path(
    get,
    path = "/ws/logs/{id}",
    tag = "leases",
    params(("id" = String, Path, description = "Lease id"), LogsParams),
    responses(
        (status = 101, description = "WebSocket: one text frame per log line"),
        (status = 400, description = "Not a WebSocket request", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
        (status = 429, description = "The caller has too many streams open (`too_many_streams`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    permit: StreamPermit,
    LeasePath(id): LeasePath,
    ApiQuery(params): ApiQuery<LogsParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "websocket_required",
            format!("this endpoint speaks WebSocket: {}", rejection.body_text()),
        )
    })?;
    let options = LogOptions {
        follow: params.follow.unwrap_or(true),
        tail: Some(params.tail.unwrap_or(DEFAULT_TAIL).min(MAX_TAIL)),
    };
    let max_message = state.limits.ws_max_message;
    Ok(upgrade
        .read_buffer_size(crate::limits::WS_READ_BUFFER)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            stream_logs(state, lease.id, options, socket).await;
            drop(permit);
        }))
}

type Sink = SplitSink<WebSocket, Message>;

async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// How the client ended the socket, seen from its last message.
enum ClientEnded {
    /// Closed, or gone.
    Gone,
    /// Sent a message over the limit or one that is not valid.
    Refused,
}

impl ClientEnded {
    async fn close(self, sink: &mut Sink) {
        if let ClientEnded::Refused = self {
            close(sink, CLOSE_TOO_BIG, "message too big or not valid").await;
        }
    }
}

/// `Some` if the client's `message` ends the stream (the log stream reads
/// nothing from its client but pings and the close).
fn client_ended(message: Option<Result<Message, axum::Error>>) -> Option<ClientEnded> {
    match message {
        None | Some(Ok(Message::Close(_))) => Some(ClientEnded::Gone),
        Some(Err(error)) => {
            debug!(error = %error, "log client sent a message that is refused");
            Some(ClientEnded::Refused)
        }
        Some(Ok(_)) => None,
    }
}

/// Whether a lease is over (its logs will not come back).
fn ended(status: Status) -> bool {
    matches!(status, Status::Deleting | Status::Deleted)
}

async fn stream_logs(state: AppState, id: LeaseId, options: LogOptions, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let mut events = state.manager.subscribe();
    let shutdown = state.shutdown.clone();

    // Wait for the lease to have a container.
    loop {
        let lease = match state.manager.get(&id).await {
            Ok(lease) => lease,
            Err(_) => return close(&mut sink, CLOSE_ERROR, "lease unavailable").await,
        };
        if ended(lease.status) {
            return close(&mut sink, CLOSE_NORMAL, "lease ended").await;
        }
        if lease.status != Status::Pending {
            if lease.container_id.is_none() {
                return close(&mut sink, CLOSE_NORMAL, "the lease has no container").await;
            }
            break;
        }
        tokio::select! {
            received = events.recv() => {
                if matches!(received, Err(RecvError::Closed)) {
                    return close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await;
                }
            }
            () = tokio::time::sleep(PENDING_POLL) => {}
            message = incoming.next() => {
                if let Some(ended) = client_ended(message) {
                    return ended.close(&mut sink).await;
                }
            }
            () = shutdown.cancelled() => {
                return close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await;
            }
        }
    }

    let mut lines = match state.manager.logs(&id, options).await {
        Ok(lines) => lines,
        Err(error) => {
            debug!(lease_id = %id, error = %error, "cannot stream logs");
            let ended_now = state
                .manager
                .get(&id)
                .await
                .is_ok_and(|lease| ended(lease.status));
            let (code, reason) = if ended_now {
                (CLOSE_NORMAL, "lease ended")
            } else {
                (CLOSE_ERROR, "cannot read the container's logs")
            };
            return close(&mut sink, code, reason).await;
        }
    };
    let failed = loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    let sent = tokio::time::timeout(
                        state.limits.stream_send_timeout,
                        sink.send(Message::Text(line.text.into())),
                    )
                    .await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return,
                        Err(_) => {
                            debug!(lease_id = %id, "log client not reading: disconnected");
                            return;
                        }
                    }
                }
                Some(Err(error)) => {
                    debug!(lease_id = %id, error = %error, "log stream failed");
                    break true;
                }
                None => break false,
            },
            message = incoming.next() => {
                if let Some(ended) = client_ended(message) {
                    return ended.close(&mut sink).await;
                }
            }
            () = shutdown.cancelled() => {
                return close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await;
            }
        }
    };
    let status = state.manager.get(&id).await.map(|lease| lease.status);
    let (code, reason) = match status {
        Ok(status) if ended(status) => (CLOSE_NORMAL, "lease ended"),
        Ok(Status::Running) if !failed => (CLOSE_NORMAL, "log stream ended"),
        Ok(_) if !failed => (CLOSE_NORMAL, "container stopped"),
        _ => (CLOSE_ERROR, "log stream failed"),
    };
    close(&mut sink, code, reason).await;
}
