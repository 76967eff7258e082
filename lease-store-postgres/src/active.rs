//! Active leases: insert, compare-and-set, listing, claims.
//!
//! The usual writes are one statement each (PostgreSQL makes each atomic);
//! writes with an admission limit to check run in a transaction that first
//! takes the admission locks the limits need (see [`crate::admission`]): an
//! insert's is two round trips (begin, the locks and every figure,
//! pipelined; then the insert and commit, pipelined).

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Object};
use lease_core::store::{ListQuery, Page};
use lease_core::{Admission, Lease, LeaseId, StoreError, cursor};

use crate::admission::AdmissionLocks;
use crate::codec::{self, COLUMNS, NOW_NANOS, PARAMS, PLACEHOLDERS, Param, refs};
use crate::error::{During, is_unique_violation, store_error};
use crate::open_transaction::OpenTransaction;

/// Inserts `lease` (with revision 1) unless its id is taken, active or in
/// history; with a limited `admission`, only if it lets the lease in,
/// checked under the admission locks in the same transaction.
pub(crate) async fn insert(
    client: Object,
    locks: &AdmissionLocks,
    lease: &Lease,
    admission: &Admission,
) -> Result<Lease, StoreError> {
    let stored = Lease {
        revision: 1,
        ..lease.clone()
    };
    let mut values = codec::params(&stored, 1, INSERT)?;
    values.push(Box::new(codec::due_nanos(&stored)));
    let sql = format!(
        "INSERT INTO active ({COLUMNS}, due_at, claimed_until) \
         SELECT {PLACEHOLDERS}, $21, NULL \
         WHERE NOT EXISTS (SELECT 1 FROM finished WHERE id = $1)"
    );
    if !admission.is_limited() {
        return insert_row(&client, &sql, &values, stored).await;
    }
    // Two round trips: `BEGIN` with the locks and figures, then the
    // insert with `COMMIT` (or a `ROLLBACK` when refused).
    let open = OpenTransaction::new(client);
    let (_, figures) = tokio::try_join!(
        async { open.client().batch_execute("BEGIN").await.during(INSERT) },
        crate::admission::locked_insert_figures(open.client(), locks, &stored, admission),
    )?;
    let refusal = if figures.taken {
        Err(StoreError::AlreadyExists(stored.id.clone()))
    } else {
        admission.check(&figures.usage, &stored)
    };
    if let Err(refusal) = refusal {
        open.client()
            .batch_execute("ROLLBACK")
            .await
            .during(INSERT)?;
        open.ended();
        return Err(refusal);
    }
    let statement = open.client().prepare_cached(&sql).await.during(INSERT)?;
    let params = refs(&values);
    let (inserted, committed) = tokio::join!(
        open.client().execute(&statement, &params),
        open.client().batch_execute("COMMIT"),
    );
    // A failed insert aborts the transaction: `COMMIT` then rolls it back
    // (and succeeds), so the connection is clean either way.
    committed.during(INSERT)?;
    open.ended();
    inserted_or_taken(inserted, stored)
}

/// What an insert statement's outcome means.
fn inserted_or_taken(
    outcome: Result<u64, tokio_postgres::Error>,
    stored: Lease,
) -> Result<Lease, StoreError> {
    match outcome {
        Ok(1) => Ok(stored),
        Ok(_) => Err(StoreError::AlreadyExists(stored.id)),
        Err(error) if is_unique_violation(&error) => Err(StoreError::AlreadyExists(stored.id)),
        Err(error) => Err(store_error(INSERT, error)),
    }
}

/// The operation named in an insert's errors.
const INSERT: &str = "insert a lease";

/// Runs the insert statement; a taken id is [`StoreError::AlreadyExists`].
async fn insert_row(
    client: &impl GenericClient,
    sql: &str,
    values: &[Param],
    stored: Lease,
) -> Result<Lease, StoreError> {
    let statement = client.prepare_cached(sql).await.during(INSERT)?;
    inserted_or_taken(client.execute(&statement, &refs(values)).await, stored)
}

