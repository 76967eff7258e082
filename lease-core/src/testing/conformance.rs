//! The store conformance suite: what every [`LeaseStore`] must do.
//!
//! Each case is a plain `pub async fn` that takes a **fresh, empty** store
//! and panics (with a message saying what broke) when the store misbehaves.
//! A store crate runs all of them, directly and through
//! `Arc<dyn LeaseStore>`, with one line in its tests:
//!
//! ```rust,ignore
//! use lease_store_memory::MemoryStore;
//!
//! lease_core::store_conformance_tests!(MemoryStore, async {
//!     Some(std::sync::Arc::new(MemoryStore::new()))
//! });
//! ```
//!
//! The second argument is evaluated once per test and yields
//! `Option<Arc<Store>>`; `None` means "the service is not there, skip" (the
//! factory prints why, and fails instead under `CI=true`). The macro needs
//! `tokio` (with `macros` and `rt-multi-thread`) among the caller's
//! dev-dependencies.
//!
//! Times are based on [`Utc::now`] and truncated to whole milliseconds where a
//! test compares schedule times, because a shared store may use its server's
//! clock for "now" in `claim_expired` and keep schedules at millisecond
//! precision: due leases expired a minute ago, not-due ones expire in an hour.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SubsecRound, Utc};

use crate::admission::Admission;
use crate::error::StoreError;
use crate::id::LeaseId;
use crate::lease::{EndReason, Lease, Status};
use crate::money::Money;
use crate::store::{DEFAULT_HISTORY_RETENTION, HistoryQuery, LeaseStore, ListQuery, Page};

pub use super::admission_cases::*;
pub use super::stats_cases::*;

/// A long claim: it never lapses during a test.
const LONG_CLAIM: StdDuration = StdDuration::from_secs(3600);

/// `Utc::now()` truncated to whole milliseconds.
pub fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// An owner name no other test uses.
pub fn unique_owner(tag: &str) -> String {
    format!("{tag}-{}", LeaseId::generate().short(10))
}

/// A new `pending` alpine lease of `owner` that expires `expires_in` from now
/// (negative: already expired), with times truncated to milliseconds, sized
/// as the built-in alpine offering (0.5 CPU, 256 MiB).
///
/// It was created two minutes before its expiry when that lies in the past,
/// and now otherwise. Revision 0 (stores ignore it on insert).
pub fn sample_lease(owner: &str, expires_in: Duration) -> Lease {
    let now = now_ms();
    let expires_at = now + expires_in;
    let created_at = if expires_in > Duration::zero() {
        now
    } else {
        expires_at - Duration::minutes(2)
    };
    let hourly_rate = Money::from_nanos(10_000_000);
    Lease::new(
        LeaseId::generate(),
        owner,
        "alpine",
        hourly_rate,
        created_at,
        expires_at,
    )
    .with_size(500_000_000, 256)
}

/// `lease` made ready for [`LeaseStore::finish`]: `deleted`, billing ended at
/// `ended_at`, with `final_cost`.
pub fn finished(lease: &Lease, ended_at: DateTime<Utc>, final_cost: Money) -> Lease {
    let mut done = lease.clone();
    done.status = Status::Deleted;
    done.ended_at = Some(ended_at);
    done.end_reason = Some(EndReason::Expired);
    done.final_cost = Some(final_cost);
    done
}

pub(crate) async fn insert<S: LeaseStore + ?Sized>(store: &S, lease: &Lease) -> Lease {
    store
        .insert(lease, &Admission::default())
        .await
        .unwrap_or_else(|error| panic!("insert {} failed: {error}", lease.id))
}

pub(crate) async fn get<S: LeaseStore + ?Sized>(store: &S, id: &LeaseId) -> Lease {
    store
        .get(id)
        .await
        .unwrap_or_else(|error| panic!("get {id} failed: {error}"))
}

pub(crate) async fn update<S: LeaseStore + ?Sized>(store: &S, lease: &Lease) -> Lease {
    store
        .update(lease, &Admission::default())
        .await
        .unwrap_or_else(|error| panic!("update {} failed: {error}", lease.id))
}

pub(crate) async fn finish<S: LeaseStore + ?Sized>(store: &S, lease: &Lease) -> Lease {
    store
        .finish(lease)
        .await
        .unwrap_or_else(|error| panic!("finish {} failed: {error}", lease.id))
}

async fn claim<S: LeaseStore + ?Sized>(store: &S, limit: usize, ttl: StdDuration) -> Vec<Lease> {
    store
        .claim_expired(Utc::now(), limit, ttl)
        .await
        .unwrap_or_else(|error| panic!("claim_expired failed: {error}"))
}

async fn claim_ids<S: LeaseStore + ?Sized>(
    store: &S,
    limit: usize,
    ttl: StdDuration,
) -> BTreeSet<LeaseId> {
    claim(store, limit, ttl)
        .await
        .into_iter()
        .map(|lease| lease.id)
        .collect()
}

pub(crate) async fn list<S: LeaseStore + ?Sized>(store: &S, query: &ListQuery) -> Page<Lease> {
    store
        .list(query)
        .await
        .unwrap_or_else(|error| panic!("list {query:?} failed: {error}"))
}

async fn next_due<S: LeaseStore + ?Sized>(store: &S) -> Option<DateTime<Utc>> {
    store
        .next_due()
        .await
        .unwrap_or_else(|error| panic!("next_due failed: {error}"))
}

/// Every page of `query`, following cursors (at most 1,000 pages).
async fn list_all<S: LeaseStore + ?Sized>(store: &S, mut query: ListQuery) -> Vec<Page<Lease>> {
    let mut pages = Vec::new();
    loop {
        let page = list(store, &query).await;
        let next = page.next_cursor.clone();
        pages.push(page);
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return pages,
        }
        assert!(pages.len() < 1000, "list never returned a last page");
    }
}

async fn history_all<S: LeaseStore + ?Sized>(
    store: &S,
    mut query: HistoryQuery,
) -> Vec<Page<Lease>> {
    let mut pages = Vec::new();
    loop {
        let page = store
            .history(&query)
            .await
            .unwrap_or_else(|error| panic!("history {query:?} failed: {error}"));
        let next = page.next_cursor.clone();
        pages.push(page);
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return pages,
        }
        assert!(pages.len() < 1000, "history never returned a last page");
    }
}

fn ids_of(leases: &[Lease]) -> Vec<LeaseId> {
    leases.iter().map(|lease| lease.id.clone()).collect()
}

