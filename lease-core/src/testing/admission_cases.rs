//! The store conformance cases of admission: every limit of an
//! [`Admission`] refuses exactly past its boundary, stores nothing when it
//! refuses, and holds when many writes race (the check is atomic with the
//! write). Run with the rest of the suite by
//! [`store_conformance_tests!`](crate::store_conformance_tests); the cases
//! are re-exported from [`conformance`](super::conformance).
//!
//! Host limits count every active lease in the store, so these cases rely
//! on the suite's rule that each case gets a fresh, empty store.

use std::sync::Arc;

use chrono::{Duration, Utc};

use super::conformance::{finished, get, list, now_ms, sample_lease, unique_owner, update};
use crate::admission::{Admission, Limit};
use crate::error::StoreError;
use crate::lease::Lease;
use crate::money::Money;
use crate::store::{LeaseStore, ListQuery};

/// Tasks in a race: 40 simultaneous inserts.
const RACERS: usize = 40;
/// The limit the races are run against.
const RACE_LIMIT: u32 = 5;

/// An amount of dollars written as decimal text.
fn dollars(text: &str) -> Money {
    text.parse()
        .unwrap_or_else(|error| panic!("`{text}` is not an amount: {error}"))
}

/// A live lease of `owner` created now whose charge (its estimate) is `cost`.
fn costing(owner: &str, cost: &str) -> Lease {
    let mut lease = sample_lease(owner, Duration::hours(1));
    lease.estimated_cost = dollars(cost);
    lease
}

/// Limits with "today" starting at UTC midnight of now.
fn today() -> Admission {
    Admission::today(Utc::now())
}

/// Asserts `result` is a refusal by `limit` whose message names `mentions`.
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    limit: Limit,
    mentions: &[&str],
    what: &str,
) {
    match result {
        Err(StoreError::LimitReached {
            limit: found,
            message,
        }) => {
            assert_eq!(
                found, limit,
                "{what}: refused by the wrong limit ({message})"
            );
            for text in mentions {
                assert!(
                    message.contains(text),
                    "{what}: the message must mention `{text}`: {message}"
                );
            }
        }
        other => panic!("{what}: expected LimitReached({limit}), got {other:?}"),
    }
}

/// Asserts a refused lease was not stored, under its id or in its owner's list.
async fn assert_not_stored<S: LeaseStore + ?Sized>(store: &S, lease: &Lease, active: usize) {
    match store.get(&lease.id).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("a refused lease must not be stored: get gave {other:?}"),
    }
    assert_eq!(
        list(store, &ListQuery::owner(&lease.owner))
            .await
            .items
            .len(),
        active,
        "a refused lease must not be listed"
    );
}

/// Inserts `lease` with `admission`, which must let it in.
async fn admit<S: LeaseStore + ?Sized>(store: &S, lease: &Lease, admission: &Admission) -> Lease {
    store
        .insert(lease, admission)
        .await
        .unwrap_or_else(|error| panic!("insert {} within the limits failed: {error}", lease.id))
}

/// Finishes `lease` now at `final_cost`.
async fn finish_now<S: LeaseStore + ?Sized>(store: &S, lease: &Lease, final_cost: Money) {
    super::conformance::finish(store, &finished(lease, now_ms(), final_cost)).await;
}

// ---------------------------------------------------------------------------
// Each limit at its boundary
// ---------------------------------------------------------------------------

/// `max_leases_per_owner`: the owner's Nth lease is admitted, the next is
/// refused (naming the owner) and not stored; another owner is independent;
/// finishing a lease frees its owner's slot.
pub async fn admission_owner_limit_refuses_at_the_boundary<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("admit-owner");
    let admission = Admission {
        max_leases_per_owner: Some(3),
        ..today()
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            admit(
                &*store,
                &sample_lease(&owner, Duration::hours(1)),
                &admission,
            )
            .await,
        );
    }
    let fourth = sample_lease(&owner, Duration::hours(1));
    assert_refused(
        store.insert(&fourth, &admission).await,
        Limit::LeasesPerOwner,
        &[&owner, "3"],
        "the 4th lease against a limit of 3",
    );
    assert_not_stored(&*store, &fourth, 3).await;

    let other = unique_owner("admit-other");
    admit(
        &*store,
        &sample_lease(&other, Duration::hours(1)),
        &admission,
    )
    .await;

    finish_now(&*store, &held[0], Money::ZERO).await;
    admit(&*store, &fourth, &admission).await;
    assert_refused(
        store
            .insert(&sample_lease(&owner, Duration::hours(1)), &admission)
            .await,
        Limit::LeasesPerOwner,
        &[&owner],
        "the limit after a finished lease was replaced",
    );
}

