//! The REST and WebSocket handlers of shell sessions.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use lease_core::{Lease, Status};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::attach::{self, SocketSettings};
use super::frames::{EndReason, check_size};
use super::registry::SessionPlan;
use super::session::{Session, SessionEnd};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, echo};
use crate::extract::{ApiQuery, LeasePath, is_json_headers, parse_json};
use crate::leases::find_lease;
use crate::limits::StreamPermit;
use crate::wire::time_text;

/// Most arguments of a command.
const MAX_ARGS: usize = 64;
/// Most bytes of a command, all arguments together.
const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// The default command: the image's login shell, bash if it has one.
const LOGIN_SHELL: &str =
    "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi";

/// `POST /api/containers/{id}/sessions` body; every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// Program and arguments (1 to 64, 16 KiB in all, no NUL). Default: the
    /// image's login shell (`bash -l` if bash exists, else `sh -l`).
    #[schema(example = json!(["sh", "-c", "echo hi"]))]
    pub command: Option<Vec<String>>,
    /// Run it in a terminal (default true).
    pub tty: Option<bool>,
    /// Terminal columns, 1..=1000 (default 80).
    pub cols: Option<u16>,
    /// Terminal rows, 1..=1000 (default 24).
    pub rows: Option<u16>,
}

/// A session just started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionJson {
    /// 26 lowercase base32 characters.
    pub session_id: String,
    /// The lease it runs in.
    pub lease_id: String,
    /// The command run.
    pub command: Vec<String>,
    /// With a terminal.
    pub tty: bool,
    /// RFC 3339.
    pub created_at: String,
    /// Where to attach (WebSocket).
    pub attach_path: String,
}

/// One session in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummaryJson {
    /// 26 lowercase base32 characters.
    pub session_id: String,
    /// The command run.
    pub command: Vec<String>,
    /// With a terminal.
    pub tty: bool,
    /// RFC 3339.
    pub created_at: String,
    /// Whether a socket is attached now.
    pub attached: bool,
    /// The exit code once the process has exited.
    pub exit_code: Option<i64>,
}

/// `GET /api/containers/{id}/sessions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionsJson {
    /// The lease's sessions, oldest first.
    pub sessions: Vec<SessionSummaryJson>,
}

/// `GET …/attach` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttachParams {
    /// Output bytes the client already has (default 0): the replay starts there.
    pub offset: Option<u64>,
    /// A single-use ticket from `POST /api/tickets` (`route: attach`), for
    /// browsers, which cannot set headers on a WebSocket.
    pub ticket: Option<String>,
}

/// The `{id}` and `{sid}` path parameters.
#[derive(Clone, Debug)]
pub(crate) struct SessionPath {
    lease: String,
    session: String,
}

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((lease, session)) =
            Path::<(String, String)>::from_request_parts(parts, state).await?;
        Ok(SessionPath { lease, session })
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// Reads the optional JSON body: empty means every default.
fn read_body(headers: &HeaderMap, body: &[u8]) -> Result<SessionRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(SessionRequest::default());
    }
    if !is_json_headers(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with `Content-Type: application/json`",
        ));
    }
    parse_json(body).map_err(|error| {
        if error.status == StatusCode::UNPROCESSABLE_ENTITY {
            let mut error = error;
            error.status = StatusCode::BAD_REQUEST;
            error.detail.code = "invalid_request".to_owned();
            error
        } else {
            error
        }
    })
}

/// Checks a request and fills in its defaults.
fn plan(request: SessionRequest) -> Result<SessionPlan, ApiError> {
    let command = match request.command {
        None => vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            LOGIN_SHELL.to_owned(),
        ],
        Some(command) => {
            if command.is_empty() {
                return Err(invalid("command must not be empty").with_field("command"));
            }
            if command.len() > MAX_ARGS {
                return Err(
                    invalid(format!("command has more than {MAX_ARGS} arguments"))
                        .with_field("command"),
                );
            }
            let bytes: usize = command.iter().map(String::len).sum();
            if bytes > MAX_COMMAND_BYTES {
                return Err(
                    invalid(format!("command is longer than {MAX_COMMAND_BYTES} bytes"))
                        .with_field("command"),
                );
            }
            if command.iter().any(|arg| arg.contains('\0')) {
                return Err(
                    invalid("command must not contain NUL characters").with_field("command")
                );
            }
            if command[0].is_empty() {
                return Err(invalid("command must name a program").with_field("command"));
            }
            command
        }
    };
    let cols = request.cols.unwrap_or(80);
    let rows = request.rows.unwrap_or(24);
    check_size(cols, rows).map_err(invalid)?;
    Ok(SessionPlan {
        command,
        tty: request.tty.unwrap_or(true),
        size: (cols, rows),
    })
}

