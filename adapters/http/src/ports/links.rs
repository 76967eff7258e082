//! Preview links: `POST /api/containers/{id}/ports/{port}/links` mints one
//! (to one port, expiring no later than the lease), `GET` lists the port's
//! live links, `DELETE /api/containers/{id}/links/{linkId}` revokes one.
//!
//! What `public` means:
//! - public: the URL alone opens the port — a capability URL
//!   `/p/{secret}/…` (anyone holding it may use the app: share it like a
//!   password); works for browsers, curl, CORS fetches (preflights
//!   included: the capability is in the path) and WebSocket clients;
//! - private (default): the secret must come with the request, as
//!   `Authorization: Bearer <secret>` (curl, fetch) or as the port's
//!   cookie, set by opening the link URL
//!   `/leases/{id}/ports/{port}/?link=<secret>` once in a browser (a
//!   preflight passes to the app while a link is live). The secret never
//!   sits in the app's URLs afterwards, so it does not leak through
//!   Referer, history or the app's logs.
//!
//! Either opens that port of that lease and nothing else: the API refuses
//! link secrets (they are not tokens).

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use super::grants::{Grant, GrantKind};
use super::reach::parse_port;
use super::routes::proto_of;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::parse_json;
use crate::leases::find_lease;
use crate::local_only::request_authority;
use crate::wire::time_text;
use lease_core::Status;

/// Default link lifetime: one hour (or the lease's end, if sooner).
pub const DEFAULT_LINK_SECONDS: i64 = 3600;

/// `POST /api/containers/{id}/ports/{port}/links` body (every field optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LinkRequest {
    /// Seconds the link lasts, 1 or more (default 3600); cut at the
    /// lease's end.
    expires_in_seconds: Option<i64>,
    /// Whether the URL alone opens the port (default false).
    public: Option<bool>,
}

/// A preview link.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LinkJson {
    /// `lnk_…`: list and revoke it by this.
    link_id: String,
    /// The lease.
    lease_id: String,
    /// The one port it opens.
    port: u16,
    /// Whether the URL alone opens the port.
    public: bool,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339; never after the lease's end.
    expires_at: String,
    /// The secret (at creation only): `Authorization: Bearer <secret>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// The URL to open (at creation only): the path form
    /// (`/p/{secret}/` when public).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The preview-host URL, when the server has a preview domain (at
    /// creation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    host_url: Option<String>,
}

/// `GET …/links`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LinksJson {
    /// The port's live links, oldest first (without secrets).
    links: Vec<LinkJson>,
}

fn link_json(grant: &Grant) -> LinkJson {
    LinkJson {
        link_id: grant.id.clone(),
        lease_id: grant.lease.to_string(),
        port: grant.port,
        public: grant.kind == GrantKind::Link { public: true },
        created_at: time_text(grant.created_at),
        expires_at: time_text(grant.expires_at),
        secret: None,
        url: None,
        host_url: None,
    }
}

/// Mints a preview link to one port of a running lease of the caller's.
#[utoipa::path(
    post,
    path = "/api/containers/{id}/ports/{port}/links",
    tag = "ports",
    params(("id" = String, Path, description = "Lease id"), ("port" = u16, Path, description = "1 to 65535")),
    request_body(content = LinkRequest, description = "`{\"expiresInSeconds\":600,\"public\":false}`; every field optional"),
    responses(
        (status = 201, description = "The link, with its secret and URLs (shown once)", body = LinkJson),
        (status = 400, description = "Bad port (`invalid_port`) or body (`invalid_request`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
        (status = 409, description = "The lease is not running (`not_running`)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many live links (`too_many_links`) or over the rate limit", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, port)): Path<(String, String)>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let port = parse_port(&port)?;
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let base = format!(
        "{}://{}",
        proto_of(&request),
        request_authority(&request).unwrap_or_else(|| "localhost".into())
    );
    let body = axum::body::to_bytes(request.into_body(), 4096)
        .await
        .map_err(|_| ApiError::bad_request("the body is too large"))?;
    let asked: LinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LinkRequest::default()
    } else {
        parse_json(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.detail.message)
        })?
    };
    if lease.status != Status::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_running",
            format!(
                "lease {} is {}: links open running leases only",
                lease.id, lease.status
            ),
        ));
    }
    let seconds = asked.expires_in_seconds.unwrap_or(DEFAULT_LINK_SECONDS);
    if !(1..=366 * 24 * 3600).contains(&seconds) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expiresInSeconds: must be 1 or more (it is cut at the lease's end)",
        )
        .with_field("expiresInSeconds"));
    }
    let public = asked.public.unwrap_or(false);
    let expires_at = (state.grants.now() + Duration::seconds(seconds)).min(lease.expires_at);
    let (secret, grant) = state
        .grants
        .mint(
            &caller,
            &lease.id,
            port,
            expires_at,
            GrantKind::Link { public },
        )
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_links",
                "too many live preview links and port cookies; revoke some",
            )
        })?;
    info!(lease_id = %lease.id, owner = %caller.owner, port, public, link_id = %grant.id, "preview link minted");
    let mut json = link_json(&grant);
    json.url = Some(if public {
        format!("{base}/p/{secret}/")
    } else {
        format!("{base}/leases/{}/ports/{port}/?link={secret}", lease.id)
    });
    json.host_url = state.preview_domain.as_ref().map(|domain| {
        let proto = base.split("://").next().unwrap_or("http");
        format!(
            "{proto}://{port}-{}.{domain}/?link={secret}",
            lease
                .id
                .as_str()
                .trim_start_matches(lease_core::id::LEASE_ID_PREFIX)
        )
    });
    json.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(json)))
}

/// The live preview links of one port of a lease of the caller's.
#[utoipa::path(
    get,
    path = "/api/containers/{id}/ports/{port}/links",
    tag = "ports",
    params(("id" = String, Path, description = "Lease id"), ("port" = u16, Path, description = "1 to 65535")),
    responses(
        (status = 200, description = "The port's live links, without secrets", body = LinksJson),
        (status = 400, description = "Bad port", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, port)): Path<(String, String)>,
) -> Result<Json<LinksJson>, ApiError> {
    let port = parse_port(&port)?;
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let links = state.grants.links(&lease.id, Some(port));
    Ok(Json(LinksJson {
        links: links.iter().map(link_json).collect(),
    }))
}

/// Revokes a preview link: it stops opening the port at once (open
/// WebSockets through it go on until closed).
#[utoipa::path(
    delete,
    path = "/api/containers/{id}/links/{linkId}",
    tag = "ports",
    params(("id" = String, Path, description = "Lease id"), ("linkId" = String, Path, description = "`lnk_…`")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such lease or link (or not the caller's)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, link)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    if state.grants.revoke(&lease.id, &link) {
        info!(lease_id = %lease.id, owner = %caller.owner, link_id = %link, "preview link revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no link {}", crate::error::echo(&link)),
        ))
    }
}
