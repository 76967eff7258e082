//! Warm-pool scenarios: the whole engine with pools (take at provision,
//! refill, reconciliation of pool containers) over a store under test and
//! the [fake runtime](super::fake_runtime), with a [`ManualClock`].
//!
//! Each scenario takes a **fresh, empty** store that keeps pools; a store
//! crate runs them with one line:
//!
//! ```rust,ignore
//! lease_core::pool_scenario_tests!(async { Some(std::sync::Arc::new(MemoryStore::new())) });
//! ```
//!
//! Every scenario ends with THE CHECK ([`check_namespace`]): the
//! namespace's containers are exactly the live leases' containers and the
//! pools' ready containers — nothing leaked, nothing shared.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;

use super::fake_runtime::FakeRuntime;
use crate::pool::{PoolSlot, SlotState};
use crate::provision::pool_container_spec;
use crate::runtime::{ContainerRuntime, labels};
use crate::store::LeaseStoreExt;
use crate::{
    Catalog, Clock, EventKind, Lease, LeaseError, LeaseManager, LeaseStore, ListQuery,
    ManagerConfig, ManualClock, Offering, ProvisionRequest, Status, ValidationError,
};

const NS: &str = "test-pools";
const WAIT: StdDuration = StdDuration::from_secs(5);

/// One scenario's engine, as in the engine scenarios.
struct Harness {
    clock: Arc<ManualClock>,
    runtime: Arc<FakeRuntime>,
    store: Arc<dyn LeaseStore>,
    manager: LeaseManager,
}

/// The built-in catalog with `pool` on alpine (and none on ubuntu).
fn catalog(pool: u32, image: &str) -> Catalog {
    let builtin = Catalog::default();
    let offerings = builtin.offerings().cloned().map(|offering| {
        if offering.key == "alpine" {
            Offering {
                pool,
                image: image.to_owned(),
                ..offering
            }
        } else {
            offering
        }
    });
    Catalog::new(offerings.collect::<Vec<_>>()).expect("valid catalog")
}

fn config() -> ManagerConfig {
    ManagerConfig {
        quick_retry_base: StdDuration::from_millis(1),
        ..ManagerConfig::with_namespace(NS)
    }
}

fn manager(
    store: &Arc<dyn LeaseStore>,
    runtime: &Arc<FakeRuntime>,
    clock: &Arc<ManualClock>,
    catalog: Catalog,
    config: ManagerConfig,
) -> LeaseManager {
    LeaseManager::builder(store.clone(), runtime.clone())
        .catalog(catalog)
        .config(config)
        .clock(clock.clone())
        .build()
        .expect("valid manager")
}

fn harness(store: Arc<dyn LeaseStore>, pool: u32) -> Harness {
    let clock = Arc::new(ManualClock::default());
    let runtime = Arc::new(FakeRuntime::new(NS, clock.clone()));
    let manager = manager(
        &store,
        &runtime,
        &clock,
        catalog(pool, "alpine:3.20"),
        config(),
    );
    Harness {
        clock,
        runtime,
        store,
        manager,
    }
}

impl Harness {
    /// The same store, runtime and clock seen by an engine with another
    /// catalog (a restart after the catalog changed).
    fn restarted(&self, catalog: Catalog) -> LeaseManager {
        manager(&self.store, &self.runtime, &self.clock, catalog, config())
    }

    async fn fill(&self) -> usize {
        self.manager.fill_pools_once().await.expect("fill failed")
    }

    async fn provision(&self, owner: &str) -> Lease {
        self.manager
            .provision(ProvisionRequest::new(owner, "alpine").minutes(30))
            .await
            .expect("provision failed")
    }

    async fn slots(&self, state: SlotState) -> Vec<PoolSlot> {
        self.store
            .pool_slots()
            .await
            .expect("pool_slots")
            .into_iter()
            .filter(|slot| slot.state == state)
            .collect()
    }

    async fn counters(&self) -> crate::PoolCounters {
        let status = self.manager.pool_status().await.expect("pool status");
        status
            .iter()
            .find(|pool| pool.offering == "alpine")
            .map(|pool| pool.counters)
            .unwrap_or_default()
    }

    /// Waits (bounded, real time) until `id` is running.
    async fn running(&self, id: &crate::LeaseId) -> Lease {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let lease = self.store.get(id).await.expect("get");
            if lease.status == Status::Running {
                return lease;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} not running within {WAIT:?}: {lease:?}"
            );
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
    }
}