fn attach_path(session: &Session) -> String {
    format!(
        "/api/containers/{}/sessions/{}/attach",
        session.info.lease_id, session.info.id
    )
}

/// 404 for a session id that is not one of the lease's.
fn no_session(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no session {}", echo(id)),
    )
}

/// The lease's container, if it is running.
fn running_container(lease: &Lease) -> Result<String, ApiError> {
    match (&lease.container_id, lease.status) {
        (Some(container), Status::Running) => Ok(container.clone()),
        (_, status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_running",
            format!("the lease is {status}: only a running lease can run a session"),
        )),
    }
}

/// Starts a command in a running lease's container.
#[utoipa::path(
    post,
    path = "/api/containers/{id}/sessions",
    tag = "shell",
    params(("id" = String, Path, description = "Lease id")),
    request_body(content = SessionRequest, description = "Optional; an empty body runs the login shell in an 80x24 terminal"),
    responses(
        (status = 201, description = "Session started; attach to `attachPath`", body = SessionJson),
        (status = 400, description = "Malformed JSON or bad values (`invalid_request`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
        (status = 409, description = "The lease is not running (`not_running`)", body = crate::error::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = crate::error::ErrorBody),
        (status = 429, description = "Too many sessions on the lease or of the caller (`too_many_sessions`), or the rate limit (`rate_limited`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    LeasePath(id): LeasePath,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SessionJson>), ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let body = body?;
    let plan = plan(read_body(&headers, &body)?)?;
    let container = running_container(&lease)?;
    let session = state.shell.create(&caller, &lease, container, plan).await?;
    let json = SessionJson {
        session_id: session.info.id.clone(),
        lease_id: session.info.lease_id.to_string(),
        command: session.info.command.clone(),
        tty: session.info.tty,
        created_at: time_text(session.info.created_at),
        attach_path: attach_path(&session),
    };
    Ok((StatusCode::CREATED, Json(json)))
}

/// Lists a lease's sessions.
#[utoipa::path(
    get,
    path = "/api/containers/{id}/sessions",
    tag = "shell",
    params(("id" = String, Path, description = "Lease id")),
    responses(
        (status = 200, description = "The lease's sessions on this server", body = SessionsJson),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    LeasePath(id): LeasePath,
) -> Result<Json<SessionsJson>, ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let sessions = state
        .shell
        .of_lease(&lease.id)
        .iter()
        .map(|session| SessionSummaryJson {
            session_id: session.info.id.clone(),
            command: session.info.command.clone(),
            tty: session.info.tty,
            created_at: time_text(session.info.created_at),
            attached: session.is_attached(),
            exit_code: match session.end() {
                Some(SessionEnd::Exit(code)) => Some(code),
                _ => None,
            },
        })
        .collect();
    Ok(Json(SessionsJson { sessions }))
}

/// Ends a session: its process tree is killed.
#[utoipa::path(
    delete,
    path = "/api/containers/{id}/sessions/{sid}",
    tag = "shell",
    params(
        ("id" = String, Path, description = "Lease id"),
        ("sid" = String, Path, description = "Session id"),
    ),
    responses(
        (status = 204, description = "Ended; an attached client got `ended` `closed`"),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease or session (or not the caller's)", body = crate::error::ErrorBody),
        (status = 429, description = "The rate limit (`rate_limited`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: SessionPath,
) -> Result<StatusCode, ApiError> {
    let lease = find_lease(&state.manager, &caller, &path.lease).await?;
    let session = state
        .shell
        .get(&lease.id, &path.session)
        .ok_or_else(|| no_session(&path.session))?;
    state
        .shell
        .close(&session, EndReason::Closed, "the session was closed")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Attaches to a session (WebSocket).
///
/// Framing: binary client → server is stdin; binary server → client is one
/// channel byte (1 stdout, 2 stderr) then the output bytes unchanged. Text
/// messages are JSON: from the client `{"type":"resize","cols","rows"}`,
/// `{"type":"signal","name":"INT"|"TERM"|"KILL"|"HUP"|"QUIT"}`,
/// `{"type":"eof"}`, `{"type":"ping"}`; from the server first
/// `{"type":"attached","sessionId","tty","offset","missed"}`, last
/// `{"type":"exit","code"}` or `{"type":"ended","reason","message"}` (then
/// close 1000), `{"type":"detached","reason"}` (close 4001, another socket
/// took over), `{"type":"pong"}`, `{"type":"error","code","message"}`. A
/// client message over 64 KiB closes with 1009. Browsers authenticate with
/// `?ticket=` instead of the Authorization header.
#[utoipa::path(
    get,
    path = "/api/containers/{id}/sessions/{sid}/attach",
    tag = "shell",
    params(
        ("id" = String, Path, description = "Lease id"),
        ("sid" = String, Path, description = "Session id"),
        AttachParams,
    ),
    responses(
        (status = 101, description = "WebSocket carrying the session (see the framing above)"),
        (status = 400, description = "Not a WebSocket request, or a bad query", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease or session (or not the caller's)", body = crate::error::ErrorBody),
        (status = 429, description = "The caller has too many streams open (`too_many_streams`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn attach(
    State(state): State<AppState>,
    caller: Caller,
    permit: StreamPermit,
    path: SessionPath,
    ApiQuery(params): ApiQuery<AttachParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let lease = find_lease(&state.manager, &caller, &path.lease).await?;
    let session = state
        .shell
        .get(&lease.id, &path.session)
        .ok_or_else(|| no_session(&path.session))?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "websocket_required",
            format!("this endpoint speaks WebSocket: {}", rejection.body_text()),
        )
    })?;
    let settings = SocketSettings {
        keepalive: state.shell.config().keepalive,
        send_timeout: state.limits.stream_send_timeout,
    };
    let registry = Arc::clone(&state.shell);
    let max_message = state.limits.ws_max_message;
    let offset = params.offset.unwrap_or(0);
    Ok(upgrade
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            attach::run(session, registry, socket, offset, settings).await;
            drop(permit);
        }))
}

#[cfg(test)]
mod tests {
    use super::super::frames::MAX_TERMINAL_SIDE;
    use super::*;

    #[test]
    fn an_empty_body_is_the_login_shell_in_a_terminal() {
        let plan = plan(SessionRequest::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.tty);
        assert_eq!(plan.size, (80, 24));
        assert_eq!(plan.command[0], "/bin/sh");
        assert!(plan.command[2].contains("bash -l"));
    }

    #[test]
    fn refuses_bad_commands_and_sizes() {
        let nul = SessionRequest {
            command: Some(vec!["echo".into(), "a\0b".into()]),
            ..SessionRequest::default()
        };
        let many = SessionRequest {
            command: Some(vec!["x".into(); MAX_ARGS + 1]),
            ..SessionRequest::default()
        };
        let long = SessionRequest {
            command: Some(vec!["x".repeat(MAX_COMMAND_BYTES + 1)]),
            ..SessionRequest::default()
        };
        let empty = SessionRequest {
            command: Some(vec![]),
            ..SessionRequest::default()
        };
        let wide = SessionRequest {
            cols: Some(MAX_TERMINAL_SIDE + 1),
            ..SessionRequest::default()
        };
        let flat = SessionRequest {
            rows: Some(0),
            ..SessionRequest::default()
        };
        for request in [nul, many, long, empty, wide, flat] {
            let refused = plan(request.clone()).err();
            assert_eq!(
                refused.map(|e| (e.status, e.detail.code)),
                Some((StatusCode::BAD_REQUEST, "invalid_request".to_owned())),
                "{request:?}"
            );
        }
    }

    #[test]
    fn bodies_must_be_json_objects_of_the_right_shape() {
        let mut json = HeaderMap::new();
        json.insert(
            "content-type",
            "application/json".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(
            read_body(&HeaderMap::new(), b"").ok(),
            Some(SessionRequest::default())
        );
        let codes = |body: &[u8], headers: &HeaderMap| {
            read_body(headers, body)
                .err()
                .map(|e| (e.status.as_u16(), e.detail.code))
        };
        assert_eq!(
            codes(b"{}", &HeaderMap::new()),
            Some((415, "unsupported_media_type".into()))
        );
        assert_eq!(codes(b"{", &json), Some((400, "invalid_json".into())));
        assert_eq!(
            codes(br#"{"tty":"yes"}"#, &json),
            Some((400, "invalid_request".into()))
        );
        assert_eq!(
            codes(br#"{"cmd":["sh"]}"#, &json),
            Some((400, "invalid_request".into()))
        );
        assert_eq!(
            codes(br#"{"cols":70000}"#, &json),
            Some((400, "invalid_request".into()))
        );
        assert_eq!(codes(b"[]", &json), Some((400, "invalid_request".into())));
        assert_eq!(
            codes(br#"{"command":"sh"}"#, &json),
            Some((400, "invalid_request".into()))
        );
    }
}
