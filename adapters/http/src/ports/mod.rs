//! Reaching what runs in a lease: its container's TCP ports, and the HTTP
//! proxy to them.
//!
//! - [`reach`]: the one way in for every port feature: checks the caller
//!   may use the lease (404 otherwise), that the lease runs (409
//!   `not_running`) and the port (400 `invalid_port`), finds the
//!   container's address on the namespace's network and connects with a
//!   short timeout (502 `upstream_unreachable` when nothing listens, never
//!   a hang). Every connection comes with the lease's end token, cancelled
//!   when the lease ends (deleted, expired, exited) or the server stops.
//! - [`proxy`], [`routes`], [`host`]: HTTP to a port — the path form
//!   `/leases/{id}/ports/{port}/…`, public links `/p/{secret}/…`, and with a
//!   preview domain the host form `{port}-{shortid}.{domain}`; bodies
//!   streamed, WebSockets passed through byte for byte.
//! - [`pool`]: the keep-alive connections plain requests reuse, per lease
//!   and port, dropped when the lease ends.
//! - [`busy`]: a proxied exchange keeps the viewer's connection from the
//!   server's idle timeout while the app owes the answer.
//! - [`access`], [`grants`], [`links`]: who may (owner, admins, preview
//!   links) and how browsers get in (a ticket exchanged for a port-scoped
//!   cookie).
//!
//! # Why the sandbox
//!
//! The path and `/p/` forms serve the app from the portal's own origin. A
//! hostile app there could read the portal's `localStorage` (where the page
//! keeps its token) or call `/api/…` as the viewer. Every response of those
//! forms therefore carries `Content-Security-Policy: sandbox allow-scripts
//! allow-forms allow-popups allow-modals allow-downloads` — without
//! `allow-same-origin`: the browser runs the page in an opaque origin, so
//! storage and same-origin reads of the portal are out of its reach and its
//! requests to the API carry `Origin: null` and no credentials of ours (the
//! API takes bearer tokens only; our port cookie is HttpOnly, scoped to that
//! port's path, and stripped before the app sees a request, as is
//! `Authorization`). The cost: such apps get no cookies or storage of their
//! own and must use relative paths. Apps that need their own origin use the
//! host form (a preview domain), where each port is its own origin.

pub(crate) mod access;
pub(crate) mod busy;
pub(crate) mod grants;
pub(crate) mod host;
pub(crate) mod links;
pub(crate) mod pool;
pub(crate) mod proxy;
pub(crate) mod reach;
pub(crate) mod routes;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, post};

pub(crate) use grants::Grants;
pub(crate) use reach::{LeaseEnds, Reached, connect, parse_port};

use crate::AppState;

/// The links API (behind the token gate; `rated` on the writes).
pub(crate) fn api_routes<L>(rated: L) -> Router<AppState>
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Response:
        axum::response::IntoResponse + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    Router::new()
        .route(
            "/api/containers/{id}/ports/{port}/links",
            post(links::create).layer(rated.clone()).get(links::list),
        )
        .route(
            "/api/containers/{id}/links/{link}",
            delete(links::revoke).layer(rated),
        )
}

/// Adds the proxy to `app`: its routes (outside the API's request timeout,
/// body limit, JSON error rewriting and CORS) and, with a preview domain,
/// the host dispatcher in front of everything.
pub(crate) fn mount(app: Router, state: AppState, single_user_guard: bool) -> Router {
    let domain = state.preview_domain.clone();
    let proxied = routes::routes(state.clone());
    let proxied = if single_user_guard {
        proxied.layer(axum::middleware::from_fn(host_guard))
    } else {
        proxied
    };
    let app = app.merge(proxied);
    match domain {
        Some(domain) => app.layer(from_fn_with_state(
            host::PreviewHosts { state, domain },
            host::dispatch,
        )),
        None => app,
    }
}

/// Single-user mode: the proxy answers loopback names only (DNS
/// rebinding), whatever the page's origin (the app's own sandboxed pages
/// send `Origin: null`).
async fn host_guard(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let loopback = crate::local_only::request_authority(&request)
        .as_deref()
        .is_some_and(crate::local_only::is_loopback_authority);
    if loopback {
        next.run(request).await
    } else {
        axum::response::IntoResponse::into_response(crate::error::ApiError::new(
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            "this server runs single-user and answers only requests for localhost, 127.0.0.1 or [::1]",
        ))
    }
}
