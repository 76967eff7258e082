//! Admission: the figures [`Admission::check`] and
//! [`Admission::check_update`] decide on, read inside the writing
//! transaction after it took the namespace's admission lock
//! (`pg_advisory_xact_lock`, held until commit or rollback).
//!
//! Every write that checks a limit takes that lock first, and reads in
//! READ COMMITTED see every transaction that committed before the lock was
//! granted: parallel inserts at a limit are admitted one after the other,
//! by every server sharing the database. Writes without a limit to check
//! (most updates, finishes, claims) never wait for it.
//!
//! Costs: the owner's active count and spend today read the owner's index
//! ranges (`active_by_owner`, `finished_by_owner_created`); the host's
//! totals are a `count`/`sum` over the active table, read only when a host
//! limit is set — and then that table is bounded by the limit.

use deadpool_postgres::GenericClient;
use lease_core::{Admission, AdmissionUsage, Lease, Money, StoreError};

use crate::active::select;
use crate::codec::{self, COLUMNS, Param};
use crate::error::During;

/// Takes the namespace's admission lock until the transaction ends.
pub(crate) async fn lock(client: &impl GenericClient, key: i64) -> Result<(), StoreError> {
    const OPERATION: &str = "take the admission lock";
    let statement = client
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await
        .during(OPERATION)?;
    client
        .execute(&statement, &[&key])
        .await
        .during(OPERATION)
        .map(drop)
}

/// Refuses `lease` if `admission` does not let it in; reads only what the
/// set limits need.
pub(crate) async fn check_insert(
    client: &impl GenericClient,
    lease: &Lease,
    admission: &Admission,
) -> Result<(), StoreError> {
    let owner_leases = match admission.max_leases_per_owner {
        Some(_) => owner_active(client, &lease.owner).await?,
        None => 0,
    };
    let owner_spend_today = if admission.max_daily_spend.is_some() && admission.counts_today(lease)
    {
        spend_since(client, &lease.owner, admission).await?
    } else {
        Money::ZERO
    };
    let usage = AdmissionUsage {
        owner_leases,
        owner_spend_today,
        ..host_use(client, admission).await?
    };
    admission.check(&usage, lease)
}

/// Locks the active lease `next.id`, checks its revision (`NotFound`,
/// `Conflict`), and refuses the update if it raises the charge over the
/// owner's daily spend limit.
pub(crate) async fn check_update(
    client: &impl GenericClient,
    next: &Lease,
    admission: &Admission,
) -> Result<(), StoreError> {
    let stored = select(
        client,
        &format!("SELECT {COLUMNS} FROM active WHERE id = $1 FOR UPDATE"),
        &[Box::new(next.id.as_str().to_owned()) as Param],
        "check the daily spend",
    )
    .await?;
    let Some(stored) = stored.first() else {
        return Err(StoreError::NotFound(next.id.clone()));
    };
    if stored.revision != next.revision {
        return Err(StoreError::Conflict {
            id: next.id.clone(),
            expected: next.revision,
        });
    }
    if next.charge() <= stored.charge() {
        return Ok(());
    }
    let spent = spend_since(client, &next.owner, admission).await?;
    admission.check_update(spent, stored, next)
}

/// The owner's active leases.
async fn owner_active(client: &impl GenericClient, owner: &str) -> Result<u64, StoreError> {
    const OPERATION: &str = "count an owner's leases";
    let statement = client
        .prepare_cached("SELECT count(*) FROM active WHERE owner = $1")
        .await
        .during(OPERATION)?;
    let row = client
        .query_one(&statement, &[&owner])
        .await
        .during(OPERATION)?;
    let count: i64 = row.try_get(0).during(OPERATION)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Σ [`Lease::charge`] over the owner's active and finished leases created
/// at or after the admission's day start, in exact money from the rows.
async fn spend_since(
    client: &impl GenericClient,
    owner: &str,
    admission: &Admission,
) -> Result<Money, StoreError> {
    let start = codec::saturating_nanos(admission.day_start);
    let sql = format!(
        "SELECT {COLUMNS} FROM active WHERE owner = $1 AND created_at >= $2 \
         UNION ALL SELECT {COLUMNS} FROM finished WHERE owner = $1 AND created_at >= $2"
    );
    let values: [Param; 2] = [Box::new(owner.to_owned()), Box::new(start)];
    let leases = select(client, &sql, &values, "sum an owner's spend today").await?;
    Ok(leases.iter().map(Lease::charge).sum())
}

/// The host's active leases, CPU and memory, if a host limit is set (zeros
/// otherwise: the figures are not needed).
async fn host_use(
    client: &impl GenericClient,
    admission: &Admission,
) -> Result<AdmissionUsage, StoreError> {
    const OPERATION: &str = "sum the host's use";
    if admission.max_leases.is_none()
        && admission.max_nano_cpus.is_none()
        && admission.max_memory_mb.is_none()
    {
        return Ok(AdmissionUsage::default());
    }
    // numeric sums: exact, and checked when narrowed back.
    let statement = client
        .prepare_cached(
            "SELECT count(*), COALESCE(sum(nano_cpus), 0)::text, \
             COALESCE(sum(memory_mb), 0)::text FROM active",
        )
        .await
        .during(OPERATION)?;
    let row = client.query_one(&statement, &[]).await.during(OPERATION)?;
    let leases: i64 = row.try_get(0).during(OPERATION)?;
    let narrow = |index: usize| -> Result<i64, StoreError> {
        let text: String = row.try_get(index).during(OPERATION)?;
        text.parse().map_err(|_| StoreError::Other {
            operation: OPERATION.to_owned(),
            source: format!("the host's total {text} does not fit 64 bits").into(),
        })
    };
    Ok(AdmissionUsage {
        leases: u64::try_from(leases).unwrap_or(0),
        nano_cpus: narrow(1)?,
        memory_mb: u64::try_from(narrow(2)?).unwrap_or(0),
        ..AdmissionUsage::default()
    })
}
