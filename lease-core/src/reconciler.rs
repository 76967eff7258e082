//! The reconciler: makes the store and the runtime agree (DESIGN invariant 7).
//!
//! At start-up and every few minutes it compares this namespace's labelled
//! containers with the store:
//! - a container with no live lease is removed — or, when the store has
//!   never heard of its lease (the memory store after a restart), adopted
//!   back from its labels if [`OrphanPolicy::Adopt`](crate::OrphanPolicy::Adopt) is set (the default), so
//!   the lease runs out its booked time and is billed;
//! - a running lease whose container vanished or stopped becomes `exited`;
//! - a pending lease past the provisioning timeout becomes `error`; one that
//!   no task in this process is provisioning is retried (creation is
//!   idempotent by container name, so a retry never duplicates);
//! - warm pools (`reconcile_pools.rs`): a container with a pool-slot label
//!   is judged by its slot record; stale, extra, stopped or stuck slots
//!   are dropped with their containers, and a running lease that took a
//!   pooled container is matched to it by the container id it holds.
//!
//! Each pass first works out a [`ReconcilePlan`](crate::ReconcilePlan)
//! read-only (`reconcile_plan.rs`: leases are read *before* containers, so
//! a lease that became running after the read cannot be mistaken for one
//! whose container vanished), then applies it change by change; every
//! change to a lease is a compare-and-set, so one that moved on meanwhile is
//! left alone.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::admission::Admission;
use crate::cas::{CompareAndSet, Outcome, Step};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::{ManagerConfig, OrphanPolicy};
use crate::error::{LeaseError, StoreError};
use crate::event::{EventKind, EventSink};
use crate::id::LeaseId;
use crate::lease::{EndReason, Status};
use crate::provision::Provisioning;
use crate::reaper::to_chrono;
use crate::reconcile_plan::{PlannedChange, ReconcileAction};
use crate::runtime::{ContainerInfo, ContainerRuntime};
use crate::store::LeaseStore;

/// What one reconciliation pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Containers removed because no live lease owns them.
    pub orphans_removed: usize,
    /// Containers whose unknown lease was rebuilt from labels.
    pub adopted: usize,
    /// Running leases whose container was gone or stopped, now `exited`.
    pub exited: usize,
    /// Stuck pending leases whose provisioning was restarted.
    pub retried: usize,
    /// Pending leases past the provisioning timeout, now `error`.
    pub timed_out: usize,
    /// Warm-pool slots dropped (stale, extra, stopped, stuck, or of an
    /// ended lease) with their containers.
    pub pool_slots_dropped: usize,
}

/// The reconciler's settings, taken from [`ManagerConfig`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) orphan_policy: OrphanPolicy,
    pub(crate) provision_timeout: StdDuration,
    pub(crate) stuck_pending_after: StdDuration,
    reconcile_interval: StdDuration,
    pub(crate) pool_max_age: StdDuration,
}

/// Makes the store and the runtime agree; see the module docs.
#[derive(Debug)]
pub(crate) struct Reconciler {
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) clock: Arc<dyn Clock>,
    /// For rebuilding leases from labels.
    pub(crate) catalog: Arc<Catalog>,
    events: EventSink,
    pub(crate) settings: Settings,
    /// Wakes the reaper when an adopted lease may be due.
    wake_reaper: Arc<Notify>,
}

impl Reconciler {
    /// A reconciler over `store` and `runtime` with `config`'s settings.
    pub(crate) fn new(
        store: Arc<dyn LeaseStore>,
        runtime: Arc<dyn ContainerRuntime>,
        clock: Arc<dyn Clock>,
        catalog: Arc<Catalog>,
        events: EventSink,
        config: &ManagerConfig,
        wake_reaper: Arc<Notify>,
    ) -> Self {
        Reconciler {
            store,
            runtime,
            clock,
            catalog,
            events,
            settings: Settings {
                orphan_policy: config.orphan_policy,
                provision_timeout: config.provision_timeout,
                stuck_pending_after: config.stuck_pending_after,
                reconcile_interval: config.reconcile_interval,
                pool_max_age: config.pool_max_age,
            },
            wake_reaper,
        }
    }

    /// Runs the reconciler now and then every `reconcile_interval` until
    /// `stop` completes — sooner when a pending lease that no task of
    /// this process provisions (one left by a crashed process) becomes due
    /// for a retry (`stuck_pending_after`), so a crash delays it by that,
    /// not by a whole interval.
    pub(crate) async fn run(
        &self,
        provisioning: &dyn Provisioning,
        stop: impl Future<Output = ()>,
    ) {
        let mut stop = pin!(stop);
        loop {
            let mut retry_due = None;
            match self.pass(provisioning).await {
                Ok((report, due)) => {
                    retry_due = due;
                    if report != ReconcileReport::default() {
                        info!(?report, "reconciled");
                    }
                }
                Err(error) => {
                    warn!(error = %crate::error::error_chain(&error), "reconciliation failed; will retry")
                }
            }
            let interval = self.clock.now() + to_chrono(self.settings.reconcile_interval);
            let next = retry_due.map_or(interval, |due| due.min(interval));
            tokio::select! {
                () = self.clock.sleep_until(next) => {}
                () = &mut stop => break,
            }
        }
    }

