//! Finishing leases: history (kept for the retention), usage totals and
//! the daily statistics rollup (both kept forever).
//!
//! Retention is counted back from the system clock: a finished lease that
//! ended before `now - retention` is gone, for `get` as for `history`. Reads
//! filter on that cutoff; `finish` also deletes what fell out of it.

use chrono::NaiveDate;
use lease_core::stats::{StatsKey, StatsRow, finish_contribution};
use lease_core::store::{HistoryQuery, Page, UsageTotals};
use lease_core::{Lease, Money, StoreError};
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use crate::active::{check_revision, page, select};
use crate::codec::{self, COLUMNS, PLACEHOLDERS};
use crate::error::During;
use lease_core::cursor;

/// Moves `lease` from the active table into history, adds its final cost
/// to its owner's totals and its contribution to the daily statistics, and
/// drops history older than `cutoff`: all or nothing (one savepoint of the
/// writer's transaction).
pub(crate) fn finish(
    transaction: &Connection,
    lease: &Lease,
    cutoff: i64,
) -> Result<Lease, StoreError> {
    const OPERATION: &str = "finish a lease";
    let stored = Lease {
        revision: lease.revision.saturating_add(1),
        ..lease.clone()
    };
    check_revision(transaction, lease, OPERATION)?;
    transaction
        .prepare_cached("DELETE FROM active WHERE id = ?1")
        .and_then(|mut statement| statement.execute([stored.id.as_str()]))
        .during(OPERATION)?;
    let mut values = codec::params(&stored, stored.revision).during(OPERATION)?;
    values.push(Box::new(codec::ended_nanos(&stored)));
    transaction
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO finished ({COLUMNS}, ended_key) VALUES ({PLACEHOLDERS}, ?21)"
        ))
        .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(values)))
        .during(OPERATION)?;

    let totals = usage(transaction, &stored.owner)?;
    // Summed here with Money's saturating addition: SQLite would turn an
    // overflowing integer sum into an inexact real.
    let cost = totals.ended_cost + stored.final_cost.unwrap_or_default();
    let count = i64::try_from(totals.ended_count.saturating_add(1)).unwrap_or(i64::MAX);
    transaction
        .prepare_cached(
            "INSERT INTO usage (owner, ended_count, ended_cost) VALUES (?1, ?2, ?3) \
             ON CONFLICT (owner) DO UPDATE SET ended_count = ?2, ended_cost = ?3",
        )
        .and_then(|mut statement| statement.execute(params![stored.owner, count, cost.nanos()]))
        .during(OPERATION)?;
    add_stats(transaction, &finish_contribution(&stored))?;

    transaction
        .prepare_cached("DELETE FROM finished WHERE ended_key < ?1")
        .and_then(|mut statement| statement.execute([cutoff]))
        .during(OPERATION)?;
    Ok(stored)
}

/// Finished leases that ended at or after `cutoff`, newest first (ties by
/// id, descending: the exact reverse of `(ended_at, id)`), paged.
pub(crate) fn history(
    connection: &Connection,
    query: &HistoryQuery,
    cutoff: i64,
) -> Result<Page<Lease>, StoreError> {
    let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = query.effective_limit();
    let mut values: Vec<Box<dyn ToSql>> = vec![Box::new(cutoff)];
    let mut sql = format!("SELECT {COLUMNS} FROM finished WHERE ended_key >= ?1");
    if let Some(owner) = &query.owner {
        values.push(Box::new(owner.clone()));
        sql.push_str(&format!(" AND owner = ?{}", values.len()));
    }
    if let Some((at, id)) = after {
        values.push(Box::new(at));
        values.push(Box::new(id.as_str().to_owned()));
        let (at, id) = (values.len() - 1, values.len());
        sql.push_str(&format!(
            " AND (ended_key < ?{at} OR (ended_key = ?{at} AND id < ?{id}))"
        ));
    }
    values.push(Box::new(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    sql.push_str(&format!(
        " ORDER BY ended_key DESC, id DESC LIMIT ?{}",
        values.len()
    ));
    let items = select(connection, &sql, values, "list history")?;
    Ok(page(items, limit, |lease| {
        cursor::encode(codec::ended_nanos(lease), &lease.id)
    }))
}

/// Adds each counter of `row` to its stored value (inserting it at 0).
fn add_stats(transaction: &Connection, row: &StatsRow) -> Result<(), StoreError> {
    const OPERATION: &str = "add to the daily statistics";
    let mut statement = transaction
        .prepare_cached(
            "INSERT INTO daily_stats (day, owner, offering, name, value) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (day, owner, offering, name) DO UPDATE SET value = value + excluded.value",
        )
        .during(OPERATION)?;
    let day = row.key.day.to_string();
    for (name, value) in &row.counters {
        statement
            .execute(params![day, row.key.owner, row.key.offering, name, value])
            .during(OPERATION)?;
    }
    Ok(())
}

/// The daily statistics rows of the days `from..=to` (already checked): a
/// range of the primary key, one row per (day, owner, offering).
pub(crate) fn daily_stats(
    connection: &Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<StatsRow>, StoreError> {
    const OPERATION: &str = "read the daily statistics";
    let mut statement = connection
        .prepare_cached(
            "SELECT day, owner, offering, name, value FROM daily_stats \
             WHERE day >= ?1 AND day <= ?2 ORDER BY day, owner, offering, name",
        )
        .during(OPERATION)?;
    let cells = statement
        .query_map(params![from.to_string(), to.to_string()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .during(OPERATION)?;
    let mut rows: Vec<StatsRow> = Vec::new();
    for cell in cells {
        let (day, owner, offering, name, value) = cell.during(OPERATION)?;
        let day: NaiveDate = day.parse().map_err(|error| StoreError::Corrupt {
            key: format!("daily_stats day `{day}`"),
            source: Box::new(error),
        })?;
        match rows.last_mut() {
            Some(row)
                if row.key.day == day && row.key.owner == owner && row.key.offering == offering =>
            {
                row.add(&name, value);
            }
            _ => {
                let mut row = StatsRow::new(StatsKey {
                    day,
                    owner,
                    offering,
                });
                row.add(&name, value);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

pub(crate) fn usage(connection: &Connection, owner: &str) -> Result<UsageTotals, StoreError> {
    let totals: Option<(i64, i64)> = connection
        .prepare_cached("SELECT ended_count, ended_cost FROM usage WHERE owner = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([owner], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .during("read usage")?;
    Ok(match totals {
        Some((count, cost)) => UsageTotals {
            ended_count: u64::try_from(count).unwrap_or(0),
            ended_cost: Money::from_nanos(cost),
        },
        None => UsageTotals::default(),
    })
}
