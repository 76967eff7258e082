//! The warm-pool part of the store port: what every store that keeps
//! pools must do ([`LeaseStore::pool_add`] and the other `pool_*`
//! methods; see [`crate::pool`]).
//!
//! A store runs every case, directly and through `Arc<dyn LeaseStore>`,
//! with one line:
//!
//! ```rust,ignore
//! lease_core::pool_conformance_tests!(MemoryStore, async {
//!     Some(std::sync::Arc::new(MemoryStore::new()))
//! });
//! ```
//!
//! It is a list of its own (not part of
//! [`store_conformance_tests!`](crate::store_conformance_tests)) because
//! pools are an optional part of the port: a store that keeps the
//! defaults answers [`StoreError::Unsupported`] and the engine never
//! pools over it. A unit test checks the list names every case here.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;

use super::conformance::{get, insert, now_ms, sample_lease, unique_owner};
use crate::error::StoreError;
use crate::lease::{Lease, Status};
use crate::pool::{PoolSlot, SlotState};
use crate::store::LeaseStore;

/// A filling slot of `offering` stored `age_ms` before now.
fn slot(offering: &str, age_ms: i64) -> PoolSlot {
    PoolSlot::filling(offering, "img:1", now_ms() - Duration::milliseconds(age_ms))
}

/// An offering key no other case uses (shared stores are not emptied).
fn unique_offering(tag: &str) -> String {
    unique_owner(tag)
}

async fn add<S: LeaseStore + ?Sized>(store: &S, slot: &PoolSlot, target: usize) -> bool {
    store
        .pool_add(slot, target)
        .await
        .unwrap_or_else(|error| panic!("pool_add {} failed: {error}", slot.id))
}

async fn ready<S: LeaseStore + ?Sized>(store: &S, slot: &PoolSlot, container: &str) -> bool {
    store
        .pool_ready(&slot.id, container)
        .await
        .unwrap_or_else(|error| panic!("pool_ready {} failed: {error}", slot.id))
}

async fn slots_of<S: LeaseStore + ?Sized>(store: &S, offering: &str) -> Vec<PoolSlot> {
    store
        .pool_slots()
        .await
        .unwrap_or_else(|error| panic!("pool_slots failed: {error}"))
        .into_iter()
        .filter(|slot| slot.offering == offering)
        .collect()
}

/// A filling slot added, then marked ready on `container`.
async fn ready_slot<S: LeaseStore + ?Sized>(
    store: &S,
    offering: &str,
    age_ms: i64,
    container: &str,
) -> PoolSlot {
    let slot = slot(offering, age_ms);
    assert!(add(store, &slot, usize::MAX).await, "pool_add refused");
    assert!(ready(store, &slot, container).await, "pool_ready refused");
    slot
}

/// A stored pending lease.
async fn pending<S: LeaseStore + ?Sized>(store: &S, tag: &str) -> Lease {
    insert(store, &sample_lease(&unique_owner(tag), Duration::hours(1))).await
}

/// `pool_add` stores a filling slot while the offering has fewer than the
/// target filling or ready, and nothing beyond; taken slots do not count;
/// slots come back by offering, age and id.
pub async fn pool_add_keeps_to_the_target<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let offering = unique_offering("add");
    let first = slot(&offering, 3000);
    let second = slot(&offering, 2000);
    assert!(add(&*store, &first, 2).await);
    assert!(
        !add(&*store, &first, 5).await,
        "the same slot id is not added twice"
    );
    assert!(add(&*store, &second, 2).await);
    assert!(
        !add(&*store, &slot(&offering, 1000), 2).await,
        "a full pool refuses"
    );
    let stored = slots_of(&*store, &offering).await;
    let ids: Vec<&str> = stored.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [first.id.as_str(), second.id.as_str()], "oldest first");
    assert!(stored.iter().all(|s| s.state == SlotState::Filling
        && s.container_id.is_none()
        && s.lease_id.is_none()
        && s.image == "img:1"));
    assert_eq!(stored[0].created_at, first.created_at);

    // A taken slot leaves the pool: there is room again.
    assert!(ready(&*store, &first, "c-1").await);
    let lease = pending(&*store, "add").await;
    let taken = store
        .pool_take(&offering, &lease, now_ms())
        .await
        .expect("take")
        .expect("a slot was ready");
    assert_eq!(taken.slot.id, first.id);
    assert!(add(&*store, &slot(&offering, 0), 2).await);
    assert!(!add(&*store, &slot(&offering, 0), 2).await);
}

