//! The store conformance cases of the daily statistics: `finish` adds the
//! lease's [`finish_contribution`] to its row in the same atomic step, and
//! `daily_stats` reads rows by day, bounded, whatever the retention. Run
//! with the rest of the suite by
//! [`store_conformance_tests!`](crate::store_conformance_tests); the cases
//! are re-exported from [`conformance`](super::conformance).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::conformance::{
    finish, finished, get, insert, now_ms, sample_lease, unique_owner, update,
};
use crate::error::StoreError;
use crate::lease::{EndReason, Lease, Status};
use crate::money::Money;
use crate::stats::{self, StatsKey, StatsRow, counter, finish_contribution, merge_rows};
use crate::store::{HistoryQuery, LeaseStore};

/// A lease of `owner` for `offering` created `days_ago` days before now,
/// booked for an hour, which became running 120 ms after its creation.
fn created_days_ago(owner: &str, offering: &str, days_ago: i64) -> Lease {
    let mut lease = sample_lease(owner, Duration::hours(1));
    lease.offering = offering.to_owned();
    lease.created_at = now_ms() - Duration::days(days_ago);
    lease.expires_at = lease.created_at + Duration::hours(1);
    lease.running_at = Some(lease.created_at + Duration::milliseconds(120));
    lease
}

/// Inserts `lease` and finishes it as expired at its expiry with its whole
/// estimate as final cost, reaped `late_ms` after the expiry. Returns what
/// `finish` stored.
async fn insert_and_expire<S: LeaseStore + ?Sized>(
    store: &S,
    lease: &Lease,
    late_ms: i64,
) -> Lease {
    let stored = insert(store, lease).await;
    let mut done = finished(&stored, stored.expires_at, stored.estimated_cost);
    done.finished_at = Some(stored.expires_at + Duration::milliseconds(late_ms));
    finish(store, &done).await
}

/// `daily_stats` of `from..=to`, or a panic naming the range.
async fn daily<S: LeaseStore + ?Sized>(store: &S, from: NaiveDate, to: NaiveDate) -> Vec<StatsRow> {
    store
        .daily_stats(from, to)
        .await
        .unwrap_or_else(|error| panic!("daily_stats {from}..={to} failed: {error}"))
}

/// The rows of `rows` whose owner is one of `owners` (a shared store may
/// hold other tests' rows).
fn of_owners(rows: Vec<StatsRow>, owners: &[&str]) -> Vec<StatsRow> {
    rows.into_iter()
        .filter(|row| owners.contains(&row.key.owner.as_str()))
        .collect()
}

fn today() -> NaiveDate {
    stats::day_of(Utc::now())
}

fn days_ago(days: u64) -> NaiveDate {
    today()
        .checked_sub_days(chrono::Days::new(days))
        .unwrap_or(NaiveDate::MIN)
}

/// The day of `at`.
fn day(at: DateTime<Utc>) -> NaiveDate {
    stats::day_of(at)
}

/// A lease's `running_at` and `finished_at` are stored like every other
/// field: through insert, update, finish, `get` and `history`.
pub async fn stats_lease_times_round_trip<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-times");
    let mut lease = sample_lease(&owner, Duration::hours(1));
    lease.running_at = Some(lease.created_at + Duration::milliseconds(345));
    let stored = insert(&*store, &lease).await;
    assert_eq!(
        stored.running_at, lease.running_at,
        "insert keeps running_at"
    );
    assert_eq!(get(&*store, &lease.id).await, stored);

    let mut running = stored.clone();
    running.status = Status::Running;
    running.running_at = Some(lease.created_at + Duration::milliseconds(678));
    let running = update(&*store, &running).await;
    assert_eq!(
        get(&*store, &lease.id).await,
        running,
        "update keeps running_at"
    );

    let mut done = finished(&running, now_ms(), Money::from_nanos(12));
    done.finished_at = Some(now_ms() + Duration::milliseconds(9));
    let done = finish(&*store, &done).await;
    assert_eq!(
        get(&*store, &lease.id).await,
        done,
        "finish keeps both times"
    );
    let history = store
        .history(&HistoryQuery {
            owner: Some(owner.clone()),
            ..HistoryQuery::default()
        })
        .await
        .expect("history failed");
    assert_eq!(history.items, [done], "history keeps both times");
}

/// After `finish`, `daily_stats` of the lease's creation day holds exactly
/// its [`finish_contribution`] in the row of its key.
pub async fn stats_rollup_after_finish<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-finish");
    let done = insert_and_expire(&*store, &created_days_ago(&owner, "alpine", 0), 7).await;
    let today = day(done.created_at);
    let rows = of_owners(daily(&*store, today, today).await, &[&owner]);
    let expected = finish_contribution(&done);
    assert_eq!(
        rows,
        std::slice::from_ref(&expected),
        "one row, the lease's contribution"
    );
    let row = &rows[0];
    assert_eq!(row.get(counter::FINISHED), 1);
    assert_eq!(row.get(counter::EXPIRED), 1);
    assert_eq!(row.get(counter::SPENT_NANOS), done.estimated_cost.nanos());
    assert_eq!(row.get("provision_ms_b02"), 1, "120 ms is in (100, 250]");
    assert_eq!(row.get("reap_late_ms_b01"), 1, "7 ms is in (0, 10]");

    // A second lease of the same key adds to the same row, exactly.
    let mut cheap = created_days_ago(&owner, "alpine", 0);
    cheap.created_at = done.created_at;
    cheap.expires_at = done.expires_at;
    cheap.estimated_cost = Money::from_nanos(1);
    let second = insert_and_expire(&*store, &cheap, 70_000).await;
    let rows = of_owners(daily(&*store, today, today).await, &[&owner]);
    let both = merge_rows([expected, finish_contribution(&second)]);
    assert_eq!(rows, both, "counters are summed per name");
    assert_eq!(
        rows[0].get(counter::SPENT_NANOS),
        done.estimated_cost.nanos() + 1
    );
    assert_eq!(rows[0].get(counter::FINISHED), 2);
}

