//! The proxy's routes: the path form `/leases/{id}/ports/{port}/…`, public
//! links `/p/{secret}/…`, and (with a preview domain) the host form
//! `{port}-{shortid}.{domain}`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{HOST, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tracing::debug;

use super::access::{Access, Viewer, resolve};
use super::busy::Busy;
use super::grants::GrantKind;
use super::proxy::{Forwarding, GRANT_COOKIE, forward, forward_upgrade, upgrade_of};
use super::reach::{connect, parse_port, pooled};
use crate::AppState;
use crate::error::ApiError;
use crate::limits::StreamPermit;

/// Where a proxied request goes and how it is shown.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The lease id as written.
    pub(crate) lease: String,
    /// The port.
    pub(crate) port: u16,
    /// The path prefix of the app (`/leases/{id}/ports/{port}`, `/p/{s}`,
    /// or `""` on a preview host).
    pub(crate) prefix: String,
    /// The path after the prefix, raw, starting with `/`.
    pub(crate) rest: String,
    /// Same origin as the portal: sandbox the responses.
    pub(crate) sandbox: bool,
}

/// The proxy's routes (path form and public links), state applied.
pub(crate) fn routes(state: AppState) -> Router {
    Router::new()
        .route("/leases/{id}/ports/{port}", any(path_form))
        .route("/leases/{id}/ports/{port}/", any(path_form))
        .route("/leases/{id}/ports/{port}/{*rest}", any(path_form))
        .route("/p/{secret}", any(public_link))
        .route("/p/{secret}/", any(public_link))
        .route("/p/{secret}/{*rest}", any(public_link))
        .with_state(state)
}

/// `https` when the request came over TLS (directly or as a front proxy
/// says with `X-Forwarded-Proto`).
pub(crate) fn proto_of(request: &Request) -> &'static str {
    let forwarded = request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if forwarded || request.uri().scheme_str() == Some("https") {
        "https"
    } else {
        "http"
    }
}

/// The raw path and query of `uri` split after `prefix_segments` segments.
fn split_path(uri: &Uri, segments: usize) -> Option<(String, String)> {
    let path = uri.path();
    let mut cut = 0;
    for _ in 0..segments {
        if cut >= path.len() {
            return None;
        }
        cut = path[cut + 1..]
            .find('/')
            .map_or(path.len(), |i| cut + 1 + i);
    }
    Some((path[..cut].to_owned(), path[cut..].to_owned()))
}

/// Proxies any method (GET shown) to `port` of the lease at `/{rest}`,
/// query included; WebSocket upgrades pass through byte for byte. The owner
/// (or an admin) with `Authorization: Bearer <token>`; the page opens it
/// with `?ticket=` (a `port` ticket, exchanged for a cookie scoped to this
/// port's path, then redirected); a preview link's secret as the bearer or
/// via `?link=`. Public links: `/p/{secret}/{rest}`. With a preview domain,
/// `{port}-{shortid}.{domain}/{rest}` reaches the same place. Responses
/// carry `Content-Security-Policy: sandbox …` (no `allow-same-origin`):
/// the app runs in an opaque origin.
#[utoipa::path(
    get,
    path = "/leases/{id}/ports/{port}/{rest}",
    tag = "ports",
    params(
        ("id" = String, Path, description = "Lease id"),
        ("port" = u16, Path, description = "1 to 65535"),
        ("rest" = String, Path, description = "The app's path"),
        ("ticket" = Option<String>, Query, description = "A `port` ticket (browsers): exchanged for a cookie"),
        ("link" = Option<String>, Query, description = "A preview link's secret: exchanged for a cookie"),
    ),
    responses(
        (status = 200, description = "Whatever the app answers (any status; its own errors pass as they are)"),
        (status = 303, description = "A ticket or link was exchanged for the port's cookie: go to the same URL without it"),
        (status = 400, description = "Port outside 1–65535 (`invalid_port`)", body = crate::error::ErrorBody),
        (status = 401, description = "No or invalid credentials for this port", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
        (status = 409, description = "The lease is not running (`not_running`) or has no network (`no_network`)", body = crate::error::ErrorBody),
        (status = 502, description = "Nothing listens on the port (`upstream_unreachable`) or the app broke the exchange (`upstream_failed`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn path_form(State(state): State<AppState>, request: Request) -> Response {
    let uri = request.uri().clone();
    let Some((prefix, rest)) = split_path(&uri, 4) else {
        return ApiError::bad_request("not a port path").into_response();
    };
    let mut parts = prefix.trim_start_matches('/').split('/').skip(1);
    let (Some(lease), _, Some(port)) = (parts.next(), parts.next(), parts.next()) else {
        return ApiError::bad_request("not a port path").into_response();
    };
    let port = match parse_port(port) {
        Ok(port) => port,
        Err(error) => return error.into_response(),
    };
    let target = Target {
        lease: lease.to_owned(),
        port,
        prefix,
        rest,
        sandbox: true,
    };
    serve(state, request, target).await
}

async fn public_link(State(state): State<AppState>, request: Request) -> Response {
    let uri = request.uri().clone();
    let Some((prefix, rest)) = split_path(&uri, 2) else {
        return ApiError::bad_request("not a link path").into_response();
    };
    let secret = prefix.rsplit('/').next().unwrap_or_default();
    let grant = state
        .grants
        .find(secret)
        .filter(|grant| grant.kind != GrantKind::Link { public: false });
    let Some(grant) = grant else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such link (unknown, revoked or expired)",
        )
        .into_response();
    };
    let target = Target {
        lease: grant.lease.to_string(),
        port: grant.port,
        prefix,
        rest,
        sandbox: true,
    };
    proxy(state, request, target, Viewer::Grant(grant)).await
}

