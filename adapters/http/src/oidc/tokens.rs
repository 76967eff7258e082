//! Personal tokens (`/api/tokens`): a signed-in person mints, lists and
//! revokes their own bearer tokens. Only the SHA-256 of a token is stored;
//! the token itself is shown once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lease_core::PersonalToken;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use super::session::{Via, enabled};
use super::{OidcAuth, PERSONAL_TOKEN_PREFIX, credential_error, random_hex, sha256_hex};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, LeasePath};

/// Default lifetime of a personal token, in days.
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
/// Longest lifetime of a personal token, in days.
pub const MAX_TOKEN_DAYS: u32 = 365;
/// Longest lifetime of a token with admin rights, in days: admin rights
/// come from a group at sign-in, so a token carrying them must be renewed
/// (by signing in again) soon enough for a removal from the group to count.
pub const MAX_ADMIN_TOKEN_DAYS: i64 = 7;
/// Longest token name, in characters.
const MAX_NAME: usize = 64;

/// A personal token as listed (never the token itself).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenJson {
    /// Public id (`pt_…`).
    id: String,
    /// Its name.
    name: String,
    /// When it was minted.
    created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    expires_at: Option<DateTime<Utc>>,
    /// When it was last used (about a minute's precision).
    last_used_at: Option<DateTime<Utc>>,
    /// Whether it carries admin rights.
    admin: bool,
}

impl From<&PersonalToken> for TokenJson {
    fn from(token: &PersonalToken) -> Self {
        TokenJson {
            id: token.id.clone(),
            name: token.name.clone(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            admin: token.admin,
        }
    }
}

/// The caller's personal tokens.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokensJson {
    tokens: Vec<TokenJson>,
}

/// A new token: the listing fields and the token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MintedJson {
    #[serde(flatten)]
    token: TokenJson,
    /// The bearer token (`clp_` and 64 hex digits): not stored anywhere.
    #[serde(rename = "token")]
    secret: String,
    /// The owner it acts as.
    owner: String,
}

/// `POST /api/tokens`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MintRequest {
    /// 1 to 64 printable characters.
    name: String,
    /// Days until it expires: 1 to 365, default 90.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// Checks a token name.
pub(crate) fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "the token name must be 1 to 64 printable characters",
        ));
    }
    Ok(name.to_owned())
}