fn flat_ids(pages: &[Page<Lease>]) -> Vec<LeaseId> {
    pages.iter().flat_map(|page| ids_of(&page.items)).collect()
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, id: &LeaseId, what: &str) {
    match result {
        Err(StoreError::NotFound(found)) => {
            assert_eq!(&found, id, "{what}: NotFound names the wrong lease")
        }
        other => panic!("{what}: expected NotFound({id}), got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, id: &LeaseId, what: &str) {
    match result {
        Err(StoreError::Conflict { id: found, .. }) => {
            assert_eq!(&found, id, "{what}: Conflict names the wrong lease")
        }
        other => panic!("{what}: expected Conflict for {id}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Basics
// ---------------------------------------------------------------------------

/// `ping` succeeds on a working store.
pub async fn ping_succeeds<S: LeaseStore + ?Sized>(store: Arc<S>) {
    store.ping().await.expect("ping failed on a working store");
}

/// Insert stores revision 1 whatever the caller passed, and every field
/// (money, optional fields, nanosecond times) round-trips exactly.
pub async fn insert_then_get<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("roundtrip");
    let now = Utc::now().trunc_subsecs(0);
    let mut full = sample_lease(&owner, Duration::minutes(90));
    full.offering = "ubuntu".to_owned();
    full.container_id = Some("0123456789abcdef0123456789abcdef".to_owned());
    full.status = Status::Exited;
    full.created_at = now + Duration::nanoseconds(123_456_789);
    full.expires_at = now + Duration::minutes(90) + Duration::nanoseconds(987_654_321);
    full.ended_at = Some(now + Duration::minutes(3) + Duration::nanoseconds(1));
    full.end_reason = Some(EndReason::Exited);
    full.hourly_rate = Money::from_nanos(40_000_000);
    full.estimated_cost = Money::from_nanos(333_333);
    full.final_cost = Some(Money::from_nanos(1));
    full.error = Some("exit code 137: \"OOM\" — ünïcode\nsecond line".to_owned());
    full.provision_attempts = 2;
    full.removal_failures = 3;
    full.revision = 42;
    full.nano_cpus = 2_000_000_001;
    full.memory_mb = 65_537;

    let plain = sample_lease(&owner, Duration::minutes(5));

    for lease in [full, plain] {
        let stored = insert(&*store, &lease).await;
        let expected = Lease {
            revision: 1,
            ..lease.clone()
        };
        assert_eq!(
            stored, expected,
            "insert must return the lease as stored, with revision 1"
        );
        assert_eq!(
            get(&*store, &lease.id).await,
            expected,
            "get must return exactly what was inserted"
        );
    }
}

/// Inserting an id that is already taken (active or finished) fails with
/// `AlreadyExists` and changes nothing.
pub async fn insert_duplicate_is_already_exists<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("duplicate");
    let lease = sample_lease(&owner, Duration::hours(1));
    let stored = insert(&*store, &lease).await;

    let mut again = lease.clone();
    again.offering = "ubuntu".to_owned();
    match store.insert(&again, &Admission::default()).await {
        Err(StoreError::AlreadyExists(id)) => assert_eq!(id, lease.id),
        other => panic!("duplicate insert: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        get(&*store, &lease.id).await,
        stored,
        "a refused insert must not change the lease"
    );

    let done = finish(
        &*store,
        &finished(&stored, Utc::now(), Money::from_nanos(5)),
    )
    .await;
    match store.insert(&lease, &Admission::default()).await {
        Err(StoreError::AlreadyExists(id)) => assert_eq!(id, lease.id),
        other => panic!("insert of a finished lease's id: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        get(&*store, &lease.id).await,
        done,
        "a refused insert must not change history"
    );
    let active = list(&*store, &ListQuery::owner(&owner)).await;
    assert!(
        active.items.is_empty(),
        "a refused insert must not add an active lease: {active:?}"
    );
}

/// `get` of an id never stored fails with `NotFound`.
pub async fn get_unknown_is_not_found<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let id = LeaseId::generate();
    assert_not_found(store.get(&id).await, &id, "get of an unknown id");
}

// ---------------------------------------------------------------------------
// Compare-and-set
// ---------------------------------------------------------------------------

/// `update` with the stored revision stores the new fields with revision + 1.
pub async fn update_bumps_revision<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("update");
    let stored = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;

    let mut running = stored.clone();
    running.status = Status::Running;
    running.container_id = Some("abc123".to_owned());
    running.provision_attempts = 1;
    let second = update(&*store, &running).await;
    assert_eq!(
        second,
        Lease {
            revision: 2,
            ..running.clone()
        },
        "update must store revision + 1"
    );
    assert_eq!(get(&*store, &stored.id).await, second);

    let mut extended = second.clone();
    extended.expires_at += Duration::minutes(30);
    extended.estimated_cost = Money::from_nanos(15_000_000);
    let third = update(&*store, &extended).await;
    assert_eq!(third.revision, 3);
    assert_eq!(
        get(&*store, &stored.id).await,
        Lease {
            revision: 3,
            ..extended
        }
    );
}

/// `update` with a revision that moved fails with `Conflict` and changes nothing.
pub async fn update_with_stale_revision_conflicts<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("stale");
    let first = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
    let mut running = first.clone();
    running.status = Status::Running;
    let second = update(&*store, &running).await;

    let mut stale = first.clone();
    stale.status = Status::Error;
    stale.error = Some("should not be stored".to_owned());
    assert_conflict(
        store.update(&stale, &Admission::default()).await,
        &first.id,
        "update with revision 1 after a write",
    );

    let mut ahead = second.clone();
    ahead.revision = 7;
    ahead.error = Some("should not be stored either".to_owned());
    assert_conflict(
        store.update(&ahead, &Admission::default()).await,
        &first.id,
        "update with a revision from the future",
    );

    assert_eq!(
        get(&*store, &first.id).await,
        second,
        "a refused update must not change the lease"
    );
}

/// `update` of an unknown lease, or of one already finished, fails with
/// `NotFound` and does not bring it back.
pub async fn update_of_unknown_or_finished_is_not_found<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("gone");
    let unknown = sample_lease(&owner, Duration::hours(1));
    assert_not_found(
        store.update(&unknown, &Admission::default()).await,
        &unknown.id,
        "update of an unknown lease",
    );
    assert_not_found(
        store.get(&unknown.id).await,
        &unknown.id,
        "get after a refused update",
    );

    let stored = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
    let done = finish(
        &*store,
        &finished(&stored, Utc::now(), Money::from_nanos(7)),
    )
    .await;
    let mut late = done.clone();
    late.status = Status::Running;
    assert_not_found(
        store.update(&late, &Admission::default()).await,
        &stored.id,
        "update of a finished lease",
    );
    assert_not_found(
        store.finish(&done).await,
        &stored.id,
        "finish of a finished lease",
    );
    assert_eq!(
        get(&*store, &stored.id).await,
        done,
        "history must not change"
    );
    assert!(
        list(&*store, &ListQuery::owner(&owner))
            .await
            .items
            .is_empty()
    );
}

/// 16 tasks update the same revision at once: exactly one wins, the others
/// get `Conflict`, and the winner's write is what is stored.
pub async fn racing_updates_exactly_one_wins<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("race");
    let stored = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for n in 0..16u32 {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let mut mine = stored.clone();
        mine.provision_attempts = n + 1;
        mine.error = Some(format!("writer {n}"));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (n, store.update(&mine, &Admission::default()).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (n, result) = task.await.expect("update task panicked");
        match result {
            Ok(lease) => winners.push((n, lease)),
            Err(StoreError::Conflict { id, expected }) => {
                assert_eq!(id, stored.id);
                assert_eq!(
                    expected, 1,
                    "Conflict must carry the revision the caller read"
                );
            }
            Err(other) => panic!("racing update: expected Ok or Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one racing update must win: {winners:?}"
    );
    let (n, won) = &winners[0];
    assert_eq!(won.revision, 2);
    assert_eq!(won.error.as_deref(), Some(format!("writer {n}").as_str()));
    assert_eq!(
        &get(&*store, &stored.id).await,
        won,
        "the winner's write must be stored"
    );
}

/// An `update` and a `finish` race on the same revision: exactly one wins.
pub async fn racing_update_and_finish_one_wins<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("race-finish");
    for _round in 0..8 {
        let stored = insert(&*store, &sample_lease(&owner, Duration::minutes(-1))).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut bumped = stored.clone();
        bumped.removal_failures = 1;
        let done = finished(&stored, Utc::now(), Money::from_nanos(9));
        let updater = {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store.update(&bumped, &Admission::default()).await
            })
        };
        let finisher = {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store.finish(&done).await
            })
        };
        let updated = updater.await.expect("update task panicked");
        let ended = finisher.await.expect("finish task panicked");
        match (&updated, &ended) {
            (Ok(lease), Err(StoreError::Conflict { .. })) => {
                assert_eq!(&get(&*store, &stored.id).await, lease);
                let done = finished(lease, Utc::now(), Money::from_nanos(9));
                finish(&*store, &done).await;
            }
            (Err(StoreError::Conflict { .. } | StoreError::NotFound(_)), Ok(lease)) => {
                assert_eq!(&get(&*store, &stored.id).await, lease);
                assert_eq!(lease.status, Status::Deleted);
            }
            other => panic!("racing update and finish: expected exactly one winner, got {other:?}"),
        }
    }
    let usage = store.usage(&owner).await.expect("usage failed");
    assert_eq!(
        usage.ended_count, 8,
        "each lease must be counted once in usage"
    );
    assert_eq!(usage.ended_cost, Money::from_nanos(72));
}

