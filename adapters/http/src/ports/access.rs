//! Who may use a port: the lease's owner (or an admin) by bearer token, a
//! viewer cookie made from a ticket of theirs, or a preview link.
//!
//! - `Authorization: Bearer <api token>`: scripts, curl;
//! - `?ticket=` (a `port` ticket from `POST /api/tickets`): the page's
//!   browser navigation; exchanged for a viewer grant of that one port
//!   (until the lease ends) and redirected without the ticket: on the path
//!   form to `/p/{grant}/…` (a sandboxed page has an opaque origin, so the
//!   browser treats every request it makes as cross-site and would send no
//!   `SameSite=Lax` cookie with its own scripts and styles: the grant rides
//!   in the path instead, where relative URLs keep it), on a preview host
//!   as an `HttpOnly; SameSite=Lax` host-only cookie;
//! - `?link=<secret>` (a preview link): the same exchange, the grant
//!   lasting as long as the link and revoked with it;
//! - the cookie of a preview host;
//! - `Authorization: Bearer <link secret>`: a link from curl or `fetch`;
//! - a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`,
//!   which never carries credentials) on a port that has a live link goes
//!   to the app, whose own CORS answer passes through.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::header::{ACCESS_CONTROL_REQUEST_METHOD, COOKIE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use chrono::{DateTime, Utc};

use super::grants::{Grant, GrantKind, is_secret};
use super::proxy::GRANT_COOKIE;
use crate::AppState;
use crate::auth::{Auth, Caller, bearer_caller, bearer_header};
use crate::error::ApiError;
use crate::tickets::StreamPath;

/// Who a proxied request acts for.
#[derive(Clone, Debug)]
pub(crate) enum Viewer {
    /// The owner or an admin (token, or single-user mode).
    Caller(Caller),
    /// A grant's holder, acting with its maker's rights on that port only.
    Grant(Grant),
}

impl Viewer {
    /// The caller whose rights the proxy uses on the lease.
    pub(crate) fn caller(&self) -> &Caller {
        match self {
            Viewer::Caller(caller) => caller,
            Viewer::Grant(grant) => &grant.caller,
        }
    }
}

/// What to do with a request's credentials.
#[derive(Debug)]
pub(crate) enum Access {
    /// Serve it for this viewer.
    Serve(Viewer),
    /// A viewer grant was made (from a ticket or a link): send the browser
    /// to it — `/p/{secret}/…` on the sandboxed forms, a cookie on a
    /// preview host — without the exchanged parameter.
    Exchange(String, DateTime<Utc>),
}

/// The query parameters of `uri`.
pub(crate) fn params(uri: &Uri) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(params)| params)
        .unwrap_or_default()
}

/// The value of our cookie in `headers`, if any.
fn grant_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| name.trim() == GRANT_COOKIE && is_secret(value.trim()))
        .map(|(_, value)| value.trim().to_owned())
}

fn refused(message: &str) -> ApiError {
    ApiError::unauthorized(message)
}

/// A grant that opens `port` of `lease`, or 401.
fn grant_for(state: &AppState, secret: &str, lease: &str, port: u16) -> Result<Grant, ApiError> {
    state
        .grants
        .find(secret)
        .filter(|grant| grant.opens(lease, port))
        .ok_or_else(|| {
            refused(
                "the link or cookie does not open this port (unknown, revoked, expired, or for another port)",
            )
        })
}

/// How the request for `port` of lease `lease` is let in (see the
/// [module docs](self)).
pub(crate) async fn resolve(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    lease: &str,
    port: u16,
) -> Result<Access, ApiError> {
    let params = params(uri);
    if params.contains_key("token") {
        return Err(refused(
            "tokens are not accepted in URLs: send `Authorization: Bearer <token>`, or open the port from the page (a ticket)",
        ));
    }
    if let Some(ticket) = params.get("ticket") {
        let caller = match &state.auth {
            Auth::SingleUser(caller) => caller.clone(),
            Auth::Tokens(_) => state
                .tickets
                .redeem(ticket, &StreamPath::Port(lease, port))
                .map_err(|refusal| refused(&refusal.to_string()))?,
        };
        let found = crate::leases::find_lease(&state.manager, &caller, lease).await?;
        let (secret, grant) = state
            .grants
            .mint(
                &caller,
                &found.id,
                port,
                found.expires_at,
                GrantKind::Viewer,
            )
            .ok_or_else(too_many)?;
        return Ok(Access::Exchange(secret, grant.expires_at));
    }
    if let Some(secret) = params.get("link") {
        let grant = grant_for(state, secret, lease, port)?;
        let derived = state.grants.derive(&grant).ok_or_else(too_many)?;
        return Ok(Access::Exchange(derived, grant.expires_at));
    }
    if let Some(bearer) = bearer_header(headers)? {
        if is_secret(bearer) {
            return Ok(Access::Serve(Viewer::Grant(grant_for(
                state, bearer, lease, port,
            )?)));
        }
        return match &state.auth {
            Auth::SingleUser(caller) => Ok(Access::Serve(Viewer::Caller(caller.clone()))),
            // The tokens file's, or a personal token (OIDC sign-in).
            Auth::Tokens(tokens) => {
                let now = state.manager.clock().now();
                bearer_caller(tokens, state.oidc.as_ref(), bearer, now)
                    .await?
                    .map(|caller| Access::Serve(Viewer::Caller(caller)))
                    .ok_or_else(|| refused("the bearer token is not valid"))
            }
        };
    }
    if let Some(secret) = grant_cookie(headers)
        && let Ok(grant) = grant_for(state, &secret, lease, port)
    {
        return Ok(Access::Serve(Viewer::Grant(grant)));
    }
    if let Auth::SingleUser(caller) = &state.auth {
        return Ok(Access::Serve(Viewer::Caller(caller.clone())));
    }
    if method == Method::OPTIONS
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        && let Some(link) = state.grants.links_of(lease, port).into_iter().next()
    {
        return Ok(Access::Serve(Viewer::Grant(link)));
    }
    Err(refused(
        "a bearer token, a preview link, or a cookie from opening this port on the page is required",
    ))
}

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_links",
        format!(
            "at most {} preview links and port cookies may be live at once; revoke some",
            super::grants::MAX_GRANTS_PER_OWNER
        ),
    )
}