/// THE CHECK: the namespace's containers are exactly the live leases'
/// containers plus the ready pool slots' containers, each once.
pub async fn check_namespace(store: &dyn LeaseStore, runtime: &FakeRuntime) {
    let leases = store
        .list_all(&ListQuery::default())
        .await
        .expect("list leases");
    let mut expected: Vec<String> = leases
        .iter()
        .filter(|lease| lease.status.is_live())
        .filter_map(|lease| lease.container_id.clone())
        .collect();
    let slots = store.pool_slots().await.expect("pool slots");
    expected.extend(
        slots
            .iter()
            .filter(|slot| slot.state == SlotState::Ready)
            .filter_map(|slot| slot.container_id.clone()),
    );
    let unique: HashSet<&String> = expected.iter().collect();
    assert_eq!(
        unique.len(),
        expected.len(),
        "a container is held twice: {expected:?}"
    );
    let actual: BTreeSet<String> = runtime
        .containers_in(NS)
        .into_iter()
        .map(|c| c.id)
        .collect();
    let expected: BTreeSet<String> = expected.into_iter().collect();
    assert_eq!(
        actual, expected,
        "namespace containers ≠ live leases' + pool"
    );
}

/// A hit: the lease comes back `running` on a pooled container at once
/// (billing from that moment), with a `running` event; the pool refills
/// with a new container; the used one never returns to the pool.
pub async fn pool_hit_runs_at_once_and_refills(store: Arc<dyn LeaseStore>) {
    let h = harness(store, 2);
    assert_eq!(h.fill().await, 2);
    assert_eq!(h.fill().await, 0, "a full pool is left alone");
    let ready: Vec<String> = h
        .slots(SlotState::Ready)
        .await
        .into_iter()
        .filter_map(|slot| slot.container_id)
        .collect();
    assert_eq!(ready.len(), 2);
    let pooled = &h.runtime.containers_in(NS)[0];
    assert_eq!(pooled.labels[labels::POOL], "alpine");
    assert!(pooled.labels.contains_key(labels::POOL_SLOT));
    assert!(!pooled.labels.contains_key(labels::LEASE_ID));
    assert!(!pooled.labels.contains_key(labels::OWNER));

    let mut events = h.manager.subscribe();
    let lease = h.provision("ada").await;
    assert_eq!(lease.status, Status::Running, "running at once");
    let container = lease.container_id.clone().expect("a container");
    assert!(ready.contains(&container));
    assert_eq!(
        lease.running_at,
        Some(lease.created_at),
        "billing starts at once"
    );
    assert_eq!(h.store.get(&lease.id).await.expect("get"), lease);
    let created = events.recv().await.expect("event");
    assert_eq!(created.kind, EventKind::Created);
    let running = events.recv().await.expect("event");
    assert_eq!(
        (running.kind, &running.lease.id),
        (EventKind::Running, &lease.id)
    );
    assert_eq!(h.counters().await.hits, 1);

    assert_eq!(h.fill().await, 1, "refilled");
    let again: Vec<String> = h
        .slots(SlotState::Ready)
        .await
        .into_iter()
        .filter_map(|slot| slot.container_id)
        .collect();
    assert_eq!(again.len(), 2);
    assert!(
        !again.contains(&container),
        "a used container is not in the pool"
    );
    check_namespace(&*h.store, &h.runtime).await;

    // Ended: its container goes, and never comes back to the pool.
    h.manager.delete(&lease.id).await.expect("delete");
    h.manager.reap_once().await.expect("reap");
    assert!(
        h.runtime
            .containers_in(NS)
            .iter()
            .all(|c| c.id != container)
    );
    let report = h.manager.reconcile_once().await.expect("reconcile");
    assert_eq!(report.pool_slots_dropped, 1, "the taken slot's record goes");
    assert_eq!(report.orphans_removed, 0);
    assert!(h.slots(SlotState::Taken).await.is_empty());
    check_namespace(&*h.store, &h.runtime).await;
    let counters = h.counters().await;
    assert_eq!((counters.refills, counters.misses), (3, 0));
}

/// A miss (an empty pool) returns pending and provisions normally.
pub async fn pool_miss_falls_back_to_provisioning(store: Arc<dyn LeaseStore>) {
    let h = harness(store, 1);
    let lease = h.provision("ada").await;
    assert_eq!(lease.status, Status::Pending);
    let running = h.running(&lease.id).await;
    let container = h
        .runtime
        .containers_in(NS)
        .into_iter()
        .find(|c| Some(&c.id) == running.container_id.as_ref())
        .expect("its container");
    assert_eq!(container.labels[labels::LEASE_ID], lease.id.as_str());
    let counters = h.counters().await;
    assert_eq!((counters.hits, counters.misses), (0, 1));
    check_namespace(&*h.store, &h.runtime).await;
}