// ---------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------

/// `list` by owner returns exactly that owner's active leases, oldest first.
pub async fn list_by_owner<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let alice = unique_owner("alice");
    let bob = unique_owner("bob");
    let base = now_ms() - Duration::minutes(10);
    let mut alices = Vec::new();
    for (n, owner) in [&alice, &bob, &alice, &bob, &alice].into_iter().enumerate() {
        let mut lease = sample_lease(owner, Duration::hours(1));
        // Inserted newest first, to show the order comes from created_at.
        lease.created_at = base - Duration::seconds(i64::try_from(n).unwrap_or(0));
        let stored = insert(&*store, &lease).await;
        if *owner == alice {
            alices.push(stored);
        }
    }
    alices.reverse();

    let page = list(&*store, &ListQuery::owner(&alice)).await;
    assert_eq!(
        page.items, alices,
        "alice's leases, oldest first, exactly as stored"
    );
    assert_eq!(page.next_cursor, None);

    let page = list(&*store, &ListQuery::owner(&bob)).await;
    assert_eq!(page.items.len(), 2);
    assert!(
        page.items.iter().all(|lease| lease.owner == bob),
        "{page:?}"
    );

    let page = list(&*store, &ListQuery::owner(unique_owner("nobody"))).await;
    assert!(
        page.items.is_empty() && page.next_cursor.is_none(),
        "unknown owner: {page:?}"
    );

    let all = list(&*store, &ListQuery::default()).await;
    assert_eq!(
        all.items.len(),
        5,
        "no owner filter lists every active lease"
    );
    let created: Vec<_> = all.items.iter().map(|lease| lease.created_at).collect();
    assert!(
        created.windows(2).all(|pair| pair[0] <= pair[1]),
        "oldest first: {created:?}"
    );
}

/// `list` by statuses returns exactly the leases in those statuses, and
/// follows status changes made by `update`.
pub async fn list_by_statuses<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("statuses");
    let other = unique_owner("statuses-other");
    let mut by_status = Vec::new();
    for status in [
        Status::Pending,
        Status::Running,
        Status::Error,
        Status::Exited,
        Status::Deleting,
    ] {
        let mut lease = sample_lease(&owner, Duration::hours(1));
        lease.status = status;
        by_status.push(insert(&*store, &lease).await);
    }
    let mut foreign = sample_lease(&other, Duration::hours(1));
    foreign.status = Status::Running;
    let foreign = insert(&*store, &foreign).await;

    let query = |owner: Option<&str>, statuses: &[Status]| ListQuery {
        owner: owner.map(str::to_owned),
        statuses: statuses.to_vec(),
        ..ListQuery::default()
    };
    let ids = |page: Page<Lease>| {
        page.items
            .into_iter()
            .map(|lease| lease.id)
            .collect::<BTreeSet<_>>()
    };

    let got = ids(list(
        &*store,
        &query(Some(&owner), &[Status::Running, Status::Error]),
    )
    .await);
    let want: BTreeSet<_> = [by_status[1].id.clone(), by_status[2].id.clone()].into();
    assert_eq!(got, want, "owner + [running, error]");

    let got = ids(list(&*store, &query(None, &[Status::Running])).await);
    let want: BTreeSet<_> = [by_status[1].id.clone(), foreign.id.clone()].into();
    assert_eq!(got, want, "any owner + [running]");

    let got = ids(list(&*store, &query(Some(&owner), &[Status::Deleted])).await);
    assert!(got.is_empty(), "no active lease is deleted: {got:?}");

    let got = ids(list(&*store, &query(Some(&owner), &[])).await);
    assert_eq!(got.len(), 5, "empty statuses means any status");

    let mut running = by_status[0].clone();
    running.status = Status::Running;
    update(&*store, &running).await;
    let got = ids(list(&*store, &query(Some(&owner), &[Status::Pending])).await);
    assert!(
        got.is_empty(),
        "a lease updated to running is no longer pending: {got:?}"
    );
    let got = ids(list(&*store, &query(Some(&owner), &[Status::Running])).await);
    let want: BTreeSet<_> = [by_status[0].id.clone(), by_status[1].id.clone()].into();
    assert_eq!(got, want, "both running leases after the update");
}

