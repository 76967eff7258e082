//! The JSON shapes of the API, in the seed's camelCase.
//!
//! A lease as the seed's clients know it:
//!
//! ```json
//! {
//!   "id": "container-1410912693448827449",
//!   "imageType": "alpine",
//!   "status": "pending",
//!   "cost": 0.00033,
//!   "createdAt": "2026-01-17T10:51:40Z",
//!   "expiryAt": "2026-01-17T10:53:40Z",
//!   "expiryTime": "2026-01-17T10:53:40Z",
//!   "expiresIn": 120
//! }
//! ```
//!
//! plus `owner`, `dockerId`, `error`, `accruedCost`, `hourlyRate`,
//! `durationMinutes`, and, when they apply, `pullProgress`, `endedAt`,
//! `endReason` and `finalCost`.

use chrono::{DateTime, SecondsFormat, Utc};
use lease_core::runtime::PullProgress;
use lease_core::{EndReason, Lease, LeaseEvent, Money, Offering};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Times as the seed wrote them: RFC 3339, whole seconds, `Z`.
pub fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseJson {
    /// The lease id (`container-…`).
    #[schema(example = "container-k3x9q2m7v1b8n4c6z0aa")]
    pub id: String,
    /// The catalog offering (`alpine`, `ubuntu`, …).
    #[schema(example = "alpine")]
    pub image_type: String,
    /// `pending`, `running`, `error`, `exited`, `deleting` or `deleted`.
    #[schema(example = "pending")]
    pub status: String,
    /// Who rented it.
    pub owner: String,
    /// Estimated price of the whole booking, in dollars.
    #[schema(value_type = f64, example = 0.000333333)]
    pub cost: Money,
    /// Price per hour, in dollars.
    #[schema(value_type = f64, example = 0.01)]
    pub hourly_rate: Money,
    /// Cost so far (final once ended), in dollars.
    #[schema(value_type = f64)]
    pub accrued_cost: Money,
    /// Booked minutes.
    pub duration_minutes: i64,
    /// When it was asked for (RFC 3339).
    #[schema(example = "2026-01-17T10:51:40Z")]
    pub created_at: String,
    /// When it expires (RFC 3339).
    #[schema(example = "2026-01-17T10:53:40Z")]
    pub expiry_at: String,
    /// Same as `expiryAt` (the seed's provision response used this name).
    pub expiry_time: String,
    /// Seconds left until expiry (zero once expired).
    pub expires_in: i64,
    /// The runtime's container id, once known.
    pub docker_id: Option<String>,
    /// The last error (failed provisioning, failing removal), if any.
    pub error: Option<String>,
    /// Image-pull progress while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_progress: Option<PullProgressJson>,
    /// When billing stopped, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// How it ended: `deleted`, `expired`, `error` or `exited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// What it cost in the end, once it has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub final_cost: Option<Money>,
}

fn end_reason_text(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Deleted => "deleted",
        EndReason::Expired => "expired",
        EndReason::Error => "error",
        EndReason::Exited => "exited",
    }
}

impl LeaseJson {
    /// The JSON of `lease` at `now`, with its pull progress if known.
    pub fn new(lease: &Lease, now: DateTime<Utc>, progress: Option<PullProgress>) -> Self {
        let expiry = time_text(lease.expires_at);
        LeaseJson {
            id: lease.id.to_string(),
            image_type: lease.offering.clone(),
            status: lease.status.as_str().to_owned(),
            owner: lease.owner.clone(),
            cost: lease.estimated_cost,
            hourly_rate: lease.hourly_rate,
            accrued_cost: lease.accrued_cost(now),
            duration_minutes: lease.booked_minutes(),
            created_at: time_text(lease.created_at),
            expiry_at: expiry.clone(),
            expiry_time: expiry,
            expires_in: if lease.ended_at.is_some() {
                0
            } else {
                lease.expires_in(now)
            },
            docker_id: lease.container_id.clone(),
            error: lease.error.clone(),
            pull_progress: progress.map(PullProgressJson::from),
            ended_at: lease.ended_at.map(time_text),
            end_reason: lease.end_reason.map(|r| end_reason_text(r).to_owned()),
            final_cost: lease.final_cost,
        }
    }
}

