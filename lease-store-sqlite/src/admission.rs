//! Admission: the figures [`Admission::check`] and
//! [`Admission::check_update`] decide on, read inside the writer's
//! transaction.
//!
//! The writer runs every write in one `BEGIN IMMEDIATE` transaction at a
//! time, across every process sharing the file, so what is read here cannot
//! change before the write that follows it commits: parallel inserts at a
//! limit are admitted one after the other.
//!
//! Costs: the owner's active count is a range of `active_by_owner`; the
//! owner's spend today reads only the owner's leases created since the
//! day's start (`active_by_owner`, `finished_by_owner_created`). The host's
//! totals are a `count`/`sum` over the active table, read only when a host
//! limit is set — and then the active table is bounded by that limit
//! (every admitted lease takes a slot, a CPU share and memory while it is
//! active), so the sum stays small without a totals row to keep in step.

use lease_core::{Admission, AdmissionUsage, Lease, Money, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

use crate::active::select;
use crate::codec::{self, COLUMNS};
use crate::error::During;

/// Refuses `lease` if `admission` does not let it in; reads only what the
/// set limits need.
pub(crate) fn check_insert(
    transaction: &Connection,
    lease: &Lease,
    admission: &Admission,
) -> Result<(), StoreError> {
    if !admission.is_limited() {
        return Ok(());
    }
    let usage = AdmissionUsage {
        owner_leases: match admission.max_leases_per_owner {
            Some(_) => owner_active(transaction, &lease.owner)?,
            None => 0,
        },
        owner_spend_today: if admission.max_daily_spend.is_some() && admission.counts_today(lease) {
            spend_since(transaction, &lease.owner, admission)?
        } else {
            Money::ZERO
        },
        ..host_use(transaction, admission)?
    };
    admission.check(&usage, lease)
}

/// Refuses the update of the active lease to `next` if it raises the
/// charge over the owner's daily spend limit. The revision was checked.
pub(crate) fn check_update(
    transaction: &Connection,
    next: &Lease,
    admission: &Admission,
) -> Result<(), StoreError> {
    if admission.max_daily_spend.is_none() || !admission.counts_today(next) {
        return Ok(());
    }
    let stored = select(
        transaction,
        &format!("SELECT {COLUMNS} FROM active WHERE id = ?1"),
        vec![Box::new(next.id.as_str().to_owned())],
        "check the daily spend",
    )?;
    let Some(stored) = stored.first() else {
        return Err(StoreError::NotFound(next.id.clone()));
    };
    if next.charge() <= stored.charge() {
        return Ok(());
    }
    let spent = spend_since(transaction, &next.owner, admission)?;
    admission.check_update(spent, stored, next)
}

/// The owner's active leases.
fn owner_active(transaction: &Connection, owner: &str) -> Result<u64, StoreError> {
    let count: i64 = transaction
        .prepare_cached("SELECT count(*) FROM active WHERE owner = ?1")
        .and_then(|mut statement| statement.query_row([owner], |row| row.get(0)))
        .during("count an owner's leases")?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Σ [`Lease::charge`] over the owner's active and finished leases created
/// at or after the admission's day start. The charge is computed here, in
/// exact money, from the rows.
fn spend_since(
    transaction: &Connection,
    owner: &str,
    admission: &Admission,
) -> Result<Money, StoreError> {
    const OPERATION: &str = "sum an owner's spend today";
    let start = codec::saturating_nanos(admission.day_start);
    let sql = format!(
        "SELECT {COLUMNS} FROM active WHERE owner = ?1 AND created_at >= ?2 \
         UNION ALL SELECT {COLUMNS} FROM finished WHERE owner = ?1 AND created_at >= ?2"
    );
    let leases = select(
        transaction,
        &sql,
        vec![Box::new(owner.to_owned()), Box::new(start)],
        OPERATION,
    )?;
    Ok(leases.iter().map(Lease::charge).sum())
}

/// The host's active leases, CPU and memory, if a host limit is set (zeros
/// otherwise: the figures are not needed).
fn host_use(transaction: &Connection, admission: &Admission) -> Result<AdmissionUsage, StoreError> {
    if admission.max_leases.is_none()
        && admission.max_nano_cpus.is_none()
        && admission.max_memory_mb.is_none()
    {
        return Ok(AdmissionUsage::default());
    }
    // Summed in SQLite's 64-bit integers: an overflow is an error, never
    // an inexact real (sizes are bounded by the catalog's validation).
    let totals: Option<(i64, i64, i64)> = transaction
        .prepare_cached(
            "SELECT count(*), COALESCE(sum(nano_cpus), 0), COALESCE(sum(memory_mb), 0) \
             FROM active",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
        })
        .during("sum the host's use")?;
    let (leases, nano_cpus, memory_mb) = totals.unwrap_or_default();
    Ok(AdmissionUsage {
        leases: u64::try_from(leases).unwrap_or(0),
        nano_cpus,
        memory_mb: u64::try_from(memory_mb).unwrap_or(0),
        ..AdmissionUsage::default()
    })
}
