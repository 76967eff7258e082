//! Daily statistics of leases: rollup counters kept by the store.
//!
//! A dashboard must read totals over time without scanning every finished
//! lease, after restarts and across replicas. So [`LeaseStore::finish`]
//! adds the finished lease's [`finish_contribution`] to the rollup in the
//! *same atomic step* that moves the lease into history. The rollup has two
//! parts, each read in time independent of the number of leases:
//!
//! - **Day totals** ([`day_total`]): one row per UTC day of creation, all
//!   owners and offerings together (the key's owner and offering are
//!   empty), with every counter including the histograms.
//!   [`LeaseStore::daily_stats`] reads one row per day.
//! - **Shares** ([`share_of`]): per owner and offering, only the
//!   [`SHARE_COUNTERS`] (provisions, booked, spent), kept per [`Span`]: the
//!   aligned spans of 1, 2, 4, … 256 days holding the creation day
//!   ([`spans_of`], one row per level). [`LeaseStore::share_stats`] sums a
//!   window from its few covering spans ([`cover`]: at most about two per
//!   level), so it reads O(log days × owners × offerings) rows, not days ×
//!   owners × offerings.
//!
//! The meaning lives here; stores only add integers. A contribution's key is
//! the UTC day of the lease's `created_at`, its owner and its offering
//! ([`StatsKey::of`]); its counters are named by the constants of
//! [`counter`] (money in nano-dollars, durations in milliseconds); a row
//! holds only the counters its leases touched, so rows stay small. Stores
//! treat names as opaque strings: they store any name and sum per name.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use lease_core::stats::{self, counter, Histogram};
//! use lease_core::{EndReason, Lease, LeaseId, Money, Status};
//!
//! let created = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
//! let mut lease = Lease::new(LeaseId::generate(), "ada", "alpine",
//!     "0.01".parse().unwrap(), created, created + Duration::hours(1));
//! lease.running_at = Some(created + Duration::milliseconds(180));
//! lease.end_billing(lease.expires_at, EndReason::Expired);
//! lease.final_cost = Some(lease.accrued_cost(lease.expires_at));
//! lease.finished_at = Some(lease.expires_at + Duration::milliseconds(40));
//! lease.status = Status::Deleted;
//!
//! let row = stats::finish_contribution(&lease);
//! assert_eq!(row.key.day.to_string(), "2026-12-01");
//! assert_eq!(row.get(counter::FINISHED), 1);
//! assert_eq!(row.get(counter::SPENT_NANOS), 10_000_000);
//! let provisioning = Histogram::from_row(&row, counter::PROVISION_MS, &stats::PROVISION_BOUNDS_MS);
//! assert_eq!(provisioning.percentile(50), Some(250));
//! let lateness = Histogram::from_row(&row, counter::REAP_LATE_MS, &stats::LATENESS_BOUNDS_MS);
//! assert_eq!(lateness.percentile(99), Some(50));
//!
//! let total = stats::day_total(&row);
//! assert!(total.key.owner.is_empty() && total.key.offering.is_empty());
//! let share = stats::share_of(&row);
//! assert_eq!(share.counters.len(), 3, "provisions, booked, spent");
//! assert_eq!(stats::spans_of(row.key.day).len(), 9);
//! ```
//!
//! [`LeaseStore::finish`]: crate::LeaseStore::finish
//! [`LeaseStore::daily_stats`]: crate::LeaseStore::daily_stats
//! [`LeaseStore::share_stats`]: crate::LeaseStore::share_stats

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::lease::{EndReason, Lease, Status};

/// Most days one [`LeaseStore::daily_stats`](crate::LeaseStore::daily_stats)
/// call may cover.
pub const MAX_DAYS: u32 = 400;

/// Upper bounds (inclusive, milliseconds) of the provisioning-time buckets
/// (`running_at - created_at`); one more bucket counts what lies above the
/// last bound.
pub const PROVISION_BOUNDS_MS: [i64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
];