/// A burst larger than the pool: as many provisions as the pool holds run
/// at once, each on its own container; the rest provision normally.
pub async fn burst_larger_than_the_pool(store: Arc<dyn LeaseStore>) {
    let h = harness(store, 3);
    assert_eq!(h.fill().await, 3);
    let provisions = (0..8).map(|n| {
        let manager = h.manager.clone();
        async move {
            manager
                .provision(ProvisionRequest::new(format!("user-{n}"), "alpine").minutes(30))
                .await
                .expect("provision")
        }
    });
    let leases = futures::future::join_all(provisions).await;
    let at_once: Vec<&Lease> = leases
        .iter()
        .filter(|lease| lease.status == Status::Running)
        .collect();
    assert_eq!(at_once.len(), 3, "exactly the pool's size ran at once");
    let mut containers = HashSet::new();
    for lease in &leases {
        let running = h.running(&lease.id).await;
        assert!(
            containers.insert(running.container_id.clone().expect("container")),
            "two leases share a container"
        );
    }
    let counters = h.counters().await;
    assert_eq!((counters.hits, counters.misses), (3, 5));
    assert_eq!(h.fill().await, 3);
    check_namespace(&*h.store, &h.runtime).await;
}

/// The reconciler drops slots of a changed image, of an offering whose
/// pool shrank, past the max age, with a stopped container, and stuck
/// filling; removes a pool-labelled container with no slot record; and
/// leaves a pooled lease's container alone (it finds it by id) until it
/// vanishes, when the lease becomes `exited`.
pub async fn reconcile_keeps_pools_honest(store: Arc<dyn LeaseStore>) {
    let h = harness(store, 3);
    assert_eq!(h.fill().await, 3);
    let lease = h.provision("ada").await;
    assert_eq!(lease.status, Status::Running);
    let report = h.manager.reconcile_once().await.expect("reconcile");
    assert_eq!(report, crate::ReconcileReport::default(), "all is well");

    // The pool shrinks to 1: one of the two ready slots goes.
    let shrunk = h.restarted(catalog(1, "alpine:3.20"));
    let report = shrunk.reconcile_once().await.expect("reconcile");
    assert_eq!(report.pool_slots_dropped, 1);
    assert_eq!(h.slots(SlotState::Ready).await.len(), 1);
    check_namespace(&*h.store, &h.runtime).await;

    // The image changes: the ready slot goes; refills use the new image.
    let changed = h.restarted(catalog(1, "alpine:3.21"));
    let report = changed.reconcile_once().await.expect("reconcile");
    assert_eq!(report.pool_slots_dropped, 1);
    assert_eq!(changed.fill_pools_once().await.expect("fill"), 1);
    assert_eq!(h.slots(SlotState::Ready).await[0].image, "alpine:3.21");

    // Past the max age: replaced.
    h.clock.advance(Duration::hours(2));
    let report = changed.reconcile_once().await.expect("reconcile");
    assert_eq!(report.pool_slots_dropped, 1);
    assert_eq!(report.exited, 0, "the pooled lease keeps its container");
    assert_eq!(changed.fill_pools_once().await.expect("fill"), 1);

    // A stopped pool container: dropped.
    let slot = h.slots(SlotState::Ready).await.remove(0);
    h.runtime
        .stop_container(slot.container_id.as_deref().expect("ready"));
    assert_eq!(
        changed
            .reconcile_once()
            .await
            .expect("reconcile")
            .pool_slots_dropped,
        1
    );

    // A pool-labelled container with no record: an orphan.
    let ghost = PoolSlot::filling("alpine", "alpine:3.21", h.clock.now());
    let offering = changed.catalog().get("alpine").expect("alpine");
    h.runtime
        .create(&pool_container_spec(&ghost, offering))
        .await
        .expect("create");
    let report = changed.reconcile_once().await.expect("reconcile");
    assert_eq!(report.orphans_removed, 1);

    // The pooled lease's container vanishes: the lease becomes exited.
    h.runtime
        .vanish(lease.container_id.as_deref().expect("container"));
    let report = changed.reconcile_once().await.expect("reconcile");
    assert_eq!(report.exited, 1);
    assert_eq!(
        h.store.get(&lease.id).await.expect("get").status,
        Status::Exited
    );
    check_namespace(&*h.store, &h.runtime).await;
}

