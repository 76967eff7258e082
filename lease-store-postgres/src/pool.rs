//! Warm-pool slot records (see [`lease_core::pool`]), in the `pool_slots`
//! table. A take is one transaction: the oldest ready slot of the offering
//! is locked `FOR UPDATE SKIP LOCKED` (racing takers skip it and pick
//! another), the lease is compare-and-set to running on its container, and
//! the slot is marked taken — all committed together or not at all.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Object};
use lease_core::pool::{Taken, taken_lease, taken_slot};
use lease_core::{Lease, LeaseId, PoolSlot, SlotState, StoreError};
use tokio_postgres::Row;

use crate::active;
use crate::codec::{nanos, time};
use crate::error::During;

const SLOT_COLUMNS: &str = "id, offering, image, state, container_id, lease_id, created_at";

fn slot_from_row(row: &Row) -> Result<PoolSlot, StoreError> {
    let id: String = row.try_get(0).during("read a pool slot")?;
    let corrupt = |what: String| StoreError::Corrupt {
        key: format!("pool_slots/{id}"),
        source: what.into(),
    };
    let state: String = row.try_get(3).during("read a pool slot")?;
    let lease_id: Option<String> = row.try_get(5).during("read a pool slot")?;
    Ok(PoolSlot {
        offering: row.try_get(1).during("read a pool slot")?,
        image: row.try_get(2).during("read a pool slot")?,
        state: state.parse().map_err(corrupt)?,
        container_id: row.try_get(4).during("read a pool slot")?,
        lease_id: lease_id
            .map(|text| {
                text.parse::<LeaseId>()
                    .map_err(|error| corrupt(error.to_string()))
            })
            .transpose()?,
        created_at: time(row.try_get(6).during("read a pool slot")?),
        id: id.clone(),
    })
}

/// Adds a filling slot if its offering has fewer than `target` in the
/// pool: the count and the insert are one statement, serialised per
/// offering by a transaction-scoped advisory lock.
pub(crate) async fn add(
    client: &mut Object,
    slot: &PoolSlot,
    target: usize,
) -> Result<bool, StoreError> {
    const OPERATION: &str = "add a pool slot";
    let transaction = client.transaction().await.during(OPERATION)?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('containerlease pool ' || current_schema() || ' ' || $1, 0))",
            &[&slot.offering],
        )
        .await
        .during(OPERATION)?;
    let target = i64::try_from(target).unwrap_or(i64::MAX);
    let added = transaction
        .execute(
            &format!(
                "INSERT INTO pool_slots ({SLOT_COLUMNS}) \
                 SELECT $1, $2, $3, 'filling', NULL, NULL, $4 \
                 WHERE (SELECT count(*) FROM pool_slots WHERE offering = $2 \
                        AND state IN ('filling', 'ready')) < $5 \
                 ON CONFLICT (id) DO NOTHING"
            ),
            &[
                &slot.id,
                &slot.offering,
                &slot.image,
                &nanos(slot.created_at, OPERATION)?,
                &target,
            ],
        )
        .await
        .during(OPERATION)?;
    transaction.commit().await.during(OPERATION)?;
    Ok(added == 1)
}

/// Filling → ready with `container_id`.
pub(crate) async fn ready(
    client: &impl GenericClient,
    slot_id: &str,
    container_id: &str,
) -> Result<bool, StoreError> {
    let changed = client
        .execute(
            "UPDATE pool_slots SET state = 'ready', container_id = $2 WHERE id = $1 AND state = 'filling'",
            &[&slot_id, &container_id],
        )
        .await
        .during("mark a pool slot ready")?;
    Ok(changed == 1)
}

/// The oldest ready, unlocked slot of `offering` taken by `lease`, and
/// `lease` running on it, in one transaction.
pub(crate) async fn take(
    client: &mut Object,
    offering: &str,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<Option<Taken>, StoreError> {
    const OPERATION: &str = "take a pool slot";
    let transaction = client.transaction().await.during(OPERATION)?;
    let row = transaction
        .query_opt(
            &format!(
                "SELECT {SLOT_COLUMNS} FROM pool_slots WHERE offering = $1 AND state = 'ready' \
                 ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ),
            &[&offering],
        )
        .await
        .during(OPERATION)?;
    let Some(row) = row else { return Ok(None) };
    let slot = slot_from_row(&row)?;
    let Some(container_id) = slot.container_id.as_deref() else {
        return Ok(None);
    };
    // The compare-and-set checks the revision read and stores revision + 1.
    let running = Lease {
        revision: lease.revision,
        ..taken_lease(lease, container_id, now)
    };
    let stored = active::update_in(&transaction, &running).await?;
    let slot = taken_slot(&slot, &lease.id);
    transaction
        .execute(
            "UPDATE pool_slots SET state = 'taken', lease_id = $2 WHERE id = $1",
            &[&slot.id, &lease.id.as_str()],
        )
        .await
        .during(OPERATION)?;
    transaction.commit().await.during(OPERATION)?;
    Ok(Some(Taken {
        slot,
        lease: stored,
    }))
}

/// Every slot, by offering, creation time and id.
pub(crate) async fn slots(client: &impl GenericClient) -> Result<Vec<PoolSlot>, StoreError> {
    client
        .query(
            &format!("SELECT {SLOT_COLUMNS} FROM pool_slots ORDER BY offering, created_at, id"),
            &[],
        )
        .await
        .during("list pool slots")?
        .iter()
        .map(slot_from_row)
        .collect()
}

/// Deletes a slot that is in `state`.
pub(crate) async fn drop_slot(
    client: &impl GenericClient,
    slot_id: &str,
    state: SlotState,
) -> Result<bool, StoreError> {
    let deleted = client
        .execute(
            "DELETE FROM pool_slots WHERE id = $1 AND state = $2",
            &[&slot_id, &state.as_str()],
        )
        .await
        .during("drop a pool slot")?;
    Ok(deleted == 1)
}
