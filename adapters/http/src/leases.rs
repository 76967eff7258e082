//! The seed's lease endpoints: provision, list, status, delete, and extend.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use lease_core::{Lease, LeaseId, LeaseManager, ListQuery, ProvisionRequest, Status};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, echo};
use crate::extract::{ApiJson, ApiQuery, LeasePath};
use crate::wire::{ContainersJson, ExtendBody, LeaseJson, ListParams, ProvisionBody};

/// Longest offering key looked up (catalog keys are at most 63 characters).
const MAX_KEY_LEN: usize = 63;

/// The lease `id` if the caller may see it; someone else's lease answers
/// 404 exactly as an unknown or malformed id does.
pub(crate) async fn find_lease(
    manager: &LeaseManager,
    caller: &Caller,
    id: &str,
) -> Result<Lease, ApiError> {
    let parsed: LeaseId = id.parse().map_err(|_| ApiError::no_lease(id))?;
    let lease = manager.get(&parsed).await?;
    if caller.admin || lease.owner == caller.owner {
        Ok(lease)
    } else {
        Err(ApiError::no_lease(id))
    }
}

/// The JSON of a lease now, with its pull progress while pending.
pub(crate) fn lease_json(manager: &LeaseManager, lease: &Lease) -> LeaseJson {
    let progress = (lease.status == Status::Pending)
        .then(|| manager.pull_progress(&lease.id))
        .flatten();
    LeaseJson::new(lease, manager.clock().now(), progress)
}

/// Checks a JSON minute count and narrows it.
fn minutes(field: &str, value: i64, max: u32) -> Result<u32, ApiError> {
    u32::try_from(value)
        .ok()
        .filter(|m| (1..=max).contains(m))
        .ok_or_else(|| {
            ApiError::invalid_field(
                field,
                format!("{field}: must be a whole number of minutes between 1 and {max}"),
            )
        })
}

/// Rents a container: stores the lease as `pending` and returns at once.
#[utoipa::path(
    post,
    path = "/api/provision",
    tag = "leases",
    request_body = ProvisionBody,
    responses(
        (status = 202, description = "Lease created; its container comes up in the background", body = LeaseJson),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = crate::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown imageType or bad durationMinutes", body = crate::error::ErrorBody),
        (status = 429, description = "Over an owner's quota (`quota_exceeded`, `limit`: max_leases_per_owner or max_daily_spend), or over the caller's rate limit (`rate_limited`, with `Retry-After`; nothing done)", body = crate::error::ErrorBody),
        (status = 503, description = "The host is at capacity (`capacity_exhausted`, `limit`: max_leases, max_cpus or max_memory; with Retry-After), or the store is unavailable", body = crate::error::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying, on capacity_exhausted"))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn provision(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ProvisionBody>,
) -> Result<(StatusCode, Json<LeaseJson>), ApiError> {
    let manager = &state.manager;
    if body.image_type.len() > MAX_KEY_LEN {
        return Err(ApiError::invalid_field(
            "imageType",
            format!("imageType: unknown offering `{}`", echo(&body.image_type)),
        ));
    }
    let minutes = body
        .duration_minutes
        .map(|value| minutes("durationMinutes", value, manager.config().max_minutes))
        .transpose()?;
    let request = ProvisionRequest {
        owner: caller.owner,
        offering: body.image_type,
        minutes,
    };
    let lease = manager.provision(request).await?;
    Ok((StatusCode::ACCEPTED, Json(lease_json(manager, &lease))))
}

/// Lists the caller's active leases (an admin's: everyone's).
#[utoipa::path(
    get,
    path = "/api/containers",
    tag = "leases",
    params(ListParams),
    responses(
        (status = 200, description = "Active leases", body = ContainersJson),
        (status = 400, description = "Bad query", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "Another owner's leases asked for by a non-admin", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ContainersJson>, ApiError> {
    let owner = caller.scope(params.owner.as_deref())?;
    let mut statuses = Vec::new();
    for word in params
        .status
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let status: Status = word
            .parse()
            .map_err(|e: lease_core::lease::InvalidStatus| {
                ApiError::bad_request(echo(&e.to_string()))
            })?;
        statuses.push(status);
    }
    let query = ListQuery {
        owner,
        statuses,
        ..ListQuery::default()
    };
    let leases = state.manager.list_all(&query).await?;
    let containers = leases
        .iter()
        .map(|lease| lease_json(&state.manager, lease))
        .collect();
    Ok(Json(ContainersJson { containers }))
}

/// One lease, active or finished, with pull progress while pending.
#[utoipa::path(
    get,
    path = "/api/containers/{id}/status",
    tag = "leases",
    params(("id" = String, Path, description = "Lease id")),
    responses(
        (status = 200, description = "The lease", body = LeaseJson),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
    LeasePath(id): LeasePath,
) -> Result<Json<LeaseJson>, ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    Ok(Json(lease_json(&state.manager, &lease)))
}

/// Ends a lease early; its container is removed at once in the background.
#[utoipa::path(
    delete,
    path = "/api/containers/{id}",
    tag = "leases",
    params(("id" = String, Path, description = "Lease id")),
    responses(
        (status = 202, description = "Deletion under way (status `deleting`, or `deleted` if already gone)", body = LeaseJson),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
        (status = 429, description = "Over the caller's rate limit (`rate_limited`, with `Retry-After`; nothing done)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    LeasePath(id): LeasePath,
) -> Result<(StatusCode, Json<LeaseJson>), ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let lease = state.manager.delete(&lease.id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(lease_json(&state.manager, &lease)),
    ))
}

/// Books more minutes, within the max lifetime and the daily-spend quota.
#[utoipa::path(
    post,
    path = "/api/containers/{id}/extend",
    tag = "leases",
    params(("id" = String, Path, description = "Lease id")),
    request_body = ExtendBody,
    responses(
        (status = 200, description = "The lease with its new expiry and cost", body = LeaseJson),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's)", body = crate::error::ErrorBody),
        (status = 409, description = "The lease is not live", body = crate::error::ErrorBody),
        (status = 422, description = "Bad minutes or past the max lifetime", body = crate::error::ErrorBody),
        (status = 429, description = "Over the daily-spend quota (`quota_exceeded`), or over the caller's rate limit (`rate_limited`, with `Retry-After`; nothing done)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    LeasePath(id): LeasePath,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Json<LeaseJson>, ApiError> {
    let minutes = minutes("minutes", body.minutes, state.manager.config().max_minutes)?;
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let lease = state.manager.extend(&lease.id, minutes).await?;
    Ok(Json(lease_json(&state.manager, &lease)))
}
