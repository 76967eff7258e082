//! The engine's side of warm pools: taking a pooled container at
//! provision, keeping every pool at its size, and counting what happened
//! for operators. The records and their rules are in [`crate::pool`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use futures::future::join_all;
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::catalog::Offering;
use crate::error::{LeaseError, RuntimeError, StoreError};
use crate::event::EventKind;
use crate::lease::Lease;
use crate::manager::{LeaseManager, lock};
use crate::pool::{PoolSlot, SlotState, pool_container_name};
use crate::provision::pool_container_spec;

/// Counters of one offering's pool since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolCounters {
    /// Provisions that took a pooled container.
    pub hits: u64,
    /// Provisions of a pooled offering that found none ready.
    pub misses: u64,
    /// Containers started into the pool.
    pub refills: u64,
    /// Refills that failed (the slot was dropped).
    pub refill_failures: u64,
    /// Σ time from storing a slot to its container being ready, in
    /// microseconds, over `refills`.
    pub refill_micros_sum: u64,
}

/// One offering's pool, as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// The offering's key.
    pub offering: String,
    /// The size the catalog asks for.
    pub target: u32,
    /// Slots whose container is started and waiting.
    pub ready: usize,
    /// Slots whose container is being created.
    pub filling: usize,
    /// What this process counted.
    pub counters: PoolCounters,
}

/// The engine's pool state: counters, and the filler's wake-up.
#[derive(Debug, Default)]
pub(crate) struct Pools {
    counters: Mutex<HashMap<String, PoolCounters>>,
    /// Wakes the filler (after a take, at shutdown of a burst).
    pub(crate) wake: Notify,
}

impl Pools {
    fn count(&self, offering: &str, change: impl FnOnce(&mut PoolCounters)) {
        change(lock(&self.counters).entry(offering.to_owned()).or_default());
    }
}

impl LeaseManager {
    /// Takes a ready pooled container for the pending lease just stored,
    /// if its offering has a pool with one ready: the lease is then
    /// `running` on it. `None` on a miss (or a store that keeps no pools):
    /// the caller provisions normally.
    pub(crate) async fn take_from_pool(&self, lease: &Lease, offering: &Offering) -> Option<Lease> {
        if offering.pool == 0 {
            return None;
        }
        let now = self.clock().now();
        let pools = &self.inner.pools;
        let taken = self.store().pool_take(&offering.key, lease, now).await;
        pools.wake.notify_one();
        match taken {
            Ok(Some(taken)) => {
                pools.count(&offering.key, |c| c.hits += 1);
                info!(lease_id = %lease.id, slot = %taken.slot.id, container_id = ?taken.lease.container_id, "lease running from the warm pool");
                self.emit(EventKind::Running, &taken.lease);
                Some(taken.lease)
            }
            Ok(None) => {
                pools.count(&offering.key, |c| c.misses += 1);
                debug!(lease_id = %lease.id, offering = %offering.key, "warm pool empty");
                None
            }
            Err(error) => {
                pools.count(&offering.key, |c| c.misses += 1);
                warn!(lease_id = %lease.id, error = %crate::error::error_chain(&error), "warm pool take failed; provisioning normally");
                None
            }
        }
    }