/// Paging with a cursor over 25 leases with limit 10 returns every lease
/// exactly once, oldest `created_at` first then id, and cursors survive the
/// removal of leases already returned.
pub async fn list_pages_with_cursor<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("paging");
    let other = unique_owner("paging-other");
    let base = now_ms() - Duration::hours(1);
    let mut mine = Vec::new();
    // Insert in a scrambled order; five leases share each created_at.
    for n in (0..25i64).map(|n| (n * 7) % 25) {
        let mut lease = sample_lease(&owner, Duration::hours(1));
        lease.created_at = base + Duration::seconds(n / 5);
        mine.push(insert(&*store, &lease).await);
        if n % 5 == 0 {
            let mut foreign = sample_lease(&other, Duration::hours(1));
            foreign.created_at = base + Duration::seconds(n / 5);
            insert(&*store, &foreign).await;
        }
    }
    mine.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let expected = ids_of(&mine);

    let query = ListQuery {
        limit: 10,
        ..ListQuery::owner(&owner)
    };
    let pages = list_all(&*store, query.clone()).await;
    let sizes: Vec<_> = pages.iter().map(|page| page.items.len()).collect();
    assert_eq!(sizes, [10, 10, 5], "25 leases in pages of 10");
    assert_eq!(
        flat_ids(&pages),
        expected,
        "every lease once, by created_at then id"
    );

    let one_page = list(
        &*store,
        &ListQuery {
            limit: 0,
            ..ListQuery::owner(&owner)
        },
    )
    .await;
    assert_eq!(
        ids_of(&one_page.items),
        expected,
        "limit 0 means the largest page"
    );
    assert_eq!(one_page.next_cursor, None);

    let all = list_all(
        &*store,
        ListQuery {
            limit: 10,
            ..ListQuery::default()
        },
    )
    .await;
    assert_eq!(
        flat_ids(&all).len(),
        30,
        "no owner filter: every lease once"
    );
    assert_eq!(flat_ids(&all).into_iter().collect::<HashSet<_>>().len(), 30);

    // Finish leases already returned, then follow the cursor: nothing is lost.
    let first = list(&*store, &query).await;
    assert_eq!(ids_of(&first.items), expected[..10]);
    for lease in [&first.items[9], &first.items[3]] {
        finish(&*store, &finished(lease, Utc::now(), Money::ZERO)).await;
    }
    let rest = list_all(
        &*store,
        ListQuery {
            cursor: first.next_cursor.clone(),
            ..query
        },
    )
    .await;
    assert_eq!(
        flat_ids(&rest),
        expected[10..],
        "the cursor must not depend on the last lease still being active"
    );
}

// ---------------------------------------------------------------------------
// Claiming
// ---------------------------------------------------------------------------

/// `claim_expired` returns only due leases (as stored), earliest due first,
/// at most `limit`, and never a lease already claimed whose claim holds.
pub async fn claim_returns_only_due_leases<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("claim");
    let mut due = Vec::new();
    for n in 0..10 {
        let mut lease = sample_lease(&owner, Duration::minutes(-1) - Duration::seconds(n));
        lease.status = Status::Running;
        due.push(insert(&*store, &lease).await);
    }
    let mut later = BTreeSet::new();
    for _ in 0..3 {
        later.insert(
            insert(&*store, &sample_lease(&owner, Duration::hours(1)))
                .await
                .id,
        );
    }

    let first = claim(&*store, 3, LONG_CLAIM).await;
    let mut earliest: Vec<_> = due.clone();
    earliest.sort_by_key(|lease| lease.expires_at);
    assert_eq!(first.len(), 3, "claim must respect its limit: {first:?}");
    let first_ids: BTreeSet<_> = ids_of(&first).into_iter().collect();
    let want: BTreeSet<_> = ids_of(&earliest[..3]).into_iter().collect();
    assert_eq!(first_ids, want, "the earliest due leases are claimed first");
    for lease in &first {
        assert_eq!(
            &get(&*store, &lease.id).await,
            lease,
            "a claimed lease is returned as stored"
        );
    }

    let second = claim_ids(&*store, 100, LONG_CLAIM).await;
    assert_eq!(second.len(), 7, "the other due leases: {second:?}");
    assert!(
        second.is_disjoint(&first_ids),
        "a lease already claimed must not be claimed again"
    );
    assert!(
        second.is_disjoint(&later),
        "a lease not due must not be claimed"
    );
    let all: BTreeSet<_> = first_ids.union(&second).cloned().collect();
    assert_eq!(
        all,
        ids_of(&due).into_iter().collect(),
        "every due lease claimed once"
    );

    assert!(
        claim(&*store, 100, LONG_CLAIM).await.is_empty(),
        "nothing left to claim"
    );
}

/// A claim lapses after `claim_ttl`: at once nothing is claimable, after the
/// TTL the same lease is.
pub async fn claim_lapses_after_ttl<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("lapse");
    let lease = insert(&*store, &sample_lease(&owner, Duration::minutes(-1))).await;
    let ttl = StdDuration::from_millis(300);

    let first = claim_ids(&*store, 10, ttl).await;
    assert_eq!(first, BTreeSet::from([lease.id.clone()]));
    assert!(
        claim(&*store, 10, ttl).await.is_empty(),
        "a live claim must hold"
    );

    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let again = claim(&*store, 10, LONG_CLAIM).await;
    assert_eq!(
        ids_of(&again),
        vec![lease.id.clone()],
        "a lapsed claim makes the lease claimable again"
    );
    assert_eq!(again[0], get(&*store, &lease.id).await);
    assert!(
        claim(&*store, 10, LONG_CLAIM).await.is_empty(),
        "the new claim holds"
    );
}

