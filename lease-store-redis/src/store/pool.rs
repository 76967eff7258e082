//! Warm-pool slot records (see [`lease_core::pool`]) on the same Redis and
//! prefix as the leases.
//!
//! Keys: `pool:slot:<id>` (hash: id, offering, image, state, container_id,
//! lease_id, created_at), `pool:slots` (set of every slot id),
//! `pool:in:<offering>` (set of the offering's filling or ready slots: the
//! pool's size) and `pool:ready:<offering>` (sorted set of its ready
//! slots by creation time). Every write is one Lua script in
//! `src/lua/pool/`. A take reads the oldest ready slot, then runs
//! `take.lua` followed by `update.lua` as one script: it checks the slot
//! is still ready on that container and the lease's revision, marks the
//! slot taken and writes the lease running — or, when another take won
//! the slot meanwhile, changes nothing and the next ready slot is tried.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use lease_core::pool::{Taken, taken_lease, taken_slot};
use lease_core::{Admission, Lease, LeaseId, PoolSlot, SlotState, StoreError};
use redis::Script;

use super::RedisStore;
use crate::admission::{Weights, update_limits};
use crate::error::{RedisStoreError, corrupt, other};
use crate::record::{ActiveFields, Outcome};

/// Ready slots tried by one take before it reports an empty pool (each
/// try lost a race for its slot to another take).
const TAKE_TRIES: usize = 16;

struct PoolScripts {
    add: Script,
    ready: Script,
    take: Script,
    slots: Script,
    drop: Script,
}

static SCRIPTS: LazyLock<PoolScripts> = LazyLock::new(|| PoolScripts {
    add: Script::new(include_str!("../lua/pool/add.lua")),
    ready: Script::new(include_str!("../lua/pool/ready.lua")),
    take: Script::new(concat!(
        include_str!("../lua/lib/admission.lua"),
        include_str!("../lua/pool/take.lua"),
        include_str!("../lua/update.lua")
    )),
    slots: Script::new(include_str!("../lua/pool/slots.lua")),
    drop: Script::new(include_str!("../lua/pool/drop.lua")),
});

impl RedisStore {
    fn slot_key(&self, id: &str) -> String {
        format!("{}pool:slot:{id}", self.keys.base())
    }

    fn all_slots_key(&self) -> String {
        format!("{}pool:slots", self.keys.base())
    }

    fn in_pool_key(&self, offering: &str) -> String {
        format!("{}pool:in:{offering}", self.keys.base())
    }

    fn ready_key(&self, offering: &str) -> String {
        format!("{}pool:ready:{offering}", self.keys.base())
    }

    pub(super) async fn add_slot(
        &self,
        slot: &PoolSlot,
        target: usize,
    ) -> Result<bool, StoreError> {
        let keys = (
            self.slot_key(&slot.id),
            self.all_slots_key(),
            self.in_pool_key(&slot.offering),
        );
        let args = (
            &slot.id,
            &slot.offering,
            &slot.image,
            slot.created_at.to_rfc3339(),
            target,
        );
        let added: i64 = self
            .link
            .run_script("add a pool slot", &SCRIPTS.add, keys, args)
            .await?;
        Ok(added == 1)
    }

    pub(super) async fn ready_slot(
        &self,
        slot_id: &str,
        container_id: &str,
    ) -> Result<bool, StoreError> {
        let created_ms = match self.read_slot(slot_id).await? {
            Some(slot) => slot.created_at.timestamp_millis(),
            None => return Ok(false),
        };
        let args = (slot_id, container_id, self.keys.base(), created_ms);
        let done: i64 = self
            .link
            .run_script(
                "mark a pool slot ready",
                &SCRIPTS.ready,
                self.slot_key(slot_id),
                args,
            )
            .await?;
        Ok(done == 1)
    }