/// Upper bounds (inclusive, milliseconds) of the reap-lateness buckets
/// (`finished_at - expires_at` of leases that ended by expiry); one more
/// bucket counts what lies above the last bound.
pub const LATENESS_BOUNDS_MS: [i64; 13] = [
    0, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
];

/// The counter names (opaque to stores).
pub mod counter {
    /// Leases created (finished ones, plus active ones in merged views).
    pub const PROVISIONS: &str = "provisions";
    /// Leases finished (moved into history).
    pub const FINISHED: &str = "finished";
    /// Leases still active (only in views that merge active leases in; a
    /// store never holds it).
    pub const ACTIVE: &str = "active";
    /// Leases that failed (provisioning or their container): ended with
    /// reason `error`, or in status `error`.
    pub const FAILED: &str = "failed";
    /// Finished leases whose time ran out.
    pub const EXPIRED: &str = "expired";
    /// Finished leases removed early by their owner.
    pub const DELETED: &str = "deleted";
    /// Finished leases whose container stopped or vanished.
    pub const EXITED: &str = "exited";
    /// Σ [`Lease::charge`](crate::Lease::charge), nano-dollars.
    pub const BOOKED_NANOS: &str = "booked_nanos";
    /// Σ final cost (finished) or cost accrued so far (active), nano-dollars.
    pub const SPENT_NANOS: &str = "spent_nanos";
    /// Prefix of the provisioning-time bucket counters
    /// (`provision_ms_b00` …, see [`super::PROVISION_BOUNDS_MS`]).
    pub const PROVISION_MS: &str = "provision_ms_b";
    /// Prefix of the reap-lateness bucket counters (`reap_late_ms_b00` …,
    /// see [`super::LATENESS_BOUNDS_MS`]).
    pub const REAP_LATE_MS: &str = "reap_late_ms_b";
}

/// The name of bucket `index` of a histogram whose counters start with
/// `prefix`: two digits at least (`provision_ms_b03`).
pub fn bucket_name(prefix: &str, index: usize) -> String {
    format!("{prefix}{index:02}")
}

/// The UTC day of an instant.
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// Why a range of days was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("days {from}..={to}: `from` must not be after `to`, and at most {MAX_DAYS} days")]
pub struct DayRangeError {
    /// The first day asked for.
    pub from: NaiveDate,
    /// The last day asked for.
    pub to: NaiveDate,
}

/// The number of days in `from..=to`, or [`StoreError::InvalidRange`] when
/// `from` is after `to` or the range holds more than [`MAX_DAYS`] days.
/// Every store checks its arguments with it before reading anything.
pub fn check_range(from: NaiveDate, to: NaiveDate) -> Result<u32, StoreError> {
    let days = (to - from).num_days() + 1;
    match u32::try_from(days) {
        Ok(days) if (1..=MAX_DAYS).contains(&days) => Ok(days),
        _ => Err(StoreError::InvalidRange(DayRangeError { from, to })),
    }
}

/// The days `from..=to`, oldest first (empty when `from` is after `to`).
pub fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |day| *day <= to)
}

/// `day` minus `n - 1` days: the first day of the `n` days ending at `day`
/// (saturating at the earliest date).
pub fn window_start(day: NaiveDate, n: u32) -> NaiveDate {
    day.checked_sub_days(Days::new(u64::from(n.saturating_sub(1))))
        .unwrap_or(NaiveDate::MIN)
}

/// Which row a lease counts in: the UTC day it was created, its owner and
/// its offering.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StatsKey {
    /// The UTC day of `created_at`.
    pub day: NaiveDate,
    /// The lease's owner.
    pub owner: String,
    /// The lease's offering key.
    pub offering: String,
}

impl StatsKey {
    /// The key of `lease`.
    pub fn of(lease: &Lease) -> StatsKey {
        StatsKey {
            day: day_of(lease.created_at),
            owner: lease.owner.clone(),
            offering: lease.offering.clone(),
        }
    }

