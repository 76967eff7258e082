//! Finishing leases: history (kept for the retention) and usage totals
//! (kept forever).
//!
//! Retention is counted back from the database's clock: a finished lease
//! that ended before `now - retention` is gone, for `get` as for `history`
//! (reads filter on that cutoff at once); the rows themselves are deleted
//! lazily, at most once a minute per store, after a finish.

use deadpool_postgres::GenericClient;
use lease_core::stats::{
    self, Span, StatsKey, StatsRow, check_range, finish_contribution, share_of, spans_of,
};
use lease_core::store::{HistoryQuery, Page, UsageTotals};
use lease_core::{Lease, Money, StoreError, cursor};

use crate::active::{Filtered, cas_failure, page, select};
use crate::codec::{self, COLUMNS, NOW_NANOS, PLACEHOLDERS, refs};
use crate::error::During;

/// The finish statement: one statement, so all or nothing. `$1`… the
/// lease's values, `$21` its history key, `$22` the expected revision,
/// `$23` the stats day, `$24`/`$25` the counter names and values, `$26`/`$27`
/// the levels and starts of the spans holding the day, `$28`/`$29` the share
/// counters' names and values. Deletes the active row at that revision and,
/// only if it did, writes the history row, adds to the owner's totals
/// (saturating), to the day totals row and to the share rows of the lease's
/// owner and offering in each span (`value + excluded.value`). Returns how
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
        "WITH gone AS (DELETE FROM active WHERE id = $1 AND revision = $22 RETURNING id), \
         kept AS (INSERT INTO finished ({COLUMNS}, ended_key) \
                  SELECT {PLACEHOLDERS}, $21 FROM gone \
                  ON CONFLICT (id) DO UPDATE SET {}), \
         totals AS (INSERT INTO usage (owner, ended_count, ended_cost) \
                  SELECT $2, 1, COALESCE($12, 0) FROM gone \
                  ON CONFLICT (owner) DO UPDATE SET \
                  ended_count = usage.ended_count + 1, \
                  ended_cost = LEAST(GREATEST(usage.ended_cost::numeric + excluded.ended_cost, \
                      -9223372036854775808), 9223372036854775807)::bigint), \
         day_totals AS (INSERT INTO stats_days (day, name, value) \
                  SELECT CAST($23::text AS date), counter.name, counter.value \
                  FROM gone, unnest($24::text[], $25::bigint[]) AS counter (name, value) \
                  ON CONFLICT (day, name) DO UPDATE SET \
                  value = stats_days.value + excluded.value), \
         shares AS (INSERT INTO stats_shares (level, start, owner, offering, name, value) \
                  SELECT span.level, CAST(span.start AS date), $2, $3, share.name, share.value \
                  FROM gone, unnest($26::int[], $27::text[]) AS span (level, start), \
                  unnest($28::text[], $29::bigint[]) AS share (name, value) \
                  ON CONFLICT (level, start, owner, offering, name) DO UPDATE SET \
                  value = stats_shares.value + excluded.value) \
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
    let (stored, mut values) = codec::cas_values(lease, codec::ended_nanos, OPERATION)?;
    let contribution = finish_contribution(lease);
    let share = share_of(&contribution);
    let (levels, starts): (Vec<i32>, Vec<String>) = spans_of(contribution.key.day)
        .into_iter()
        .map(|span| {
            (
                i32::try_from(span.level).unwrap_or(i32::MAX),
                span.start.to_string(),
            )
        })
        .unzip();
    let (share_names, share_counts): (Vec<String>, Vec<i64>) = share.counters.into_iter().unzip();
    let (names, counts): (Vec<String>, Vec<i64>) = contribution.counters.into_iter().unzip();
    values.push(Box::new(contribution.key.day.to_string()));
    values.push(Box::new(names));
    values.push(Box::new(counts));
    values.push(Box::new(levels));
    values.push(Box::new(starts));
    values.push(Box::new(share_names));
    values.push(Box::new(share_counts));
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

/// A stored day as a date, or [`StoreError::Corrupt`].
fn parse_day(table: &str, day: &str) -> Result<chrono::NaiveDate, StoreError> {
    day.parse().map_err(|_| StoreError::Corrupt {
        key: format!("{table} day {day}"),
        source: "not a date".into(),
    })
}

/// The day totals of days `from..=to` (checked first: at most
/// `MAX_DAYS`), one row per day, oldest first.
pub(crate) async fn daily_stats(
    client: &impl GenericClient,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Vec<StatsRow>, StoreError> {
    const OPERATION: &str = "read daily statistics";
    check_range(from, to)?;
    let statement = client
        .prepare_cached(
            "SELECT day::text, name, value FROM stats_days \
             WHERE day BETWEEN CAST($1::text AS date) AND CAST($2::text AS date) \
             ORDER BY day, name",
        )
        .await
        .during(OPERATION)?;
    let rows = client
        .query(&statement, &[&from.to_string(), &to.to_string()])
        .await
        .during(OPERATION)?;
    let mut out: Vec<StatsRow> = Vec::new();
    for row in &rows {
        let day: String = row.try_get(0).during(OPERATION)?;
        let day = parse_day("stats_days", &day)?;
        let name: String = row.try_get(1).during(OPERATION)?;
        let value: i64 = row.try_get(2).during(OPERATION)?;
        match out.last_mut() {
            Some(last) if last.key.day == day => last.add(&name, value),
            _ => {
                let mut fresh = StatsRow::new(StatsKey::totals(day));
                fresh.add(&name, value);
                out.push(fresh);
            }
        }
    }
    Ok(out)
}

/// The share counters of `from..=to` (checked first) per owner and
/// offering: the rows of the spans covering the window (one primary-key
/// lookup per span, in one statement), summed exactly here.
pub(crate) async fn share_stats(
    client: &impl GenericClient,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Vec<StatsRow>, StoreError> {
    const OPERATION: &str = "read the statistics shares";
    check_range(from, to)?;
    let (levels, starts): (Vec<i32>, Vec<String>) = stats::cover(from, to)
        .into_iter()
        .map(|Span { level, start }| (i32::try_from(level).unwrap_or(i32::MAX), start.to_string()))
        .unzip();
    let statement = client
        .prepare_cached(
            "SELECT s.owner, s.offering, s.name, s.value FROM stats_shares s \
             JOIN unnest($1::int[], $2::text[]) AS span (level, start) \
             ON s.level = span.level AND s.start = CAST(span.start AS date)",
        )
        .await
        .during(OPERATION)?;
    let rows = client
        .query(&statement, &[&levels, &starts])
        .await
        .during(OPERATION)?;
    let mut shares = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut share = StatsRow::new(StatsKey {
            day: from,
            owner: row.try_get(0).during(OPERATION)?,
            offering: row.try_get(1).during(OPERATION)?,
        });
        let name: String = row.try_get(2).during(OPERATION)?;
        share.add(&name, row.try_get(3).during(OPERATION)?);
        shares.push(share);
    }
    Ok(stats::sum_shares(from, shares))
}
