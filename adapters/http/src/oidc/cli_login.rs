//! The CLI's loopback login (`lease login`): the CLI listens on
//! `127.0.0.1:P`, opens `GET /auth/cli?port=P&state=S&code_challenge=C&name=N`
//! in the browser; the signed-in person allows it on a confirm page
//! (`POST /auth/cli/allow`, CSRF checked); the browser is sent to
//! `http://127.0.0.1:P/callback?code=K&state=S`, and the CLI trades `K` and
//! its PKCE verifier for a personal token (`POST /auth/cli/token`).
//!
//! The one-time codes live in server memory (at most [`MAX_CLI_CODES`],
//! [`CLI_CODE_TTL`] each), bound to the challenge, the owner, the admin flag
//! and the token name; a code is spent on its first use, right or wrong.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lease_core::WebSession;
use openidconnect::url::{Url, form_urlencoded};
use openidconnect::{PkceCodeChallenge, PkceCodeVerifier};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use utoipa::ToSchema;

use super::session::{check_csrf, session_of};
use super::tokens::{DEFAULT_TOKEN_DAYS, mint_for, valid_name};
use super::{OidcAuth, constant_time_eq, pages, random_hex, sha256_hex};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// Most loopback codes waiting to be traded at once.
pub const MAX_CLI_CODES: usize = 1000;
/// How long a loopback code may wait to be traded.
pub const CLI_CODE_TTL: Duration = Duration::from_secs(60);
/// Longest query or form looked at.
const MAX_INPUT: usize = 4096;

/// A loopback code waiting for the CLI (what it will mint).
#[derive(Clone, Debug)]
struct CliCode {
    challenge: String,
    owner: String,
    admin: bool,
    name: String,
    expires_at: DateTime<Utc>,
}

/// Loopback codes by the SHA-256 of the code.
#[derive(Debug, Default)]
pub(crate) struct CliCodes {
    by_hash: Mutex<HashMap<String, CliCode>>,
}

impl CliCodes {
    fn insert(&self, code_sha256: String, code: CliCode, now: DateTime<Utc>) -> bool {
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_CLI_CODES {
            map.retain(|_, code| code.expires_at > now);
        }
        if map.len() >= MAX_CLI_CODES {
            return false;
        }
        map.insert(code_sha256, code);
        true
    }

    /// Takes (spends) a code; `None` if unknown or expired.
    fn take(&self, code_sha256: &str, now: DateTime<Utc>) -> Option<CliCode> {
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(code_sha256).filter(|code| code.expires_at > now)
    }
}

/// What the CLI asks for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CliRequest {
    port: u16,
    state: String,
    code_challenge: String,
    name: String,
}

/// `GET /auth/cli`'s query, or the allow form's hidden fields, unchecked.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CliFields {
    port: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    name: Option<String>,
    /// The session's CSRF token (the allow form).
    csrf: Option<String>,
    /// `allow` or `deny` (the allow form).
    decision: Option<String>,
}

/// Whether `text` has `min..=max` characters, all URL-safe (RFC 3986's
/// unreserved set).
fn url_safe(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

impl CliRequest {
    /// Checks the fields: port 1024..=65535, state 16..=128 URL-safe
    /// characters, a 43-character base64url challenge, a token name.
    pub(crate) fn check(fields: &CliFields) -> Result<CliRequest, String> {
        let port = fields
            .port
            .as_deref()
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|port| *port >= 1024)
            .ok_or("port must be a number from 1024 to 65535")?;
        let state = fields
            .state
            .clone()
            .filter(|state| url_safe(state, 16, 128))
            .ok_or("state must be 16 to 128 URL-safe characters")?;
        let code_challenge = fields
            .code_challenge
            .clone()
            .filter(|c| c.len() == 43 && url_safe(c, 43, 43) && !c.contains(['.', '~']))
            .ok_or("code_challenge must be the 43-character base64url SHA-256 of the verifier")?;
        let name = valid_name(fields.name.as_deref().unwrap_or_default())
            .map_err(|_| "name must be 1 to 64 printable characters".to_owned())?;
        Ok(CliRequest {
            port,
            state,
            code_challenge,
            name,
        })
    }

    /// The CLI's loopback URL with `pairs` in the query.
    fn loopback(&self, pairs: &[(&str, &str)]) -> String {
        let base = format!("http://127.0.0.1:{}/callback", self.port);
        match Url::parse(&base) {
            Ok(mut url) => {
                url.query_pairs_mut().extend_pairs(pairs);
                url.to_string()
            }
            Err(_) => base,
        }
    }
}

