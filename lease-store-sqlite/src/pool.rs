//! Warm-pool slot records (see [`lease_core::pool`]), in the
//! `pool_slots` table. Every write runs in the writer's transaction, so a
//! take changes the slot and the lease together or not at all.

use chrono::{DateTime, Utc};
use lease_core::pool::{Taken, taken_lease, taken_slot};
use lease_core::{Admission, Lease, LeaseId, PoolSlot, SlotState, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::active;
use crate::codec::{nanos, time};
use crate::error::{During, store_error};

const SLOT_COLUMNS: &str = "id, offering, image, state, container_id, lease_id, created_at";

fn slot_from_row(row: &Row<'_>) -> rusqlite::Result<PoolSlot> {
    let state: String = row.get(3)?;
    let lease_id: Option<String> = row.get(5)?;
    let corrupt = |index, message: String| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            message.into(),
        )
    };
    Ok(PoolSlot {
        id: row.get(0)?,
        offering: row.get(1)?,
        image: row.get(2)?,
        state: state.parse().map_err(|message| corrupt(3, message))?,
        container_id: row.get(4)?,
        lease_id: lease_id
            .map(|id| {
                id.parse::<LeaseId>()
                    .map_err(|error| corrupt(5, error.to_string()))
            })
            .transpose()?,
        created_at: time(row.get(6)?),
    })
}

/// Adds a filling slot if its offering has fewer than `target` in the pool.
pub(crate) fn add(
    transaction: &Connection,
    slot: &PoolSlot,
    target: usize,
) -> Result<bool, StoreError> {
    const OPERATION: &str = "add a pool slot";
    let in_pool: i64 = transaction
        .prepare_cached(
            "SELECT count(*) FROM pool_slots WHERE offering = ?1 AND state IN ('filling', 'ready')",
        )
        .and_then(|mut statement| statement.query_row([&slot.offering], |row| row.get(0)))
        .during(OPERATION)?;
    if usize::try_from(in_pool).unwrap_or(usize::MAX) >= target {
        return Ok(false);
    }
    let added = transaction
        .prepare_cached(&format!(
            "INSERT INTO pool_slots ({SLOT_COLUMNS}) VALUES (?1, ?2, ?3, 'filling', NULL, NULL, ?4) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                slot.id,
                slot.offering,
                slot.image,
                nanos(slot.created_at)?
            ])
        })
        .during(OPERATION)?;
    Ok(added == 1)
}

/// Filling → ready with `container_id`.
pub(crate) fn ready(
    transaction: &Connection,
    slot_id: &str,
    container_id: &str,
) -> Result<bool, StoreError> {
    let changed = transaction
        .prepare_cached(
            "UPDATE pool_slots SET state = 'ready', container_id = ?2 WHERE id = ?1 AND state = 'filling'",
        )
        .and_then(|mut statement| statement.execute(params![slot_id, container_id]))
        .during("mark a pool slot ready")?;
    Ok(changed == 1)
}

/// The oldest ready slot of `offering` taken by `lease`, and `lease`
/// running on it, in this one transaction.
pub(crate) fn take(
    transaction: &Connection,
    offering: &str,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<Option<Taken>, StoreError> {
    const OPERATION: &str = "take a pool slot";
    let slot = transaction
        .prepare_cached(&format!(
            "SELECT {SLOT_COLUMNS} FROM pool_slots WHERE offering = ?1 AND state = 'ready' \
             ORDER BY created_at, id LIMIT 1"
        ))
        .and_then(|mut statement| statement.query_row([offering], slot_from_row).optional())
        .during(OPERATION)?;
    let Some(slot) = slot else { return Ok(None) };
    let Some(container_id) = slot.container_id.as_deref() else {
        return Ok(None);
    };
    // `update` checks the revision read and stores revision + 1.
    let running = Lease {
        revision: lease.revision,
        ..taken_lease(lease, container_id, now)
    };
    let stored = active::update(transaction, &running, &Admission::default())?;
    let slot = taken_slot(&slot, &lease.id);
    transaction
        .prepare_cached("UPDATE pool_slots SET state = 'taken', lease_id = ?2 WHERE id = ?1")
        .and_then(|mut statement| statement.execute(params![slot.id, lease.id.as_str()]))
        .during(OPERATION)?;
    Ok(Some(Taken {
        slot,
        lease: stored,
    }))
}

/// Every slot, by offering, creation time and id.
pub(crate) fn slots(connection: &Connection) -> Result<Vec<PoolSlot>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {SLOT_COLUMNS} FROM pool_slots ORDER BY offering, created_at, id"
        ))
        .and_then(|mut statement| {
            statement
                .query_map([], slot_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|error| store_error("list pool slots", error))
}

/// Deletes a slot that is in `state`.
pub(crate) fn drop_slot(
    transaction: &Connection,
    slot_id: &str,
    state: SlotState,
) -> Result<bool, StoreError> {
    let deleted = transaction
        .prepare_cached("DELETE FROM pool_slots WHERE id = ?1 AND state = ?2")
        .and_then(|mut statement| statement.execute(params![slot_id, state.as_str()]))
        .during("drop a pool slot")?;
    Ok(deleted == 1)
}