/// `pool_ready` moves only a filling slot to ready, once.
pub async fn pool_ready_only_from_filling<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let offering = unique_offering("ready");
    let slot = slot(&offering, 0);
    assert!(!ready(&*store, &slot, "c-1").await, "unknown slot");
    assert!(add(&*store, &slot, 1).await);
    assert!(ready(&*store, &slot, "c-1").await);
    assert!(!ready(&*store, &slot, "c-2").await, "already ready");
    let stored = slots_of(&*store, &offering).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state, SlotState::Ready);
    assert_eq!(stored[0].container_id.as_deref(), Some("c-1"));
}

/// A take makes the oldest ready slot of the offering taken by the lease
/// and the lease running on its container, in one step; an empty pool,
/// filling slots and other offerings' slots give `None` and change
/// nothing.
pub async fn pool_take_runs_the_lease_on_the_oldest_ready_slot<S: LeaseStore + ?Sized>(
    store: Arc<S>,
) {
    let offering = unique_offering("take");
    let other = unique_offering("other");
    let lease = pending(&*store, "take").await;
    let now = now_ms();
    assert!(
        store
            .pool_take(&offering, &lease, now)
            .await
            .expect("take")
            .is_none(),
        "empty pool"
    );
    let filling = slot(&offering, 5000);
    assert!(add(&*store, &filling, 9).await);
    ready_slot(&*store, &other, 5000, "c-other").await;
    let young = ready_slot(&*store, &offering, 1000, "c-young").await;
    let old = ready_slot(&*store, &offering, 2000, "c-old").await;
    let taken = store
        .pool_take(&offering, &lease, now)
        .await
        .expect("take")
        .expect("a slot was ready");
    assert_eq!(taken.slot.id, old.id, "the oldest ready slot");
    assert_eq!(taken.slot.state, SlotState::Taken);
    assert_eq!(taken.slot.lease_id.as_ref(), Some(&lease.id));
    assert_eq!(taken.slot.container_id.as_deref(), Some("c-old"));
    let running = &taken.lease;
    assert_eq!(running.status, Status::Running);
    assert_eq!(running.container_id.as_deref(), Some("c-old"));
    assert_eq!(running.running_at, Some(now));
    assert_eq!(running.revision, lease.revision + 1);
    assert_eq!(&get(&*store, &lease.id).await, running, "as stored");
    let states: BTreeSet<(String, SlotState)> = slots_of(&*store, &offering)
        .await
        .into_iter()
        .map(|s| (s.id, s.state))
        .collect();
    let expected: BTreeSet<(String, SlotState)> = [
        (filling.id.clone(), SlotState::Filling),
        (young.id.clone(), SlotState::Ready),
        (old.id.clone(), SlotState::Taken),
    ]
    .into_iter()
    .collect();
    assert_eq!(states, expected);
    assert_eq!(
        slots_of(&*store, &other).await[0].state,
        SlotState::Ready,
        "another offering's slot is left alone"
    );
}

/// A take with a stale revision conflicts, one of a lease that is not
/// active is not found, and neither changes a slot or the lease.
pub async fn pool_take_of_a_moved_lease_changes_nothing<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let offering = unique_offering("stale");
    let slot = ready_slot(&*store, &offering, 0, "c-1").await;
    let lease = pending(&*store, "stale").await;
    let mut moved = lease.clone();
    moved.error = Some("moved".into());
    let moved = store
        .update(&moved, &crate::Admission::default())
        .await
        .expect("update");
    match store.pool_take(&offering, &lease, now_ms()).await {
        Err(StoreError::Conflict { id, .. }) => assert_eq!(id, lease.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let unknown = sample_lease("nobody", Duration::hours(1));
    match store.pool_take(&offering, &unknown, now_ms()).await {
        Err(StoreError::NotFound(id)) => assert_eq!(id, unknown.id),
        other => panic!("expected not found, got {other:?}"),
    }
    assert_eq!(get(&*store, &lease.id).await, moved, "lease unchanged");
    let stored = slots_of(&*store, &offering).await;
    assert_eq!(stored[0].id, slot.id);
    assert_eq!(stored[0].state, SlotState::Ready, "slot unchanged");
}

/// `pool_drop` deletes a slot only in the state asked for.
pub async fn pool_drop_is_conditional_on_the_state<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let offering = unique_offering("drop");
    let slot = ready_slot(&*store, &offering, 0, "c-1").await;
    let dropped = |state| {
        let store = store.clone();
        let id = slot.id.clone();
        async move { store.pool_drop(&id, state).await.expect("pool_drop") }
    };
    assert!(!dropped(SlotState::Filling).await);
    assert!(!dropped(SlotState::Taken).await);
    assert_eq!(slots_of(&*store, &offering).await.len(), 1);
    assert!(dropped(SlotState::Ready).await);
    assert!(!dropped(SlotState::Ready).await, "already gone");
    assert!(slots_of(&*store, &offering).await.is_empty());
}