/// `release(id, retry_at)` makes a claimed lease claimable at `retry_at`, or
/// at its due time if that is later; it never creates a lease.
pub async fn release_makes_claimable_at_retry_at<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("release");
    let lease = insert(&*store, &sample_lease(&owner, Duration::minutes(-1))).await;
    let not_due = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
    let only_lease: BTreeSet<_> = [lease.id.clone()].into();

    assert_eq!(claim_ids(&*store, 10, LONG_CLAIM).await, only_lease);
    store
        .release(&lease.id, now_ms() - Duration::seconds(1))
        .await
        .expect("release failed");
    assert_eq!(
        claim_ids(&*store, 10, LONG_CLAIM).await,
        only_lease,
        "retry_at in the past: claimable now"
    );

    let retry_at = now_ms() + Duration::hours(1) - Duration::minutes(1);
    store
        .release(&lease.id, retry_at)
        .await
        .expect("release failed");
    assert!(
        claim(&*store, 10, LONG_CLAIM).await.is_empty(),
        "retry_at in the future: not claimable now"
    );
    assert_eq!(
        next_due(&*store).await,
        Some(retry_at),
        "next_due is the retry time"
    );

    store
        .release(&lease.id, Utc::now() + Duration::milliseconds(400))
        .await
        .expect("release failed");
    assert!(
        claim(&*store, 10, LONG_CLAIM).await.is_empty(),
        "not before retry_at"
    );
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    assert_eq!(
        claim_ids(&*store, 10, LONG_CLAIM).await,
        only_lease,
        "claimable once retry_at passed"
    );

    // Releasing a lease that is not due does not make it due.
    store
        .release(&not_due.id, now_ms() - Duration::minutes(5))
        .await
        .expect("release of an unclaimed lease failed");
    store
        .release(&lease.id, now_ms() - Duration::minutes(5))
        .await
        .expect("release failed");
    assert_eq!(
        claim_ids(&*store, 10, LONG_CLAIM).await,
        only_lease,
        "a lease not due stays unclaimable"
    );

    let unknown = LeaseId::generate();
    match store.release(&unknown, Utc::now()).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(other) => panic!("release of an unknown lease: expected Ok or NotFound, got {other:?}"),
    }
    assert_not_found(
        store.get(&unknown).await,
        &unknown,
        "release must not create a lease",
    );
    assert!(
        claim(&*store, 10, LONG_CLAIM).await.is_empty(),
        "release must not create a claimable entry"
    );
}

/// `next_due` is `None` when empty, the earliest claimable time otherwise,
/// and moves when that lease is claimed, updated or finished.
pub async fn next_due_tracks_the_earliest<S: LeaseStore + ?Sized>(store: Arc<S>) {
    assert_eq!(
        next_due(&*store).await,
        None,
        "an empty store has nothing due"
    );
    let owner = unique_owner("next-due");
    let a = insert(&*store, &sample_lease(&owner, Duration::minutes(-1))).await;
    let b = insert(&*store, &sample_lease(&owner, Duration::minutes(10))).await;
    let c = insert(&*store, &sample_lease(&owner, Duration::minutes(20))).await;
    assert_eq!(next_due(&*store).await, Some(a.due_at()));

    let claimed = claim(&*store, 1, LONG_CLAIM).await;
    assert_eq!(ids_of(&claimed), vec![a.id.clone()]);
    assert_eq!(
        next_due(&*store).await,
        Some(b.due_at()),
        "a claimed lease is not due until its claim lapses"
    );

    let mut b_later = b.clone();
    b_later.expires_at = now_ms() + Duration::minutes(30);
    let b_later = update(&*store, &b_later).await;
    assert_eq!(
        next_due(&*store).await,
        Some(c.due_at()),
        "an extended lease moves back"
    );

    finish(&*store, &finished(&c, Utc::now(), Money::ZERO)).await;
    assert_eq!(
        next_due(&*store).await,
        Some(b_later.due_at()),
        "a finished lease is never due"
    );

    finish(&*store, &finished(&b_later, Utc::now(), Money::ZERO)).await;
    let claim_lapses = next_due(&*store)
        .await
        .expect("the claimed lease is still active");
    assert!(
        claim_lapses > Utc::now() + Duration::minutes(50),
        "the claim decides: {claim_lapses}"
    );
    finish(&*store, &finished(&claimed[0], Utc::now(), Money::ZERO)).await;
    assert_eq!(next_due(&*store).await, None, "nothing active, nothing due");
}

/// A `deleting` lease is due at its `ended_at` even when it expires later
/// ([`Lease::due_at`]).
pub async fn deleting_lease_is_due_at_ended_at<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("deleting");
    let mut lease = sample_lease(&owner, Duration::hours(1));
    lease.status = Status::Running;
    let stored = insert(&*store, &lease).await;
    assert!(claim(&*store, 10, LONG_CLAIM).await.is_empty());
    assert_eq!(next_due(&*store).await, Some(stored.expires_at));

    let mut deleting = stored.clone();
    deleting.status = Status::Deleting;
    deleting.ended_at = Some(now_ms() - Duration::seconds(1));
    deleting.end_reason = Some(EndReason::Deleted);
    let deleting = update(&*store, &deleting).await;
    assert!(deleting.expires_at > Utc::now());
    assert_eq!(
        next_due(&*store).await,
        deleting.ended_at,
        "due at ended_at, not expires_at"
    );
    let claimed = claim(&*store, 10, LONG_CLAIM).await;
    assert_eq!(claimed, [deleting], "a deleting lease is claimable at once");
}

// ---------------------------------------------------------------------------
// Finishing, history, usage
// ---------------------------------------------------------------------------

/// `finish` moves a lease to history: `get` still returns it, `list` and
/// `claim_expired` no longer see it, its final cost counts in `usage`.
pub async fn finish_moves_lease_to_history<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("finish");
    let lease = insert(&*store, &sample_lease(&owner, Duration::minutes(-1))).await;
    let keep = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
    let claimed = claim(&*store, 10, LONG_CLAIM).await;
    assert_eq!(ids_of(&claimed), vec![lease.id.clone()]);

    let done = finished(&claimed[0], lease.expires_at, Money::from_nanos(333_333));
    let stored = finish(&*store, &done).await;
    assert_eq!(
        stored,
        Lease {
            revision: done.revision + 1,
            ..done.clone()
        },
        "finish stores revision + 1"
    );
    assert_eq!(
        get(&*store, &lease.id).await,
        stored,
        "get finds a finished lease in history"
    );
    assert_eq!(stored.status, Status::Deleted);
    assert_eq!(stored.final_cost, Some(Money::from_nanos(333_333)));

    let active = list(&*store, &ListQuery::owner(&owner)).await;
    assert_eq!(
        ids_of(&active.items),
        vec![keep.id.clone()],
        "list shows only active leases"
    );
    let deleted = list(
        &*store,
        &ListQuery {
            statuses: vec![Status::Deleted],
            ..ListQuery::default()
        },
    )
    .await;
    assert!(
        deleted.items.is_empty(),
        "finished leases are not active: {deleted:?}"
    );

    store
        .release(&lease.id, Utc::now() - Duration::minutes(1))
        .await
        .or_else(|error| match error {
            StoreError::NotFound(_) => Ok(()),
            other => Err(other),
        })
        .expect("release of a finished lease failed");
    assert!(
        claim(&*store, 10, LONG_CLAIM).await.is_empty(),
        "a finished lease is never claimed"
    );
    assert_eq!(next_due(&*store).await, Some(keep.due_at()));

    let usage = store.usage(&owner).await.expect("usage failed");
    assert_eq!(usage.ended_count, 1);
    assert_eq!(usage.ended_cost, Money::from_nanos(333_333));
}

