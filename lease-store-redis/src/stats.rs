//! The daily statistics rollup on Redis: one hash per UTC day of creation
//! (`{p}:stats:<day>`), one field per (owner, offering, counter) named
//! `<owner>\x1f<offering>\x1f<counter>`. `finish.lua` adds a finished
//! lease's counters with `HINCRBY` in the same script that moves it into
//! history; [`read_days`] reads a range of days with one `HGETALL` per day,
//! pipelined: the cost grows with days × owners × offerings, never with the
//! number of leases.
//!
//! The separator is the ASCII unit separator, which owners (checked by the
//! engine: no control characters), offering keys and counter names never
//! hold; a field is split at its first and last separator.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use lease_core::StoreError;
use lease_core::stats::{StatsKey, StatsRow};

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

/// The rows of one day's hash (read from `key`), ordered by owner and
/// offering; [`StoreError::Corrupt`] for a field or value that is not ours.
pub(crate) fn rows_of_day(
    key: &str,
    day: NaiveDate,
    hash: BTreeMap<String, String>,
) -> Result<Vec<StatsRow>, StoreError> {
    let mut rows: BTreeMap<(String, String), StatsRow> = BTreeMap::new();
    for (field, value) in hash {
        let (owner, offering, name) = split(&field)
            .ok_or_else(|| corrupt(key.to_owned(), RedisStoreError::StatsField(field.clone())))?;
        let value: i64 = value
            .parse()
            .map_err(|_| corrupt(key.to_owned(), RedisStoreError::NotANumber(value.clone())))?;
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
fn split(field: &str) -> Option<(&str, &str, &str)> {
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
        assert_eq!(rows_of_day("k", day, hash).expect("ours"), [row]);

        let foreign = BTreeMap::from([("no-separator".to_owned(), "1".to_owned())]);
        assert!(matches!(
            rows_of_day("k", day, foreign),
            Err(StoreError::Corrupt { .. })
        ));
        let not_a_number = BTreeMap::from([("a\x1fb\x1fc".to_owned(), "x".to_owned())]);
        assert!(matches!(
            rows_of_day("k", day, not_a_number),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
