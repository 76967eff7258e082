//! Finishing leases: history (kept for the retention), usage totals and
//! the daily statistics rollup (both kept forever).
//!
//! Retention is counted back from the system clock: a finished lease that
//! ended before `now - retention` is gone, for `get` as for `history`. Reads
//! filter on that cutoff; `finish` also deletes what fell out of it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use lease_core::stats::{self, Span, StatsKey, StatsRow, finish_contribution};
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

/// Adds a finished lease's contribution to the rollup: every counter to
/// its day totals, the share counters to its owner's and offering's row of
/// each span holding the day (inserting at 0).
fn add_stats(transaction: &Connection, row: &StatsRow) -> Result<(), StoreError> {
    const OPERATION: &str = "add to the daily statistics";
    let mut totals = transaction
        .prepare_cached(
            "INSERT INTO stats_days (day, name, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (day, name) DO UPDATE SET value = value + excluded.value",
        )
        .during(OPERATION)?;
    let day = row.key.day.to_string();
    for (name, value) in &row.counters {
        totals
            .execute(params![day, name, value])
            .during(OPERATION)?;
    }
    let mut shares = transaction
        .prepare_cached(
            "INSERT INTO stats_shares (level, start, owner, offering, name, value) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (level, start, owner, offering, name) \
             DO UPDATE SET value = value + excluded.value",
        )
        .during(OPERATION)?;
    let share = stats::share_of(row);
    for span in stats::spans_of(row.key.day) {
        let start = span.start.to_string();
        for (name, value) in &share.counters {
            shares
                .execute(params![
                    span.level,
                    start,
                    row.key.owner,
                    row.key.offering,
                    name,
                    value
                ])
                .during(OPERATION)?;
        }
    }
    Ok(())
}

/// A stored day, or [`StoreError::Corrupt`].
fn parse_day(table: &str, day: &str) -> Result<NaiveDate, StoreError> {
    day.parse().map_err(|error| StoreError::Corrupt {
        key: format!("{table} day `{day}`"),
        source: Box::new(error),
    })
}

/// The day totals of the days `from..=to` (already checked): a range of
/// the primary key, one row per day.
pub(crate) fn daily_stats(
    connection: &Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<StatsRow>, StoreError> {
    const OPERATION: &str = "read the daily statistics";
    let mut statement = connection
        .prepare_cached(
            "SELECT day, name, value FROM stats_days \
             WHERE day >= ?1 AND day <= ?2 ORDER BY day, name",
        )
        .during(OPERATION)?;
    let cells = statement
        .query_map(params![from.to_string(), to.to_string()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .during(OPERATION)?;
    let mut rows: Vec<StatsRow> = Vec::new();
    for cell in cells {
        let (day, name, value) = cell.during(OPERATION)?;
        let day = parse_day("stats_days", &day)?;
        match rows.last_mut() {
            Some(row) if row.key.day == day => row.add(&name, value),
            _ => {
                let mut row = StatsRow::new(StatsKey::totals(day));
                row.add(&name, value);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The share counters of `from..=to` (already checked) per owner and
/// offering: one primary-key range per span covering the window, summed.
pub(crate) fn share_stats(
    connection: &Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<StatsRow>, StoreError> {
    const OPERATION: &str = "read the statistics shares";
    let mut statement = connection
        .prepare_cached(
            "SELECT owner, offering, name, value FROM stats_shares \
             WHERE level = ?1 AND start = ?2",
        )
        .during(OPERATION)?;
    let mut sums: BTreeMap<(String, String), StatsRow> = BTreeMap::new();
    for Span { level, start } in stats::cover(from, to) {
        let cells = statement
            .query_map(params![level, start.to_string()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .during(OPERATION)?;
        for cell in cells {
            let (owner, offering, name, value) = cell.during(OPERATION)?;
            sums.entry((owner, offering))
                .or_insert_with_key(|(owner, offering)| {
                    StatsRow::new(StatsKey {
                        day: from,
                        owner: owner.clone(),
                        offering: offering.clone(),
                    })
                })
                .add(&name, value);
        }
    }
    Ok(sums.into_values().collect())
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