    pub(super) async fn take_slot(
        &self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, StoreError> {
        for _ in 0..TAKE_TRIES {
            let oldest = redis::cmd("ZRANGE")
                .arg((self.ready_key(offering), 0, 0))
                .take();
            let ids: Vec<String> = self.link.run("read the oldest ready slot", &oldest).await?;
            let Some(slot_id) = ids.into_iter().next() else {
                return Ok(None);
            };
            let Some(slot) = self.read_slot(&slot_id).await? else {
                continue;
            };
            let (SlotState::Ready, Some(container_id)) = (slot.state, slot.container_id.as_deref())
            else {
                continue;
            };
            if slot.offering != offering {
                // A ready-set entry that names another offering's slot (a
                // damaged index): never hand that container to this lease.
                tracing::warn!(slot = %slot.id, offering, found = %slot.offering,
                    "a pool slot in the wrong ready set is skipped");
                continue;
            }
            let stored = taken_lease(lease, container_id, now);
            let (k, id, owner) = (&self.keys, stored.id.as_str(), &stored.owner);
            let keys = (
                k.active_lease(id, owner),
                k.capacity(),
                k.spend(owner),
                self.slot_key(&slot.id),
                self.ready_key(offering),
                self.in_pool_key(offering),
            );
            let args = (
                (id, lease.revision, ActiveFields::of(&stored)?, k.base()),
                Weights::of(&stored),
                update_limits(&Admission::default(), &stored),
                (&slot.id, container_id),
            );
            let reply: String = self
                .link
                .run_script("take a pool slot", &SCRIPTS.take, keys, args)
                .await?;
            let outcome = match reply.as_str() {
                "gone" => continue,
                "ok" => Outcome::Ok,
                "notfound" => Outcome::NotFound,
                "conflict" => Outcome::Conflict,
                _ => {
                    return Err(other(
                        "take a pool slot",
                        RedisStoreError::UnexpectedReply(reply),
                    ));
                }
            };
            outcome.check(&lease.id, Some(lease.revision))?;
            return Ok(Some(Taken {
                slot: taken_slot(&slot, &lease.id),
                lease: stored,
            }));
        }
        Ok(None)
    }

    pub(super) async fn all_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        let records: Vec<HashMap<String, String>> = self
            .link
            .run_script(
                "list pool slots",
                &SCRIPTS.slots,
                self.all_slots_key(),
                self.keys.base(),
            )
            .await?;
        let mut slots = records
            .into_iter()
            .map(|fields| self.decode_slot(fields))
            .collect::<Result<Vec<_>, _>>()?;
        slots.sort_by(|a, b| {
            (&a.offering, a.created_at, &a.id).cmp(&(&b.offering, b.created_at, &b.id))
        });
        Ok(slots)
    }

    pub(super) async fn drop_slot(
        &self,
        slot_id: &str,
        state: SlotState,
    ) -> Result<bool, StoreError> {
        let keys = (self.slot_key(slot_id), self.all_slots_key());
        let args = (slot_id, state.as_str(), self.keys.base());
        let dropped: i64 = self
            .link
            .run_script("drop a pool slot", &SCRIPTS.drop, keys, args)
            .await?;
        Ok(dropped == 1)
    }

    async fn read_slot(&self, slot_id: &str) -> Result<Option<PoolSlot>, StoreError> {
        let read = redis::cmd("HGETALL").arg(self.slot_key(slot_id)).take();
        let fields: HashMap<String, String> = self.link.run("read a pool slot", &read).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        self.decode_slot(fields).map(Some)
    }

    fn decode_slot(&self, mut fields: HashMap<String, String>) -> Result<PoolSlot, StoreError> {
        let id = fields.remove("id").unwrap_or_default();
        let key = self.slot_key(&id);
        let mut field = |name: &str| {
            fields
                .remove(name)
                .ok_or_else(|| corrupt(key.clone(), format!("no `{name}` field")))
        };
        let offering = field("offering")?;
        let image = field("image")?;
        let state = field("state")?
            .parse()
            .map_err(|e: String| corrupt(key.clone(), e))?;
        let created_at = DateTime::parse_from_rfc3339(&field("created_at")?)
            .map_err(|e| corrupt(key.clone(), e))?
            .with_timezone(&Utc);
        let container_id = field("container_id").ok();
        let lease_id = field("lease_id")
            .ok()
            .map(|text| text.parse::<LeaseId>().map_err(|e| corrupt(key.clone(), e)))
            .transpose()?;
        Ok(PoolSlot {
            id,
            offering,
            image,
            state,
            container_id,
            lease_id,
            created_at,
        })
    }
}
