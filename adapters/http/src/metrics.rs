//! `GET /metrics`: Prometheus (OpenMetrics) text.
//!
//! - `containerlease_leases{status}`: active leases by status (read from the
//!   store at scrape time, so every replica reports the shared figure);
//! - `containerlease_accrued_cost_dollars`: accrued cost of the active leases;
//! - `containerlease_provisions_total{result}`: `requested`, `running`, `error`;
//! - `containerlease_reaps_total{result}`: `deleted`, `failed`;
//! - `containerlease_provision_duration_seconds`: creation to running;
//! - `containerlease_reap_lateness_seconds`: expiry to removal;
//! - `containerlease_events_missed_total`: events this process's metrics
//!   listener fell behind on;
//! - warm pools, per offering with a pool: `containerlease_pool_target`,
//!   `containerlease_pool_containers{state}` (`ready`, `filling`; read from
//!   the store, so shared), `containerlease_pool_takes_total{result}`
//!   (`hit`, `miss`), `containerlease_pool_refills_total{result}` (`ok`,
//!   `failed`) and `containerlease_pool_refill_seconds_total` (Σ time from
//!   a slot's record to its container ready; ÷ refills is the mean).
//!
//! Counters and histograms count what this process saw.
//!
//! Every owner's figures are here, so only admins and the scrape token
//! ([`crate::auth::MetricsToken`]) may read them (any caller in single-user
//! mode, which serves this machine only).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lease_core::{EventKind, Lease, LeaseEvent, ListQuery, Status};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::error::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OfferingLabel {
    offering: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    offering: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolResultLabel {
    offering: String,
    result: &'static str,
}

/// The warm-pool metrics, set from [`LeaseManager::pool_status`](lease_core::LeaseManager::pool_status)
/// at scrape time.
#[derive(Debug, Default)]
struct PoolMetrics {
    target: Family<OfferingLabel, Gauge>,
    containers: Family<PoolLabel, Gauge>,
    takes: Family<PoolResultLabel, Counter>,
    refills: Family<PoolResultLabel, Counter>,
    refill_seconds: Family<OfferingLabel, Counter<f64, AtomicU64>>,
}

impl PoolMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "pool_target",
            "Warm pool size the catalog asks for",
            self.target.clone(),
        );
        registry.register(
            "pool_containers",
            "Warm pool containers by state: ready, filling",
            self.containers.clone(),
        );
        registry.register(
            "pool_takes",
            "Provisions of a pooled offering: hit (took a ready container), miss",
            self.takes.clone(),
        );
        registry.register(
            "pool_refills",
            "Warm pool containers started: ok, failed",
            self.refills.clone(),
        );
        registry.register(
            "pool_refill_seconds",
            "Time spent refilling warm pools (slot record to container ready)",
            self.refill_seconds.clone(),
        );
    }

    /// Brings the gauges to `pools` and the counters up to its totals.
    fn set(&self, pools: &[lease_core::PoolStatus]) {
        let up_to = |counter: &Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        for pool in pools {
            let offering = OfferingLabel {
                offering: pool.offering.clone(),
            };
            self.target
                .get_or_create(&offering)
                .set(i64::from(pool.target));
            for (state, count) in [("ready", pool.ready), ("filling", pool.filling)] {
                let label = PoolLabel {
                    offering: pool.offering.clone(),
                    state,
                };
                self.containers
                    .get_or_create(&label)
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            let c = pool.counters;
            let labelled = |result| PoolResultLabel {
                offering: pool.offering.clone(),
                result,
            };
            up_to(&self.takes.get_or_create(&labelled("hit")), c.hits);
            up_to(&self.takes.get_or_create(&labelled("miss")), c.misses);
            up_to(&self.refills.get_or_create(&labelled("ok")), c.refills);
            up_to(
                &self.refills.get_or_create(&labelled("failed")),
                c.refill_failures,
            );
            let seconds = self.refill_seconds.get_or_create(&offering);
            // A display value for Prometheus (microseconds to seconds).
            let total = c.refill_micros_sum as f64 / 1e6;
            let now = seconds.get();
            if total > now {
                seconds.inc_by(total - now);
            }
        }
    }
}