/// Rows are kept per (day, owner, offering) and returned in that order;
/// active leases are not counted.
pub async fn stats_two_owners_and_offerings<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let ada = unique_owner("stats-ada");
    let bob = unique_owner("stats-bob");
    let mut expected = Vec::new();
    for (owner, offering) in [
        (&bob, "ubuntu"),
        (&ada, "ubuntu"),
        (&ada, "alpine"),
        (&bob, "ubuntu"),
    ] {
        let done = insert_and_expire(&*store, &created_days_ago(owner, offering, 0), 0).await;
        expected.push(finish_contribution(&done));
    }
    insert(&*store, &created_days_ago(&ada, "alpine", 0)).await;
    let today = expected[0].key.day;
    let rows = of_owners(daily(&*store, today, today).await, &[&ada, &bob]);
    let keys: Vec<&StatsKey> = rows.iter().map(|row| &row.key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by day, owner, offering");
    assert_eq!(rows, merge_rows(expected), "one row per key, summed");
    let bob_row = rows
        .iter()
        .find(|row| row.key.owner == bob)
        .expect("bob's row");
    assert_eq!(bob_row.get(counter::FINISHED), 2);
    assert_eq!(rows.len(), 3);
}

/// `daily_stats` returns exactly the days asked for, by creation day.
pub async fn stats_days_range<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-days");
    for ago in [0, 1, 3, 3] {
        insert_and_expire(&*store, &created_days_ago(&owner, "alpine", ago), 0).await;
    }
    let finished_on = |rows: &[StatsRow]| -> Vec<(NaiveDate, i64)> {
        rows.iter()
            .map(|row| (row.key.day, row.get(counter::FINISHED)))
            .collect()
    };
    let all = of_owners(daily(&*store, days_ago(5), today()).await, &[&owner]);
    assert_eq!(
        finished_on(&all),
        [(days_ago(3), 2), (days_ago(1), 1), (today(), 1)],
        "oldest day first, empty days absent"
    );
    let middle = of_owners(daily(&*store, days_ago(3), days_ago(1)).await, &[&owner]);
    assert_eq!(finished_on(&middle), [(days_ago(3), 2), (days_ago(1), 1)]);
    let one = of_owners(daily(&*store, days_ago(1), days_ago(1)).await, &[&owner]);
    assert_eq!(finished_on(&one), [(days_ago(1), 1)]);
    let none = of_owners(daily(&*store, days_ago(2), days_ago(2)).await, &[&owner]);
    assert!(
        none.is_empty(),
        "no lease was created two days ago: {none:?}"
    );
}

/// More than [`stats::MAX_DAYS`] days, or `from` after `to`, is refused
/// with [`StoreError::InvalidRange`]; exactly the maximum is served.
pub async fn stats_range_bound_refused<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let to = today();
    let longest = stats::window_start(to, stats::MAX_DAYS);
    daily(&*store, longest, to).await;
    let too_long = stats::window_start(to, stats::MAX_DAYS + 1);
    for (from, to) in [(too_long, to), (to, days_ago(1))] {
        match store.daily_stats(from, to).await {
            Err(StoreError::InvalidRange(range)) => {
                assert_eq!((range.from, range.to), (from, to));
            }
            other => panic!("daily_stats {from}..={to} must be refused, got {other:?}"),
        }
    }
}

/// The retention does not apply: a lease gone from history still counts.
pub async fn stats_not_affected_by_retention<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-old");
    let done = insert_and_expire(&*store, &created_days_ago(&owner, "alpine", 30), 0).await;
    let history = store
        .history(&HistoryQuery {
            owner: Some(owner.clone()),
            ..HistoryQuery::default()
        })
        .await
        .expect("history failed");
    assert!(history.items.is_empty(), "past the retention: {history:?}");
    let day = day(done.created_at);
    let rows = of_owners(daily(&*store, day, day).await, &[&owner]);
    assert_eq!(rows, [finish_contribution(&done)]);
}

/// A finish that fails (stale revision, or already finished) adds
/// nothing; a lease finished twice in a race counts once.
pub async fn stats_failed_finish_adds_nothing<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-cas");
    let first = insert(&*store, &created_days_ago(&owner, "alpine", 0)).await;
    let mut running = first.clone();
    running.status = Status::Running;
    let running = update(&*store, &running).await;
    let mut stale = finished(&first, first.expires_at, Money::from_nanos(5));
    stale.end_reason = Some(EndReason::Deleted);
    assert!(
        matches!(store.finish(&stale).await, Err(StoreError::Conflict { .. })),
        "a stale finish must conflict"
    );
    let today = day(first.created_at);
    assert!(
        of_owners(daily(&*store, today, today).await, &[&owner]).is_empty(),
        "a refused finish adds nothing"
    );

    let done = finished(&running, running.expires_at, Money::from_nanos(5));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            let done = done.clone();
            tokio::spawn(async move { store.finish(&done).await.is_ok() })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.expect("a finishing task panicked"));
    }
    assert_eq!(won, 1, "exactly one finish wins");
    let rows = of_owners(daily(&*store, today, today).await, &[&owner]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get(counter::FINISHED), 1, "counted once");
    assert_eq!(rows[0].get(counter::SPENT_NANOS), 5);
    assert!(
        store.finish(&done).await.is_err(),
        "finishing a finished lease fails"
    );
    let again = of_owners(daily(&*store, today, today).await, &[&owner]);
    assert_eq!(again, rows, "and adds nothing");
}
