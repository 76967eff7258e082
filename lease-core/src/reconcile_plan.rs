//! What a reconciliation pass would change, worked out read-only.
//!
//! [`LeaseManager::reconcile_plan`](crate::LeaseManager::reconcile_plan) reads the active leases, then this
//! namespace's labelled containers (in that order, so a lease that became
//! running after the read cannot be mistaken for one whose container
//! vanished), and decides per container and per lease. The reconciler
//! applies the plan; `lease reconcile --dry-run` prints it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::OrphanPolicy;
use crate::error::{LeaseError, StoreError};
use crate::id::LeaseId;
use crate::lease::{EndReason, Lease, Status};
use crate::pool::PoolSlot;
use crate::provision::Provisioning;
use crate::reaper::to_chrono;
use crate::reconciler::Reconciler;
use crate::runtime::{ContainerInfo, UnitState, labels};
use crate::store::{LeaseStoreExt, ListQuery};

/// A change a reconciliation pass makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileAction {
    /// Remove a container that no live lease owns.
    RemoveContainer,
    /// Rebuild a lease the store has never heard of from its container's
    /// labels ([`OrphanPolicy::Adopt`]).
    Adopt,
    /// Mark a running lease whose container is gone or stopped `exited`.
    MarkExited,
    /// Restart the provisioning of a pending lease nobody here provisions.
    RetryProvisioning,
    /// Mark a pending lease past the provisioning timeout `error`.
    TimeOut,
    /// Drop a warm-pool slot record (if it is still in the state read)
    /// and then remove its container: a stale, extra, stopped or stuck
    /// slot, or one whose container is gone.
    DropPoolSlot,
}

/// One planned change and what it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedChange {
    /// The change.
    pub action: ReconcileAction,
    /// The lease concerned (`None` for a container without a lease id
    /// label).
    pub lease_id: Option<LeaseId>,
    /// The container concerned, if there is one.
    pub container: Option<ContainerInfo>,
    /// The warm-pool slot concerned (for [`ReconcileAction::DropPoolSlot`]),
    /// as read.
    pub slot: Option<PoolSlot>,
    /// Why, in words. For [`ReconcileAction::MarkExited`] and
    /// [`ReconcileAction::TimeOut`] it is also the error the lease gets.
    pub reason: String,
}

/// What one reconciliation pass would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcilePlan {
    /// The changes, in the order a pass makes them: containers first, then
    /// leases oldest first.
    pub changes: Vec<PlannedChange>,
    /// When the earliest pending lease that no task of this process
    /// provisions becomes due for a retry (`stuck_pending_after`).
    pub retry_due: Option<DateTime<Utc>>,
}

impl ReconcilePlan {
    pub(crate) fn add(
        &mut self,
        action: ReconcileAction,
        lease_id: Option<&LeaseId>,
        container: Option<&ContainerInfo>,
        reason: impl Into<String>,
    ) {
        self.changes.push(PlannedChange {
            action,
            lease_id: lease_id.cloned(),
            container: container.cloned(),
            slot: None,
            reason: reason.into(),
        });
    }

    pub(crate) fn drop_slot(
        &mut self,
        slot: &PoolSlot,
        container: Option<&ContainerInfo>,
        reason: impl Into<String>,
    ) {
        self.changes.push(PlannedChange {
            action: ReconcileAction::DropPoolSlot,
            lease_id: slot.lease_id.clone(),
            container: container.cloned(),
            slot: Some(slot.clone()),
            reason: reason.into(),
        });
    }
}

impl Reconciler {
    /// What a reconciliation pass would change now, without changing
    /// anything; `provisioning` says which pending leases this process is
    /// provisioning.
    pub(crate) async fn plan(
        &self,
        provisioning: &dyn Provisioning,
    ) -> Result<ReconcilePlan, LeaseError> {
        // Slots, then leases, then containers: a slot taken after its read
        // still reads as ready (so its container is the pool's, and only
        // conditional drops touch it), and a lease that took a container
        // after the slots' read holds its id in the leases' read.
        let slots = self.pool_slots().await?;
        let leases = self.store.list_all(&ListQuery::default()).await?;
        let containers = self.runtime.list_managed().await?;
        let mut plan = ReconcilePlan::default();

        let mut by_lease: HashMap<LeaseId, &ContainerInfo> = HashMap::new();
        let by_id: HashMap<&str, &ContainerInfo> =
            containers.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut pooled = Vec::new();
        for container in &containers {
            if container.pool_slot().is_some() {
                pooled.push(container);
                continue;
            }
            match container.lease_id() {
                Some(id) => {
                    by_lease.insert(id, container);
                }
                None => plan.add(
                    ReconcileAction::RemoveContainer,
                    None,
                    Some(container),
                    "no lease id label",
                ),
            }
        }
        let known: HashSet<&LeaseId> = leases.iter().map(|lease| &lease.id).collect();
        let mut unknown: Vec<(&LeaseId, &ContainerInfo)> = by_lease
            .iter()
            .filter(|(id, _)| !known.contains(id))
            .map(|(id, container)| (id, *container))
            .collect();
        unknown.sort_by(|a, b| a.0.cmp(b.0));
        for (id, container) in unknown {
            self.plan_container(id, container, &mut plan).await?;
        }
        let now = self.clock.now();
        self.plan_pools(&slots, &leases, &pooled, now, &mut plan)
            .await?;
        for lease in &leases {
            // A lease that took a pooled container finds it by its id.
            let container = by_lease.get(&lease.id).copied().or_else(|| {
                let id = lease.container_id.as_deref()?;
                by_id.get(id).copied()
            });
            self.plan_lease(lease, container, now, provisioning, &mut plan);
        }
        Ok(plan)
    }

