//! The reconciler: makes the store and the runtime agree (DESIGN invariant 7).
//!
//! At start-up and every few minutes it compares this namespace's labelled
//! containers with the store:
//! - a container with no live lease is removed — or, when the store has
//!   never heard of its lease (the memory store after a restart), adopted
//!   back from its labels if [`OrphanPolicy::Adopt`] is set (the default), so
//!   the lease runs out its booked time and is billed;
//! - a running lease whose container vanished or stopped becomes `exited`;
//! - a pending lease past the provisioning timeout becomes `error`; one that
//!   no task in this process is provisioning is retried (creation is
//!   idempotent by container name, so a retry never duplicates).
//!
//! Leases are read *before* containers, so a lease that became running after
//! the read cannot be mistaken for one whose container vanished.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::OrphanPolicy;
use crate::error::{LeaseError, StoreError};
use crate::event::EventKind;
use crate::id::LeaseId;
use crate::lease::{EndReason, Lease, Status};
use crate::manager::{LeaseManager, lock};
use crate::pricing;
use crate::reaper::to_chrono;
use crate::runtime::{ContainerInfo, labels};
use crate::store::ListQuery;

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
}

impl LeaseManager {
    /// Runs the reconciler now and then every `reconcile_interval` until
    /// `shutdown` is cancelled — sooner when a pending lease that no task of
    /// this process provisions (one left by a crashed process) becomes due
    /// for a retry (`stuck_pending_after`), so a crash delays it by that,
    /// not by a whole interval.
    pub async fn run_reconciler(&self, shutdown: CancellationToken) {
        loop {
            let mut retry_due = None;
            match self.reconcile_pass().await {
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
            let interval = self.inner.clock.now() + to_chrono(self.inner.config.reconcile_interval);
            let next = retry_due.map_or(interval, |due| due.min(interval));
            let clock = self.inner.clock.clone();
            tokio::select! {
                () = clock.sleep_until(next) => {}
                () = shutdown.cancelled() => break,
                () = self.inner.shutdown.cancelled() => break,
            }
        }
    }

    /// One reconciliation pass.
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, LeaseError> {
        Ok(self.reconcile_pass().await?.0)
    }

    /// One pass, and when the earliest pending lease not provisioned here
    /// becomes due for a retry.
    async fn reconcile_pass(&self) -> Result<(ReconcileReport, Option<DateTime<Utc>>), LeaseError> {
        let namespace = self.inner.config.namespace.clone();
        let leases = self.list_all(&ListQuery::default()).await?;
        let containers = self.inner.runtime.list_managed(&namespace).await?;
        let mut report = ReconcileReport::default();

        let mut by_lease: HashMap<LeaseId, &ContainerInfo> = HashMap::new();
        for container in &containers {
            match container.lease_id() {
                Some(id) => {
                    by_lease.insert(id, container);
                }
                None => {
                    warn!(container = %container.name, "managed container without a lease id label; removing");
                    self.remove_orphan(container, &mut report).await;
                }
            }
        }
        let known: HashMap<&LeaseId, &Lease> =
            leases.iter().map(|lease| (&lease.id, lease)).collect();
        for (id, container) in &by_lease {
            if !known.contains_key(id) {
                self.reconcile_container(id, container, &mut report).await?;
            }
        }
        let now = self.inner.clock.now();
        let mut retry_due = None;
        for lease in &leases {
            self.reconcile_lease(
                lease,
                by_lease.get(&lease.id).copied(),
                now,
                &mut report,
                &mut retry_due,
            )
            .await?;
        }
        Ok((report, retry_due))
    }

    /// A container whose lease was not in the active snapshot.
    async fn reconcile_container(
        &self,
        id: &LeaseId,
        container: &ContainerInfo,
        report: &mut ReconcileReport,
    ) -> Result<(), LeaseError> {
        match self.inner.store.get(id).await {
            // Created after the snapshot, or still being reaped: not an orphan.
            Ok(lease) if lease.status != Status::Deleted => Ok(()),
            Ok(_) => {
                self.remove_orphan(container, report).await;
                Ok(())
            }
            Err(StoreError::NotFound(_)) => {
                if self.inner.config.orphan_policy == OrphanPolicy::Adopt
                    && self.adopt(id, container).await?
                {
                    report.adopted += 1;
                } else {
                    self.remove_orphan(container, report).await;
                }
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn remove_orphan(&self, container: &ContainerInfo, report: &mut ReconcileReport) {
        match self
            .inner
            .runtime
            .remove(&self.inner.config.namespace, &container.id)
            .await
        {
            Ok(()) => {
                info!(container = %container.name, lease_id = ?container.lease_id(), "orphan container removed");
                report.orphans_removed += 1;
            }
            Err(error) => {
                warn!(container = %container.name, error = %error.chain(), "could not remove orphan container; next pass retries")
            }
        }
    }

    /// Rebuilds an unknown lease from its container's labels. `false` when
    /// the labels are incomplete or the offering is gone.
    async fn adopt(&self, id: &LeaseId, container: &ContainerInfo) -> Result<bool, LeaseError> {
        let owner = container.labels.get(labels::OWNER);
        let offering = container
            .labels
            .get(labels::IMAGE_TYPE)
            .and_then(|key| self.inner.catalog.get(key));
        let created_at = container.label_time(labels::CREATED_AT);
        let expires_at = container.label_time(labels::EXPIRES_AT);
        let (Some(owner), Some(offering), Some(created_at), Some(expires_at)) =
            (owner, offering, created_at, expires_at)
        else {
            return Ok(false);
        };
        if expires_at <= created_at {
            return Ok(false);
        }
        let minutes = u32::try_from((expires_at - created_at).num_minutes()).unwrap_or(u32::MAX);
        let now = self.inner.clock.now();
        let mut lease = Lease {
            id: id.clone(),
            owner: owner.clone(),
            offering: offering.key.clone(),
            container_id: Some(container.id.clone()),
            status: Status::Running,
            created_at,
            expires_at,
            ended_at: None,
            end_reason: None,
            hourly_rate: offering.hourly_rate,
            estimated_cost: pricing::estimate(offering.hourly_rate, minutes),
            final_cost: None,
            error: None,
            provision_attempts: 1,
            removal_failures: 0,
            revision: 0,
        };
        if !container.running {
            lease.status = Status::Exited;
            lease.end_billing(now, EndReason::Exited);
            lease.error = Some(exit_message(container));
        }
        match self.inner.store.insert(&lease).await {
            Ok(stored) => {
                info!(lease_id = %id, owner = %stored.owner, expires_at = %stored.expires_at, "lease adopted from container labels");
                self.emit(EventKind::Running, &stored);
                self.inner.wake_reaper.notify_one();
                Ok(true)
            }
            // Someone else adopted or created it meanwhile.
            Err(StoreError::AlreadyExists(_)) => Ok(true),
            Err(other) => Err(other.into()),
        }
    }

    /// One active lease against its container (if any). A pending lease
    /// not provisioned here and too young to retry sets `retry_due`.
    async fn reconcile_lease(
        &self,
        lease: &Lease,
        container: Option<&ContainerInfo>,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
        retry_due: &mut Option<DateTime<Utc>>,
    ) -> Result<(), LeaseError> {
        match lease.status {
            Status::Running if container.is_none_or(|c| !c.running) => {
                let message =
                    container.map_or_else(|| "container vanished".to_owned(), exit_message);
                if self.mark_exited(&lease.id, message).await? {
                    report.exited += 1;
                }
            }
            Status::Pending => {
                let age = now - lease.created_at;
                if age >= to_chrono(self.inner.config.provision_timeout) {
                    let message = format!("provisioning timed out after {} s", age.num_seconds());
                    self.fail_provisioning(&lease.id, message).await?;
                    report.timed_out += 1;
                } else if age >= to_chrono(self.inner.config.stuck_pending_after)
                    && !lock(&self.inner.in_flight).contains(&lease.id)
                    && self.spawn_provisioning(lease.id.clone())
                {
                    info!(lease_id = %lease.id, attempts = lease.provision_attempts, "retrying stuck provisioning");
                    report.retried += 1;
                } else if age < to_chrono(self.inner.config.stuck_pending_after)
                    && !lock(&self.inner.in_flight).contains(&lease.id)
                {
                    let due = lease.created_at + to_chrono(self.inner.config.stuck_pending_after);
                    *retry_due = Some(retry_due.map_or(due, |d: DateTime<Utc>| d.min(due)));
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn mark_exited(&self, id: &LeaseId, message: String) -> Result<bool, LeaseError> {
        let exited = self
            .modify(id, |lease, now| {
                if lease.status != Status::Running {
                    return false;
                }
                lease.status = Status::Exited;
                lease.end_billing(now, EndReason::Exited);
                lease.error = Some(message.clone());
                true
            })
            .await?;
        match exited {
            Some(lease) => {
                warn!(lease_id = %id, error = %message, "lease's container is gone");
                self.emit(EventKind::Exited, &lease);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

fn exit_message(container: &ContainerInfo) -> String {
    match container.exit_code {
        Some(code) => format!("container {} (exit code {code})", container.state),
        None => format!("container {}", container.state),
    }
}