/// `max_daily_spend`: leases created today are admitted while the owner's
/// spend plus the new lease's charge is at most the limit, exactly; one
/// nano-dollar more is refused and not stored; a lease created before the
/// day's start neither counts nor is checked; another owner is independent.
pub async fn admission_daily_spend_refuses_at_the_boundary<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("admit-spend");
    let admission = Admission {
        max_daily_spend: Some(dollars("0.30")),
        ..today()
    };
    let mut yesterday = costing(&owner, "7");
    yesterday.created_at = admission.day_start - Duration::hours(1);
    yesterday.expires_at = admission.day_start + Duration::hours(1);
    admit(&*store, &yesterday, &admission).await;
    admit(&*store, &costing(&owner, "0.10"), &admission).await;
    admit(&*store, &costing(&owner, "0.20"), &admission).await;
    let over = costing(&owner, "0.000000001");
    assert_refused(
        store.insert(&over, &admission).await,
        Limit::DailySpend,
        &[&owner, "0.3"],
        "a nano-dollar over the daily spend",
    );
    assert_not_stored(&*store, &over, 3).await;
    let free = costing(&owner, "0");
    admit(&*store, &free, &admission).await;

    let other = unique_owner("admit-spend-other");
    admit(&*store, &costing(&other, "0.30"), &admission).await;
}

/// `max_leases`, `max_nano_cpus`, `max_memory_mb`: all owners' active
/// leases together; the lease that would pass a host limit is refused and
/// not stored, one that fits exactly is admitted; finishing a lease frees
/// its slot, CPU and memory.
pub async fn admission_host_limits_refuse_at_the_boundary<S: LeaseStore + ?Sized>(store: Arc<S>) {
    // Each sample lease reserves 0.5 CPU and 256 MiB.
    let leases = Admission {
        max_leases: Some(3),
        ..today()
    };
    let mut held = Vec::new();
    for n in 0..3 {
        let owner = unique_owner(&format!("admit-host-{n}"));
        held.push(admit(&*store, &sample_lease(&owner, Duration::hours(1)), &leases).await);
    }
    let fourth = sample_lease(&unique_owner("admit-host-3"), Duration::hours(1));
    assert_refused(
        store.insert(&fourth, &leases).await,
        Limit::Leases,
        &["3"],
        "the host's 4th lease against max_leases 3",
    );
    assert_not_stored(&*store, &fourth, 0).await;
    finish_now(&*store, &held.remove(0), Money::ZERO).await;
    held.push(admit(&*store, &fourth, &leases).await);

    // 3 active leases reserve 1.5 CPU and 768 MiB.
    let cpus = Admission {
        max_nano_cpus: Some(2_000_000_000),
        ..today()
    };
    held.push(
        admit(
            &*store,
            &sample_lease(&unique_owner("cpu"), Duration::hours(1)),
            &cpus,
        )
        .await,
    );
    let over_cpu = sample_lease(&unique_owner("cpu"), Duration::hours(1));
    assert_refused(
        store.insert(&over_cpu, &cpus).await,
        Limit::Cpus,
        &["2 CPUs", "0.5 more", "limit is 2"],
        "half a CPU over a budget of 2",
    );
    assert_not_stored(&*store, &over_cpu, 0).await;

    // 4 active leases reserve 1024 MiB.
    let memory = Admission {
        max_memory_mb: Some(1280),
        ..today()
    };
    held.push(
        admit(
            &*store,
            &sample_lease(&unique_owner("mem"), Duration::hours(1)),
            &memory,
        )
        .await,
    );
    let over_memory = sample_lease(&unique_owner("mem"), Duration::hours(1));
    assert_refused(
        store.insert(&over_memory, &memory).await,
        Limit::Memory,
        &["1280 MiB", "256 MiB more", "limit is 1280"],
        "256 MiB over a budget of 1280",
    );
    assert_not_stored(&*store, &over_memory, 0).await;

    // Finishing frees memory and CPU: 1 lease less fits the memory budget
    // again (1280 MiB), 2 fewer the CPU budget (2 CPUs).
    finish_now(&*store, &held[0], Money::ZERO).await;
    admit(&*store, &over_memory, &memory).await;
    finish_now(&*store, &held[1], Money::ZERO).await;
    finish_now(&*store, &held[2], Money::ZERO).await;
    admit(&*store, &over_cpu, &cpus).await;
}

