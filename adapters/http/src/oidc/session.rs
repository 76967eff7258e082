//! Browser sessions: the `cl_session` cookie, the CSRF rule for requests
//! that carry it, sign-out, and `GET /api/auth` / `GET /api/me`.

use axum::Json;
use axum::extract::State;
use axum::http::header::{COOKIE, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lease_core::WebSession;
use serde::Serialize;
use tracing::info;
use utoipa::ToSchema;

use super::{OidcAuth, SESSION_COOKIE, constant_time_eq, sha256_hex};
use crate::AppState;
use crate::auth::{Auth, Caller};
use crate::error::ApiError;

/// The header a cookie-authenticated change must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Longest cookie value looked at (ours are 64 hex digits).
const MAX_COOKIE_VALUE: usize = 128;

/// How the caller of a request proved who they are (a request extension
/// set by the auth middleware next to the [`Caller`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Single-user mode.
    SingleUser,
    /// A token of the tokens file.
    TokensFile,
    /// A personal token.
    PersonalToken {
        /// Its id.
        id: String,
        /// Its expiry.
        expires_at: Option<DateTime<Utc>>,
    },
    /// A browser session.
    Session {
        /// The session's hash.
        id_sha256: String,
        /// Its CSRF token.
        csrf: String,
    },
    /// A stream ticket.
    Ticket,
}

/// The value of cookie `name`, if sent (and of a sane length).
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty() && value.len() <= MAX_COOKIE_VALUE)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, `Secure` when asked.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; HttpOnly; SameSite=Lax; Path={path}; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session of the request's `cl_session` cookie, if it is valid now.
pub(crate) async fn session_of(
    oidc: &OidcAuth,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Option<WebSession>, ApiError> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(oidc.store().session(&sha256_hex(value), now).await?)
}

/// The CSRF rule for a cookie-authenticated request: an `Origin`, when
/// sent, must be ours (any method: a same-site page such as a preview
/// host must not open our WebSockets with the cookie); a method other than
/// GET/HEAD/OPTIONS must carry the session's token in `X-CSRF-Token`
/// (`form_token` for the HTML forms of the CLI login).
pub(crate) fn check_csrf(
    oidc: &OidcAuth,
    session: &WebSession,
    method: &Method,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> Result<(), ApiError> {
    let refused = |message: &str| ApiError::new(StatusCode::FORBIDDEN, "csrf", message);
    if let Some(origin) = headers.get(ORIGIN) {
        let ours = oidc.settings().public_origin();
        let same = origin
            .to_str()
            .is_ok_and(|origin| origin.eq_ignore_ascii_case(&ours));
        if !same {
            return Err(refused(
                "a request with the session cookie must come from this server's own pages",
            ));
        }
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .or(form_token);
    match sent {
        Some(token) if constant_time_eq(token.trim(), &session.csrf) => Ok(()),
        Some(_) => Err(refused(
            "the X-CSRF-Token header does not match the session",
        )),
        None => Err(refused(
            "a change made with the session cookie needs the X-CSRF-Token header (from GET /api/me)",
        )),
    }
}

/// The OIDC sign-in in use, or 404 when the server has none.
pub(crate) fn enabled(state: &AppState) -> Result<&OidcAuth, ApiError> {
    state.oidc.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server does not sign people in with an identity provider",
        )
    })
}

/// How a page signs in (`GET /api/auth`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthModeJson {
    /// `oidc`, `tokens` or `single-user`.
    mode: &'static str,
    /// Where the sign-in starts (`oidc` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_in: Option<&'static str>,
    /// The identity provider's host (`oidc` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
}

/// How callers sign in to this server.
#[utoipa::path(
    get,
    path = "/api/auth",
    tag = "auth",
    responses((status = 200, description = "The sign-in mode", body = AuthModeJson))
)]
pub(crate) async fn auth_mode(State(state): State<AppState>) -> Json<AuthModeJson> {
    let json = match (&state.oidc, &state.auth) {
        (Some(oidc), _) => AuthModeJson {
            mode: "oidc",
            sign_in: Some("/auth/login"),
            provider: Some(oidc.provider().issuer_host()),
        },
        (None, Auth::Tokens(_)) => AuthModeJson {
            mode: "tokens",
            sign_in: None,
            provider: None,
        },
        (None, Auth::SingleUser(_)) => AuthModeJson {
            mode: "single-user",
            sign_in: None,
            provider: None,
        },
    };
    Json(json)
}

/// Who the caller is (`GET /api/me`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeJson {
    /// The owner name.
    owner: String,
    /// Whether the caller is an admin.
    admin: bool,
    /// `session`, `token` or `single-user`.
    via: &'static str,
    /// The session's CSRF token, to send as `X-CSRF-Token` (sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
}

/// The authenticated caller.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = MeJson),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn me(caller: Caller, via: Option<axum::Extension<Via>>) -> Json<MeJson> {
    let via = via.map(|axum::Extension(via)| via);
    let (via, csrf) = match via {
        Some(Via::Session { csrf, .. }) => ("session", Some(csrf)),
        Some(Via::SingleUser) => ("single-user", None),
        _ => ("token", None),
    };
    Json(MeJson {
        owner: caller.owner,
        admin: caller.admin,
        via,
        csrf,
    })
}

/// The session a sign-out is about, CSRF checked.
async fn session_for_change(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<WebSession>, ApiError> {
    let oidc = enabled(state)?;
    let now = state.manager.clock().now();
    let Some(session) = session_of(oidc, headers, now).await? else {
        return Ok(None);
    };
    check_csrf(oidc, &session, method, headers, None)?;
    Ok(Some(session))
}

fn cleared(state: &AppState) -> Response {
    let secure = state
        .oidc
        .as_ref()
        .is_some_and(|oidc| oidc.settings().secure_cookies());
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, set_cookie(SESSION_COOKIE, "", "/", 0, secure));
    response
}

/// Signs this browser out: the session ends server-side.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "Signed out (also when there was no session)"),
        (status = 403, description = "CSRF check failed: nothing happened", body = crate::error::ErrorBody),
    ),
    security(("session" = []))
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(session) = session_for_change(&state, &method, &headers).await? {
        let oidc = enabled(&state)?;
        oidc.store().delete_session(&session.id_sha256).await?;
        info!(owner = %session.owner, "signed out");
    }
    Ok(cleared(&state))
}

/// Ends every session of the signed-in owner.
#[utoipa::path(
    post,
    path = "/auth/logout-everywhere",
    tag = "auth",
    responses(
        (status = 204, description = "Every session of the owner ended"),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "CSRF check failed: nothing happened", body = crate::error::ErrorBody),
    ),
    security(("session" = []))
)]
pub(crate) async fn logout_everywhere(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(session) = session_for_change(&state, &method, &headers).await? else {
        return Err(ApiError::unauthorized("not signed in"));
    };
    let oidc = enabled(&state)?;
    let ended = oidc.store().delete_sessions_of(&session.owner).await?;
    info!(owner = %session.owner, sessions = ended, "signed out everywhere");
    Ok(cleared(&state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; cl_session=abc ; cl_sessionx=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), None);
        let long = format!("cl_session={}", "x".repeat(500));
        headers.insert(COOKIE, HeaderValue::from_str(&long).expect("ascii"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
    }
}
