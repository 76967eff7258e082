//! `GET /api/admin/stats`: the operators' totals over the last N days.
//!
//! Bounded by construction: one [`LeaseStore::daily_stats`] call over the
//! window (one day totals row per day, with the histograms), one
//! [`LeaseStore::share_stats`] call (the owners' and offerings' few
//! counters summed over the window from a handful of spans: rows grow with
//! log days × owners × offerings, never with leases), the active leases
//! (bounded by the host's capacity) and nothing else. Finished leases count
//! through the store's rollup
//! ([`finish_contribution`](lease_core::finish_contribution)), active ones
//! through [`active_contribution`] at the Clock's now; both land in the
//! day, owner and offering of their `created_at`.
//!
//! [`LeaseStore::daily_stats`]: lease_core::LeaseStore::daily_stats
//! [`LeaseStore::share_stats`]: lease_core::LeaseStore::share_stats

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{NaiveDate, SecondsFormat};
use lease_core::stats::{
    self, Histogram, LATENESS_BOUNDS_MS, PROVISION_BOUNDS_MS, StatsRow, active_contribution,
    counter,
};
use lease_core::{Lease, ListQuery, Money};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;

/// Days shown unless the query says otherwise.
const DEFAULT_DAYS: u32 = 30;
/// Most days one request may ask for.
const MAX_DAYS: u32 = 90;

/// `GET /api/admin/stats` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// Days to cover, ending today (UTC): 1 to 90, default 30.
    pub days: Option<u32>,
}

/// Totals over the window (money as decimal strings of dollars).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TotalsJson {
    /// Active leases now (any creation day).
    pub active: u64,
    /// Σ charge of the window's leases (final cost once finished, the
    /// booking's estimate while active).
    pub booked: String,
    /// Σ final cost of the window's finished leases + cost accrued so far by
    /// its active ones.
    pub accrued: String,
    /// Leases created in the window.
    pub provisions: i64,
    /// Of those, failed ones.
    pub failures: i64,
}

/// The active leases now, by status and by offering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActiveJson {
    /// Status name → count.
    pub by_status: BTreeMap<String, u64>,
    /// Offering key → count.
    pub by_offering: BTreeMap<String, u64>,
}

/// One UTC day of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayJson {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Leases created that day.
    pub provisions: i64,
    /// Of those, failed ones.
    pub failures: i64,
    /// Of those, finished ones.
    pub finished: i64,
    /// Σ charge, dollars.
    pub booked: String,
    /// Σ final or accrued cost, dollars.
    pub accrued: String,
}

/// One owner's share of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OwnerJson {
    /// The owner.
    pub owner: String,
    /// The owner's active leases now (any creation day).
    pub active: u64,
    /// Leases created in the window.
    pub provisions: i64,
    /// Σ charge, dollars.
    pub booked: String,
    /// Σ final or accrued cost, dollars.
    pub accrued: String,
}

/// One offering's share of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfferingJson {
    /// The offering key.
    pub offering: String,
    /// Leases created in the window.
    pub provisions: i64,
    /// Σ charge, dollars.
    pub booked: String,
    /// Σ final or accrued cost, dollars.
    pub accrued: String,
}

/// A histogram in milliseconds with its percentiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistogramJson {
    /// Inclusive upper bounds of the buckets, ascending.
    pub bounds: Vec<i64>,
    /// Samples per bucket, one more than `bounds`: the last counts samples
    /// above the last bound.
    pub counts: Vec<i64>,
    /// Median: the upper bound of the bucket holding it (`null` without samples).
    pub p50: Option<i64>,
    /// 90th percentile, likewise.
    pub p90: Option<i64>,
    /// 99th percentile, likewise.
    pub p99: Option<i64>,
}

/// What the active leases use now against the configured limits (`null`:
/// unlimited).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CapacityUseJson {
    /// Active leases.
    pub leases: u64,
    /// The limit on active leases.
    pub max_leases: Option<u32>,
    /// Σ nano-CPUs of the active leases.
    pub nano_cpus: i64,
    /// The limit on it.
    pub max_nano_cpus: Option<i64>,
    /// Σ memory of the active leases, MiB.
    pub memory_mb: u64,
    /// The limit on it.
    pub max_memory_mb: Option<u64>,
}