/// `finish` with a stale revision fails with `Conflict` and changes nothing.
pub async fn finish_with_stale_revision_conflicts<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("finish-stale");
    let first = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
    let mut running = first.clone();
    running.status = Status::Running;
    let second = update(&*store, &running).await;

    let stale = finished(&first, Utc::now(), Money::from_nanos(1_000));
    assert_conflict(
        store.finish(&stale).await,
        &first.id,
        "finish with a stale revision",
    );
    assert_eq!(
        get(&*store, &first.id).await,
        second,
        "a refused finish changes nothing"
    );
    assert_eq!(
        ids_of(&list(&*store, &ListQuery::owner(&owner)).await.items),
        vec![first.id.clone()]
    );
    let usage = store.usage(&owner).await.expect("usage failed");
    assert_eq!(
        (usage.ended_count, usage.ended_cost),
        (0, Money::ZERO),
        "nothing counted"
    );
    let history = store
        .history(&HistoryQuery::default())
        .await
        .expect("history failed");
    assert!(history.items.is_empty(), "nothing in history: {history:?}");
}

/// `history` lists finished leases newest `ended_at` first, per owner, paged.
pub async fn history_is_newest_first_and_paged<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("history");
    let other = unique_owner("history-other");
    let base = now_ms() - Duration::hours(2);
    let mut mine = Vec::new();
    for n in (0..7i64).map(|n| (n * 3) % 7) {
        let lease = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
        mine.push(
            finish(
                &*store,
                &finished(
                    &lease,
                    base + Duration::seconds(n * 10),
                    Money::from_nanos(n),
                ),
            )
            .await,
        );
    }
    for n in 0..2i64 {
        let lease = insert(&*store, &sample_lease(&other, Duration::hours(1))).await;
        finish(
            &*store,
            &finished(&lease, base + Duration::seconds(n * 10 + 5), Money::ZERO),
        )
        .await;
    }
    insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
    mine.sort_by_key(|lease| std::cmp::Reverse(lease.ended_at));

    let query = HistoryQuery {
        owner: Some(owner.clone()),
        limit: 3,
        ..HistoryQuery::default()
    };
    let pages = history_all(&*store, query).await;
    let sizes: Vec<_> = pages.iter().map(|page| page.items.len()).collect();
    assert_eq!(sizes, [3, 3, 1], "7 finished leases in pages of 3");
    let items: Vec<Lease> = pages.into_iter().flat_map(|page| page.items).collect();
    assert_eq!(
        items, mine,
        "the owner's finished leases, newest first, as stored"
    );

    let all = history_all(
        &*store,
        HistoryQuery {
            limit: 4,
            ..HistoryQuery::default()
        },
    )
    .await;
    let all: Vec<Lease> = all.into_iter().flat_map(|page| page.items).collect();
    assert_eq!(
        all.len(),
        9,
        "every finished lease once, the active one not at all"
    );
    assert!(all.iter().all(|lease| lease.status == Status::Deleted));
    let ended: Vec<_> = all.iter().map(|lease| lease.ended_at).collect();
    assert!(
        ended.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {ended:?}"
    );

    let none = store
        .history(&HistoryQuery {
            owner: Some(unique_owner("nobody")),
            ..HistoryQuery::default()
        })
        .await
        .expect("history failed");
    assert!(none.items.is_empty() && none.next_cursor.is_none());
}

/// Finished leases that ended at the same instant come in id order,
/// descending (history is the exact reverse of (`ended_at`, id)), also
/// across page boundaries.
pub async fn history_ties_are_ordered_by_id_descending<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("history-ties");
    let base = now_ms() - Duration::hours(1);
    let mut mine = Vec::new();
    // Three instants, three leases each, finished in a scrambled order.
    for n in (0..9i64).map(|n| (n * 4) % 9) {
        let lease = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
        let ended_at = base + Duration::seconds(n / 3);
        mine.push(finish(&*store, &finished(&lease, ended_at, Money::from_nanos(n))).await);
    }
    mine.sort_by(|a, b| (b.ended_at, &b.id).cmp(&(a.ended_at, &a.id)));

    let query = HistoryQuery {
        owner: Some(owner.clone()),
        limit: 2,
        ..HistoryQuery::default()
    };
    let pages = history_all(&*store, query).await;
    let sizes: Vec<_> = pages.iter().map(|page| page.items.len()).collect();
    assert_eq!(sizes, [2, 2, 2, 2, 1], "9 finished leases in pages of 2");
    assert_eq!(
        flat_ids(&pages),
        ids_of(&mine),
        "newest ended first, equal ends by id descending"
    );
}