    /// The key of `day`'s totals row: owner and offering empty.
    pub fn totals(day: NaiveDate) -> StatsKey {
        StatsKey {
            day,
            owner: String::new(),
            offering: String::new(),
        }
    }
}

/// One row of counters: counter name → value (money in nano-dollars).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRow {
    /// Whose and which day's counters.
    pub key: StatsKey,
    /// Counter name → value.
    pub counters: BTreeMap<String, i64>,
}

impl StatsRow {
    /// A row of `key` with no counters.
    pub fn new(key: StatsKey) -> StatsRow {
        StatsRow {
            key,
            counters: BTreeMap::new(),
        }
    }

    /// The value of counter `name` (0 when absent).
    pub fn get(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Adds `value` to counter `name` (saturating).
    pub fn add(&mut self, name: &str, value: i64) {
        match self.counters.get_mut(name) {
            Some(sum) => *sum = sum.saturating_add(value),
            None => {
                self.counters.insert(name.to_owned(), value);
            }
        }
    }

    /// Adds every counter of `other` to this row's (keys are not compared).
    pub fn absorb(&mut self, other: &StatsRow) {
        for (name, value) in &other.counters {
            self.add(name, *value);
        }
    }
}

/// Sums rows with the same key: one row per key, ordered by key (day,
/// owner, offering).
pub fn merge_rows(rows: impl IntoIterator<Item = StatsRow>) -> Vec<StatsRow> {
    let mut merged: BTreeMap<StatsKey, StatsRow> = BTreeMap::new();
    for row in rows {
        match merged.get_mut(&row.key) {
            Some(sum) => sum.absorb(&row),
            None => {
                merged.insert(row.key.clone(), row);
            }
        }
    }
    merged.into_values().collect()
}

/// The counters kept per owner and offering ([`share_of`]); every other
/// counter is kept only in the day totals ([`day_total`]).
pub const SHARE_COUNTERS: [&str; 3] = [
    counter::PROVISIONS,
    counter::BOOKED_NANOS,
    counter::SPENT_NANOS,
];

/// `row` as a day-totals row: the same day and counters, owner and offering
/// empty.
pub fn day_total(row: &StatsRow) -> StatsRow {
    StatsRow {
        key: StatsKey::totals(row.key.day),
        counters: row.counters.clone(),
    }
}

/// `row` with only its [`SHARE_COUNTERS`] (those it has).
pub fn share_of(row: &StatsRow) -> StatsRow {
    let mut share = StatsRow::new(row.key.clone());
    for name in SHARE_COUNTERS {
        if let Some(value) = row.counters.get(name) {
            share.add(name, *value);
        }
    }
    share
}

/// How many span levels are kept: spans of 2⁰ … 2⁸ = 256 days.
pub const SPAN_LEVELS: u32 = 9;

/// The day spans are aligned on (day number 0).
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// An aligned run of `2^level` days starting at `start`, whose day number
/// (days since 1970-01-01) is a multiple of `2^level`. Share counters are
/// kept per span: a lease counts in the [`spans_of`] its creation day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// 0 ..[`SPAN_LEVELS`]: the span holds `2^level` days.
    pub level: u32,
    /// Its first day.
    pub start: NaiveDate,
}

impl Span {
    /// The span of `level` holding `day`.
    pub fn holding(day: NaiveDate, level: u32) -> Span {
        let number = (day - epoch()).num_days();
        let offset = number.rem_euclid(1i64 << level);
        Span {
            level,
            start: day - chrono::Duration::days(offset),
        }
    }

    /// How many days it holds.
    pub fn days(&self) -> i64 {
        1i64 << self.level
    }
}

/// The spans holding `day`, one per level, shortest first.
pub fn spans_of(day: NaiveDate) -> Vec<Span> {
    (0..SPAN_LEVELS)
        .map(|level| Span::holding(day, level))
        .collect()
}

