//! `GET /openapi.json`: the OpenAPI document, generated from the handlers'
//! own annotations and types so it cannot drift from them.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from the server's tokens file (`lease-server token new`). \
                         Never in a URL: browsers open the event stream and WebSockets with \
                         `?ticket=`, a single-use ticket from `POST /api/tickets`. \
                         Not needed when the server runs single-user. With OIDC sign-in, \
                         personal tokens (`clp_…`, `POST /api/tokens` or `lease login`) too.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::oidc::SESSION_COOKIE,
                "The browser session of a person signed in with the identity provider \
                 (`GET /auth/login`; HttpOnly, SameSite=Lax). A request made with it whose \
                 method is not GET/HEAD/OPTIONS must carry the session's CSRF token \
                 (`csrf` of `GET /api/me`) as `X-CSRF-Token`, and an `Origin`, when sent, \
                 must be the server's own: else 403 `csrf`.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ContainerLease",
        description = "Rent short-lived Docker containers: priced up front, removed when their time runs out. \
                       Errors are always `{\"error\":{\"code\",\"message\"}}`. \
                       Single-user servers (no tokens) answer only requests for a loopback name: \
                       any other `Host` gets 421 `wrong_host`, a request from a web page of another \
                       origin 403 `foreign_origin`."
    ),
    paths(
        crate::leases::provision,
        crate::leases::list,
        crate::leases::status,
        crate::leases::delete,
        crate::leases::extend,
        crate::account::catalog,
        crate::account::usage,
        crate::account::history,
        crate::admin_stats::admin_stats,
        crate::events::events,
        crate::logs::logs,
        crate::tickets::mint,
        crate::shell::routes::create,
        crate::shell::routes::list,
        crate::shell::routes::delete,
        crate::shell::routes::attach,
        crate::files::download,
        crate::files::upload,
        crate::forward::route::tcp,
        crate::ports::links::create,
        crate::ports::links::list,
        crate::ports::links::revoke,
        crate::ports::routes::path_form,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::metrics,
        openapi_json,
        crate::oidc::session::auth_mode,
        crate::oidc::session::me,
        crate::oidc::tokens::list,
        crate::oidc::tokens::mint,
        crate::oidc::tokens::revoke,
        crate::oidc::tokens::revoke_owner,
        crate::oidc::login::login,
        crate::oidc::login::callback,
        crate::oidc::session::logout,
        crate::oidc::session::logout_everywhere,
        crate::oidc::cli_login::confirm,
        crate::oidc::cli_login::allow,
        crate::oidc::cli_login::token,
        crate::oidc::device::start,
        crate::oidc::device::page,
        crate::oidc::device::verify,
        crate::oidc::device::allow,
        crate::oidc::device::token,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::wire::LeaseJson,
        crate::wire::EventJson,
        crate::shell::SessionRequest,
        crate::shell::SessionJson,
        crate::shell::SessionsJson,
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "leases", description = "Rent, inspect, extend and end leases"),
        (name = "account", description = "Spend and history"),
        (name = "shell", description = "Commands and terminals in a running lease, over a WebSocket that survives reconnects"),
        (name = "files", description = "Copy files into and out of a running lease, as tar streams"),
        (name = "ports", description = "Reaching what runs in a lease: HTTP and WebSockets to its ports (path form, preview hosts), preview links, TCP port-forward"),
        (name = "auth", description = "Signing in with the organisation's identity provider (OpenID Connect): browser sessions, personal tokens, the CLI's loopback and device logins. The `/auth/*` routes need no bearer token; the HTML pages among them are noted"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "admin", description = "Operators' totals over time (admins only)"),
    )
)]
struct ApiDoc;

/// The API's OpenAPI 3.1 document.
///
/// ```
/// let doc = lease_http::openapi();
/// assert!(doc.paths.paths.contains_key("/api/provision"));
/// ```
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        state.openapi_json.clone(),
    )
}