/// The active lease `id`, or else a finished one that ended within the
/// retention (`retention` nanoseconds before the database's now): one
/// statement, so one snapshot.
pub(crate) async fn get(
    client: &impl GenericClient,
    id: &LeaseId,
    retention: i64,
) -> Result<Lease, StoreError> {
    const OPERATION: &str = "get a lease";
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM active WHERE id = $1 \
             UNION ALL SELECT {COLUMNS} FROM finished \
             WHERE id = $1 AND ended_key >= {NOW_NANOS} - $2 \
             LIMIT 1"
        ))
        .await
        .during(OPERATION)?;
    let row = client
        .query_opt(&statement, &[&id.as_str(), &retention])
        .await
        .during(OPERATION)?;
    match row {
        Some(row) => codec::from_row(&row),
        None => Err(StoreError::NotFound(id.clone())),
    }
}

/// `NotFound` if the lease is not active, else `Conflict`: why a
/// compare-and-set of `lease` changed nothing.
pub(crate) async fn cas_failure(
    client: &impl GenericClient,
    lease: &Lease,
    operation: &'static str,
) -> StoreError {
    let found = match client
        .prepare_cached("SELECT 1 FROM active WHERE id = $1")
        .await
    {
        Ok(statement) => client.query_opt(&statement, &[&lease.id.as_str()]).await,
        Err(error) => Err(error),
    };
    match found {
        Ok(None) => StoreError::NotFound(lease.id.clone()),
        Ok(Some(_)) => StoreError::Conflict {
            id: lease.id.clone(),
            expected: lease.revision,
        },
        Err(error) => store_error(operation, error),
    }
}

/// The compare-and-set statement: `$1`… the new values, `$21` the due
/// time, `$22` the expected revision. The claim (`claimed_until`) stays:
/// the lease is claimable at max(due time, claim end). Values equal to the
/// stored ones leave their indexes alone, so an update that changes no
/// indexed column (owner, status, created or due time) is written in place.
fn update_sql() -> String {
    let sets: Vec<String> = COLUMNS
        .split(',')
        .map(str::trim)
        .enumerate()
        .skip(1)
        .map(|(index, column)| format!("{column} = ${}", index + 1))
        .collect();
    format!(
        "UPDATE active SET {}, due_at = $21 WHERE id = $1 AND revision = $22",
        sets.join(", ")
    )
}

/// Compare-and-set of the active lease; with a daily spend limit that
/// counts it, refused if it raises the charge over the limit (checked
/// under the owner's admission lock in the same transaction).
pub(crate) async fn update(
    client: &mut Object,
    locks: &AdmissionLocks,
    lease: &Lease,
    admission: &Admission,
) -> Result<Lease, StoreError> {
    const OPERATION: &str = "update a lease";
    let (stored, values) = codec::cas_values(lease, codec::due_nanos, OPERATION)?;
    debug_assert_eq!(values.len(), PARAMS + 2);
    let sql = update_sql();
    if admission.max_daily_spend.is_none() || !admission.counts_today(lease) {
        return update_row(&*client, &sql, &values, lease, stored).await;
    }
    let transaction = client.transaction().await.during(OPERATION)?;
    locks.for_update(&transaction, lease).await?;
    crate::admission::check_update(&transaction, lease, admission).await?;
    let stored = update_row(&transaction, &sql, &values, lease, stored).await?;
    transaction.commit().await.during(OPERATION)?;
    Ok(stored)
}

/// Compare-and-set of `lease` within a caller's transaction, without
/// admission checks (a warm-pool take: the lease was admitted at insert).
pub(crate) async fn update_in(
    client: &impl GenericClient,
    lease: &Lease,
) -> Result<Lease, StoreError> {
    let (stored, values) = codec::cas_values(lease, codec::due_nanos, "update a lease")?;
    update_row(client, &update_sql(), &values, lease, stored).await
}

async fn update_row(
    client: &impl GenericClient,
    sql: &str,
    values: &[Param],
    lease: &Lease,
    stored: Lease,
) -> Result<Lease, StoreError> {
    const OPERATION: &str = "update a lease";
    let statement = client.prepare_cached(sql).await.during(OPERATION)?;
    let changed = client
        .execute(&statement, &refs(values))
        .await
        .during(OPERATION)?;
    if changed == 1 {
        Ok(stored)
    } else {
        Err(cas_failure(client, lease, OPERATION).await)
    }
}

