//! The store conformance cases of the daily statistics: `finish` adds the
//! lease's [`finish_contribution`] to its day totals and its share rows in
//! the same atomic step; `daily_stats` reads day totals and `share_stats`
//! sums owners' shares over any window, bounded, whatever the retention.
//! Run with the rest of the suite by
//! [`store_conformance_tests!`](crate::store_conformance_tests); the cases
//! are re-exported from [`conformance`](super::conformance).
//!
//! Day totals hold every owner, and a store may be shared by tests running
//! at once: cases that check them create their leases on a random day far
//! in the past ([`lonely_day`]) that no other case uses.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::conformance::{
    finish, finished, get, insert, now_ms, sample_lease, unique_owner, update,
};
use crate::error::StoreError;
use crate::lease::{EndReason, Lease, Status};
use crate::money::Money;
use crate::stats::{
    self, StatsRow, counter, day_total, finish_contribution, merge_rows, share_of, sum_shares,
};
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

/// A random number in `low..high` (from the standard library's randomly
/// seeded hasher).
fn random_in(low: i64, high: i64) -> i64 {
    let seed = std::collections::hash_map::RandomState::new().hash_one(unique_owner("seed"));
    low + i64::try_from(seed % (high - low).unsigned_abs()).unwrap_or(0)
}

/// How many days ago a day is that no other case uses for day totals: a
/// random one 3 to 80 years ago (cases use a handful of days each).
fn lonely_day() -> i64 {
    random_in(1_000, 29_000)
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

/// `share_stats` of `from..=to` of the rows of `owners` (a shared store may
/// hold other tests' rows), or a panic naming the range.
async fn shares<S: LeaseStore + ?Sized>(
    store: &S,
    from: NaiveDate,
    to: NaiveDate,
    owners: &[&str],
) -> Vec<StatsRow> {
    store
        .share_stats(from, to)
        .await
        .unwrap_or_else(|error| panic!("share_stats {from}..={to} failed: {error}"))
        .into_iter()
        .filter(|row| owners.contains(&row.key.owner.as_str()))
        .collect()
}

fn today() -> NaiveDate {
    stats::day_of(Utc::now())
}

fn days_ago(days: i64) -> NaiveDate {
    today() - Duration::days(days)
}

/// The day of `at`.
fn day(at: DateTime<Utc>) -> NaiveDate {
    stats::day_of(at)
}

/// The share rows `sum_shares` makes of `leases`' contributions.
fn expected_shares(from: NaiveDate, leases: &[&Lease]) -> Vec<StatsRow> {
    sum_shares(
        from,
        leases
            .iter()
            .map(|lease| share_of(&finish_contribution(lease))),
    )
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
/// its [`day_total`], and `share_stats` its [`share_of`] under its owner and
/// offering; a second lease adds to both, exactly.
pub async fn stats_rollup_after_finish<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-finish");
    let ago = lonely_day();
    let done = insert_and_expire(&*store, &created_days_ago(&owner, "alpine", ago), 7).await;
    let the_day = day(done.created_at);
    let expected = finish_contribution(&done);
    let rows = daily(&*store, the_day, the_day).await;
    assert_eq!(
        rows,
        [day_total(&expected)],
        "one totals row, the lease's contribution"
    );
    let row = &rows[0];
    assert_eq!(row.get(counter::FINISHED), 1);
    assert_eq!(row.get(counter::EXPIRED), 1);
    assert_eq!(row.get(counter::SPENT_NANOS), done.estimated_cost.nanos());
    assert_eq!(row.get("provision_ms_b02"), 1, "120 ms is in (100, 250]");
    assert_eq!(row.get("reap_late_ms_b01"), 1, "7 ms is in (0, 10]");
    let share = shares(&*store, the_day, the_day, &[&owner]).await;
    assert_eq!(share, [share_of(&expected)], "the share counters only");
    assert_eq!(share[0].counters.len(), stats::SHARE_COUNTERS.len());

    let mut cheap = created_days_ago(&owner, "alpine", ago);
    cheap.created_at = done.created_at;
    cheap.expires_at = done.expires_at;
    cheap.estimated_cost = Money::from_nanos(1);
    let second = insert_and_expire(&*store, &cheap, 70_000).await;
    let rows = daily(&*store, the_day, the_day).await;
    let both = merge_rows([
        day_total(&expected),
        day_total(&finish_contribution(&second)),
    ]);
    assert_eq!(rows, both, "counters are summed per name");
    assert_eq!(
        rows[0].get(counter::SPENT_NANOS),
        done.estimated_cost.nanos() + 1
    );
    assert_eq!(rows[0].get(counter::FINISHED), 2);
    assert_eq!(
        shares(&*store, the_day, the_day, &[&owner]).await,
        expected_shares(the_day, &[&done, &second])
    );
}

/// Shares are kept per (owner, offering) and returned in that order, the
/// day totals sum every owner and offering; active leases are not counted.
pub async fn stats_two_owners_and_offerings<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let ada = unique_owner("stats-ada");
    let bob = unique_owner("stats-bob");
    let ago = lonely_day();
    let mut done = Vec::new();
    for (owner, offering) in [
        (&bob, "ubuntu"),
        (&ada, "ubuntu"),
        (&ada, "alpine"),
        (&bob, "ubuntu"),
    ] {
        done.push(insert_and_expire(&*store, &created_days_ago(owner, offering, ago), 0).await);
    }
    insert(&*store, &created_days_ago(&ada, "alpine", ago)).await;
    let the_day = day(done[0].created_at);
    let rows = shares(&*store, the_day, the_day, &[&ada, &bob]).await;
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| (row.key.owner.as_str(), row.key.offering.as_str()))
        .collect();
    let mut sorted = pairs.clone();
    sorted.sort();
    assert_eq!(pairs, sorted, "ordered by owner, offering");
    assert_eq!(rows.len(), 3);
    let all: Vec<&Lease> = done.iter().collect();
    assert_eq!(
        rows,
        expected_shares(the_day, &all),
        "one row per pair, summed"
    );
    let bob_row = rows
        .iter()
        .find(|row| row.key.owner == bob)
        .expect("bob's row");
    assert_eq!(bob_row.get(counter::PROVISIONS), 2);
    let totals = daily(&*store, the_day, the_day).await;
    assert_eq!(
        totals,
        merge_rows(
            done.iter()
                .map(|lease| day_total(&finish_contribution(lease)))
        ),
        "one totals row for all owners and offerings"
    );
    assert_eq!(
        totals[0].get(counter::FINISHED),
        4,
        "the active one is not counted"
    );
}