/// When several limits fail, the first in [`Limit`] order is reported.
pub async fn admission_reports_the_first_failing_limit<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("admit-order");
    admit(&*store, &costing(&owner, "0.10"), &Admission::default()).await;
    let everything = Admission {
        max_leases_per_owner: Some(1),
        max_daily_spend: Some(dollars("0.10")),
        max_leases: Some(1),
        max_nano_cpus: Some(500_000_000),
        max_memory_mb: Some(256),
        ..today()
    };
    let order = [
        Limit::LeasesPerOwner,
        Limit::DailySpend,
        Limit::Leases,
        Limit::Cpus,
        Limit::Memory,
    ];
    let mut admission = everything;
    for (n, limit) in order.into_iter().enumerate() {
        let lease = costing(&owner, "0.01");
        assert_refused(
            store.insert(&lease, &admission).await,
            limit,
            &[],
            &format!("with the first {n} limit(s) lifted"),
        );
        match limit {
            Limit::LeasesPerOwner => admission.max_leases_per_owner = None,
            Limit::DailySpend => admission.max_daily_spend = None,
            Limit::Leases => admission.max_leases = None,
            Limit::Cpus => admission.max_nano_cpus = None,
            Limit::Memory => admission.max_memory_mb = None,
        }
    }
    admit(&*store, &costing(&owner, "0.01"), &admission).await;
}

// ---------------------------------------------------------------------------
// Spend today, across finishes and updates
// ---------------------------------------------------------------------------

/// The spend of today counts a finished lease created today at its final
/// cost (not its estimate), and not a lease finished today that was
/// created before the day's start.
pub async fn admission_spend_counts_finished_leases_created_today_at_final_cost<
    S: LeaseStore + ?Sized,
>(
    store: Arc<S>,
) {
    let owner = unique_owner("admit-finished");
    let admission = Admission {
        max_daily_spend: Some(dollars("0.30")),
        ..today()
    };
    let today_lease = admit(&*store, &costing(&owner, "0.25"), &admission).await;
    finish_now(&*store, &today_lease, dollars("0.10")).await;

    let mut old = costing(&owner, "9");
    old.created_at = admission.day_start - Duration::hours(2);
    old.expires_at = admission.day_start + Duration::hours(2);
    let old = admit(&*store, &old, &Admission::default()).await;
    finish_now(&*store, &old, dollars("9")).await;

    // 0.10 spent: 0.20 fits exactly, anything more does not.
    let over = costing(&owner, "0.200000001");
    assert_refused(
        store.insert(&over, &admission).await,
        Limit::DailySpend,
        &["0.1"],
        "0.10 finished today + 0.200000001",
    );
    assert_not_stored(&*store, &over, 0).await;
    admit(&*store, &costing(&owner, "0.20"), &admission).await;
}

/// An update that raises a lease's charge past the daily spend limit is
/// refused and leaves the record as it was; one that raises it to the
/// limit exactly, or lowers it, or leaves it (a status change) goes through.
pub async fn admission_update_raising_charge_over_the_limit_is_refused<S: LeaseStore + ?Sized>(
    store: Arc<S>,
) {
    let owner = unique_owner("admit-update");
    let admission = Admission {
        max_daily_spend: Some(dollars("0.30")),
        ..today()
    };
    admit(&*store, &costing(&owner, "0.10"), &admission).await;
    let stored = admit(&*store, &costing(&owner, "0.10"), &admission).await;

    let mut to_limit = stored.clone();
    to_limit.estimated_cost = dollars("0.20");
    to_limit.expires_at += Duration::hours(1);
    let extended = store
        .update(&to_limit, &admission)
        .await
        .unwrap_or_else(|error| panic!("raising the charge to the limit exactly failed: {error}"));
    assert_eq!(extended.revision, 2);

    let mut over = extended.clone();
    over.estimated_cost = dollars("0.200000001");
    over.expires_at += Duration::hours(1);
    assert_refused(
        store.update(&over, &admission).await,
        Limit::DailySpend,
        &[&owner],
        "raising the charge a nano-dollar over the limit",
    );
    assert_eq!(
        get(&*store, &stored.id).await,
        extended,
        "a refused update must leave the record unchanged"
    );

    // The limit lowered below what is spent: changes that do not raise the
    // charge still go through.
    let tighter = Admission {
        max_daily_spend: Some(dollars("0.01")),
        ..admission
    };
    let mut running = extended.clone();
    running.container_id = Some("c".repeat(64));
    let running = store
        .update(&running, &tighter)
        .await
        .unwrap_or_else(|error| panic!("an update that keeps the charge failed: {error}"));
    let mut cheaper = running.clone();
    cheaper.estimated_cost = dollars("0.05");
    let cheaper = store
        .update(&cheaper, &tighter)
        .await
        .unwrap_or_else(|error| panic!("an update that lowers the charge failed: {error}"));
    let mut dearer = cheaper.clone();
    dearer.estimated_cost = dollars("5");
    assert_eq!(
        update(&*store, &dearer).await.revision,
        5,
        "an update without limits is not checked"
    );
}