/// Image-pull progress of a pending lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullProgressJson {
    /// Layers seen so far.
    pub layers_total: u32,
    /// Layers fully downloaded (or already present).
    pub layers_done: u32,
    /// Bytes downloaded so far.
    pub bytes_done: u64,
    /// Bytes to download, where known.
    pub bytes_total: u64,
    /// The engine's latest status line.
    pub status: String,
}

impl From<PullProgress> for PullProgressJson {
    fn from(progress: PullProgress) -> Self {
        PullProgressJson {
            layers_total: progress.layers_total,
            layers_done: progress.layers_done,
            bytes_done: progress.bytes_done,
            bytes_total: progress.bytes_total,
            status: progress.status,
        }
    }
}

/// `POST /api/provision` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisionBody {
    /// The catalog offering (`alpine`, `ubuntu`, …).
    #[schema(example = "alpine")]
    pub image_type: String,
    /// Booked minutes, 1 to the max lifetime; default 120.
    #[serde(default)]
    #[schema(example = 2)]
    pub duration_minutes: Option<i64>,
}

/// `POST /api/containers/{id}/extend` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// Minutes to add to the booking.
    #[schema(example = 30)]
    pub minutes: i64,
}

/// `GET /api/containers` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContainersJson {
    /// The caller's active leases (an admin's: everyone's), oldest first.
    pub containers: Vec<LeaseJson>,
}

/// `GET /api/containers` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Admins only: one owner's leases (default: everyone's for admins).
    pub owner: Option<String>,
    /// Only these statuses, comma-separated (`running,pending`).
    pub status: Option<String>,
}

/// `GET /api/history` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Admins only: one owner's leases.
    pub owner: Option<String>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /api/usage` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OwnerParams {
    /// Admins only: another owner's usage.
    pub owner: Option<String>,
}

/// `GET /api/history` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryJson {
    /// Finished leases, newest first, with `finalCost` and `endReason`.
    pub leases: Vec<LeaseJson>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /api/usage` answer: one owner's spend and counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageJson {
    /// Whose usage.
    pub owner: String,
    /// Leases not yet finished.
    pub active_leases: u64,
    /// Of those, pending or running.
    pub live_leases: u64,
    /// Accrued so far by the active leases, in dollars.
    #[schema(value_type = f64)]
    pub accrued_cost: Money,
    /// Estimated total of the live leases' bookings.
    #[schema(value_type = f64)]
    pub estimated_cost: Money,
    /// Finished leases.
    pub ended_leases: u64,
    /// Their final costs.
    #[schema(value_type = f64)]
    pub ended_cost: Money,
    /// Ended costs plus accrued.
    #[schema(value_type = f64)]
    pub total_spend: Money,
    /// Estimated spend of leases created today (UTC), as the daily quota counts it.
    #[schema(value_type = f64)]
    pub spent_today: Money,
    /// The quotas in force.
    pub limits: LimitsJson,
}

/// Per-owner quotas; `null` means unlimited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsJson {
    /// Most active leases per owner.
    pub max_leases_per_owner: Option<u32>,
    /// Most estimated spend per owner per UTC day, in dollars.
    #[schema(value_type = Option<f64>)]
    pub max_daily_spend: Option<Money>,
    /// Longest lifetime of a lease in minutes, extensions included.
    pub max_minutes: u32,
    /// The host's capacity: what all owners' active leases may take together.
    pub capacity: CapacityJson,
}

/// The host's capacity limits (`null`: unlimited) and, for admins, what the
/// active leases of all owners take now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityJson {
    /// Most active leases of all owners together (`--max-leases`).
    pub max_leases: Option<u32>,
    /// Most CPUs the active leases may reserve together (`--max-cpus`),
    /// exact decimal.
    #[schema(value_type = Option<f64>)]
    pub max_cpus: Option<Money>,
    /// Most memory the active leases may reserve together, in MiB
    /// (`--max-memory`).
    pub max_memory_mb: Option<u64>,
    /// What all owners' active leases take now; only admins see it (it
    /// tells about other owners' activity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<HostUseJson>,
}

/// What the active leases of all owners reserve now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostUseJson {
    /// Active leases.
    pub leases: u64,
    /// CPUs they reserve, exact decimal.
    #[schema(value_type = f64)]
    pub cpus: Money,
    /// Memory they reserve, in MiB.
    pub memory_mb: u64,
}

