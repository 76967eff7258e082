//! `GET /auth/login` and `GET /auth/callback`: the authorization-code flow
//! with PKCE, a `state` bound to the browser by the `cl_login` cookie, and
//! a nonce, then a new session.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lease_core::WebSession;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;
use tracing::{info, warn};

use super::config::ClaimsRefused;
use super::provider::SignInError;
use super::session::{cookie, set_cookie};
use super::{
    LOGIN_COOKIE, OidcAuth, SESSION_COOKIE, constant_time_eq, pages, random_hex, sha256_hex,
};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiQuery;

/// Most sign-ins in progress at once.
pub const MAX_PENDING_LOGINS: usize = 10_000;
/// How long a sign-in may take at the provider.
pub const PENDING_LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// Longest `state`, `code` or `return_to` looked at.
const MAX_PARAM: usize = 2048;

/// A sign-in in progress (secret parts included: server memory only).
#[derive(Clone, Debug)]
struct PendingLogin {
    nonce: String,
    verifier: String,
    browser_sha256: String,
    return_to: String,
    expires_at: DateTime<Utc>,
}

/// Sign-ins in progress, by `state`.
#[derive(Debug, Default)]
pub(crate) struct PendingLogins {
    by_state: Mutex<HashMap<String, PendingLogin>>,
}

impl PendingLogins {
    /// Keeps `login` under `state`. When full, expired sign-ins go first,
    /// then the oldest: a flood of `GET /auth/login` can make an old
    /// sign-in start again, never refuse new ones.
    fn insert(&self, state: String, login: PendingLogin, now: DateTime<Utc>) {
        let mut map = self.by_state.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_PENDING_LOGINS {
            map.retain(|_, login| login.expires_at > now);
        }
        if map.len() >= MAX_PENDING_LOGINS {
            let oldest = map
                .iter()
                .min_by_key(|(_, login)| login.expires_at)
                .map(|(state, _)| state.clone());
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(state, login);
    }

    /// Takes the sign-in of `state` if `browser` started it and it has not
    /// expired. A state from another browser stays for its own.
    fn take(
        &self,
        state: &str,
        browser: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<PendingLogin, &'static str> {
        let mut map = self.by_state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(login) = map.get(state) else {
            return Err("this sign-in is unknown or was already used; start again");
        };
        let same_browser = browser
            .is_some_and(|browser| constant_time_eq(&sha256_hex(browser), &login.browser_sha256));
        if !same_browser {
            return Err("this sign-in was started in another browser");
        }
        let login = map.remove(state).ok_or("this sign-in is unknown")?;
        if login.expires_at <= now {
            return Err("this sign-in took too long; start again");
        }
        Ok(login)
    }
}

/// `GET /auth/login`'s query.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginParams {
    return_to: Option<String>,
}

/// Where to go after signing in: a local path (`/…`, not `//…` nor
/// `/\…`), else `/`.
pub(crate) fn local_path(return_to: Option<&str>) -> String {
    match return_to {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && path.len() <= MAX_PARAM
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            // It goes back out in a `Location` header: spaces and
            // non-ASCII characters percent-encoded, as a browser sends them.
            utf8_percent_encode(path, LOCATION_UNSAFE).to_string()
        }
        _ => "/".to_owned(),
    }
}

/// What a `Location` path cannot carry as is (non-ASCII is always encoded).
const LOCATION_UNSAFE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');

