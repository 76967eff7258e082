//! Warm pools: started containers waiting for a lease.
//!
//! An offering with `pool = N` in the catalog has up to N containers
//! created, started and hardened before anyone asks. A provision that finds
//! one *takes* it: the lease is `running` at once and its billing starts
//! then. A miss falls back to the normal path. A used container never goes
//! back to a pool.
//!
//! # Records before containers
//!
//! Pools mirror the lease's own rule (a record is stored before its
//! container is created): a [`PoolSlot`] is written to the store as
//! [`SlotState::Filling`] *before* its container is created, and the
//! container carries the slot's id in the [`labels::POOL_SLOT`] label (with
//! the managed and namespace labels, the offering in [`labels::POOL`], but
//! no lease id, owner or expiry: those are unknown when it is created, and
//! labels cannot change later). The store knows, per slot:
//!
//! ```text
//! filling ──> ready ──> taken (by lease L; L holds the container id)
//!    │          │
//!    └──────────┴──> (record dropped: the container is removed)
//! ```
//!
//! - **Take** ([`LeaseStore::pool_take`](crate::LeaseStore::pool_take)) is
//!   one atomic store operation: a ready slot of the offering becomes
//!   taken by lease L *and* L becomes `running` with the slot's container
//!   id, or nothing changes. No kill -9 can leave a half-assigned slot,
//!   and two takers never get the same container.
//! - **Fill** adds a filling slot only while the offering has fewer than
//!   N filling or ready slots (checked atomically with the write, so
//!   replicas refilling at once do not overfill), then creates the
//!   container, then marks the slot ready.
//! - **Reconciliation** judges a container with a pool-slot label by its
//!   slot record: filling or ready, it is the pool's; taken by a live
//!   lease, it is that lease's (the lease holds its id); anything else is
//!   an orphan and is removed. Slots that are stale (older than the
//!   configured age, or of an image the catalog no longer names), extra
//!   (more than N), or whose container is gone are dropped, record first.
//!
//! # The invariants, as pools amend them
//!
//! 1. Every container carries the managed and namespace labels, set at
//!    create time; a lease's also its lease id, owner and expiry; a pool
//!    container instead [`labels::POOL`] and [`labels::POOL_SLOT`].
//! 2. A lease, and a pool slot, is stored before its container is
//!    created; a take is one atomic store step (slot taken + lease
//!    running on its container); a lease leaves the active set only after
//!    its container (by the id it holds) is confirmed removed.
//! 7. The reconciler judges pool-labelled containers by their slot
//!    records, never as orphans of a lease; it matches a running lease to
//!    its container by lease label or by the container id it holds; it
//!    drops stale, extra, stopped or stuck slots record first.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::LeaseId;
use crate::lease::Lease;

pub use crate::runtime::labels;

/// The prefix of every slot id.
pub const SLOT_ID_PREFIX: &str = "slot-";

/// Random characters in a slot id.
const SLOT_RANDOM_LEN: usize = 20;

/// A fresh random slot id: `slot-` and 20 lowercase letters or digits.
///
/// ```
/// let id = lease_core::pool::new_slot_id();
/// assert!(id.starts_with("slot-") && id.len() == 25);
/// ```
pub fn new_slot_id() -> String {
    let random = crate::id::random_lowercase(SLOT_RANDOM_LEN);
    format!("{SLOT_ID_PREFIX}{random}")
}

/// Name of a pool slot's container: `containerlease-<slot id>`.
pub fn pool_container_name(slot_id: &str) -> String {
    format!("containerlease-{slot_id}")
}

/// Where a slot is in its life (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    /// Stored; its container is being created.
    Filling,
    /// Its container is started and waits for a lease.
    Ready,
    /// A lease took its container.
    Taken,
}

impl SlotState {
    /// The lowercase name stores and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Filling => "filling",
            SlotState::Ready => "ready",
            SlotState::Taken => "taken",
        }
    }

    /// Whether the slot still belongs to the pool (filling or ready).
    pub fn in_pool(self) -> bool {
        matches!(self, SlotState::Filling | SlotState::Ready)
    }
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SlotState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [SlotState::Filling, SlotState::Ready, SlotState::Taken]
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a pool slot state"))
    }
}

/// One place in an offering's warm pool, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSlot {
    /// The slot's id (see [`new_slot_id`]); its container is named
    /// [`pool_container_name`] of it.
    pub id: String,
    /// The catalog offering's key.
    pub offering: String,
    /// The image its container runs (to spot slots of a changed image).
    pub image: String,
    /// Where it is in its life.
    pub state: SlotState,
    /// The runtime's container id, once ready.
    pub container_id: Option<String>,
    /// The lease that took it, once taken.
    pub lease_id: Option<LeaseId>,
    /// When the slot was stored (before its container was created), by
    /// the engine's clock.
    pub created_at: DateTime<Utc>,
}

impl PoolSlot {
    /// A new `filling` slot of `offering` running `image`, stored at `now`.
    pub fn filling(offering: &str, image: &str, now: DateTime<Utc>) -> PoolSlot {
        PoolSlot {
            id: new_slot_id(),
            offering: offering.to_owned(),
            image: image.to_owned(),
            state: SlotState::Filling,
            container_id: None,
            lease_id: None,
            created_at: now,
        }
    }
}

/// What a successful [`LeaseStore::pool_take`](crate::LeaseStore::pool_take)
/// changed: the slot, now taken, and the lease, now running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The slot, in state [`SlotState::Taken`] with the lease's id.
    pub slot: PoolSlot,
    /// The lease as stored: `running`, with the slot's container id.
    pub lease: Lease,
}

/// `lease` (pending, as read) as a pool take stores it: `running` since
/// `now` on `container_id`, revision + 1. Stores call it so every store
/// changes the same fields.
pub fn taken_lease(lease: &Lease, container_id: &str, now: DateTime<Utc>) -> Lease {
    let mut running = lease.clone();
    running.status = crate::lease::Status::Running;
    running.container_id = Some(container_id.to_owned());
    running.running_at = Some(now);
    running.provision_attempts = running.provision_attempts.max(1);
    running.revision = lease.revision + 1;
    running
}

/// `slot` (ready) as a pool take stores it: taken by `lease`.
pub fn taken_slot(slot: &PoolSlot, lease: &LeaseId) -> PoolSlot {
    PoolSlot {
        state: SlotState::Taken,
        lease_id: Some(lease.clone()),
        ..slot.clone()
    }
}