/// Lets the request in (or exchanges its ticket or link for a cookie) and
/// proxies it.
pub(crate) async fn serve(state: AppState, request: Request, target: Target) -> Response {
    let access = resolve(
        &state,
        request.method(),
        request.uri(),
        request.headers(),
        &target.lease,
        target.port,
    )
    .await;
    match access {
        Ok(Access::Serve(viewer)) => proxy(state, request, target, viewer).await,
        Ok(Access::Exchange(secret, until)) => {
            let seconds = (until - state.grants.now()).num_seconds().max(1);
            exchange(&request, &target, &secret, seconds)
        }
        Err(error) => error.into_response(),
    }
}

/// Redirects to the URL without `ticket`/`link`: under `/p/{secret}` on the
/// sandboxed forms, with the grant's host-only cookie on a preview host.
fn exchange(request: &Request, target: &Target, secret: &str, seconds: i64) -> Response {
    let secure = if proto_of(request) == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{GRANT_COOKIE}={secret}; Path=/; Max-Age={seconds}; HttpOnly; SameSite=Lax{secure}"
    );
    let query: Vec<String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            !pair.is_empty() && name != "ticket" && name != "link"
        })
        .map(str::to_owned)
        .collect();
    let rest = if target.rest.is_empty() {
        "/"
    } else {
        &target.rest
    };
    // Sandboxed forms: the grant goes in the path (see `access`).
    let prefix = if target.sandbox {
        format!("/p/{secret}")
    } else {
        target.prefix.clone()
    };
    let mut location = format!("{prefix}{rest}");
    if !query.is_empty() {
        location = format!("{location}?{}", query.join("&"));
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, location);
    }
    if !target.sandbox
        && let Ok(cookie) = HeaderValue::from_str(&cookie)
    {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// Connects to the port for `viewer` and forwards the request.
async fn proxy(state: AppState, request: Request, target: Target, viewer: Viewer) -> Response {
    // The path form without a trailing slash: relative links need one.
    if target.rest.is_empty() && !target.prefix.is_empty() {
        let mut location = format!("{}/", target.prefix);
        if let Some(query) = request.uri().query() {
            location = format!("{location}?{query}");
        }
        return match HeaderValue::from_str(&location) {
            Ok(location) => {
                (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response()
            }
            Err(_) => ApiError::bad_request("not a port path").into_response(),
        };
    }
    let caller = viewer.caller().clone();
    let busy = Busy::of(&request);
    let how = forwarding(&request, &target);
    debug!(lease_id = %target.lease, port = target.port, host = ?request.headers().get(HOST), "proxying");
    let forwarded = if upgrade_of(request.headers()).is_some() {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(caller.clone());
        let permit = match StreamPermit::from_request_parts(&mut parts, &state).await {
            Ok(permit) => permit,
            Err(error) => return error.into_response(),
        };
        let request = Request::from_parts(parts, body);
        match connect(&state, &caller, &target.lease, target.port).await {
            Ok(reached) => forward_upgrade(reached, request, how, permit, busy).await,
            Err(error) => Err(error),
        }
    } else {
        match pooled(&state, &caller, &target.lease, target.port).await {
            Ok(pooled) => forward(pooled, request, how, busy).await,
            Err(error) => Err(error),
        }
    };
    match forwarded {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    }
}

/// How `request` reached us and what to ask the app for.
fn forwarding(request: &Request, target: &Target) -> Forwarding {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let mut path = target.rest.clone();
    if let Some(query) = request.uri().query() {
        path = format!("{path}?{query}");
    }
    Forwarding {
        client,
        proto: proto_of(request),
        prefix: target.prefix.clone(),
        target: path,
        sandbox: target.sandbox,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_after_their_prefix() {
        let split = |path: &str, n| split_path(&path.parse().unwrap_or_else(|e| panic!("{e}")), n);
        assert_eq!(
            split("/leases/x/ports/80/a/b?q=1", 4),
            Some(("/leases/x/ports/80".into(), "/a/b".into()))
        );
        assert_eq!(
            split("/leases/x/ports/80", 4),
            Some(("/leases/x/ports/80".into(), String::new()))
        );
        assert_eq!(
            split("/leases/x/ports/80/", 4),
            Some(("/leases/x/ports/80".into(), "/".into()))
        );
        assert_eq!(
            split("/p/s/%2e%2e/x", 2),
            Some(("/p/s".into(), "/%2e%2e/x".into()))
        );
    }
}