/// Parses an `a=b&c=d` query or form body (bounded).
pub(crate) fn parse_fields<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    if text.len() > MAX_INPUT {
        return None;
    }
    let uri: Uri = format!("/?{text}").parse().ok()?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .ok()
        .map(|axum::extract::Query(fields)| fields)
}

/// 302 to `/auth/login` coming back to `path_and_query`.
pub(crate) fn sign_in_first(path_and_query: &str) -> Response {
    let encoded: String = form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
    pages::redirect(&format!("/auth/login?return_to={encoded}"))
}

/// The page for a server without OIDC: 404.
pub(crate) fn not_enabled() -> Response {
    pages::sign_in_failed(
        StatusCode::NOT_FOUND,
        "this server does not use an identity provider",
    )
}

/// The session of a form POST, CSRF checked against the form's token; a
/// page otherwise.
pub(crate) async fn form_session(
    oidc: &OidcAuth,
    headers: &HeaderMap,
    csrf: Option<&str>,
    now: DateTime<Utc>,
) -> Result<WebSession, Response> {
    let session = match session_of(oidc, headers, now).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return Err(pages::message(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                "Your session has ended: sign in again and start over.",
            ));
        }
        Err(error) => return Err(error.into_response()),
    };
    if let Err(error) = check_csrf(oidc, &session, &Method::POST, headers, csrf) {
        warn!(owner = %session.owner, "CLI login form refused by the CSRF check");
        return Err(pages::message(
            StatusCode::FORBIDDEN,
            "Refused",
            &format!("csrf: {}", error.detail.message),
        ));
    }
    Ok(session)
}

/// The CLI's loopback login: the confirm page (signed in) or the sign-in.
#[utoipa::path(
    get,
    path = "/auth/cli",
    tag = "auth",
    params(
        ("port" = u16, Query, description = "The CLI's loopback port (1024 to 65535)"),
        ("state" = String, Query, description = "16 to 128 URL-safe characters, echoed to the CLI"),
        ("code_challenge" = String, Query, description = "base64url(SHA-256(verifier)), 43 characters"),
        ("name" = String, Query, description = "The personal token's name"),
    ),
    responses(
        (status = 200, description = "HTML confirm page: allow `lease` to act as the signed-in owner?"),
        (status = 302, description = "Not signed in: to `/auth/login`, coming back here"),
        (status = 400, description = "HTML page: the request is not valid"),
    )
)]
pub(crate) async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(oidc) = state.oidc.as_ref() else {
        return not_enabled();
    };
    let fields: CliFields = parse_fields(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let request = match CliRequest::check(&fields) {
        Ok(request) => request,
        Err(reason) => return invalid(&reason),
    };
    let now = state.manager.clock().now();
    match session_of(oidc, &headers, now).await {
        Ok(Some(session)) => confirm_page(&session, &request),
        Ok(None) => sign_in_first(uri.path_and_query().map_or("/auth/cli", |p| p.as_str())),
        Err(error) => error.into_response(),
    }
}

fn invalid(reason: &str) -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        "Login request not valid",
        &format!("The CLI's login request is not valid: {reason}."),
    )
}