/// The adapter's metrics and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    leases: Family<StatusLabel, Gauge>,
    accrued: Gauge<f64, AtomicU64>,
    provisions: Family<ResultLabel, Counter>,
    reaps: Family<ResultLabel, Counter>,
    provision_duration: Histogram,
    reap_lateness: Histogram,
    missed: Counter,
    pools: PoolMetrics,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("containerlease");
        let leases = Family::<StatusLabel, Gauge>::default();
        let accrued = Gauge::<f64, AtomicU64>::default();
        let provisions = Family::<ResultLabel, Counter>::default();
        let reaps = Family::<ResultLabel, Counter>::default();
        let provision_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        let reap_lateness = Histogram::new([
            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
        ]);
        let missed = Counter::default();
        registry.register("leases", "Active leases by status", leases.clone());
        registry.register(
            "accrued_cost_dollars",
            "Cost accrued so far by the active leases, in dollars",
            accrued.clone(),
        );
        registry.register(
            "provisions",
            "Provisioning outcomes: requested, running, error",
            provisions.clone(),
        );
        registry.register(
            "reaps",
            "Container removals of ended leases: deleted, failed",
            reaps.clone(),
        );
        registry.register(
            "provision_duration_seconds",
            "Time from a lease's creation to its container running",
            provision_duration.clone(),
        );
        registry.register(
            "reap_lateness_seconds",
            "How late a due lease's removal started after it became due",
            reap_lateness.clone(),
        );
        registry.register(
            "events_missed",
            "Lease events the metrics listener fell behind on",
            missed.clone(),
        );
        let pools = PoolMetrics::default();
        pools.register(&mut registry);
        for status in Status::ALL {
            leases
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(0);
        }
        for result in ["requested", "running", "error"] {
            let _ = provisions.get_or_create(&ResultLabel { result });
        }
        for result in ["deleted", "failed"] {
            let _ = reaps.get_or_create(&ResultLabel { result });
        }
        Metrics {
            registry,
            leases,
            accrued,
            provisions,
            reaps,
            provision_duration,
            reap_lateness,
            missed,
            pools,
        }
    }

    /// Counts one event.
    pub(crate) fn observe(&self, event: &LeaseEvent) {
        let count = |family: &Family<ResultLabel, Counter>, result| {
            family.get_or_create(&ResultLabel { result }).inc();
        };
        match event.kind {
            EventKind::Created => count(&self.provisions, "requested"),
            EventKind::Running => {
                count(&self.provisions, "running");
                let took = event.at - event.lease.created_at;
                self.provision_duration
                    .observe(took.num_milliseconds().max(0) as f64 / 1000.0);
            }
            EventKind::Error => count(&self.provisions, "error"),
            EventKind::Deleted => {
                count(&self.reaps, "deleted");
                if let Some(lateness) = event.lateness_ms {
                    self.reap_lateness.observe(lateness.max(0) as f64 / 1000.0);
                }
            }
            EventKind::ReapFailed => count(&self.reaps, "failed"),
            _ => {}
        }
    }

    /// Sets the lease gauges from the active leases at `now`.
    fn set_leases(&self, leases: &[Lease], now: DateTime<Utc>) {
        for status in Status::ALL {
            let n = leases.iter().filter(|l| l.status == status).count();
            self.leases
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let accrued: lease_core::Money = leases.iter().map(|l| l.accrued_cost(now)).sum();
        // A display value for Prometheus, not arithmetic on money.
        self.accrued
            .set(accrued.to_string().parse().unwrap_or_default());
    }

    /// Counts events until the channel closes or `shutdown` is cancelled.
    pub(crate) fn spawn_listener(
        self: &Arc<Self>,
        mut events: broadcast::Receiver<LeaseEvent>,
        shutdown: CancellationToken,
    ) {
        let metrics = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    received = events.recv() => received,
                    () = shutdown.cancelled() => return,
                };
                match received {
                    Ok(event) => metrics.observe(&event),
                    Err(RecvError::Lagged(missed)) => {
                        metrics.missed.inc_by(missed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Prometheus metrics of leases, provisioning and reaping (every owner's):
/// for admins and the scrape token (`--metrics-token-file`) only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "A valid token that is neither an admin's nor the scrape token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .auth
        .may_read_metrics(
            state.metrics_token.as_ref(),
            state.oidc.as_ref(),
            &headers,
            state.manager.clock().now(),
        )
        .await?;
    let leases = state.manager.list_all(&ListQuery::default()).await?;
    state
        .metrics
        .set_leases(&leases, state.manager.clock().now());
    state.metrics.pools.set(&state.manager.pool_status().await?);
    let text = state.metrics.encode().map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
