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
use tokio_postgres::types::ToSql;

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

/// What an insert of a lease decides on, read under its admission locks.
#[derive(Debug)]
pub(crate) struct InsertFigures {
    /// Whether the id is taken, by an active or a finished lease.
    pub(crate) taken: bool,
    /// The figures the set limits need (zeros for the others).
    pub(crate) usage: AdmissionUsage,
}

/// The id check and the admission figures of an insert, in one statement:
/// `$1` the id, `$2` the owner. `count_owner` and `sum_host` say which
/// figures the set limits need; the others are a constant-false filter
/// (no scan). They are written into the text rather than bound: with a
/// bound flag, every plan with the flag known looked cheaper than the
/// generic plan (which costs the scans the flag skips), so PostgreSQL
/// planned the statement anew on every insert. As text, each of the four
/// variants gets its generic plan after its first executions. The host's
/// sums are numeric: exact, and checked when narrowed back.
fn insert_figures_sql(count_owner: bool, sum_host: bool) -> String {
    format!(
        "SELECT taken.v, owner_leases.v, host.leases, host.cpus, host.memory \
         FROM (SELECT EXISTS (SELECT 1 FROM active WHERE id = $1) \
                  OR EXISTS (SELECT 1 FROM finished WHERE id = $1) AS v) taken, \
              (SELECT count(*) AS v FROM active WHERE {count_owner} AND owner = $2) owner_leases, \
              (SELECT count(*) AS leases, COALESCE(sum(nano_cpus), 0)::text AS cpus, \
                      COALESCE(sum(memory_mb), 0)::text AS memory \
               FROM active WHERE {sum_host}) host"
    )
}

/// Takes, until the transaction ends, the admission locks an insert of
/// `lease` checked against `admission` needs — the owner's if an owner
/// quota counts it, then the namespace's if a host limit is set — and
/// reads, under them, whether the id is taken and the figures the set
/// limits need.
///
/// One round trip: the statements are pipelined (sent together, run by
/// the server one after the other). Each statement of a READ COMMITTED
/// transaction reads its own snapshot, taken when it starts, so the reads
/// see every insert committed before the locks were granted.
pub(crate) async fn locked_insert_figures(
    client: &impl GenericClient,
    locks: &AdmissionLocks,
    lease: &Lease,
    admission: &Admission,
) -> Result<InsertFigures, StoreError> {
    const OPERATION: &str = "check an insert's admission";
    let counts_spend = admission.max_daily_spend.is_some() && admission.counts_today(lease);
    let owner_quota = admission.max_leases_per_owner.is_some() || counts_spend;
    let host_limit = has_host_limit(admission);
    let count_owner = admission.max_leases_per_owner.is_some();
    // Prepared once per connection; afterwards from the cache, no round trip.
    let lock_statement = client
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await
        .during(OPERATION)?;
    let figures_statement = client
        .prepare_cached(&insert_figures_sql(count_owner, host_limit))
        .await
        .during(OPERATION)?;
    let spend_statement = client
        .prepare_cached(&spend_sql())
        .await
        .during(OPERATION)?;
    let (owner_key, host_key) = (locks.owner(&lease.owner), locks.host);
    let day_start = codec::saturating_nanos(admission.day_start);
    // Polled in this order, so sent (and run) in this order.
    let take_lock = |wanted: bool, key: i64| {
        let statement = &lock_statement;
        async move {
            if wanted {
                client.execute(statement, &[&key]).await.map(drop)
            } else {
                Ok(())
            }
        }
    };
    let (owner_lock, host_lock) = (
        take_lock(owner_quota, owner_key),
        take_lock(host_limit, host_key),
    );
    let id = lease.id.as_str();
    let figures_values: [&(dyn ToSql + Sync); 2] = [&id, &lease.owner];
    let figures = client.query_one(&figures_statement, &figures_values);
    let spend_values: [&(dyn ToSql + Sync); 2] = [&lease.owner, &day_start];
    let spend = async {
        if counts_spend {
            client
                .query(&spend_statement, &spend_values)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let ((), (), figures, spend) =
        tokio::try_join!(owner_lock, host_lock, figures, spend).during(OPERATION)?;
    let owner_spend_today = match spend {
        Some(rows) => codec::leases(&rows)?.iter().map(Lease::charge).sum(),
        None => Money::ZERO,
    };
    let count = |index: usize| -> Result<u64, StoreError> {
        let count: i64 = figures.try_get(index).during(OPERATION)?;
        Ok(u64::try_from(count).unwrap_or(0))
    };
    let narrow = |index: usize| -> Result<i64, StoreError> {
        let text: String = figures.try_get(index).during(OPERATION)?;
        text.parse().map_err(|_| StoreError::Other {
            operation: OPERATION.to_owned(),
            source: format!("the host's total {text} does not fit 64 bits").into(),
        })
    };
    Ok(InsertFigures {
        taken: figures.try_get(0).during(OPERATION)?,
        usage: AdmissionUsage {
            owner_leases: count(1)?,
            owner_spend_today,
            leases: count(2)?,
            nano_cpus: narrow(3)?,
            memory_mb: u64::try_from(narrow(4)?).unwrap_or(0),
        },
    })
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

/// Σ [`Lease::charge`] over the owner's active and finished leases created
/// at or after the admission's day start, in exact money from the rows.
async fn spend_since(
    client: &impl GenericClient,
    owner: &str,
    admission: &Admission,
) -> Result<Money, StoreError> {
    let start = codec::saturating_nanos(admission.day_start);
    let values: [Param; 2] = [Box::new(owner.to_owned()), Box::new(start)];
    let leases = select(client, &spend_sql(), &values, "sum an owner's spend today").await?;
    Ok(leases.iter().map(Lease::charge).sum())
}

/// The owner's (`$1`) active and finished leases created at or after `$2`
/// (nanoseconds): what [`Lease::charge`] sums to the spend today.
fn spend_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM active WHERE owner = $1 AND created_at >= $2 \
         UNION ALL SELECT {COLUMNS} FROM finished WHERE owner = $1 AND created_at >= $2"
    )
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