fn confirm_page(session: &WebSession, request: &CliRequest) -> Response {
    let hidden = [
        ("port", request.port.to_string()),
        ("state", request.state.clone()),
        ("code_challenge", request.code_challenge.clone()),
        ("name", request.name.clone()),
        ("csrf", session.csrf.clone()),
    ];
    let body = format!(
        "<p>Allow <code>lease</code> on this machine to act as <strong>{owner}</strong>?</p>\
         <p>It gets a personal token named <strong>{name}</strong> (valid {days} days; \
         revoke it any time from the Tokens panel).</p>\
         <p>Only allow it if you just ran <code>lease login</code> yourself.</p>\
         {form}",
        owner = pages::escape(&session.owner),
        name = pages::escape(&request.name),
        days = DEFAULT_TOKEN_DAYS,
        form = pages::decision_form("/auth/cli/allow", &hidden),
    );
    pages::page(StatusCode::OK, "Allow the CLI?", &body)
}

/// Allows (or denies) the CLI: 302 to its loopback address.
#[utoipa::path(
    post,
    path = "/auth/cli/allow",
    tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "The confirm page's form: port, state, code_challenge, name, csrf, decision (`allow` or `deny`)"),
    responses(
        (status = 302, description = "To `http://127.0.0.1:{port}/callback?code=…&state=…` (or `error=access_denied`)"),
        (status = 400, description = "HTML page: the request is not valid"),
        (status = 401, description = "HTML page: not signed in"),
        (status = 403, description = "HTML page: CSRF check failed, nothing happened"),
    ),
    security(("session" = []))
)]
pub(crate) async fn allow(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(oidc) = state.oidc.as_ref() else {
        return not_enabled();
    };
    let Some(fields) = parse_fields::<CliFields>(&body) else {
        return invalid("the form is not readable");
    };
    let now = state.manager.clock().now();
    let session = match form_session(oidc, &headers, fields.csrf.as_deref(), now).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let request = match CliRequest::check(&fields) {
        Ok(request) => request,
        Err(reason) => return invalid(&reason),
    };
    if fields.decision.as_deref() != Some("allow") {
        info!(owner = %session.owner, port = request.port, "CLI login denied");
        return pages::redirect(
            &request.loopback(&[("error", "access_denied"), ("state", &request.state)]),
        );
    }
    let code = random_hex();
    let ttl = chrono::Duration::from_std(CLI_CODE_TTL).unwrap_or_default();
    let pending = CliCode {
        challenge: request.code_challenge.clone(),
        owner: session.owner.clone(),
        admin: session.admin,
        name: request.name.clone(),
        expires_at: now + ttl,
    };
    if !oidc.inner.cli_codes.insert(sha256_hex(&code), pending, now) {
        warn!("too many CLI logins in progress");
        return pages::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many CLI logins are in progress; try again in a minute.",
        );
    }
    info!(owner = %session.owner, port = request.port, name = %request.name, "CLI login allowed");
    pages::redirect(&request.loopback(&[("code", &code), ("state", &request.state)]))
}

/// `POST /auth/cli/token`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CliTokenRequest {
    /// The code the loopback address received.
    code: String,
    /// The PKCE verifier whose SHA-256 was the `code_challenge`.
    code_verifier: String,
}

/// A personal token minted for the CLI.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CliTokenJson {
    /// The bearer token (`clp_…`), shown this once.
    token: String,
    /// Its id (`pt_…`).
    id: String,
    /// The owner it acts as.
    owner: String,
    /// Its name.
    name: String,
    /// When it stops working.
    expires_at: Option<DateTime<Utc>>,
}

/// Mints the token a CLI login was allowed, as JSON.
pub(crate) async fn mint_for_cli(
    oidc: &OidcAuth,
    owner: String,
    admin: bool,
    name: String,
    now: DateTime<Utc>,
) -> Result<Json<CliTokenJson>, ApiError> {
    let caller = Caller { owner, admin };
    let expires_at = now + chrono::Duration::days(i64::from(DEFAULT_TOKEN_DAYS));
    let (token, secret) = mint_for(oidc, &caller, name, Some(expires_at), now).await?;
    Ok(Json(CliTokenJson {
        token: secret,
        id: token.id,
        owner: token.owner,
        name: token.name,
        expires_at: token.expires_at,
    }))
}

/// Whether `verifier` (RFC 7636: 43 to 128 unreserved characters) hashes
/// to `challenge`.
fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    if !url_safe(verifier, 43, 128) {
        return false;
    }
    let computed =
        PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.to_owned()));
    constant_time_eq(computed.as_str(), challenge)
}