/// The fewest spans that together hold exactly the days `from..=to`,
/// oldest first: at each step the longest span that starts at the next day
/// and ends by `to` (at most about two per level, plus one per 256 days).
/// Empty when `from` is after `to`.
///
/// ```
/// use lease_core::stats::{cover, Span};
/// let day = |text: &str| text.parse().unwrap();
/// // 1970-01-01 is day 0: a span of 4 days starts on days 0, 4, 8, …
/// assert_eq!(
///     cover(day("1970-01-02"), day("1970-01-08")),
///     [
///         Span { level: 0, start: day("1970-01-02") },
///         Span { level: 1, start: day("1970-01-03") },
///         Span { level: 2, start: day("1970-01-05") },
///     ]
/// );
/// ```
pub fn cover(from: NaiveDate, to: NaiveDate) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut next = from;
    while next <= to {
        let left = (to - next).num_days() + 1;
        let span = (0..SPAN_LEVELS)
            .rev()
            .map(|level| Span::holding(next, level))
            .find(|span| span.start == next && span.days() <= left)
            .unwrap_or(Span {
                level: 0,
                start: next,
            });
        spans.push(span);
        match next.checked_add_days(Days::new(span.days().unsigned_abs())) {
            Some(after) => next = after,
            None => break,
        }
    }
    spans
}

/// Sums share rows (of any spans or days) into one row per (owner,
/// offering), keyed by `day` (the window's first day), ordered by owner and
/// offering.
pub fn sum_shares(day: NaiveDate, rows: impl IntoIterator<Item = StatsRow>) -> Vec<StatsRow> {
    merge_rows(rows.into_iter().map(|mut row| {
        row.key.day = day;
        row
    }))
}

/// Whether a lease counts as a failure: it ended with reason `error`, or
/// is in status `error`.
pub fn is_failure(lease: &Lease) -> bool {
    lease.end_reason == Some(EndReason::Error) || lease.status == Status::Error
}

/// What a lease adds to the rollup when it is finished (moved into history
/// by [`LeaseStore::finish`](crate::LeaseStore::finish)); its key is
/// [`StatsKey::of`] the lease.
pub fn finish_contribution(lease: &Lease) -> StatsRow {
    let mut row = common_contribution(lease);
    row.add(counter::FINISHED, 1);
    let reason = match lease.end_reason {
        Some(EndReason::Expired) => Some(counter::EXPIRED),
        Some(EndReason::Deleted) => Some(counter::DELETED),
        Some(EndReason::Exited) => Some(counter::EXITED),
        Some(EndReason::Error) | None => None,
    };
    if let Some(reason) = reason {
        row.add(reason, 1);
    }
    row.add(
        counter::SPENT_NANOS,
        lease.final_cost.unwrap_or_default().nanos(),
    );
    if let (Some(EndReason::Expired), Some(finished_at)) = (lease.end_reason, lease.finished_at) {
        let late_ms = (finished_at - lease.expires_at).num_milliseconds().max(0);
        record(
            &mut row,
            counter::REAP_LATE_MS,
            &LATENESS_BOUNDS_MS,
            late_ms,
        );
    }
    row
}

/// What an active lease adds to a view that merges active leases with the
/// finished rollup: counted as [`counter::ACTIVE`], spent = the cost accrued
/// until `now`.
pub fn active_contribution(lease: &Lease, now: DateTime<Utc>) -> StatsRow {
    let mut row = common_contribution(lease);
    row.add(counter::ACTIVE, 1);
    row.add(counter::SPENT_NANOS, lease.accrued_cost(now).nanos());
    row
}