/// `daily_stats` returns exactly the days asked for, by creation day, and
/// `share_stats` sums exactly the days asked for.
pub async fn stats_days_range<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-days");
    let base = lonely_day();
    let mut done = BTreeMap::new();
    for ago in [0, 1, 3, 3] {
        let lease =
            insert_and_expire(&*store, &created_days_ago(&owner, "alpine", base + ago), 0).await;
        done.entry(ago).or_insert_with(Vec::new).push(lease);
    }
    let at = |ago: i64| days_ago(base + ago);
    let finished_on = |rows: &[StatsRow]| -> Vec<(NaiveDate, i64)> {
        rows.iter()
            .map(|row| (row.key.day, row.get(counter::FINISHED)))
            .collect()
    };
    let all = daily(&*store, at(5), at(0)).await;
    assert_eq!(
        finished_on(&all),
        [(at(3), 2), (at(1), 1), (at(0), 1)],
        "oldest day first, empty days absent"
    );
    let middle = daily(&*store, at(3), at(1)).await;
    assert_eq!(finished_on(&middle), [(at(3), 2), (at(1), 1)]);
    let one = daily(&*store, at(1), at(1)).await;
    assert_eq!(finished_on(&one), [(at(1), 1)]);
    assert!(
        daily(&*store, at(2), at(2)).await.is_empty(),
        "no lease was created that day"
    );

    let provisions = |rows: &[StatsRow]| {
        rows.iter()
            .map(|row| row.get(counter::PROVISIONS))
            .sum::<i64>()
    };
    assert_eq!(
        provisions(&shares(&*store, at(5), at(0), &[&owner]).await),
        4
    );
    assert_eq!(
        provisions(&shares(&*store, at(3), at(1), &[&owner]).await),
        3
    );
    assert_eq!(
        provisions(&shares(&*store, at(2), at(0), &[&owner]).await),
        2
    );
    assert!(shares(&*store, at(2), at(2), &[&owner]).await.is_empty());
}

