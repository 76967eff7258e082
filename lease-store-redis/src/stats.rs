//! The statistics rollup on Redis (see `lease_core::stats`): one day totals
//! hash per UTC day of creation (`{p}:rollup:day:<day>`, counter → value)
//! and one share hash per span of days (`{p}:rollup:span:<level>:<start>`),
//! one field per (owner, offering, share counter) named
//! `<owner>\x1f<offering>\x1f<counter>`. `finish.lua` adds a finished
//! lease's counters with `HINCRBY` in the same script that moves it into
//! history. `daily_stats` reads one `HGETALL` per day, `share_stats` one per
//! covering span, pipelined: neither grows with the number of leases.
//!
//! Hashes of the layout before the split (`{p}:stats:<day>`, every counter
//! per owner and offering) are moved into this one once per store by
//! `split_stats.lua` (see `store/upgrade.rs`).
//!
//! The separator is the ASCII unit separator, which owners (checked by the
//! engine: no control characters), offering keys and counter names never
//! hold; a field is split at its first and last separator.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use lease_core::StoreError;
use lease_core::stats::{StatsKey, StatsRow, share_of};

use crate::error::{RedisStoreError, corrupt};

/// Between the owner, the offering and the counter name of a field.
const SEPARATOR: char = '\x1f';

/// The hash fields and increments of a finished lease's contribution, in
/// the order `finish.lua` takes them (field, value, field, value, …).
pub(crate) fn fields(row: &StatsRow) -> Vec<(String, i64)> {
    row.counters
        .iter()
        .map(|(name, value)| {
            let field = format!(
                "{owner}{SEPARATOR}{offering}{SEPARATOR}{name}",
                owner = row.key.owner,
                offering = row.key.offering
            );
            (field, *value)
        })
        .collect()
}

/// `finish.lua`'s statistics arguments: how many day totals pairs, the
/// day totals counters and increments, then the share fields and
/// increments (added to every span).
pub(crate) fn finish_args(row: &StatsRow) -> Vec<String> {
    let mut args = vec![row.counters.len().to_string()];
    for (name, value) in &row.counters {
        args.push(name.clone());
        args.push(value.to_string());
    }
    for (field, value) in fields(&share_of(row)) {
        args.push(field);
        args.push(value.to_string());
    }
    args
}

/// A counter value read from `key`, or [`StoreError::Corrupt`].
fn number(key: &str, value: &str) -> Result<i64, StoreError> {
    value.parse().map_err(|_| {
        corrupt(
            key.to_owned(),
            RedisStoreError::NotANumber(value.to_owned()),
        )
    })
}

/// The day totals row of `day` from its hash (read from `key`).
pub(crate) fn day_totals(
    key: &str,
    day: NaiveDate,
    hash: BTreeMap<String, String>,
) -> Result<StatsRow, StoreError> {
    let mut row = StatsRow::new(StatsKey::totals(day));
    for (name, value) in hash {
        row.add(&name, number(key, &value)?);
    }
    Ok(row)
}

/// The rows of one share hash (read from `key`), keyed by `day`, ordered by
/// owner and offering; [`StoreError::Corrupt`] for a field or value that is
/// not ours.
pub(crate) fn rows_of_hash(
    key: &str,
    day: NaiveDate,
    hash: BTreeMap<String, String>,
) -> Result<Vec<StatsRow>, StoreError> {
    let mut rows: BTreeMap<(String, String), StatsRow> = BTreeMap::new();
    for (field, value) in hash {
        let (owner, offering, name) = split(&field)
            .ok_or_else(|| corrupt(key.to_owned(), RedisStoreError::StatsField(field.clone())))?;
        let value = number(key, &value)?;
        let row = rows
            .entry((owner.to_owned(), offering.to_owned()))
            .or_insert_with(|| {
                StatsRow::new(StatsKey {
                    day,
                    owner: owner.to_owned(),
                    offering: offering.to_owned(),
                })
            });
        row.add(name, value);
    }
    Ok(rows.into_values().collect())
}

/// `<owner>\x1f<offering>\x1f<name>` split at its first and last separator.
pub(crate) fn split(field: &str) -> Option<(&str, &str, &str)> {
    let (owner, rest) = field.split_once(SEPARATOR)?;
    let (offering, name) = rest.rsplit_once(SEPARATOR)?;
    Some((owner, offering, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_foreign_ones_are_corrupt() {
        let day: NaiveDate = "2026-12-01".parse().expect("a date");
        let mut row = StatsRow::new(StatsKey {
            day,
            owner: "ada@example.com".into(),
            offering: "alpine".into(),
        });
        row.add("finished", 2);
        row.add("spent_nanos", 333_333);
        let hash: BTreeMap<String, String> = fields(&row)
            .into_iter()
            .map(|(field, value)| (field, value.to_string()))
            .collect();
        assert_eq!(rows_of_hash("k", day, hash).expect("ours"), [row]);

        let foreign = BTreeMap::from([("no-separator".to_owned(), "1".to_owned())]);
        assert!(matches!(
            rows_of_hash("k", day, foreign),
            Err(StoreError::Corrupt { .. })
        ));
        let not_a_number = BTreeMap::from([("a\x1fb\x1fc".to_owned(), "x".to_owned())]);
        assert!(matches!(
            rows_of_hash("k", day, not_a_number),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
