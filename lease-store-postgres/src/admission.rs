//! Admission: the figures [`Admission::check`] and
//! [`Admission::check_update`] decide on, read inside the writing
//! transaction after it took the admission locks the set limits need
//! (`pg_advisory_xact_lock`, held until commit or rollback, so across the
//! commit's flush to disk):
//!
//! - the **owner's** lock for the owner's quotas (leases per owner, daily
//!   spend): writes of different owners do not wait for each other, and
//!   their commits share the disk flushes;
//! - the **namespace's** lock for the host's limits (leases, CPUs, memory
//!   of all owners together): those writes are admitted one at a time.
//!
//! Both are taken in that order (never the other way round, so two
//! writes cannot wait for each other). Reads in READ COMMITTED see every
//! transaction that committed before a lock was granted: parallel inserts
//! at a limit are admitted one after the other, by every server sharing the
//! database. Writes without a limit to check (most updates, finishes,
//! claims) take no lock.
//!
//! Costs: the owner's active count and spend today read the owner's index
//! ranges (`active_by_owner`, `finished_by_owner_created`); the host's
//! totals are a `count`/`sum` over the active table, read only when a host
//! limit is set — and then that table is bounded by the limit.

use deadpool_postgres::GenericClient;
use lease_core::{Admission, AdmissionUsage, Lease, Money, StoreError};

use crate::active::select;
use crate::codec::{self, COLUMNS, Param};
use crate::config::fnv1a;
use crate::error::During;

/// The advisory lock keys of one namespace's admission checks.
#[derive(Clone, Debug)]
pub(crate) struct AdmissionLocks {
    /// What every key is derived from (the namespace's schema).
    schema: String,
    /// The namespace's lock: the host's limits.
    host: i64,
}

impl AdmissionLocks {
    /// The keys of the namespace whose tables live in `schema`.
    pub(crate) fn new(schema: &str) -> Self {
        AdmissionLocks {
            schema: schema.to_owned(),
            host: key(&format!("containerlease admission {schema}")),
        }
    }

    /// The lock of `owner`'s quotas. Two owners whose keys collide (64-bit
    /// hashes) merely wait for each other.
    fn owner(&self, owner: &str) -> i64 {
        key(&format!(
            "containerlease admission {} owner {owner}",
            self.schema
        ))
    }

    /// Takes, until the transaction ends, the locks an insert of `lease`
    /// checked against `admission` needs: the owner's if an owner quota
    /// counts it, then the namespace's if a host limit is set.
    pub(crate) async fn for_insert(
        &self,
        client: &impl GenericClient,
        lease: &Lease,
        admission: &Admission,
    ) -> Result<(), StoreError> {
        let owner_quota = admission.max_leases_per_owner.is_some()
            || (admission.max_daily_spend.is_some() && admission.counts_today(lease));
        if owner_quota {
            lock(client, self.owner(&lease.owner)).await?;
        }
        if has_host_limit(admission) {
            lock(client, self.host).await?;
        }
        Ok(())
    }

    /// Takes, until the transaction ends, the lock an update of `lease`
    /// checked against the daily spend needs: the owner's.
    pub(crate) async fn for_update(
        &self,
        client: &impl GenericClient,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        lock(client, self.owner(&lease.owner)).await
    }
}

/// A lock key: the text's FNV-1a hash, the same in every build.
fn key(text: &str) -> i64 {
    i64::from_ne_bytes(fnv1a(text.as_bytes()).to_ne_bytes())
}

/// Whether any of the host's limits is set.
fn has_host_limit(admission: &Admission) -> bool {
    admission.max_leases.is_some()
        || admission.max_nano_cpus.is_some()
        || admission.max_memory_mb.is_some()
}

/// Takes the advisory lock `key` until the transaction ends.
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
    if !has_host_limit(admission) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_namespaces_have_their_own_locks() {
        let prod = AdmissionLocks::new("containerlease_prod");
        let test = AdmissionLocks::new("containerlease_test");
        assert_ne!(prod.owner("ada"), prod.owner("bob"));
        assert_ne!(prod.owner("ada"), test.owner("ada"));
        assert_ne!(prod.host, test.host);
        assert_ne!(prod.owner("ada"), prod.host);
        assert_eq!(
            prod.owner("ada"),
            AdmissionLocks::new("containerlease_prod").owner("ada")
        );
    }
}