/// `share_stats` over any window equals the sum of the shares of the
/// leases created in it: windows of 1 to 400 days, aligned or not on the
/// spans, over leases spread across a year, two offerings.
pub async fn stats_shares_over_any_window<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-window");
    // Far from the other cases' days (before 1970: negative day numbers).
    let base = random_in(30_000, 60_000);
    let offsets = [
        0, 1, 2, 5, 7, 8, 15, 16, 31, 32, 63, 64, 100, 127, 128, 200, 255, 256, 300, 399,
    ];
    let mut done = Vec::new();
    for (index, ago) in offsets.iter().enumerate() {
        let offering = if index % 3 == 0 { "ubuntu" } else { "alpine" };
        let mut lease = created_days_ago(&owner, offering, base + ago);
        lease.estimated_cost = Money::from_nanos(1_000_003 * (index as i64 + 1));
        done.push(insert_and_expire(&*store, &lease, 0).await);
    }
    let at = |ago: i64| days_ago(base + ago);
    let windows = [
        (399, 0),
        (395, 5),
        (89, 0),
        (90, 1),
        (128, 1),
        (255, 128),
        (256, 129),
        (300, 300),
        (16, 8),
        (31, 2),
        (410, 390),
        (3, 3),
    ];
    for (older, newer) in windows {
        let (from, to) = (at(older), at(newer));
        let inside: Vec<&Lease> = done
            .iter()
            .filter(|lease| (from..=to).contains(&day(lease.created_at)))
            .collect();
        assert_eq!(
            shares(&*store, from, to, &[&owner]).await,
            expected_shares(from, &inside),
            "share_stats {from}..={to}"
        );
    }
}

/// More than [`stats::MAX_DAYS`] days, or `from` after `to`, is refused
/// with [`StoreError::InvalidRange`] by both reads; exactly the maximum is
/// served.
pub async fn stats_range_bound_refused<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let to = today();
    let longest = stats::window_start(to, stats::MAX_DAYS);
    daily(&*store, longest, to).await;
    shares(&*store, longest, to, &[]).await;
    let too_long = stats::window_start(to, stats::MAX_DAYS + 1);
    for (from, to) in [(too_long, to), (to, days_ago(1))] {
        for read in [
            store.daily_stats(from, to).await,
            store.share_stats(from, to).await,
        ] {
            match read {
                Err(StoreError::InvalidRange(range)) => {
                    assert_eq!((range.from, range.to), (from, to));
                }
                other => panic!("stats {from}..={to} must be refused, got {other:?}"),
            }
        }
    }
}

/// The retention does not apply: a lease gone from history still counts.
pub async fn stats_not_affected_by_retention<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-old");
    let done = insert_and_expire(
        &*store,
        &created_days_ago(&owner, "alpine", lonely_day()),
        0,
    )
    .await;
    let history = store
        .history(&HistoryQuery {
            owner: Some(owner.clone()),
            ..HistoryQuery::default()
        })
        .await
        .expect("history failed");
    assert!(history.items.is_empty(), "past the retention: {history:?}");
    let day = day(done.created_at);
    let expected = finish_contribution(&done);
    assert_eq!(daily(&*store, day, day).await, [day_total(&expected)]);
    assert_eq!(
        shares(&*store, day, day, &[&owner]).await,
        [share_of(&expected)]
    );
}

/// A finish that fails (stale revision, or already finished) adds
/// nothing; a lease finished twice in a race counts once.
pub async fn stats_failed_finish_adds_nothing<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stats-cas");
    let first = insert(&*store, &created_days_ago(&owner, "alpine", lonely_day())).await;
    let mut running = first.clone();
    running.status = Status::Running;
    let running = update(&*store, &running).await;
    let mut stale = finished(&first, first.expires_at, Money::from_nanos(5));
    stale.end_reason = Some(EndReason::Deleted);
    assert!(
        matches!(store.finish(&stale).await, Err(StoreError::Conflict { .. })),
        "a stale finish must conflict"
    );
    let the_day = day(first.created_at);
    assert!(
        daily(&*store, the_day, the_day).await.is_empty(),
        "a refused finish adds no totals"
    );
    assert!(
        shares(&*store, the_day, the_day, &[&owner])
            .await
            .is_empty(),
        "nor shares"
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
    let rows = daily(&*store, the_day, the_day).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get(counter::FINISHED), 1, "counted once");
    assert_eq!(rows[0].get(counter::SPENT_NANOS), 5);
    let share = shares(&*store, the_day, the_day, &[&owner]).await;
    assert_eq!(share.len(), 1);
    assert_eq!(share[0].get(counter::PROVISIONS), 1, "counted once");
    assert!(
        store.finish(&done).await.is_err(),
        "finishing a finished lease fails"
    );
    assert_eq!(
        daily(&*store, the_day, the_day).await,
        rows,
        "and adds nothing"
    );
    assert_eq!(shares(&*store, the_day, the_day, &[&owner]).await, share);
}