/// Many provisions racing for a pool of one: exactly one takes it, the
/// others find nothing and stay pending.
pub async fn racing_takers_of_a_pool_of_one_one_wins<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let offering = unique_offering("race");
    ready_slot(&*store, &offering, 0, "c-only").await;
    let mut leases = Vec::new();
    for _ in 0..8 {
        leases.push(pending(&*store, "race").await);
    }
    let takes = leases.iter().cloned().map(|lease| {
        let store = store.clone();
        let offering = offering.clone();
        tokio::spawn(async move { store.pool_take(&offering, &lease, now_ms()).await })
    });
    let mut winners = Vec::new();
    for take in futures::future::join_all(takes).await {
        if let Some(taken) = take.expect("task").expect("take") {
            winners.push(taken.lease.id);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one take wins: {winners:?}");
    for lease in &leases {
        let stored = get(&*store, &lease.id).await;
        if lease.id == winners[0] {
            assert_eq!(stored.container_id.as_deref(), Some("c-only"));
        } else {
            assert_eq!(stored.status, Status::Pending, "{} was not taken", lease.id);
            assert_eq!(stored.container_id, None);
        }
    }
}

/// Many refills racing for the last places add exactly the target.
pub async fn racing_adds_fill_exactly_the_target<S: LeaseStore + ?Sized>(store: Arc<S>) {
    let offering = unique_offering("fill");
    let adds = (0..12).map(|_| {
        let store = store.clone();
        let slot = slot(&offering, 0);
        tokio::spawn(async move { store.pool_add(&slot, 3).await })
    });
    let added = futures::future::join_all(adds)
        .await
        .into_iter()
        .filter(|added| *added.as_ref().expect("task").as_ref().expect("add"))
        .count();
    assert_eq!(added, 3);
    assert_eq!(slots_of(&*store, &offering).await.len(), 3);
}

/// Runs the pool conformance cases against a store, as `#[tokio::test]`s
/// in two modules: `pool_direct` (with `Arc<Store>`) and `pool_dynamic`
/// (with `Arc<dyn LeaseStore>`). Arguments as
/// [`store_conformance_tests!`](crate::store_conformance_tests).
#[macro_export]
macro_rules! pool_conformance_tests {
    ($store:ty, $factory:expr $(,)?) => {
        $crate::__pool_conformance_cases!(@module pool_direct, $store, $factory;);
        $crate::__pool_conformance_cases!(@module pool_dynamic, $store, $factory;);
    };
}

/// Implementation detail of [`pool_conformance_tests!`]: the one list of
/// cases; a unit test checks it names every case of this file.
#[doc(hidden)]
#[macro_export]
macro_rules! __pool_conformance_cases {
    (@module $mode:ident, $store:ty, $factory:expr; ) => {
        $crate::__pool_conformance_cases!(@list @module $mode, $store, $factory;);
    };
    (@list $($prefix:tt)*) => {
        $crate::__pool_conformance_module! { $($prefix)*
            pool_add_keeps_to_the_target,
            pool_ready_only_from_filling,
            pool_take_runs_the_lease_on_the_oldest_ready_slot,
            pool_take_of_a_moved_lease_changes_nothing,
            pool_drop_is_conditional_on_the_state,
            racing_takers_of_a_pool_of_one_one_wins,
            racing_adds_fill_exactly_the_target,
        }
    };
}

/// Implementation detail of [`pool_conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __pool_conformance_module {
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
                    $crate::__pool_conformance_module!(@run $mode, store, $case);
                }
            )*
        }
    };
    (@run pool_direct, $store:ident, $case:ident) => {
        $crate::testing::conformance::run_case(
            ::core::stringify!($case),
            $crate::testing::pool_conformance::$case($store),
        )
        .await
    };
    (@run pool_dynamic, $store:ident, $case:ident) => {{
        let $store: ::std::sync::Arc<dyn $crate::LeaseStore> = $store;
        $crate::testing::conformance::run_case(
            ::core::stringify!($case),
            $crate::testing::pool_conformance::$case($store),
        )
        .await
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_macro_runs_every_case() {
        crate::testing::conformance::assert_every_case_listed_once(
            include_str!("pool_conformance.rs"),
            "<S: LeaseStore",
            &crate::__pool_conformance_cases!(@list @names;),
        );
    }
}
