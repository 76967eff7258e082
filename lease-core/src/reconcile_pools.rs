//! The reconciler's view of warm pools (see [`crate::pool`]): which
//! pool-labelled containers and slot records a pass drops.
//!
//! A container with a pool-slot label is judged by its slot record, never
//! by lease labels (it has none): filling or ready, it is the pool's;
//! taken, it is the taking lease's (which holds its id) until that lease
//! has ended; with no record at all, an orphan. A drop is conditional on
//! the slot still being in the state read, so it never races a take.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::error::{LeaseError, StoreError};
use crate::id::LeaseId;
use crate::lease::{Lease, Status};
use crate::pool::{PoolSlot, SlotState, pool_container_name};
use crate::pool_fill::in_pool_by_offering;
use crate::reaper::to_chrono;
use crate::reconcile_plan::{ReconcileAction, ReconcilePlan, exit_message};
use crate::reconciler::{ReconcileReport, Reconciler};
use crate::runtime::ContainerInfo;

impl Reconciler {
    /// Every slot record; none from a store that keeps no pools.
    pub(crate) async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        match self.store.pool_slots().await {
            Err(StoreError::Unsupported { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Plans the drops of pool containers and slot records. `slots` were
    /// read before `leases`, and both before `pooled` (the containers
    /// with a pool-slot label).
    pub(crate) async fn plan_pools(
        &self,
        slots: &[PoolSlot],
        leases: &[Lease],
        pooled: &[&ContainerInfo],
        now: DateTime<Utc>,
        plan: &mut ReconcilePlan,
    ) -> Result<(), LeaseError> {
        let known: HashSet<&str> = slots.iter().map(|slot| slot.id.as_str()).collect();
        let mut container_of: HashMap<&str, &ContainerInfo> = HashMap::new();
        let mut unknown = Vec::new();
        for container in pooled {
            let Some(slot_id) = container.pool_slot() else {
                continue;
            };
            container_of.insert(slot_id, container);
            if !known.contains(slot_id) {
                unknown.push((slot_id, *container));
            }
        }
        if !unknown.is_empty() {
            // Stored after the read (a refill under way), or never: read again.
            let fresh = self.pool_slots().await?;
            for (slot_id, container) in unknown {
                if !fresh.iter().any(|slot| slot.id == slot_id) {
                    plan.add(
                        ReconcileAction::RemoveContainer,
                        None,
                        Some(container),
                        "its pool slot is unknown",
                    );
                }
            }
        }
        for (offering, in_pool) in in_pool_by_offering(slots) {
            let target = self.catalog.get(offering).map_or(0, |offering| {
                usize::try_from(offering.pool).unwrap_or(usize::MAX)
            });
            let mut kept = 0;
            for slot in in_pool {
                let container = container_of.get(slot.id.as_str()).copied();
                if let Some(reason) = self.pool_slot_problem(slot, container, now) {
                    plan.drop_slot(slot, container, reason);
                } else if slot.state == SlotState::Ready {
                    kept += 1;
                    if kept > target {
                        let reason = format!("the pool of `{offering}` holds {target}");
                        plan.drop_slot(slot, container, reason);
                    }
                }
            }
        }
        let active: HashSet<&LeaseId> = leases.iter().map(|lease| &lease.id).collect();
        for slot in slots.iter().filter(|slot| slot.state == SlotState::Taken) {
            let Some(lease_id) = &slot.lease_id else {
                continue;
            };
            if active.contains(lease_id) || self.is_active(lease_id).await? {
                continue;
            }
            let container = container_of.get(slot.id.as_str()).copied();
            plan.drop_slot(slot, container, "the lease that took it has ended");
        }
        Ok(())
    }

    /// Whether `id` is an active lease (read again: it may have been
    /// created after the snapshot).
    async fn is_active(&self, id: &LeaseId) -> Result<bool, LeaseError> {
        match self.store.get(id).await {
            Ok(lease) => Ok(lease.status != Status::Deleted),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// Why a filling or ready slot must go, if it must.
    fn pool_slot_problem(
        &self,
        slot: &PoolSlot,
        container: Option<&ContainerInfo>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let age = now - slot.created_at;
        if slot.state == SlotState::Filling {
            // A refill that died (or hangs) past the provisioning timeout.
            return (age >= to_chrono(self.settings.provision_timeout))
                .then(|| format!("filling for {} s", age.num_seconds()));
        }
        let Some(container) = container else {
            return Some("its container is gone".to_owned());
        };
        if !container.running() {
            return Some(exit_message(container));
        }
        match self.catalog.get(&slot.offering) {
            None => Some("its offering is no longer in the catalog".to_owned()),
            Some(offering) if offering.pool == 0 => Some("its offering has no pool now".to_owned()),
            Some(offering) if offering.image != slot.image => Some(format!(
                "its offering's image changed to `{}`",
                offering.image
            )),
            Some(_) if age >= to_chrono(self.settings.pool_max_age) => Some(format!(
                "older than the pool max age ({} s)",
                age.num_seconds()
            )),
            Some(_) => None,
        }
    }

    /// Drops a slot record if it is still as read, then removes its
    /// container.
    pub(crate) async fn drop_pool_slot(
        &self,
        slot: &PoolSlot,
        container: Option<&ContainerInfo>,
        reason: &str,
        report: &mut ReconcileReport,
    ) -> Result<(), LeaseError> {
        if !self.store.pool_drop(&slot.id, slot.state).await? {
            // Taken, readied or dropped meanwhile: the next pass judges it.
            return Ok(());
        }
        let target = container.map_or_else(|| pool_container_name(&slot.id), |c| c.id.clone());
        if let Err(error) = self.runtime.remove(&target).await {
            tracing::warn!(slot = %slot.id, container = %target, error = %error.chain(), "could not remove a pool container; next pass removes it as an orphan");
        }
        tracing::info!(slot = %slot.id, offering = %slot.offering, state = %slot.state, reason, "pool slot dropped");
        report.pool_slots_dropped += 1;
        Ok(())
    }
}