/// History keeps a finished lease for the retention after its `ended_at`,
/// counted back from the store's own now (the store under test uses
/// [`DEFAULT_HISTORY_RETENTION`]): one that ended earlier is gone from
/// `history` and `get`, however recent the rest of history is; usage totals
/// still count it.
pub async fn history_keeps_the_retention_by_the_store_clock<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("retention");
    let retention = Duration::from_std(DEFAULT_HISTORY_RETENTION).expect("7 days fit");
    let now = now_ms();
    let ended = |ended_at: DateTime<Utc>| {
        let mut lease = sample_lease(&owner, Duration::hours(1));
        lease.created_at = ended_at - Duration::minutes(30);
        lease.expires_at = ended_at;
        lease
    };

    // Alone in history, and older than the retention: gone at once.
    let a = insert(&*store, &ended(now - retention - Duration::hours(1))).await;
    let a_end = a.expires_at;
    finish(&*store, &finished(&a, a_end, Money::from_nanos(1))).await;
    assert_not_found(
        store.get(&a.id).await,
        &a.id,
        "get of a lease that ended before the retention",
    );
    let query = HistoryQuery {
        owner: Some(owner.clone()),
        ..HistoryQuery::default()
    };
    assert!(
        flat_ids(&history_all(&*store, query.clone()).await).is_empty(),
        "history must not list a lease that ended before the retention"
    );

    let b = insert(&*store, &ended(now - retention + Duration::hours(1))).await;
    let b_end = b.expires_at;
    let b = finish(&*store, &finished(&b, b_end, Money::from_nanos(20))).await;
    let c = insert(&*store, &ended(now)).await;
    let c = finish(&*store, &finished(&c, now, Money::from_nanos(300))).await;

    let items: Vec<Lease> = history_all(&*store, query)
        .await
        .into_iter()
        .flat_map(|page| page.items)
        .collect();
    assert_eq!(
        items,
        [c, b.clone()],
        "history keeps exactly what ended within the retention, newest first"
    );
    assert_not_found(store.get(&a.id).await, &a.id, "get of the expired lease");
    assert_eq!(
        get(&*store, &b.id).await,
        b,
        "a lease within the retention is kept"
    );
    let all = history_all(&*store, HistoryQuery::default()).await;
    assert!(
        !flat_ids(&all).contains(&a.id),
        "history without an owner must not list it either"
    );
    let usage = store.usage(&owner).await.expect("usage failed");
    assert_eq!(
        (usage.ended_count, usage.ended_cost),
        (3, Money::from_nanos(321)),
        "usage counts every finished lease, whatever the retention"
    );
}

/// `usage` sums final costs exactly, per owner.
pub async fn usage_sums_final_costs_exactly<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("usage");
    let other = unique_owner("usage-other");
    let costs = [333_333, 80_000_000, 1, 999_999_999_999];
    for nanos in costs {
        let lease = insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;
        finish(
            &*store,
            &finished(&lease, Utc::now(), Money::from_nanos(nanos)),
        )
        .await;
    }
    let lease = insert(&*store, &sample_lease(&other, Duration::hours(1))).await;
    finish(
        &*store,
        &finished(&lease, Utc::now(), Money::from_nanos(17)),
    )
    .await;
    insert(&*store, &sample_lease(&owner, Duration::hours(1))).await;

    let usage = store.usage(&owner).await.expect("usage failed");
    assert_eq!(usage.ended_count, 4);
    assert_eq!(
        usage.ended_cost,
        Money::from_nanos(costs.iter().sum()),
        "exact to the nano-dollar"
    );
    let usage = store.usage(&other).await.expect("usage failed");
    assert_eq!(
        (usage.ended_count, usage.ended_cost),
        (1, Money::from_nanos(17))
    );
    let usage = store
        .usage(&unique_owner("nobody"))
        .await
        .expect("usage failed");
    assert_eq!((usage.ended_count, usage.ended_cost), (0, Money::ZERO));
}

// ---------------------------------------------------------------------------
// Claims and concurrency
// ---------------------------------------------------------------------------

/// 8 concurrent claimers over 1,000 due leases, batches of 50: every lease
/// is claimed exactly once in total.
pub async fn concurrent_claimers_claim_each_lease_once<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("claimers");
    let mut inserted = HashSet::new();
    for n in 0..1000 {
        let lease = sample_lease(&owner, Duration::minutes(-1) - Duration::milliseconds(n));
        inserted.insert(insert(&*store, &lease).await.id);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let total = Arc::clone(&total);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let batch = claim(&*store, 50, LONG_CLAIM).await;
                assert!(
                    batch.len() <= 50,
                    "claim returned {} leases for limit 50",
                    batch.len()
                );
                if batch.is_empty() {
                    return mine;
                }
                // More than 1,000 claims in total means some lease was claimed
                // twice: stop instead of claiming forever.
                if total.fetch_add(batch.len(), Ordering::SeqCst) + batch.len() > 1000 {
                    mine.extend(batch.into_iter().map(|lease| lease.id));
                    return mine;
                }
                mine.extend(batch.into_iter().map(|lease| lease.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("claimer panicked"));
    }
    let unique: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(
        claimed.len(),
        1000,
        "1,000 claims in total, {} distinct",
        unique.len()
    );
    assert_eq!(unique, inserted, "every due lease claimed exactly once");
    assert!(claim(&*store, 1000, LONG_CLAIM).await.is_empty());
}

/// Updating a claimed lease keeps it claimed: it becomes claimable at
/// max(due time, claim end), not at once.
pub async fn update_keeps_claim<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("keep-claim");
    let lease = insert(&*store, &sample_lease(&owner, Duration::minutes(-1))).await;
    let claimed = claim(&*store, 10, LONG_CLAIM).await;
    assert_eq!(ids_of(&claimed), vec![lease.id.clone()]);

    let mut failed = claimed[0].clone();
    failed.status = Status::Deleting;
    failed.ended_at = Some(failed.expires_at);
    failed.removal_failures = 1;
    failed.error = Some("removal failed".to_owned());
    let failed = update(&*store, &failed).await;
    assert!(
        claim(&*store, 10, LONG_CLAIM).await.is_empty(),
        "an update must not drop the claim"
    );

    let mut extended = sample_lease(&owner, Duration::minutes(-1));
    extended = insert(&*store, &extended).await;
    assert_eq!(
        ids_of(&claim(&*store, 10, LONG_CLAIM).await),
        vec![extended.id.clone()]
    );
    extended.expires_at = now_ms() + Duration::minutes(10);
    update(&*store, &extended).await;
    assert!(claim(&*store, 10, LONG_CLAIM).await.is_empty());
    let next = next_due(&*store).await.expect("two active leases");
    assert!(
        next > Utc::now() + Duration::minutes(50),
        "an extend during a claim must not make the lease claimable before the claim lapses: next_due {next}"
    );
    assert_eq!(get(&*store, &failed.id).await, failed);
}

/// An update that moves the due time past a short claim: the due time
/// decides; once the claim has lapsed, a due lease is claimable again.
pub async fn update_past_claim_uses_new_due_time<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("due-later");
    let lease = insert(&*store, &sample_lease(&owner, Duration::minutes(-1))).await;
    let short = StdDuration::from_millis(300);
    assert_eq!(
        ids_of(&claim(&*store, 10, short).await),
        vec![lease.id.clone()]
    );

    let mut extended = lease.clone();
    extended.expires_at = now_ms() + Duration::hours(1);
    let extended = update(&*store, &extended).await;
    assert_eq!(
        next_due(&*store).await,
        Some(extended.expires_at),
        "the later due time decides"
    );

    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert!(
        claim(&*store, 10, LONG_CLAIM).await.is_empty(),
        "not due until the new expiry"
    );

    let mut deleting = extended.clone();
    deleting.status = Status::Deleting;
    deleting.ended_at = Some(now_ms() - Duration::seconds(1));
    let deleting = update(&*store, &deleting).await;
    assert_eq!(
        claim(&*store, 10, LONG_CLAIM).await,
        [deleting],
        "due again after the claim lapsed"
    );
}

