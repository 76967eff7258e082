//! `GET /api/containers/{id}/ports/{port}/tcp`: the tunnel's handler.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use tracing::{Instrument, info_span};

use super::tunnel::{self, TunnelSettings};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::limits::StreamPermit;
use crate::ports::{Reached, connect, parse_port};

/// The `{id}` and `{port}` path parameters, the port as written.
#[derive(Clone, Debug)]
pub(crate) struct PortPath {
    lease: String,
    port: String,
}

impl<S: Send + Sync> FromRequestParts<S> for PortPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((lease, port)) =
            Path::<(String, String)>::from_request_parts(parts, state).await?;
        Ok(PortPath { lease, port })
    }
}

/// A TCP connection to a port of a lease's container, over a WebSocket.
///
/// One WebSocket is one TCP connection. Binary messages carry its bytes
/// unchanged both ways; text messages are JSON: `{"type":"eof"}` (a
/// half-close, either way) and, from the server, `{"type":"ended",
/// "reason":"expired"|"deleted"|"shutdown","message"}` before close 1001
/// when the lease ends. Close 1000 once both sides sent `eof`; 1011 with
/// the error when the connection fails. The connection is made before the
/// upgrade: nothing listening is a 502, not a socket that closes at once.
#[utoipa::path(
    get,
    path = "/api/containers/{id}/ports/{port}/tcp",
    tag = "ports",
    params(
        ("id" = String, Path, description = "Lease id"),
        ("port" = u16, Path, description = "Container port, 1–65535"),
    ),
    responses(
        (status = 101, description = "WebSocket carrying the TCP connection (see the framing above)"),
        (status = 400, description = "Not a WebSocket request (`websocket_required`), or a port outside 1–65535 (`invalid_port`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
        (status = 409, description = "The lease is not running (`not_running`) or has no network (`no_network`)", body = crate::error::ErrorBody),
        (status = 429, description = "The caller has too many streams open (`too_many_streams`)", body = crate::error::ErrorBody),
        (status = 502, description = "Nothing accepts connections on the port (`upstream_unreachable`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn tcp(
    State(state): State<AppState>,
    caller: Caller,
    permit: StreamPermit,
    path: PortPath,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Another owner's lease is a 404 before anything else is looked at.
    crate::leases::find_lease(&state.manager, &caller, &path.lease).await?;
    let port = parse_port(&path.port)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "websocket_required",
            format!("this endpoint speaks WebSocket: {}", rejection.body_text()),
        )
    })?;
    // Connected before the upgrade: a refusal is an HTTP answer.
    let reached: Reached = connect(&state, &caller, &path.lease, port).await?;
    let settings = TunnelSettings {
        keepalive: state.shell.config().keepalive,
        send_timeout: state.limits.stream_send_timeout,
    };
    let span = info_span!(
        "tunnel",
        lease_id = %reached.lease.id,
        owner = %caller.owner,
        port,
    );
    let manager = state.manager.clone();
    let shutdown = state.shutdown.clone();
    Ok(upgrade
        .read_buffer_size(super::READ_BUFFER)
        // This route's own cap (not `Limits::ws_max_message`): the client
        // sends up to this much per message.
        .max_message_size(super::MAX_DATA_MESSAGE)
        .max_frame_size(super::MAX_DATA_MESSAGE)
        .on_upgrade(move |socket| {
            async move {
                let ends = tunnel::Ends {
                    lease: reached.ended,
                    shutdown,
                    manager,
                    lease_id: reached.lease.id,
                };
                tunnel::run(socket, reached.stream, ends, settings).await;
                drop(permit);
            }
            .instrument(span)
        }))
}