// ---------------------------------------------------------------------------
// Races: the check is atomic with the write
// ---------------------------------------------------------------------------

/// Inserts `leases` with `admission` from one task each, all released at
/// once; returns the admitted and the refusals' limits.
async fn race<S: LeaseStore + ?Sized>(
    store: &Arc<S>,
    leases: Vec<Lease>,
    admission: &Admission,
) -> (Vec<Lease>, Vec<Limit>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(leases.len()));
    let tasks: Vec<_> = leases
        .into_iter()
        .map(|lease| {
            let (store, barrier, admission) =
                (Arc::clone(store), Arc::clone(&barrier), admission.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.insert(&lease, &admission).await
            })
        })
        .collect();
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.expect("insert task panicked") {
            Ok(lease) => admitted.push(lease),
            Err(StoreError::LimitReached { limit, .. }) => refused.push(limit),
            Err(other) => panic!("racing insert: expected Ok or LimitReached, got {other:?}"),
        }
    }
    (admitted, refused)
}

/// Asserts a race admitted exactly [`RACE_LIMIT`] and refused the rest by
/// `limit`.
fn assert_race(admitted: &[Lease], refused: &[Limit], limit: Limit) {
    assert_eq!(
        (admitted.len(), refused.len()),
        (RACE_LIMIT as usize, RACERS - RACE_LIMIT as usize),
        "{RACERS} racing inserts against {limit} {RACE_LIMIT}: admitted and refused"
    );
    assert!(
        refused.iter().all(|found| *found == limit),
        "every refusal must name {limit}: {refused:?}"
    );
}

/// 40 simultaneous inserts of one owner against `max_leases_per_owner` 5:
/// exactly 5 admitted and stored, 35 refused.
pub async fn admission_race_on_the_owner_limit_admits_exactly_the_limit<S: LeaseStore + ?Sized>(
    store: Arc<S>,
) {
    let owner = unique_owner("race-owner");
    let admission = Admission {
        max_leases_per_owner: Some(RACE_LIMIT),
        ..today()
    };
    let leases = (0..RACERS)
        .map(|_| sample_lease(&owner, Duration::hours(1)))
        .collect();
    let (admitted, refused) = race(&store, leases, &admission).await;
    assert_race(&admitted, &refused, Limit::LeasesPerOwner);
    assert_eq!(
        list(&*store, &ListQuery::owner(&owner)).await.items.len(),
        RACE_LIMIT as usize,
        "exactly the admitted leases are stored"
    );
}

/// 40 simultaneous inserts of 40 owners against `max_leases` 5: exactly 5
/// admitted and stored, 35 refused.
pub async fn admission_race_on_the_host_limit_admits_exactly_the_limit<S: LeaseStore + ?Sized>(
    store: Arc<S>,
) {
    let admission = Admission {
        max_leases: Some(RACE_LIMIT),
        ..today()
    };
    let leases = (0..RACERS)
        .map(|n| sample_lease(&unique_owner(&format!("race-host-{n}")), Duration::hours(1)))
        .collect();
    let (admitted, refused) = race(&store, leases, &admission).await;
    assert_race(&admitted, &refused, Limit::Leases);
    assert_eq!(
        list(&*store, &ListQuery::default()).await.items.len(),
        RACE_LIMIT as usize,
        "exactly the admitted leases are stored"
    );
}

/// 40 simultaneous inserts of one owner, $0.10 each, against a daily spend
/// of $0.50: exactly 5 admitted and stored, 35 refused.
pub async fn admission_race_on_the_daily_spend_admits_exactly_the_limit<S: LeaseStore + ?Sized>(
    store: Arc<S>,
) {
    let owner = unique_owner("race-spend");
    let admission = Admission {
        max_daily_spend: Some(dollars("0.50")),
        ..today()
    };
    let leases = (0..RACERS).map(|_| costing(&owner, "0.10")).collect();
    let (admitted, refused) = race(&store, leases, &admission).await;
    assert_race(&admitted, &refused, Limit::DailySpend);
    let stored = list(&*store, &ListQuery::owner(&owner)).await.items;
    assert_eq!(
        stored
            .iter()
            .map(|lease| lease.estimated_cost)
            .sum::<Money>(),
        dollars("0.50"),
        "exactly the admitted leases are stored"
    );
}