// ---------------------------------------------------------------------------
// The macro
// ---------------------------------------------------------------------------

/// How long one case may take before it counts as hung.
pub const CASE_TIME_LIMIT: StdDuration = StdDuration::from_secs(120);

/// Runs one case, failing it if it takes longer than [`CASE_TIME_LIMIT`]
/// (a store that deadlocks or loops fails instead of hanging the run).
pub async fn run_case(name: &str, case: impl Future<Output = ()>) {
    if tokio::time::timeout(CASE_TIME_LIMIT, case).await.is_err() {
        panic!("conformance case `{name}` did not finish within {CASE_TIME_LIMIT:?}");
    }
}

/// Runs the whole conformance suite against a store, as `#[tokio::test]`s in
/// two modules: `direct` (with `Arc<Store>`) and `dynamic` (with
/// `Arc<dyn LeaseStore>`).
///
/// ```rust,ignore
/// lease_core::store_conformance_tests!(MemoryStore, async {
///     Some(std::sync::Arc::new(MemoryStore::new()))
/// });
/// ```
///
/// The first argument is the store type, the second an expression (usually
/// an `async` block) yielding `Option<Arc<Store>>`, evaluated once per test
/// for a fresh empty store; `None` skips the test. Items in scope where the
/// macro is used are visible to both.
#[macro_export]
macro_rules! store_conformance_tests {
    ($store:ty, $factory:expr $(,)?) => {
        $crate::__store_conformance_cases!(@module direct, $store, $factory;);
        $crate::__store_conformance_cases!(@module dynamic, $store, $factory;);
    };
}

/// Implementation detail of [`store_conformance_tests!`]: the one list of
/// cases. It hands the list to [`__store_conformance_module!`] after the
/// tokens it was given; a unit test of this file checks the list names
/// every `pub async fn` case above, so a new case cannot be left out.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($($prefix:tt)*) => {
        $crate::__store_conformance_module! { $($prefix)*
            ping_succeeds,
            insert_then_get,
            insert_duplicate_is_already_exists,
            get_unknown_is_not_found,
            update_bumps_revision,
            update_with_stale_revision_conflicts,
            update_of_unknown_or_finished_is_not_found,
            racing_updates_exactly_one_wins,
            racing_update_and_finish_one_wins,
            list_by_owner,
            list_by_statuses,
            list_pages_with_cursor,
            claim_returns_only_due_leases,
            claim_lapses_after_ttl,
            release_makes_claimable_at_retry_at,
            next_due_tracks_the_earliest,
            deleting_lease_is_due_at_ended_at,
            finish_moves_lease_to_history,
            finish_with_stale_revision_conflicts,
            history_is_newest_first_and_paged,
            history_ties_are_ordered_by_id_descending,
            history_keeps_the_retention_by_the_store_clock,
            usage_sums_final_costs_exactly,
            concurrent_claimers_claim_each_lease_once,
            update_keeps_claim,
            update_past_claim_uses_new_due_time,
            admission_owner_limit_refuses_at_the_boundary,
            admission_daily_spend_refuses_at_the_boundary,
            admission_host_limits_refuse_at_the_boundary,
            admission_reports_the_first_failing_limit,
            admission_spend_counts_finished_leases_created_today_at_final_cost,
            admission_update_raising_charge_over_the_limit_is_refused,
            admission_race_on_the_owner_limit_admits_exactly_the_limit,
            admission_race_on_the_host_limit_admits_exactly_the_limit,
            admission_race_on_the_daily_spend_admits_exactly_the_limit,
            stats_lease_times_round_trip,
            stats_rollup_after_finish,
            stats_two_owners_and_offerings,
            stats_days_range,
            stats_shares_over_any_window,
            stats_range_bound_refused,
            stats_not_affected_by_retention,
            stats_failed_finish_adds_nothing,
        }
    };
}

/// Implementation detail of [`store_conformance_tests!`]: what is made of
/// the list of cases (a test module, or the names).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_module {
    (@names; $($case:ident),* $(,)?) => {
        [$(::core::stringify!($case)),*]
    };
    (@module $mode:ident, $store:ty, $factory:expr; $($case:ident),* $(,)?) => {
        mod $mode {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store: ::core::option::Option<::std::sync::Arc<$store>> = $factory.await;
                    let ::core::option::Option::Some(store) = store else { return };
                    $crate::__store_conformance_module!(@run $mode, store, $case);
                }
            )*
        }
    };
    (@run direct, $store:ident, $case:ident) => {
        $crate::testing::conformance::run_case(
            ::core::stringify!($case),
            $crate::testing::conformance::$case($store),
        )
        .await
    };
    (@run dynamic, $store:ident, $case:ident) => {{
        let $store: ::std::sync::Arc<dyn $crate::LeaseStore> = $store;
        $crate::testing::conformance::run_case(
            ::core::stringify!($case),
            $crate::testing::conformance::$case($store),
        )
        .await
    }};
}

/// Asserts that the `pub async fn` items of a suite's `source` whose
/// signature, whitespace aside, continues with `signature` (`"<S:
/// LeaseStore"`) are exactly the cases `listed`, each listed once: a case
/// cannot be defined and left out of its macro's list.
#[cfg(test)]
pub(crate) fn assert_every_case_listed_once(source: &str, signature: &str, listed: &[&str]) {
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    let signature = squeeze(signature);
    let defined: BTreeSet<&str> = source
        .split("\npub async fn ")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
            let head = rest[end..].split('{').next().unwrap_or_default();
            squeeze(head).starts_with(&signature).then(|| &rest[..end])
        })
        .collect();
    let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(listed_set.len(), listed.len(), "a case is listed twice");
    assert!(
        defined.len() >= 5,
        "the file's cases were not found: {defined:?}"
    );
    assert_eq!(
        defined, listed_set,
        "the cases defined and the cases listed differ"
    );
}

#[cfg(test)]
mod tests {
    /// Every case defined in this file is in the macro's list, once, and
    /// the list names nothing else.
    #[test]
    fn the_macro_runs_every_case() {
        let sources = [
            include_str!("conformance.rs"),
            include_str!("admission_cases.rs"),
            include_str!("stats_cases.rs"),
        ];
        super::assert_every_case_listed_once(
            &sources.join("\n"),
            "<S: LeaseStore",
            &crate::__store_conformance_cases!(@names;),
        );
    }
}