/// The counters every lease adds, finished or not.
fn common_contribution(lease: &Lease) -> StatsRow {
    let mut row = StatsRow::new(StatsKey::of(lease));
    row.add(counter::PROVISIONS, 1);
    if is_failure(lease) {
        row.add(counter::FAILED, 1);
    }
    row.add(counter::BOOKED_NANOS, lease.charge().nanos());
    if let Some(running_at) = lease.running_at {
        let ms = (running_at - lease.created_at).num_milliseconds().max(0);
        record(&mut row, counter::PROVISION_MS, &PROVISION_BOUNDS_MS, ms);
    }
    row
}

/// Counts one sample `value` in the bucket counters `prefix…` of `row`.
fn record(row: &mut StatsRow, prefix: &str, bounds: &[i64], value: i64) {
    row.add(&bucket_name(prefix, bucket_index(bounds, value)), 1);
}

/// The bucket of `value`: the first bound at or above it, or the overflow
/// bucket (`bounds.len()`).
fn bucket_index(bounds: &[i64], value: i64) -> usize {
    bounds.partition_point(|bound| *bound < value)
}

/// A histogram over fixed bucket bounds (inclusive upper bounds, plus one
/// overflow bucket), read from rollup counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// The buckets' inclusive upper bounds, ascending.
    pub bounds: Vec<i64>,
    /// Samples per bucket: `bounds.len() + 1` entries, the last one counting
    /// samples above the last bound.
    pub counts: Vec<i64>,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &[i64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
        }
    }

    /// The histogram held by `row`'s counters `prefix00`, `prefix01`, ….
    pub fn from_row(row: &StatsRow, prefix: &str, bounds: &[i64]) -> Histogram {
        let mut histogram = Histogram::new(bounds);
        histogram.add_row(row, prefix);
        histogram
    }

    /// Adds `row`'s counters `prefix00`, … to the counts.
    pub fn add_row(&mut self, row: &StatsRow, prefix: &str) {
        for (index, count) in self.counts.iter_mut().enumerate() {
            *count = count.saturating_add(row.get(&bucket_name(prefix, index)));
        }
    }

    /// Counts one sample.
    pub fn record(&mut self, value: i64) {
        let index = bucket_index(&self.bounds, value);
        if let Some(count) = self.counts.get_mut(index) {
            *count = count.saturating_add(1);
        }
    }

    /// How many samples it holds.
    pub fn total(&self) -> i64 {
        self.counts.iter().map(|count| (*count).max(0)).sum()
    }

    /// The `q`-th percentile (`q` in 1..=100; 0 reads as 1, above 100 as
    /// 100): the upper bound of the bucket holding the sample of rank
    /// ⌈total × q / 100⌉, in exact integer maths. A sample above the last
    /// bound reports the last bound (the truth is at least that). `None`
    /// when there is no sample.
    ///
    /// ```
    /// use lease_core::stats::Histogram;
    /// let mut h = Histogram::new(&[10, 100, 1000]);
    /// for value in [5, 7, 50, 60, 70, 80, 90, 95, 99, 500] { h.record(value); }
    /// assert_eq!(h.percentile(10), Some(10));
    /// assert_eq!(h.percentile(50), Some(100));
    /// assert_eq!(h.percentile(99), Some(1000));
    /// assert_eq!(Histogram::new(&[10]).percentile(50), None);
    /// ```
    pub fn percentile(&self, q: u32) -> Option<i64> {
        let total = i128::from(self.total());
        if total == 0 {
            return None;
        }
        let q = i128::from(q.clamp(1, 100));
        let rank = (total * q + 99) / 100;
        let mut seen = 0i128;
        for (index, count) in self.counts.iter().enumerate() {
            seen += i128::from((*count).max(0));
            if seen >= rank {
                return self
                    .bounds
                    .get(index)
                    .or_else(|| self.bounds.last())
                    .copied();
            }
        }
        self.bounds.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::id::LeaseId;
    use crate::money::Money;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a date")
    }

    fn lease_at(created: DateTime<Utc>) -> Lease {
        Lease::new(
            LeaseId::generate(),
            "ada",
            "alpine",
            Money::from_nanos(10_000_000),
            created,
            created + Duration::hours(1),
        )
    }

    #[test]
    fn ranges_are_bounded() {
        assert_eq!(
            check_range(day("2026-01-01"), day("2026-01-01")).ok(),
            Some(1)
        );
        assert_eq!(
            check_range(day("2026-01-01"), day("2027-02-04")).ok(),
            Some(400)
        );
        assert!(matches!(
            check_range(day("2026-01-01"), day("2027-02-05")),
            Err(StoreError::InvalidRange(_))
        ));
        assert!(matches!(
            check_range(day("2026-01-02"), day("2026-01-01")),
            Err(StoreError::InvalidRange(_))
        ));
        assert_eq!(days(day("2026-02-27"), day("2026-03-01")).count(), 3);
        assert_eq!(window_start(day("2026-03-01"), 3), day("2026-02-27"));
        assert_eq!(window_start(day("2026-03-01"), 0), day("2026-03-01"));
    }

    #[test]
    fn buckets_have_inclusive_upper_bounds() {
        let bounds = [0, 10, 50];
        assert_eq!(bucket_index(&bounds, -3), 0);
        assert_eq!(bucket_index(&bounds, 0), 0);
        assert_eq!(bucket_index(&bounds, 1), 1);
        assert_eq!(bucket_index(&bounds, 10), 1);
        assert_eq!(bucket_index(&bounds, 50), 2);
        assert_eq!(bucket_index(&bounds, 51), 3);
        assert_eq!(bucket_name("x_b", 3), "x_b03");
        assert_eq!(bucket_name("x_b", 12), "x_b12");
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds_by_rank() {
        let mut h = Histogram::new(&[10, 20]);
        for value in 1..=100 {
            h.record(if value <= 50 { 5 } else { 15 });
        }
        assert_eq!(
            h.percentile(50),
            Some(10),
            "rank 50 is the last of the first bucket"
        );
        assert_eq!(h.percentile(51), Some(20));
        h.record(1000);
        assert_eq!(
            h.percentile(100),
            Some(20),
            "overflow reports the last bound"
        );
        assert_eq!(h.total(), 101);
    }

    #[test]
    fn contributions_count_what_the_lease_did() {
        let created = Utc
            .with_ymd_and_hms(2026, 5, 4, 23, 59, 0)
            .single()
            .expect("a time");
        let mut lease = lease_at(created);
        lease.running_at = Some(created + Duration::milliseconds(700));
        let active = active_contribution(&lease, created + Duration::minutes(30));
        assert_eq!(active.key.day, day("2026-05-04"));
        assert_eq!(active.get(counter::ACTIVE), 1);
        assert_eq!(active.get(counter::FINISHED), 0);
        assert_eq!(active.get(counter::SPENT_NANOS), 5_000_000);
        assert_eq!(active.get(counter::BOOKED_NANOS), 10_000_000);
        assert_eq!(
            active.get("provision_ms_b04"),
            1,
            "700 ms is in (500, 1000]"
        );

        lease.end_billing(created + Duration::minutes(6), EndReason::Deleted);
        lease.final_cost = Some(lease.accrued_cost(created));
        lease.status = Status::Deleted;
        let done = finish_contribution(&lease);
        assert_eq!(done.get(counter::DELETED), 1);
        assert_eq!(done.get(counter::SPENT_NANOS), 1_000_000);
        assert_eq!(done.get(counter::BOOKED_NANOS), 1_000_000);
        assert_eq!(done.get(counter::FAILED), 0);
        assert!(
            !done
                .counters
                .keys()
                .any(|name| name.starts_with(counter::REAP_LATE_MS)),
            "only expired leases have a reap lateness"
        );

        let mut failed = lease_at(created);
        failed.status = Status::Error;
        failed.end_billing(created, EndReason::Error);
        assert_eq!(
            active_contribution(&failed, created).get(counter::FAILED),
            1
        );
        failed.final_cost = Some(Money::ZERO);
        failed.status = Status::Deleted;
        let row = finish_contribution(&failed);
        assert_eq!(row.get(counter::FAILED), 1);
        assert!(
            !row.counters
                .keys()
                .any(|name| name.starts_with(counter::PROVISION_MS)),
            "a lease that never ran has no provisioning time"
        );
    }

    #[test]
    fn spans_are_aligned_and_hold_their_day() {
        for text in ["1969-12-31", "1970-01-01", "2026-12-02", "1861-03-04"] {
            let d = day(text);
            let spans = spans_of(d);
            assert_eq!(spans.len(), SPAN_LEVELS as usize);
            for span in spans {
                let number = (span.start - epoch()).num_days();
                assert_eq!(number.rem_euclid(span.days()), 0, "{span:?} is aligned");
                assert!(span.start <= d && (d - span.start).num_days() < span.days());
            }
        }
        assert_eq!(Span::holding(day("1969-12-31"), 1).start, day("1969-12-30"));
    }

    #[test]
    fn cover_holds_each_day_of_the_window_once() {
        let base = day("1969-10-01");
        for (from_offset, length) in [(0, 1), (3, 90), (1, 400), (127, 256), (500, 129), (64, 64)] {
            let from = base + chrono::Duration::days(from_offset);
            let to = from + chrono::Duration::days(length - 1);
            let spans = cover(from, to);
            let mut covered: Vec<NaiveDate> = Vec::new();
            for span in &spans {
                assert_eq!(*span, Span::holding(span.start, span.level), "aligned");
                covered.extend(days(
                    span.start,
                    span.start + chrono::Duration::days(span.days() - 1),
                ));
            }
            assert_eq!(covered, days(from, to).collect::<Vec<_>>(), "{from}..={to}");
            assert!(
                spans.len() <= 2 * SPAN_LEVELS as usize,
                "{} spans",
                spans.len()
            );
        }
        assert!(cover(day("2026-01-02"), day("2026-01-01")).is_empty());
    }

    #[test]
    fn day_totals_and_shares_split_a_contribution() {
        let created = Utc
            .with_ymd_and_hms(2026, 5, 4, 12, 0, 0)
            .single()
            .expect("a time");
        let mut lease = lease_at(created);
        lease.running_at = Some(created + Duration::milliseconds(60));
        lease.end_billing(created + Duration::hours(1), EndReason::Expired);
        lease.final_cost = Some(Money::from_nanos(7));
        lease.finished_at = Some(created + Duration::hours(1));
        let row = finish_contribution(&lease);
        let total = day_total(&row);
        assert_eq!(total.key, StatsKey::totals(row.key.day));
        assert_eq!(total.counters, row.counters);
        let share = share_of(&row);
        assert_eq!(share.key, row.key);
        assert_eq!(
            share
                .counters
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            [
                counter::BOOKED_NANOS,
                counter::PROVISIONS,
                counter::SPENT_NANOS
            ]
        );
        assert_eq!(share.get(counter::SPENT_NANOS), 7);
        let summed = sum_shares(day("2026-01-01"), [share.clone(), share]);
        assert_eq!(summed.len(), 1);
        assert_eq!(summed[0].key.day, day("2026-01-01"));
        assert_eq!(summed[0].get(counter::PROVISIONS), 2);
    }

    #[test]
    fn merging_sums_per_key_in_key_order() {
        let created = Utc
            .with_ymd_and_hms(2026, 5, 4, 12, 0, 0)
            .single()
            .expect("a time");
        let a = finish_contribution(&lease_at(created));
        let b = finish_contribution(&lease_at(created - Duration::days(1)));
        let merged = merge_rows([a.clone(), b.clone(), a]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].key, b.key);
        assert_eq!(merged[1].get(counter::FINISHED), 2);
    }
}