/// `GET /api/catalog` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CatalogJson {
    /// What can be rented.
    pub offerings: Vec<OfferingJson>,
}

/// One offering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingJson {
    /// The key to ask for as `imageType`.
    pub key: String,
    /// The image it runs.
    pub image: String,
    /// Price per hour, in dollars.
    #[schema(value_type = f64)]
    pub hourly_rate: Money,
    /// CPU limit.
    pub cpus: f64,
    /// Memory limit in MiB.
    pub memory_mb: u32,
    /// Booking when none is asked for, in minutes.
    pub default_minutes: u32,
    /// Longest lifetime in minutes, extensions included.
    pub max_minutes: u32,
    /// The network its containers are on: `none`, `isolated` (the
    /// server reaches it, it reaches nothing) or `egress` (outbound too);
    /// never one lease to another.
    pub network: String,
    /// Whether the root filesystem is read-only (writes only to `/tmp`).
    pub read_only: bool,
    /// Size of the writable `/tmp` scratch in MiB, for a read-only root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_mb: Option<u32>,
    /// The numeric `uid` or `uid:gid` it runs as, when not the image's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Limit of its writable disk layer in MiB, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u32>,
}

impl OfferingJson {
    /// The JSON of `offering`, its max lifetime capped at `max_minutes`.
    pub fn new(offering: &Offering, max_minutes: u32) -> Self {
        OfferingJson {
            key: offering.key.clone(),
            image: offering.image.clone(),
            hourly_rate: offering.hourly_rate,
            cpus: offering.cpus(),
            memory_mb: offering.memory_mb,
            default_minutes: offering.default_minutes.min(max_minutes),
            max_minutes: offering.max_minutes.min(max_minutes),
            network: offering.network.as_str().to_owned(),
            read_only: offering.read_only,
            scratch_mb: offering
                .confinement()
                .scratch_bytes
                .and_then(|bytes| u32::try_from(bytes >> 20).ok()),
            user: offering.user.clone(),
            disk_mb: offering.disk_mb,
        }
    }
}

/// One Server-Sent Event's data (the SSE event name is `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventJson {
    /// `created`, `running`, `error`, `exited`, `extended`,
    /// `expiring_soon`, `deleted` or `reap_failed`.
    pub kind: String,
    /// When it happened (RFC 3339).
    pub at: String,
    /// The lease after the change.
    pub lease: LeaseJson,
    /// For `deleted`: how late the removal started after the lease became
    /// due, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_ms: Option<i64>,
}

impl EventJson {
    /// The JSON of `event`.
    pub fn new(event: &LeaseEvent) -> Self {
        EventJson {
            kind: event.kind.as_str().to_owned(),
            at: time_text(event.at),
            lease: LeaseJson::new(&event.lease, event.at, None),
            lateness_ms: event.lateness_ms,
        }
    }
}

/// `GET /healthz` and `GET /readyz` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthJson {
    /// `ok` or `ready`.
    pub status: String,
    /// Per dependency: `ok` or what failed (readiness only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<ChecksJson>,
}

/// `GET /readyz` answer to a caller who is not an operator: ready or not,
/// no details (those go to admins and the server log). When not ready
/// (503) it also carries the usual `error` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadyJson {
    /// Whether the store and the container runtime answer.
    pub ready: bool,
    /// `not_ready` when not ready (its message names no dependency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorDetail>,
}

/// Readiness of each dependency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChecksJson {
    /// The lease store.
    pub store: String,
    /// The container runtime.
    pub runtime: String,
}

/// `GET /ws/logs/{id}` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Start with the last `tail` lines already written (default 100).
    pub tail: Option<u32>,
    /// Keep sending new lines as they come (default `true`); with `false`
    /// the stream sends what is written so far and closes with `log stream
    /// ended`.
    pub follow: Option<bool>,
    /// A single-use ticket from `POST /api/tickets` (`route: logs`), for
    /// browsers, which cannot set headers on a WebSocket.
    pub ticket: Option<String>,
}

/// `GET /api/events` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// A single-use ticket from `POST /api/tickets` (`route: events`), for
    /// `EventSource`, which cannot set headers.
    pub ticket: Option<String>,
}