/// A refill killed after its slot record (and maybe its container) was
/// written but before the slot was ready: the slot counts toward the pool
/// until the provisioning timeout, then the reconciler drops it and its
/// container, and the pool refills.
pub async fn refill_crash_is_cleaned_up(store: Arc<dyn LeaseStore>) {
    let h = harness(store, 2);
    let offering = h.manager.catalog().get("alpine").expect("alpine").clone();
    // One dead filler got as far as the container, another only as far
    // as the record.
    let with_container = PoolSlot::filling("alpine", &offering.image, h.clock.now());
    let record_only = PoolSlot::filling("alpine", &offering.image, h.clock.now());
    for slot in [&with_container, &record_only] {
        assert!(h.store.pool_add(slot, 2).await.expect("add"));
    }
    h.runtime
        .create(&pool_container_spec(&with_container, &offering))
        .await
        .expect("create");
    assert_eq!(h.fill().await, 0, "filling slots count toward the pool");
    let report = h.manager.reconcile_once().await.expect("reconcile");
    assert_eq!(
        report,
        crate::ReconcileReport::default(),
        "too young to judge"
    );

    h.clock.advance(Duration::minutes(11));
    let report = h.manager.reconcile_once().await.expect("reconcile");
    assert_eq!(report.pool_slots_dropped, 2);
    assert_eq!(report.orphans_removed, 0);
    assert!(h.runtime.containers_in(NS).is_empty());
    assert_eq!(h.fill().await, 2);
    check_namespace(&*h.store, &h.runtime).await;
}

/// A failing refill drops its slot and leaves no container; the next
/// pass fills.
pub async fn failed_refill_leaves_nothing(store: Arc<dyn LeaseStore>) {
    let h = harness(store, 2);
    h.runtime.fail_next_creates(1);
    assert_eq!(h.fill().await, 1);
    assert_eq!(h.counters().await.refill_failures, 1);
    assert!(h.slots(SlotState::Filling).await.is_empty());
    check_namespace(&*h.store, &h.runtime).await;
    assert_eq!(h.fill().await, 1);
    check_namespace(&*h.store, &h.runtime).await;
}

/// Pool containers count against the host's capacity: leases get the
/// host's limits less what the pools hold, and a catalog whose pools fill
/// a limit is refused.
pub async fn pools_count_against_host_capacity(store: Arc<dyn LeaseStore>) {
    let clock = Arc::new(ManualClock::default());
    let runtime = Arc::new(FakeRuntime::new(NS, clock.clone()));
    let limited = ManagerConfig {
        max_leases: Some(3),
        ..config()
    };
    let m = manager(
        &store,
        &runtime,
        &clock,
        catalog(2, "alpine:3.20"),
        limited.clone(),
    );
    m.provision(ProvisionRequest::new("ada", "ubuntu").minutes(30))
        .await
        .expect("one lease fits beside a pool of 2");
    match m
        .provision(ProvisionRequest::new("ada", "ubuntu").minutes(30))
        .await
    {
        Err(LeaseError::CapacityExhausted { limit, .. }) => assert_eq!(limit, "max_leases"),
        other => panic!("expected the host limit, got {other:?}"),
    }
    let too_big = LeaseManager::builder(store.clone(), runtime.clone())
        .catalog(catalog(3, "alpine:3.20"))
        .config(limited)
        .build();
    match too_big {
        Err(LeaseError::Invalid(ValidationError { field, .. })) => assert_eq!(field, "pool"),
        other => panic!("expected a refused configuration, got {other:?}"),
    }
}

/// Runs the pool scenarios against a store that keeps pools, one
/// `#[tokio::test]` each (arguments as
/// [`engine_scenario_tests!`](crate::engine_scenario_tests)).
#[macro_export]
macro_rules! pool_scenario_tests {
    ($factory:expr $(,)?) => {
        $crate::__pool_scenarios!(@tests $factory;);
    };
}

/// Implementation detail of [`pool_scenario_tests!`]: the one list; a
/// unit test checks it names every scenario of this file.
#[doc(hidden)]
#[macro_export]
macro_rules! __pool_scenarios {
    ($($prefix:tt)*) => {
        $crate::__pool_scenario_module! { $($prefix)*
            pool_hit_runs_at_once_and_refills,
            pool_miss_falls_back_to_provisioning,
            burst_larger_than_the_pool,
            reconcile_keeps_pools_honest,
            refill_crash_is_cleaned_up,
            failed_refill_leaves_nothing,
            pools_count_against_host_capacity,
        }
    };
}

/// Implementation detail of [`pool_scenario_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __pool_scenario_module {
    (@names; $($case:ident),* $(,)?) => {
        [$(::core::stringify!($case)),*]
    };
    (@tests $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let ::core::option::Option::Some(store) = $factory.await else { return };
                let store: ::std::sync::Arc<dyn $crate::LeaseStore> = store;
                $crate::testing::conformance::run_case(
                    ::core::stringify!($case),
                    $crate::testing::pool_scenarios::$case(store),
                )
                .await
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_macro_runs_every_scenario() {
        crate::testing::conformance::assert_every_case_listed_once(
            include_str!("pool_scenarios.rs"),
            "(store: Arc<dyn LeaseStore>",
            &crate::__pool_scenarios!(@names;),
        );
    }
}