/// Active leases, filtered and paged: oldest `created_at` first, ties by id.
pub(crate) async fn list(
    client: &impl GenericClient,
    query: &ListQuery,
) -> Result<Page<Lease>, StoreError> {
    const OPERATION: &str = "list leases";
    let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = query.effective_limit();
    let mut filtered = Filtered::new(
        format!("SELECT {COLUMNS} FROM active WHERE true"),
        Vec::new(),
    );
    filtered.owner(query.owner.as_deref());
    filtered.after("created_at", ">", after);
    let Filtered {
        mut sql,
        mut values,
    } = filtered;
    if !query.statuses.is_empty() {
        let names: Vec<String> = query
            .statuses
            .iter()
            .map(|status| status.as_str().to_owned())
            .collect();
        values.push(Box::new(names));
        sql.push_str(&format!(" AND status = ANY(${})", values.len()));
    }
    // One more than a page, to know whether another page follows.
    values.push(Box::new(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" ORDER BY created_at, id LIMIT ${}", values.len()));
    let items = select(client, &sql, &values, OPERATION).await?;
    Ok(page(items, limit, |lease| {
        cursor::encode(codec::saturating_nanos(lease.created_at), &lease.id)
    }))
}

/// A `SELECT … WHERE …` being built, with the values it binds.
pub(crate) struct Filtered {
    /// The statement so far.
    pub(crate) sql: String,
    /// The values of its `$n` placeholders, in order.
    pub(crate) values: Vec<Param>,
}

impl Filtered {
    /// Starts from `sql` (ending in a `WHERE` condition) binding `values`.
    pub(crate) fn new(sql: String, values: Vec<Param>) -> Filtered {
        Filtered { sql, values }
    }

    /// `AND owner = $n` when an owner is given.
    pub(crate) fn owner(&mut self, owner: Option<&str>) {
        if let Some(owner) = owner {
            self.values.push(Box::new(owner.to_owned()));
            self.sql
                .push_str(&format!(" AND owner = ${}", self.values.len()));
        }
    }

    /// `AND (column, id) <op> ($a, $b)` after a page cursor's key.
    pub(crate) fn after(&mut self, column: &str, op: &str, after: Option<(i64, LeaseId)>) {
        if let Some((at, id)) = after {
            self.values.push(Box::new(at));
            self.values.push(Box::new(id.as_str().to_owned()));
            let (at, id) = (self.values.len() - 1, self.values.len());
            self.sql
                .push_str(&format!(" AND ({column}, id) {op} (${at}, ${id})"));
        }
    }
}

/// The leases a `SELECT {COLUMNS} …` with these values returns.
pub(crate) async fn select(
    client: &impl GenericClient,
    sql: &str,
    values: &[Param],
    operation: &'static str,
) -> Result<Vec<Lease>, StoreError> {
    let statement = client.prepare_cached(sql).await.during(operation)?;
    let rows = client
        .query(&statement, &refs(values))
        .await
        .during(operation)?;
    codec::leases(&rows)
}

/// The first `limit` of `items` (which may hold one more), with a cursor
/// made by `key` from the last item when more follow.
pub(crate) fn page(
    mut items: Vec<Lease>,
    limit: usize,
    key: impl Fn(&Lease) -> String,
) -> Page<Lease> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more { items.last().map(key) } else { None };
    Page { items, next_cursor }
}

/// The claim statement (without its `RETURNING`): `$1` leases at most,
/// each for `$2` nanoseconds.
///
/// Its shape keeps the plan right whatever the plan cache does:
/// - the clock is read once (`clock`, materialized) and compared as a
///   scalar (`(SELECT now FROM clock)`), so `due_at <= now` bounds the
///   index scan. Joined as a table, it was a filter applied after the scan:
///   with nothing due, every claim (the reaper runs one after each
///   provision) read the whole index, 80 ms among 100,000 leases;
/// - the claimed ids come back as an array (`id = ANY(ARRAY(…))`), found by
///   the primary key: joined as a table with an unknown `LIMIT $1`, a
///   generic plan could hash the whole table to find them.
fn claim_sql() -> String {
    format!(
        "WITH clock AS MATERIALIZED (SELECT {NOW_NANOS} AS now) \
         UPDATE active SET claimed_until = \
             (SELECT LEAST(now::numeric + $2::bigint, 9223372036854775807)::bigint FROM clock) \
         WHERE id = ANY(ARRAY( \
             SELECT id FROM active \
             WHERE due_at <= (SELECT now FROM clock) \
               AND (claimed_until IS NULL OR claimed_until <= (SELECT now FROM clock)) \
             ORDER BY due_at LIMIT $1 \
             FOR UPDATE SKIP LOCKED))"
    )
}