    /// Every pooled offering's size and counters.
    pub async fn pool_status(&self) -> Result<Vec<PoolStatus>, LeaseError> {
        let slots = match self.store().pool_slots().await {
            Ok(slots) => slots,
            Err(StoreError::Unsupported { .. }) => Vec::new(),
            Err(other) => return Err(other.into()),
        };
        let counters = lock(&self.inner.pools.counters).clone();
        Ok(self
            .catalog()
            .offerings()
            .filter(|offering| offering.pool > 0)
            .map(|offering| {
                let of_offering = |state| {
                    slots
                        .iter()
                        .filter(|slot| slot.offering == offering.key && slot.state == state)
                        .count()
                };
                PoolStatus {
                    offering: offering.key.clone(),
                    target: offering.pool,
                    ready: of_offering(SlotState::Ready),
                    filling: of_offering(SlotState::Filling),
                    counters: counters.get(&offering.key).copied().unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Fills every pool up to its size once, creating the missing
    /// containers concurrently; returns how many were started. A store
    /// that keeps no pools fills nothing.
    pub async fn fill_pools_once(&self) -> Result<usize, LeaseError> {
        let offerings: Vec<&Offering> = self
            .catalog()
            .offerings()
            .filter(|offering| offering.pool > 0)
            .collect();
        if offerings.is_empty() {
            return Ok(0);
        }
        let slots = match self.store().pool_slots().await {
            Ok(slots) => slots,
            Err(StoreError::Unsupported { operation }) => {
                debug!(operation, "the store keeps no warm pools");
                return Ok(0);
            }
            Err(other) => return Err(other.into()),
        };
        let mut fills = Vec::new();
        for offering in offerings {
            let have = slots
                .iter()
                .filter(|slot| slot.offering == offering.key && slot.state.in_pool())
                .count();
            let missing = usize::try_from(offering.pool)
                .unwrap_or(usize::MAX)
                .saturating_sub(have);
            fills.extend((0..missing).map(|_| self.fill_one(offering)));
        }
        let results = join_all(fills).await;
        let mut started = 0;
        for result in results {
            if result? {
                started += 1;
            }
        }
        Ok(started)
    }

    /// Adds one slot to `offering`'s pool (if it is still short) and
    /// starts its container; `true` when a container became ready.
    async fn fill_one(&self, offering: &Offering) -> Result<bool, LeaseError> {
        let slot = PoolSlot::filling(&offering.key, &offering.image, self.clock().now());
        let target = usize::try_from(offering.pool).unwrap_or(usize::MAX);
        // The record first (as a lease's before its container): a crash
        // after this leaves a filling slot the reconciler drops.
        if !self.store().pool_add(&slot, target).await? {
            return Ok(false);
        }
        let started = Instant::now();
        let pools = &self.inner.pools;
        let container_id = match self.create_pool_container(&slot, offering).await {
            Ok(id) => id,
            Err(error) => {
                pools.count(&offering.key, |c| c.refill_failures += 1);
                warn!(slot = %slot.id, offering = %offering.key, error = %error.chain(), "warm pool refill failed");
                self.store().pool_drop(&slot.id, SlotState::Filling).await?;
                self.remove_quietly(&pool_container_name(&slot.id)).await;
                return Ok(false);
            }
        };
        if !self.store().pool_ready(&slot.id, &container_id).await? {
            // The reconciler dropped the slot meanwhile: nobody can take
            // this container, so it goes.
            self.remove_quietly(&container_id).await;
            return Ok(false);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        pools.count(&offering.key, |c| {
            c.refills += 1;
            c.refill_micros_sum = c.refill_micros_sum.saturating_add(micros);
        });
        debug!(slot = %slot.id, offering = %offering.key, container_id = %container_id, micros, "warm pool container ready");
        Ok(true)
    }

    async fn create_pool_container(
        &self,
        slot: &PoolSlot,
        offering: &Offering,
    ) -> Result<String, RuntimeError> {
        self.ensure_image(&offering.image, |_| {}).await?;
        let spec = pool_container_spec(slot, offering);
        self.create_running(&spec).await
    }

    /// Removes a container, logging (not failing) when it cannot: the
    /// reconciler removes what is left.
    pub(crate) async fn remove_quietly(&self, container: &str) {
        if let Err(error) = self.runtime().remove(container).await {
            warn!(container, error = %error.chain(), "could not remove a pool container; the reconciler will");
        }
    }

    /// Keeps the pools at size until `stop` completes: a pass now, then
    /// after every take and every `pool_check_interval`.
    pub(crate) async fn run_pool_filler(&self, stop: impl std::future::Future<Output = ()>) {
        if !self.catalog().offerings().any(|offering| offering.pool > 0) {
            return;
        }
        let mut stop = std::pin::pin!(stop);
        let interval = crate::reaper::to_chrono(self.config().pool_check_interval);
        loop {
            match self.fill_pools_once().await {
                Ok(0) => {}
                Ok(started) => info!(started, "warm pools refilled"),
                Err(error) => {
                    warn!(error = %crate::error::error_chain(&error), "warm pool refill failed; will retry")
                }
            }
            let next = self.clock().now() + interval;
            tokio::select! {
                () = self.clock().sleep_until(next) => {}
                () = self.inner.pools.wake.notified() => {}
                () = &mut stop => break,
            }
        }
    }
}

/// Keys of `slots` by offering, for the reconciler: the slots of each
/// offering still in the pool (filling or ready), oldest first.
pub(crate) fn in_pool_by_offering(slots: &[PoolSlot]) -> BTreeMap<&str, Vec<&PoolSlot>> {
    let mut by_offering: BTreeMap<&str, Vec<&PoolSlot>> = BTreeMap::new();
    for slot in slots.iter().filter(|slot| slot.state.in_pool()) {
        by_offering.entry(&slot.offering).or_default().push(slot);
    }
    for list in by_offering.values_mut() {
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    }
    by_offering
}