    /// A container whose lease was not in the active snapshot.
    async fn plan_container(
        &self,
        id: &LeaseId,
        container: &ContainerInfo,
        plan: &mut ReconcilePlan,
    ) -> Result<(), LeaseError> {
        let remove = ReconcileAction::RemoveContainer;
        match self.store.get(id).await {
            // Created after the snapshot, or still being reaped: not an orphan.
            Ok(lease) if lease.status != Status::Deleted => {}
            Ok(_) => plan.add(remove, Some(id), Some(container), "its lease has ended"),
            Err(StoreError::NotFound(_)) => {
                let now = self.clock.now();
                if self.settings.orphan_policy == OrphanPolicy::Adopt
                    && self.adopted_lease(id, container, now).is_some()
                {
                    plan.add(
                        ReconcileAction::Adopt,
                        Some(id),
                        Some(container),
                        "the store has no such lease; rebuilt from the container's labels",
                    );
                } else {
                    plan.add(
                        remove,
                        Some(id),
                        Some(container),
                        "the store has no such lease",
                    );
                }
            }
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }

    /// One active lease against its container (if any).
    fn plan_lease(
        &self,
        lease: &Lease,
        container: Option<&ContainerInfo>,
        now: DateTime<Utc>,
        provisioning: &dyn Provisioning,
        plan: &mut ReconcilePlan,
    ) {
        let id = Some(&lease.id);
        match lease.status {
            Status::Running if container.is_none_or(|c| !c.running()) => {
                let message =
                    container.map_or_else(|| "container vanished".to_owned(), exit_message);
                plan.add(ReconcileAction::MarkExited, id, container, message);
            }
            Status::Pending => {
                let config = &self.settings;
                let age = now - lease.created_at;
                if age >= to_chrono(config.provision_timeout) {
                    let message = format!("provisioning timed out after {} s", age.num_seconds());
                    plan.add(ReconcileAction::TimeOut, id, container, message);
                } else if provisioning.is_provisioning(&lease.id) {
                    // This process is provisioning it.
                } else if age >= to_chrono(config.stuck_pending_after) {
                    let reason = format!(
                        "pending for {} s with no provisioning here",
                        age.num_seconds()
                    );
                    plan.add(ReconcileAction::RetryProvisioning, id, container, reason);
                } else {
                    let due = lease.created_at + to_chrono(config.stuck_pending_after);
                    plan.retry_due = Some(plan.retry_due.map_or(due, |d| d.min(due)));
                }
            }
            _ => {}
        }
    }

    /// The lease an unknown container's labels describe; `None` when they
    /// are incomplete or its offering is gone. A container that is not
    /// running gives an `exited` lease, billed until `now`.
    pub(crate) fn adopted_lease(
        &self,
        id: &LeaseId,
        container: &ContainerInfo,
        now: DateTime<Utc>,
    ) -> Option<Lease> {
        let owner = container.labels.get(labels::OWNER)?;
        let offering = container
            .labels
            .get(labels::IMAGE_TYPE)
            .and_then(|key| self.catalog.get(key))?;
        let created_at = container.label_time(labels::CREATED_AT)?;
        let expires_at = container.label_time(labels::EXPIRES_AT)?;
        if expires_at <= created_at {
            return None;
        }
        let mut lease = Lease {
            container_id: Some(container.id.clone()),
            status: Status::Running,
            provision_attempts: 1,
            ..Lease::new(
                id.clone(),
                owner.clone(),
                offering.key.clone(),
                offering.hourly_rate,
                created_at,
                expires_at,
            )
            .with_size(offering.nano_cpus, offering.memory_mb)
        };
        if !container.running() {
            lease.status = Status::Exited;
            lease.end_billing(now, EndReason::Exited);
            lease.error = Some(exit_message(container));
        }
        Some(lease)
    }
}

/// How a stopped container is described in a lease's error.
pub(crate) fn exit_message(container: &ContainerInfo) -> String {
    match &container.state {
        UnitState::Exited { code: Some(code) } => format!("container exited (exit code {code})"),
        other => format!("container {other}"),
    }
}