/// `GET /api/admin/stats` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminStatsJson {
    /// First day of the window (UTC, `YYYY-MM-DD`).
    pub from: String,
    /// Last day of the window: today by the server's clock.
    pub to: String,
    /// When this was computed (RFC 3339).
    pub generated_at: String,
    /// Totals over the window.
    pub totals: TotalsJson,
    /// The active leases now.
    pub active: ActiveJson,
    /// Every day of the window, oldest first, zero-filled.
    pub days: Vec<DayJson>,
    /// Owners, highest accrued first (ties by name).
    pub owners: Vec<OwnerJson>,
    /// Offerings, highest accrued first (ties by key).
    pub offerings: Vec<OfferingJson>,
    /// Provisioning time (`running_at - created_at`) of the window's leases
    /// that became running, finished and active.
    pub provision_ms: HistogramJson,
    /// How long after expiry the reaper removed the window's expired leases.
    pub reap_lateness_ms: HistogramJson,
    /// Capacity used now.
    pub capacity: CapacityUseJson,
}

/// Totals over the last `days` days for operators: spend per day, owner and
/// offering, provisions and failures, provisioning and reaping times, and
/// capacity. Admins only (and the local user of a single-user server).
#[utoipa::path(
    get,
    path = "/api/admin/stats",
    tag = "admin",
    params(StatsParams),
    responses(
        (status = 200, description = "Totals over the window", body = AdminStatsJson),
        (status = 400, description = "`days` is not a whole number from 1 to 90", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "The caller is not an admin", body = crate::error::ErrorBody),
        (status = 503, description = "The lease store cannot be reached", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn admin_stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<Json<AdminStatsJson>, ApiError> {
    if !(caller.admin || state.auth.is_single_user()) {
        return Err(ApiError::forbidden("only admins can read the statistics"));
    }
    let days = match params.days {
        None => DEFAULT_DAYS,
        Some(n @ 1..=MAX_DAYS) => n,
        Some(_) => return Err(ApiError::bad_request("days must be between 1 and 90")),
    };
    let manager = &state.manager;
    let now = manager.clock().now();
    let to = stats::day_of(now);
    let from = stats::window_start(to, days);
    let store = manager.store();
    let (day_rows, share_rows) =
        tokio::try_join!(store.daily_stats(from, to), store.share_stats(from, to))
            .map_err(lease_core::LeaseError::from)?;
    let active = manager.list_all(&ListQuery::default()).await?;
    let config = manager.config();
    let mut window = Window::new(from, to);
    for row in &day_rows {
        window.add_day(row);
    }
    for row in &share_rows {
        window.add_share(row);
    }
    for lease in &active {
        let row = active_contribution(lease, now);
        if window.add_day(&row) {
            window.add_share(&row);
        }
    }
    tracing::debug!(
        days,
        day_rows = day_rows.len(),
        share_rows = share_rows.len(),
        active = active.len(),
        "admin statistics"
    );
    let reserved = crate::account::Reserved::of(&active);
    Ok(Json(AdminStatsJson {
        from: from.to_string(),
        to: to.to_string(),
        generated_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        totals: window.totals(active.len()),
        active: active_json(&active),
        days: window.days_json(),
        owners: window.owners_json(&active),
        offerings: window.offerings_json(),
        provision_ms: histogram_json(&window.provisioning),
        reap_lateness_ms: histogram_json(&window.lateness),
        capacity: CapacityUseJson {
            leases: reserved.leases,
            max_leases: config.max_leases,
            nano_cpus: reserved.nano_cpus,
            max_nano_cpus: config.max_nano_cpus,
            memory_mb: reserved.memory_mb,
            max_memory_mb: config.max_memory_mb,
        },
    }))
}

/// Counters summed by day, owner and offering over a window of days.
struct Window {
    /// Every day of the window, zero-filled.
    days: BTreeMap<NaiveDate, StatsRow>,
    owners: BTreeMap<String, StatsRow>,
    offerings: BTreeMap<String, StatsRow>,
    total: StatsRow,
    provisioning: Histogram,
    lateness: Histogram,
}

impl Window {
    fn new(from: NaiveDate, to: NaiveDate) -> Window {
        let empty = |day| {
            StatsRow::new(stats::StatsKey {
                day,
                owner: String::new(),
                offering: String::new(),
            })
        };
        Window {
            days: stats::days(from, to).map(|day| (day, empty(day))).collect(),
            owners: BTreeMap::new(),
            offerings: BTreeMap::new(),
            total: empty(from),
            provisioning: Histogram::new(&PROVISION_BOUNDS_MS),
            lateness: Histogram::new(&LATENESS_BOUNDS_MS),
        }
    }

    /// Adds a row to its day, the totals and the histograms; a row of a day
    /// outside the window (an active lease created before it) is left out
    /// (`false`).
    fn add_day(&mut self, row: &StatsRow) -> bool {
        let Some(day) = self.days.get_mut(&row.key.day) else {
            return false;
        };
        day.absorb(row);
        self.total.absorb(row);
        self.provisioning.add_row(row, counter::PROVISION_MS);
        self.lateness.add_row(row, counter::REAP_LATE_MS);
        true
    }

    /// Adds a row of the window to its owner's and its offering's sums.
    fn add_share(&mut self, row: &StatsRow) {
        let owner = row.key.owner.clone();
        self.owners
            .entry(owner)
            .or_insert_with(|| StatsRow::new(row.key.clone()))
            .absorb(row);
        self.offerings
            .entry(row.key.offering.clone())
            .or_insert_with(|| StatsRow::new(row.key.clone()))
            .absorb(row);
    }

    fn totals(&self, active: usize) -> TotalsJson {
        TotalsJson {
            active: active as u64,
            booked: dollars(&self.total, counter::BOOKED_NANOS),
            accrued: dollars(&self.total, counter::SPENT_NANOS),
            provisions: self.total.get(counter::PROVISIONS),
            failures: self.total.get(counter::FAILED),
        }
    }

    fn days_json(&self) -> Vec<DayJson> {
        self.days
            .iter()
            .map(|(day, row)| DayJson {
                day: day.to_string(),
                provisions: row.get(counter::PROVISIONS),
                failures: row.get(counter::FAILED),
                finished: row.get(counter::FINISHED),
                booked: dollars(row, counter::BOOKED_NANOS),
                accrued: dollars(row, counter::SPENT_NANOS),
            })
            .collect()
    }

    /// Owners of the window and owners with active leases, highest accrued
    /// first, ties by name.
    fn owners_json(&self, active: &[Lease]) -> Vec<OwnerJson> {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for lease in active {
            *counts.entry(lease.owner.as_str()).or_default() += 1;
        }
        let empty = StatsRow::new(stats::StatsKey {
            day: NaiveDate::MIN,
            owner: String::new(),
            offering: String::new(),
        });
        let mut names: Vec<&str> = self.owners.keys().map(String::as_str).collect();
        names.extend(
            counts
                .keys()
                .filter(|name| !self.owners.contains_key(**name)),
        );
        let mut owners: Vec<OwnerJson> = names
            .into_iter()
            .map(|name| {
                let row = self.owners.get(name).unwrap_or(&empty);
                OwnerJson {
                    owner: name.to_owned(),
                    active: counts.get(name).copied().unwrap_or(0),
                    provisions: row.get(counter::PROVISIONS),
                    booked: dollars(row, counter::BOOKED_NANOS),
                    accrued: dollars(row, counter::SPENT_NANOS),
                }
            })
            .collect();
        let spent = |name: &str| {
            self.owners
                .get(name)
                .map_or(0, |row| row.get(counter::SPENT_NANOS))
        };
        owners.sort_by(|a, b| {
            spent(&b.owner)
                .cmp(&spent(&a.owner))
                .then_with(|| a.owner.cmp(&b.owner))
        });
        owners
    }

    /// Offerings of the window, highest accrued first, ties by key.
    fn offerings_json(&self) -> Vec<OfferingJson> {
        let mut rows: Vec<(&String, &StatsRow)> = self.offerings.iter().collect();
        rows.sort_by(|(a_key, a), (b_key, b)| {
            b.get(counter::SPENT_NANOS)
                .cmp(&a.get(counter::SPENT_NANOS))
                .then_with(|| a_key.cmp(b_key))
        });
        rows.into_iter()
            .map(|(offering, row)| OfferingJson {
                offering: offering.clone(),
                provisions: row.get(counter::PROVISIONS),
                booked: dollars(row, counter::BOOKED_NANOS),
                accrued: dollars(row, counter::SPENT_NANOS),
            })
            .collect()
    }
}

/// A counter of nano-dollars as a decimal string of dollars.
fn dollars(row: &StatsRow, name: &str) -> String {
    Money::from_nanos(row.get(name)).to_string()
}

/// The active leases counted by status and by offering.
fn active_json(active: &[Lease]) -> ActiveJson {
    let mut json = ActiveJson::default();
    for lease in active {
        *json
            .by_status
            .entry(lease.status.as_str().to_owned())
            .or_default() += 1;
        *json.by_offering.entry(lease.offering.clone()).or_default() += 1;
    }
    json
}

fn histogram_json(histogram: &Histogram) -> HistogramJson {
    HistogramJson {
        bounds: histogram.bounds.clone(),
        counts: histogram.counts.clone(),
        p50: histogram.percentile(50),
        p90: histogram.percentile(90),
        p99: histogram.percentile(99),
    }
}