/// Starts a sign-in: 302 to the provider.
#[utoipa::path(
    get,
    path = "/auth/login",
    tag = "auth",
    params(("return_to" = Option<String>, Query, description = "A local path to come back to (default `/`)")),
    responses(
        (status = 302, description = "To the identity provider; sets the `cl_login` cookie"),
        (status = 404, description = "The server does not use OIDC", body = crate::error::ErrorBody),
        (status = 503, description = "Too many sign-ins in progress", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<LoginParams>,
) -> Result<Response, ApiError> {
    let oidc = super::session::enabled(&state)?;
    let now = state.manager.clock().now();
    let authorization = oidc
        .provider()
        .authorize()
        .map_err(|error| ApiError::internal(&error))?;
    // One browser value for all its sign-ins in progress (two tabs).
    let browser = cookie(&headers, LOGIN_COOKIE)
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(random_hex, str::to_owned);
    let ttl = chrono::Duration::from_std(PENDING_LOGIN_TTL).unwrap_or_default();
    let pending = PendingLogin {
        nonce: authorization.nonce,
        verifier: authorization.verifier,
        browser_sha256: sha256_hex(&browser),
        return_to: local_path(params.return_to.as_deref()),
        expires_at: now + ttl,
    };
    oidc.inner.pending.insert(authorization.state, pending, now);
    let mut response = pages::redirect(&authorization.url);
    response.headers_mut().insert(
        SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            &browser,
            "/auth",
            PENDING_LOGIN_TTL.as_secs(),
            oidc.settings().secure_cookies(),
        ),
    );
    Ok(response)
}

/// The provider's redirect back.
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Finishes a sign-in: checks, a new session, 302 to `return_to`.
#[utoipa::path(
    get,
    path = "/auth/callback",
    tag = "auth",
    params(
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = Option<String>, Query, description = "The state sent with the authorization request"),
        ("error" = Option<String>, Query, description = "The provider's error, if any"),
    ),
    responses(
        (status = 302, description = "Signed in: sets `cl_session`, back to `return_to`"),
        (status = 400, description = "HTML page: sign-in failed (state unknown, expired, from another browser, code refused, ID token invalid)"),
        (status = 403, description = "HTML page: not allowed to use this server, or the provider refused"),
    )
)]
pub(crate) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let Ok(oidc) = super::session::enabled(&state) else {
        return pages::sign_in_failed(
            StatusCode::NOT_FOUND,
            "this server does not use an identity provider",
        );
    };
    let params: Option<CallbackParams> = query
        .as_deref()
        .filter(|query| query.len() <= 4 * MAX_PARAM)
        .and_then(parse_callback);
    let Some(params) = params else {
        return pages::sign_in_failed(
            StatusCode::BAD_REQUEST,
            "the provider's answer is not readable",
        );
    };
    let now = state.manager.clock().now();
    match finish(oidc, &headers, params, now).await {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    }
}

/// `a=b&c=d` into the callback's parameters.
fn parse_callback(query: &str) -> Option<CallbackParams> {
    axum::extract::Query::<CallbackParams>::try_from_uri(&format!("/?{query}").parse().ok()?)
        .ok()
        .map(|axum::extract::Query(params)| params)
}

/// Why a callback did not sign anyone in.
enum Failure {
    Page(StatusCode, String),
    NotAllowed(String),
    Api(ApiError),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Page(status, reason) => pages::sign_in_failed(status, &reason),
            Failure::NotAllowed(message) => pages::not_allowed(&message),
            Failure::Api(error) => error.into_response(),
        }
    }
}