    /// One pass: works out the plan, then applies it. Also returns when
    /// the earliest pending lease not provisioned here becomes due for a
    /// retry.
    pub(crate) async fn pass(
        &self,
        provisioning: &dyn Provisioning,
    ) -> Result<(ReconcileReport, Option<DateTime<Utc>>), LeaseError> {
        let plan = self.plan(provisioning).await?;
        let mut report = ReconcileReport::default();
        for change in &plan.changes {
            self.apply(change, provisioning, &mut report).await?;
        }
        Ok((report, plan.retry_due))
    }

    /// Makes one planned change; the lease's own compare-and-set decides
    /// when something changed in between.
    async fn apply(
        &self,
        change: &PlannedChange,
        provisioning: &dyn Provisioning,
        report: &mut ReconcileReport,
    ) -> Result<(), LeaseError> {
        let container = change.container.as_ref();
        match (change.action, &change.lease_id) {
            (ReconcileAction::RemoveContainer, _) => {
                if let Some(container) = container {
                    self.remove_orphan(container, &change.reason, report).await;
                }
            }
            (ReconcileAction::Adopt, Some(id)) => {
                if let Some(container) = container {
                    if self.adopt(id, container).await? {
                        report.adopted += 1;
                    } else {
                        self.remove_orphan(container, "its labels are incomplete", report)
                            .await;
                    }
                }
            }
            (ReconcileAction::MarkExited, Some(id)) => {
                if self.mark_exited(id, change.reason.clone()).await? {
                    report.exited += 1;
                }
            }
            (ReconcileAction::TimeOut, Some(id)) => {
                provisioning
                    .fail_provisioning(id, change.reason.clone())
                    .await?;
                report.timed_out += 1;
            }
            (ReconcileAction::RetryProvisioning, Some(id)) => {
                if provisioning.retry_provisioning(id.clone()) {
                    info!(lease_id = %id, reason = %change.reason, "retrying stuck provisioning");
                    report.retried += 1;
                }
            }
            (ReconcileAction::DropPoolSlot, _) => {
                if let Some(slot) = &change.slot {
                    self.drop_pool_slot(slot, container, &change.reason, report)
                        .await?;
                }
            }
            (_, None) => {}
        }
        Ok(())
    }

    async fn remove_orphan(
        &self,
        container: &ContainerInfo,
        reason: &str,
        report: &mut ReconcileReport,
    ) {
        match self.runtime.remove(&container.id).await {
            Ok(()) => {
                info!(container = %container.name, lease_id = ?container.lease_id(), reason, "orphan container removed");
                report.orphans_removed += 1;
            }
            Err(error) => {
                warn!(container = %container.name, reason, error = %error.chain(), "could not remove orphan container; next pass retries")
            }
        }
    }

    /// Stores the lease an unknown container's labels describe. `false`
    /// when the labels are incomplete or the offering is gone.
    async fn adopt(&self, id: &LeaseId, container: &ContainerInfo) -> Result<bool, LeaseError> {
        let Some(lease) = self.adopted_lease(id, container, self.clock.now()) else {
            return Ok(false);
        };
        // The container already exists, so no limit can refuse it: it is
        // stored unconditionally and counts toward the limits from now on.
        match self.store.insert(&lease, &Admission::default()).await {
            Ok(stored) => {
                info!(lease_id = %id, owner = %stored.owner, expires_at = %stored.expires_at, "lease adopted from container labels");
                self.events.emit(EventKind::Running, &stored);
                self.wake_reaper.notify_one();
                Ok(true)
            }
            // Someone else adopted or created it meanwhile.
            Err(StoreError::AlreadyExists(_)) => Ok(true),
            Err(other) => Err(other.into()),
        }
    }

    async fn mark_exited(&self, id: &LeaseId, message: String) -> Result<bool, LeaseError> {
        let exited = CompareAndSet::new(&*self.store, id)
            .apply(|mut lease| {
                if lease.status != Status::Running {
                    return Ok(Step::Leave(()));
                }
                lease.status = Status::Exited;
                lease.end_billing(self.clock.now(), EndReason::Exited);
                lease.error = Some(message.clone());
                Ok(Step::Update(lease))
            })
            .await?;
        match exited {
            Outcome::Written(lease) => {
                warn!(lease_id = %id, error = %message, "lease's container is gone");
                self.events.emit(EventKind::Exited, &lease);
                Ok(true)
            }
            Outcome::Left(()) | Outcome::Gone => Ok(false),
        }
    }
}
