//! Finishing leases: history (kept for the retention) and usage totals
//! (kept forever).
//!
//! Retention is counted back from the database's clock: a finished lease
//! that ended before `now - retention` is gone, for `get` as for `history`
//! (reads filter on that cutoff at once); the rows themselves are deleted
//! lazily, at most once a minute per store, after a finish.

use deadpool_postgres::GenericClient;
use lease_core::store::{HistoryQuery, Page, UsageTotals};
use lease_core::{Lease, Money, StoreError, cursor};

use crate::active::{Filtered, cas_failure, page, select};
use crate::codec::{self, COLUMNS, NOW_NANOS, PLACEHOLDERS, refs};
use crate::error::During;

/// The finish statement: one statement, so all or nothing. `$1`… the
/// lease's values, `$19` its history key, `$20` the expected revision.
/// Deletes the active row at that revision and, only if it did, writes the
/// history row and adds to the owner's totals (saturating). Returns how
/// many active rows it deleted (0: the compare-and-set failed).
fn finish_sql() -> String {
    let replace: Vec<String> = COLUMNS
        .split(',')
        .map(str::trim)
        .skip(1)
        .chain(["ended_key"])
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    format!(
        "WITH gone AS (DELETE FROM active WHERE id = $1 AND revision = $20 RETURNING id), \
         kept AS (INSERT INTO finished ({COLUMNS}, ended_key) \
                  SELECT {PLACEHOLDERS}, $19 FROM gone \
                  ON CONFLICT (id) DO UPDATE SET {}), \
         totals AS (INSERT INTO usage (owner, ended_count, ended_cost) \
                  SELECT $2, 1, COALESCE($12, 0) FROM gone \
                  ON CONFLICT (owner) DO UPDATE SET \
                  ended_count = usage.ended_count + 1, \
                  ended_cost = LEAST(GREATEST(usage.ended_cost::numeric + excluded.ended_cost, \
                      -9223372036854775808), 9223372036854775807)::bigint) \
         SELECT count(*) FROM gone",
        replace.join(", ")
    )
}

/// Moves `lease` from the active table into history and adds its final
/// cost to its owner's totals, if its stored revision is `lease.revision`.
pub(crate) async fn finish(
    client: &impl GenericClient,
    lease: &Lease,
) -> Result<Lease, StoreError> {
    const OPERATION: &str = "finish a lease";
    let (stored, values) = codec::cas_values(lease, codec::ended_nanos, OPERATION)?;
    let statement = client
        .prepare_cached(&finish_sql())
        .await
        .during(OPERATION)?;
    let row = client
        .query_one(&statement, &refs(&values))
        .await
        .during(OPERATION)?;
    let finished: i64 = row.try_get(0).during(OPERATION)?;
    if finished == 1 {
        Ok(stored)
    } else {
        Err(cas_failure(client, lease, OPERATION).await)
    }
}

/// Deletes history that ended more than `retention` nanoseconds before the
/// database's now. How many.
pub(crate) async fn purge(client: &impl GenericClient, retention: i64) -> Result<u64, StoreError> {
    const OPERATION: &str = "purge old history";
    let statement = client
        .prepare_cached(&format!(
            "DELETE FROM finished WHERE ended_key < {NOW_NANOS} - $1"
        ))
        .await
        .during(OPERATION)?;
    client
        .execute(&statement, &[&retention])
        .await
        .during(OPERATION)
}

/// Finished leases that ended within the retention, newest first (ties by
/// id, descending: the exact reverse of `(ended_at, id)`), paged.
pub(crate) async fn history(
    client: &impl GenericClient,
    query: &HistoryQuery,
    retention: i64,
) -> Result<Page<Lease>, StoreError> {
    let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = query.effective_limit();
    let mut filtered = Filtered::new(
        format!("SELECT {COLUMNS} FROM finished WHERE ended_key >= {NOW_NANOS} - $1"),
        vec![Box::new(retention)],
    );
    filtered.owner(query.owner.as_deref());
    filtered.after("ended_key", "<", after);
    let Filtered {
        mut sql,
        mut values,
    } = filtered;
    values.push(Box::new(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    sql.push_str(&format!(
        " ORDER BY ended_key DESC, id DESC LIMIT ${}",
        values.len()
    ));
    let items = select(client, &sql, &values, "list history").await?;
    Ok(page(items, limit, |lease| {
        cursor::encode(codec::ended_nanos(lease), &lease.id)
    }))
}

/// The owner's totals of finished leases.
pub(crate) async fn usage(
    client: &impl GenericClient,
    owner: &str,
) -> Result<UsageTotals, StoreError> {
    const OPERATION: &str = "read usage";
    let statement = client
        .prepare_cached("SELECT ended_count, ended_cost FROM usage WHERE owner = $1")
        .await
        .during(OPERATION)?;
    let row = client
        .query_opt(&statement, &[&owner])
        .await
        .during(OPERATION)?;
    let Some(row) = row else {
        return Ok(UsageTotals::default());
    };
    let count: i64 = row.try_get(0).during(OPERATION)?;
    let cost: i64 = row.try_get(1).during(OPERATION)?;
    Ok(UsageTotals {
        ended_count: u64::try_from(count).unwrap_or(0),
        ended_cost: Money::from_nanos(cost),
    })
}