async fn finish(
    oidc: &OidcAuth,
    headers: &HeaderMap,
    params: CallbackParams,
    now: DateTime<Utc>,
) -> Result<Response, Failure> {
    let bad = |reason: &str| Failure::Page(StatusCode::BAD_REQUEST, reason.to_owned());
    let state_param = params
        .state
        .filter(|state| !state.is_empty() && state.len() <= MAX_PARAM)
        .ok_or_else(|| bad("the answer has no valid state"))?;
    let pending = oidc
        .inner
        .pending
        .take(&state_param, cookie(headers, LOGIN_COOKIE), now)
        .map_err(|reason| {
            warn!(reason, "sign-in callback refused");
            bad(reason)
        })?;
    if let Some(error) = params.error {
        let description = params.error_description.unwrap_or_default();
        warn!(error = %crate::error::echo(&error), "the identity provider refused the sign-in");
        let status = if error == "access_denied" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        let text = format!(
            "the identity provider said {} {}",
            crate::error::echo(&error),
            crate::error::echo(&description)
        );
        return Err(Failure::Page(status, text.trim().to_owned()));
    }
    let code = params
        .code
        .filter(|code| !code.is_empty() && code.len() <= MAX_PARAM)
        .ok_or_else(|| bad("the answer has no code"))?;
    let claims = oidc
        .provider()
        .finish(&code, &pending.verifier, &pending.nonce, now)
        .await
        .map_err(|error| {
            warn!(error = %error, "sign-in failed");
            match error {
                SignInError::Verification(_) => bad(&format!("{error}")),
                _ => Failure::Page(StatusCode::BAD_REQUEST, error.to_string()),
            }
        })?;
    let caller = oidc.settings().caller_for(&claims).map_err(|refused| {
        warn!(subject = %claims.subject, reason = %refused, "sign-in refused by the claim rules");
        match refused {
            ClaimsRefused::NotAllowed(_) => Failure::NotAllowed(refused.to_string()),
            other => Failure::Page(StatusCode::FORBIDDEN, other.to_string()),
        }
    })?;
    let session_id = random_hex();
    let ttl = chrono::Duration::from_std(oidc.settings().session_ttl).unwrap_or_default();
    let session = WebSession {
        id_sha256: sha256_hex(&session_id),
        owner: caller.owner.clone(),
        admin: caller.admin,
        subject: format!("{} {}", oidc.settings().issuer, claims.subject),
        csrf: random_hex(),
        created_at: now,
        expires_at: now + ttl,
    };
    oidc.store()
        .insert_session(&session)
        .await
        .map_err(|error| Failure::Api(super::credential_error(error)))?;
    info!(owner = %caller.owner, admin = caller.admin, subject = %claims.subject, "signed in");
    let secure = oidc.settings().secure_cookies();
    let mut response = pages::redirect(&pending.return_to);
    let cookies = response.headers_mut();
    cookies.append(
        SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &session_id,
            "/",
            oidc.settings().session_ttl.as_secs(),
            secure,
        ),
    );
    cookies.append(SET_COOKIE, set_cookie(LOGIN_COOKIE, "", "/auth", 0, secure));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(local_path(Some("/ui/x?y=1")), "/ui/x?y=1");
        for hostile in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "javascript:alert(1)",
            "",
            "/a\nb",
            "/a\\b",
        ] {
            assert_eq!(local_path(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(local_path(None), "/");
        assert_eq!(local_path(Some("/caf\u{e9}?n=a b")), "/caf%C3%A9?n=a%20b");
    }

    #[test]
    fn a_state_is_taken_once_and_only_by_its_browser() {
        let logins = PendingLogins::default();
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let login = PendingLogin {
            nonce: "n".to_owned(),
            verifier: "v".to_owned(),
            browser_sha256: sha256_hex("browser-a"),
            return_to: "/".to_owned(),
            expires_at: now + chrono::Duration::minutes(10),
        };
        logins.insert("s1".to_owned(), login, now);
        assert!(logins.take("s1", Some("browser-b"), now).is_err());
        assert!(logins.take("s1", None, now).is_err());
        assert!(logins.take("s1", Some("browser-a"), now).is_ok());
        assert!(logins.take("s1", Some("browser-a"), now).is_err());
    }

    #[test]
    fn a_full_table_drops_its_oldest_sign_in_not_the_new_one() {
        let logins = PendingLogins::default();
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let login = |minutes: i64| PendingLogin {
            nonce: "n".to_owned(),
            verifier: "v".to_owned(),
            browser_sha256: sha256_hex("browser"),
            return_to: "/".to_owned(),
            expires_at: now + chrono::Duration::minutes(minutes),
        };
        // The first one is the oldest (it expires first).
        logins.insert("oldest".to_owned(), login(1), now);
        for i in 1..MAX_PENDING_LOGINS {
            logins.insert(format!("s{i}"), login(10), now);
        }
        logins.insert("new".to_owned(), login(10), now);
        assert!(logins.take("new", Some("browser"), now).is_ok());
        assert!(logins.take("oldest", Some("browser"), now).is_err());
        assert!(logins.take("s1", Some("browser"), now).is_ok());
    }
}