/// The CLI trades its code and verifier for a personal token.
#[utoipa::path(
    post,
    path = "/auth/cli/token",
    tag = "auth",
    request_body = CliTokenRequest,
    responses(
        (status = 200, description = "A new personal token for the CLI", body = CliTokenJson),
        (status = 400, description = "`invalid_grant`: the code is unknown, expired, spent, or the verifier does not match", body = crate::error::ErrorBody),
        (status = 409, description = "`too_many_tokens`: the owner must revoke one first", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CliTokenRequest>,
) -> Result<Json<CliTokenJson>, ApiError> {
    let oidc = super::session::enabled(&state)?;
    let now = state.manager.clock().now();
    let refused = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code is unknown, expired or already used, or the verifier does not match: run `lease login` again",
        )
    };
    if request.code.is_empty() || request.code.len() > 128 {
        return Err(refused());
    }
    // Spent here, whatever the verifier.
    let code = oidc
        .inner
        .cli_codes
        .take(&sha256_hex(&request.code), now)
        .ok_or_else(refused)?;
    if !verifier_matches(&request.code_verifier, &code.challenge) {
        warn!(owner = %code.owner, "CLI login code presented with a wrong verifier");
        return Err(refused());
    }
    mint_for_cli(oidc, code.owner, code.admin, code.name, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(port: &str, state: &str, challenge: &str, name: &str) -> CliFields {
        CliFields {
            port: Some(port.to_owned()),
            state: Some(state.to_owned()),
            code_challenge: Some(challenge.to_owned()),
            name: Some(name.to_owned()),
            ..CliFields::default()
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn cli_requests_are_checked() {
        let state = "abcdefghijklmnop";
        assert!(CliRequest::check(&fields("8080", state, CHALLENGE, "laptop")).is_ok());
        for (port, state, challenge, name) in [
            ("80", state, CHALLENGE, "laptop"),
            ("65536", state, CHALLENGE, "laptop"),
            ("x", state, CHALLENGE, "laptop"),
            ("8080", "short", CHALLENGE, "laptop"),
            ("8080", "abcdefghijklmnop<script>", CHALLENGE, "laptop"),
            ("8080", state, "tooshort", "laptop"),
            ("8080", state, &CHALLENGE.replace('E', "+"), "laptop"),
            ("8080", state, CHALLENGE, ""),
            ("8080", state, CHALLENGE, "a\nb"),
        ] {
            assert!(
                CliRequest::check(&fields(port, state, challenge, name)).is_err(),
                "{port} {state} {challenge} {name:?}"
            );
        }
        assert!(CliRequest::check(&CliFields::default()).is_err());
    }

    #[test]
    fn the_verifier_must_hash_to_the_challenge() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(verifier_matches(verifier, CHALLENGE));
        assert!(!verifier_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            CHALLENGE
        ));
        assert!(!verifier_matches("short", CHALLENGE));
    }

    #[test]
    fn codes_are_spent_once_and_expire() {
        let codes = CliCodes::default();
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let code = CliCode {
            challenge: CHALLENGE.to_owned(),
            owner: "alice".to_owned(),
            admin: false,
            name: "laptop".to_owned(),
            expires_at: now + chrono::Duration::seconds(60),
        };
        assert!(codes.insert("a".to_owned(), code.clone(), now));
        assert!(codes.take("a", now).is_some());
        assert!(codes.take("a", now).is_none());
        assert!(codes.insert("b".to_owned(), code, now));
        assert!(
            codes
                .take("b", now + chrono::Duration::seconds(61))
                .is_none()
        );
    }

    #[test]
    fn the_loopback_url_carries_the_code_and_state() {
        let request =
            CliRequest::check(&fields("4711", "abcdefghijklmnop", CHALLENGE, "l")).expect("valid");
        assert_eq!(
            request.loopback(&[("code", "k&x"), ("state", "abcdefghijklmnop")]),
            "http://127.0.0.1:4711/callback?code=k%26x&state=abcdefghijklmnop"
        );
    }
}