/// Mints and stores a token for `caller`; returns it with its secret.
pub(crate) async fn mint_for(
    oidc: &OidcAuth,
    caller: &Caller,
    name: String,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(PersonalToken, String), ApiError> {
    let secret = format!("{PERSONAL_TOKEN_PREFIX}{}", random_hex());
    let expires_at = if caller.admin {
        let admin_limit = now + chrono::Duration::days(MAX_ADMIN_TOKEN_DAYS);
        Some(expires_at.map_or(admin_limit, |at| at.min(admin_limit)))
    } else {
        expires_at
    };
    let token = PersonalToken {
        id: format!("pt_{}", &random_hex()[..20]),
        token_sha256: sha256_hex(&secret),
        owner: caller.owner.clone(),
        admin: caller.admin,
        name,
        created_at: now,
        expires_at,
        last_used_at: None,
    };
    oidc.store()
        .insert_token(&token, oidc.settings().max_personal_tokens)
        .await
        .map_err(credential_error)?;
    info!(owner = %token.owner, id = %token.id, name = %token.name, admin = token.admin, "personal token minted");
    Ok((token, secret))
}

/// The caller's tokens, newest first.
#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "auth",
    responses(
        (status = 200, description = "The caller's personal tokens", body = TokensJson),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 404, description = "The server does not use OIDC", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokensJson>, ApiError> {
    let oidc = enabled(&state)?;
    let tokens = oidc.store().tokens_of(&caller.owner).await?;
    Ok(Json(TokensJson {
        tokens: tokens.iter().map(TokenJson::from).collect(),
    }))
}

/// Mints a personal token (shown once).
#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "auth",
    request_body = MintRequest,
    responses(
        (status = 201, description = "The new token, shown this once", body = MintedJson),
        (status = 403, description = "Only a signed-in browser session mints (not a tokens-file or personal token); CSRF check failed", body = crate::error::ErrorBody),
        (status = 409, description = "`too_many_tokens`: revoke one first", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid name or expiry", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    via: Option<axum::Extension<Via>>,
    ApiJson(request): ApiJson<MintRequest>,
) -> Result<Response, ApiError> {
    let oidc = enabled(&state)?;
    let via = via.map(|axum::Extension(via)| via);
    let name = valid_name(&request.name)?;
    let days = request.expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(ApiError::invalid_field(
            "expiresInDays",
            format!("expiresInDays must be 1 to {MAX_TOKEN_DAYS}"),
        ));
    }
    // Only a person signed in with the provider mints tokens: a stolen
    // token cannot mint more that would outlive its revocation.
    match via {
        Some(Via::Session { .. }) => {}
        Some(Via::PersonalToken { .. }) => {
            return Err(ApiError::forbidden(
                "personal tokens are minted in a signed-in browser session (or by `lease login`), not with another token",
            ));
        }
        _ => {
            return Err(ApiError::forbidden(
                "personal tokens are minted by people signed in with the identity provider",
            ));
        }
    }
    let now = state.manager.clock().now();
    let expires_at = now + chrono::Duration::days(i64::from(days));
    let (token, secret) = mint_for(oidc, &caller, name, Some(expires_at), now).await?;
    Ok((
        StatusCode::CREATED,
        Json(MintedJson {
            token: TokenJson::from(&token),
            secret,
            owner: token.owner,
        }),
    )
        .into_response())
}

/// Revokes one of the caller's tokens (`current`: the one presenting this
/// request).
#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    tag = "auth",
    params(("id" = String, Path, description = "The token's id, or `current`")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token of the caller's (or `current` without a personal token)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    via: Option<axum::Extension<Via>>,
    LeasePath(id): LeasePath,
) -> Result<StatusCode, ApiError> {
    let oidc = enabled(&state)?;
    let id = if id == "current" {
        match via {
            Some(axum::Extension(Via::PersonalToken { id, .. })) => id,
            _ => return Err(no_token("current")),
        }
    } else {
        id
    };
    if oidc.store().revoke_token(&caller.owner, &id).await? {
        info!(owner = %caller.owner, id = %id, "personal token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_token(&id))
    }
}

fn no_token(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no personal token {}", crate::error::echo(id)),
    )
}

/// What an admin's revocation of an owner's credentials removed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokedJson {
    /// The owner.
    owner: String,
    /// Browser sessions ended.
    sessions: u64,
    /// Personal tokens revoked.
    tokens: u64,
}

/// Ends every session and revokes every personal token of one owner (an
/// admin's off-boarding: someone who left keeps nothing that works).
#[utoipa::path(
    delete,
    path = "/api/admin/owners/{owner}/credentials",
    tag = "auth",
    params(("owner" = String, Path, description = "The owner whose sessions and tokens end")),
    responses(
        (status = 200, description = "What was ended", body = RevokedJson),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "The server does not use OIDC", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn revoke_owner(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(owner): axum::extract::Path<String>,
) -> Result<Json<RevokedJson>, ApiError> {
    let oidc = enabled(&state)?;
    if !caller.admin {
        return Err(ApiError::forbidden(
            "only admins end other owners' sessions and tokens",
        ));
    }
    let sessions = oidc.store().delete_sessions_of(&owner).await?;
    let tokens = oidc.store().revoke_tokens_of(&owner).await?;
    info!(admin = %caller.owner, owner = %owner, sessions, tokens, "owner's credentials revoked");
    Ok(Json(RevokedJson {
        owner,
        sessions,
        tokens,
    }))
}