/// Claims up to `limit` leases claimable by the database's clock (due, and
/// no claim running: max(`due_at`, `claimed_until`) ≤ now), each for `ttl`
/// nanoseconds: rows another claimer holds locked are skipped (`FOR UPDATE
/// SKIP LOCKED`), and a row claimed meanwhile is checked again, so each due
/// lease goes to one claimer. Earliest due first.
///
/// The scan walks `active_by_due` from the earliest due time, passing over
/// leases whose claim still runs (the ones being reaped); the update sets
/// only `claimed_until`, which no index holds, so each claimed row is
/// rewritten in place on its page (a HOT update) and no index changes.
pub(crate) async fn claim(
    client: &impl GenericClient,
    limit: usize,
    ttl: i64,
) -> Result<Vec<Lease>, StoreError> {
    const OPERATION: &str = "claim due leases";
    if limit == 0 {
        return Ok(Vec::new());
    }
    let statement = client
        .prepare_cached(&format!("{} RETURNING {COLUMNS}", claim_sql()))
        .await
        .during(OPERATION)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&statement, &[&limit, &ttl])
        .await
        .during(OPERATION)?;
    let mut claimed = codec::leases(&rows)?;
    claimed.sort_by(|a, b| (a.due_at(), &a.id).cmp(&(b.due_at(), &b.id)));
    Ok(claimed)
}

/// Gives up a claim: claimable again at `retry_at` (nanoseconds) or its
/// due time, whichever is later (claims compare both). An in-place update.
pub(crate) async fn release(
    client: &impl GenericClient,
    id: &LeaseId,
    retry_at: i64,
) -> Result<(), StoreError> {
    const OPERATION: &str = "release a claim";
    let statement = client
        .prepare_cached("UPDATE active SET claimed_until = $2 WHERE id = $1")
        .await
        .during(OPERATION)?;
    let changed = client
        .execute(&statement, &[&id.as_str(), &retry_at])
        .await
        .during(OPERATION)?;
    if changed == 0 {
        return Err(StoreError::NotFound(id.clone()));
    }
    Ok(())
}

/// The earliest moment an active lease becomes claimable: the least
/// max(`due_at`, `claimed_until`), from `active_by_due`.
///
/// `first` is the earliest due lease whose claim (if any) ends by its due
/// time: it is claimable at its due time. A lease due before it is
/// claimable when its claim ends, so the least of those claim ends is the
/// other candidate; a lease due at or after `first`'s due time cannot come
/// earlier. Both read the index from its start up to `first`: past the
/// leases being reaped, and no further.
const NEXT_DUE: &str = "\
    WITH first AS (SELECT due_at FROM active \
                   WHERE claimed_until IS NULL OR claimed_until <= due_at \
                   ORDER BY due_at LIMIT 1) \
    SELECT LEAST((SELECT due_at FROM first), \
                 (SELECT min(claimed_until) FROM active \
                  WHERE claimed_until > due_at \
                    AND due_at < COALESCE((SELECT due_at FROM first), 9223372036854775807)))";

/// The earliest moment an active lease becomes claimable (see [`NEXT_DUE`]).
pub(crate) async fn next_due(
    client: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    const OPERATION: &str = "find the next due lease";
    let statement = client.prepare_cached(NEXT_DUE).await.during(OPERATION)?;
    let row = client.query_one(&statement, &[]).await.during(OPERATION)?;
    let earliest: Option<i64> = row.try_get(0).during(OPERATION)?;
    Ok(earliest.map(codec::time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_update_sets_every_column_but_the_id() {
        let sql = update_sql();
        assert!(
            sql.starts_with("UPDATE active SET owner = $2, offering = $3,"),
            "{sql}"
        );
        assert!(sql.contains("finished_at = $20, due_at = $21"), "{sql}");
        assert!(!sql.contains("id = $1,"), "{sql}");
    }
}
