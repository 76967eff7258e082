//! Warm-pool slot records, kept under the store's one lock with the
//! leases, so a take changes a slot and a lease in one atomic step.

use chrono::{DateTime, Utc};
use lease_core::pool::{Taken, taken_lease, taken_slot};
use lease_core::{Admission, Lease, PoolSlot, SlotState, StoreError};

use crate::index::Leases;

impl Leases {
    /// Adds a filling slot if its offering has fewer than `target` slots
    /// filling or ready.
    pub(crate) fn pool_add(&mut self, slot: &PoolSlot, target: usize) -> bool {
        let in_pool = self
            .pool
            .values()
            .filter(|s| s.offering == slot.offering && s.state.in_pool())
            .count();
        if in_pool >= target || self.pool.contains_key(&slot.id) {
            return false;
        }
        let filling = PoolSlot {
            state: SlotState::Filling,
            container_id: None,
            lease_id: None,
            ..slot.clone()
        };
        self.pool.insert(slot.id.clone(), filling);
        true
    }

    /// Filling → ready with `container_id`.
    pub(crate) fn pool_ready(&mut self, slot_id: &str, container_id: &str) -> bool {
        match self.pool.get_mut(slot_id) {
            Some(slot) if slot.state == SlotState::Filling => {
                slot.state = SlotState::Ready;
                slot.container_id = Some(container_id.to_owned());
                true
            }
            _ => false,
        }
    }

    /// The oldest ready slot of `offering` becomes taken by `lease`, and
    /// `lease` running on its container — both or neither.
    pub(crate) fn pool_take(
        &mut self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, StoreError> {
        let Some(slot) = self
            .pool
            .values()
            .filter(|slot| slot.offering == offering && slot.state == SlotState::Ready)
            .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
            .cloned()
        else {
            return Ok(None);
        };
        let Some(container_id) = slot.container_id.as_deref() else {
            return Ok(None);
        };
        // `update` stores revision + 1 after checking the revision read.
        let running = Lease {
            revision: lease.revision,
            ..taken_lease(lease, container_id, now)
        };
        let stored = self.update(&running, &Admission::default())?;
        let slot = taken_slot(&slot, &lease.id);
        self.pool.insert(slot.id.clone(), slot.clone());
        Ok(Some(Taken {
            slot,
            lease: stored,
        }))
    }

    /// Every slot, by offering, creation time and id.
    pub(crate) fn pool_slots(&self) -> Vec<PoolSlot> {
        let mut slots: Vec<PoolSlot> = self.pool.values().cloned().collect();
        slots.sort_by(|a, b| {
            (&a.offering, a.created_at, &a.id).cmp(&(&b.offering, b.created_at, &b.id))
        });
        slots
    }

    /// Deletes a slot that is in `state`.
    pub(crate) fn pool_drop(&mut self, slot_id: &str, state: SlotState) -> bool {
        if self
            .pool
            .get(slot_id)
            .is_some_and(|slot| slot.state == state)
        {
            self.pool.remove(slot_id);
            true
        } else {
            false
        }
    }
}
