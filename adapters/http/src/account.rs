//! What an owner has spent and rented: usage, history, and the catalog of
//! what can be rented.

use axum::Json;
use axum::extract::State;
use lease_core::{HistoryQuery, Lease, LeaseManager, ListQuery, Money};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::leases::lease_json;
use crate::wire::{
    CapacityJson, CatalogJson, HistoryJson, HistoryParams, HostUseJson, LimitsJson, OfferingJson,
    OwnerParams, UsageJson,
};

/// Default history page size.
const DEFAULT_HISTORY_PAGE: usize = 100;

/// The caller's spend and counts (an admin may ask about any owner).
#[utoipa::path(
    get,
    path = "/api/usage",
    tag = "account",
    params(OwnerParams),
    responses(
        (status = 200, description = "Spend and counts", body = UsageJson),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "Another owner asked for by a non-admin", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<OwnerParams>,
) -> Result<Json<UsageJson>, ApiError> {
    let owner = caller
        .scope(params.owner.as_deref())?
        .unwrap_or_else(|| caller.owner.clone());
    let manager = &state.manager;
    let usage = manager.usage(&owner).await?;
    let active = manager.list_all(&ListQuery::owner(owner.clone())).await?;
    let spent_today = manager.spend_today(&owner, &active).await?;
    let config = manager.config();
    Ok(Json(UsageJson {
        owner,
        active_leases: usage.active,
        live_leases: usage.live,
        accrued_cost: usage.accrued,
        estimated_cost: usage.estimated,
        ended_leases: usage.ended_count,
        ended_cost: usage.ended_cost,
        total_spend: usage.total_spend,
        spent_today,
        limits: LimitsJson {
            max_leases_per_owner: config.max_leases_per_owner,
            max_daily_spend: config.max_daily_spend,
            max_minutes: config.max_minutes,
            capacity: CapacityJson {
                max_leases: config.max_leases,
                max_cpus: config.max_nano_cpus.map(Money::from_nanos),
                max_memory_mb: config.max_memory_mb,
                in_use: match caller.admin {
                    true => Some(host_use(manager).await?),
                    false => None,
                },
            },
        },
    }))
}

/// What all owners' active leases reserve now (for admins).
async fn host_use(manager: &LeaseManager) -> Result<HostUseJson, ApiError> {
    let active = manager.list_all(&ListQuery::default()).await?;
    let reserved = Reserved::of(&active);
    Ok(HostUseJson {
        leases: reserved.leases,
        cpus: Money::from_nanos(reserved.nano_cpus),
        memory_mb: reserved.memory_mb,
    })
}

/// What a set of active leases reserves on the host: the figures the
/// capacity limits count (shared by `/api/usage` and `/api/admin/stats`).
pub(crate) struct Reserved {
    /// How many leases.
    pub(crate) leases: u64,
    /// Σ nano-CPUs (saturating).
    pub(crate) nano_cpus: i64,
    /// Σ memory in MiB.
    pub(crate) memory_mb: u64,
}

impl Reserved {
    /// The sums over `active`.
    pub(crate) fn of(active: &[Lease]) -> Reserved {
        Reserved {
            leases: active.len() as u64,
            nano_cpus: active
                .iter()
                .fold(0i64, |sum, lease| sum.saturating_add(lease.nano_cpus)),
            memory_mb: active.iter().map(|lease| u64::from(lease.memory_mb)).sum(),
        }
    }
}

/// The caller's finished leases, newest first, with final cost and how each
/// ended (an admin's: everyone's, or one owner's).
#[utoipa::path(
    get,
    path = "/api/history",
    tag = "account",
    params(HistoryParams),
    responses(
        (status = 200, description = "Finished leases", body = HistoryJson),
        (status = 400, description = "Bad query or cursor", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "Another owner asked for by a non-admin", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<HistoryJson>, ApiError> {
    let owner = caller.scope(params.owner.as_deref())?;
    let limit = match params.limit {
        None => DEFAULT_HISTORY_PAGE,
        Some(n @ 1..=1000) => n as usize,
        Some(_) => return Err(ApiError::bad_request("limit must be between 1 and 1000")),
    };
    let query = HistoryQuery {
        owner,
        cursor: params.cursor,
        limit,
    };
    let page = state.manager.history(&query).await?;
    Ok(Json(HistoryJson {
        leases: page
            .items
            .iter()
            .map(|lease| lease_json(&state.manager, lease))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// What can be rented, with prices and limits (the UI's cost estimate uses it).
#[utoipa::path(
    get,
    path = "/api/catalog",
    tag = "leases",
    responses(
        (status = 200, description = "The offerings", body = CatalogJson),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn catalog(State(state): State<AppState>, _caller: Caller) -> Json<CatalogJson> {
    let max = state.manager.config().max_minutes;
    Json(CatalogJson {
        offerings: state
            .manager
            .catalog()
            .offerings()
            .map(|offering| OfferingJson::new(offering, max))
            .collect(),
    })
}
